/* The layer kernels declared in layers.h. Plain C loops that GCC vectorises at -O3; the tanh
 * is a rational function (no libm call), so the GELU loops vectorise too. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "layers.h"

/* Lets GCC turn the clamps' selects into vector blends; floating-point exceptions never trap
 * here (Python does not enable traps), and no result changes. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

/* On x86-64 Linux each loop also gets an AVX2 copy, chosen at load time (the same operations
 * in the same order, elementwise: its results are the portable copy's, bit for bit). */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define GB_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define GB_CLONES
#endif

#define GELU_COEFF 0.044715f
#define SQRT_2_OVER_PI 0.7978845608028654f

/* tanh(u) for float: Eigen's rational approximation (odd degree-13 / even degree-6 polynomials,
 * clamped at +-7.9053, where it rounds to +-1), within 4e-7 of the true value. A NaN stays NaN
 * (the comparisons are false for it) and +-inf gives +-1, as tanh does. */
static inline float gb_tanhf(float u)
{
    const float clamp = 7.90531110763549805f;
    float x = u > clamp ? clamp : (u < -clamp ? -clamp : u);
    float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * x;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    float t = p / q;
    return fabsf(u) < 0.0004f ? u : t; /* tiny |u|: tanh(u) = u to float precision */
}

/* e^x for float, written to vectorise: x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite),
 * e^r by its Taylor polynomial of degree 7 (within 2 ulp), 2^n put into the exponent bits.
 * For softmax's shifted logits (x <= 0): below -87.3 it gives 0 (e^x would be denormal),
 * -inf gives 0 and a NaN stays NaN; x is clamped at 88 above (never reached there). */
static inline float gb_expf(float x)
{
    float xc = x > -87.0f ? x : -87.0f; /* a NaN becomes -87 here, so n below is always a small integer */
    xc = xc < 88.0f ? xc : 88.0f;
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest: 1.5 * 2^23 */
    float r = (xc - n * 0.693145751953125f) - n * 1.42860682030941723e-6f; /* ln2 = hi + lo */
    float p = 1.98412698412698413e-4f;
    p = p * r + 1.38888888888888889e-3f;
    p = p * r + 8.33333333333333333e-3f;
    p = p * r + 4.16666666666666667e-2f;
    p = p * r + 1.66666666666666667e-1f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    float e = p * two_n;
    e = x < -87.3f ? 0.0f : e;
    return x != x ? x : e; /* NaN in, NaN out */
}

GB_CLONES
void gb_gelu_forward_f32(float *out, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float xi = x[i];
        float t = gb_tanhf(SQRT_2_OVER_PI * (xi + GELU_COEFF * (xi * xi * xi)));
        out[i] = 0.5f * xi * (1.0f + t);
    }
}

GB_CLONES
void gb_gelu_backward_f32(float *d_x, const float *d_out, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float xi = x[i], x2 = xi * xi;
        float t = gb_tanhf(SQRT_2_OVER_PI * (xi + GELU_COEFF * (x2 * xi)));
        float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_COEFF * x2); /* u'(x) */
        d_x[i] = d_out[i] * (0.5f * ((1.0f + t) + xi * ((1.0f - t * t) * du)));
    }
}

/* The row's mean and sqrt(var + eps), summed in double in order. */
static void row_moments(const float *row, int64_t c, float eps, float *mean, float *scale)
{
    double sum = 0.0;
    for (int64_t j = 0; j < c; j++) sum += row[j];
    float m = (float)(sum / (double)c);
    double squares = 0.0;
    for (int64_t j = 0; j < c; j++) {
        float centred = row[j] - m;
        squares += (double)(centred * centred);
    }
    *mean = m;
    *scale = sqrtf((float)(squares / (double)c) + eps);
}

GB_CLONES
void gb_layernorm_forward_f32(float *out, float *scale, const float *x, const float *weight,
                              const float *bias, float eps, int64_t rows, int64_t c)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * c;
        float *out_row = out + r * c;
        float mean, s;
        row_moments(row, c, eps, &mean, &s);
        scale[r] = s;
        for (int64_t j = 0; j < c; j++) out_row[j] = (row[j] - mean) / s * weight[j] + bias[j];
    }
}

GB_CLONES
void gb_layernorm_backward_f32(float *d_x, float *d_weight, float *d_bias, const float *d_out,
                               const float *x, const float *weight, float eps, int64_t rows, int64_t c)
{
    memset(d_weight, 0, (size_t)c * sizeof(float));
    memset(d_bias, 0, (size_t)c * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * c, *d_row = d_out + r * c;
        float *d_x_row = d_x + r * c;
        float mean, s;
        row_moments(row, c, eps, &mean, &s);
        float inv_scale = 1.0f / s;
        double d_norm_sum = 0.0, d_norm_dot = 0.0; /* sums of d_normalized and d_normalized * normalized */
        for (int64_t j = 0; j < c; j++) {
            float normalized = (row[j] - mean) * inv_scale;
            float d_normalized = d_row[j] * weight[j];
            d_norm_sum += d_normalized;
            d_norm_dot += (double)(d_normalized * normalized);
            d_weight[j] += d_row[j] * normalized;
            d_bias[j] += d_row[j];
        }
        float d_norm_mean = (float)(d_norm_sum / (double)c), d_norm_dot_mean = (float)(d_norm_dot / (double)c);
        for (int64_t j = 0; j < c; j++) {
            float normalized = (row[j] - mean) * inv_scale;
            float d_normalized = d_row[j] * weight[j];
            d_x_row[j] = inv_scale * (d_normalized - d_norm_mean - normalized * d_norm_dot_mean);
        }
    }
}

GB_CLONES
int gb_softmax_cross_entropy_f32(double *loss, float *d_logits, const float *logits,
                                 const int64_t *targets, int64_t rows, int64_t v)
{
    for (int64_t r = 0; r < rows; r++)
        if (targets[r] < 0 || targets[r] >= v) return -1;
    double total_loss = 0.0;
    float inv_rows = 1.0f / (float)rows;
    for (int64_t r = 0; r < rows; r++) {
        const float *row = logits + r * v;
        float *d_row = d_logits + r * v;
        float max = row[0];
        for (int64_t j = 1; j < v; j++) max = row[j] > max ? row[j] : max; /* a NaN reaches the sum below */
        for (int64_t j = 0; j < v; j++) d_row[j] = gb_expf(row[j] - max);
        double total = 0.0;
        for (int64_t j = 0; j < v; j++) total += d_row[j];
        float inv_total = (float)(1.0 / total);
        for (int64_t j = 0; j < v; j++) d_row[j] = d_row[j] * inv_total * inv_rows;
        d_row[targets[r]] -= inv_rows;
        total_loss += log(total) - (double)(row[targets[r]] - max);
    }
    *loss = total_loss / (double)rows;
    return 0;
}

int gb_embedding_backward_f32(float *d_table, const float *d_out, const int64_t *ids,
                              int64_t n, int64_t c, int64_t table_rows)
{
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= table_rows) return -1;
    memset(d_table, 0, (size_t)(table_rows * c) * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        float *d_row = d_table + ids[i] * c;
        const float *row = d_out + i * c;
        for (int64_t j = 0; j < c; j++) d_row[j] += row[j];
    }
    return 0;
}
