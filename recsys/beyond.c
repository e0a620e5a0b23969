/* beyond.c: Elliot's beyond-accuracy metrics (novelty, diversity, coverage,
 * popularity bias) with Elliot's own definitions, which are not always the
 * textbook ones: its Gini reports 1 - Gini, ItemCoverage is a count, EFD and
 * EPC normalize by the discounts of the list rather than by an ideal list.
 * The formulas are in mrec_recsys.h; the reference is
 * elliot/evaluation/metrics/{novelty,diversity,coverage,bias}.
 *
 * Users come in one at a time (the evaluation's order), so every sum is taken
 * in a fixed order and the result does not depend on the thread count.
 */
#include "mrec_recsys.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct mrec_beyond {
    int n_items, n_k, k[MREC_EVAL_MAX_K];
    const mrec_user_items *train;
    int64_t *pop;         /* (n_items) training users of each item */
    double *nov_efd;      /* (n_items) -log2(pop / pairs), the largest trained one where pop is 0 */
    double *nov_epc;      /* (n_items) 1 - pop / training users */
    unsigned char *head;  /* (n_items) 1 in the short head */
    unsigned char *mark;  /* (n_items) scratch: the relevant items of the user at hand */
    int64_t n_head;
    /* sums over the users added, per cut-off */
    int64_t *count;       /* (n_k, n_items) lists holding each item */
    double *weight;       /* (n_k, n_items) sum of 1 / |list| over them */
    int64_t listed[MREC_EVAL_MAX_K];                 /* sum of list lengths */
    double per_user[MREC_METRIC_COUNT][MREC_EVAL_MAX_K];
    int64_t rsp[MREC_EVAL_MAX_K][4], reo[MREC_EVAL_MAX_K][4]; /* head hits, tail hits, head, tail */
    int n_users, n_rel_users, n_covered;
};

typedef struct {
    int64_t pop;
    int item;
} pop_item;

static int by_pop_desc(const void *a, const void *b) {
    const pop_item *x = a, *y = b;
    if (x->pop != y->pop) return x->pop > y->pop ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item); /* Elliot's stable sort keeps its item order */
}

void mrec_beyond_close(mrec_beyond *b) {
    if (!b) return;
    free(b->pop), free(b->nov_efd), free(b->nov_epc), free(b->head), free(b->mark), free(b->count), free(b->weight);
    free(b);
}

mrec_status mrec_beyond_open(mrec_beyond **out, const mrec_user_items *train, int n_items, const int *k, int n_k) {
    *out = NULL;
    if (n_k < 1 || n_k > MREC_EVAL_MAX_K || n_items < 1)
        return mrec_fail(MREC_ERR_ARG, "beyond-accuracy metrics: %d cut-offs over %d items", n_k, n_items);
    if (train && train->n_cols != n_items)
        return mrec_fail(MREC_ERR_ARG, "beyond-accuracy metrics: training pairs over %d items, lists over %d", train->n_cols, n_items);
    mrec_beyond *b = calloc(1, sizeof *b);
    if (!b) return mrec_fail(MREC_ERR_NOMEM, "beyond-accuracy metrics");
    b->n_items = n_items, b->n_k = n_k, b->train = train;
    memcpy(b->k, k, sizeof(int) * (size_t)n_k);
    size_t n = (size_t)n_items;
    b->pop = calloc(n, sizeof *b->pop), b->nov_efd = malloc(n * sizeof *b->nov_efd), b->nov_epc = malloc(n * sizeof *b->nov_epc);
    b->head = calloc(n, 1), b->mark = calloc(n, 1);
    b->count = calloc(n * (size_t)n_k, sizeof *b->count), b->weight = calloc(n * (size_t)n_k, sizeof *b->weight);
    pop_item *order = malloc(n * sizeof *order);
    if (!b->pop || !b->nov_efd || !b->nov_epc || !b->head || !b->mark || !b->count || !b->weight || !order) {
        free(order), mrec_beyond_close(b);
        return mrec_fail(MREC_ERR_NOMEM, "beyond-accuracy metrics over %d items", n_items);
    }
    int64_t pairs = 0;
    int train_users = 0;
    if (train)
        for (int u = 0; u < train->n_rows; u++) {
            train_users += train->row_ptr[u + 1] > train->row_ptr[u];
            for (int64_t p = train->row_ptr[u]; p < train->row_ptr[u + 1]; p++) b->pop[train->col[p]]++, pairs++;
        }
    /* EFD: -log2(pop / pairs); an item never trained gets the novelty of the least popular trained one */
    int64_t least = 0;
    for (int i = 0; i < n_items; i++)
        if (b->pop[i] > 0 && (!least || b->pop[i] < least)) least = b->pop[i];
    double max_nov = least ? -log((double)least / (double)pairs) / log(2.0) : 0;
    for (int i = 0; i < n_items; i++) {
        b->nov_efd[i] = b->pop[i] ? -log((double)b->pop[i] / (double)pairs) / log(2.0) : max_nov;
        b->nov_epc[i] = b->pop[i] && train_users ? 1 - (double)b->pop[i] / train_users : 1;
    }
    /* the short head: most popular first, until 80 % of the training pairs are held */
    for (int i = 0; i < n_items; i++) order[i].pop = b->pop[i], order[i].item = i;
    qsort(order, n, sizeof *order, by_pop_desc);
    double limit = (double)pairs * 0.8;
    for (int i = 0; i < n_items; i++) {
        b->head[order[i].item] = 1, b->n_head++;
        limit -= (double)order[i].pop;
        if (limit <= 0) break;
    }
    free(order);
    *out = b;
    return MREC_OK;
}

/* Items of the user's training row in the short head (the row is sorted, each item once). */
static int64_t trained_in_head(const mrec_beyond *b, int user) {
    const mrec_user_items *t = b->train;
    if (!t || user >= t->n_rows) return 0;
    int64_t n = 0;
    for (int64_t p = t->row_ptr[user]; p < t->row_ptr[user + 1]; p++) n += b->head[t->col[p]];
    return n;
}

static int trained(const mrec_beyond *b, int user, int32_t item) {
    const mrec_user_items *t = b->train;
    if (!t || user >= t->n_rows) return 0;
    int64_t lo = t->row_ptr[user], hi = t->row_ptr[user + 1];
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (t->col[mid] == item) return 1;
        if (t->col[mid] < item) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

/* The per-user metrics with the user's relevant items marked in b->mark. */
static void user_metrics(const mrec_beyond *b, double out[MREC_METRIC_COUNT][MREC_EVAL_MAX_K], const int32_t *ranked, int len) {
    double efd = 0, epc = 0, norm = 0, pop = 0;
    int64_t tail = 0;
    for (int j = 0, r = 0; j < b->n_k; j++) {
        int K = b->k[j] < len ? b->k[j] : len;
        for (; r < K; r++) {
            int32_t i = ranked[r];
            double disc = 1 / log(r + 2.0) * log(2.0); /* Elliot's logarithmic_ranking_discount */
            if (b->mark[i]) efd += disc * b->nov_efd[i], epc += disc * b->nov_epc[i];
            norm += disc;
            pop += (double)b->pop[i];
            tail += !b->head[i];
        }
        out[MREC_METRIC_EFD][j] = norm > 0 ? efd / norm : efd;
        out[MREC_METRIC_EPC][j] = norm > 0 ? epc / norm : epc;
        out[MREC_METRIC_APLT][j] = K ? (double)tail / K : 0;
        out[MREC_METRIC_ACLT][j] = (double)tail;
        out[MREC_METRIC_ARP][j] = K ? pop / K : 0;
    }
}

void mrec_beyond_user(const mrec_beyond *b, double out[MREC_METRIC_COUNT][MREC_EVAL_MAX_K], const int32_t *ranked, int len,
                      const int32_t *rel, int n_rel) {
    for (int i = 0; i < n_rel; i++) b->mark[rel[i]] = 1;
    user_metrics(b, out, ranked, len);
    for (int i = 0; i < n_rel; i++) b->mark[rel[i]] = 0;
}

void mrec_beyond_add(mrec_beyond *b, int user, const int32_t *ranked, int len, const int32_t *rel, int n_rel) {
    int kmax = b->k[b->n_k - 1];
    if (len > kmax) len = kmax;
    for (int i = 0; i < n_rel; i++) b->mark[rel[i]] = 1;
    double m[MREC_METRIC_COUNT][MREC_EVAL_MAX_K];
    user_metrics(b, m, ranked, len);
    /* the user's own head and tail: relevant (for PopREO) or all (PopRSP) items not trained on */
    const mrec_user_items *t = b->train;
    int64_t n_trained = t && user < t->n_rows ? t->row_ptr[user + 1] - t->row_ptr[user] : 0, trained_head = trained_in_head(b, user);
    int64_t head_all = b->n_head - trained_head, tail_all = (b->n_items - b->n_head) - (n_trained - trained_head);
    int64_t head_rel = 0, tail_rel = 0;
    for (int i = 0; i < n_rel; i++)
        if (!trained(b, user, rel[i])) b->head[rel[i]] ? head_rel++ : tail_rel++;
    b->n_users++, b->n_rel_users += n_rel > 0, b->n_covered += len > 0;
    for (int j = 0, r = 0; j < b->n_k; j++) {
        int K = b->k[j] < len ? b->k[j] : len;
        int64_t *count = b->count + (size_t)j * b->n_items;
        double *weight = b->weight + (size_t)j * b->n_items;
        int64_t hits[4] = {0, 0, 0, 0}; /* head, tail, relevant head, relevant tail */
        for (r = 0; r < K; r++) {
            int32_t i = ranked[r];
            count[i]++, weight[i] += 1.0 / K;
            hits[!b->head[i]]++;
            if (b->mark[i]) hits[2 + !b->head[i]]++;
        }
        b->listed[j] += K;
        for (int q = MREC_METRIC_APLT; q <= MREC_METRIC_ARP; q++) b->per_user[q][j] += m[q][j];
        b->rsp[j][0] += hits[0], b->rsp[j][1] += hits[1], b->rsp[j][2] += head_all, b->rsp[j][3] += tail_all;
        if (n_rel) {
            b->per_user[MREC_METRIC_EFD][j] += m[MREC_METRIC_EFD][j], b->per_user[MREC_METRIC_EPC][j] += m[MREC_METRIC_EPC][j];
            b->reo[j][0] += hits[2], b->reo[j][1] += hits[3], b->reo[j][2] += head_rel, b->reo[j][3] += tail_rel;
        }
    }
    for (int i = 0; i < n_rel; i++) b->mark[rel[i]] = 0;
}

/* numpy's std(pr) / mean(pr) of the two groups' ratios. */
static double std_over_mean(const int64_t s[4]) {
    double a = (double)s[0] / (double)s[2], c = (double)s[1] / (double)s[3];
    double mean = (a + c) / 2, da = a - mean, dc = c - mean;
    return sqrt((da * da + dc * dc) / 2) / mean;
}

static int by_count(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void mrec_beyond_result(const mrec_beyond *b, double out[MREC_METRIC_COUNT][MREC_EVAL_MAX_K]) {
    int N = b->n_items;
    int64_t *sorted = malloc(sizeof *sorted * (size_t)N);
    for (int j = 0; j < b->n_k; j++) {
        const int64_t *count = b->count + (size_t)j * N;
        const double *weight = b->weight + (size_t)j * N;
        double C = (double)b->listed[j], entropy = 0;
        int n_rec = 0;
        for (int i = 0; i < N; i++)
            if (count[i]) {
                if (sorted) sorted[n_rec] = count[i];
                n_rec++;
                entropy += weight[i] * (-log((double)count[i] / C) / log(2.0));
            }
        double gini = NAN;
        if (sorted) {
            qsort(sorted, (size_t)n_rec, sizeof *sorted, by_count);
            gini = 0;
            for (int q = 0; q < n_rec; q++) gini += (double)(2 * ((int64_t)q + (N - n_rec) + 1) - N - 1) * ((double)sorted[q] / C);
            gini = 1 - gini / (N - 1);
        }
        double users = b->n_users ? b->n_users : NAN, rel_users = b->n_rel_users ? b->n_rel_users : NAN;
        out[MREC_METRIC_GINI][j] = gini;
        out[MREC_METRIC_SENTROPY][j] = entropy / users;
        out[MREC_METRIC_ITEM_COVERAGE][j] = n_rec;
        out[MREC_METRIC_USER_COVERAGE][j] = b->n_covered;
        out[MREC_METRIC_APLT][j] = b->per_user[MREC_METRIC_APLT][j] / users;
        out[MREC_METRIC_ACLT][j] = b->per_user[MREC_METRIC_ACLT][j] / users;
        out[MREC_METRIC_ARP][j] = b->per_user[MREC_METRIC_ARP][j] / users;
        out[MREC_METRIC_EFD][j] = b->per_user[MREC_METRIC_EFD][j] / rel_users;
        out[MREC_METRIC_EPC][j] = b->per_user[MREC_METRIC_EPC][j] / rel_users;
        out[MREC_METRIC_POP_RSP][j] = b->n_users ? std_over_mean(b->rsp[j]) : NAN;
        out[MREC_METRIC_POP_REO][j] = b->n_rel_users ? std_over_mean(b->reo[j]) : NAN;
    }
    free(sorted);
}
