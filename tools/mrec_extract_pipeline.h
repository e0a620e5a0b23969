/* mrec_extract_pipeline.h: one extraction described in memory, its counts
 * (and, when asked, its features) handed back in memory. `mrec extract-text`,
 * `extract-image` and `extract-clip` parse their options into a spec and
 * call these; the Ducho config runner fills the same specs from the config,
 * and writes its --matrix files from the features returned rather than from
 * the per-item files it just wrote.
 *
 * The encoders behind the runs prepare each batch one ahead of the forward
 * pass (extractors/mrec_batch_pipe.h): decode threads fill the next batch
 * of images, a producer gathers the next batch of token ids, into pinned
 * host memory on a GPU, where the images go up on a copy stream while the
 * previous batch computes and only the features come back. The features
 * are the same bytes as batch after batch in turn, whatever the threads.
 *
 * Each run writes its output folder as the commands always have (built
 * beside itself, swapped in whole; see mrec_out_begin) and says on standard
 * error what it did, prefixed with the command's name, so a config run reads
 * like the commands it stands for.
 */
#ifndef MREC_EXTRACT_PIPELINE_H
#define MREC_EXTRACT_PIPELINE_H

#include <stdint.h>

#include "../kernels/mrec_kernels.h"

/* What every extraction takes. */
typedef struct {
    const char *model;          /* a model folder (a ResNet may be one .safetensors file) */
    const char *out;            /* the output folder */
    int per_item;               /* <id>.npy of shape (1, dim) per item (Ducho's layout); else one matrix and its ids */
    int out_flags;              /* MREC_OUT_OVERWRITE, MREC_OUT_RESUME */
    int batch_size;             /* <= 0: 32 */
    /* where it runs: ctx, else a context made for the run (and its notice printed) */
    mrec_context *ctx;
    int threads;                /* <= 0: one per core */
    mrec_device_request device; /* MREC_WANT_AUTO unless asked */
    mrec_precision precision;
    int device_given;           /* the device was asked for: an "auto" fallback notice is printed even in a CPU build */
    int keep;                   /* the result also gets the features and their ids */
} mrec_extract_common;

typedef struct {
    mrec_extract_common run;
    const char *input;          /* the item table, CSV or TSV */
    const char *id_column, *text_column;
    const char *pooling;        /* BERT family: "mean", "cls", "pooler"; NULL: the folder's setting */
    const char *layer;          /* CLIP: "embeds", "projected", "pooler"; NULL: embeds */
    int normalize;              /* 1: L2-normalize; -1: the folder's setting */
    int skip_empty;             /* an empty text is left out; else the empty string is embedded */
} mrec_text_extract_spec;

typedef struct {
    mrec_extract_common run;
    const char *images;         /* a folder of .jpg / .jpeg / .png, or a table of ids and paths */
    const char *id_column, *path_column; /* a table's; NULL: the first two */
    const char *preset;         /* NULL: the model's */
    const char *layer;          /* NULL: avgpool (ResNet), cls (ViT) */
    int size_h, size_w;         /* > 0: a straight resize (Ducho's reshape), in [8, 4096] */
    int normalize_given;        /* mean and std replace the preset's normalization */
    float mean[3], std[3];      /* in [0, 1] units */
    int decode_threads;         /* <= 0: 2; at most the encoder's threads (run.threads), as decoding runs beside it */
    int strict;                 /* an image that cannot be used stops the run before anything is written */
} mrec_image_extract_spec;

typedef struct {
    mrec_extract_common run;    /* out_flags: MREC_OUT_RESUME runs again whole, as MREC_OUT_OVERWRITE does not */
    const char *images;         /* a folder (id = file name up to the first dot) or an id/path table */
    const char *input;          /* the item table: it lists the items */
    const char *id_column, *text_column;
    const char *image_id_column, *path_column; /* an image table's; NULL: the first two */
    const char *layer;          /* "embeds", "projected", "pooler"; NULL: embeds */
    const char *fusion;         /* "concat", "sum", "mul", "mean", or NULL */
    const char *preset;         /* NULL: hf-clip */
    int decode_threads;         /* <= 0: 2; at most the encoder's threads */
    int strict;
} mrec_clip_extract_spec;

typedef struct {
    int n_items;     /* items listed (table rows, images) */
    int n_embedded;  /* embedded by this run */
    int n_kept;      /* taken up from a resumed run's files */
    int n_skipped;   /* left out: images that could not be used, items without an image */
    int n_empty;     /* empty texts (embedded or left out as the spec says) */
    int dim;         /* the feature size; CLIP: the image tower's */
    int dim_text, dim_fused; /* CLIP: the text tower's, the fused one (0 without fusion) */
    /* with run.keep: the items written, in the order of the output (table or id order) */
    int n_rows;
    char **ids;            /* (n_rows) */
    float *features;       /* (n_rows, dim) */
    float *text_features;  /* (n_rows, dim_text), CLIP */
    float *fused_features; /* (n_rows, dim_fused), CLIP with a fusion */
} mrec_extract_result;

/* mrec extract-text's defaults: matrix, batch 32, the folder's pooling and normalization, auto device, fp32. */
mrec_extract_common mrec_extract_defaults(void);

/* Each returns an exit status (0; 1 bad arguments; 2 bad input or a failed
 * run; 3 out of memory) after printing what went wrong; out (may be NULL)
 * holds the counts, and with run.keep the features. Free out either way. */
int mrec_extract_text_run(const mrec_text_extract_spec *spec, mrec_extract_result *out);
int mrec_extract_image_run(const mrec_image_extract_spec *spec, mrec_extract_result *out);
int mrec_extract_clip_run(const mrec_clip_extract_spec *spec, mrec_extract_result *out);
void mrec_extract_result_free(mrec_extract_result *r);

/* For a kept result: rows [0, n) of `rows` (n, dim) with their ids, copied in. */
mrec_status mrec_extract_result_keep(mrec_extract_result *r, const char *const *ids, const float *rows, int n, int dim);
/* A resumed run's row read back from its verified file (for run.keep). */
mrec_status mrec_extract_row_read(const char *path, float *row, int dim);

/* The rows of a leaf as one matrix beside it: LEAF.npy (n, dim) and LEAF_ids.txt, the items in the order of their
 * <id>.npy file names (MMRec's layout, joined by id), as the Ducho runner's --matrix writes them. */
mrec_status mrec_extract_matrix_write(const char *leaf, const char *const *ids, const float *rows, int n, int dim);

#endif
