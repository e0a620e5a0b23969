/* sgl.c: SGL (self-supervised graph learning) as the Ducho-meets-Elliot
 * benchmark's Elliot fork trains it.
 *
 *   E0 = [U; I] (ego embeddings), F = (E0 + Â E0 + .. + Â^L E0) / (L + 1)
 * over the normalized training graph, score = <F_u, F_i>. Two views V1, V2
 * are the same layer mean over graphs of a sample of the training pairs,
 * drawn again before each epoch:
 *   nd: round(U ratio) users and round(I ratio) items dropped with their pairs;
 *   ed: round(E ratio) of the E pairs dropped;
 *   rw: as ed, with its own draw for every layer.
 * Each kept graph is normalized over its own degrees (D^-1/2 A D^-1/2).
 * With Z = V scaled to unit rows and temp the temperature:
 *   loss = -sum_b log sigmoid(<F_u, F_i> - <F_u, F_j>)
 *        + ssl_reg sum_b [ lse_c(<Z1_u, Z2_c> / temp) - <Z1_u, Z2_u> / temp ]   (c over all users)
 *        + ssl_reg sum_b [ the same for the positive item i against all items ]
 *        + l_w / 2 sum_b (|E0_u|^2 + |E0_i|^2 + |E0_j|^2)
 * Sums over the batch, not means, as the fork (and SGL's authors) write it;
 * the anchors are the batch's users and positives, repeats included, and
 * every user (item) of the second view is a candidate, as in the authors'
 * code. Backward: each layer mean is linear in E0 and the graphs are
 * symmetric, so dE0 = sum over the three graphs of (D + G (D + G (..))) / (L + 1).
 *
 * Host memory only; the views are drawn by the model's own generator.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 16
#define CHUNK 256 /* anchors per similarity block: memory CHUNK x max(U, I) */

typedef struct {
    mrec_csr adj;
    int n_users, n_items, n_nodes, dim, layers, augment;
    float l_w, ssl_reg, ssl_ratio, temp;
    int64_t n_pairs;
    int32_t *pair_user, *pair_item; /* (n_pairs) the training pairs, user-major */
    int32_t *perm;                  /* (max(U, I, n_pairs)) scratch of the draws */
    int32_t *kept_user, *kept_item; /* (n_pairs) */
    mrec_graph views[2][MAX_LAYERS]; /* a view's graph per layer (nd, ed: layer 0's for all) */
    int views_fixed;
    float *ego, *ego_grad;  /* (N, d) parameters: users then items */
    float *final;           /* (N, d) F, then reused for dF */
    float *z[2];            /* (N, d) the views at unit length */
    float *norm[2];         /* (N) their row norms */
    float *dz[2];           /* (N, d) gradients of z, then of the views */
    float *a, *b, *acc;     /* (N, d) scratch */
    float *sim;             /* (CHUNK, max(U, I)) */
    float *zb, *gb;         /* (CHUNK, d) anchors' rows and their gradient */
    mrec_rng rng;
    mrec_context *ctx;
    mrec_status status;
} sgl;

static const mrec_graph *layer_graph(const sgl *m, int view, int k) { return &m->views[view][m->augment == 2 ? k : 0]; }

/* out (N, d) = (x + G_1 x + G_2 G_1 x + ..) / (L + 1), G_k the view's graph
 * at layer k, or Â for view -1. */
static mrec_status layer_mean(sgl *m, float *out, int view) {
    int d = m->dim, L = m->layers;
    int64_t n = (int64_t)m->n_nodes * d;
    memcpy(out, m->ego, (size_t)n * sizeof(float));
    const float *prev = m->ego;
    for (int k = 0; k < L; k++) {
        float *next = k % 2 ? m->b : m->a;
        mrec_csr g = view < 0 ? m->adj : mrec_graph_csr(layer_graph(m, view, k));
        mrec_status st = mrec_spmm(m->ctx, next, &g, prev, d, 0);
        if (!st) st = mrec_add(m->ctx, out, out, next, n);
        if (st) return st;
        prev = next;
    }
    return mrec_scale(m->ctx, out, out, 1.0f / (L + 1), n);
}

/* dego += (D + G_1 (D + G_2 (.. + G_L D))) / (L + 1): layer_mean's backward, the graphs symmetric. */
static mrec_status layer_mean_back(sgl *m, float *dego, const float *D, int view) {
    int d = m->dim, L = m->layers;
    int64_t n = (int64_t)m->n_nodes * d;
    float *h = m->a, *t = m->b;
    memcpy(h, D, (size_t)n * sizeof(float));
    for (int k = L - 1; k >= 0; k--) {
        mrec_csr g = view < 0 ? m->adj : mrec_graph_csr(layer_graph(m, view, k));
        mrec_status st = mrec_spmm(m->ctx, t, &g, h, d, 0);
        if (!st) st = mrec_add(m->ctx, t, t, D, n);
        if (st) return st;
        float *s = h;
        h = t, t = s;
    }
    float w = 1.0f / (L + 1);
    for (int64_t e = 0; e < n; e++) dego[e] += w * h[e];
    return MREC_OK;
}

/* Fills perm[0..n) with 0..n-1 and moves a uniform sample of `take` of them to the front. */
static void sample(mrec_rng *rng, int32_t *perm, int64_t n, int64_t take) {
    for (int64_t e = 0; e < n; e++) perm[e] = (int32_t)e;
    for (int64_t e = 0; e < take; e++) {
        int64_t r = e + (int64_t)mrec_rng_below(rng, (uint32_t)(n - e));
        int32_t s = perm[e];
        perm[e] = perm[r], perm[r] = s;
    }
}

/* A view's graph from keep (n_pairs): 1 for the pairs it keeps. */
static mrec_status view_graph(sgl *m, mrec_graph *out, const uint8_t *keep) {
    int64_t n = 0;
    for (int64_t e = 0; e < m->n_pairs; e++)
        if (keep[e]) m->kept_user[n] = m->pair_user[e], m->kept_item[n] = m->pair_item[e], n++;
    mrec_graph_free(out);
    return mrec_graph_from_pairs(out, m->n_users, m->n_items, m->kept_user, m->kept_item, n);
}

/* One draw of the augmentation into keep (n_pairs), with n_nodes more bytes
 * after it as scratch for node dropout. Python's round() halves to even, as
 * nearbyint does. */
static void draw_keep(sgl *m, uint8_t *keep) {
    memset(keep, 1, (size_t)m->n_pairs);
    if (!(m->ssl_ratio > 0)) return;
    if (m->augment == 0) {
        uint8_t *drop_user = keep + m->n_pairs, *drop_item = drop_user + m->n_users;
        memset(drop_user, 0, (size_t)m->n_users + (size_t)m->n_items);
        int64_t du = (int64_t)nearbyint(m->n_users * (double)m->ssl_ratio), di = (int64_t)nearbyint(m->n_items * (double)m->ssl_ratio);
        sample(&m->rng, m->perm, m->n_users, du);
        for (int64_t e = 0; e < du; e++) drop_user[m->perm[e]] = 1;
        sample(&m->rng, m->perm, m->n_items, di);
        for (int64_t e = 0; e < di; e++) drop_item[m->perm[e]] = 1;
        for (int64_t e = 0; e < m->n_pairs; e++) keep[e] = !drop_user[m->pair_user[e]] && !drop_item[m->pair_item[e]];
    } else {
        int64_t de = (int64_t)nearbyint(m->n_pairs * (double)m->ssl_ratio);
        sample(&m->rng, m->perm, m->n_pairs, de);
        for (int64_t e = 0; e < de; e++) keep[m->perm[e]] = 0;
    }
}

static mrec_status draw_views(sgl *m) {
    uint8_t *keep = malloc((size_t)m->n_pairs + (size_t)m->n_nodes);
    if (!keep) return mrec_fail(MREC_ERR_NOMEM, "sgl: views of %lld pairs", (long long)m->n_pairs);
    int per_layer = m->augment == 2 ? m->layers : 1;
    mrec_status st = MREC_OK;
    for (int v = 0; v < 2 && !st; v++)
        for (int k = 0; k < per_layer && !st; k++) {
            draw_keep(m, keep);
            st = view_graph(m, &m->views[v][k], keep);
        }
    free(keep);
    return st;
}

static mrec_status sgl_epoch_start(void *self) {
    sgl *m = self;
    return m->views_fixed ? MREC_OK : draw_views(m);
}

/* ssl_reg * sum_b [lse_c(<z1_a, z2_c>) - <z1_a, z2_a>] / temp over anchors a = ids[b] + offset
 * and candidates c in [offset, offset + count); gradients into dz. */
static double contrast(sgl *m, const int32_t *ids, int n, int offset, int count, mrec_status *st) {
    int d = m->dim;
    const float *z2 = m->z[1] + (size_t)offset * d;
    float *dz2 = m->dz[1] + (size_t)offset * d, inv = 1.0f / m->temp;
    double loss = 0;
    for (int b0 = 0; b0 < n; b0 += CHUNK) {
        int c = n - b0 < CHUNK ? n - b0 : CHUNK;
        for (int r = 0; r < c; r++) memcpy(m->zb + (size_t)r * d, m->z[0] + (size_t)(ids[b0 + r] + offset) * d, (size_t)d * 4);
        /* sim (c, count) = zb z2^T / temp */
        if ((*st = mrec_gemm(m->ctx, m->sim, m->zb, z2, NULL, inv, 0, 0, 1, c, count, d, d, d, count))) return NAN;
        for (int r = 0; r < c; r++) {
            float *s = m->sim + (size_t)r * count, top = s[0];
            for (int q = 1; q < count; q++) top = s[q] > top ? s[q] : top;
            int self_col = ids[b0 + r];
            float diag = s[self_col];
            double z = 0;
            for (int q = 0; q < count; q++) s[q] = expf(s[q] - top), z += s[q];
            loss += top + log(z) - diag;
            /* d / d sim = ssl_reg (softmax - onehot), with the 1 / temp of the products below folded in */
            float scale = (float)(m->ssl_reg * inv / z);
            for (int q = 0; q < count; q++) s[q] *= scale;
            s[self_col] -= m->ssl_reg * inv;
        }
        /* gb = dS z2; dz2 += dS^T zb */
        if ((*st = mrec_gemm(m->ctx, m->gb, m->sim, z2, NULL, 1, 0, 0, 0, c, d, count, count, d, d))) return NAN;
        if ((*st = mrec_gemm(m->ctx, dz2, m->sim, m->zb, NULL, 1, 1, 1, 0, count, d, c, count, d, d))) return NAN;
        for (int r = 0; r < c; r++) {
            float *row = m->dz[0] + (size_t)(ids[b0 + r] + offset) * d;
            for (int q = 0; q < d; q++) row[q] += m->gb[(size_t)r * d + q];
        }
    }
    return m->ssl_reg * loss;
}

static mrec_status step(sgl *m, double *loss_out, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    int d = m->dim, U = m->n_users, N = m->n_nodes;
    size_t total = (size_t)N * d;
    mrec_status st;
    if ((st = layer_mean(m, m->final, -1))) return st;
    /* ssl_reg 0 leaves LightGCN with SGL's BPR and regularizer: the views are not propagated */
    int views = m->ssl_reg != 0;
    for (int v = 0; v < 2 && views; v++) {
        if ((st = layer_mean(m, m->acc, v))) return st;
        for (int r = 0; r < N; r++) {
            const float *x = m->acc + (size_t)r * d;
            float *z = m->z[v] + (size_t)r * d;
            double s = 0;
            for (int q = 0; q < d; q++) s += (double)x[q] * x[q];
            float nr = (float)fmax(sqrt(s), 1e-12); /* F.normalize's floor */
            for (int q = 0; q < d; q++) z[q] = x[q] / nr;
            m->norm[v][r] = nr;
        }
        memset(m->dz[v], 0, total * sizeof(float));
    }
    /* BPR, summed; then dF (reusing acc) */
    double loss = 0;
    memset(m->acc, 0, total * sizeof(float));
    for (int b = 0; b < n; b++) {
        const float *fu = m->final + (size_t)u[b] * d, *fi = m->final + (size_t)(U + i[b]) * d;
        const float *fj = m->final + (size_t)(U + j[b]) * d;
        float sp = 0, sn = 0;
        for (int q = 0; q < d; q++) sp += fu[q] * fi[q], sn += fu[q] * fj[q];
        double x = (double)sp - sn;
        loss += x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x)); /* -log sigmoid(x), stably */
        float g = (float)(-1.0 / (1.0 + exp(x)));
        float *gu = m->acc + (size_t)u[b] * d, *gi = m->acc + (size_t)(U + i[b]) * d, *gj = m->acc + (size_t)(U + j[b]) * d;
        for (int q = 0; q < d; q++) gu[q] += g * (fi[q] - fj[q]), gi[q] += g * fu[q], gj[q] -= g * fu[q];
    }
    if (views) {
        loss += contrast(m, u, n, 0, U, &st);
        if (!st) loss += contrast(m, i, n, U, m->n_items, &st);
        if (st) return st;
    }
    /* through the unit rows: dV = (dZ - Z <Z, dZ>) / |V|, in place */
    for (int v = 0; v < 2 && views; v++)
        for (int r = 0; r < N; r++) {
            float *g = m->dz[v] + (size_t)r * d;
            const float *z = m->z[v] + (size_t)r * d;
            double dot = 0;
            for (int q = 0; q < d; q++) dot += (double)z[q] * g[q];
            for (int q = 0; q < d; q++) g[q] = (float)((g[q] - z[q] * dot) / m->norm[v][r]);
        }
    memset(m->ego_grad, 0, total * sizeof(float));
    if ((st = layer_mean_back(m, m->ego_grad, m->acc, -1)) ||
        (views && ((st = layer_mean_back(m, m->ego_grad, m->dz[0], 0)) || (st = layer_mean_back(m, m->ego_grad, m->dz[1], 1)))))
        return st;
    /* l_w / 2 squared norms of the batch's ego rows, repeats counted */
    double reg = 0;
    for (int b = 0; b < n; b++) {
        size_t rows[3] = {(size_t)u[b] * d, (size_t)(U + i[b]) * d, (size_t)(U + j[b]) * d};
        for (int t = 0; t < 3; t++)
            for (int q = 0; q < d; q++) {
                float x = m->ego[rows[t] + q];
                reg += (double)x * x;
                m->ego_grad[rows[t] + q] += m->l_w * x;
            }
    }
    *loss_out = loss + m->l_w * reg / 2;
    return MREC_OK;
}

static double sgl_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    sgl *m = self;
    double loss = NAN;
    m->status = step(m, &loss, u, i, j, n);
    return m->status ? NAN : loss;
}

static mrec_status sgl_prepare(void *self) { return layer_mean(self, ((sgl *)self)->final, -1); }

static mrec_status sgl_score(void *self, int u0, int n, float *scores) {
    sgl *m = self;
    return mrec_score_final(m->ctx, scores, m->final, m->n_users, m->n_items, m->dim, u0, n);
}

static void sgl_destroy(void *self) {
    sgl *m = self;
    for (int v = 0; v < 2; v++)
        for (int k = 0; k < MAX_LAYERS; k++) mrec_graph_free(&m->views[v][k]);
    free(m->pair_user), free(m->pair_item), free(m->perm), free(m->kept_user), free(m->kept_item);
    free(m->ego), free(m->ego_grad), free(m->final), free(m->a), free(m->b), free(m->acc), free(m->sim), free(m->zb), free(m->gb);
    for (int v = 0; v < 2; v++) free(m->z[v]), free(m->norm[v]), free(m->dz[v]);
    free(m);
}

mrec_status mrec_sgl_create(mrec_model *out, const mrec_graph *graph, const mrec_user_items *train, int dim, int layers,
                            float l_w, float ssl_reg, float ssl_ratio, float temp, int augment, mrec_rng *rng,
                            mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st = mrec_recsys_host_only(ctx, "sgl");
    if (st) return st;
    int U = train->n_rows, I = train->n_cols;
    if (graph->n_nodes != U + I || layers < 0 || layers > MAX_LAYERS || dim < 1 || !(temp > 0) || augment < 0 || augment > 2 ||
        !(ssl_ratio >= 0 && ssl_ratio < 1))
        return mrec_fail(MREC_ERR_ARG, "sgl: graph of %d nodes for %d users + %d items, %d layers (0 to %d), temperature %g, ratio %g",
                         graph->n_nodes, U, I, layers, MAX_LAYERS, (double)temp, (double)ssl_ratio);
    sgl *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "sgl");
    m->adj = mrec_graph_csr(graph), m->n_users = U, m->n_items = I, m->n_nodes = U + I, m->dim = dim, m->layers = layers;
    m->augment = augment, m->l_w = l_w, m->ssl_reg = ssl_reg, m->ssl_ratio = ssl_ratio, m->temp = temp, m->ctx = ctx;
    m->n_pairs = train->row_ptr[U];
    size_t total = (size_t)m->n_nodes * dim, np = (size_t)m->n_pairs + 1, wide = (size_t)(U > I ? U : I);
    size_t nperm = wide > np ? wide : np;
    m->pair_user = malloc(np * 4), m->pair_item = malloc(np * 4), m->perm = malloc(nperm * 4);
    m->kept_user = malloc(np * 4), m->kept_item = malloc(np * 4);
    m->ego = malloc(total * 4), m->ego_grad = calloc(total, 4), m->final = malloc(total * 4);
    m->a = malloc(total * 4), m->b = malloc(total * 4), m->acc = malloc(total * 4);
    m->sim = malloc((size_t)CHUNK * wide * 4), m->zb = malloc((size_t)CHUNK * dim * 4), m->gb = malloc((size_t)CHUNK * dim * 4);
    int ok = m->pair_user && m->pair_item && m->perm && m->kept_user && m->kept_item && m->ego && m->ego_grad && m->final && m->a &&
             m->b && m->acc && m->sim && m->zb && m->gb;
    for (int v = 0; v < 2; v++) {
        m->z[v] = malloc(total * 4), m->dz[v] = malloc(total * 4), m->norm[v] = malloc((size_t)m->n_nodes * 4);
        ok = ok && m->z[v] && m->dz[v] && m->norm[v];
    }
    if (!ok) {
        sgl_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "sgl: %d nodes x %d", m->n_nodes, dim);
    }
    for (int u = 0; u < U; u++)
        for (int64_t e = train->row_ptr[u]; e < train->row_ptr[u + 1]; e++) m->pair_user[e] = u, m->pair_item[e] = train->col[e];
    /* xavier-uniform per table, bound sqrt(6 / (rows + d)) */
    double bu = sqrt(6.0 / (U + dim)), bi = sqrt(6.0 / (I + dim));
    for (size_t k = 0; k < total; k++) {
        double bound = k < (size_t)U * dim ? bu : bi;
        m->ego[k] = (float)(bound * (2.0 * mrec_rng_uniform(rng) - 1.0));
    }
    /* the views' own stream; a first draw, so a batch before any epoch has views */
    m->rng.state = mrec_rng_next(rng);
    if ((st = draw_views(m)) || (st = layer_mean(m, m->final, -1))) {
        sgl_destroy(m);
        return st;
    }
    out->name = "SGL", out->self = m, out->n_params = 1;
    out->param[0] = m->ego, out->grad[0] = m->ego_grad, out->size[0] = (int64_t)total;
    out->status = &m->status;
    out->loss_grad = sgl_loss_grad, out->prepare = sgl_prepare, out->score = sgl_score, out->epoch_start = sgl_epoch_start;
    out->destroy = sgl_destroy;
    return MREC_OK;
}

mrec_status mrec_sgl_set_views(mrec_model *model, const uint8_t *keep) {
    sgl *m = model->self;
    int per_layer = m->augment == 2 ? m->layers : 1;
    mrec_status st = MREC_OK;
    for (int v = 0; v < 2 && !st; v++)
        for (int k = 0; k < per_layer && !st; k++) st = view_graph(m, &m->views[v][k], keep + (size_t)v * m->n_pairs);
    m->views_fixed = 1;
    return st;
}
