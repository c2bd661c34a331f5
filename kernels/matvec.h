/* Glassbox's few-row matrix products (decoding with the KV cache: one new token's row at a time).
 * Such a product reads every weight once and does two flops per weight read, so it is bound by
 * memory bandwidth: these split the weight across the kernels' persistent threads
 * (kernels/threads.c), which a single-threaded BLAS call cannot do. The order of every
 * sum is fixed by the sizes alone, whatever the thread count: the same inputs give the same bytes
 * on one CPU. Outputs first, sizes last; return GB_OK, GB_ERR_NULL, GB_ERR_SIZE (a size below 1)
 * or GB_ERR_NOMEM. */
#ifndef GLASSBOX_MATVEC_H
#define GLASSBOX_MATVEC_H

#include <stdint.h>

/* out [rows, m] = x [rows, k] @ w [k, m]; w row-major (GPT-2's Conv1D weights [in, out]), cut
 * into 8 slices of its rows, each summed in order by one task, the slices then added in order. */
int gb_matmul_few_rows_f32(float *out, const float *x, const float *w,
                           int64_t rows, int64_t k, int64_t m, int64_t n_threads);

/* out [rows, m] = x [rows, k] @ w_t^T, w_t [m, k] row-major (the tied output head: the token
 * embedding [vocab, n_embd]): one dot product per output, ranges of w_t's rows per task. */
int gb_matmul_few_rows_transposed_f32(float *out, const float *x, const float *w_t,
                                      int64_t rows, int64_t k, int64_t m, int64_t n_threads);

#endif
