/* eval.c: full-ranking evaluation and the metrics of MMRec and Elliot.
 *
 * Users are taken in blocks: the model scores a block (block x items), the
 * masked items are set to -inf, the top max(K) are selected per row
 * (mrec_topk_rows: partial selection, ties to the lower item), and each
 * user's accuracy metrics are added up in double precision in user order
 * (mrec_rank_metrics), so the result depends neither on the thread count
 * nor on the device. All of it runs where the context runs: on a GPU the
 * scores, the lists and the sums stay there, and the host reads the sums
 * once at the end. Elliot's beyond-accuracy metrics (beyond.c) take each
 * list in user order on the host, with the popularity of the first mask
 * (the training pairs); where they are asked for, each block's lists come
 * back and the host adds one block while the device ranks the next.
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

_Static_assert((int)MREC_METRIC_RECALL == MREC_RANK_RECALL && (int)MREC_METRIC_PRECISION == MREC_RANK_PRECISION &&
                   (int)MREC_METRIC_HR == MREC_RANK_HR && (int)MREC_METRIC_MRR == MREC_RANK_MRR && (int)MREC_METRIC_NDCG == MREC_RANK_NDCG &&
                   (int)MREC_METRIC_NDCG_GRADED == MREC_RANK_NDCG_GRADED && (int)MREC_METRIC_MAP == MREC_RANK_MAP &&
                   (int)MREC_METRIC_MAP_ELLIOT == MREC_RANK_MAP_ELLIOT && (int)MREC_METRIC_FIRST_BEYOND == MREC_RANK_METRICS &&
                   MREC_EVAL_MAX_K == MREC_RANK_MAX_K,
               "the accuracy metrics in the order of kernels/rank_metrics.h");

static double discount(int rank) { return 1.0 / log2(rank + 2.0); } /* rank 0 is the top */

/* The walk of kernels/rank_metrics.h over one list, the ideal DCGs added as it goes. */
void mrec_user_metrics(double out[MREC_METRIC_COUNT][MREC_EVAL_MAX_K], const int32_t *ranked, const double *gain,
                       const double *sorted_gains, int n_rel, const int *k, int n_k) {
    mrec_rank_walk w;
    mrec_rank_walk_start(&w);
    double idcg = 0, idcg_graded = 0;
    for (int r = 0, next = 0; r < k[n_k - 1]; r++) {
        double d = discount(r);
        mrec_rank_walk_step(&w, r, gain[ranked[r]], d);
        if (r < n_rel) idcg += d, idcg_graded += sorted_gains[r] * d;
        if (r + 1 == k[next]) mrec_rank_walk_emit(&w, &out[0][next], MREC_EVAL_MAX_K, k[next], n_rel, idcg, idcg_graded), next++;
    }
}

/* ---- scoring, masking and top-k where the context runs ---- */

/* The masks' CSR (over all users) in the context's memory. */
typedef struct {
    const mrec_user_items *of[2]; /* or NULL */
    int64_t *ptr[2];
    int32_t *col[2];
} masks;

static void masks_carve(masks *d, mrec_arena *a) {
    for (int m = 0; m < 2; m++) {
        const mrec_user_items *mask = d->of[m];
        if (!mask) continue;
        d->ptr[m] = mrec_arena_alloc(a, sizeof(int64_t) * ((size_t)mask->n_rows + 1));
        d->col[m] = mrec_arena_alloc(a, sizeof(int32_t) * (size_t)(mask->row_ptr[mask->n_rows] + 1));
    }
}

static mrec_status masks_upload(const masks *d, mrec_context *ctx) {
    mrec_status st = MREC_OK;
    for (int m = 0; m < 2 && !st; m++) {
        const mrec_user_items *mask = d->of[m];
        if (!mask) continue;
        st = mrec_copy_to_device(ctx, d->ptr[m], mask->row_ptr, sizeof(int64_t) * ((size_t)mask->n_rows + 1));
        if (!st) st = mrec_copy_to_device(ctx, d->col[m], mask->col, sizeof(int32_t) * (size_t)mask->row_ptr[mask->n_rows]);
    }
    return st;
}

/* The device side of a ranking: a block of scores and its top k. One allocation per evaluation. */
typedef struct {
    mrec_arena mem;
    float *scores;     /* (block, n_items) */
    int32_t *topk;     /* (block, k) */
    float *topv;       /* (block, k) */
    const masks *mask; /* on the same device */
    int block, n_items, k;
} ranker;

static void ranker_carve(ranker *r, mrec_arena *a) {
    r->scores = mrec_arena_alloc(a, sizeof(float) * (size_t)r->block * r->n_items);
    r->topk = mrec_arena_alloc(a, sizeof(int32_t) * (size_t)r->block * r->k);
    r->topv = mrec_arena_alloc(a, sizeof(float) * (size_t)r->block * r->k);
}

static mrec_status ranker_open(ranker *r, mrec_context *ctx, int block, int n_items, int k, const masks *mask) {
    memset(r, 0, sizeof *r);
    r->block = block, r->n_items = n_items, r->k = k, r->mask = mask;
    mrec_arena measure = mrec_arena_measure();
    ranker_carve(r, &measure);
    mrec_status st = mrec_arena_reserve(&r->mem, measure.peak, ctx->device, ctx->cuda);
    if (!st) ranker_carve(r, &r->mem);
    return st;
}

/* The best k unmasked items of users u0 .. u0 + n - 1 into r->topk, on the context's device. */
static mrec_status ranker_rank(ranker *r, mrec_context *ctx, mrec_score_fn score, void *model, int u0, int n) {
    mrec_status st = score(model, u0, n, r->scores);
    for (int m = 0; m < 2 && !st; m++) {
        const mrec_user_items *mask = r->mask->of[m];
        if (!mask || u0 >= mask->n_rows) continue;
        int rows = mask->n_rows - u0 < n ? mask->n_rows - u0 : n;
        st = mrec_mask_rows(ctx, r->scores, r->mask->ptr[m], r->mask->col[m], u0, rows, r->n_items);
    }
    return st ? st : mrec_topk_rows(ctx, r->topk, r->topv, r->scores, n, r->n_items, r->k);
}

static void ranker_close(ranker *r, mrec_context *ctx) { mrec_arena_release(&r->mem, ctx->cuda); }

/* ---- the evaluator: what an evaluation of a split needs whatever the model, made once ---- */

struct mrec_evaluator {
    mrec_eval_spec spec;
    mrec_context *ctx;
    mrec_arena mem;           /* on the context's device: the masks, the relevance, the sums, the work */
    masks mask;
    mrec_rank_relevance rel;  /* its arrays in mem */
    mrec_rank_sums *sums;     /* in mem */
    double *work;             /* in mem: mrec_rank_metrics_work_bytes(block_users, n_k) */
};

static void evaluator_carve(mrec_evaluator *ev, mrec_arena *a) {
    const mrec_user_items *rel = ev->spec.relevant;
    int64_t nnz = rel->row_ptr[rel->n_rows];
    mrec_rank_relevance *r = &ev->rel;
    masks_carve(&ev->mask, a);
    r->row_ptr = mrec_arena_alloc(a, sizeof(int64_t) * ((size_t)rel->n_rows + 1));
    r->col = mrec_arena_alloc(a, sizeof(int32_t) * (size_t)(nnz + 1));
    r->gain = mrec_arena_alloc(a, sizeof(double) * (size_t)(nnz + 1));
    r->n_rel = mrec_arena_alloc(a, sizeof(int32_t) * ((size_t)rel->n_rows + 1));
    r->ideal = mrec_arena_alloc(a, sizeof(double) * 2 * (size_t)r->n_k * ((size_t)rel->n_rows + 1));
    r->disc = mrec_arena_alloc(a, sizeof(double) * (size_t)r->k[r->n_k - 1]);
    ev->sums = mrec_arena_alloc(a, sizeof *ev->sums);
    ev->work = mrec_arena_alloc(a, mrec_rank_metrics_work_bytes(ev->spec.block_users, r->n_k));
}

static int by_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
}

/* The relevant pairs' gains, each user's count and ideal DCGs, and the discounts, made on the host and copied
 * into the evaluator's arrays: a pair of rating r >= threshold t gains 2^(r - t + 1) - 1, the others nothing. */
static mrec_status relevance_upload(mrec_evaluator *ev) {
    const mrec_user_items *rel = ev->spec.relevant;
    const mrec_rank_relevance *r = &ev->rel;
    int n = rel->n_rows, kmax = r->k[r->n_k - 1];
    int64_t nnz = rel->row_ptr[n];
    double t = ev->spec.rel_threshold, *gain = malloc(sizeof *gain * (size_t)(nnz + 1)), *sorted = malloc(sizeof *sorted * (size_t)(nnz + 1));
    double *ideal = malloc(sizeof *ideal * 2 * (size_t)r->n_k * ((size_t)n + 1)), *disc = malloc(sizeof *disc * (size_t)kmax);
    int32_t *n_rel = malloc(sizeof *n_rel * ((size_t)n + 1));
    mrec_status st = gain && sorted && ideal && disc && n_rel
                         ? MREC_OK
                         : mrec_fail(MREC_ERR_NOMEM, "evaluate: the gains of %lld pairs of %d users", (long long)nnz, n);
    for (int q = 0; !st && q < kmax; q++) disc[q] = discount(q);
    for (int u = 0; !st && u < n; u++) {
        int c = 0;
        for (int64_t p = rel->row_ptr[u]; p < rel->row_ptr[u + 1]; p++) {
            gain[p] = rel->val[p] >= t ? pow(2.0, (double)rel->val[p] - t + 1.0) - 1.0 : 0.0;
            if (gain[p] > 0) sorted[c++] = gain[p];
        }
        qsort(sorted, (size_t)c, sizeof *sorted, by_desc);
        n_rel[u] = c;
        mrec_rank_ideal(ideal + (size_t)u * 2 * r->n_k, sorted, c, disc, r->k, r->n_k);
    }
    mrec_context *ctx = ev->ctx;
    if (!st) st = mrec_copy_to_device(ctx, (void *)r->row_ptr, rel->row_ptr, sizeof(int64_t) * ((size_t)n + 1));
    if (!st && nnz) st = mrec_copy_to_device(ctx, (void *)r->col, rel->col, sizeof(int32_t) * (size_t)nnz);
    if (!st && nnz) st = mrec_copy_to_device(ctx, (void *)r->gain, gain, sizeof(double) * (size_t)nnz);
    if (!st && n) st = mrec_copy_to_device(ctx, (void *)r->n_rel, n_rel, sizeof(int32_t) * (size_t)n);
    if (!st && n) st = mrec_copy_to_device(ctx, (void *)r->ideal, ideal, sizeof(double) * 2 * (size_t)r->n_k * (size_t)n);
    if (!st) st = mrec_copy_to_device(ctx, (void *)r->disc, disc, sizeof(double) * (size_t)kmax);
    free(gain), free(sorted), free(ideal), free(disc), free(n_rel);
    return st;
}

mrec_status mrec_evaluator_open(mrec_evaluator **out, const mrec_eval_spec *spec, mrec_context *ctx) {
    *out = NULL;
    const mrec_user_items *rel = spec->relevant;
    int n_items = rel->n_cols;
    if (spec->n_k < 1 || spec->n_k > MREC_EVAL_MAX_K)
        return mrec_fail(MREC_ERR_ARG, "evaluate: %d cut-offs (1 to %d)", spec->n_k, MREC_EVAL_MAX_K);
    for (int i = 0; i < spec->n_k; i++)
        if (spec->k[i] < 1 || spec->k[i] > n_items || (i && spec->k[i] <= spec->k[i - 1]))
            return mrec_fail(MREC_ERR_ARG, "evaluate: cut-offs must ascend within 1..%d items, got %d", n_items, spec->k[i]);
    mrec_evaluator *ev = calloc(1, sizeof *ev);
    if (!ev) return mrec_fail(MREC_ERR_NOMEM, "evaluate: an evaluator");
    ev->spec = *spec, ev->ctx = ctx;
    if (ev->spec.block_users <= 0) ev->spec.block_users = MREC_RANK_BLOCK;
    ev->mask.of[0] = spec->masked[0], ev->mask.of[1] = spec->masked[1];
    ev->rel.n_rows = rel->n_rows, ev->rel.n_k = spec->n_k;
    memcpy(ev->rel.k, spec->k, sizeof(int) * (size_t)spec->n_k);
    mrec_arena measure = mrec_arena_measure();
    evaluator_carve(ev, &measure);
    mrec_status st = mrec_arena_reserve(&ev->mem, measure.peak, ctx->device, ctx->cuda);
    if (!st) evaluator_carve(ev, &ev->mem);
    if (!st) st = masks_upload(&ev->mask, ctx);
    if (!st) st = relevance_upload(ev);
    if (st) {
        mrec_evaluator_close(ev);
        return st;
    }
    *out = ev;
    return MREC_OK;
}

void mrec_evaluator_close(mrec_evaluator *ev) {
    if (!ev) return;
    mrec_arena_release(&ev->mem, ev->ctx->cuda);
    free(ev);
}

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

/* Block u0's ranking and accuracy metrics queued where the context runs; with lists, its lists copied into them
 * (mrec_host_alloc'd) behind the ranking, and done recorded after them (the device's order keeps the next
 * block's ranking from overwriting r->topk first). */
static mrec_status block_launch(mrec_evaluator *ev, ranker *r, mrec_score_fn score, void *model, int u0, int n,
                                int32_t *lists, mrec_event *done) {
    mrec_context *ctx = ev->ctx;
    mrec_status st = ranker_rank(r, ctx, score, model, u0, n);
    if (!st) st = mrec_rank_metrics(ctx, ev->sums, ev->work, r->topk, u0, n, &ev->rel);
    if (!st && lists) st = mrec_copy_to_host_async(ctx, lists, r->topk, sizeof(int32_t) * (size_t)n * r->k, MREC_STREAM_COMPUTE);
    return st || !lists ? st : mrec_event_record(ctx, done, MREC_STREAM_COMPUTE);
}

mrec_status mrec_evaluator_run(mrec_evaluator *ev, mrec_eval_result *out, mrec_score_fn score, void *model) {
    memset(out, 0, sizeof *out);
    const mrec_eval_spec *spec = &ev->spec;
    mrec_context *ctx = ev->ctx;
    int n_users = spec->relevant->n_rows, n_items = spec->relevant->n_cols, kmax = spec->k[spec->n_k - 1];
    int B = spec->block_users, with_lists = !spec->accuracy_only;
    mrec_rank_sums sums;
    memset(&sums, 0, sizeof sums);
    ranker r;
    /* with Elliot's beyond-accuracy metrics, two blocks' lists and their events: the host reads one while the
     * device fills the other */
    int32_t *lists[2] = {NULL, NULL};
    mrec_event *done[2] = {NULL, NULL};
    mrec_beyond *beyond = NULL;
    int32_t *rel_buf = NULL;
    mrec_status st = ranker_open(&r, ctx, B, n_items, kmax, &ev->mask);
    if (!st) st = mrec_copy_to_device(ctx, ev->sums, &sums, sizeof sums);
    if (with_lists) {
        for (int s = 0; s < 2 && !st; s++) st = mrec_host_alloc(ctx, (void **)&lists[s], (size_t)B * kmax * sizeof *lists[s]);
        for (int s = 0; s < 2 && !st; s++) st = mrec_event_create(ctx, &done[s]);
        /* with the popularity of the training pairs (the first mask) */
        if (!st && !(rel_buf = malloc(sizeof *rel_buf * ((size_t)n_items + 1))))
            st = mrec_fail(MREC_ERR_NOMEM, "evaluate: %d items", n_items);
        if (!st) st = mrec_beyond_open(&beyond, spec->masked[0], n_items, spec->k, spec->n_k);
    }
    if (!st && n_users > 0) st = block_launch(ev, &r, score, model, 0, n_users < B ? n_users : B, lists[0], done[0]);
    for (int u0 = 0, slot = 0; u0 < n_users && !st; u0 += B, slot ^= 1) {
        int n = n_users - u0 < B ? n_users - u0 : B, next = u0 + B;
        double t0 = mrec_seconds();
        if (with_lists && (st = mrec_event_sync(ctx, done[slot]))) break;
        out->wait_seconds += mrec_seconds() - t0;
        if (next < n_users &&
            (st = block_launch(ev, &r, score, model, next, n_users - next < B ? n_users - next : B, lists[slot ^ 1], done[slot ^ 1])))
            break;
        double t1 = mrec_seconds();
        for (int b = 0; beyond && b < n; b++) beyond_add(beyond, spec, u0 + b, lists[slot] + (size_t)b * kmax, kmax, rel_buf);
        out->host_seconds += mrec_seconds() - t1;
    }
    double t2 = mrec_seconds();
    if (!st) st = mrec_copy_to_host(ctx, &sums, ev->sums, sizeof sums);
    out->wait_seconds += mrec_seconds() - t2;
    if (!st) {
        out->n_users = (int)sums.users;
        for (int m = 0; m < MREC_METRIC_FIRST_BEYOND; m++)
            for (int i = 0; i < spec->n_k; i++) out->value[m][i] = sums.users ? sums.sum[m][i] / (double)sums.users : 0.0;
        if (beyond) mrec_beyond_result(beyond, out->value);
        else
            for (int m = MREC_METRIC_FIRST_BEYOND; m < MREC_METRIC_COUNT; m++)
                for (int i = 0; i < spec->n_k; i++) out->value[m][i] = NAN;
    }
    mrec_beyond_close(beyond);
    free(rel_buf);
    if (st && with_lists) mrec_events_settle(ctx, done, 2, st); /* a launched block may still be writing into lists */
    ranker_close(&r, ctx);
    for (int s = 0; s < 2; s++) mrec_host_free(ctx, lists[s]), mrec_event_destroy(ctx, done[s]);
    return st;
}

mrec_status mrec_evaluate(mrec_eval_result *out, const mrec_eval_spec *spec, mrec_score_fn score, void *model,
                          mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_evaluator *ev;
    mrec_status st = mrec_evaluator_open(&ev, spec, ctx);
    if (!st) st = mrec_evaluator_run(ev, out, score, model);
    mrec_evaluator_close(ev);
    return st;
}

mrec_status mrec_recommend(int32_t *top, int n_users, int n_items, int k, const mrec_user_items *masked[2],
                           mrec_score_fn score, void *model, mrec_context *ctx) {
    enum { B = MREC_RANK_BLOCK };
    if (k < 1 || k > n_items) return mrec_fail(MREC_ERR_ARG, "recommend: k = %d with %d items", k, n_items);
    masks mask = {{masked[0], masked[1]}, {NULL, NULL}, {NULL, NULL}};
    mrec_arena mem = {0}, measure = mrec_arena_measure();
    masks_carve(&mask, &measure);
    mrec_status st = mrec_arena_reserve(&mem, measure.peak, ctx->device, ctx->cuda);
    if (!st) masks_carve(&mask, &mem), st = masks_upload(&mask, ctx);
    ranker r;
    memset(&r, 0, sizeof r);
    if (!st) st = ranker_open(&r, ctx, B, n_items, k, &mask);
    for (int u0 = 0; u0 < n_users && !st; u0 += B) {
        int n = n_users - u0 < B ? n_users - u0 : B;
        st = ranker_rank(&r, ctx, score, model, u0, n);
        if (!st) st = mrec_copy_to_host(ctx, top + (size_t)u0 * k, r.topk, sizeof(int32_t) * (size_t)n * k);
    }
    ranker_close(&r, ctx);
    mrec_arena_release(&mem, ctx->cuda);
    return st;
}
