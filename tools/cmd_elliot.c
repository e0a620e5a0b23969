/* cmd_elliot.c: `mrec train CONFIG`: an Elliot experiment file, run as Elliot
 * runs it, with mrec's trainer.
 *
 *   experiment:
 *     dataset: baby                       # {0} in paths becomes this
 *     data_config: {strategy: fixed, train_path: ..., validation_path: ..., test_path: ...,
 *                   side_information: [{dataloader: VisualAttribute, visual_features: FOLDER}, ...]}
 *                  (or strategy: dataset, dataset_path: FILE, with splitting)
 *     prefiltering: [{strategy: global_threshold, threshold: 4}, {strategy: iterative_k_core, core: 5}]
 *     splitting: {save_on_disk: True, save_folder: ..., test_splitting: {strategy: random_subsampling,
 *                 test_ratio: 0.2}, validation_splitting: {...}}
 *     top_k: 20
 *     evaluation: {cutoffs: [10, 20], simple_metrics: [Recall, nDCG, HR], relevance_threshold: 0,
 *                  paired_ttest: True, wilcoxon_test: True}
 *     models:
 *       external.LightGCN: {meta: {hyper_opt_alg: grid, validation_rate: 10, validation_metric: Recall@20,
 *                                  save_recs: True, early_stopping: {patience: 5}},
 *                           lr: [0.0005, 0.001], l_w: [1e-5, 1e-2], factors: 64, n_layers: 3, ...}
 *
 * A list-valued hyper-parameter is a grid axis; every grid point is one `mrec train` run, chosen on the
 * validation metric only (on test only when there is no validation split, as Elliot does then). Outputs,
 * under --out (default results/<dataset>): performance/rec_cutoff_<k>_relthreshold_<t>.tsv (the best grid
 * point of each model, on test), performance/grid_cutoff_<k>.tsv (every point, valid and test),
 * performance/bestmodelparams_cutoff_<k>_relthreshold_<t>.json, performance/stat_paired_ttest_cutoff_<k>.tsv
 * and stat_wilcoxon_test_cutoff_<k>.tsv (p-values between the best models, per metric, over test users),
 * recs/<model>.tsv (user, item, rank) with save_recs, runs/<model>/ (each point's own mrec train output),
 * and report.html.
 */
#include "mrec_tools.h"

#include "../recsys/mrec_recsys.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- what each Elliot model is in mrec, and its hyper-parameters ---- */

typedef struct {
    const char *key, *flag; /* Elliot's name, mrec train's option (NULL: checked by hand) */
} hparam;

typedef struct {
    const char *elliot, *mrec;
    int multimodal, trains;
    hparam params[16];
} family;

#define COMMON {"lr", "--lr"}, {"epochs", "--epochs"}, {"factors", "--dim"}, {"batch_size", "--batch-size"}, {"seed", "--seed"}
#define MODALITIES {"modalities", NULL}, {"loaders", NULL}

static const family FAMILIES[] = {
    {"MostPop", "mostpop", 0, 0, {{"seed", "--seed"}}},
    {"ItemKNN", "itemknn", 0, 0, {{"neighbors", "--neighbours"}, {"similarity", NULL}, {"seed", "--seed"}}},
    {"BPRMF", "bprmf", 0, 1, {COMMON, {"l_w", "--reg"}}},
    {"LightGCN", "lightgcn", 0, 1, {COMMON, {"l_w", "--reg"}, {"n_layers", "--layers"}, {"normalize", NULL}}},
    {"NGCF", "ngcf", 0, 1, {COMMON, {"l_w", "--reg"}, {"n_layers", "--layers"}, {"weight_size", NULL}, {"node_dropout", "--node-dropout"},
                         {"message_dropout", "--mess-dropout"}, {"normalize", NULL}}},
    {"VBPR", "vbpr", 1, 1, {COMMON, {"l_w", "--reg"}, {"comb_mod", NULL}, MODALITIES}},
    {"FREEDOM", "freedom", 1, 1, {COMMON, {"l_w", "--reg"}, {"n_layers", NULL}, {"n_ui_layers", "--layers"}, {"top_k", "--knn-k"},
                               {"factors_multimod", NULL}, {"mw", NULL}, {"drop", "--edge-dropout"}, {"lr_sched", NULL}, MODALITIES}},
    {"LATTICE", "lattice", 1, 1, {COMMON, {"l_w", "--reg"}, {"n_layers", NULL}, {"n_ui_layers", NULL}, {"top_k", "--knn-k"},
                               {"l_m", "--lambda"}, {"factors_multimod", NULL}, {"lr_sched", NULL}, MODALITIES}},
    {"BM3", "bm3", 1, 1, {COMMON, {"reg_weight", "--reg"}, {"cl_weight", "--cl-weight"}, {"dropout", "--target-dropout"},
                       {"n_layers", "--layers"}, {"multimod_factors", NULL}, {"lr_sched", NULL}, MODALITIES}},
    {"NGCFM", "ngcfm", 1, 1, {COMMON, {"l_w", "--reg"}, {"n_layers", "--layers"}, {"weight_size", NULL}, {"node_dropout", "--node-dropout"},
                           {"message_dropout", "--mess-dropout"}, {"normalize", NULL}, MODALITIES}},
};
#define N_FAMILIES (int)(sizeof FAMILIES / sizeof FAMILIES[0])

/* Elliot's metric names -> mrec's (Elliot's nDCG has graded gains, its MAP averages P@1..P@K). */
static const char *const METRICS[][2] = {{"Recall", "recall"}, {"Precision", "precision"}, {"HR", "hr"},      {"nDCG", "ndcg_graded"},
                                         {"nDCGRendle2020", "ndcg"}, {"MRR", "mrr"},         {"MAP", "map_elliot"}};
#define N_METRICS (int)(sizeof METRICS / sizeof METRICS[0])

static const char *mrec_metric_of(const char *elliot) {
    for (int i = 0; i < N_METRICS; i++)
        if (!strcmp(METRICS[i][0], elliot)) return METRICS[i][1];
    return NULL;
}

/* ---- the experiment, read and checked before anything runs ---- */

#define MAX_MODELS 16
#define MAX_AXES 16
#define MAX_K 8

typedef struct {
    const family *fam;
    const mrec_cfg_node *node;
    char name[128];                /* as written: external.BPRMF */
    const mrec_cfg_node *axis[MAX_AXES]; /* hyper-parameters: a scalar or a list (grid axis) */
    int n_axes;
    char select[32];               /* recall@20 */
    int eval_every, patience, save_recs;
    char modalities[256];          /* --features value */
} model_spec;

typedef struct {
    const mrec_cfg *c;
    char dataset[128], out[4096], perf[4200], recs[4200];
    char *data_argv[24];           /* --data ... shared by every run */
    char data_store[24][4200 * 3];
    int n_data;
    char visual[4096], textual[4096];
    int k[MAX_K], n_k, top_k;
    char metric_elliot[8][32], metrics[128];
    double threshold;
    int ttest, wilcoxon;
    model_spec models[MAX_MODELS];
    int n_models;
} experiment;

static mrec_status bad(const mrec_cfg *c, const mrec_cfg_node *n, const char *what) {
    return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: %s", c->path, n ? n->line : 0, what);
}

/* A path value, with Elliot's {0} replaced by the dataset name. */
static mrec_status path_value(const experiment *e, const mrec_cfg_node *map, const char *key, int required, int must_exist, char *out,
                              size_t cap) {
    const char *v = NULL;
    mrec_status st = mrec_cfg_string(e->c, map, key, required, &v);
    if (st || !v) return st;
    size_t at = 0;
    for (const char *p = v; *p && at + 1 < cap; p++) {
        if (!strncmp(p, "{0}", 3)) at += snprintf(out + at, cap - at, "%s", e->dataset), p += 2;
        else out[at++] = *p;
    }
    out[at < cap ? at : cap - 1] = 0;
    if (must_exist && access(out, R_OK) != 0)
        return mrec_fail(MREC_ERR_IO, "%s: line %d: %s %s: no such file or folder", e->c->path, mrec_cfg_get(map, key)->line, key, out);
    return MREC_OK;
}

static void add_arg(experiment *e, const char *a) {
    if (e->n_data == 24) return;
    snprintf(e->data_store[e->n_data], sizeof e->data_store[0], "%s", a);
    e->data_argv[e->n_data] = e->data_store[e->n_data], e->n_data++;
}

static void add_data(experiment *e, const char *a, const char *b) { add_arg(e, a), add_arg(e, b); }

static mrec_status read_data(experiment *e, const mrec_cfg_node *x) {
    const mrec_cfg *c = e->c;
    const mrec_cfg_node *dc = mrec_cfg_get(x, "data_config");
    if (!dc || dc->kind != MREC_CFG_MAP) return bad(c, dc ? dc : x, "data_config (a map) is required");
    static const char *const keys[] = {"strategy", "train_path", "validation_path", "test_path", "dataset_path", "side_information", NULL};
    mrec_status st = mrec_cfg_check_keys(c, dc, "experiment.data_config", keys);
    const char *strategy = NULL;
    if (!st) st = mrec_cfg_string(c, dc, "strategy", 1, &strategy);
    char a[4096] = "", b[4096] = "", t[4096] = "", joined[4200 * 3];
    if (!st && !strcmp(strategy, "fixed")) {
        if (!(st = path_value(e, dc, "train_path", 1, 1, a, sizeof a)) && !(st = path_value(e, dc, "validation_path", 0, 1, b, sizeof b)))
            st = path_value(e, dc, "test_path", 1, 1, t, sizeof t);
        if (!st) snprintf(joined, sizeof joined, "%s,%s%s%s", a, b, *b ? "," : "", t);
        if (!st) add_data(e, "--data", joined), add_data(e, "--format", "tsv");
        if (!st && mrec_cfg_get(x, "splitting"))
            st = bad(c, mrec_cfg_get(x, "splitting"), "splitting goes with strategy dataset; strategy fixed brings its own split");
    } else if (!st && !strcmp(strategy, "dataset")) {
        if (!(st = path_value(e, dc, "dataset_path", 1, 1, a, sizeof a))) add_data(e, "--data", a), add_data(e, "--format", "tsv");
    } else if (!st) {
        st = bad(c, mrec_cfg_get(dc, "strategy"), "strategy is fixed or dataset (hierarchy is not supported)");
    }
    const mrec_cfg_node *side = mrec_cfg_get(dc, "side_information");
    if (!st && side && side->kind != MREC_CFG_SEQ) st = bad(c, side, "side_information must be a list");
    for (const mrec_cfg_node *s = st || !side ? NULL : side->child; s && !st; s = s->next) {
        static const char *const skeys[] = {"dataloader", "visual_features", "textual_features", NULL};
        const char *loader = NULL;
        if (!(st = mrec_cfg_check_keys(c, s, "side_information", skeys))) st = mrec_cfg_string(c, s, "dataloader", 1, &loader);
        if (!st && !strcmp(loader, "VisualAttribute")) st = path_value(e, s, "visual_features", 1, 1, e->visual, sizeof e->visual);
        else if (!st && !strcmp(loader, "TextualAttribute")) st = path_value(e, s, "textual_features", 1, 1, e->textual, sizeof e->textual);
        else if (!st) st = bad(c, mrec_cfg_get(s, "dataloader"), "dataloader is VisualAttribute or TextualAttribute");
    }
    return st;
}

static mrec_status read_filters(experiment *e, const mrec_cfg_node *x) {
    const mrec_cfg *c = e->c;
    const mrec_cfg_node *pf = mrec_cfg_get(x, "prefiltering");
    if (!pf) return MREC_OK;
    if (pf->kind == MREC_CFG_SCALAR) return bad(c, pf, "prefiltering must be a filter or a list of filters");
    mrec_status st = MREC_OK;
    int one = pf->kind == MREC_CFG_MAP; /* a single filter, not in a list */
    for (const mrec_cfg_node *f = one ? pf : pf->child; f && !st; f = one ? NULL : f->next) {
        static const char *const keys[] = {"strategy", "threshold", "core", "rounds", NULL};
        const char *s = NULL;
        char v[64];
        double num = 0;
        if (!(st = mrec_cfg_check_keys(c, f, "prefiltering", keys))) st = mrec_cfg_string(c, f, "strategy", 1, &s);
        if (!st && !strcmp(s, "global_threshold")) {
            if (!(st = mrec_cfg_number(c, f, "threshold", 1, -1e9, 1e9, &num))) snprintf(v, sizeof v, "%g", num), add_data(e, "--min-rating", v);
        } else if (!st && (!strcmp(s, "iterative_k_core") || !strcmp(s, "n_rounds_k_core"))) {
            long core = 0, rounds = 1;
            if (!(st = mrec_cfg_int(c, f, "core", 1, 1, 1000000, &core)) && !strcmp(s, "n_rounds_k_core"))
                st = mrec_cfg_int(c, f, "rounds", 1, 1, 1, &rounds);
            if (!st) snprintf(v, sizeof v, "%ld", core), add_data(e, "--kcore", v);
            if (!st && !strcmp(s, "n_rounds_k_core")) add_arg(e, "--kcore-once");
        } else if (!st) {
            st = bad(c, mrec_cfg_get(f, "strategy"), "prefiltering strategy is global_threshold, iterative_k_core or n_rounds_k_core "
                                                     "(with rounds: 1)");
        }
    }
    return st;
}

/* test_splitting + validation_splitting -> --split. */
static mrec_status read_splitting(experiment *e, const mrec_cfg_node *x) {
    const mrec_cfg *c = e->c;
    const mrec_cfg_node *sp = mrec_cfg_get(x, "splitting");
    if (!sp) return MREC_OK;
    static const char *const keys[] = {"save_on_disk", "save_folder", "test_splitting", "validation_splitting", NULL};
    static const char *const skeys[] = {"strategy", "test_ratio", "leave_n_out", NULL};
    mrec_status st = mrec_cfg_check_keys(c, sp, "experiment.splitting", keys);
    const mrec_cfg_node *parts[2] = {mrec_cfg_get(sp, "test_splitting"), mrec_cfg_get(sp, "validation_splitting")};
    if (!st && !parts[0]) st = bad(c, sp, "splitting needs test_splitting");
    const char *kind[2] = {NULL, NULL};
    double ratio[2] = {0, 0};
    long leave[2] = {0, 0};
    for (int p = 0; p < 2 && !st; p++) {
        if (!parts[p]) continue;
        if (!(st = mrec_cfg_check_keys(c, parts[p], p ? "validation_splitting" : "test_splitting", skeys)))
            st = mrec_cfg_string(c, parts[p], "strategy", 1, &kind[p]);
        if (!st) st = mrec_cfg_number(c, parts[p], "test_ratio", 0, 0, 0.99, &ratio[p]);
        if (!st) st = mrec_cfg_int(c, parts[p], "leave_n_out", 0, 1, 1000, &leave[p]);
        if (!st && strcmp(kind[p], "random_subsampling") && strcmp(kind[p], "temporal_hold_out"))
            st = bad(c, mrec_cfg_get(parts[p], "strategy"), "splitting strategy is random_subsampling or temporal_hold_out");
        if (!st && !ratio[p] == !leave[p]) st = bad(c, parts[p], "give test_ratio or leave_n_out");
    }
    if (!st && parts[1] && (strcmp(kind[0], kind[1]) || !leave[0] != !leave[1] || (leave[1] && leave[1] != leave[0])))
        st = bad(c, parts[1], "validation_splitting must use the strategy of test_splitting (and the same leave_n_out)");
    if (!st && leave[0] && !strcmp(kind[0], "random_subsampling"))
        st = bad(c, parts[0], "leave_n_out goes with temporal_hold_out (the latest interactions)");
    char v[64];
    if (!st) {
        if (leave[0]) snprintf(v, sizeof v, "leave:%ld%s", leave[0], parts[1] ? ":1" : "");
        else snprintf(v, sizeof v, "%s:%g:%g", !strcmp(kind[0], "random_subsampling") ? "random" : "temporal", ratio[0], ratio[1]);
        add_data(e, "--split", v);
    }
    int save = 0;
    char folder[4096];
    if (!st) st = mrec_cfg_bool(c, sp, "save_on_disk", 0, &save);
    if (!st && save) {
        if (!(st = path_value(e, sp, "save_folder", 1, 0, folder, sizeof folder)) && !(st = mrec_mkdirs(folder)))
            add_data(e, "--save-splits", folder);
    }
    return st;
}

static mrec_status read_evaluation(experiment *e, const mrec_cfg_node *x) {
    const mrec_cfg *c = e->c;
    const mrec_cfg_node *ev = mrec_cfg_get(x, "evaluation");
    if (!ev) return bad(c, x, "evaluation (cutoffs, simple_metrics) is required");
    static const char *const keys[] = {"cutoffs", "simple_metrics", "relevance_threshold", "paired_ttest", "wilcoxon_test", NULL};
    mrec_status st = mrec_cfg_check_keys(c, ev, "experiment.evaluation", keys);
    if (!st && mrec_cfg_get(ev, "complex_metrics")) st = bad(c, mrec_cfg_get(ev, "complex_metrics"), "complex_metrics are not supported");
    const mrec_cfg_node *cut = mrec_cfg_get(ev, "cutoffs"), *met = mrec_cfg_get(ev, "simple_metrics");
    if (!st && !cut) st = bad(c, ev, "evaluation needs cutoffs");
    if (!st && !met) st = bad(c, ev, "evaluation needs simple_metrics");
    const mrec_cfg_node *one = cut && cut->kind == MREC_CFG_SCALAR ? cut : NULL;
    for (const mrec_cfg_node *k = st ? NULL : one ? one : cut->child; k && !st; k = one ? NULL : k->next) {
        double v;
        if (e->n_k == MAX_K) st = bad(c, cut, "at most 8 cutoffs");
        else if (!(st = mrec_cfg_node_number(c, k, "cutoffs", 1, 10000, &v))) e->k[e->n_k++] = (int)v;
        if (!st && e->n_k > 1 && e->k[e->n_k - 1] <= e->k[e->n_k - 2]) st = bad(c, cut, "cutoffs must ascend");
    }
    if (!st && (met->kind != MREC_CFG_SEQ || !mrec_cfg_count(met) || mrec_cfg_count(met) > 8)) st = bad(c, met, "simple_metrics: a list of 1 to 8");
    size_t at = 0;
    int n = 0;
    for (const mrec_cfg_node *m = st ? NULL : met->child; m && !st; m = m->next, n++) {
        const char *name = m->kind == MREC_CFG_SCALAR ? mrec_metric_of(m->value) : NULL;
        if (!name) {
            char msg[256];
            snprintf(msg, sizeof msg, "metric '%s' is not one mrec has (Recall, Precision, HR, nDCG, nDCGRendle2020, MRR, MAP)",
                     m->kind == MREC_CFG_SCALAR ? m->value : "?");
            st = bad(c, m, msg);
        } else {
            snprintf(e->metric_elliot[n], sizeof e->metric_elliot[0], "%s", m->value);
            at += snprintf(e->metrics + at, sizeof e->metrics - at, "%s%s", at ? "," : "", name);
        }
    }
    if (!st) st = mrec_cfg_number(c, ev, "relevance_threshold", 0, -1e9, 1e9, &e->threshold);
    if (!st) st = mrec_cfg_bool(c, ev, "paired_ttest", 0, &e->ttest);
    if (!st) st = mrec_cfg_bool(c, ev, "wilcoxon_test", 0, &e->wilcoxon);
    return st;
}

static mrec_status read_model(experiment *e, const mrec_cfg_node *mn) {
    const mrec_cfg *c = e->c;
    if (e->n_models == MAX_MODELS) return bad(c, mn, "at most 16 models");
    model_spec *m = &e->models[e->n_models];
    memset(m, 0, sizeof *m);
    m->node = mn;
    snprintf(m->name, sizeof m->name, "%s", mn->key);
    const char *bare = strncmp(mn->key, "external.", 9) ? mn->key : mn->key + 9;
    for (int f = 0; f < N_FAMILIES; f++)
        if (!strcmp(FAMILIES[f].elliot, bare)) m->fam = &FAMILIES[f];
    if (!m->fam) {
        char msg[512];
        int at = snprintf(msg, sizeof msg, "model '%s' is not one mrec has (", mn->key);
        for (int f = 0; f < N_FAMILIES; f++) at += snprintf(msg + at, sizeof msg - at, "%s%s", f ? ", " : "", FAMILIES[f].elliot);
        snprintf(msg + at, sizeof msg - at, ")");
        return bad(c, mn, msg);
    }
    if (mn->kind != MREC_CFG_MAP) return bad(c, mn, "a model is a map of meta and hyper-parameters");
    /* meta */
    const mrec_cfg_node *meta = mrec_cfg_get(mn, "meta");
    static const char *const mkeys[] = {"hyper_opt_alg", "verbose", "save_weights", "save_recs", "validation_rate", "validation_metric",
                                        "restore", "early_stopping", NULL};
    mrec_status st = meta ? mrec_cfg_check_keys(c, meta, "meta", mkeys) : MREC_OK;
    const char *alg = "grid", *vm = NULL;
    long rate = 1, patience = 1000000;
    int save_w = 0, restore = 0, verbose = 0;
    if (!st && meta) st = mrec_cfg_string(c, meta, "hyper_opt_alg", 0, &alg);
    if (!st && strcmp(alg, "grid")) st = bad(c, mrec_cfg_get(meta, "hyper_opt_alg"), "hyper_opt_alg: mrec searches grids only");
    if (!st && meta) st = mrec_cfg_int(c, meta, "validation_rate", 0, 1, 100000, &rate);
    if (!st && meta) st = mrec_cfg_string(c, meta, "validation_metric", 0, &vm);
    if (!st && meta) st = mrec_cfg_bool(c, meta, "save_weights", 0, &save_w);
    if (!st && meta) st = mrec_cfg_bool(c, meta, "restore", 0, &restore);
    if (!st && meta) st = mrec_cfg_bool(c, meta, "verbose", 0, &verbose);
    if (!st && meta) st = mrec_cfg_bool(c, meta, "save_recs", 0, &m->save_recs);
    if (!st && (save_w || restore)) st = bad(c, meta, "save_weights and restore are not supported (mrec keeps no model files)");
    const mrec_cfg_node *es = meta ? mrec_cfg_get(meta, "early_stopping") : NULL;
    if (!st && es) {
        static const char *const ekeys[] = {"patience", "monitor", "mode", "verbose", "min_delta", "rel_delta", "baseline", NULL};
        if (!(st = mrec_cfg_check_keys(c, es, "early_stopping", ekeys))) st = mrec_cfg_int(c, es, "patience", 1, 1, 100000, &patience);
    }
    /* validation_metric Recall@20 -> recall@20; without one, Elliot's first metric at the first cutoff */
    char vname[32];
    int vk = e->k[0];
    snprintf(vname, sizeof vname, "%s", e->metric_elliot[0]);
    if (!st && vm && sscanf(vm, "%31[^@]@%d", vname, &vk) != 2) st = bad(c, mrec_cfg_get(meta, "validation_metric"), "validation_metric is Metric@K");
    int known_k = 0;
    for (int i = 0; i < e->n_k; i++) known_k |= e->k[i] == vk;
    if (!st && (!mrec_metric_of(vname) || !known_k))
        st = bad(c, mrec_cfg_get(meta, "validation_metric"), "validation_metric must be one of simple_metrics at one of the cutoffs");
    if (st) return st;
    snprintf(m->select, sizeof m->select, "%s@%d", mrec_metric_of(vname), vk);
    int in_metrics = 0;
    for (int i = 0; i < 8 && e->metric_elliot[i][0]; i++) in_metrics |= !strcmp(e->metric_elliot[i], vname);
    if (!in_metrics) return bad(c, mrec_cfg_get(meta, "validation_metric"), "validation_metric must be one of simple_metrics");
    m->eval_every = (int)rate, m->patience = (int)patience;
    /* hyper-parameters: each known to the family; lists are grid axes */
    for (const mrec_cfg_node *p = mn->child; p; p = p->next) {
        if (!strcmp(p->key, "meta")) continue;
        int known = 0;
        for (int h = 0; h < 16 && m->fam->params[h].key; h++) known |= !strcmp(m->fam->params[h].key, p->key);
        if (!known) {
            char msg[512];
            int at = snprintf(msg, sizeof msg, "'%s' is not a hyper-parameter of mrec's %s (", p->key, m->fam->elliot);
            for (int h = 0; h < 16 && m->fam->params[h].key; h++)
                at += snprintf(msg + at, sizeof msg - at, "%s%s", h ? ", " : "", m->fam->params[h].key);
            snprintf(msg + at, sizeof msg - at, ")");
            return bad(c, p, msg);
        }
        if (p->kind == MREC_CFG_MAP || (p->kind == MREC_CFG_SEQ && !mrec_cfg_count(p))) return bad(c, p, "a hyper-parameter is a value or a list");
        for (const mrec_cfg_node *v = p->kind == MREC_CFG_SEQ ? p->child : p; v; v = p->kind == MREC_CFG_SEQ ? v->next : NULL)
            if (v->kind != MREC_CFG_SCALAR) return bad(c, v, "grid values are plain values");
        if (m->n_axes == MAX_AXES) return bad(c, p, "at most 16 hyper-parameters");
        m->axis[m->n_axes++] = p;
    }
    /* modalities: ('visual', 'textual') picks side_information in that order; all of it by default */
    if (m->fam->multimodal) {
        const char *mods = NULL;
        const mrec_cfg_node *mn_mod = mrec_cfg_get(mn, "modalities");
        if (mn_mod && mn_mod->kind == MREC_CFG_SCALAR) mods = mn_mod->value;
        int want_v = mods ? strstr(mods, "visual") != NULL : e->visual[0] != 0, want_t = mods ? strstr(mods, "textual") != NULL : e->textual[0] != 0;
        int vfirst = !mods || !want_t || !want_v || strstr(mods, "visual") < strstr(mods, "textual");
        if ((want_v && !e->visual[0]) || (want_t && !e->textual[0]))
            return bad(c, mn_mod ? mn_mod : mn, "the model wants a modality that data_config.side_information does not give");
        size_t at = 0;
        for (int pass = 0; pass < 2; pass++) {
            int vis = vfirst ? pass == 0 : pass == 1;
            if (vis && want_v) at += snprintf(m->modalities + at, sizeof m->modalities - at, "%svisual=%s", at ? "," : "", e->visual);
            if (!vis && want_t) at += snprintf(m->modalities + at, sizeof m->modalities - at, "%stextual=%s", at ? "," : "", e->textual);
        }
        if (!at) return bad(c, mn, "a multimodal model needs side_information");
    }
    e->n_models++;
    return MREC_OK;
}

static mrec_status read_experiment(experiment *e, const mrec_cfg_node *root) {
    const mrec_cfg *c = e->c;
    const mrec_cfg_node *x = root->kind == MREC_CFG_MAP ? mrec_cfg_get(root, "experiment") : NULL;
    if (!x) x = root; /* the section itself (mrec run) */
    if (x->kind != MREC_CFG_MAP) return bad(c, x, "the experiment must be a map");
    static const char *const keys[] = {"dataset", "data_config", "prefiltering", "splitting", "top_k", "evaluation", "gpu", "random_seed",
                                       "models", "backend", "external_models_path", "path_output_rec_result", "path_output_rec_weight",
                                       "path_output_rec_performance", "path_log_folder", "print_results_as_triplets", NULL};
    if (root != x) {
        static const char *const top[] = {"experiment", NULL};
        mrec_status st = mrec_cfg_check_keys(c, root, "the config", top);
        if (st) return st;
    }
    mrec_status st = mrec_cfg_check_keys(c, x, "experiment", keys);
    const char *ds = NULL;
    if (!st) st = mrec_cfg_string(c, x, "dataset", 1, &ds);
    if (!st) snprintf(e->dataset, sizeof e->dataset, "%s", ds);
    long top_k = 10, seed = 42;
    if (!st) st = mrec_cfg_int(c, x, "top_k", 0, 1, 10000, &top_k);
    if (!st) st = mrec_cfg_int(c, x, "random_seed", 0, 0, 1L << 62, &seed);
    e->top_k = (int)top_k;
    if (!st) st = read_data(e, x);
    if (!st) st = read_filters(e, x);
    if (!st) st = read_splitting(e, x);
    char v[32];
    snprintf(v, sizeof v, "%ld", seed);
    if (!st) add_data(e, "--seed-split", v);
    if (!st) st = read_evaluation(e, x);
    const mrec_cfg_node *models = mrec_cfg_get(x, "models");
    if (!st && (!models || models->kind != MREC_CFG_MAP || !mrec_cfg_count(models))) st = bad(c, models ? models : x, "models (a map) is required");
    for (const mrec_cfg_node *m = st ? NULL : models->child; m && !st; m = m->next) st = read_model(e, m);
    return st;
}

/* ---- running the grid ---- */

typedef struct {
    char name[512], params[1024];
    int best_epoch, failed;
    double valid[8][MAX_K], test[8][MAX_K]; /* [metric][cutoff] */
} point;

/* Elliot's run name: Model_key=value_..., '.' written '$'. */
static void point_name(char *out, size_t cap, const model_spec *m, const int *pick) {
    size_t at = snprintf(out, cap, "%s", m->fam->elliot);
    for (int a = 0; a < m->n_axes && at < cap; a++) {
        const mrec_cfg_node *p = m->axis[a], *v = p->kind == MREC_CFG_SEQ ? p->child : p;
        for (int i = 0; i < pick[a]; i++) v = v->next;
        if (!strcmp(p->key, "modalities") || !strcmp(p->key, "loaders")) continue;
        at += snprintf(out + at, cap - at, "_%s=", p->key);
        for (const char *s = v->value; *s && at + 1 < cap; s++)
            if (!strchr("/ '()\"", *s)) out[at++] = *s == '.' ? '$' : *s == ',' ? '-' : *s;
        out[at < cap ? at : cap - 1] = 0;
    }
}

/* One grid point's mrec train arguments beyond the data ones. */
static mrec_status point_args(const experiment *e, const model_spec *m, const int *pick, char store[4][64], char **argv, int *argc) {
    const mrec_cfg *c = e->c;
    int n = *argc, ns = 0;
#define PUSH(s) (argv[n++] = (char *)(s))
#define KEEP(s) (snprintf(store[ns], 64, "%s", (s)), PUSH(store[ns++]))
    const char *factors = "64";
    for (int a = 0; a < m->n_axes; a++) {
        const mrec_cfg_node *p = m->axis[a], *v = p->kind == MREC_CFG_SEQ ? p->child : p;
        for (int i = 0; i < pick[a]; i++) v = v->next;
        if (!strcmp(p->key, "factors")) factors = v->value;
    }
    for (int a = 0; a < m->n_axes; a++) {
        const mrec_cfg_node *p = m->axis[a], *v = p->kind == MREC_CFG_SEQ ? p->child : p;
        for (int i = 0; i < pick[a]; i++) v = v->next;
        const char *flag = NULL;
        for (int h = 0; h < 16 && m->fam->params[h].key; h++)
            if (!strcmp(m->fam->params[h].key, p->key)) flag = m->fam->params[h].flag;
        const char *k = p->key, *val = v->value;
        double num;
        mrec_status st = MREC_OK;
        if (flag) {
            if ((st = mrec_cfg_node_number(c, v, k, -1e12, 1e12, &num))) return st;
            PUSH(flag), PUSH(val);
        } else if (!strcmp(k, "normalize")) {
            if (strcmp(val, "True") && strcmp(val, "true")) return bad(c, v, "normalize: mrec's graph is always normalized (True)");
        } else if (!strcmp(k, "weight_size") || !strcmp(k, "factors_multimod") || !strcmp(k, "multimod_factors")) {
            if ((st = mrec_cfg_node_number(c, v, k, 1, 4096, &num))) return st;
            if (num != atof(factors)) return bad(c, v, "mrec's layers and modality projections have the size of factors");
        } else if (!strcmp(k, "n_layers") || !strcmp(k, "n_ui_layers")) { /* FREEDOM's item graph, LATTICE's two */
            int want = !strcmp(k, "n_layers") ? 1 : 2;
            if ((st = mrec_cfg_node_number(c, v, k, 0, 16, &num))) return st;
            if ((int)num != want) {
                char msg[160];
                snprintf(msg, sizeof msg, "%s: mrec's %s has %d (MMRec's value)", k, m->fam->elliot, want);
                return bad(c, v, msg);
            }
        } else if (!strcmp(k, "mw")) {
            double a, b;
            if (sscanf(val, "(%lf,%lf)", &a, &b) != 2 || fabs(a - 0.1) > 1e-9 || fabs(b - 0.9) > 1e-9)
                return bad(c, v, "mw: mrec's FREEDOM weighs visual 0.1, textual 0.9: (0.1,0.9)");
        } else if (!strcmp(k, "lr_sched")) {
            double f;
            int every;
            char buf[64];
            if (sscanf(val, "(%lf,%d)", &f, &every) != 2 || !(f > 0) || every < 1) return bad(c, v, "lr_sched is (factor,every), like (1.0,50)");
            snprintf(buf, sizeof buf, "%g:%d", f, every);
            PUSH("--lr-decay"), KEEP(buf);
        } else if (!strcmp(k, "comb_mod")) {
            if (strcmp(val, "concat")) return bad(c, v, "comb_mod: mrec's VBPR concatenates the modalities (concat)");
        } else if (!strcmp(k, "similarity")) {
            if (strcmp(val, "cosine")) return bad(c, v, "similarity: mrec's ItemKNN uses cosine");
        } /* modalities and loaders were read with the model */
    }
    char buf[32];
    if (m->fam->trains) {
        snprintf(buf, sizeof buf, "%d", m->eval_every);
        PUSH("--eval-every"), KEEP(buf);
        snprintf(buf, sizeof buf, "%d", m->patience);
        PUSH("--patience"), KEEP(buf);
    }
    if (m->modalities[0]) PUSH("--features"), PUSH(m->modalities);
#undef PUSH
#undef KEEP
    *argc = n;
    return MREC_OK;
}

/* results.tsv of one run: the valid and test rows. */
static int read_results(const char *path, const experiment *e, point *p) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[8192];
    int n_cols = e->n_k * (int)(strlen(e->metrics) ? 1 : 0), got = 0;
    int n_metrics = 0;
    while (n_metrics < 8 && e->metric_elliot[n_metrics][0]) n_metrics++;
    n_cols = n_metrics * e->n_k;
    if (!fgets(line, sizeof line, f)) n_cols = 0;
    while (n_cols && fgets(line, sizeof line, f)) {
        char *save, *tok = strtok_r(line, "\t\n", &save);
        int col = 0, is_test = 0;
        double vals[64];
        int nv = 0;
        for (; tok; tok = strtok_r(NULL, "\t\n", &save), col++) {
            if (col == 1) snprintf(p->params, sizeof p->params, "%s", tok);
            if (col == 2) is_test = !strcmp(tok, "test");
            if (col == 3) p->best_epoch = atoi(tok);
            if (col >= 4 && nv < 64) vals[nv++] = atof(tok);
        }
        if (nv != n_cols) break;
        for (int i = 0; i < n_metrics; i++)
            for (int j = 0; j < e->n_k; j++) (is_test ? p->test : p->valid)[i][j] = vals[i * e->n_k + j];
        got |= is_test ? 2 : 1;
        if (is_test && !(got & 1)) memcpy(p->valid, p->test, sizeof p->valid); /* no validation split: chosen on test */
    }
    fclose(f);
    return got & 2 ? 0 : -1;
}

/* ---- p-values between the best models, per metric, over test users ---- */

typedef struct {
    char **users;
    double *v; /* (n, cols) */
    int n, cols;
} per_user;

static int read_per_user(const char *path, per_user *pu) {
    memset(pu, 0, sizeof *pu);
    FILE *f = fopen(path, "r");
    char line[8192];
    if (!f || !fgets(line, sizeof line, f)) return f ? fclose(f), -1 : -1;
    for (char *p = line; *p; p++) pu->cols += *p == '\t';
    int cap = 0;
    while (fgets(line, sizeof line, f)) {
        if (pu->n == cap) {
            cap = cap ? 2 * cap : 1024;
            pu->users = realloc(pu->users, sizeof *pu->users * (size_t)cap);
            pu->v = realloc(pu->v, sizeof *pu->v * (size_t)cap * pu->cols);
        }
        char *save, *tok = strtok_r(line, "\t\n", &save);
        pu->users[pu->n] = strdup(tok ? tok : "");
        for (int j = 0; j < pu->cols; j++) tok = strtok_r(NULL, "\t\n", &save), pu->v[(size_t)pu->n * pu->cols + j] = tok ? atof(tok) : NAN;
        pu->n++;
    }
    fclose(f);
    return 0;
}

static void free_per_user(per_user *pu) {
    for (int i = 0; i < pu->n; i++) free(pu->users[i]);
    free(pu->users), free(pu->v);
}

static mrec_status write_stats(const experiment *e, const char *which, int wilcoxon, const point *best, per_user *pu, int n_models, int ki) {
    char path[4400], tmp[4500];
    snprintf(path, sizeof path, "%s/stat_%s_cutoff_%d.tsv", e->perf, which, e->k[ki]);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return mrec_fail(MREC_ERR_IO, "%s: cannot create", path);
    fprintf(f, "model_a\tmodel_b\tmetric\tp_value\n");
    int n_metrics = 0;
    while (n_metrics < 8 && e->metric_elliot[n_metrics][0]) n_metrics++;
    for (int a = 0; a < n_models; a++)
        for (int b = a + 1; b < n_models; b++) {
            if (pu[a].n != pu[b].n) continue; /* the same users in the same order, or no test */
            double *x = malloc(sizeof *x * (size_t)(pu[a].n + 1)), *y = malloc(sizeof *y * (size_t)(pu[a].n + 1));
            for (int mi = 0; x && y && mi < n_metrics; mi++) {
                int col = mi * e->n_k + ki;
                for (int u = 0; u < pu[a].n; u++) x[u] = pu[a].v[(size_t)u * pu[a].cols + col], y[u] = pu[b].v[(size_t)u * pu[b].cols + col];
                double p = wilcoxon ? mrec_wilcoxon_p(x, y, pu[a].n) : mrec_paired_ttest_p(x, y, pu[a].n);
                fprintf(f, "%s\t%s\t%s\t%.6g\n", best[a].name, best[b].name, e->metric_elliot[mi], p);
            }
            free(x), free(y);
        }
    int err = ferror(f);
    err |= fclose(f) != 0;
    if (err || rename(tmp, path) != 0) return mrec_fail(MREC_ERR_IO, "%s: write failed", path);
    return MREC_OK;
}

/* ---- outputs ---- */

static FILE *open_tmp(const char *path, char *tmp, size_t cap) {
    snprintf(tmp, cap, "%s.tmp", path);
    return fopen(tmp, "w");
}

static mrec_status close_tmp(FILE *f, const char *tmp, const char *path) {
    if (!f) return mrec_fail(MREC_ERR_IO, "%s: cannot create", path);
    int err = ferror(f);
    err |= fclose(f) != 0;
    if (err || rename(tmp, path) != 0) return remove(tmp), mrec_fail(MREC_ERR_IO, "%s: write failed", path);
    return MREC_OK;
}

static mrec_status write_tables(const experiment *e, point *const *grid, const int *n_points, const int *best) {
    int n_metrics = 0;
    while (n_metrics < 8 && e->metric_elliot[n_metrics][0]) n_metrics++;
    char path[4400], tmp[4500];
    mrec_status st = MREC_OK;
    for (int ki = 0; ki < e->n_k && !st; ki++) {
        snprintf(path, sizeof path, "%s/rec_cutoff_%d_relthreshold_%g.tsv", e->perf, e->k[ki], e->threshold);
        FILE *f = open_tmp(path, tmp, sizeof tmp);
        if (f) {
            fprintf(f, "model");
            for (int i = 0; i < n_metrics; i++) fprintf(f, "\t%s", e->metric_elliot[i]);
            fputc('\n', f);
            for (int m = 0; m < e->n_models; m++) {
                if (best[m] < 0) continue;
                fprintf(f, "%s", grid[m][best[m]].name);
                for (int i = 0; i < n_metrics; i++) fprintf(f, "\t%.6f", grid[m][best[m]].test[i][ki]);
                fputc('\n', f);
            }
        }
        if ((st = close_tmp(f, tmp, path))) break;
        snprintf(path, sizeof path, "%s/grid_cutoff_%d.tsv", e->perf, e->k[ki]);
        f = open_tmp(path, tmp, sizeof tmp);
        if (f) {
            fprintf(f, "model\tbest_epoch");
            for (int s = 0; s < 2; s++)
                for (int i = 0; i < n_metrics; i++) fprintf(f, "\t%s_%s", s ? "test" : "valid", e->metric_elliot[i]);
            fputc('\n', f);
            for (int m = 0; m < e->n_models; m++)
                for (int g = 0; g < n_points[m]; g++) {
                    const point *p = &grid[m][g];
                    if (p->failed) continue;
                    fprintf(f, "%s\t%d", p->name, p->best_epoch);
                    for (int s = 0; s < 2; s++)
                        for (int i = 0; i < n_metrics; i++) fprintf(f, "\t%.6f", (s ? p->test : p->valid)[i][ki]);
                    fputc('\n', f);
                }
        }
        if ((st = close_tmp(f, tmp, path))) break;
        snprintf(path, sizeof path, "%s/bestmodelparams_cutoff_%d_relthreshold_%g.json", e->perf, e->k[ki], e->threshold);
        f = open_tmp(path, tmp, sizeof tmp);
        for (int m = 0, first = 1; f && m < e->n_models; m++) {
            if (best[m] < 0) continue;
            const point *p = &grid[m][best[m]];
            fprintf(f, "%s\n  {\"model\": \"%s\", \"best_epoch\": %d, \"configuration\": {", first ? "[" : ",", p->name, p->best_epoch);
            char params[1024];
            snprintf(params, sizeof params, "%s", p->params);
            int firstp = 1;
            for (char *save, *kv = strtok_r(params, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
                char *eq = strchr(kv, '=');
                if (!eq) continue;
                *eq = 0;
                fprintf(f, "%s\"%s\": \"%s\"", firstp ? "" : ", ", kv, eq + 1);
                firstp = 0;
            }
            fprintf(f, "}}");
            first = 0;
        }
        if (f) fprintf(f, "\n]\n");
        if ((st = close_tmp(f, tmp, path))) break;
    }
    return st;
}

static int usage(FILE *f) {
    fprintf(f,
            "usage: mrec train CONFIG.yml [--out DIR] [--threads N] [--cache DIR|none] [--epochs N]\n"
            "\n"
            "Runs an Elliot experiment: data_config (fixed train/validation/test files, or a dataset with\n"
            "splitting), prefiltering, evaluation (cutoffs, simple_metrics, relevance_threshold, paired_ttest,\n"
            "wilcoxon_test), top_k, and models with meta (hyper_opt_alg: grid, validation_rate,\n"
            "validation_metric, save_recs, early_stopping). List-valued hyper-parameters are grid axes; the\n"
            "best point of each model is chosen on validation. Writes under DIR (default results/<dataset>):\n"
            "performance/rec_cutoff_<k>_relthreshold_<t>.tsv (best models, test), grid_cutoff_<k>.tsv (every\n"
            "point), bestmodelparams_*.json, stat_paired_ttest_* and stat_wilcoxon_test_* (p-values over test\n"
            "users), recs/<model>.tsv (with save_recs), runs/<model>/ and report.html. --epochs caps every\n"
            "model's epochs (for a quick look). Models: MostPop, ItemKNN, BPRMF, LightGCN, NGCF, VBPR, FREEDOM,\n"
            "LATTICE, BM3, NGCFM (with or without Elliot's 'external.' prefix).\n");
    return f == stdout ? 0 : 1;
}

/* Runs the experiment under `root` (a whole Elliot file or the experiment section). */
static const char *report_note;

int mrec_elliot_run(const mrec_cfg *c, const mrec_cfg_node *root, const char *out, int threads, const char *cache, int max_epochs,
                    const char *extra_features, mrec_best *best_out) {
    static experiment e;
    memset(&e, 0, sizeof e);
    e.c = c;
    if (extra_features) { /* mrec run: the folders the extraction just wrote, unless side_information names others */
        const char *v = strstr(extra_features, "visual="), *t = strstr(extra_features, "textual=");
        if (v) snprintf(e.visual, sizeof e.visual, "%.*s", (int)strcspn(v + 7, ","), v + 7);
        if (t) snprintf(e.textual, sizeof e.textual, "%.*s", (int)strcspn(t + 8, ","), t + 8);
    }
    mrec_status st = read_experiment(&e, root);
    if (st) {
        fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
        return 2;
    }
    if (out) snprintf(e.out, sizeof e.out, "%s", out);
    else snprintf(e.out, sizeof e.out, "results/%s", e.dataset);
    snprintf(e.perf, sizeof e.perf, "%s/performance", e.out);
    snprintf(e.recs, sizeof e.recs, "%s/recs", e.out);
    char runs[4200];
    snprintf(runs, sizeof runs, "%s/runs", e.out);
    if ((st = mrec_mkdirs(e.perf)) || (st = mrec_mkdirs(runs)) || (st = mrec_mkdirs(e.recs))) {
        fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
        return 2;
    }
    /* cut-offs as mrec train takes them; the selection cut-off is among them */
    char ks[128], th[32], thr[32], ep[32];
    size_t at = 0;
    for (int i = 0; i < e.n_k; i++) at += snprintf(ks + at, sizeof ks - at, "%s%d", i ? "," : "", e.k[i]);
    snprintf(th, sizeof th, "%d", threads);
    snprintf(thr, sizeof thr, "%g", e.threshold);
    snprintf(ep, sizeof ep, "%d", max_epochs);
    static point *grid[MAX_MODELS];
    int n_points[MAX_MODELS] = {0}, best[MAX_MODELS], rc = 0;
    double t0 = mrec_now(), train_s = 0, eval_s = 0;
    int done = 0, total_runs = 0;
    for (int mi = 0; mi < e.n_models; mi++) {
        int t = 1;
        for (int a = 0; a < e.models[mi].n_axes; a++) t *= e.models[mi].axis[a]->kind == MREC_CFG_SEQ ? mrec_cfg_count(e.models[mi].axis[a]) : 1;
        total_runs += t;
    }
    for (int mi = 0; mi < e.n_models && !rc; mi++) {
        model_spec *m = &e.models[mi];
        int sizes[MAX_AXES], pick[MAX_AXES] = {0}, total = 1;
        for (int a = 0; a < m->n_axes; a++) total *= sizes[a] = m->axis[a]->kind == MREC_CFG_SEQ ? mrec_cfg_count(m->axis[a]) : 1;
        grid[mi] = calloc((size_t)total, sizeof *grid[mi]);
        best[mi] = -1;
        for (int g = 0; g < total && !rc; g++) {
            for (int a = m->n_axes - 1, r = g; a >= 0; a--) pick[a] = r % sizes[a], r /= sizes[a];
            point *p = &grid[mi][g];
            point_name(p->name, sizeof p->name, m, pick);
            char dir[4800], store[4][64], *argv[128];
            snprintf(dir, sizeof dir, "%s/%s", runs, p->name);
            int argc = 0;
            argv[argc++] = "train";
            for (int i = 0; i < e.n_data; i++) argv[argc++] = e.data_argv[i];
            char *fixed[] = {"--model", (char *)m->fam->mrec, "--out", dir, "--k", ks, "--metrics", e.metrics, "--select", m->select,
                             "--threshold", thr, "--threads", th, "--per-user"};
            for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) argv[argc++] = fixed[i];
            if (cache) argv[argc++] = "--cache", argv[argc++] = (char *)cache;
            char topk[32];
            snprintf(topk, sizeof topk, "%d", e.top_k);
            if (m->save_recs) argv[argc++] = "--save-topk", argv[argc++] = topk;
            if ((st = point_args(&e, m, pick, store, argv, &argc))) {
                fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
                rc = 2;
                break;
            }
            if (max_epochs > 0) argv[argc++] = "--epochs", argv[argc++] = ep; /* the later --epochs wins */
            argv[argc] = NULL;
            printf("== %s (%d/%d)\n", p->name, g + 1, total);
            fflush(stdout);
            int r = mrec_cmd_train(argc, argv);
            char res[4900];
            snprintf(res, sizeof res, "%s/results.tsv", dir);
            if (r || read_results(res, &e, p)) {
                fprintf(stderr, "mrec train: %s failed (exit %d)\n", p->name, r);
                rc = r ? r : 2;
                break;
            }
            int sel = 0, sel_k = 0; /* the selection metric's column */
            char sname[32];
            int sk = 0;
            sscanf(m->select, "%31[^@]@%d", sname, &sk);
            for (int i = 0; i < 8 && e.metric_elliot[i][0]; i++)
                if (!strcmp(mrec_metric_of(e.metric_elliot[i]), sname)) sel = i;
            for (int j = 0; j < e.n_k; j++)
                if (e.k[j] == sk) sel_k = j;
            if (best[mi] < 0 || p->valid[sel][sel_k] > grid[mi][best[mi]].valid[sel][sel_k]) best[mi] = g;
            n_points[mi] = g + 1;
            snprintf(res, sizeof res, "%s/timing.tsv", dir);
            FILE *tf = fopen(res, "r");
            double tr = 0, ev = 0;
            if (tf && fscanf(tf, "%*s %*s %*s %lf %lf", &tr, &ev) == 2) train_s += tr, eval_s += ev;
            if (tf) fclose(tf);
            done++;
            double spent = mrec_now() - t0;
            printf("progress: %d of %d runs, %.0f s, ETA %.0f s\n", done, total_runs, spent, spent / done * (total_runs - done));
        }
    }
    if (!rc && (st = write_tables(&e, grid, n_points, best))) rc = 2, fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
    /* recs and significance over the best models */
    per_user pu[MAX_MODELS];
    point bests[MAX_MODELS];
    int nb = 0;
    for (int m = 0; !rc && m < e.n_models; m++) {
        if (best[m] < 0) continue;
        char from[4900], to[4900];
        bests[nb] = grid[m][best[m]];
        snprintf(from, sizeof from, "%s/%s/test_per_user.tsv", runs, bests[nb].name);
        if (read_per_user(from, &pu[nb])) memset(&pu[nb], 0, sizeof pu[nb]);
        nb++;
        if (e.models[m].save_recs) {
            snprintf(from, sizeof from, "%s/%s/recommendations.tsv", runs, grid[m][best[m]].name);
            snprintf(to, sizeof to, "%s/%s.tsv", e.recs, grid[m][best[m]].name);
            FILE *in = fopen(from, "r"), *o = NULL;
            char tmp[5000], line[65536];
            if (in) o = open_tmp(to, tmp, sizeof tmp);
            while (in && o && fgets(line, sizeof line, in)) {
                char *save, *user = strtok_r(line, "\t\n", &save);
                int rank = 1;
                for (char *it = strtok_r(NULL, "\t\n", &save); it; it = strtok_r(NULL, "\t\n", &save)) fprintf(o, "%s\t%s\t%d\n", user, it, rank++);
            }
            if (in) fclose(in);
            if ((st = close_tmp(o, tmp, to))) rc = 2, fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
        }
    }
    for (int ki = 0; !rc && nb > 1 && ki < e.n_k; ki++) {
        if (e.ttest && (st = write_stats(&e, "paired_ttest", 0, bests, pu, nb, ki))) rc = 2;
        if (!rc && e.wilcoxon && (st = write_stats(&e, "wilcoxon_test", 1, bests, pu, nb, ki))) rc = 2;
        if (rc) fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
    }
    for (int i = 0; i < nb; i++) free_per_user(&pu[i]);
    if (!rc) {
        /* the table a user reads first */
        int n_metrics = 0;
        while (n_metrics < 8 && e.metric_elliot[n_metrics][0]) n_metrics++;
        printf("\nbest of each model (chosen on %s; test split):\n%-40s", e.models[0].select, "model");
        for (int i = 0; i < n_metrics; i++) printf(" %9s@%-3d", e.metric_elliot[i], e.k[e.n_k - 1]);
        printf("\n");
        for (int m = 0; m < e.n_models; m++) {
            if (best[m] < 0) continue;
            printf("%-40.40s", grid[m][best[m]].name);
            for (int i = 0; i < n_metrics; i++) printf(" %13.4f", grid[m][best[m]].test[i][e.n_k - 1]);
            printf("\n");
        }
        printf("time: %.1f s training, %.1f s evaluating, %.1f s in all (%d runs)\nresults: %s\n", train_s, eval_s, mrec_now() - t0, done,
               e.out);
        const char *names[MAX_MODELS], *metrics[8];
        double values[MAX_MODELS * 8];
        int nm = 0;
        for (int i = 0; i < n_metrics; i++) metrics[i] = e.metric_elliot[i];
        for (int m = 0; m < e.n_models; m++) {
            if (best[m] < 0) continue;
            names[nm] = grid[m][best[m]].name;
            for (int i = 0; i < n_metrics; i++) values[nm * n_metrics + i] = grid[m][best[m]].test[i][e.n_k - 1];
            nm++;
        }
        if (best_out) {
            memset(best_out, 0, sizeof *best_out);
            best_out->n_metrics = n_metrics, best_out->k = e.k[e.n_k - 1];
            for (int i = 0; i < n_metrics; i++) snprintf(best_out->metric[i], sizeof best_out->metric[0], "%s", metrics[i]);
            for (int m = 0; m < nm && m < MREC_MAX_BEST; m++, best_out->n++) {
                snprintf(best_out->model[m], sizeof best_out->model[0], "%s", names[m]);
                for (int i = 0; i < n_metrics; i++) best_out->value[m][i] = values[m * n_metrics + i];
            }
        }
        char title[256];
        snprintf(title, sizeof title, "mrec: %s", e.dataset);
        mrec_report rep = {.out = e.out, .title = title, .runs = runs, .select = e.models[0].select, .models = names, .metrics = metrics,
                           .values = values, .n_models = nm, .n_metrics = n_metrics, .k = e.k[e.n_k - 1], .note = report_note};
        if ((st = mrec_report_write(&rep))) fprintf(stderr, "mrec train: %s\n", mrec_error_detail()), rc = 2;
    }
    for (int m = 0; m < e.n_models; m++) free(grid[m]);
    return rc;
}

int mrec_cmd_experiment(int argc, char **argv) {
    const char *config = NULL, *out = NULL, *cache = NULL;
    int threads = 0, epochs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout);
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cache") && i + 1 < argc) cache = argv[++i];
        else if (!strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !config) config = argv[i];
        else {
            fprintf(stderr, "mrec train: unexpected '%s'\n", argv[i]);
            return usage(stderr);
        }
    }
    if (!config) return usage(stderr);
    mrec_cfg c;
    if (mrec_cfg_load(&c, config)) {
        fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
        return 2;
    }
    int rc = mrec_elliot_run(&c, c.root, out, threads, cache, epochs, NULL, NULL);
    mrec_cfg_free(&c);
    return rc;
}
