/* Body of the forward kernel, included once per element type by attention.c with
 * REAL (float or double) and FN(name) (adds the _f32 / _f64 suffix) defined.
 * Sizes: see attention.h. One row of Lk scores per call is the only work buffer. */

static int FN(check_forward)(const REAL *out, const REAL *q, const REAL *k, const REAL *v,
                             int64_t B, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv)
{
    if (!out || !q || !k || !v) return GB_ERR_NULL;
    if (B <= 0 || Lq <= 0 || Lk <= 0 || D <= 0 || Dv <= 0) return GB_ERR_SIZE;
    return GB_OK;
}

int FN(gb_attention_forward)(REAL *out, REAL *weights,
                             const REAL *q, const REAL *k, const REAL *v,
                             const uint8_t *mask, int64_t mask_sb, int64_t mask_sq, int64_t mask_sk,
                             int causal, double scale,
                             int64_t B, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv)
{
    int status = FN(check_forward)(out, q, k, v, B, Lq, Lk, D, Dv);
    if (status != GB_OK) return status;
    REAL *scores = malloc((size_t)Lk * sizeof(REAL));  /* [Lk], one query row */
    if (!scores) return GB_ERR_NOMEM;
    const int64_t shift = Lk - Lq;  /* bottom-right causal alignment */
    for (int64_t b = 0; b < B; b++) {
        for (int64_t i = 0; i < Lq; i++) {
            const REAL *q_row = q + (b * Lq + i) * D;
            REAL *out_row = out + (b * Lq + i) * Dv;
            REAL *weights_row = weights ? weights + (b * Lq + i) * Lk : NULL;
            int64_t visible = causal ? i + shift + 1 : Lk;  /* keys j < visible pass the causal test */
            if (visible > Lk) visible = Lk;
            REAL row_max = -INFINITY;
            for (int64_t j = 0; j < Lk; j++) {
                int allowed = j < visible && (!mask || mask[b * mask_sb + i * mask_sq + j * mask_sk]);
                if (!allowed) { scores[j] = -INFINITY; continue; }
                const REAL *k_row = k + (b * Lk + j) * D;
                REAL dot = 0;
                for (int64_t d = 0; d < D; d++) dot += q_row[d] * k_row[d];
                scores[j] = dot * (REAL)scale;
                if (scores[j] > row_max) row_max = scores[j];
            }
            for (int64_t c = 0; c < Dv; c++) out_row[c] = 0;
            if (row_max == -INFINITY) {  /* no key allowed: zeros, never NaN */
                if (weights_row) for (int64_t j = 0; j < Lk; j++) weights_row[j] = 0;
                continue;
            }
            REAL total = 0;
            for (int64_t j = 0; j < Lk; j++) {
                scores[j] = scores[j] == -INFINITY ? 0 : EXP(scores[j] - row_max);
                total += scores[j];
            }
            for (int64_t j = 0; j < Lk; j++) {
                REAL weight = scores[j] / total;
                if (weights_row) weights_row[j] = weight;
                if (weight == 0) continue;
                const REAL *v_row = v + (b * Lk + j) * Dv;
                for (int64_t c = 0; c < Dv; c++) out_row[c] += weight * v_row[c];
            }
        }
    }
    free(scores);
    return GB_OK;
}
