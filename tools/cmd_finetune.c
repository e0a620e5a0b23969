/* cmd_finetune.c: `mrec finetune-clip`, CLIP fine-tuned on a catalogue's own
 * (photo, text) pairs with CLIP's symmetric InfoNCE loss.
 *
 *   mrec finetune-clip --model DIR --items TABLE --id-column C --text-column C (--images DIR|TABLE | --image-column C)
 *                      --out DIR [--batch 32] [--epochs 1] [--lr 1e-5] [--weight-decay 0.2] [--warmup 0]
 *                      [--clip-norm 1.0] [--accum 1] [--freeze-vision N] [--freeze-text N] [--valid-ratio 0.1]
 *                      [--seed 0] [--threads N] [--device auto|cpu|cuda]
 *
 * The recipe is CLIP's (Radford et al. 2021) as open_clip and transformers
 * fine-tune it: AdamW with betas (0.9, 0.98), eps 1e-6, weight decay on the
 * weight matrices only (none on biases, LayerNorms, embeddings, the logit
 * scale), the gradients' global norm clipped, a linear warm-up then cosine
 * decay, the logit scale clamped at ln(100) after each step. Gradients come
 * from nn/clip_train.c; one step equals torch.optim.AdamW after
 * clip_grad_norm_ on transformers' CLIPModel (tools/golden/finetune_clip.py).
 *
 * Images are decoded and preprocessed once, before training, and kept as
 * float tensors: memory grows with items x 3 x S x S floats (0.6 MB an item
 * at 224), the price of not decoding each photo once per epoch. Dropout is
 * off (CLIP has none). GEMMs run in fp32 wherever the model runs: the
 * weights change every step, so no bf16 copy of them is kept.
 */
#include "../extractors/mrec_extract.h"
#include "../extractors/mrec_image_encoder.h"
#include "../extractors/mrec_preprocess.h"
#include "../nn/mrec_io.h"
#include "../nn/mrec_safetensors.h"
#include "mrec_finetune.h"
#include "mrec_options.h"
#include "mrec_parse.h"
#include "mrec_tools.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the model's tensors, named as transformers names them ---- */

static void add(mrec_finetune_tensor *t, int *n, float *w, int vision, int decay, int frozen, int ndim, int64_t d0, int64_t d1,
                int64_t d2, int64_t d3, const char *fmt, ...) __attribute__((format(printf, 12, 13)));

static void add(mrec_finetune_tensor *t, int *n, float *w, int vision, int decay, int frozen, int ndim, int64_t d0, int64_t d1,
                int64_t d2, int64_t d3, const char *fmt, ...) {
    mrec_finetune_tensor *x = &t[(*n)++];
    memset(x, 0, sizeof *x);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->name, sizeof x->name, fmt, ap);
    va_end(ap);
    int64_t d[4] = {d0, d1, d2, d3};
    x->w = w, x->vision = vision, x->decay = decay, x->frozen = frozen, x->ndim = ndim, x->n = 1;
    for (int i = 0; i < ndim; i++) x->shape[i] = d[i], x->n *= d[i];
}

/* Every tensor of one tower (in nn/clip.c's order); returns the count. freeze: the first blocks frozen
 * (with the embeddings when > 0). */
static void tower_tensors(mrec_finetune_tensor *t, int *n, const mrec_clip_tower *tw, int vision, int D, int freeze) {
    const mrec_clip_tower_config *c = &tw->cfg;
    int64_t H = c->hidden, I = c->intermediate;
    const char *p = vision ? "vision_model" : "text_model";
    int fe = freeze > 0;
    if (vision) {
        int64_t G = c->image_size / c->patch_size;
        add(t, n, tw->embed, 1, 0, fe, 4, H, c->channels, c->patch_size, c->patch_size, "vision_model.embeddings.patch_embedding.weight");
        add(t, n, tw->cls, 1, 0, fe, 1, H, 0, 0, 0, "vision_model.embeddings.class_embedding");
        add(t, n, tw->pos, 1, 0, fe, 2, 1 + G * G, H, 0, 0, "vision_model.embeddings.position_embedding.weight");
        add(t, n, tw->pre_w, 1, 0, fe, 1, H, 0, 0, 0, "vision_model.pre_layrnorm.weight");
        add(t, n, tw->pre_b, 1, 0, fe, 1, H, 0, 0, 0, "vision_model.pre_layrnorm.bias");
    } else {
        add(t, n, tw->embed, 0, 0, fe, 2, c->vocab_size, H, 0, 0, "text_model.embeddings.token_embedding.weight");
        add(t, n, tw->pos, 0, 0, fe, 2, c->max_positions, H, 0, 0, "text_model.embeddings.position_embedding.weight");
    }
    for (int l = 0; l < c->layers; l++) {
        const mrec_vit_layer *L = &tw->layer[l];
        int fz = l < freeze;
        struct { float *w; int mat; int64_t r, k; const char *what; } part[] = {
            {L->ln1_w, 0, H, 0, "layer_norm1.weight"}, {L->ln1_b, 0, H, 0, "layer_norm1.bias"},
            {L->q_w, 1, H, H, "self_attn.q_proj.weight"}, {L->q_b, 0, H, 0, "self_attn.q_proj.bias"},
            {L->k_w, 1, H, H, "self_attn.k_proj.weight"}, {L->k_b, 0, H, 0, "self_attn.k_proj.bias"},
            {L->v_w, 1, H, H, "self_attn.v_proj.weight"}, {L->v_b, 0, H, 0, "self_attn.v_proj.bias"},
            {L->o_w, 1, H, H, "self_attn.out_proj.weight"}, {L->o_b, 0, H, 0, "self_attn.out_proj.bias"},
            {L->ln2_w, 0, H, 0, "layer_norm2.weight"}, {L->ln2_b, 0, H, 0, "layer_norm2.bias"},
            {L->inter_w, 1, I, H, "mlp.fc1.weight"}, {L->inter_b, 0, I, 0, "mlp.fc1.bias"},
            {L->out_w, 1, H, I, "mlp.fc2.weight"}, {L->out_b, 0, H, 0, "mlp.fc2.bias"},
        };
        for (size_t i = 0; i < sizeof part / sizeof *part; i++)
            add(t, n, part[i].w, vision, part[i].mat, fz, part[i].mat ? 2 : 1, part[i].r, part[i].k, 0, 0, "%s.encoder.layers.%d.%s", p,
                l, part[i].what);
    }
    add(t, n, tw->post_w, vision, 0, 0, 1, H, 0, 0, 0, "%s.%s.weight", p, vision ? "post_layernorm" : "final_layer_norm");
    add(t, n, tw->post_b, vision, 0, 0, 1, H, 0, 0, 0, "%s.%s.bias", p, vision ? "post_layernorm" : "final_layer_norm");
    add(t, n, tw->proj, vision, 1, 0, 2, D, H, 0, 0, "%s", vision ? "visual_projection.weight" : "text_projection.weight");
}

/* ---- device memory ---- */

static mrec_status dev_zeros(mrec_context *ctx, void **p, size_t bytes) {
    *p = NULL;
    if (mrec_weights_on_host(ctx)) {
        *p = calloc(1, bytes ? bytes : 1);
        return *p ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "finetune-clip: %zu bytes", bytes);
    }
    mrec_status st = mrec_cuda_malloc(ctx->cuda, p, bytes);
    if (st) return st;
    /* zeroed on the device (a host buffer of zeros as large as the step's workspace would cost as much host memory) */
    static const unsigned char zero[sizeof(float)];
    st = mrec_fill(ctx, (float *)*p, 0.0f, (int64_t)(bytes / sizeof(float)));
    if (!st && bytes % sizeof(float))
        st = mrec_copy_to_device(ctx, (unsigned char *)*p + bytes / sizeof(float) * sizeof(float), zero, bytes % sizeof(float));
    return st;
}

static void dev_free(mrec_context *ctx, void *p) {
    if (!p) return;
    if (mrec_weights_on_host(ctx)) free(p);
    else mrec_cuda_free(ctx->cuda, p);
}

static mrec_status zero_grads(mrec_finetune *f) {
    mrec_status st = MREC_OK;
    if (mrec_weights_on_host(f->ctx)) {
        memset(f->vgrad, 0, sizeof(float) * (size_t)f->m->vision.floats);
        memset(f->tgrad, 0, sizeof(float) * (size_t)f->m->text.floats);
    } else {
        st = mrec_fill(f->ctx, f->vgrad, 0.0f, f->m->vision.floats);
        if (!st) st = mrec_fill(f->ctx, f->tgrad, 0.0f, f->m->text.floats);
    }
    f->dscale = 0, f->batches = 0;
    return st;
}

/* ---- the optimizer state ---- */

void mrec_finetune_free(mrec_finetune *f) {
    if (!f->ctx) return;
    void *p[] = {f->vgrad, f->tgrad, f->vm, f->vv, f->tm, f->tv, f->scale, f->norm_work, f->work};
    for (size_t i = 0; i < sizeof p / sizeof *p; i++) dev_free(f->ctx, p[i]);
    free(f->tensor), free(f->train);
    memset(f, 0, sizeof *f);
}

mrec_status mrec_finetune_init(mrec_finetune *f, mrec_context *ctx, mrec_clip *m, const mrec_finetune_options *o, int max_B,
                               int max_T) {
    memset(f, 0, sizeof *f);
    if (m->towers != MREC_CLIP_BOTH) return mrec_fail(MREC_ERR_ARG, "finetune-clip: both towers are needed");
    if (o->freeze_vision < 0 || o->freeze_vision > m->vision.cfg.layers)
        return mrec_fail(MREC_ERR_ARG, "finetune-clip: --freeze-vision %d, but the vision tower has %d blocks", o->freeze_vision,
                         m->vision.cfg.layers);
    if (o->freeze_text < 0 || o->freeze_text > m->text.cfg.layers)
        return mrec_fail(MREC_ERR_ARG, "finetune-clip: --freeze-text %d, but the text tower has %d blocks", o->freeze_text,
                         m->text.cfg.layers);
    if (max_B < 2) return mrec_fail(MREC_ERR_ARG, "finetune-clip: a batch of %d pair(s); the contrastive loss needs 2 or more", max_B);
    f->ctx = ctx, f->m = m, f->o = *o, f->max_B = max_B, f->max_T = max_T;
    int cap = 8 + 16 * (m->vision.cfg.layers + m->text.cfg.layers) + 8;
    f->tensor = calloc((size_t)cap, sizeof *f->tensor), f->train = calloc((size_t)cap, sizeof *f->train);
    if (!f->tensor || !f->train) return mrec_finetune_free(f), mrec_fail(MREC_ERR_NOMEM, "finetune-clip: tensor lists");
    tower_tensors(f->tensor, &f->n_tensors, &m->text, 0, m->projection_dim, o->freeze_text);
    tower_tensors(f->tensor, &f->n_tensors, &m->vision, 1, m->projection_dim, o->freeze_vision);
    add(f->tensor, &f->n_tensors, NULL, -1, 0, 0, 0, 0, 0, 0, 0, "logit_scale");
    int64_t VF = m->vision.floats, TF = m->text.floats;
    f->work_bytes = mrec_clip_train_workspace_bytes(ctx, m, max_B, max_T);
    mrec_status st = MREC_OK;
    void **slot[] = {(void **)&f->vgrad, (void **)&f->vm, (void **)&f->vv, (void **)&f->tgrad, (void **)&f->tm, (void **)&f->tv};
    for (int i = 0; i < 6 && !st; i++) st = dev_zeros(ctx, slot[i], sizeof(float) * (size_t)(i < 3 ? VF : TF));
    if (!st) st = dev_zeros(ctx, (void **)&f->scale, 4 * sizeof(float));
    if (!st) st = dev_zeros(ctx, (void **)&f->norm_work, sizeof(double));
    if (!st) st = dev_zeros(ctx, &f->work, f->work_bytes);
    if (!st) st = mrec_copy_to_device(ctx, f->scale, &m->logit_scale, sizeof(float));
    if (st) return mrec_finetune_free(f), st;
    for (int i = 0; i < f->n_tensors; i++) {
        const mrec_finetune_tensor *x = &f->tensor[i];
        if (x->frozen || x->vision < 0) continue;
        const mrec_clip_tower *tw = x->vision ? &m->vision : &m->text;
        int64_t at = x->w - tw->storage;
        f->train[f->n_train++] = (mrec_param_tensor){x->w,           (x->vision ? f->vm : f->tm) + at, (x->vision ? f->vv : f->tv) + at,
                                                     (x->vision ? f->vgrad : f->tgrad) + at, x->n, x->decay};
    }
    f->train[f->n_train++] = (mrec_param_tensor){f->scale, f->scale + 1, f->scale + 2, f->scale + 3, 1, 0};
    return MREC_OK;
}

mrec_status mrec_finetune_accumulate(mrec_finetune *f, const float *images, const int32_t *ids, const int32_t *mask, int B,
                                     int T, double *loss) {
    if (B > f->max_B || T > f->max_T || B < 2)
        return mrec_fail(MREC_ERR_ARG, "finetune-clip: a batch of %d x %d tokens (at most %d x %d, at least 2 pairs)", B, T, f->max_B,
                         f->max_T);
    double ds = 0;
    mrec_status st = mrec_clip_train_grads(f->ctx, f->m, images, ids, mask, B, T, f->vgrad, f->tgrad, &ds, loss, f->work, f->work_bytes);
    if (!st) f->dscale += ds, f->batches++;
    return st;
}

mrec_status mrec_finetune_apply(mrec_finetune *f, double lr) {
    if (!f->batches) return mrec_fail(MREC_ERR_ARG, "finetune-clip: a step with no batch accumulated");
    mrec_status st = MREC_OK;
    /* the mean over the accumulated batches: the loss is their mean, as with a batch k times larger split in k */
    if (f->batches > 1) {
        float s = 1.0f / (float)f->batches;
        st = mrec_scale(f->ctx, f->vgrad, f->vgrad, s, f->m->vision.floats);
        if (!st) st = mrec_scale(f->ctx, f->tgrad, f->tgrad, s, f->m->text.floats);
        f->dscale /= f->batches;
    }
    float g = (float)f->dscale;
    if (!st) st = mrec_copy_to_device(f->ctx, f->scale + 3, &g, sizeof g);
    if (!st && f->o.clip_norm > 0)
        st = mrec_clip_grad_norm(f->ctx, f->train, f->n_train, (float)f->o.clip_norm, &f->last_norm, f->norm_work);
    mrec_adamw_options ao = {lr, 0.9, 0.98, 1e-6, f->o.weight_decay};
    if (!st) st = mrec_adamw_step(f->ctx, f->train, f->n_train, &ao, lr, ++f->step);
    /* CLIP clamps the temperature so the logits stay below 100 */
    float s = 0;
    if (!st) st = mrec_copy_to_host(f->ctx, &s, f->scale, sizeof s);
    if (!st && s > (float)log(100.0)) {
        s = (float)log(100.0);
        st = mrec_copy_to_device(f->ctx, f->scale, &s, sizeof s);
    }
    if (!st) f->m->logit_scale = s, st = zero_grads(f);
    return st;
}

mrec_status mrec_finetune_save_weights(const mrec_finetune *f, const char *path) {
    const mrec_clip *m = f->m;
    int64_t VF = m->vision.floats, TF = m->text.floats;
    float *host_v = NULL, *host_t = NULL, scale = m->logit_scale;
    int on_host = mrec_weights_on_host(f->ctx);
    mrec_st_tensor_in *in = calloc((size_t)f->n_tensors, sizeof *in);
    mrec_status st = in ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "finetune-clip: saving");
    if (!st && !on_host) {
        host_v = malloc(sizeof(float) * (size_t)VF), host_t = malloc(sizeof(float) * (size_t)TF);
        if (!host_v || !host_t) st = mrec_fail(MREC_ERR_NOMEM, "finetune-clip: a host copy of the weights");
        if (!st) st = mrec_copy_to_host(f->ctx, host_v, m->vision.storage, sizeof(float) * (size_t)VF);
        if (!st) st = mrec_copy_to_host(f->ctx, host_t, m->text.storage, sizeof(float) * (size_t)TF);
    }
    for (int i = 0; !st && i < f->n_tensors; i++) {
        const mrec_finetune_tensor *x = &f->tensor[i];
        const void *data = &scale;
        if (x->vision >= 0) {
            const mrec_clip_tower *tw = x->vision ? &m->vision : &m->text;
            data = on_host ? (const void *)x->w : (const void *)((x->vision ? host_v : host_t) + (x->w - tw->storage));
        }
        in[i] = (mrec_st_tensor_in){x->name, MREC_F32, x->ndim, x->shape, data};
    }
    const char *keys[] = {"format"}, *vals[] = {"pt"}; /* transformers checks this key */
    if (!st) st = mrec_safetensors_write(path, in, f->n_tensors, keys, vals, 1);
    free(in), free(host_v), free(host_t);
    return st;
}

/* ---- the data: pairs of a preprocessed image and token ids ---- */

typedef mrec_clip_pairs pairs;

void mrec_clip_pairs_free(mrec_clip_pairs *p) {
    free(p->ids), free(p->images), free(p->tok), free(p->mask), free(p->len);
    memset(p, 0, sizeof *p);
}

static void pairs_free(pairs *p) { mrec_clip_pairs_free(p); }

typedef struct {
    const char *model, *items, *id_col, *text_col, *images, *image_col, *image_id_col, *path_col, *out;
    int batch, epochs, warmup, accum, threads, overwrite, skip_missing;
    double lr, min_lr, weight_decay, clip_norm, valid_ratio;
    uint64_t seed;
    mrec_finetune_options fo;
    mrec_context_options co;
    int device_given;
} spec;

mrec_status mrec_clip_pairs_read(mrec_clip_pairs *p, const mrec_clip_source *s, const mrec_clip *m, mrec_table *t) {
    memset(p, 0, sizeof *p);
    mrec_status st = mrec_table_read(t, s->items, 0);
    if (st) return st;
    if (t->n_rows == 0) return mrec_fail(MREC_ERR_FORMAT, "%s: the table has no items", s->items);
    int ci, ct, cimg = -1;
    if ((st = mrec_table_column(t, s->id_col, s->items, &ci)) || (st = mrec_table_column(t, s->text_col, s->items, &ct))) return st;
    if (s->image_col && (st = mrec_table_column(t, s->image_col, s->items, &cimg))) return st;
    mrec_image_list il = {0};
    if (s->images && (st = mrec_image_list_read(&il, s->images, s->image_id_col, s->path_col))) return st;
    mrec_preprocess pre;
    if ((st = mrec_preprocess_preset(&pre, "hf-clip", s->model))) return mrec_image_list_free(&il), st;
    mrec_tokenizer *tok = NULL;
    if (mrec_tokenizer_load(&tok, s->model)) {
        mrec_image_list_free(&il);
        return mrec_fail(MREC_ERR_FORMAT, "%s: the tokenizer: %s", s->model, mrec_tok_error_detail());
    }
    const mrec_clip_tower_config *vc = &m->vision.cfg;
    int n = t->n_rows;
    p->n = n, p->S = vc->image_size, p->C = vc->channels;
    p->L = mrec_tokenizer_max_length(tok);
    if (p->L <= 0 || p->L > m->text.cfg.max_positions) p->L = m->text.cfg.max_positions;
    size_t img = (size_t)p->C * p->S * p->S;
    p->ids = malloc(sizeof *p->ids * n);
    p->tok = malloc(sizeof(int32_t) * (size_t)n * p->L), p->mask = malloc(sizeof(int32_t) * (size_t)n * p->L);
    p->len = malloc(sizeof(int32_t) * n);
    const char **texts = malloc(sizeof *texts * n);
    if (!p->ids || !p->tok || !p->mask || !p->len || !texts) st = mrec_fail(MREC_ERR_NOMEM, "%s: %d items", s->who, n);
    if (!st) {
        const char **all = malloc(sizeof *all * n);
        if (!all) st = mrec_fail(MREC_ERR_NOMEM, "%s: %d items", s->who, n);
        for (int i = 0; !st && i < n; i++) all[i] = t->cells[(size_t)i * t->n_cols + ci];
        if (!st) st = mrec_check_unique_ids(all, n, s->items);
        free(all);
    }
    /* images: relative paths of the table's own column are taken from its folder, as image tables do */
    char dir[4096] = ".";
    const char *slash = strrchr(s->items, '/');
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - s->items), s->items);
    int kept = 0, skipped = 0, cap = 0;
    for (int i = 0; !st && i < n; i++) {
        const char *id = t->cells[(size_t)i * t->n_cols + ci], *text = t->cells[(size_t)i * t->n_cols + ct], *path = NULL;
        char full[8192], why[1024] = "";
        mrec_status bad = MREC_OK;
        if (!text[0]) bad = mrec_fail(MREC_ERR_FORMAT, "%s: item '%s' has an empty text", s->items, id);
        if (!bad && cimg >= 0) {
            const char *rel = t->cells[(size_t)i * t->n_cols + cimg];
            if (!rel[0]) bad = mrec_fail(MREC_ERR_NOT_FOUND, "%s: item '%s' has no image path", s->items, id);
            snprintf(full, sizeof full, "%s%s%s", rel[0] == '/' ? "" : dir, rel[0] == '/' ? "" : "/", rel);
            path = full;
        } else if (!bad) {
            for (int j = 0; j < il.n && !path; j++)
                if (!strcmp(il.ids[j], id)) path = il.paths[j];
            if (!path) bad = mrec_fail(MREC_ERR_NOT_FOUND, "%s: item '%s' has no image in %s", s->items, id, s->images);
        }
        mrec_rgb_image im = {0};
        if (!bad && (bad = mrec_image_load(path, &im))) {
            snprintf(why, sizeof why, "%s", mrec_error_detail());
            bad = mrec_fail(bad, "item '%s': %s", id, why);
        }
        if (!bad) {
            int oh, ow;
            mrec_preprocess_out_size(&pre, im.h, im.w, &oh, &ow);
            if (oh != p->S || ow != p->S)
                st = mrec_fail(MREC_ERR_SHAPE, "%s: preprocessing gives %dx%d images, the model takes %dx%d", s->model, oh, ow, p->S, p->S);
            if (!st && kept == cap) { /* grows as items are kept: a table may list many more items than have photos */
                cap = cap ? 2 * cap : 64;
                float *grown = realloc(p->images, sizeof(float) * img * (size_t)cap);
                if (!grown) st = mrec_fail(MREC_ERR_NOMEM, "%s: %d images of %zu floats", s->who, cap, img);
                else p->images = grown;
            }
            if (!st && (bad = mrec_preprocess_image(&pre, &im, p->images + img * kept, NULL))) {
                snprintf(why, sizeof why, "%s", mrec_error_detail());
                bad = mrec_fail(bad, "item '%s': image %s: %s", id, path, why);
            }
        }
        mrec_image_free(&im);
        if (st) break;
        if (bad && !s->skip_missing) st = bad;
        else if (bad && skipped++ < 5) fprintf(stderr, "mrec %s: left out: %s\n", s->who, mrec_error_detail());
        else if (!bad) p->ids[kept] = (char *)id, texts[kept++] = text;
    }
    if (!st && skipped) fprintf(stderr, "mrec %s: %d of %d items left out (--skip-missing)\n", s->who, skipped, n);
    if (!st && !kept) st = mrec_fail(MREC_ERR_FORMAT, "%s: no item has both a text and an image", s->items);
    p->n = n = kept;
    mrec_tok_options to = mrec_tok_defaults();
    to.max_length = p->L, to.truncation = 1;
    if (!st && mrec_tokenizer_encode_batch(tok, texts, NULL, n, &to, p->L, p->tok, NULL, p->mask, p->len))
        st = mrec_fail(MREC_ERR_ARG, "%s: tokenizing: %s", s->items, mrec_tok_error_detail());
    free(texts);
    mrec_tokenizer_free(tok);
    mrec_image_list_free(&il);
    if (st) pairs_free(p);
    return st;
}

/* splitmix64: the shuffles' generator (same seed, same order, anywhere) */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void shuffle(int *a, int n, uint64_t *rng) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(next_u64(rng) % (uint64_t)(i + 1)), x = a[i];
        a[i] = a[j], a[j] = x;
    }
}

/* Gathers items idx[0..B) into images (B, C, S, S), ids and mask (B, T), T the longest text among them. */
static int gather(const pairs *p, const int *idx, int B, float *images, int32_t *ids, int32_t *mask) {
    int T = 1;
    for (int b = 0; b < B; b++) T = p->len[idx[b]] > T ? p->len[idx[b]] : T;
    if (T > p->L) T = p->L;
    size_t img = (size_t)p->C * p->S * p->S;
    for (int b = 0; b < B; b++) {
        memcpy(images + img * b, p->images + img * idx[b], sizeof(float) * img);
        memcpy(ids + (size_t)b * T, p->tok + (size_t)idx[b] * p->L, sizeof(int32_t) * T);
        memcpy(mask + (size_t)b * T, p->mask + (size_t)idx[b] * p->L, sizeof(int32_t) * T);
    }
    return T;
}

/* Recall@1 and @5, image->text and text->image, over the validation items (each one's pair the right answer). */
static mrec_status evaluate(mrec_context *ctx, const mrec_clip *m, const pairs *p, const int *idx, int n, double r[4], float *images,
                            int32_t *ids, int32_t *mask) {
    int D = m->projection_dim, chunk = MREC_CLIP_CHUNK;
    float *ei = malloc(sizeof(float) * (size_t)n * D), *et = malloc(sizeof(float) * (size_t)n * D);
    float *sim = malloc(sizeof(float) * (size_t)n * n), *dev = NULL;
    mrec_status st = ei && et && sim ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "finetune-clip: validation of %d items", n);
    if (!st) st = dev_zeros(ctx, (void **)&dev, sizeof(float) * (size_t)chunk * D);
    for (int at = 0; !st && at < n; at += chunk) {
        int b = n - at < chunk ? n - at : chunk, T = gather(p, idx + at, b, images, ids, mask);
        st = mrec_clip_image_forward(ctx, m, images, b, MREC_CLIP_EMBEDS, dev);
        if (!st) st = mrec_copy_to_host(ctx, ei + (size_t)at * D, dev, sizeof(float) * (size_t)b * D);
        if (!st) st = mrec_clip_text_forward(ctx, m, ids, mask, b, T, MREC_CLIP_EMBEDS, dev);
        if (!st) st = mrec_copy_to_host(ctx, et + (size_t)at * D, dev, sizeof(float) * (size_t)b * D);
    }
    if (!st) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double d = 0;
                for (int k = 0; k < D; k++) d += (double)ei[(size_t)i * D + k] * et[(size_t)j * D + k];
                sim[(size_t)i * n + j] = (float)d;
            }
        memset(r, 0, 4 * sizeof *r);
        for (int i = 0; i < n; i++) { /* rank of the right answer: how many score strictly higher */
            int above_it = 0, above_ti = 0;
            for (int j = 0; j < n; j++) {
                above_it += sim[(size_t)i * n + j] > sim[(size_t)i * n + i];
                above_ti += sim[(size_t)j * n + i] > sim[(size_t)i * n + i];
            }
            r[0] += above_it < 1, r[1] += above_it < 5, r[2] += above_ti < 1, r[3] += above_ti < 5;
        }
        for (int k = 0; k < 4; k++) r[k] /= n;
    }
    dev_free(ctx, dev);
    free(ei), free(et), free(sim);
    return st;
}

static mrec_status copy_file(const char *from_dir, const char *name, const char *to_dir) {
    char a[4200], b[4400];
    snprintf(a, sizeof a, "%s/%s", from_dir, name), snprintf(b, sizeof b, "%s/%s", to_dir, name);
    FILE *in = fopen(a, "rb");
    if (!in) return mrec_fail(MREC_ERR_IO, "%s: cannot be read", a);
    FILE *out = fopen(b, "wb");
    mrec_status st = out ? MREC_OK : mrec_fail(MREC_ERR_IO, "%s: cannot be written", b);
    char buf[65536];
    size_t k;
    while (!st && (k = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, k, out) != k) st = mrec_fail(MREC_ERR_IO, "%s: write failed", b);
    if (!st && ferror(in)) st = mrec_fail(MREC_ERR_IO, "%s: read failed", a);
    fclose(in);
    if (out && fclose(out) && !st) st = mrec_fail(MREC_ERR_IO, "%s: write failed", b);
    return st;
}

static void print_recall(const char *when, const double r[4]) {
    printf("%s: valid image->text R@1 %.4f R@5 %.4f, text->image R@1 %.4f R@5 %.4f\n", when, r[0], r[1], r[2], r[3]);
    fflush(stdout);
}

static int fail(const char *what, mrec_status st) {
    fprintf(stderr, "mrec finetune-clip: %s: %s: %s\n", what, mrec_strerror(st), mrec_error_detail());
    return st == MREC_ERR_NOMEM ? 3 : 2;
}

static int run(const spec *s) {
    mrec_context *ctx = NULL;
    mrec_status st = mrec_context_create(&ctx, &s->co);
    if (st) return fail("the device", st);
    if (ctx->notice[0] && (s->device_given || mrec_cuda_compiled())) fprintf(stderr, "mrec finetune-clip: %s\n", ctx->notice);
    mrec_clip m;
    if ((st = mrec_clip_load(&m, s->model, MREC_CLIP_BOTH))) return mrec_context_destroy(ctx), fail("loading the model", st);
    mrec_table t = {0};
    pairs p = {0};
    mrec_finetune f = {0};
    mrec_out_dir od = {.lock_fd = -1};
    int rc = 0, out_begun = 0, *order = NULL, *valid = NULL, n_train = 0, n_valid = 0;
    float *images = NULL;
    int32_t *ids = NULL, *mask = NULL;
    mrec_clip_source src = {s->model, s->items, s->id_col, s->text_col, s->images, s->image_col, s->image_id_col, s->path_col,
                            s->skip_missing, "finetune-clip"};
    if ((st = mrec_clip_pairs_read(&p, &src, &m, &t))) rc = fail("the items", st);
    if (!rc) { /* the split: a seeded shuffle, the first valid-ratio of it held out */
        order = malloc(sizeof(int) * p.n);
        if (!order) rc = fail("the split", mrec_fail(MREC_ERR_NOMEM, "%d items", p.n));
        for (int i = 0; !rc && i < p.n; i++) order[i] = i;
        uint64_t rng = s->seed;
        if (!rc) shuffle(order, p.n, &rng);
        n_valid = (int)floor(s->valid_ratio * p.n + 0.5);
        if (s->valid_ratio > 0 && n_valid < 1) n_valid = 1;
        n_train = p.n - n_valid, valid = order + n_train;
        if (!rc && s->batch > n_train)
            rc = fail("the batch", mrec_fail(MREC_ERR_ARG, "--batch %d is larger than the %d training items (%d of %d held out for validation)",
                                             s->batch, n_train, n_valid, p.n));
    }
    int B = s->batch, E = MREC_CLIP_CHUNK > B ? MREC_CLIP_CHUNK : B;
    if (!rc) {
        images = malloc(sizeof(float) * (size_t)E * p.C * p.S * p.S);
        ids = malloc(sizeof(int32_t) * (size_t)E * p.L), mask = malloc(sizeof(int32_t) * (size_t)E * p.L);
        if (!images || !ids || !mask) rc = fail("batches", mrec_fail(MREC_ERR_NOMEM, "a batch of %d", E));
    }
    if (!rc && (st = mrec_out_begin(&od, s->out, s->overwrite ? MREC_OUT_OVERWRITE : 0))) rc = fail(s->out, st);
    out_begun = !rc;
    if (!rc && (st = mrec_clip_to_device(&m, ctx))) rc = fail("moving the model to the device", st);
    if (!rc && (st = mrec_finetune_init(&f, ctx, &m, &s->fo, B, p.L))) rc = fail("the optimizer", st);
    double r[4];
    if (!rc && n_valid) {
        if ((st = evaluate(ctx, &m, &p, valid, n_valid, r, images, ids, mask))) rc = fail("validation", st);
        else print_recall("before training", r);
    }
    int per_epoch = n_train / B; /* the last partial batch is dropped: the loss needs full batches of negatives */
    int steps_per_epoch = (per_epoch + s->accum - 1) / s->accum;
    int64_t total = (int64_t)steps_per_epoch * s->epochs;
    if (!rc)
        printf("%d items: %d training, %d validation; %d batches of %d an epoch, %d step(s) an epoch, %lld steps\n", p.n, n_train,
               n_valid, per_epoch, B, steps_per_epoch, (long long)total);
    uint64_t rng = s->seed ^ 0x5DEECE66Dull;
    mrec_progress prog;
    mrec_progress_start(&prog, "finetune-clip", (int)(per_epoch * s->epochs));
    for (int e = 0; !rc && e < s->epochs; e++) {
        shuffle(order, n_train, &rng);
        double sum = 0;
        for (int k = 0; !rc && k < per_epoch; k++) {
            int T = gather(&p, order + (size_t)k * B, B, images, ids, mask);
            double loss = 0;
            if ((st = mrec_finetune_accumulate(&f, images, ids, mask, B, T, &loss))) rc = fail("a training batch", st);
            if (!isfinite(loss) && !rc) rc = fail("a training batch", mrec_fail(MREC_ERR_ARG, "the loss is %g at epoch %d batch %d", loss, e + 1, k + 1));
            sum += loss;
            if (!rc && (f.batches == s->accum || k == per_epoch - 1)) {
                double lr = mrec_lr_warmup_cosine(f.step, s->warmup, total, s->lr, s->min_lr);
                if ((st = mrec_finetune_apply(&f, lr))) rc = fail("an optimizer step", st);
            }
            mrec_progress_update(&prog, e * per_epoch + k + 1, per_epoch * s->epochs);
        }
        if (!rc) printf("epoch %d: train loss %.4f, logit scale %.4f, gradient norm %.4g\n", e + 1, sum / per_epoch, m.logit_scale, f.last_norm);
        if (!rc && n_valid) {
            char when[64];
            snprintf(when, sizeof when, "epoch %d", e + 1);
            if ((st = evaluate(ctx, &m, &p, valid, n_valid, r, images, ids, mask))) rc = fail("validation", st);
            else print_recall(when, r);
        }
    }
    if (!rc) {
        char path[4400];
        snprintf(path, sizeof path, "%s/model.safetensors", od.scratch);
        if ((st = mrec_finetune_save_weights(&f, path))) rc = fail("saving", st);
        const char *files[] = {"config.json", "tokenizer.json", "preprocessor_config.json"};
        for (int i = 0; !rc && i < 3; i++)
            if ((st = copy_file(s->model, files[i], od.scratch))) rc = fail("saving", st);
        if (!rc && (st = mrec_out_commit(&od))) rc = fail("saving", st);
        if (!rc) printf("wrote %s\n", s->out), out_begun = 0;
    }
    if (out_begun) mrec_out_abort(&od);
    mrec_finetune_free(&f);
    free(order), free(images), free(ids), free(mask);
    pairs_free(&p);
    mrec_table_free(&t);
    mrec_clip_free(&m);
    mrec_context_destroy(ctx);
    return rc;
}

/* ---- the command's front ---- */

enum { F_MODEL, F_ITEMS, F_ID, F_TEXT, F_IMAGES, F_IMAGE_COL, F_IMAGE_ID, F_PATH, F_OUT, F_BATCH, F_EPOCHS, F_LR, F_MIN_LR, F_WD,
       F_WARMUP, F_CLIP, F_ACCUM, F_FREEZE_V, F_FREEZE_T, F_VALID, F_SEED, F_THREADS, F_SKIP, F_OVERWRITE, F_DEVICE, N_OPTIONS };

static const mrec_option OPTIONS[N_OPTIONS] = {
    [F_MODEL] = {"--model", MREC_OPT_PATH, "DIR", "a Hugging Face CLIP folder (config.json, model.safetensors, tokenizer.json, "
                 "preprocessor_config.json)", .allow_dir = 1, .section = "data"},
    [F_ITEMS] = {"--items", MREC_OPT_PATH, "TABLE", "the items, CSV or TSV with a header"},
    [F_ID] = {"--id-column", MREC_OPT_TEXT, "C", "the table's column of item ids"},
    [F_TEXT] = {"--text-column", MREC_OPT_TEXT, "C", "the table's column of texts"},
    [F_IMAGES] = {"--images", MREC_OPT_PATH, "DIR|TABLE", "a folder of images (id = file name up to the first dot) or an id/path table",
                  .allow_dir = 1},
    [F_IMAGE_COL] = {"--image-column", MREC_OPT_TEXT, "C", "instead of --images: the table's column of image paths (relative to its folder)"},
    [F_IMAGE_ID] = {"--image-id-column", MREC_OPT_TEXT, "C", "an image table's column of ids", "the first"},
    [F_PATH] = {"--path-column", MREC_OPT_TEXT, "C", "an image table's column of paths", "the second"},
    [F_OUT] = {"--out", MREC_OPT_TEXT, "DIR", "the fine-tuned model's folder"},
    [F_BATCH] = {"--batch", MREC_OPT_INT, "B", "pairs per batch (each pair's negatives are the batch's other B-1)", "32", 2, 65536,
                 .section = "training"},
    [F_EPOCHS] = {"--epochs", MREC_OPT_INT, "N", "passes over the training items", "1", 0, 100000},
    [F_LR] = {"--lr", MREC_OPT_REAL, "X", "AdamW's peak learning rate", "1e-5", 0, 1, MREC_OPEN_LO},
    [F_MIN_LR] = {"--min-lr", MREC_OPT_REAL, "X", "the cosine's floor", "0", 0, 1},
    [F_WD] = {"--weight-decay", MREC_OPT_REAL, "X", "decoupled weight decay of the weight matrices", "0.2", 0, 10},
    [F_WARMUP] = {"--warmup", MREC_OPT_INT, "N", "optimizer steps of linear warm-up before the cosine decay", "0", 0, 100000000},
    [F_CLIP] = {"--clip-norm", MREC_OPT_REAL, "X", "the gradients' global norm is clipped to X (0: no clipping)", "1.0", 0, 1e9},
    [F_ACCUM] = {"--accum", MREC_OPT_INT, "K", "batches whose gradients are averaged into one step", "1", 1, 65536},
    [F_FREEZE_V] = {"--freeze-vision", MREC_OPT_INT, "N", "the vision tower's embeddings and first N blocks are not updated", "0", 0, 1000},
    [F_FREEZE_T] = {"--freeze-text", MREC_OPT_INT, "N", "the text tower's embeddings and first N blocks are not updated", "0", 0, 1000},
    [F_VALID] = {"--valid-ratio", MREC_OPT_REAL, "X", "the share of items held out for the recalls", "0.1", 0, 1, MREC_OPEN_HI},
    [F_SEED] = {"--seed", MREC_OPT_U64, "S", "the split and the batches' order", "0"},
    [F_THREADS] = {"--threads", MREC_OPT_INT, "N", "threads", "0 (one per core)", 0, 1024},
    [F_SKIP] = {"--skip-missing", MREC_OPT_SWITCH, NULL, "leave out items without an image, with an image that cannot be decoded or "
                "with an empty text (counted, the first named) instead of stopping"},
    [F_OVERWRITE] = {"--overwrite", MREC_OPT_SWITCH, NULL, "replace an existing DIR (it stays as it was until the new one is whole)"},
    [F_DEVICE] = MREC_OPTION_DEVICE,
};

static const mrec_command COMMAND = {
    "finetune-clip",
    "usage: mrec finetune-clip --model DIR --items TABLE --id-column C --text-column C (--images DIR|TABLE | --image-column C)\n"
    "                          --out DIR [options]\n",
    "Fine-tunes both towers of a CLIP model on the items' own (image, text) pairs with CLIP's symmetric\n"
    "contrastive loss: AdamW (betas 0.9, 0.98, eps 1e-6; weight decay on the weight matrices only, none on\n"
    "biases, LayerNorms, embeddings and the logit scale), the gradients' global norm clipped, a linear\n"
    "warm-up then a cosine decay, the logit scale clamped at ln(100) after each step. A seeded share of\n"
    "the items is held out: image->text and text->image Recall@1 and @5 among them are printed before\n"
    "training and after each epoch. Every item needs a text and a decodable image (--skip-missing\n"
    "leaves the others out). DIR receives model.safetensors (float32, Hugging Face's names:\n"
    "transformers and mrec extract-clip load it) and copies of config.json, tokenizer.json and\n"
    "preprocessor_config.json; it is built beside itself and appears whole when the run succeeds.\n",
    OPTIONS, N_OPTIONS, 0};

int mrec_cmd_finetune_clip(int argc, char **argv) {
    mrec_opt_value v[N_OPTIONS];
    int parsed = mrec_options_parse(&COMMAND, argc, argv, v, NULL, NULL, NULL);
    if (parsed == MREC_OPTS_HELP) return 0;
    if (parsed) return parsed;
    spec s = {0};
    s.model = v[F_MODEL].text, s.items = v[F_ITEMS].text, s.id_col = v[F_ID].text, s.text_col = v[F_TEXT].text;
    s.images = v[F_IMAGES].text, s.image_col = v[F_IMAGE_COL].text, s.image_id_col = v[F_IMAGE_ID].text, s.path_col = v[F_PATH].text;
    s.out = v[F_OUT].text, s.overwrite = v[F_OVERWRITE].given, s.skip_missing = v[F_SKIP].given;
    s.batch = v[F_BATCH].given ? (int)v[F_BATCH].i : 32, s.epochs = v[F_EPOCHS].given ? (int)v[F_EPOCHS].i : 1;
    s.lr = v[F_LR].given ? v[F_LR].r : 1e-5, s.min_lr = v[F_MIN_LR].given ? v[F_MIN_LR].r : 0;
    s.weight_decay = v[F_WD].given ? v[F_WD].r : 0.2, s.warmup = (int)v[F_WARMUP].i;
    s.clip_norm = v[F_CLIP].given ? v[F_CLIP].r : 1.0, s.accum = v[F_ACCUM].given ? (int)v[F_ACCUM].i : 1;
    s.valid_ratio = v[F_VALID].given ? v[F_VALID].r : 0.1, s.seed = v[F_SEED].u, s.threads = (int)v[F_THREADS].i;
    s.fo = (mrec_finetune_options){s.lr, s.weight_decay, s.clip_norm, (int)v[F_FREEZE_V].i, (int)v[F_FREEZE_T].i};
    s.co = mrec_context_defaults();
    mrec_opt_value no_precision = {0};
    s.device_given = mrec_options_device(&v[F_DEVICE], &no_precision, &s.co);
    s.co.precision = MREC_PREC_FP32, s.co.n_threads = s.threads;
    if (!s.model || !s.items || !s.id_col || !s.text_col || !s.out || (!s.images == !s.image_col)) {
        fprintf(stderr, "mrec finetune-clip: --model, --items, --id-column, --text-column, --out and one of --images or "
                        "--image-column are needed (mrec finetune-clip --help)\n");
        return 1;
    }
    if (s.min_lr > s.lr) {
        fprintf(stderr, "mrec finetune-clip: --min-lr %g is above --lr %g\n", s.min_lr, s.lr);
        return 1;
    }
    return run(&s);
}
