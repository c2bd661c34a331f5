/* Body of the backward kernel, included by attention_backward.c once per element
 * type and code path, with REAL, FN(name), VBYTES (the vector register's bytes:
 * 16 for SSE2/NEON, 32 for AVX2), COLS (the REALs in two registers) and TARGET
 * (empty, or the target attribute of the AVX2 path) defined; ROWS is 4.
 * Sizes: see attention.h.
 *
 * Per problem b, with W = weights[b], queries are taken ROWS at a time:
 *   dW[i, j] = dout[i] . v[j]                              (block x v transposed)
 *   dS[i, j] = W[i, j] * (dW[i, j] - sum_j dW[i, j] W[i, j]) * scale
 *   dq[i]    = sum_j dS[i, j] k[j]                         (block x k)
 *   dk[j]   += sum_i dS[i, j] q[i],  dv[j] += sum_i W[i, j] dout[i]   (rank-ROWS updates)
 * Each product keeps a ROWS x COLS tile of results (or of inputs) in eight
 * registers, so one load feeds ROWS multiply-adds, written with GCC/Clang vector
 * types. Every element is summed in the scalar order (no reassociation, no fused
 * multiply-add), so both code paths give the same bits. The other operand is
 * packed once per problem into COLS-wide column tiles, so it streams contiguously
 * instead of striding across rows, and widths are padded with zeros to a multiple
 * of COLS (no scalar tails). Only keys between a block's first and last nonzero
 * weight are visited: causal blocks cost about half. Skipping is exact only for finite
 * numbers (0 x NaN is NaN), so a problem with a NaN or inf in q, k, v or dout (one scan of
 * each), and a block whose weights hold one (its row sums show it), visit every key: the
 * NaN then reaches the same gradients as in dense products (the NumPy backend). */

typedef REAL FN(vec) __attribute__((vector_size(VBYTES)));  /* one register: COLS / 2 REALs */
#define HALF (COLS / 2)

typedef struct {
    REAL *dq, *dk, *dv;
    const REAL *dout, *q, *k, *v, *weights;
    REAL scale;
    int64_t Lq, Lk, D, Dv;
} FN(backward_job);

/* A thread's work buffer, carved into what one problem needs ("padded" = rounded up to COLS). */
typedef struct {
    REAL *v_packed;    /* [Lk padded / COLS][Dv][COLS]: v transposed, in key tiles (for dW) */
    REAL *k_packed;    /* [D padded / COLS][Lk][COLS]: k in column tiles (for dq) */
    REAL *dk_packed;   /* [D padded / COLS][Lk][COLS]: dk accumulated in column tiles */
    REAL *dv_packed;   /* [Dv padded / COLS][Lk][COLS] */
    REAL *d_scores;    /* [ROWS][Lk padded]: dW, then dS, of one query block */
    REAL *q_block;     /* [ROWS][D padded] */
    REAL *dout_block;  /* [ROWS][Dv padded] */
    REAL *dq_block;    /* [ROWS][D padded] */
    REAL *zeros;       /* [Lk]: the weights of block rows past Lq */
} FN(workspace);

static TARGET int64_t FN(padded)(int64_t n) { return (n + COLS - 1) / COLS * COLS; }

static TARGET int64_t FN(work_size)(int64_t Lk, int64_t D, int64_t Dv)
{
    const int64_t lk = FN(padded)(Lk), d = FN(padded)(D), dv = FN(padded)(Dv);
    return lk * Dv + 2 * Lk * d + Lk * dv + ROWS * (lk + 2 * d + dv) + Lk;
}

static TARGET FN(workspace) FN(carve)(REAL *work, int64_t Lk, int64_t D, int64_t Dv)
{
    const int64_t lk = FN(padded)(Lk), d = FN(padded)(D), dv = FN(padded)(Dv);
    FN(workspace) space;
    space.v_packed = work;
    space.k_packed = space.v_packed + lk * Dv;
    space.dk_packed = space.k_packed + Lk * d;
    space.dv_packed = space.dk_packed + Lk * d;
    space.d_scores = space.dv_packed + Lk * dv;
    space.q_block = space.d_scores + ROWS * lk;
    space.dout_block = space.q_block + ROWS * d;
    space.dq_block = space.dout_block + ROWS * dv;
    space.zeros = space.dq_block + ROWS * d;
    return space;
}

static inline TARGET FN(vec) FN(load)(const REAL *from)
{
    FN(vec) value;
    memcpy(&value, from, sizeof value);  /* an unaligned vector load */
    return value;
}

static inline TARGET void FN(store)(REAL *to, FN(vec) value) { memcpy(to, &value, sizeof value); }

/* packed [n padded / COLS][rows][COLS] <- matrix [rows, n], zeros past column n. */
static TARGET void FN(pack_columns)(REAL *packed, const REAL *matrix, int64_t rows, int64_t n)
{
    for (int64_t t = 0; t < FN(padded)(n) / COLS; t++)
        for (int64_t j = 0; j < rows; j++)
            for (int64_t x = 0; x < COLS; x++) {
                const int64_t column = t * COLS + x;
                packed[(t * rows + j) * COLS + x] = column < n ? matrix[j * n + column] : 0;
            }
}

/* matrix [rows, n] <- packed [n padded / COLS][rows][COLS]. */
static TARGET void FN(unpack_columns)(REAL *matrix, const REAL *packed, int64_t rows, int64_t n)
{
    for (int64_t j = 0; j < rows; j++)
        for (int64_t column = 0; column < n; column++)
            matrix[j * n + column] = packed[((column / COLS) * rows + j) * COLS + column % COLS];
}

/* packed [rows padded / COLS][n][COLS] <- matrix [rows, n] transposed, zeros past row `rows`. */
static TARGET void FN(pack_transposed)(REAL *packed, const REAL *matrix, int64_t rows, int64_t n)
{
    for (int64_t t = 0; t < FN(padded)(rows) / COLS; t++)
        for (int64_t c = 0; c < n; c++)
            for (int64_t x = 0; x < COLS; x++) {
                const int64_t row = t * COLS + x;
                packed[(t * n + c) * COLS + x] = row < rows ? matrix[row * n + c] : 0;
            }
}

/* out[r][x] = sum_{kk in [k_begin, k_end)} a[r][kk] * slab[kk][x] for r < ROWS, x < COLS:
 * the ROWS x COLS results stay in registers while the packed slab streams by. */
static TARGET void FN(tile_product)(REAL *out, int64_t out_stride, const REAL *const a[ROWS], const REAL *slab,
                             int64_t k_begin, int64_t k_end)
{
    FN(vec) acc00 = {0}, acc01 = {0}, acc10 = {0}, acc11 = {0};
    FN(vec) acc20 = {0}, acc21 = {0}, acc30 = {0}, acc31 = {0};
    for (int64_t kk = k_begin; kk < k_end; kk++) {
        const FN(vec) b0 = FN(load)(slab + kk * COLS), b1 = FN(load)(slab + kk * COLS + HALF);
        const REAL a0 = a[0][kk], a1 = a[1][kk], a2 = a[2][kk], a3 = a[3][kk];
        acc00 += a0 * b0; acc01 += a0 * b1;
        acc10 += a1 * b0; acc11 += a1 * b1;
        acc20 += a2 * b0; acc21 += a2 * b1;
        acc30 += a3 * b0; acc31 += a3 * b1;
    }
    FN(store)(out, acc00); FN(store)(out + HALF, acc01);
    FN(store)(out + out_stride, acc10); FN(store)(out + out_stride + HALF, acc11);
    FN(store)(out + 2 * out_stride, acc20); FN(store)(out + 2 * out_stride + HALF, acc21);
    FN(store)(out + 3 * out_stride, acc30); FN(store)(out + 3 * out_stride + HALF, acc31);
}

/* slab[j][x] += sum_r coef[r][j] * src[r * src_stride + x] for j in [j_begin, j_end), x < COLS:
 * the ROWS x COLS source tile stays in registers while the packed slab streams by. */
static TARGET void FN(tile_rank_update)(REAL *slab, const REAL *const coef[ROWS], const REAL *src, int64_t src_stride,
                                 int64_t j_begin, int64_t j_end)
{
    const FN(vec) s00 = FN(load)(src), s01 = FN(load)(src + HALF);
    const FN(vec) s10 = FN(load)(src + src_stride), s11 = FN(load)(src + src_stride + HALF);
    const FN(vec) s20 = FN(load)(src + 2 * src_stride), s21 = FN(load)(src + 2 * src_stride + HALF);
    const FN(vec) s30 = FN(load)(src + 3 * src_stride), s31 = FN(load)(src + 3 * src_stride + HALF);
    for (int64_t j = j_begin; j < j_end; j++) {
        REAL *row = slab + j * COLS;
        const REAL c0 = coef[0][j], c1 = coef[1][j], c2 = coef[2][j], c3 = coef[3][j];
        FN(vec) sum0 = FN(load)(row), sum1 = FN(load)(row + HALF);
        sum0 += c0 * s00; sum1 += c0 * s01;
        sum0 += c1 * s10; sum1 += c1 * s11;
        sum0 += c2 * s20; sum1 += c2 * s21;
        sum0 += c3 * s30; sum1 += c3 * s31;
        FN(store)(row, sum0); FN(store)(row + HALF, sum1);
    }
}

/* Copies `rows` rows of width n into a [ROWS][n padded] block, zeros elsewhere. */
static TARGET void FN(fill_block)(REAL *block, const REAL *matrix, int64_t rows, int64_t n)
{
    const int64_t stride = FN(padded)(n);
    memset(block, 0, (size_t)(ROWS * stride) * sizeof(REAL));
    for (int64_t r = 0; r < rows; r++) memcpy(block + r * stride, matrix + r * n, (size_t)n * sizeof(REAL));
}

/* 1 when every x[0..n) is finite: x * 0 is 0 for finite x, NaN for NaN and inf. */
static TARGET int FN(all_finite)(const REAL *x, int64_t n)
{
    FN(vec) zeros0 = {0}, zeros1 = {0};
    int64_t i = 0;
    for (; i + COLS <= n; i += COLS) {
        zeros0 += FN(load)(x + i) * (REAL)0;
        zeros1 += FN(load)(x + i + HALF) * (REAL)0;
    }
    REAL total = 0;
    for (; i < n; i++) total += x[i] * 0;
    zeros0 += zeros1;
    for (int lane = 0; lane < HALF; lane++) total += zeros0[lane];
    return total == 0;
}

/* Keys with a nonzero weight in any of the block's rows lie in [*first, *last) (empty: first >= last). */
static TARGET void FN(nonzero_keys)(const REAL *const w_rows[ROWS], int64_t Lk, int64_t *first, int64_t *last)
{
    *first = Lk, *last = 0;
    for (int r = 0; r < ROWS; r++) {
        int64_t lo = 0, hi = Lk;
        while (lo < Lk && w_rows[r][lo] == 0) lo++;
        while (hi > lo && w_rows[r][hi - 1] == 0) hi--;
        if (lo < hi && lo < *first) *first = lo;
        if (lo < hi && hi > *last) *last = hi;
    }
}

/* d_scores rows of the block over keys [first, last): dW = dout v^T (over the key tiles that hold
 * them), then the softmax backward and the scale. Returns 0 when a row sum is not finite (a NaN
 * or inf weight), else 1. */
static TARGET int FN(score_gradients)(const FN(backward_job) *job, const FN(workspace) *space,
                                      const REAL *const w_rows[ROWS], const REAL *const dout_rows[ROWS],
                                      int64_t first, int64_t last)
{
    const int64_t lk = FN(padded)(job->Lk);
    for (int64_t t = first / COLS; t * COLS < last; t++)
        FN(tile_product)(space->d_scores + t * COLS, lk, dout_rows, space->v_packed + t * job->Dv * COLS, 0, job->Dv);
    int finite = 1;
    for (int r = 0; r < ROWS; r++) {
        REAL *ds_row = space->d_scores + r * lk;
        REAL weighted_sum = 0;
        for (int64_t j = first; j < last; j++) weighted_sum += ds_row[j] * w_rows[r][j];
        finite &= weighted_sum - weighted_sum == 0;
        for (int64_t j = first; j < last; j++) ds_row[j] = w_rows[r][j] * (ds_row[j] - weighted_sum) * job->scale;
    }
    return finite;
}

/* dq rows of the query block starting at row i0, and its share of dk and dv (packed);
 * every_key: visit all keys, not only those with a nonzero weight. */
static TARGET void FN(backward_block)(const FN(backward_job) *job, const FN(workspace) *space, const REAL *q,
                               const REAL *dout, const REAL *weights, REAL *dq, int64_t i0, int every_key)
{
    const int64_t Lk = job->Lk, D = job->D, Dv = job->Dv;
    const int64_t lk = FN(padded)(Lk), d = FN(padded)(D), dv = FN(padded)(Dv);
    const int64_t rows = job->Lq - i0 < ROWS ? job->Lq - i0 : ROWS;  /* real rows in this block */
    const REAL *w_rows[ROWS], *ds_rows[ROWS], *dout_rows[ROWS];
    for (int r = 0; r < ROWS; r++) {
        w_rows[r] = r < rows ? weights + (i0 + r) * Lk : space->zeros;
        ds_rows[r] = space->d_scores + r * lk;
        dout_rows[r] = space->dout_block + r * dv;
    }
    int64_t first = 0, last = Lk;
    if (!every_key) FN(nonzero_keys)(w_rows, Lk, &first, &last);
    if (first >= last) {  /* no key allowed in any row: dq rows are zero, dk and dv get nothing */
        memset(dq + i0 * D, 0, (size_t)(rows * D) * sizeof(REAL));
        return;
    }
    FN(fill_block)(space->q_block, q + i0 * D, rows, D);
    FN(fill_block)(space->dout_block, dout + i0 * Dv, rows, Dv);
    if (!FN(score_gradients)(job, space, w_rows, dout_rows, first, last) && (first > 0 || last < Lk)) {
        first = 0, last = Lk;  /* a NaN or inf weight: its row's NaN reaches every key */
        FN(score_gradients)(job, space, w_rows, dout_rows, first, last);
    }
    for (int64_t t = 0; t < d / COLS; t++) {
        FN(tile_product)(space->dq_block + t * COLS, d, ds_rows, space->k_packed + t * Lk * COLS, first, last);
        FN(tile_rank_update)(space->dk_packed + t * Lk * COLS, ds_rows, space->q_block + t * COLS, d, first, last);
    }
    for (int64_t t = 0; t < dv / COLS; t++)
        FN(tile_rank_update)(space->dv_packed + t * Lk * COLS, w_rows, space->dout_block + t * COLS, dv,
                             first, last);
    for (int64_t r = 0; r < rows; r++) memcpy(dq + (i0 + r) * D, space->dq_block + r * d, (size_t)D * sizeof(REAL));
}

/* dq[b], dk[b], dv[b] for one problem b. */
static TARGET void FN(backward_problem)(const FN(backward_job) *job, const FN(workspace) *space, int64_t b)
{
    const int64_t Lq = job->Lq, Lk = job->Lk, D = job->D, Dv = job->Dv;
    const REAL *q = job->q + b * Lq * D, *k = job->k + b * Lk * D, *v = job->v + b * Lk * Dv;
    const REAL *dout = job->dout + b * Lq * Dv;
    const int every_key = !(FN(all_finite)(q, Lq * D) && FN(all_finite)(k, Lk * D) && FN(all_finite)(v, Lk * Dv) &&
                            FN(all_finite)(dout, Lq * Dv));
    FN(pack_transposed)(space->v_packed, v, Lk, Dv);
    FN(pack_columns)(space->k_packed, k, Lk, D);
    memset(space->dk_packed, 0, (size_t)(Lk * FN(padded)(D)) * sizeof(REAL));
    memset(space->dv_packed, 0, (size_t)(Lk * FN(padded)(Dv)) * sizeof(REAL));
    for (int64_t i0 = 0; i0 < Lq; i0 += ROWS)
        FN(backward_block)(job, space, q, dout, job->weights + b * Lq * Lk, job->dq + b * Lq * D, i0, every_key);
    FN(unpack_columns)(job->dk + b * Lk * D, space->dk_packed, Lk, D);
    FN(unpack_columns)(job->dv + b * Lk * Dv, space->dv_packed, Lk, Dv);
}

/* The runner's task `b`: one whole problem, with the calling thread's work buffer. */
static TARGET void FN(backward_task)(void *context, int64_t b, void *work)
{
    const FN(backward_job) *job = context;
    const FN(workspace) space = FN(carve)(work, job->Lk, job->D, job->Dv);
    memset(space.zeros, 0, (size_t)job->Lk * sizeof(REAL));
    FN(backward_problem)(job, &space, b);
}

/* The whole backward pass with this variant's tiles (attention.h's gb_attention_backward_*). */
static TARGET int FN(backward)(REAL *dq, REAL *dk, REAL *dv,
                               const REAL *dout, const REAL *q, const REAL *k, const REAL *v,
                               const REAL *weights, double scale,
                               int64_t B, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv)
{
    if (!dq || !dk || !dv || !dout || !q || !k || !v || !weights) return GB_ERR_NULL;
    if (B <= 0 || Lq <= 0 || Lk <= 0 || D <= 0 || Dv < 0) return GB_ERR_SIZE;  /* Dv 0: dq, dk only */
    FN(backward_job) job = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .q = q, .k = k, .v = v,
                            .weights = weights, .scale = (REAL)scale, .Lq = Lq, .Lk = Lk, .D = D, .Dv = Dv};
    return gb_run_tasks(FN(backward_task), &job, B, backward_thread_count(B, Lq * Lk * 2 * (D + Dv)),
                        (size_t)FN(work_size)(Lk, D, Dv) * sizeof(REAL));
}

#undef HALF
