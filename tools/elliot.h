/* elliot.h: an Elliot experiment inside mrec, shared by the files that read
 * it (elliot_config.c), run it (cmd_elliot.c) and write its outputs
 * (elliot_outputs.c). Not part of the library.
 */
#ifndef MREC_ELLIOT_H
#define MREC_ELLIOT_H

#include "mrec_tools.h"

#include <stdio.h>

/* What an Elliot model is in mrec: its trainer and its hyper-parameters. */
typedef struct {
    const char *key, *flag; /* Elliot's name, mrec train's option (NULL: checked by hand) */
} hparam;

typedef struct {
    const char *elliot, *mrec;
    int multimodal, trains;
    hparam params[16];
} family;

/* The experiment, read and checked before anything runs. */
#define MAX_MODELS 16
#define MAX_AXES 16
#define MAX_K 8

typedef struct {
    const family *fam;
    const mrec_cfg_node *node;
    char name[128];                /* as written: external.BPRMF */
    const mrec_cfg_node *axis[MAX_AXES]; /* hyper-parameters: a scalar or a list (grid axis) */
    int n_axes;
    char select[32];               /* recall@20 */
    int eval_every, patience, save_recs;
    char modalities[256];          /* --features value */
} model_spec;

typedef struct {
    const mrec_cfg *c;
    char dataset[128], out[4096], perf[4200], recs[4200];
    char *data_argv[24];           /* --data ... shared by every run */
    char data_store[24][4200 * 3];
    int n_data;
    char visual[4096], textual[4096];
    int k[MAX_K], n_k, top_k;
    char metric_elliot[8][32], metrics[128]; /* as written (Recall), and mrec train's --metrics */
    int n_metrics;
    double threshold;
    int ttest, wilcoxon;
    int skip_unsupported; /* models mrec lacks: left out with a note, not refused */
    model_spec models[MAX_MODELS];
    int n_models;
} experiment;

/* One grid point's results. */
typedef struct {
    char name[512], params[1024];
    int best_epoch, failed;
    double valid[8][MAX_K], test[8][MAX_K]; /* [metric][cutoff] */
} point;

/* Elliot's run name: Model_key=value_..., '.' written '$'. */
/* elliot_config.c */
const char *elliot_metric(const char *elliot_name); /* Recall -> recall, nDCG -> ndcg_graded; NULL if unknown */
mrec_status elliot_read(experiment *e, const mrec_cfg_node *root);
/* Elliot's run name of a grid point (Model_key=value_..., '.' written '$'). */
void elliot_point_name(char *out, size_t cap, const model_spec *m, const int *pick);
/* Appends the point's mrec train options to argv (store holds the few made here). */
mrec_status elliot_point_args(const experiment *e, const model_spec *m, const int *pick, char store[4][64], char **argv, int *argc);

/* elliot_outputs.c */
/* rec_cutoff_*, grid_cutoff_*, bestmodelparams_* under e->perf. */
mrec_status elliot_write_tables(const experiment *e, point *const *grid, const int *n_points, const int *best);
/* stat_paired_ttest_* / stat_wilcoxon_test_*: p-values between the best models from their test_per_user.tsv. */
mrec_status elliot_write_stats(const experiment *e, const char *runs, const point *best, int n_best);

#endif
