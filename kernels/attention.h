/* Glassbox attention kernels: masked scaled dot-product attention with a
 * numerically stable softmax, forward and backward, float32 and float64.
 *
 * Legend for the sizes (llm.c style: outputs first, sizes last):
 *   B  = number of independent attention problems (batch * heads, flattened)
 *   Lq = query positions, Lk = key/value positions
 *   D  = query/key width, Dv = value width
 * All arrays are C-contiguous: q [B, Lq, D], k [B, Lk, D], v [B, Lk, Dv],
 * out [B, Lq, Dv], weights [B, Lq, Lk].
 *
 * The forward kernel takes grouped-query attention as kv_group (1 for plain multi-head
 * attention): k [B / kv_group, Lk, D] and v [B / kv_group, Lk, Dv], and problem b of q reads
 * problem b / kv_group of k and v. With q [batch, H, Lq, D] and k, v [batch, Hkv, Lk, .]
 * flattened, kv_group = H / Hkv makes query head h read key/value head h / kv_group, with no
 * copy of k or v per query head. kv_group must be positive and divide B (else GB_ERR_SIZE).
 *
 * mask (may be NULL) holds one byte per (b, i, j), nonzero = may attend; it is
 * addressed as mask[b*mask_sb + i*mask_sq + j*mask_sk] so that a broadcast mask
 * (stride 0) needs no copy. causal != 0 lets query i see keys j <= i + (Lk - Lq).
 * A row with no allowed key yields zeros in out (and weights). NaN is never hidden: a
 * NaN or inf in q or k that a row may see (or a score that overflows to +inf) makes its
 * out and weights rows NaN, and a NaN or inf in v reaches every row that may see that
 * key, as in the NumPy backend. B, Lq, Lk and D are positive; Dv may be 0 (weights only).
 *
 * Return codes: GB_OK, or one of the GB_ERR_* values below; on error no output
 * has been written beyond what the caller passed in. A worker thread that cannot be
 * started is no error: the other threads (the caller's at least) do its share.
 */
#ifndef GLASSBOX_ATTENTION_H
#define GLASSBOX_ATTENTION_H

#include <stdint.h>

#define GB_OK 0
#define GB_ERR_NULL 1      /* a required pointer is NULL */
#define GB_ERR_SIZE 2      /* a size is not positive */
#define GB_ERR_NOMEM 3     /* a work buffer could not be allocated */

/* weights may be NULL: then no Lq x Lk buffer is ever allocated. */
int gb_attention_forward_f32(float *out, float *weights,
                             const float *q, const float *k, const float *v,
                             const uint8_t *mask, int64_t mask_sb, int64_t mask_sq, int64_t mask_sk,
                             int causal, double scale,
                             int64_t B, int64_t kv_group, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv);
int gb_attention_forward_f64(double *out, double *weights,
                             const double *q, const double *k, const double *v,
                             const uint8_t *mask, int64_t mask_sb, int64_t mask_sq, int64_t mask_sk,
                             int causal, double scale,
                             int64_t B, int64_t kv_group, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv);

/* The forward kernel's code path for the next call on this CPU: "avx512" (AVX-512F), else
 * "avx2+fma", else "portable" (plain C). GLASSBOX_SIMD=avx2 in the environment caps it at
 * "avx2+fma", GLASSBOX_SIMD=portable forces plain C. */
const char *gb_forward_code_path(void);
/* Threads a large forward call uses: GLASSBOX_NUM_THREADS when a positive
 * integer, else the cores the process may run on (small calls use fewer, tiny ones just one). */
int gb_forward_thread_count(void);
/* out[i] = 2^x[i] with the exp2 the forward's softmax uses on the current code
 * path (it works on scores times log2(e)); exposed so that tests can measure its
 * error in ULP. */
int gb_exp2_f32(float *out, const float *x, int64_t n);
int gb_exp2_f64(double *out, const double *x, int64_t n);

/* Backward pass given the forward's attention weights [B, Lq, Lk] (masked
 * entries are zero there, so the mask needs no second look); k and v have q's B problems
 * (no kv_group: training runs multi-head attention only):
 *   dv = W^T dout,  dW = dout v^T,  dS = W * (dW - rowsum(dW * W)),
 *   dq = scale * dS k,  dk = scale * dS^T q. */
int gb_attention_backward_f32(float *dq, float *dk, float *dv,
                              const float *dout, const float *q, const float *k, const float *v,
                              const float *weights, double scale,
                              int64_t B, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv);
int gb_attention_backward_f64(double *dq, double *dk, double *dv,
                              const double *dout, const double *q, const double *k, const double *v,
                              const double *weights, double scale,
                              int64_t B, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv);

#endif
