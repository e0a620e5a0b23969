/* pipeline.c: mrec_train and the files of one run (mrec_pipeline.h).
 *
 * The steps are those of MMRec's and Elliot's runs: load, filter, split,
 * read the modalities (dropping or filling items they lack), build the
 * model through the registry, train with early stopping, and evaluate on
 * validation and test at the best epoch; then each test user's metrics and
 * each user's top items, kept in memory for whoever writes them.
 */
#include "mrec_pipeline.h"
#include "mrec_parse.h"
#include "mrec_tools.h"

#include "../nn/mrec_io.h"
#include "../recsys/mrec_clip_e2e.h"
#include "mrec_finetune.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_MODALITIES 8

mrec_train_spec mrec_train_defaults(void) {
    mrec_train_spec s = {.format = "inter", .min_rating = -INFINITY, .split_seed = 999, .n_k = 4, .k = {5, 10, 20, 50},
                         .n_metrics = 4, .metrics = {MREC_METRIC_RECALL, MREC_METRIC_NDCG, MREC_METRIC_PRECISION, MREC_METRIC_MAP},
                         .select_metric = MREC_METRIC_RECALL, .select_k = 20, .device = MREC_WANT_CPU};
    return s;
}

static void say(const mrec_train_spec *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const mrec_train_spec *s, const char *fmt, ...) {
    if (!s->log) return;
    char line[4600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->log(s->log_ctx, line);
}

/* ---- the split ---- */

/* NAME:FIRST[:SECOND]: 0 when s is not strategy `name`, 1 when its numbers parse (FIRST a ratio in (0, 1), or
 * with leave a count; SECOND a ratio in [0, 1), or with leave 0, 1 or "valid"), -1 otherwise. */
static int split_numbers(const char *s, const char *name, double *a, double *b) {
    size_t n = strlen(name);
    if (strncmp(s, name, n) || s[n] != ':') return 0;
    int leave = !strcmp(name, "leave");
    const char *first = s + n + 1, *colon = strchr(first, ':');
    char buf[64];
    long whole;
    *b = 0;
    snprintf(buf, sizeof buf, "%.*s", colon ? (int)(colon - first) : (int)strlen(first), first);
    if (leave ? mrec_parse_int(buf, 1, 1000000, &whole) : mrec_parse_real(buf, 0, 1, MREC_OPEN_LO | MREC_OPEN_HI, a)) return -1;
    if (leave) *a = (double)whole;
    if (colon && leave && !strcmp(colon + 1, "valid")) *b = 1;
    else if (colon && (leave ? mrec_parse_real(colon + 1, 0, 1, 0, b) : mrec_parse_real(colon + 1, 0, 1, MREC_OPEN_HI, b))) return -1;
    return 1;
}

/* elliot:TEST[/VALID]: each part as mrec_elliot_part_parse reads it; valid->strategy is -1 without one. */
static mrec_status elliot_parts(const char *s, mrec_elliot_part *test, mrec_elliot_part *valid, int *has_valid) {
    char buf[256];
    if (snprintf(buf, sizeof buf, "%s", s + 7) >= (int)sizeof buf) return mrec_fail(MREC_ERR_ARG, "'%.40s...': too long", s);
    char *slash = strchr(buf, '/');
    if (slash) *slash = 0;
    *has_valid = slash != NULL;
    mrec_status st = mrec_elliot_part_parse(buf, test);
    if (!st && slash) st = mrec_elliot_part_parse(slash + 1, valid);
    return st;
}

mrec_status mrec_split_parse(const char *s, int *kind, double *a, double *b) {
    static const char *const names[] = {"mmrec", "random", "temporal", "leave", "splitmix"};
    *a = *b = 0;
    if (s && !strcmp(s, "mmrec")) return *kind = 0, MREC_OK;
    int r = 0;
    char why[400] = "";
    if (s && !strncmp(s, "elliot:", 7)) {
        mrec_elliot_part t, v;
        int has_valid;
        *kind = 5;
        if (!elliot_parts(s, &t, &v, &has_valid)) return MREC_OK;
        snprintf(why, sizeof why, ": %s", mrec_error_detail());
        r = -1;
    }
    for (int i = 1; i < 5 && s && !r; i++)
        if ((r = split_numbers(s, names[i], a, b))) *kind = i;
    if (r > 0) return MREC_OK;
    if (r < 0 && !why[0]) snprintf(why, sizeof why, ": %s", mrec_error_detail());
    return mrec_fail(MREC_ERR_ARG, "'%s' is not mmrec, random:T[:V], temporal:T[:V], leave:N[:valid], splitmix:T[:V] or elliot:TEST[/VALID]%s",
                     s ? s : "", why);
}

/* One (test fold, validation fold) of Elliot's save_on_disk: T/test.tsv and T/V/train.tsv, T/V/val.tsv
 * (T/train.tsv without validation) under dir, rows as pandas writes them (mrec_write_elliot_split). */
static mrec_status write_elliot_fold(const char *dir, const mrec_interactions *x, int t, int v, int has_valid) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%d", dir, t);
    if (v == 0 && mkdir(path, 0755) != 0) return mrec_fail(MREC_ERR_IO, "%s: cannot create (%s)", path, strerror(errno));
    snprintf(path, sizeof path, "%s/%d/test.tsv", dir, t);
    mrec_status st = v == 0 ? mrec_write_elliot_split(x, MREC_SPLIT_TEST, path) : MREC_OK;
    if (!st && has_valid) {
        snprintf(path, sizeof path, "%s/%d/%d", dir, t, v);
        if (mkdir(path, 0755) != 0) return mrec_fail(MREC_ERR_IO, "%s: cannot create (%s)", path, strerror(errno));
        snprintf(path, sizeof path, "%s/%d/%d/val.tsv", dir, t, v);
        st = mrec_write_elliot_split(x, MREC_SPLIT_VALID, path);
    }
    snprintf(path, sizeof path, has_valid ? "%s/%d/%d/train.tsv" : "%s/%d/train.tsv", dir, t, v);
    return st ? st : mrec_write_elliot_split(x, MREC_SPLIT_TRAIN, path);
}

/* --save-splits: train.tsv, val.tsv, test.tsv (user, item, rating). With elliot, Elliot's save_on_disk instead:
 * every fold of the splitting (write_elliot_fold), made again from x's rows, then x split back to the run's fold.
 * The folder appears with its files together; it is replaced without asking, as every grid point of an experiment
 * saves the same split again. */
static mrec_status resplit(const mrec_train_spec *s, mrec_interactions *x);
static mrec_status write_splits(const mrec_train_spec *spec, mrec_interactions *x) {
    static const char *const names[3] = {"train.tsv", "val.tsv", "test.tsv"};
    int has_valid = 0;
    for (int64_t i = 0; i < x->n && !has_valid; i++) has_valid = x->split[i] == MREC_SPLIT_VALID;
    mrec_out_dir od;
    mrec_status st = mrec_out_begin(&od, spec->save_splits, MREC_OUT_OVERWRITE);
    if (st) return st;
    if (spec->save_splits_elliot) {
        mrec_elliot_part test, valid;
        int n_test = 1, n_valid = 1, elliot_spelling = spec->split && !strncmp(spec->split, "elliot:", 7);
        if (elliot_spelling && !(st = elliot_parts(spec->split, &test, &valid, &has_valid)))
            n_test = mrec_elliot_part_folds(&test), n_valid = has_valid ? mrec_elliot_part_folds(&valid) : 1;
        mrec_train_spec one = *spec;
        for (int t = 0; t < n_test && !st; t++)
            for (int v = 0; v < n_valid && !st; v++) {
                one.split_fold[0] = t, one.split_fold[1] = v;
                if (n_test * n_valid > 1) st = resplit(&one, x);
                if (!st) st = write_elliot_fold(od.scratch, x, t, v, has_valid);
            }
        if (!st && n_test * n_valid > 1) st = resplit(spec, x); /* back to the run's own fold */
    }
    for (int s = 0; s < 3 && !st && !spec->save_splits_elliot; s++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", od.scratch, names[s]);
        mrec_atomic_file af;
        if ((st = mrec_atomic_begin(&af, path))) break;
        for (int64_t i = 0; i < x->n; i++)
            if (x->split[i] == s) fprintf(af.f, "%s\t%s\t%g\n", x->user_names[x->user[i]], x->item_names[x->item[i]], x->rating[i]);
        st = mrec_atomic_commit(&af);
    }
    if (!st) st = mrec_out_commit(&od);
    mrec_out_abort(&od);
    return st;
}

static mrec_status load_data(const mrec_train_spec *s, mrec_interactions *x) {
    char files[3][4096] = {{0}};
    int n_files = 0, commas = 0;
    for (const char *p = s->data; *p; p++) commas += *p == ',';
    for (const char *p = s->data; n_files < 3 && *p;) {
        size_t len = strcspn(p, ",");
        snprintf(files[n_files++], sizeof files[0], "%.*s", (int)len, p);
        p += len + (p[len] == ',');
    }
    if (commas && (strcmp(s->format, "tsv") || commas > 2))
        return mrec_fail(MREC_ERR_ARG, "data with commas is Elliot's fixed split, train,[valid,]test, in format tsv");
    mrec_load_options lo = mrec_load_defaults();
    lo.notice = s->notice, lo.notice_ctx = s->log_ctx;
    lo.resplit = s->split != NULL;
    lo.duplicates = s->duplicates;
    return n_files > 1                        ? mrec_load_tsv_splits_opt(x, files[0], n_files == 3 ? files[1] : NULL, files[n_files - 1], &lo)
           : !strcmp(s->format, "inter")    ? mrec_load_inter_opt(x, s->data, &lo)
           : !strcmp(s->format, "tsv")      ? mrec_load_tsv_opt(x, s->data, &lo)
           : !strcmp(s->format, "lightgcn") ? mrec_load_lightgcn_opt(x, s->data, &lo)
                                            : mrec_fail(MREC_ERR_ARG, "format '%s' is not inter, tsv or lightgcn", s->format);
}

static mrec_status resplit(const mrec_train_spec *s, mrec_interactions *x) {
    int kind;
    double a, b;
    mrec_status st = mrec_split_parse(s->split, &kind, &a, &b);
    if (st) return st;
    if (kind == 0) return mrec_split_mmrec_draw(x, s->split_seed);
    if (kind == 3) return mrec_split_users(x, MREC_SPLITTER_LEAVE_N, 0, b, (int)a, s->split_seed);
    if (kind == 4) return mrec_split_users(x, MREC_SPLITTER_RANDOM, a, b, 0, s->split_seed);
    /* Elliot's splitter: random:T[:V] and temporal:T[:V] are its two ratio splittings, elliot:... any of its parts */
    mrec_elliot_part test = {.strategy = kind == 1 ? MREC_ELLIOT_RANDOM : MREC_ELLIOT_TEMPORAL, .ratio = a}, valid = test;
    int has_valid = b > 0;
    valid.ratio = b;
    if (kind == 5 && (st = elliot_parts(s->split, &test, &valid, &has_valid))) return st;
    if (kind != 5 && (s->split_fold[0] || s->split_fold[1]))
        return mrec_fail(MREC_ERR_ARG, "%s makes one fold (fold %d/%d asked for)", s->split, s->split_fold[0], s->split_fold[1]);
    return mrec_split_elliot_fold(x, &test, has_valid ? &valid : NULL, s->split_seed, s->split_fold[0], s->split_fold[1]);
}

/* ---- the modalities ---- */

/* NAME=PATH,...: each modality in dense item order; with missing_drop, items any modality lacks leave the data first. */
/* CLIP-E2E's inputs: the CLIP folder's towers, every item's photo and text (finetune-clip's reader), in the
 * data's item order, texts cut to the longest one. */
typedef struct {
    mrec_clip clip;
    mrec_clip_items items;
    float *images;
    int32_t *ids, *mask;
    int loaded;
} clip_inputs;

static void clip_inputs_free(clip_inputs *c) {
    if (c->loaded) mrec_clip_free(&c->clip);
    free(c->images), free(c->ids), free(c->mask);
    memset(c, 0, sizeof *c);
}

static const char *const *sort_ids; /* qsort's comparison reads the ids through this */
static int by_id(const void *a, const void *b) { return strcmp(sort_ids[*(const int *)a], sort_ids[*(const int *)b]); }

static mrec_status load_clip_inputs(const mrec_train_spec *s, const mrec_interactions *x, clip_inputs *c) {
    memset(c, 0, sizeof *c);
    if (!s->clip_items || !s->clip_text_col || (!s->clip_images && !s->clip_image_col))
        return mrec_fail(MREC_ERR_ARG, "--clip %s needs --items TABLE, --text-column C and --images DIR|TABLE or --image-column C", s->clip);
    mrec_status st = mrec_clip_load(&c->clip, s->clip, MREC_CLIP_BOTH);
    if (st) return st;
    c->loaded = 1;
    mrec_clip_source src = {s->clip, s->clip_items, s->clip_id_col ? s->clip_id_col : "id", s->clip_text_col, s->clip_images,
                            s->clip_image_col, NULL, NULL, 1, "train"};
    mrec_table t = {0};
    mrec_clip_pairs p = {0};
    int *order = NULL;
    if ((st = mrec_clip_pairs_read(&p, &src, &c->clip, &t))) goto done;
    /* the data's items by id among the table's kept ones */
    order = malloc(sizeof *order * (size_t)p.n);
    if (!order) {
        st = mrec_fail(MREC_ERR_NOMEM, "%d items", p.n);
        goto done;
    }
    for (int k = 0; k < p.n; k++) order[k] = k;
    sort_ids = (const char *const *)p.ids;
    qsort(order, (size_t)p.n, sizeof *order, by_id);
    int L = 1, *at = malloc(sizeof *at * (size_t)x->n_items);
    if (!at) {
        st = mrec_fail(MREC_ERR_NOMEM, "%d items", x->n_items);
        goto done;
    }
    for (int i = 0; i < x->n_items && !st; i++) {
        int lo = 0, hi = p.n;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (strcmp(p.ids[order[mid]], x->item_names[i]) < 0) lo = mid + 1;
            else hi = mid;
        }
        if (lo == p.n || strcmp(p.ids[order[lo]], x->item_names[i]))
            st = mrec_fail(MREC_ERR_NOT_FOUND, "%s: item '%s' of %s has no text and usable photo there", s->clip_items, x->item_names[i], s->data);
        else at[i] = order[lo], L = p.len[order[lo]] > L ? p.len[order[lo]] : L;
    }
    size_t img = (size_t)p.C * p.S * p.S, n = (size_t)x->n_items;
    if (!st) {
        c->images = malloc(sizeof(float) * n * img), c->ids = malloc(sizeof(int32_t) * n * L), c->mask = malloc(sizeof(int32_t) * n * L);
        if (!c->images || !c->ids || !c->mask) st = mrec_fail(MREC_ERR_NOMEM, "%d items' photos and texts", x->n_items);
    }
    for (size_t i = 0; i < n && !st; i++) {
        memcpy(c->images + i * img, p.images + (size_t)at[i] * img, sizeof(float) * img);
        memcpy(c->ids + i * L, p.tok + (size_t)at[i] * p.L, sizeof(int32_t) * L);
        memcpy(c->mask + i * L, p.mask + (size_t)at[i] * p.L, sizeof(int32_t) * L);
    }
    free(at);
    c->items = (mrec_clip_items){&c->clip, x->n_items, L, c->images, c->ids, c->mask};
done:
    free(order);
    mrec_clip_pairs_free(&p);
    mrec_table_free(&t);
    if (st) clip_inputs_free(c);
    return st;
}

static mrec_status load_modalities(const mrec_train_spec *s, mrec_features *f, int *n, mrec_interactions *x) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", s->features);
    const char *names[MAX_MODALITIES], *paths[MAX_MODALITIES];
    *n = 0;
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok || !eq[1] || *n == MAX_MODALITIES)
            return mrec_fail(MREC_ERR_ARG, "--features wants NAME=PATH[,NAME=PATH...] (up to %d), got '%s'", MAX_MODALITIES, tok);
        *eq = 0, names[*n] = tok, paths[*n] = eq + 1, ++*n;
    }
    mrec_status st = MREC_OK;
    memset(f, 0, sizeof *f * (size_t)*n); /* a failed load frees every modality, read or not */
    for (int pass = 0; pass < 2 && !st; pass++) {
        for (int m = 0; m < *n && !st; m++) st = mrec_features_load(&f[m], names[m], paths[m], x);
        int lacking = 0;
        for (int m = 0; m < *n && !st; m++) lacking |= f[m].n_missing > 0;
        if (st || !lacking || pass == 1 || !s->missing_drop) break;
        uint8_t *keep = malloc((size_t)x->n_items + 1);
        if (!keep) return mrec_fail(MREC_ERR_NOMEM, "dropping items");
        for (int i = 0; i < x->n_items; i++) {
            keep[i] = 1;
            for (int m = 0; m < *n; m++) keep[i] &= f[m].present[i];
        }
        int before = x->n_items;
        for (int m = 0; m < *n; m++) mrec_features_free(&f[m]);
        st = mrec_drop_items(x, keep);
        free(keep);
        if (!st) say(s, "features: dropped %d of %d items without features, and their interactions", before - x->n_items, before);
    }
    for (int m = 0; m < *n && !st; m++)
        say(s, "features: %s: %d-d, %d of %d items%s", f[m].name, f[m].dim, f[m].n_items - f[m].n_missing, f[m].n_items,
            f[m].n_missing ? " (the others get the mean)" : "");
    if (st)
        for (int m = 0; m < *n; m++) mrec_features_free(&f[m]);
    return st;
}

/* NAME[:noise]: the modality replaced by its mean (or noise of its mean and spread); its index in *which. */
static mrec_status knock_out(const mrec_train_spec *s, mrec_features *feat, int n_feat, uint64_t seed, int *which) {
    char name[64];
    int noise = 0;
    *which = -1;
    snprintf(name, sizeof name, "%s", s->knockout);
    char *colon = strchr(name, ':');
    if (colon) noise = !strcmp(colon + 1, "noise"), *colon = 0;
    for (int m = 0; m < n_feat; m++)
        if (!strcmp(feat[m].name, name)) *which = m;
    mrec_rng krng = {seed ^ 0x6b6e6f636b6f7574ull};
    if (*which < 0 || (colon && !noise)) return mrec_fail(MREC_ERR_ARG, "--knockout '%s': no such modality (or not NAME[:noise])", s->knockout);
    mrec_status st = mrec_features_knockout(&feat[*which], noise, &krng);
    if (!st) say(s, "features: %s knocked out (%s)", name, noise ? "Gaussian noise of its mean and std" : "its mean");
    return st;
}

/* The kNN graph cache: the folder given, else $MREC_CACHE, else ~/.cache/mrec; made here, and left out (with a
 * notice) when it cannot be. */
static const char *cache_folder(const mrec_train_spec *s, char *buf, size_t cap) {
    const char *cache = s->cache ? s->cache : getenv("MREC_CACHE");
    if (!cache && getenv("HOME")) {
        snprintf(buf, cap, "%s/.cache", getenv("HOME"));
        mkdir(buf, 0755);
        snprintf(buf, cap, "%s/.cache/mrec", getenv("HOME"));
        cache = buf;
    }
    if (cache && !strcmp(cache, "none")) return NULL;
    if (cache && mkdir(cache, 0755) != 0 && errno != EEXIST) {
        if (s->notice) {
            char line[4400];
            snprintf(line, sizeof line, "%s: cannot create (%s); the item graph is not cached", cache, strerror(errno));
            s->notice(s->log_ctx, line);
        }
        return NULL;
    }
    return cache;
}

/* ---- training ---- */

typedef struct {
    const mrec_train_spec *spec;
    mrec_train_result *r;
    int cap;
} fit_log;

/* Each line of the training loop goes on to the log; each evaluation's is kept in the history. */
static void on_fit_line(void *ctx, const char *line) {
    fit_log *l = ctx;
    if (l->spec->log) l->spec->log(l->spec->log_ctx, line);
    mrec_history_point h;
    char split[16];
    if (sscanf(line, "epoch %d loss %lf %15s %*s %lf", &h.epoch, &h.loss, split, &h.value) != 4) return;
    snprintf(h.split, sizeof h.split, "%.7s", split);
    if (l->r->n_history == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        mrec_history_point *grown = realloc(l->r->history, sizeof *grown * (size_t)cap);
        if (!grown) return; /* the curve loses a point; the run goes on */
        l->r->history = grown, l->cap = cap;
    }
    l->r->history[l->r->n_history++] = h;
}

/* Each test user's metrics from the top lists kept at the best epoch, with the gains of the evaluation (their
 * means are the test row). */
static mrec_status per_user_metrics(mrec_train_result *r, const mrec_train_spec *s, const mrec_user_items *test,
                                    const mrec_user_items *train, const mrec_user_items *valid) {
    int n_items = test->n_cols, cols = s->n_metrics * s->n_k, beyond_asked = 0;
    for (int i = 0; i < s->n_metrics; i++) beyond_asked |= s->metrics[i] >= MREC_METRIC_FIRST_BEYOND;
    double *gain = calloc((size_t)n_items + 1, sizeof *gain), *sorted = malloc(sizeof *sorted * (size_t)(n_items + 1));
    int32_t *rel = malloc(sizeof *rel * ((size_t)n_items + 1));
    mrec_beyond *beyond = NULL;
    r->per_user_user = malloc(sizeof *r->per_user_user * (size_t)(test->n_rows + 1));
    r->per_user = malloc(sizeof *r->per_user * ((size_t)test->n_rows * cols + 1));
    mrec_status st = beyond_asked ? mrec_beyond_open(&beyond, train, n_items, s->k, s->n_k) : MREC_OK;
    if (st || !gain || !sorted || !rel || !r->per_user_user || !r->per_user) {
        free(gain), free(sorted), free(rel), mrec_beyond_close(beyond);
        return st ? st : mrec_fail(MREC_ERR_NOMEM, "per-user metrics of %d users", test->n_rows);
    }
    for (int u = 0; u < test->n_rows; u++) {
        int n_rel = 0;
        for (int64_t p = test->row_ptr[u]; p < test->row_ptr[u + 1]; p++)
            if (test->val[p] >= s->threshold) sorted[n_rel++] = gain[test->col[p]] = pow(2.0, (double)test->val[p] - s->threshold + 1.0) - 1.0;
        if (n_rel) {
            for (int a = 1; a < n_rel; a++) /* largest first; lists are short */
                for (int b = a; b > 0 && sorted[b] > sorted[b - 1]; b--) {
                    double t = sorted[b];
                    sorted[b] = sorted[b - 1], sorted[b - 1] = t;
                }
            double m[MREC_METRIC_COUNT][MREC_EVAL_MAX_K] = {{0}};
            const int32_t *top = r->topk + (size_t)u * r->topk_k;
            mrec_user_metrics(m, top, gain, sorted, n_rel, s->k, s->n_k);
            if (beyond) { /* the list ends where the masked items begin; the metrics of all lists at once have no per-user value */
                int64_t avail = n_items - (train->row_ptr[u + 1] - train->row_ptr[u]) -
                                (s->mask_valid && u < valid->n_rows ? valid->row_ptr[u + 1] - valid->row_ptr[u] : 0);
                int len = avail < s->k[s->n_k - 1] ? (int)(avail > 0 ? avail : 0) : s->k[s->n_k - 1], n = 0;
                for (int64_t p = test->row_ptr[u]; p < test->row_ptr[u + 1]; p++)
                    if (test->val[p] >= s->threshold) rel[n++] = test->col[p];
                mrec_beyond_user(beyond, m, top, len, rel, n);
                for (int q = MREC_METRIC_FIRST_BEYOND; q < MREC_METRIC_COUNT; q++)
                    for (int j = 0; !mrec_metric_per_user((mrec_metric)q) && j < s->n_k; j++) m[q][j] = NAN;
            }
            double *row = r->per_user + (size_t)r->n_per_user * cols;
            for (int i = 0; i < s->n_metrics; i++)
                for (int j = 0; j < s->n_k; j++) row[i * s->n_k + j] = m[s->metrics[i]][j];
            r->per_user_user[r->n_per_user++] = u;
        }
        for (int64_t p = test->row_ptr[u]; p < test->row_ptr[u + 1]; p++) gain[test->col[p]] = 0;
    }
    free(gain), free(sorted), free(rel), mrec_beyond_close(beyond);
    return MREC_OK;
}

static void say_results(const mrec_train_spec *s, const mrec_train_result *r) {
    for (int split = r->selected_on_test ? 1 : 0; split < 2; split++) {
        const mrec_eval_result *e = split ? &r->test : &r->valid;
        char line[4096];
        size_t at = (size_t)snprintf(line, sizeof line, "%s (best epoch %d):", split ? "test" : "valid", r->best_epoch);
        for (int i = 0; i < s->n_metrics; i++)
            for (int j = 0; j < s->n_k && at < sizeof line; j++)
                at += (size_t)snprintf(line + at, sizeof line - at, " %s@%d=%.4f", mrec_metric_name(s->metrics[i]), s->k[j],
                                       e->value[s->metrics[i]][j]);
        say(s, "%s", line);
    }
    if (r->selected_on_test && r->trains) say(s, "note: no validation split; the best epoch was chosen on test, as LightGCN's code does");
    say(s, "time: %.1f s training (%d epochs), %.1f s evaluating", r->train_seconds, r->epochs_run, r->eval_seconds);
}

/* The run's own context: the CPU, or GPU s->gpu for a model with a GPU path. Made before any data is read, so a
 * model or a GPU that cannot serve --device cuda stops the run at once; under auto the CPU takes over, and the
 * notice says why. */
static mrec_status run_context(const mrec_train_spec *s, const mrec_model_entry *e, mrec_context **out) {
    char line[320];
    int want_gpu = s->device != MREC_WANT_CPU;
    if (want_gpu && !mrec_model_runs_on_gpu(e->name)) {
        if (s->device == MREC_WANT_CUDA)
            return mrec_fail(MREC_ERR_UNSUPPORTED, "%s has no GPU path (--device cpu or auto runs it on the CPU)", e->name);
        snprintf(line, sizeof line, "%s has no GPU path; running on the CPU", e->name);
        if (s->notice) s->notice(s->log_ctx, line);
        want_gpu = 0;
    }
    /* the CPU's precision: asked for, on the CPU alone (the context refuses one the CPU lacks, saying why); bf16
     * where the CPU has it otherwise, the GPU's choice (or auto's fallback) to come */
    int cpu_bf16 = s->precision == MREC_PREC_BF16 && mrec_cpu_has_bf16();
    mrec_context_options co = mrec_context_defaults();
    co.device = MREC_WANT_CPU, co.n_threads = s->threads;
    co.precision = !want_gpu && s->device == MREC_WANT_CPU ? s->precision : cpu_bf16 ? MREC_PREC_BF16 : MREC_PREC_FP32;
    mrec_status st = mrec_context_create(out, &co);
    if (st) return st;
    mrec_context *ctx = *out;
    if (want_gpu) {
        /* the GPU joins the CPU context (its pool stays for the host's share of the work) */
        if (!(st = mrec_cuda_create(&ctx->cuda, s->gpu))) {
            ctx->device = MREC_DEVICE_CUDA, ctx->precision = s->precision;
            say(s, "device: cuda (GPU %d)", s->gpu);
        } else if (s->device == MREC_WANT_CUDA) {
            mrec_context_destroy(ctx);
            *out = NULL;
            return st;
        } else {
            snprintf(line, sizeof line, "no usable GPU (%s); running on the CPU", mrec_error_detail());
            mrec_clear_error();
            if (s->notice) s->notice(s->log_ctx, line);
        }
    }
    if (ctx->precision != s->precision) {
        snprintf(line, sizeof line, "precision %s: %s; computing in fp32", mrec_precision_name(s->precision),
                 s->precision == MREC_PREC_TF32 ? "TF32 is the GPU's" : "this CPU has no AVX-512 BF16");
        if (s->notice) s->notice(s->log_ctx, line);
    } else if (ctx->precision != MREC_PREC_FP32) {
        say(s, "precision: %s (the GEMMs' operands rounded, fp32 sums; the sparse products and the rest in fp32)",
            mrec_precision_name(ctx->precision));
    }
    return MREC_OK;
}

/* Moves the model fit kept into r->saved, with each user's training items. */
static mrec_status keep_saved(mrec_train_result *r, mrec_fit_result *fr, const mrec_model *m, const mrec_user_items *train) {
    mrec_saved_model *sv = &r->saved;
    snprintf(sv->model, sizeof sv->model, "%s", r->model_name);
    snprintf(sv->params, sizeof sv->params, "%s", r->params);
    sv->best_epoch = fr->best_epoch, sv->n_users = train->n_rows, sv->n_items = train->n_cols, sv->dim = fr->embed_dim;
    sv->users = fr->users, sv->items = fr->items, fr->users = fr->items = NULL;
    sv->knn_k = fr->knn_k, sv->nbr = fr->nbr, sv->sim = fr->sim, fr->nbr = NULL, fr->sim = NULL;
    sv->n_params = fr->n_params;
    for (int p = 0; p < fr->n_params; p++) sv->param[p] = fr->param[p], sv->size[p] = m->size[p], fr->param[p] = NULL;
    fr->n_params = 0;
    int64_t nnz = train->row_ptr[train->n_rows];
    sv->seen_ptr = malloc(sizeof *sv->seen_ptr * ((size_t)train->n_rows + 1));
    sv->seen = malloc(sizeof *sv->seen * (size_t)(nnz ? nnz : 1));
    if (!sv->seen_ptr || !sv->seen) return mrec_fail(MREC_ERR_NOMEM, "keeping %lld training pairs", (long long)nnz);
    memcpy(sv->seen_ptr, train->row_ptr, sizeof *sv->seen_ptr * ((size_t)train->n_rows + 1));
    memcpy(sv->seen, train->col, sizeof *sv->seen * (size_t)nnz);
    return MREC_OK;
}

/* The parameters of a saved model into m, which must be the same model
 * over the same users and items: its name, ids (in order) and parameter
 * shapes are checked, and a difference named. */
static mrec_status restore_params(const char *dir, const mrec_train_result *r, mrec_model *m, mrec_context *ctx) {
    mrec_saved_model sv;
    mrec_status st = mrec_saved_read(&sv, dir);
    if (st) return st;
    const mrec_interactions *x = &r->ids;
    if (strcmp(sv.model, r->model_name))
        st = mrec_fail(MREC_ERR_ARG, "%s holds a %s, not a %s", dir, sv.model, r->model_name);
    else if (sv.n_users != x->n_users || sv.n_items != x->n_items)
        st = mrec_fail(MREC_ERR_SHAPE, "%s: %d users and %d items; the data has %d and %d", dir, sv.n_users, sv.n_items, x->n_users,
                       x->n_items);
    for (int u = 0; !st && u < sv.n_users; u++)
        if (strcmp(sv.user_ids[u], x->user_names[u]))
            st = mrec_fail(MREC_ERR_ARG, "%s: user %d is \"%s\" there and \"%s\" in the data", dir, u, sv.user_ids[u], x->user_names[u]);
    for (int i = 0; !st && i < sv.n_items; i++)
        if (strcmp(sv.item_ids[i], x->item_names[i]))
            st = mrec_fail(MREC_ERR_ARG, "%s: item %d is \"%s\" there and \"%s\" in the data", dir, i, sv.item_ids[i], x->item_names[i]);
    if (!st && sv.n_params != m->n_params)
        st = mrec_fail(MREC_ERR_SHAPE, "%s: %d parameter tensors; this %s has %d", dir, sv.n_params, r->model_name, m->n_params);
    for (int p = 0; !st && p < m->n_params; p++)
        if (sv.size[p] != m->size[p])
            st = mrec_fail(MREC_ERR_SHAPE, "%s: param.%d has %lld values; this %s (%s) has %lld", dir, p, (long long)sv.size[p],
                           r->model_name, r->params, (long long)m->size[p]);
    for (int p = 0; !st && p < m->n_params; p++)
        st = mrec_copy_to_device(ctx, m->param[p], sv.param[p], sizeof(float) * (size_t)m->size[p]);
    mrec_saved_free(&sv);
    return st;
}

mrec_status mrec_train_save(const char *dir, mrec_train_result *r) {
    if (!r->saved.users && !r->saved.nbr) return mrec_fail(MREC_ERR_ARG, "%s: the run kept no model to save", dir);
    r->saved.user_ids = r->ids.user_names, r->saved.item_ids = r->ids.item_names;
    mrec_status st = mrec_saved_write(dir, &r->saved);
    r->saved.user_ids = r->saved.item_ids = NULL; /* they belong to r->ids */
    return st;
}

mrec_status mrec_train(const mrec_train_spec *s, mrec_train_result *r) {
    memset(r, 0, sizeof *r);
    const mrec_model_entry *e = s->model;
    mrec_interactions x = {0};
    mrec_features feat[MAX_MODALITIES];
    int n_feat = 0, knocked = -1;
    float *item_feat = NULL;
    clip_inputs clip = {0};
    mrec_user_items train = {0}, valid = {0}, test = {0};
    mrec_context *own = NULL, *ctx = s->ctx;
    mrec_built_model built;
    memset(&built, 0, sizeof built);
    mrec_status st = MREC_OK;
#define STEP(name, call) (r->stage = (name), st = (call))
    if (!e) return r->stage = "model", mrec_fail(MREC_ERR_ARG, "no model given");
    if (STEP("model", mrec_params_resolve(&r->values, e, &s->params))) return st;
    if (e->needs != MREC_NEEDS_NONE && !s->features)
        return STEP("model", mrec_fail(MREC_ERR_ARG, "%s needs item features: --features visual=PATH,textual=PATH", e->name));
    if (!ctx) {
        const char *stage = s->device != MREC_WANT_CPU ? "device" : s->precision != MREC_PREC_FP32 ? "precision" : "threads";
        if (STEP(stage, run_context(s, e, &own))) return st;
        ctx = own;
    }
    if (!STEP("loading data", load_data(s, &x)) && (s->kcore > 0 || s->min_rating > -INFINITY))
        STEP("filtering", mrec_filter(&x, s->min_rating, s->kcore, s->kcore, !s->kcore_once));
    if (!st && s->prefilter) {
        mrec_prefilter steps[16];
        int n_steps = 0;
        if (!STEP("filtering", mrec_prefilter_parse(s->prefilter, steps, 16, &n_steps))) STEP("filtering", mrec_prefilter_apply(&x, steps, n_steps));
    }
    if (!st && s->split) STEP("splitting", resplit(s, &x));
    if (!st && !x.has_split)
        STEP("splitting", mrec_fail(MREC_ERR_FORMAT, "%s has no split (an x_label column, or train.txt/test.txt); give one with --split", s->data));
    if (!st && s->save_splits) STEP("--save-splits", write_splits(s, &x));
    if (!st && s->features) STEP("features", load_modalities(s, feat, &n_feat, &x));
    /* the CLIP items only for the model that reads them (an Elliot experiment gives them to every model) */
    int reads_clip = s->clip && e == mrec_model_find("clip-e2e");
    if (!st && reads_clip && s->restore)
        STEP("restoring", mrec_fail(MREC_ERR_UNSUPPORTED, "clip-e2e cannot be restored: a saved model keeps its vectors, not its trained towers"));
    if (!st && reads_clip) STEP("CLIP items", load_clip_inputs(s, &x, &clip));
    if (!st && reads_clip) say(s, "CLIP items: %s: %d items, photos and texts of %d tokens at most", s->clip_items, x.n_items, clip.items.T);
    if (!st && s->knockout) STEP("knockout", knock_out(s, feat, n_feat, mrec_hp_u64(&r->values, MREC_HP_SEED), &knocked));
    /* the modalities side by side, for models that take one feature vector per item */
    int feat_dim = 0;
    for (int m = 0; m < n_feat; m++) feat_dim += feat[m].dim;
    size_t feat_bytes = sizeof(float) * ((size_t)x.n_items * feat_dim + 1);
    if (!st && n_feat && !(item_feat = mrec_alloc_large(feat_bytes)))
        STEP("features", mrec_fail(MREC_ERR_NOMEM, "%d items x %d features", x.n_items, feat_dim));
    for (int i = 0, at = 0; !st && item_feat && i < x.n_items; i++, at = 0)
        for (int m = 0; m < n_feat; at += feat[m].dim, m++)
            memcpy(item_feat + (size_t)i * feat_dim + at, feat[m].x + (size_t)i * feat[m].dim, sizeof(float) * (size_t)feat[m].dim);
    if (!st && !STEP("loading data", mrec_user_items_build(&train, &x, MREC_SPLIT_TRAIN)) &&
        !STEP("loading data", mrec_user_items_build(&valid, &x, MREC_SPLIT_VALID)))
        STEP("loading data", mrec_user_items_build(&test, &x, MREC_SPLIT_TEST));
    if (!st)
        say(s, "data: %s: %d users, %d items; %lld train, %lld valid, %lld test pairs", s->data, x.n_users, x.n_items,
            (long long)train.row_ptr[train.n_rows], (long long)valid.row_ptr[valid.n_rows], (long long)test.row_ptr[test.n_rows]);
    char cache_buf[4096];
    mrec_model_inputs in = {.n_users = x.n_users, .n_items = x.n_items, .train = &train, .feat = feat, .n_feat = n_feat,
                            .item_feat = item_feat, .feat_dim = feat_dim, .log = s->log, .log_ctx = s->log_ctx};
    if (reads_clip) in.clip_items = &clip.items;
    if (!st && (e->flags & MREC_MODEL_GRAPH_CACHE)) in.cache_dir = cache_folder(s, cache_buf, sizeof cache_buf);
    if (!st) STEP("model", mrec_model_build(&built, e, &in, &r->values, ctx));
    if (!st && s->keep_model && !built.model.embeddings && !built.model.neighbours)
        STEP("model", mrec_fail(MREC_ERR_UNSUPPORTED, "%s cannot be saved: it keeps neither vectors nor neighbour lists to score with",
                                e->name));
    if (!st) {
        r->trains = built.model.loss_grad != NULL;
        snprintf(r->model_name, sizeof r->model_name, "%s", built.model.name ? built.model.name : e->name);
        mrec_model_describe(r->params, sizeof r->params, e, &r->values, feat, n_feat, knocked);
        say(s, "model: %s %s", r->model_name, r->params);
    }
    if (!st && s->restore) {
        r->ids = x; /* the names, for the check (given back below) */
        STEP("restoring", restore_params(s->restore, r, &built.model, ctx));
        memset(&r->ids, 0, sizeof r->ids);
        if (!st) say(s, "restored: the parameters of %s%s", s->restore, s->restore_only ? ", evaluated without training" : "");
    }
    if (!st) {
        const mrec_param_values *p = &r->values;
        mrec_fit_options opt = mrec_fit_defaults();
        opt.epochs = mrec_hp_int(p, MREC_HP_EPOCHS), opt.lr = mrec_hp_real(p, MREC_HP_LR);
        opt.batch_size = mrec_hp_int(p, MREC_HP_BATCH_SIZE), opt.seed = mrec_hp_u64(p, MREC_HP_SEED);
        opt.patience = mrec_hp_int(p, MREC_HP_PATIENCE), opt.eval_every = mrec_hp_int(p, MREC_HP_EVAL_EVERY);
        opt.lr_decay = mrec_hp_item(p, MREC_HP_LR_DECAY, 0), opt.lr_decay_every = (int)mrec_hp_item(p, MREC_HP_LR_DECAY, 1);
        opt.sample_users = mrec_hp_int(p, MREC_HP_SAMPLER) == 1;
        opt.select_metric = s->select_metric, opt.select_k = s->select_k, opt.mask_valid_in_test = s->mask_valid;
        /* per-user metrics need each list to the largest cut-off */
        opt.save_topk = s->save_topk;
        if (s->per_user && opt.save_topk < s->k[s->n_k - 1]) opt.save_topk = s->k[s->n_k - 1];
        fit_log fl = {s, r, 0};
        opt.log = on_fit_line, opt.log_ctx = &fl;
        opt.keep_model = s->keep_model;
        opt.checkpoint = s->checkpoint, opt.resume = s->resume;
        /* Elliot's beyond-accuracy metrics need every list on the host; without them the lists stay where they are made */
        opt.accuracy_only = 1;
        for (int i = 0; i < s->n_metrics; i++) opt.accuracy_only &= s->metrics[i] < MREC_METRIC_FIRST_BEYOND;
        if (s->restore && s->restore_only) opt.epochs = 0;
        mrec_fit_result fr;
        STEP("training", mrec_fit(&fr, &built.model, &train, &valid, &test, s->k, s->n_k, s->threshold, &opt, ctx));
        r->best_epoch = fr.best_epoch, r->epochs_run = fr.epochs_run, r->selected_on_test = fr.selected_on_test;
        r->valid = fr.valid, r->test = fr.test, r->train_seconds = fr.train_seconds, r->eval_seconds = fr.eval_seconds;
        r->topk = fr.topk, r->topk_k = opt.save_topk, fr.topk = NULL;
        if (!st && s->keep_model) STEP("keeping the model", keep_saved(r, &fr, &built.model, &train));
        mrec_fit_result_free(&fr);
    }
    if (!st && s->per_user && !r->topk)
        STEP("per-user metrics", mrec_fail(MREC_ERR_ARG, "no evaluation happened, so there are no per-user metrics"));
    if (!st && s->per_user) STEP("per-user metrics", per_user_metrics(r, s, &test, &train, &valid));
    if (!st) say_results(s, r);
#undef STEP
    mrec_built_model_free(&built);
    clip_inputs_free(&clip);
    mrec_context_destroy(own);
    mrec_user_items_free(&train), mrec_user_items_free(&valid), mrec_user_items_free(&test);
    for (int m = 0; m < n_feat; m++) mrec_features_free(&feat[m]);
    mrec_free_large(item_feat, feat_bytes);
    /* the names stay for the files that name users and items; the pairs go */
    free(x.user), free(x.item), free(x.rating), free(x.timestamp), free(x.split);
    x.user = x.item = NULL, x.rating = NULL, x.timestamp = NULL, x.split = NULL, x.n = 0;
    r->ids = x;
    return st;
}

void mrec_train_result_free(mrec_train_result *r) {
    mrec_interactions_free(&r->ids);
    free(r->topk), free(r->per_user_user), free(r->per_user), free(r->history);
    mrec_saved_free(&r->saved);
    memset(r, 0, sizeof *r);
}

int mrec_train_fail(const char *cmd, const mrec_train_result *r, mrec_status st) {
    fprintf(stderr, "mrec %s: %s: %s: %s\n", cmd, r->stage ? r->stage : "training", mrec_strerror(st), mrec_error_detail());
    return st == MREC_ERR_NOMEM ? 3 : 2;
}

/* ---- the run's folder ---- */

static mrec_status write_results(const char *path, const mrec_train_spec *s, const mrec_train_result *r) {
    mrec_atomic_file af;
    mrec_status st = mrec_atomic_begin(&af, path);
    if (st) return st;
    fprintf(af.f, "model\tparams\tsplit\tbest_epoch");
    for (int i = 0; i < s->n_metrics; i++)
        for (int j = 0; j < s->n_k; j++) fprintf(af.f, "\t%s@%d", mrec_metric_name(s->metrics[i]), s->k[j]);
    fprintf(af.f, "\n");
    for (int split = r->selected_on_test ? 1 : 0; split < 2; split++) {
        const mrec_eval_result *e = split ? &r->test : &r->valid;
        fprintf(af.f, "%s\t%s\t%s\t%d", r->model_name, r->params, split ? "test" : "valid", r->best_epoch);
        for (int i = 0; i < s->n_metrics; i++)
            for (int j = 0; j < s->n_k; j++) fprintf(af.f, "\t%.6f", e->value[s->metrics[i]][j]);
        fprintf(af.f, "\n");
    }
    return mrec_atomic_commit(&af);
}

/* history.tsv: each evaluation, for the report's curves */
static mrec_status write_history(const char *path, const mrec_train_spec *s, const mrec_train_result *r) {
    mrec_atomic_file af;
    mrec_status st = mrec_atomic_begin(&af, path);
    if (st) return st;
    fprintf(af.f, "epoch\tloss\tsplit\t%s@%d\n", mrec_metric_name(s->select_metric), s->select_k);
    for (int i = 0; i < r->n_history; i++)
        fprintf(af.f, "%d\t%.6f\t%s\t%.6f\n", r->history[i].epoch, r->history[i].loss, r->history[i].split, r->history[i].value);
    return mrec_atomic_commit(&af);
}

static mrec_status write_per_user(const char *path, const mrec_train_spec *s, const mrec_train_result *r) {
    mrec_atomic_file af;
    mrec_status st = mrec_atomic_begin(&af, path);
    if (st) return st;
    int cols = s->n_metrics * s->n_k;
    fprintf(af.f, "user");
    for (int i = 0; i < s->n_metrics; i++)
        for (int j = 0; j < s->n_k; j++) fprintf(af.f, "\t%s@%d", mrec_metric_name(s->metrics[i]), s->k[j]);
    fputc('\n', af.f);
    for (int u = 0; u < r->n_per_user; u++) {
        fprintf(af.f, "%s", r->ids.user_names[r->per_user_user[u]]);
        for (int c = 0; c < cols; c++) fprintf(af.f, "\t%.6f", r->per_user[(size_t)u * cols + c]);
        fputc('\n', af.f);
    }
    return mrec_atomic_commit(&af);
}

static mrec_status write_recommendations(const char *path, const mrec_train_spec *s, const mrec_train_result *r) {
    mrec_atomic_file af;
    mrec_status st = mrec_atomic_begin(&af, path);
    if (st) return st;
    for (int u = 0; u < r->ids.n_users; u++) {
        fprintf(af.f, "%s", r->ids.user_names[u]);
        for (int j = 0; j < s->save_topk; j++) fprintf(af.f, "\t%s", r->ids.item_names[r->topk[(size_t)u * r->topk_k + j]]);
        fputc('\n', af.f);
    }
    return mrec_atomic_commit(&af);
}

mrec_status mrec_train_write(const char *dir, const mrec_train_spec *s, const mrec_train_result *r) {
    char path[4400];
    mrec_status st = MREC_OK;
#define FILE_IN(name) (snprintf(path, sizeof path, "%s/%s", dir, name), path)
    if (!st) st = write_history(FILE_IN("history.tsv"), s, r);
    if (!st && s->per_user) st = write_per_user(FILE_IN("test_per_user.tsv"), s, r);
    if (!st) st = write_results(FILE_IN("results.tsv"), s, r);
    if (!st) { /* for the summaries of mrec train CONFIG */
        mrec_atomic_file af;
        if (!(st = mrec_atomic_begin(&af, FILE_IN("timing.tsv")))) {
            fprintf(af.f, "train_seconds\teval_seconds\tepochs\n%.3f\t%.3f\t%d\n", r->train_seconds, r->eval_seconds, r->epochs_run);
            st = mrec_atomic_commit(&af);
        }
    }
    if (!st && s->save_topk > 0 && r->topk) st = write_recommendations(FILE_IN("recommendations.tsv"), s, r);
    if (!st) st = mrec_write_id_map(&r->ids, 0, FILE_IN("users.tsv"));
    if (!st) st = mrec_write_id_map(&r->ids, 1, FILE_IN("items.tsv"));
#undef FILE_IN
    return st;
}
