/* split.c: rating and k-core filters, and per-user splits. */
#include "mrec_recsys.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* one splitmix64 step: each user's shuffle is seeded from (seed, user) alone */
static uint64_t mix(uint64_t z) { return mrec_mix64(z + 0x9E3779B97F4A7C15ull); }

/* ---- filters ---- */

/* Drops the rows where keep[k] == 0 and renumbers ids densely, keeping the
 * relative order of the old ids (numeric order survives). */
static mrec_status compact(mrec_interactions *x, const uint8_t *keep) {
    int32_t *umap = malloc(sizeof *umap * (size_t)(x->n_users + 1)), *imap = malloc(sizeof *imap * (size_t)(x->n_items + 1));
    if (!umap || !imap) {
        free(umap), free(imap);
        return mrec_fail(MREC_ERR_NOMEM, "filter");
    }
    for (int u = 0; u < x->n_users; u++) umap[u] = -1;
    for (int i = 0; i < x->n_items; i++) imap[i] = -1;
    for (int64_t k = 0; k < x->n; k++)
        if (keep[k]) umap[x->user[k]] = 1, imap[x->item[k]] = 1;
    int nu = 0, ni = 0;
    for (int u = 0; u < x->n_users; u++) {
        if (umap[u] >= 0) {
            x->user_names[nu] = x->user_names[u];
            umap[u] = nu++;
        } else {
            free(x->user_names[u]);
        }
    }
    for (int i = 0; i < x->n_items; i++) {
        if (imap[i] >= 0) {
            x->item_names[ni] = x->item_names[i];
            imap[i] = ni++;
        } else {
            free(x->item_names[i]);
        }
    }
    int64_t w = 0;
    for (int64_t k = 0; k < x->n; k++) {
        if (!keep[k]) continue;
        x->user[w] = umap[x->user[k]], x->item[w] = imap[x->item[k]];
        x->rating[w] = x->rating[k], x->timestamp[w] = x->timestamp[k], x->split[w] = x->split[k];
        w++;
    }
    x->n = w, x->n_users = nu, x->n_items = ni;
    free(umap), free(imap);
    return MREC_OK;
}

mrec_status mrec_filter(mrec_interactions *x, float min_rating, int user_k, int item_k, int iterative) {
    uint8_t *keep = malloc((size_t)(x->n ? x->n : 1));
    int64_t *ucount = malloc(sizeof *ucount * (size_t)(x->n_users + 1)), *icount = malloc(sizeof *icount * (size_t)(x->n_items + 1));
    if (!keep || !ucount || !icount) {
        free(keep), free(ucount), free(icount);
        return mrec_fail(MREC_ERR_NOMEM, "filter");
    }
    for (int64_t k = 0; k < x->n; k++) keep[k] = x->rating[k] >= min_rating;
    for (int changed = 1; changed;) {
        changed = 0;
        memset(ucount, 0, sizeof *ucount * (size_t)(x->n_users + 1));
        memset(icount, 0, sizeof *icount * (size_t)(x->n_items + 1));
        for (int64_t k = 0; k < x->n; k++)
            if (keep[k]) ucount[x->user[k]]++, icount[x->item[k]]++;
        for (int64_t k = 0; k < x->n; k++)
            if (keep[k] && ((user_k > 0 && ucount[x->user[k]] < user_k) || (item_k > 0 && icount[x->item[k]] < item_k)))
                keep[k] = 0, changed = 1;
        if (!iterative) break;
    }
    mrec_status st = compact(x, keep);
    free(keep), free(ucount), free(icount);
    if (!st && x->n == 0)
        return mrec_fail(MREC_ERR_ARG, "%s: no interactions left after filtering (rating >= %g, users >= %d, items >= %d)",
                         x->source[0] ? x->source : "the interactions", min_rating, user_k, item_k);
    /* a fixed split can lose all of one part to the filter */
    if (!st && x->has_split) st = mrec_check_split(x, 0);
    return st;
}

mrec_status mrec_drop_items(mrec_interactions *x, const uint8_t *keep_item) {
    uint8_t *keep = malloc((size_t)(x->n ? x->n : 1));
    if (!keep) return mrec_fail(MREC_ERR_NOMEM, "dropping items");
    for (int64_t k = 0; k < x->n; k++) keep[k] = keep_item[x->item[k]];
    mrec_status st = compact(x, keep);
    free(keep);
    if (!st && x->has_split) st = mrec_check_split(x, 0);
    return st;
}

/* ---- splits ---- */

static const int64_t *ts_of;
static int by_time(const void *a, const void *b) {
    int64_t x = ts_of[*(const int64_t *)a], y = ts_of[*(const int64_t *)b];
    if (x != y) return x < y ? -1 : 1;
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    return i < j ? -1 : i > j; /* same time: file order */
}

mrec_status mrec_split_users(mrec_interactions *x, mrec_splitter how, double test_ratio, double valid_ratio, int n_out,
                       uint64_t seed) {
    if (how != MREC_SPLITTER_MMREC && how != MREC_SPLITTER_LEAVE_N &&
        !(test_ratio > 0 && test_ratio < 1 && valid_ratio >= 0 && valid_ratio < 1))
        return mrec_fail(MREC_ERR_ARG, "split: ratios must lie in (0, 1), got test %g, valid %g", test_ratio, valid_ratio);
    if (how == MREC_SPLITTER_LEAVE_N && n_out < 1) return mrec_fail(MREC_ERR_ARG, "split: leave-n-out needs n >= 1");
    if ((how == MREC_SPLITTER_TEMPORAL || how == MREC_SPLITTER_LEAVE_N) && !x->has_timestamp)
        return mrec_fail(MREC_ERR_ARG, "split: a temporal split needs timestamps, and the data has none");
    /* rows grouped by user, in file order */
    int64_t *start = calloc((size_t)x->n_users + 1, sizeof *start), *fill = calloc((size_t)x->n_users + 1, sizeof *fill);
    int64_t *rows = malloc(sizeof *rows * (size_t)(x->n ? x->n : 1));
    if (!start || !fill || !rows) {
        free(start), free(fill), free(rows);
        return mrec_fail(MREC_ERR_NOMEM, "split");
    }
    for (int64_t k = 0; k < x->n; k++) start[x->user[k] + 1]++;
    for (int u = 0; u < x->n_users; u++) start[u + 1] += start[u];
    for (int64_t k = 0; k < x->n; k++) rows[start[x->user[k]] + fill[x->user[k]]++] = k;
    ts_of = x->timestamp;
    for (int u = 0; u < x->n_users; u++) {
        int64_t *r = rows + start[u], n = start[u + 1] - start[u];
        if (how == MREC_SPLITTER_TEMPORAL || how == MREC_SPLITTER_LEAVE_N) {
            qsort(r, (size_t)n, sizeof *r, by_time);
        } else {
            uint64_t state = mix(seed ^ mix((uint64_t)u + 1));
            for (int64_t i = n - 1; i > 0; i--) {
                state = mix(state);
                int64_t j = (int64_t)(state % (uint64_t)(i + 1));
                int64_t t = r[i];
                r[i] = r[j], r[j] = t;
            }
        }
        int64_t train, valid;
        if (how == MREC_SPLITTER_MMREC) {
            if (n < 10) train = n - 2, valid = 1;
            else {
                int64_t held = (int64_t)(n * 0.2);
                train = n - held, valid = held / 2;
            }
            if (train < 0) train = 0, valid = n > 1 ? 1 : 0; /* users with 1 or 2 interactions */
        } else if (how == MREC_SPLITTER_LEAVE_N) {
            int64_t out = n_out * (valid_ratio > 0 ? 2 : 1);
            train = n > out ? n - out : n;
            valid = n > out && valid_ratio > 0 ? n_out : 0;
        } else {
            int64_t keep = (int64_t)floor(n * (1.0 - test_ratio));
            int64_t tr = valid_ratio > 0 ? (int64_t)floor(keep * (1.0 - valid_ratio)) : keep;
            train = tr, valid = keep - tr;
        }
        for (int64_t i = 0; i < n; i++)
            x->split[r[i]] = (int8_t)(i < train ? MREC_SPLIT_TRAIN : i < train + valid ? MREC_SPLIT_VALID : MREC_SPLIT_TEST);
    }
    x->has_split = 1;
    free(start), free(fill), free(rows);
    /* an empty part is an error, not a run that trains on nothing or scores nothing */
    int want_valid = how == MREC_SPLITTER_MMREC || valid_ratio > 0;
    return mrec_check_split(x, want_valid);
}
