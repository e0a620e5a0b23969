/* mostpop.c: the popularity baseline: an item's score is how many training
 * pairs it has, the same for every user.
 *
 * The counts are made on the host; scoring copies them into every row of the
 * block through the context's ops, so on a GPU they are uploaded once and the
 * scores never leave the device. */
#include "mrec_recsys.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int n_users, n_items;
    float *count;            /* (n_items) host: what embeddings hands out */
    const float *dev_count;  /* count where the context's ops read it (mem on a GPU) */
    mrec_context *ctx;
    mrec_arena mem;
} mostpop;

/* scores (n, n_items) on the context's device: the first row is the counts, then the rows made so far are copied
 * after themselves, doubling, so a block takes log2(n) + 1 copies */
static mrec_status mostpop_score(void *self, int u0, int n, float *scores) {
    mostpop *p = self;
    int I = p->n_items;
    if (u0 < 0 || n < 0 || u0 + n > p->n_users) return mrec_fail(MREC_ERR_ARG, "mostpop: users %d to %d of %d", u0, u0 + n, p->n_users);
    if (n == 0) return MREC_OK;
    mrec_status st = mrec_copy_rows(p->ctx, scores, I, p->dev_count, I, 1, I);
    for (int done = 1; done < n && !st; done *= 2) {
        int rows = done < n - done ? done : n - done;
        st = mrec_copy_rows(p->ctx, scores + (size_t)done * I, I, scores, I, rows, I);
    }
    return st;
}

/* score(u, i) = 1 * count[i]: one-float vectors */
static mrec_status mostpop_embeddings(void *self, float *users, float *items) {
    mostpop *p = self;
    for (int u = 0; u < p->n_users; u++) users[u] = 1.0f;
    memcpy(items, p->count, sizeof *items * (size_t)p->n_items);
    return MREC_OK;
}

static void mostpop_destroy(void *self) {
    mostpop *p = self;
    if (p->mem.base) mrec_arena_release(&p->mem, p->ctx->cuda);
    free(p->count);
    free(p);
}

mrec_status mrec_mostpop_create(mrec_model *m, const mrec_user_items *train, mrec_context *ctx) {
    memset(m, 0, sizeof *m);
    mostpop *p = calloc(1, sizeof *p);
    float *count = p ? calloc((size_t)train->n_cols + 1, sizeof *count) : NULL;
    if (!count) {
        free(p);
        return mrec_fail(MREC_ERR_NOMEM, "mostpop");
    }
    for (int64_t e = 0; e < train->row_ptr[train->n_rows]; e++) count[train->col[e]] += 1;
    p->n_users = train->n_rows, p->n_items = train->n_cols, p->count = count, p->dev_count = count, p->ctx = ctx;
    if (ctx->device != MREC_DEVICE_CPU) {
        size_t bytes = sizeof *count * ((size_t)p->n_items + 1);
        mrec_status st = mrec_arena_reserve(&p->mem, bytes, ctx->device, ctx->cuda);
        float *dev = st ? NULL : mrec_arena_alloc(&p->mem, bytes);
        if (!st) st = mrec_copy_to_device(ctx, dev, count, bytes);
        if (st) {
            mostpop_destroy(p);
            return st;
        }
        p->dev_count = dev;
    }
    m->name = "MostPop", m->self = p, m->score = mostpop_score, m->destroy = mostpop_destroy;
    m->embed_dim = 1, m->embeddings = mostpop_embeddings;
    return MREC_OK;
}

void mrec_model_destroy(mrec_model *m) {
    if (m->destroy) m->destroy(m->self);
    memset(m, 0, sizeof *m);
}
