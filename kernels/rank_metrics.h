/* rank_metrics.h: one user's accuracy metrics from a ranked list, for the CPU
 * and the GPU alike (recsys' mrec_user_metrics, the CPU's and the GPU's
 * mrec_rank_metrics), so that a list gives the same bits wherever it is
 * scored.
 *
 * The list is walked best first: mrec_rank_walk_step takes the gain of the
 * item at rank r (0: not relevant) and that rank's discount 1 / log2(r + 2);
 * mrec_rank_walk_emit writes the metrics at a cut-off K once the walk has
 * taken K items. The ideal DCGs come from the user's gains sorted largest
 * first, added in that order over the first min(K, relevant) ranks. Every
 * operation is a rounded double add, multiply or divide in a fixed order;
 * the GPU's are the _rn intrinsics, which nvcc does not fuse into an FMA, so
 * the two devices agree to the bit. The discounts are computed once on the
 * host (the GPU's log2 may round differently) and handed to the GPU.
 */
#ifndef MREC_RANK_METRICS_H
#define MREC_RANK_METRICS_H

#include <stdint.h>

#ifdef __CUDACC__
#define MREC_RANK_HD __host__ __device__ __forceinline__
#else
#define MREC_RANK_HD static inline
#endif

#if defined(__CUDA_ARCH__)
#define MREC_RANK_ADD(a, b) __dadd_rn((a), (b))
#define MREC_RANK_MUL(a, b) __dmul_rn((a), (b))
#define MREC_RANK_DIV(a, b) __ddiv_rn((a), (b))
#else
#define MREC_RANK_ADD(a, b) ((a) + (b))
#define MREC_RANK_MUL(a, b) ((a) * (b))
#define MREC_RANK_DIV(a, b) ((a) / (b))
#endif

/* The accuracy metrics in recsys' mrec_metric order (its first eight). */
enum {
    MREC_RANK_RECALL, MREC_RANK_PRECISION, MREC_RANK_HR, MREC_RANK_MRR, MREC_RANK_NDCG, MREC_RANK_NDCG_GRADED,
    MREC_RANK_MAP, MREC_RANK_MAP_ELLIOT, MREC_RANK_METRICS
};
#define MREC_RANK_MAX_K 8 /* cut-offs at most (recsys' MREC_EVAL_MAX_K) */

typedef struct {
    int hits, first_hit; /* first_hit: the rank of the first relevant item, -1 before it */
    double dcg, dcg_graded, ap, sum_precision;
} mrec_rank_walk;

MREC_RANK_HD void mrec_rank_walk_start(mrec_rank_walk *w) {
    w->hits = 0, w->first_hit = -1;
    w->dcg = w->dcg_graded = w->ap = w->sum_precision = 0.0;
}

/* The item at rank r (from 0), of gain g (> 0: relevant), with discount disc. */
MREC_RANK_HD void mrec_rank_walk_step(mrec_rank_walk *w, int r, double g, double disc) {
    if (g > 0) {
        w->hits++;
        if (w->first_hit < 0) w->first_hit = r;
        w->dcg = MREC_RANK_ADD(w->dcg, disc);
        w->dcg_graded = MREC_RANK_ADD(w->dcg_graded, MREC_RANK_MUL(g, disc));
        w->ap = MREC_RANK_ADD(w->ap, MREC_RANK_DIV((double)w->hits, (double)(r + 1)));
    }
    w->sum_precision = MREC_RANK_ADD(w->sum_precision, MREC_RANK_DIV((double)w->hits, (double)(r + 1)));
}

/* The metrics at cut-off K (the walk has taken K items) into out[m * stride], m in the enum's order; n_rel >= 1
 * relevant items, idcg and idcg_graded the ideal DCGs at K. */
MREC_RANK_HD void mrec_rank_walk_emit(const mrec_rank_walk *w, double *out, int stride, int K, int n_rel, double idcg,
                                      double idcg_graded) {
    out[MREC_RANK_RECALL * stride] = MREC_RANK_DIV((double)w->hits, (double)n_rel);
    out[MREC_RANK_PRECISION * stride] = MREC_RANK_DIV((double)w->hits, (double)K);
    out[MREC_RANK_HR * stride] = w->hits > 0;
    out[MREC_RANK_MRR * stride] = w->first_hit >= 0 ? MREC_RANK_DIV(1.0, (double)(w->first_hit + 1)) : 0.0;
    out[MREC_RANK_NDCG * stride] = MREC_RANK_DIV(w->dcg, idcg);
    out[MREC_RANK_NDCG_GRADED * stride] = w->dcg_graded > 0 ? MREC_RANK_DIV(w->dcg_graded, idcg_graded) : 0.0;
    out[MREC_RANK_MAP * stride] = MREC_RANK_DIV(w->ap, (double)(n_rel < K ? n_rel : K));
    out[MREC_RANK_MAP_ELLIOT * stride] = MREC_RANK_DIV(w->sum_precision, (double)K);
}

/* The ideal DCGs at each cut-off k[0] < ... < k[n_k - 1] from sorted (n_rel gains, largest first):
 * ideal[2 i] binary, ideal[2 i + 1] graded. */
MREC_RANK_HD void mrec_rank_ideal(double *ideal, const double *sorted, int n_rel, const double *disc, const int *k, int n_k) {
    double idcg = 0.0, idcg_graded = 0.0;
    for (int i = 0, r = 0; i < n_k; i++) {
        for (; r < k[i] && r < n_rel; r++) {
            idcg = MREC_RANK_ADD(idcg, disc[r]);
            idcg_graded = MREC_RANK_ADD(idcg_graded, MREC_RANK_MUL(sorted[r], disc[r]));
        }
        ideal[2 * i] = idcg, ideal[2 * i + 1] = idcg_graded;
    }
}

/* A split's relevant items over all users, laid out once for mrec_rank_metrics (kernels/mrec_kernels.h) in
 * the memory of the context that evaluates. */
typedef struct {
    const int64_t *row_ptr; /* (n_rows + 1) */
    const int32_t *col;     /* (nnz) sorted within a row */
    const double *gain;     /* (nnz) each pair's gain, 0 for one under the relevance threshold */
    const int32_t *n_rel;   /* (n_rows) the user's pairs of nonzero gain; a user with none is not counted */
    const double *ideal;    /* (n_rows, n_k, 2) mrec_rank_ideal of the user's gains */
    const double *disc;     /* (k[n_k - 1]) 1 / log2(r + 2), from the host */
    int n_rows, n_k, k[MREC_RANK_MAX_K];
} mrec_rank_relevance;

/* The running sums of mrec_rank_metrics: sum[m][i] over the users counted so far, added in user order. */
typedef struct {
    double sum[MREC_RANK_METRICS][MREC_RANK_MAX_K];
    int64_t users; /* users counted: those with a relevant pair */
} mrec_rank_sums;

/* User u's metrics (out (MREC_RANK_METRICS, n_k)) from its list top (k[n_k - 1] items, best first); the gain of
 * an item found by bisection in the user's sorted row. n_rel[u] >= 1. */
MREC_RANK_HD void mrec_rank_user(double *out, const int32_t *top, const mrec_rank_relevance *rel, int u) {
    int64_t lo0 = rel->row_ptr[u], hi0 = rel->row_ptr[u + 1];
    int n_rel = rel->n_rel[u], kmax = rel->k[rel->n_k - 1];
    const double *ideal = rel->ideal + (int64_t)u * rel->n_k * 2;
    mrec_rank_walk w;
    mrec_rank_walk_start(&w);
    for (int r = 0, next = 0; r < kmax; r++) {
        int32_t item = top[r];
        int64_t lo = lo0, hi = hi0;
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (rel->col[mid] < item) lo = mid + 1;
            else hi = mid;
        }
        mrec_rank_walk_step(&w, r, lo < hi0 && rel->col[lo] == item ? rel->gain[lo] : 0.0, rel->disc[r]);
        if (r + 1 == rel->k[next]) {
            mrec_rank_walk_emit(&w, out + next, rel->n_k, rel->k[next], n_rel, ideal[2 * next], ideal[2 * next + 1]);
            next++;
        }
    }
}

#endif
