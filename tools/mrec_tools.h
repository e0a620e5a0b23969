/* mrec_tools.h: what the subcommands share: their entry points (so one can
 * run another, as `mrec run` runs extraction and training) and a few file
 * helpers for writing output trees without leaving half of one behind.
 */
#ifndef MREC_TOOLS_H
#define MREC_TOOLS_H

#include "../kernels/mrec_status.h"
#include "mrec_config.h"

int mrec_cmd_train(int argc, char **argv);         /* cmd_train.c */
int mrec_cmd_extract_text(int argc, char **argv);  /* cmd_extract.c */
int mrec_cmd_extract_image(int argc, char **argv); /* cmd_extract_image.c */
int mrec_cmd_extract_clip(int argc, char **argv);  /* cmd_clip.c */
int mrec_cmd_clip_scores(int argc, char **argv);   /* cmd_clip.c */
int mrec_cmd_extract(int argc, char **argv);       /* cmd_ducho.c: a Ducho config */
int mrec_cmd_experiment(int argc, char **argv);    /* cmd_elliot.c: an Elliot config */
int mrec_cmd_run(int argc, char **argv);           /* cmd_run.c: both in one file */
int mrec_cmd_demo(int argc, char **argv);          /* cmd_demo.c */

/* ---- a Ducho config run from inside another command ---- */

#define MREC_MAX_EXTRACTED 32
typedef struct {
    int n;
    char modality[MREC_MAX_EXTRACTED][16]; /* visual, textual, or visual_textual_<fusion> */
    char folder[MREC_MAX_EXTRACTED][4096]; /* the leaf folder of <id>.npy files */
    char model[MREC_MAX_EXTRACTED][256];   /* model_name */
} mrec_extracted;

/* Checks and runs the Ducho config held by `root` (a whole file, or the
 * `extract:` section of an mrec run file); weights NULL: the default
 * folder. skip_unsupported: models without a local copy, or of a kind mrec
 * cannot run, are noted and left out instead of stopping the run. Fills out (when not NULL) with the folders written. Returns an
 * exit status (0, 1, 2, 3) after printing what went wrong. */
int mrec_ducho_run(const mrec_cfg *c, const mrec_cfg_node *root, const char *weights, int threads, int matrix, int skip_unsupported,
                   mrec_extracted *out);

/* The best grid point of each model, on test at the last cut-off. */
#define MREC_MAX_BEST 16
typedef struct {
    int n, n_metrics, k;
    char model[MREC_MAX_BEST][128], metric[8][32];
    double value[MREC_MAX_BEST][8];
} mrec_best;

/* How to run an Elliot experiment, beyond the file. */
typedef struct {
    const char *out;      /* NULL: results/<dataset> */
    const char *cache;    /* kNN graph cache (mrec train --cache), or NULL */
    const char *features; /* NULL or "visual=DIR,textual=DIR": what an extraction just wrote (mrec run) */
    const char *weights;  /* for mrec run's extraction; NULL: the default folder */
    int threads, max_epochs; /* max_epochs > 0 caps every model's epochs */
    int skip_unsupported;  /* models mrec lacks are listed and left out instead of refused */
} mrec_experiment_options;

/* Runs the Elliot experiment under `root` (a whole file, or the experiment
 * section of an mrec run file); best (or NULL) receives the best models.
 * Returns an exit status after printing what went wrong. */
int mrec_elliot_run(const mrec_cfg *c, const mrec_cfg_node *root, const mrec_experiment_options *o, mrec_best *best);

/* The options of `mrec train CONFIG` and `mrec run CONFIG` (--weights only
 * with_weights): -1 when they parse and name a config, 0 for --help, 1 for a
 * usage error (printed). */
int mrec_config_command_args(int argc, char **argv, const char *cmd, int with_weights, mrec_experiment_options *o, const char **config);

/* An mrec run file (extract: and experiment:), loaded. */
int mrec_run_config(const mrec_cfg *c, const mrec_experiment_options *o);

/* ---- report.html ---- */

typedef struct {
    const char *out, *title, *runs, *select, *note; /* runs: the folder of <model>/history.tsv, or NULL for no curves; note may be NULL */
    const char *const *models, *const *short_names; /* (n_models); short_names may be NULL */
    const char *const *metrics;                     /* (n_metrics) */
    const double *values;                           /* (n_models, n_metrics): test, at cut-off k */
    int n_models, n_metrics, k;
} mrec_report;

mrec_status mrec_report_write(const mrec_report *r);

/* ---- progress (progress.c) ---- */

typedef struct {
    const char *label;
    int done, total, tty;
    double t0, last;
} mrec_progress;

void mrec_progress_start(mrec_progress *p, const char *label, int total);
/* The encoders' progress callback: ctx is an mrec_progress. */
void mrec_progress_update(void *ctx, int done, int total);

/* ---- files ---- */

/* mkdir -p. */
mrec_status mrec_mkdirs(const char *path);
/* Moves every file of folder `from` into folder `to` (made if needed), then
 * removes `from`; subfolders move whole. */
mrec_status mrec_move_contents(const char *from, const char *to);
/* rm -r, for the scratch folders of a failed run. */
void mrec_remove_tree(const char *path);
/* Where checkpoints live: $MREC_WEIGHTS, else weights/ beside the folder
 * holding the binary (the repository's weights/ for bin/mrec). */
const char *mrec_weights_dir(void);
/* Monotonic seconds. */
double mrec_now(void);

#endif
