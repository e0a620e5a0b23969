/* mrec_tools.h: what the subcommands share: their entry points, the config
 * runners the commands and the demo call (returning their results in
 * memory), the report, and a few file helpers for writing output trees
 * without leaving half of one behind.
 */
#ifndef MREC_TOOLS_H
#define MREC_TOOLS_H

#include "../kernels/mrec_status.h"
#include <stdint.h>
#include <stdio.h>
#include "mrec_config.h"
#include "mrec_pipeline.h"

int mrec_cmd_train(int argc, char **argv);         /* cmd_train.c: train --data ... */
int mrec_cmd_extract_text(int argc, char **argv);  /* cmd_extract.c */
int mrec_cmd_extract_image(int argc, char **argv); /* cmd_extract_image.c */
int mrec_cmd_extract_clip(int argc, char **argv);  /* cmd_clip.c */
int mrec_cmd_clip_scores(int argc, char **argv);   /* cmd_clip.c */
int mrec_cmd_extract(int argc, char **argv);       /* cmd_ducho.c: a Ducho config */
int mrec_cmd_experiment(int argc, char **argv);    /* cmd_elliot.c: an Elliot config */
int mrec_cmd_run(int argc, char **argv);           /* cmd_run.c: both in one file */
int mrec_cmd_demo(int argc, char **argv);          /* cmd_demo.c */
int mrec_cmd_recommend(int argc, char **argv);     /* cmd_recommend.c: answers from a saved model */
int mrec_cmd_similar(int argc, char **argv);       /* cmd_recommend.c */
int mrec_cmd_serve(int argc, char **argv);         /* cmd_serve.c: HTTP answers from a saved model */
int mrec_cmd_convert(int argc, char **argv);       /* cmd_convert.c: a PyTorch checkpoint to safetensors */
int mrec_cmd_finetune_clip(int argc, char **argv); /* cmd_finetune.c: CLIP on the items' own pairs */

/* ---- a Ducho config run from inside another command ---- */

#define MREC_MAX_EXTRACTED 32
typedef struct {
    int n;
    char modality[MREC_MAX_EXTRACTED][16]; /* visual, textual, or visual_textual_<fusion> */
    char folder[MREC_MAX_EXTRACTED][4096]; /* the leaf folder of <id>.npy files */
    char model[MREC_MAX_EXTRACTED][256];   /* model_name */
} mrec_extracted;

/* How to run a Ducho config, beyond the file. */
typedef struct {
    const char *weights;  /* where model_name folders are looked up; NULL: the default folder */
    int threads;          /* <= 0: one per core */
    int matrix;           /* also LEAF.npy and LEAF_ids.txt beside each leaf */
    int skip_unsupported; /* models without a local copy, or of a kind mrec cannot run, are noted and left out */
    int out_flags;        /* MREC_OUT_OVERWRITE, MREC_OUT_RESUME for the leaf folders */
    int device_given;     /* device was asked for (--device): it overrides the config's 'gpu list' */
    mrec_device_request device;
    int precision_given;  /* precision was asked for (--precision): it overrides the config's 'precision' */
    mrec_precision precision;
} mrec_ducho_options;

/* No matrix, no skipping, the config's device, fp32. */
mrec_ducho_options mrec_ducho_defaults(void);

/* Checks and runs the Ducho config held by `root` (a whole file, or the
 * `extract:` section of an mrec run file). Fills out (when not NULL) with
 * the folders written. Returns an exit status (0, 1, 2, 3) after printing
 * what went wrong. */
int mrec_ducho_run(const mrec_cfg *c, const mrec_cfg_node *root, const mrec_ducho_options *o, mrec_extracted *out);

/* The best grid point of each model at the last cut-off, on test (value) and
 * validation (valid), as the tables print them. */
#define MREC_MAX_BEST 16
typedef struct {
    int n, n_metrics, k;
    char model[MREC_MAX_BEST][128], metric[8][32];
    double value[MREC_MAX_BEST][8], valid[MREC_MAX_BEST][8];
} mrec_best;

/* How to run an Elliot experiment, beyond the file. */
typedef struct {
    const char *out;      /* NULL: results/<dataset> */
    const char *cache;    /* kNN graph cache (mrec train --cache), or NULL */
    const char *features; /* NULL or "visual=DIR,textual=DIR": what an extraction just wrote (mrec run) */
    const char *weights;  /* for mrec run's extraction; NULL: the default folder */
    int threads, max_epochs; /* max_epochs > 0 caps every model's epochs */
    int skip_unsupported;  /* models mrec lacks are listed and left out instead of refused */
    int out_flags;         /* MREC_OUT_OVERWRITE, MREC_OUT_RESUME (--overwrite, --resume) */
    int device_given, precision_given;  /* --device, --precision: over the config's gpu key (and mrec run's gpu list) */
    mrec_device_request device;
    mrec_precision precision;
} mrec_experiment_options;

/* Runs the Elliot experiment under `root` (a whole file, or the experiment
 * section of an mrec run file); best (or NULL) receives the best models.
 * Returns an exit status after printing what went wrong. */
int mrec_elliot_run(const mrec_cfg *c, const mrec_cfg_node *root, const mrec_experiment_options *o, mrec_best *best);

/* The options of `mrec train CONFIG` and `mrec run CONFIG` (cmd "train" or
 * "run"; --weights only for run), help made of usage, the options and notes:
 * -1 when they parse and name a config; else the exit status after help (0)
 * or a refusal (printed). */
int mrec_config_command_args(int argc, char **argv, const char *cmd, const char *usage, const char *notes, mrec_experiment_options *o,
                             const char **config);

/* An mrec run file (extract: and experiment:), loaded; best (or NULL)
 * receives the best models of every combination of extractors, one after
 * another. */
int mrec_run_config(const mrec_cfg *c, const mrec_experiment_options *o, mrec_best *best);

/* ---- report.html ---- */

typedef struct {
    const char *out, *title, *select, *note;        /* note may be NULL */
    const mrec_history_point *const *history;       /* (n_models) each model's validation curve, or NULL for no curves */
    const int *n_history;                           /* (n_models) */
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
/* An encoder's progress within one chunk of the items, shown as progress over
 * all of them: ctx is an mrec_chunk_progress. */
typedef struct {
    mrec_progress *p;
    int offset, total;
} mrec_chunk_progress;
void mrec_chunk_progress_update(void *ctx, int done, int total);
/* A training run's log callbacks (mrec_train_spec.log / .notice): its lines
 * to standard output, flushed each; its notices to standard error, after
 * "mrec train: ". */
void mrec_train_log_stdout(void *ctx, const char *line);
void mrec_train_notice_stderr(void *ctx, const char *line);

/* ---- files ---- */

/* mkdir -p. */
mrec_status mrec_mkdirs(const char *path);
/* rm -r, for the scratch folders of a failed run. */
void mrec_remove_tree(const char *path);
/* Where checkpoints live: $MREC_WEIGHTS, else weights/ beside the folder
 * holding the binary (the repository's weights/ for bin/mrec). */
const char *mrec_weights_dir(void);
/* Monotonic seconds. */
double mrec_now(void);

/* ---- output folders (files.c) ----
 *
 * An output folder (a Ducho leaf, an Elliot results folder, an --out) is
 * built in a scratch folder beside it, ".<name>.part-XXXXXX" (mkdtemp), and
 * appears by one rename when the run succeeds, so a reader sees the old
 * folder or the new one, never a mix or a half. For the whole run the folder
 * is locked (flock on ".<name>.lock" beside it, holding the run's pid, and
 * removed at the end), so a second run into it stops at once and names the
 * first. An existing folder
 * that is not empty is replaced only with MREC_OUT_OVERWRITE, and stays
 * untouched until the new one is complete. With MREC_OUT_RESUME the scratch
 * folder of a killed run (else the existing folder's files) is taken up, and
 * the caller keeps the items that verify (mrec_feature_file_ok). */
enum { MREC_OUT_OVERWRITE = 1, MREC_OUT_RESUME = 2 };
typedef struct {
    char path[4096];    /* the output folder, as given */
    char scratch[4200]; /* where this run writes it */
    char lock[4700];    /* the lock file beside it */
    int lock_fd;        /* -1 when not held */
    int resumed;        /* scratch holds a previous run's files (MREC_OUT_RESUME) */
} mrec_out_dir;

/* Locks `path`, checks it may be (re)written, makes the scratch folder. */
mrec_status mrec_out_begin(mrec_out_dir *o, const char *path, int flags);
/* Only locks `path` (no scratch folder), for writing files that belong with
 * it; mrec_out_abort releases it. */
mrec_status mrec_out_lock(mrec_out_dir *o, const char *path);
/* Puts the scratch folder in place of `path` and releases the lock. */
mrec_status mrec_out_commit(mrec_out_dir *o);
/* Removes the scratch folder and releases the lock; `path` is untouched. */
void mrec_out_abort(mrec_out_dir *o);
/* A fresh folder beside the output, ".<name>.work-XXXXXX", for a step
 * that needs room of its own; the caller removes it (a killed run's is
 * swept by the next mrec_out_begin). */
mrec_status mrec_out_work_dir(const mrec_out_dir *o, char *out, size_t cap);

/* s as a JSON string, quoted and escaped; bytes that are not UTF-8 become
 * U+FFFD, so the output stays valid JSON whatever an id (or a request) holds. */
void mrec_json_write_string(FILE *f, const char *s);

/* MREC_OK when no id repeats (per-item files would overwrite each other);
 * else an error naming `where`, the id and both positions (1-based). */
mrec_status mrec_check_unique_ids(const char *const *ids, int n, const char *where);
/* 1 when `path` is a complete feature file: a valid float32 .npy of shape
 * (1, dim), its data all there and finite. A resumed run keeps such files. */
int mrec_feature_file_ok(const char *path, int64_t dim);
/* MREC_OK when the row is finite; else an error naming the item, the model
 * and the first bad dimension, so that no NaN or Inf is ever written. */
mrec_status mrec_check_feature_row(const float *row, int dim, const char *item, const char *model);

#endif
