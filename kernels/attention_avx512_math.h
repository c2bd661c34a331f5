/* AVX-512 helpers of the forward kernel (included by attention.c on x86-64 only): the
 * softmax's exp2, tail masks and horizontal sums on 512-bit vectors. Compiled for AVX-512F
 * through a target attribute; attention.c calls them only when gb_simd_level() (cpu.h) is
 * GB_SIMD_AVX512. The exp2 is the AVX2 one's algorithm with the
 * same coefficients (see attention_avx2_math.h), but 2^n is applied by vscalef, which
 * needs no integer conversion and no clamp: the same bits wherever the AVX2 one is
 * accurate, and above that accurate up to the overflow to inf. x = +inf is left out (its
 * r = inf - inf is NaN); the softmax never asks, its inputs are scores minus their max,
 * <= 0 or NaN.
 * 4-key sums and transposes fold to the AVX2 helpers. */
#ifndef GLASSBOX_ATTENTION_AVX512_MATH_H
#define GLASSBOX_ATTENTION_AVX512_MATH_H

#include <immintrin.h>
#include <stdint.h>

#include "attention_avx2_math.h"  /* the exp2 coefficients, the 256-bit sums and transposes */

#define GB_AVX512 __attribute__((target("avx512f,avx2,fma")))

GB_AVX512 static inline __m512 gb_exp2_ps512(__m512 x)
{
    const __mmask16 in_range = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-125.0f), _CMP_NLT_UQ);  /* NaN included */
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 r = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(gb_exp2_taylor_f32[0]);
#pragma GCC unroll 16
    for (int i = 1; i < GB_EXP2_TERMS_F32; i++) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(gb_exp2_taylor_f32[i]));
    return _mm512_maskz_scalef_ps(in_range, p, n);  /* p * 2^n */
}

GB_AVX512 static inline __m512d gb_exp2_pd512(__m512d x)
{
    const __mmask8 in_range = _mm512_cmp_pd_mask(x, _mm512_set1_pd(-1021.0), _CMP_NLT_UQ);
    const __m512d n = _mm512_roundscale_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512d r = _mm512_sub_pd(x, n);
    __m512d p = _mm512_set1_pd(gb_exp2_taylor_f64[0]);
#pragma GCC unroll 16
    for (int i = 1; i < GB_EXP2_TERMS_F64; i++) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(gb_exp2_taylor_f64[i]));
    return _mm512_maskz_scalef_pd(in_range, p, n);
}

/* Masks of the first `count` lanes (count may be <= 0 or >= the width). */
static inline __mmask16 gb_first_lanes_ps512(int64_t count)
{
    return count <= 0 ? 0 : count >= 16 ? 0xFFFF : (__mmask16)((1u << count) - 1);
}

static inline __mmask8 gb_first_lanes_pd512(int64_t count)
{
    return count <= 0 ? 0 : count >= 8 ? 0xFF : (__mmask8)((1u << count) - 1);
}

/* The two 256-bit halves of x added. */
GB_AVX512 static inline __m256 gb_fold_ps512(__m512 x)
{
    const __m512d bits = _mm512_castps_pd(x);
    return _mm256_add_ps(_mm256_castpd_ps(_mm512_castpd512_pd256(bits)), _mm256_castpd_ps(_mm512_extractf64x4_pd(bits, 1)));
}

GB_AVX512 static inline __m256d gb_fold_pd512(__m512d x)
{
    return _mm256_add_pd(_mm512_castpd512_pd256(x), _mm512_extractf64x4_pd(x, 1));
}

/* dst[0..3] = scale * (sum of the lanes of a, b, c, d). */
GB_AVX512 static inline void gb_store_sums4_ps512(float *dst, __m512 a, __m512 b, __m512 c, __m512 d, float scale)
{
    gb_store_sums4_ps(dst, gb_fold_ps512(a), gb_fold_ps512(b), gb_fold_ps512(c), gb_fold_ps512(d), scale);
}

GB_AVX512 static inline void gb_store_sums4_pd512(double *dst, __m512d a, __m512d b, __m512d c, __m512d d,
                                                  double scale)
{
    gb_store_sums4_pd(dst, gb_fold_pd512(a), gb_fold_pd512(b), gb_fold_pd512(c), gb_fold_pd512(d), scale);
}

#endif
