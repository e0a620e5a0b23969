/* mrec_extract.h: what Ducho does: item tables in, one feature vector per
 * item out.
 *
 * Text: a sentence-transformers or Hugging Face BERT-family folder
 * (config.json, model.safetensors, tokenizer.json or vocab.txt, and when
 * present modules.json, 1_Pooling/config.json, 2_Normalize,
 * sentence_bert_config.json, which decide the pooling, the normalization
 * and the maximum length as sentence-transformers would), or a Hugging Face
 * CLIP folder (config.json with model_type "clip", model.safetensors,
 * tokenizer.json or vocab.json + merges.txt), whose text tower gives
 * text_embeds (or the projection or the pooler: clip_output). Texts are
 * tokenized by the context's threads, sorted by token count and padded per
 * batch, so short product titles are cheap; results come back in the input
 * order.
 */
#ifndef MREC_EXTRACT_H
#define MREC_EXTRACT_H

#include "../nn/mrec_bert.h"
#include "../nn/mrec_clip.h"
#include "../tokenizers/mrec_tokenizer.h"
#include "mrec_batch_pipe.h"

/* ---- item tables (CSV / TSV with a header) ---- */

typedef struct {
    int n_rows, n_cols;
    char **header;   /* (n_cols) */
    char **cells;    /* (n_rows, n_cols), NUL-terminated */
} mrec_table;

/* Reads a table; sep is ',' or '\t' (0: by extension, .tsv / .tab -> tab).
 * CSV quoting as RFC 4180 (quoted fields, "" inside quotes, line breaks in
 * quotes). A row with the wrong number of fields or an unterminated quote
 * is an error naming the file and line. */
mrec_status mrec_table_read(mrec_table *t, const char *path, char sep);
/* The index of a column, or an error naming it and the file. */
mrec_status mrec_table_column(const mrec_table *t, const char *name, const char *path, int *col);
void mrec_table_free(mrec_table *t);

/* ---- text encoder ---- */

/* MREC_POOL_EMBEDS: ALIGN's text_projection of the [CLS] row (mrec_bert_project) */
typedef enum { MREC_POOL_MEAN, MREC_POOL_CLS, MREC_POOL_POOLER, MREC_POOL_EMBEDS } mrec_pooling;

typedef struct {
    int is_clip;
    mrec_bert bert;
    mrec_clip clip;              /* the text tower only */
    mrec_clip_output clip_output; /* MREC_CLIP_EMBEDS unless changed */
    mrec_tokenizer *tok;
    mrec_pooling pooling;
    int normalize;
    int max_length;
    int batch_size;
    /* threads gathering the next batch's token ids while one encodes; < 0 (the default): one on a GPU, none on
     * the CPU, where a gather takes microseconds against a forward pass of a tenth of a second */
    int producers;
    void (*progress)(void *ctx, int done, int total); /* after each batch, when set */
    void *progress_ctx;
    /* the weights packed once for the CPU's GEMMs, as they are first used (see mrec_packs): they cost about
     * the weights' bytes again; NULL on a GPU, or to do without (free it and set NULL before embedding) */
    mrec_packs *packs;
    mrec_stage_times *times; /* when set, each embed call adds where its time went (tokenizing is "prepare") */
} mrec_text_encoder;

/* Loads the folder; pooling / normalize / max length from the
 * sentence-transformers files when present (mean pooling, no normalization,
 * 512 otherwise). An ALIGN folder gives AlignModel's text_embeds: the
 * projected [CLS] row, L2-normalized, texts cut at 64 tokens as
 * AlignProcessor does. */
mrec_status mrec_text_encoder_load(mrec_text_encoder *enc, const char *dir);
/* Moves the model's weights to where ctx runs, once, before embedding on a
 * GPU context (nothing to do on the CPU). */
mrec_status mrec_text_encoder_to_device(mrec_text_encoder *enc, mrec_context *ctx);
/* Frees the encoder (before the context its weights are on). */
void mrec_text_encoder_free(mrec_text_encoder *enc);
int mrec_text_encoder_dim(const mrec_text_encoder *enc);

/* out (n, dim), host memory: one embedding per text, in the input order.
 * The batch runs where ctx does; only the pooled rows come back. */
mrec_status mrec_text_encoder_embed(mrec_context *ctx, mrec_text_encoder *enc, const char *const *texts, int n, float *out);

#endif
