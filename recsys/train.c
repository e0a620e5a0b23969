/* train.c: what every BPR-trained model shares: the seeded generator, the
 * negative sampler, the BPR loss and Adam. */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t mrec_rng_next(mrec_rng *r) { return mrec_mix64(r->state += 0x9E3779B97F4A7C15ull); }

double mrec_rng_uniform(mrec_rng *r) { return (mrec_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

double mrec_rng_normal(mrec_rng *r) {
    double u1 = mrec_rng_uniform(r), u2 = mrec_rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}

uint32_t mrec_rng_below(mrec_rng *r, uint32_t n) {
    /* Lemire's multiply-shift with rejection: no modulo bias. */
    uint64_t m = (uint64_t)(uint32_t)mrec_rng_next(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t t = -n % n;
        while (low < t) {
            m = (uint64_t)(uint32_t)mrec_rng_next(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

/* ---- sampler ---- */

mrec_status mrec_bpr_sampler_init(mrec_bpr_sampler *s, const mrec_user_items *train) {
    memset(s, 0, sizeof *s);
    s->train = train;
    s->n = train->row_ptr[train->n_rows];
    size_t n = (size_t)(s->n ? s->n : 1);
    s->user = malloc(n * sizeof *s->user), s->pos = malloc(n * sizeof *s->pos), s->neg = malloc(n * sizeof *s->neg);
    uint8_t *seen = calloc((size_t)train->n_cols + 1, 1);
    s->train_items = malloc(sizeof *s->train_items * ((size_t)train->n_cols + 1));
    if (!s->user || !s->pos || !s->neg || !seen || !s->train_items) {
        free(seen), mrec_bpr_sampler_free(s);
        return mrec_fail(MREC_ERR_NOMEM, "sampler for %lld pairs", (long long)s->n);
    }
    for (int64_t e = 0; e < s->n; e++) seen[train->col[e]] = 1;
    for (int i = 0; i < train->n_cols; i++)
        if (seen[i]) s->train_items[s->n_train_items++] = i;
    free(seen);
    s->users = malloc(sizeof *s->users * ((size_t)train->n_rows + 1));
    if (!s->users) {
        mrec_bpr_sampler_free(s);
        return mrec_fail(MREC_ERR_NOMEM, "sampler for %d users", train->n_rows);
    }
    for (int u = 0; u < train->n_rows; u++)
        if (train->row_ptr[u + 1] > train->row_ptr[u]) s->users[s->n_users++] = u;
    /* A user who has every training item cannot get a negative. */
    for (int u = 0; u < train->n_rows; u++)
        if (train->row_ptr[u + 1] - train->row_ptr[u] >= s->n_train_items && train->row_ptr[u + 1] > train->row_ptr[u]) {
            mrec_bpr_sampler_free(s);
            return mrec_fail(MREC_ERR_ARG, "user %d interacted with every item: no negative to sample", u);
        }
    int64_t k = 0;
    for (int u = 0; u < train->n_rows; u++)
        for (int64_t e = train->row_ptr[u]; e < train->row_ptr[u + 1]; e++) s->user[k] = u, s->pos[k] = train->col[e], k++;
    return MREC_OK;
}

int mrec_user_has_item(const mrec_user_items *m, int u, int32_t item) {
    int64_t lo = m->row_ptr[u], hi = m->row_ptr[u + 1];
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (m->col[mid] < item) lo = mid + 1;
        else hi = mid;
    }
    return lo < m->row_ptr[u + 1] && m->col[lo] == item;
}

void mrec_bpr_sampler_epoch(mrec_bpr_sampler *s, mrec_rng *rng) {
    /* Fisher-Yates over the pairs, then one negative each. */
    for (int64_t i = s->n - 1; i > 0; i--) {
        int64_t j = (int64_t)(mrec_rng_uniform(rng) * (double)(i + 1));
        int32_t tu = s->user[i], tp = s->pos[i];
        s->user[i] = s->user[j], s->pos[i] = s->pos[j];
        s->user[j] = tu, s->pos[j] = tp;
    }
    for (int64_t k = 0; k < s->n; k++) {
        int32_t j;
        do j = s->train_items[mrec_rng_below(rng, (uint32_t)s->n_train_items)];
        while (mrec_user_has_item(s->train, s->user[k], j));
        s->neg[k] = j;
    }
}

void mrec_bpr_sampler_epoch_users(mrec_bpr_sampler *s, mrec_rng *rng, int batch_size) {
    int left = 0; /* users not yet drawn in this round: users[0 .. left) */
    for (int64_t k = 0; k < s->n; k++) {
        if (k % batch_size == 0 || left == 0) left = s->n_users; /* a new batch, or everyone drawn */
        int pick = (int)mrec_rng_below(rng, (uint32_t)left), u = s->users[pick];
        s->users[pick] = s->users[left - 1], s->users[left - 1] = u, left--;
        int64_t lo = s->train->row_ptr[u], cnt = s->train->row_ptr[u + 1] - lo;
        s->user[k] = u, s->pos[k] = s->train->col[lo + (int64_t)mrec_rng_below(rng, (uint32_t)cnt)];
        int32_t j;
        do j = s->train_items[mrec_rng_below(rng, (uint32_t)s->n_train_items)];
        while (mrec_user_has_item(s->train, u, j));
        s->neg[k] = j;
    }
}

void mrec_bpr_sampler_free(mrec_bpr_sampler *s) {
    free(s->user), free(s->pos), free(s->neg), free(s->train_items), free(s->users);
    memset(s, 0, sizeof *s);
}

double mrec_step_loss(mrec_context *ctx, mrec_status *status, const double *at) {
    double l = NAN;
    if (!at) return NAN;
    mrec_status st = mrec_copy_to_host(ctx, &l, at, sizeof l);
    if (st) *status = st;
    return st ? NAN : l;
}

mrec_status mrec_score_final(mrec_context *ctx, float *scores, const float *final, int n_users, int n_items, int d, int u0, int n) {
    return mrec_gemm(ctx, scores, final + (size_t)u0 * d, final + (size_t)n_users * d, NULL, 1, 0, 0, 1, n, n_items, d, d, d,
                     n_items);
}

mrec_status mrec_final_to_host(mrec_context *ctx, float *users, float *items, const float *final, int n_users, int n_items,
                               int d) {
    mrec_status st = mrec_copy_to_host(ctx, users, final, sizeof(float) * (size_t)n_users * d);
    return st ? st : mrec_copy_to_host(ctx, items, final + (size_t)n_users * d, sizeof(float) * (size_t)n_items * d);
}

/* ---- Adam ---- */

mrec_status mrec_adam_init(mrec_optimizer *a, float lr, float weight_decay) {
    memset(a, 0, sizeof *a);
    a->lr = lr, a->beta1 = 0.9f, a->beta2 = 0.999f, a->eps = 1e-8f, a->weight_decay = weight_decay;
    return MREC_OK;
}

mrec_status mrec_adam_init_on(mrec_optimizer *a, float lr, float weight_decay, mrec_context *ctx) {
    mrec_adam_init(a, lr, weight_decay);
    if (ctx->device != MREC_DEVICE_CPU) a->ctx = ctx;
    return MREC_OK;
}

static mrec_device moments_device(const mrec_optimizer *a) { return a->ctx ? a->ctx->device : MREC_DEVICE_CPU; }

mrec_status mrec_adam_add(mrec_optimizer *a, float *param, float *grad, int64_t n) {
    if (a->n_params == MREC_MAX_PARAMS) return mrec_fail(MREC_ERR_ARG, "adam: at most %d parameter tensors", MREC_MAX_PARAMS);
    int p = a->n_params;
    if (a->ctx) { /* m and v side by side on the device, zeroed there */
        size_t bytes = 2 * sizeof(float) * (size_t)n;
        mrec_status st = mrec_arena_reserve(&a->moments[p], bytes, a->ctx->device, a->ctx->cuda);
        if (!st) st = mrec_fill(a->ctx, (float *)a->moments[p].base, 0.0f, 2 * n);
        if (st) {
            mrec_arena_release(&a->moments[p], a->ctx->cuda);
            return st;
        }
        a->m[p] = (float *)a->moments[p].base, a->v[p] = a->m[p] + n;
    } else {
        a->m[p] = calloc((size_t)n, sizeof(float));
        a->v[p] = calloc((size_t)n, sizeof(float));
        if (!a->m[p] || !a->v[p]) {
            free(a->m[p]), free(a->v[p]);
            return mrec_fail(MREC_ERR_NOMEM, "adam: moments for %lld values", (long long)n);
        }
    }
    a->param[p] = param, a->grad[p] = grad, a->size[p] = n;
    a->n_params++;
    return MREC_OK;
}

mrec_status mrec_adam_step_active(mrec_optimizer *a, const uint8_t *active, mrec_context *ctx) {
    if (moments_device(a) != ctx->device)
        return mrec_fail(MREC_ERR_DEVICE, "adam: the moments are in %s memory, the context runs on %s (mrec_adam_init_on)",
                         mrec_device_name(moments_device(a)), mrec_device_name(ctx->device));
    mrec_status st = MREC_OK;
    a->step++;
    for (int p = 0; p < a->n_params && !st; p++)
        if (!active || active[p])
            st = mrec_adam(ctx, a->param[p], a->m[p], a->v[p], a->grad[p], a->lr, a->beta1, a->beta2, a->eps,
                           a->weight_decay, ++a->steps[p], a->size[p]);
    return st;
}

mrec_status mrec_adam_step(mrec_optimizer *a, mrec_context *ctx) { return mrec_adam_step_active(a, NULL, ctx); }

mrec_status mrec_adam_stage(mrec_optimizer *a, const uint8_t *active, mrec_context *ctx) {
    if (moments_device(a) != ctx->device)
        return mrec_fail(MREC_ERR_DEVICE, "adam: the moments are in %s memory, the context runs on %s (mrec_adam_init_on)",
                         mrec_device_name(moments_device(a)), mrec_device_name(ctx->device));
    if (a->ctx && !a->factors_mem.base) {
        mrec_status st = mrec_arena_reserve(&a->factors_mem, sizeof a->factors_host, a->ctx->device, a->ctx->cuda);
        if (st) return st;
    }
    a->step++;
    for (int p = 0; p < a->n_params; p++)
        if (!active || active[p]) mrec_adam_factors(a->factors_host + 2 * p, a->lr, a->beta1, a->beta2, ++a->steps[p]);
    if (!a->ctx || !a->n_params) return MREC_OK;
    return mrec_copy_to_device_staged(ctx, a->factors_mem.base, a->factors_host, sizeof(float) * 2 * (size_t)a->n_params);
}

mrec_status mrec_adam_launch(mrec_optimizer *a, const uint8_t *active, mrec_context *ctx) {
    const float *k = a->ctx ? (const float *)a->factors_mem.base : a->factors_host; /* host memory: the host's own */
    if (!k) return mrec_fail(MREC_ERR_ARG, "adam: a step launched before one was staged (mrec_adam_stage)");
    mrec_status st = MREC_OK;
    for (int p = 0; p < a->n_params && !st; p++)
        if (!active || active[p])
            st = mrec_adam_at(ctx, a->param[p], a->m[p], a->v[p], a->grad[p], k + 2 * p, a->beta1, a->beta2, a->eps,
                              a->weight_decay, a->size[p]);
    return st;
}

void mrec_adam_free(mrec_optimizer *a) {
    for (int p = 0; p < a->n_params; p++)
        if (a->ctx) mrec_arena_release(&a->moments[p], a->ctx->cuda);
        else free(a->m[p]), free(a->v[p]);
    if (a->ctx) mrec_arena_release(&a->factors_mem, a->ctx->cuda);
    memset(a, 0, sizeof *a);
}
