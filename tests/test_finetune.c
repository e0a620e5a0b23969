/* test_finetune.c: CLIP fine-tuning (tools/cmd_finetune.c, `mrec finetune-clip`).
 *
 *  (a) optimizer steps against PyTorch (tests/fixtures/finetune_clip, made by
 *      tools/golden/finetune_clip.py): the 3 pairs of tests/fixtures/clip_train
 *      through CLIPModel(return_loss=True), clip_grad_norm_(1.0), AdamW (lr 1e-3,
 *      betas 0.9, 0.98, eps 1e-6, decay 0.2 on the weight matrices only): two
 *      steps with everything trained, one with frozen blocks. Every weight within
 *      1e-5 of its value relatively, plus 1e-3 lr absolutely (1e-2 lr for the key
 *      biases): the first steps of Adam move each weight by about
 *      lr g / (|g| + eps), so a gradient that is 0 in exact arithmetic (the key
 *      biases') moves its weight here by lr |rounding| / eps, where the float64
 *      reference does not move it; the rest is float32 (mrec) against float64.
 *      Two accumulated copies of the batch give the first step again (a mean). Frozen tensors do not move at all; rows of
 *      the token embedding outside the batch neither (no gradient, no decay).
 *  (b) the loss goes down over epochs on 10 photos with catalogue texts;
 *  (c) a saved folder loads in mrec extract-clip and gives the in-memory
 *      model's embeddings (float32 written: to float rounding of the forward);
 *  (d) bad input refused with a message naming it, nothing written.
 * Runs the binary in $MREC_BIN for (b)-(d).
 */
#include "harness.h"

#include "../extractors/mrec_extract.h"
#include "../extractors/mrec_preprocess.h"
#include "../nn/mrec_npy.h"
#include "../nn/mrec_safetensors.h"
#include "../tools/mrec_finetune.h"
#include "../tools/mrec_tools.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/finetune_clip/"
#define BATCH "tests/fixtures/clip_train/"
#define LR 1e-3

static float *npy(const char *path, int64_t *n) {
    float *data = NULL;
    int nd = 0;
    int64_t shape[8];
    if (mrec_npy_read_f32(path, &data, &nd, shape) != MREC_OK) {
        t_check(0, "read %s: %s", path, mrec_error_detail());
        return NULL;
    }
    *n = 1;
    for (int i = 0; i < nd; i++) *n *= shape[i];
    return data;
}

typedef struct {
    float *px;
    int32_t ids[64], mask[64];
} batch;

/* The model's tensors after a step against the reference file: frozen ones against before (the model as loaded). */
static void compare(const mrec_finetune *f, const char *file, const mrec_clip *before, int frozen_case) {
    mrec_safetensors ref;
    if (!t_status(mrec_safetensors_open(&ref, file), MREC_OK, "open %s", file)) return;
    double worst = 0;
    int bad = 0, moved_frozen = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const mrec_finetune_tensor *x = &f->tensor[i];
        char name[128];
        int token = !strcmp(x->name, "text_model.embeddings.token_embedding.weight");
        snprintf(name, sizeof name, "%s%s", x->name, token ? ".rows" : "");
        const mrec_st_entry *e = mrec_safetensors_find(&ref, name);
        if (!t_check(e != NULL, "%s: %s is missing", file, name)) continue;
        int64_t n = 1;
        for (int d = 0; d < e->ndim; d++) n *= e->shape[d];
        float *want = malloc(sizeof(float) * (size_t)(n ? n : 1));
        mrec_safetensors_read_f32(&ref, name, e->ndim, e->shape, want);
        const float *got = x->w ? x->w : &f->m->logit_scale;
        if (token) { /* the reference holds the batch's rows; check those, and that no other row moved */
            int H = (int)e->shape[1];
            const mrec_clip_tower *tw = &f->m->text, *tb = &before->text;
            int64_t nr = 0; /* the reference's rows are token_rows.npy's, in that order */
            float *rows = npy(BATCH "token_rows.npy", &nr);
            for (int64_t r = 0; rows && r < nr; r++) {
                int id = (int)rows[r];
                for (int h = 0; h < H; h++) {
                    double ref_v = want[r * H + h], out = tw->embed[(int64_t)id * H + h];
                    double err = fabs(out - ref_v), tol = 1e-5 * fabs(ref_v) + 1e-3 * LR;
                    worst = fmax(worst, err);
                    if (err > tol && bad++ < 5) t_check(0, "%s row %d [%d]: %.9g, torch %.9g", x->name, id, h, out, ref_v);
                }
            }
            int64_t others = 0;
            for (int v = 0; v < tw->cfg.vocab_size; v++) {
                int in = 0;
                for (int64_t r = 0; rows && r < nr; r++) in |= (int)rows[r] == v;
                if (!in) others += memcmp(tw->embed + (int64_t)v * H, tb->embed + (int64_t)v * H, sizeof(float) * H) != 0;
            }
            t_check(others == 0, "%s: %lld token rows outside the batch moved", file, (long long)others);
            free(rows), free(want);
            continue;
        }
        /* a key bias's gradient is 0 in exact arithmetic (a softmax ignores a shift common to a query's scores): what
         * float32 leaves, ~1e-9, over eps 1e-6 moves it by up to ~1e-2 lr, where the float64 reference does not move */
        double floor = strstr(x->name, "k_proj.bias") ? 1e-2 * LR : 1e-3 * LR;
        for (int64_t k = 0; k < n; k++) {
            double err = fabs((double)got[k] - want[k]), tol = 1e-5 * fabs(want[k]) + floor;
            worst = fmax(worst, err);
            if (err > tol && bad++ < 5) t_check(0, "%s %s[%lld]: %.9g, torch %.9g", file, x->name, (long long)k, got[k], want[k]);
        }
        if (frozen_case && x->frozen) { /* a frozen tensor keeps its loaded bits */
            const mrec_clip_tower *tb = x->vision ? &before->vision : &before->text, *tw = x->vision ? &f->m->vision : &f->m->text;
            moved_frozen += memcmp(x->w, tb->storage + (x->w - tw->storage), sizeof(float) * (size_t)x->n) != 0;
        }
        free(want);
    }
    t_check(bad == 0, "%s: every weight within 1e-5 relative + 1e-3 lr of torch's (max abs err %.3g)", file, worst);
    if (frozen_case) t_check(moved_frozen == 0, "%s: %d frozen tensors moved", file, moved_frozen);
    mrec_safetensors_close(&ref);
}

static void steps_against_torch(mrec_context *ctx) {
    int64_t n = 0;
    batch b = {0};
    float *idf = npy(BATCH "input_ids.npy", &n), *mf = npy(BATCH "attention_mask.npy", &n);
    b.px = npy(BATCH "pixel_values.npy", &n);
    float *loss_ref = npy(FIX "loss.npy", &n), *norm_ref = npy(FIX "norm.npy", &n);
    if (!idf || !mf || !b.px || !loss_ref || !norm_ref) return;
    enum { B = 3, T = 7 };
    for (int i = 0; i < B * T; i++) b.ids[i] = (int32_t)idf[i], b.mask[i] = (int32_t)mf[i];
    for (int frozen = 0; frozen < 2; frozen++) {
        mrec_clip m, before;
        if (!t_status(mrec_clip_load(&m, "tests/fixtures/clip", MREC_CLIP_BOTH), MREC_OK, "load the CLIP fixture") ||
            !t_status(mrec_clip_load(&before, "tests/fixtures/clip", MREC_CLIP_BOTH), MREC_OK, "load it again"))
            return;
        mrec_finetune_options o = {LR, 0.2, 1.0, frozen ? 1 : 0, frozen ? 2 : 0};
        mrec_finetune f;
        if (!t_status(mrec_finetune_init(&f, ctx, &m, &o, B, T), MREC_OK, "finetune init")) return;
        int n_steps = frozen ? 1 : 2;
        for (int s = 0; s < n_steps; s++) {
            double loss = 0;
            t_status(mrec_finetune_accumulate(&f, b.px, b.ids, b.mask, B, T, &loss), MREC_OK, "a batch's gradients");
            if (s == 0 && !frozen) t_check(fabs(loss - loss_ref[0]) <= 1e-5 * loss_ref[0], "loss %.9g, torch %.9g", loss, loss_ref[0]);
            t_status(mrec_finetune_apply(&f, LR), MREC_OK, "an optimizer step");
            double want = norm_ref[frozen ? 2 : s];
            t_check(fabs(f.last_norm - want) <= 1e-4 * want, "gradient norm %.9g, torch %.9g (step %d%s)", f.last_norm, want, s + 1,
                    frozen ? ", frozen" : "");
            compare(&f, frozen ? FIX "frozen.safetensors" : s ? FIX "after2.safetensors" : FIX "after1.safetensors", &before, frozen);
        }
        /* the logit scale is clamped at ln(100) as CLIP does */
        if (!frozen) {
            mrec_finetune_free(&f);
            m.logit_scale = 4.61f; /* ln(100) = 4.6052 */
            mrec_finetune_init(&f, ctx, &m, &o, B, T);
            double loss;
            mrec_finetune_accumulate(&f, b.px, b.ids, b.mask, B, T, &loss);
            mrec_finetune_apply(&f, LR);
            t_check(m.logit_scale == (float)log(100.0), "the logit scale clamped at ln(100): %.7g", m.logit_scale);
        }
        mrec_finetune_free(&f);
        mrec_clip_free(&m), mrec_clip_free(&before);
    }
    /* accumulation averages: the same batch twice is the step of that batch once (to float rounding) */
    {
        mrec_clip m, before;
        mrec_finetune f;
        mrec_finetune_options o = {LR, 0.2, 1.0, 0, 0};
        if (!mrec_clip_load(&m, "tests/fixtures/clip", MREC_CLIP_BOTH) && !mrec_clip_load(&before, "tests/fixtures/clip", MREC_CLIP_BOTH)) {
            if (t_status(mrec_finetune_init(&f, ctx, &m, &o, B, T), MREC_OK, "finetune init (accumulation)")) {
                double loss;
                for (int k = 0; k < 2; k++) t_status(mrec_finetune_accumulate(&f, b.px, b.ids, b.mask, B, T, &loss), MREC_OK, "batch %d", k);
                t_status(mrec_finetune_apply(&f, LR), MREC_OK, "a step of two batches");
                t_check(fabs(f.last_norm - norm_ref[0]) <= 1e-4 * norm_ref[0], "two batches averaged: norm %.9g, torch %.9g", f.last_norm,
                        norm_ref[0]);
                compare(&f, FIX "after1.safetensors", &before, 0);
                mrec_finetune_free(&f);
            }
            mrec_clip_free(&m), mrec_clip_free(&before);
        }
    }
    /* a frozen depth past the tower's, and a batch of one pair, are refused */
    mrec_clip m;
    mrec_finetune f;
    if (!mrec_clip_load(&m, "tests/fixtures/clip", MREC_CLIP_BOTH)) {
        mrec_finetune_options o = {LR, 0.2, 1.0, 3, 0};
        t_status(mrec_finetune_init(&f, ctx, &m, &o, B, T), MREC_ERR_ARG, "--freeze-vision 3 of 2 blocks");
        t_check(strstr(mrec_error_detail(), "vision tower has 2 blocks") != NULL, "named: %s", mrec_error_detail());
        o.freeze_vision = 0;
        t_status(mrec_finetune_init(&f, ctx, &m, &o, 1, T), MREC_ERR_ARG, "a batch of one pair");
        mrec_clip_free(&m);
    }
    free(idf), free(mf), free(b.px), free(loss_ref), free(norm_ref);
}

/* ---- the command ---- */

static const char *IMAGES[] = {"pillow/flower.jpg",   "pillow/pil_sample_rgb.jpg", "pillow/hopper.jpg", "pillow/hopper.png",
                               "pillow/hopper_gray.jpg", "pillow/hopper_16bit_qtables.jpg", "pillow/iptc.jpg",
                               "pillow/app13-multiple.jpg", "libjpeg-turbo/testorig.jpg", "libjpeg-turbo/testimgint.jpg"};
enum { N_ITEMS = 10 };

static char dir[64], cwd[2048];
static const char *bin;

static int mrec(const char *args, char *out, size_t cap) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", bin, args);
    return t_run(cmd, out, cap);
}

/* items.tsv: id, text (a line of tests/data/texts/items.txt), image (an absolute path); bad_image replaces item 2's. */
static int write_items(const char *name, int n, const char *bad_image) {
    char path[256], line[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w"), *tx = fopen("tests/data/texts/items.txt", "r");
    if (!f || !tx) return 0;
    fprintf(f, "id\ttext\timage\n");
    for (int i = 0; i < n && fgets(line, sizeof line, tx); i++) {
        line[strcspn(line, "\n")] = 0;
        if (bad_image && i == 2) fprintf(f, "it%d\t%s\t%s\n", i, line, bad_image);
        else fprintf(f, "it%d\t%s\t%s/tests/data/images/odd/%s\n", i, line, cwd, IMAGES[i]);
    }
    fclose(tx);
    return fclose(f) == 0;
}

static double after(const char *out, const char *key) {
    const char *p = strstr(out, key);
    return p ? atof(p + strlen(key)) : NAN;
}

/* The in-memory model's embeddings of the items (the test's own decode, preprocessing and tokenizing) against
 * extract-clip's on the saved folder. */
static void saved_folder(mrec_context *ctx) {
    int64_t n = 0;
    float *idf = npy(BATCH "input_ids.npy", &n), *mf = npy(BATCH "attention_mask.npy", &n), *px = npy(BATCH "pixel_values.npy", &n);
    if (!idf || !mf || !px) return;
    int32_t ids[21], mask[21];
    for (int i = 0; i < 21; i++) ids[i] = (int32_t)idf[i], mask[i] = (int32_t)mf[i];
    mrec_clip m;
    mrec_finetune f;
    mrec_finetune_options o = {LR, 0.2, 1.0, 0, 0};
    char model[256], path[512], out[8192], args[4096];
    snprintf(model, sizeof model, "%s/model", dir);
    if (!t_status(mrec_clip_load(&m, model, MREC_CLIP_BOTH), MREC_OK, "load the model folder") ||
        !t_status(mrec_finetune_init(&f, ctx, &m, &o, 3, 7), MREC_OK, "init"))
        return;
    double loss;
    for (int s = 0; s < 3; s++) mrec_finetune_accumulate(&f, px, ids, mask, 3, 7, &loss), mrec_finetune_apply(&f, LR);
    snprintf(path, sizeof path, "%s/saved", dir);
    mrec_mkdirs(path);
    snprintf(path, sizeof path, "%s/saved/model.safetensors", dir);
    t_status(mrec_finetune_save_weights(&f, path), MREC_OK, "save the weights");
    snprintf(args, sizeof args, "cp -L %s/config.json %s/tokenizer.json %s/preprocessor_config.json %s/saved/", model, model, model, dir);
    t_check(system(args) == 0, "the folder's other files");
    /* the in-memory model on the items */
    mrec_preprocess pre;
    mrec_tokenizer *tok = NULL;
    int D = m.projection_dim, S = m.vision.cfg.image_size, L = 77;
    float *img = malloc(sizeof(float) * 3 * S * S * N_ITEMS), *ev = malloc(sizeof(float) * D * N_ITEMS),
          *et = malloc(sizeof(float) * D * N_ITEMS);
    int32_t tid[N_ITEMS * 77], tmask[N_ITEMS * 77], lens[N_ITEMS];
    const char *texts[N_ITEMS];
    char lines[N_ITEMS][2048];
    FILE *tx = fopen("tests/data/texts/items.txt", "r");
    for (int i = 0; i < N_ITEMS && tx && fgets(lines[i], sizeof lines[i], tx); i++) lines[i][strcspn(lines[i], "\n")] = 0, texts[i] = lines[i];
    if (tx) fclose(tx);
    int ok = !mrec_preprocess_preset(&pre, "hf-clip", model) && !mrec_tokenizer_load(&tok, model);
    for (int i = 0; ok && i < N_ITEMS; i++) {
        mrec_rgb_image im;
        snprintf(path, sizeof path, "tests/data/images/odd/%s", IMAGES[i]);
        ok = !mrec_image_load(path, &im) && !mrec_preprocess_image(&pre, &im, img + (size_t)3 * S * S * i, NULL);
        mrec_image_free(&im);
    }
    mrec_tok_options to = mrec_tok_defaults();
    to.max_length = L, to.truncation = 1;
    ok = ok && !mrec_tokenizer_encode_batch(tok, texts, NULL, N_ITEMS, &to, L, tid, NULL, tmask, lens);
    ok = ok && !mrec_clip_image_forward(ctx, &m, img, N_ITEMS, MREC_CLIP_EMBEDS, ev) &&
         !mrec_clip_text_forward(ctx, &m, tid, tmask, N_ITEMS, L, MREC_CLIP_EMBEDS, et);
    if (t_check(ok, "the in-memory model's embeddings: %s", mrec_error_detail())) {
        snprintf(args, sizeof args, "extract-clip --model %s/saved --images %s/items.tsv --image-id-column id --path-column image "
                 "--input %s/items.tsv --id-column id --text-column text --out %s/feat", dir, dir, dir, dir);
        int rc = mrec(args, out, sizeof out);
        float *v = NULL, *t = NULL;
        int nd;
        int64_t sv[4], st[4];
        snprintf(path, sizeof path, "%s/feat/image_feat.npy", dir);
        int read = rc == 0 && !mrec_npy_read_f32(path, &v, &nd, sv);
        snprintf(path, sizeof path, "%s/feat/text_feat.npy", dir);
        read = read && !mrec_npy_read_f32(path, &t, &nd, st);
        if (t_check(read && sv[0] == N_ITEMS && sv[1] == D && st[0] == N_ITEMS, "extract-clip on the saved folder: rc %d, %s", rc, out)) {
            /* float32 weights written as they are: only the batching of the forward differs */
            t_allclose("extract-clip's image embeds from the saved folder = the in-memory model's", ev, v, (int64_t)N_ITEMS * D, 1e-6, 1e-5);
            t_allclose("extract-clip's text embeds from the saved folder = the in-memory model's", et, t, (int64_t)N_ITEMS * D, 1e-6, 1e-5);
            /* and the model did change: the fixture's own weights give other embeddings */
            mrec_clip m0;
            float *e0 = malloc(sizeof(float) * D * N_ITEMS);
            double diff = 0;
            if (!mrec_clip_load(&m0, model, MREC_CLIP_BOTH) && !mrec_clip_image_forward(ctx, &m0, img, N_ITEMS, MREC_CLIP_EMBEDS, e0)) {
                for (int k = 0; k < N_ITEMS * D; k++) diff = fmax(diff, fabs(e0[k] - v[k]));
                mrec_clip_free(&m0);
            }
            t_check(diff > 1e-3, "the saved embeddings differ from the original model's (max %.3g)", diff);
            free(e0);
        }
        free(v), free(t);
    }
    mrec_tokenizer_free(tok);
    free(img), free(ev), free(et), free(idf), free(mf), free(px);
    mrec_finetune_free(&f);
    mrec_clip_free(&m);
}

static void command(mrec_context *ctx) {
    bin = getenv("MREC_BIN");
    const char *tokfile = "tests/data/tokenizers/clip/clip-vit-base-patch32.tokenizer.json";
    if (!bin || access(bin, X_OK) != 0) {
        t_skip("finetune-clip: MREC_BIN is not set (tests/run.sh sets it)");
        return;
    }
    if (access(tokfile, R_OK) != 0 || access("tests/data/images/odd/pillow/flower.jpg", R_OK) != 0) {
        t_skip("finetune-clip: tests/data not found");
        return;
    }
    snprintf(dir, sizeof dir, "/tmp/mrec-finetune-XXXXXX");
    char cmd[8192], out[16384], args[4096], path[512];
    if (!t_check(mkdtemp(dir) != NULL && getcwd(cwd, sizeof cwd) != NULL, "a temporary folder")) return;
    snprintf(cmd, sizeof cmd, "mkdir %s/model && for f in config.json model.safetensors preprocessor_config.json; do "
             "ln -s %s/tests/fixtures/clip/$f %s/model/$f; done && ln -s %s/%s %s/model/tokenizer.json", dir, cwd, dir, cwd, tokfile, dir);
    if (!t_check(system(cmd) == 0, "a model folder with the CLIP tokenizer") || !t_check(write_items("items.tsv", N_ITEMS, NULL), "items.tsv"))
        return;
    /* (b) the loss goes down */
    snprintf(args, sizeof args, "finetune-clip --model %s/model --items %s/items.tsv --id-column id --text-column text --image-column image "
             "--out %s/ft --batch 4 --epochs 6 --lr 1e-3 --warmup 2 --valid-ratio 0.2 --seed 3 --threads 2", dir, dir, dir);
    int rc = mrec(args, out, sizeof out);
    double first = after(out, "epoch 1: train loss "), last = after(out, "epoch 6: train loss ");
    t_check(rc == 0 && first > 0 && last < 0.7 * first, "the training loss goes down over 6 epochs: %.4f -> %.4f (rc %d)\n%s", first, last,
            rc, out);
    t_check(strstr(out, "before training: valid image->text R@1") && strstr(out, "epoch 6: valid image->text R@1"),
            "recalls before training and after each epoch");
    const char *files[] = {"model.safetensors", "config.json", "tokenizer.json", "preprocessor_config.json"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/ft/%s", dir, files[i]);
        t_check(access(path, R_OK) == 0, "the output folder holds %s", files[i]);
    }
    /* the same seed, the same bits */
    snprintf(args, sizeof args, "finetune-clip --model %s/model --items %s/items.tsv --id-column id --text-column text --image-column image "
             "--out %s/ft2 --batch 4 --epochs 6 --lr 1e-3 --warmup 2 --valid-ratio 0.2 --seed 3 --threads 2", dir, dir, dir);
    rc = mrec(args, out, sizeof out);
    snprintf(cmd, sizeof cmd, "cmp -s %s/ft/model.safetensors %s/ft2/model.safetensors", dir, dir);
    t_check(rc == 0 && system(cmd) == 0, "a second run with the same seed writes the same weights");
    /* (c) */
    saved_folder(ctx);
    /* (d) bad input */
    struct {
        const char *table, *extra, *want, *what;
    } bad[] = {
        {"missing.tsv", "", "item 'it2': ", "a missing image names the item"},
        {"empty.tsv", "", "has no items", "an empty table"},
        {"items.tsv", "--batch 9", "--batch 9 is larger than the 8 training items", "a batch larger than the data"},
        {"items.tsv", "--freeze-vision 3", "--freeze-vision 3, but the vision tower has 2 blocks", "a frozen depth past the tower's"},
        {"items.tsv", "--freeze-text 5", "--freeze-text 5, but the text tower has 2 blocks", "a frozen text depth past the tower's"},
    };
    snprintf(path, sizeof path, "%s/nowhere.jpg", dir);
    write_items("missing.tsv", N_ITEMS, path);
    snprintf(path, sizeof path, "%s/empty.tsv", dir);
    FILE *f = fopen(path, "w");
    if (f) fputs("id\ttext\timage\n", f), fclose(f);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(args, sizeof args, "finetune-clip --model %s/model --items %s/%s --id-column id --text-column text --image-column image "
                 "--out %s/bad --batch 4 --valid-ratio 0.2 %s", dir, dir, bad[i].table, dir, bad[i].extra);
        rc = mrec(args, out, sizeof out);
        snprintf(path, sizeof path, "%s/bad", dir);
        t_check(rc == 2 && strstr(out, bad[i].want) && access(path, F_OK) != 0, "%s: rc %d, %s", bad[i].what, rc, out);
    }
    /* --skip-missing leaves the item out instead, and says so */
    snprintf(args, sizeof args, "finetune-clip --model %s/model --items %s/missing.tsv --id-column id --text-column text --image-column image "
             "--out %s/skip --batch 4 --valid-ratio 0.2 --skip-missing", dir, dir, dir);
    rc = mrec(args, out, sizeof out);
    t_check(rc == 0 && strstr(out, "left out: item 'it2'") && strstr(out, "1 of 10 items left out") && strstr(out, "9 items: 7 training"),
            "--skip-missing trains on the other 9: rc %d, %s", rc, out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) t_check(0, "remove %s", dir);
}

int main(void) {
    t_suite("finetune");
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU;
    o.n_threads = 2;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    steps_against_torch(ctx);
    command(ctx);
    mrec_context_destroy(ctx);
    return t_finish();
}
