/* text.c: sentence embeddings from a BERT-family folder, as
 * sentence-transformers computes them: tokenize (special tokens, truncation
 * at max_seq_length), encode, pool (mean over real tokens, [CLS], or the
 * pooler), optionally L2-normalize.
 */
#include "mrec_extract.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cJSON *read_json(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    return cJSON_ParseWithLength(buf, n);
}

mrec_status mrec_text_encoder_load(mrec_text_encoder *e, const char *dir) {
    memset(e, 0, sizeof *e);
    e->pooling = MREC_POOL_MEAN, e->batch_size = 32;
    mrec_status st = mrec_bert_load(&e->bert, dir);
    if (st) return st;
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, R_OK) != 0) snprintf(path, sizeof path, "%s/vocab.txt", dir);
    mrec_tok_status ts = mrec_tokenizer_load(&e->tok, path);
    if (ts) {
        mrec_bert_free(&e->bert);
        mrec_status mapped = ts == MREC_TOK_ERR_IO ? MREC_ERR_IO : ts == MREC_TOK_ERR_NOMEM ? MREC_ERR_NOMEM
                             : ts == MREC_TOK_ERR_UNSUPPORTED ? MREC_ERR_UNSUPPORTED : MREC_ERR_FORMAT;
        return mrec_fail(mapped, "tokenizer: %s", mrec_tok_error_detail());
    }
    if (mrec_tokenizer_vocab_size(e->tok) > e->bert.cfg.vocab_size) {
        st = mrec_fail(MREC_ERR_SHAPE, "%s: the tokenizer has %d tokens, the model's vocab_size is %d", path,
                       mrec_tokenizer_vocab_size(e->tok), e->bert.cfg.vocab_size);
        mrec_text_encoder_free(e);
        return st;
    }
    e->max_length = mrec_tokenizer_max_length(e->tok);
    if (e->max_length > e->bert.cfg.max_positions) e->max_length = e->bert.cfg.max_positions;
    /* sentence-transformers: length, pooling, normalization */
    cJSON *sb = read_json(dir, "sentence_bert_config.json");
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(sb, "max_seq_length");
    if (cJSON_IsNumber(ml) && ml->valuedouble >= 1 && ml->valuedouble <= e->bert.cfg.max_positions) e->max_length = (int)ml->valuedouble;
    cJSON_Delete(sb);
    cJSON *pool = read_json(dir, "1_Pooling/config.json");
    if (pool) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pool, "pooling_mode_cls_token"))) e->pooling = MREC_POOL_CLS;
        else if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pool, "pooling_mode_mean_tokens")))
            st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s/1_Pooling/config.json: only mean and cls pooling are implemented", dir);
    }
    cJSON_Delete(pool);
    cJSON *modules = read_json(dir, "modules.json");
    for (const cJSON *m = cJSON_IsArray(modules) ? modules->child : NULL; m; m = m->next) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
        if (cJSON_IsString(type) && strstr(type->valuestring, "Normalize")) e->normalize = 1;
    }
    cJSON_Delete(modules);
    if (st) mrec_text_encoder_free(e);
    return st;
}

void mrec_text_encoder_free(mrec_text_encoder *e) {
    mrec_bert_free(&e->bert);
    mrec_tokenizer_free(e->tok);
    memset(e, 0, sizeof *e);
}

int mrec_text_encoder_dim(const mrec_text_encoder *e) { return e->bert.cfg.hidden; }

typedef struct {
    int index, len;
} by_len;

static int cmp_len(const void *a, const void *b) {
    const by_len *x = a, *y = b;
    return x->len != y->len ? (x->len < y->len ? -1 : 1) : x->index - y->index;
}

mrec_status mrec_text_encoder_embed(mrec_context *ctx, mrec_text_encoder *e, const char *const *texts, int n, float *out) {
    int L = e->max_length, H = e->bert.cfg.hidden, B = e->batch_size > 0 ? e->batch_size : 32;
    mrec_tok_options opt = mrec_tok_defaults();
    opt.max_length = L;
    /* tokenize everything once: ids (n, L), lengths, then sort by length */
    int32_t *ids = malloc(sizeof *ids * (size_t)n * L), *mask = malloc(sizeof *mask * (size_t)n * L);
    int32_t *lens = malloc(sizeof *lens * (size_t)(n ? n : 1));
    by_len *order = malloc(sizeof *order * (size_t)(n ? n : 1));
    int32_t *bids = malloc(sizeof *bids * (size_t)B * L), *bmask = malloc(sizeof *bmask * (size_t)B * L);
    float *hidden = malloc(sizeof *hidden * (size_t)B * L * H), *pooled = malloc(sizeof *pooled * (size_t)B * H);
    mrec_status st = MREC_OK;
    if (!ids || !mask || !lens || !order || !bids || !bmask || !hidden || !pooled) st = mrec_fail(MREC_ERR_NOMEM, "embedding %d texts", n);
    if (!st && mrec_tokenizer_encode_batch(e->tok, texts, NULL, n, &opt, L, ids, NULL, mask, lens))
        st = mrec_fail(MREC_ERR_ARG, "tokenizing: %s", mrec_tok_error_detail());
    if (!st) st = mrec_context_reserve(ctx, mrec_bert_workspace_bytes(&e->bert.cfg, B, L));
    for (int i = 0; i < n && !st; i++) order[i] = (by_len){i, lens[i]};
    if (!st) qsort(order, (size_t)n, sizeof *order, cmp_len);
    for (int at = 0; at < n && !st; at += B) {
        int b = n - at < B ? n - at : B, T = order[at + b - 1].len; /* the longest in this batch */
        for (int r = 0; r < b; r++) {
            int src = order[at + r].index;
            memcpy(bids + (size_t)r * T, ids + (size_t)src * L, sizeof *bids * (size_t)T);
            memcpy(bmask + (size_t)r * T, mask + (size_t)src * L, sizeof *bmask * (size_t)T);
        }
        st = mrec_bert_forward(ctx, &e->bert, bids, NULL, bmask, b, T, hidden, e->pooling == MREC_POOL_POOLER ? pooled : NULL);
        if (st) break;
        if (e->pooling == MREC_POOL_MEAN) mrec_mean_pool_cpu(pooled, hidden, bmask, b, T, H, ctx->pool);
        else if (e->pooling == MREC_POOL_CLS)
            for (int r = 0; r < b; r++) memcpy(pooled + (size_t)r * H, hidden + (size_t)r * T * H, sizeof *pooled * (size_t)H);
        if (e->normalize) mrec_l2_normalize_rows_cpu(pooled, pooled, 1e-12f, b, H, ctx->pool);
        for (int r = 0; r < b; r++) memcpy(out + (size_t)order[at + r].index * H, pooled + (size_t)r * H, sizeof *out * (size_t)H);
    }
    free(ids), free(mask), free(lens), free(order), free(bids), free(bmask), free(hidden), free(pooled);
    return st;
}
