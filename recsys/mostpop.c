/* mostpop.c: the popularity baseline: an item's score is how many training
 * pairs it has, the same for every user. */
#include "mrec_recsys.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int n_users, n_items;
    float *count;
} mostpop;

static mrec_status mostpop_score(void *self, int u0, int n, float *scores) {
    (void)u0;
    mostpop *p = self;
    for (int b = 0; b < n; b++) memcpy(scores + (size_t)b * p->n_items, p->count, (size_t)p->n_items * sizeof *scores);
    return MREC_OK;
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
    free(p->count);
    free(p);
}

mrec_status mrec_mostpop_create(mrec_model *m, const mrec_user_items *train) {
    memset(m, 0, sizeof *m);
    mostpop *p = calloc(1, sizeof *p);
    float *count = p ? calloc((size_t)train->n_cols + 1, sizeof *count) : NULL;
    if (!count) {
        free(p);
        return mrec_fail(MREC_ERR_NOMEM, "mostpop");
    }
    for (int64_t e = 0; e < train->row_ptr[train->n_rows]; e++) count[train->col[e]] += 1;
    p->n_users = train->n_rows, p->n_items = train->n_cols, p->count = count;
    m->name = "MostPop", m->self = p, m->score = mostpop_score, m->destroy = mostpop_destroy;
    m->embed_dim = 1, m->embeddings = mostpop_embeddings;
    return MREC_OK;
}

void mrec_model_destroy(mrec_model *m) {
    if (m->destroy) m->destroy(m->self);
    memset(m, 0, sizeof *m);
}
