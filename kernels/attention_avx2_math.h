/* AVX2 + FMA helpers of the forward kernel (included by attention.c on x86-64 only):
 * the vectorised exp2 of the softmax, tail masks, horizontal sums, small transposes.
 * Every function is compiled for AVX2 + FMA through a target attribute, so the
 * build itself needs no -mavx2 and runs on any x86-64; attention.c calls these
 * only when gb_simd_level() (cpu.h) allows both.
 *
 * exp2 (the softmax works on scores in base-2 units, s * log2(e), so it needs
 * no reduction by ln 2): x = n + r with n = round(x) and |r| <= 1/2 exactly, 2^r
 * from its Taylor series (coefficients (ln 2)^k / k!), times 2^n added into the
 * exponent bits.
 *   float:  degree 7 (truncation < 0.1 ULP); accurate on [-125, 127.4].
 *   double: degree 13 (truncation < 0.05 ULP); accurate on [-1021, 1023.4].
 * Below the range (and at -inf) the result is 0: these would be tiny or subnormal,
 * far below anything a softmax weight can show. NaN stays NaN. The measured error
 * (about 1 ULP) is asserted in tests/test_kernel_perf_accuracy.py. */
#ifndef GLASSBOX_ATTENTION_AVX2_MATH_H
#define GLASSBOX_ATTENTION_AVX2_MATH_H

#include <immintrin.h>
#include <stdint.h>

#define GB_AVX2 __attribute__((target("avx2,fma")))

/* 2^r = sum of (ln 2)^k / k! r^k, highest degree first (Horner), for |r| <= 1/2. */
#define GB_EXP2_TERMS_F32 8
#define GB_EXP2_TERMS_F64 14
static const float gb_exp2_taylor_f32[GB_EXP2_TERMS_F32] = {
    1.5252733804059838e-05f, 0.00015403530393381606f, 0.0013333558146428441f, 0.009618129107628477f,
    0.055504108664821576f, 0.2402265069591007f, 0.6931471805599453f, 1.0f};
static const double gb_exp2_taylor_f64[GB_EXP2_TERMS_F64] = {
    1.3691488853904124e-12, 2.5678435993488196e-11, 4.44553827187081e-10, 7.054911620801121e-09,
    1.0178086009239696e-07, 1.3215486790144305e-06, 1.5252733804059838e-05, 0.00015403530393381606,
    0.0013333558146428441, 0.009618129107628477, 0.055504108664821576, 0.2402265069591007,
    0.6931471805599453, 1.0};

GB_AVX2 static inline __m256 gb_exp2_ps(__m256 x)
{
    const __m256 lowest = _mm256_set1_ps(-125.0f), highest = _mm256_set1_ps(127.4f);
    const __m256 underflow = _mm256_cmp_ps(x, lowest, _CMP_LT_OQ);
    x = _mm256_min_ps(highest, _mm256_max_ps(lowest, x));  /* NaN passes through */
    const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 r = _mm256_sub_ps(x, n);
    __m256 p = _mm256_set1_ps(gb_exp2_taylor_f32[0]);
#pragma GCC unroll 16
    for (int i = 1; i < GB_EXP2_TERMS_F32; i++) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(gb_exp2_taylor_f32[i]));
    const __m256i scaled = _mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23));
    return _mm256_andnot_ps(underflow, _mm256_castsi256_ps(scaled));
}

GB_AVX2 static inline __m256d gb_exp2_pd(__m256d x)
{
    const __m256d lowest = _mm256_set1_pd(-1021.0), highest = _mm256_set1_pd(1023.4);
    const __m256d underflow = _mm256_cmp_pd(x, lowest, _CMP_LT_OQ);
    x = _mm256_min_pd(highest, _mm256_max_pd(lowest, x));
    const __m256d n = _mm256_round_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256d r = _mm256_sub_pd(x, n);
    __m256d p = _mm256_set1_pd(gb_exp2_taylor_f64[0]);
#pragma GCC unroll 16
    for (int i = 1; i < GB_EXP2_TERMS_F64; i++) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(gb_exp2_taylor_f64[i]));
    /* n as int64: adding 1.5 * 2^52 puts it in the low mantissa bits */
    const __m256d magic = _mm256_set1_pd(6755399441055744.0);
    const __m256i n_int = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(n, magic)), _mm256_castpd_si256(magic));
    const __m256i scaled = _mm256_add_epi64(_mm256_castpd_si256(p), _mm256_slli_epi64(n_int, 52));
    return _mm256_andnot_pd(underflow, _mm256_castsi256_pd(scaled));
}

/* Lane masks selecting the first `count` lanes (count may be <= 0 or >= the width). */
GB_AVX2 static inline __m256i gb_first_lanes_ps(int64_t count)
{
    const int clamped = count < 0 ? 0 : count > 8 ? 8 : (int)count;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(clamped), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

GB_AVX2 static inline __m256i gb_first_lanes_pd(int64_t count)
{
    const long long clamped = count < 0 ? 0 : count > 4 ? 4 : count;
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(clamped), _mm256_setr_epi64x(0, 1, 2, 3));
}

/* dst[0..3] = scale * (sum of the lanes of a, b, c, d). */
GB_AVX2 static inline void gb_store_sums4_ps(float *dst, __m256 a, __m256 b, __m256 c, __m256 d, float scale)
{
    const __m256 pairs = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    const __m128 sums = _mm_add_ps(_mm256_castps256_ps128(pairs), _mm256_extractf128_ps(pairs, 1));
    _mm_storeu_ps(dst, _mm_mul_ps(sums, _mm_set1_ps(scale)));
}

GB_AVX2 static inline void gb_store_sums4_pd(double *dst, __m256d a, __m256d b, __m256d c, __m256d d, double scale)
{
    const __m256d ab = _mm256_hadd_pd(a, b), cd = _mm256_hadd_pd(c, d);
    const __m256d sums = _mm256_add_pd(_mm256_permute2f128_pd(ab, cd, 0x20), _mm256_permute2f128_pd(ab, cd, 0x31));
    _mm256_storeu_pd(dst, _mm256_mul_pd(sums, _mm256_set1_pd(scale)));
}

GB_AVX2 static inline float gb_sum_lanes_ps(__m256 x)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

GB_AVX2 static inline double gb_sum_lanes_pd(__m256d x)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(x), _mm256_extractf128_pd(x, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

GB_AVX2 static inline float gb_max_lanes_ps(__m256 x)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

GB_AVX2 static inline double gb_max_lanes_pd(__m256d x)
{
    __m128d s = _mm_max_pd(_mm256_castpd256_pd128(x), _mm256_extractf128_pd(x, 1));
    s = _mm_max_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

/* dst[r * dst_ld + c] = src[c * src_ld + r] for an 8 x 8 float block. */
GB_AVX2 static inline void gb_transpose_store_ps(float *dst, int64_t dst_ld, const float *src, int64_t src_ld)
{
    __m256 row[8], half[8];
    for (int i = 0; i < 8; i++) row[i] = _mm256_loadu_ps(src + i * src_ld);
    for (int i = 0; i < 8; i += 2) {
        half[i] = _mm256_unpacklo_ps(row[i], row[i + 1]);
        half[i + 1] = _mm256_unpackhi_ps(row[i], row[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        row[i] = _mm256_shuffle_ps(half[i], half[i + 2], 0x44);
        row[i + 1] = _mm256_shuffle_ps(half[i], half[i + 2], 0xEE);
        row[i + 2] = _mm256_shuffle_ps(half[i + 1], half[i + 3], 0x44);
        row[i + 3] = _mm256_shuffle_ps(half[i + 1], half[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(dst + i * dst_ld, _mm256_permute2f128_ps(row[i], row[i + 4], 0x20));
        _mm256_storeu_ps(dst + (i + 4) * dst_ld, _mm256_permute2f128_ps(row[i], row[i + 4], 0x31));
    }
}

/* dst[r * dst_ld + c] = src[c * src_ld + r] for a 4 x 4 double block. */
GB_AVX2 static inline void gb_transpose_store_pd(double *dst, int64_t dst_ld, const double *src, int64_t src_ld)
{
    const __m256d r0 = _mm256_loadu_pd(src), r1 = _mm256_loadu_pd(src + src_ld);
    const __m256d r2 = _mm256_loadu_pd(src + 2 * src_ld), r3 = _mm256_loadu_pd(src + 3 * src_ld);
    const __m256d lo01 = _mm256_unpacklo_pd(r0, r1), hi01 = _mm256_unpackhi_pd(r0, r1);
    const __m256d lo23 = _mm256_unpacklo_pd(r2, r3), hi23 = _mm256_unpackhi_pd(r2, r3);
    _mm256_storeu_pd(dst, _mm256_permute2f128_pd(lo01, lo23, 0x20));
    _mm256_storeu_pd(dst + dst_ld, _mm256_permute2f128_pd(hi01, hi23, 0x20));
    _mm256_storeu_pd(dst + 2 * dst_ld, _mm256_permute2f128_pd(lo01, lo23, 0x31));
    _mm256_storeu_pd(dst + 3 * dst_ld, _mm256_permute2f128_pd(hi01, hi23, 0x31));
}

#endif
