/* SIMD block functions of the forward kernel (x86-64 only), included by attention.c once
 * per element type and vector width with these defined:
 *   REAL, FN(name) (the type suffix), SIMD_FN(name) (path and type suffix), SIMD_NAME,
 *   TARGET (the path's target attribute), the vector type VEC with VLEN lanes and the
 *   mask type VMASK, the tile shape (SCORE_KEYS, SCORE_VECS, ACC_VECS; 6 query rows per
 *   accumulate tile), the keys per block BLOCK_KEYS and the vector operations V*.
 * Same contracts as attention_blocks_portable_impl.h; the layouts are described in
 * attention_forward_impl.h. Tiles are register-blocked: with R vector registers,
 *   scores:     SCORE_KEYS keys x SCORE_VECS vectors of queries accumulators, + the query
 *               vectors + 1 broadcast key element; K rows are read in place
 *               (AVX2: 6 x 2 of 16 ymm; AVX-512: 8 x 3 of 32 zmm);
 *   accumulate: 6 queries x ACC_VECS vectors of value columns accumulators, + the value
 *               vectors + 1 broadcast probability (AVX2: 6 x 2; AVX-512: 6 x 4).
 * SCORE_VECS * VLEN must divide BLOCK_Q. */

#define ACC_ROWS 6
#define WSUM_VECS 8  /* value vectors per pass of the row path's weighted sum: 8 accumulators */
#define MAX_CHAINS 4  /* softmax_update's running maxima per vector of rows: one chain would wait on
                       * each max's latency. Any grouping gives the same max (a NaN score makes
                       * the row NaN through the sum of exponentials whatever the max) */

/* One tile of scores: keys [c0, c0 + SCORE_KEYS) x `vecs` vectors of queries from r0 (vecs
 * is a constant after inlining); keys past `keys` repeat the last one and are not stored. */
TARGET static inline __attribute__((always_inline)) void SIMD_FN(scores_tile)(
    REAL *scores_t, const REAL *q_t, const REAL *k, int64_t c0, int64_t keys, int64_t d, VEC scale, int64_t r0,
    int vecs)
{
    const REAL *k_rows[SCORE_KEYS];
    for (int i = 0; i < SCORE_KEYS; i++) k_rows[i] = k + (c0 + i < keys ? c0 + i : keys - 1) * d;
    VEC acc[SCORE_KEYS][SCORE_VECS];  /* [keys, query vectors] */
#pragma GCC unroll 8
    for (int i = 0; i < SCORE_KEYS; i++)
#pragma GCC unroll 4
        for (int j = 0; j < vecs; j++) acc[i][j] = VZERO;
    const REAL *qt = q_t + r0;
    for (int64_t e = 0; e < d; e++, qt += BLOCK_Q) {
        VEC q[SCORE_VECS];
#pragma GCC unroll 4
        for (int j = 0; j < vecs; j++) q[j] = VLOAD(qt + j * VLEN);
#pragma GCC unroll 8
        for (int i = 0; i < SCORE_KEYS; i++) {
            const VEC key = VSET1(k_rows[i][e]);
#pragma GCC unroll 4
            for (int j = 0; j < vecs; j++) acc[i][j] = VFMA(key, q[j], acc[i][j]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < SCORE_KEYS; i++) {
        if (c0 + i >= keys) break;
        REAL *dst = scores_t + (c0 + i) * BLOCK_Q + r0;
#pragma GCC unroll 4
        for (int j = 0; j < vecs; j++) VSTORE(dst + j * VLEN, VMUL(acc[i][j], scale));
    }
}

/* scores_t[c, r] = scale * K[c] . q_t[:, r] (see the portable version). A tile of rows is
 * only as many vectors wide as the rows left need, and on the causal diagonal it leaves out
 * the vectors of rows that see none of its keys (rows r < c0 - diagonal). */
TARGET static void SIMD_FN(scores)(REAL *scores_t, const REAL *q_t, const REAL *k, int64_t n_keys, int64_t d,
                                   REAL scale, int64_t rows, int64_t diagonal)
{
    const VEC scale_v = VSET1(scale);
    for (int64_t r0 = 0; r0 < rows; r0 += SCORE_VECS * VLEN) {
        const int64_t left = (rows - r0 + VLEN - 1) / VLEN, vecs = left < SCORE_VECS ? left : SCORE_VECS;
        const int64_t keys = visible_in_tile(n_keys, diagonal, r0 + vecs * VLEN);
        for (int64_t c0 = 0; c0 < keys; c0 += SCORE_KEYS) {
            const int64_t hidden = c0 - diagonal - r0 > 0 ? (c0 - diagonal - r0) / VLEN : 0;  /* < vecs */
            const int64_t live = vecs - hidden, from = r0 + hidden * VLEN;
            if (live >= SCORE_VECS) SIMD_FN(scores_tile)(scores_t, q_t, k, c0, keys, d, scale_v, from, SCORE_VECS);
            else if (live == 1) SIMD_FN(scores_tile)(scores_t, q_t, k, c0, keys, d, scale_v, from, 1);
            else SIMD_FN(scores_tile)(scores_t, q_t, k, c0, keys, d, scale_v, from, 2);
        }
    }
}

/* Scores of key c for the vector of rows from r0, -inf in the lanes of the rows it is
 * hidden from by the causal mask (rows r < c - diagonal). */
TARGET static inline __attribute__((always_inline)) VEC SIMD_FN(visible_scores)(
    const REAL *scores_t, int64_t c, int64_t diagonal, int64_t r0)
{
    const VEC scores = VLOAD(scores_t + c * BLOCK_Q + r0);
    return c - diagonal > r0 ? VHIDE_FIRST(scores, c - diagonal - r0) : scores;
}

/* Online softmax step over one block of keys (see the portable version), a vector of rows at
 * a time; keys that none of the vector's rows sees are zeroed without an exp2. The block's
 * max is taken over MAX_CHAINS interleaved chains. */
TARGET static void SIMD_FN(softmax_update)(REAL *scores_t, REAL *row_max, REAL *row_sum, REAL *rescale,
                                           int64_t n_keys, int64_t rows, int64_t diagonal)
{
    const VEC minus_inf = VSET1(-INFINITY);
    for (int64_t r0 = 0; r0 < rows; r0 += VLEN) {
        const int64_t visible = visible_in_tile(n_keys, diagonal, r0 + VLEN);
        const VEC old_max = VLOAD(row_max + r0);
        VEC maxima[MAX_CHAINS];  /* [chains]: key c goes to chain c % MAX_CHAINS */
        for (int j = 0; j < MAX_CHAINS; j++) maxima[j] = old_max;
        int64_t c = 0;
        for (; c + MAX_CHAINS <= visible; c += MAX_CHAINS)
#pragma GCC unroll 4
            for (int j = 0; j < MAX_CHAINS; j++)
                maxima[j] = VMAX(maxima[j], SIMD_FN(visible_scores)(scores_t, c + j, diagonal, r0));
        for (; c < visible; c++) maxima[c % MAX_CHAINS] = VMAX(maxima[c % MAX_CHAINS], SIMD_FN(visible_scores)(scores_t, c, diagonal, r0));
        VEC new_max = maxima[0];
        for (int j = 1; j < MAX_CHAINS; j++) new_max = VMAX(new_max, maxima[j]);
        const VEC shift = VZERO_WHERE_EQ(new_max, minus_inf);  /* nothing seen yet: 0, not -inf */
        const VEC factor = VEXP2(VSUB(old_max, shift));
        VEC sum = VZERO;
        for (c = 0; c < visible; c++) {
            const VEC p = VEXP2(VSUB(SIMD_FN(visible_scores)(scores_t, c, diagonal, r0), shift));
            VSTORE(scores_t + c * BLOCK_Q + r0, p);
            sum = VADD(sum, p);
        }
        for (int64_t c = visible; c < n_keys; c++) VSTORE(scores_t + c * BLOCK_Q + r0, VZERO);
        VSTORE(row_sum + r0, VFMA(VLOAD(row_sum + r0), factor, sum));
        VSTORE(row_max + r0, new_max);
        VSTORE(rescale + r0, factor);
    }
}

/* One 6-query x ACC_VECS-vector tile of accumulate; probability (row i, key c) is
 * p[i][c * key_stride]. `masked` (a constant after inlining) selects masked loads and
 * stores, by masks[j], for the last, partial columns. */
TARGET static inline __attribute__((always_inline)) void SIMD_FN(accumulate_tile)(
    REAL *acc, int64_t acc_stride, const REAL *const p[ACC_ROWS], int64_t key_stride, const REAL *v,
    int64_t dv, const REAL *rescale, int64_t n_keys, int masked, const VMASK masks[ACC_VECS])
{
    VEC a[ACC_ROWS][ACC_VECS];  /* [query rows, value vectors] */
#pragma GCC unroll 6
    for (int i = 0; i < ACC_ROWS; i++) {
        const VEC factor = rescale ? VSET1(rescale[i]) : VZERO;
#pragma GCC unroll 4
        for (int j = 0; j < ACC_VECS; j++) {
            const REAL *from = acc + i * acc_stride + j * VLEN;
            a[i][j] = rescale ? VMUL(masked ? VMASKLOAD(from, masks[j]) : VLOAD(from), factor) : VZERO;
        }
    }
    for (int64_t c = 0, at = 0; c < n_keys; c++, at += key_stride, v += dv) {
        VEC values[ACC_VECS];
#pragma GCC unroll 4
        for (int j = 0; j < ACC_VECS; j++) values[j] = masked ? VMASKLOAD(v + j * VLEN, masks[j]) : VLOAD(v + j * VLEN);
#pragma GCC unroll 6
        for (int i = 0; i < ACC_ROWS; i++) {
            const VEC w = VSET1(p[i][at]);
#pragma GCC unroll 4
            for (int j = 0; j < ACC_VECS; j++) a[i][j] = VFMA(w, values[j], a[i][j]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < ACC_ROWS; i++)
#pragma GCC unroll 4
        for (int j = 0; j < ACC_VECS; j++) {
            REAL *to = acc + i * acc_stride + j * VLEN;
            if (masked) VMASKSTORE(to, masks[j], a[i][j]);
            else VSTORE(to, a[i][j]);
        }
}

/* acc[r, :] = acc[r, :] * rescale[r] + sum_c probs[c, r] v[c, :], or the sum alone when rescale is
 * NULL (see the portable version). */
TARGET static void SIMD_FN(accumulate)(REAL *acc, const REAL *probs, int64_t key_stride, int64_t row_stride,
                                       const REAL *v, const REAL *rescale, int64_t n_keys, int64_t dv,
                                       int64_t rows, int64_t diagonal)
{
    const int64_t acc_stride = padded_width(dv);
    VMASK all[ACC_VECS], tail[ACC_VECS];
    for (int j = 0; j < ACC_VECS; j++) all[j] = VFIRST(VLEN);
    for (int64_t r0 = 0; r0 < rows; r0 += ACC_ROWS) {
        const int64_t keys = visible_in_tile(n_keys, diagonal, r0 + ACC_ROWS);
        const REAL *p[ACC_ROWS];  /* past the last row: repeat it, result unused */
        for (int i = 0; i < ACC_ROWS; i++) p[i] = probs + (r0 + i < rows ? r0 + i : rows - 1) * row_stride;
        for (int64_t c0 = 0; c0 < dv; c0 += ACC_VECS * VLEN) {
            REAL *tile = acc + r0 * acc_stride + c0;
            if (c0 + ACC_VECS * VLEN <= dv) {
                SIMD_FN(accumulate_tile)(tile, acc_stride, p, key_stride, v + c0, dv, rescale ? rescale + r0 : NULL, keys, 0, all);
            } else {
                for (int j = 0; j < ACC_VECS; j++) tail[j] = VFIRST(dv - c0 - j * VLEN);
                SIMD_FN(accumulate_tile)(tile, acc_stride, p, key_stride, v + c0, dv, rescale ? rescale + r0 : NULL, keys, 1,
                                         tail);
            }
        }
    }
}

/* dst[r * dst_ld + c] = src[c * src_ld + r] for r < rows, c < cols: TLEN x TLEN blocks, then the edges. */
TARGET static void SIMD_FN(transpose)(REAL *dst, int64_t dst_ld, const REAL *src, int64_t src_ld, int64_t rows,
                                      int64_t cols)
{
    const int64_t full_rows = rows / TLEN * TLEN, full_cols = cols / TLEN * TLEN;
    for (int64_t r0 = 0; r0 < full_rows; r0 += TLEN)
        for (int64_t c0 = 0; c0 < full_cols; c0 += TLEN)
            VTRANSPOSE_STORE(dst + r0 * dst_ld + c0, dst_ld, src + c0 * src_ld + r0, src_ld);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = r < full_rows ? full_cols : 0; c < cols; c++) dst[r * dst_ld + c] = src[c * src_ld + r];
}

/* scores[j] = scale * q_row . k[j] for j < n_keys, four keys at a time. */
TARGET static void SIMD_FN(dots)(REAL *scores, const REAL *q_row, const REAL *k, int64_t n_keys, int64_t d,
                                 REAL scale)
{
    const int64_t full = d / VLEN * VLEN;
    const VMASK tail = VFIRST(d - full);
    int64_t j = 0;
    for (; j + 4 <= n_keys; j += 4) {
        const REAL *k0 = k + j * d, *k1 = k0 + d, *k2 = k1 + d, *k3 = k2 + d;
        VEC a0 = VZERO, a1 = VZERO, a2 = VZERO, a3 = VZERO;
        for (int64_t e = 0; e < full; e += VLEN) {
            const VEC qv = VLOAD(q_row + e);
            a0 = VFMA(qv, VLOAD(k0 + e), a0); a1 = VFMA(qv, VLOAD(k1 + e), a1);
            a2 = VFMA(qv, VLOAD(k2 + e), a2); a3 = VFMA(qv, VLOAD(k3 + e), a3);
        }
        if (full < d) {
            const VEC qv = VMASKLOAD(q_row + full, tail);
            a0 = VFMA(qv, VMASKLOAD(k0 + full, tail), a0); a1 = VFMA(qv, VMASKLOAD(k1 + full, tail), a1);
            a2 = VFMA(qv, VMASKLOAD(k2 + full, tail), a2); a3 = VFMA(qv, VMASKLOAD(k3 + full, tail), a3);
        }
        VSTORESUMS4(scores + j, a0, a1, a2, a3, scale);
    }
    for (; j < n_keys; j++) {
        const REAL *k_row = k + j * d;
        VEC a = VZERO;
        for (int64_t e = 0; e < full; e += VLEN) a = VFMA(VLOAD(q_row + e), VLOAD(k_row + e), a);
        if (full < d) a = VFMA(VMASKLOAD(q_row + full, tail), VMASKLOAD(k_row + full, tail), a);
        scores[j] = VSUMLANES(a) * scale;
    }
}

/* max of x[0..n) (-inf when n == 0). */
TARGET static REAL SIMD_FN(row_max)(const REAL *x, int64_t n)
{
    VEC best = VSET1(-INFINITY);
    int64_t j = 0;
    for (; j + VLEN <= n; j += VLEN) best = VMAX(best, VLOAD(x + j));
    REAL result = VMAXLANES(best);
    for (; j < n; j++) result = x[j] > result ? x[j] : result;
    return result;
}

/* x[j] = exp2(x[j] - shift) for j < n; returns their sum. */
TARGET static REAL SIMD_FN(exp_shifted)(REAL *x, int64_t n, REAL shift)
{
    const VEC shift_v = VSET1(shift);
    VEC sum = VZERO;
    int64_t j = 0;
    for (; j + VLEN <= n; j += VLEN) {
        const VEC p = VEXP2(VSUB(VLOAD(x + j), shift_v));
        VSTORE(x + j, p);
        sum = VADD(sum, p);
    }
    if (j < n) {
        const VMASK lanes = VFIRST(n - j);
        const VEC p = VANDMASK(lanes, VEXP2(VSUB(VMASKLOAD(x + j, lanes), shift_v)));
        VMASKSTORE(x + j, lanes, p);
        sum = VADD(sum, p);
    }
    return VSUMLANES(sum);
}

/* One chunk of `vecs` vectors of columns (at most WSUM_VECS) of weighted_sum; `vecs` and
 * `masked` are constants after inlining; masked loads and stores, by masks[j], cover the last,
 * partial columns. */
TARGET static inline __attribute__((always_inline)) void SIMD_FN(weighted_sum_chunk)(
    REAL *out, const REAL *weights, const REAL *v, int64_t n_keys, int64_t dv, int vecs, int masked,
    const VMASK masks[WSUM_VECS])
{
    VEC a[WSUM_VECS];  /* [value vectors] */
#pragma GCC unroll 8
    for (int j = 0; j < vecs; j++) a[j] = VZERO;
    for (int64_t key = 0; key < n_keys; key++, v += dv) {
        const VEC w = VSET1(weights[key]);
#pragma GCC unroll 8
        for (int j = 0; j < vecs; j++)
            a[j] = VFMA(w, masked ? VMASKLOAD(v + j * VLEN, masks[j]) : VLOAD(v + j * VLEN), a[j]);
    }
#pragma GCC unroll 8
    for (int j = 0; j < vecs; j++) {
        if (masked) VMASKSTORE(out + j * VLEN, masks[j], a[j]);
        else VSTORE(out + j * VLEN, a[j]);
    }
}

/* out[:] = sum_j weights[j] v[j, :] for j < n_keys: passes over V of WSUM_VECS vectors of
 * columns, then of half that, then one masked pass of at most half for the columns left. */
TARGET static void SIMD_FN(weighted_sum)(REAL *out, const REAL *weights, const REAL *v, int64_t n_keys, int64_t dv)
{
    enum { HALF = WSUM_VECS / 2 };
    VMASK tail[WSUM_VECS];
    int64_t c0 = 0;
    for (; dv - c0 >= WSUM_VECS * VLEN; c0 += WSUM_VECS * VLEN)
        SIMD_FN(weighted_sum_chunk)(out + c0, weights, v + c0, n_keys, dv, WSUM_VECS, 0, tail);
    if (dv - c0 >= HALF * VLEN) {
        SIMD_FN(weighted_sum_chunk)(out + c0, weights, v + c0, n_keys, dv, HALF, 0, tail);
        c0 += HALF * VLEN;
    }
    if (c0 < dv) {
        for (int j = 0; j < HALF; j++) tail[j] = VFIRST(dv - c0 - j * VLEN);
        SIMD_FN(weighted_sum_chunk)(out + c0, weights, v + c0, n_keys, dv, HALF, 1, tail);
    }
}

/* dst[i] = src[i] * factor for i < n. */
TARGET static void SIMD_FN(scale)(REAL *dst, const REAL *src, int64_t n, REAL factor)
{
    const VEC factor_v = VSET1(factor);
    int64_t i = 0;
    for (; i + VLEN <= n; i += VLEN) VSTORE(dst + i, VMUL(VLOAD(src + i), factor_v));
    if (i < n) VMASKSTORE(dst + i, VFIRST(n - i), VMUL(VMASKLOAD(src + i, VFIRST(n - i)), factor_v));
}

/* out[i] = exp2(x[i]) with the kernel's vectorised exp2 (for measuring its accuracy). */
TARGET static void SIMD_FN(exp_array)(REAL *out, const REAL *x, int64_t n)
{
    int64_t i = 0;
    for (; i + VLEN <= n; i += VLEN) VSTORE(out + i, VEXP2(VLOAD(x + i)));
    if (i < n) VMASKSTORE(out + i, VFIRST(n - i), VEXP2(VMASKLOAD(x + i, VFIRST(n - i))));
}

static const FN(blocks) SIMD_FN(blocks) = {
    .name = SIMD_NAME,
    .block_k = BLOCK_KEYS,
    .scores = SIMD_FN(scores),
    .softmax_update = SIMD_FN(softmax_update),
    .accumulate = SIMD_FN(accumulate),
    .transpose = SIMD_FN(transpose),
    .dots = SIMD_FN(dots),
    .row_max = SIMD_FN(row_max),
    .exp_shifted = SIMD_FN(exp_shifted),
    .weighted_sum = SIMD_FN(weighted_sum),
    .scale = SIMD_FN(scale),
    .exp_array = SIMD_FN(exp_array),
};

#undef ACC_ROWS
#undef WSUM_VECS
#undef MAX_CHAINS
