/* Forward attention kernel: masked scaled dot-product attention with a stable
 * (online) softmax, float32 and float64 from one body (attention_forward_impl.h).
 *
 * Code paths, chosen per call:
 *  - "avx2+fma": hand-blocked AVX2/FMA block functions (attention_blocks_avx2_impl.h),
 *    compiled through target attributes and used only when the CPU has both
 *    features (__builtin_cpu_supports), so the build runs on any x86-64;
 *  - "portable": the same algorithm in plain C (attention_blocks_portable_impl.h),
 *    on every other CPU (ARM included) or when GLASSBOX_SIMD=portable.
 * Threads: GLASSBOX_NUM_THREADS (default: all cores), fewer when the call is too
 * small to pay for starting them (tiny calls run on the caller's thread alone). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "attention_cpu.h"
#include "attention_parallel.h"

#if defined(__x86_64__)
#define GB_X86_64 1
#include "attention_avx2_math.h"
#endif

#define BLOCK_Q 48        /* queries per tile: a multiple of 16 (2 vectors) and of 6 (micro-tile rows) */
#define BLOCK_K 48        /* keys per tile */
#define WEIGHTS_CHUNK 256  /* keys per pass of weights x values on the tile path with weights */
#define TILE_MIN_ROWS 16  /* fewer query rows (decoding) take the row path */
#define ROWS_PER_TASK 8   /* query rows per task on the row path */
#define MIN_FLOPS_PER_THREAD (1 << 22)  /* ~50 us of work: starting and joining a thread costs ~25 us */

/* Row width of the tile accumulator: Dv rounded up to 16 (whole vector pairs for float and double). */
static inline int64_t padded_width(int64_t dv) { return (dv + 15) / 16 * 16; }

/* Keys [0, result) of a block that the first `tile_rows` query rows of a tile can see, when
 * key c is visible to row r iff c <= diagonal + r (diagonal >= n_keys: all of them). */
static inline int64_t visible_in_tile(int64_t n_keys, int64_t diagonal, int64_t tile_rows)
{
    const int64_t keys = diagonal + tile_rows;
    return keys < 0 ? 0 : keys > n_keys ? n_keys : keys;
}

/* 1 when the AVX2 + FMA path is used: the CPU has both and GLASSBOX_SIMD is not "portable". */
static int gb_use_avx2(void) { return gb_avx2_usable(1); }

/* Threads for one call: the configured count, cut so each gets MIN_FLOPS_PER_THREAD of work.
 * Work counts the multiply-adds, plus 4 FLOPs per byte of K and V (decoding a few query rows
 * is memory-bound: there the bytes, not the FLOPs, take the time). */
static int64_t gb_threads_for(int64_t B, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv, int causal,
                              int64_t elem_size, int64_t n_tasks)
{
    double mean_keys = (double)Lk;
    if (causal) {  /* query i sees i + Lk - Lq + 1 keys, clipped to [0, Lk] */
        mean_keys = (double)Lk - (double)(Lq - 1) / 2.0;
        if (mean_keys < 1) mean_keys = 1;
    }
    const double flops = 2.0 * (double)B * (double)Lq * mean_keys * (double)(D + Dv);
    const double bytes = (double)B * (double)Lk * (double)(D + Dv) * (double)elem_size;
    const double by_work = (flops + 4.0 * bytes) / MIN_FLOPS_PER_THREAD;
    if (by_work < 2) return 1;  /* tiny call: skip even reading the configuration */
    int64_t threads = gb_configured_threads();
    if (by_work < (double)threads) threads = (int64_t)by_work;
    if (threads > n_tasks) threads = n_tasks;
    return threads < 1 ? 1 : threads;
}

#define REAL float
#define FN(name) name##_f32
#define EXP2 exp2f
#include "attention_blocks_portable_impl.h"
#ifdef GB_X86_64
#define VEC __m256
#define VMASK __m256i
#define VLEN 8
#define VZERO _mm256_setzero_ps()
#define VSET1 _mm256_set1_ps
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VMASKLOAD _mm256_maskload_ps
#define VMASKSTORE _mm256_maskstore_ps
#define VFIRST gb_first_lanes_ps
#define VANDMASK(mask, x) _mm256_and_ps(_mm256_castsi256_ps(mask), x)
#define VFMA _mm256_fmadd_ps
#define VMUL _mm256_mul_ps
#define VADD _mm256_add_ps
#define VSUB _mm256_sub_ps
#define VMAX _mm256_max_ps
#define VEQ(a, b) _mm256_cmp_ps(a, b, _CMP_EQ_OQ)
#define VANDNOT _mm256_andnot_ps
#define VEXP2 gb_exp2_ps
#define VSTORESUMS4 gb_store_sums4_ps
#define VSUMLANES gb_sum_lanes_ps
#define VMAXLANES gb_max_lanes_ps
#define VTRANSPOSE_STORE gb_transpose_store_ps
#include "attention_blocks_avx2_impl.h"
#undef VEC
#undef VMASK
#undef VLEN
#undef VZERO
#undef VSET1
#undef VLOAD
#undef VSTORE
#undef VMASKLOAD
#undef VMASKSTORE
#undef VFIRST
#undef VANDMASK
#undef VFMA
#undef VMUL
#undef VADD
#undef VSUB
#undef VMAX
#undef VEQ
#undef VANDNOT
#undef VEXP2
#undef VSTORESUMS4
#undef VSUMLANES
#undef VMAXLANES
#undef VTRANSPOSE_STORE
#endif
#include "attention_forward_impl.h"
#undef REAL
#undef FN
#undef EXP2

#define REAL double
#define FN(name) name##_f64
#define EXP2 exp2
#include "attention_blocks_portable_impl.h"
#ifdef GB_X86_64
#define VEC __m256d
#define VMASK __m256i
#define VLEN 4
#define VZERO _mm256_setzero_pd()
#define VSET1 _mm256_set1_pd
#define VLOAD _mm256_loadu_pd
#define VSTORE _mm256_storeu_pd
#define VMASKLOAD _mm256_maskload_pd
#define VMASKSTORE _mm256_maskstore_pd
#define VFIRST gb_first_lanes_pd
#define VANDMASK(mask, x) _mm256_and_pd(_mm256_castsi256_pd(mask), x)
#define VFMA _mm256_fmadd_pd
#define VMUL _mm256_mul_pd
#define VADD _mm256_add_pd
#define VSUB _mm256_sub_pd
#define VMAX _mm256_max_pd
#define VEQ(a, b) _mm256_cmp_pd(a, b, _CMP_EQ_OQ)
#define VANDNOT _mm256_andnot_pd
#define VEXP2 gb_exp2_pd
#define VSTORESUMS4 gb_store_sums4_pd
#define VSUMLANES gb_sum_lanes_pd
#define VMAXLANES gb_max_lanes_pd
#define VTRANSPOSE_STORE gb_transpose_store_pd
#include "attention_blocks_avx2_impl.h"
#endif
#include "attention_forward_impl.h"

const char *gb_forward_code_path(void)
{
    return gb_use_avx2() ? "avx2+fma" : "portable";
}

int gb_forward_thread_count(void)
{
    return gb_configured_threads();
}
