/* test_saved.c: trained models saved, loaded and asked, on the Amazon Baby
 * data that ships in data/baby (the users numbered below 1500, so that a
 * model trains in a second).
 *
 * - In memory against on disk: mrec_train keeps the model, mrec_train_save
 *   writes it, mrec_saved_read reads it back: every vector, training item,
 *   parameter and id the same bits, for MostPop, BPRMF, LightGCN and NGCF.
 * - The command line: `mrec train --save` then `mrec recommend --all` gives
 *   the run's own recommendations.tsv exactly (the same lists, in order), and
 *   `mrec recommend --user` the same list as --all for that user: for those
 *   four, ItemKNN (its neighbour lists), SimGCL and SGL, and with ../shared/data's TikTok features VBPR,
 *   FREEDOM, LATTICE, BM3, NGCF-M and LightGCN-M.
 * - The library: recommend, score and similar agree with each other (a
 *   list's scores are the user's scores of those items; a similar list is
 *   in falling cosine and leaves the item out); a clone on another thread
 *   gives the same answers.
 * - A folder changed after saving (a flipped byte in a tensor, a cut file,
 *   an edited id file, a missing file, another safetensors file) is refused
 *   naming the file, and so are unknown ids, with nothing written.
 * Runs the binary in $MREC_BIN.
 */
#include "harness.h"

#include "../include/mrec.h"
#include "../recsys/mrec_registry.h"
#include "../tools/mrec_pipeline.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *bin;
static char dir[] = "/tmp/mrec-saved-XXXXXX";
static char data[3 * 4200];

static int run(const char *args, char *out, size_t cap) {
    char cmd[16600];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", bin, args);
    return t_run(cmd, out, cap);
}

/* data/baby's three files cut to the users numbered below 1500. */
static int make_data(void) {
    const char *parts[3] = {"train", "val", "test"};
    size_t at = 0;
    for (int p = 0; p < 3; p++) {
        char src[256], dst[4200], line[256];
        snprintf(src, sizeof src, "data/baby/%s.tsv", parts[p]);
        snprintf(dst, sizeof dst, "%s/%s.tsv", dir, parts[p]);
        FILE *in = fopen(src, "r"), *out = fopen(dst, "w");
        if (!in || !out) {
            if (in) fclose(in);
            if (out) fclose(out);
            return 0;
        }
        while (fgets(line, sizeof line, in))
            if (atoi(line) < 1500) fputs(line, out);
        fclose(in), fclose(out);
        at += (size_t)snprintf(data + at, sizeof data - at, "%s%s", p ? "," : "", dst);
    }
    return 1;
}

static mrec_train_spec spec_for(const char *model) {
    mrec_train_spec s = mrec_train_defaults();
    s.data = data, s.format = "tsv", s.model = mrec_model_find(model), s.threads = 2, s.keep_model = 1, s.save_topk = 10;
    s.params.v[MREC_HP_EPOCHS] = (mrec_param_value){.x = {2}, .given = 1};
    return s;
}

/* The model in memory and the same model read back from its folder. */
static void in_memory_vs_disk(const char *model) {
    mrec_train_spec s = spec_for(model);
    mrec_train_result r;
    char path[4200];
    snprintf(path, sizeof path, "%s/mem-%s", dir, model);
    if (!t_status(mrec_train(&s, &r), MREC_OK, "%s: train", model)) {
        mrec_train_result_free(&r);
        return;
    }
    mkdir(path, 0700);
    mrec_saved_model back;
    if (t_status(mrec_train_save(path, &r), MREC_OK, "%s: save", model) &&
        t_status(mrec_saved_read(&back, path), MREC_OK, "%s: read back", model)) {
        const mrec_saved_model *a = &r.saved;
        int same = a->n_users == back.n_users && a->n_items == back.n_items && a->dim == back.dim && a->n_params == back.n_params &&
                   !strcmp(a->model, back.model) && !strcmp(a->params, back.params) && a->best_epoch == back.best_epoch;
        same = same && !memcmp(a->users, back.users, sizeof(float) * (size_t)a->n_users * a->dim) &&
               !memcmp(a->items, back.items, sizeof(float) * (size_t)a->n_items * a->dim) &&
               !memcmp(a->seen_ptr, back.seen_ptr, sizeof(int64_t) * ((size_t)a->n_users + 1)) &&
               !memcmp(a->seen, back.seen, sizeof(int32_t) * (size_t)a->seen_ptr[a->n_users]);
        for (int p = 0; same && p < a->n_params; p++)
            same = a->size[p] == back.size[p] && !memcmp(a->param[p], back.param[p], sizeof(float) * (size_t)a->size[p]);
        for (int u = 0; same && u < a->n_users; u++) same = !strcmp(r.ids.user_names[u], back.user_ids[u]);
        for (int i = 0; same && i < a->n_items; i++) same = !strcmp(r.ids.item_names[i], back.item_ids[i]);
        t_check(same, "%s: read back, every vector, training item, parameter and id is the same", model);
        /* the lists from the loaded model are the run's own */
        mrec_context *ctx;
        mrec_context_options co = mrec_context_defaults();
        co.device = MREC_WANT_CPU, co.n_threads = 2;
        int32_t items[10];
        float scores[10], *rows = malloc(sizeof *rows * MREC_SAVED_ROWS * (size_t)back.n_items);
        int n, agree = 1;
        if (rows && !mrec_context_create(&ctx, &co)) {
            for (int u = 0; agree && u < back.n_users; u++)
                agree = !mrec_saved_recommend(&back, ctx, u, 10, items, scores, &n, rows) && n == 10 &&
                        !memcmp(items, r.topk + (size_t)u * r.topk_k, sizeof items);
            t_check(agree, "%s: each user's list from the loaded model is the run's", model);
            mrec_context_destroy(ctx);
        }
        free(rows);
        mrec_saved_free(&back);
    }
    mrec_train_result_free(&r);
}

/* train_args: what mrec train gets besides the model and the folders */
static void command_line(const char *model, const char *train_args, char *out, size_t cap) {
    char args[16384], path[4400];
    snprintf(args, sizeof args, "train %s --model %s --threads 2 --save-topk 20 --out %s/run-%s --save %s/m-%s", train_args, model,
             dir, model, dir, model);
    if (!t_check(run(args, out, cap) == 0, "%s: mrec train --save: %s", model, out)) return;
    snprintf(args, sizeof args, "recommend %s/m-%s --all --out %s/recs-%s.tsv", dir, model, dir, model);
    t_check(run(args, out, cap) == 0, "%s: mrec recommend --all: %s", model, out);
    snprintf(path, sizeof path, "%s/recs-%s.tsv", dir, model);
    char *got = t_slurp(path), *folded = got ? t_recs_rows(got) : NULL;
    snprintf(path, sizeof path, "%s/run-%s/recommendations.tsv", dir, model);
    char *want = t_slurp(path);
    t_check(folded && want && !strcmp(folded, want), "%s: mrec recommend --all equals the run's recommendations.tsv", model);
    /* one user alone: the same lines as in --all */
    char user[512] = "";
    sscanf(got ? got : "", "%511[^\t]", user);
    snprintf(args, sizeof args, "recommend %s/m-%s --user %s --k 20", dir, model, user);
    char one[8192];
    int rc = run(args, one, sizeof one);
    t_check(rc == 0 && got && one[0] && !strncmp(got, one, strlen(one)), "%s: --user %s gives --all's lines for that user", model, user);
    free(got), free(folded), free(want);
}

typedef struct {
    mrec_recommender *r;
    int items[20];
    float scores[20];
    int n;
    mrec_status st;
} thread_job;

static void *ask(void *arg) {
    thread_job *j = arg;
    j->st = mrec_recommender_recommend(j->r, "11", 20, j->items, j->scores, &j->n);
    return NULL;
}

static void library(const char *model) {
    char path[4200];
    snprintf(path, sizeof path, "%s/m-%s", dir, model);
    mrec_recommender *r, *c;
    if (!t_status(mrec_recommender_open(&r, path), MREC_OK, "%s: open", model)) return;
    int items[20], n;
    float scores[20], again[20];
    if (t_status(mrec_recommender_recommend(r, "11", 20, items, scores, &n), MREC_OK, "%s: recommend", model)) {
        const char *ids[20];
        int sorted = n == 20;
        for (int j = 0; j < n; j++) ids[j] = mrec_recommender_item_id(r, items[j]), sorted &= !j || scores[j] <= scores[j - 1];
        t_check(sorted, "%s: 20 items, best first", model);
        if (t_status(mrec_recommender_score(r, "11", ids, n, again), MREC_OK, "%s: score", model))
            t_check(!memcmp(scores, again, sizeof(float) * (size_t)n), "%s: a list's scores are the user's scores of its items", model);
        /* a clone on another thread */
        thread_job j = {0};
        pthread_t t;
        if (t_status(mrec_recommender_clone(&c, r), MREC_OK, "%s: clone", model)) {
            j.r = c;
            if (t_check(pthread_create(&t, NULL, ask, &j) == 0, "a thread")) pthread_join(t, NULL);
            t_check(j.st == MREC_OK && j.n == n && !memcmp(j.items, items, sizeof(int) * (size_t)n),
                    "%s: a clone on another thread gives the same list", model);
            mrec_recommender_close(c); /* the model stays with r */
        }
    }
    const char *first = mrec_recommender_item_id(r, 0);
    if (t_status(mrec_recommender_similar(r, first, 20, items, scores, &n), MREC_OK, "%s: similar", model)) {
        int ok = n == 20;
        for (int j = 0; j < n; j++) ok &= items[j] != 0 && scores[j] <= 1.0001f && (!j || scores[j] <= scores[j - 1]);
        t_check(ok, "%s: similar: 20 other items in falling cosine", model);
    }
    t_check(mrec_recommender_recommend(r, "no-such-user", 5, items, scores, &n) == MREC_ERR_NOT_FOUND &&
                strstr(mrec_error_detail(), "no-such-user"),
            "%s: an unknown user is named: %s", model, mrec_error_detail());
    const char *bad[] = {first, "no-such-item"};
    scores[0] = 42;
    t_check(mrec_recommender_score(r, "11", bad, 2, scores) == MREC_ERR_NOT_FOUND && scores[0] == 42,
            "%s: an unknown item in score is named and nothing written", model);
    t_status(mrec_recommender_recommend(r, "11", 0, items, scores, &n), MREC_ERR_ARG, "%s: k = 0", model);
    mrec_recommender_close(r);
}

/* A copy of the saved folder, changed by `how` (a shell command run in it). */
static void tampered(const char *what, const char *how, mrec_status want, const char *named) {
    char cmd[16384], copy[4200];
    snprintf(copy, sizeof copy, "%s/tampered", dir);
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -r %s/m-lightgcn %s && cd %s && %s", copy, dir, copy, copy, how);
    if (!t_check(system(cmd) == 0, "%s: set-up", what)) return;
    mrec_recommender *r = (mrec_recommender *)1;
    mrec_status st = mrec_recommender_open(&r, copy);
    t_check(st == want && r == NULL && strstr(mrec_error_detail(), named), "%s: refused (%s, want %s): %s", what, mrec_strerror(st),
            mrec_strerror(want), mrec_error_detail());
}

/* A saved BPRMF restored and only evaluated gives the run's own test
 * metrics and lists, to the bit; restored into another model or shape, it
 * is refused naming the difference. */
static void restore(void) {
    mrec_train_spec s = spec_for("bprmf");
    mrec_train_result r, back;
    char path[4200];
    snprintf(path, sizeof path, "%s/restore-src", dir);
    mkdir(path, 0700);
    if (!t_status(mrec_train(&s, &r), MREC_OK, "restore: train") || !t_status(mrec_train_save(path, &r), MREC_OK, "restore: save")) {
        mrec_train_result_free(&r);
        return;
    }
    mrec_train_spec t = spec_for("bprmf");
    t.keep_model = 0, t.restore = path, t.restore_only = 1;
    if (t_status(mrec_train(&t, &back), MREC_OK, "restore: evaluate the restored model")) {
        t_check(!memcmp(back.test.value, r.test.value, sizeof r.test.value) && back.test.n_users == r.test.n_users && back.best_epoch == 0,
                "restore: the restored model's test metrics are the run's, bit for bit");
        t_check(back.topk && !memcmp(back.topk, r.topk, sizeof(int32_t) * (size_t)r.ids.n_users * r.topk_k), "restore: and its lists");
    }
    mrec_train_result_free(&back);
    t = spec_for("lightgcn"), t.keep_model = 0, t.restore = path;
    t_check(mrec_train(&t, &back) == MREC_ERR_ARG && strstr(mrec_error_detail(), "holds a BPRMF, not a LightGCN"),
            "restore into another model: %s", mrec_error_detail());
    mrec_train_result_free(&back);
    t = spec_for("bprmf"), t.keep_model = 0, t.restore = path;
    t.params.v[MREC_HP_DIM] = (mrec_param_value){.x = {32}, .given = 1};
    t_check(mrec_train(&t, &back) == MREC_ERR_SHAPE && strstr(mrec_error_detail(), "param.0"), "restore into another size: %s",
            mrec_error_detail());
    mrec_train_result_free(&back);
    t = spec_for("bprmf"), t.keep_model = 0, t.restore = path, t.restore_only = 0;
    t.params.v[MREC_HP_EPOCHS] = (mrec_param_value){.x = {1}, .given = 1};
    t_status(mrec_train(&t, &back), MREC_OK, "restore, then one more epoch");
    mrec_train_result_free(&back);
    mrec_train_result_free(&r);
}

/* Elliot's save_weights writes weights/<point>/; a second run with restore
 * evaluates them and reports the same test table. */
static void elliot(char *out, size_t cap) {
    char path[4300];
    for (int pass = 0; pass < 2; pass++) {
        snprintf(path, sizeof path, "%s/elliot%d.yml", dir, pass);
        FILE *f = fopen(path, "w");
        if (!f) return;
        fprintf(f, "experiment:\n  dataset: baby\n  data_config:\n    strategy: fixed\n    train_path: %s/train.tsv\n"
                   "    validation_path: %s/val.tsv\n    test_path: %s/test.tsv\n  top_k: 10\n  evaluation:\n"
                   "    cutoffs: [10]\n    simple_metrics: [Recall, nDCG]\n  models:\n    BPRMF:\n      meta:\n"
                   "        save_weights: %s\n        restore: %s\n      lr: 0.001\n      epochs: 2\n      factors: 16\n"
                   "      batch_size: 1024\n      l_w: 1e-4\n      seed: 7\n",
                dir, dir, dir, pass ? "False" : "True", pass ? "True" : "False");
        fclose(f);
        char args[9000];
        snprintf(args, sizeof args, "train %s --out %s/elliot %s --threads 2", path, dir, pass ? "--overwrite" : "");
        if (!t_check(run(args, out, cap) == 0, "Elliot run %d: %s", pass, out)) return;
        char cmd[9000];
        snprintf(cmd, sizeof cmd, "cat %s/elliot/performance/rec_cutoff_10_relthreshold_0*.tsv > %s/table%d.tsv", dir, dir, pass);
        if (system(cmd) != 0) t_check(0, "Elliot run %d: no performance table", pass);
        if (!pass) {
            snprintf(cmd, sizeof cmd, "ls %s/elliot/weights/*/model.safetensors > /dev/null 2>&1", dir);
            t_check(system(cmd) == 0, "Elliot save_weights: weights/<point>/model.safetensors");
        }
    }
    char a[4300], b[4300];
    snprintf(a, sizeof a, "%s/table0.tsv", dir), snprintf(b, sizeof b, "%s/table1.tsv", dir);
    char *ta = t_slurp(a), *tb = t_slurp(b);
    t_check(ta && tb && *ta && !strcmp(ta, tb), "Elliot restore: the same test table as the run that saved the weights");
    free(ta), free(tb);
}

int main(void) {
    t_suite("saved");
    bin = getenv("MREC_BIN") ? getenv("MREC_BIN") : "bin/mrec";
    T_REQUIRE(mkdtemp(dir) != NULL);
    if (!make_data()) {
        t_skip("saved models: data/baby not found");
        return t_finish();
    }
    const char *models[] = {"mostpop", "bprmf", "lightgcn", "ngcf"};
    for (int m = 0; m < 4; m++) in_memory_vs_disk(models[m]);
    static char out[1 << 16];
    char train_args[16384];
    snprintf(train_args, sizeof train_args, "--data %s --format tsv --epochs 2", data);
    for (int m = 0; m < 4; m++) command_line(models[m], train_args, out, sizeof out);
    command_line("itemknn", train_args, out, sizeof out); /* neighbour lists, not vectors */
    command_line("simgcl", train_args, out, sizeof out);
    command_line("sgl", train_args, out, sizeof out);
    /* the multimodal models, on TikTok's image and audio features */
    const char *tk = "../shared/data/tiktok-mmssl";
    if (access("../shared/data/tiktok-mmssl/original_diffmm/image_feat.npy", R_OK) == 0) {
        snprintf(train_args, sizeof train_args, "--data %s/tiktok_split.tsv --epochs 1 --cache none "
                 "--features visual=%s/original_diffmm/image_feat.npy,acoustic=%s/original_diffmm/audio_feat.npy", tk, tk, tk);
        const char *mm[] = {"vbpr", "freedom", "lattice", "bm3", "ngcfm", "lightgcnm"};
        for (int m = 0; m < 6; m++) command_line(mm[m], train_args, out, sizeof out);
    } else {
        t_skip("saved multimodal models: ../shared/data/tiktok-mmssl not found");
    }
    library("lightgcn");
    library("mostpop");
    restore();
    elliot(out, sizeof out);

    /* what a saved folder must not be */
    tampered("a flipped byte in the item vectors", "printf '\\x01' | dd of=model.safetensors bs=1 seek=$(( $(stat -c %s model.safetensors) - 100 )) conv=notrunc status=none",
             MREC_ERR_FORMAT, "checksum");
    tampered("model.safetensors cut short", "truncate -s 5000 model.safetensors", MREC_ERR_FORMAT, "model.safetensors");
    tampered("an id changed in items.tsv", "sed -i '1s/\\t.*/\\tx/' items.tsv", MREC_ERR_FORMAT, "items.tsv");
    tampered("users.tsv missing", "rm users.tsv", MREC_ERR_IO, "users.tsv");
    char cwd[1024], other[1200];
    if (getcwd(cwd, sizeof cwd)) {
        snprintf(other, sizeof other, "cp %s/tests/fixtures/tiny_bert/model.safetensors .", cwd);
        tampered("another safetensors file", other, MREC_ERR_FORMAT, "not a saved mrec recommender");
    }

    /* the command line's refusals: nothing written */
    char args[16384], path[4200];
    snprintf(path, sizeof path, "%s/never.tsv", dir);
    snprintf(args, sizeof args, "recommend %s/m-bprmf --user no-such-user --out %s", dir, path);
    t_check(run(args, out, sizeof out) == 2 && strstr(out, "no-such-user") && access(path, F_OK) != 0,
            "recommend: an unknown user, exit 2, named, no file: %s", out);
    snprintf(args, sizeof args, "%s/users.txt", dir);
    FILE *f = fopen(args, "w");
    if (f) fputs("7\nno-such-user\n", f), fclose(f);
    snprintf(args, sizeof args, "recommend %s/m-bprmf --users %s/users.txt --out %s", dir, dir, path);
    t_check(run(args, out, sizeof out) == 2 && strstr(out, "no-such-user") && access(path, F_OK) != 0,
            "recommend --users with one unknown: exit 2, no file: %s", out);
    snprintf(args, sizeof args, "recommend %s/m-bprmf --user 7 --all", dir);
    t_check(run(args, out, sizeof out) == 1, "recommend: --user and --all together: exit 1");
    snprintf(args, sizeof args, "recommend %s/m-bprmf --user 7 --k 0", dir);
    t_check(run(args, out, sizeof out) == 1 && strstr(out, "--k"), "recommend: --k 0 is named: %s", out);
    snprintf(args, sizeof args, "similar %s/m-bprmf --item 2502 --k 3 --format json", dir);
    t_check(run(args, out, sizeof out) == 0 && out[0] == '[' && strstr(out, "\"item\": \"2502\"") && strstr(out, "similarity"),
            "similar --format json: %s", out);
    snprintf(args, sizeof args, "similar %s/m-itemknn --item 2502 --k 5", dir);
    t_check(run(args, out, sizeof out) == 0 && !strncmp(out, "2502\t", 5), "similar from ItemKNN: its own neighbours: %s", out);
    snprintf(args, sizeof args, "train --data %s --format tsv --model bprmf --out %s/same --save %s/same", data, dir, dir);
    t_check(run(args, out, sizeof out) == 1, "train: --save and --out the same folder: exit 1");

    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_finish();
}
