/* test_altclip.c: AltCLIP (BAAI/AltCLIP's architecture) against Hugging
 * Face's AltCLIPModel.
 *
 * tools/golden/altclip.py wrote tests/fixtures/altclip/tiny/: an
 * AltCLIPModel with the real architecture and random weights: an XLM-R text
 * tower (2 layers, width 16, RoBERTa positions over 514 rows, pre_LN,
 * transformation to 12, text_projection to 10) over the 3,257 pieces of
 * tests/data/tokenizers/unigram-tiny (its tokenizer.json is a link to that
 * file), and a 32-pixel CLIP vision tower; the text layers are named
 * encoder.layer.N as BAAI/AltCLIP's checkpoint names them. Its references:
 * XLMRobertaTokenizerFast's ids of ten texts in six languages (one empty, one
 * cut at 512 tokens), get_text_features and text_embeds of them, and
 * get_image_features / image_embeds of five photos of tests/data/images
 * through CLIPImageProcessorPil.
 *
 * Tolerance: 1e-4 x the largest reference value. The text tower runs 512
 * tokens through float32 GEMMs that sum in another order than PyTorch's;
 * measured differences are near 1e-6 of the scale.
 */
#include "../extractors/mrec_extract.h"
#include "../nn/mrec_bert.h"
#include "../nn/mrec_clip.h"
#include "../nn/mrec_npy.h"
#include "../nn/mrec_ops.h"
#include "../nn/mrec_safetensors.h"
#include "encoder_checks.h"
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/altclip/tiny/"
#define N_TEXTS 10
#define N_IMAGES 5
#define T_MAX 512
#define P 10 /* projection_dim */

/* The fixture's texts, one per line (the empty one included), in *buf. */
static int fixture_texts(char **buf, const char **texts) {
    *buf = t_slurp(FIX "texts.txt");
    int k = 0;
    for (char *p = *buf; p && *p && k < N_TEXTS; k++) {
        texts[k] = p;
        char *nl = strchr(p, '\n');
        if (!nl) { k++; break; }
        *nl = 0, p = nl + 1;
    }
    return k;
}

/* ---- the text tower ---- */

/* The fixture's model on the fixture's ids: the projection against
 * get_text_features, normalized against text_embeds. */
static void text_model_case(mrec_context *ctx, const char *device, const char *dir) {
    int64_t s[2] = {0};
    float *fids = load_npy(FIX "input_ids.npy", s), *fmask = load_npy(FIX "attention_mask.npy", NULL);
    float *feats = load_npy(FIX "text_features.npy", NULL), *embeds = load_npy(FIX "text_embeds.npy", NULL);
    int32_t *ids = malloc(sizeof(int32_t) * N_TEXTS * T_MAX), *mask = malloc(sizeof(int32_t) * N_TEXTS * T_MAX);
    mrec_bert m;
    if (!t_check(fids && fmask && feats && embeds && ids && mask && s[0] == N_TEXTS && s[1] == T_MAX, "the fixture's references") ||
        !t_status(mrec_bert_load(&m, dir), MREC_OK, "mrec_bert_load on an AltCLIP folder (%s)", dir)) {
        free(fids), free(fmask), free(feats), free(embeds), free(ids), free(mask);
        return;
    }
    t_check(m.cfg.roberta && m.cfg.project_dim == 12 && m.cfg.proj_dim == P && m.cfg.pad_token_id == 1 && m.cfg.type_vocab == 1 &&
                m.pre_ln_w && m.trans_w && m.trans_b && m.proj_w && !m.proj_b && !m.pooler_w,
            "AltCLIP: an XLM-R with pre_LN, transformation (12, with bias) and text_projection (10, no bias), no pooler");
    int B = N_TEXTS, T = T_MAX;
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)fids[i], mask[i] = (int32_t)fmask[i];
    float *host = malloc(sizeof(float) * 2 * (size_t)B * P);
    mrec_status st = host ? bert_text_embeds(ctx, &m, ids, mask, B, T, host, host + B * P) : MREC_ERR_NOMEM;
    if (t_status(st, MREC_OK, "AltCLIP text forward and projection on the %s", device)) {
        char what[128];
        snprintf(what, sizeof what, "%s: projection of the first token against get_text_features", device);
        compare_scaled(what, feats, host, (int64_t)B * P);
        snprintf(what, sizeof what, "%s: normalized against AltCLIPModel's text_embeds", device);
        compare_scaled(what, embeds, host + B * P, (int64_t)B * P);
    }
    mrec_bert_free(&m);
    free(host), free(fids), free(fmask), free(feats), free(embeds), free(ids), free(mask);
}

/* A checkpoint saved by transformers 5 names the text layers encoder.layers.N:
 * the fixture's tensors written again under those names load and agree. */
static char *plural_layers_folder(void) {
    static char dir[] = "/tmp/mrec-altclip-XXXXXX";
    if (!mkdtemp(dir)) return NULL;
    mrec_safetensors sf;
    if (mrec_safetensors_open(&sf, FIX "model.safetensors")) return NULL;
    mrec_st_tensor_in *in = calloc((size_t)sf.n_tensors, sizeof *in);
    char (*names)[160] = calloc((size_t)sf.n_tensors, sizeof *names);
    mrec_status st = in && names ? MREC_OK : MREC_ERR_NOMEM;
    for (int i = 0; !st && i < sf.n_tensors; i++) {
        const mrec_st_entry *e = &sf.tensors[i];
        const char *at = strstr(e->name, "roberta.encoder.layer.");
        if (at) snprintf(names[i], sizeof names[i], "%.*sroberta.encoder.layers.%s", (int)(at - e->name), e->name, at + 22);
        else snprintf(names[i], sizeof names[i], "%s", e->name);
        in[i] = (mrec_st_tensor_in){names[i], e->dtype, e->ndim, e->shape, e->data};
    }
    char path[256], cmd[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!st) st = mrec_safetensors_write(path, in, sf.n_tensors, NULL, NULL, 0);
    mrec_safetensors_close(&sf);
    free(in), free(names);
    snprintf(cmd, sizeof cmd, "cp " FIX "config.json %s/", dir);
    if (st || system(cmd) != 0) return NULL;
    return dir;
}

/* The text extractor end to end: the Unigram tokenizer's ids against
 * XLMRobertaTokenizerFast's, then texts in, text_embeds out. */
static void text_encoder_case(mrec_context *ctx) {
    char *buf;
    const char *texts[N_TEXTS];
    int n = fixture_texts(&buf, texts);
    mrec_text_encoder e;
    if (!t_check(n == N_TEXTS, "ten texts in the fixture") ||
        !t_status(mrec_text_encoder_load(&e, FIX), MREC_OK, "the text encoder on an AltCLIP folder")) {
        free(buf);
        return;
    }
    if (!t_status(mrec_text_encoder_to_device(&e, ctx), MREC_OK, "the text encoder to the context's device")) {
        mrec_text_encoder_free(&e), free(buf);
        return;
    }
    t_check(e.pooling == MREC_POOL_EMBEDS && e.normalize && e.max_length == 512 && mrec_text_encoder_dim(&e) == P,
            "an AltCLIP folder: projected, normalized, cut at 512, 10-d (pooling %d, max_length %d)", e.pooling, e.max_length);
    int32_t *ids = malloc(sizeof(int32_t) * N_TEXTS * T_MAX), *mask = malloc(sizeof(int32_t) * N_TEXTS * T_MAX), lens[N_TEXTS];
    mrec_tok_options opt = mrec_tok_defaults();
    opt.max_length = e.max_length;
    float *want = load_npy(FIX "input_ids.npy", NULL), *ref = load_npy(FIX "text_embeds.npy", NULL);
    int same = ids && mask && want && !mrec_tokenizer_encode_batch(e.tok, texts, NULL, N_TEXTS, &opt, T_MAX, ids, NULL, mask, lens);
    int mismatch = -1;
    for (int i = 0; same && i < N_TEXTS * T_MAX; i++)
        if (mask[i] ? ids[i] != (int32_t)want[i] : want[i] != 1) same = 0, mismatch = i;
    t_check(same, "Unigram ids of ten texts in six languages (one cut at 512) equal XLMRobertaTokenizerFast's (first difference at %d)",
            mismatch);
    float out[N_TEXTS * P];
    if (ref && t_status(mrec_text_encoder_embed(ctx, &e, texts, N_TEXTS, out), MREC_OK, "embed ten texts"))
        compare_scaled("text extractor with AltCLIP against Hugging Face's text_embeds", ref, out, N_TEXTS * P);
    free(want), free(ref), free(ids), free(mask);
    mrec_text_encoder_free(&e);
    free(buf);
}

/* ---- the vision tower ---- */

static void vision_case(void) {
    mrec_clip m;
    if (t_status(mrec_clip_load(&m, FIX, MREC_CLIP_VISION), MREC_OK, "the vision tower of an AltCLIP folder")) {
        t_check(m.projection_dim == P && m.vision.cfg.hidden == 24 && m.vision.cfg.act == MREC_ACT_QUICK_GELU,
                "AltCLIP's vision config: CLIP's, quick_gelu, projection_dim 10");
        mrec_clip_free(&m);
    }
    mrec_status st = mrec_clip_load(&m, FIX, MREC_CLIP_BOTH);
    if (!st) mrec_clip_free(&m);
    t_check(st == MREC_ERR_UNSUPPORTED && strstr(mrec_error_detail(), "XLM-R") && strstr(mrec_error_detail(), FIX),
            "CLIP's text tower from an AltCLIP folder is refused, naming the file and the way: %s", mrec_error_detail());
}

/* mrec extract-image on the fixture's five photos, named so that they sort in the fixture's order */
static void image_cli_case(const char *bin) {
    char dir[] = "/tmp/mrec-altclip-img-XXXXXX", cmd[8192], path[4200];
    if (!t_check(mkdtemp(dir) != NULL, "a temporary folder")) return;
    char *list = t_slurp(FIX "images.txt");
    snprintf(cmd, sizeof cmd, "mkdir %s/photos", dir);
    int ok = list && system(cmd) == 0, k = 0;
    for (char *p = list, *nl; ok && p && *p && (nl = strchr(p, '\n')); p = nl + 1, k++) {
        *nl = 0;
        snprintf(cmd, sizeof cmd, "ln -s \"$PWD/tests/data/%s\" %s/photos/p%d.jpg", p, dir, k);
        ok = system(cmd) == 0;
    }
    free(list);
    if (t_check(ok && k == N_IMAGES, "five photos linked")) {
        snprintf(cmd, sizeof cmd, "%s extract-image --model " FIX " --images %s/photos --batch-size 2 --out %s/out > %s/log 2>&1",
                 bin, dir, dir, dir);
        int rc = system(cmd);
        snprintf(path, sizeof path, "%s/out/image_feat.npy", dir);
        int64_t sh[2] = {0};
        float *feat = load_npy(path, sh), *ref = load_npy(FIX "image_embeds.npy", NULL);
        if (t_check(rc == 0 && feat && ref && sh[0] == N_IMAGES && sh[1] == P, "extract-image on AltCLIP writes (5, 10): rc %d", rc))
            compare_scaled("mrec extract-image with AltCLIP (CLIP's processor), against Hugging Face's image_embeds", ref, feat, N_IMAGES * P);
        free(feat), free(ref);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* ---- the benchmark's visual_textual section ---- */

/* Writes dir/NAME with the given text; 0 on failure. */
static int write_file(const char *dir, const char *name, const char *text) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

/* The row in dir/leaf/id.npy against row k of a (rows, dim) reference. */
static void leaf_row(const char *dir, const char *leaf, const char *id, const char *ref_file, int k, int dim, const char *what) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s/%s.npy", dir, leaf, id);
    int64_t sh[2] = {0};
    float *row = load_npy(path, sh), *ref = load_npy(ref_file, NULL);
    if (t_check(row && ref && sh[0] == 1 && sh[1] == dim, "%s: %s/%s.npy is (1, %d)", what, leaf, id, dim))
        compare_scaled(what, ref + (int64_t)k * dim, row, dim);
    free(row), free(ref);
}

/* The Ducho-meets-Elliot config_ducho's visual_textual section, its model names
 * resolved to the tiny ALIGN and AltCLIP folders: each writes a visual and a
 * textual leaf, image_embeds of every photo and text_embeds of every text. */
static void ducho_case(const char *bin) {
    char dir[] = "/tmp/mrec-altclip-ducho-XXXXXX", cmd[8192], out[4096];
    if (!t_check(mkdtemp(dir) != NULL, "a temporary folder")) return;
    snprintf(cmd, sizeof cmd, "mkdir -p %s/w/BAAI %s/w/kakaobrain %s/photos && ln -s \"$PWD/" FIX "\" %s/w/BAAI/AltCLIP && "
             "ln -s \"$PWD/tests/fixtures/align/text_tiny\" %s/w/kakaobrain/align-base", dir, dir, dir, dir, dir);
    int ok = system(cmd) == 0, k = 0;
    char *list = t_slurp(FIX "images.txt"), *buf;
    for (char *p = list, *nl; ok && p && *p && (nl = strchr(p, '\n')); p = nl + 1, k++) {
        *nl = 0;
        snprintf(cmd, sizeof cmd, "ln -s \"$PWD/tests/data/%s\" %s/photos/p%d.jpg", p, dir, k);
        ok = system(cmd) == 0;
    }
    free(list);
    const char *texts[N_TEXTS];
    int n = fixture_texts(&buf, texts);
    char meta[8192] = "item\ttext\n";
    for (int i = 0; i < 5 && i < n; i++) snprintf(meta + strlen(meta), sizeof meta - strlen(meta), "t%d\t%s\n", i, texts[i]);
    free(buf);
    static const char *const section =
        "visual_textual:\n"
        "  items:\n"
        "    input_path: {visual: photos, textual: meta.tsv}\n"
        "    item_column: item\n"
        "    text_column: text\n"
        "    output_path: {visual: visual_embeddings_2, textual: textual_embeddings_2}\n"
        "    model: [\n"
        "      { model_name: kakaobrain/align-base, backend: transformers, output_layers: 1, batch_size: 2},\n"
        "      { model_name: BAAI/AltCLIP, backend: transformers, output_layers: 1, batch_size: 2},\n"
        "    ]\n";
    char cfg[9000];
    snprintf(cfg, sizeof cfg, "dataset_path: %s\ngpu list: -1\n%s", dir, section);
    ok = ok && k == N_IMAGES && n == N_TEXTS && write_file(dir, "meta.tsv", meta) && write_file(dir, "config.yml", cfg);
    if (!t_check(ok, "a Ducho dataset of five photos and five texts")) goto done;
    snprintf(cmd, sizeof cmd, "%s extract %s/config.yml --weights %s/w 2>&1", bin, dir, dir);
    int rc = t_run(cmd, out, sizeof out);
    if (t_check(rc == 0, "mrec extract runs config_ducho's visual_textual with ALIGN and AltCLIP: rc %d\n%s", rc, out)) {
        char what[160];
        for (int i = 0; i < N_IMAGES; i++) {
            char id[16];
            snprintf(id, sizeof id, "p%d", i);
            snprintf(what, sizeof what, "Ducho visual_textual, AltCLIP: image_embeds of photo %d", i);
            leaf_row(dir, "visual_embeddings_2/transformers/BAAI/AltCLIP/1", id, FIX "image_embeds.npy", i, P, what);
            snprintf(id, sizeof id, "t%d", i);
            snprintf(what, sizeof what, "Ducho visual_textual, AltCLIP: text_embeds of text %d", i);
            leaf_row(dir, "textual_embeddings_2/transformers/BAAI/AltCLIP/1", id, FIX "text_embeds.npy", i, P, what);
        }
        /* align's text_tiny references are the first six lines of items.txt, as the first three texts here */
        for (int i = 0; i < 3; i++) {
            char id[16];
            snprintf(id, sizeof id, "t%d", i);
            snprintf(what, sizeof what, "Ducho visual_textual, ALIGN: text_embeds of text %d", i);
            leaf_row(dir, "textual_embeddings_2/transformers/kakaobrain/align-base/1", id, "tests/fixtures/align/text_tiny/ref_embeds.npy",
                     i, 40, what);
        }
        snprintf(cmd, sizeof cmd, "ls %s/visual_embeddings_2/transformers/kakaobrain/align-base/1 | wc -l", dir);
        t_run(cmd, out, sizeof out);
        t_check(atoi(out) == N_IMAGES, "Ducho visual_textual, ALIGN: one image feature per photo (%d)", atoi(out));
    }
    /* what the two-encoder models cannot do there */
    static const struct { const char *from, *to, *says; } bad[] = {
        {"output_layers: 1, batch_size: 2},\n    ]", "output_layers: 1, batch_size: 2, fusion: concat},\n    ]", "fusion with BAAI/AltCLIP"},
        {"BAAI/AltCLIP, backend: transformers, output_layers: 1", "BAAI/AltCLIP, backend: transformers, output_layers: pooler",
         "output_layers 'pooler'"},
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        char edited[9000];
        const char *at = strstr(cfg, bad[c].from);
        if (!t_check(at != NULL, "the config holds %s", bad[c].from)) continue;
        snprintf(edited, sizeof edited, "%.*s%s%s", (int)(at - cfg), cfg, bad[c].to, at + strlen(bad[c].from));
        if (!t_check(write_file(dir, "bad.yml", edited), "bad.yml")) continue;
        snprintf(cmd, sizeof cmd, "%s extract %s/bad.yml --weights %s/w --overwrite 2>&1", bin, dir, dir);
        rc = t_run(cmd, out, sizeof out);
        t_check(rc != 0 && strstr(out, bad[c].says) && strstr(out, "bad.yml"), "refused, naming the file and %s: %s", bad[c].says, out);
    }
done:
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* ---- malformed folders ---- */

/* The fixture's weights under an edited config.json: each refused, naming the file and what is wrong. */
static void errors(void) {
    char dir[] = "/tmp/mrec-altclip-bad-XXXXXX", cmd[4096], path[4200];
    if (!t_check(mkdtemp(dir) != NULL, "a temporary folder")) return;
    static const struct { const char *sed, *says; } cases[] = {
        {"s/\"project_dim\": 12/\"project_dim\": 13/", "text_model.transformation.weight"},
        {"s/\"projection_dim\": 10,/\"projection_dim\": 11,/", "text_projection.weight"},
        {"s/\"altclip_text_model\"/\"bert\"/", "text_config of another model"},
        {"s/\"pad_token_id\": 1/\"pad_token_id\": 513/", "pad_token_id"},
        {"s/\"project_dim\": 12/\"project_dim\": 0/", "project_dim"},
        {"s/\"max_position_embeddings\": 514/\"max_position_embeddings\": 512/", "position_embeddings"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(cmd, sizeof cmd, "cp " FIX "model.safetensors %s/ && sed '%s' " FIX "config.json > %s/config.json && "
                 "! cmp -s " FIX "config.json %s/config.json", dir, cases[k].sed, dir, dir);
        if (!t_check(system(cmd) == 0, "%s changes the config", cases[k].sed)) continue;
        mrec_bert m;
        mrec_status st = mrec_bert_load(&m, dir);
        if (!st) mrec_bert_free(&m);
        snprintf(path, sizeof path, "%s/", dir);
        t_check(st != MREC_OK && strstr(mrec_error_detail(), cases[k].says) && strstr(mrec_error_detail(), path),
                "config.json edited by %s is refused naming the file and %s: %s", cases[k].sed, cases[k].says, mrec_error_detail());
    }
    /* a token past the position table: 512 real tokens fit (positions 2..513), the ids are checked before any op */
    mrec_bert m;
    if (t_status(mrec_bert_load(&m, FIX), MREC_OK, "load for the position check")) {
        mrec_context_options o = mrec_context_defaults();
        o.device = MREC_WANT_CPU;
        mrec_context *ctx;
        if (t_status(mrec_context_create(&ctx, &o), MREC_OK, "a CPU context")) {
            int T = 514;
            int32_t *ids = malloc(sizeof(int32_t) * T);
            for (int i = 0; ids && i < T; i++) ids[i] = 5;
            mrec_status st = ids ? mrec_bert_forward(ctx, &m, ids, NULL, NULL, 1, 513, NULL, NULL) : MREC_ERR_NOMEM;
            t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "roberta") && strstr(mrec_error_detail(), "514"),
                    "513 real tokens run past the 514 positions (pad + 1 onwards) and are refused: %s", mrec_error_detail());
            free(ids);
            mrec_context_destroy(ctx);
        }
        mrec_bert_free(&m);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    t_suite("altclip");
    mrec_context_options o = mrec_context_defaults();
    mrec_context *ctx;
    o.device = MREC_WANT_CPU;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    text_model_case(ctx, "CPU", FIX);
    char *plural = plural_layers_folder();
    if (t_check(plural != NULL, "the fixture written again with encoder.layers.N names")) text_model_case(ctx, "CPU, layers.N names", plural);
    text_encoder_case(ctx);
    mrec_context_destroy(ctx);
    o.device = MREC_WANT_CUDA;
    if (mrec_context_create(&ctx, &o) == MREC_OK) {
        text_model_case(ctx, "GPU", FIX);
        text_encoder_case(ctx);
        mrec_context_destroy(ctx);
    } else {
        t_no_gpu(mrec_error_detail());
        t_skip("the AltCLIP text tower on the GPU: %s", mrec_error_detail());
    }
    if (plural) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf %s", plural);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", plural);
    }
    vision_case();
    errors();
    const char *bin = getenv("MREC_BIN");
    if (bin) image_cli_case(bin), ducho_case(bin);
    else t_skip("mrec extract-image and mrec extract with AltCLIP: MREC_BIN is not set (tests/run.sh sets it)");
    return t_finish();
}
