/* eval.c: full-ranking evaluation and the metrics of MMRec and Elliot.
 *
 * Users are taken in blocks: the model scores a block (block x items), the
 * masked items are set to -inf, the top max(K) are selected per row
 * (mrec_topk_rows: partial selection, ties to the lower item), and each
 * user's metrics are added up in double precision in user order, so the
 * result does not depend on the thread count.
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
};

const char *mrec_metric_name(mrec_metric m) { return (unsigned)m < MREC_METRIC_COUNT ? metric_names[m] : "?"; }

mrec_status mrec_metric_parse(const char *name, mrec_metric *out) {
    for (int m = 0; m < MREC_METRIC_COUNT; m++)
        if (strcmp(name, metric_names[m]) == 0) {
            *out = (mrec_metric)m;
            return MREC_OK;
        }
    return mrec_fail(MREC_ERR_ARG, "unknown metric '%s' (recall, precision, hr, mrr, ndcg, ndcg_graded, map, map_elliot)",
                     name);
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
    float *scores;   /* (block, n_items) */
    int32_t *topk;   /* (block, kmax) */
    float *topv;
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

mrec_status mrec_evaluate(mrec_eval_result *out, const mrec_eval_spec *spec_in, mrec_score_fn score, void *model,
                          mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st = mrec_recsys_host_only(ctx, "evaluate"); /* scores, masks and top-k in host memory */
    if (st) return st;
    mrec_eval_spec spec = *spec_in;
    if (spec.block_users <= 0) spec.block_users = 1024;
    const mrec_user_items *rel = spec.relevant;
    int n_users = rel->n_rows, n_items = rel->n_cols;
    if (spec.n_k < 1 || spec.n_k > MREC_EVAL_MAX_K)
        return mrec_fail(MREC_ERR_ARG, "evaluate: %d cut-offs (1 to %d)", spec.n_k, MREC_EVAL_MAX_K);
    for (int i = 0; i < spec.n_k; i++)
        if (spec.k[i] < 1 || spec.k[i] > n_items || (i && spec.k[i] <= spec.k[i - 1]))
            return mrec_fail(MREC_ERR_ARG, "evaluate: cut-offs must ascend within 1..%d items, got %d", n_items, spec.k[i]);
    int kmax = spec.k[spec.n_k - 1], threads = mrec_pool_threads(ctx->pool), B = spec.block_users;
    eval_block e = {.spec = &spec, .n_items = n_items, .kmax = kmax};
    e.scores = malloc((size_t)B * n_items * sizeof *e.scores);
    e.topk = malloc((size_t)B * kmax * sizeof *e.topk);
    e.topv = malloc((size_t)B * kmax * sizeof *e.topv);
    e.gain = calloc((size_t)threads * n_items, sizeof *e.gain);
    e.sorted = malloc((size_t)threads * n_items * sizeof *e.sorted);
    e.sums = malloc((size_t)B * sizeof *e.sums);
    e.counted = malloc((size_t)B * sizeof *e.counted);
    if (!e.scores || !e.topk || !e.topv || !e.gain || !e.sorted || !e.sums || !e.counted)
        st = mrec_fail(MREC_ERR_NOMEM, "evaluate: buffers for %d users x %d items", B, n_items);
    for (int u0 = 0; u0 < n_users && !st; u0 += B) {
        int n = n_users - u0 < B ? n_users - u0 : B;
        st = score(model, u0, n, e.scores);
        if (st) break;
        for (int m = 0; m < 2; m++) {
            const mrec_user_items *mask = spec.masked[m];
            for (int b = 0; mask && b < n && u0 + b < mask->n_rows; b++)
                for (int64_t p = mask->row_ptr[u0 + b]; p < mask->row_ptr[u0 + b + 1]; p++)
                    e.scores[(size_t)b * n_items + mask->col[p]] = -INFINITY;
        }
        if ((st = mrec_topk_rows(ctx, e.topk, e.topv, e.scores, n, n_items, kmax))) break;
        e.u0 = u0;
        mrec_pool_run(ctx->pool, metrics_task, &e, (n + USERS_PER_TASK - 1) / USERS_PER_TASK);
        for (int b = 0; b < n; b++) {
            if (!e.counted[b]) continue;
            out->n_users++;
            for (int m = 0; m < MREC_METRIC_COUNT; m++)
                for (int i = 0; i < spec.n_k; i++) out->value[m][i] += e.sums[b][m][i];
        }
    }
    if (!st && out->n_users)
        for (int m = 0; m < MREC_METRIC_COUNT; m++)
            for (int i = 0; i < spec.n_k; i++) out->value[m][i] /= out->n_users;
    free(e.scores), free(e.topk), free(e.topv), free(e.gain), free(e.sorted), free(e.sums), free(e.counted);
    return st;
}

mrec_status mrec_recommend(int32_t *top, int n_users, int n_items, int k, const mrec_user_items *masked[2],
                           mrec_score_fn score, void *model, mrec_context *ctx) {
    enum { B = 1024 };
    if (k < 1 || k > n_items) return mrec_fail(MREC_ERR_ARG, "recommend: k = %d with %d items", k, n_items);
    mrec_status st = mrec_recsys_host_only(ctx, "recommend");
    if (st) return st;
    float *scores = malloc((size_t)B * n_items * sizeof *scores), *val = malloc((size_t)B * k * sizeof *val);
    if (!scores || !val) st = mrec_fail(MREC_ERR_NOMEM, "recommend: %d x %d scores", B, n_items);
    for (int u0 = 0; u0 < n_users && !st; u0 += B) {
        int n = n_users - u0 < B ? n_users - u0 : B;
        if ((st = score(model, u0, n, scores))) break;
        for (int m = 0; m < 2; m++)
            for (int b = 0; masked[m] && b < n && u0 + b < masked[m]->n_rows; b++)
                for (int64_t p = masked[m]->row_ptr[u0 + b]; p < masked[m]->row_ptr[u0 + b + 1]; p++)
                    scores[(size_t)b * n_items + masked[m]->col[p]] = -INFINITY;
        st = mrec_topk_rows(ctx, top + (size_t)u0 * k, val, scores, n, n_items, k);
    }
    free(scores), free(val);
    return st;
}
