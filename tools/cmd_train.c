/* cmd_train.c: `mrec train`: load interactions, train one model, report.
 *
 *   mrec train --data PATH --format inter|tsv|lightgcn --model mostpop|itemknn|bprmf|lightgcn|ngcf|vbpr|freedom|lattice|bm3|ngcfm
 *              [--features NAME=PATH,... --missing mean|drop --knockout NAME[:noise]]
 *              [--epochs N --lr X --reg X --dim N --layers N --batch-size N --seed N --patience N]
 *              [--metrics recall,ndcg,... --k 10,20,50 --select recall@20 --threshold X --mask-valid]
 *              [--split mmrec|random:T[:V]|temporal:T[:V]|leave:N[:valid]] [--min-rating X --kcore K]
 *              [--save-topk N] [--threads N] --out DIR
 * Writes DIR/results.tsv (one row per evaluated split, Elliot-style: model,
 * hyper-parameters, best epoch, metric@k columns) and DIR/users.tsv,
 * DIR/items.tsv (dense id -> original id).
 */
#include "../nn/mrec_io.h"
#include "../recsys/mrec_recsys.h"
#include "mrec_parse.h"
#include "mrec_tools.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* What loading changed in the data (repeated rows dropped, users without
 * training pairs): one line each on standard error. */
static void print_notice(void *ctx, const char *line) {
    (void)ctx;
    fprintf(stderr, "mrec train: %s\n", line);
}

static int usage(FILE *f) {
    fprintf(f,
            "usage: mrec train --data PATH --format inter|tsv|lightgcn\n"
            "                  --model mostpop|itemknn|bprmf|lightgcn|ngcf|vbpr|freedom|lattice|bm3|ngcfm\n"
            "                  --out DIR\n"
            "                  [--epochs 1000] [--lr 0.001] [--reg R] [--dim 64] [--layers 3] [--batch-size 2048]\n"
            "                  [--seed 999] [--patience 20] [--eval-every 1] [--metrics recall,ndcg,precision,map] [--k 5,10,20,50]\n"
            "                  [--select recall@20] [--threshold 0] [--mask-valid] [--threads N]\n"
            "                  [--split mmrec|random:T[:V]|temporal:T[:V]|leave:N[:valid]] [--seed-split S]\n"
            "                  [--min-rating X] [--kcore K] [--kcore-once] [--neighbours 50 (itemknn)]\n"
            "                  [--node-dropout 0.1] [--mess-dropout 0.1] (ngcf) [--authors-loss] (lightgcn)\n"
            "                  [--save-topk N] [--features NAME=PATH,...] [--missing mean|drop] [--knockout NAME[:noise]]\n"
            "                  [--knn-k 10] [--edge-dropout 0.8] (freedom) [--cache DIR|none] [--lambda 0.9] (lattice)\n"
            "                  [--lr-decay F:EVERY] [--cl-weight 2] [--target-dropout 0.3] (bm3) [--sampler pairs|users]\n"
            "                  [--per-user] [--save-splits DIR] [--duplicates drop|error] [--overwrite]\n"
            "       mrec train --data train.tsv,[valid.tsv,]test.tsv --format tsv ...   (Elliot's fixed splits)\n"
            "       mrec train CONFIG.yml [--out DIR]   (an Elliot experiment config: mrec train CONFIG.yml --help)\n"
            "\n"
            "Trains with BPR and Adam (MMRec's protocol: early stopping on the validation metric,\n"
            "test reported at the best validation epoch; full ranking with training items masked).\n"
            "--eval-every N evaluates every N epochs and after the last (Elliot's validation_rate); patience counts evaluations.\n"
            "Defaults are MMRec's: dim 64, lr 0.001, batch 2048, patience 20; reg 1e-5 (bprmf),\n"
            "1e-4 (lightgcn), 1e-5 (ngcf, its paper's decay; the paper trains with lr 1e-4, batch 1024);\n"
            "3 layers. --split makes train/valid/test from a file without one (or\n"
            "replaces its split); --kcore filters users and items with fewer than K interactions,\n"
            "iteratively unless --kcore-once. --save-topk N writes DIR/recommendations.tsv: each user's\n"
            "N best items (original ids) at the best epoch, training items excluded. --authors-loss\n"
            "trains LightGCN with its authors' loss (squared-norm L2), as behind the Gowalla numbers.\n"
            "A (user, item) pair that appears more than once is kept once (its earliest split, then timestamp),\n"
            "the others counted and reported (--duplicates error refuses the file instead); NaN or infinite\n"
            "ratings, malformed numbers and empty train or test sets are errors naming the file and line.\n"
            "DIR is built beside itself and appears whole when training is done; an existing DIR is replaced\n"
            "only with --overwrite (it stays as it was until then); a second run into DIR at once is refused.\n"
            "\n"
            "Multimodal models (vbpr, freedom, lattice, bm3, ngcfm) read item features: --features NAME=PATH,...\n"
            "(visual=image_feat.npy,textual=text_feat.npy; a .npy matrix is joined by id when NAME_ids.txt or\n"
            "item_ids.txt sits beside it, else row r is item id r as in MMRec and an item past the last row is an\n"
            "error; a folder of <id>.npy is Ducho's\n"
            "layout). Where a model takes one vector per item, modalities are concatenated in the\n"
            "order given (MMRec's VBPR: textual, then visual). Items without features get the modality's mean\n"
            "(--missing mean, MMRec) or are dropped with their interactions (--missing drop); either way\n"
            "they are counted. --knockout NAME replaces a modality by its mean (or, with :noise, Gaussian\n"
            "noise of its per-dimension mean and std) to measure what it brings. VBPR's reg defaults to 1e-3.\n"
            "FREEDOM (MMRec's defaults): 2 layers, reg 1e-3 on the modality losses, a kNN item graph of k 10\n"
            "mixing visual 0.1 with the other modalities sharing 0.9 (one modality: 1), edge dropout 0.8.\n"
            "LATTICE (MMRec's defaults): LightGCN backbone of 2 layers over D^-1 (A + I), one item-graph layer, k 10,\n"
            "lambda 0.9, reg 1e-4, learning rate decayed 0.96 every 50 epochs (--lr-decay 0.96:50).\n"
            "BM3 (MMRec's first grid point): 1 layer, reg 0.1, cl weight 2, target dropout 0.3; it samples no negatives.\n"
            "NGCF-M (the Ducho-meets-Elliot fork's defaults): 3 layers, l_w (--reg) 0.01, lr 0.0005, message dropout\n"
            "0.5, node dropout 0 (--node-dropout), modalities concatenated, batches of distinct users (--sampler\n"
            "users, Elliot's sampling; MMRec's shuffled pairs are --sampler pairs, the default elsewhere).\n"
            "Every run writes DIR/history.tsv (epoch, loss, the selection metric). --per-user writes\n"
            "DIR/test_per_user.tsv, each test user's metrics at the best epoch (for significance tests);\n"
            "--save-splits DIR writes the split used as DIR/train.tsv, val.tsv, test.tsv (user, item, rating).\n"
            "kNN item graphs are cached in --cache DIR ($MREC_CACHE, else ~/.cache/mrec), under a hash of the\n"
            "features, k and the weights.\n");
    return f == stdout ? 0 : 1;
}

/* Each log line to stdout; the per-epoch ones also to history.tsv, for the
 * report's curves. */
static void log_line(void *ctx, const char *line) {
    printf("%s\n", line);
    fflush(stdout);
    int epoch;
    double loss, value;
    char split[16];
    if (ctx && sscanf(line, "epoch %d loss %lf %15s %*s %lf", &epoch, &loss, split, &value) == 4)
        fprintf(ctx, "%d\t%.6f\t%s\t%.6f\n", epoch, loss, split, value);
}

/* test_per_user.tsv: each test user's metrics from the top lists kept at the
 * best epoch, with the gains of the evaluation (their means are the test row). */
static mrec_status write_per_user(const char *path, const mrec_interactions *x, const mrec_user_items *test, const int32_t *topk, int kmax,
                                  const int *k, int n_k, const mrec_metric *chosen, int n_metrics, float threshold) {
    double *gain = calloc((size_t)x->n_items, sizeof *gain), *sorted = malloc(sizeof *sorted * (size_t)(x->n_items + 1));
    mrec_atomic_file af;
    mrec_status st = gain && sorted ? mrec_atomic_begin(&af, path) : mrec_fail(MREC_ERR_NOMEM, "%s: per-user buffers", path);
    if (st) {
        free(gain), free(sorted);
        return st;
    }
    FILE *f = af.f;
    fprintf(f, "user");
    for (int i = 0; i < n_metrics; i++)
        for (int j = 0; j < n_k; j++) fprintf(f, "\t%s@%d", mrec_metric_name(chosen[i]), k[j]);
    fputc('\n', f);
    for (int u = 0; u < test->n_rows; u++) {
        int n_rel = 0;
        for (int64_t p = test->row_ptr[u]; p < test->row_ptr[u + 1]; p++)
            if (test->val[p] >= threshold) sorted[n_rel++] = gain[test->col[p]] = pow(2.0, (double)test->val[p] - threshold + 1.0) - 1.0;
        if (n_rel) {
            for (int a = 1; a < n_rel; a++) /* largest first; lists are short */
                for (int b = a; b > 0 && sorted[b] > sorted[b - 1]; b--) {
                    double t = sorted[b];
                    sorted[b] = sorted[b - 1], sorted[b - 1] = t;
                }
            double m[MREC_METRIC_COUNT][MREC_EVAL_MAX_K] = {{0}};
            mrec_user_metrics(m, topk + (size_t)u * kmax, gain, sorted, n_rel, k, n_k);
            fprintf(f, "%s", x->user_names[u]);
            for (int i = 0; i < n_metrics; i++)
                for (int j = 0; j < n_k; j++) fprintf(f, "\t%.6f", m[chosen[i]][j]);
            fputc('\n', f);
        }
        for (int64_t p = test->row_ptr[u]; p < test->row_ptr[u + 1]; p++) gain[test->col[p]] = 0;
    }
    free(gain), free(sorted);
    return mrec_atomic_commit(&af);
}

/* --save-splits DIR: train.tsv, val.tsv, test.tsv as Elliot saves a split (user, item, rating). DIR is an
 * output folder (mrec_out_begin), so the three files appear together; it is replaced without --overwrite, as
 * every grid point of an Elliot experiment saves the same split again. */
static mrec_status write_splits(const char *dir, const mrec_interactions *x) {
    static const char *const names[3] = {"train.tsv", "val.tsv", "test.tsv"};
    mrec_out_dir od;
    mrec_status st = mrec_out_begin(&od, dir, MREC_OUT_OVERWRITE);
    if (st) return st;
    for (int s = 0; s < 3 && !st; s++) {
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

/* --k: cut-offs like 10,20,50, each a whole number in [1, 100000]; -1 when malformed. */
static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    for (const char *p = s;;) {
        size_t len = strcspn(p, ",");
        char tok[32];
        long v;
        if (n == max || len >= sizeof tok) return -1;
        memcpy(tok, p, len), tok[len] = 0;
        if (mrec_parse_int(tok, 1, 100000, &v)) return -1;
        out[n++] = (int)v;
        if (!p[len]) return n;
        p += len + 1;
    }
}

/* --split NAME:FIRST[:SECOND]: 0 when s is not strategy `name`, 1 when its
 * numbers parse (FIRST a ratio in (0, 1), or with leave a count; SECOND a
 * ratio in [0, 1), or with leave 0, 1 or "valid"), -1 otherwise. */
static int split_numbers(const char *s, const char *name, double *a, double *b) {
    size_t n = strlen(name);
    if (strncmp(s, name, n) || s[n] != ':') return 0;
    int leave = !strcmp(name, "leave");
    const char *first = s + n + 1, *colon = strchr(first, ':');
    char buf[64];
    long whole;
    snprintf(buf, sizeof buf, "%.*s", colon ? (int)(colon - first) : (int)strlen(first), first);
    if (leave ? mrec_parse_int(buf, 1, 1000000, &whole) : mrec_parse_real(buf, 0, 1, MREC_OPEN_LO | MREC_OPEN_HI, a)) return -1;
    if (leave) *a = (double)whole;
    if (colon && leave && !strcmp(colon + 1, "valid")) *b = 1;
    else if (colon && (leave ? mrec_parse_real(colon + 1, 0, 1, 0, b) : mrec_parse_real(colon + 1, 0, 1, MREC_OPEN_HI, b))) return -1;
    return 1;
}

static int fail(const char *what, mrec_status st) {
    fprintf(stderr, "mrec train: %s: %s: %s\n", what, mrec_strerror(st), mrec_error_detail());
    return st == MREC_ERR_NOMEM ? 3 : 2;
}

#define MAX_MODALITIES 8

/* The modalities a model was given, for its params column: visual+textual(knocked out). */
static void append_features(char *params, int at, size_t cap, const mrec_features *feat, int n_feat, const char *knockout) {
    for (int f = 0; f < n_feat && at < (int)cap; f++)
        at += snprintf(params + at, cap - at, "%s%s%s", f ? "+" : "", feat[f].name,
                       knockout && !strncmp(knockout, feat[f].name, strlen(feat[f].name)) ? "(knocked out)" : "");
}

/* --features NAME=PATH,...: each modality in dense item order; with
 * --missing drop, items any modality lacks leave the data first. */
static mrec_status load_modalities(mrec_features *f, int *n, const char *spec, const char *missing, mrec_interactions *x) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", spec);
    const char *names[MAX_MODALITIES], *paths[MAX_MODALITIES];
    *n = 0;
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok || !eq[1] || *n == MAX_MODALITIES)
            return mrec_fail(MREC_ERR_ARG, "--features wants NAME=PATH[,NAME=PATH...] (up to %d), got '%s'", MAX_MODALITIES, tok);
        *eq = 0, names[*n] = tok, paths[*n] = eq + 1, ++*n;
    }
    mrec_status st = MREC_OK;
    for (int pass = 0; pass < 2 && !st; pass++) {
        for (int m = 0; m < *n && !st; m++) st = mrec_features_load(&f[m], names[m], paths[m], x);
        int lacking = 0;
        for (int m = 0; m < *n && !st; m++) lacking |= f[m].n_missing > 0;
        if (st || !lacking || pass == 1 || strcmp(missing, "drop")) break;
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
        if (!st) printf("features: dropped %d of %d items without features, and their interactions\n", before - x->n_items, before);
    }
    for (int m = 0; m < *n && !st; m++)
        printf("features: %s: %d-d, %d of %d items%s\n", f[m].name, f[m].dim, f[m].n_items - f[m].n_missing, f[m].n_items,
               f[m].n_missing ? " (the others get the mean)" : "");
    if (st)
        for (int m = 0; m < *n; m++) mrec_features_free(&f[m]);
    return st;
}

int mrec_cmd_train(int argc, char **argv) {
    if (argc >= 2 && argv[1][0] != '-') return mrec_cmd_experiment(argc, argv); /* mrec train CONFIG.yml */
    const char *duplicates = "drop";
    const char *data = NULL, *format = "inter", *model = NULL, *out = NULL, *metrics = "recall,ndcg,precision,map",
               *ks = "5,10,20,50", *select = "recall@20";
    mrec_fit_options opt = mrec_fit_defaults();
    float reg = -1, threshold = 0, min_rating = -INFINITY, node_dropout = 0.1f, mess_dropout = 0.1f, edge_dropout = 0.8f;
    int knn_k = 10, layers_given = 0, decay_given = 0, lr_given = 0, mess_given = 0, node_given = 0;
    const char *sampler = NULL;
    float lambda = 0.9f, cl_weight = 2.0f, target_dropout = 0.3f;
    const char *cache = getenv("MREC_CACHE");
    char home_cache[4096];
    int dim = 64, layers = 3, threads = 0, kcore = 0, kcore_once = 0, neighbours = 50, authors_loss = 0;
    const char *split = NULL, *features = NULL, *missing = "mean", *knockout = NULL, *save_splits = NULL;
    int per_user = 0, out_flags = 0;
    uint64_t split_seed = 999;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout);
        else if (!strcmp(a, "--mask-valid")) opt.mask_valid_in_test = 1, used = 0;
        else if (!strcmp(a, "--kcore-once")) kcore_once = 1, used = 0;
        else if (!strcmp(a, "--authors-loss")) authors_loss = 1, used = 0;
        else if (!strcmp(a, "--per-user")) per_user = 1, used = 0;
        else if (mrec_out_flag(a, &out_flags)) used = 0;
        else if (mrec_opt_missing("train", a, v)) {
            return 1;
        } else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--format")) format = v;
        else if (!strcmp(a, "--duplicates")) duplicates = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--metrics")) metrics = v;
        else if (!strcmp(a, "--k")) ks = v;
        else if (!strcmp(a, "--select")) select = v;
        else if (!strcmp(a, "--epochs")) { if (mrec_train_int(a, v, &opt.epochs)) return 1; }
        else if (!strcmp(a, "--lr")) { if (mrec_train_float(a, v, &opt.lr)) return 1; lr_given = 1; }
        else if (!strcmp(a, "--sampler")) sampler = v;
        else if (!strcmp(a, "--reg")) { if (mrec_train_float(a, v, &reg)) return 1; }
        else if (!strcmp(a, "--dim")) { if (mrec_train_int(a, v, &dim)) return 1; }
        else if (!strcmp(a, "--layers")) { if (mrec_train_int(a, v, &layers)) return 1; layers_given = 1; }
        else if (!strcmp(a, "--knn-k")) { if (mrec_train_int(a, v, &knn_k)) return 1; }
        else if (!strcmp(a, "--cache")) cache = v;
        else if (!strcmp(a, "--lambda")) { if (mrec_train_float(a, v, &lambda)) return 1; }
        else if (!strcmp(a, "--cl-weight")) { if (mrec_train_float(a, v, &cl_weight)) return 1; }
        else if (!strcmp(a, "--target-dropout")) { if (mrec_train_float(a, v, &target_dropout)) return 1; }
        else if (!strcmp(a, "--lr-decay")) {
            char factor[64];
            const char *every = strchr(v, ':');
            double f = 0;
            long e = 0;
            snprintf(factor, sizeof factor, "%.*s", every ? (int)(every - v) : 0, v);
            if (!every || mrec_parse_real(factor, 0, 1, MREC_OPEN_LO, &f) || mrec_parse_int(every + 1, 1, 1000000, &e)) {
                fprintf(stderr, "mrec train: --lr-decay wants FACTOR:EVERY, like 0.96:50 (factor in (0, 1], every in [1, 1000000]), got '%s'\n", v);
                return 1;
            }
            opt.lr_decay = (float)f, opt.lr_decay_every = (int)e, decay_given = 1;
        }
        else if (!strcmp(a, "--edge-dropout")) { if (mrec_train_float(a, v, &edge_dropout)) return 1; }
        else if (!strcmp(a, "--batch-size")) { if (mrec_train_int(a, v, &opt.batch_size)) return 1; }
        else if (!strcmp(a, "--seed")) { if (mrec_train_u64(a, v, &opt.seed)) return 1; }
        else if (!strcmp(a, "--patience")) { if (mrec_train_int(a, v, &opt.patience)) return 1; }
        else if (!strcmp(a, "--eval-every")) { if (mrec_train_int(a, v, &opt.eval_every)) return 1; }
        else if (!strcmp(a, "--threshold")) { if (mrec_train_float(a, v, &threshold)) return 1; }
        else if (!strcmp(a, "--threads")) { if (mrec_train_int(a, v, &threads)) return 1; }
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--seed-split")) { if (mrec_train_u64(a, v, &split_seed)) return 1; }
        else if (!strcmp(a, "--min-rating")) { if (mrec_train_float(a, v, &min_rating)) return 1; }
        else if (!strcmp(a, "--kcore")) { if (mrec_train_int(a, v, &kcore)) return 1; }
        else if (!strcmp(a, "--neighbours")) { if (mrec_train_int(a, v, &neighbours)) return 1; }
        else if (!strcmp(a, "--node-dropout")) { if (mrec_train_float(a, v, &node_dropout)) return 1; node_given = 1; }
        else if (!strcmp(a, "--save-topk")) { if (mrec_train_int(a, v, &opt.save_topk)) return 1; }
        else if (!strcmp(a, "--mess-dropout")) { if (mrec_train_float(a, v, &mess_dropout)) return 1; mess_given = 1; }
        else if (!strcmp(a, "--features")) features = v;
        else if (!strcmp(a, "--missing")) missing = v;
        else if (!strcmp(a, "--knockout")) knockout = v;
        else if (!strcmp(a, "--save-splits")) save_splits = v;
        else {
            fprintf(stderr, "mrec train: unknown option '%s'\n", a);
            return usage(stderr);
        }
        i += used;
    }
    if (!data || !model || !out) return usage(stderr);
    if (opt.epochs < 1 || opt.batch_size < 1 || dim < 1 || dim > 4096 || layers < 0 || layers > 16 || !(opt.lr > 0) ||
        opt.patience < 1 || opt.eval_every < 1) {
        fprintf(stderr, "mrec train: --epochs, --batch-size, --dim, --patience, --eval-every must be positive, --layers 0..16, --lr > 0\n");
        return 1;
    }
    int k[MREC_EVAL_MAX_K], n_k = parse_list(ks, k, MREC_EVAL_MAX_K);
    if (n_k < 1) {
        fprintf(stderr, "mrec train: --k wants ascending cut-offs like 10,20,50, got '%s'\n", ks);
        return 1;
    }
    for (int i = 1; i < n_k; i++)
        if (k[i] <= k[i - 1]) {
            fprintf(stderr, "mrec train: --k must ascend, got '%s'\n", ks);
            return 1;
        }
    mrec_metric chosen[MREC_METRIC_COUNT];
    int n_metrics = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", metrics);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (n_metrics == MREC_METRIC_COUNT || mrec_metric_parse(tok, &chosen[n_metrics]) != MREC_OK) {
            fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
            return 1;
        }
        n_metrics++;
    }
    char sel_name[32];
    const char *sel_at = strchr(select, '@');
    long sel_k = 0;
    snprintf(sel_name, sizeof sel_name, "%.*s", sel_at ? (int)(sel_at - select) : 0, select);
    if (!sel_at || mrec_parse_int(sel_at + 1, 1, 100000, &sel_k) || mrec_metric_parse(sel_name, &opt.select_metric)) {
        fprintf(stderr, "mrec train: --select wants metric@k, like recall@20, got '%s'\n", select);
        return 1;
    }
    opt.select_k = (int)sel_k;

    if (sampler && strcmp(sampler, "pairs") && strcmp(sampler, "users")) {
        fprintf(stderr, "mrec train: --sampler is pairs or users, not '%s'\n", sampler);
        return 1;
    }
    if (sampler) opt.sample_users = !strcmp(sampler, "users");
    if (split && strcmp(split, "mmrec")) { /* checked here, before the data is read; applied after */
        double sa, sb;
        int r = split_numbers(split, "random", &sa, &sb);
        if (!r) r = split_numbers(split, "temporal", &sa, &sb);
        if (!r) r = split_numbers(split, "leave", &sa, &sb);
        if (r <= 0) {
            fprintf(stderr, "mrec train: --split: '%s' is not mmrec, random:T[:V], temporal:T[:V] or leave:N[:valid]%s%s\n", split,
                    r < 0 ? ": " : "", r < 0 ? mrec_error_detail() : "");
            return 1;
        }
    }
    /* Every input path up front: a FIFO or a device would block or stream forever. */
    for (const char *p = data; *p;) {
        char file[4096];
        size_t len = strcspn(p, ",");
        snprintf(file, sizeof file, "%.*s", (int)len, p);
        mrec_status bad = mrec_check_input(file, "--data", 1);
        if (bad) return fprintf(stderr, "mrec train: %s\n", mrec_error_detail()), 2;
        p += len + (p[len] == ',');
    }
    for (const char *p = features ? features : ""; *p;) {
        char file[4096];
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        snprintf(file, sizeof file, "%.*s", eq ? (int)(p + len - eq - 1) : 0, eq ? eq + 1 : "");
        mrec_status bad = eq ? mrec_check_input(file, "--features", 1) : MREC_OK; /* a malformed pair is named later */
        if (bad) return fprintf(stderr, "mrec train: %s\n", mrec_error_detail()), 2;
        p += len + (p[len] == ',');
    }

    /* Elliot's fixed splits: --data train.tsv,[valid.tsv,]test.tsv */
    char files[3][4096] = {{0}};
    int n_files = 0;
    for (const char *p = data; n_files < 3 && *p;) {
        size_t len = strcspn(p, ",");
        snprintf(files[n_files++], sizeof files[0], "%.*s", (int)len, p);
        p += len + (p[len] == ',');
    }
    int commas = 0;
    for (const char *p = data; *p; p++) commas += *p == ',';
    if (commas && (strcmp(format, "tsv") || commas > 2)) {
        fprintf(stderr, "mrec train: --data with commas is Elliot's fixed split, train,[valid,]test, in --format tsv\n");
        return 1;
    }
    mrec_interactions x;
    mrec_load_options lo = mrec_load_defaults();
    lo.notice = print_notice;
    lo.resplit = split != NULL;
    if (!strcmp(duplicates, "error")) lo.duplicates = MREC_DUPLICATES_ERROR;
    else if (strcmp(duplicates, "drop")) return fprintf(stderr, "mrec train: --duplicates is drop or error, got '%s'\n", duplicates), 1;
    mrec_status st = n_files > 1 ? mrec_load_tsv_splits_opt(&x, files[0], n_files == 3 ? files[1] : NULL, files[n_files - 1], &lo)
                     : !strcmp(format, "inter") ? mrec_load_inter_opt(&x, data, &lo)
                     : !strcmp(format, "tsv") ? mrec_load_tsv_opt(&x, data, &lo)
                     : !strcmp(format, "lightgcn") ? mrec_load_lightgcn_opt(&x, data, &lo)
                     : mrec_fail(MREC_ERR_ARG, "--format '%s' is not inter, tsv or lightgcn", format);
    if (st) return fail("loading data", st);
    if (kcore > 0 || min_rating > -INFINITY) {
        if ((st = mrec_filter(&x, min_rating, kcore, kcore, !kcore_once))) {
            mrec_interactions_free(&x);
            return fail("filtering", st);
        }
    }
    if (split) {
        double a = 0, b = 0;
        if (!strcmp(split, "mmrec")) st = mrec_split_mmrec_draw(&x, split_seed);
        else if (split_numbers(split, "random", &a, &b) > 0) st = mrec_split_users(&x, MREC_SPLITTER_RANDOM, a, b, 0, split_seed);
        else if (split_numbers(split, "temporal", &a, &b) > 0) st = mrec_split_users(&x, MREC_SPLITTER_TEMPORAL, a, b, 0, split_seed);
        else if (split_numbers(split, "leave", &a, &b) > 0) st = mrec_split_users(&x, MREC_SPLITTER_LEAVE_N, 0, b, (int)a, split_seed);
        else st = mrec_fail(MREC_ERR_ARG, "--split '%s' is not mmrec, random:T[:V], temporal:T[:V] or leave:N[:valid]", split);
        if (st) {
            mrec_interactions_free(&x);
            return fail("splitting", st);
        }
    }
    if (!x.has_split) {
        mrec_interactions_free(&x);
        fprintf(stderr, "mrec train: %s has no split (an x_label column, or train.txt/test.txt); give one with --split\n",
                data);
        return 2;
    }
    if (strcmp(missing, "mean") && strcmp(missing, "drop")) {
        mrec_interactions_free(&x);
        fprintf(stderr, "mrec train: --missing is mean or drop, not '%s'\n", missing);
        return 1;
    }
    if (save_splits && (st = write_splits(save_splits, &x))) {
        mrec_interactions_free(&x);
        return fail("--save-splits", st);
    }
    mrec_features feat[MAX_MODALITIES];
    int n_feat = 0;
    if (features && (st = load_modalities(feat, &n_feat, features, missing, &x))) {
        mrec_interactions_free(&x);
        return fail("features", st);
    }
    if (knockout) {
        char name[64];
        int noise = 0, which = -1;
        snprintf(name, sizeof name, "%s", knockout);
        char *colon = strchr(name, ':');
        if (colon) noise = !strcmp(colon + 1, "noise"), *colon = 0;
        for (int m = 0; m < n_feat; m++)
            if (!strcmp(feat[m].name, name)) which = m;
        mrec_rng krng = {opt.seed ^ 0x6b6e6f636b6f7574ull};
        if (which < 0 || (colon && !noise)) st = mrec_fail(MREC_ERR_ARG, "--knockout '%s': no such modality (or not NAME[:noise])", knockout);
        else st = mrec_features_knockout(&feat[which], noise, &krng);
        if (!st) printf("features: %s knocked out (%s)\n", name, noise ? "Gaussian noise of its mean and std" : "its mean");
        if (st) {
            for (int m = 0; m < n_feat; m++) mrec_features_free(&feat[m]);
            mrec_interactions_free(&x);
            return fail("knockout", st);
        }
    }
    /* the modalities side by side, for models that take one feature vector per item */
    int feat_dim = 0;
    for (int m = 0; m < n_feat; m++) feat_dim += feat[m].dim;
    float *item_feat = n_feat ? malloc(sizeof(float) * (size_t)x.n_items * feat_dim) : NULL;
    for (int i = 0, at = 0; item_feat && i < x.n_items; i++, at = 0)
        for (int m = 0; m < n_feat; at += feat[m].dim, m++)
            memcpy(item_feat + (size_t)i * feat_dim + at, feat[m].x + (size_t)i * feat[m].dim, sizeof(float) * (size_t)feat[m].dim);
    mrec_user_items train, valid, test;
    mrec_user_items_build(&train, &x, MREC_SPLIT_TRAIN);
    mrec_user_items_build(&valid, &x, MREC_SPLIT_VALID);
    mrec_user_items_build(&test, &x, MREC_SPLIT_TEST);
    printf("data: %s: %d users, %d items; %lld train, %lld valid, %lld test pairs\n", data, x.n_users, x.n_items,
           (long long)train.row_ptr[train.n_rows], (long long)valid.row_ptr[valid.n_rows],
           (long long)test.row_ptr[test.n_rows]);

    mrec_context_options copt = mrec_context_defaults();
    copt.device = MREC_WANT_CPU, copt.n_threads = threads; /* most models keep host arrays: training runs on the CPU */
    mrec_context *ctx;
    if ((st = mrec_context_create(&ctx, &copt))) return fail("threads", st);
    mrec_rng rng = {opt.seed};
    mrec_model m = {0};
    mrec_graph graph = {0}, item_graph = {0};
    char params[256];
    if (!strcmp(model, "mostpop")) {
        st = mrec_mostpop_create(&m, &train);
        snprintf(params, sizeof params, "-");
    } else if (!strcmp(model, "ngcf")) {
        if (reg < 0) reg = 1e-5f;
        st = mrec_graph_mean_self(&graph, &train);
        if (!st)
            st = mrec_ngcf_create(&m, &graph, x.n_users, x.n_items, dim, layers, reg, node_dropout, mess_dropout, &rng, ctx);
        snprintf(params, sizeof params, "dim=%d,layers=%d,lr=%g,decay=%g,node_dropout=%g,mess_dropout=%g,batch=%d,seed=%llu",
                 dim, layers, opt.lr, reg, node_dropout, mess_dropout, opt.batch_size, (unsigned long long)opt.seed);
    } else if (!strcmp(model, "itemknn")) {
        st = mrec_itemknn_create(&m, &train, neighbours, ctx);
        snprintf(params, sizeof params, "k=%d", neighbours);
    } else if (!strcmp(model, "bprmf")) {
        if (reg < 0) reg = 1e-5f;
        st = mrec_bprmf_create(&m, x.n_users, x.n_items, dim, reg, &rng, ctx);
        snprintf(params, sizeof params, "dim=%d,lr=%g,reg=%g,batch=%d,seed=%llu", dim, opt.lr, reg, opt.batch_size,
                 (unsigned long long)opt.seed);
    } else if (!strcmp(model, "lightgcn")) {
        if (reg < 0) reg = 1e-4f;
        st = mrec_graph_normalized(&graph, &train);
        if (!st) st = mrec_lightgcn_create(&m, &graph, x.n_users, x.n_items, dim, layers, reg, &rng, ctx);
        if (!st && authors_loss) mrec_lightgcn_use_authors_loss(&m);
        snprintf(params, sizeof params, "dim=%d,layers=%d,lr=%g,reg=%g,batch=%d,seed=%llu%s", dim, layers, opt.lr, reg,
                 opt.batch_size, (unsigned long long)opt.seed, authors_loss ? ",loss=authors" : "");
    } else if (!strcmp(model, "vbpr")) {
        if (reg < 0) reg = 1e-3f;
        st = n_feat ? mrec_vbpr_create(&m, x.n_users, x.n_items, dim, reg, item_feat, feat_dim, &rng, ctx)
                    : mrec_fail(MREC_ERR_ARG, "vbpr needs item features: --features visual=PATH,textual=PATH");
        int at = snprintf(params, sizeof params, "dim=%d,lr=%g,reg=%g,batch=%d,seed=%llu,features=", dim, opt.lr, reg,
                          opt.batch_size, (unsigned long long)opt.seed);
        append_features(params, at, sizeof params, feat, n_feat, knockout);
    } else if (!strcmp(model, "freedom")) {
        if (reg < 0) reg = 1e-3f;
        if (!layers_given) layers = 2;
        const float *xs[MAX_MODALITIES];
        int dims[MAX_MODALITIES];
        float w[MAX_MODALITIES];
        int has_visual = 0;
        for (int f = 0; f < n_feat; f++) has_visual |= !strcmp(feat[f].name, "visual");
        for (int f = 0; f < n_feat; f++) {
            xs[f] = feat[f].x, dims[f] = feat[f].dim;
            w[f] = n_feat == 1 ? 1.0f : !has_visual ? 1.0f / n_feat : !strcmp(feat[f].name, "visual") ? 0.1f : 0.9f / (n_feat - 1);
        }
        st = n_feat ? MREC_OK : mrec_fail(MREC_ERR_ARG, "freedom needs item features: --features visual=PATH,textual=PATH");
        if (!st) st = mrec_graph_normalized(&graph, &train);
        if (!cache && getenv("HOME")) {
            snprintf(home_cache, sizeof home_cache, "%s/.cache", getenv("HOME"));
            mkdir(home_cache, 0755);
            snprintf(home_cache, sizeof home_cache, "%s/.cache/mrec", getenv("HOME"));
            cache = home_cache;
        }
        if (cache && !strcmp(cache, "none")) cache = NULL;
        if (cache && mkdir(cache, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "mrec train: %s: cannot create (%s); the item graph is not cached\n", cache, strerror(errno));
            cache = NULL;
        }
        int cached = 0;
        if (!st) st = mrec_graph_knn_cached(&item_graph, xs, dims, w, n_feat, x.n_items, knn_k, cache, &cached, ctx);
        if (!st) printf("item graph: k=%d, %lld edges, %s%s\n", knn_k, (long long)item_graph.row_ptr[x.n_items],
                        cached ? "read from " : cache ? "built and saved in " : "built", cache ? cache : "");
        if (!st)
            st = mrec_freedom_create(&m, &graph, &item_graph, &train, feat, n_feat, dim, layers, reg, edge_dropout, &rng, ctx);
        int at = snprintf(params, sizeof params, "dim=%d,layers=%d,lr=%g,reg=%g,knn_k=%d,edge_dropout=%g,batch=%d,seed=%llu,features=",
                          dim, layers, opt.lr, reg, knn_k, edge_dropout, opt.batch_size, (unsigned long long)opt.seed);
        for (int f = 0; f < n_feat && at < (int)sizeof params; f++)
            at += snprintf(params + at, sizeof params - at, "%s%s:%g%s", f ? "+" : "", feat[f].name, w[f],
                           knockout && !strncmp(knockout, feat[f].name, strlen(feat[f].name)) ? "(knocked out)" : "");
    } else if (!strcmp(model, "lattice")) {
        if (reg < 0) reg = 1e-4f;
        if (!decay_given) opt.lr_decay = 0.96f, opt.lr_decay_every = 50;
        st = n_feat ? mrec_graph_mean_self(&graph, &train)
                    : mrec_fail(MREC_ERR_ARG, "lattice needs item features: --features visual=PATH,textual=PATH");
        if (!st)
            st = mrec_lattice_create(&m, &graph, feat, n_feat, x.n_users, dim, knn_k, lambda, reg, opt.batch_size, &rng, ctx);
        int at = snprintf(params, sizeof params, "dim=%d,lr=%g,lr_decay=%g:%d,reg=%g,knn_k=%d,lambda=%g,batch=%d,seed=%llu,features=",
                          dim, opt.lr, opt.lr_decay, opt.lr_decay_every, reg, knn_k, lambda, opt.batch_size,
                          (unsigned long long)opt.seed);
        append_features(params, at, sizeof params, feat, n_feat, knockout);
    } else if (!strcmp(model, "bm3")) {
        if (reg < 0) reg = 0.1f;
        if (!layers_given) layers = 1;
        st = n_feat ? mrec_graph_normalized(&graph, &train)
                    : mrec_fail(MREC_ERR_ARG, "bm3 needs item features: --features visual=PATH,textual=PATH");
        if (!st)
            st = mrec_bm3_create(&m, &graph, feat, n_feat, x.n_users, dim, layers, reg, cl_weight, target_dropout, &rng, ctx);
        int at = snprintf(params, sizeof params, "dim=%d,layers=%d,lr=%g,reg=%g,cl=%g,dropout=%g,batch=%d,seed=%llu,features=", dim,
                          layers, opt.lr, reg, cl_weight, target_dropout, opt.batch_size, (unsigned long long)opt.seed);
        append_features(params, at, sizeof params, feat, n_feat, knockout);
    } else if (!strcmp(model, "ngcfm")) {
        if (reg < 0) reg = 0.01f;
        if (!layers_given) layers = 3;
        if (!lr_given) opt.lr = 0.0005f;
        if (!mess_given) mess_dropout = 0.5f;
        if (!sampler) opt.sample_users = 1;
        st = n_feat ? mrec_graph_mean_self(&graph, &train)
                    : mrec_fail(MREC_ERR_ARG, "ngcfm needs item features: --features visual=PATH,textual=PATH");
        if (!node_given) node_dropout = 0;
        if (!st)
            st = mrec_ngcfm_create(&m, &graph, x.n_users, x.n_items, item_feat, feat_dim, dim, layers, reg, mess_dropout, node_dropout,
                                   &rng, ctx);
        int at = snprintf(params, sizeof params,
                          "dim=%d,layers=%d,lr=%g,l_w=%g,mess_dropout=%g,node_dropout=%g,batch=%d,sampler=%s,seed=%llu,features=", dim,
                          layers, opt.lr, reg, mess_dropout, node_dropout, opt.batch_size, opt.sample_users ? "users" : "pairs",
                          (unsigned long long)opt.seed);
        append_features(params, at, sizeof params, feat, n_feat, knockout);
    } else {
        st = mrec_fail(MREC_ERR_ARG, "--model '%s' is not mostpop, itemknn, bprmf, lightgcn, ngcf, vbpr, freedom, lattice, bm3 or ngcfm",
                       model);
    }
    int rc = 0;
    if (st) rc = fail("model", st);
    mrec_fit_result r = {0};
    FILE *history = NULL;
    char path[4400];
    /* the output folder is built beside itself and appears whole (mrec_out_begin) */
    mrec_out_dir od = {.lock_fd = -1};
    if (!rc && (st = mrec_out_begin(&od, out, out_flags & MREC_OUT_OVERWRITE))) rc = fail("the output folder", st);
    if (!rc) out = od.scratch;
    int topk_n = opt.save_topk; /* recommendations.tsv's length; per-user metrics need the largest cut-off */
    if (per_user && opt.save_topk < k[n_k - 1]) opt.save_topk = k[n_k - 1];
    if (!rc) {
        printf("model: %s %s\n", m.name, params);
        snprintf(path, sizeof path, "%s/history.tsv", out);
        if ((history = fopen(path, "w"))) fprintf(history, "epoch\tloss\tsplit\t%s\n", select);
        opt.log = log_line, opt.log_ctx = history;
        st = mrec_fit(&r, &m, &train, &valid, &test, k, n_k, threshold, &opt, ctx);
        if (st) rc = fail("training", st);
        if (history) fclose(history);
    }
    if (!rc && per_user && !r.topk) {
        fprintf(stderr, "mrec train: no evaluation happened, so there are no per-user metrics\n");
        rc = 2;
    }
    if (!rc && per_user) {
        snprintf(path, sizeof path, "%s/test_per_user.tsv", out);
        if ((st = write_per_user(path, &x, &test, r.topk, opt.save_topk, k, n_k, chosen, n_metrics, threshold))) rc = fail("per-user metrics", st);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/results.tsv", out);
        mrec_atomic_file af;
        if ((st = mrec_atomic_begin(&af, path))) {
            rc = fail("results.tsv", st);
        } else {
            FILE *f = af.f;
            fprintf(f, "model\tparams\tsplit\tbest_epoch");
            for (int i = 0; i < n_metrics; i++)
                for (int j = 0; j < n_k; j++) fprintf(f, "\t%s@%d", mrec_metric_name(chosen[i]), k[j]);
            fprintf(f, "\n");
            for (int s = r.selected_on_test ? 1 : 0; s < 2; s++) {
                const mrec_eval_result *e = s ? &r.test : &r.valid;
                fprintf(f, "%s\t%s\t%s\t%d", m.name, params, s ? "test" : "valid", r.best_epoch);
                for (int i = 0; i < n_metrics; i++)
                    for (int j = 0; j < n_k; j++) fprintf(f, "\t%.6f", e->value[chosen[i]][j]);
                fprintf(f, "\n");
                printf("%s (best epoch %d):", s ? "test" : "valid", r.best_epoch);
                for (int i = 0; i < n_metrics; i++)
                    for (int j = 0; j < n_k; j++) printf(" %s@%d=%.4f", mrec_metric_name(chosen[i]), k[j], e->value[chosen[i]][j]);
                printf("\n");
            }
            if (r.selected_on_test && m.loss_grad) printf("note: no validation split; the best epoch was chosen on test, as LightGCN's code does\n");
            printf("time: %.1f s training (%d epochs), %.1f s evaluating\n", r.train_seconds, r.epochs_run, r.eval_seconds);
            if ((st = mrec_atomic_commit(&af))) rc = fail("results.tsv", st);
            /* for the summaries of mrec train CONFIG */
            snprintf(path, sizeof path, "%s/timing.tsv", out);
            if (!rc && !(st = mrec_atomic_begin(&af, path))) {
                fprintf(af.f, "train_seconds\teval_seconds\tepochs\n%.3f\t%.3f\t%d\n", r.train_seconds, r.eval_seconds, r.epochs_run);
                st = mrec_atomic_commit(&af);
            }
            if (!rc && st) rc = fail("timing.tsv", st);
        }
        if (!rc && topk_n > 0 && r.topk) {
            snprintf(path, sizeof path, "%s/recommendations.tsv", out);
            mrec_atomic_file af;
            if (!(st = mrec_atomic_begin(&af, path))) {
                for (int u = 0; u < x.n_users; u++) {
                    fprintf(af.f, "%s", x.user_names[u]);
                    for (int j = 0; j < topk_n; j++) fprintf(af.f, "\t%s", x.item_names[r.topk[(size_t)u * opt.save_topk + j]]);
                    fputc('\n', af.f);
                }
                st = mrec_atomic_commit(&af);
            }
            if (st) rc = fail("recommendations.tsv", st);
        }
        snprintf(path, sizeof path, "%s/users.tsv", out);
        if (!rc && (st = mrec_write_id_map(&x, 0, path))) rc = fail("writing users.tsv", st);
        snprintf(path, sizeof path, "%s/items.tsv", out);
        if (!rc && (st = mrec_write_id_map(&x, 1, path))) rc = fail("writing items.tsv", st);
    }
    if (!rc && (st = mrec_out_commit(&od))) rc = fail("the output folder", st);
    mrec_out_abort(&od);
    if (!rc || r.topk) free(r.topk);
    if (m.destroy) mrec_model_destroy(&m);
    mrec_graph_free(&graph), mrec_graph_free(&item_graph);
    mrec_user_items_free(&train), mrec_user_items_free(&valid), mrec_user_items_free(&test);
    for (int f = 0; f < n_feat; f++) mrec_features_free(&feat[f]);
    free(item_feat);
    mrec_interactions_free(&x);
    mrec_context_destroy(ctx);
    return rc;
}
