/* Body of the forward kernel, included once per element type by attention.c with
 * REAL (float or double) and FN(name) (adds the _f32 / _f64 suffix) defined, after
 * the block functions (attention_blocks_*_impl.h). Sizes: see attention.h.
 *
 * Work is cut into tasks of (problem b, block of query rows), run on threads:
 *  - tile path (Lq >= TILE_MIN_ROWS), FlashAttention style: a block of BLOCK_Q
 *    queries (transposed once into q_t [D, BLOCK_Q]) meets the keys block_k (the
 *    code path's, blocks->block_k) at a time: scores_t [block_k, BLOCK_Q] from a
 *    register-blocked micro-kernel, the
 *    user's mask as -inf (the causal mask is the softmax's: it reads each row's
 *    visible keys only), then
 *      without weights: an online softmax (running max and sum per query; the
 *      accumulator is rescaled when the max grows) and acc [BLOCK_Q, Dv] +=
 *      probabilities x V after every key block; work memory per thread is
 *      O(BLOCK_Q * (block_k + D + Dv)), never Lq x Lk;
 *      with weights: the scores go into the block's weight rows (its own output),
 *      which are normalised there, then multiplied by V in chunks of WEIGHTS_CHUNK keys.
 *    Key blocks wholly above the causal diagonal are never visited, and inside the
 *    diagonal block the micro-kernels stop at each tile's last visible key.
 *  - row path (a few query rows, as in decoding): one query row at a time: scores
 *    of its visible keys, max, exp2, normalise, weighted sum of value rows; the
 *    scores live in the weights row itself, or in one [Lk] buffer.
 * Scores are kept in base-2 units (scale * log2(e)), so the softmax uses exp2. */

typedef struct {
    REAL *out, *weights;
    const REAL *q, *k, *v;
    const uint8_t *mask;
    int64_t mask_sb, mask_sq, mask_sk;
    int causal;
    REAL scale;  /* the caller's scale times log2(e): scores in base-2 units, softmax by exp2 */
    int64_t Lq, Lk, D, Dv;
    int64_t rows_per_task, tasks_per_problem;
    const FN(blocks) *blocks;
} FN(forward_job);

static int FN(check_forward)(const REAL *out, const REAL *q, const REAL *k, const REAL *v,
                             int64_t B, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv)
{
    if (!out || !q || !k || !v) return GB_ERR_NULL;
    if (B <= 0 || Lq <= 0 || Lk <= 0 || D <= 0 || Dv < 0) return GB_ERR_SIZE;  /* Dv 0: weights only */
    return GB_OK;
}

static const FN(blocks) *FN(select_blocks)(void)
{
#ifdef GB_X86_64
    const gb_simd level = gb_simd_level();
    if (level >= GB_SIMD_AVX512) return &FN(blocks_avx512);
    if (level >= GB_SIMD_AVX2_FMA) return &FN(blocks_avx2);
#endif
    return &FN(blocks_portable);
}

/* Keys j < the result pass query i's causal test (all Lk keys when not causal). */
static inline int64_t FN(visible_keys)(const FN(forward_job) *job, int64_t i)
{
    if (!job->causal) return job->Lk;
    const int64_t visible = i + (job->Lk - job->Lq) + 1;  /* bottom-right alignment */
    return visible < 0 ? 0 : visible > job->Lk ? job->Lk : visible;
}

/* Task t covers problem *b, query rows [*i0, *i0 + *rows). Blocks are cut from the
 * last row backwards, so the one partial block holds the first rows (the lightest
 * when causal), and within a problem the heaviest blocks come first (load balance). */
static void FN(task_rows)(const FN(forward_job) *job, int64_t task, int64_t *b, int64_t *i0, int64_t *rows)
{
    *b = task / job->tasks_per_problem;
    const int64_t end = job->Lq - (task % job->tasks_per_problem) * job->rows_per_task;
    *i0 = end > job->rows_per_task ? end - job->rows_per_task : 0;
    *rows = end - *i0;
}

/* ---- row path ---- */

/* weights_row [Lk] = softmax of its scores over the `visible` first keys (masked ones are
 * -inf), 0 elsewhere. Returns 1; or 0 when no key was allowed (the whole row is then 0); or
 * NaN when a score was NaN or +inf (a NaN or inf in q or k): the whole row is then NaN, as
 * in the NumPy backend, never a finite-looking row. Both show in the sum of the
 * exponentials, so the loops need no test per element. */
static REAL FN(normalise_row)(const FN(forward_job) *job, REAL *weights_row, int64_t visible)
{
    const REAL row_max = job->blocks->row_max(weights_row, visible);  /* -inf: no key allowed, or only NaN */
    const REAL total = job->blocks->exp_shifted(weights_row, visible, row_max == -INFINITY ? 0 : row_max);
    if (total == 0 || total != total) {  /* 0: no key allowed; NaN: see above */
        for (int64_t j = 0; j < job->Lk; j++) weights_row[j] = total;
        return total;
    }
    job->blocks->scale(weights_row, weights_row, visible, 1 / total);
    for (int64_t j = visible; j < job->Lk; j++) weights_row[j] = 0;
    return 1;
}

/* out row and weights row [Lk] (the caller's weights row, or a work buffer) of query i of problem b. */
static void FN(attend_row)(const FN(forward_job) *job, int64_t b, int64_t i, REAL *weights_row, REAL *out_row)
{
    const int64_t visible = FN(visible_keys)(job, i);
    const REAL *q_row = job->q + (b * job->Lq + i) * job->D;
    job->blocks->dots(weights_row, q_row, job->k + b * job->Lk * job->D, visible, job->D, job->scale);
    if (job->mask) {
        const uint8_t *allowed = job->mask + b * job->mask_sb + i * job->mask_sq;
        for (int64_t j = 0; j < visible; j++)
            if (!allowed[j * job->mask_sk]) weights_row[j] = -INFINITY;
    }
    FN(normalise_row)(job, weights_row, visible);
    job->blocks->weighted_sum(out_row, weights_row, job->v + b * job->Lk * job->Dv, visible, job->Dv);
}

static void FN(row_task)(void *context, int64_t task, void *work)
{
    const FN(forward_job) *job = context;
    int64_t b, i0, rows;
    FN(task_rows)(job, task, &b, &i0, &rows);
    for (int64_t i = i0; i < i0 + rows; i++) {
        REAL *weights_row = job->weights ? job->weights + (b * job->Lq + i) * job->Lk : work;
        FN(attend_row)(job, b, i, weights_row, job->out + (b * job->Lq + i) * job->Dv);
    }
}

/* ---- tile paths ---- */

/* scores_t[c, r] = -inf where the user's mask forbids (query i0 + r, key j0 + c); rows < rows only. */
static void FN(mask_block)(const FN(forward_job) *job, REAL *scores_t, int64_t b, int64_t i0, int64_t rows,
                           int64_t j0, int64_t n_keys)
{
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *allowed = job->mask + b * job->mask_sb + (i0 + r) * job->mask_sq + j0 * job->mask_sk;
        for (int64_t c = 0; c < n_keys; c++)
            if (!allowed[c * job->mask_sk]) scores_t[c * BLOCK_Q + r] = -INFINITY;
    }
}

/* One tile task's work buffer, carved into its arrays. */
typedef struct {
    REAL *q_t;       /* [D, BLOCK_Q]: the block's queries, transposed (zero past the last row) */
    REAL *scores_t;  /* [block_k, BLOCK_Q]: scores, then probabilities, key-major */
    REAL *acc;       /* [BLOCK_Q, padded_width(Dv)]: sum of probabilities x values */
    REAL *row_max, *row_sum, *rescale;  /* [BLOCK_Q] each */
} FN(tile_space);

/* Work elements one tile task needs (the arrays of tile_space). */
static int64_t FN(tile_work)(int64_t D, int64_t Dv, int64_t block_k)
{
    return D * BLOCK_Q + block_k * BLOCK_Q + BLOCK_Q * padded_width(Dv) + 3 * BLOCK_Q;
}

/* Carves the work buffer and sets it up for the query rows [i0, i0 + rows) of problem b:
 * q_t packed, maxima -inf, sums 0. Entries past `rows` that a block function's tile
 * rounding touches stay finite and are never written out. Neither scores_t nor acc is
 * cleared: each key block's softmax and products read only what its scores wrote, and the
 * first block's accumulate writes acc without reading it. */
static FN(tile_space) FN(start_tile)(const FN(forward_job) *job, void *work, int64_t b, int64_t i0, int64_t rows)
{
    const int64_t D = job->D;
    FN(tile_space) space;
    space.q_t = work;
    space.scores_t = space.q_t + D * BLOCK_Q;
    space.acc = space.scores_t + job->blocks->block_k * BLOCK_Q;
    space.row_max = space.acc + BLOCK_Q * padded_width(job->Dv);
    space.row_sum = space.row_max + BLOCK_Q;
    space.rescale = space.row_sum + BLOCK_Q;
    job->blocks->transpose(space.q_t, BLOCK_Q, job->q + (b * job->Lq + i0) * D, D, D, rows);  /* [rows, D] -> [D, rows] */
    if (rows < BLOCK_Q)
        for (int64_t e = 0; e < D; e++)
            for (int64_t r = rows; r < BLOCK_Q; r++) space.q_t[e * BLOCK_Q + r] = 0;
    for (int64_t r = 0; r < BLOCK_Q; r++) space.row_max[r] = -INFINITY, space.row_sum[r] = 0, space.rescale[r] = 0;
    return space;
}

/* Key c of the block starting at key j0 is visible to row r of the tile at i0 iff c <= diagonal + r. */
static int64_t FN(tile_diagonal)(const FN(forward_job) *job, int64_t i0, int64_t j0, int64_t n_keys)
{
    return job->causal ? i0 + (job->Lk - job->Lq) - j0 : n_keys;
}

/* space->scores_t = scaled scores of the tile's queries against keys [j0, j0 + n_keys), -inf where
 * the user's mask forbids. Entries past the causal diagonal are left as they are: the softmax
 * (softmax_update, normalise_row) reads only each row's visible keys. */
static void FN(score_block)(const FN(forward_job) *job, FN(tile_space) *space, int64_t b, int64_t i0,
                            int64_t rows, int64_t j0, int64_t n_keys)
{
    const REAL *k = job->k + (b * job->Lk + j0) * job->D;
    job->blocks->scores(space->scores_t, space->q_t, k, n_keys, job->D, job->scale, rows,
                        FN(tile_diagonal)(job, i0, j0, n_keys));
    if (job->mask) FN(mask_block)(job, space->scores_t, b, i0, rows, j0, n_keys);
}

/* out rows [i0, i0 + rows) = acc rows x 1 / row_sum (zeros where row_sum is 0: no key allowed;
 * NaN where it is NaN: a NaN or inf score), or all zeros when no key block ran (key_end 0: no
 * row sees a key, and acc was never written). */
static void FN(store_rows)(const FN(forward_job) *job, const FN(tile_space) *space, int64_t b, int64_t i0,
                           int64_t rows, int64_t key_end)
{
    const int64_t Dv = job->Dv, acc_stride = padded_width(Dv);
    REAL *out = job->out + (b * job->Lq + i0) * Dv;  /* [rows, Dv] */
    if (key_end == 0) {
        memset(out, 0, (size_t)(rows * Dv) * sizeof(REAL));
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        const REAL total = space->row_sum[r];
        job->blocks->scale(out + r * Dv, space->acc + r * acc_stride, Dv, total != 0 ? 1 / total : 0);  /* NaN stays NaN */
    }
}

/* Keys in the first of the blocks of block_k keys that cover [0, key_end): the partial one goes
 * first, so that the last block ends at key_end and a causal tile's diagonal falls in one block,
 * not across two. */
static int64_t FN(first_key_block)(int64_t key_end, int64_t block_k)
{
    return key_end % block_k ? key_end % block_k : block_k;
}

/* Tile path without weights: online softmax over key blocks. */
static void FN(tile_task)(void *context, int64_t task, void *work)
{
    const FN(forward_job) *job = context;
    int64_t b, i0, rows;
    FN(task_rows)(job, task, &b, &i0, &rows);
    FN(tile_space) space = FN(start_tile)(job, work, b, i0, rows);
    const REAL *v = job->v + b * job->Lk * job->Dv;
    const int64_t key_end = FN(visible_keys)(job, i0 + rows - 1), block_k = job->blocks->block_k;
    for (int64_t j0 = 0, n_keys = FN(first_key_block)(key_end, block_k); j0 < key_end; j0 += n_keys, n_keys = block_k) {
        const int64_t diagonal = FN(tile_diagonal)(job, i0, j0, n_keys);
        FN(score_block)(job, &space, b, i0, rows, j0, n_keys);
        job->blocks->softmax_update(space.scores_t, space.row_max, space.row_sum, space.rescale, n_keys, rows,
                                    diagonal);
        job->blocks->accumulate(space.acc, space.scores_t, BLOCK_Q, 1, v + j0 * job->Dv,
                                j0 == 0 ? NULL : space.rescale, n_keys, job->Dv, rows, diagonal);
    }
    FN(store_rows)(job, &space, b, i0, rows, key_end);
}

/* Tile path with weights: the block's score rows go straight into its weight rows, are
 * normalised there (still in cache), then one pass of weights x values over all keys. */
static void FN(weights_task)(void *context, int64_t task, void *work)
{
    const FN(forward_job) *job = context;
    const int64_t Lk = job->Lk;
    int64_t b, i0, rows;
    FN(task_rows)(job, task, &b, &i0, &rows);
    FN(tile_space) space = FN(start_tile)(job, work, b, i0, rows);
    REAL *weights = job->weights + (b * job->Lq + i0) * Lk;  /* [rows, Lk] */
    const int64_t key_end = FN(visible_keys)(job, i0 + rows - 1), block_k = job->blocks->block_k;
    for (int64_t j0 = 0; j0 < key_end; j0 += block_k) {
        const int64_t n_keys = key_end - j0 < block_k ? key_end - j0 : block_k;
        FN(score_block)(job, &space, b, i0, rows, j0, n_keys);
        job->blocks->transpose(weights + j0, Lk, space.scores_t, BLOCK_Q, rows, n_keys);
    }
    for (int64_t r = 0; r < rows; r++) {
        space.row_sum[r] = FN(normalise_row)(job, weights + r * Lk, FN(visible_keys)(job, i0 + r));
        space.rescale[r] = 1;  /* plain sums over the key chunks below */
    }
    const REAL *v = job->v + b * Lk * job->Dv;
    for (int64_t j0 = 0; j0 < key_end; j0 += WEIGHTS_CHUNK) {  /* chunks of V that stay in cache */
        const int64_t n_keys = key_end - j0 < WEIGHTS_CHUNK ? key_end - j0 : WEIGHTS_CHUNK;
        job->blocks->accumulate(space.acc, weights + j0, 1, Lk, v + j0 * job->Dv, j0 == 0 ? NULL : space.rescale,
                                n_keys, job->Dv, rows, FN(tile_diagonal)(job, i0, j0, n_keys));
    }
    FN(store_rows)(job, &space, b, i0, rows, key_end);
}

/* ---- entry points ---- */

/* Query rows per tile task: Lq cut into as few blocks of at most BLOCK_Q rows as it takes,
 * of near-equal size rounded up to 16 (64 rows: 2 x 32, not 48 + 16, which would leave one
 * thread the bigger share and fill a whole-tile micro-kernel with 16 rows). */
static int64_t FN(tile_rows_per_task)(int64_t Lq)
{
    const int64_t blocks = (Lq + BLOCK_Q - 1) / BLOCK_Q;
    const int64_t rows = (Lq + blocks - 1) / blocks;
    return (rows + 15) / 16 * 16;
}

int FN(gb_attention_forward)(REAL *out, REAL *weights,
                             const REAL *q, const REAL *k, const REAL *v,
                             const uint8_t *mask, int64_t mask_sb, int64_t mask_sq, int64_t mask_sk,
                             int causal, double scale,
                             int64_t B, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv)
{
    int status = FN(check_forward)(out, q, k, v, B, Lq, Lk, D, Dv);
    if (status != GB_OK) return status;
    const int use_tiles = Lq >= TILE_MIN_ROWS;
    FN(forward_job) job = {
        .out = out, .weights = weights, .q = q, .k = k, .v = v,
        .mask = mask, .mask_sb = mask_sb, .mask_sq = mask_sq, .mask_sk = mask_sk,
        .causal = causal, .scale = (REAL)(scale * 1.4426950408889634), .Lq = Lq, .Lk = Lk, .D = D, .Dv = Dv,
        .rows_per_task = use_tiles ? FN(tile_rows_per_task)(Lq) : ROWS_PER_TASK,
        .blocks = FN(select_blocks)(),
    };
    job.tasks_per_problem = (Lq + job.rows_per_task - 1) / job.rows_per_task;
    const int64_t n_tasks = B * job.tasks_per_problem;
    const int64_t threads = gb_threads_for(B, Lq, Lk, D, Dv, causal, sizeof(REAL), n_tasks);
    if (use_tiles)
        return gb_run_tasks(weights ? FN(weights_task) : FN(tile_task), &job, n_tasks, threads,
                            (size_t)FN(tile_work)(D, Dv, job.blocks->block_k) * sizeof(REAL));
    return gb_run_tasks(FN(row_task), &job, n_tasks, threads, (size_t)(weights ? 0 : Lk) * sizeof(REAL));
}

int FN(gb_exp2)(REAL *out, const REAL *x, int64_t n)
{
    if (!out || !x) return GB_ERR_NULL;
    if (n < 0) return GB_ERR_SIZE;
    FN(select_blocks)()->exp_array(out, x, n);
    return GB_OK;
}
