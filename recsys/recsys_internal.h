/* recsys_internal.h: what the files of recsys/ share and the public header
 * does not promise. */
#ifndef MREC_RECSYS_INTERNAL_H
#define MREC_RECSYS_INTERNAL_H

#include <stdio.h>
#include <time.h>

#include "mrec_recsys.h"

/* Opens path for reading only if it is a regular file: a folder, FIFO or
 * device is an error naming it, found before anything blocks or is read. */

/* A graph in host memory as the op layer's sparse matrix (mrec_spmm). */
static inline mrec_csr mrec_graph_csr(const mrec_graph *g) {
    mrec_csr a = {.n_rows = g->n_nodes, .n_cols = g->n_nodes, .row_ptr = g->row_ptr, .col = g->col, .val = g->val,
                  .device = MREC_DEVICE_CPU};
    return a;
}

/* out = g transposed (entries of a row in increasing column order); free with mrec_graph_free. */
mrec_status mrec_graph_transpose(mrec_graph *out, const mrec_graph *g);

/* mrec_graph_layer_mean and its backward over a sparse matrix on the
 * context's device (a graph's copy there: MREC_ERR_DEVICE otherwise). */
mrec_status mrec_csr_layer_mean(float *final, const float *ego, const mrec_csr *adj, int layers, int d, float *a, float *b,
                                mrec_context *ctx);
mrec_status mrec_csr_layer_mean_back(float *dego, const float *dfinal, const mrec_csr *adj, int symmetric, int layers, int d,
                                     float *a, float *b, mrec_context *ctx);

/* ---- BPR through the op entries (bpr_ops.c) ----------------------------------
 * The batch step every model with a GPU path takes where its context runs: on a GPU always, on the CPU when a test
 * asks (mrec_bprmf_use_ops, mrec_lightgcn_use_ops, ...), so the CPU checks the path the GPU takes. The tables hold
 * users then items (n_rows, d) on the context's device. The batch's scores and squared row norms, its loss and the
 * loss's gradient stay there; the gradient rows are combined and scattered in a fixed order (no atomics). Nothing
 * in a step waits for the device. */
typedef struct {
    mrec_context *ctx;
    int cap, n_rows, d; /* batch capacity, table rows and width the buffers are sized for */
    int n;              /* the batch of the last mrec_bpr_ops_dots */
    mrec_arena mem;     /* the buffers below, on the context's device */
    int32_t *ids;       /* (3 cap) the batch's rows: u, then n_users + i, then n_users + j */
    float *dots;        /* (5 cap) pos, neg, then the squared norms of the 3n rows of E */
    float *mixed;           /* (3 cap, d) the gradient rows before their scatter (mrec_bpr_rows) */
    float *dxd;             /* (cap) dx = d loss / d (pos - neg) */
    float *coef;            /* (3) the regularizer's row factors (mrec_bpr_ops_loss) */
    double *loss;           /* (1) the batch's loss (mrec_bpr_ops_loss) */
    int64_t *idx_ptr;       /* (n_rows + 1) the batch's rows transposed: table row -> positions */
    int32_t *idx_pos;       /* (3 cap) */
    void *work;             /* mrec_index_csr's workspace */
    size_t work_bytes;
    int32_t *h_ids;         /* (3 cap) host: the ids, checked there before they go up */
} mrec_bpr_ops;

/* Dots of the batch: pos = <F_u, F_i>, neg = <F_u, F_j> and |E_r|^2 for the rows u, i, j of E, into o->dots; keeps
 * the batch's index for the scatters. F and E (n_rows, d) on ctx's device, u, i, j (n) on the host. The buffers are
 * allocated when a batch is larger than any before, not per batch. */
mrec_status mrec_bpr_ops_dots(mrec_bpr_ops *o, mrec_context *ctx, const float *F, const float *E, const int32_t *u,
                              const int32_t *i, const int32_t *j, int n, int n_users, int n_rows, int d);
/* The same in its two halves: stage lays the ids out, checks them and sends them up (the host's part; it sets
 * o->n), gather queues the index and the dots, reading nothing of the host (a graph's body may replay it). */
mrec_status mrec_bpr_ops_stage(mrec_bpr_ops *o, mrec_context *ctx, const int32_t *u, const int32_t *i, const int32_t *j, int n,
                               int n_users, int n_rows, int d);
mrec_status mrec_bpr_ops_gather(mrec_bpr_ops *o, const float *F, const float *E);
/* The batch's loss where its dots are (mrec_bpr_batch_loss): dx, the regularizer's factors and the loss into
 * o->dxd, o->coef and o->loss. */
mrec_status mrec_bpr_ops_loss(mrec_bpr_ops *o, const mrec_bpr_spec *spec);
/* out (n_rows, d), every row written: the scatter-add over the batch of
 *   row u:  dx_b (T_i - T_j) + coef[0] T_u
 *   row i:  dx_b T_u + coef[1] T_i
 *   row j: -dx_b T_u + coef[2] T_j
 * with T (n_rows, d) on the device, and dx and the factors mrec_bpr_ops_loss left: dx or none (with_dx), the
 * factors of the parts in coef_parts (a mask as mrec_bpr_rows_at's; 0 for none). */
mrec_status mrec_bpr_ops_scatter_at(mrec_bpr_ops *o, float *out, const float *T, int with_dx, int coef_parts);
void mrec_bpr_ops_free(mrec_bpr_ops *o);
/* A model's loss_grad from its step (mrec_model.step): the loss the step
 * left at `at`, read back (the host waits for the device); NaN where the
 * step failed (at NULL) or the copy did (its status into *status). */
double mrec_step_loss(mrec_context *ctx, mrec_status *status, const double *at);

/* ---- a step's random keys, in the context's memory (bpr_ops.c) ---------------------
 * The keys a step's draws use (mrec_hash_dropout_at, mrec_ngcf_combine_at, ...), drawn on the host by the step's
 * stage and sent up there through the upload slots, so that its launches, replayed as one CUDA graph, read each
 * step's own keys where a key in a launch's arguments would replay the first step's. */
#define MREC_STEP_KEYS 32
typedef struct {
    mrec_context *ctx;
    mrec_arena mem;
    uint64_t *at; /* (MREC_STEP_KEYS) in the context's memory: key i at at + i */
} mrec_step_keys;

mrec_status mrec_step_keys_send(mrec_step_keys *k, mrec_context *ctx, const uint64_t *keys, int n);
void mrec_step_keys_free(mrec_step_keys *k);

/* ---- a batch's rows of one table, on the device (bpr_ops.c) ----------------------
 * The ids a batch reads from one table (users, items, or users then items),
 * copied to the context's device once, with their transposed index: a
 * gather reads the rows (mrec_embedding with ids), and
 * mrec_batch_rows_scatter adds gradient rows back into the table in batch
 * order (no atomics). Beside them the constants a batch step uses: ones
 * (column sums as a GEMM) and the host's 0, 1, 2, ... (a gathered table's
 * own rows as the BPR step's ids). Grown when a batch is larger than any
 * before, not per batch. */
typedef struct {
    mrec_context *ctx;
    int cap, n_rows;    /* positions and table rows the buffers are sized for */
    int n;              /* positions of the last set */
    mrec_arena mem;     /* the buffers below, on the context's device */
    int32_t *ids;       /* (cap) */
    int64_t *ptr;       /* (n_rows + 1) table row -> positions */
    int32_t *pos;       /* (cap) */
    float *ones;        /* (cap) */
    void *work;         /* mrec_index_csr's workspace */
    size_t work_bytes;
    int32_t *h_ids;     /* (cap) host: the ids as set */
    int32_t *h_iota;    /* (cap) host: 0, 1, ... */
} mrec_batch_rows;

/* ids = part[0] + offset[0], then part[1] + offset[1], ... (n each, on the
 * host), checked against [0, n_rows) by the index before any row is read. */
mrec_status mrec_batch_rows_set(mrec_batch_rows *r, mrec_context *ctx, int n_rows, int n_parts, const int32_t *const *part,
                                const int *offset, int n);
/* The same in its two halves: stage (the host's part: ids laid out, checked and sent up), then index (launches
 * only). */
mrec_status mrec_batch_rows_stage(mrec_batch_rows *r, mrec_context *ctx, int n_rows, int n_parts, const int32_t *const *part,
                                  const int *offset, int n);
mrec_status mrec_batch_rows_index(mrec_batch_rows *r);
/* out (n_rows, D), every row written: row v = the sum of G's rows at the positions of v, in batch order. G (r->n, D). */
mrec_status mrec_batch_rows_scatter(const mrec_batch_rows *r, float *out, const float *G, int D);
void mrec_batch_rows_free(mrec_batch_rows *r);

/* ---- a batch's distinct items and their feature rows, on the host (bpr_ops.c) ----
 * Models that project fixed item features through a trained map and score
 * only the batch's items (VBPR, NGCF-M) need each distinct item's
 * projection once: a Baby batch of 2048 triples draws about 2,860 distinct
 * items of its 4,096 (and 7,050 in all), so both products over the features
 * (the projection, and the map's gradient after a repeated item's gradient
 * rows are summed) shrink by 30 % against the batch and 60 % against all
 * items. */
typedef struct {
    int n_items, cap;
    int32_t *slot;      /* (n_items) -1 between calls */
    int32_t *uniq;      /* (2 cap) the distinct items, in order of first draw: positives, then negatives */
    int32_t *row;       /* (2 cap) each draw's row among them: positive b at b, negative b at n + b */
    int n;              /* distinct items of the last set */
} mrec_batch_items;

/* Fills b for the draws i (n) then j (n) of items in [0, n_items) (checked by
 * the caller's sampler). The products read the distinct items' feature rows
 * through uniq (mrec_gemm_rows): gathered into a matrix of their own they
 * were 54 MB a Baby batch, written and read twice. */
mrec_status mrec_batch_items_set(mrec_batch_items *b, int n_items, const int32_t *i, const int32_t *j, int n);
void mrec_batch_items_free(mrec_batch_items *b);

/* ---- InfoNCE between two views' rows (contrast.c) ----------------------------
 * alpha InfoNCE(a, b) = alpha / n sum_r -log softmax_c(<â_r, b̂_c> / temp)[r]
 * over unit rows (F.normalize's), with its gradients; the logits a block of
 * rows at a time (block_rows, or 0: as many as 16M logits hold on a CPU, 64M on a GPU), so nothing
 * n x n is formed for a large n. The buffers are grown, not per call. */
typedef struct {
    mrec_context *ctx;
    int cap_n, cap_w;
    int64_t cap_sim;          /* floats of sim: the largest rows x n asked for */
    mrec_arena mem;           /* the buffers below, on the context's device */
    float *na, *nb, *ga, *gb; /* (cap_n, cap_w) the unit rows, their gradients */
    float *sim;               /* (cap_sim) a block's logits (rows, n), then their gradient */
    double *closs;            /* (cap_n) each row's loss */
    int32_t *iota;            /* (cap_n) 0, 1, ..: each row's own column */
} mrec_info_nce;

/* alpha InfoNCE(a, b) added to *loss_at in the context's memory (a batch's loss left on the device): nothing comes
 * back to the host. The term is alpha * sum / n, the rows' sum in order (a fixed tree on a GPU). da, db (n, w) its
 * gradients, written. a, b (n, w), on the context's device. */
mrec_status mrec_info_nce_run(mrec_info_nce *c, mrec_context *ctx, double *loss_at, float *da, float *db, const float *a,
                              const float *b, int n, int w, float temp, float alpha, int block_rows);
/* The buffers mrec_info_nce_run will want for n rows of width w (grown, never shrunk; a step's stage calls it, so
 * that its launches never allocate or upload). */
mrec_status mrec_info_nce_reserve(mrec_info_nce *c, mrec_context *ctx, int n, int w, int block_rows);
void mrec_info_nce_free(mrec_info_nce *c);

/* A graph's copy where ctx runs, carved from a (a measuring arena counts
 * it): mrec_graph_carve sizes it, mrec_graph_upload fills it. */
mrec_csr mrec_graph_carve(mrec_arena *a, int n_rows, int n_cols, int64_t nnz, mrec_device device);
mrec_status mrec_graph_upload(mrec_context *ctx, const mrec_csr *dst, const mrec_csr *src);
/* g (n x n) transposed on the host, for the GPU's A^T products: t_ptr (n + 1),
 * t_col, t_val (nnz) with each row's entries in increasing column order, and
 * t_edge (nnz) each entry's number in g (where its dropout is drawn). */
void mrec_graph_transpose_edges(int64_t *t_ptr, int32_t *t_col, int32_t *t_edge, float *t_val, const mrec_graph *g);

/* For tests, as mrec_ngcf_use_ops: the models below on a CPU context take
 * their batches, forwards and scoring through the op entries, the path a GPU
 * context always takes, so the CPU checks it against the host loops. */
mrec_status mrec_lightgcnm_use_ops(mrec_model *m);
mrec_status mrec_simgcl_use_ops(mrec_model *m);
mrec_status mrec_sgl_use_ops(mrec_model *m);
mrec_status mrec_ngcfm_use_ops(mrec_model *m);
mrec_status mrec_bm3_use_ops(mrec_model *m);
mrec_status mrec_lattice_use_ops(mrec_model *m);
mrec_status mrec_itemknn_use_ops(mrec_model *m);

/* The hash stream of mrec_hash_dropout and mrec_sign_noise: a uniform in
 * [0, 1) per (key, element), the same on every device and in any order. */
static inline float mrec_hash_uniform(uint64_t key, uint64_t e) {
    return (float)((mrec_mix64(key ^ (e * 0x9E3779B97F4A7C15ull)) >> 40) * (1.0 / 16777216.0));
}

/* scores (n, n_items) = users u0 .. u0 + n - 1 against every item, by dot
 * product of final embeddings: final (n_users + n_items, d), users first. */
mrec_status mrec_score_final(mrec_context *ctx, float *scores, const float *final, int n_users, int n_items, int d, int u0, int n);
/* The same final table, users (n_users, d) and items (n_items, d), copied
 * to host memory: the embeddings hook of the models that score with it. */
mrec_status mrec_final_to_host(mrec_context *ctx, float *users, float *items, const float *final, int n_users, int n_items,
                               int d);

/* Whether item is among user u's in m (a row sorted by item): a binary search. */
int mrec_user_has_item(const mrec_user_items *m, int u, int32_t item);

/* A monotonic clock in seconds, for the times a run reports. */
static inline double mrec_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- checkpoints (checkpoint.c) ----
 * mrec_fit's state after an evaluated epoch: what its later epochs read. model, adam, sampler (the draw of that
 * epoch), opt and out are the run's own; rng the sampler's generator as that draw left it; log the run's lines so
 * far. Reading fills them in place, the parameters and moments where they live, and *log (free it). */
typedef struct {
    mrec_model *model;
    mrec_optimizer *adam;
    mrec_bpr_sampler *sampler;
    const mrec_fit_options *opt;
    mrec_fit_result *out;
    int epoch, bad_evals;
    double best;
    uint64_t rng;
    const char *log;
} mrec_fit_progress;

mrec_status mrec_checkpoint_write(const char *path, const mrec_fit_progress *p, mrec_context *ctx);
mrec_status mrec_checkpoint_read(const char *path, mrec_fit_progress *p, char **log, mrec_context *ctx);

#endif
