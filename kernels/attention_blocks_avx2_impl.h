/* AVX2 + FMA block functions of the forward kernel, included once per element
 * type by attention.c (x86-64 only) with REAL, FN(name) and the vector macros
 * (VEC, VLEN, V*) defined. Same contracts as attention_blocks_portable_impl.h;
 * the layouts are described in attention_forward_impl.h.
 *
 * Register blocking (16 ymm registers):
 *   scores:     6 keys x 2 vectors of queries = 12 accumulators, + 2 query
 *               vectors + 1 broadcast key element; K rows are read in place.
 *   accumulate: 6 queries x 2 vectors of value columns = 12 accumulators, + 2
 *               value vectors + 1 broadcast probability. */

#define KEYS_PER_TILE 6
#define ROWS_PER_TILE 6

/* scores_t[c, r] = scale * K[c] . q_t[:, r] (see the portable version). */
GB_AVX2 static void FN(scores_avx2)(REAL *scores_t, const REAL *q_t, const REAL *k, int64_t n_keys, int64_t d,
                                    REAL scale, int64_t rows, int64_t diagonal)
{
    const VEC scale_v = VSET1(scale);
    for (int64_t r0 = 0; r0 < rows; r0 += 2 * VLEN) {
        const int64_t keys = visible_in_tile(n_keys, diagonal, r0 + 2 * VLEN);
        for (int64_t c0 = 0; c0 < keys; c0 += KEYS_PER_TILE) {
            const REAL *k_rows[KEYS_PER_TILE];  /* past the last key: repeat it, result unused */
            for (int i = 0; i < KEYS_PER_TILE; i++) k_rows[i] = k + (c0 + i < keys ? c0 + i : keys - 1) * d;
            VEC a00 = VZERO, a01 = VZERO, a10 = VZERO, a11 = VZERO, a20 = VZERO, a21 = VZERO;
            VEC a30 = VZERO, a31 = VZERO, a40 = VZERO, a41 = VZERO, a50 = VZERO, a51 = VZERO;
            const REAL *qt = q_t + r0;
            for (int64_t e = 0; e < d; e++, qt += BLOCK_Q) {
                const VEC q0 = VLOAD(qt), q1 = VLOAD(qt + VLEN);
                VEC kb;
                kb = VSET1(k_rows[0][e]); a00 = VFMA(kb, q0, a00); a01 = VFMA(kb, q1, a01);
                kb = VSET1(k_rows[1][e]); a10 = VFMA(kb, q0, a10); a11 = VFMA(kb, q1, a11);
                kb = VSET1(k_rows[2][e]); a20 = VFMA(kb, q0, a20); a21 = VFMA(kb, q1, a21);
                kb = VSET1(k_rows[3][e]); a30 = VFMA(kb, q0, a30); a31 = VFMA(kb, q1, a31);
                kb = VSET1(k_rows[4][e]); a40 = VFMA(kb, q0, a40); a41 = VFMA(kb, q1, a41);
                kb = VSET1(k_rows[5][e]); a50 = VFMA(kb, q0, a50); a51 = VFMA(kb, q1, a51);
            }
            const VEC tile[KEYS_PER_TILE][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}, {a40, a41}, {a50, a51}};
            for (int i = 0; i < KEYS_PER_TILE && c0 + i < keys; i++) {
                REAL *dst = scores_t + (c0 + i) * BLOCK_Q + r0;
                VSTORE(dst, VMUL(tile[i][0], scale_v));
                VSTORE(dst + VLEN, VMUL(tile[i][1], scale_v));
            }
        }
    }
}

/* Online softmax step over one block of keys (see the portable version). */
GB_AVX2 static void FN(softmax_update_avx2)(REAL *scores_t, REAL *row_max, REAL *row_sum, REAL *rescale,
                                            int64_t n_keys, int64_t rows)
{
    const VEC minus_inf = VSET1(-INFINITY);
    for (int64_t r0 = 0; r0 < rows; r0 += VLEN) {
        const VEC old_max = VLOAD(row_max + r0);
        VEC new_max = old_max;
        for (int64_t c = 0; c < n_keys; c++) new_max = VMAX(new_max, VLOAD(scores_t + c * BLOCK_Q + r0));
        const VEC shift = VANDNOT(VEQ(new_max, minus_inf), new_max);  /* nothing seen yet: 0, not -inf */
        const VEC factor = VEXP2(VSUB(old_max, shift));
        VEC sum = VZERO;
        for (int64_t c = 0; c < n_keys; c++) {
            REAL *s = scores_t + c * BLOCK_Q + r0;
            const VEC p = VEXP2(VSUB(VLOAD(s), shift));
            VSTORE(s, p);
            sum = VADD(sum, p);
        }
        VSTORE(row_sum + r0, VFMA(VLOAD(row_sum + r0), factor, sum));
        VSTORE(row_max + r0, new_max);
        VSTORE(rescale + r0, factor);
    }
}

/* One 6-query x 2-vector tile of accumulate; probability (row i, key c) is
 * p[i][c * key_stride]. `masked` (a constant after inlining) selects masked loads
 * for the last, partial columns of v. */
GB_AVX2 static inline __attribute__((always_inline)) void FN(accumulate_tile)(
    REAL *acc, int64_t acc_stride, const REAL *const p[ROWS_PER_TILE], int64_t key_stride, const REAL *v,
    int64_t dv, const REAL *rescale, int64_t n_keys, int masked, VMASK mask0, VMASK mask1)
{
    VEC a00 = VMUL(VLOAD(acc), VSET1(rescale[0])), a01 = VMUL(VLOAD(acc + VLEN), VSET1(rescale[0]));
    VEC a10 = VMUL(VLOAD(acc + acc_stride), VSET1(rescale[1]));
    VEC a11 = VMUL(VLOAD(acc + acc_stride + VLEN), VSET1(rescale[1]));
    VEC a20 = VMUL(VLOAD(acc + 2 * acc_stride), VSET1(rescale[2]));
    VEC a21 = VMUL(VLOAD(acc + 2 * acc_stride + VLEN), VSET1(rescale[2]));
    VEC a30 = VMUL(VLOAD(acc + 3 * acc_stride), VSET1(rescale[3]));
    VEC a31 = VMUL(VLOAD(acc + 3 * acc_stride + VLEN), VSET1(rescale[3]));
    VEC a40 = VMUL(VLOAD(acc + 4 * acc_stride), VSET1(rescale[4]));
    VEC a41 = VMUL(VLOAD(acc + 4 * acc_stride + VLEN), VSET1(rescale[4]));
    VEC a50 = VMUL(VLOAD(acc + 5 * acc_stride), VSET1(rescale[5]));
    VEC a51 = VMUL(VLOAD(acc + 5 * acc_stride + VLEN), VSET1(rescale[5]));
    const REAL *p0 = p[0], *p1 = p[1], *p2 = p[2], *p3 = p[3], *p4 = p[4], *p5 = p[5];
    for (int64_t c = 0, at = 0; c < n_keys; c++, at += key_stride, v += dv) {
        const VEC v0 = masked ? VMASKLOAD(v, mask0) : VLOAD(v);
        const VEC v1 = masked ? VMASKLOAD(v + VLEN, mask1) : VLOAD(v + VLEN);
        VEC w;
        w = VSET1(p0[at]); a00 = VFMA(w, v0, a00); a01 = VFMA(w, v1, a01);
        w = VSET1(p1[at]); a10 = VFMA(w, v0, a10); a11 = VFMA(w, v1, a11);
        w = VSET1(p2[at]); a20 = VFMA(w, v0, a20); a21 = VFMA(w, v1, a21);
        w = VSET1(p3[at]); a30 = VFMA(w, v0, a30); a31 = VFMA(w, v1, a31);
        w = VSET1(p4[at]); a40 = VFMA(w, v0, a40); a41 = VFMA(w, v1, a41);
        w = VSET1(p5[at]); a50 = VFMA(w, v0, a50); a51 = VFMA(w, v1, a51);
    }
    VSTORE(acc, a00); VSTORE(acc + VLEN, a01);
    VSTORE(acc + acc_stride, a10); VSTORE(acc + acc_stride + VLEN, a11);
    VSTORE(acc + 2 * acc_stride, a20); VSTORE(acc + 2 * acc_stride + VLEN, a21);
    VSTORE(acc + 3 * acc_stride, a30); VSTORE(acc + 3 * acc_stride + VLEN, a31);
    VSTORE(acc + 4 * acc_stride, a40); VSTORE(acc + 4 * acc_stride + VLEN, a41);
    VSTORE(acc + 5 * acc_stride, a50); VSTORE(acc + 5 * acc_stride + VLEN, a51);
}

/* acc[r, :] = acc[r, :] * rescale[r] + sum_c probs[c, r] v[c, :] (see the portable version). */
GB_AVX2 static void FN(accumulate_avx2)(REAL *acc, const REAL *probs, int64_t key_stride, int64_t row_stride,
                                        const REAL *v, const REAL *rescale, int64_t n_keys, int64_t dv,
                                        int64_t rows, int64_t diagonal)
{
    const int64_t acc_stride = padded_width(dv);
    const VMASK all = VFIRST(VLEN);
    for (int64_t r0 = 0; r0 < rows; r0 += ROWS_PER_TILE) {
        const int64_t keys = visible_in_tile(n_keys, diagonal, r0 + ROWS_PER_TILE);
        const REAL *p[ROWS_PER_TILE];  /* past the last row: repeat it, result unused */
        for (int i = 0; i < ROWS_PER_TILE; i++) p[i] = probs + (r0 + i < rows ? r0 + i : rows - 1) * row_stride;
        for (int64_t c0 = 0; c0 < dv; c0 += 2 * VLEN) {
            REAL *tile = acc + r0 * acc_stride + c0;
            if (c0 + 2 * VLEN <= dv)
                FN(accumulate_tile)(tile, acc_stride, p, key_stride, v + c0, dv, rescale + r0, keys, 0, all, all);
            else
                FN(accumulate_tile)(tile, acc_stride, p, key_stride, v + c0, dv, rescale + r0, keys, 1,
                                    VFIRST(dv - c0), VFIRST(dv - c0 - VLEN));
        }
    }
}

/* dst[r * dst_ld + c] = src[c * src_ld + r] for r < rows, c < cols: VLEN x VLEN blocks, then the edges. */
GB_AVX2 static void FN(transpose_avx2)(REAL *dst, int64_t dst_ld, const REAL *src, int64_t src_ld, int64_t rows,
                                       int64_t cols)
{
    const int64_t full_rows = rows / VLEN * VLEN, full_cols = cols / VLEN * VLEN;
    for (int64_t r0 = 0; r0 < full_rows; r0 += VLEN)
        for (int64_t c0 = 0; c0 < full_cols; c0 += VLEN)
            VTRANSPOSE_STORE(dst + r0 * dst_ld + c0, dst_ld, src + c0 * src_ld + r0, src_ld);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = r < full_rows ? full_cols : 0; c < cols; c++) dst[r * dst_ld + c] = src[c * src_ld + r];
}

/* scores[j] = scale * q_row . k[j] for j < n_keys, four keys at a time. */
GB_AVX2 static void FN(dots_avx2)(REAL *scores, const REAL *q_row, const REAL *k, int64_t n_keys, int64_t d,
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
GB_AVX2 static REAL FN(row_max_avx2)(const REAL *x, int64_t n)
{
    VEC best = VSET1(-INFINITY);
    int64_t j = 0;
    for (; j + VLEN <= n; j += VLEN) best = VMAX(best, VLOAD(x + j));
    REAL result = VMAXLANES(best);
    for (; j < n; j++) result = x[j] > result ? x[j] : result;
    return result;
}

/* x[j] = exp2(x[j] - shift) for j < n; returns their sum. */
GB_AVX2 static REAL FN(exp_shifted_avx2)(REAL *x, int64_t n, REAL shift)
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

/* One 4-vector column chunk of weighted_sum; `masked` is a constant after inlining. */
GB_AVX2 static inline __attribute__((always_inline)) void FN(weighted_sum_chunk)(
    REAL *out, const REAL *weights, const REAL *v, int64_t n_keys, int64_t dv, int masked, const VMASK masks[4])
{
    VEC a0 = VZERO, a1 = VZERO, a2 = VZERO, a3 = VZERO;
    for (int64_t j = 0; j < n_keys; j++, v += dv) {
        const VEC w = VSET1(weights[j]);
        a0 = VFMA(w, masked ? VMASKLOAD(v, masks[0]) : VLOAD(v), a0);
        a1 = VFMA(w, masked ? VMASKLOAD(v + VLEN, masks[1]) : VLOAD(v + VLEN), a1);
        a2 = VFMA(w, masked ? VMASKLOAD(v + 2 * VLEN, masks[2]) : VLOAD(v + 2 * VLEN), a2);
        a3 = VFMA(w, masked ? VMASKLOAD(v + 3 * VLEN, masks[3]) : VLOAD(v + 3 * VLEN), a3);
    }
    if (!masked) {
        VSTORE(out, a0); VSTORE(out + VLEN, a1); VSTORE(out + 2 * VLEN, a2); VSTORE(out + 3 * VLEN, a3);
    } else {
        VMASKSTORE(out, masks[0], a0); VMASKSTORE(out + VLEN, masks[1], a1);
        VMASKSTORE(out + 2 * VLEN, masks[2], a2); VMASKSTORE(out + 3 * VLEN, masks[3], a3);
    }
}

/* out[:] = sum_j weights[j] v[j, :] for j < n_keys. */
GB_AVX2 static void FN(weighted_sum_avx2)(REAL *out, const REAL *weights, const REAL *v, int64_t n_keys, int64_t dv)
{
    const VMASK all[4] = {VFIRST(VLEN), VFIRST(VLEN), VFIRST(VLEN), VFIRST(VLEN)};
    for (int64_t c0 = 0; c0 < dv; c0 += 4 * VLEN) {
        if (c0 + 4 * VLEN <= dv) {
            FN(weighted_sum_chunk)(out + c0, weights, v + c0, n_keys, dv, 0, all);
        } else {
            const int64_t left = dv - c0;
            const VMASK masks[4] = {VFIRST(left), VFIRST(left - VLEN), VFIRST(left - 2 * VLEN), VFIRST(left - 3 * VLEN)};
            FN(weighted_sum_chunk)(out + c0, weights, v + c0, n_keys, dv, 1, masks);
        }
    }
}

/* out[i] = exp2(x[i]) with the kernel's vectorised exp2 (for measuring its accuracy). */
GB_AVX2 static void FN(exp_array_avx2)(REAL *out, const REAL *x, int64_t n)
{
    int64_t i = 0;
    for (; i + VLEN <= n; i += VLEN) VSTORE(out + i, VEXP2(VLOAD(x + i)));
    if (i < n) VMASKSTORE(out + i, VFIRST(n - i), VEXP2(VMASKLOAD(x + i, VFIRST(n - i))));
}

static const FN(blocks) FN(blocks_avx2) = {
    .name = "avx2+fma",
    .scores = FN(scores_avx2),
    .softmax_update = FN(softmax_update_avx2),
    .accumulate = FN(accumulate_avx2),
    .transpose = FN(transpose_avx2),
    .dots = FN(dots_avx2),
    .row_max = FN(row_max_avx2),
    .exp_shifted = FN(exp_shifted_avx2),
    .weighted_sum = FN(weighted_sum_avx2),
    .exp_array = FN(exp_array_avx2),
};

#undef KEYS_PER_TILE
#undef ROWS_PER_TILE
