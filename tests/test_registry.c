/* test_registry.c: the model registry and the run built on it.
 *
 * The table: every entry complete, names and Elliot keys unique, every
 * default inside its range, and each model's params column with its defaults
 * the one results.tsv has always carried (so Elliot's tables keep their
 * bytes). The parser: the command line's typed options and hyper-parameters.
 * The run: every model trained two epochs through mrec_train on a small split
 * with two modalities, its results handed back in memory (metrics, history,
 * per-user metrics, top lists) and written as mrec train writes them.
 */
#include "harness.h"

#include "../nn/mrec_npy.h"
#include "../recsys/mrec_registry.h"
#include "../tools/mrec_options.h"
#include "../tools/mrec_pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/mrec-registry-XXXXXX";

static void table(void) {
    int n = mrec_model_count();
    t_check(n >= 10, "%d models in the registry", n);
    for (int i = 0; i < n; i++) {
        const mrec_model_entry *e = mrec_model_at(i);
        t_check(e->name && e->elliot && e->summary && e->create, "%s: name, Elliot's name, summary and create", e->name);
        t_check(mrec_model_find(e->name) == e && mrec_model_find(e->elliot) == e, "%s: found by its names", e->name);
        char external[160];
        snprintf(external, sizeof external, "external.%s", e->elliot);
        t_check(mrec_model_find(external) == e, "%s: found as %s", e->name, external);
        for (int j = 0; j < i; j++)
            t_check(strcmp(mrec_model_at(j)->name, e->name) && strcmp(mrec_model_at(j)->elliot, e->elliot), "%s and %s differ",
                    mrec_model_at(j)->name, e->name);
        /* each Elliot key once, a hyper-parameter's or one held at the model's value, never both */
        for (int p = 0; p < MREC_MODEL_MAX_PARAMS; p++) {
            const char *key = e->params[p].elliot;
            if (!key) continue;
            t_check(mrec_model_param_elliot(e, key) == &e->params[p], "%s: Elliot key %s maps to one hyper-parameter", e->name, key);
            t_check(!mrec_model_fixed(e, key), "%s: %s is not also held fixed", e->name, key);
        }
        mrec_param_values p;
        t_status(mrec_params_resolve(&p, e, NULL), MREC_OK, "%s: its defaults resolve", e->name);
        for (int h = 0; h < MREC_HP_COUNT; h++)
            t_status(mrec_param_check((mrec_hp)h, &p.v[h]), MREC_OK, "%s: the default of %s is inside its range", e->name,
                     mrec_param_spec_of((mrec_hp)h)->name);
    }
    t_check(!mrec_model_find("dualgnn") && !mrec_model_find("external.DualGNN") && !mrec_model_find(NULL), "unknown models are not found");
    for (int h = 0; h < MREC_HP_COUNT; h++) {
        const mrec_param_spec *s = mrec_param_spec_of((mrec_hp)h);
        t_check(s && s->name && s->flag && !strncmp(s->flag, "--", 2) && s->help && s->meta, "hyper-parameter %d: name, option, help", h);
    }
}

/* The params column of each model with its defaults, as mrec train wrote it before the registry. */
static void params_column(void) {
    static const char *const want[][2] = {
        {"mostpop", "-"},
        {"itemknn", "k=50"},
        {"bprmf", "dim=64,lr=0.001,reg=1e-05,batch=2048,seed=999"},
        {"lightgcn", "dim=64,layers=3,lr=0.001,reg=0.0001,batch=2048,seed=999"},
        {"ngcf", "dim=64,layers=3,lr=0.001,decay=1e-05,node_dropout=0.1,mess_dropout=0.1,batch=2048,seed=999"},
        {"vbpr", "dim=64,lr=0.001,reg=0.001,batch=2048,seed=999,features=visual+textual"},
        {"freedom", "dim=64,layers=2,lr=0.001,reg=0.001,knn_k=10,edge_dropout=0.8,batch=2048,seed=999,features=visual:0.1+textual:0.9"},
        {"lattice", "dim=64,lr=0.001,lr_decay=0.96:50,reg=0.0001,knn_k=10,lambda=0.9,batch=2048,seed=999,features=visual+textual"},
        {"bm3", "dim=64,layers=1,lr=0.001,reg=0.1,cl=2,dropout=0.3,batch=2048,seed=999,features=visual+textual"},
        {"ngcfm",
         "dim=64,layers=3,lr=0.0005,l_w=0.01,mess_dropout=0.5,node_dropout=0,batch=2048,sampler=users,seed=999,features=visual+textual"},
    };
    mrec_features feat[2] = {{.name = "visual"}, {.name = "textual"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const mrec_model_entry *e = mrec_model_find(want[i][0]);
        if (!t_check(e != NULL, "%s is in the registry", want[i][0])) continue;
        mrec_param_values p;
        mrec_params_resolve(&p, e, NULL);
        char col[512];
        mrec_model_describe(col, sizeof col, e, &p, feat, 2, -1);
        t_check(!strcmp(col, want[i][1]), "%s's params column: %s (want %s)", e->name, col, want[i][1]);
    }
    /* given values, a value shown only when not the default, a knocked-out modality */
    const mrec_model_entry *lg = mrec_model_find("lightgcn"), *fr = mrec_model_find("freedom");
    mrec_param_values given = {0}, p;
    mrec_param_parse(MREC_HP_LOSS, "authors", &given.v[MREC_HP_LOSS]);
    mrec_param_parse(MREC_HP_REG, "1e-3", &given.v[MREC_HP_REG]);
    mrec_params_resolve(&p, lg, &given);
    char col[512];
    mrec_model_describe(col, sizeof col, lg, &p, NULL, 0, -1);
    t_check(!strcmp(col, "dim=64,layers=3,lr=0.001,reg=0.001,batch=2048,seed=999,loss=authors"), "LightGCN with its authors' loss: %s", col);
    mrec_params_resolve(&p, fr, NULL);
    mrec_model_describe(col, sizeof col, fr, &p, feat + 1, 1, 0);
    t_check(strstr(col, "features=textual:1(knocked out)") != NULL, "one modality weighs 1, marked knocked out: %s", col);
    /* a value out of range is refused by the registry too, naming the model and the parameter */
    given = (mrec_param_values){0};
    given.v[MREC_HP_DIM] = (mrec_param_value){.x = {0}, .given = 1};
    t_status(mrec_params_resolve(&p, mrec_model_find("bprmf"), &given), MREC_ERR_ARG, "dim 0");
    t_check(strstr(mrec_error_detail(), "bprmf") && strstr(mrec_error_detail(), "dim"), "named: %s", mrec_error_detail());
}

static void parser(void) {
    enum { K, OUT, N };
    static const mrec_option opts[N + 1] = {
        [K] = {.flag = "--k", .type = MREC_OPT_LIST, .meta = "K,...", .help = "cut-offs", .def = "5,10", .lo = 1, .hi = 100, .max_items = 4},
        [OUT] = {.flag = "--out", .type = MREC_OPT_TEXT, .meta = "DIR", .help = "where"},
        [N] = {.type = MREC_OPT_MODEL_PARAMS, .section = "hyper-parameters"},
    };
    mrec_command c = {"test", "usage: test\n", NULL, opts, N + 1, 0};
    mrec_opt_value v[N + 1];
    mrec_param_values hp;
    char *ok[] = {"test", "--reg", "0.01", "--authors-loss", "--k", "5,20", "--out", "x", "--sampler", "users", "--reg", "0.5"};
    int rc = mrec_options_parse(&c, 12, ok, v, &hp, NULL, NULL);
    t_check(rc == 0 && v[K].n == 2 && v[K].list[1] == 20 && !strcmp(v[OUT].text, "x"), "options parse: rc %d", rc);
    t_check(hp.v[MREC_HP_REG].given && hp.v[MREC_HP_REG].x[0] == (double)0.5f, "the last --reg wins, in single precision");
    t_check(hp.v[MREC_HP_LOSS].given && hp.v[MREC_HP_LOSS].x[0] == 1 && hp.v[MREC_HP_SAMPLER].x[0] == 1, "--authors-loss, --sampler users");
    t_check(!hp.v[MREC_HP_DIM].given, "what is not given stays for the model's default");
    static char *bad[][4] = {{"test", "--k", "20,5"},   {"test", "--k", "1,2,3,4,5"}, {"test", "--reg", "abc"}, {"test", "--epochs", "1e12"},
                             {"test", "--bogus", "1"}, {"test", "--out"},          {"test", "stray"},       {"test", "--loss", "bpr"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int argc = bad[i][2] ? 3 : 2;
        t_check(mrec_options_parse(&c, argc, bad[i], v, &hp, NULL, NULL) == MREC_OPTS_USAGE, "refused: %s %s", bad[i][1],
                bad[i][2] ? bad[i][2] : "");
    }
    /* help lists every hyper-parameter of the registry, from the same table */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (t_check(f != NULL, "a memory stream for help")) {
        mrec_options_help(f, &c);
        fclose(f);
        int all = 1;
        for (int h = 0; h < MREC_HP_COUNT; h++) all &= strstr(text, mrec_param_spec_of((mrec_hp)h)->flag) != NULL;
        t_check(all && strstr(text, "0.0005 (ngcfm") && strstr(text, "--authors-loss"), "help lists every hyper-parameter, with defaults");
        free(text);
    }
    mrec_command plain = {"test", "usage: test\n", NULL, opts, N, 0};
    char *no_params[] = {"test", "--reg", "1"};
    t_check(mrec_options_parse(&plain, 3, no_params, v, NULL, NULL, NULL) == MREC_OPTS_USAGE, "a table without hyper-parameters refuses them");
}

/* ---- every model trained through mrec_train ---- */

static void write_text(const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

/* 40 users on bands of 24 items (3 train, 1 valid, 1 test each); two modalities of 8 dimensions that tell the bands apart. */
static void make_data(void) {
    const char *names[3] = {"train.tsv", "val.tsv", "test.tsv"};
    for (int s = 0; s < 3; s++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, names[s]);
        FILE *f = fopen(path, "w");
        for (int u = 0; u < 40 && f; u++)
            for (int j = 0; j < 5; j++) {
                int split = j < 3 ? 0 : j - 2;
                if (split == s) fprintf(f, "u%d\ti%d\t1\n", u, (u / 2 + j * 3) % 24);
            }
        if (f) fclose(f);
    }
    char ids[24 * 8] = "";
    float x[24 * 8];
    for (int i = 0; i < 24; i++) {
        snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "i%d\n", i);
        for (int d = 0; d < 8; d++) x[i * 8 + d] = (float)((i * 5 + d * 3) % 7) / 7.0f + (d == i % 8);
    }
    char path[256];
    int64_t shape[2] = {24, 8};
    snprintf(path, sizeof path, "%s/vis.npy", dir);
    mrec_npy_write(path, MREC_NPY_F32, 2, shape, x);
    write_text("vis_ids.txt", ids);
    for (int i = 0; i < 24 * 8; i++) x[i] = 1.0f - x[i];
    snprintf(path, sizeof path, "%s/txt.npy", dir);
    mrec_npy_write(path, MREC_NPY_F32, 2, shape, x);
    write_text("txt_ids.txt", ids);
}

/* clip-e2e's items: the tiny CLIP of tests/fixtures/clip with the CLIP tokenizer, and per item a text and one of
 * four test photos; 0 when tests/data is not there. */
static int make_clip_items(char *model, size_t cap) {
    const char *tok = "tests/data/tokenizers/clip/clip-vit-base-patch32.tokenizer.json";
    static const char *const photos[4] = {"pillow/flower.jpg", "pillow/hopper.jpg", "pillow/pil_sample_rgb.jpg", "libjpeg-turbo/testorig.jpg"};
    char cwd[2048], cmd[8192], path[400];
    if (access(tok, R_OK) != 0 || access("tests/data/images/odd/pillow/flower.jpg", R_OK) != 0 || !getcwd(cwd, sizeof cwd)) return 0;
    snprintf(model, cap, "%s/clip", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && for f in config.json model.safetensors preprocessor_config.json; do "
             "ln -sf %s/tests/fixtures/clip/$f %s/$f; done && ln -sf %s/%s %s/tokenizer.json", model, cwd, model, cwd, tok, model);
    if (system(cmd) != 0) return 0;
    snprintf(path, sizeof path, "%s/clip_items.tsv", dir);
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    fprintf(f, "id\ttext\timage\n");
    for (int i = 0; i < 24; i++) fprintf(f, "i%d\titem %d, a %s thing\t%s/tests/data/images/odd/%s\n", i, i, i % 2 ? "red" : "blue", cwd, photos[i % 4]);
    return fclose(f) == 0;
}

static void train_all(void) {
    make_data();
    char clip_model[400], clip_items[400];
    int have_clip = make_clip_items(clip_model, sizeof clip_model);
    snprintf(clip_items, sizeof clip_items, "%s/clip_items.tsv", dir);
    char data[800], features[800];
    snprintf(data, sizeof data, "%s/train.tsv,%s/val.tsv,%s/test.tsv", dir, dir, dir);
    snprintf(features, sizeof features, "visual=%s/vis.npy,textual=%s/txt.npy", dir, dir);
    for (int i = 0; i < mrec_model_count(); i++) {
        const mrec_model_entry *e = mrec_model_at(i);
        mrec_train_spec s = mrec_train_defaults();
        s.data = data, s.format = "tsv", s.model = e, s.threads = 1, s.cache = "none";
        s.features = e->needs != MREC_NEEDS_NONE ? features : NULL;
        if (e == mrec_model_find("clip-e2e")) {
            if (!have_clip) {
                t_skip("clip-e2e through mrec_train: tests/data not found");
                continue;
            }
            s.clip = clip_model, s.clip_items = clip_items, s.clip_id_col = "id", s.clip_text_col = "text", s.clip_image_col = "image";
        }
        s.n_k = 2, s.k[0] = 5, s.k[1] = 10, s.n_metrics = 2, s.metrics[0] = MREC_METRIC_RECALL, s.metrics[1] = MREC_METRIC_NDCG;
        s.select_k = 10, s.per_user = 1, s.save_topk = 5;
        mrec_param_parse(MREC_HP_EPOCHS, "2", &s.params.v[MREC_HP_EPOCHS]);
        mrec_param_parse(MREC_HP_DIM, "8", &s.params.v[MREC_HP_DIM]);
        mrec_param_parse(MREC_HP_BATCH_SIZE, "32", &s.params.v[MREC_HP_BATCH_SIZE]);
        mrec_param_parse(MREC_HP_NEIGHBOURS, "10", &s.params.v[MREC_HP_NEIGHBOURS]); /* fewer than the 24 items */
        mrec_param_parse(MREC_HP_IMAGE_KNN_K, "10", &s.params.v[MREC_HP_IMAGE_KNN_K]);
        mrec_param_parse(MREC_HP_TEXT_KNN_K, "10", &s.params.v[MREC_HP_TEXT_KNN_K]);
        mrec_train_result r;
        mrec_status st = mrec_train(&s, &r);
        int trains = (e->flags & MREC_MODEL_TRAINS) != 0;
        if (t_status(st, MREC_OK, "%s trains through mrec_train", e->name)) {
            double recall = r.test.value[MREC_METRIC_RECALL][1];
            t_check(r.trains == trains && r.epochs_run == 2 * trains && r.best_epoch >= trains && r.n_history == 2 * trains,
                    "%s: %d epochs, best %d, %d evaluations kept", e->name, r.epochs_run, r.best_epoch, r.n_history);
            t_check(recall >= 0 && recall <= 1 && r.ids.n_users == 40 && r.ids.n_items == 24 && r.ids.user_names && !r.ids.user,
                    "%s: recall@10 %.3f, 40 users and 24 items named, the pairs released", e->name, recall);
            t_check(r.n_per_user == 40 && r.topk && r.topk_k == 10, "%s: per-user metrics of the 40 test users, top lists of 10",
                    e->name);
            double mean = 0;
            for (int u = 0; u < r.n_per_user; u++) mean += r.per_user[(size_t)u * 4 + 1];
            t_check(fabs(mean / 40 - recall) < 1e-12, "%s: the per-user recall@10 averages to the test row", e->name);
            char out[300], path[400];
            snprintf(out, sizeof out, "%s/run_%s", dir, e->name);
            char cmd[400];
            snprintf(cmd, sizeof cmd, "mkdir -p %s", out);
            if (system(cmd) != 0) fprintf(stderr, "could not make %s\n", out);
            t_status(mrec_train_write(out, &s, &r), MREC_OK, "%s: the run's files written", e->name);
            static const char *const files[] = {"results.tsv", "history.tsv", "timing.tsv", "users.tsv", "items.tsv", "test_per_user.tsv",
                                                "recommendations.tsv"};
            int all = 1;
            for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
                snprintf(path, sizeof path, "%s/%s", out, files[f]);
                all &= access(path, R_OK) == 0;
            }
            t_check(all, "%s: results, history, timing, ids, per-user metrics, recommendations", e->name);
        }
        mrec_train_result_free(&r);
    }
    /* failures say where they stopped */
    mrec_train_spec s = mrec_train_defaults();
    mrec_train_result r;
    s.data = data, s.format = "tsv", s.model = mrec_model_find("vbpr"), s.threads = 1;
    t_status(mrec_train(&s, &r), MREC_ERR_ARG, "vbpr without features");
    t_check(r.stage && !strcmp(r.stage, "model") && strstr(mrec_error_detail(), "needs item features"), "stopped at the model: %s",
            mrec_error_detail());
    mrec_train_result_free(&r);
    s.model = mrec_model_find("bprmf"), s.data = "no/such.tsv";
    t_check(mrec_train(&s, &r) != MREC_OK && r.stage && !strcmp(r.stage, "loading data"), "a missing file stops the loading");
    mrec_train_result_free(&r);
}

int main(void) {
    t_suite("registry");
    T_REQUIRE(mkdtemp(dir) != NULL);
    table();
    params_column();
    parser();
    train_all();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_finish();
}
