/* elliot_config.c: an Elliot experiment file read into an `experiment`:
 * every key, type and path checked, each model mapped to an mrec trainer, and
 * each grid point turned into mrec train options.
 */
#include "elliot.h"
#include "mrec_parse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

const char *elliot_metric(const char *elliot) {
    for (int i = 0; i < N_METRICS; i++)
        if (!strcmp(METRICS[i][0], elliot)) return METRICS[i][1];
    return NULL;
}

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
    if (must_exist && mrec_check_input(out, key, 1)) { /* a FIFO or a device would block the reader */
        char why[400];
        snprintf(why, sizeof why, "%s", mrec_error_detail());
        return mrec_fail(MREC_ERR_IO, "%s: line %d: %s", e->c->path, mrec_cfg_get(map, key)->line, why);
    }
    return MREC_OK;
}

/* Elliot's tuple "(A, B)": 1 when both parts are numbers as the checked parser reads them. */
static int tuple_numbers(const char *s, double *a, double *b) {
    size_t n = strlen(s);
    const char *comma = strchr(s, ',');
    if (n < 5 || s[0] != '(' || s[n - 1] != ')' || !comma) return 0;
    char first[64], second[64];
    snprintf(first, sizeof first, "%.*s", (int)(comma - s - 1), s + 1);
    snprintf(second, sizeof second, "%.*s", (int)(s + n - 1 - comma - 1), comma + 1);
    const char *fa = first + strspn(first, " "), *fb = second + strspn(second, " "); /* "(0.1, 0.9)" */
    for (char *t = first + strlen(first); t > first && t[-1] == ' ';) *--t = 0;
    for (char *t = second + strlen(second); t > second && t[-1] == ' ';) *--t = 0;
    return !mrec_parse_double(fa, -1e12, 1e12, a) && !mrec_parse_double(fb, -1e12, 1e12, b);
}

/* A grid value that becomes option `flag` of mrec train: a number in the
 * range mrec train holds the option to, refused by key and line. */
static mrec_status train_value(const mrec_cfg *c, const mrec_cfg_node *v, const char *key, const char *flag) {
    double num;
    mrec_status st = mrec_cfg_node_number(c, v, key, -1e300, 1e300, &num);
    if (st || !mrec_train_number_check(flag, v->value)) return st;
    char why[400];
    snprintf(why, sizeof why, "%s: %s", key, mrec_error_detail());
    return bad(c, v, why);
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
        if (!(st = path_value(e, sp, "save_folder", 1, 0, folder, sizeof folder))) add_data(e, "--save-splits", folder); /* made by the run */
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
        const char *name = m->kind == MREC_CFG_SCALAR ? elliot_metric(m->value) : NULL;
        if (!name) {
            char msg[256];
            snprintf(msg, sizeof msg, "metric '%s' is not one mrec has (Recall, Precision, HR, nDCG, nDCGRendle2020, MRR, MAP)",
                     m->kind == MREC_CFG_SCALAR ? m->value : "?");
            st = bad(c, m, msg);
        } else {
            snprintf(e->metric_elliot[n], sizeof e->metric_elliot[0], "%s", m->value);
            at += snprintf(e->metrics + at, sizeof e->metrics - at, "%s%s", at ? "," : "", name);
            e->n_metrics = n + 1;
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
    if (!m->fam && e->skip_unsupported) {
        printf("note: %s (line %d) is not a model mrec has: left out (--skip-unsupported)\n", mn->key, mn->line);
        return MREC_OK;
    }
    if (!m->fam) {
        char msg[512];
        int at = snprintf(msg, sizeof msg, "model '%s' is not one mrec has (", mn->key);
        for (int f = 0; f < N_FAMILIES; f++) at += snprintf(msg + at, sizeof msg - at, "%s%s", f ? ", " : "", FAMILIES[f].elliot);
        snprintf(msg + at, sizeof msg - at, "; --skip-unsupported leaves such models out)");
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
    const char *vat = vm ? strchr(vm, '@') : NULL;
    long vkl = 0;
    if (!st && vm && (!vat || vat - vm > 31 || mrec_parse_int(vat + 1, 1, 100000, &vkl)))
        st = bad(c, mrec_cfg_get(meta, "validation_metric"), "validation_metric is Metric@K");
    else if (!st && vm) snprintf(vname, sizeof vname, "%.*s", (int)(vat - vm), vm), vk = (int)vkl;
    int known_k = 0;
    for (int i = 0; i < e->n_k; i++) known_k |= e->k[i] == vk;
    if (!st && (!elliot_metric(vname) || !known_k))
        st = bad(c, mrec_cfg_get(meta, "validation_metric"), "validation_metric must be one of simple_metrics at one of the cutoffs");
    if (st) return st;
    snprintf(m->select, sizeof m->select, "%s@%d", elliot_metric(vname), vk);
    int in_metrics = 0;
    for (int i = 0; i < e->n_metrics; i++) in_metrics |= !strcmp(e->metric_elliot[i], vname);
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
        const char *flag = NULL; /* every grid value is checked here, before the first point trains */
        for (int h = 0; h < 16 && m->fam->params[h].key; h++)
            if (!strcmp(m->fam->params[h].key, p->key)) flag = m->fam->params[h].flag;
        for (const mrec_cfg_node *v = p->kind == MREC_CFG_SEQ ? p->child : p; v; v = p->kind == MREC_CFG_SEQ ? v->next : NULL) {
            if (v->kind != MREC_CFG_SCALAR) return bad(c, v, "grid values are plain values");
            mrec_status vst = flag ? train_value(c, v, p->key, flag) : MREC_OK;
            if (vst) return vst;
        }
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

mrec_status elliot_read(experiment *e, const mrec_cfg_node *root) {
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

void elliot_point_name(char *out, size_t cap, const model_spec *m, const int *pick) {
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

mrec_status elliot_point_args(const experiment *e, const model_spec *m, const int *pick, char store[4][64], char **argv, int *argc) {
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
            if ((st = train_value(c, v, k, flag))) return st;
            PUSH(flag), PUSH(val);
        } else if (!strcmp(k, "normalize")) {
            if (strcmp(val, "True") && strcmp(val, "true")) return bad(c, v, "normalize: mrec's graph is always normalized (True)");
        } else if (!strcmp(k, "weight_size") || !strcmp(k, "factors_multimod") || !strcmp(k, "multimod_factors")) {
            if ((st = mrec_cfg_node_number(c, v, k, 1, 4096, &num))) return st;
            double f = NAN;
            mrec_parse_double(factors, 1, 4096, &f); /* a bad factors is refused as --dim; NAN matches nothing */
            if (num != f) return bad(c, v, "mrec's layers and modality projections have the size of factors");
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
            if (!tuple_numbers(val, &a, &b) || fabs(a - 0.1) > 1e-9 || fabs(b - 0.9) > 1e-9)
                return bad(c, v, "mw: mrec's FREEDOM weighs visual 0.1, textual 0.9: (0.1,0.9)");
        } else if (!strcmp(k, "lr_sched")) {
            double f, every_d;
            char buf[64];
            if (!tuple_numbers(val, &f, &every_d) || !(f > 0) || !(f <= 1) || every_d != floor(every_d) || !(every_d >= 1 && every_d <= 1000000))
                return bad(c, v, "lr_sched is (factor,every), like (1.0,50): factor in (0, 1], every in [1, 1000000]");
            int every = (int)every_d;
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