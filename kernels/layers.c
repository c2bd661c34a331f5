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

/* LayerNorm and the cross-entropy take ROW_GROUP rows at a time: each row's sums (and max) are
 * chains of dependent operations, so one row at a time waits on their latency; side by side, each
 * row keeps its own order (the results are one row at a time's, bit for bit). */
#define ROW_GROUP 4

/* mean[r] and scale[r] = sqrt(var + eps) of `count` rows (at most ROW_GROUP) of x, c apart, each
 * summed in double in order. `count` is a constant after inlining. */
static inline __attribute__((always_inline)) void rows_moments(const float *x, int64_t count, int64_t c, float eps,
                                                               float *mean, float *scale)
{
    double sum[ROW_GROUP] = {0}, squares[ROW_GROUP] = {0};
    for (int64_t j = 0; j < c; j++)
        for (int64_t r = 0; r < count; r++) sum[r] += x[r * c + j];
    for (int64_t r = 0; r < count; r++) mean[r] = (float)(sum[r] / (double)c);
    for (int64_t j = 0; j < c; j++)
        for (int64_t r = 0; r < count; r++) {
            float centred = x[r * c + j] - mean[r];
            squares[r] += (double)(centred * centred);
        }
    for (int64_t r = 0; r < count; r++) scale[r] = sqrtf((float)(squares[r] / (double)c) + eps);
}

/* gb_layernorm_forward_f32 on `count` rows (at most ROW_GROUP). */
static inline __attribute__((always_inline)) void layernorm_rows(float *out, float *scale, const float *x,
                                                                 const float *weight, const float *bias, float eps,
                                                                 int64_t count, int64_t c)
{
    float mean[ROW_GROUP];
    rows_moments(x, count, c, eps, mean, scale);
    for (int64_t r = 0; r < count; r++)
        for (int64_t j = 0; j < c; j++) out[r * c + j] = (x[r * c + j] - mean[r]) / scale[r] * weight[j] + bias[j];
}

GB_CLONES
void gb_layernorm_forward_f32(float *out, float *scale, const float *x, const float *weight,
                              const float *bias, float eps, int64_t rows, int64_t c)
{
    int64_t r = 0;
    for (; r + ROW_GROUP <= rows; r += ROW_GROUP)
        layernorm_rows(out + r * c, scale + r, x + r * c, weight, bias, eps, ROW_GROUP, c);
    for (; r < rows; r++) layernorm_rows(out + r * c, scale + r, x + r * c, weight, bias, eps, 1, c);
}

/* gb_layernorm_backward_f32 on `count` rows (at most ROW_GROUP), adding their terms to d_weight
 * and d_bias row after row. */
static inline __attribute__((always_inline)) void layernorm_backward_rows(
    float *d_x, float *d_weight, float *d_bias, const float *d_out, const float *x, const float *weight, float eps,
    int64_t count, int64_t c)
{
    float mean[ROW_GROUP], s[ROW_GROUP], inv_scale[ROW_GROUP];
    rows_moments(x, count, c, eps, mean, s);
    for (int64_t r = 0; r < count; r++) inv_scale[r] = 1.0f / s[r];
    double d_norm_sum[ROW_GROUP] = {0}, d_norm_dot[ROW_GROUP] = {0}; /* sums of d_normalized and d_normalized * normalized */
    for (int64_t j = 0; j < c; j++)
        for (int64_t r = 0; r < count; r++) {
            float normalized = (x[r * c + j] - mean[r]) * inv_scale[r];
            float d_normalized = d_out[r * c + j] * weight[j];
            d_norm_sum[r] += d_normalized;
            d_norm_dot[r] += (double)(d_normalized * normalized);
        }
    for (int64_t r = 0; r < count; r++)
        for (int64_t j = 0; j < c; j++) {  /* no chain within a row: vectorised over j */
            d_weight[j] += d_out[r * c + j] * ((x[r * c + j] - mean[r]) * inv_scale[r]);
            d_bias[j] += d_out[r * c + j];
        }
    for (int64_t r = 0; r < count; r++) {
        float d_norm_mean = (float)(d_norm_sum[r] / (double)c), d_norm_dot_mean = (float)(d_norm_dot[r] / (double)c);
        for (int64_t j = 0; j < c; j++) {
            float normalized = (x[r * c + j] - mean[r]) * inv_scale[r];
            float d_normalized = d_out[r * c + j] * weight[j];
            d_x[r * c + j] = inv_scale[r] * (d_normalized - d_norm_mean - normalized * d_norm_dot_mean);
        }
    }
}

GB_CLONES
void gb_layernorm_backward_f32(float *d_x, float *d_weight, float *d_bias, const float *d_out,
                               const float *x, const float *weight, float eps, int64_t rows, int64_t c)
{
    memset(d_weight, 0, (size_t)c * sizeof(float));
    memset(d_bias, 0, (size_t)c * sizeof(float));
    int64_t r = 0;
    for (; r + ROW_GROUP <= rows; r += ROW_GROUP)
        layernorm_backward_rows(d_x + r * c, d_weight, d_bias, d_out + r * c, x + r * c, weight, eps, ROW_GROUP, c);
    for (; r < rows; r++)
        layernorm_backward_rows(d_x + r * c, d_weight, d_bias, d_out + r * c, x + r * c, weight, eps, 1, c);
}

/* gb_softmax_cross_entropy_f32 on `count` rows (at most ROW_GROUP: each row's max and sum are
 * chains too), their loss terms added to *total_loss row after row. */
static inline __attribute__((always_inline)) void cross_entropy_rows(double *total_loss, float *d_logits,
                                                                     const float *logits, const int64_t *targets,
                                                                     float inv_rows, int64_t count, int64_t v)
{
    float max[ROW_GROUP];
    double total[ROW_GROUP] = {0};
    for (int64_t r = 0; r < count; r++) max[r] = logits[r * v];
    for (int64_t j = 1; j < v; j++)
        for (int64_t r = 0; r < count; r++) {
            const float x = logits[r * v + j];
            max[r] = x > max[r] ? x : max[r]; /* a NaN reaches the sum below */
        }
    for (int64_t r = 0; r < count; r++)
        for (int64_t j = 0; j < v; j++) d_logits[r * v + j] = gb_expf(logits[r * v + j] - max[r]);
    for (int64_t j = 0; j < v; j++)
        for (int64_t r = 0; r < count; r++) total[r] += d_logits[r * v + j];
    for (int64_t r = 0; r < count; r++) {
        float *d_row = d_logits + r * v;
        float inv_total = (float)(1.0 / total[r]);
        for (int64_t j = 0; j < v; j++) d_row[j] = d_row[j] * inv_total * inv_rows;
        d_row[targets[r]] -= inv_rows;
        *total_loss += log(total[r]) - (double)(logits[r * v + targets[r]] - max[r]);
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
    int64_t r = 0;
    for (; r + ROW_GROUP <= rows; r += ROW_GROUP)
        cross_entropy_rows(&total_loss, d_logits + r * v, logits + r * v, targets + r, inv_rows, ROW_GROUP, v);
    for (; r < rows; r++) cross_entropy_rows(&total_loss, d_logits + r * v, logits + r * v, targets + r, inv_rows, 1, v);
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
