/* mrec_bert.h: the BERT encoder family: Hugging Face BertModel (BERT, MiniLM,
 * sentence-transformers checkpoints) and MPNetModel (all-mpnet-base-v2),
 * told apart by config.json's model_type.
 *
 * MPNet differs from BERT in three places: no token-type embeddings;
 * position ids count real tokens from pad_token_id + 1 (padding keeps
 * pad_token_id); and a relative position bias, looked up by bucketed
 * distance in a (32 buckets, heads) table shared by all layers, is added to
 * the attention scores.
 *
 * ALIGN (model_type "align", kakaobrain/align-base) keeps a BERT under
 * "text_model." with its sizes in config.json's text_config, and a
 * text_projection (Linear with bias, hidden -> projection_dim) that
 * AlignModel applies to the [CLS] row of the last hidden state (not to the
 * pooler): mrec_bert_project.
 *
 * AltCLIP (model_type "altclip", BAAI/AltCLIP) keeps an XLM-R under
 * "text_model.roberta." (text_config's model_type "altclip_text_model"):
 * BERT's layers, one token type, and RoBERTa's position ids, which count
 * real tokens from pad_token_id + 1 as MPNet's do. Its text_embeds are
 * text_projection (no bias) of transformation (Linear with bias, hidden ->
 * project_dim) of pre_LN (a LayerNorm) of the first token's hidden state:
 * mrec_bert_project again. The checkpoint names its layers encoder.layer.N;
 * a file saved by transformers 5 (encoder.layers.N) loads too.
 *
 * Reads config.json and model.safetensors from a folder. Tensor names as
 * Hugging Face writes them, with or without the "bert." prefix. Every
 * tensor's shape is checked against the config before anything is
 * allocated; weights are widened to float32 once at load and must be
 * finite. The forward pass carves its activations from the context's
 * workspace (sized by mrec_bert_workspace_bytes) and allocates nothing.
 *
 * Devices: a model loads into host memory; mrec_bert_to_device moves its
 * weights to a GPU context once (one device allocation; nothing happens for
 * a CPU context), after which it runs on that context only. Inputs (ids,
 * masks) are host memory, copied once per batch; outputs are memory on the
 * context's device (any buffer on the CPU; on the GPU carve them from
 * ctx->workspace before the call and bring them back with mrec_copy_to_host).
 */
#ifndef MREC_BERT_H
#define MREC_BERT_H

#include "mrec_tensor.h"

typedef struct {
    int vocab_size, hidden, layers, heads, intermediate, max_positions, type_vocab;
    float layer_norm_eps;
    mrec_act act;     /* from hidden_act: gelu (erf), gelu_new / gelu_pytorch_tanh (tanh), relu, silu */
    int mpnet;        /* model_type "mpnet" */
    int pad_token_id; /* in [0, vocab_size); MPNet's position ids start after it */
    int rel_buckets;  /* MPNet: relative_attention_num_buckets (32), in [4, 256]; 0 for BERT */
    int roberta;      /* AltCLIP's XLM-R: RoBERTa position ids, as MPNet's */
    int project_dim;  /* AltCLIP: the transformation's width (text_config's project_dim); 0 otherwise */
    int proj_dim;     /* ALIGN, AltCLIP: projection_dim, the text_projection's width; 0 for a plain encoder */
} mrec_bert_config;

/* Fills c from a parsed config.json (file names it in messages). Every size
 * is range-checked (hidden_size a multiple of num_attention_heads,
 * pad_token_id inside the vocabulary and, for MPNet and RoBERTa, below
 * max_position_embeddings - 1, layer_norm_eps finite and positive);
 * model_type must be bert, mpnet, align_text_model or altclip_text_model.
 * Errors name the file and the key. */
struct cJSON;
mrec_status mrec_bert_config_parse(mrec_bert_config *c, const struct cJSON *root, const char *file);

typedef struct {
    float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b;  /* (H, H), (H) each */
    /* attn_out_* is BERT's attention.output.dense, MPNet's attention.attn.o */
    float *attn_out_w, *attn_out_b;            /* (H, H), (H) */
    float *attn_ln_w, *attn_ln_b;              /* (H) */
    float *inter_w, *inter_b;                  /* (I, H), (I) */
    float *out_w, *out_b;                      /* (H, I), (H) */
    float *out_ln_w, *out_ln_b;                /* (H) */
} mrec_bert_layer;

typedef struct {
    mrec_bert_config cfg;
    float *word, *position, *token_type;       /* (V, H), (P, H), (T, H); token_type NULL for MPNet */
    float *rel_bias;                           /* MPNet: (buckets, heads) */
    float *emb_ln_w, *emb_ln_b;                /* (H) */
    mrec_bert_layer *layer;                    /* (layers) */
    float *pooler_w, *pooler_b;                /* (H, H), (H); NULL if the checkpoint has no pooler */
    float *proj_w, *proj_b;                    /* text_projection: ALIGN (proj_dim, H), (proj_dim); AltCLIP (proj_dim,
                                                  project_dim), no bias; NULL for a plain encoder */
    float *pre_ln_w, *pre_ln_b;                /* AltCLIP's pre_LN: (H) */
    float *trans_w, *trans_b;                  /* AltCLIP's transformation: (project_dim, H), (project_dim) */
    int layers_plural;                         /* the checkpoint names layers encoder.layers.N (else encoder.layer.N) */
    float *storage;                            /* all of the above, one allocation (host, or on->device) */
    int64_t floats;                            /* its size */
    mrec_context *on;                          /* the GPU context holding the weights, NULL for host memory */
    int bf16_acts;                             /* its forward keeps bf16 activations between its steps (PyTorch's
                                                * autocast): set by mrec_bert_to_device where mrec_bf16_activations_native
                                                * (a test sets it on the CPU) */
    int32_t *rel_buckets;                      /* MPNet: the bucket of each distance d in [-(P-1), P-1] at d + P - 1 (host) */
} mrec_bert;

/* Loads dir/config.json and dir/model.safetensors. Errors name the file and
 * the key or tensor (a missing tensor, a shape that disagrees with the
 * config, an unknown hidden_act). */
mrec_status mrec_bert_load(mrec_bert *model, const char *dir);
/* Moves the weights to where ctx runs (see the top of this file). */
mrec_status mrec_bert_to_device(mrec_bert *model, mrec_context *ctx);
/* Frees the weights wherever they are; before the context they are on. */
void mrec_bert_free(mrec_bert *model);

/* Workspace bytes a forward pass of (B, T) needs where the model's weights
 * are (on a GPU the attention needs no scratch; the CPU's grows with T^2). */
size_t mrec_bert_workspace_bytes(const mrec_bert *model, int B, int T);

/* hidden (B, T, H) = last_hidden_state; pooled (B, H) = pooler_output (may be
 * NULL; an error if asked for and the checkpoint has none), both on the
 * context's device. ids, type_ids (or NULL for zeros) and mask (or NULL for
 * no padding) are (B, T) host arrays; mask 1 = real token, 0 = padding. */
mrec_status mrec_bert_forward(mrec_context *ctx, const mrec_bert *model, const int32_t *ids, const int32_t *type_ids,
                              const int32_t *mask, int B, int T, float *hidden, float *pooled);

/* The same for a caller that reads only the real tokens' rows (any pooling):
 * where the batch is padded on the right, the padding tokens are left out of
 * every step (the per-token steps run over the real tokens end to end, the
 * attention over each sequence's own length), and their rows of hidden are
 * zero. A sequence of more than MREC_GEMM_FEW_ROWS tokens then gets the bits
 * it gets alone, whatever else is in its batch. Other masks (left padding, a
 * row without a real token) run as mrec_bert_forward. */
mrec_status mrec_bert_forward_unpadded(mrec_context *ctx, const mrec_bert *model, const int32_t *ids, const int32_t *type_ids,
                                       const int32_t *mask, int B, int T, float *hidden, float *pooled);

/* ALIGN: out (B, proj_dim) = hidden[:, 0] Wproj^T + bproj; AltCLIP: out =
 * (LayerNorm_pre(hidden[:, 0]) Wt^T + bt) Wproj^T. hidden (B, T, H) from
 * mrec_bert_forward, both on the context's device; AltCLIP's two (B, H)
 * intermediates come from the context's workspace (less than a forward
 * pass needs). Unnormalized, as get_text_features returns them; the models'
 * text_embeds are these rows L2-normalized. An error for a model without a
 * projection. */
mrec_status mrec_bert_project(mrec_context *ctx, const mrec_bert *model, const float *hidden, int B, int T, float *out);

#endif
