/* text.c: sentence embeddings from a BERT-family folder, as
 * sentence-transformers computes them: tokenize (special tokens, truncation
 * at max_seq_length), encode, pool (mean over real tokens, [CLS], or the
 * pooler), optionally L2-normalize. A CLIP folder goes through its text
 * tower instead (truncation at 77, pooling at the end-of-text token); an
 * ALIGN or AltCLIP folder through its BERT / XLM-R and text projection.
 */
#include "mrec_extract.h"

#include "../nn/mrec_io.h"
#include "mrec_batch_pipe.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An optional JSON file of the folder; NULL when absent, an error when malformed. */
static mrec_status read_json(const char *dir, const char *name, cJSON **out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return mrec_read_json(path, 1, out);
}

static mrec_status tok_error(mrec_tok_status ts) {
    mrec_status mapped = ts == MREC_TOK_ERR_IO            ? MREC_ERR_IO
                         : ts == MREC_TOK_ERR_NOMEM       ? MREC_ERR_NOMEM
                         : ts == MREC_TOK_ERR_UNSUPPORTED ? MREC_ERR_UNSUPPORTED
                                                          : MREC_ERR_FORMAT;
    return mrec_fail(mapped, "tokenizer: %s", mrec_tok_error_detail());
}

/* The folder's tokenizer, checked against the model's vocabulary size. */
static mrec_status load_tokenizer(mrec_text_encoder *e, const char *path, int vocab_size) {
    mrec_tok_status ts = mrec_tokenizer_load(&e->tok, path);
    if (ts) return tok_error(ts);
    if (mrec_tokenizer_vocab_size(e->tok) > vocab_size)
        return mrec_fail(MREC_ERR_SHAPE, "%s: the tokenizer has %d tokens, the model's vocab_size is %d", path,
                         mrec_tokenizer_vocab_size(e->tok), vocab_size);
    return MREC_OK;
}

static int is_clip_folder(const char *dir) {
    cJSON *j = NULL;
    if (read_json(dir, "config.json", &j) || !j) return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    int clip = cJSON_IsString(type) && !strcmp(type->valuestring, "clip");
    cJSON_Delete(j);
    return clip;
}

mrec_status mrec_text_encoder_load(mrec_text_encoder *e, const char *dir) {
    memset(e, 0, sizeof *e);
    e->pooling = MREC_POOL_MEAN, e->batch_size = 32, e->clip_output = MREC_CLIP_EMBEDS, e->producers = -1;
    mrec_status st;
    if ((e->is_clip = is_clip_folder(dir))) {
        if ((st = mrec_clip_load(&e->clip, dir, MREC_CLIP_TEXT))) return st;
        st = mrec_packs_create(&e->packs, e->clip.text.storage, e->clip.text.floats);
        if (!st && !(st = load_tokenizer(e, dir, e->clip.text.cfg.vocab_size))) {
            e->max_length = mrec_tokenizer_max_length(e->tok);
            if (e->max_length > e->clip.text.cfg.max_positions) e->max_length = e->clip.text.cfg.max_positions;
        }
        if (st) mrec_text_encoder_free(e);
        return st;
    }
    if ((st = mrec_bert_load(&e->bert, dir))) return st;
    if ((st = mrec_packs_create(&e->packs, e->bert.storage, e->bert.floats))) {
        mrec_text_encoder_free(e);
        return st;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, R_OK) != 0) snprintf(path, sizeof path, "%s/vocab.txt", dir);
    if ((st = load_tokenizer(e, path, e->bert.cfg.vocab_size))) {
        mrec_text_encoder_free(e);
        return st;
    }
    const mrec_bert_config *c = &e->bert.cfg;
    /* MPNet and RoBERTa number real tokens from pad_token_id + 1 */
    int positions = c->mpnet || c->roberta ? c->max_positions - c->pad_token_id - 1 : c->max_positions;
    e->max_length = mrec_tokenizer_max_length(e->tok);
    if (e->max_length > positions) e->max_length = positions;
    if (c->proj_dim) {
        /* ALIGN, AltCLIP: the model's text_embeds. AlignProcessor pads and cuts at 64;
         * Ducho's AltCLIP processor pads to 512 and cuts there (padding changes no real token's output) */
        e->pooling = MREC_POOL_EMBEDS, e->normalize = 1;
        int cut = c->project_dim ? 512 : 64;
        if (e->max_length > cut) e->max_length = cut;
        return MREC_OK;
    }
    /* sentence-transformers: length, pooling, normalization */
    cJSON *sb = NULL, *pool = NULL, *modules = NULL;
    st = read_json(dir, "sentence_bert_config.json", &sb);
    if (!st) st = read_json(dir, "1_Pooling/config.json", &pool);
    if (!st) st = read_json(dir, "modules.json", &modules);
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(sb, "max_seq_length");
    if (cJSON_IsNumber(ml) && ml->valuedouble >= 1 && ml->valuedouble <= e->bert.cfg.max_positions) e->max_length = (int)ml->valuedouble;
    if (pool) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pool, "pooling_mode_cls_token"))) e->pooling = MREC_POOL_CLS;
        else if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pool, "pooling_mode_mean_tokens")))
            st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s/1_Pooling/config.json: only mean and cls pooling are implemented", dir);
    }
    for (const cJSON *m = cJSON_IsArray(modules) ? modules->child : NULL; m; m = m->next) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
        if (cJSON_IsString(type) && strstr(type->valuestring, "Normalize")) e->normalize = 1;
    }
    cJSON_Delete(sb), cJSON_Delete(pool), cJSON_Delete(modules);
    if (st) mrec_text_encoder_free(e);
    return st;
}

mrec_status mrec_text_encoder_to_device(mrec_text_encoder *e, mrec_context *ctx) {
    if (ctx->device != MREC_DEVICE_CPU) mrec_packs_free(e->packs), e->packs = NULL; /* before the host weights go */
    return e->is_clip ? mrec_clip_to_device(&e->clip, ctx) : mrec_bert_to_device(&e->bert, ctx);
}

void mrec_text_encoder_free(mrec_text_encoder *e) {
    mrec_packs_free(e->packs); /* before the weights it points into */
    if (e->is_clip) mrec_clip_free(&e->clip);
    else mrec_bert_free(&e->bert);
    mrec_tokenizer_free(e->tok);
    memset(e, 0, sizeof *e);
}

int mrec_text_encoder_dim(const mrec_text_encoder *e) {
    return e->is_clip ? mrec_clip_dim(&e->clip, MREC_CLIP_TEXT, e->clip_output)
           : e->pooling == MREC_POOL_EMBEDS ? e->bert.cfg.proj_dim
                                            : e->bert.cfg.hidden;
}

typedef struct {
    int index, len;
} by_len;

static int cmp_len(const void *a, const void *b) {
    const by_len *x = a, *y = b;
    return x->len != y->len ? (x->len < y->len ? -1 : 1) : x->index - y->index;
}

/* BERT's hidden states (b, T, H) -> pooled (b, H), on the context's device;
 * the pooler output is already there. mask: the batch's mask (b, T) there. */
static mrec_status pool_bert(mrec_context *ctx, const mrec_text_encoder *e, const float *hidden, const int32_t *mask, int b, int T,
                             float *pooled) {
    int H = e->bert.cfg.hidden;
    if (e->pooling == MREC_POOL_MEAN) return mrec_mean_pool(ctx, pooled, hidden, mask, b, T, H);
    if (e->pooling == MREC_POOL_CLS) return mrec_copy_rows(ctx, pooled, H, hidden, T * H, b, H);
    if (e->pooling == MREC_POOL_EMBEDS) return mrec_bert_project(ctx, &e->bert, hidden, b, T, pooled);
    return MREC_OK;
}

/* Where a batch's outputs live on the context's device: BERT's hidden states,
 * the pooled rows, and the mask mean pooling reads. */
typedef struct {
    float *hidden, *pooled;
    int32_t *mask;
} batch_out;

static int carve_out(mrec_arena *a, batch_out *o, int B, int L, int H, int D) {
    o->hidden = H ? mrec_arena_alloc(a, sizeof(float) * (size_t)B * L * H) : NULL;
    o->pooled = mrec_arena_alloc(a, sizeof(float) * (size_t)B * D);
    o->mask = H ? mrec_arena_alloc(a, sizeof(int32_t) * (size_t)B * L) : NULL;
    return o->pooled && (!H || (o->hidden && o->mask));
}

/* ---- the texts tokenized by the context's threads ----
 * Every text is tokenized before the first batch: sorting the texts by their
 * token counts, which makes the batches, needs every count, and batches of
 * even token counts pad least (sorted by characters instead, as
 * sentence-transformers sorts them, the 512 H&M descriptions pad 1.27x at
 * batch 32 against 1.15x, and their attention 1.75x against 1.55x). The context's
 * threads share the tokenizer (mrec_tokenizer.h allows it), a chunk of
 * texts a task, so on a GPU the first batch waits for the host's cores
 * together (11,800 H&M texts are 0.2 CPU-s of tokenizing). Only the real
 * tokens are kept, end to end per chunk: a catalogue of 1M texts holds
 * their tokens, not 1M rows padded to max_length. */

#define TOK_CHUNK 64

typedef struct {
    int32_t *ids;         /* the chunk's texts' tokens end to end */
    int32_t off[TOK_CHUNK + 1];
    mrec_status st;
    char detail[256];
    double seconds;       /* the tokenizing thread's CPU seconds */
    int caller;           /* tokenized on the calling thread */
} tok_chunk;

typedef struct {
    mrec_tokenizer *tok;
    const mrec_tok_options *opt;
    const char *const *texts;
    int n, L;
    tok_chunk *chunk;
} tok_all;

static void tokenize_chunk(void *arg, int task, int thread) {
    tok_all *a = arg;
    tok_chunk *c = &a->chunk[task];
    double t0 = mrec_stage_thread_seconds();
    int lo = task * TOK_CHUNK, hi = lo + TOK_CHUNK < a->n ? lo + TOK_CHUNK : a->n;
    int32_t *row = malloc(sizeof *row * (size_t)a->L), len;
    size_t cap = (size_t)TOK_CHUNK * 64, used = 0;
    c->ids = malloc(sizeof *c->ids * cap);
    c->off[0] = 0;
    if (!row || !c->ids) c->st = mrec_fail(MREC_ERR_NOMEM, "tokenizing texts %d to %d", lo, hi - 1);
    for (int i = lo; i < hi && !c->st; i++) {
        if (mrec_tokenizer_encode_batch(a->tok, &a->texts[i], NULL, 1, a->opt, a->L, row, NULL, NULL, &len)) {
            c->st = mrec_fail(MREC_ERR_ARG, "tokenizing text %d: %s", i, mrec_tok_error_detail());
            break;
        }
        if (used + (size_t)len > cap) {
            int32_t *grown = realloc(c->ids, sizeof *grown * (cap = 2 * cap + (size_t)len));
            if (!grown) {
                c->st = mrec_fail(MREC_ERR_NOMEM, "the tokens of texts %d to %d", lo, hi - 1);
                break;
            }
            c->ids = grown;
        }
        memcpy(c->ids + used, row, sizeof *row * (size_t)len);
        used += (size_t)len;
        c->off[i - lo + 1] = (int32_t)used;
    }
    if (c->st) snprintf(c->detail, sizeof c->detail, "%s", mrec_error_detail());
    free(row);
    c->seconds = mrec_stage_thread_seconds() - t0, c->caller = thread == 0;
}

/* ---- batches gathered one ahead of the forward (mrec_batch_pipe.h) ----
 * A producer gathers batch k+1's rows, padded to its longest, into a host
 * slot (pinned on a GPU, so the forward's copy in is a DMA) while batch k
 * encodes. */

typedef struct {
    int at, b, T;
    atomic_int next;
} gather_job;

typedef struct {
    const tok_chunk *chunk;
    const by_len *order; /* (n) */
    int n, B, L;
    int32_t pad;
    gather_job job[2];
} gather_jobs;

static void gather_begin(void *arg, int batch, int slot) {
    gather_jobs *g = arg;
    gather_job *j = &g->job[slot];
    j->at = batch * g->B, j->b = g->n - j->at < g->B ? g->n - j->at : g->B;
    j->T = g->order[j->at + j->b - 1].len; /* the longest in this batch */
    atomic_store(&j->next, 0);
}

/* host: ids (b, T) then mask (b, T), from offset B * L */
static mrec_status gather_work(void *arg, int batch, int slot, void *host) {
    (void)batch;
    gather_jobs *g = arg;
    gather_job *j = &g->job[slot];
    int32_t *bids = host, *bmask = bids + (size_t)g->B * g->L;
    for (int r; (r = atomic_fetch_add(&j->next, 1)) < j->b;) {
        int src = g->order[j->at + r].index, len = g->order[j->at + r].len;
        const tok_chunk *c = &g->chunk[src / TOK_CHUNK];
        int32_t *ids = bids + (size_t)r * j->T, *mask = bmask + (size_t)r * j->T;
        memcpy(ids, c->ids + c->off[src % TOK_CHUNK], sizeof *ids * (size_t)len);
        for (int t = 0; t < len; t++) mask[t] = 1;
        for (int t = len; t < j->T; t++) ids[t] = g->pad, mask[t] = 0;
    }
    return MREC_OK;
}

/* Nothing goes up ahead: the forward checks the ids on the host before it copies them. */
static mrec_status gather_finish(void *arg, int batch, int slot, void *host, size_t *upload) {
    (void)arg, (void)batch, (void)slot, (void)host;
    *upload = 0;
    return MREC_OK;
}

mrec_status mrec_text_encoder_embed(mrec_context *ctx, mrec_text_encoder *e, const char *const *texts, int n, float *out) {
    int L = e->max_length, D = mrec_text_encoder_dim(e), B = e->batch_size > 0 ? e->batch_size : 32;
    int H = e->is_clip ? 0 : e->bert.cfg.hidden; /* BERT's hidden states, before pooling */
    mrec_tok_options opt = mrec_tok_defaults();
    opt.max_length = L;
    /* tokenize everything once, a chunk of texts a task on the context's threads, then sort by token count */
    int n_chunks = (n + TOK_CHUNK - 1) / TOK_CHUNK;
    tok_chunk *chunk = calloc((size_t)(n_chunks ? n_chunks : 1), sizeof *chunk);
    by_len *order = malloc(sizeof *order * (size_t)(n ? n : 1));
    /* two batches' rows back on the host, pinned on a GPU, so the copy back is asynchronous: batch k's are waited for
     * once batch k + 1 is queued behind it, so the GPU does not idle while the host takes them */
    float *pooled = NULL;
    mrec_event *back[2] = {NULL, NULL};
    mrec_status st = MREC_OK;
    if (!chunk || !order) st = mrec_fail(MREC_ERR_NOMEM, "embedding %d texts", n);
    if (!st) st = mrec_host_alloc(ctx, (void **)&pooled, sizeof *pooled * 2 * (size_t)B * D);
    if (!st) st = mrec_event_create(ctx, &back[0]);
    if (!st) st = mrec_event_create(ctx, &back[1]);
    double t_tok = 0, t_tok_caller = 0;
    if (!st) {
        tok_all all = {e->tok, &opt, texts, n, L, chunk};
        mrec_pool_run(ctx->pool, tokenize_chunk, &all, n_chunks);
        for (int c = 0; c < n_chunks; c++) {
            t_tok += chunk[c].seconds, t_tok_caller += chunk[c].caller ? chunk[c].seconds : 0;
            if (!st && chunk[c].st) st = mrec_fail(chunk[c].st, "%s", chunk[c].detail);
        }
    }
    /* the workspace: the batch's outputs, then the model's activations */
    mrec_arena measure = mrec_arena_measure();
    batch_out dev;
    carve_out(&measure, &dev, B, L, H, D);
    if (!st)
        st = mrec_context_reserve(ctx, measure.peak + MREC_ARENA_ALIGN +
                                           (e->is_clip ? mrec_clip_workspace_bytes(&e->clip, MREC_CLIP_TEXT, B, L)
                                                       : mrec_bert_workspace_bytes(&e->bert, B, L)));
    size_t mark = ctx->workspace.used;
    if (!st && !carve_out(&ctx->workspace, &dev, B, L, H, D)) st = mrec_fail(MREC_ERR_NOMEM, "text batch of %d x %d", B, L);
    for (int i = 0; i < n && !st; i++) {
        const tok_chunk *c = &chunk[i / TOK_CHUNK];
        order[i] = (by_len){i, c->off[i % TOK_CHUNK + 1] - c->off[i % TOK_CHUNK]};
    }
    if (!st) qsort(order, (size_t)n, sizeof *order, cmp_len);
    gather_jobs g = {.chunk = chunk, .order = order, .n = n, .B = B, .L = L, .pad = mrec_tokenizer_pad_id(e->tok)};
    mrec_batch_jobs jobs = {gather_begin, gather_work, gather_finish, &g};
    mrec_batch_pipe *pipe = NULL;
    int n_batches = (n + B - 1) / B;
    mrec_packs *caller_packs = ctx->packs;
    ctx->packs = e->packs;
    int producers = e->producers >= 0 ? e->producers : ctx->device != MREC_DEVICE_CPU ? 1 : 0;
    if (!st) st = mrec_batch_pipe_start(&pipe, ctx, &jobs, n_batches, sizeof(int32_t) * 2 * (size_t)B * L, NULL, producers);
    double encode = 0;
    int prev_at = 0, prev_b = 0; /* the batch queued last, whose rows are still to be taken */
    for (int k = 0; k <= n_batches && !st; k++) {
        double t0 = mrec_stage_clock();
        int at = 0, b = 0;
        float *rows = pooled + (size_t)(k & 1) * B * D;
        if (k < n_batches) {
            int slot;
            void *host;
            const void *input;
            if ((st = mrec_batch_pipe_next(pipe, k, &slot, &host, &input))) break;
            t0 = mrec_stage_clock();
            at = g.job[slot].at, b = g.job[slot].b; /* once released, the slot takes batch k + 2 */
            int T = g.job[slot].T;
            const int32_t *bids = input, *bmask = bids + (size_t)B * L;
            if (e->is_clip) st = mrec_clip_text_forward(ctx, &e->clip, bids, bmask, b, T, e->clip_output, dev.pooled);
            else st = mrec_bert_forward_unpadded(ctx, &e->bert, bids, NULL, bmask, b, T, dev.hidden,
                                                  e->pooling == MREC_POOL_POOLER ? dev.pooled : NULL);
            if (!st && !e->is_clip && e->pooling == MREC_POOL_MEAN)
                st = mrec_copy_to_device_staged(ctx, dev.mask, bmask, sizeof *bmask * (size_t)b * T);
            if (!st && !e->is_clip) st = pool_bert(ctx, e, dev.hidden, dev.mask, b, T, dev.pooled); /* CLIP's tower pools itself */
            if (!st && e->normalize) st = mrec_l2_normalize_rows(ctx, dev.pooled, dev.pooled, 1e-12f, b, D);
            /* only the pooled rows come back, queued behind the forward (the next batch's forward, queued behind
             * this copy, may then overwrite dev) */
            if (!st) st = mrec_copy_to_host_async(ctx, rows, dev.pooled, sizeof *rows * (size_t)b * D, MREC_STREAM_COMPUTE);
            if (!st) st = mrec_event_record(ctx, back[k & 1], MREC_STREAM_COMPUTE);
            mrec_status rel = mrec_batch_pipe_release(pipe, k); /* the slot's ids were copied in by the forward */
            if (!st) st = rel;
        }
        /* the batch before this one: its rows, now that this one is queued behind it */
        if (!st && k > 0) {
            const float *done = pooled + (size_t)((k - 1) & 1) * B * D;
            st = mrec_event_sync(ctx, back[(k - 1) & 1]);
            for (int r = 0; r < prev_b && !st; r++)
                memcpy(out + (size_t)order[prev_at + r].index * D, done + (size_t)r * D, sizeof *out * (size_t)D);
            if (!st && e->progress) e->progress(e->progress_ctx, prev_at + prev_b, n);
        }
        prev_at = at, prev_b = b;
        encode += mrec_stage_clock() - t0;
    }
    if (e->times) {
        mrec_batch_pipe_add_times(pipe, e->times);
        e->times->prepare += t_tok, e->times->prepare_caller += t_tok_caller, e->times->encode += encode;
    }
    if (st) mrec_events_settle(ctx, back, 2, st); /* a failure may leave a batch's copy into pooled queued */
    mrec_batch_pipe_stop(pipe);
    ctx->packs = caller_packs;
    ctx->workspace.used = mark;
    mrec_event_destroy(ctx, back[0]), mrec_event_destroy(ctx, back[1]);
    mrec_host_free(ctx, pooled);
    for (int c = 0; chunk && c < n_chunks; c++) free(chunk[c].ids);
    free(chunk), free(order);
    return st;
}
