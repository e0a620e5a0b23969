/* elliot_config.c: an Elliot experiment file read into an `experiment`:
 * every key, type and path checked, each model found in the registry
 * (mrec_registry.h) with its Elliot keys, and each grid point turned into
 * the mrec_train_spec of its run.
 */
#include "elliot.h"
#include "mrec_options.h"
#include "mrec_parse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Elliot's metric names -> mrec's (Elliot's nDCG has graded gains, its MAP averages P@1..P@K; the
 * beyond-accuracy ones are Elliot's own definitions, beyond.c). */
static const char *const METRICS[][2] = {
    {"Recall", "recall"}, {"Precision", "precision"}, {"HR", "hr"}, {"nDCG", "ndcg_graded"}, {"nDCGRendle2020", "ndcg"},
    {"MRR", "mrr"}, {"MAP", "map_elliot"}, {"EFD", "efd"}, {"EPC", "epc"}, {"Gini", "gini"}, {"SEntropy", "sentropy"},
    {"ItemCoverage", "item_coverage"}, {"UserCoverage", "user_coverage"}, {"APLT", "aplt"}, {"ACLT", "aclt"}, {"ARP", "arp"},
    {"PopREO", "pop_reo"}, {"PopRSP", "pop_rsp"}};
#define N_METRICS (int)(sizeof METRICS / sizeof METRICS[0])

/* Elliot looks metric names up in lower case: "recall" and "RECALL" are Recall. */
static int metric_row(const char *elliot) {
    for (int i = 0; i < N_METRICS; i++)
        if (!strcasecmp(METRICS[i][0], elliot)) return i;
    return -1;
}

const char *elliot_metric(const char *elliot) {
    int i = metric_row(elliot);
    return i < 0 ? NULL : METRICS[i][1];
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

/* A grid value of hyper-parameter h: a plain number where h is a number, then in h's range; refused by key and line. */
static mrec_status param_value(const mrec_cfg *c, const mrec_cfg_node *v, const char *key, mrec_hp h, mrec_param_value *out) {
    double num;
    mrec_param_type type = mrec_param_spec_of(h)->type;
    mrec_status st = type == MREC_PARAM_ENUM || type == MREC_PARAM_LIST ? MREC_OK : mrec_cfg_node_number(c, v, key, -1e300, 1e300, &num);
    if (st || !mrec_param_parse(h, v->value, out)) return st;
    char why[400];
    snprintf(why, sizeof why, "%s: %s", key, mrec_error_detail());
    return bad(c, v, why);
}

static mrec_status read_data(experiment *e, const mrec_cfg_node *x) {
    const mrec_cfg *c = e->c;
    const mrec_cfg_node *dc = mrec_cfg_get(x, "data_config");
    if (!dc || dc->kind != MREC_CFG_MAP) return bad(c, dc ? dc : x, "data_config (a map) is required");
    static const char *const keys[] = {"strategy", "train_path", "validation_path", "test_path", "dataset_path", "side_information", NULL};
    mrec_status st = mrec_cfg_check_keys(c, dc, "experiment.data_config", keys);
    const char *strategy = NULL;
    if (!st) st = mrec_cfg_string(c, dc, "strategy", 1, &strategy);
    char a[4096] = "", b[4096] = "", t[4096] = "";
    e->base.data = e->data, e->base.format = "tsv";
    if (!st && !strcmp(strategy, "fixed")) {
        if (!(st = path_value(e, dc, "train_path", 1, 1, a, sizeof a)) && !(st = path_value(e, dc, "validation_path", 0, 1, b, sizeof b)))
            st = path_value(e, dc, "test_path", 1, 1, t, sizeof t);
        if (!st) snprintf(e->data, sizeof e->data, "%s,%s%s%s", a, b, *b ? "," : "", t);
        if (!st && mrec_cfg_get(x, "splitting"))
            st = bad(c, mrec_cfg_get(x, "splitting"), "splitting goes with strategy dataset; strategy fixed brings its own split");
    } else if (!st && !strcmp(strategy, "dataset")) {
        if (!(st = path_value(e, dc, "dataset_path", 1, 1, a, sizeof a))) snprintf(e->data, sizeof e->data, "%s", a);
    } else if (!st) {
        st = bad(c, mrec_cfg_get(dc, "strategy"), "strategy is fixed or dataset (hierarchy is not supported)");
    }
    const mrec_cfg_node *side = mrec_cfg_get(dc, "side_information");
    if (!st && side && side->kind != MREC_CFG_SEQ) st = bad(c, side, "side_information must be a list");
    for (const mrec_cfg_node *s = st || !side ? NULL : side->child; s && !st; s = s->next) {
        static const char *const skeys[] = {"dataloader", "visual_features", "textual_features", "clip_model", "items_path", "id_column",
                                            "text_column", "images_path", "image_column", NULL};
        const char *loader = NULL;
        if (!(st = mrec_cfg_check_keys(c, s, "side_information", skeys))) st = mrec_cfg_string(c, s, "dataloader", 1, &loader);
        if (!st && !strcmp(loader, "VisualAttribute")) st = path_value(e, s, "visual_features", 1, 1, e->visual, sizeof e->visual);
        else if (!st && !strcmp(loader, "TextualAttribute")) st = path_value(e, s, "textual_features", 1, 1, e->textual, sizeof e->textual);
        else if (!st && !strcmp(loader, "CLIPItems")) { /* clip-e2e's photos and texts, read by the CLIP towers in training */
            mrec_train_spec *b = &e->base;
            if (!(st = path_value(e, s, "clip_model", 1, 1, e->clip, sizeof e->clip)) &&
                !(st = path_value(e, s, "items_path", 1, 1, e->clip_items, sizeof e->clip_items)) &&
                !(st = path_value(e, s, "images_path", 0, 1, e->clip_images, sizeof e->clip_images)) &&
                !(st = mrec_cfg_string(c, s, "id_column", 0, &b->clip_id_col)) && !(st = mrec_cfg_string(c, s, "text_column", 1, &b->clip_text_col)))
                st = mrec_cfg_string(c, s, "image_column", 0, &b->clip_image_col);
            if (!st && !e->clip_images[0] && !b->clip_image_col) st = bad(c, s, "CLIPItems needs images_path or image_column");
            if (!st) b->clip = e->clip, b->clip_items = e->clip_items, b->clip_images = e->clip_images[0] ? e->clip_images : NULL;
        } else if (!st) st = bad(c, mrec_cfg_get(s, "dataloader"), "dataloader is VisualAttribute, TextualAttribute or CLIPItems");
    }
    return st;
}

/* prefiltering -> the spec's prefilter steps, in the file's order (Elliot applies them one after the other). */
static mrec_status read_filters(experiment *e, const mrec_cfg_node *x) {
    const mrec_cfg *c = e->c;
    const mrec_cfg_node *pf = mrec_cfg_get(x, "prefiltering");
    if (!pf) return MREC_OK;
    if (pf->kind == MREC_CFG_SCALAR) return bad(c, pf, "prefiltering must be a filter or a list of filters");
    mrec_status st = MREC_OK;
    int one = pf->kind == MREC_CFG_MAP; /* a single filter, not in a list */
    size_t at = 0;
    for (const mrec_cfg_node *f = one ? pf : pf->child; f && !st; f = one ? NULL : f->next) {
        static const char *const keys[] = {"strategy", "threshold", "core", "rounds", NULL};
        const char *s = NULL;
        double num = 0;
        long core = 0, rounds = 1;
        char step[64] = "";
        if (!(st = mrec_cfg_check_keys(c, f, "prefiltering", keys))) st = mrec_cfg_string(c, f, "strategy", 1, &s);
        if (st) break;
        if (!strcmp(s, "global_threshold")) {
            const mrec_cfg_node *t = mrec_cfg_get(f, "threshold");
            if (t && t->kind == MREC_CFG_SCALAR && !strcmp(t->value, "average"))
                st = bad(c, t, "global_threshold: threshold average is not supported (give the number)");
            else if (!(st = mrec_cfg_number(c, f, "threshold", 1, -1e9, 1e9, &num))) snprintf(step, sizeof step, "rating:%.17g", num);
        } else if (!strcmp(s, "user_k_core") || !strcmp(s, "item_k_core") || !strcmp(s, "iterative_k_core")) {
            if (!(st = mrec_cfg_int(c, f, "core", 1, 1, 1000000, &core)))
                snprintf(step, sizeof step, "%s:%ld", !strcmp(s, "user_k_core") ? "user" : !strcmp(s, "item_k_core") ? "item" : "kcore", core);
        } else if (!strcmp(s, "n_rounds_k_core")) {
            if (!(st = mrec_cfg_int(c, f, "core", 1, 1, 1000000, &core)) && !(st = mrec_cfg_int(c, f, "rounds", 1, 1, 1000, &rounds)))
                snprintf(step, sizeof step, "rounds:%ld:%ld", core, rounds);
        } else {
            st = bad(c, mrec_cfg_get(f, "strategy"), "prefiltering strategy is global_threshold, user_k_core, item_k_core, iterative_k_core "
                                                     "or n_rounds_k_core");
        }
        if (!st && at + strlen(step) + 2 > sizeof e->prefilter) st = bad(c, f, "at most 16 prefiltering steps");
        if (!st) at += (size_t)snprintf(e->prefilter + at, sizeof e->prefilter - at, "%s%s", at ? "," : "", step);
    }
    if (!st && at) e->base.prefilter = e->prefilter;
    return st;
}

/* One of test_splitting / validation_splitting as a part of --split elliot:TEST[/VALID] (mrec_elliot_part_parse);
 * *n_folds: how many folds it makes. */
static mrec_status read_split_part(experiment *e, const mrec_cfg_node *part, const char *name, char *out, size_t cap, int *n_folds) {
    const mrec_cfg *c = e->c;
    static const char *const keys[] = {"strategy", "test_ratio", "leave_n_out", "folds", "timestamp", "min_below", "min_over", NULL};
    const char *kind = NULL, *ts = NULL;
    double ratio = 0;
    long leave = 0, folds = 1, below = 1, over = 1;
    mrec_status st = mrec_cfg_check_keys(c, part, name, keys);
    if (!st) st = mrec_cfg_string(c, part, "strategy", 1, &kind);
    if (!st && (!strcmp(kind, "random_subsampling") || !strcmp(kind, "temporal_hold_out"))) {
        if (!(st = mrec_cfg_number(c, part, "test_ratio", 0, -1e9, 1e9, &ratio)) && mrec_cfg_get(part, "test_ratio") && !(ratio > 0 && ratio < 1))
            st = bad(c, mrec_cfg_get(part, "test_ratio"), "test_ratio must lie in (0, 1)");
        if (!st) st = mrec_cfg_int(c, part, "leave_n_out", 0, 1, 1000000, &leave);
        if (!st) st = mrec_cfg_int(c, part, "folds", 0, 1, MREC_ELLIOT_MAX_FOLDS, &folds);
        if (!st && folds != 1 && kind[0] == 't') st = bad(c, mrec_cfg_get(part, "folds"), "folds: temporal_hold_out makes one fold");
        if (!st && !ratio == !leave) st = bad(c, part, "give test_ratio or leave_n_out, one of the two");
        if (!st && (mrec_cfg_get(part, "timestamp") || mrec_cfg_get(part, "min_below") || mrec_cfg_get(part, "min_over")))
            st = bad(c, part, "timestamp, min_below and min_over go with fixed_timestamp");
        size_t at = 0;
        if (!st && leave) at = (size_t)snprintf(out, cap, "%s:n=%ld", kind[0] == 'r' ? "random" : "temporal", leave);
        else if (!st) at = (size_t)snprintf(out, cap, "%s:%.17g", kind[0] == 'r' ? "random" : "temporal", ratio);
        if (!st && folds > 1 && at < cap) snprintf(out + at, cap - at, ",folds=%ld", folds);
        if (!st) *n_folds = (int)folds;
    } else if (!st && !strcmp(kind, "random_cross_validation")) {
        if (!mrec_cfg_get(part, "folds")) st = bad(c, part, "random_cross_validation needs folds");
        if (!st) st = mrec_cfg_int(c, part, "folds", 0, 2, MREC_ELLIOT_MAX_FOLDS, &folds);
        for (const char *const *k = keys + 1; !st && *k; k++)
            if (strcmp(*k, "folds") && mrec_cfg_get(part, *k)) st = bad(c, mrec_cfg_get(part, *k), "random_cross_validation takes folds only");
        if (!st) snprintf(out, cap, "kfold:%ld", folds), *n_folds = (int)folds;
    } else if (!st && !strcmp(kind, "fixed_timestamp")) {
        if (!(st = mrec_cfg_string(c, part, "timestamp", 1, &ts)) && !(st = mrec_cfg_int(c, part, "min_below", 0, 0, 1000000, &below)))
            st = mrec_cfg_int(c, part, "min_over", 0, 0, 1000000, &over);
        if (!st && (mrec_cfg_get(part, "test_ratio") || mrec_cfg_get(part, "leave_n_out") || mrec_cfg_get(part, "folds")))
            st = bad(c, part, "fixed_timestamp takes timestamp (seconds, a date or best), min_below and min_over");
        if (!st && strcmp(ts, "best") && (mrec_cfg_get(part, "min_below") || mrec_cfg_get(part, "min_over")))
            st = bad(c, part, "min_below and min_over go with timestamp: best");
        mrec_elliot_part probe;
        char one[160];
        snprintf(one, sizeof one, "timestamp:%s", ts ? ts : "");
        if (!st && mrec_elliot_part_parse(one, &probe)) st = bad(c, mrec_cfg_get(part, "timestamp"), mrec_error_detail());
        if (!st && !strcmp(ts, "best") && (below != 1 || over != 1)) snprintf(out, cap, "timestamp:best:%ld:%ld", below, over);
        else if (!st) snprintf(out, cap, "%s", one);
    } else if (!st) {
        st = bad(c, mrec_cfg_get(part, "strategy"), "splitting strategy is random_subsampling, random_cross_validation, "
                                                    "temporal_hold_out or fixed_timestamp");
    }
    return st;
}

/* test_splitting + validation_splitting -> --split elliot:TEST[/VALID], Elliot's splitter exactly (split_elliot.c). */
static mrec_status read_splitting(experiment *e, const mrec_cfg_node *x) {
    const mrec_cfg *c = e->c;
    const mrec_cfg_node *sp = mrec_cfg_get(x, "splitting");
    e->folds[0] = e->folds[1] = 1;
    if (!sp) return MREC_OK;
    static const char *const keys[] = {"save_on_disk", "save_folder", "test_splitting", "validation_splitting", NULL};
    mrec_status st = mrec_cfg_check_keys(c, sp, "experiment.splitting", keys);
    const mrec_cfg_node *parts[2] = {mrec_cfg_get(sp, "test_splitting"), mrec_cfg_get(sp, "validation_splitting")};
    if (!st && !parts[0]) st = bad(c, sp, "splitting needs test_splitting");
    char text[2][160] = {"", ""};
    for (int p = 0; p < 2 && !st; p++)
        if (parts[p]) st = read_split_part(e, parts[p], p ? "validation_splitting" : "test_splitting", text[p], sizeof text[p], &e->folds[p]);
    if (!st) {
        snprintf(e->split, sizeof e->split, "elliot:%s%s%s", text[0], parts[1] ? "/" : "", text[1]);
        e->base.split = e->split;
    }
    int save = 0;
    if (!st) st = mrec_cfg_bool(c, sp, "save_on_disk", 0, &save);
    if (!st && save && !(st = path_value(e, sp, "save_folder", 1, 0, e->save_folder, sizeof e->save_folder)))
        e->base.save_splits = e->save_folder, e->base.save_splits_elliot = 1; /* made by the run */
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
        else if (!(st = mrec_cfg_node_number(c, k, "cutoffs", 1, 10000, &v))) e->base.k[e->n_k] = e->k[e->n_k] = (int)v, e->base.n_k = ++e->n_k;
        if (!st && e->n_k > 1 && e->k[e->n_k - 1] <= e->k[e->n_k - 2]) st = bad(c, cut, "cutoffs must ascend");
    }
    if (!st && (met->kind != MREC_CFG_SEQ || !mrec_cfg_count(met) || mrec_cfg_count(met) > 8)) st = bad(c, met, "simple_metrics: a list of 1 to 8");
    int n = 0;
    for (const mrec_cfg_node *m = st ? NULL : met->child; m && !st; m = m->next, n++) {
        const char *name = m->kind == MREC_CFG_SCALAR ? elliot_metric(m->value) : NULL;
        if (!name) {
            char msg[256];
            snprintf(msg, sizeof msg, "metric '%s' is not one mrec has (Recall, Precision, HR, nDCG, nDCGRendle2020, MRR, MAP, EFD, EPC, "
                     "Gini, SEntropy, ItemCoverage, UserCoverage, APLT, ACLT, ARP, PopREO, PopRSP)",
                     m->kind == MREC_CFG_SCALAR ? m->value : "?");
            st = bad(c, m, msg);
        } else {
            /* tables name it as Elliot does, whatever its case in the file */
            snprintf(e->metric_elliot[n], sizeof e->metric_elliot[0], "%s", METRICS[metric_row(m->value)][0]);
            mrec_metric_parse(name, &e->base.metrics[n]);
            e->base.n_metrics = e->n_metrics = n + 1;
        }
    }
    if (!st) st = mrec_cfg_number(c, ev, "relevance_threshold", 0, -1e9, 1e9, &e->threshold);
    e->base.threshold = (float)e->threshold;
    if (!st) st = mrec_cfg_bool(c, ev, "paired_ttest", 0, &e->ttest);
    if (!st) st = mrec_cfg_bool(c, ev, "wilcoxon_test", 0, &e->wilcoxon);
    return st;
}

/* A model's Elliot class in the registry ("external." may come before it); Elliot's names only. */
static const mrec_model_entry *elliot_model(const char *name) {
    const char *bare = strncmp(name, "external.", 9) ? name : name + 9;
    for (int i = 0; i < mrec_model_count(); i++)
        if (!strcmp(mrec_model_at(i)->elliot, bare)) return mrec_model_at(i);
    return NULL;
}

/* Every Elliot key the model takes: its hyper-parameters', those held at its value, and the modalities'. */
static void model_keys(char *out, size_t cap, const mrec_model_entry *e) {
    size_t at = 0;
    out[0] = 0;
    for (int i = 0; i < MREC_MODEL_MAX_PARAMS && at < cap; i++)
        if (e->params[i].elliot) at += (size_t)snprintf(out + at, cap - at, "%s%s", at ? ", " : "", e->params[i].elliot);
    for (int i = 0; i < MREC_MODEL_MAX_FIXED && e->fixed[i].key && at < cap; i++)
        at += (size_t)snprintf(out + at, cap - at, "%s%s", at ? ", " : "", e->fixed[i].key);
    if (e->needs != MREC_NEEDS_NONE && at < cap) snprintf(out + at, cap - at, "%smodalities, loaders", at ? ", " : "");
}

static int is_modalities_key(const char *key) { return !strcmp(key, "modalities") || !strcmp(key, "loaders"); }

static mrec_status read_model(experiment *e, const mrec_cfg_node *mn) {
    const mrec_cfg *c = e->c;
    if (e->n_models == MAX_MODELS) return bad(c, mn, "at most 16 models");
    model_spec *m = &e->models[e->n_models];
    memset(m, 0, sizeof *m);
    m->node = mn;
    snprintf(m->name, sizeof m->name, "%s", mn->key);
    m->model = elliot_model(mn->key);
    if (!m->model && e->skip_unsupported) {
        printf("note: %s (line %d) is not a model mrec has: left out (--skip-unsupported)\n", mn->key, mn->line);
        return MREC_OK;
    }
    if (!m->model) {
        char msg[512];
        int at = snprintf(msg, sizeof msg, "model '%s' is not one mrec has (", mn->key);
        for (int f = 0; f < mrec_model_count(); f++) at += snprintf(msg + at, sizeof msg - at, "%s%s", f ? ", " : "", mrec_model_at(f)->elliot);
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
    int verbose = 0;
    if (!st && meta) st = mrec_cfg_string(c, meta, "hyper_opt_alg", 0, &alg);
    if (!st && strcmp(alg, "grid")) st = bad(c, mrec_cfg_get(meta, "hyper_opt_alg"), "hyper_opt_alg: mrec searches grids only");
    if (!st && meta) st = mrec_cfg_int(c, meta, "validation_rate", 0, 1, 100000, &rate);
    if (!st && meta) st = mrec_cfg_string(c, meta, "validation_metric", 0, &vm);
    if (!st && meta) st = mrec_cfg_bool(c, meta, "save_weights", 0, &m->save_weights);
    if (!st && meta) st = mrec_cfg_bool(c, meta, "restore", 0, &m->restore);
    if (!st && meta) st = mrec_cfg_bool(c, meta, "verbose", 0, &verbose);
    if (!st && meta) st = mrec_cfg_bool(c, meta, "save_recs", 0, &m->save_recs);
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
    mrec_metric_parse(elliot_metric(vname), &m->select_metric), m->select_k = vk;
    int in_metrics = 0;
    for (int i = 0; i < e->n_metrics; i++) in_metrics |= !strcmp(e->metric_elliot[i], vname);
    if (!in_metrics) return bad(c, mrec_cfg_get(meta, "validation_metric"), "validation_metric must be one of simple_metrics");
    m->eval_every = (int)rate, m->patience = (int)patience;
    /* hyper-parameters: each an Elliot key of the model; lists are grid axes */
    const mrec_model_entry *me = m->model;
    for (const mrec_cfg_node *p = mn->child; p; p = p->next) {
        if (!strcmp(p->key, "meta")) continue;
        const mrec_model_param *q = mrec_model_param_elliot(me, p->key);
        if (!q && !mrec_model_fixed(me, p->key) && !(me->needs != MREC_NEEDS_NONE && is_modalities_key(p->key))) {
            char msg[768], keys[512];
            model_keys(keys, sizeof keys, me);
            snprintf(msg, sizeof msg, "'%s' is not a hyper-parameter of mrec's %s (%s)", p->key, me->elliot, keys);
            return bad(c, p, msg);
        }
        if (p->kind == MREC_CFG_MAP || (p->kind == MREC_CFG_SEQ && !mrec_cfg_count(p))) return bad(c, p, "a hyper-parameter is a value or a list");
        /* every grid value is checked here, before the first point trains */
        for (const mrec_cfg_node *v = p->kind == MREC_CFG_SEQ ? p->child : p; v; v = p->kind == MREC_CFG_SEQ ? v->next : NULL) {
            if (v->kind != MREC_CFG_SCALAR) return bad(c, v, "grid values are plain values");
            mrec_param_value pv;
            mrec_status vst = q ? param_value(c, v, p->key, q->hp, &pv) : MREC_OK;
            if (vst) return vst;
        }
        if (m->n_axes == MAX_AXES) return bad(c, p, "at most 16 hyper-parameters");
        m->axis[m->n_axes++] = p;
    }
    /* modalities: ('visual', 'textual') picks side_information in that order; all of it by default */
    if (me->needs != MREC_NEEDS_NONE) {
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
        if (me->needs == MREC_NEEDS_VISUAL_TEXTUAL && !(want_v && want_t)) return bad(c, mn, "the model needs a visual and a textual modality");
    }
    e->n_models++;
    return MREC_OK;
}

mrec_status elliot_read(experiment *e, const mrec_cfg_node *root) {
    const mrec_cfg *c = e->c;
    const mrec_cfg_node *x = root->kind == MREC_CFG_MAP ? mrec_cfg_get(root, "experiment") : NULL;
    if (!x) x = root; /* the section itself (mrec run) */
    if (x->kind != MREC_CFG_MAP) return bad(c, x, "the experiment must be a map");
    static const char *const keys[] = {"dataset", "data_config", "prefiltering", "splitting", "top_k", "evaluation", "gpu", "precision",
                                       "random_seed", "models", "backend", "external_models_path", "path_output_rec_result", "path_output_rec_weight",
                                       "path_output_rec_performance", "path_log_folder", "print_results_as_triplets", NULL};
    if (root != x) {
        static const char *const top[] = {"experiment", NULL};
        mrec_status st = mrec_cfg_check_keys(c, root, "the config", top);
        if (st) return st;
    }
    e->base = mrec_train_defaults();
    mrec_status st = mrec_cfg_check_keys(c, x, "experiment", keys);
    const char *ds = NULL;
    if (!st) st = mrec_cfg_string(c, x, "dataset", 1, &ds);
    if (!st) snprintf(e->dataset, sizeof e->dataset, "%s", ds);
    long top_k = 10, seed = 42, gpu = -1;
    if (!st) st = mrec_cfg_int(c, x, "top_k", 0, 1, 10000, &top_k);
    if (!st) st = mrec_cfg_int(c, x, "random_seed", 0, 0, 1L << 62, &seed);
    /* Elliot's gpu: -1 the CPU, else that GPU for the models that have a GPU path (the others, or a machine
     * without it, run on the CPU with a notice, as Elliot's CPU-only models do) */
    if (!st) st = mrec_cfg_int(c, x, "gpu", 0, -1, 1023, &gpu);
    if (gpu >= 0) e->base.device = MREC_WANT_AUTO, e->base.gpu = (int)gpu;
    /* mrec's own key (Elliot trains in fp32): the models' GEMMs in fp32, tf32 or bf16; --precision overrides it */
    const char *precision = NULL;
    if (!st) st = mrec_cfg_string(c, x, "precision", 0, &precision);
    if (!st && precision && mrec_precision_parse(precision, &e->base.precision))
        st = mrec_fail(MREC_ERR_FORMAT, "%s: line %d: precision '%s' is not fp32, tf32 or bf16", c->path, mrec_cfg_get(x, "precision")->line,
                       precision);
    e->top_k = (int)top_k;
    if (!st) st = read_data(e, x);
    if (!st) st = read_filters(e, x);
    if (!st) st = read_splitting(e, x);
    e->base.split_seed = (uint64_t)seed;
    if (!st) st = read_evaluation(e, x);
    const mrec_cfg_node *models = mrec_cfg_get(x, "models");
    if (!st && (!models || models->kind != MREC_CFG_MAP || !mrec_cfg_count(models))) st = bad(c, models ? models : x, "models (a map) is required");
    for (const mrec_cfg_node *m = st ? NULL : models->child; m && !st; m = m->next) st = read_model(e, m);
    return st;
}

void elliot_point_name(char *out, size_t cap, const model_spec *m, const int *pick) {
    size_t at = snprintf(out, cap, "%s", m->model->elliot);
    for (int a = 0; a < m->n_axes && at < cap; a++) {
        const mrec_cfg_node *p = m->axis[a], *v = p->kind == MREC_CFG_SEQ ? p->child : p;
        for (int i = 0; i < pick[a]; i++) v = v->next;
        if (is_modalities_key(p->key)) continue;
        at += snprintf(out + at, cap - at, "_%s=", p->key);
        for (const char *s = v->value; *s && at + 1 < cap; s++)
            if (!strchr("/ '()\"", *s)) out[at++] = *s == '.' ? '$' : *s == ',' ? '-' : *s;
        out[at < cap ? at : cap - 1] = 0;
    }
}

/* A key held at the model's value (fixed): the point's value must be that value. */
static mrec_status check_fixed(const experiment *e, const mrec_fixed_key *f, const mrec_cfg_node *v, const mrec_param_values *resolved) {
    const mrec_cfg *c = e->c;
    char why[400];
    snprintf(why, sizeof why, "%s: %s", f->key, f->why);
    double num, a, b;
    mrec_status st;
    switch (f->kind) {
    case MREC_FIXED_TEXT:
        for (const char *p = f->text; *p;) {
            size_t len = strcspn(p, "|");
            if (strlen(v->value) == len && !strncmp(p, v->value, len)) return MREC_OK;
            p += len + (p[len] == '|');
        }
        return bad(c, v, why);
    case MREC_FIXED_NUMBER:
        if ((st = mrec_cfg_node_number(c, v, f->key, -1e300, 1e300, &num))) return st;
        return num == f->num[0] ? MREC_OK : bad(c, v, why);
    case MREC_FIXED_SAME:
        if ((st = mrec_cfg_node_number(c, v, f->key, -1e300, 1e300, &num))) return st;
        return num == resolved->v[f->same].x[0] ? MREC_OK : bad(c, v, why);
    case MREC_FIXED_PAIR:
        return tuple_numbers(v->value, &a, &b) && fabs(a - f->num[0]) <= 1e-9 && fabs(b - f->num[1]) <= 1e-9 ? MREC_OK : bad(c, v, why);
    }
    return bad(c, v, why);
}

mrec_status elliot_point_spec(const experiment *e, const model_spec *m, const int *pick, mrec_train_spec *s) {
    *s = e->base;
    s->model = m->model;
    memset(&s->params, 0, sizeof s->params);
    const mrec_cfg_node *value[MAX_AXES];
    for (int a = 0; a < m->n_axes; a++) {
        const mrec_cfg_node *p = m->axis[a], *v = p->kind == MREC_CFG_SEQ ? p->child : p;
        for (int i = 0; i < pick[a]; i++) v = v->next;
        value[a] = v;
        const mrec_model_param *q = mrec_model_param_elliot(m->model, p->key);
        mrec_status st = q ? param_value(e->c, v, p->key, q->hp, &s->params.v[q->hp]) : MREC_OK;
        if (st) return st;
    }
    if (m->model->flags & MREC_MODEL_TRAINS) {
        s->params.v[MREC_HP_EVAL_EVERY] = (mrec_param_value){.x = {m->eval_every}, .given = 1};
        s->params.v[MREC_HP_PATIENCE] = (mrec_param_value){.x = {m->patience}, .given = 1};
    }
    /* the keys held at the model's value, against the point's values (weight_size against its factors) */
    mrec_param_values resolved;
    mrec_status st = mrec_params_resolve(&resolved, m->model, &s->params);
    for (int a = 0; a < m->n_axes && !st; a++) {
        const mrec_fixed_key *f = mrec_model_fixed(m->model, m->axis[a]->key);
        if (f) st = check_fixed(e, f, value[a], &resolved);
    }
    s->features = m->modalities[0] ? m->modalities : NULL;
    s->select_metric = m->select_metric, s->select_k = m->select_k;
    s->per_user = 1;
    s->save_topk = m->save_recs ? e->top_k : 0;
    s->keep_model = m->save_weights;
    return st;
}
