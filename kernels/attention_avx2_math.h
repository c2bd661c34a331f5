/* AVX2 + FMA helpers of the forward kernel (included by attention.c on x86-64 only):
 * the vectorised exp of the softmax, tail masks and 4-way horizontal sums.
 * Every function is compiled for AVX2 + FMA through a target attribute, so the
 * build itself needs no -mavx2 and runs on any x86-64; attention.c calls these
 * only after __builtin_cpu_supports says the CPU has both.
 *
 * exp: x = n ln2 + r with n = round(x / ln2) and |r| <= ln2 / 2 (Cody-Waite: ln2
 * split in a high and a low part, both subtracted with FMA), e^r from a polynomial,
 * times 2^n built in the exponent bits.
 *   float:  Cephes' degree-7 minimax polynomial; accurate on [-87.33, 88.37].
 *   double: Taylor series to r^13 (truncation < 0.05 ULP); accurate on [-708.39, 709.43].
 * Below the range (and at -inf) the result is 0: these would be subnormal
 * (< the smallest normal number), far below anything a softmax weight can show.
 * NaN stays NaN. The measured error is asserted in tests/test_kernel_perf_accuracy.py. */
#include <immintrin.h>

#define GB_AVX2 __attribute__((target("avx2,fma")))

GB_AVX2 static inline __m256 gb_exp_ps(__m256 x)
{
    const __m256 lowest = _mm256_set1_ps(-87.3365478515625f);  /* ln(FLT_MIN), rounded up */
    const __m256 highest = _mm256_set1_ps(88.37626f);           /* keeps n <= 127 */
    const __m256 underflow = _mm256_cmp_ps(x, lowest, _CMP_LT_OQ);
    x = _mm256_min_ps(highest, _mm256_max_ps(lowest, x));      /* NaN passes through */
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    const __m256 result = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    return _mm256_andnot_ps(underflow, result);
}

GB_AVX2 static inline __m256d gb_exp_pd(__m256d x)
{
    const __m256d lowest = _mm256_set1_pd(-708.3964185322641);  /* ln(DBL_MIN) */
    const __m256d highest = _mm256_set1_pd(709.43);             /* keeps n <= 1023 */
    const __m256d underflow = _mm256_cmp_pd(x, lowest, _CMP_LT_OQ);
    x = _mm256_min_pd(highest, _mm256_max_pd(lowest, x));
    const __m256d n = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(1.4426950408889634)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93147180369123816490e-01), x);
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.90821492927058770002e-10), r);
    __m256d p = _mm256_set1_pd(1.0 / 6227020800.0);  /* 1/13! */
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 479001600.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 39916800.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 3628800.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 362880.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 40320.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 5040.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 720.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 120.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 24.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 6.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(0.5));
    p = _mm256_fmadd_pd(p, _mm256_mul_pd(r, r), r);
    p = _mm256_add_pd(p, _mm256_set1_pd(1.0));
    /* n as int64: adding 1.5 * 2^52 puts it in the low mantissa bits */
    const __m256d magic = _mm256_set1_pd(6755399441055744.0);
    const __m256i n_int = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(n, magic)), _mm256_castpd_si256(magic));
    const __m256i bits = _mm256_slli_epi64(_mm256_add_epi64(n_int, _mm256_set1_epi64x(1023)), 52);
    const __m256d result = _mm256_mul_pd(p, _mm256_castsi256_pd(bits));
    return _mm256_andnot_pd(underflow, result);
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
