/* The AVX2 + FMA instance of the forward block functions (attention_blocks_simd_impl.h),
 * included by attention.c after REAL and FN for float (GB_DOUBLE 0) or double (GB_DOUBLE 1). */
#if GB_DOUBLE
#define SIMD_FN(name) name##_avx2_f64
#define VEC __m256d
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
#define VZERO_WHERE_EQ(x, y) _mm256_andnot_pd(_mm256_cmp_pd(x, y, _CMP_EQ_OQ), x)
#define VHIDE_FIRST(x, count) _mm256_blendv_pd(x, _mm256_set1_pd(-INFINITY), _mm256_castsi256_pd(gb_first_lanes_pd(count)))
#define VEXP2 gb_exp2_pd
#define VSTORESUMS4 gb_store_sums4_pd
#define VSUMLANES gb_sum_lanes_pd
#define VMAXLANES gb_max_lanes_pd
#define VTRANSPOSE_STORE gb_transpose_store_pd
#define TLEN 4
#else
#define SIMD_FN(name) name##_avx2_f32
#define VEC __m256
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
#define VZERO_WHERE_EQ(x, y) _mm256_andnot_ps(_mm256_cmp_ps(x, y, _CMP_EQ_OQ), x)
#define VHIDE_FIRST(x, count) _mm256_blendv_ps(x, _mm256_set1_ps(-INFINITY), _mm256_castsi256_ps(gb_first_lanes_ps(count)))
#define VEXP2 gb_exp2_ps
#define VSTORESUMS4 gb_store_sums4_ps
#define VSUMLANES gb_sum_lanes_ps
#define VMAXLANES gb_max_lanes_ps
#define VTRANSPOSE_STORE gb_transpose_store_ps
#define TLEN 8
#endif
#define VMASK __m256i
#define SIMD_NAME "avx2+fma"
#define TARGET GB_AVX2
#define SCORE_KEYS 6
#define SCORE_VECS 2
#define ACC_VECS 2
#define BLOCK_KEYS 64  /* measured: 3-4% faster than 48 at L 256 and 1024; 128 was 5% slower at L 1024 */
#include "attention_blocks_simd_impl.h"
#include "attention_simd_undef.h"
