/* The forward kernel's block functions in plain C (any CPU; the compiler
 * vectorises the inner loops for SSE2 or NEON), and the table type that this and
 * the AVX2 and AVX-512 versions (attention_blocks_simd_impl.h) fill in. Included once
 * per element type by attention.c with REAL, FN(name) and EXP2 (exp2f or exp2) defined.
 * Layouts (see attention_forward_impl.h): q_t [d, BLOCK_Q] (queries of one block,
 * transposed), scores_t [n_keys, BLOCK_Q] (scores, then probabilities, key-major),
 * acc [BLOCK_Q, padded_width(dv)], row_max/row_sum/rescale [BLOCK_Q].
 * Scores are in base-2 units (the caller's scale includes log2(e)), so the
 * softmax's exponential is exp2: 2^(s - max) = e^(scaled score - its max). */

typedef struct {
    const char *name;
    /* keys per block of the tile path: the more, the fewer times each accumulator row is loaded,
     * rescaled and stored, up to what keeps a tile's q_t, scores_t and acc in L1 with this
     * path's vectors */
    int64_t block_k;
    /* scores_t[c, r] = scale * k[c] . q_t[:, r] for c < n_keys and r < rows (rounded up to
     * the function's tile: q_t is zero there); entries with c > diagonal + r (hidden by the
     * causal mask) may be skipped: nothing reads them as scores */
    void (*scores)(REAL *scores_t, const REAL *q_t, const REAL *k, int64_t n_keys, int64_t d, REAL scale,
                   int64_t rows, int64_t diagonal);
    /* online softmax over a block of scores (masked ones are -inf), per query r:
     * new max m' = max(row_max, scores), rescale = exp2(row_max - m'),
     * scores = exp2(scores - m'), row_sum = row_sum * rescale + sum(scores), row_max = m'.
     * While a row has seen no allowed key its max stays -inf and everything stays 0.
     * Rows r < rows (rounded up to the function's tile); scores with c > diagonal + r are
     * hidden by the causal mask: whatever they hold, they come out 0 */
    void (*softmax_update)(REAL *scores_t, REAL *row_max, REAL *row_sum, REAL *rescale, int64_t n_keys,
                           int64_t rows, int64_t diagonal);
    /* acc[r, :dv] = acc[r, :dv] * rescale[r] + sum_c probs[c, r] v[c, :dv] for r < rows, or with
     * rescale NULL (a tile's first block) acc[r, :dv] = the sum alone, acc not read (the
     * tile rounding of acc rows is allowed; probs rows past `rows` are never read), where
     * probs[c, r] = probs[c * key_stride + r * row_stride] and v rows are dv apart;
     * probabilities with c > diagonal + r are 0 and may be skipped */
    void (*accumulate)(REAL *acc, const REAL *probs, int64_t key_stride, int64_t row_stride, const REAL *v,
                       const REAL *rescale, int64_t n_keys, int64_t dv, int64_t rows, int64_t diagonal);
    /* dst[r * dst_ld + c] = src[c * src_ld + r] for r < rows, c < cols (packing the queries,
     * storing scores into weight rows) */
    void (*transpose)(REAL *dst, int64_t dst_ld, const REAL *src, int64_t src_ld, int64_t rows, int64_t cols);
    /* row path: scores[j] = scale * q_row . k[j] for j < n_keys */
    void (*dots)(REAL *scores, const REAL *q_row, const REAL *k, int64_t n_keys, int64_t d, REAL scale);
    REAL (*row_max)(const REAL *x, int64_t n);
    /* x[j] = exp2(x[j] - shift) for j < n (exp2(-inf) = 0); returns the sum */
    REAL (*exp_shifted)(REAL *x, int64_t n, REAL shift);
    /* out[:dv] = sum_j weights[j] v[j, :dv] for j < n_keys */
    void (*weighted_sum)(REAL *out, const REAL *weights, const REAL *v, int64_t n_keys, int64_t dv);
    /* dst[i] = src[i] * factor for i < n (dst may be src): output rows, normalised weights */
    void (*scale)(REAL *dst, const REAL *src, int64_t n, REAL factor);
    /* out[i] = exp2(x[i]) with the exp2 the softmax uses */
    void (*exp_array)(REAL *out, const REAL *x, int64_t n);
} FN(blocks);

static void FN(scores_portable)(REAL *scores_t, const REAL *q_t, const REAL *k, int64_t n_keys, int64_t d,
                                REAL scale, int64_t rows, int64_t diagonal)
{
    const int64_t keys = visible_in_tile(n_keys, diagonal, rows);
    for (int64_t c = 0; c < keys; c++) {
        REAL *row = scores_t + c * BLOCK_Q;  /* [BLOCK_Q] */
        const REAL *k_row = k + c * d;
        for (int64_t r = 0; r < rows; r++) row[r] = 0;
        for (int64_t e = 0; e < d; e++) {
            const REAL key = k_row[e];
            const REAL *q_col = q_t + e * BLOCK_Q;
            for (int64_t r = 0; r < rows; r++) row[r] += key * q_col[r];
        }
        for (int64_t r = 0; r < rows; r++) row[r] *= scale;
    }
}

static void FN(softmax_update_portable)(REAL *scores_t, REAL *row_max, REAL *row_sum, REAL *rescale,
                                        int64_t n_keys, int64_t rows, int64_t diagonal)
{
    for (int64_t r = 0; r < rows; r++) {
        const int64_t visible = visible_in_tile(n_keys, diagonal, r + 1);
        REAL new_max = row_max[r];
        for (int64_t c = 0; c < visible; c++) {
            const REAL s = scores_t[c * BLOCK_Q + r];
            if (s > new_max) new_max = s;
        }
        const REAL shift = new_max == -INFINITY ? 0 : new_max;  /* nothing seen yet: exp2(-inf) = 0 */
        REAL sum = 0;
        for (int64_t c = 0; c < visible; c++) {
            REAL *s = scores_t + c * BLOCK_Q + r;
            *s = EXP2(*s - shift);
            sum += *s;
        }
        for (int64_t c = visible; c < n_keys; c++) scores_t[c * BLOCK_Q + r] = 0;
        rescale[r] = EXP2(row_max[r] - shift);
        row_sum[r] = row_sum[r] * rescale[r] + sum;
        row_max[r] = new_max;
    }
}

static void FN(accumulate_portable)(REAL *acc, const REAL *probs, int64_t key_stride, int64_t row_stride,
                                    const REAL *v, const REAL *rescale, int64_t n_keys, int64_t dv,
                                    int64_t rows, int64_t diagonal)
{
    const int64_t acc_stride = padded_width(dv);
    for (int64_t r = 0; r < rows; r++) {
        REAL *acc_row = acc + r * acc_stride;
        const int64_t keys = visible_in_tile(n_keys, diagonal, r + 1);
        for (int64_t col = 0; col < dv; col++) acc_row[col] = rescale ? acc_row[col] * rescale[r] : 0;
        for (int64_t c = 0; c < keys; c++) {
            const REAL p = probs[c * key_stride + r * row_stride];
            const REAL *v_row = v + c * dv;
            for (int64_t col = 0; col < dv; col++) acc_row[col] += p * v_row[col];
        }
    }
}

static void FN(transpose_portable)(REAL *dst, int64_t dst_ld, const REAL *src, int64_t src_ld, int64_t rows,
                                   int64_t cols)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) dst[r * dst_ld + c] = src[c * src_ld + r];
}

static void FN(dots_portable)(REAL *scores, const REAL *q_row, const REAL *k, int64_t n_keys, int64_t d, REAL scale)
{
    for (int64_t j = 0; j < n_keys; j++) {
        const REAL *k_row = k + j * d;
        REAL dot = 0;
        for (int64_t e = 0; e < d; e++) dot += q_row[e] * k_row[e];
        scores[j] = dot * scale;
    }
}

static REAL FN(row_max_portable)(const REAL *x, int64_t n)
{
    REAL result = -INFINITY;
    for (int64_t j = 0; j < n; j++) result = x[j] > result ? x[j] : result;
    return result;
}

static REAL FN(exp_shifted_portable)(REAL *x, int64_t n, REAL shift)
{
    REAL sum = 0;
    for (int64_t j = 0; j < n; j++) {
        x[j] = EXP2(x[j] - shift);
        sum += x[j];
    }
    return sum;
}

static void FN(weighted_sum_portable)(REAL *out, const REAL *weights, const REAL *v, int64_t n_keys, int64_t dv)
{
    for (int64_t col = 0; col < dv; col++) out[col] = 0;
    for (int64_t j = 0; j < n_keys; j++) {
        const REAL w = weights[j];
        const REAL *v_row = v + j * dv;
        for (int64_t col = 0; col < dv; col++) out[col] += w * v_row[col];
    }
}

static void FN(scale_portable)(REAL *dst, const REAL *src, int64_t n, REAL factor)
{
    for (int64_t i = 0; i < n; i++) dst[i] = src[i] * factor;
}

static void FN(exp_array_portable)(REAL *out, const REAL *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) out[i] = EXP2(x[i]);
}

static const FN(blocks) FN(blocks_portable) = {
    .name = "portable",
    .block_k = 48,
    .scores = FN(scores_portable),
    .softmax_update = FN(softmax_update_portable),
    .accumulate = FN(accumulate_portable),
    .transpose = FN(transpose_portable),
    .dots = FN(dots_portable),
    .row_max = FN(row_max_portable),
    .exp_shifted = FN(exp_shifted_portable),
    .weighted_sum = FN(weighted_sum_portable),
    .scale = FN(scale_portable),
    .exp_array = FN(exp_array_portable),
};
