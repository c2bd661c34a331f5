/* Body of the backward kernel, included once per element type by
 * attention_backward.c with REAL and FN(name) defined. Sizes: see attention.h.
 * Work buffer: one row of Lk weight gradients. */

int FN(gb_attention_backward)(REAL *dq, REAL *dk, REAL *dv,
                              const REAL *dout, const REAL *q, const REAL *k, const REAL *v,
                              const REAL *weights, double scale,
                              int64_t B, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv)
{
    if (!dq || !dk || !dv || !dout || !q || !k || !v || !weights) return GB_ERR_NULL;
    if (B <= 0 || Lq <= 0 || Lk <= 0 || D <= 0 || Dv <= 0) return GB_ERR_SIZE;
    REAL *d_weights = malloc((size_t)Lk * sizeof(REAL));  /* [Lk], dL/dW for one query row */
    if (!d_weights) return GB_ERR_NOMEM;
    for (int64_t n = 0; n < B * Lq * D; n++) dq[n] = 0;
    for (int64_t n = 0; n < B * Lk * D; n++) dk[n] = 0;
    for (int64_t n = 0; n < B * Lk * Dv; n++) dv[n] = 0;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t i = 0; i < Lq; i++) {
            const REAL *w_row = weights + (b * Lq + i) * Lk;
            const REAL *dout_row = dout + (b * Lq + i) * Dv;
            const REAL *q_row = q + (b * Lq + i) * D;
            REAL *dq_row = dq + (b * Lq + i) * D;
            REAL weighted_sum = 0;  /* rowsum(dW * W) */
            for (int64_t j = 0; j < Lk; j++) {
                const REAL *v_row = v + (b * Lk + j) * Dv;
                REAL *dv_row = dv + (b * Lk + j) * Dv;
                REAL dot = 0;
                for (int64_t c = 0; c < Dv; c++) {
                    dot += dout_row[c] * v_row[c];
                    dv_row[c] += w_row[j] * dout_row[c];
                }
                d_weights[j] = dot;
                weighted_sum += dot * w_row[j];
            }
            for (int64_t j = 0; j < Lk; j++) {
                REAL d_score = w_row[j] * (d_weights[j] - weighted_sum) * (REAL)scale;
                if (d_score == 0) continue;
                const REAL *k_row = k + (b * Lk + j) * D;
                REAL *dk_row = dk + (b * Lk + j) * D;
                for (int64_t d = 0; d < D; d++) {
                    dq_row[d] += d_score * k_row[d];
                    dk_row[d] += d_score * q_row[d];
                }
            }
        }
    }
    free(d_weights);
    return GB_OK;
}
