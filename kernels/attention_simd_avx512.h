/* The AVX-512 instance of the forward block functions (attention_blocks_simd_impl.h),
 * included by attention.c after REAL and FN for float (GB_DOUBLE 0) or double (GB_DOUBLE 1).
 * Transposes go through the AVX2 8 x 8 (float) and 4 x 4 (double) blocks. */
#if GB_DOUBLE
#define SIMD_FN(name) name##_avx512_f64
#define VEC __m512d
#define VMASK __mmask8
#define VLEN 8
#define VZERO _mm512_setzero_pd()
#define VSET1 _mm512_set1_pd
#define VLOAD _mm512_loadu_pd
#define VSTORE _mm512_storeu_pd
#define VMASKLOAD(p, mask) _mm512_maskz_loadu_pd(mask, p)
#define VMASKSTORE _mm512_mask_storeu_pd
#define VFIRST gb_first_lanes_pd512
#define VANDMASK _mm512_maskz_mov_pd
#define VFMA _mm512_fmadd_pd
#define VMUL _mm512_mul_pd
#define VADD _mm512_add_pd
#define VSUB _mm512_sub_pd
#define VMAX _mm512_max_pd
#define VZERO_WHERE_EQ(x, y) _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(x, y, _CMP_NEQ_UQ), x)
#define VHIDE_FIRST(x, count) _mm512_mask_mov_pd(x, gb_first_lanes_pd512(count), _mm512_set1_pd(-INFINITY))
#define VEXP2 gb_exp2_pd512
#define VSTORESUMS4 gb_store_sums4_pd512
#define VSUMLANES(x) gb_sum_lanes_pd(gb_fold_pd512(x))
#define VMAXLANES _mm512_reduce_max_pd
#define VTRANSPOSE_STORE gb_transpose_store_pd
#define TLEN 4
#else
#define SIMD_FN(name) name##_avx512_f32
#define VEC __m512
#define VMASK __mmask16
#define VLEN 16
#define VZERO _mm512_setzero_ps()
#define VSET1 _mm512_set1_ps
#define VLOAD _mm512_loadu_ps
#define VSTORE _mm512_storeu_ps
#define VMASKLOAD(p, mask) _mm512_maskz_loadu_ps(mask, p)
#define VMASKSTORE _mm512_mask_storeu_ps
#define VFIRST gb_first_lanes_ps512
#define VANDMASK _mm512_maskz_mov_ps
#define VFMA _mm512_fmadd_ps
#define VMUL _mm512_mul_ps
#define VADD _mm512_add_ps
#define VSUB _mm512_sub_ps
#define VMAX _mm512_max_ps
#define VZERO_WHERE_EQ(x, y) _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, y, _CMP_NEQ_UQ), x)
#define VHIDE_FIRST(x, count) _mm512_mask_mov_ps(x, gb_first_lanes_ps512(count), _mm512_set1_ps(-INFINITY))
#define VEXP2 gb_exp2_ps512
#define VSTORESUMS4 gb_store_sums4_ps512
#define VSUMLANES(x) gb_sum_lanes_ps(gb_fold_ps512(x))
#define VMAXLANES _mm512_reduce_max_ps
#define VTRANSPOSE_STORE gb_transpose_store_ps
#define TLEN 8
#endif
#define SIMD_NAME "avx512"
#define TARGET GB_AVX512
#define SCORE_KEYS 8
#define SCORE_VECS 3
#define ACC_VECS 4
#define BLOCK_KEYS 128  /* measured against 48 and 64 (12 heads, d 64): 5-9% faster at L 256-2048, causal or not */
#include "attention_blocks_simd_impl.h"
#include "attention_simd_undef.h"
