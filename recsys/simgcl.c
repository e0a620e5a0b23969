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
 * shuffles anew each epoch, as SELFRec does. Host memory only: the noise is
 * drawn by the model's own generator, seeded at creation, so a seed gives
 * the same run.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    mrec_csr adj;
    int n_users, n_items, n_nodes, dim, layers;
    float l_w, eps, reg_cl, temp;
    float *ego, *ego_grad; /* (N, d) parameters: users then items */
    float *final;          /* (N, d) F */
    float *view[2];        /* (N, d) V1, V2 */
    float *dsum;           /* (N, d) dF + dV1 + dV2 */
    float *a, *b;          /* (N, d) propagation buffers */
    float *noise;          /* (2, L, N, d) uniform draws of the step */
    int noise_fixed;       /* the draws stay as they are (tests) */
    mrec_rng rng;
    /* the batch's scratch, grown with the batch */
    int cap;
    float *pos, *neg, *dx;  /* (cap) */
    int32_t *rows;          /* (cap) distinct rows of a contrast */
    float *za, *zb;         /* (cap, d) the two views' rows at unit length */
    float *na, *nb;         /* (cap) their norms before scaling */
    float *sim;             /* (cap, cap) similarities, then their gradient */
    float *ga, *gb;         /* (cap, d) gradients of za, zb */
    uint8_t *seen;          /* (N) marks for the distinct rows */
    mrec_context *ctx;
    mrec_status status;
} simgcl;

/* out (N, d) = (Â^1 + .. + Â^L) x / L, plus the noise of `view` (0 or 1) at
 * each layer, or none (view -1). */
static mrec_status propagate(simgcl *m, float *out, int view) {
    int d = m->dim, L = m->layers;
    int64_t n = (int64_t)m->n_nodes * d;
    const float *prev = m->ego;
    memset(out, 0, (size_t)n * sizeof(float));
    for (int k = 0; k < L; k++) {
        float *next = k % 2 ? m->b : m->a;
        mrec_status st = mrec_spmm(m->ctx, next, &m->adj, prev, d, 0);
        if (st) return st;
        if (view >= 0) {
            const float *r = m->noise + ((size_t)view * L + k) * (size_t)n;
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
        if ((st = mrec_add(m->ctx, out, out, next, n))) return st;
        prev = next;
    }
    return mrec_scale(m->ctx, out, out, 1.0f / L, n);
}

static void draw_noise(simgcl *m) {
    size_t n = (size_t)2 * m->layers * m->n_nodes * m->dim;
    for (size_t e = 0; e < n; e++) m->noise[e] = (float)mrec_rng_uniform(&m->rng);
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
    int d = m->dim, k = 0;
    for (int b = 0; b < n; b++) {
        int r = ids[b] + offset;
        if (!m->seen[r]) m->seen[r] = 1, m->rows[k++] = r;
    }
    for (int t = 0; t < k; t++) {
        m->seen[m->rows[t]] = 0;
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

static mrec_status step(simgcl *m, double *loss_out, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    int d = m->dim, U = m->n_users, L = m->layers;
    int64_t total = (int64_t)m->n_nodes * d;
    mrec_status st = grow(m, n);
    if (st) return st;
    /* reg_cl 0 leaves LightGCN without E0 in its mean: the views are not made */
    int views = m->reg_cl != 0;
    if (views && !m->noise_fixed) draw_noise(m);
    if ((st = propagate(m, m->final, -1)) || (views && ((st = propagate(m, m->view[0], 0)) || (st = propagate(m, m->view[1], 1)))))
        return st;
    /* BPR with the fork's 1e-5 inside the log */
    double loss = 0;
    for (int b = 0; b < n; b++) {
        const float *fu = m->final + (size_t)u[b] * d, *fi = m->final + (size_t)(U + i[b]) * d;
        const float *fj = m->final + (size_t)(U + j[b]) * d;
        float sp = 0, sn = 0;
        for (int c = 0; c < d; c++) sp += fu[c] * fi[c], sn += fu[c] * fj[c];
        double x = (double)sp - sn, sg = 1.0 / (1.0 + exp(-x));
        loss -= log(1e-5 + sg);
        m->dx[b] = (float)(-sg * (1.0 - sg) / (1e-5 + sg) / n);
    }
    loss /= n;
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
    /* dE0 = Â (D + Â (D + .. )) / L, L terms of D (Horner) */
    float *h = m->a, *t = m->b;
    memcpy(h, m->dsum, (size_t)total * sizeof(float));
    for (int k = 1; k < L; k++) {
        if ((st = mrec_spmm(m->ctx, t, &m->adj, h, d, 0)) || (st = mrec_add(m->ctx, t, t, m->dsum, total))) return st;
        float *s = h;
        h = t, t = s;
    }
    if ((st = mrec_spmm(m->ctx, t, &m->adj, h, d, 0))) return st;
    if ((st = mrec_scale(m->ctx, m->ego_grad, t, 1.0f / L, total))) return st;
    *loss_out = loss;
    return MREC_OK;
}

static double simgcl_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    simgcl *m = self;
    double loss = NAN;
    m->status = step(m, &loss, u, i, j, n);
    return m->status ? NAN : loss;
}

static mrec_status simgcl_prepare(void *self) {
    simgcl *m = self;
    return propagate(m, m->final, -1);
}

static mrec_status simgcl_score(void *self, int u0, int n, float *scores) {
    simgcl *m = self;
    return mrec_score_final(m->ctx, scores, m->final, m->n_users, m->n_items, m->dim, u0, n);
}

static void simgcl_destroy(void *self) {
    simgcl *m = self;
    free(m->ego), free(m->ego_grad), free(m->final), free(m->view[0]), free(m->view[1]), free(m->dsum);
    free(m->a), free(m->b), free(m->noise), free(m->seen);
    free(m->pos), free(m->neg), free(m->dx), free(m->rows), free(m->za), free(m->zb), free(m->na), free(m->nb);
    free(m->sim), free(m->ga), free(m->gb);
    free(m);
}

mrec_status mrec_simgcl_create(mrec_model *out, const mrec_graph *graph, int n_users, int n_items, int dim, int layers,
                               float l_w, float eps, float reg_cl, float temp, mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st = mrec_recsys_host_only(ctx, "simgcl");
    if (st) return st;
    /* the layer mean leaves E0 out: at least one layer */
    if (graph->n_nodes != n_users + n_items || layers < 1 || layers > 16 || dim < 1 || !(temp > 0))
        return mrec_fail(MREC_ERR_ARG, "simgcl: graph of %d nodes for %d users + %d items, %d layers (1 to 16), temperature %g",
                         graph->n_nodes, n_users, n_items, layers, (double)temp);
    simgcl *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "simgcl");
    m->adj = mrec_graph_csr(graph), m->n_users = n_users, m->n_items = n_items, m->n_nodes = n_users + n_items;
    m->dim = dim, m->layers = layers, m->l_w = l_w, m->eps = eps, m->reg_cl = reg_cl, m->temp = temp, m->ctx = ctx;
    size_t total = (size_t)m->n_nodes * dim;
    m->ego = malloc(total * 4), m->ego_grad = calloc(total, 4), m->final = malloc(total * 4);
    m->view[0] = malloc(total * 4), m->view[1] = malloc(total * 4), m->dsum = malloc(total * 4);
    m->a = malloc(total * 4), m->b = malloc(total * 4), m->noise = malloc(total * 2 * (size_t)layers * 4);
    m->seen = calloc((size_t)m->n_nodes, 1);
    if (!m->ego || !m->ego_grad || !m->final || !m->view[0] || !m->view[1] || !m->dsum || !m->a || !m->b || !m->noise ||
        !m->seen) {
        simgcl_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "simgcl: %d nodes x %d", m->n_nodes, dim);
    }
    /* xavier-uniform per table, bound sqrt(6 / (rows + d)) */
    double bu = sqrt(6.0 / (n_users + dim)), bi = sqrt(6.0 / (n_items + dim));
    for (size_t k = 0; k < total; k++) {
        double bound = k < (size_t)n_users * dim ? bu : bi;
        m->ego[k] = (float)(bound * (2.0 * mrec_rng_uniform(rng) - 1.0));
    }
    /* the noise's own stream, so it does not shift with the batches' draws */
    m->rng.state = mrec_rng_next(rng);
    if ((st = propagate(m, m->final, -1))) {
        simgcl_destroy(m);
        return st;
    }
    out->name = "SimGCL", out->self = m, out->n_params = 1;
    out->param[0] = m->ego, out->grad[0] = m->ego_grad, out->size[0] = (int64_t)total;
    out->status = &m->status;
    out->loss_grad = simgcl_loss_grad, out->prepare = simgcl_prepare, out->score = simgcl_score;
    out->destroy = simgcl_destroy;
    return MREC_OK;
}

void mrec_simgcl_set_noise(mrec_model *model, const float *noise) {
    simgcl *m = model->self;
    if (noise) memcpy(m->noise, noise, (size_t)2 * m->layers * m->n_nodes * m->dim * sizeof(float));
    else draw_noise(m);
    m->noise_fixed = 1;
}
