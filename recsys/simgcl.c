/* simgcl.c: SimGCL as the Ducho-meets-Elliot benchmark's Elliot fork trains it.
 *
 *   E0 = [U; I] (ego embeddings), E_k = Â E_{k-1},  F = (E1 + .. + EL) / L
 *   (the layer mean leaves E0 out, as SimGCL's authors do), score = <F_u, F_i>.
 * Two noisy views share E0: P_0 = E0, P_k = Â P_{k-1} + eps sign(Â P_{k-1}) * r_k
 * with r_k uniform in [0, 1) per entry, scaled to unit length per row, fresh
 * draws for each view, layer and step; V = (P_1 + .. + P_L) / L.
 *   loss = mean_b -log(1e-5 + sigmoid(<F_u, F_i> - <F_u, F_j>))
 *        + l_w (|F_users(b)|_F + |F_pos(b)|_F) / n
 *        + reg_cl (InfoNCE(V1, V2) over the batch's distinct users
 *                  + the same over its distinct positive items)
 * with InfoNCE(A, B) = -mean_r log softmax_c(<a_r, b_c> / temp)[r] on rows
 * scaled to unit length. The L2 term is on the propagated rows of the batch's
 * users and positives (no negatives), each Frobenius norm divided by n.
 *
 * Backward: the sign carries no gradient and the noise is added, so both
 * views and F are the same linear map of E0; their row gradients are summed
 * and sent back once: dE0 = (Â + Â^2 + .. + Â^L) D / L (Â is symmetric).
 *
 * The fork restates the SimGCL authors' PyTorch code (SELFRec) on all of the
 * above, the temperature fixed at 0.2 in both (mrec keeps it a parameter
 * with that default). Their one difference is the sampler: the fork reseeds
 * it at every epoch, so each epoch sees the same order and negatives; mrec
 * shuffles anew each epoch, as SELFRec does. The noise is a counter-based
 * hash stream (mrec_hash_uniform) keyed at each step by the model's own
 * generator, seeded at creation, so a seed gives the same run on any device.
 *
 * Two paths compute this: the host loops (a CPU context), and the op path (a
 * GPU context always, a CPU one after mrec_simgcl_use_ops) with the
 * embeddings, views and a copy of the graph on the context's device. There
 * the noise is drawn inside mrec_sign_noise from the same key (the same
 * numbers as the host's buffer), the batch goes through the BPR step of
 * bpr_ops.c, and each contrast gathers its distinct rows, scores them with a
 * GEMM and takes mrec_softmax_xent_rows; the batch's loss stays on the
 * device. The op path comes in the trainer's two halves (mrec_model.stage,
 * .launch: one CUDA graph a batch on a GPU). A contrast is as wide as the
 * batch's distinct rows, a count that changes every batch where a graph's
 * sizes are fixed: the stage finds the rows on the host and pads them to the
 * batch (repeating the first), and sends the count and alpha up; the launches
 * run the contrast at the batch's width and mrec_softmax_xent_rows_at and
 * mrec_loss_term_at read the count, so the padding's rows and columns add
 * nothing (their gradients are zeros). Both paths share the (N, d) arrays.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const mrec_graph *graph;
    mrec_csr adj;          /* the graph as the ops see it: itself, or its copy on the device */
    int n_users, n_items, n_nodes, dim, layers;
    float l_w, eps, reg_cl, temp;
    mrec_arena mem;        /* on the context's device: the (N, d) arrays below, and the graph's copy on a GPU */
    float *ego, *ego_grad; /* (N, d) parameters: users then items */
    float *final;          /* (N, d) F */
    float *view[2];        /* (N, d) V1, V2 */
    float *dsum;           /* (N, d) dF + dV1 + dV2 */
    float *a, *b;          /* (N, d) propagation buffers */
    float *noise;          /* (2, L, N, d) host: the host path's uniform draws of the step (a CPU context) */
    const float *noise_ops; /* the fixed draws where the ops read them: noise, or noise_mem on a GPU */
    mrec_arena noise_mem;
    int noise_fixed;       /* the draws stay as they are (tests) */
    uint64_t key;          /* the step's noise key (the op path reads it from keys) */
    mrec_step_keys keys;
    mrec_rng rng;
    /* the host path's batch scratch, grown with the batch */
    int cap;
    float *pos, *neg, *dx;  /* (cap) */
    int32_t *rows;          /* (cap) distinct rows of a contrast (both paths) */
    float *za, *zb;         /* (cap, d) the two views' rows at unit length */
    float *na, *nb;         /* (cap) their norms before scaling */
    float *sim;             /* (cap, cap) similarities, then their gradient */
    float *ga, *gb;         /* (cap, d) gradients of za, zb */
    uint8_t *seen;          /* (N) marks for the distinct rows */
    /* the op path */
    int use_ops, ops_cap;
    mrec_arena batch;       /* on the device, sized for ops_cap: */
    float *cv[2], *cz[2], *cg[2], *cx; /* (cap, d) the rows of the views, at unit length, their gradients, the views' */
    float *csim;            /* (cap, cap) */
    double *closs;          /* (cap) the contrast's per-row losses */
    mrec_batch_rows distinct[2]; /* the users' contrast's rows, the items', each padded to the batch */
    struct contrast_sizes { /* the two contrasts' distinct rows and their alphas (reg_cl / rows / temp) */
        int32_t live[2];
        float alpha[2];
    } *sizes, h_sizes;      /* on the device; the host's copy */
    mrec_bpr_ops ops;
    mrec_context *ctx;
    mrec_status status;
    double host_loss;       /* the host path's step's loss */
} simgcl;

/* out (N, d) = (Â^1 + .. + Â^L) x / L, plus the noise of `view` (0 or 1) at
 * each layer, or none (view -1). */
static mrec_status propagate(simgcl *m, float *out, int view) {
    int d = m->dim, L = m->layers;
    int64_t n = (int64_t)m->n_nodes * d;
    const float *prev = m->ego;
    for (int k = 0; k < L; k++) {
        float *next = k % 2 ? m->b : m->a;
        mrec_status st = mrec_spmm(m->ctx, next, &m->adj, prev, d, 0);
        if (st) return st;
        size_t off = ((size_t)view * L + k) * (size_t)n;
        if (view >= 0 && m->use_ops) {
            /* the key's stream at the host buffer's offsets: the same draws */
            st = mrec_sign_noise_at(m->ctx, next, m->noise_fixed ? m->noise_ops + off : NULL, m->eps, m->keys.at, off, m->n_nodes, d);
            if (st) return st;
        } else if (view >= 0) {
            const float *r = m->noise + off;
            for (int v = 0; v < m->n_nodes; v++) {
                float *row = next + (size_t)v * d;
                const float *rr = r + (size_t)v * d;
                float s = 0;
                for (int c = 0; c < d; c++) s += rr[c] * rr[c];
                /* F.normalize's floor on the norm; sign(0) = 0 */
                float scale = m->eps / fmaxf(sqrtf(s), 1e-12f);
                for (int c = 0; c < d; c++) row[c] += (float)((row[c] > 0) - (row[c] < 0)) * (rr[c] * scale);
            }
        }
        /* the first layer copied (x * 1 is exact), the others added */
        if ((st = k ? mrec_add(m->ctx, out, out, next, n) : mrec_scale(m->ctx, out, next, 1.0f, n))) return st;
        prev = next;
    }
    return mrec_scale(m->ctx, out, out, 1.0f / L, n);
}

/* A new key for the step, and (host path) its draws into the buffer. */
static void draw_noise(simgcl *m) {
    m->key = mrec_rng_next(&m->rng);
    if (m->use_ops) return;
    size_t n = (size_t)2 * m->layers * m->n_nodes * m->dim;
    for (size_t e = 0; e < n; e++) m->noise[e] = mrec_hash_uniform(m->key, e);
}

/* The distinct table rows of ids (n, offset added: users 0, items n_users) into m->rows, in first-seen order. */
static int distinct_rows(simgcl *m, const int32_t *ids, int n, int offset) {
    int k = 0;
    for (int b = 0; b < n; b++) {
        int r = ids[b] + offset;
        if (!m->seen[r]) m->seen[r] = 1, m->rows[k++] = r;
    }
    for (int t = 0; t < k; t++) m->seen[m->rows[t]] = 0;
    return k;
}

static mrec_status grow(simgcl *m, int n) {
    if (n <= m->cap) return MREC_OK;
    free(m->pos), free(m->neg), free(m->dx), free(m->rows), free(m->za), free(m->zb), free(m->na), free(m->nb);
    free(m->sim), free(m->ga), free(m->gb);
    size_t d = (size_t)m->dim;
    m->pos = malloc((size_t)n * 4), m->neg = malloc((size_t)n * 4), m->dx = malloc((size_t)n * 4);
    m->rows = malloc((size_t)n * 4), m->na = malloc((size_t)n * 4), m->nb = malloc((size_t)n * 4);
    m->za = malloc((size_t)n * d * 4), m->zb = malloc((size_t)n * d * 4), m->ga = malloc((size_t)n * d * 4);
    m->gb = malloc((size_t)n * d * 4), m->sim = malloc((size_t)n * n * 4);
    int ok = m->pos && m->neg && m->dx && m->rows && m->na && m->nb && m->za && m->zb && m->ga && m->gb && m->sim;
    m->cap = ok ? n : 0;
    return ok ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "simgcl: a batch of %d", n);
}

/* Row r of a view at unit length (F.normalize: the norm floored at 1e-12); its norm into *norm. */
static void unit_row(float *z, float *norm, const float *x, int d) {
    double s = 0;
    for (int c = 0; c < d; c++) s += (double)x[c] * x[c];
    float r = (float)fmax(sqrt(s), 1e-12);
    for (int c = 0; c < d; c++) z[c] = x[c] / r;
    *norm = r;
}

/* The gradient through z = x / |x|: dx = (dz - z <z, dz>) / |x|, added to out. */
static void unit_row_back(float *out, const float *z, const float *dz, float norm, int d) {
    double dot = 0;
    for (int c = 0; c < d; c++) dot += (double)z[c] * dz[c];
    for (int c = 0; c < d; c++) out[c] += (float)((dz[c] - z[c] * dot) / norm);
}

/* reg_cl * InfoNCE between the two views on the distinct table rows of ids
 * (n, offset added: users 0, items n_users); the gradient goes into the
 * views' rows of dsum. Returns the weighted loss. */
static double contrast(simgcl *m, const int32_t *ids, int n, int offset, mrec_status *st) {
    int d = m->dim, k = distinct_rows(m, ids, n, offset);
    for (int t = 0; t < k; t++) {
        unit_row(m->za + (size_t)t * d, &m->na[t], m->view[0] + (size_t)m->rows[t] * d, d);
        unit_row(m->zb + (size_t)t * d, &m->nb[t], m->view[1] + (size_t)m->rows[t] * d, d);
    }
    /* sim (k, k) = za zb^T / temp */
    if ((*st = mrec_gemm(m->ctx, m->sim, m->za, m->zb, NULL, 1.0f / m->temp, 0, 0, 1, k, k, d, d, d, k))) return NAN;
    double loss = 0;
    float w = m->reg_cl / k;
    for (int r = 0; r < k; r++) {
        float *s = m->sim + (size_t)r * k, top = s[0];
        for (int c = 1; c < k; c++) top = s[c] > top ? s[c] : top;
        float diag = s[r];
        double z = 0;
        for (int c = 0; c < k; c++) s[c] = expf(s[c] - top), z += s[c];
        loss += top + log(z) - diag;
        /* d loss / d sim = reg_cl (softmax - I) / k, folded with 1 / temp for the products below */
        float scale = (float)(w / z / m->temp);
        for (int c = 0; c < k; c++) s[c] *= scale;
        s[r] -= w / m->temp;
    }
    /* ga = dS zb, gb = dS^T za */
    if ((*st = mrec_gemm(m->ctx, m->ga, m->sim, m->zb, NULL, 1, 0, 0, 0, k, d, k, k, d, d))) return NAN;
    if ((*st = mrec_gemm(m->ctx, m->gb, m->sim, m->za, NULL, 1, 0, 1, 0, k, d, k, k, d, d))) return NAN;
    for (int t = 0; t < k; t++) {
        float *row = m->dsum + (size_t)m->rows[t] * d;
        unit_row_back(row, m->za + (size_t)t * d, m->ga + (size_t)t * d, m->na[t], d);
        unit_row_back(row, m->zb + (size_t)t * d, m->gb + (size_t)t * d, m->nb[t], d);
    }
    return m->reg_cl * loss / k;
}

static mrec_status back(simgcl *m);

static mrec_status step(simgcl *m, double *loss_out, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    int d = m->dim, U = m->n_users;
    int64_t total = (int64_t)m->n_nodes * d;
    mrec_status st = grow(m, n);
    if (st) return st;
    /* reg_cl 0 leaves LightGCN without E0 in its mean: the views are not made */
    int views = m->reg_cl != 0;
    if (views && !m->noise_fixed) draw_noise(m);
    if ((st = propagate(m, m->final, -1)) || (views && ((st = propagate(m, m->view[0], 0)) || (st = propagate(m, m->view[1], 1)))))
        return st;
    for (int b = 0; b < n; b++) {
        const float *fu = m->final + (size_t)u[b] * d, *fi = m->final + (size_t)(U + i[b]) * d;
        const float *fj = m->final + (size_t)(U + j[b]) * d;
        float sp = 0, sn = 0;
        for (int c = 0; c < d; c++) sp += fu[c] * fi[c], sn += fu[c] * fj[c];
        m->pos[b] = sp, m->neg[b] = sn;
    }
    double loss = mrec_bpr_log_sigmoid_loss(m->dx, m->pos, m->neg, n, 1e-5); /* the fork's 1e-5 inside the log */
    memset(m->dsum, 0, (size_t)total * sizeof(float));
    for (int b = 0; b < n; b++) {
        const float *fu = m->final + (size_t)u[b] * d, *fi = m->final + (size_t)(U + i[b]) * d;
        const float *fj = m->final + (size_t)(U + j[b]) * d;
        float *gu = m->dsum + (size_t)u[b] * d, *gi = m->dsum + (size_t)(U + i[b]) * d;
        float *gj = m->dsum + (size_t)(U + j[b]) * d, g = m->dx[b];
        for (int c = 0; c < d; c++) gu[c] += g * (fi[c] - fj[c]), gi[c] += g * fu[c], gj[c] -= g * fu[c];
    }
    /* l_w (|F_u|_F + |F_i|_F) / n, a repeated row counted each time */
    double nu = 0, ni = 0;
    for (int b = 0; b < n; b++)
        for (int c = 0; c < d; c++) {
            double x = m->final[(size_t)u[b] * d + c], y = m->final[(size_t)(U + i[b]) * d + c];
            nu += x * x, ni += y * y;
        }
    nu = sqrt(nu), ni = sqrt(ni);
    loss += m->l_w * (nu + ni) / n;
    float cu = nu > 0 ? (float)(m->l_w / n / nu) : 0, ci = ni > 0 ? (float)(m->l_w / n / ni) : 0;
    for (int b = 0; b < n; b++)
        for (int c = 0; c < d; c++) {
            m->dsum[(size_t)u[b] * d + c] += cu * m->final[(size_t)u[b] * d + c];
            m->dsum[(size_t)(U + i[b]) * d + c] += ci * m->final[(size_t)(U + i[b]) * d + c];
        }
    if (views) {
        loss += contrast(m, u, n, 0, &st);
        if (!st) loss += contrast(m, i, n, U, &st);
        if (st) return st;
    }
    *loss_out = loss;
    return back(m);
}

/* dE0 = Â (D + Â (D + .. )) / L, L terms of D (Horner), D = dsum; both paths. */
static mrec_status back(simgcl *m) {
    int d = m->dim, L = m->layers;
    int64_t total = (int64_t)m->n_nodes * d;
    mrec_status st;
    float *h = m->a, *t = m->b;
    if ((st = mrec_scale(m->ctx, h, m->dsum, 1.0f, total))) return st;
    for (int k = 1; k < L; k++) {
        if ((st = mrec_spmm(m->ctx, t, &m->adj, h, d, 0)) || (st = mrec_add(m->ctx, t, t, m->dsum, total))) return st;
        float *s = h;
        h = t, t = s;
    }
    if ((st = mrec_spmm(m->ctx, t, &m->adj, h, d, 0))) return st;
    return mrec_scale(m->ctx, m->ego_grad, t, 1.0f / L, total);
}

/* ---- the op path ---- */

static void carve_batch(simgcl *m, mrec_arena *a) {
    size_t c = (size_t)m->ops_cap, d = (size_t)m->dim;
    for (int v = 0; v < 2; v++) {
        m->cv[v] = mrec_arena_alloc(a, c * d * 4), m->cz[v] = mrec_arena_alloc(a, c * d * 4);
        m->cg[v] = mrec_arena_alloc(a, c * d * 4);
    }
    m->cx = mrec_arena_alloc(a, c * d * 4), m->csim = mrec_arena_alloc(a, c * c * 4);
    m->closs = mrec_arena_alloc(a, c * sizeof(double));
    m->sizes = mrec_arena_alloc(a, sizeof *m->sizes);
}

/* Buffers for batches of up to n triples (a contrast has at most n rows), grown, not per batch. */
static mrec_status ensure_ops_batch(simgcl *m, int n) {
    if (n <= m->ops_cap) return MREC_OK;
    mrec_context *ctx = m->ctx;
    mrec_arena_release(&m->batch, ctx->cuda);
    free(m->rows);
    m->ops_cap = n;
    mrec_arena measure = mrec_arena_measure();
    carve_batch(m, &measure);
    mrec_status st = mrec_arena_reserve(&m->batch, measure.peak, ctx->device, ctx->cuda);
    m->rows = malloc(sizeof(int32_t) * (size_t)n);
    m->cap = 0; /* rows is the op path's now: the host path regrows its scratch if it runs again */
    if (!st && !m->rows) st = mrec_fail(MREC_ERR_NOMEM, "simgcl: a batch of %d", n);
    if (!st) carve_batch(m, &m->batch);
    else m->ops_cap = 0;
    return st;
}

/* Contrast c (0: the batch's users, 1: its positives) through the op entries, over its distinct rows padded to the
 * batch's n: reg_cl times its mean row loss added to the batch's loss (in the context's memory), the gradient into
 * dsum's rows. */
static mrec_status ops_contrast(simgcl *m, int c, int n) {
    mrec_context *ctx = m->ctx;
    int d = m->dim, N = m->n_nodes;
    mrec_batch_rows *r = &m->distinct[c];
    const int32_t *live = &m->sizes->live[c];
    mrec_status st = mrec_batch_rows_index(r);
    for (int v = 0; v < 2 && !st; v++) {
        st = mrec_embedding_checked(ctx, m->cv[v], m->view[v], r->ids, n, N, d);
        if (!st) st = mrec_l2_normalize_rows(ctx, m->cz[v], m->cv[v], 1e-12f, n, d);
    }
    /* sim (n, n) = za zb^T / temp; its live rows' InfoNCE and reg_cl / live (softmax - I) / temp, in place, zeros
     * past the live rows and columns */
    if (!st) st = mrec_gemm(ctx, m->csim, m->cz[0], m->cz[1], NULL, 1.0f / m->temp, 0, 0, 1, n, n, d, d, d, n);
    if (!st) st = mrec_softmax_xent_rows_at(ctx, m->csim, m->closs, m->csim, &m->sizes->alpha[c], live, n, n);
    if (!st) st = mrec_loss_term_at(ctx, m->ops.loss, m->closs, live, m->reg_cl);
    /* ga = dS zb, gb = dS^T za; through the unit rows into cx; added into the views' rows of dsum (a is free) */
    if (!st) st = mrec_gemm(ctx, m->cg[0], m->csim, m->cz[1], NULL, 1, 0, 0, 0, n, d, n, n, d, d);
    if (!st) st = mrec_gemm(ctx, m->cg[1], m->csim, m->cz[0], NULL, 1, 0, 1, 0, n, d, n, n, d, d);
    if (!st) st = mrec_l2_normalize_rows_back(ctx, m->cx, m->cg[0], m->cz[0], m->cv[0], 1e-12f, 0, n, d);
    if (!st) st = mrec_l2_normalize_rows_back(ctx, m->cx, m->cg[1], m->cz[1], m->cv[1], 1e-12f, 1, n, d);
    if (!st) st = mrec_batch_rows_scatter(r, m->a, m->cx, d);
    return st ? st : mrec_add(ctx, m->dsum, m->dsum, m->a, (int64_t)N * d);
}

/* step through the op entries, in the trainer's two halves (mrec_model.stage, .launch): the host's part (buffers
 * grown, the noise's key drawn, the batch's triples and the contrasts' rows checked, padded and sent up with their
 * counts), then the launches. */
static mrec_status simgcl_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    simgcl *m = self;
    mrec_context *ctx = m->ctx;
    static const int zero = 0;
    int views = m->reg_cl != 0;
    if (m->noise_fixed < 0) return m->status; /* set_noise failed: its status stands */
    mrec_status st = ensure_ops_batch(m, n);
    if (!st && views && !m->noise_fixed) draw_noise(m);
    if (!st) st = mrec_step_keys_send(&m->keys, ctx, &m->key, 1);
    if (!st) st = mrec_bpr_ops_stage(&m->ops, ctx, u, i, j, n, m->n_users, m->n_nodes, m->dim); /* checks the ids */
    const int32_t *ids[2] = {u, i};
    for (int c = 0; c < 2 && views && !st; c++) {
        int k = distinct_rows(m, ids[c], n, c ? m->n_users : 0);
        for (int t = k; t < n; t++) m->rows[t] = m->rows[0]; /* the padding: rows whose gradients are zeros */
        float w = m->reg_cl / k;
        m->h_sizes.live[c] = k, m->h_sizes.alpha[c] = w / m->temp;
        const int32_t *rows = m->rows;
        st = mrec_batch_rows_stage(&m->distinct[c], ctx, m->n_nodes, 1, &rows, &zero, n);
    }
    if (!st && views) st = mrec_copy_to_device_staged(ctx, m->sizes, &m->h_sizes, sizeof m->h_sizes);
    return st;
}

static mrec_status ops_launch(simgcl *m) {
    mrec_bpr_ops *o = &m->ops;
    int n = o->n, views = m->reg_cl != 0;
    mrec_status st;
    if ((st = propagate(m, m->final, -1)) || (views && ((st = propagate(m, m->view[0], 0)) || (st = propagate(m, m->view[1], 1)))))
        return st;
    /* the fork's BPR (1e-5 inside the log) and l_w (|F_u|_F + |F_i|_F) / n, a repeated row counted each time */
    mrec_bpr_spec spec = {.form = MREC_BPR_LOG_SIGMOID_1E5, .weight = 1, .reg_form = MREC_BPR_REG_NORMS_UI, .reg = m->l_w};
    if ((st = mrec_bpr_ops_gather(o, m->final, m->final))) return st;
    if ((st = mrec_bpr_ops_loss(o, &spec))) return st;
    if ((st = mrec_bpr_ops_scatter_at(o, m->dsum, m->final, 1, MREC_BPR_PARTS_ALL))) return st;
    if (views && ((st = ops_contrast(m, 0, n)) || (st = ops_contrast(m, 1, n)))) return st;
    return back(m);
}

static mrec_status simgcl_launch(void *self, const double **loss) {
    simgcl *m = self;
    mrec_status st = ops_launch(m);
    *loss = st ? NULL : m->ops.loss;
    return st;
}

static mrec_status ops_step(simgcl *m, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mrec_status st = simgcl_stage(m, u, i, j, n);
    return st ? st : ops_launch(m);
}

/* The batch's step; its loss where it was left (the host's own loss on the host path). */
static const double *simgcl_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    simgcl *m = self;
    if (m->noise_fixed < 0) return NULL; /* set_noise failed: its status stands */
    m->host_loss = NAN;
    m->status = m->use_ops ? ops_step(m, u, i, j, n) : step(m, &m->host_loss, u, i, j, n);
    return m->status ? NULL : m->use_ops ? m->ops.loss : &m->host_loss;
}

static double simgcl_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    simgcl *m = self;
    return mrec_step_loss(m->ctx, &m->status, simgcl_step(self, u, i, j, n));
}

static mrec_status simgcl_prepare(void *self) {
    simgcl *m = self;
    return propagate(m, m->final, -1);
}

static mrec_status simgcl_score(void *self, int u0, int n, float *scores) {
    simgcl *m = self;
    return mrec_score_final(m->ctx, scores, m->final, m->n_users, m->n_items, m->dim, u0, n);
}

static mrec_status simgcl_embeddings(void *self, float *users, float *items) {
    simgcl *m = self;
    return mrec_final_to_host(m->ctx, users, items, m->final, m->n_users, m->n_items, m->dim);
}

static void simgcl_destroy(void *self) {
    simgcl *m = self;
    mrec_bpr_ops_free(&m->ops), mrec_batch_rows_free(&m->distinct[0]), mrec_batch_rows_free(&m->distinct[1]);
    mrec_step_keys_free(&m->keys);
    if (m->batch.base) mrec_arena_release(&m->batch, m->ctx->cuda);
    if (m->noise_mem.base) mrec_arena_release(&m->noise_mem, m->ctx->cuda);
    if (m->mem.base) mrec_arena_release(&m->mem, m->ctx->cuda);
    free(m->noise), free(m->seen);
    free(m->pos), free(m->neg), free(m->dx), free(m->rows), free(m->za), free(m->zb), free(m->na), free(m->nb);
    free(m->sim), free(m->ga), free(m->gb);
    free(m);
}

/* The (N, d) arrays, and on a GPU the graph's copy, from one allocation (a measuring arena counts them). */
static void carve(simgcl *m, mrec_arena *a, int with_graph) {
    size_t total = (size_t)m->n_nodes * m->dim * 4;
    float **big[8] = {&m->ego, &m->ego_grad, &m->final, &m->view[0], &m->view[1], &m->dsum, &m->a, &m->b};
    for (int k = 0; k < 8; k++) *big[k] = mrec_arena_alloc(a, total);
    if (with_graph) m->adj = mrec_graph_carve(a, m->n_nodes, m->n_nodes, m->graph->row_ptr[m->n_nodes], m->ctx->device);
}

mrec_status mrec_simgcl_use_ops(mrec_model *model) {
    simgcl *m = model->self;
    m->use_ops = 1; /* the arrays are shared with the host path; the graph and a fixed noise are the host's */
    m->noise_ops = m->noise;
    model->stage = simgcl_stage, model->launch = simgcl_launch;
    return MREC_OK;
}

mrec_status mrec_simgcl_create(mrec_model *out, const mrec_graph *graph, int n_users, int n_items, int dim, int layers,
                               float l_w, float eps, float reg_cl, float temp, mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st;
    /* the layer mean leaves E0 out: at least one layer */
    if (graph->n_nodes != n_users + n_items || layers < 1 || layers > 16 || dim < 1 || !(temp > 0))
        return mrec_fail(MREC_ERR_ARG, "simgcl: graph of %d nodes for %d users + %d items, %d layers (1 to 16), temperature %g",
                         graph->n_nodes, n_users, n_items, layers, (double)temp);
    simgcl *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "simgcl");
    m->graph = graph, m->adj = mrec_graph_csr(graph), m->n_users = n_users, m->n_items = n_items, m->n_nodes = n_users + n_items;
    m->dim = dim, m->layers = layers, m->l_w = l_w, m->eps = eps, m->reg_cl = reg_cl, m->temp = temp, m->ctx = ctx;
    size_t total = (size_t)m->n_nodes * dim;
    int on_gpu = ctx->device != MREC_DEVICE_CPU;
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure, on_gpu);
    if ((st = mrec_arena_reserve(&m->mem, measure.peak, ctx->device, ctx->cuda))) {
        free(m);
        return st;
    }
    carve(m, &m->mem, on_gpu);
    /* the host path's noise buffer on a CPU context only */
    m->noise = on_gpu ? NULL : malloc(total * 2 * (size_t)layers * 4);
    m->seen = calloc((size_t)m->n_nodes, 1);
    float *h = calloc(total, 4);
    if ((!on_gpu && !m->noise) || !m->seen || !h) {
        free(h);
        simgcl_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "simgcl: %d nodes x %d", m->n_nodes, dim);
    }
    /* zero gradients; then xavier-uniform per table, bound sqrt(6 / (rows + d)), drawn on the host on every device */
    st = mrec_copy_to_device(ctx, m->ego_grad, h, total * 4);
    double bu = sqrt(6.0 / (n_users + dim)), bi = sqrt(6.0 / (n_items + dim));
    for (size_t k = 0; k < total; k++) {
        double bound = k < (size_t)n_users * dim ? bu : bi;
        h[k] = (float)(bound * (2.0 * mrec_rng_uniform(rng) - 1.0));
    }
    if (!st) st = mrec_copy_to_device(ctx, m->ego, h, total * 4);
    free(h);
    if (!st && on_gpu) {
        mrec_csr src = mrec_graph_csr(graph);
        st = mrec_graph_upload(ctx, &m->adj, &src); /* Â is symmetric: no transposed copy */
        m->use_ops = 1;
    }
    /* the noise's own stream, so it does not shift with the batches' draws */
    m->rng.state = mrec_rng_next(rng);
    if (st || (st = propagate(m, m->final, -1))) {
        simgcl_destroy(m);
        return st;
    }
    out->name = "SimGCL", out->self = m, out->n_params = 1;
    out->state[0] = &m->rng.state, out->state[1] = &m->key, out->n_state = 2; /* for a checkpoint */
    out->param[0] = m->ego, out->grad[0] = m->ego_grad, out->size[0] = (int64_t)total;
    out->status = &m->status;
    out->loss_grad = simgcl_loss_grad, out->step = simgcl_step, out->prepare = simgcl_prepare, out->score = simgcl_score;
    if (m->use_ops) out->stage = simgcl_stage, out->launch = simgcl_launch;
    /* which noise a launch reads (drawn each step, or fixed by mrec_simgcl_set_noise) is in its graph's key */
    out->launch_key = &m->noise_fixed, out->launch_key_bytes = (int)sizeof m->noise_fixed;
    out->destroy = simgcl_destroy;
    out->embed_dim = m->dim, out->embeddings = simgcl_embeddings;
    return MREC_OK;
}

void mrec_simgcl_set_noise(mrec_model *model, const float *noise) {
    simgcl *m = model->self;
    size_t n = (size_t)2 * m->layers * m->n_nodes * m->dim;
    m->noise_fixed = 1;
    if (m->noise) { /* a CPU context: the host's buffer, which the op path reads too */
        if (noise) memcpy(m->noise, noise, n * sizeof(float));
        else {
            int ops = m->use_ops;
            m->use_ops = 0, draw_noise(m), m->use_ops = ops;
        }
        m->noise_ops = m->noise;
        return;
    }
    /* a GPU context: the draws go to the device; a failure is the next batch's (its loss NaN) */
    float *h = malloc(n * sizeof(float));
    mrec_status st = h ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "simgcl: %zu noise draws", n);
    if (!st) {
        if (!noise) m->key = mrec_rng_next(&m->rng);
        for (size_t e = 0; e < n; e++) h[e] = noise ? noise[e] : mrec_hash_uniform(m->key, e);
    }
    if (!st && !m->noise_mem.base) st = mrec_arena_reserve(&m->noise_mem, n * sizeof(float), m->ctx->device, m->ctx->cuda);
    if (!st) m->noise_ops = (const float *)m->noise_mem.base, st = mrec_copy_to_device(m->ctx, (float *)m->noise_ops, h, n * sizeof(float));
    free(h);
    m->status = st, m->noise_fixed = st ? -1 : 1;
}
