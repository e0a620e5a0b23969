/* cmd_recommend.c: `mrec recommend` and `mrec similar`: answers from a model
 * saved by `mrec train --save`, through the public interface (include/mrec.h)
 * that programs linking libmrec use, so the command and the library cannot
 * disagree. */
#include "../include/mrec.h"
#include "../nn/mrec_io.h"
#include "mrec_options.h"
#include "mrec_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { R_ONE, R_LIST, R_ALL, R_K, R_FORMAT, R_OUT, N_OPTIONS };

typedef struct {
    const char *name, *what, *whats; /* "recommend", "user", "users" */
    mrec_command cmd;
} query_command;

static const mrec_option RECOMMEND_OPTIONS[N_OPTIONS] = {
    [R_ONE] = {"--user", MREC_OPT_TEXT, "ID", "one user", .section = "who"},
    [R_LIST] = {"--users", MREC_OPT_PATH, "FILE", "users, one id per line"},
    [R_ALL] = {"--all", MREC_OPT_SWITCH, NULL, "every user of the model, in the order of its users.tsv"},
    [R_K] = {"--k", MREC_OPT_INT, "K", "items per user", "20", 1, 100000, .section = "output"},
    [R_FORMAT] = {"--format", MREC_OPT_ENUM, "tsv|json", "tsv: user, item, score, rank per line; json: one array", "tsv",
                  .choices = "tsv|json"},
    [R_OUT] = {"--out", MREC_OPT_TEXT, "FILE", "written whole (a temporary name, then renamed); default standard output"},
};

static const mrec_option SIMILAR_OPTIONS[N_OPTIONS] = {
    [R_ONE] = {"--item", MREC_OPT_TEXT, "ID", "one item", .section = "which"},
    [R_LIST] = {"--items", MREC_OPT_PATH, "FILE", "items, one id per line"},
    [R_ALL] = {"--all", MREC_OPT_SWITCH, NULL, "every item of the model, in the order of its items.tsv"},
    [R_K] = {"--k", MREC_OPT_INT, "K", "items per item", "20", 1, 100000, .section = "output"},
    [R_FORMAT] = {"--format", MREC_OPT_ENUM, "tsv|json", "tsv: item, similar item, cosine, rank per line; json: one array", "tsv",
                  .choices = "tsv|json"},
    [R_OUT] = {"--out", MREC_OPT_TEXT, "FILE", "written whole (a temporary name, then renamed); default standard output"},
};

static const query_command RECOMMEND = {
    "recommend", "user", "users",
    {"recommend", "usage: mrec recommend MODEL_DIR (--user ID | --users FILE | --all) [--k K] [--format tsv|json] [--out FILE]\n\n"
                  "Each user's best K items from a model saved by mrec train --save, the items the user had in\n"
                  "training left out: the lists of the training run's recommendations.tsv, with their scores.",
     "An unknown user is an error naming it (exit 2), and nothing is written.\n", RECOMMEND_OPTIONS, N_OPTIONS, 1}};

static const query_command SIMILAR = {
    "similar", "item", "items",
    {"similar", "usage: mrec similar MODEL_DIR (--item ID | --items FILE | --all) [--k K] [--format tsv|json] [--out FILE]\n\n"
                "Each item's K nearest items by cosine of the item vectors of a model saved by mrec train --save\n"
                "(the item itself left out).",
     "An unknown item is an error naming it (exit 2), and nothing is written.\n", SIMILAR_OPTIONS, N_OPTIONS, 1}};

/* The ids of a --users / --items file: one per line, blank lines skipped. */
static mrec_status read_list(const char *path, char **text, char ***ids, int *n) {
    FILE *f;
    mrec_status st = mrec_open_regular(&f, path);
    if (st) return st;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
        len += got;
        if (len + 1 == cap) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger) free(buf);
            buf = bigger;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) return mrec_fail(MREC_ERR_NOMEM, "%s", path);
    if (err) return free(buf), mrec_fail(MREC_ERR_IO, "%s: read error", path);
    buf[len] = '\0';
    int lines = 1;
    for (size_t k = 0; k < len; k++) lines += buf[k] == '\n';
    char **list = malloc(sizeof *list * (size_t)lines);
    if (!list) return free(buf), mrec_fail(MREC_ERR_NOMEM, "%s", path);
    int m = 0;
    for (char *s = buf, *save, *line; (line = strtok_r(s, "\n", &save)); s = NULL) {
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[--l] = '\0';
        if (l) list[m++] = line;
    }
    if (!m) return free(buf), free(list), mrec_fail(MREC_ERR_FORMAT, "%s: no ids", path);
    *text = buf, *ids = list, *n = m;
    return MREC_OK;
}

static int run_query(const query_command *q, int argc, char **argv) {
    mrec_opt_value v[N_OPTIONS];
    const char *pos[1];
    int n_pos = 0;
    int rc = mrec_options_parse(&q->cmd, argc, argv, v, NULL, pos, &n_pos);
    if (rc == MREC_OPTS_HELP) return 0;
    if (rc) return rc;
    if (n_pos != 1 || v[R_ONE].given + v[R_LIST].given + v[R_ALL].given != 1) {
        fprintf(stderr, "mrec %s: a model folder and one of %s, %s or --all are needed (mrec %s --help)\n", q->name,
                q->cmd.opt[R_ONE].flag, q->cmd.opt[R_LIST].flag, q->name);
        return 1;
    }
    int is_item = q == &SIMILAR, k = (int)(v[R_K].given ? v[R_K].i : 20), json = v[R_FORMAT].given && v[R_FORMAT].i == 1;
    mrec_recommender *r;
    mrec_status st = mrec_recommender_open(&r, pos[0]);
    if (st) {
        fprintf(stderr, "mrec %s: %s: %s\n", q->name, mrec_strerror(st), mrec_error_detail());
        return st == MREC_ERR_NOMEM ? 3 : 2;
    }
    /* who is asked about */
    char *list_text = NULL, **ids = NULL;
    const char *one = v[R_ONE].text;
    int n = 0;
    if (v[R_ONE].given) ids = (char **)&one, n = 1;
    else if (v[R_LIST].given) st = read_list(v[R_LIST].text, &list_text, &ids, &n);
    else n = is_item ? mrec_recommender_n_items(r) : mrec_recommender_n_users(r);
    int *items = malloc(sizeof *items * (size_t)k);
    float *scores = malloc(sizeof *scores * (size_t)k);
    if (!st && (!items || !scores)) st = mrec_fail(MREC_ERR_NOMEM, "%d items", k);
    /* every answer first: an unknown id stops the command before anything is written */
    int *got = st ? NULL : malloc(sizeof *got * (size_t)n);
    int32_t *all = st ? NULL : malloc(sizeof *all * (size_t)n * k);
    float *all_scores = st ? NULL : malloc(sizeof *all_scores * (size_t)n * k);
    if (!st && (!got || !all || !all_scores)) st = mrec_fail(MREC_ERR_NOMEM, "%d answers of %d", n, k);
    /* --all: every user (item) by index, named as the model names it */
    const char **names = NULL;
    if (!st && !ids) {
        if (!(names = malloc(sizeof *names * (size_t)n))) st = mrec_fail(MREC_ERR_NOMEM, "%d ids", n);
        for (int i = 0; !st && i < n; i++) names[i] = is_item ? mrec_recommender_item_id(r, i) : mrec_recommender_user_id(r, i);
        ids = (char **)names;
    }
    for (int i = 0; !st && i < n; i++) {
        st = is_item ? mrec_recommender_similar(r, ids[i], k, items, scores, &got[i])
                     : mrec_recommender_recommend(r, ids[i], k, items, scores, &got[i]);
        if (st) break;
        memcpy(all + (size_t)i * k, items, sizeof *items * (size_t)got[i]);
        memcpy(all_scores + (size_t)i * k, scores, sizeof *scores * (size_t)got[i]);
    }
    /* then the output, whole or not at all */
    mrec_atomic_file af = {0};
    FILE *out = stdout;
    if (!st && v[R_OUT].given && !(st = mrec_atomic_begin(&af, v[R_OUT].text))) out = af.f;
    if (!st) {
        if (json) fputs("[", out);
        for (int i = 0; i < n; i++) {
            if (json) {
                fputs(i ? ",\n {" : "\n {", out);
                fprintf(out, "\"%s\": ", q->what), mrec_json_write_string(out, ids[i]), fputs(", \"items\": [", out);
            }
            for (int j = 0; j < got[i]; j++) {
                const char *id = mrec_recommender_item_id(r, all[(size_t)i * k + j]);
                float s = all_scores[(size_t)i * k + j];
                if (json) {
                    fputs(j ? ", {\"item\": " : "{\"item\": ", out), mrec_json_write_string(out, id);
                    fprintf(out, ", \"%s\": %.9g}", is_item ? "similarity" : "score", s);
                } else {
                    fprintf(out, "%s\t%s\t%.9g\t%d\n", ids[i], id, s, j + 1);
                }
            }
            if (json) fputs("]}", out);
        }
        if (json) fputs("\n]\n", out);
        if (af.f) st = mrec_atomic_commit(&af);
        else if (fflush(stdout) != 0) st = mrec_fail(MREC_ERR_IO, "standard output: write error");
    }
    if (st) {
        if (af.f) mrec_atomic_abort(&af);
        fprintf(stderr, "mrec %s: %s: %s\n", q->name, mrec_strerror(st), mrec_error_detail());
        rc = st == MREC_ERR_NOMEM ? 3 : 2;
    }
    free(names);
    if (list_text) free(list_text), free(ids);
    free(items), free(scores), free(got), free(all), free(all_scores);
    mrec_recommender_close(r);
    return rc;
}

int mrec_cmd_recommend(int argc, char **argv) { return run_query(&RECOMMEND, argc, argv); }
int mrec_cmd_similar(int argc, char **argv) { return run_query(&SIMILAR, argc, argv); }
