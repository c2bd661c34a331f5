/* The few-row matrix products declared in matvec.h: plain C loops that GCC vectorises at -O3
 * (with an AVX2 + FMA copy on x86-64 Linux), run as tasks on the kernels' shared thread pool
 * (threads.h). */
#include <stdlib.h>
#include <string.h>

#include "attention.h"  /* the status codes */
#include "matvec.h"
#include "threads.h"

/* Multiply-adds may fuse (FMA) here: a product's bytes are the same for any thread count on one
 * CPU, not across CPUs (the BLAS these replace makes no such promise either). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define GB_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define GB_CLONES
#endif

#define GB_RANGES_PER_THREAD 2  /* the transposed product's output ranges per thread */
#define GB_K_SLICES 8  /* the x @ w product's slices of weight rows: fixed, so the sums' order is too */

typedef struct {
    float *out, *partial;  /* partial: [rows * GB_K_SLICES, m] sums of the x @ w product's slices */
    const float *x, *w;
    int64_t rows, k, m, n_tasks;
} gb_product;

/* partial[first:end) of x [k] @ w [k, m] over the weight rows i in [first, end), in order, eight
 * rows per pass over the partial sums (m floats, which stay in L1 or L2): the weights stream
 * through once, row after row. */
GB_CLONES
static void gb_rows_slice(float *restrict partial, const float *restrict x, const float *restrict w,
                          int64_t m, int64_t first, int64_t end)
{
    memset(partial, 0, (size_t)m * sizeof *partial);
    int64_t i = first;
    for (; i + 8 <= end; i += 8) {
        const float *restrict w0 = w + i * m, *restrict w1 = w0 + m, *restrict w2 = w1 + m, *restrict w3 = w2 + m;
        const float *restrict w4 = w3 + m, *restrict w5 = w4 + m, *restrict w6 = w5 + m, *restrict w7 = w6 + m;
        const float *xi = x + i;
        for (int64_t j = 0; j < m; j++)
            partial[j] = partial[j] + xi[0] * w0[j] + xi[1] * w1[j] + xi[2] * w2[j] + xi[3] * w3[j]
                         + xi[4] * w4[j] + xi[5] * w5[j] + xi[6] * w6[j] + xi[7] * w7[j];
    }
    for (; i < end; i++)
        for (int64_t j = 0; j < m; j++) partial[j] += x[i] * w[i * m + j];
}

/* The dot product of a and b [n], in 16 interleaved partial sums (a fixed order that vectorises). */
GB_CLONES
static float gb_dot(const float *restrict a, const float *restrict b, int64_t n)
{
    float partial[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) partial[l] += a[i + l] * b[i + l];
    float total = 0.0f;
    for (int l = 0; l < 16; l++) total += partial[l];
    for (; i < n; i++) total += a[i] * b[i];
    return total;
}

/* Task t: slice t % GB_K_SLICES of the weight rows for row t / GB_K_SLICES of x. */
static void gb_product_task(void *context, int64_t task, void *work)
{
    (void)work;
    const gb_product *p = context;
    const int64_t row = task / GB_K_SLICES, slice = task % GB_K_SLICES;
    gb_rows_slice(p->partial + task * p->m, p->x + row * p->k, p->w, p->m,
                  p->k * slice / GB_K_SLICES, p->k * (slice + 1) / GB_K_SLICES);
}

/* Task t: outputs [m t / n_tasks, m (t + 1) / n_tasks) of every row, one dot product each. */
static void gb_transposed_task(void *context, int64_t task, void *work)
{
    (void)work;
    const gb_product *p = context;
    const int64_t first = p->m * task / p->n_tasks, end = p->m * (task + 1) / p->n_tasks;
    for (int64_t j = first; j < end; j++)
        for (int64_t r = 0; r < p->rows; r++) p->out[r * p->m + j] = gb_dot(p->x + r * p->k, p->w + j * p->k, p->k);
}

static int gb_check(const float *out, const float *x, const float *w, int64_t rows, int64_t k, int64_t m)
{
    if (!out || !x || !w) return GB_ERR_NULL;
    if (rows < 1 || k < 1 || m < 1) return GB_ERR_SIZE;
    return GB_OK;
}

static int64_t gb_threads(int64_t n_threads) { return n_threads < 1 ? gb_configured_threads() : n_threads; }

int gb_matmul_few_rows_f32(float *out, const float *x, const float *w,
                           int64_t rows, int64_t k, int64_t m, int64_t n_threads)
{
    int status = gb_check(out, x, w, rows, k, m);
    if (status != GB_OK) return status;
    gb_product product = {.out = out, .x = x, .w = w, .rows = rows, .k = k, .m = m,
                          .partial = malloc((size_t)(rows * GB_K_SLICES * m) * sizeof(float))};
    if (!product.partial) return GB_ERR_NOMEM;
    status = gb_run_tasks(gb_product_task, &product, rows * GB_K_SLICES, gb_threads(n_threads), 0);
    for (int64_t r = 0; status == GB_OK && r < rows; r++) {
        const float *slices = product.partial + r * GB_K_SLICES * m;
        for (int64_t j = 0; j < m; j++) {
            float total = slices[j];
            for (int64_t s = 1; s < GB_K_SLICES; s++) total += slices[s * m + j];
            out[r * m + j] = total;
        }
    }
    free(product.partial);
    return status;
}

int gb_matmul_few_rows_transposed_f32(float *out, const float *x, const float *w_t,
                                      int64_t rows, int64_t k, int64_t m, int64_t n_threads)
{
    int status = gb_check(out, x, w_t, rows, k, m);
    if (status != GB_OK) return status;
    n_threads = gb_threads(n_threads);
    gb_product product = {.out = out, .x = x, .w = w_t, .rows = rows, .k = k, .m = m,
                          .n_tasks = n_threads * GB_RANGES_PER_THREAD};
    return gb_run_tasks(gb_transposed_task, &product, product.n_tasks, n_threads, 0);
}
