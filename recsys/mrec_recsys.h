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

/* What a loader does with a (user, item) pair written more than once, in one
 * file or across the files of a fixed split. */
typedef enum {
    MREC_DUPLICATES_DROP, /* one row kept, the others dropped and counted in a notice (default) */
    MREC_DUPLICATES_ERROR /* the second row is an error naming both lines */
} mrec_duplicates;

/* Where notices go: one line each, without a newline. */
typedef void (*mrec_notice_fn)(void *ctx, const char *line);

typedef struct {
    mrec_duplicates duplicates;
    int64_t max_line;      /* the longest line accepted, in bytes (0: 16 MiB) */
    mrec_notice_fn notice; /* rows dropped, users without training pairs; NULL: not reported (still counted) */
    int resplit;           /* the caller replaces the file's split: its parts are checked after that, not here */
    void *notice_ctx;
} mrec_load_options;

/* Drop duplicates, 16 MiB lines, no notice callback. */
mrec_load_options mrec_load_defaults(void);

typedef struct {
    int64_t n;            /* interactions */
    int32_t *user, *item; /* (n) dense ids */
    float *rating;        /* (n); 1 when the file has none */
    int64_t *timestamp;   /* (n); 0 when the file has none */
    int8_t *split;        /* (n) mrec_split; all train when the file has no split */
    int n_users, n_items;
    char **user_names, **item_names; /* dense id -> the id as written in the file */
    int has_split, has_rating, has_timestamp;
    char source[1024];      /* the file or files read, for messages ("" when built in memory) */
    int64_t n_duplicates;   /* rows dropped at loading: a pair again in the same split */
    int64_t n_cross_split;  /* rows dropped at loading: a pair already in an earlier split */
    mrec_notice_fn notice;  /* from the load options, for the notices of later steps (splits) */
    void *notice_ctx;
    int rating_decimal;     /* a rating was written with a point or an exponent ("5.0"): pandas reads the column as floats */
    int timestamp_dates;    /* the timestamps were dates ("2020-06-26"), now seconds since 1970-01-01 UTC */
} mrec_interactions;

/* Every loader reads through one checked path (recsys/data.c):
 *
 *   files    regular files only: a folder, FIFO or device is refused at once
 *            (opened non-blocking, checked with fstat), never read or waited on;
 *   lines    "\n" or "\r\n" ends; a UTF-8 byte-order mark is skipped; blank lines
 *            are skipped; a NUL byte, any other control character (tab aside)
 *            or a line longer than max_line is an error naming file and line;
 *   columns  a row with too few or too many columns is an error naming file,
 *            line and the count expected; an empty or over-long (4096 bytes) id too;
 *   numbers  the whole field must be a decimal number (strtod / strtoll with
 *            nothing left over: "12abc", "0x10", " 5" are errors naming file,
 *            line and column); ratings are finite floats, negative allowed (as
 *            Elliot reads any number; NaN and infinities never); timestamps are
 *            whole, non-negative seconds within int64; split labels are 0, 1, 2;
 *   empty    an empty file, a header with no rows, or a split file with no rows
 *            is an error naming the file;
 *   pairs    a (user, item) pair is kept once. Duplicates are dropped by default
 *            (counted in a notice), or an error with MREC_DUPLICATES_ERROR. The
 *            row kept is the one in the earliest split (train, then valid, then
 *            test), then the earliest timestamp, then the first line, so for
 *            pre-split data (an .inter split column, Elliot's fixed files,
 *            train.txt / test.txt) a pair found in train and test stays in
 *            train only: no pair is ever in two splits;
 *   splits   pre-split data must have training and test pairs (an error naming
 *            the file otherwise); users and items without training pairs are
 *            kept (scored, never trained) and counted in a notice.
 *
 * MMRec-style .inter: tab-separated with a header naming the columns; the
 * user column is userID / user_id / user (with or without ":token"), the
 * item column likewise, optional rating, timestamp and x_label or split (0 train,
 * 1 valid, 2 test). Other columns are ignored. */
mrec_status mrec_load_inter(mrec_interactions *out, const char *path);
/* Elliot-style TSV: user item [rating [timestamp]], no header. */
mrec_status mrec_load_tsv(mrec_interactions *out, const char *path);
/* Elliot's fixed splits: train, valid (may be NULL) and test files of that
 * format, each pair labelled by its file; ids shared across the files. */
mrec_status mrec_load_tsv_splits(mrec_interactions *out, const char *train, const char *valid, const char *test);
/* LightGCN / NGCF: lines "user item item ..." in train.txt and test.txt:
 * the folder holding them, or the path of the training file (test.txt is
 * read from the same folder). A user alone on a line adds nothing. */
mrec_status mrec_load_lightgcn(mrec_interactions *out, const char *path);
/* The same with options (NULL: mrec_load_defaults()). */
mrec_status mrec_load_inter_opt(mrec_interactions *out, const char *path, const mrec_load_options *opt);
mrec_status mrec_load_tsv_opt(mrec_interactions *out, const char *path, const mrec_load_options *opt);
mrec_status mrec_load_tsv_splits_opt(mrec_interactions *out, const char *train, const char *valid, const char *test,
                                     const mrec_load_options *opt);
mrec_status mrec_load_lightgcn_opt(mrec_interactions *out, const char *path, const mrec_load_options *opt);
/* The split of x checked before training: no training or no test pairs (or
 * no validation pairs when want_valid) is an error naming x->source; users
 * and items with no training pairs are counted in a notice (they stay: the
 * reference frameworks score them too). Loaders of pre-split data and
 * mrec_split_users call it. */
mrec_status mrec_check_split(const mrec_interactions *x, int want_valid);
/* A notice through x->notice (nothing when NULL). */
void mrec_interactions_notice(const mrec_interactions *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mrec_interactions_free(mrec_interactions *x);
/* Writes "<dense id>\t<original id>" per line, for users or items. */
mrec_status mrec_write_id_map(const mrec_interactions *x, int items, const char *path);

/* ---- filters and splits ----------------------------------------------------------- */

/* Keeps interactions with rating >= min_rating, then removes users with
 * fewer than user_k and items with fewer than item_k interactions, repeated
 * until nothing changes when iterative (Elliot's iterative k-core), once
 * otherwise. 0 disables a part. Ids are renumbered over what is left (same
 * rule as loading). Nothing left is an error; so is, for data split in its
 * files, a part left empty (mrec_check_split). */
mrec_status mrec_filter(mrec_interactions *x, float min_rating, int user_k, int item_k, int iterative);

/* Per-user splits into train / valid / test (x->split), seeded:
 *   MREC_SPLITTER_MMREC     MMRec's preprocessing: each user's interactions in random
 *                           order; n < 10: n-2 train, 1 valid, 1 test; otherwise
 *                           int(0.2 n) held out, half (rounded down) valid, the rest test
 *   MREC_SPLITTER_RANDOM    random hold-out: floor(n (1 - test_ratio)) train, the rest
 *                           test; then the same rule with valid_ratio on the train part
 *   MREC_SPLITTER_TEMPORAL  the same counts, the latest interactions held out
 *   MREC_SPLITTER_LEAVE_N   the last n_out interactions by time to test (and n_out to
 *                           valid when valid_ratio > 0), for users with enough left
 * Then mrec_check_split: no training or test pairs, or no validation pairs
 * when some were asked for (MMRec's rule, valid_ratio > 0), is an error naming
 * the data's file; users and items left without training pairs are counted
 * in a notice. Pairs are unique after loading, so no pair lands in two parts. */
typedef enum { MREC_SPLITTER_MMREC, MREC_SPLITTER_RANDOM, MREC_SPLITTER_TEMPORAL, MREC_SPLITTER_LEAVE_N } mrec_splitter;

mrec_status mrec_split_users(mrec_interactions *x, mrec_splitter how, double test_ratio, double valid_ratio, int n_out,
                       uint64_t seed);

/* ---- Elliot's splitter and prefilters, exactly ----------------------------------- */

/* One of Elliot's splittings (test_splitting or validation_splitting):
 *   MREC_ELLIOT_RANDOM      random_subsampling: per user, in pandas' groupby
 *                           order (ids sorted as numbers when every id is an integer,
 *                           else as text), the flags [0] * train + [1] * (n - train)
 *                           shuffled by numpy's legacy RandomState, the rows of that
 *                           user in data order taking them; train = floor(n (1 - ratio))
 *                           or n - leave_n (a user with fewer than leave_n rows is an
 *                           error: Elliot stops there too)
 *   MREC_ELLIOT_TEMPORAL    temporal_hold_out: with ratio, the rows ranked past
 *                           floor(n (1 - ratio)) by time (ties in data order); with
 *                           leave_n, the leave_n latest (ties: the earlier row is
 *                           the later one, pandas' rank(method='first', ascending=False))
 *   MREC_ELLIOT_FIXED_TIME  fixed_timestamp: every row with timestamp >= cut; with
 *                           best, the cut is the timestamp of the data that leaves the
 *                           most users with >= min_below rows before it and >= min_over
 *                           from it on (ties: the latest such timestamp)
 *   MREC_ELLIOT_KFOLD       random_cross_validation: per user in groupby order, the
 *                           user's i-th row (data order) in fold i mod folds; no draws
 * Random subsampling with folds > 1 draws fold after fold, every user each time (fold f
 * holds out what its flags mark); the other strategies make one fold.
 * The validation splitting runs on the training rows the test splitting left, with
 * the same random stream (np.random.seed once, before the test splitting): Elliot splits
 * every test fold first, then the training rows of test fold 0 into its validation folds,
 * then those of test fold 1, and so on. */
typedef enum { MREC_ELLIOT_RANDOM, MREC_ELLIOT_TEMPORAL, MREC_ELLIOT_FIXED_TIME, MREC_ELLIOT_KFOLD } mrec_elliot_strategy;

#define MREC_ELLIOT_MAX_FOLDS 100

typedef struct {
    mrec_elliot_strategy strategy;
    double ratio;            /* test_ratio in (0, 1), or 0 when leave_n is given */
    int leave_n;             /* leave_n_out >= 1, or 0 */
    int folds;               /* random_subsampling: 1 (0 reads as 1) to MREC_ELLIOT_MAX_FOLDS; random_cross_validation: >= 2 */
    int best;                /* fixed_timestamp: "best" */
    int64_t cut;             /* fixed_timestamp: the timestamp (seconds) */
    int min_below, min_over; /* fixed_timestamp best: Elliot's defaults are 1 */
} mrec_elliot_part;

/* How many folds a part makes: its folds for random_subsampling and random_cross_validation, else 1. */
int mrec_elliot_part_folds(const mrec_elliot_part *p);

/* Test split by `test`, then validation by `valid` (NULL: none) on the training rows; x->split set,
 * then mrec_check_split. seed is Elliot's random_seed, in [0, 2^32) as numpy wants it. Row order
 * is the data's, as Elliot keeps it: x must come from one file, unsplit or resplit. The split is
 * test fold test_fold and, within it, validation fold valid_fold (0 and 0 with one fold each). */
mrec_status mrec_split_elliot_fold(mrec_interactions *x, const mrec_elliot_part *test, const mrec_elliot_part *valid, uint64_t seed,
                                   int test_fold, int valid_fold);
/* The first fold of each: mrec_split_elliot_fold(x, test, valid, seed, 0, 0). */
mrec_status mrec_split_elliot(mrec_interactions *x, const mrec_elliot_part *test, const mrec_elliot_part *valid, uint64_t seed);

/* "random:0.2", "random:n=1", "temporal:0.2", "temporal:n=1", "timestamp:1609786061",
 * "timestamp:2021-01-04", "timestamp:best" (min_below = min_over = 1), "timestamp:best:2:1"
 * (min_below 2, min_over 1), "kfold:5" (random_cross_validation, 5 folds); random ones may end in
 * ",folds=N" (random:0.2,folds=5): one part, or MREC_ERR_ARG naming what is wrong. */
mrec_status mrec_elliot_part_parse(const char *s, mrec_elliot_part *out);

/* The rows of one split as Elliot's save_on_disk writes them (pandas to_csv, tab, no header, no
 * index): user, item, rating, [timestamp], in data order. Integer ids are written as pandas reads
 * them ("0878013001" as 878013001), other ids as given; ratings as integers, or as Python floats
 * ("5.0") when the file wrote any with a point; without ratings 1 (Elliot's binarized column);
 * timestamps as integers, or dates as "YYYY-MM-DD[ HH:MM:SS]". */
mrec_status mrec_write_elliot_split(const mrec_interactions *x, mrec_split split, const char *path);

/* Elliot's prefiltering strategies, applied in the order given:
 *   MREC_PREFILTER_RATING     global_threshold: rating >= threshold kept
 *   MREC_PREFILTER_USER_CORE  user_k_core: users with fewer than core rows leave (one pass)
 *   MREC_PREFILTER_ITEM_CORE  item_k_core: items likewise
 *   MREC_PREFILTER_KCORE      iterative_k_core: user then item passes until nothing changes
 *   MREC_PREFILTER_ROUNDS     n_rounds_k_core: `rounds` user-then-item passes */
typedef enum {
    MREC_PREFILTER_RATING, MREC_PREFILTER_USER_CORE, MREC_PREFILTER_ITEM_CORE, MREC_PREFILTER_KCORE, MREC_PREFILTER_ROUNDS
} mrec_prefilter_kind;

typedef struct {
    mrec_prefilter_kind kind;
    double threshold;
    int core, rounds;
} mrec_prefilter;

mrec_status mrec_prefilter_apply(mrec_interactions *x, const mrec_prefilter *steps, int n_steps);
/* "rating:4,user:5,item:5,kcore:10,rounds:10:2" -> steps (at most cap), or MREC_ERR_ARG. */
mrec_status mrec_prefilter_parse(const char *s, mrec_prefilter *steps, int cap, int *n_steps);

/* "2020-06-26", "2020-06-26 13:45:00", "2020-06-26T13:45:00.250Z", "...+02:00": seconds since
 * 1970-01-01 UTC (a zone offset applied, fractions dropped); 0 on success, -1 when s is not such
 * a date or the date does not exist (2021-02-29). */
int mrec_parse_date(const char *s, int64_t *seconds);

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

/* The accuracy metrics, then Elliot's beyond-accuracy ones (beyond.c), which
 * are computed from the top lists and the training popularity. */
typedef enum {
    MREC_METRIC_RECALL, MREC_METRIC_PRECISION, MREC_METRIC_HR, MREC_METRIC_MRR, MREC_METRIC_NDCG,
    MREC_METRIC_NDCG_GRADED, MREC_METRIC_MAP, MREC_METRIC_MAP_ELLIOT,
    MREC_METRIC_EFD, MREC_METRIC_EPC, MREC_METRIC_GINI, MREC_METRIC_SENTROPY, MREC_METRIC_ITEM_COVERAGE,
    MREC_METRIC_USER_COVERAGE, MREC_METRIC_APLT, MREC_METRIC_ACLT, MREC_METRIC_ARP, MREC_METRIC_POP_REO,
    MREC_METRIC_POP_RSP, MREC_METRIC_COUNT
} mrec_metric;

#define MREC_METRIC_FIRST_BEYOND MREC_METRIC_EFD

const char *mrec_metric_name(mrec_metric m);
/* MREC_ERR_ARG naming the metric if unknown. */
mrec_status mrec_metric_parse(const char *name, mrec_metric *out);
/* 1 when the metric has one value per user (its mean over users is the
 * reported value), 0 for the ones Elliot computes over all lists at once
 * (Gini, SEntropy, ItemCoverage, UserCoverage, PopREO, PopRSP). */
int mrec_metric_per_user(mrec_metric m);

#define MREC_EVAL_MAX_K 8

/* Scores for users [u0, u0 + n) over all items into scores (n, n_items), in
 * memory on the device of the context evaluating (the model's own). */
#define MREC_RANK_BLOCK 1024 /* users scored at a time by mrec_recommend and mrec_evaluate */
typedef mrec_status (*mrec_score_fn)(void *model, int u0, int n, float *scores);

typedef struct {
    const mrec_user_items *relevant;  /* the split evaluated (valid or test) */
    const mrec_user_items *masked[2]; /* items never recommended (train; valid for test), or NULL */
    int n_k, k[MREC_EVAL_MAX_K];      /* cut-offs, ascending */
    float rel_threshold;              /* relevant: rating >= threshold (graded gains use it too) */
    int block_users;                  /* users scored at a time (0: MREC_RANK_BLOCK) */
    int accuracy_only;                /* 1: the accuracy metrics only (Elliot's beyond-accuracy ones NaN), whose
                                       * lists then never leave the context's device */
} mrec_eval_spec;

typedef struct {
    double value[MREC_METRIC_COUNT][MREC_EVAL_MAX_K]; /* mean over evaluated users */
    int n_users;                                      /* users with >= 1 relevant item */
    /* where an evaluation's time went on the host: computing the metrics from the lists, and waiting for the
     * device's lists (on a GPU the metrics of one block overlap the ranking of the next) */
    double host_seconds, wait_seconds;
} mrec_eval_result;

mrec_status mrec_evaluate(mrec_eval_result *out, const mrec_eval_spec *spec, mrec_score_fn score, void *model,
                          mrec_context *ctx);
/* The same in three steps, for a split evaluated again and again (each epoch of a fit): what depends only on
 * the spec (the masks, each user's gains and ideal DCGs) is made once by open and kept on the context's device;
 * spec's lists must outlive the evaluator. */
typedef struct mrec_evaluator mrec_evaluator;
mrec_status mrec_evaluator_open(mrec_evaluator **out, const mrec_eval_spec *spec, mrec_context *ctx);
mrec_status mrec_evaluator_run(mrec_evaluator *ev, mrec_eval_result *out, mrec_score_fn score, void *model);
void mrec_evaluator_close(mrec_evaluator *ev);

/* The top k items of every user (n_users, k), best first, masked items
 * excluded, users in blocks of MREC_RANK_BLOCK. */
mrec_status mrec_recommend(int32_t *top, int n_users, int n_items, int k, const mrec_user_items *masked[2],
                           mrec_score_fn score, void *model, mrec_context *ctx);

/* The metrics of one user from a ranked list. ranked (>= the largest K) holds
 * item ids best first; gain (n_items) is the user's gain per item, 0 if not
 * relevant; sorted_gains (n_rel) the non-zero gains, largest first. */
void mrec_user_metrics(double out[MREC_METRIC_COUNT][MREC_EVAL_MAX_K], const int32_t *ranked, const double *gain,
                       const double *sorted_gains, int n_rel, const int *k, int n_k);

/* Two-sided p-values for the difference between paired per-user values x
 * and y (n each): the paired t-test (scipy's ttest_rel) and the Wilcoxon
 * signed-rank test with zero differences dropped, average ranks for ties,
 * tie-corrected normal approximation, no continuity correction (scipy's
 * wilcoxon for more than 50 pairs). NaN when undefined (no differences). */
double mrec_paired_ttest_p(const double *x, const double *y, int n);
double mrec_wilcoxon_p(const double *x, const double *y, int n);

/* Multiple-testing corrections of n p-values (adjusted, in the input order,
 * capped at 1; NaN p-values are left out of the family and stay NaN), as
 * statsmodels' multipletests: Bonferroni p * n; Holm's step-down
 * max_{j <= i} (n - j) p_(j) over the ascending order; Benjamini-Hochberg's
 * step-up min_{j >= i} n p_(j) / (j + 1). Tied p-values get one value. */
typedef enum { MREC_ADJUST_BONFERRONI, MREC_ADJUST_HOLM, MREC_ADJUST_BH } mrec_adjust;
mrec_status mrec_adjust_pvalues(double *adjusted, const double *p, int n, mrec_adjust how);

/* ---- Elliot's beyond-accuracy metrics (beyond.c) -------------------------------
 * As elliot/evaluation/metrics defines them, over the lists of the users with
 * at least one item in the split evaluated (Elliot drops the others before any
 * metric), each list cut at K (a list may be shorter: a user with fewer
 * unmasked items). Popularity is the number of training users of an item;
 * the short head is the most popular items, ties by lower item index, until
 * they hold 80 % of the training pairs (the item that crosses the line is in);
 * the rest, never-trained items too, is the long tail. The catalogue is every
 * item of the data (Elliot's is the training items).
 *   EFD: per user with a relevant item, sum_r rel(i_r) disc(r) nov(i_r) / sum_r disc(r),
 *        disc(r) = 1 / log2(r + 2), nov(i) = -log2(pop_i / training pairs), an item
 *        never trained taking the largest novelty of a trained one; mean over those users.
 *   EPC: the same with nov(i) = 1 - pop_i / (users with a training item).
 *   Gini: 1 - sum_j (2 (j + N - n_rec + 1) - N - 1) c_(j) / C / (N - 1), c_(j) the n_rec
 *        non-zero recommendation counts ascending, C their sum, N the catalogue size.
 *   SEntropy: sum_i w_i (-log2(c_i / C)) / users, w_i the sum of 1 / |list| over the lists holding i.
 *   ItemCoverage: distinct items recommended (a count). UserCoverage: users with a non-empty
 *        list (the whole list, whatever K).
 *   APLT: mean over users of |list ∩ long tail| / |list|; ACLT: of |list ∩ long tail|;
 *        ARP: of sum pop / |list| (an empty list counts 0; Elliot divides by zero there).
 *   PopRSP: std / mean (population std) of (recommended short-head / short-head items the
 *        user did not train on, the same for the long tail), each summed over users.
 *   PopREO: the same over the users with a relevant item, counting only relevant
 *        recommended items over the relevant items the user did not train on. */
typedef struct mrec_beyond mrec_beyond;

/* train (n_users, n_items) the training pairs (NULL: no popularity); k (n_k) the cut-offs, ascending. */
mrec_status mrec_beyond_open(mrec_beyond **out, const mrec_user_items *train, int n_items, const int *k, int n_k);
/* Adds one user's list: ranked (len, best first, len <= the largest K), rel (n_rel) the
 * user's relevant items in the split. Users are added in a fixed order so the sums are. */
void mrec_beyond_add(mrec_beyond *b, int user, const int32_t *ranked, int len, const int32_t *rel, int n_rel);
/* The per-user metrics of one list (EFD and EPC 0 without a relevant item); the others untouched. */
void mrec_beyond_user(const mrec_beyond *b, double out[MREC_METRIC_COUNT][MREC_EVAL_MAX_K], const int32_t *ranked, int len,
                      const int32_t *rel, int n_rel);
/* The metrics over the users added (NaN where Elliot's is undefined: no users). */
void mrec_beyond_result(const mrec_beyond *b, double out[MREC_METRIC_COUNT][MREC_EVAL_MAX_K]);
void mrec_beyond_close(mrec_beyond *b);

/* ---- graphs ---------------------------------------------------------------------- */

/* The symmetric normalized bipartite adjacency of the training pairs, as
 * LightGCN and NGCF (MMRec's get_norm_adj_mat) build it: nodes are users
 * 0..U-1 then items U..U+I-1, A[u][U+i] = A[U+i][u] = 1 for each pair, and
 * Â = D^-1/2 A D^-1/2 with D the degrees plus 1e-7. Rows sorted by column. */
typedef struct {
    int n_nodes;
    int64_t *row_ptr; /* (n_nodes + 1) */
    int32_t *col;
    float *val;
} mrec_graph;

mrec_status mrec_graph_normalized(mrec_graph *out, const mrec_user_items *train);
/* The same over a list of (user, item) pairs, degrees counted over them
 * (FREEDOM's pruned graphs). */
mrec_status mrec_graph_from_pairs(mrec_graph *out, int n_users, int n_items, const int32_t *user, const int32_t *item,
                                  int64_t n);
/* idx, val (n, k): each row's k most cosine-similar rows of x (n, dim), best
 * first, ties to the lower index, a zero row similar to nothing; val may be
 * NULL. Computed a block of rows at a time; x, idx and val are host memory
 * on any context, and a GPU context makes the products on its device. */
mrec_status mrec_knn_rows(int32_t *idx, float *val, const float *x, int n, int dim, int k, mrec_context *ctx);
/* FREEDOM's frozen item graph: for each modality, every item's k nearest
 * items by cosine similarity (itself included; ties to the lower id; a zero
 * vector is similar to nothing), weight 1, normalized D^-1/2 A D^-1/2 with D
 * the row sums + 1e-7; then the modalities' graphs summed with the given
 * weights. Similarities are computed in blocks of rows: memory O(n k), never
 * n x n. */
mrec_status mrec_graph_knn(mrec_graph *out, const float *const *x, const int *dim, const float *weight, int n_modalities,
                           int n_items, int k, mrec_context *ctx);
/* The same through a cache folder (NULL: none): the file is named by a hash
 * of every feature value, the sizes, k and the weights, so other features
 * never reuse a stale graph. A file that does not check out is rebuilt; a
 * cache that cannot be written costs only the reuse. */
mrec_status mrec_graph_knn_cached(mrec_graph *out, const float *const *x, const int *dim, const float *weight,
                                  int n_modalities, int n_items, int k, const char *cache_dir, int *from_cache,
                                  mrec_context *ctx);
void mrec_graph_free(mrec_graph *g);
/* LightGCN's layer mean: final (N, d) = (E + Â E + .. + Â^L E) / (L + 1); a, b are
 * (N, d) scratch. The backward: dE = (dF + Â^T dF + .. + (Â^T)^L dF) / (L + 1), with
 * Â itself where it is symmetric (the faster product). */
mrec_status mrec_graph_layer_mean(float *final, const float *ego, const mrec_graph *g, int layers, int d, float *a,
                                  float *b, mrec_context *ctx);
mrec_status mrec_graph_layer_mean_back(float *dego, const float *dfinal, const mrec_graph *g, int symmetric, int layers,
                                       int d, float *a, float *b, mrec_context *ctx);

/* ---- training ---------------------------------------------------------------------- */

/* SplitMix64's finalizer: a bijective 64-bit mix, the one hash behind the
 * generator, the per-user split shuffles and NGCF's dropout masks (inline:
 * a dropout mask calls it once per element). */
static inline uint64_t mrec_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A seeded generator (splitmix64): the same seed gives the same run. */
typedef struct { uint64_t state; } mrec_rng;
uint64_t mrec_rng_next(mrec_rng *r);
double mrec_rng_uniform(mrec_rng *r);        /* [0, 1) */
double mrec_rng_normal(mrec_rng *r);         /* N(0, 1), Box-Muller */
uint32_t mrec_rng_below(mrec_rng *r, uint32_t n);

/* BPR triples for one epoch, as MMRec's TrainDataLoader makes them: every
 * training pair once, in a shuffled order, each with one negative drawn
 * uniformly from the items seen in training and not in the user's history. */
typedef struct {
    int64_t n;                   /* training pairs */
    int32_t *user, *pos, *neg;   /* (n) this epoch's triples */
    const mrec_user_items *train;
    int32_t *train_items;        /* the distinct items of the training pairs */
    int n_train_items;
    int32_t *users;              /* the users with training pairs */
    int n_users;
} mrec_bpr_sampler;

mrec_status mrec_bpr_sampler_init(mrec_bpr_sampler *s, const mrec_user_items *train);
void mrec_bpr_sampler_epoch(mrec_bpr_sampler *s, mrec_rng *rng);
/* The same count of triples as Elliot's samplers make them: each batch of
 * batch_size takes distinct users uniformly (all of them, in turn, when the
 * batch is larger), one positive uniformly from the user's items and one
 * negative as above. */
void mrec_bpr_sampler_epoch_users(mrec_bpr_sampler *s, mrec_rng *rng, int batch_size);
void mrec_bpr_sampler_free(mrec_bpr_sampler *s);

#define MREC_MAX_PARAMS 32

/* Adam as torch.optim.Adam (L2 weight decay added to the gradient, not AdamW):
 * every element of every parameter is updated at each step, rows a batch did
 * not touch included (their moments decay), as PyTorch's dense Adam does.
 * The moments live beside the parameters: in host memory after
 * mrec_adam_init, on ctx's device after mrec_adam_init_on; a step on a
 * context of another device is MREC_ERR_DEVICE. */
typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    int64_t step;
    int n_params;
    float *param[MREC_MAX_PARAMS], *grad[MREC_MAX_PARAMS], *m[MREC_MAX_PARAMS], *v[MREC_MAX_PARAMS];
    int64_t size[MREC_MAX_PARAMS];
    int64_t steps[MREC_MAX_PARAMS]; /* per parameter: one skipped by a step keeps its count, as in PyTorch */
    mrec_context *ctx;              /* the device of the moments (NULL: host memory) */
    mrec_arena moments[MREC_MAX_PARAMS]; /* there, m and v of each parameter */
    float factors_host[2 * MREC_MAX_PARAMS]; /* the staged step's factors, per parameter (mrec_adam_factors) */
    mrec_arena factors_mem;                  /* on the moments' device: factors_host as sent up (mrec_adam_stage) */
} mrec_optimizer;

mrec_status mrec_adam_init(mrec_optimizer *a, float lr, float weight_decay);
mrec_status mrec_adam_init_on(mrec_optimizer *a, float lr, float weight_decay, mrec_context *ctx);
mrec_status mrec_adam_add(mrec_optimizer *a, float *param, float *grad, int64_t n);
mrec_status mrec_adam_step(mrec_optimizer *a, mrec_context *ctx);
/* A step over the parameters with active[p] set (NULL: all): the others are
 * left alone, moments and count included, as torch.optim.Adam skips a
 * parameter whose .grad is None (one the batch's loss did not reach). */
mrec_status mrec_adam_step_active(mrec_optimizer *a, const uint8_t *active, mrec_context *ctx);
/* mrec_adam_step_active in two halves, for a step queued as one CUDA graph and
 * replayed: stage (the host's part) counts the step and sends each active
 * parameter's factors up beside the moments; launch queues the updates,
 * which read them there (mrec_adam_at), and reads nothing of the host that
 * changes between steps. The same bits as mrec_adam_step_active on the CPU. */
mrec_status mrec_adam_stage(mrec_optimizer *a, const uint8_t *active, mrec_context *ctx);
mrec_status mrec_adam_launch(mrec_optimizer *a, const uint8_t *active, mrec_context *ctx);
void mrec_adam_free(mrec_optimizer *a);

/* ---- item features ------------------------------------------------------------------ */

/* One modality's features, row i for dense item i. */
typedef struct {
    char name[32];     /* visual, textual, acoustic, ... */
    int n_items, dim;
    float *x;          /* (n_items, dim) */
    uint8_t *present;  /* (n_items) 1 where the source has the item */
    int n_missing;     /* items filled with the mean of the others */
} mrec_features;

/* source: a .npy matrix joined by id when an ids file sits beside it
 * (FILE_ids.txt or item_ids.txt, as mrec's extractors write), else row r is
 * the item whose id is the integer r (MMRec); or a folder of <id>.npy of
 * shape (d) or (1, d) (Ducho). float16/32/64 read as float32. Items the
 * source lacks get the mean of the present rows (MMRec) and are counted.
 * A NaN or infinite value is an error naming the row (or file) and the item. */
mrec_status mrec_features_load(mrec_features *f, const char *name, const char *source, const mrec_interactions *x);
void mrec_features_free(mrec_features *f);
/* Modality knockout: every row becomes the per-dimension mean (noise = 0),
 * or a draw of N(mean, std) per dimension (noise = 1), so the modality no
 * longer tells items apart. */
mrec_status mrec_features_knockout(mrec_features *f, int noise, mrec_rng *rng);
/* Drops the interactions of items with keep_item[i] == 0 and renumbers; on
 * split data, a part left empty is an error (mrec_check_split). */
mrec_status mrec_drop_items(mrec_interactions *x, const uint8_t *keep_item);

/* ---- models ------------------------------------------------------------------------- */

/* A recommender as the trainer sees it: parameters with gradients, a BPR
 * loss-and-gradient step, and scoring. Gradients are overwritten (not
 * accumulated) by loss_grad.
 *
 * A model keeps the context it was created with: its ops run through the op
 * entries (mrec_gemm(ctx, ...), ...) on the context's device, its own loops
 * on ctx->pool. Every model flagged MREC_MODEL_GPU in the registry (all of
 * them today) trains and scores on a GPU context, its parameters and
 * gradients then in device memory (param and grad are device pointers); a
 * model without the flag refuses a GPU context with MREC_ERR_UNSUPPORTED
 * naming itself. An
 * op's failure inside loss_grad, which returns the loss, makes that loss NaN
 * and leaves the op's status in *status, which the trainer reads after each
 * batch. */
#define MREC_MAX_STATE 4

typedef struct {
    const char *name;
    void *self;
    int n_params;
    float *param[MREC_MAX_PARAMS], *grad[MREC_MAX_PARAMS];
    int64_t size[MREC_MAX_PARAMS];
    /* What a checkpoint keeps of the model beside its parameters (mrec_fit_options.checkpoint): the words of
     * its own state that training changes, a step count or a generator's state, each where the model holds it;
     * and the arrays that training changes outside the trainer's parameters (CLIP-E2E's towers' trainable
     * weights and their AdamW moments): n_arrays of array_size[k] floats each, on the context's device. */
    uint64_t *state[MREC_MAX_STATE];
    int n_state;
    float *const *array;
    const int64_t *array_size;
    int n_arrays;
    /* loss of a batch of triples, gradients into grad[]; NULL for models without training */
    double (*loss_grad)(void *self, const int32_t *user, const int32_t *pos, const int32_t *neg, int n);
    /* NULL, or loss_grad that leaves the batch's loss in the context's
     * memory and returns where (NULL when the batch failed, *status saying
     * why): the trainer adds the losses up there (mrec_loss_add) and reads
     * them once an epoch on a GPU, so a step never waits for the device. */
    const double *(*step)(void *self, const int32_t *user, const int32_t *pos, const int32_t *neg, int n);
    /* NULL, or step in two halves, so that on a GPU the trainer queues a
     * batch's work as one CUDA graph, captured once and replayed for every
     * batch of the same size: stage does the host's part (the ids laid out,
     * checked and sent up; active set), launch only queues work on the
     * context's stream and says where the loss is left. launch must queue
     * the same work for every batch of n triples: it reads nothing of the
     * host that changes between batches and changes nothing there (a
     * replay does not run it). step is stage, then launch. */
    mrec_status (*stage)(void *self, const int32_t *user, const int32_t *pos, const int32_t *neg, int n);
    mrec_status (*launch)(void *self, const double **loss);
    /* NULL, or after stage: launch_key_bytes (at most 64) of host values the
     * batch's launches take as arguments and that may change between
     * batches (LATTICE's modality weights, new at each rebuild), made part
     * of the graph's key; and launch_syncs: nonzero where this batch's
     * launches wait for the device (run as they are, not captured). */
    const void *launch_key;
    int launch_key_bytes;
    const int *launch_syncs;
    /* called once before a round of scoring (LightGCN propagates here) */
    mrec_status (*prepare)(void *self);
    /* called before each training epoch, or NULL (FREEDOM prunes its graph here) */
    mrec_status (*epoch_start)(void *self);
    /* after loss_grad: which parameters the batch's loss reached (NULL: all) */
    const uint8_t *active;
    /* after loss_grad: MREC_OK, or why the batch failed (its loss is then NaN); NULL: it cannot fail */
    const mrec_status *status;
    mrec_score_fn score;
    /* After prepare, when the model's scores are dot products,
     * score(u, i) = <users[u], items[i]>: copies those vectors, embed_dim
     * floats each, into host memory (users (n_users, embed_dim), items
     * (n_items, embed_dim)). This is what a saved model keeps for serving.
     * NULL (and embed_dim 0) for a model whose scores are not such a product. */
    int embed_dim;
    mrec_status (*embeddings)(void *self, float *users, float *items);
    /* Or, when the scores are sums of item-item similarities over the
     * user's training items (ItemKNN: score(u, i) = sum of sim(i, j) over the
     * user's items j among i's neighbours): the neighbour lists, knn_k per
     * item, best first, -1 past the last (nbr (n_items, knn_k), sim alike). */
    int knn_k;
    mrec_status (*neighbours)(void *self, int32_t *nbr, float *sim);
    void (*destroy)(void *self);
} mrec_model;

/* One training batch as mrec_fit takes it: the model's step (through its two
 * halves where it has them: on a GPU one CUDA graph with what follows), its
 * loss added to *sum (mrec_loss_add; in the context's memory), then Adam on
 * the parameters the batch reached. On the CPU a batch whose loss is not
 * finite stops before Adam (sum->bad says which); on a GPU the sum notes it
 * for the host's read at the epoch's end. With subnormals flushed to zero
 * (mrec_flush_subnormals_begin), the caller's mode back on return. For the
 * benches, which time the trainer's steps. */
mrec_status mrec_fit_batch(mrec_model *m, mrec_optimizer *adam, mrec_loss_sum *sum, const int32_t *u, const int32_t *i,
                           const int32_t *j, int n, mrec_context *ctx);

/* MostPop: every user gets the items by training popularity; scores on ctx's device. */
mrec_status mrec_mostpop_create(mrec_model *m, const mrec_user_items *train, mrec_context *ctx);
/* BPRMF as MMRec's BPR: xavier-normal embeddings, loss = BPR + reg * (|U_b| + |I_b+| + |I_b-|) / n
 * with |.| the Frobenius norm of the batch's rows (MMRec's EmbLoss). */
mrec_status mrec_bprmf_create(mrec_model *m, int n_users, int n_items, int dim, float reg, mrec_rng *rng,
                              mrec_context *ctx);
/* LightGCN as MMRec's: xavier-uniform ego embeddings, `layers` propagations
 * over the normalized graph, the mean of all layers as the final embedding,
 * BPR on final embeddings plus reg * EmbLoss on the batch's ego embeddings. */
mrec_status mrec_lightgcn_create(mrec_model *m, const mrec_graph *graph, int n_users, int n_items, int dim, int layers,
                                 float reg, mrec_rng *rng, mrec_context *ctx);
/* Switches a LightGCN model to its authors' loss (LightGCN-PyTorch, behind the
 * published Gowalla numbers): mean softplus(neg - pos) + reg * (|u|^2 + |i+|^2
 * + |i-|^2) / 2 / n on the batch's ego embeddings (squared norms). */
void mrec_lightgcn_use_authors_loss(mrec_model *m);
/* For tests: BPRMF and LightGCN on a CPU context take their batches through
 * the op entries, the path a GPU context takes, so the CPU checks it against
 * the host loops (the same loss; gradients within float rounding). */
void mrec_bprmf_use_ops(mrec_model *m);
void mrec_lightgcn_use_ops(mrec_model *m);
/* For tests, as mrec_bprmf_use_ops: NGCF, VBPR or FREEDOM on a CPU context
 * takes its batches, forwards and scoring through the op entries, as a GPU
 * context always does; fails only when the op path's arrays cannot be
 * allocated. */
mrec_status mrec_ngcf_use_ops(mrec_model *m);
mrec_status mrec_vbpr_use_ops(mrec_model *m);
mrec_status mrec_freedom_use_ops(mrec_model *m);
/* ItemKNN: cosine similarity of items over their training users,
 * |U_i & U_j| / sqrt(|U_i| |U_j|), the k most similar kept per item (ties to
 * the lower id), and score(u, i) = sum of sim(i, j) over the user's items j
 * among i's neighbours (Elliot's ItemKNN, "classical" implementation). */
mrec_status mrec_itemknn_create(mrec_model *m, const mrec_user_items *train, int k, mrec_context *ctx);

/* The mean-normalized adjacency with self-loops NGCF uses, D^-1 (A + I)
 * (row sums of A + I); nodes as in mrec_graph_normalized. */
mrec_status mrec_graph_mean_self(mrec_graph *out, const mrec_user_items *train);

/* NGCF as its authors' code: ego embeddings E0 (xavier-uniform), then per
 * layer k with Â = D^-1 (A + I) (entries dropped with node_dropout, scaled):
 *   S = Â E,  E' = lrelu(S W1 + b1) + lrelu((E * S) W2 + b2)   (slope 0.2)
 *   E' dropped with mess_dropout, next E = E', and normalize(E') kept;
 * the final embedding concatenates E0 and the normalized layers. Loss:
 * -mean log sigmoid(pos - neg) + decay * (|u|^2 + |i+|^2 + |i-|^2) / 2 / n
 * on final embeddings. Dropout uses its own seeded generator. */
mrec_status mrec_ngcf_create(mrec_model *m, const mrec_graph *mean_self_adj, int n_users, int n_items, int dim,
                             int layers, float decay, float node_dropout, float mess_dropout, mrec_rng *rng,
                             mrec_context *ctx);
/* VBPR as MMRec's: U (n_users x 2d) against [I_i ; W f_i + b], f_i the item's
 * concatenated features (n_feat wide, kept by the caller for the model's life),
 * BPR + reg * EmbLoss on the batch's user and full item vectors. */
mrec_status mrec_vbpr_create(mrec_model *m, int n_users, int n_items, int dim, float reg, const float *feat, int n_feat,
                             mrec_rng *rng, mrec_context *ctx);
/* FREEDOM as MMRec's: LightGCN over the user-item graph (each epoch a
 * degree-sensitive sample keeping 1 - dropout of the edges; the full graph
 * for scoring) plus the frozen item graph (mrec_graph_knn) on the item ids'
 * embeddings, and per modality a trainable linear projection of trainable
 * features scored against the users (BPR, weighted by reg). The features
 * are copied. */
mrec_status mrec_freedom_create(mrec_model *m, const mrec_graph *full, const mrec_graph *item_graph,
                                const mrec_user_items *train, const mrec_features *feat, int n_modalities, int dim,
                                int layers, float reg, float dropout, mrec_rng *rng, mrec_context *ctx);
/* LATTICE as MMRec's (cf_model lightgcn, one item-graph layer): per modality
 * a frozen kNN graph of the features and a learned one of their trainable
 * projections, mixed by softmax weights and with lambda, on the item ids'
 * embeddings; LightGCN over D^-1 (A + I) (mrec_graph_mean_self) for two
 * layers. Graphs are sparse (k per row and modality); the learned one is
 * rebuilt at each epoch's first batch, the only batch whose loss reaches
 * the graph's parameters (model->active says which). reg divides by the
 * configured batch_size, as MMRec's does. */
mrec_status mrec_lattice_create(mrec_model *m, const mrec_graph *mean_self_adj, const mrec_features *feat, int n_modalities,
                                int n_users, int dim, int k, float lambda, float reg, int batch_size, mrec_rng *rng,
                                mrec_context *ctx);
/* BM3 as MMRec's: LightGCN over the normalized graph, the item view adding
 * the item id embedding, a shared predictor, and cosine losses between each
 * view and a dropped-out copy of another (dropout p, the model's own
 * generator); no negatives (loss_grad ignores them); reg on every row
 * (MMRec's EmbLoss over n_items), cl weights the modality terms. */
mrec_status mrec_bm3_create(mrec_model *m, const mrec_graph *graph, const mrec_features *feat, int n_modalities, int n_users,
                            int dim, int layers, float reg, float cl, float dropout, mrec_rng *rng, mrec_context *ctx);
/* NGCF-M as the Ducho-meets-Elliot benchmark's Elliot fork defines it: an
 * NGCF propagation over D^-1 (A + I) (one LeakyReLU over both terms, each
 * layer fed the previous one's normalized output, message dropout), the
 * mean of the layers (node dropout: the graph's entries dropped once per
 * epoch, as the fork's sparse_dropout), plus <T_u, normalize(f_i P^T + c)> with f_i the
 * item's modalities concatenated (n_feat wide, kept by the caller, not
 * trained); softplus BPR and l_w / 2 squared norms of the batch's rows. */
mrec_status mrec_ngcfm_create(mrec_model *m, const mrec_graph *mean_self_adj, int n_users, int n_items, const float *feat,
                              int n_feat, int dim, int layers, float l_w, float dropout, float node_dropout, mrec_rng *rng,
                              mrec_context *ctx);
/* For tests: the targets keep the values they have at the next call (without
 * dropout), so the loss is a function of the weights a finite difference can
 * check (the targets carry no gradient). */
void mrec_bm3_freeze_targets(mrec_model *m);
/* For tests: rebuild the learned graph at every batch, so every loss reaches it. */
void mrec_lattice_rebuild_every_batch(mrec_model *m);
void mrec_model_destroy(mrec_model *m);

/* ---- fitting -------------------------------------------------------------------------- */

typedef struct {
    int epochs, batch_size, patience, eval_every; /* evaluation every eval_every epochs and after the last; epochs 0: evaluation only */
    float lr, weight_decay;
    uint64_t seed;
    mrec_metric select_metric; /* model selection on the validation split (MMRec: recall@20) */
    int select_k;
    int mask_valid_in_test;    /* MMRec masks only training items when testing */
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
    int save_topk;             /* > 0: keep every user's top items at the best epoch */
    int sample_users;          /* mrec_bpr_sampler_epoch_users instead of MMRec's shuffled pairs */
    float lr_decay;            /* MMRec's learning_rate_scheduler [decay, every]: epoch e (from 0) */
    int lr_decay_every;        /* trains with lr * decay^(e / every); 1 and 50 by default */
    int keep_model;            /* keep the model as it was at the best epoch (its embeddings and parameters), to save it */
    int sample_ahead;          /* draw the next epoch's triples on a helper thread while this one trains: 1 on, 0 off,
                                * -1 (the default) on where the context runs on a GPU and the host would wait;
                                * the same draws either way */
    const char *checkpoint;    /* a file rewritten after each evaluation with everything the later epochs read
                                * (checkpoint.c), or NULL */
    int resume;                /* start from the checkpoint file when there is one: the run takes the steps, and
                                * ends with the bits, of one never stopped */
    int accuracy_only;         /* evaluate the accuracy metrics only (mrec_eval_spec.accuracy_only): nothing asks
                                * for Elliot's beyond-accuracy ones, so the lists need not reach the host */
} mrec_fit_options;

mrec_fit_options mrec_fit_defaults(void);

typedef struct {
    int best_epoch, epochs_run;
    mrec_eval_result valid, test; /* at the best epoch */
    double train_seconds, eval_seconds;
    double first_epoch_seconds;    /* the first epoch's share of train_seconds: it carries one-time setup (buffers,
                                    * library handles, the first draw), which the later epochs do not */
    int selected_on_test;          /* no validation split: selection on test, as LightGCN's code does */
    int32_t *topk;                 /* (n_users, save_topk) when asked; free() it */
    /* with keep_model, at the best epoch, in host memory: the model's
     * embeddings (NULL without m->embeddings) and a copy of each parameter */
    float *users, *items;          /* (n_users, embed_dim), (n_items, embed_dim) */
    int embed_dim, n_params;
    int32_t *nbr;                  /* or the neighbour lists (m->neighbours): (n_items, knn_k) */
    float *sim;
    int knn_k;
    float *param[MREC_MAX_PARAMS]; /* (m->size[p]) */
} mrec_fit_result;

/* Frees what a fit result holds (topk, the kept model). */
void mrec_fit_result_free(mrec_fit_result *r);

/* Trains (if the model trains) with early stopping on validation, and
 * evaluates test at each new best epoch. eval_k / n_k are the cut-offs.
 * A NaN or infinite loss (a batch's or the epoch's mean) stops training with
 * an error naming the model and the epoch; so does a train split with no
 * pairs, before any epoch. Its batches train with subnormals flushed to
 * zero on the CPU (mrec_fit_batch); its evaluations and top-k keep the
 * caller's mode, so they rank as mrec recommend does. */
mrec_status mrec_fit(mrec_fit_result *out, mrec_model *m, const mrec_user_items *train, const mrec_user_items *valid,
                     const mrec_user_items *test, const int *k, int n_k, float rel_threshold,
                     const mrec_fit_options *opt, mrec_context *ctx);

/* ---- saved recommenders (saved.c) ----------------------------------------------------
 *
 * A trained model kept for serving: its users' and items' vectors (scores
 * are their dot products), each user's training items, the ids, and the
 * trained parameters. mrec_saved_write writes the folder's files into dir
 * (which exists: the caller makes it appear whole); mrec_saved_read checks
 * every tensor's name, type, shape and checksum and the id files, naming
 * the file and what differs. */
typedef struct {
    int32_t *slot; /* (mask + 1) an index into ids, or -1 */
    uint32_t mask;
    char *const *ids;
} mrec_saved_index;

typedef struct {
    char model[64];             /* the model's name ("LightGCN") */
    char params[512];           /* its hyper-parameters as a run reports them */
    int best_epoch;
    int n_users, n_items, dim;
    float *users, *items;       /* (n_users, dim), (n_items, dim); NULL for a neighbour model */
    int knn_k;                  /* > 0: scores are neighbour sums (ItemKNN), from these instead of users and items */
    int32_t *nbr;               /* (n_items, knn_k) best first, -1 past the last */
    float *sim;                 /* (n_items, knn_k) */
    int64_t *by_ptr;            /* (n_items + 1) mrec_saved_read: for item j, the items keeping it as a neighbour */
    int32_t *by_item;
    float *by_sim;
    int64_t *seen_ptr;          /* (n_users + 1) */
    int32_t *seen;              /* (seen_ptr[n_users]) each user's training items */
    char **user_ids, **item_ids;
    int n_params;
    float *param[MREC_MAX_PARAMS];
    int64_t size[MREC_MAX_PARAMS];
    mrec_saved_index user_index, item_index; /* filled by mrec_saved_read */
    float *item_unit;           /* (n_items, dim) the items' unit vectors (mrec_saved_read), for mrec_saved_similar */
} mrec_saved_model;

mrec_status mrec_saved_write(const char *dir, const mrec_saved_model *m);
mrec_status mrec_saved_read(mrec_saved_model *m, const char *dir);
void mrec_saved_free(mrec_saved_model *m);
/* The dense index of an id, or -1. */
int mrec_saved_find(const mrec_saved_index *ix, const char *id);

/* Answers, on a CPU context (one thread at a time per context). Scores are
 * what the trained model gave, to the bit when it trained on the CPU: a GEMM
 * of the saved vectors shaped as training's. mrec_saved_score is an
 * mrec_score_fn over an mrec_saved_scorer, for mrec_recommend over every
 * user. rows is scratch of MREC_SAVED_ROWS * n_items floats. */
#define MREC_SAVED_ROWS (MREC_GEMM_FEW_ROWS + 1)
typedef struct {
    const mrec_saved_model *m;
    mrec_context *ctx;
} mrec_saved_scorer;
mrec_status mrec_saved_score(void *scorer, int u0, int n, float *scores);
/* The user's scores over every item: *row, inside rows. */
mrec_status mrec_saved_user_scores(const mrec_saved_model *m, mrec_context *ctx, int user, float *rows, float **row);
/* The user's k best items not seen in training, best first, with their
 * scores: *n of them (fewer than k when fewer are left). */
mrec_status mrec_saved_recommend(const mrec_saved_model *m, mrec_context *ctx, int user, int k, int32_t *items, float *scores,
                                 int *n, float *rows);
/* The k items nearest the item by cosine of the saved item vectors, itself
 * left out (ItemKNN: its own neighbours and similarities): *n of them. */
mrec_status mrec_saved_similar(const mrec_saved_model *m, mrec_context *ctx, int item, int k, int32_t *items, float *sims, int *n,
                               float *rows);

/* ---- MMRec's splitting rule drawn from a seed (split_mmrec.c), id-space guards (idspace.c) ---- */

/* MMRec's per-user sizes for n interactions: n < 10 -> 1 valid and 1 test;
 * otherwise vt = int(0.2 n), valid = vt / 2, test = vt - valid. */
void mrec_mmrec_split_sizes(int64_t n, int64_t *valid, int64_t *test);
/* Replaces x's split by a random draw of MMRec's rule: each user's
 * interactions put in item-name order, shuffled from (seed, user name), then
 * cut by mrec_mmrec_split_sizes. The draw depends on the seed and the names
 * only, so the same interactions in any file, row order or format give the
 * same draw. A user with a single interaction is an error naming the user. */
mrec_status mrec_split_mmrec_draw(mrec_interactions *x, uint64_t seed);
/* MREC_OK when every user's valid and test counts are those of MMRec's rule;
 * otherwise an error naming source, the first such user and both counts. */
mrec_status mrec_split_mmrec_check(const mrec_interactions *x, const char *source);
/* Guard for a table joined by row number (a feature matrix without an ids
 * file, where row r is the item whose id is r): its n_rows must equal the
 * interactions' item count (users when items == 0), and every id must be an
 * integer row number below it; otherwise an error naming source, the counts
 * or the id without a row. */
mrec_status mrec_idspace_check_rows(const char *source, int64_t n_rows, const mrec_interactions *x, int items);
/* Guard for an id map (MMRec's i_id_mapping.csv: "asin<TAB>itemID" with a
 * header; column key_column, from 0, holds the ids the interactions use):
 * every id mapped once, as many ids as the interactions' items (users when
 * items == 0), each of their ids present; otherwise an error naming path, the
 * line, id or counts. Equal id spaces of the same size but another numbering
 * cannot be told apart here. */
mrec_status mrec_idmap_check(const char *path, int has_header, int key_column, const mrec_interactions *x, int items);

/* ---- graph contrastive models of the Ducho-meets-Elliot benchmark's fork (simgcl.c, sgl.c) ---- */

/* SimGCL as the fork (and its authors' code): the mean of layers 1..L over
 * the normalized graph (layers >= 1; E0 left out), two views whose every
 * layer gets eps sign(x) times a uniform draw scaled to unit rows (the
 * model's own generator), BPR with 1e-5 inside the log, l_w times the
 * Frobenius norms of the batch's propagated user and positive rows over n,
 * and reg_cl times InfoNCE (temperature temp) over the batch's distinct
 * users and positive items. */
mrec_status mrec_simgcl_create(mrec_model *m, const mrec_graph *graph, int n_users, int n_items, int dim, int layers,
                               float l_w, float eps, float reg_cl, float temp, mrec_rng *rng, mrec_context *ctx);
/* For tests: the uniform draws (2, layers, n_users + n_items, dim), view by
 * view and layer by layer, used as they are from now on; NULL keeps the
 * current draws. */
void mrec_simgcl_set_noise(mrec_model *m, const float *noise);
/* SGL as the fork: LightGCN's layer mean (E0 included) and two views over
 * graphs of the training pairs redrawn before each epoch (augment 0: node
 * dropout, 1: edge dropout, 2: edge dropout per layer; ssl_ratio of them
 * dropped), summed BPR, ssl_reg times InfoNCE (temperature temp) of the
 * batch's users and positives against all users and items of the other
 * view, l_w / 2 squared norms of the batch's ego rows. train is read at
 * creation only. */
mrec_status mrec_sgl_create(mrec_model *m, const mrec_graph *graph, const mrec_user_items *train, int dim, int layers,
                            float l_w, float ssl_reg, float ssl_ratio, float temp, int augment, mrec_rng *rng,
                            mrec_context *ctx);
/* For tests: keep (2, n_pairs), the pairs each view keeps (the training
 * pairs user by user, items in order), fixed from now on. */
mrec_status mrec_sgl_set_views(mrec_model *m, const uint8_t *keep);

/* LightGCN-M as the fork: users' ego embeddings, items' ego rows the mean
 * (sum: 1) over modalities of normalize(W_m f_m + b_m), the features
 * (n_items, feat_dim[m]) copied and trained, LightGCN's layer mean, mean
 * softplus BPR and l_w / 2 squared norms of the batch's user ego rows and
 * propagated item rows, over n. */
mrec_status mrec_lightgcnm_create(mrec_model *m, const mrec_graph *graph, int n_users, int n_items, const float *const *feat,
                                  const int *feat_dim, int n_modalities, int sum, int dim, int layers, float l_w, mrec_rng *rng,
                                  mrec_context *ctx);

/* MMGCN as the Ducho-meets-Elliot fork (external/models/mmgcn): per modality
 * a graph network over the user-item graph, its items' features (fixed,
 * (n_items, feat_dim[m])) projected to proj_dim[m] units by a linear layer
 * (0: no projection, the features themselves), users' preference vectors per
 * modality, each layer lrelu(Â x C) combined with lrelu(x L^T + l) (plus the
 * id embeddings with has_id) by one linear layer of both side by side
 * (concat) or of the first plus the second; the modalities' last layers
 * averaged; mean softplus BPR plus l_w times the batch's id rows' mean square
 * and the first modality's preference vectors' mean square. adj is
 * mrec_graph_mmgcn's. Trains on the context's device (the op entries
 * only): param and grad are that device's memory. */
mrec_status mrec_mmgcn_create(mrec_model *m, const mrec_graph *adj, int n_users, int n_items, const float *const *feat,
                              const int *feat_dim, const int *proj_dim, int n_modalities, int dim, int layers, int concat,
                              int has_id, float l_w, mrec_rng *rng, mrec_context *ctx);
/* MMGCN's Â: the bipartite adjacency of the training pairs (nodes as in
 * mrec_graph_normalized, no self-loops), each row divided by its degree
 * (mean: torch_sparse's reduce="mean") or weights 1 (mean 0: add). */
mrec_status mrec_graph_mmgcn(mrec_graph *out, const mrec_user_items *train, int mean);

/* LGMRec as MMRec (src/models/lgmrec.py): LightGCN's layer mean of the id
 * embeddings over adj (mrec_graph_normalized's), plus per modality (feat[0]
 * visual, feat[1] textual: (n_items, feat_dim[m]), fixed) the unit rows of
 * F W propagated mm_layers times over adj (users the mean of their items),
 * plus alpha times the unit rows of the two modalities' hypergraph
 * embeddings: hyper_num hyperedges, item and user dependencies the
 * Gumbel-softmax (tau 0.2) of F H and R F H, dropped out with keep_rate
 * while training, hyper_layers layers from the items' id embeddings. Loss:
 * mean softplus BPR, cl_weight times InfoNCE between the visual and textual
 * hypergraph views of the batch's users and positive items, reg_weight times
 * the Frobenius norms of the batch's rows over n. The noise and the dropout
 * come from the hash stream of a seed drawn from rng: the same run for a
 * seed on every device. Trains on the context's device (the op entries
 * only). train is read at creation only. */
mrec_status mrec_lgmrec_create(mrec_model *m, const mrec_graph *adj, const mrec_user_items *train, int n_users, int n_items,
                               const float *const *feat, const int *feat_dim, int dim, int ui_layers, int mm_layers, int hyper_layers,
                               int hyper_num, float keep_rate, float alpha, float cl_weight, float reg_weight, mrec_rng *rng,
                               mrec_context *ctx);
/* For tests: every forward from now on takes this Gumbel noise instead of
 * drawing it: noise[m] ((n_items + n_users), hyper_num), the items' rows
 * then the users'. */
mrec_status mrec_lgmrec_set_noise(mrec_model *m, const float *const *noise);
/* MGCN as MMRec (src/models/mgcn.py): per modality the item id embeddings
 * gated by a sigmoid of the projected features (feat (n_items, feat_dim[m]),
 * copied and trained), item_layers products with that modality's kNN graph
 * (mrec_mgcn_item_graph), users as the normalized sums of their items;
 * LightGCN's layer mean (ui_layers) over adj (mrec_mgcn_graph) as the id
 * view; the modality views fused by a softmax attention over them and the
 * id view's preference gates; final = id view + fused view. Loss: mean
 * softplus BPR on final, reg / (2 batch_size) times the batch's squared
 * final rows, cl times InfoNCE (temperature temp) between the fused and id
 * views of the batch's users and of its positives. Trains on the context's
 * device (the op entries only): param and grad are that device's memory;
 * the graphs are copied there and not kept. */
mrec_status mrec_mgcn_create(mrec_model *m, const mrec_graph *adj, const mrec_graph *item_graph, int n_users, int n_items,
                             const float *const *feat, const int *feat_dim, int n_modalities, int dim, int ui_layers, int item_layers,
                             float reg, float cl, float temp, int batch_size, mrec_rng *rng, mrec_context *ctx);
/* MGCN's Â: the bipartite adjacency of the training pairs (nodes as in
 * mrec_graph_normalized), D^-1/2 A D^-1/2 without the 1e-7, 0 where a degree is. */
mrec_status mrec_mgcn_graph(mrec_graph *out, const mrec_user_items *train);
/* MGCN's kNN graph of one modality: each item's k most cosine-similar items
 * (itself included; ties to the lower id), weighted by the similarity and
 * normalized v_ij r_i^-1/2 r_j^-1/2 with r the rows' sums (0 where a sum is);
 * a negative sum is an error naming the item. ctx's pool computes it on the
 * host, in blocks of rows (never n_items x n_items). */
mrec_status mrec_mgcn_item_graph(mrec_graph *out, const float *x, int n_items, int dim, int k, mrec_context *ctx);

/* PGL's local variant as its authors' code (demonph10/PGL, src/models/pgl.py,
 * mode 'local'): per modality (feat (n_items, feat_dim[m]), copied and
 * trained) the unit rows of a linear projection to dim units, the
 * modalities side by side as the items' embeddings (no item id embedding)
 * and one user embedding per modality beside them; LightGCN's layer mean
 * (ui_layers) over, while training, a degree-sensitive sample of
 * 1 - edge_dropout of the training edges drawn each epoch and renormalized
 * (the full adj, mrec_graph_normalized's, for ranking), the items' rows plus
 * item_layers products of item_graph (FREEDOM's, mrec_graph_knn) with their
 * embeddings. Loss: mean softplus BPR plus cl / 2 times InfoNCE (temperature
 * temp) between two dropouts (dropout) of the batch's users' rows and of its
 * positives'. Scores are dot products of n_modalities * dim wide vectors.
 * Trains on the context's device (the op entries only): param and grad are
 * that device's memory; the graphs are copied there. train is read at
 * creation only. */
mrec_status mrec_pgl_create(mrec_model *m, const mrec_graph *adj, const mrec_graph *item_graph, const mrec_user_items *train,
                            const float *const *feat, const int *feat_dim, int n_modalities, int dim, int ui_layers, int item_layers,
                            float cl, float dropout, float edge_dropout, float temp, mrec_rng *rng, mrec_context *ctx);
/* For tests: one draw of the training edges as each epoch's start makes
 * it, from the same stream (numbers of the training pairs user by user,
 * items in order, increasing), into kept, *n of them; the graph trained on
 * stays as it is. */
mrec_status mrec_pgl_draw_edges(mrec_model *m, int64_t *kept, int64_t *n);
/* For tests: train on the edges kept (n increasing edge numbers, as above)
 * until the next epoch starts. */
mrec_status mrec_pgl_set_edges(mrec_model *m, const int64_t *kept, int64_t n);
/* For tests: the dropout's hash stream from seed, the step counted from 0;
 * with freeze, every batch takes step 0's masks (a loss that finite
 * differences can check). Masks: element e of the batch's rows
 * [users ; positives] (2n, width), row-major, is dropped in view v (0, 1)
 * at step s when mrec_hash_dropout's u(mix64(seed ^ mix64(2 s + v)), e) < p. */
mrec_status mrec_pgl_set_dropout_seed(mrec_model *m, uint64_t seed, int freeze);
/* SMORE as its authors' code (kennethorq/SMORE, src/models/smore.py, on
 * MMRec): the image and text features (feat[0], feat[1]: (n_items,
 * feat_dim[m]), copied and trained) projected to dim, each filtered in the
 * frequency domain (a real DFT over the dim columns, a learned complex
 * weight per bin, the inverse), and a fusion filter of the two spectra's
 * product; each of the three gates the item id embeddings, propagated
 * item_layers times over its item graph (item_graph[0], [1]: the image and
 * text kNN graphs of mrec_mgcn_item_graph, [2]: their mrec_smore_fusion_graph),
 * users as the normalized sums of their items; the fusion view's softmax
 * attention over the columns weighs the image and text views, the id view's
 * preference gates (dropped out with `dropout` while training) weigh all
 * three; final = LightGCN's layer mean (ui_layers, over adj of
 * mrec_mgcn_graph) + the mean of the three. Loss: as MGCN's (mean softplus
 * BPR, reg / (2 batch_size) times the batch's squared final rows, cl times
 * InfoNCE at temp between the fused and id views of the batch's users and
 * positives). The dropout comes from mrec's hash stream keyed by rng's first
 * draw. Trains on the context's device (the op entries only); the graphs
 * are copied there and not kept. */
mrec_status mrec_smore_create(mrec_model *m, const mrec_graph *adj, const mrec_graph *item_graph, int n_users, int n_items,
                              const float *const *feat, const int *feat_dim, int dim, int ui_layers, int item_layers, float reg, float cl,
                              float temp, float dropout, int batch_size, mrec_rng *rng, mrec_context *ctx);
/* SMORE's fusion graph: the union of the two item graphs' entries, each the
 * larger of the two values where both have it (the reference's
 * max_pool_fusion, not normalized again); columns in increasing order. */
mrec_status mrec_smore_fusion_graph(mrec_graph *out, const mrec_graph *image, const mrec_graph *text);
/* GRCN as the Ducho-meets-Elliot fork (external/models/grcn): per modality
 * the items' features (fixed, (n_items, feat_dim[m])) projected to
 * dim_multimod units, users' preferences refined by `routings` rounds of
 * attention over their items, then one attention layer over the whole graph
 * whose edge weights (combined over the modalities by weight_mode: 0 mean,
 * 1 max, 2 confid with learned node confidences; relu with pruning) drive a
 * `layers`-deep id network of normalized propagations, summed; the
 * representation is the id one beside the modalities' (fusion 0 concat), the
 * id one alone (1 id), or their mean (2 mean, dim_multimod = dim); has_act
 * puts a LeakyReLU after each propagation. Mean softplus BPR plus l_w times
 * the batch's id rows' mean square plus the batch's preference rows' mean
 * squares. adj: mrec_graph_normalized's pattern (its values are not read). */
mrec_status mrec_grcn_create(mrec_model *m, const mrec_graph *adj, int n_users, int n_items, const float *const *feat,
                             const int *feat_dim, int n_modalities, int dim, int dim_multimod, int layers, int routings,
                             int weight_mode, int pruning, int has_act, int fusion, float l_w, mrec_rng *rng, mrec_context *ctx);

/* MENTOR as its authors' code (Jinfeng-Xu/MENTOR, src/models/mentor.py):
 * seven two-layer graph networks over adj (mrec_graph_normalized's) with
 * their own user preferences and feature MLPs (visual, textual, a trained
 * id_feat, and two copies of the visual and textual ones perturbed by
 * sign noise of length eps after each layer), the items' rows plus
 * item_layers products of item_graph (FREEDOM's); scores are dot products
 * of [w0 v, w1 t] (2 dim wide, w trained per user). Loss: BPR in log2,
 * reg times the batch users' visual and textual preferences' and w's mean
 * squares, align times the distances of the means and variances of the
 * fused, id, visual and textual tables, mask_g times InfoNCE (temp) of the
 * perturbed tables over all users and all items. feat[0] visual, feat[1]
 * textual (n_items, feat_dim[k]). Ranks with the last training batch's
 * forward, as the reference. Trains on the context's device. */
mrec_status mrec_mentor_create(mrec_model *m, const mrec_graph *adj, const mrec_graph *item_graph, int n_users, int n_items,
                               const float *const *feat, const int *feat_dim, int dim, int item_layers, float reg, float align,
                               float mask_g, float temp, float eps, mrec_rng *rng, mrec_context *ctx);
/* For tests: the noise's hash stream from seed, the step counted from 0;
 * with freeze, every batch takes step 0's draws. The uniforms of network
 * k (3..6: v1, t1, v2, t2) after layer l (0, 1) at step s are
 * mrec_sign_noise's u(mix64(seed ^ mix64(8 s + 2 (k - 3) + l)), r d + c). */
mrec_status mrec_mentor_set_noise_seed(mrec_model *m, uint64_t seed, int freeze);
/* For tests: the contrast's logits in blocks of rows rows (0: as many as
 * 4M logits hold), so a small model takes the path of a large one. */
mrec_status mrec_mentor_set_block_rows(mrec_model *m, int rows);

#endif
