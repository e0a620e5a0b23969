/* mrec_registry.h: every recommender mrec trains, listed once.
 *
 * One entry per model: the name `mrec train --model` takes and the class
 * name an Elliot config uses, the hyper-parameters it reads (with its own
 * defaults, MMRec's where MMRec has one, and the Elliot key each comes from),
 * the Elliot keys it accepts only at the value it is built with, the
 * modalities it needs, and a create function that builds what the model
 * reads (graphs of the training pairs, kNN item graphs) and calls the model's
 * own create. The trainer, the Elliot config reader and its checks, and
 * `mrec train --help` all read this table, so a new model is its own file
 * plus one entry in registry.c.
 *
 * Hyper-parameters are one shared set (mrec_hp): each has a type, a range
 * and a default, whichever model reads it; the training loop's options
 * (epochs, lr, batch size, seed, ...) are among them, so a model can change
 * their defaults too. Text is not read here: the command line and the config
 * reader turn text into values, and mrec_params_resolve checks every value
 * against its range.
 */
#ifndef MREC_REGISTRY_H
#define MREC_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "mrec_recsys.h"

/* ---- hyper-parameters ---------------------------------------------------------------- */

typedef enum {
    /* the training loop's (mrec_fit_options) */
    MREC_HP_EPOCHS, MREC_HP_LR, MREC_HP_BATCH_SIZE, MREC_HP_SEED, MREC_HP_PATIENCE, MREC_HP_EVAL_EVERY, MREC_HP_LR_DECAY,
    MREC_HP_SAMPLER,
    /* the models' */
    MREC_HP_DIM, MREC_HP_LAYERS, MREC_HP_REG, MREC_HP_NEIGHBOURS, MREC_HP_NODE_DROPOUT, MREC_HP_MESS_DROPOUT, MREC_HP_KNN_K,
    MREC_HP_EDGE_DROPOUT, MREC_HP_LAMBDA, MREC_HP_CL_WEIGHT, MREC_HP_TARGET_DROPOUT, MREC_HP_LOSS,
    /* the graph contrastive models' (SimGCL, SGL) */
    MREC_HP_EPS, MREC_HP_TEMP, MREC_HP_SSL_RATIO, MREC_HP_AUGMENT, MREC_HP_AGGREGATION,
    /* MMGCN's */
    MREC_HP_MULTIMOD_DIMS, MREC_HP_GCN_AGGR, MREC_HP_CONCAT, MREC_HP_HAS_ID,
    /* LGMRec's */
    MREC_HP_MM_LAYERS, MREC_HP_HYPER_LAYERS, MREC_HP_HYPER_NUM, MREC_HP_KEEP_RATE, MREC_HP_ALPHA,
    /* MGCN's */
    MREC_HP_ITEM_LAYERS,
    /* SMORE's */
    MREC_HP_IMAGE_KNN_K, MREC_HP_TEXT_KNN_K, MREC_HP_PREF_DROPOUT,
    /* GRCN's */
    MREC_HP_ROUTINGS, MREC_HP_MULTIMOD_DIM, MREC_HP_WEIGHT_MODE, MREC_HP_PRUNING, MREC_HP_HAS_ACT, MREC_HP_FUSION,
    MREC_HP_ALIGN_WEIGHT,
    /* CLIP-E2E's */
    MREC_HP_BLOCKS, MREC_HP_TOWER_LR, MREC_HP_TOWER_DECAY,
    MREC_HP_COUNT
} mrec_hp;

typedef enum {
    MREC_PARAM_INT,  /* a whole number in [lo, hi] */
    MREC_PARAM_U64,  /* any unsigned 64-bit number (seeds) */
    MREC_PARAM_REAL, /* a real in the range, held in single precision */
    MREC_PARAM_ENUM, /* one of choices, held as its index */
    MREC_PARAM_LIST  /* n_items numbers, each with its own range ("0.96:50") */
} mrec_param_type;

/* A bound left out of a range, as in lr > 0 (the values of mrec_parse.h's MREC_OPEN_LO / _HI). */
enum { MREC_RANGE_OPEN_LO = 1, MREC_RANGE_OPEN_HI = 2 };

#define MREC_PARAM_MAX_ITEMS 2

typedef struct {
    double lo, hi;
    int open;  /* MREC_RANGE_OPEN_LO, MREC_RANGE_OPEN_HI */
    int whole; /* a whole number (INT, and LIST items that count) */
} mrec_range;

typedef struct {
    const char *name;            /* in the params column and in messages: "reg" */
    const char *flag;            /* mrec train's option: "--reg" */
    const char *sw;              /* an option without value that sets the ENUM value `sw_value` ("--authors-loss"), or NULL */
    int sw_value;
    mrec_param_type type;
    mrec_range range;            /* INT, REAL */
    const char *const *choices;  /* ENUM: NULL-terminated */
    int n_items;                 /* LIST */
    const char *item_name[MREC_PARAM_MAX_ITEMS];
    mrec_range item[MREC_PARAM_MAX_ITEMS];
    const char *item_none;       /* LIST: a word an item may be instead, held as 0 (Elliot's None), or NULL */
    double def[MREC_PARAM_MAX_ITEMS]; /* the default: the number, the ENUM index, the LIST items */
    const char *meta, *help;     /* for --help: the value ("X") and one line */
} mrec_param_spec;

/* One value: every type but U64 in x (REAL as its single-precision value). */
typedef struct {
    double x[MREC_PARAM_MAX_ITEMS];
    uint64_t u; /* U64 */
    int given;  /* set by the caller; else the model's default applies */
} mrec_param_value;

typedef struct {
    mrec_param_value v[MREC_HP_COUNT];
} mrec_param_values;

const mrec_param_spec *mrec_param_spec_of(mrec_hp h);

static inline int mrec_hp_int(const mrec_param_values *p, mrec_hp h) { return (int)p->v[h].x[0]; }
static inline float mrec_hp_real(const mrec_param_values *p, mrec_hp h) { return (float)p->v[h].x[0]; }
static inline uint64_t mrec_hp_u64(const mrec_param_values *p, mrec_hp h) { return p->v[h].u; }
static inline float mrec_hp_item(const mrec_param_values *p, mrec_hp h, int i) { return (float)p->v[h].x[i]; }

/* ---- models -------------------------------------------------------------------------- */

typedef enum {
    MREC_NEEDS_NONE,          /* interactions only */
    MREC_NEEDS_ANY,           /* one modality or more, whichever */
    MREC_NEEDS_VISUAL_TEXTUAL /* a visual and a textual modality */
} mrec_modalities;

enum {
    MREC_MODEL_TRAINS = 1,      /* has a loss (MostPop and ItemKNN are only counted) */
    MREC_MODEL_GRAPH_CACHE = 2, /* builds a kNN item graph worth caching between runs */
    MREC_MODEL_GPU = 4          /* trains and ranks on a GPU context (parameters, gradients, moments there) */
};

/* A hyper-parameter as one model reads it. */
typedef struct {
    mrec_hp hp;
    const char *elliot;  /* the Elliot key it comes from, or NULL */
    const char *label;   /* its name in the params column; NULL: not shown */
    int own_default;     /* def below replaces the shared default */
    double def[MREC_PARAM_MAX_ITEMS];
    int hide_default;    /* shown only when it differs from the default (LightGCN's loss) */
} mrec_model_param;

/* An Elliot key a model accepts only at the value it is built with. */
typedef enum {
    MREC_FIXED_TEXT,   /* one of the texts in `text`, separated by '|' */
    MREC_FIXED_NUMBER, /* the number num[0] */
    MREC_FIXED_PAIR,   /* the tuple (num[0], num[1]) */
    MREC_FIXED_SAME    /* the number the model's hyper-parameter `same` has */
} mrec_fixed_kind;

typedef struct {
    const char *key;
    mrec_fixed_kind kind;
    const char *text;
    double num[2];
    mrec_hp same;
    const char *why; /* the message after "KEY: " */
} mrec_fixed_key;

/* What a create function is given besides its hyper-parameters. */
typedef struct {
    int n_users, n_items;
    const mrec_user_items *train;
    const mrec_features *feat;  /* (n_feat) the modalities, in the order given */
    int n_feat;
    const float *item_feat;     /* (n_items, feat_dim) the modalities side by side, or NULL */
    int feat_dim;
    const char *cache_dir;      /* kNN item graphs read from and saved in this folder, or NULL */
    mrec_graph *graph, *item_graph; /* where create puts the graphs the model reads while it lives */
    mrec_notice_fn log;         /* a line on what was built ("item graph: ..."), or NULL */
    void *log_ctx;
    const struct mrec_clip_items *clip_items; /* CLIP-E2E: the towers and the items' photos and texts, or NULL */
} mrec_model_inputs;

typedef mrec_status (*mrec_model_create_fn)(mrec_model *m, const mrec_model_inputs *in, const mrec_param_values *p, mrec_context *ctx);

#define MREC_MODEL_MAX_PARAMS 14
#define MREC_MODEL_MAX_FIXED 6

typedef struct {
    const char *name;    /* mrec train --model */
    const char *elliot;  /* Elliot's class name ("external." may come before it in a config) */
    const char *summary; /* one line for --help */
    mrec_modalities needs;
    int flags;           /* MREC_MODEL_TRAINS, MREC_MODEL_GRAPH_CACHE, MREC_MODEL_GPU */
    mrec_model_create_fn create;
    /* the weight of each modality, where the model weighs them (FREEDOM); the params column shows them */
    void (*modality_weights)(float *w, const mrec_features *feat, int n_feat);
    mrec_model_param params[MREC_MODEL_MAX_PARAMS];
    mrec_fixed_key fixed[MREC_MODEL_MAX_FIXED];
} mrec_model_entry;

int mrec_model_count(void);
const mrec_model_entry *mrec_model_at(int i);
/* By mrec's name or Elliot's (with or without "external."); NULL if there is none. */
const mrec_model_entry *mrec_model_find(const char *name);
/* 1 when the model of that name ("bprmf") trains and ranks on a GPU context
 * (MREC_MODEL_GPU in its entry: every model today); one without it would
 * refuse a GPU context, naming itself. A trainer asks before it reads any
 * data. */
int mrec_model_runs_on_gpu(const char *name);
/* The entry's use of h, or NULL when the model does not list it. */
const mrec_model_param *mrec_model_param_of(const mrec_model_entry *e, mrec_hp h);
/* The entry's hyper-parameter behind Elliot key `key`, or NULL. */
const mrec_model_param *mrec_model_param_elliot(const mrec_model_entry *e, const char *key);
/* The entry's fixed Elliot key `key`, or NULL. */
const mrec_fixed_key *mrec_model_fixed(const mrec_model_entry *e, const char *key);

/* Every hyper-parameter of out: the one given (given->v[h].given), else the
 * model's default, else the shared one. A given value outside its range is an
 * error naming the parameter and the model. */
mrec_status mrec_params_resolve(mrec_param_values *out, const mrec_model_entry *e, const mrec_param_values *given);
/* v against h's type and range; the detail says what was expected. */
mrec_status mrec_param_check(mrec_hp h, const mrec_param_value *v);
/* The value as the params column writes it ("0.001", "users", "0.96:50"). */
void mrec_param_format(char *out, size_t cap, mrec_hp h, const mrec_param_value *v);

/* The params column of results.tsv: each shown hyper-parameter as
 * label=value ("dim=64,lr=0.001,reg=1e-05,batch=2048,seed=999"), then, for a
 * model that reads features, "features=" and the modalities
 * ("visual:0.1+textual:0.9" with their weights, "(knocked out)" after the
 * one at index `knocked`, -1 for none); "-" for a model without any. */
void mrec_model_describe(char *out, size_t cap, const mrec_model_entry *e, const mrec_param_values *p, const mrec_features *feat,
                         int n_feat, int knocked);

/* A model and the graphs it reads, which live as long as it does. Build in
 * place: the model keeps pointers into this struct. */
typedef struct {
    mrec_model model;
    mrec_graph graph, item_graph;
} mrec_built_model;

/* Checks the modalities the entry needs and calls its create with resolved
 * values p (mrec_params_resolve). in->graph and in->item_graph are set here. */
mrec_status mrec_model_build(mrec_built_model *out, const mrec_model_entry *e, const mrec_model_inputs *in, const mrec_param_values *p,
                             mrec_context *ctx);
void mrec_built_model_free(mrec_built_model *b);

#endif
