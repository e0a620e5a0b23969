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
 *
 * Two paths compute this: the host loops (a CPU context), which hold S as
 * one union pattern per row, and the op path (a GPU context always, a CPU
 * one after mrec_lattice_use_ops) where every array lives on the context's
 * device and S is never assembled: it is applied as its parts,
 *   S X = (1 - lambda) Q (sum_m s_m K_m) Q X + lambda sum_m s_m O_m X,
 * Q = diag(rowsum^-1/2), each K_m and O_m a k-per-row sparse matrix; K_m^T
 * products go through the epoch's transposed index of its columns
 * (mrec_index_csr), so no sum needs an atomic. The learned kNN is a GEMM of
 * unit rows and mrec_topk_rows per block, the graph's backward the same
 * algebra on the entries (gathered dot products, group sums by sparse
 * products). The host sees the modality weights (M numbers) at each
 * rebuild and the few sums of the graph's backward; a batch's loss stays on
 * the device, and a batch that does not rebuild S waits for nothing (on a
 * GPU, one CUDA graph with Adam).
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MOD 4

#define BLOCK 256 /* rows per kNN similarity block on the op path: memory BLOCK x I */

typedef struct {
    int n_users, n_items, n_nodes, dim, k, n_mod, batch_size;
    float reg, lambda;
    const mrec_graph *ui;                 /* D^-1 (A + I), not symmetric */
    float *ego, *ego_grad;                /* (N, d): users, then item ids */
    float *x[MAX_MOD], *x_grad[MAX_MOD];  /* (I, F_m) */
    float *w[MAX_MOD], *w_grad[MAX_MOD], *b[MAX_MOD], *b_grad[MAX_MOD];
    float *mw, *mw_grad;                  /* (M) modal_weight: mw_host on a CPU context, device memory on a GPU */
    float mw_host[MAX_MOD], mw_grad_host[MAX_MOD];
    int fdim[MAX_MOD], fd;                /* F_m; the projection width */
    int32_t *o_idx[MAX_MOD];              /* (I, k) the frozen graphs' columns */
    float *o_val[MAX_MOD];                /* (I, k) normalized values */
    /* the current S: union pattern per row, with what it is made of (the host path) */
    int64_t *row_ptr;
    int32_t *col;
    float *s_val, *a_val, *kv[MAX_MOD], *ov[MAX_MOD]; /* (nnz) */
    float *q;                             /* (I) rowsum(a)^-1/2 */
    float *c[MAX_MOD], *cn[MAX_MOD], *cnorm[MAX_MOD]; /* (I, fd) projections, normalized; (I) norms */
    int32_t *k_idx[MAX_MOD];              /* (I, k) learned neighbours */
    int build, build_always;
    int built;                            /* the op path's staged batch rebuilt S: its launches run the graph's backward */
    uint8_t active[MREC_MAX_PARAMS];
    int n_params;
    float *final, *t1, *t2, *dfinal, *h, *hn, *dh;
    float *pos, *neg, *dx;
    int cap;
    /* the op path: the arrays above where they are shared (on a GPU carved here too), and */
    int use_ops, on_gpu;
    mrec_arena ops_mem;
    mrec_csr ui_ops, ui_t;                /* D^-1 (A + I) there, and on a GPU its transpose */
    int32_t *f_idx[MAX_MOD];              /* (I, k) the frozen graphs as the op path computes them */
    float *f_val[MAX_MOD];                /* (I, k) */
    int64_t *ft_ptr[MAX_MOD];             /* (I + 1) their columns transposed */
    int32_t *ft_pos[MAX_MOD];             /* (I k) */
    float *k_val[MAX_MOD];                /* (I, k) this epoch's learned similarities */
    int64_t *kt_ptr[MAX_MOD];             /* (I + 1) the learned graphs' columns transposed: item -> entries */
    int32_t *kt_pos[MAX_MOD];             /* (I k) */
    void *kt_work;
    size_t kt_work_bytes;
    int64_t *kptr;                        /* (I + 1) 0, k, 2k, ..: the row pointers of every k-per-row matrix */
    int64_t *iota_ptr;                    /* (I k + 1) 0, 1, ..: one entry per row (Q as a matrix, each entry's row) */
    int32_t *pos_col;                     /* (I k) 0, 1, ..: the columns of Q and of the per-row group sums */
    int32_t *rowid;                       /* (I k) p / k: each entry's row */
    float *ones;                          /* (I) */
    float *r, *v1, *v2, *dq;              /* (I) */
    float *e1, *e2, *e3, *e4;             /* (I k) per-entry values */
    float *Z;                             /* (I k, max(d, fd)) rows by entry */
    float *y, *acc;                       /* (I, d) */
    float *dcn, *dc;                      /* (I, fd) */
    float *xu;                            /* (I, F_max) the raw features' unit rows */
    float *sim;                           /* (BLOCK, I) */
    float *dots;                          /* (2 M) the graph backward's sums */
    float s_soft[MAX_MOD];                /* this S's softmax of the modality weights (host) */
    int ops_cap;
    mrec_arena batch;
    float *T, *mixed;                     /* (3 cap, d) the batch's rows [F_u ; F_i + hn_i ; F_j + hn_j], their gradients */
    mrec_batch_rows nodes, items;         /* u, U + i, U + j; i, j */
    mrec_bpr_ops bpr;
    mrec_context *ctx;
    mrec_status status;                   /* of the last loss_grad */
    double host_loss;                     /* the last batch's loss on the host path */
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

/* ---- the op path ---- */

/* S's parts as the op layer's sparse matrices: K_m or O_m (I, I) with k entries a row, values val; Q as a diagonal. */
static mrec_csr k_rows(const lattice *m, const int32_t *col, const float *val, const mrec_csr *transposed) {
    mrec_csr a = {.n_rows = m->n_items, .n_cols = m->n_items, .row_ptr = m->kptr, .col = col, .val = val, .device = m->ctx->device,
                  .transposed = transposed};
    return a;
}

static mrec_csr diag_q(const lattice *m) {
    mrec_csr a = {.n_rows = m->n_items, .n_cols = m->n_items, .row_ptr = m->iota_ptr, .col = m->pos_col, .val = m->q,
                  .device = m->ctx->device};
    return a;
}

/* out (I, D) = K^T X for a k-per-row K with values val (I k) and its columns' transposed index (t_ptr, t_pos): each
 * entry's row of X times its value (Z), summed into the entry's column in entry order. */
static mrec_status ops_kt(lattice *m, const int64_t *t_ptr, const int32_t *t_pos, float *out, const float *X, const float *val,
                          int D) {
    int I = m->n_items, ik = I * m->k;
    mrec_csr kr = {.n_rows = ik, .n_cols = I, .row_ptr = m->iota_ptr, .col = m->rowid, .val = val, .device = m->ctx->device};
    mrec_csr it = {.n_rows = I, .n_cols = ik, .row_ptr = t_ptr, .col = t_pos, .device = m->ctx->device};
    mrec_status st = mrec_spmm(m->ctx, m->Z, &kr, X, D, 0);
    return st ? st : mrec_spmm(m->ctx, out, &it, m->Z, D, 0);
}

/* idx, val (I, k): the k most cosine-similar rows of each unit row of u (I, D), a block of rows at a time; t_ptr,
 * t_pos: the columns transposed. */
static mrec_status ops_knn(lattice *m, int32_t *idx, float *val, int64_t *t_ptr, int32_t *t_pos, const float *u, int D) {
    mrec_context *ctx = m->ctx;
    int I = m->n_items, k = m->k;
    mrec_status st = MREC_OK;
    for (int r0 = 0; r0 < I && !st; r0 += BLOCK) {
        int rows = I - r0 < BLOCK ? I - r0 : BLOCK;
        st = mrec_gemm(ctx, m->sim, u + (size_t)r0 * D, u, NULL, 1, 0, 0, 1, rows, I, D, D, D, I);
        if (!st) st = mrec_topk_rows(ctx, idx + (size_t)r0 * k, val + (size_t)r0 * k, m->sim, rows, I, k);
    }
    return st ? st : mrec_index_csr(ctx, t_ptr, t_pos, idx, I * k, I, m->kt_work, m->kt_work_bytes);
}

/* build_graph through the op entries: the learned kNN of each modality and Q, S's other parts kept apart. */
static mrec_status ops_build(lattice *m) {
    mrec_context *ctx = m->ctx;
    int I = m->n_items, M = m->n_mod, fd = m->fd;
    float mw[MAX_MOD], mx, z = 0;
    mrec_status st = mrec_copy_to_host(ctx, mw, m->mw, sizeof(float) * (size_t)M); /* M numbers per rebuild */
    if (st) return st;
    mx = mw[0];
    for (int mo = 1; mo < M; mo++) mx = fmaxf(mx, mw[mo]);
    for (int mo = 0; mo < M; mo++) m->s_soft[mo] = expf(mw[mo] - mx), z += m->s_soft[mo];
    for (int mo = 0; mo < M; mo++) m->s_soft[mo] /= z;
    for (int mo = 0; mo < M && !st; mo++) {
        int F = m->fdim[mo];
        st = mrec_gemm(ctx, m->c[mo], m->x[mo], m->w[mo], m->b[mo], 1, 0, 0, 1, I, fd, F, F, F, fd);
        /* unit rows, a zero row staying zero (0 / eps), and their kNN */
        if (!st) st = mrec_l2_normalize_rows(ctx, m->cn[mo], m->c[mo], 1e-30f, I, fd);
        if (!st) st = ops_knn(m, m->k_idx[mo], m->k_val[mo], m->kt_ptr[mo], m->kt_pos[mo], m->cn[mo], fd);
        /* r += s_m K_m 1 */
        mrec_csr km = k_rows(m, m->k_idx[mo], m->k_val[mo], NULL);
        if (!st) st = mrec_spmm(ctx, m->v1, &km, m->ones, 1, 0);
        if (!st) st = mrec_scale(ctx, mo ? m->v1 : m->r, m->v1, m->s_soft[mo], I);
        if (!st && mo) st = mrec_add(ctx, m->r, m->r, m->v1, I);
    }
    return st ? st : mrec_inv_sqrt(ctx, m->q, m->r, I);
}

/* forward through the op entries: F, then h = S I applied as its parts, hn = h / |h|. */
static mrec_status ops_forward(lattice *m) {
    mrec_context *ctx = m->ctx;
    int d = m->dim, I = m->n_items;
    int64_t id = (int64_t)I * d;
    const float *E = m->ego + (size_t)m->n_users * d;
    mrec_csr q = diag_q(m);
    float *t = m->dh; /* free in the forward */
    mrec_status st = mrec_csr_layer_mean(m->final, m->ego, &m->ui_ops, 2, d, m->t1, m->t2, ctx);
    if (!st) st = mrec_spmm(ctx, m->y, &q, E, d, 0);
    for (int mo = 0; mo < m->n_mod && !st; mo++) {
        mrec_csr km = k_rows(m, m->k_idx[mo], m->k_val[mo], NULL);
        st = mrec_spmm(ctx, t, &km, m->y, d, 0);
        if (!st) st = mrec_scale(ctx, mo ? t : m->acc, t, m->s_soft[mo], id);
        if (!st && mo) st = mrec_add(ctx, m->acc, m->acc, t, id);
    }
    if (!st) st = mrec_spmm(ctx, m->h, &q, m->acc, d, 0);
    if (!st) st = mrec_scale(ctx, m->h, m->h, 1 - m->lambda, id);
    for (int mo = 0; mo < m->n_mod && !st; mo++) {
        mrec_csr om = k_rows(m, m->f_idx[mo], m->f_val[mo], NULL);
        st = mrec_spmm(ctx, t, &om, E, d, 0);
        if (!st) st = mrec_scale(ctx, t, t, m->lambda * m->s_soft[mo], id);
        if (!st) st = mrec_add(ctx, m->h, m->h, t, id);
    }
    return st ? st : mrec_l2_normalize_rows(ctx, m->hn, m->h, 1e-12f, I, d);
}

/* graph_backward through the op entries, from dh: the entries' dS_ij = <dh_i, I_j> never assembled. */
static mrec_status ops_graph_backward(lattice *m) {
    mrec_context *ctx = m->ctx;
    int d = m->dim, I = m->n_items, M = m->n_mod, fd = m->fd, ik = I * m->k;
    const float *E = m->ego + (size_t)m->n_users * d;
    const int32_t *zero = m->pos_col; /* its first entry: one row of each vector as a (1, I k) table */
    float l1 = 1 - m->lambda;
    mrec_csr groups = {.n_rows = I, .n_cols = ik, .row_ptr = m->kptr, .col = m->pos_col, .device = ctx->device};
    mrec_status st = MREC_OK;
    /* the frozen part: ds_m = lambda sum over O_m's entries of dS_ij o_ij (dots[M + mo]) */
    for (int mo = 0; mo < M && !st; mo++) {
        st = mrec_gather_dot(ctx, m->e1, m->dh, m->rowid, E, m->f_idx[mo], ik, d);
        if (!st) st = mrec_gather_dot(ctx, m->dots + M + mo, m->e1, zero, m->f_val[mo], zero, 1, ik);
    }
    /* L_ij = a_ij q_i q_j, a = sum_m s_m K_m: dq_i = sum_j (1 - lambda) dS_ij a_ij q_j, and the same down column i */
    for (int mo = 0; mo < M && !st; mo++) {
        st = mrec_gather_dot(ctx, m->e1, m->dh, m->rowid, E, m->k_idx[mo], ik, d);
        if (!st) st = mrec_mul(ctx, m->e2, m->e1, m->k_val[mo], ik);
        if (!st) st = mrec_scale(ctx, m->e2, m->e2, l1 * m->s_soft[mo], ik);
        if (!st) st = mrec_embedding(ctx, m->e3, m->q, m->k_idx[mo], ik, I, 1); /* q_j */
        if (!st) st = mrec_mul(ctx, m->e3, m->e3, m->e2, ik);
        if (!st) st = mrec_spmm(ctx, m->v1, &groups, m->e3, 1, 0);
        if (!st) st = mrec_embedding(ctx, m->e4, m->q, m->rowid, ik, I, 1); /* q_i */
        if (!st) st = mrec_mul(ctx, m->e4, m->e4, m->e2, ik);
        mrec_csr it = {.n_rows = I, .n_cols = ik, .row_ptr = m->kt_ptr[mo], .col = m->kt_pos[mo], .device = ctx->device};
        if (!st) st = mrec_spmm(ctx, m->v2, &it, m->e4, 1, 0);
        if (!st) st = mrec_add(ctx, m->v1, m->v1, m->v2, I);
        if (!st) st = mo ? mrec_add(ctx, m->dq, m->dq, m->v1, I) : mrec_scale(ctx, m->dq, m->v1, 1.0f, I);
    }
    /* dq/dr = -q^3 / 2 (r the row's sum of a): dr in v1 */
    if (!st) st = mrec_mul(ctx, m->v1, m->q, m->q, I);
    if (!st) st = mrec_mul(ctx, m->v1, m->v1, m->q, I);
    if (!st) st = mrec_mul(ctx, m->v1, m->v1, m->dq, I);
    if (!st) st = mrec_scale(ctx, m->v1, m->v1, -0.5f, I);
    for (int mo = 0; mo < M && !st; mo++) {
        int F = m->fdim[mo];
        /* da_ij = (1 - lambda) dS_ij q_i q_j + dr_i on K_m's entries (e3); ds_m += sum da k_m (dots[mo]); dK = s_m da */
        st = mrec_gather_dot(ctx, m->e1, m->dh, m->rowid, E, m->k_idx[mo], ik, d);
        if (!st) st = mrec_embedding(ctx, m->e3, m->q, m->rowid, ik, I, 1);
        if (!st) st = mrec_embedding(ctx, m->e4, m->q, m->k_idx[mo], ik, I, 1);
        if (!st) st = mrec_mul(ctx, m->e3, m->e3, m->e4, ik);
        if (!st) st = mrec_mul(ctx, m->e3, m->e3, m->e1, ik);
        if (!st) st = mrec_scale(ctx, m->e3, m->e3, l1, ik);
        if (!st) st = mrec_embedding(ctx, m->e4, m->v1, m->rowid, ik, I, 1);
        if (!st) st = mrec_add(ctx, m->e3, m->e3, m->e4, ik);
        if (!st) st = mrec_gather_dot(ctx, m->dots + mo, m->e3, zero, m->k_val[mo], zero, 1, ik);
        if (!st) st = mrec_scale(ctx, m->e3, m->e3, m->s_soft[mo], ik);
        /* K_ij = <cn_i, cn_j>: dcn = dK cn + dK^T cn; cn = c / |c|; c = X W^T + b */
        mrec_csr dk = k_rows(m, m->k_idx[mo], m->e3, NULL);
        if (!st) st = mrec_spmm(ctx, m->dcn, &dk, m->cn[mo], fd, 0);
        if (!st) st = ops_kt(m, m->kt_ptr[mo], m->kt_pos[mo], m->dc, m->cn[mo], m->e3, fd);
        if (!st) st = mrec_add(ctx, m->dcn, m->dcn, m->dc, (int64_t)I * fd);
        if (!st) st = mrec_l2_normalize_rows_back(ctx, m->dc, m->dcn, m->cn[mo], m->c[mo], 1e-30f, 0, I, fd);
        if (!st) st = mrec_gemm(ctx, m->w_grad[mo], m->dc, m->x[mo], NULL, 1, 0, 1, 0, fd, F, I, fd, F, F);
        if (!st) st = mrec_gemm(ctx, m->b_grad[mo], m->ones, m->dc, NULL, 1, 0, 0, 0, 1, fd, I, I, fd, fd);
        if (!st) st = mrec_gemm(ctx, m->x_grad[mo], m->dc, m->w[mo], NULL, 1, 0, 0, 0, I, F, fd, fd, F, F);
    }
    /* softmax: dw = s (ds - <s, ds>), from the 2M sums */
    float dots[2 * MAX_MOD], ds[MAX_MOD], sds = 0, g[MAX_MOD];
    if (!st) st = mrec_copy_to_host(ctx, dots, m->dots, sizeof(float) * 2 * (size_t)M);
    if (st) return st;
    for (int mo = 0; mo < M; mo++) ds[mo] = m->lambda * dots[M + mo] + dots[mo], sds += m->s_soft[mo] * ds[mo];
    for (int mo = 0; mo < M; mo++) g[mo] = m->s_soft[mo] * (ds[mo] - sds);
    return mrec_copy_to_device(ctx, m->mw_grad, g, sizeof(float) * (size_t)M);
}

static void carve_batch(lattice *m, mrec_arena *a) {
    size_t c = (size_t)m->ops_cap, d = (size_t)m->dim;
    m->T = mrec_arena_alloc(a, sizeof(float) * 3 * c * d), m->mixed = mrec_arena_alloc(a, sizeof(float) * 3 * c * d);
}

static mrec_status ensure_ops_batch(lattice *m, int n) {
    if (n <= m->ops_cap) return MREC_OK;
    mrec_arena_release(&m->batch, m->ctx->cuda);
    m->ops_cap = n;
    mrec_arena measure = mrec_arena_measure();
    carve_batch(m, &measure);
    mrec_status st = mrec_arena_reserve(&m->batch, measure.peak, m->ctx->device, m->ctx->cuda);
    if (!st) carve_batch(m, &m->batch);
    else m->ops_cap = 0;
    return st;
}

/* batch_loss_grad through the op entries, in the trainer's two halves (mrec_model.stage, .launch): the host's part
 * (buffers grown; at a rebuild S's learned parts, which read M numbers back; the batch's rows checked and sent up),
 * then the launches, which take the modality weights s_soft as arguments (the graph's key) and, after a rebuild,
 * read S's backward's few sums back (run as they are). */
static mrec_status lattice_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    lattice *m = self;
    mrec_context *ctx = m->ctx;
    const int32_t *uij[3] = {u, i, j};
    const int node_off[3] = {0, m->n_users, m->n_users}, zero[2] = {0, 0};
    int build = m->build || m->build_always;
    mrec_status st = ensure_ops_batch(m, n);
    if (!st && build) st = ops_build(m);
    m->build = 0, m->built = build;
    for (int p = 1; p < m->n_params; p++) m->active[p] = (uint8_t)build;
    if (!st) st = mrec_batch_rows_stage(&m->nodes, ctx, m->n_nodes, 3, uij, node_off, n);
    if (!st) st = mrec_batch_rows_stage(&m->items, ctx, m->n_items, 2, uij + 1, zero, n);
    const int32_t *row = m->items.h_iota;
    return st ? st : mrec_bpr_ops_stage(&m->bpr, ctx, row, row, row + n, n, n, 3 * m->ops_cap, m->dim);
}

static mrec_status ops_launch(lattice *m) {
    mrec_context *ctx = m->ctx;
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes, n = m->bpr.n;
    size_t nd = (size_t)n * d;
    int64_t id = (int64_t)I * d;
    mrec_status st = ops_forward(m);
    if (!st) st = mrec_batch_rows_index(&m->nodes);
    if (!st) st = mrec_batch_rows_index(&m->items);
    /* T = [F_u ; F_i + hn_i ; F_j + hn_j] (the item rows' hn through mixed's tail as scratch) */
    if (!st) st = mrec_embedding_checked(ctx, m->T, m->final, m->nodes.ids, 3 * n, N, d);
    if (!st) st = mrec_embedding_checked(ctx, m->mixed, m->hn, m->items.ids, 2 * n, I, d);
    if (!st) st = mrec_add(ctx, m->T + nd, m->T + nd, m->mixed, 2 * (int64_t)nd);
    /* the regularizer: reg / 2 |T|^2 over the configured batch size, MMRec's */
    mrec_bpr_spec spec = {.form = MREC_BPR_SOFTPLUS, .weight = 1, .reg_form = MREC_BPR_REG_SQUARED_ALL, .reg = m->reg,
                          .reg_div = m->batch_size};
    if (!st) st = mrec_bpr_ops_gather(&m->bpr, m->T, m->T);
    if (!st) st = mrec_bpr_ops_loss(&m->bpr, &spec);
    /* dF of the batch's rows, and d hn of the item rows (into y), back through the unit rows into dh */
    if (!st) st = mrec_bpr_ops_scatter_at(&m->bpr, m->mixed, m->T, 1, MREC_BPR_PARTS_ALL);
    if (!st) st = mrec_batch_rows_scatter(&m->nodes, m->dfinal, m->mixed, d);
    if (!st) st = mrec_batch_rows_scatter(&m->items, m->y, m->mixed + nd, d);
    if (!st) st = mrec_l2_normalize_rows_back(ctx, m->dh, m->y, m->hn, m->h, 1e-12f, 0, I, d);
    /* dE0 = (dF + A^T dF + A^T A^T dF) / 3 */
    if (!st) st = mrec_csr_layer_mean_back(m->ego_grad, m->dfinal, &m->ui_ops, 0, 2, d, m->t1, m->t2, ctx);
    /* h = S I: the item ids get S^T dh = (1 - lambda) Q a^T Q dh + lambda sum_m s_m O_m^T dh (t1, t2 free now) */
    mrec_csr q = diag_q(m);
    if (!st) st = mrec_spmm(ctx, m->y, &q, m->dh, d, 0);
    for (int mo = 0; mo < m->n_mod && !st; mo++) {
        st = ops_kt(m, m->kt_ptr[mo], m->kt_pos[mo], m->t1, m->y, m->k_val[mo], d);
        if (!st) st = mrec_scale(ctx, mo ? m->t1 : m->acc, m->t1, m->s_soft[mo], id);
        if (!st && mo) st = mrec_add(ctx, m->acc, m->acc, m->t1, id);
    }
    if (!st) st = mrec_spmm(ctx, m->t2, &q, m->acc, d, 0);
    if (!st) st = mrec_scale(ctx, m->t2, m->t2, 1 - m->lambda, id);
    for (int mo = 0; mo < m->n_mod && !st; mo++) {
        st = ops_kt(m, m->ft_ptr[mo], m->ft_pos[mo], m->t1, m->dh, m->f_val[mo], d);
        if (!st) st = mrec_scale(ctx, m->t1, m->t1, m->lambda * m->s_soft[mo], id);
        if (!st) st = mrec_add(ctx, m->t2, m->t2, m->t1, id);
    }
    float *ge = m->ego_grad + (size_t)U * d;
    if (!st) st = mrec_add(ctx, ge, ge, m->t2, id);
    if (!st && m->built) st = ops_graph_backward(m);
    return st;
}

static mrec_status lattice_launch(void *self, const double **loss) {
    lattice *m = self;
    mrec_status st = ops_launch(m);
    *loss = st ? NULL : m->bpr.loss;
    return st;
}

static mrec_status ops_loss_grad(lattice *m, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mrec_status st = lattice_stage(m, u, i, j, n);
    return st ? st : ops_launch(m);
}

/* The batch's step; its loss where it was left (the host's own loss on the host path). */
static const double *lattice_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    lattice *m = self;
    m->host_loss = NAN;
    m->status = m->use_ops ? ops_loss_grad(m, u, i, j, n) : batch_loss_grad(m, &m->host_loss, u, i, j, n);
    return m->status ? NULL : m->use_ops ? m->bpr.loss : &m->host_loss;
}

static double lattice_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    lattice *m = self;
    return mrec_step_loss(m->ctx, &m->status, lattice_step(self, u, i, j, n));
}

static mrec_status lattice_epoch_start(void *self) {
    ((lattice *)self)->build = 1;
    return MREC_OK;
}

static mrec_status lattice_prepare(void *self) {
    lattice *m = self;
    mrec_status st = m->use_ops ? ops_build(m) : build_graph(m);
    if (!st) st = m->use_ops ? ops_forward(m) : forward(m);
    if (st) return st;
    int d = m->dim;
    return mrec_add(m->ctx, m->final + (size_t)m->n_users * d, m->final + (size_t)m->n_users * d, m->hn, (int64_t)m->n_items * d);
}

static mrec_status lattice_score(void *self, int u0, int n, float *scores) {
    lattice *m = self;
    return mrec_score_final(m->ctx, scores, m->final, m->n_users, m->n_items, m->dim, u0, n);
}

static mrec_status lattice_embeddings(void *self, float *users, float *items) {
    lattice *m = self;
    return mrec_final_to_host(m->ctx, users, items, m->final, m->n_users, m->n_items, m->dim);
}

static void lattice_destroy(void *self) {
    lattice *m = self;
    mrec_bpr_ops_free(&m->bpr), mrec_batch_rows_free(&m->nodes), mrec_batch_rows_free(&m->items);
    if (m->batch.base) mrec_arena_release(&m->batch, m->ctx->cuda);
    if (m->ops_mem.base) mrec_arena_release(&m->ops_mem, m->ctx->cuda);
    if (m->on_gpu) { /* the arrays below were carved from ops_mem */
        free(m);
        return;
    }
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

/* The op path's memory (a measuring arena counts it); with `shared` (a GPU context) also the arrays the host path
 * keeps in host memory on a CPU context: the parameters, the projections, the learned graphs' columns, F, h. */
static void carve_ops(lattice *m, mrec_arena *a, int shared) {
    size_t d = (size_t)m->dim, I = (size_t)m->n_items, N = (size_t)m->n_nodes, k = (size_t)m->k, fd = (size_t)m->fd, ik = I * k;
    size_t M = (size_t)m->n_mod, wide = d > fd ? d : fd, block = I < BLOCK ? I : BLOCK;
    if (shared) {
        m->ego = mrec_arena_alloc(a, N * d * 4), m->ego_grad = mrec_arena_alloc(a, N * d * 4);
        m->mw = mrec_arena_alloc(a, M * 4), m->mw_grad = mrec_arena_alloc(a, M * 4);
        for (size_t mo = 0; mo < M; mo++) {
            size_t F = (size_t)m->fdim[mo];
            m->x[mo] = mrec_arena_alloc(a, I * F * 4), m->x_grad[mo] = mrec_arena_alloc(a, I * F * 4);
            m->w[mo] = mrec_arena_alloc(a, fd * F * 4), m->w_grad[mo] = mrec_arena_alloc(a, fd * F * 4);
            m->b[mo] = mrec_arena_alloc(a, fd * 4), m->b_grad[mo] = mrec_arena_alloc(a, fd * 4);
            m->c[mo] = mrec_arena_alloc(a, I * fd * 4), m->cn[mo] = mrec_arena_alloc(a, I * fd * 4);
            m->k_idx[mo] = mrec_arena_alloc(a, ik * 4);
        }
        m->q = mrec_arena_alloc(a, I * 4);
        float **big[4] = {&m->final, &m->t1, &m->t2, &m->dfinal};
        for (int t = 0; t < 4; t++) *big[t] = mrec_arena_alloc(a, N * d * 4);
        m->h = mrec_arena_alloc(a, I * d * 4), m->hn = mrec_arena_alloc(a, I * d * 4), m->dh = mrec_arena_alloc(a, I * d * 4);
        m->ui_ops = mrec_graph_carve(a, (int)N, (int)N, m->ui->row_ptr[N], m->ctx->device);
        m->ui_t = mrec_graph_carve(a, (int)N, (int)N, m->ui->row_ptr[N], m->ctx->device);
    }
    for (size_t mo = 0; mo < M; mo++) {
        m->k_val[mo] = mrec_arena_alloc(a, ik * 4);
        m->kt_ptr[mo] = mrec_arena_alloc(a, (I + 1) * 8), m->kt_pos[mo] = mrec_arena_alloc(a, ik * 4);
        m->f_idx[mo] = mrec_arena_alloc(a, ik * 4), m->f_val[mo] = mrec_arena_alloc(a, ik * 4);
        m->ft_ptr[mo] = mrec_arena_alloc(a, (I + 1) * 8), m->ft_pos[mo] = mrec_arena_alloc(a, ik * 4);
    }
    m->kt_work = m->kt_work_bytes ? mrec_arena_alloc(a, m->kt_work_bytes) : NULL;
    m->kptr = mrec_arena_alloc(a, (I + 1) * 8), m->iota_ptr = mrec_arena_alloc(a, (ik + 1) * 8);
    m->pos_col = mrec_arena_alloc(a, ik * 4), m->rowid = mrec_arena_alloc(a, ik * 4), m->ones = mrec_arena_alloc(a, I * 4);
    float **vec[4] = {&m->r, &m->v1, &m->v2, &m->dq};
    for (int t = 0; t < 4; t++) *vec[t] = mrec_arena_alloc(a, I * 4);
    float **ent[4] = {&m->e1, &m->e2, &m->e3, &m->e4};
    for (int t = 0; t < 4; t++) *ent[t] = mrec_arena_alloc(a, ik * 4);
    m->Z = mrec_arena_alloc(a, ik * wide * 4);
    m->y = mrec_arena_alloc(a, I * d * 4), m->acc = mrec_arena_alloc(a, I * d * 4);
    m->dcn = mrec_arena_alloc(a, I * fd * 4), m->dc = mrec_arena_alloc(a, I * fd * 4);
    m->sim = mrec_arena_alloc(a, block * I * 4), m->dots = mrec_arena_alloc(a, 2 * M * 4);
    size_t f_max = 1;
    for (size_t mo = 0; mo < M; mo++) f_max = (size_t)m->fdim[mo] > f_max ? (size_t)m->fdim[mo] : f_max;
    m->xu = mrec_arena_alloc(a, I * f_max * 4);
}

/* The op path's memory, its constant index arrays and the graph (on a GPU: a copy with its transpose). */
static mrec_status ops_setup(lattice *m) {
    mrec_context *ctx = m->ctx;
    int I = m->n_items, k = m->k, N = m->n_nodes;
    int64_t ik = (int64_t)I * k;
    mrec_status st = mrec_index_csr_workspace_bytes(ctx, (int)ik, I, &m->kt_work_bytes);
    if (st) return st;
    mrec_arena measure = mrec_arena_measure();
    carve_ops(m, &measure, m->on_gpu);
    if ((st = mrec_arena_reserve(&m->ops_mem, measure.peak, ctx->device, ctx->cuda))) return st;
    carve_ops(m, &m->ops_mem, m->on_gpu);
    if (!m->on_gpu) m->ui_ops = mrec_graph_csr(m->ui); /* the CPU takes A^T products from A itself */
    int64_t *ptr = malloc(sizeof(int64_t) * (size_t)(ik + 1));
    int32_t *col = malloc(sizeof(int32_t) * (size_t)ik), *row = malloc(sizeof(int32_t) * (size_t)ik);
    float *ones = malloc(sizeof(float) * (size_t)I);
    if (!ptr || !col || !row || !ones) st = mrec_fail(MREC_ERR_NOMEM, "lattice: the op path's indexes of %lld entries", (long long)ik);
    for (int64_t p = 0; !st && p <= ik; p++) ptr[p] = p;
    for (int64_t p = 0; !st && p < ik; p++) col[p] = (int32_t)p, row[p] = (int32_t)(p / k);
    for (int i = 0; !st && i < I; i++) ones[i] = 1.0f;
    if (!st) st = mrec_copy_to_device(ctx, m->iota_ptr, ptr, sizeof(int64_t) * (size_t)(ik + 1));
    for (int i = 0; !st && i <= I; i++) ptr[i] = (int64_t)i * k;
    if (!st) st = mrec_copy_to_device(ctx, m->kptr, ptr, sizeof(int64_t) * ((size_t)I + 1));
    if (!st) st = mrec_copy_to_device(ctx, m->pos_col, col, sizeof(int32_t) * (size_t)ik);
    if (!st) st = mrec_copy_to_device(ctx, m->rowid, row, sizeof(int32_t) * (size_t)ik);
    if (!st) st = mrec_copy_to_device(ctx, m->ones, ones, sizeof(float) * (size_t)I);
    free(ptr), free(col), free(row), free(ones);
    if (!st && m->on_gpu) { /* D^-1 (A + I) is not symmetric: its transpose too, for the backward's products */
        const mrec_graph *g = m->ui;
        int64_t nnz = g->row_ptr[N];
        int64_t *t_ptr = malloc(sizeof *t_ptr * ((size_t)N + 1));
        int32_t *t_col = malloc(sizeof *t_col * (size_t)(nnz + 1)), *t_edge = malloc(sizeof *t_edge * (size_t)(nnz + 1));
        float *t_val = malloc(sizeof *t_val * (size_t)(nnz + 1));
        st = t_ptr && t_col && t_edge && t_val ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "lattice: the transposed graph");
        if (!st) {
            mrec_graph_transpose_edges(t_ptr, t_col, t_edge, t_val, g);
            mrec_csr src = mrec_graph_csr(g), src_t = {.n_rows = N, .n_cols = N, .row_ptr = t_ptr, .col = t_col, .val = t_val};
            st = mrec_graph_upload(ctx, &m->ui_ops, &src);
            if (!st) st = mrec_graph_upload(ctx, &m->ui_t, &src_t);
            m->ui_ops.transposed = &m->ui_t;
        }
            free(t_ptr), free(t_col), free(t_edge), free(t_val);
    }
    return st;
}

/* The frozen graphs from the current (the initial) features: their unit rows' kNN, then a_ij r_i^-1/2 r_j^-1/2. */
static mrec_status ops_frozen(lattice *m) {
    mrec_context *ctx = m->ctx;
    int I = m->n_items;
    int64_t ik = (int64_t)I * m->k;
    mrec_status st = MREC_OK;
    for (int mo = 0; mo < m->n_mod && !st; mo++) {
        int F = m->fdim[mo];
        st = mrec_l2_normalize_rows(ctx, m->xu, m->x[mo], 1e-30f, I, F);
        if (!st) st = ops_knn(m, m->f_idx[mo], m->f_val[mo], m->ft_ptr[mo], m->ft_pos[mo], m->xu, F);
        mrec_csr om = k_rows(m, m->f_idx[mo], m->f_val[mo], NULL);
        if (!st) st = mrec_spmm(ctx, m->r, &om, m->ones, 1, 0);
        if (!st) st = mrec_inv_sqrt(ctx, m->v1, m->r, I);
        if (!st) st = mrec_embedding(ctx, m->e1, m->v1, m->rowid, (int)ik, I, 1);
        if (!st) st = mrec_embedding(ctx, m->e2, m->v1, m->f_idx[mo], (int)ik, I, 1);
        if (!st) st = mrec_mul(ctx, m->e1, m->e1, m->e2, ik);
        if (!st) st = mrec_mul(ctx, m->f_val[mo], m->f_val[mo], m->e1, ik);
    }
    return st;
}

/* The op path's halves, and what its launches read of the host: the modality weights, and whether S was rebuilt. */
static void publish_halves(mrec_model *out, lattice *m) {
    out->stage = lattice_stage, out->launch = lattice_launch;
    out->launch_key = m->s_soft, out->launch_key_bytes = (int)sizeof(float) * m->n_mod, out->launch_syncs = &m->built;
}

mrec_status mrec_lattice_use_ops(mrec_model *model) {
    lattice *m = model->self;
    if (m->use_ops) return MREC_OK;
    mrec_status st = ops_setup(m);
    if (!st) st = ops_frozen(m);
    if (!st) m->use_ops = 1, publish_halves(model, m);
    return st;
}

void mrec_lattice_rebuild_every_batch(mrec_model *model) { ((lattice *)model->self)->build_always = 1; }

/* The model's parameters as the trainer sees them. */
static void publish(mrec_model *out, lattice *m) {
    int I = m->n_items, dim = m->dim;
    out->name = "LATTICE", out->self = m;
    int p = 0;
    out->param[p] = m->ego, out->grad[p] = m->ego_grad, out->size[p++] = (int64_t)m->n_nodes * dim;
    for (int mo = 0; mo < m->n_mod; mo++) {
        out->param[p] = m->x[mo], out->grad[p] = m->x_grad[mo], out->size[p++] = (int64_t)I * m->fdim[mo];
        out->param[p] = m->w[mo], out->grad[p] = m->w_grad[mo], out->size[p++] = (int64_t)dim * m->fdim[mo];
        out->param[p] = m->b[mo], out->grad[p] = m->b_grad[mo], out->size[p++] = dim;
    }
    out->param[p] = m->mw, out->grad[p] = m->mw_grad, out->size[p++] = m->n_mod;
    out->n_params = m->n_params = p;
    memset(m->active, 1, sizeof m->active);
    out->active = m->active;
    out->status = &m->status;
    out->loss_grad = lattice_loss_grad, out->step = lattice_step, out->epoch_start = lattice_epoch_start, out->prepare = lattice_prepare;
    out->score = lattice_score, out->destroy = lattice_destroy;
    out->embed_dim = m->dim, out->embeddings = lattice_embeddings;
    if (m->use_ops) publish_halves(out, m);
}

/* On a GPU: every array carved on the device, the values drawn on the host as on the CPU (the same start for a
 * seed), the frozen graphs computed there. */
static mrec_status create_on_device(mrec_model *out, lattice *m, const mrec_features *feat, mrec_rng *rng) {
    mrec_context *ctx = m->ctx;
    int I = m->n_items, dim = m->dim, M = m->n_mod;
    size_t N = (size_t)m->n_nodes, most = N * dim;
    for (int mo = 0; mo < M; mo++) { /* h holds the largest of the node table, a modality's features and its weight */
        size_t F = (size_t)m->fdim[mo], big = (size_t)I * F > (size_t)dim * F ? (size_t)I * F : (size_t)dim * F;
        most = big > most ? big : most;
    }
    mrec_status st = ops_setup(m);
    float *h = st ? NULL : calloc(most, sizeof(float));
    if (!st && !h) st = mrec_fail(MREC_ERR_NOMEM, "lattice: %zu initial values", most);
    /* zero gradients first (h is zeros) */
    if (!st) st = mrec_copy_to_device(ctx, m->ego_grad, h, N * dim * 4);
    if (!st) st = mrec_copy_to_device(ctx, m->mw_grad, h, (size_t)M * 4);
    for (int mo = 0; mo < M && !st; mo++) {
        size_t F = (size_t)m->fdim[mo];
        st = mrec_copy_to_device(ctx, m->x_grad[mo], h, (size_t)I * F * 4);
        if (!st) st = mrec_copy_to_device(ctx, m->w_grad[mo], h, (size_t)dim * F * 4);
        if (!st) st = mrec_copy_to_device(ctx, m->b_grad[mo], h, (size_t)dim * 4);
    }
    double bu = sqrt(6.0 / (m->n_users + dim)), bi = sqrt(6.0 / (I + dim));
    for (size_t e = 0; h && e < N * dim; e++) h[e] = (float)((e < (size_t)m->n_users * dim ? bu : bi) * (2 * mrec_rng_uniform(rng) - 1));
    if (!st) st = mrec_copy_to_device(ctx, m->ego, h, N * dim * 4);
    for (int mo = 0; mo < M && !st; mo++) {
        double bound = 1.0 / sqrt((double)m->fdim[mo]);
        size_t nw = (size_t)dim * m->fdim[mo];
        for (size_t e = 0; e < nw; e++) h[e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
        st = mrec_copy_to_device(ctx, m->w[mo], h, nw * 4);
        for (int e = 0; e < dim; e++) h[e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
        if (!st) st = mrec_copy_to_device(ctx, m->b[mo], h, (size_t)dim * 4);
        if (!st) st = mrec_copy_to_device(ctx, m->x[mo], feat[mo].x, sizeof(float) * (size_t)I * m->fdim[mo]);
    }
    for (int mo = 0; h && mo < M; mo++) h[mo] = 0.5f;
    if (!st) st = mrec_copy_to_device(ctx, m->mw, h, (size_t)M * 4);
    free(h);
    if (!st) st = ops_frozen(m);
    if (st) {
        lattice_destroy(m);
        return st;
    }
    m->use_ops = 1;
    publish(out, m);
    return MREC_OK;
}

mrec_status mrec_lattice_create(mrec_model *out, const mrec_graph *mean_self_adj, const mrec_features *feat, int n_mod, int n_users,
                                int dim, int k, float lambda, float reg, int batch_size, mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st = MREC_OK;
    int I = n_mod > 0 ? feat[0].n_items : 0;
    if (n_mod < 1 || n_mod > MAX_MOD || mean_self_adj->n_nodes != n_users + I || k < 1 || k > I || k > 64 || batch_size < 1)
        return mrec_fail(MREC_ERR_ARG, "lattice: %d modalities (1..%d), k %d (1..64, at most the items), graph of %d nodes", n_mod,
                         MAX_MOD, k, mean_self_adj->n_nodes);
    lattice *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "lattice");
    m->n_users = n_users, m->n_items = I, m->n_nodes = n_users + I, m->dim = dim, m->fd = dim, m->k = k, m->n_mod = n_mod;
    m->reg = reg, m->lambda = lambda, m->batch_size = batch_size, m->ui = mean_self_adj, m->ctx = ctx, m->build = 1;
    m->on_gpu = ctx->device != MREC_DEVICE_CPU;
    for (int mo = 0; mo < n_mod; mo++) m->fdim[mo] = feat[mo].dim;
    if (m->on_gpu) return create_on_device(out, m, feat, rng);
    m->mw = m->mw_host, m->mw_grad = m->mw_grad_host;
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
        int F = m->fdim[mo];
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
    publish(out, m);
    return MREC_OK;
}
