/* mrec_recsys.h: interaction data, splits and full-ranking evaluation, as
 * MMRec and Elliot do them.
 *
 * Data. Users and items arrive as strings and are remapped to dense ids
 * 0..n-1: when every id of a kind is a non-negative integer they keep their
 * numeric order (so MMRec's already-dense ids, which index its feature
 * matrices, stay the same), otherwise they are numbered in order of first
 * appearance. The maps are kept and can be written out.
 *
 * Evaluation. Full ranking: every item is scored for every user, the user's
 * training items (and, if asked, validation items) are masked, and the top K
 * are taken by partial selection, users in blocks so memory stays (block x
 * items). Metrics are computed per user and averaged over the users with at
 * least one relevant item:
 *   recall     hits / |relevant|                      (MMRec, Elliot)
 *   precision  hits / K
 *   hr         1 if any hit
 *   mrr        1 / rank of the first hit
 *   ndcg       binary gains, ideal over min(|relevant|, K) (MMRec; Elliot with binary relevance)
 *   ndcg_graded  gains 2^(rating - threshold + 1) - 1     (Elliot's nDCG)
 *   map        sum_k P(k) rel(k) / min(|relevant|, K)     (MMRec's MAP)
 *   map_elliot mean of P@1 .. P@K                        (Elliot's MAP)
 * Ties in scores go to the lower item id.
 */
#ifndef MREC_RECSYS_H
#define MREC_RECSYS_H

#include <stdint.h>

#include "../kernels/mrec_kernels.h"

/* ---- interactions ---------------------------------------------------------- */

typedef enum { MREC_SPLIT_TRAIN = 0, MREC_SPLIT_VALID = 1, MREC_SPLIT_TEST = 2 } mrec_split;

typedef struct {
    int64_t n;            /* interactions */
    int32_t *user, *item; /* (n) dense ids */
    float *rating;        /* (n); 1 when the file has none */
    int64_t *timestamp;   /* (n); 0 when the file has none */
    int8_t *split;        /* (n) mrec_split; all train when the file has no split */
    int n_users, n_items;
    char **user_names, **item_names; /* dense id -> the id as written in the file */
    int has_split, has_rating, has_timestamp;
} mrec_interactions;

/* MMRec-style .inter: tab-separated with a header naming the columns; the
 * user column is userID / user_id / user (with or without ":token"), the
 * item column likewise, optional rating, timestamp and x_label (0 train,
 * 1 valid, 2 test). Other columns are ignored. */
mrec_status mrec_load_inter(mrec_interactions *out, const char *path);
/* Elliot-style TSV: user item [rating [timestamp]], no header. */
mrec_status mrec_load_tsv(mrec_interactions *out, const char *path);
/* LightGCN / NGCF: lines "user item item ..." in train.txt and test.txt:
 * the folder holding them, or the path of the training file (test.txt is
 * read from the same folder). */
mrec_status mrec_load_lightgcn(mrec_interactions *out, const char *path);
void mrec_interactions_free(mrec_interactions *x);
/* Writes "<dense id>\t<original id>" per line, for users or items. */
mrec_status mrec_write_id_map(const mrec_interactions *x, int items, const char *path);

/* ---- per-user lists (CSR) ------------------------------------------------------ */

typedef struct {
    int n_rows, n_cols;
    int64_t *row_ptr; /* (n_rows + 1) */
    int32_t *col;     /* (nnz), sorted within a row, no duplicates */
    float *val;       /* (nnz) the rating of each pair */
} mrec_user_items;

/* The pairs of one split as user -> items (duplicates merged, the last rating kept). */
mrec_status mrec_user_items_build(mrec_user_items *out, const mrec_interactions *x, mrec_split split);
void mrec_user_items_free(mrec_user_items *m);

/* ---- evaluation ----------------------------------------------------------------- */

typedef enum {
    MREC_METRIC_RECALL, MREC_METRIC_PRECISION, MREC_METRIC_HR, MREC_METRIC_MRR, MREC_METRIC_NDCG,
    MREC_METRIC_NDCG_GRADED, MREC_METRIC_MAP, MREC_METRIC_MAP_ELLIOT, MREC_METRIC_COUNT
} mrec_metric;

const char *mrec_metric_name(mrec_metric m);
/* MREC_ERR_ARG naming the metric if unknown. */
mrec_status mrec_metric_parse(const char *name, mrec_metric *out);

#define MREC_EVAL_MAX_K 8

/* Scores for users [u0, u0 + n) over all items into scores (n, n_items). */
typedef mrec_status (*mrec_score_fn)(void *model, int u0, int n, float *scores);

typedef struct {
    const mrec_user_items *relevant;  /* the split evaluated (valid or test) */
    const mrec_user_items *masked[2]; /* items never recommended (train; valid for test), or NULL */
    int n_k, k[MREC_EVAL_MAX_K];      /* cut-offs, ascending */
    float rel_threshold;              /* relevant: rating >= threshold (graded gains use it too) */
    int block_users;                  /* users scored at a time (0: 1024) */
} mrec_eval_spec;

typedef struct {
    double value[MREC_METRIC_COUNT][MREC_EVAL_MAX_K]; /* mean over evaluated users */
    int n_users;                                      /* users with >= 1 relevant item */
} mrec_eval_result;

mrec_status mrec_evaluate(mrec_eval_result *out, const mrec_eval_spec *spec, mrec_score_fn score, void *model,
                          mrec_pool *pool);

/* The metrics of one user from a ranked list. ranked (>= the largest K) holds
 * item ids best first; gain (n_items) is the user's gain per item, 0 if not
 * relevant; sorted_gains (n_rel) the non-zero gains, largest first. */
void mrec_user_metrics(double out[MREC_METRIC_COUNT][MREC_EVAL_MAX_K], const int32_t *ranked, const double *gain,
                       const double *sorted_gains, int n_rel, const int *k, int n_k);

#endif
