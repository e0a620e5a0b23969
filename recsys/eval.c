/* eval.c: full-ranking evaluation and the metrics of MMRec and Elliot.
 *
 * Users are taken in blocks: the model scores a block (block x items), the
 * masked items are set to -inf, the top max(K) are selected per row
 * (mrec_topk_rows: partial selection, ties to the lower item), and each
 * user's metrics are added up in double precision in user order, so the
 * result does not depend on the thread count. Scoring, masking and top-k
 * run where the context runs (the scores stay there); only the top items
 * come back to the host for the metrics. Elliot's beyond-accuracy metrics
 * (beyond.c) take each list in user order after its block, with the
 * popularity of the first mask (the training pairs). Those need the lists
 * on the host, so the accuracy metrics are computed there too; on a GPU the
 * host works on one block's lists while the device ranks the next.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const metric_names[MREC_METRIC_COUNT] = {
    [MREC_METRIC_RECALL] = "recall", [MREC_METRIC_PRECISION] = "precision", [MREC_METRIC_HR] = "hr",
    [MREC_METRIC_MRR] = "mrr",       [MREC_METRIC_NDCG] = "ndcg",           [MREC_METRIC_NDCG_GRADED] = "ndcg_graded",
    [MREC_METRIC_MAP] = "map",       [MREC_METRIC_MAP_ELLIOT] = "map_elliot",
    [MREC_METRIC_EFD] = "efd",       [MREC_METRIC_EPC] = "epc",             [MREC_METRIC_GINI] = "gini",
    [MREC_METRIC_SENTROPY] = "sentropy", [MREC_METRIC_ITEM_COVERAGE] = "item_coverage",
    [MREC_METRIC_USER_COVERAGE] = "user_coverage", [MREC_METRIC_APLT] = "aplt", [MREC_METRIC_ACLT] = "aclt",
    [MREC_METRIC_ARP] = "arp",       [MREC_METRIC_POP_REO] = "pop_reo",     [MREC_METRIC_POP_RSP] = "pop_rsp",
};

const char *mrec_metric_name(mrec_metric m) { return (unsigned)m < MREC_METRIC_COUNT ? metric_names[m] : "?"; }

mrec_status mrec_metric_parse(const char *name, mrec_metric *out) {
    for (int m = 0; m < MREC_METRIC_COUNT; m++)
        if (strcmp(name, metric_names[m]) == 0) {
            *out = (mrec_metric)m;
            return MREC_OK;
        }
    return mrec_fail(MREC_ERR_ARG,
                     "unknown metric '%s' (recall, precision, hr, mrr, ndcg, ndcg_graded, map, map_elliot, efd, epc, gini, "
                     "sentropy, item_coverage, user_coverage, aplt, aclt, arp, pop_reo, pop_rsp)",
                     name);
}

int mrec_metric_per_user(mrec_metric m) {
    switch (m) {
    case MREC_METRIC_GINI: case MREC_METRIC_SENTROPY: case MREC_METRIC_ITEM_COVERAGE: case MREC_METRIC_USER_COVERAGE:
    case MREC_METRIC_POP_REO: case MREC_METRIC_POP_RSP: return 0;
    default: return (unsigned)m < MREC_METRIC_COUNT;
    }
}

static double discount(int rank) { return 1.0 / log2(rank + 2.0); } /* rank 0 is the top */

void mrec_user_metrics(double out[MREC_METRIC_COUNT][MREC_EVAL_MAX_K], const int32_t *ranked, const double *gain,
                       const double *sorted_gains, int n_rel, const int *k, int n_k) {
    int kmax = k[n_k - 1], hits = 0, first_hit = -1, next = 0;
    double dcg = 0, dcg_graded = 0, idcg = 0, idcg_graded = 0, ap = 0, sum_precision = 0;
    for (int r = 0; r < kmax; r++) {
        double g = gain[ranked[r]];
        int hit = g > 0;
        if (hit) {
            hits++;
            if (first_hit < 0) first_hit = r;
            dcg += discount(r);
            dcg_graded += g * discount(r);
            ap += (double)hits / (r + 1);
        }
        if (r < n_rel) {
            idcg += discount(r);
            idcg_graded += sorted_gains[r] * discount(r);
        }
        sum_precision += (double)hits / (r + 1);
        if (r + 1 == k[next]) {
            int K = k[next];
            double *o[MREC_METRIC_COUNT];
            for (int m = 0; m < MREC_METRIC_COUNT; m++) o[m] = &out[m][next];
            *o[MREC_METRIC_RECALL] = (double)hits / n_rel;
            *o[MREC_METRIC_PRECISION] = (double)hits / K;
            *o[MREC_METRIC_HR] = hits > 0;
            *o[MREC_METRIC_MRR] = first_hit >= 0 ? 1.0 / (first_hit + 1) : 0.0;
            *o[MREC_METRIC_NDCG] = dcg / idcg;
            *o[MREC_METRIC_NDCG_GRADED] = dcg_graded > 0 ? dcg_graded / idcg_graded : 0.0;
            *o[MREC_METRIC_MAP] = ap / (n_rel < K ? n_rel : K);
            *o[MREC_METRIC_MAP_ELLIOT] = sum_precision / K;
            next++;
        }
    }
}

typedef struct {
    const mrec_eval_spec *spec;
    int32_t *topk;   /* (block, kmax) on the host */
    double *gain;    /* (n_items) per thread */
    double *sorted;  /* (n_items) per thread */
    double (*sums)[MREC_METRIC_COUNT][MREC_EVAL_MAX_K]; /* per user of the block */
    int *counted;
    int u0, n_items, kmax;
} eval_block;

static int by_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
}

/* Users per metrics task: small enough that a descheduled thread holds back
 * little of a block (the others take the remaining tasks), large enough to
 * pay for the hand-out. Each user's sums land in its own slot and are added
 * in user order afterwards, so the split does not change a bit. */
#define USERS_PER_TASK 16

/* Metrics of the block's users [task * USERS_PER_TASK, (task + 1) * USERS_PER_TASK). */
static void metrics_task(void *arg, int task, int thread) {
    eval_block *e = arg;
    const mrec_user_items *rel = e->spec->relevant;
    int block = e->spec->block_users, per = USERS_PER_TASK;
    double *gain = e->gain + (size_t)thread * e->n_items, *sorted = e->sorted + (size_t)thread * e->n_items;
    for (int b = task * per; b < (task + 1) * per && b < block; b++) {
        int u = e->u0 + b;
        e->counted[b] = 0;
        if (u >= rel->n_rows) continue;
        int n_rel = 0;
        for (int64_t p = rel->row_ptr[u]; p < rel->row_ptr[u + 1]; p++) {
            float r = rel->val[p];
            if (r < e->spec->rel_threshold) continue;
            double g = pow(2.0, (double)r - e->spec->rel_threshold + 1.0) - 1.0;
            gain[rel->col[p]] = g;
            sorted[n_rel++] = g;
        }
        if (n_rel) {
            qsort(sorted, (size_t)n_rel, sizeof *sorted, by_desc);
            mrec_user_metrics(e->sums[b], e->topk + (size_t)b * e->kmax, gain, sorted, n_rel, e->spec->k, e->spec->n_k);
            e->counted[b] = 1;
        }
        for (int64_t p = rel->row_ptr[u]; p < rel->row_ptr[u + 1]; p++) gain[rel->col[p]] = 0;
    }
}

/* ---- scoring, masking and top-k where the context runs ---- */

/* The device side of a ranking: a block of scores, its top k, and copies of
 * the masks there. One allocation per evaluation. */
typedef struct {
    mrec_arena mem;
    float *scores;                   /* (block, n_items) */
    int32_t *topk;                   /* (block, k) */
    float *topv;                     /* (block, k) */
    int64_t *mask_ptr[2];            /* the masks' CSR (over all users), or NULL */
    int32_t *mask_col[2];
    const mrec_user_items *masked[2];
    int block, n_items, k;
} ranker;

static void ranker_carve(ranker *r, mrec_arena *a) {
    r->scores = mrec_arena_alloc(a, sizeof(float) * (size_t)r->block * r->n_items);
    r->topk = mrec_arena_alloc(a, sizeof(int32_t) * (size_t)r->block * r->k);
    r->topv = mrec_arena_alloc(a, sizeof(float) * (size_t)r->block * r->k);
    for (int m = 0; m < 2; m++) {
        const mrec_user_items *mask = r->masked[m];
        if (!mask) continue;
        r->mask_ptr[m] = mrec_arena_alloc(a, sizeof(int64_t) * ((size_t)mask->n_rows + 1));
        r->mask_col[m] = mrec_arena_alloc(a, sizeof(int32_t) * (size_t)(mask->row_ptr[mask->n_rows] + 1));
    }
}

static mrec_status ranker_open(ranker *r, mrec_context *ctx, int block, int n_items, int k,
                               const mrec_user_items *masked[2]) {
    memset(r, 0, sizeof *r);
    r->block = block, r->n_items = n_items, r->k = k, r->masked[0] = masked[0], r->masked[1] = masked[1];
    mrec_arena measure = mrec_arena_measure();
    ranker_carve(r, &measure);
    mrec_status st = mrec_arena_reserve(&r->mem, measure.peak, ctx->device, ctx->cuda);
    if (st) return st;
    ranker_carve(r, &r->mem);
    for (int m = 0; m < 2 && !st; m++) {
        const mrec_user_items *mask = masked[m];
        if (!mask) continue;
        st = mrec_copy_to_device(ctx, r->mask_ptr[m], mask->row_ptr, sizeof(int64_t) * ((size_t)mask->n_rows + 1));
        if (!st) st = mrec_copy_to_device(ctx, r->mask_col[m], mask->col, sizeof(int32_t) * (size_t)mask->row_ptr[mask->n_rows]);
    }
    return st;
}

/* The best k unmasked items of users u0 .. u0 + n - 1 into r->topk, on the context's device. */
static mrec_status ranker_rank(ranker *r, mrec_context *ctx, mrec_score_fn score, void *model, int u0, int n) {
    mrec_status st = score(model, u0, n, r->scores);
    for (int m = 0; m < 2 && !st; m++) {
        const mrec_user_items *mask = r->masked[m];
        if (!mask || u0 >= mask->n_rows) continue;
        int rows = mask->n_rows - u0 < n ? mask->n_rows - u0 : n;
        st = mrec_mask_rows(ctx, r->scores, r->mask_ptr[m], r->mask_col[m], u0, rows, r->n_items);
    }
    return st ? st : mrec_topk_rows(ctx, r->topk, r->topv, r->scores, n, r->n_items, r->k);
}

/* top (n, k) on the host: the best k unmasked items of users u0 .. u0 + n - 1. */
static mrec_status ranker_block(ranker *r, mrec_context *ctx, mrec_score_fn score, void *model, int u0, int n,
                                int32_t *top) {
    mrec_status st = ranker_rank(r, ctx, score, model, u0, n);
    return st ? st : mrec_copy_to_host(ctx, top, r->topk, sizeof(int32_t) * (size_t)n * r->k);
}

/* The same without waiting: the lists are copied into top (mrec_host_alloc'd) behind the ranking, and done
 * is recorded after them (the device's order keeps the next block's ranking from overwriting r->topk first). */
static mrec_status ranker_launch(ranker *r, mrec_context *ctx, mrec_score_fn score, void *model, int u0, int n,
                                 int32_t *top, mrec_event *done) {
    mrec_status st = ranker_rank(r, ctx, score, model, u0, n);
    if (!st) st = mrec_copy_to_host_async(ctx, top, r->topk, sizeof(int32_t) * (size_t)n * r->k, MREC_STREAM_COMPUTE);
    return st ? st : mrec_event_record(ctx, done, MREC_STREAM_COMPUTE);
}

static void ranker_close(ranker *r, mrec_context *ctx) { mrec_arena_release(&r->mem, ctx->cuda); }

/* One user's list into the beyond-accuracy sums: users with an item in the
 * split (Elliot drops the others), the list cut where the masked items
 * (scored -inf, so ranked last) begin. */
static void beyond_add(mrec_beyond *b, const mrec_eval_spec *spec, int u, const int32_t *top, int kmax, int32_t *rel_buf) {
    const mrec_user_items *rel = spec->relevant;
    if (u >= rel->n_rows || rel->row_ptr[u + 1] == rel->row_ptr[u]) return;
    int64_t avail = rel->n_cols;
    for (int m = 0; m < 2; m++) {
        const mrec_user_items *mask = spec->masked[m];
        if (mask && u < mask->n_rows) avail -= mask->row_ptr[u + 1] - mask->row_ptr[u];
    }
    int len = avail < kmax ? (int)(avail > 0 ? avail : 0) : kmax, n_rel = 0;
    for (int64_t p = rel->row_ptr[u]; p < rel->row_ptr[u + 1]; p++)
        if (rel->val[p] >= spec->rel_threshold) rel_buf[n_rel++] = rel->col[p];
    mrec_beyond_add(b, u, top, len, rel_buf, n_rel);
}

mrec_status mrec_evaluate(mrec_eval_result *out, const mrec_eval_spec *spec_in, mrec_score_fn score, void *model,
                          mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_eval_spec spec = *spec_in;
    if (spec.block_users <= 0) spec.block_users = MREC_RANK_BLOCK;
    const mrec_user_items *rel = spec.relevant;
    int n_users = rel->n_rows, n_items = rel->n_cols;
    if (spec.n_k < 1 || spec.n_k > MREC_EVAL_MAX_K)
        return mrec_fail(MREC_ERR_ARG, "evaluate: %d cut-offs (1 to %d)", spec.n_k, MREC_EVAL_MAX_K);
    for (int i = 0; i < spec.n_k; i++)
        if (spec.k[i] < 1 || spec.k[i] > n_items || (i && spec.k[i] <= spec.k[i - 1]))
            return mrec_fail(MREC_ERR_ARG, "evaluate: cut-offs must ascend within 1..%d items, got %d", n_items, spec.k[i]);
    int kmax = spec.k[spec.n_k - 1], threads = mrec_pool_threads(ctx->pool), B = spec.block_users;
    eval_block e = {.spec = &spec, .n_items = n_items, .kmax = kmax};
    ranker r;
    /* two blocks' lists and their events: the host reads one while the device fills the other */
    int32_t *lists[2] = {NULL, NULL};
    mrec_event *done[2] = {NULL, NULL};
    mrec_status st = ranker_open(&r, ctx, B, n_items, kmax, spec.masked);
    for (int s = 0; s < 2 && !st; s++) st = mrec_host_alloc(ctx, (void **)&lists[s], (size_t)B * kmax * sizeof *lists[s]);
    for (int s = 0; s < 2 && !st; s++) st = mrec_event_create(ctx, &done[s]);
    e.gain = calloc((size_t)threads * n_items, sizeof *e.gain);
    e.sorted = malloc((size_t)threads * n_items * sizeof *e.sorted);
    e.sums = malloc((size_t)B * sizeof *e.sums);
    e.counted = malloc((size_t)B * sizeof *e.counted);
    if (!st && (!e.gain || !e.sorted || !e.sums || !e.counted))
        st = mrec_fail(MREC_ERR_NOMEM, "evaluate: buffers for %d users x %d items", B, n_items);
    /* Elliot's beyond-accuracy metrics, with the popularity of the training pairs (the first mask) */
    mrec_beyond *beyond = NULL;
    int32_t *rel_buf = malloc(sizeof *rel_buf * ((size_t)n_items + 1));
    if (!st && !rel_buf) st = mrec_fail(MREC_ERR_NOMEM, "evaluate: %d items", n_items);
    if (!st) st = mrec_beyond_open(&beyond, spec.masked[0], n_items, spec.k, spec.n_k);
    if (!st && n_users > 0) st = ranker_launch(&r, ctx, score, model, 0, n_users < B ? n_users : B, lists[0], done[0]);
    for (int u0 = 0, slot = 0; u0 < n_users && !st; u0 += B, slot ^= 1) {
        int n = n_users - u0 < B ? n_users - u0 : B, next = u0 + B;
        double t0 = mrec_seconds();
        if ((st = mrec_event_sync(ctx, done[slot]))) break;
        out->wait_seconds += mrec_seconds() - t0;
        if (next < n_users &&
            (st = ranker_launch(&r, ctx, score, model, next, n_users - next < B ? n_users - next : B, lists[slot ^ 1], done[slot ^ 1])))
            break;
        double t1 = mrec_seconds();
        e.u0 = u0, e.topk = lists[slot];
        mrec_pool_run(ctx->pool, metrics_task, &e, (n + USERS_PER_TASK - 1) / USERS_PER_TASK);
        for (int b = 0; b < n; b++) {
            if (beyond) beyond_add(beyond, &spec, u0 + b, e.topk + (size_t)b * kmax, kmax, rel_buf);
            if (!e.counted[b]) continue;
            out->n_users++;
            for (int m = 0; m < MREC_METRIC_FIRST_BEYOND; m++)
                for (int i = 0; i < spec.n_k; i++) out->value[m][i] += e.sums[b][m][i];
        }
        out->host_seconds += mrec_seconds() - t1;
    }
    if (!st && out->n_users)
        for (int m = 0; m < MREC_METRIC_FIRST_BEYOND; m++)
            for (int i = 0; i < spec.n_k; i++) out->value[m][i] /= out->n_users;
    if (!st) mrec_beyond_result(beyond, out->value);
    mrec_beyond_close(beyond);
    free(rel_buf);
    if (st) mrec_events_settle(ctx, done, 2, st); /* a launched block may still be writing into lists */
    ranker_close(&r, ctx);
    for (int s = 0; s < 2; s++) mrec_host_free(ctx, lists[s]), mrec_event_destroy(ctx, done[s]);
    free(e.gain), free(e.sorted), free(e.sums), free(e.counted);
    return st;
}

mrec_status mrec_recommend(int32_t *top, int n_users, int n_items, int k, const mrec_user_items *masked[2],
                           mrec_score_fn score, void *model, mrec_context *ctx) {
    enum { B = MREC_RANK_BLOCK };
    if (k < 1 || k > n_items) return mrec_fail(MREC_ERR_ARG, "recommend: k = %d with %d items", k, n_items);
    ranker r;
    mrec_status st = ranker_open(&r, ctx, B, n_items, k, masked);
    for (int u0 = 0; u0 < n_users && !st; u0 += B) {
        int n = n_users - u0 < B ? n_users - u0 : B;
        st = ranker_block(&r, ctx, score, model, u0, n, top + (size_t)u0 * k);
    }
    ranker_close(&r, ctx);
    return st;
}
