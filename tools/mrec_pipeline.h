/* mrec_pipeline.h: one training run described in memory, its results handed
 * back in memory. `mrec train`, the Elliot and `mrec run` config runners and
 * `mrec demo` all train through mrec_train; each writes the files it owes
 * from what mrec_train returns (mrec_train_write writes the run's own
 * folder), and none reads a file back to learn a result.
 *
 * It lives in tools/ because a run knows everything: files to load, feature
 * folders, the kNN cache in the home folder, the registry and the trainer;
 * the library parts it calls (recsys/) stay free of paths and printing.
 */
#ifndef MREC_PIPELINE_H
#define MREC_PIPELINE_H

#include <stdint.h>

#include "../recsys/mrec_registry.h"

typedef struct {
    /* the data */
    const char *data;          /* a file, or Elliot's fixed split "train,[valid,]test" (format tsv) */
    const char *format;        /* "inter", "tsv" or "lightgcn" */
    mrec_duplicates duplicates;
    float min_rating;          /* interactions rated below leave first; -INFINITY: none */
    int kcore, kcore_once;     /* users and items with fewer interactions leave (iteratively unless once); 0: none */
    const char *prefilter;     /* Elliot's prefiltering after those, in order (mrec_prefilter_parse), or NULL */
    const char *split;         /* NULL: the data's own; mmrec, random:T[:V] and temporal:T[:V] (Elliot's), leave:N[:valid],
                                * splitmix:T[:V], elliot:TEST[/VALID] (mrec_elliot_part_parse) */
    uint64_t split_seed;
    int split_fold[2];         /* elliot: the test fold, and the validation fold within it (0, 0 with one fold each) */
    const char *save_splits;   /* a folder for the split used (train.tsv, val.tsv, test.tsv), or NULL */
    int save_splits_elliot;    /* that folder in Elliot's save_on_disk layout and format */
    const char *features;      /* "NAME=PATH,...", or NULL */
    int missing_drop;          /* items a modality lacks leave with their interactions (else they get its mean) */
    const char *knockout;      /* "NAME[:noise]", or NULL */
    const char *cache;         /* where kNN item graphs are cached; NULL: $MREC_CACHE, else ~/.cache/mrec; "none": nowhere */
    /* CLIP-E2E's items: a CLIP folder, the item table (id and text columns), the photos by id (a folder or an
     * image table) or from a column of the table; every item of the data needs a text and a photo */
    const char *clip, *clip_items, *clip_id_col, *clip_text_col, *clip_images, *clip_image_col;
    /* the model */
    const mrec_model_entry *model;
    mrec_param_values params;  /* the values given; the model's defaults fill in the rest */
    /* the evaluation */
    int k[MREC_EVAL_MAX_K], n_k;             /* cut-offs, ascending */
    mrec_metric metrics[MREC_METRIC_COUNT];  /* reported, in this order */
    int n_metrics;
    mrec_metric select_metric;               /* the best epoch's, on validation (on test without it) */
    int select_k;
    float threshold;           /* relevant: rating >= threshold */
    int mask_valid;            /* test masks the validation items too */
    int save_topk;             /* > 0: each user's best items at the best epoch */
    int per_user;              /* each test user's metrics at the best epoch */
    int keep_model;            /* the result keeps the model at the best epoch, for mrec_train_save */
    const char *restore;       /* a saved model (mrec train --save) whose parameters the model starts from, or NULL */
    const char *checkpoint;    /* a file the training state is written to after each evaluation, or NULL */
    int resume;                /* start from that file when it holds this run's state (a run stopped on the way) */
    int restore_only;          /* with restore: evaluate it, no training (Elliot's restore) */
    /* where it runs, and what it says */
    int threads;               /* the context made for the run when ctx is NULL (<= 0: one per core) */
    mrec_device_request device; /* that context's device: MREC_WANT_CPU (the default), MREC_WANT_CUDA (a model without a
                                 * GPU path, or no usable GPU, is an error), MREC_WANT_AUTO (the CPU then, with a notice) */
    int gpu;                   /* which GPU, for cuda and auto (Elliot's `gpu` key) */
    mrec_precision precision;  /* that context's GEMMs: fp32 (the default); tf32 on a GPU; bf16 on a GPU or a CPU with
                                * AVX-512 BF16 (else an error on the CPU, and auto's CPU computes in fp32 with a notice) */
    mrec_context *ctx;         /* the caller's context, or NULL */
    mrec_notice_fn log;        /* each progress line (data, features, model, epochs, results), or NULL */
    mrec_notice_fn notice;     /* what loading changed in the data (rows dropped, ...), or NULL */
    void *log_ctx;
} mrec_train_spec;

/* mrec train's defaults: format inter, no filter, the data's split (seed 999), cut-offs 5, 10, 20, 50,
 * recall, ndcg, precision and map, selection on recall@20, threshold 0, on the CPU. */
mrec_train_spec mrec_train_defaults(void);

/* One evaluation during training, as the training loop logs it (value with 4 decimals). */
typedef struct {
    int epoch;
    double loss, value;
    char split[8]; /* "valid", or "test" without a validation split */
} mrec_history_point;

typedef struct {
    const char *stage;          /* where a failed run stopped ("loading data", "features", "model", "training", ...) */
    mrec_interactions ids;      /* the users and items as trained: names and counts (the pairs are released) */
    char model_name[32];        /* "BPRMF" */
    char params[512];           /* the params column: "dim=64,lr=0.001,reg=1e-05,batch=2048,seed=999" */
    mrec_param_values values;   /* every hyper-parameter as the model used it */
    int trains;                 /* the model has a loss (MostPop and ItemKNN do not) */
    int best_epoch, epochs_run, selected_on_test;
    mrec_eval_result valid, test; /* at the best epoch; no valid when selected_on_test */
    double train_seconds, eval_seconds;
    int32_t *topk;              /* (ids.n_users, topk_k) each user's best items at the best epoch, or NULL */
    int topk_k;
    int n_per_user;             /* test users with a relevant item, in id order */
    int32_t *per_user_user;     /* (n_per_user) */
    double *per_user;           /* (n_per_user, n_metrics * n_k) spec's metrics by cut-off, at the best epoch */
    mrec_history_point *history; /* (n_history) */
    int n_history;
    mrec_saved_model saved;     /* with keep_model: the model at the best epoch (its ids are those of `ids`) */
} mrec_train_result;

/* Loads, filters and splits the data, reads the features, builds the model
 * through the registry, trains and evaluates it. On failure out->stage says
 * where, and the status's detail what. Free out either way. */
mrec_status mrec_train(const mrec_train_spec *spec, mrec_train_result *out);
void mrec_train_result_free(mrec_train_result *r);

/* The folder of one run, into dir (which exists): results.tsv (the valid and
 * test rows: model, params, split, best epoch, metric@k), history.tsv,
 * timing.tsv, users.tsv and items.tsv (dense id -> id), test_per_user.tsv
 * (with per_user) and recommendations.tsv (with save_topk). */
mrec_status mrec_train_write(const char *dir, const mrec_train_spec *spec, const mrec_train_result *r);

/* The kept model (spec keep_model) as a saved recommender, into dir, which
 * exists (mrec_saved_write; the caller makes the folder appear whole). */
mrec_status mrec_train_save(const char *dir, mrec_train_result *r);

/* Prints "mrec CMD: STAGE: error: detail" for a failed run and returns the exit status (3 out of memory, else 2). */
int mrec_train_fail(const char *cmd, const mrec_train_result *r, mrec_status st);

/* A --split value: its kind (0 mmrec, 1 random, 2 temporal, 3 leave) and numbers (a ratio, or with leave a
 * count; then a ratio, or with leave 0 or 1); an error saying the forms otherwise. */
mrec_status mrec_split_parse(const char *s, int *kind, double *a, double *b);

#endif
