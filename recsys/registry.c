/* registry.c: the table of mrec_registry.h. The hyper-parameters first, with
 * the ranges the command line and configs are held to; then one entry per
 * model and the small create function behind it, which builds the graphs the
 * model reads and calls the model's own create.
 *
 * Defaults are MMRec's (its configs and each model's yaml) unless the entry
 * says where else they come from; the Elliot keys are those of Elliot's
 * classes and of the Ducho-meets-Elliot benchmark's fork (NGCFM).
 */
#include "mrec_registry.h"
#include "mrec_clip_e2e.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- hyper-parameters ---- */

#define WHOLE(lo, hi) {lo, hi, 0, 1}
#define REAL(lo, hi, open) {lo, hi, open, 0}

static const char *const SAMPLERS[] = {"pairs", "users", NULL};
static const char *const LOSSES[] = {"mmrec", "authors", NULL};
static const char *const AUGMENTS[] = {"nd", "ed", "rw", NULL};
static const char *const AGGREGATIONS[] = {"mean", "sum", "concat", NULL};
static const char *const GCN_AGGRS[] = {"mean", "add", "sum", NULL}; /* add and sum: PyG's two names of one pooling */
static const char *const BOOLS[] = {"False", "True", NULL};          /* as Elliot's YAML writes them */
static const char *const WEIGHT_MODES[] = {"mean", "max", "confid", NULL};
static const char *const FUSIONS[] = {"concat", "id", "mean", NULL};

static const mrec_param_spec PARAMS[MREC_HP_COUNT] = {
    [MREC_HP_EPOCHS] = {"epochs", "--epochs", .type = MREC_PARAM_INT, .range = WHOLE(1, 1000000), .def = {1000}, .meta = "N",
                        .help = "epochs at most; early stopping may end sooner"},
    [MREC_HP_LR] = {"lr", "--lr", .type = MREC_PARAM_REAL, .range = REAL(0, 100, MREC_RANGE_OPEN_LO), .def = {0.001}, .meta = "X",
                    .help = "Adam's learning rate"},
    [MREC_HP_BATCH_SIZE] = {"batch_size", "--batch-size", .type = MREC_PARAM_INT, .range = WHOLE(1, 1 << 24), .def = {2048}, .meta = "N",
                            .help = "training triples per step"},
    [MREC_HP_SEED] = {"seed", "--seed", .type = MREC_PARAM_U64, .def = {999}, .meta = "N",
                      .help = "the model's seed: initialization, sampling, dropout"},
    [MREC_HP_PATIENCE] = {"patience", "--patience", .type = MREC_PARAM_INT, .range = WHOLE(1, 1000000), .def = {20}, .meta = "N",
                          .help = "evaluations without improvement before training stops"},
    [MREC_HP_EVAL_EVERY] = {"eval_every", "--eval-every", .type = MREC_PARAM_INT, .range = WHOLE(1, 1000000), .def = {1}, .meta = "N",
                            .help = "evaluate every N epochs and after the last (Elliot's validation_rate)"},
    [MREC_HP_LR_DECAY] = {"lr_decay", "--lr-decay", .type = MREC_PARAM_LIST, .n_items = 2, .item_name = {"factor", "every"},
                          .item = {REAL(0, 1, MREC_RANGE_OPEN_LO), WHOLE(1, 1000000)}, .def = {1, 50}, .meta = "F:EVERY",
                          .help = "learning rate times F^(epoch / EVERY), MMRec's scheduler"},
    [MREC_HP_SAMPLER] = {"sampler", "--sampler", .type = MREC_PARAM_ENUM, .choices = SAMPLERS, .def = {0}, .meta = "pairs|users",
                         .help = "pairs: every training pair once an epoch, shuffled (MMRec); users: batches of distinct users (Elliot)"},
    [MREC_HP_DIM] = {"dim", "--dim", .type = MREC_PARAM_INT, .range = WHOLE(1, 4096), .def = {64}, .meta = "N",
                     .help = "embedding size (Elliot's factors)"},
    [MREC_HP_LAYERS] = {"layers", "--layers", .type = MREC_PARAM_INT, .range = WHOLE(0, 16), .def = {3}, .meta = "N",
                        .help = "propagation layers over the user-item graph"},
    /* 0 is no model's default: every model that reads it has its own */
    [MREC_HP_REG] = {"reg", "--reg", .type = MREC_PARAM_REAL, .range = REAL(0, 1e6, 0), .def = {0}, .meta = "X",
                     .help = "regularization weight (Elliot's l_w; NGCF's decay)"},
    [MREC_HP_NEIGHBOURS] = {"neighbours", "--neighbours", .type = MREC_PARAM_INT, .range = WHOLE(1, 100000), .def = {50}, .meta = "N",
                            .help = "neighbours kept per item"},
    /* dropping everything leaves nothing to learn from: the dropouts stay below 1 */
    [MREC_HP_NODE_DROPOUT] = {"node_dropout", "--node-dropout", .type = MREC_PARAM_REAL, .range = REAL(0, 1, MREC_RANGE_OPEN_HI),
                              .def = {0.1}, .meta = "P", .help = "share of the graph's entries dropped"},
    [MREC_HP_MESS_DROPOUT] = {"mess_dropout", "--mess-dropout", .type = MREC_PARAM_REAL, .range = REAL(0, 1, MREC_RANGE_OPEN_HI),
                              .def = {0.1}, .meta = "P", .help = "message dropout after each layer"},
    [MREC_HP_KNN_K] = {"knn_k", "--knn-k", .type = MREC_PARAM_INT, .range = WHOLE(1, 100000), .def = {10}, .meta = "N",
                       .help = "neighbours per item in the kNN item graph"},
    [MREC_HP_EDGE_DROPOUT] = {"edge_dropout", "--edge-dropout", .type = MREC_PARAM_REAL, .range = REAL(0, 1, MREC_RANGE_OPEN_HI),
                              .def = {0.8}, .meta = "P", .help = "share of the user-item edges dropped each epoch"},
    [MREC_HP_LAMBDA] = {"lambda", "--lambda", .type = MREC_PARAM_REAL, .range = REAL(0, 1, 0), .def = {0.9}, .meta = "X",
                        .help = "weight of the frozen item graph against the learned one"},
    [MREC_HP_CL_WEIGHT] = {"cl_weight", "--cl-weight", .type = MREC_PARAM_REAL, .range = REAL(0, 1e6, 0), .def = {2}, .meta = "X",
                           .help = "weight of the self-supervised terms of the loss (BM3's modality terms, SimGCL's reg_cl, SGL's ssl_reg)"},
    [MREC_HP_TARGET_DROPOUT] = {"target_dropout", "--target-dropout", .type = MREC_PARAM_REAL, .range = REAL(0, 1, MREC_RANGE_OPEN_HI),
                                .def = {0.3}, .meta = "P", .help = "dropout of the contrastive views (BM3's targets, PGL's two views)"},
    [MREC_HP_LOSS] = {"loss", "--loss", "--authors-loss", 1, .type = MREC_PARAM_ENUM, .choices = LOSSES, .def = {0}, .meta = "mmrec|authors",
                      .help = "mmrec, or the authors' (squared-norm L2, behind the Gowalla numbers)"},
    [MREC_HP_EPS] = {"eps", "--eps", .type = MREC_PARAM_REAL, .range = REAL(0, 1e3, 0), .def = {0.1}, .meta = "X",
                     .help = "length of the noise added to each layer of the contrastive views"},
    [MREC_HP_TEMP] = {"temp", "--temp", .type = MREC_PARAM_REAL, .range = REAL(0, 1e3, MREC_RANGE_OPEN_LO), .def = {0.2}, .meta = "X",
                      .help = "temperature of the contrastive (InfoNCE) loss"},
    [MREC_HP_SSL_RATIO] = {"ssl_ratio", "--ssl-ratio", .type = MREC_PARAM_REAL, .range = REAL(0, 1, MREC_RANGE_OPEN_HI), .def = {0.1},
                           .meta = "P", .help = "share of the nodes or edges each contrastive view drops"},
    [MREC_HP_AUGMENT] = {"augment", "--augment", .type = MREC_PARAM_ENUM, .choices = AUGMENTS, .def = {0}, .meta = "nd|ed|rw",
                         .help = "contrastive views by node dropout, edge dropout, or edge dropout per layer"},
    [MREC_HP_AGGREGATION] = {"aggregation", "--aggregation", .type = MREC_PARAM_ENUM, .choices = AGGREGATIONS, .def = {0},
                             .meta = "mean|sum|concat", .help = "modalities' projections averaged, summed, or one projection of them side by side"},
    [MREC_HP_MULTIMOD_DIMS] = {"multimod_dims", "--multimod-dims", .type = MREC_PARAM_LIST, .n_items = 2, .item_name = {"first", "second"},
                               .item = {WHOLE(0, 4096), WHOLE(0, 4096)}, .item_none = "None", .def = {256, 0}, .meta = "A:B",
                               .help = "the modalities' projections, in their order (Elliot's factors_multimod); None (0): the features as they are"},
    [MREC_HP_GCN_AGGR] = {"gcn_aggr", "--gcn-aggr", .type = MREC_PARAM_ENUM, .choices = GCN_AGGRS, .def = {0}, .meta = "mean|add|sum",
                          .help = "a graph layer's pooling of the neighbours: their mean, or their sum (add, sum)"},
    [MREC_HP_CONCAT] = {"concat", "--concat", .type = MREC_PARAM_ENUM, .choices = BOOLS, .def = {0}, .meta = "False|True",
                        .help = "combine a layer's graph and own parts side by side (True) or by a sum (False)"},
    [MREC_HP_HAS_ID] = {"has_id", "--has-id", .type = MREC_PARAM_ENUM, .choices = BOOLS, .def = {1}, .meta = "False|True",
                        .help = "add the id embeddings to each layer's own part"},
    /* LGMRec's */
    [MREC_HP_MM_LAYERS] = {"mm_layers", "--mm-layers", .type = MREC_PARAM_INT, .range = WHOLE(0, 16), .def = {2}, .meta = "N",
                           .help = "propagations of the modality embeddings over the user-item graph"},
    [MREC_HP_HYPER_LAYERS] = {"hyper_layers", "--hyper-layers", .type = MREC_PARAM_INT, .range = WHOLE(1, 8), .def = {1}, .meta = "N",
                              .help = "hypergraph layers"},
    [MREC_HP_HYPER_NUM] = {"hyper_num", "--hyper-num", .type = MREC_PARAM_INT, .range = WHOLE(1, 4096), .def = {4}, .meta = "N",
                           .help = "hyperedges per modality"},
    [MREC_HP_KEEP_RATE] = {"keep_rate", "--keep-rate", .type = MREC_PARAM_REAL, .range = REAL(0, 1, MREC_RANGE_OPEN_LO), .def = {0.5},
                           .meta = "P", .help = "share of the hyperedge dependencies kept by dropout while training"},
    [MREC_HP_ALPHA] = {"alpha", "--alpha", .type = MREC_PARAM_REAL, .range = REAL(0, 1e6, 0), .def = {0.3}, .meta = "X",
                       .help = "weight of the global (hypergraph) embeddings against the local ones"},
    /* MGCN's */
    [MREC_HP_ITEM_LAYERS] = {"item_layers", "--item-layers", .type = MREC_PARAM_INT, .range = WHOLE(0, 16), .def = {1}, .meta = "N",
                             .help = "propagation layers over the kNN item graphs (MGCN's n_layers)"},
    /* SMORE's */
    [MREC_HP_IMAGE_KNN_K] = {"image_knn_k", "--image-knn-k", .type = MREC_PARAM_INT, .range = WHOLE(1, 100000), .def = {10}, .meta = "N",
                             .help = "neighbours per item in the image (first) modality's kNN item graph"},
    [MREC_HP_TEXT_KNN_K] = {"text_knn_k", "--text-knn-k", .type = MREC_PARAM_INT, .range = WHOLE(1, 100000), .def = {10}, .meta = "N",
                            .help = "neighbours per item in the text (second) modality's kNN item graph"},
    [MREC_HP_PREF_DROPOUT] = {"pref_dropout", "--pref-dropout", .type = MREC_PARAM_REAL, .range = REAL(0, 1, MREC_RANGE_OPEN_HI), .def = {0},
                              .meta = "P", .help = "dropout of the modality preference gates while training (SMORE's dropout_rate)"},
    /* GRCN's */
    [MREC_HP_ROUTINGS] = {"routings", "--routings", .type = MREC_PARAM_INT, .range = WHOLE(0, 16), .def = {3}, .meta = "N",
                          .help = "rounds of attention refining the users' modality preferences (GRCN's num_routings)"},
    [MREC_HP_MULTIMOD_DIM] = {"multimod_dim", "--multimod-dim", .type = MREC_PARAM_INT, .range = WHOLE(1, 4096), .def = {128}, .meta = "N",
                              .help = "size of the modality embeddings (GRCN's factors_multimod)"},
    [MREC_HP_WEIGHT_MODE] = {"weight_mode", "--weight-mode", .type = MREC_PARAM_ENUM, .choices = WEIGHT_MODES, .def = {2},
                             .meta = "mean|max|confid", .help = "the modalities' edge weights averaged, their maximum, or their maximum times learned confidences"},
    [MREC_HP_PRUNING] = {"pruning", "--pruning", .type = MREC_PARAM_ENUM, .choices = BOOLS, .def = {1}, .meta = "False|True",
                         .help = "drop the edges whose weight is negative (relu)"},
    [MREC_HP_HAS_ACT] = {"has_act", "--has-act", .type = MREC_PARAM_ENUM, .choices = BOOLS, .def = {0}, .meta = "False|True",
                         .help = "a LeakyReLU after each propagation"},
    [MREC_HP_FUSION] = {"fusion", "--fusion", .type = MREC_PARAM_ENUM, .choices = FUSIONS, .def = {0}, .meta = "concat|id|mean",
                        .help = "the id representation beside the modalities', alone, or averaged with them"},
    /* MENTOR's */
    [MREC_HP_ALIGN_WEIGHT] = {"align_weight", "--align-weight", .type = MREC_PARAM_REAL, .range = REAL(0, 1e6, 0), .def = {0.1}, .meta = "X",
                              .help = "weight of the alignment of the views' means and variances"},
    /* CLIP-E2E's; the towers' optimizer is AdamW, the trainer's Adam (lr) takes the users and the fusion */
    [MREC_HP_BLOCKS] = {"blocks", "--blocks", .type = MREC_PARAM_INT, .range = WHOLE(0, 64), .def = {1}, .meta = "N",
                        .help = "CLIP blocks trained at the top of each tower, with its final LayerNorm and projection (0: frozen towers)"},
    [MREC_HP_TOWER_LR] = {"tower_lr", "--tower-lr", .type = MREC_PARAM_REAL, .range = REAL(0, 1, MREC_RANGE_OPEN_LO), .def = {1e-5},
                          .meta = "X", .help = "AdamW's learning rate for the CLIP towers' trained weights"},
    [MREC_HP_TOWER_DECAY] = {"tower_decay", "--tower-decay", .type = MREC_PARAM_REAL, .range = REAL(0, 1, 0), .def = {0.01}, .meta = "X",
                             .help = "AdamW's weight decay there (matrices only)"},
};

const mrec_param_spec *mrec_param_spec_of(mrec_hp h) { return (unsigned)h < MREC_HP_COUNT ? &PARAMS[h] : NULL; }

static int n_choices(const char *const *c) {
    int n = 0;
    while (c && c[n]) n++;
    return n;
}

static int in_range(double x, const mrec_range *r) {
    return isfinite(x) && (r->open & MREC_RANGE_OPEN_LO ? x > r->lo : x >= r->lo) && (r->open & MREC_RANGE_OPEN_HI ? x < r->hi : x <= r->hi) &&
           (!r->whole || x == floor(x));
}

static void range_text(char *out, size_t cap, const mrec_range *r) {
    snprintf(out, cap, "%s%s%g, %g%s", r->whole ? "a whole number in " : "in ", r->open & MREC_RANGE_OPEN_LO ? "(" : "[", r->lo, r->hi,
             r->open & MREC_RANGE_OPEN_HI ? ")" : "]");
}

mrec_status mrec_param_check(mrec_hp h, const mrec_param_value *v) {
    const mrec_param_spec *s = mrec_param_spec_of(h);
    char want[96];
    if (!s) return mrec_fail(MREC_ERR_ARG, "no hyper-parameter %d", (int)h);
    switch (s->type) {
    case MREC_PARAM_U64: return MREC_OK;
    case MREC_PARAM_INT:
    case MREC_PARAM_REAL:
        if (in_range(s->type == MREC_PARAM_REAL ? (float)v->x[0] : v->x[0], &s->range)) return MREC_OK;
        range_text(want, sizeof want, &s->range);
        return mrec_fail(MREC_ERR_ARG, "%s is %g, not %s", s->name, v->x[0], want);
    case MREC_PARAM_ENUM:
        if (v->x[0] >= 0 && v->x[0] < n_choices(s->choices) && v->x[0] == floor(v->x[0])) return MREC_OK;
        return mrec_fail(MREC_ERR_ARG, "%s: no choice %g", s->name, v->x[0]);
    case MREC_PARAM_LIST:
        for (int i = 0; i < s->n_items; i++)
            if (!in_range(s->item[i].whole ? v->x[i] : (float)v->x[i], &s->item[i])) {
                range_text(want, sizeof want, &s->item[i]);
                return mrec_fail(MREC_ERR_ARG, "%s: %s is %g, not %s", s->name, s->item_name[i], v->x[i], want);
            }
        return MREC_OK;
    }
    return mrec_fail(MREC_ERR_ARG, "%s: unknown type", s->name);
}

/* Reals are held as their single-precision value: what the models compute with and the params column prints. */
static double held(const mrec_param_spec *s, int item, double x) {
    int real = s->type == MREC_PARAM_REAL || (s->type == MREC_PARAM_LIST && !s->item[item].whole);
    return real ? (double)(float)x : x;
}

void mrec_param_format(char *out, size_t cap, mrec_hp h, const mrec_param_value *v) {
    const mrec_param_spec *s = mrec_param_spec_of(h);
    if (!s || !cap) return;
    switch (s->type) {
    case MREC_PARAM_INT: snprintf(out, cap, "%d", (int)v->x[0]); break;
    case MREC_PARAM_U64: snprintf(out, cap, "%llu", (unsigned long long)v->u); break;
    case MREC_PARAM_REAL: snprintf(out, cap, "%g", (double)(float)v->x[0]); break;
    case MREC_PARAM_ENUM: snprintf(out, cap, "%s", v->x[0] >= 0 && v->x[0] < n_choices(s->choices) ? s->choices[(int)v->x[0]] : "?"); break;
    case MREC_PARAM_LIST: {
        size_t at = 0;
        out[0] = 0;
        for (int i = 0; i < s->n_items && at < cap; i++)
            at += (size_t)(s->item_none && v->x[i] == 0 ? snprintf(out + at, cap - at, "%s%s", i ? ":" : "", s->item_none)
                           : s->item[i].whole ? snprintf(out + at, cap - at, "%s%d", i ? ":" : "", (int)v->x[i])
                                            : snprintf(out + at, cap - at, "%s%g", i ? ":" : "", (double)(float)v->x[i]));
        break;
    }
    }
}

/* ---- the models' create functions ---- */

static mrec_rng seeded(const mrec_param_values *p) { return (mrec_rng){mrec_hp_u64(p, MREC_HP_SEED)}; }

static mrec_status create_mostpop(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    (void)p;
    return mrec_mostpop_create(m, in->train, ctx);
}

static mrec_status create_itemknn(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    return mrec_itemknn_create(m, in->train, mrec_hp_int(p, MREC_HP_NEIGHBOURS), ctx);
}

static mrec_status create_bprmf(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    mrec_rng rng = seeded(p);
    return mrec_bprmf_create(m, in->n_users, in->n_items, mrec_hp_int(p, MREC_HP_DIM), mrec_hp_real(p, MREC_HP_REG), &rng, ctx);
}

static mrec_status create_lightgcn(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    mrec_rng rng = seeded(p);
    mrec_status st = mrec_graph_normalized(in->graph, in->train);
    if (!st)
        st = mrec_lightgcn_create(m, in->graph, in->n_users, in->n_items, mrec_hp_int(p, MREC_HP_DIM), mrec_hp_int(p, MREC_HP_LAYERS),
                                  mrec_hp_real(p, MREC_HP_REG), &rng, ctx);
    if (!st && mrec_hp_int(p, MREC_HP_LOSS) == 1) mrec_lightgcn_use_authors_loss(m);
    return st;
}

static mrec_status create_ngcf(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    mrec_rng rng = seeded(p);
    mrec_status st = mrec_graph_mean_self(in->graph, in->train);
    if (!st)
        st = mrec_ngcf_create(m, in->graph, in->n_users, in->n_items, mrec_hp_int(p, MREC_HP_DIM), mrec_hp_int(p, MREC_HP_LAYERS),
                              mrec_hp_real(p, MREC_HP_REG), mrec_hp_real(p, MREC_HP_NODE_DROPOUT), mrec_hp_real(p, MREC_HP_MESS_DROPOUT),
                              &rng, ctx);
    return st;
}

static mrec_status create_vbpr(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    mrec_rng rng = seeded(p);
    return mrec_vbpr_create(m, in->n_users, in->n_items, mrec_hp_int(p, MREC_HP_DIM), mrec_hp_real(p, MREC_HP_REG), in->item_feat,
                            in->feat_dim, &rng, ctx);
}

/* CLIP-E2E: the towers and items the caller prepared (mrec train --clip ... --items ...) */
static mrec_status create_clip_e2e(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    if (!in->clip_items)
        return mrec_fail(MREC_ERR_ARG, "clip-e2e needs a CLIP model and the items' photos and texts (mrec train: --clip DIR --items TABLE "
                                       "--text-column C and --images DIR|TABLE or --image-column C)");
    if (in->clip_items->n_items != in->n_items)
        return mrec_fail(MREC_ERR_ARG, "clip-e2e: %d items' photos and texts for %d items", in->clip_items->n_items, in->n_items);
    mrec_rng rng = seeded(p);
    mrec_clip_e2e_options o = {mrec_hp_int(p, MREC_HP_DIM), mrec_hp_real(p, MREC_HP_REG), mrec_hp_int(p, MREC_HP_BLOCKS),
                               mrec_hp_real(p, MREC_HP_TOWER_LR), mrec_hp_real(p, MREC_HP_TOWER_DECAY), mrec_hp_int(p, MREC_HP_BATCH_SIZE)};
    return mrec_clip_e2e_create(m, in->n_users, in->clip_items, &o, &rng, ctx);
}

/* FREEDOM's mw: visual 0.1, the other modalities sharing 0.9; equal shares without a visual one; 1 alone. */
static void freedom_weights(float *w, const mrec_features *feat, int n) {
    int has_visual = 0;
    for (int f = 0; f < n; f++) has_visual |= !strcmp(feat[f].name, "visual");
    for (int f = 0; f < n; f++)
        w[f] = n == 1 ? 1.0f : !has_visual ? 1.0f / n : !strcmp(feat[f].name, "visual") ? 0.1f : 0.9f / (n - 1);
}

#define MAX_MODALITIES 8

static mrec_status create_freedom(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    if (in->n_feat > MAX_MODALITIES) return mrec_fail(MREC_ERR_ARG, "freedom: at most %d modalities", MAX_MODALITIES);
    const float *xs[MAX_MODALITIES];
    int dims[MAX_MODALITIES], k = mrec_hp_int(p, MREC_HP_KNN_K), cached = 0;
    float w[MAX_MODALITIES];
    freedom_weights(w, in->feat, in->n_feat);
    for (int f = 0; f < in->n_feat; f++) xs[f] = in->feat[f].x, dims[f] = in->feat[f].dim;
    mrec_rng rng = seeded(p);
    mrec_status st = mrec_graph_normalized(in->graph, in->train);
    if (!st) st = mrec_graph_knn_cached(in->item_graph, xs, dims, w, in->n_feat, in->n_items, k, in->cache_dir, &cached, ctx);
    if (!st && in->log) {
        char line[4400];
        snprintf(line, sizeof line, "item graph: k=%d, %lld edges, %s%s", k, (long long)in->item_graph->row_ptr[in->n_items],
                 cached ? "read from " : in->cache_dir ? "built and saved in " : "built", in->cache_dir ? in->cache_dir : "");
        in->log(in->log_ctx, line);
    }
    if (!st)
        st = mrec_freedom_create(m, in->graph, in->item_graph, in->train, in->feat, in->n_feat, mrec_hp_int(p, MREC_HP_DIM),
                                 mrec_hp_int(p, MREC_HP_LAYERS), mrec_hp_real(p, MREC_HP_REG), mrec_hp_real(p, MREC_HP_EDGE_DROPOUT), &rng,
                                 ctx);
    return st;
}

static mrec_status create_lattice(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    mrec_rng rng = seeded(p);
    mrec_status st = mrec_graph_mean_self(in->graph, in->train);
    if (!st)
        st = mrec_lattice_create(m, in->graph, in->feat, in->n_feat, in->n_users, mrec_hp_int(p, MREC_HP_DIM), mrec_hp_int(p, MREC_HP_KNN_K),
                                 mrec_hp_real(p, MREC_HP_LAMBDA), mrec_hp_real(p, MREC_HP_REG), mrec_hp_int(p, MREC_HP_BATCH_SIZE), &rng,
                                 ctx);
    return st;
}

static mrec_status create_bm3(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    mrec_rng rng = seeded(p);
    mrec_status st = mrec_graph_normalized(in->graph, in->train);
    if (!st)
        st = mrec_bm3_create(m, in->graph, in->feat, in->n_feat, in->n_users, mrec_hp_int(p, MREC_HP_DIM), mrec_hp_int(p, MREC_HP_LAYERS),
                             mrec_hp_real(p, MREC_HP_REG), mrec_hp_real(p, MREC_HP_CL_WEIGHT), mrec_hp_real(p, MREC_HP_TARGET_DROPOUT), &rng,
                             ctx);
    return st;
}

static mrec_status create_ngcfm(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    mrec_rng rng = seeded(p);
    mrec_status st = mrec_graph_mean_self(in->graph, in->train);
    if (!st)
        st = mrec_ngcfm_create(m, in->graph, in->n_users, in->n_items, in->item_feat, in->feat_dim, mrec_hp_int(p, MREC_HP_DIM),
                               mrec_hp_int(p, MREC_HP_LAYERS), mrec_hp_real(p, MREC_HP_REG), mrec_hp_real(p, MREC_HP_MESS_DROPOUT),
                               mrec_hp_real(p, MREC_HP_NODE_DROPOUT), &rng, ctx);
    return st;
}

static mrec_status create_simgcl(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    mrec_rng rng = seeded(p);
    mrec_status st = mrec_graph_normalized(in->graph, in->train);
    if (!st)
        st = mrec_simgcl_create(m, in->graph, in->n_users, in->n_items, mrec_hp_int(p, MREC_HP_DIM), mrec_hp_int(p, MREC_HP_LAYERS),
                                mrec_hp_real(p, MREC_HP_REG), mrec_hp_real(p, MREC_HP_EPS), mrec_hp_real(p, MREC_HP_CL_WEIGHT),
                                mrec_hp_real(p, MREC_HP_TEMP), &rng, ctx);
    return st;
}

static mrec_status create_sgl(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    mrec_rng rng = seeded(p);
    mrec_status st = mrec_graph_normalized(in->graph, in->train);
    if (!st)
        st = mrec_sgl_create(m, in->graph, in->train, mrec_hp_int(p, MREC_HP_DIM), mrec_hp_int(p, MREC_HP_LAYERS), mrec_hp_real(p, MREC_HP_REG),
                             mrec_hp_real(p, MREC_HP_CL_WEIGHT), mrec_hp_real(p, MREC_HP_SSL_RATIO), mrec_hp_real(p, MREC_HP_TEMP),
                             mrec_hp_int(p, MREC_HP_AUGMENT), &rng, ctx);
    return st;
}

static mrec_status create_lightgcnm(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    if (in->n_feat > MAX_MODALITIES) return mrec_fail(MREC_ERR_ARG, "lightgcnm: at most %d modalities", MAX_MODALITIES);
    const float *xs[MAX_MODALITIES];
    int dims[MAX_MODALITIES], agg = mrec_hp_int(p, MREC_HP_AGGREGATION), n = in->n_feat;
    for (int f = 0; f < n; f++) xs[f] = in->feat[f].x, dims[f] = in->feat[f].dim;
    /* concat: one projection of the modalities side by side */
    if (agg == 2) xs[0] = in->item_feat, dims[0] = in->feat_dim, n = 1;
    mrec_rng rng = seeded(p);
    mrec_status st = mrec_graph_normalized(in->graph, in->train);
    if (!st)
        st = mrec_lightgcnm_create(m, in->graph, in->n_users, in->n_items, xs, dims, n, agg == 1, mrec_hp_int(p, MREC_HP_DIM),
                                   mrec_hp_int(p, MREC_HP_LAYERS), mrec_hp_real(p, MREC_HP_REG), &rng, ctx);
    return st;
}

static mrec_status create_mmgcn(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    if (in->n_feat > 2) return mrec_fail(MREC_ERR_ARG, "mmgcn: at most 2 modalities (factors_multimod has 2 items)");
    const float *xs[2];
    int dims[2], proj[2];
    for (int f = 0; f < in->n_feat; f++)
        xs[f] = in->feat[f].x, dims[f] = in->feat[f].dim, proj[f] = (int)mrec_hp_item(p, MREC_HP_MULTIMOD_DIMS, f);
    mrec_rng rng = seeded(p);
    mrec_status st = mrec_graph_mmgcn(in->graph, in->train, mrec_hp_int(p, MREC_HP_GCN_AGGR) == 0);
    if (!st)
        st = mrec_mmgcn_create(m, in->graph, in->n_users, in->n_items, xs, dims, proj, in->n_feat, mrec_hp_int(p, MREC_HP_DIM),
                               mrec_hp_int(p, MREC_HP_LAYERS), mrec_hp_int(p, MREC_HP_CONCAT), mrec_hp_int(p, MREC_HP_HAS_ID),
                               mrec_hp_real(p, MREC_HP_REG), &rng, ctx);
    return st;
}

static mrec_status create_lgmrec(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    /* the reference's two modalities, visual then textual; others are not read */
    const float *xs[2] = {NULL, NULL};
    int dims[2] = {0, 0};
    for (int f = 0; f < in->n_feat; f++) {
        int at = !strcmp(in->feat[f].name, "visual") ? 0 : !strcmp(in->feat[f].name, "textual") ? 1 : -1;
        if (at >= 0) xs[at] = in->feat[f].x, dims[at] = in->feat[f].dim;
    }
    if (!xs[0] || !xs[1]) return mrec_fail(MREC_ERR_ARG, "lgmrec needs a visual and a textual modality");
    mrec_rng rng = seeded(p);
    mrec_status st = mrec_graph_normalized(in->graph, in->train);
    if (!st)
        st = mrec_lgmrec_create(m, in->graph, in->train, in->n_users, in->n_items, xs, dims, mrec_hp_int(p, MREC_HP_DIM),
                                mrec_hp_int(p, MREC_HP_LAYERS), mrec_hp_int(p, MREC_HP_MM_LAYERS), mrec_hp_int(p, MREC_HP_HYPER_LAYERS),
                                mrec_hp_int(p, MREC_HP_HYPER_NUM), mrec_hp_real(p, MREC_HP_KEEP_RATE), mrec_hp_real(p, MREC_HP_ALPHA),
                                mrec_hp_real(p, MREC_HP_CL_WEIGHT), mrec_hp_real(p, MREC_HP_REG), &rng, ctx);
    return st;
}

/* MGCN: Â, and one kNN graph per modality, uploaded by the model (the host copies go when it is built). */
static mrec_status create_mgcn(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    if (in->n_feat > 4) return mrec_fail(MREC_ERR_ARG, "mgcn: at most 4 modalities");
    const float *xs[4];
    int dims[4], k = mrec_hp_int(p, MREC_HP_KNN_K);
    mrec_graph knn[4] = {{0}};
    mrec_rng rng = seeded(p);
    mrec_status st = mrec_mgcn_graph(in->graph, in->train);
    for (int f = 0; f < in->n_feat && !st; f++) {
        xs[f] = in->feat[f].x, dims[f] = in->feat[f].dim;
        st = mrec_mgcn_item_graph(&knn[f], xs[f], in->n_items, dims[f], k, ctx);
        if (st) {
            char why[512];
            snprintf(why, sizeof why, "%s", mrec_error_detail());
            mrec_fail(st, "mgcn: the %s features' item graph: %s", in->feat[f].name, why);
        }
    }
    if (!st && in->log) {
        char line[256];
        snprintf(line, sizeof line, "item graphs: k=%d, one per modality (%d), built", k, in->n_feat);
        in->log(in->log_ctx, line);
    }
    if (!st)
        st = mrec_mgcn_create(m, in->graph, knn, in->n_users, in->n_items, xs, dims, in->n_feat, mrec_hp_int(p, MREC_HP_DIM),
                              mrec_hp_int(p, MREC_HP_LAYERS), mrec_hp_int(p, MREC_HP_ITEM_LAYERS), mrec_hp_real(p, MREC_HP_REG),
                              mrec_hp_real(p, MREC_HP_CL_WEIGHT), mrec_hp_real(p, MREC_HP_TEMP), mrec_hp_int(p, MREC_HP_BATCH_SIZE), &rng, ctx);
    for (int f = 0; f < in->n_feat; f++) mrec_graph_free(&knn[f]);
    return st;
}

/* PGL: Â, FREEDOM's item graph (the same cache: the reference saves it under FREEDOM's name too), the model. */
static mrec_status create_pgl(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    if (in->n_feat > 4) return mrec_fail(MREC_ERR_ARG, "pgl: at most 4 modalities");
    const float *xs[4];
    int dims[4], k = mrec_hp_int(p, MREC_HP_KNN_K), cached = 0;
    float w[4];
    freedom_weights(w, in->feat, in->n_feat);
    for (int f = 0; f < in->n_feat; f++) xs[f] = in->feat[f].x, dims[f] = in->feat[f].dim;
    mrec_rng rng = seeded(p);
    mrec_status st = mrec_graph_normalized(in->graph, in->train);
    if (!st) st = mrec_graph_knn_cached(in->item_graph, xs, dims, w, in->n_feat, in->n_items, k, in->cache_dir, &cached, ctx);
    if (!st && in->log) {
        char line[4400];
        snprintf(line, sizeof line, "item graph: k=%d, %lld edges, %s%s", k, (long long)in->item_graph->row_ptr[in->n_items],
                 cached ? "read from " : in->cache_dir ? "built and saved in " : "built", in->cache_dir ? in->cache_dir : "");
        in->log(in->log_ctx, line);
    }
    if (!st)
        st = mrec_pgl_create(m, in->graph, in->item_graph, in->train, xs, dims, in->n_feat, mrec_hp_int(p, MREC_HP_DIM),
                             mrec_hp_int(p, MREC_HP_LAYERS), mrec_hp_int(p, MREC_HP_ITEM_LAYERS), mrec_hp_real(p, MREC_HP_CL_WEIGHT),
                             mrec_hp_real(p, MREC_HP_TARGET_DROPOUT), mrec_hp_real(p, MREC_HP_EDGE_DROPOUT), mrec_hp_real(p, MREC_HP_TEMP),
                             &rng, ctx);
    return st;
}

/* SMORE: Â, the image and text kNN graphs and their max-pool, uploaded by the model (the host copies go when it is
 * built). Two modalities: visual and textual where both are given, else the two given, in their order. */
static mrec_status create_smore(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    if (in->n_feat != 2) return mrec_fail(MREC_ERR_ARG, "smore needs two modalities (image and text), not %d", in->n_feat);
    int first = !strcmp(in->feat[1].name, "visual") || !strcmp(in->feat[0].name, "textual") ? 1 : 0;
    const mrec_features *f2[2] = {&in->feat[first], &in->feat[1 - first]};
    const float *xs[2] = {f2[0]->x, f2[1]->x};
    int dims[2] = {f2[0]->dim, f2[1]->dim}, k[2] = {mrec_hp_int(p, MREC_HP_IMAGE_KNN_K), mrec_hp_int(p, MREC_HP_TEXT_KNN_K)};
    mrec_graph knn[3] = {{0}};
    mrec_rng rng = seeded(p);
    mrec_status st = mrec_mgcn_graph(in->graph, in->train);
    for (int f = 0; f < 2 && !st; f++) {
        st = mrec_mgcn_item_graph(&knn[f], xs[f], in->n_items, dims[f], k[f], ctx);
        if (st) {
            char why[512];
            snprintf(why, sizeof why, "%s", mrec_error_detail());
            mrec_fail(st, "smore: the %s features' item graph: %s", f2[f]->name, why);
        }
    }
    if (!st) st = mrec_smore_fusion_graph(&knn[2], &knn[0], &knn[1]);
    if (!st && in->log) {
        char line[512];
        snprintf(line, sizeof line, "item graphs: %s k=%d, %s k=%d, their max-pool of %lld entries, built", f2[0]->name, k[0], f2[1]->name,
                 k[1], (long long)knn[2].row_ptr[in->n_items]);
        in->log(in->log_ctx, line);
    }
    if (!st)
        st = mrec_smore_create(m, in->graph, knn, in->n_users, in->n_items, xs, dims, mrec_hp_int(p, MREC_HP_DIM), mrec_hp_int(p, MREC_HP_LAYERS),
                               mrec_hp_int(p, MREC_HP_ITEM_LAYERS), mrec_hp_real(p, MREC_HP_REG), mrec_hp_real(p, MREC_HP_CL_WEIGHT),
                               mrec_hp_real(p, MREC_HP_TEMP), mrec_hp_real(p, MREC_HP_PREF_DROPOUT), mrec_hp_int(p, MREC_HP_BATCH_SIZE), &rng,
                               ctx);
    for (int f = 0; f < 3; f++) mrec_graph_free(&knn[f]);
    return st;
}

/* GRCN: A's pattern (its values are not read), the modalities in the order given */
static mrec_status create_grcn(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    if (in->n_feat > 4) return mrec_fail(MREC_ERR_ARG, "grcn: at most 4 modalities");
    const float *xs[4];
    int dims[4];
    for (int f = 0; f < in->n_feat; f++) xs[f] = in->feat[f].x, dims[f] = in->feat[f].dim;
    mrec_rng rng = seeded(p);
    mrec_status st = mrec_graph_normalized(in->graph, in->train);
    if (!st)
        st = mrec_grcn_create(m, in->graph, in->n_users, in->n_items, xs, dims, in->n_feat, mrec_hp_int(p, MREC_HP_DIM),
                              mrec_hp_int(p, MREC_HP_MULTIMOD_DIM), mrec_hp_int(p, MREC_HP_LAYERS), mrec_hp_int(p, MREC_HP_ROUTINGS),
                              mrec_hp_int(p, MREC_HP_WEIGHT_MODE), mrec_hp_int(p, MREC_HP_PRUNING), mrec_hp_int(p, MREC_HP_HAS_ACT),
                              mrec_hp_int(p, MREC_HP_FUSION), mrec_hp_real(p, MREC_HP_REG), &rng, ctx);
    return st;
}

/* MENTOR: Â, FREEDOM's item graph of the visual (0.1) and textual (0.9) features (the same cache: the reference's
 * mm_adj is FREEDOM's), the model; other modalities are not read. */
static mrec_status create_mentor(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx) {
    const float *xs[2] = {NULL, NULL};
    int dims[2] = {0, 0}, k = mrec_hp_int(p, MREC_HP_KNN_K), cached = 0;
    for (int f = 0; f < in->n_feat; f++) {
        int at = !strcmp(in->feat[f].name, "visual") ? 0 : !strcmp(in->feat[f].name, "textual") ? 1 : -1;
        if (at >= 0) xs[at] = in->feat[f].x, dims[at] = in->feat[f].dim;
    }
    if (!xs[0] || !xs[1]) return mrec_fail(MREC_ERR_ARG, "mentor needs a visual and a textual modality");
    const float w[2] = {0.1f, 0.9f};
    mrec_rng rng = seeded(p);
    mrec_status st = mrec_graph_normalized(in->graph, in->train);
    if (!st) st = mrec_graph_knn_cached(in->item_graph, xs, dims, w, 2, in->n_items, k, in->cache_dir, &cached, ctx);
    if (!st && in->log) {
        char line[4400];
        snprintf(line, sizeof line, "item graph: k=%d, %lld edges, %s%s", k, (long long)in->item_graph->row_ptr[in->n_items],
                 cached ? "read from " : in->cache_dir ? "built and saved in " : "built", in->cache_dir ? in->cache_dir : "");
        in->log(in->log_ctx, line);
    }
    if (!st)
        st = mrec_mentor_create(m, in->graph, in->item_graph, in->n_users, in->n_items, xs, dims, mrec_hp_int(p, MREC_HP_DIM),
                                mrec_hp_int(p, MREC_HP_ITEM_LAYERS), mrec_hp_real(p, MREC_HP_REG), mrec_hp_real(p, MREC_HP_ALIGN_WEIGHT),
                                mrec_hp_real(p, MREC_HP_CL_WEIGHT), mrec_hp_real(p, MREC_HP_TEMP), mrec_hp_real(p, MREC_HP_EPS), &rng, ctx);
    return st;
}

/* ---- the table ---- */

/* What most models read: hyper-parameter, Elliot key, params-column label (and the model's own default) */
#define P(h, key, lab) {.hp = h, .elliot = key, .label = lab}
#define OWN(h, key, lab, ...) {.hp = h, .elliot = key, .label = lab, .own_default = 1, .def = {__VA_ARGS__}}
#define DIM P(MREC_HP_DIM, "factors", "dim")
#define LR P(MREC_HP_LR, "lr", "lr")
#define BATCH P(MREC_HP_BATCH_SIZE, "batch_size", "batch")
#define SEED P(MREC_HP_SEED, "seed", "seed")
#define EPOCHS P(MREC_HP_EPOCHS, "epochs", NULL)
#define LAYERS(key) P(MREC_HP_LAYERS, key, "layers")
#define REG(key, lab, d) OWN(MREC_HP_REG, key, lab, d)
/* Elliot keys held at the model's value */
#define NORMALIZED {.key = "normalize", .kind = MREC_FIXED_TEXT, .text = "True|true", .why = "mrec's graph is always normalized (True)"}
#define SIZE_OF_FACTORS(k) \
    {.key = k, .kind = MREC_FIXED_SAME, .same = MREC_HP_DIM, .why = "mrec's layers and modality projections have the size of factors"}
#define HELD(k, n, reason) {.key = k, .kind = MREC_FIXED_NUMBER, .num = {n}, .why = reason}

static const mrec_model_entry MODELS[] = {
    {.name = "mostpop", .elliot = "MostPop", .summary = "every user gets the items by training popularity (Elliot)", .flags = MREC_MODEL_GPU,
     .create = create_mostpop,
     .params = {P(MREC_HP_SEED, "seed", NULL)}},
    {.name = "itemknn", .elliot = "ItemKNN", .summary = "cosine item neighbours over the training users (Elliot)", .flags = MREC_MODEL_GPU, .create = create_itemknn,
     .params = {P(MREC_HP_NEIGHBOURS, "neighbors", "k"), P(MREC_HP_SEED, "seed", NULL)},
     .fixed = {{.key = "similarity", .kind = MREC_FIXED_TEXT, .text = "cosine", .why = "mrec's ItemKNN uses cosine"}}},
    {.name = "bprmf", .elliot = "BPRMF", .summary = "matrix factorization with BPR (MMRec)", .flags = MREC_MODEL_TRAINS | MREC_MODEL_GPU, .create = create_bprmf,
     .params = {DIM, LR, REG("l_w", "reg", 1e-5), BATCH, SEED, EPOCHS}},
    {.name = "lightgcn", .elliot = "LightGCN", .summary = "the mean of graph propagations (MMRec, or its authors' loss)",
     .flags = MREC_MODEL_TRAINS | MREC_MODEL_GPU, .create = create_lightgcn,
     .params = {DIM, LAYERS("n_layers"), LR, REG("l_w", "reg", 1e-4), BATCH, SEED, {.hp = MREC_HP_LOSS, .label = "loss", .hide_default = 1},
                EPOCHS},
     .fixed = {NORMALIZED}},
    /* reg is the paper's decay; the paper trains with lr 1e-4 and batches of 1024 */
    {.name = "ngcf", .elliot = "NGCF", .summary = "graph convolution with feature interactions (its authors' code)", .flags = MREC_MODEL_TRAINS | MREC_MODEL_GPU,
     .create = create_ngcf,
     .params = {DIM, LAYERS("n_layers"), LR, REG("l_w", "decay", 1e-5), P(MREC_HP_NODE_DROPOUT, "node_dropout", "node_dropout"),
                P(MREC_HP_MESS_DROPOUT, "message_dropout", "mess_dropout"), BATCH, SEED, EPOCHS},
     .fixed = {SIZE_OF_FACTORS("weight_size"), NORMALIZED}},
    {.name = "vbpr", .elliot = "VBPR", .summary = "BPR with a projection of the item features (MMRec)", .needs = MREC_NEEDS_ANY,
     .flags = MREC_MODEL_TRAINS | MREC_MODEL_GPU, .create = create_vbpr, .params = {DIM, LR, REG("l_w", "reg", 1e-3), BATCH, SEED, EPOCHS},
     .fixed = {{.key = "comb_mod", .kind = MREC_FIXED_TEXT, .text = "concat", .why = "mrec's VBPR concatenates the modalities (concat)"}}},
    /* the end-to-end setting of Yi et al. 2023 ("Large Multi-modal Encoders for Recommendation"); MMRec's lr and batches of 64,
     * which bound the towers' activations */
    {.name = "clip-e2e", .elliot = "CLIPE2E", .summary = "BPR on a learned fusion of CLIP's image and text embeddings, its top blocks trained end to end",
     .flags = MREC_MODEL_TRAINS | MREC_MODEL_GPU, .create = create_clip_e2e,
     .params = {DIM, LR, REG("l_w", "reg", 1e-3), OWN(MREC_HP_BATCH_SIZE, "batch_size", "batch", 64), SEED, EPOCHS,
                P(MREC_HP_BLOCKS, "blocks", "blocks"), P(MREC_HP_TOWER_LR, "tower_lr", "tower_lr"), P(MREC_HP_TOWER_DECAY, "tower_decay", NULL)}},
    {.name = "freedom", .elliot = "FREEDOM", .summary = "LightGCN with a frozen kNN item graph of the features (MMRec)",
     .needs = MREC_NEEDS_ANY, .flags = MREC_MODEL_TRAINS | MREC_MODEL_GRAPH_CACHE | MREC_MODEL_GPU, .create = create_freedom,
     .modality_weights = freedom_weights,
     .params = {DIM, OWN(MREC_HP_LAYERS, "n_ui_layers", "layers", 2), LR, REG("l_w", "reg", 1e-3), P(MREC_HP_KNN_K, "top_k", "knn_k"),
                P(MREC_HP_EDGE_DROPOUT, "drop", "edge_dropout"), BATCH, SEED, EPOCHS, P(MREC_HP_LR_DECAY, "lr_sched", NULL)},
     .fixed = {HELD("n_layers", 1, "mrec's FREEDOM has 1 (MMRec's value)"), SIZE_OF_FACTORS("factors_multimod"),
               {.key = "mw", .kind = MREC_FIXED_PAIR, .num = {0.1, 0.9}, .why = "mrec's FREEDOM weighs visual 0.1, textual 0.9: (0.1,0.9)"}}},
    {.name = "lattice", .elliot = "LATTICE", .summary = "learned and frozen kNN item graphs on a LightGCN backbone (MMRec)",
     .needs = MREC_NEEDS_ANY, .flags = MREC_MODEL_TRAINS | MREC_MODEL_GPU, .create = create_lattice,
     .params = {DIM, LR, OWN(MREC_HP_LR_DECAY, "lr_sched", "lr_decay", 0.96, 50), REG("l_w", "reg", 1e-4), P(MREC_HP_KNN_K, "top_k", "knn_k"),
                P(MREC_HP_LAMBDA, "l_m", "lambda"), BATCH, SEED, EPOCHS},
     .fixed = {HELD("n_layers", 1, "mrec's LATTICE has 1 (MMRec's value)"), HELD("n_ui_layers", 2, "mrec's LATTICE has 2 (MMRec's value)"),
               SIZE_OF_FACTORS("factors_multimod")}},
    /* MMRec's first grid point; no negatives are sampled */
    {.name = "bm3", .elliot = "BM3", .summary = "self-supervised views without negatives (MMRec)", .needs = MREC_NEEDS_ANY,
     .flags = MREC_MODEL_TRAINS | MREC_MODEL_GPU, .create = create_bm3,
     .params = {DIM, OWN(MREC_HP_LAYERS, "n_layers", "layers", 1), LR, REG("reg_weight", "reg", 0.1), P(MREC_HP_CL_WEIGHT, "cl_weight", "cl"),
                P(MREC_HP_TARGET_DROPOUT, "dropout", "dropout"), BATCH, SEED, EPOCHS, P(MREC_HP_LR_DECAY, "lr_sched", NULL)},
     .fixed = {SIZE_OF_FACTORS("multimod_factors")}},
    /* the defaults of the Ducho-meets-Elliot fork, which samples batches of distinct users */
    {.name = "ngcfm", .elliot = "NGCFM", .summary = "NGCF with the item features (the Ducho-meets-Elliot benchmark's fork)",
     .needs = MREC_NEEDS_ANY, .flags = MREC_MODEL_TRAINS | MREC_MODEL_GPU, .create = create_ngcfm,
     .params = {DIM, LAYERS("n_layers"), OWN(MREC_HP_LR, "lr", "lr", 0.0005), REG("l_w", "l_w", 0.01),
                OWN(MREC_HP_MESS_DROPOUT, "message_dropout", "mess_dropout", 0.5), OWN(MREC_HP_NODE_DROPOUT, "node_dropout", "node_dropout", 0),
                BATCH, OWN(MREC_HP_SAMPLER, NULL, "sampler", 1), SEED, EPOCHS},
     .fixed = {SIZE_OF_FACTORS("weight_size"), NORMALIZED}},
    /* the benchmark's SimGCL template (config_templates.py): its fixed values, and the first point of its lr and reg_cl
     * grids; the fork samples every training pair once an epoch, and fixes the temperature at 0.2 */
    {.name = "simgcl", .elliot = "SimGCL", .summary = "LightGCN with InfoNCE between two noise-perturbed views (the Ducho-meets-Elliot fork)",
     .flags = MREC_MODEL_TRAINS | MREC_MODEL_GPU, .create = create_simgcl,
     .params = {DIM, LAYERS("n_layers"), OWN(MREC_HP_LR, "lr", "lr", 0.0001), REG("l_w", "l_w", 1e-4), P(MREC_HP_EPS, "eps", "eps"),
                OWN(MREC_HP_CL_WEIGHT, "reg_cl", "reg_cl", 0.5), P(MREC_HP_TEMP, NULL, "temp"), OWN(MREC_HP_BATCH_SIZE, "batch_size", "batch", 1024),
                OWN(MREC_HP_SEED, "seed", "seed", 123), OWN(MREC_HP_EPOCHS, "epochs", NULL, 200)},
     .fixed = {NORMALIZED}},
    /* the fork's own defaults (the benchmark's templates have no SGL); the fork samples batches of distinct users */
    {.name = "sgl", .elliot = "SGL", .summary = "LightGCN with InfoNCE between two dropped-out graph views (the Ducho-meets-Elliot fork)",
     .flags = MREC_MODEL_TRAINS | MREC_MODEL_GPU, .create = create_sgl,
     .params = {DIM, OWN(MREC_HP_LAYERS, "n_layers", "layers", 1), OWN(MREC_HP_LR, "lr", "lr", 0.0005), REG("l_w", "l_w", 0.01),
                OWN(MREC_HP_CL_WEIGHT, "ssl_reg", "ssl_reg", 0.1), P(MREC_HP_SSL_RATIO, "ssl_ratio", "ssl_ratio"), P(MREC_HP_TEMP, "ssl_temp", "temp"),
                P(MREC_HP_AUGMENT, "sampling", "augment"), BATCH, OWN(MREC_HP_SAMPLER, NULL, "sampler", 1), SEED, EPOCHS}},
    /* the fork's own defaults (the benchmark's templates have no LightGCN-M); the fork samples users at random */
    {.name = "lightgcnm", .elliot = "LightGCNM", .summary = "LightGCN whose items are projections of their features (the Ducho-meets-Elliot fork)",
     .needs = MREC_NEEDS_ANY, .flags = MREC_MODEL_TRAINS | MREC_MODEL_GPU, .create = create_lightgcnm,
     .params = {DIM, OWN(MREC_HP_LAYERS, "n_layers", "layers", 1), OWN(MREC_HP_LR, "lr", "lr", 0.0005), REG("l_w", "l_w", 0.01),
                P(MREC_HP_AGGREGATION, "aggregation", "aggregation"), BATCH, OWN(MREC_HP_SAMPLER, NULL, "sampler", 1), SEED, EPOCHS},
     .fixed = {NORMALIZED}},
    /* a sibling benchmark's MMGCN template (sisinflab's Graph-Missing-Modalities, on the same fork): its fixed values and the
     * first point of its lr and l_w grids; the fork samples every training pair once an epoch */
    {.name = "mmgcn", .elliot = "MMGCN", .summary = "a graph network per modality, averaged (the Ducho-meets-Elliot fork)",
     .needs = MREC_NEEDS_ANY, .flags = MREC_MODEL_TRAINS | MREC_MODEL_GPU, .create = create_mmgcn,
     .params = {DIM, LAYERS("num_layers"), OWN(MREC_HP_LR, "lr", "lr", 1e-5), REG("l_w", "l_w", 1e-5),
                P(MREC_HP_MULTIMOD_DIMS, "factors_multimod", "multimod"), P(MREC_HP_GCN_AGGR, "aggregation", "aggregation"),
                P(MREC_HP_CONCAT, "concatenation", "concat"), P(MREC_HP_HAS_ID, "has_id", "has_id"),
                OWN(MREC_HP_BATCH_SIZE, "batch_size", "batch", 1024), OWN(MREC_HP_SEED, "seed", "seed", 123), OWN(MREC_HP_EPOCHS, "epochs", NULL, 200)}},
    /* MMRec's LGMRec.yaml: its fixed values and its Baby settings (n_hyper_layer 1, hyper_num 4, keep_rate 0.5, alpha 0.3);
     * the reference fixes tau at 0.2 */
    {.name = "lgmrec", .elliot = "LGMRec", .summary = "local graph and global hypergraph embeddings of the modalities (MMRec)",
     .needs = MREC_NEEDS_VISUAL_TEXTUAL, .flags = MREC_MODEL_TRAINS | MREC_MODEL_GPU, .create = create_lgmrec,
     .params = {P(MREC_HP_DIM, "embedding_size", "dim"), OWN(MREC_HP_LAYERS, "n_ui_layers", "layers", 2),
                P(MREC_HP_MM_LAYERS, "n_mm_layers", "mm_layers"), P(MREC_HP_HYPER_LAYERS, "n_hyper_layer", "hyper_layers"),
                P(MREC_HP_HYPER_NUM, "hyper_num", "hyper_num"), P(MREC_HP_KEEP_RATE, "keep_rate", "keep_rate"), P(MREC_HP_ALPHA, "alpha", "alpha"),
                OWN(MREC_HP_CL_WEIGHT, "cl_weight", "cl", 1e-4), REG("reg_weight", "reg", 1e-6), LR, BATCH, SEED, EPOCHS},
     .fixed = {{.key = "feat_embed_dim", .kind = MREC_FIXED_SAME, .same = MREC_HP_DIM, .why = "mrec's LGMRec adds the modality and id embeddings: the size of embedding_size"},
               {.key = "cf_model", .kind = MREC_FIXED_TEXT, .text = "lightgcn", .why = "mrec's LGMRec's collaborative embeddings are LightGCN's (lightgcn)"}}},
    /* MMRec's MGCN.yaml with the authors' cl_loss for Baby (0.01, their repository's MGCN.yaml; MMRec grids 0.001 to 0.1);
     * the temperature 0.2 is fixed in MMRec's code */
    {.name = "mgcn", .elliot = "MGCN", .summary = "purified modality views on kNN item graphs fused by attention, InfoNCE to the id view (MMRec)",
     .needs = MREC_NEEDS_ANY, .flags = MREC_MODEL_TRAINS | MREC_MODEL_GPU, .create = create_mgcn,
     .params = {DIM, OWN(MREC_HP_LAYERS, "n_ui_layers", "layers", 2), OWN(MREC_HP_ITEM_LAYERS, "n_layers", "item_layers", 1), LR,
                OWN(MREC_HP_LR_DECAY, "lr_sched", "lr_decay", 0.96, 50), REG("reg_weight", "reg", 1e-4), P(MREC_HP_KNN_K, "knn_k", "knn_k"),
                OWN(MREC_HP_CL_WEIGHT, "cl_loss", "cl", 0.01), OWN(MREC_HP_TEMP, NULL, "temp", 0.2), BATCH, SEED, EPOCHS}},
    /* PGL.yaml (local mode) with the authors' Baby run (their log: reg_weight 0.05, dropout 0.2; the yaml's grid starts at
     * reg_weight 0): reg_weight weighs the contrast; the code keeps 30 % of the edges (edge_dropout 0.7) and fixes the
     * temperature at 0.2; lambda_coeff is read by no line of it */
    {.name = "pgl", .elliot = "PGL", .summary = "LightGCN on a degree-sensitive principal subgraph, FREEDOM's item graph, InfoNCE of dropout views (its authors' code)",
     .needs = MREC_NEEDS_ANY, .flags = MREC_MODEL_TRAINS | MREC_MODEL_GRAPH_CACHE | MREC_MODEL_GPU, .create = create_pgl,
     .modality_weights = freedom_weights,
     .params = {DIM, OWN(MREC_HP_LAYERS, "n_ui_layers", "layers", 2), OWN(MREC_HP_ITEM_LAYERS, "n_mm_layers", "item_layers", 1),
                P(MREC_HP_KNN_K, "knn_k", "knn_k"), OWN(MREC_HP_CL_WEIGHT, "reg_weight", "cl", 0.05),
                OWN(MREC_HP_TARGET_DROPOUT, "dropout", "dropout", 0.2), OWN(MREC_HP_EDGE_DROPOUT, NULL, "edge_dropout", 0.7),
                OWN(MREC_HP_TEMP, NULL, "temp", 0.2), LR, OWN(MREC_HP_LR_DECAY, "lr_sched", "lr_decay", 0.96, 50), BATCH, SEED, EPOCHS},
     .fixed = {{.key = "feat_embed_dim", .kind = MREC_FIXED_SAME, .same = MREC_HP_DIM, .why = "mrec's PGL propagates the user and item embeddings together: the size of factors"},
               {.key = "mode", .kind = MREC_FIXED_TEXT, .text = "local", .why = "mrec's PGL is the local variant (degree-sensitive edge sampling): local"},
               {.key = "mm_image_weight", .kind = MREC_FIXED_NUMBER, .num = {0.1}, .why = "mrec's PGL weighs the visual item graph 0.1 (FREEDOM's graph)"},
               {.key = "lambda_coeff", .kind = MREC_FIXED_NUMBER, .num = {0.9}, .why = "the reference reads no lambda_coeff; PGL.yaml's 0.9 is accepted"}}},
    /* the authors' best Baby settings (their README: n_ui_layers 4, n_layers 1, image_knn_k 40, text_knn_k 15, cl_loss 0.01,
     * reg_weight 1e-4, dropout_rate 0.1) and SMORE.yaml's lr 0.001 decayed 0.96 every 50 epochs; the InfoNCE's 0.2 is fixed
     * in their code (the yaml's temperature is not read there; here it is) */
    {.name = "smore", .elliot = "SMORE", .summary = "spectral fusion of image and text, their kNN item graphs and max-pool, InfoNCE to the id view (its authors' code)",
     .needs = MREC_NEEDS_ANY, .flags = MREC_MODEL_TRAINS | MREC_MODEL_GPU, .create = create_smore,
     .params = {P(MREC_HP_DIM, "embedding_size", "dim"), OWN(MREC_HP_LAYERS, "n_ui_layers", "layers", 4),
                OWN(MREC_HP_ITEM_LAYERS, "n_layers", "item_layers", 1), LR, OWN(MREC_HP_LR_DECAY, "lr_sched", "lr_decay", 0.96, 50),
                REG("reg_weight", "reg", 1e-4), OWN(MREC_HP_IMAGE_KNN_K, "image_knn_k", "image_knn_k", 40),
                OWN(MREC_HP_TEXT_KNN_K, "text_knn_k", "text_knn_k", 15), OWN(MREC_HP_CL_WEIGHT, "cl_loss", "cl", 0.01),
                OWN(MREC_HP_TEMP, "temperature", "temp", 0.2), OWN(MREC_HP_PREF_DROPOUT, "dropout_rate", "dropout", 0.1), BATCH, SEED, EPOCHS}},
    /* the benchmark's GRCN template (config_templates.py): its fixed values and the first point of its lr and l_w grids;
     * the fork samples every training pair once an epoch; its aggregation key is read by nothing (its layers sum) */
    {.name = "grcn", .elliot = "GRCN", .summary = "modality attention refines the graph's edge weights for an id GCN (the Ducho-meets-Elliot fork)",
     .needs = MREC_NEEDS_ANY, .flags = MREC_MODEL_TRAINS | MREC_MODEL_GPU, .create = create_grcn,
     .params = {DIM, OWN(MREC_HP_LAYERS, "num_layers", "layers", 2), P(MREC_HP_ROUTINGS, "num_routings", "routings"),
                P(MREC_HP_MULTIMOD_DIM, "factors_multimod", "multimod"), OWN(MREC_HP_LR, "lr", "lr", 0.0001), REG("l_w", "l_w", 1e-5),
                P(MREC_HP_WEIGHT_MODE, "weight_mode", "weight_mode"), P(MREC_HP_PRUNING, "pruning", "pruning"),
                P(MREC_HP_HAS_ACT, "has_act", "has_act"), P(MREC_HP_FUSION, "fusion_mode", "fusion"),
                OWN(MREC_HP_BATCH_SIZE, "batch_size", "batch", 1024), OWN(MREC_HP_SEED, "seed", "seed", 123), OWN(MREC_HP_EPOCHS, "epochs", NULL, 200)},
     .fixed = {{.key = "aggregation", .kind = MREC_FIXED_TEXT, .text = "add|concat",
                .why = "the fork's GRCN sums a node's neighbours whatever aggregation says: add (or its default, concat)"}}},
    /* MENTOR.yaml (its authors' repository) over MMRec's overall.yaml: lr 1e-4, reg_weight 1e-3, align_weight 0.1, knn_k 10,
     * n_mm_layers 1; mask_weight_g and temp are grids there ([1e-4, 1e-3], [0.2, 0.4, 0.6]) and no per-dataset choice is
     * published: their first points. The noise's length 0.1 is fixed in the code. */
    {.name = "mentor", .elliot = "MENTOR", .summary = "seven graph networks, FREEDOM's item graph, id-guided alignment of means and variances, InfoNCE of perturbed views (its authors' code)",
     .needs = MREC_NEEDS_VISUAL_TEXTUAL, .flags = MREC_MODEL_TRAINS | MREC_MODEL_GRAPH_CACHE | MREC_MODEL_GPU, .create = create_mentor,
     .params = {P(MREC_HP_DIM, "embedding_size", "dim"), OWN(MREC_HP_ITEM_LAYERS, "n_mm_layers", "item_layers", 1), P(MREC_HP_KNN_K, "knn_k", "knn_k"),
                REG("reg_weight", "reg", 1e-3), P(MREC_HP_ALIGN_WEIGHT, "align_weight", "align"), OWN(MREC_HP_CL_WEIGHT, "mask_weight_g", "cl", 1e-4),
                OWN(MREC_HP_TEMP, "temp", "temp", 0.2), OWN(MREC_HP_EPS, NULL, "eps", 0.1), OWN(MREC_HP_LR, "learning_rate", "lr", 1e-4), BATCH, SEED, EPOCHS},
     .fixed = {{.key = "feat_embed_dim", .kind = MREC_FIXED_SAME, .same = MREC_HP_DIM, .why = "the reference's feat_embed_dim sizes layers its loss never reads: the size of embedding_size"},
               {.key = "n_layers", .kind = MREC_FIXED_NUMBER, .num = {2}, .why = "the reference's networks have two layers whatever n_layers says: 2"},
               {.key = "mm_image_weight", .kind = MREC_FIXED_NUMBER, .num = {0.1}, .why = "mrec's MENTOR weighs the visual item graph 0.1 (FREEDOM's graph)"},
               {.key = "dropout", .kind = MREC_FIXED_NUMBER, .num = {0.5}, .why = "dropout feeds only the reference's gradient-free masking term, which mrec leaves out: MENTOR.yaml's 0.5"},
               {.key = "mask_weight_f", .kind = MREC_FIXED_NUMBER, .num = {1.5}, .why = "mask_weight_f weighs only the reference's gradient-free masking term, which mrec leaves out: MENTOR.yaml's 1.5"}}},
};

#define N_MODELS (int)(sizeof MODELS / sizeof MODELS[0])

int mrec_model_count(void) { return N_MODELS; }

const mrec_model_entry *mrec_model_at(int i) { return i >= 0 && i < N_MODELS ? &MODELS[i] : NULL; }

const mrec_model_entry *mrec_model_find(const char *name) {
    if (!name) return NULL;
    const char *bare = strncmp(name, "external.", 9) ? name : name + 9;
    for (int i = 0; i < N_MODELS; i++)
        if (!strcmp(MODELS[i].name, name) || !strcmp(MODELS[i].elliot, bare)) return &MODELS[i];
    return NULL;
}

/* The entry's parameters run until the first zero slot (hp 0 with no Elliot key and no label). */
static int listed(const mrec_model_param *q) { return q->hp != 0 || q->elliot || q->label; }

const mrec_model_param *mrec_model_param_of(const mrec_model_entry *e, mrec_hp h) {
    for (int i = 0; i < MREC_MODEL_MAX_PARAMS && listed(&e->params[i]); i++)
        if (e->params[i].hp == h) return &e->params[i];
    return NULL;
}

const mrec_model_param *mrec_model_param_elliot(const mrec_model_entry *e, const char *key) {
    for (int i = 0; i < MREC_MODEL_MAX_PARAMS && listed(&e->params[i]); i++)
        if (e->params[i].elliot && !strcmp(e->params[i].elliot, key)) return &e->params[i];
    return NULL;
}

const mrec_fixed_key *mrec_model_fixed(const mrec_model_entry *e, const char *key) {
    for (int i = 0; i < MREC_MODEL_MAX_FIXED && e->fixed[i].key; i++)
        if (!strcmp(e->fixed[i].key, key)) return &e->fixed[i];
    return NULL;
}

mrec_status mrec_params_resolve(mrec_param_values *out, const mrec_model_entry *e, const mrec_param_values *given) {
    for (int h = 0; h < MREC_HP_COUNT; h++) {
        const mrec_param_spec *s = &PARAMS[h];
        const mrec_model_param *q = mrec_model_param_of(e, (mrec_hp)h);
        mrec_param_value *v = &out->v[h];
        if (given && given->v[h].given) {
            *v = given->v[h];
            mrec_status st = mrec_param_check((mrec_hp)h, v);
            if (st) {
                char why[300];
                snprintf(why, sizeof why, "%s", mrec_error_detail());
                return mrec_fail(st, "%s: %s", e->name, why);
            }
        } else {
            const double *def = q && q->own_default ? q->def : s->def;
            memset(v, 0, sizeof *v);
            for (int i = 0; i < MREC_PARAM_MAX_ITEMS; i++) v->x[i] = held(s, i, def[i]);
            v->u = (uint64_t)def[0];
        }
        for (int i = 0; i < MREC_PARAM_MAX_ITEMS; i++) v->x[i] = held(s, i, v->x[i]);
    }
    return MREC_OK;
}

void mrec_model_describe(char *out, size_t cap, const mrec_model_entry *e, const mrec_param_values *p, const mrec_features *feat,
                         int n_feat, int knocked) {
    size_t at = 0;
    if (!cap) return;
    out[0] = 0;
    for (int i = 0; i < MREC_MODEL_MAX_PARAMS && listed(&e->params[i]) && at < cap; i++) {
        const mrec_model_param *q = &e->params[i];
        if (!q->label) continue;
        const mrec_param_value *v = &p->v[q->hp];
        if (q->hide_default) {
            const double *def = q->own_default ? q->def : PARAMS[q->hp].def;
            if (v->x[0] == def[0] && v->x[1] == held(&PARAMS[q->hp], 1, def[1])) continue;
        }
        char value[64];
        mrec_param_format(value, sizeof value, q->hp, v);
        at += (size_t)snprintf(out + at, cap - at, "%s%s=%s", at ? "," : "", q->label, value);
    }
    if (e->needs != MREC_NEEDS_NONE && at < cap) {
        float w[MAX_MODALITIES];
        int weighed = e->modality_weights && n_feat <= MAX_MODALITIES;
        if (weighed) e->modality_weights(w, feat, n_feat);
        at += (size_t)snprintf(out + at, cap - at, "%sfeatures=", at ? "," : "");
        for (int f = 0; f < n_feat && at < cap; f++) {
            at += (size_t)snprintf(out + at, cap - at, "%s%s", f ? "+" : "", feat[f].name);
            if (weighed && at < cap) at += (size_t)snprintf(out + at, cap - at, ":%g", (double)w[f]);
            if (f == knocked && at < cap) at += (size_t)snprintf(out + at, cap - at, "(knocked out)");
        }
    }
    if (!at) snprintf(out, cap, "-");
}

mrec_status mrec_model_build(mrec_built_model *out, const mrec_model_entry *e, const mrec_model_inputs *in, const mrec_param_values *p,
                             mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    int visual = 0, textual = 0;
    for (int f = 0; f < in->n_feat; f++) visual |= !strcmp(in->feat[f].name, "visual"), textual |= !strcmp(in->feat[f].name, "textual");
    if (e->needs == MREC_NEEDS_ANY && in->n_feat < 1) return mrec_fail(MREC_ERR_ARG, "%s needs item features (one modality or more)", e->name);
    if (e->needs == MREC_NEEDS_VISUAL_TEXTUAL && !(visual && textual))
        return mrec_fail(MREC_ERR_ARG, "%s needs a visual and a textual modality", e->name);
    mrec_model_inputs with_graphs = *in;
    with_graphs.graph = &out->graph, with_graphs.item_graph = &out->item_graph;
    mrec_status st = e->create(&out->model, &with_graphs, p, ctx);
    if (st) mrec_built_model_free(out);
    return st;
}

void mrec_built_model_free(mrec_built_model *b) {
    if (b->model.destroy) mrec_model_destroy(&b->model);
    mrec_graph_free(&b->graph), mrec_graph_free(&b->item_graph);
}

int mrec_model_runs_on_gpu(const char *name) {
    const mrec_model_entry *e = name ? mrec_model_find(name) : NULL;
    return e && (e->flags & MREC_MODEL_GPU);
}
