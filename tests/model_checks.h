/* model_checks.h: what every recommender's test needs: the analytic
 * gradients of a model's loss against central finite differences, and the
 * pieces of the PyTorch trajectory fixtures (float lists, training pairs). */
#ifndef MREC_MODEL_CHECKS_H
#define MREC_MODEL_CHECKS_H

#include "harness.h"

#include "../recsys/mrec_recsys.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void check_gradients(mrec_model *m, const char *name) {
    static const int32_t u[6] = {0, 1, 2, 3, 4, 1}, pos[6] = {0, 2, 1, 5, 3, 4}, neg[6] = {3, 5, 4, 0, 1, 1};
    int64_t total = 0;
    for (int p = 0; p < m->n_params; p++) total += m->size[p];
    float *grad = malloc((size_t)total * sizeof *grad);
    m->loss_grad(m->self, u, pos, neg, 6);
    int64_t at = 0;
    for (int p = 0; p < m->n_params; p++) memcpy(grad + at, m->grad[p], (size_t)m->size[p] * 4), at += m->size[p];
    int bad = 0;
    at = 0;
    for (int p = 0; p < m->n_params; p++)
        for (int64_t e = 0; e < m->size[p]; e++, at++) {
            float keep = m->param[p][e], h = 1e-3f;
            m->param[p][e] = keep + h;
            double up = m->loss_grad(m->self, u, pos, neg, 6);
            m->param[p][e] = keep - h;
            double down = m->loss_grad(m->self, u, pos, neg, 6);
            m->param[p][e] = keep;
            double num = (up - down) / (2.0 * ((double)(keep + h) - keep));
            if (fabs(num - grad[at]) > 2e-4 + 1e-2 * fabs(num) && bad++ < 5)
                fprintf(stderr, "  %s param %d[%lld]: analytic %.6g, numeric %.6g\n", name, p, (long long)e, grad[at], num);
        }
    /* The check can fail: a gradient with a wrong sign or factor is caught. */
    t_check(bad == 0 && total > 20, "%s: %d of %lld gradients differ from finite differences", name, bad, (long long)total);
    free(grad);
}

/* A JSON fixture, parsed; NULL (and a failed check naming it) if it cannot be read. */
static inline cJSON *read_fixture_json(const char *path) {
    FILE *f = fopen(path, "rb");
    static char buf[1 << 20];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    cJSON *c = n ? cJSON_ParseWithLength(buf, n) : NULL;
    t_check(c != NULL, "read %s", path);
    return c;
}

static inline void fill_floats(float *dst, const cJSON *arr) {
    int i = 0;
    for (const cJSON *v = arr->child; v; v = v->next) dst[i++] = (float)v->valuedouble;
}

/* A fixture's [[user, item], ...] as training lists. */
static inline void build_train(mrec_user_items *train, const cJSON *pairs, int U, int I) {
    mrec_interactions x = {0};
    x.n = cJSON_GetArraySize(pairs), x.n_users = U, x.n_items = I;
    x.user = malloc(sizeof *x.user * (size_t)x.n), x.item = malloc(sizeof *x.item * (size_t)x.n);
    x.rating = malloc(sizeof *x.rating * (size_t)x.n), x.split = calloc((size_t)x.n, 1);
    int64_t k = 0;
    for (const cJSON *p = pairs->child; p; p = p->next, k++)
        x.user[k] = p->child->valueint, x.item[k] = p->child->next->valueint, x.rating[k] = 1;
    mrec_user_items_build(train, &x, MREC_SPLIT_TRAIN);
    free(x.user), free(x.item), free(x.rating), free(x.split);
}

#endif
