/* mrec_finetune.h: fine-tuning CLIP on (image, text) pairs with its own
 * contrastive loss (tools/cmd_finetune.c, `mrec finetune-clip`). The pieces
 * a test drives one by one: the optimizer state over both towers, one
 * accumulated batch, one optimizer step, and the saved folder.
 */
#ifndef MREC_FINETUNE_H
#define MREC_FINETUNE_H

#include "../extractors/mrec_extract.h"
#include "../nn/mrec_clip_train.h"

typedef struct {
    double lr, weight_decay, clip_norm; /* 1e-5, 0.2, 1.0 (<= 0: no clipping) */
    int freeze_vision, freeze_text;     /* the first N blocks and the embeddings of each tower are not updated */
} mrec_finetune_options;

/* One named tensor of the model, as Hugging Face's CLIPModel names it. */
typedef struct {
    char name[96];
    float *w;          /* in the tower's storage (on the context's device); NULL for the logit scale */
    int ndim;
    int64_t shape[4], n;
    int decay;         /* 0: biases, LayerNorms, embeddings, the logit scale */
    int frozen;
    int vision;        /* 1 vision tower, 0 text tower, -1 the logit scale */
} mrec_finetune_tensor;

typedef struct {
    mrec_context *ctx;
    mrec_clip *m;                  /* both towers, on ctx's device */
    mrec_finetune_options o;
    mrec_finetune_tensor *tensor;  /* every tensor of the checkpoint */
    int n_tensors;
    mrec_param_tensor *train;      /* the ones the optimizer updates, the logit scale last */
    int n_train;
    float *vgrad, *tgrad;          /* gradients in the towers' storage layout (device) */
    float *vm, *vv, *tm, *tv;      /* AdamW's moments, likewise */
    float *scale;                  /* (4) on the device: logit scale, its m, v and gradient */
    double dscale, *norm_work;     /* the logit scale's gradient (host); one device double for the norm */
    void *work;                    /* mrec_clip_train_grads' workspace */
    size_t work_bytes;
    int max_B, max_T, batches;     /* batches accumulated since the last step */
    int64_t step;                  /* optimizer steps taken */
    double last_norm;              /* the gradient norm of the last step, before clipping */
} mrec_finetune;

/* Checks the options against the model (a frozen depth past a tower's is
 * refused) and allocates gradients, moments and the workspace for batches
 * of up to max_B pairs of max_T tokens. */
mrec_status mrec_finetune_init(mrec_finetune *f, mrec_context *ctx, mrec_clip *m, const mrec_finetune_options *o, int max_B,
                               int max_T);
void mrec_finetune_free(mrec_finetune *f);

/* Adds one batch's gradients (images (B, C, S, S), ids and mask (B, T), host); *loss = its loss. */
mrec_status mrec_finetune_accumulate(mrec_finetune *f, const float *images, const int32_t *ids, const int32_t *mask, int B,
                                     int T, double *loss);

/* One AdamW step at learning rate lr with the gradients accumulated (averaged
 * over the batches), after clipping their global norm; the logit scale is then
 * clamped at ln(100); gradients are zeroed for the next step. */
mrec_status mrec_finetune_apply(mrec_finetune *f, double lr);

/* The model as a Hugging Face CLIP folder: model.safetensors (float32, HF's
 * names) into dir, which exists. */
mrec_status mrec_finetune_save_weights(const mrec_finetune *f, const char *path);

/* A catalogue's (photo, text) pairs as CLIP reads them, read once: the items
 * of a table (an id column, a text column) with each one's image by id from
 * an image folder or table, or from a column of the table. Shared by
 * finetune-clip and the end-to-end recommender (mrec train --model clip-e2e). */
typedef struct {
    const char *model;        /* the CLIP folder: its tokenizer and preprocessor_config.json */
    const char *items, *id_col, *text_col;
    const char *images;       /* a folder or image table, images by id; or NULL with image_col */
    const char *image_col, *image_id_col, *path_col;
    int skip_missing;         /* items without a text or a usable image are left out (counted, the first named), else an error */
    const char *who;          /* the command, in messages */
} mrec_clip_source;

typedef struct {
    int n, L, S, C;            /* items kept, token length, image side, channels */
    char **ids;                /* (n) item ids, borrowed from the table */
    float *images;             /* (n, C, S, S), CLIP-preprocessed */
    int32_t *tok, *mask, *len; /* (n, L), (n, L), (n) */
} mrec_clip_pairs;

/* Reads the table (into t, which the ids borrow from) and each item's image, preprocessed as the model's
 * processor does, and tokenizes the texts (padded to L, the tokenizer's maximum length). */
mrec_status mrec_clip_pairs_read(mrec_clip_pairs *p, const mrec_clip_source *s, const mrec_clip *m, mrec_table *t);
void mrec_clip_pairs_free(mrec_clip_pairs *p);

#endif
