/* Backward attention kernel (for training): gradients of q, k, v from the
 * gradient of the output and the forward's weights, float32 and float64 from one
 * body (attention_backward.inc), in two code paths chosen per call:
 *  - "avx2": 256-bit tiles, compiled through a target attribute and used only when
 *    cpu.h's gb_simd_level() allows AVX2, so the build runs on any x86-64;
 *  - "portable": 128-bit tiles (SSE2 on x86-64, NEON on ARM), everywhere else or
 *    when GLASSBOX_SIMD=portable.
 * Both sum every element in the same order, so they give the same bits.
 * The B independent problems are tasks for the kernels' shared thread pool (threads.h:
 * GLASSBOX_NUM_THREADS, default the cores the process may run on), used only when the
 * work is large enough to pay for the threads. Each task owns one whole problem, so the
 * result does not depend on the thread count either.
 * Each element type and code path is one instance of attention_backward.inc; the comment
 * beside each #include names the function it defines, called by the public entry points
 * at the end of this file. */
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "cpu.h"
#include "threads.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define GB_BACKWARD_AVX2 1
#endif

#define ROWS 4  /* query rows per block (attention_backward.inc's tiles hold 4) */
#define COLS (2 * VBYTES / (int)sizeof(REAL))
/* multiply-adds one thread should get at least: below this, starting it costs more than it saves */
#define MIN_WORK_PER_THREAD (1 << 17)

/* How many threads to share B problems of `work_per_problem` multiply-adds among. */
static int64_t backward_thread_count(int64_t B, int64_t work_per_problem)
{
    int64_t count = gb_configured_threads();
    int64_t by_work = B * work_per_problem / MIN_WORK_PER_THREAD;
    if (count > by_work) count = by_work;
    return count < 1 ? 1 : count;
}

#define REAL float
#define VBYTES 16
#define TARGET
#define FN(name) name##_f32
#include "attention_backward.inc"  /* defines backward_f32 */
#undef VBYTES
#undef TARGET
#undef FN
#ifdef GB_BACKWARD_AVX2
#define VBYTES 32
#define TARGET __attribute__((target("avx2")))
#define FN(name) name##_f32_avx2
#include "attention_backward.inc"  /* defines backward_f32_avx2 */
#undef VBYTES
#undef TARGET
#undef FN
#endif
#undef REAL

#define REAL double
#define VBYTES 16
#define TARGET
#define FN(name) name##_f64
#include "attention_backward.inc"  /* defines backward_f64 */
#undef VBYTES
#undef TARGET
#undef FN
#ifdef GB_BACKWARD_AVX2
#define VBYTES 32
#define TARGET __attribute__((target("avx2")))
#define FN(name) name##_f64_avx2
#include "attention_backward.inc"  /* defines backward_f64_avx2 */
#undef VBYTES
#undef TARGET
#undef FN
#endif
#undef REAL

int gb_attention_backward_f32(float *dq, float *dk, float *dv,
                              const float *dout, const float *q, const float *k, const float *v,
                              const float *weights, double scale,
                              int64_t B, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv)
{
#ifdef GB_BACKWARD_AVX2
    if (gb_simd_level() >= GB_SIMD_AVX2) return backward_f32_avx2(dq, dk, dv, dout, q, k, v, weights, scale, B, Lq, Lk, D, Dv);
#endif
    return backward_f32(dq, dk, dv, dout, q, k, v, weights, scale, B, Lq, Lk, D, Dv);
}

int gb_attention_backward_f64(double *dq, double *dk, double *dv,
                              const double *dout, const double *q, const double *k, const double *v,
                              const double *weights, double scale,
                              int64_t B, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv)
{
#ifdef GB_BACKWARD_AVX2
    if (gb_simd_level() >= GB_SIMD_AVX2) return backward_f64_avx2(dq, dk, dv, dout, q, k, v, weights, scale, B, Lq, Lk, D, Dv);
#endif
    return backward_f64(dq, dk, dv, dout, q, k, v, weights, scale, B, Lq, Lk, D, Dv);
}
