/* lattice.c: LATTICE as MMRec defines it (src/models/lattice.py, cf_model
 * lightgcn), with the item graphs sparse: k entries per row and modality,
 * never items x items.
 *
 *   O_m   = normlap(knn_k(cos(X_m^0)))     frozen, from the initial features
 *   c_m   = X_m W_m^T + b_m,  K_m = knn_k(cos(c_m))   (weights: the similarities)
 *   s     = softmax(w)                      learnable modality weights
 *   S     = (1 - lambda) normlap(sum_m s_m K_m) + lambda sum_m s_m O_m
 *   h     = S I                             one item-graph layer
 *   F     = mean(E_0, A E_0, A^2 E_0),  A = D^-1 (A_ui + I),  E_0 = [U; I]
 *   user(u) = F_u,  item(i) = F_i + h_i / |h_i|
 *   loss  = -mean log sigmoid(<u, i+> - <u, i->)
 *           + reg (|u_b|^2 + |i+_b|^2 + |i-_b|^2) / 2 / batch_size
 * normlap(M) = D^-1/2 M D^-1/2 with D the row sums (0 where a sum is 0).
 * S is rebuilt from the current weights at the first batch of each epoch,
 * and only that batch's loss reaches X_m, W_m, b_m and w (the later batches
 * use S detached, as MMRec does); scoring rebuilds it too. The kNN
 * selection is a block of rows at a time; its gradient flows through the
 * kept similarities only, as torch.topk's does.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MOD 4

typedef struct {
    int n_users, n_items, n_nodes, dim, k, n_mod, batch_size;
    float reg, lambda;
    const mrec_graph *ui;                 /* D^-1 (A + I), not symmetric */
    float *ego, *ego_grad;                /* (N, d): users, then item ids */
    float *x[MAX_MOD], *x_grad[MAX_MOD];  /* (I, F_m) */
    float *w[MAX_MOD], *w_grad[MAX_MOD], *b[MAX_MOD], *b_grad[MAX_MOD];
    float mw[MAX_MOD], mw_grad[MAX_MOD];  /* modal_weight */
    int fdim[MAX_MOD], fd;                /* F_m; the projection width */
    int32_t *o_idx[MAX_MOD];              /* (I, k) the frozen graphs' columns */
    float *o_val[MAX_MOD];                /* (I, k) normalized values */
    /* the current S: union pattern per row, with what it is made of */
    int64_t *row_ptr;
    int32_t *col;
    float *s_val, *a_val, *kv[MAX_MOD], *ov[MAX_MOD]; /* (nnz) */
    float *q;                             /* (I) rowsum(a)^-1/2 */
    float *c[MAX_MOD], *cn[MAX_MOD], *cnorm[MAX_MOD]; /* (I, fd) projections, normalized; (I) norms */
    int32_t *k_idx[MAX_MOD];              /* (I, k) learned neighbours */
    int build, build_always;
    uint8_t active[MREC_MAX_PARAMS];
    int n_params;
    float *final, *t1, *t2, *dfinal, *h, *hn, *dh;
    float *pos, *neg, *dx;
    int cap;
    mrec_context *ctx;
    mrec_status status;                   /* of the last loss_grad */
} lattice;

/* ---- the item graph ---- */

static int by_int(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The learned kNN of each modality from the current projections, then S. */
static mrec_status build_graph(lattice *m) {
    int I = m->n_items, k = m->k, M = m->n_mod, fd = m->fd;
    mrec_status st = MREC_OK;
    float *kval[MAX_MOD] = {0};
    for (int mo = 0; mo < M && !st; mo++) {
        st = mrec_gemm(m->ctx, m->c[mo], m->x[mo], m->w[mo], m->b[mo], 1, 0, 0, 1, I, fd, m->fdim[mo], m->fdim[mo], m->fdim[mo],
                       fd);
        if (st) break;
        for (int i = 0; i < I; i++) { /* as MMRec's build_sim: c / |c| (a zero row stays zero) */
            double s2 = 0;
            for (int f = 0; f < fd; f++) s2 += (double)m->c[mo][(size_t)i * fd + f] * m->c[mo][(size_t)i * fd + f];
            m->cnorm[mo][i] = (float)sqrt(s2);
            float inv = s2 > 0 ? 1.0f / m->cnorm[mo][i] : 0.0f;
            for (int f = 0; f < fd; f++) m->cn[mo][(size_t)i * fd + f] = m->c[mo][(size_t)i * fd + f] * inv;
        }
        kval[mo] = malloc(sizeof(float) * (size_t)I * k);
        if (!kval[mo]) st = mrec_fail(MREC_ERR_NOMEM, "lattice");
        else st = mrec_knn_rows(m->k_idx[mo], kval[mo], m->c[mo], I, fd, k, m->ctx);
    }
    /* softmax of the modality weights */
    float s[MAX_MOD], mx = m->mw[0], z = 0;
    for (int mo = 1; mo < M; mo++) mx = fmaxf(mx, m->mw[mo]);
    for (int mo = 0; mo < M; mo++) s[mo] = expf(m->mw[mo] - mx), z += s[mo];
    for (int mo = 0; mo < M; mo++) s[mo] /= z;
    /* the union pattern of every K_m and O_m row */
    int32_t cols[4 * MAX_MOD * 64];
    int64_t at = 0;
    for (int i = 0; !st && i < I; i++) {
        int n = 0;
        for (int mo = 0; mo < M; mo++)
            for (int t = 0; t < k; t++) cols[n++] = m->k_idx[mo][(size_t)i * k + t], cols[n++] = m->o_idx[mo][(size_t)i * k + t];
        qsort(cols, (size_t)n, sizeof *cols, by_int);
        m->row_ptr[i] = at;
        for (int a = 0; a < n; a++) {
            if (a && cols[a] == cols[a - 1]) continue;
            m->col[at] = cols[a];
            float asum = 0;
            for (int mo = 0; mo < M; mo++) {
                m->kv[mo][at] = m->ov[mo][at] = 0;
                for (int t = 0; t < k; t++) {
                    if (m->k_idx[mo][(size_t)i * k + t] == cols[a]) m->kv[mo][at] = kval[mo][(size_t)i * k + t];
                    if (m->o_idx[mo][(size_t)i * k + t] == cols[a]) m->ov[mo][at] = m->o_val[mo][(size_t)i * k + t];
                }
                asum += s[mo] * m->kv[mo][at];
            }
            m->a_val[at++] = asum;
        }
    }
    m->row_ptr[I] = at;
    for (int i = 0; !st && i < I; i++) {
        float r = 0;
        for (int64_t e = m->row_ptr[i]; e < m->row_ptr[i + 1]; e++) r += m->a_val[e];
        m->q[i] = r > 0 ? powf(r, -0.5f) : (r == 0 ? 0.0f : NAN);
    }
    for (int i = 0; !st && i < I; i++)
        for (int64_t e = m->row_ptr[i]; e < m->row_ptr[i + 1]; e++) {
            float o = 0;
            for (int mo = 0; mo < M; mo++) o += s[mo] * m->ov[mo][e];
            m->s_val[e] = (1 - m->lambda) * m->a_val[e] * m->q[i] * m->q[m->col[e]] + m->lambda * o;
        }
    for (int mo = 0; mo < M; mo++) free(kval[mo]);
    return st;
}

/* d loss / d S on the graph's entries (g) back to X_m, W_m, b_m and w. */
static mrec_status graph_backward(lattice *m, const float *g) {
    int I = m->n_items, M = m->n_mod, fd = m->fd, k = m->k;
    float s[MAX_MOD], mx = m->mw[0], z = 0, ds[MAX_MOD] = {0};
    for (int mo = 1; mo < M; mo++) mx = fmaxf(mx, m->mw[mo]);
    for (int mo = 0; mo < M; mo++) s[mo] = expf(m->mw[mo] - mx), z += s[mo];
    for (int mo = 0; mo < M; mo++) s[mo] /= z;
    int64_t nnz = m->row_ptr[I];
    float *da = malloc(sizeof(float) * (size_t)nnz), *dq = calloc((size_t)I, sizeof(float));
    float *dcn = calloc((size_t)I * fd, sizeof(float));
    if (!da || !dq || !dcn) {
        free(da), free(dq), free(dcn);
        return mrec_fail(MREC_ERR_NOMEM, "lattice: the gradient of an item graph of %lld entries", (long long)nnz);
    }
    mrec_status st = MREC_OK;
    for (int64_t e = 0; e < nnz; e++)
        for (int mo = 0; mo < M; mo++) ds[mo] += m->lambda * g[e] * m->ov[mo][e];
    /* L_ij = a_ij q_i q_j, q = rowsum(a)^-1/2 */
    for (int i = 0; i < I; i++)
        for (int64_t e = m->row_ptr[i]; e < m->row_ptr[i + 1]; e++) {
            int j = m->col[e];
            float gl = (1 - m->lambda) * g[e];
            da[e] = gl * m->q[i] * m->q[j];
            dq[i] += gl * m->a_val[e] * m->q[j];
            dq[j] += gl * m->a_val[e] * m->q[i];
        }
    for (int i = 0; i < I; i++) { /* dq/dr = -r^-3/2 / 2 = -q^3 / 2; r_i = the row's sum of a */
        float dr = -0.5f * dq[i] * m->q[i] * m->q[i] * m->q[i];
        for (int64_t e = m->row_ptr[i]; e < m->row_ptr[i + 1]; e++) da[e] += dr;
    }
    for (int mo = 0; mo < M && !st; mo++) {
        float *cn = m->cn[mo];
        memset(dcn, 0, sizeof(float) * (size_t)I * fd);
        for (int i = 0; i < I; i++)
            for (int64_t e = m->row_ptr[i]; e < m->row_ptr[i + 1]; e++) {
                ds[mo] += da[e] * m->kv[mo][e];
                int in_k = 0;
                for (int t = 0; t < k; t++) in_k |= m->k_idx[mo][(size_t)i * k + t] == m->col[e];
                if (!in_k) continue;
                /* K_ij = <cn_i, cn_j> */
                float dk = s[mo] * da[e];
                int j = m->col[e];
                for (int f = 0; f < fd; f++) {
                    dcn[(size_t)i * fd + f] += dk * cn[(size_t)j * fd + f];
                    dcn[(size_t)j * fd + f] += dk * cn[(size_t)i * fd + f];
                }
            }
        /* cn = c / |c|: dc = (dcn - cn <cn, dcn>) / |c| */
        for (int i = 0; i < I; i++) {
            float *d = dcn + (size_t)i * fd, dot = 0, n = m->cnorm[mo][i];
            for (int f = 0; f < fd; f++) dot += cn[(size_t)i * fd + f] * d[f];
            for (int f = 0; f < fd; f++) d[f] = n > 0 ? (d[f] - cn[(size_t)i * fd + f] * dot) / n : 0;
        }
        /* c = X W^T + b */
        int F = m->fdim[mo];
        st = mrec_gemm(m->ctx, m->w_grad[mo], dcn, m->x[mo], NULL, 1, 0, 1, 0, fd, F, I, fd, F, F);
        memset(m->b_grad[mo], 0, sizeof(float) * (size_t)fd);
        for (int i = 0; i < I; i++)
            for (int f = 0; f < fd; f++) m->b_grad[mo][f] += dcn[(size_t)i * fd + f];
        if (!st) st = mrec_gemm(m->ctx, m->x_grad[mo], dcn, m->w[mo], NULL, 1, 0, 0, 0, I, F, fd, fd, F, F);
    }
    /* softmax: dw = s (ds - <s, ds>) */
    float sds = 0;
    for (int mo = 0; mo < M; mo++) sds += s[mo] * ds[mo];
    for (int mo = 0; mo < M; mo++) m->mw_grad[mo] = s[mo] * (ds[mo] - sds);
    free(da), free(dq), free(dcn);
    return st;
}

/* ---- the recommender ---- */

/* S as the op layer's sparse matrix (I, I) */
static mrec_csr item_graph(const lattice *m) {
    mrec_csr s = {.n_rows = m->n_items, .n_cols = m->n_items, .row_ptr = m->row_ptr, .col = m->col, .val = m->s_val,
                  .device = MREC_DEVICE_CPU};
    return s;
}

/* final (N, d) = mean(E0, A E0, A^2 E0); h = S I; hn = h / |h| */
static mrec_status forward(lattice *m) {
    int d = m->dim, I = m->n_items;
    mrec_csr s = item_graph(m);
    mrec_status st = mrec_graph_layer_mean(m->final, m->ego, m->ui, 2, d, m->t1, m->t2, m->ctx);
    if (!st) st = mrec_spmm(m->ctx, m->h, &s, m->ego + (size_t)m->n_users * d, d, 0);
    return st ? st : mrec_l2_normalize_rows(m->ctx, m->hn, m->h, 1e-12f, I, d);
}

static mrec_status batch_loss_grad(lattice *m, double *loss_out, const int32_t *u, const int32_t *i, const int32_t *j,
                                   int n) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes;
    mrec_context *ctx = m->ctx;
    mrec_status st;
    if (n > m->cap) {
        free(m->pos), free(m->neg), free(m->dx);
        m->pos = malloc(sizeof(float) * (size_t)n), m->neg = malloc(sizeof(float) * (size_t)n), m->dx = malloc(sizeof(float) * (size_t)n);
        m->cap = m->pos && m->neg && m->dx ? n : 0;
        if (!m->cap) return mrec_fail(MREC_ERR_NOMEM, "lattice: a batch of %d", n);
    }
    int build = m->build || m->build_always;
    if (build && (st = build_graph(m))) return st;
    m->build = 0;
    if ((st = forward(m))) return st;
    /* user(u) = F_u; item(i) = F_i + hn_i */
    double reg = 0;
    for (int b = 0; b < n; b++) {
        const float *fu = m->final + (size_t)u[b] * d, *fi = m->final + (size_t)(U + i[b]) * d, *fj = m->final + (size_t)(U + j[b]) * d;
        const float *hi = m->hn + (size_t)i[b] * d, *hj = m->hn + (size_t)j[b] * d;
        float sp = 0, sn = 0;
        for (int t = 0; t < d; t++) {
            float vi = fi[t] + hi[t], vj = fj[t] + hj[t];
            sp += fu[t] * vi, sn += fu[t] * vj;
            reg += (double)fu[t] * fu[t] + (double)vi * vi + (double)vj * vj;
        }
        m->pos[b] = sp, m->neg[b] = sn;
    }
    double loss = mrec_bpr_softplus_loss(m->dx, m->pos, m->neg, n) + m->reg * reg / 2 / m->batch_size;
    float cr = m->reg / m->batch_size;
    memset(m->dfinal, 0, sizeof(float) * (size_t)N * d);
    memset(m->dh, 0, sizeof(float) * (size_t)I * d);
    for (int b = 0; b < n; b++) {
        const float *fu = m->final + (size_t)u[b] * d, *fi = m->final + (size_t)(U + i[b]) * d, *fj = m->final + (size_t)(U + j[b]) * d;
        const float *hi = m->hn + (size_t)i[b] * d, *hj = m->hn + (size_t)j[b] * d;
        float *gu = m->dfinal + (size_t)u[b] * d, *gi = m->dfinal + (size_t)(U + i[b]) * d, *gj = m->dfinal + (size_t)(U + j[b]) * d;
        float *dhi = m->dh + (size_t)i[b] * d, *dhj = m->dh + (size_t)j[b] * d, g = m->dx[b];
        for (int t = 0; t < d; t++) {
            float vi = fi[t] + hi[t], vj = fj[t] + hj[t];
            float di = g * fu[t] + cr * vi, dj = -g * fu[t] + cr * vj;
            gu[t] += g * (vi - vj) + cr * fu[t];
            gi[t] += di, dhi[t] += di;
            gj[t] += dj, dhj[t] += dj;
        }
    }
    /* hn = h / |h|: dh = (dhn - hn <hn, dhn>) / |h| */
    for (int r = 0; r < I; r++) {
        float *dr = m->dh + (size_t)r * d, dot = 0, nn = 0;
        const float *hn = m->hn + (size_t)r * d, *h = m->h + (size_t)r * d;
        for (int t = 0; t < d; t++) dot += hn[t] * dr[t], nn += h[t] * h[t];
        float norm = fmaxf(sqrtf(nn), 1e-12f);
        for (int t = 0; t < d; t++) dr[t] = (dr[t] - hn[t] * dot) / norm;
    }
    /* dE0 = (dF + A^T dF + A^T A^T dF) / 3 */
    if ((st = mrec_graph_layer_mean_back(m->ego_grad, m->dfinal, m->ui, 0, 2, d, m->t1, m->t2, ctx))) return st;
    /* h = S I: the item ids get S^T dh */
    mrec_csr s = item_graph(m);
    if ((st = mrec_spmm(ctx, m->t1, &s, m->dh, d, 1))) return st;
    if ((st = mrec_add(ctx, m->ego_grad + (size_t)U * d, m->ego_grad + (size_t)U * d, m->t1, (int64_t)I * d))) return st;
    for (int p = 1; p < m->n_params; p++) m->active[p] = (uint8_t)build;
    if (build) { /* S's entries: dS_ij = <dh_i, I_j> */
        int64_t nnz = m->row_ptr[I];
        float *gs = malloc(sizeof(float) * (size_t)(nnz + 1));
        if (!gs) return mrec_fail(MREC_ERR_NOMEM, "lattice: the gradient of an item graph of %lld entries", (long long)nnz);
        for (int r = 0; r < I; r++)
            for (int64_t e = m->row_ptr[r]; e < m->row_ptr[r + 1]; e++) {
                const float *dr = m->dh + (size_t)r * d, *ej = m->ego + (size_t)(U + m->col[e]) * d;
                float s = 0;
                for (int t = 0; t < d; t++) s += dr[t] * ej[t];
                gs[e] = s;
            }
        st = graph_backward(m, gs);
        free(gs);
        if (st) return st;
    }
    *loss_out = loss;
    return MREC_OK;
}

static double lattice_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    lattice *m = self;
    double loss = NAN;
    m->status = batch_loss_grad(m, &loss, u, i, j, n);
    return m->status ? NAN : loss;
}

static mrec_status lattice_epoch_start(void *self) {
    ((lattice *)self)->build = 1;
    return MREC_OK;
}

static mrec_status lattice_prepare(void *self) {
    lattice *m = self;
    mrec_status st = build_graph(m);
    if (!st) st = forward(m);
    if (st) return st;
    int d = m->dim;
    return mrec_add(m->ctx, m->final + (size_t)m->n_users * d, m->final + (size_t)m->n_users * d, m->hn, (int64_t)m->n_items * d);
}

static mrec_status lattice_score(void *self, int u0, int n, float *scores) {
    lattice *m = self;
    return mrec_score_final(m->ctx, scores, m->final, m->n_users, m->n_items, m->dim, u0, n);
}

static void lattice_destroy(void *self) {
    lattice *m = self;
    free(m->ego), free(m->ego_grad), free(m->row_ptr), free(m->col), free(m->s_val), free(m->a_val), free(m->q);
    for (int mo = 0; mo < MAX_MOD; mo++) {
        free(m->x[mo]), free(m->x_grad[mo]), free(m->w[mo]), free(m->w_grad[mo]), free(m->b[mo]), free(m->b_grad[mo]);
        free(m->o_idx[mo]), free(m->o_val[mo]), free(m->kv[mo]), free(m->ov[mo]), free(m->c[mo]), free(m->cn[mo]);
        free(m->cnorm[mo]), free(m->k_idx[mo]);
    }
    free(m->final), free(m->t1), free(m->t2), free(m->dfinal), free(m->h), free(m->hn), free(m->dh);
    free(m->pos), free(m->neg), free(m->dx);
    free(m);
}

void mrec_lattice_rebuild_every_batch(mrec_model *model) { ((lattice *)model->self)->build_always = 1; }

mrec_status mrec_lattice_create(mrec_model *out, const mrec_graph *mean_self_adj, const mrec_features *feat, int n_mod, int n_users,
                                int dim, int k, float lambda, float reg, int batch_size, mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st = mrec_recsys_host_only(ctx, "lattice");
    if (st) return st;
    int I = n_mod > 0 ? feat[0].n_items : 0;
    if (n_mod < 1 || n_mod > MAX_MOD || mean_self_adj->n_nodes != n_users + I || k < 1 || k > I || k > 64 || batch_size < 1)
        return mrec_fail(MREC_ERR_ARG, "lattice: %d modalities (1..%d), k %d (1..64, at most the items), graph of %d nodes", n_mod,
                         MAX_MOD, k, mean_self_adj->n_nodes);
    lattice *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "lattice");
    m->n_users = n_users, m->n_items = I, m->n_nodes = n_users + I, m->dim = dim, m->fd = dim, m->k = k, m->n_mod = n_mod;
    m->reg = reg, m->lambda = lambda, m->batch_size = batch_size, m->ui = mean_self_adj, m->ctx = ctx, m->build = 1;
    size_t N = (size_t)m->n_nodes, cap = (size_t)I * 2 * n_mod * k;
    m->ego = malloc(sizeof(float) * N * dim), m->ego_grad = calloc(N * dim, sizeof(float));
    m->row_ptr = calloc((size_t)I + 1, sizeof *m->row_ptr), m->col = malloc(sizeof *m->col * cap);
    m->s_val = malloc(sizeof(float) * cap), m->a_val = malloc(sizeof(float) * cap), m->q = malloc(sizeof(float) * (size_t)I);
    m->final = malloc(sizeof(float) * N * dim), m->t1 = malloc(sizeof(float) * N * dim), m->t2 = malloc(sizeof(float) * N * dim);
    m->dfinal = malloc(sizeof(float) * N * dim), m->h = malloc(sizeof(float) * (size_t)I * dim);
    m->hn = malloc(sizeof(float) * (size_t)I * dim), m->dh = malloc(sizeof(float) * (size_t)I * dim);
    int ok = m->ego && m->ego_grad && m->row_ptr && m->col && m->s_val && m->a_val && m->q && m->final && m->t1 && m->t2 &&
             m->dfinal && m->h && m->hn && m->dh;
    for (int mo = 0; ok && mo < n_mod; mo++) {
        int F = m->fdim[mo] = feat[mo].dim;
        m->x[mo] = malloc(sizeof(float) * (size_t)I * F), m->x_grad[mo] = calloc((size_t)I * F, sizeof(float));
        m->w[mo] = malloc(sizeof(float) * (size_t)dim * F), m->w_grad[mo] = calloc((size_t)dim * F, sizeof(float));
        m->b[mo] = malloc(sizeof(float) * (size_t)dim), m->b_grad[mo] = calloc((size_t)dim, sizeof(float));
        m->o_idx[mo] = malloc(sizeof(int32_t) * (size_t)I * k), m->o_val[mo] = malloc(sizeof(float) * (size_t)I * k);
        m->k_idx[mo] = malloc(sizeof(int32_t) * (size_t)I * k), m->kv[mo] = malloc(sizeof(float) * cap);
        m->ov[mo] = malloc(sizeof(float) * cap), m->c[mo] = malloc(sizeof(float) * (size_t)I * dim);
        m->cn[mo] = malloc(sizeof(float) * (size_t)I * dim), m->cnorm[mo] = malloc(sizeof(float) * (size_t)I);
        ok = m->x[mo] && m->x_grad[mo] && m->w[mo] && m->w_grad[mo] && m->b[mo] && m->b_grad[mo] && m->o_idx[mo] && m->o_val[mo] &&
             m->k_idx[mo] && m->kv[mo] && m->ov[mo] && m->c[mo] && m->cn[mo] && m->cnorm[mo];
        if (ok) memcpy(m->x[mo], feat[mo].x, sizeof(float) * (size_t)I * F);
    }
    if (!ok) st = mrec_fail(MREC_ERR_NOMEM, "lattice: %d users, %d items", n_users, I);
    /* the frozen graphs: kNN of the raw features with their similarities, normalized by row sums */
    for (int mo = 0; !st && mo < n_mod; mo++) {
        st = mrec_knn_rows(m->o_idx[mo], m->o_val[mo], m->x[mo], I, m->fdim[mo], k, ctx);
        float *r = st ? NULL : malloc(sizeof(float) * (size_t)I);
        if (!st && !r) st = mrec_fail(MREC_ERR_NOMEM, "lattice");
        for (int i = 0; !st && i < I; i++) {
            float sum = 0;
            for (int t = 0; t < k; t++) sum += m->o_val[mo][(size_t)i * k + t];
            r[i] = sum > 0 ? powf(sum, -0.5f) : (sum == 0 ? 0.0f : NAN);
        }
        for (int i = 0; !st && i < I; i++)
            for (int t = 0; t < k; t++) m->o_val[mo][(size_t)i * k + t] *= r[i] * r[m->o_idx[mo][(size_t)i * k + t]];
        free(r);
    }
    if (st) {
        lattice_destroy(m);
        return st;
    }
    double bu = sqrt(6.0 / (n_users + dim)), bi = sqrt(6.0 / (I + dim));
    for (size_t e = 0; e < N * dim; e++) m->ego[e] = (float)((e < (size_t)n_users * dim ? bu : bi) * (2 * mrec_rng_uniform(rng) - 1));
    for (int mo = 0; mo < n_mod; mo++) {
        double bound = 1.0 / sqrt((double)m->fdim[mo]);
        for (size_t e = 0; e < (size_t)dim * m->fdim[mo]; e++) m->w[mo][e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
        for (int e = 0; e < dim; e++) m->b[mo][e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
        m->mw[mo] = 0.5f;
    }
    out->name = "LATTICE", out->self = m;
    int p = 0;
    out->param[p] = m->ego, out->grad[p] = m->ego_grad, out->size[p++] = (int64_t)N * dim;
    for (int mo = 0; mo < n_mod; mo++) {
        out->param[p] = m->x[mo], out->grad[p] = m->x_grad[mo], out->size[p++] = (int64_t)I * m->fdim[mo];
        out->param[p] = m->w[mo], out->grad[p] = m->w_grad[mo], out->size[p++] = (int64_t)dim * m->fdim[mo];
        out->param[p] = m->b[mo], out->grad[p] = m->b_grad[mo], out->size[p++] = dim;
    }
    out->param[p] = m->mw, out->grad[p] = m->mw_grad, out->size[p++] = n_mod;
    out->n_params = m->n_params = p;
    memset(m->active, 1, sizeof m->active);
    out->active = m->active;
    out->status = &m->status;
    out->loss_grad = lattice_loss_grad, out->epoch_start = lattice_epoch_start, out->prepare = lattice_prepare;
    out->score = lattice_score, out->destroy = lattice_destroy;
    return MREC_OK;
}
