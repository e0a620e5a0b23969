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

#include "../nn/mrec_bert.h"
#include "../nn/mrec_npy.h"

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
    mrec_context_reserve(ctx, mrec_bert_workspace_bytes(&m.cfg, B, T));
    float *hidden = malloc(sizeof *hidden * (size_t)B * T * H), *pooled = malloc(sizeof *pooled * (size_t)B * H);
    if (t_status(mrec_bert_forward(ctx, &m, ids, types, mask, B, T, hidden, pooled), MREC_OK, "forward %s", dir)) {
        t_allclose("last_hidden_state", hidden_ref, hidden, (int64_t)B * T * H, 1e-4, 0);
        t_allclose("pooler_output", pooled_ref, pooled, (int64_t)B * H, 1e-4, 0);
    }
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
    mrec_context_destroy(ctx);
    return t_finish();
}
