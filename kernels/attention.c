/* Forward attention kernel: masked scaled dot-product attention with a stable
 * (online) softmax, float32 and float64 from one body (attention_forward.inc).
 *
 * Code paths, chosen per call:
 *  - "avx512" and "avx2+fma": register-blocked block functions on 512-bit or 256-bit
 *    vectors (attention_blocks_simd.inc), compiled through target attributes and
 *    used only when cpu.h's gb_simd_level() allows (the CPU has the features, and
 *    GLASSBOX_SIMD=avx2 skips AVX-512), so the build runs on any x86-64;
 *  - "portable": the same algorithm in plain C (attention_blocks_portable.inc),
 *    on every other CPU (ARM included) or when GLASSBOX_SIMD=portable.
 * Threads: GLASSBOX_NUM_THREADS (default: the cores the process may run on) from the kernels'
 * shared pool (threads.c), fewer when the call is too small to pay for handing work to them
 * (tiny calls run on the caller's thread alone).
 * Each element type is one instance of the template bodies (*.inc), with REAL, FN (the name
 * suffix), EXP2 and GB_DOUBLE defined; the comment beside each #include names what it defines. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "cpu.h"
#include "threads.h"

#if defined(__x86_64__)
#define GB_X86_64 1
#include "attention_avx2_math.h"
#include "attention_avx512_math.h"
#endif

#define BLOCK_Q 48        /* queries per tile: a multiple of every score tile (16 or 48 floats, 8 or 24 doubles) and of 6 */
#define WEIGHTS_CHUNK 256  /* keys per pass of weights x values on the tile path with weights */
#define TILE_MIN_ROWS 16  /* fewer query rows (decoding) take the row path */
#define ROWS_PER_TASK 8   /* query rows per task on the row path */
#define MIN_FLOPS_PER_THREAD (1 << 22)  /* ~20 us of one core's AVX-512 work: a smaller share gains less than a hand-off costs */

/* Row width of the tile accumulator: Dv rounded up to 16 (whole vectors on every path). */
static inline int64_t padded_width(int64_t dv) { return (dv + 15) / 16 * 16; }

/* Keys [0, result) of a block that the first `tile_rows` query rows of a tile can see, when
 * key c is visible to row r iff c <= diagonal + r (diagonal >= n_keys: all of them). */
static inline int64_t visible_in_tile(int64_t n_keys, int64_t diagonal, int64_t tile_rows)
{
    const int64_t keys = diagonal + tile_rows;
    return keys < 0 ? 0 : keys > n_keys ? n_keys : keys;
}

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
#define GB_DOUBLE 0
#include "attention_blocks_portable.inc"  /* defines blocks_f32 (the table type), blocks_portable_f32 */
#ifdef GB_X86_64
#include "attention_blocks_avx2.inc"    /* defines blocks_avx2_f32 */
#include "attention_blocks_avx512.inc"  /* defines blocks_avx512_f32 */
#endif
#include "attention_forward.inc"  /* defines gb_attention_forward_f32, gb_exp2_f32, select_blocks_f32 */
#undef REAL
#undef FN
#undef EXP2
#undef GB_DOUBLE

#define REAL double
#define FN(name) name##_f64
#define EXP2 exp2
#define GB_DOUBLE 1
#include "attention_blocks_portable.inc"  /* defines blocks_f64 (the table type), blocks_portable_f64 */
#ifdef GB_X86_64
#include "attention_blocks_avx2.inc"    /* defines blocks_avx2_f64 */
#include "attention_blocks_avx512.inc"  /* defines blocks_avx512_f64 */
#endif
#include "attention_forward.inc"  /* defines gb_attention_forward_f64, gb_exp2_f64, select_blocks_f64 */
#undef REAL
#undef FN
#undef EXP2
#undef GB_DOUBLE

const char *gb_forward_code_path(void)
{
    return select_blocks_f32()->name;
}

int gb_forward_thread_count(void)
{
    return gb_configured_threads();
}
