/* elliot.h: an Elliot experiment inside mrec, shared by the files that read
 * it (elliot_config.c), run it (cmd_elliot.c) and write its outputs
 * (elliot_outputs.c). Not part of the library.
 */
#ifndef MREC_ELLIOT_H
#define MREC_ELLIOT_H

#include "mrec_pipeline.h"
#include "mrec_tools.h"

#include <stdio.h>

/* The experiment, read and checked before anything runs. */
#define MAX_MODELS 16
#define MAX_AXES 16
#define MAX_K 8

typedef struct {
    const mrec_model_entry *model;  /* the registry's */
    const mrec_cfg_node *node;
    char name[128];                 /* as written: external.BPRMF */
    const mrec_cfg_node *axis[MAX_AXES]; /* hyper-parameters: a scalar or a list (grid axis) */
    int n_axes;
    char select[32];                /* recall@20 */
    mrec_metric select_metric;
    int select_k;
    int eval_every, patience, save_recs, save_weights, restore;
    char modalities[8400];          /* the features the model reads: visual=PATH,textual=PATH */
} model_spec;

typedef struct {
    const mrec_cfg *c;
    char dataset[128], out[4096], perf[4200], recs[4200];
    mrec_train_spec base;           /* the data and the evaluation, shared by every run */
    char data[4200 * 3], split[336], prefilter[512], save_folder[4096];
    int folds[2];                   /* the test splitting's folds, each training set's validation folds (1 when one) */
    char visual[4096], textual[4096];
    char clip[4096], clip_items[4096], clip_images[4096]; /* side_information's CLIPItems (clip-e2e) */
    int k[MAX_K], n_k, top_k;
    char metric_elliot[8][32];      /* as written (Recall) */
    int n_metrics;
    double threshold;
    int ttest, wilcoxon;
    int skip_unsupported; /* models mrec lacks: left out with a note, not refused */
    model_spec models[MAX_MODELS];
    int n_models;
} experiment;

/* One grid point's results, as the tables print them (6 decimals), so a
 * point is chosen on what a reader of the tables sees. */
typedef struct {
    char name[512], params[1024];
    int best_epoch, failed;
    double valid[8][MAX_K], test[8][MAX_K]; /* [metric][cutoff] */
} point;

/* elliot_config.c */
const char *elliot_metric(const char *elliot_name); /* Recall -> recall, nDCG -> ndcg_graded; NULL if unknown */
mrec_status elliot_read(experiment *e, const mrec_cfg_node *root);
/* Elliot's run name of a grid point (Model_key=value_..., '.' written '$'). */
void elliot_point_name(char *out, size_t cap, const model_spec *m, const int *pick);
/* The run of a grid point: the experiment's data and evaluation, the model
 * and the point's hyper-parameters, each checked (keys held at the model's
 * value included). */
mrec_status elliot_point_spec(const experiment *e, const model_spec *m, const int *pick, mrec_train_spec *s);

/* elliot_outputs.c */
/* rec_cutoff_*, grid_cutoff_*, bestmodelparams_* under e->perf. */
mrec_status elliot_write_tables(const experiment *e, point *const *grid, const int *n_points, const int *best);
/* stat_paired_ttest_* / stat_wilcoxon_test_*: p-values between the best models over their test users. */
mrec_status elliot_write_stats(const experiment *e, const point *best, const mrec_train_result *const *runs, int n_best);
/* recs/<name>.tsv: a run's top lists as Elliot writes them, one (user, item, rank) a line. */
mrec_status elliot_write_recs(const experiment *e, const char *name, const mrec_train_result *r);
/* A value as the tables print it. */
double elliot_as_printed(double x);

#endif
