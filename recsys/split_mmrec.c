/* split_mmrec.c: MMRec's per-user split rule, drawn at random from a seed, a
 * check that a split follows the rule, and the guard that keeps a table
 * indexed by row number from being joined to interactions of another id
 * space.
 *
 * The rule (MMRec's preprocessing/1splitting.ipynb): a user with n < 10
 * interactions gets 1 valid and 1 test pair; otherwise vt = int(0.2 n),
 * valid = vt // 2 and test = vt - valid; the rest is train. MMRec shuffles
 * each user's interactions without a seed, so its own split cannot be
 * rebuilt; what can be done is to draw the same rule many times and look at
 * the spread. A draw here depends only on the seed and on the (user, item)
 * names, not on the file's row order, its format or the dense numbering, so
 * Baby's DiffMM file and the train/val/test files made from it give the
 * same draw for the same seed.
 */
#include "mrec_recsys.h"

#include <stdlib.h>
#include <string.h>

void mrec_mmrec_split_sizes(int64_t n, int64_t *valid, int64_t *test) {
    if (n < 10) {
        *valid = 1, *test = 1;
        return;
    }
    /* int(0.2 * n) in double, as the notebook computes it */
    int64_t vt = (int64_t)((double)n * 0.2);
    *valid = vt / 2, *test = vt - vt / 2;
}

/* 64-bit FNV-1a: a user's shuffle is seeded from its name, not its dense id */
static uint64_t name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

typedef struct {
    const char *item; /* the item's name */
    int64_t timestamp, row;
} user_row;

/* item name, then time, then file order (only repeated pairs reach it) */
static int by_item_name(const void *a, const void *b) {
    const user_row *x = a, *y = b;
    int c = strcmp(x->item, y->item);
    if (c) return c;
    if (x->timestamp != y->timestamp) return x->timestamp < y->timestamp ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* Rows grouped by user: rows[start[u] .. start[u + 1]) are user u's. */
static mrec_status group_by_user(const mrec_interactions *x, int64_t **start_out, int64_t **rows_out) {
    int64_t *start = calloc((size_t)x->n_users + 2, sizeof *start), *rows = malloc(sizeof *rows * (size_t)(x->n ? x->n : 1));
    if (!start || !rows) {
        free(start), free(rows);
        return mrec_fail(MREC_ERR_NOMEM, "grouping %lld interactions by user", (long long)x->n);
    }
    for (int64_t k = 0; k < x->n; k++) start[x->user[k] + 2]++;
    for (int u = 0; u < x->n_users; u++) start[u + 2] += start[u + 1];
    for (int64_t k = 0; k < x->n; k++) rows[start[x->user[k] + 1]++] = k;
    *start_out = start, *rows_out = rows;
    return MREC_OK;
}

mrec_status mrec_split_mmrec_draw(mrec_interactions *x, uint64_t seed) {
    int64_t *start = NULL, *rows = NULL;
    mrec_status st = group_by_user(x, &start, &rows);
    if (st) return st;
    int64_t longest = 0;
    for (int u = 0; u < x->n_users; u++)
        if (start[u + 1] - start[u] > longest) longest = start[u + 1] - start[u];
    user_row *r = malloc(sizeof *r * (size_t)(longest ? longest : 1));
    if (!r) {
        free(start), free(rows);
        return mrec_fail(MREC_ERR_NOMEM, "MMRec's splitting rule: %lld rows of one user", (long long)longest);
    }
    for (int u = 0; u < x->n_users && !st; u++) {
        int64_t n = start[u + 1] - start[u];
        if (n == 0) continue; /* a user left without interactions by a filter */
        if (n < 2) {
            st = mrec_fail(MREC_ERR_ARG, "MMRec's splitting rule: user '%s' has 1 interaction; the rule gives every user 1 valid and "
                           "1 test pair, so it needs at least 2 (filter with --kcore)", x->user_names[u]);
            break;
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t k = rows[start[u] + i];
            r[i] = (user_row){x->item_names[x->item[k]], x->timestamp[k], k};
        }
        /* a canonical order first, so the shuffle does not depend on how the file was sorted */
        qsort(r, (size_t)n, sizeof *r, by_item_name);
        uint64_t state = mrec_mix64(seed ^ mrec_mix64(name_hash(x->user_names[u])));
        for (int64_t i = n - 1; i > 0; i--) {
            state = mrec_mix64(state + 0x9E3779B97F4A7C15ull);
            int64_t j = (int64_t)(state % (uint64_t)(i + 1));
            user_row t = r[i];
            r[i] = r[j], r[j] = t;
        }
        int64_t valid, test;
        mrec_mmrec_split_sizes(n, &valid, &test);
        int64_t train = n - valid - test;
        for (int64_t i = 0; i < n; i++)
            x->split[r[i].row] = (int8_t)(i < train ? MREC_SPLIT_TRAIN : i < train + valid ? MREC_SPLIT_VALID : MREC_SPLIT_TEST);
    }
    if (!st) x->has_split = 1;
    free(r), free(start), free(rows);
    return st ? st : mrec_check_split(x, 1);
}

mrec_status mrec_split_mmrec_check(const mrec_interactions *x, const char *source) {
    if (!x->has_split) return mrec_fail(MREC_ERR_FORMAT, "%s: no train/valid/test split to check", source);
    int64_t *count = calloc((size_t)x->n_users * 3 + 1, sizeof *count);
    if (!count) return mrec_fail(MREC_ERR_NOMEM, "%s: counting the split of %d users", source, x->n_users);
    for (int64_t k = 0; k < x->n; k++) count[(size_t)x->user[k] * 3 + (size_t)x->split[k]]++;
    mrec_status st = MREC_OK;
    for (int u = 0; u < x->n_users && !st; u++) {
        const int64_t *c = count + (size_t)u * 3;
        int64_t n = c[0] + c[1] + c[2], valid, test;
        if (n == 0) continue;
        mrec_mmrec_split_sizes(n, &valid, &test);
        if (c[1] != valid || c[2] != test)
            st = mrec_fail(MREC_ERR_FORMAT,
                           "%s: user '%s' has %lld interactions split %lld / %lld / %lld (train / valid / test); "
                           "MMRec's rule gives %lld valid and %lld test",
                           source, x->user_names[u], (long long)n, (long long)c[0], (long long)c[1], (long long)c[2],
                           (long long)valid, (long long)test);
    }
    free(count);
    return st;
}
