/* split_elliot.c: Elliot's splitter and prefilters as Elliot runs them, so
 * that the same data, config and seed give the same train / validation /
 * test rows, and save_on_disk the same bytes (mrec_recsys.h).
 *
 * The reference is elliot/splitter/base_splitter.py and
 * elliot/prefiltering/standard_prefilters.py (sisinflab/elliot): the splitter
 * calls np.random.seed(random_seed) once, then for random_subsampling walks
 * data.groupby('userId') (sorted user ids), builds [0] * train + [1] * test
 * per user and np.random.shuffle()s it, the user's rows in data order taking
 * the flags; the validation splitting does the same on the training rows
 * with the stream where the test splitting left it. numpy's stream is
 * np_random.c. tools/golden/elliot_splits.py restates it with numpy and
 * pandas for the fixtures of tests/test_split.c.
 *
 * Folds: random_subsampling with folds > 1 and random_cross_validation make
 * several (train, test) pairs, each training set several (train, validation)
 * pairs; mrec_split_elliot_fold gives any one of them, drawing the stream as
 * Elliot does up to it.
 *
 * Not done: user_average and cold_users filters, ids that pandas would read as
 * non-integer numbers (sorted here as text).
 */
#include "mrec_recsys.h"
#include "mrec_np_random.h"

#include "../nn/mrec_io.h"
#include "../nn/mrec_numbers.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ids as pandas reads them ---- */

/* An id pandas' read_csv turns into an int64: an optional sign, then digits, within int64. */
static int pandas_int(const char *s, long long *v) {
    const char *p = s + (*s == '+' || *s == '-');
    if (!*p || strspn(p, "0123456789") != strlen(p)) return 0;
    errno = 0;
    long long t = strtoll(s, NULL, 10);
    if (errno == ERANGE) return 0;
    *v = t;
    return 1;
}

static int all_pandas_int(char **names, int n) {
    long long v;
    for (int i = 0; i < n; i++)
        if (!pandas_int(names[i], &v)) return 0;
    return 1;
}

typedef struct {
    const char *name;
    long long key;
    int32_t id;
} user_key;

static int by_number(const void *a, const void *b) {
    const user_key *x = a, *y = b;
    return x->key != y->key ? (x->key < y->key ? -1 : 1) : 0;
}
static int by_text(const void *a, const void *b) { return strcmp(((const user_key *)a)->name, ((const user_key *)b)->name); }

/* rank[u]: user u's place in data.groupby('userId'): by value when every id is an integer, else by
 * code point (UTF-8 bytes sort alike). Two ids of one value ("01", "1") are one user to pandas. */
static mrec_status groupby_rank(const mrec_interactions *x, int32_t *rank) {
    user_key *k = malloc(sizeof *k * (size_t)(x->n_users ? x->n_users : 1));
    if (!k) return mrec_fail(MREC_ERR_NOMEM, "ordering %d users", x->n_users);
    int numeric = all_pandas_int(x->user_names, x->n_users);
    for (int u = 0; u < x->n_users; u++) {
        k[u] = (user_key){x->user_names[u], 0, u};
        if (numeric) pandas_int(x->user_names[u], &k[u].key);
    }
    qsort(k, (size_t)x->n_users, sizeof *k, numeric ? by_number : by_text);
    mrec_status st = MREC_OK;
    for (int r = 0; r < x->n_users; r++) {
        if (r && numeric && k[r].key == k[r - 1].key) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: users '%s' and '%s' are one user to Elliot (pandas reads both as %lld); "
                           "write each id once", x->source[0] ? x->source : "the interactions", k[r - 1].name, k[r].name, k[r].key);
            break;
        }
        rank[k[r].id] = r;
    }
    free(k);
    return st;
}

/* ---- one splitting over a set of rows ---- */

typedef struct {
    mrec_interactions *x;
    const int32_t *rank; /* (n_users) groupby place */
    mrec_mt19937 mt;
    int64_t *start, *grouped; /* (n_users + 1), (n) scratch */
    uint8_t *flags;           /* (n) scratch */
} splitter;

/* rows (m, data order) grouped by user in groupby order, each user's rows in data order. */
static void group_rows(splitter *sp, const int64_t *rows, int64_t m) {
    int nu = sp->x->n_users;
    memset(sp->start, 0, sizeof *sp->start * ((size_t)nu + 1));
    for (int64_t i = 0; i < m; i++) sp->start[sp->rank[sp->x->user[rows[i]]] + 1]++;
    for (int r = 0; r < nu; r++) sp->start[r + 1] += sp->start[r];
    for (int64_t i = 0; i < m; i++) {
        int r = sp->rank[sp->x->user[rows[i]]];
        sp->grouped[sp->start[r]++] = rows[i];
    }
    for (int r = nu; r > 0; r--) sp->start[r] = sp->start[r - 1]; /* the cursors ran to each group's end */
    sp->start[0] = 0;
}

static const int64_t *ts_rows;
static int by_time_up(const void *a, const void *b) {
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    if (ts_rows[i] != ts_rows[j]) return ts_rows[i] < ts_rows[j] ? -1 : 1;
    return i < j ? -1 : i > j;
}
/* latest first; equal times in data order (pandas' rank(method='first', ascending=False)) */
static int by_time_down(const void *a, const void *b) {
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    if (ts_rows[i] != ts_rows[j]) return ts_rows[i] > ts_rows[j] ? -1 : 1;
    return i < j ? -1 : i > j;
}

static int by_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The index of the first of sorted[0 .. n) above v (n when none is). */
static int64_t first_above(const int64_t *sorted, int64_t n, int64_t v) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (sorted[mid] <= v) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* splitting_best_timestamp: the data's timestamp T with the most users having >= min_below rows
 * before T and >= min_over rows at or after it; the latest among ties. A user counts for T in
 * (its min_below-th time, its (n - min_over + 1)-th time], so one sweep over the sorted times does. */
static mrec_status best_timestamp(splitter *sp, const int64_t *rows, int64_t m, const mrec_elliot_part *p, int64_t *cut) {
    mrec_interactions *x = sp->x;
    int64_t *times = malloc(sizeof *times * (size_t)(m ? m : 1)), *delta = calloc((size_t)m + 1, sizeof *delta);
    int64_t *mine = malloc(sizeof *mine * (size_t)(m ? m : 1));
    if (!times || !delta || !mine) {
        free(times), free(delta), free(mine);
        return mrec_fail(MREC_ERR_NOMEM, "fixed_timestamp best over %lld rows", (long long)m);
    }
    for (int64_t i = 0; i < m; i++) times[i] = x->timestamp[rows[i]];
    qsort(times, (size_t)m, sizeof *times, by_i64);
    int64_t n_unique = 0;
    for (int64_t i = 0; i < m; i++)
        if (!n_unique || times[i] != times[n_unique - 1]) times[n_unique++] = times[i];
    group_rows(sp, rows, m);
    for (int r = 0; r < x->n_users; r++) {
        int64_t n = sp->start[r + 1] - sp->start[r];
        if (!n || p->min_below + p->min_over > n) continue; /* no T leaves both sides their rows */
        for (int64_t i = 0; i < n; i++) mine[i] = x->timestamp[sp->grouped[sp->start[r] + i]];
        qsort(mine, (size_t)n, sizeof *mine, by_i64);
        /* unique-time indices: first T > lo (or any T when min_below is 0), last T <= hi (or any when min_over is 0) */
        int64_t a = p->min_below > 0 ? first_above(times, n_unique, mine[p->min_below - 1]) : 0;
        int64_t b = p->min_over > 0 ? first_above(times, n_unique, mine[n - p->min_over]) : n_unique;
        if (a < b) delta[a]++, delta[b]--;
    }
    int64_t best = -1, count = 0;
    for (int64_t i = 0; i < n_unique; i++) {
        count += delta[i];
        if (best < 0 || count >= best) best = count, *cut = times[i];
    }
    free(times), free(delta), free(mine);
    return MREC_OK;
}

int mrec_elliot_part_folds(const mrec_elliot_part *p) {
    return (p->strategy == MREC_ELLIOT_RANDOM || p->strategy == MREC_ELLIOT_KFOLD) && p->folds > 1 ? p->folds : 1;
}

/* held[k] = 1 for the rows k of rows (m, data order) that fold `fold` of part p holds out, 0 for the
 * others of rows. A random part draws anew on each call, so its folds are asked for in order. speak:
 * this call's notices are printed (the fold the run uses). */
static mrec_status part_fold(splitter *sp, const int64_t *rows, int64_t m, const mrec_elliot_part *p, int fold, uint8_t *held,
                             int speak) {
    mrec_interactions *x = sp->x;
    for (int64_t i = 0; i < m; i++) held[rows[i]] = 0;
    if (p->strategy == MREC_ELLIOT_FIXED_TIME) {
        int64_t cut = p->cut;
        mrec_status st = p->best ? best_timestamp(sp, rows, m, p, &cut) : MREC_OK;
        if (st) return st;
        if (p->best && speak) mrec_interactions_notice(x, "fixed_timestamp best: the cut is %lld (test: timestamp >= it)", (long long)cut);
        for (int64_t i = 0; i < m; i++) held[rows[i]] = x->timestamp[rows[i]] >= cut;
        return MREC_OK;
    }
    group_rows(sp, rows, m);
    ts_rows = x->timestamp;
    for (int r = 0; r < x->n_users; r++) {
        int64_t *g = sp->grouped + sp->start[r], n = sp->start[r + 1] - sp->start[r];
        if (!n) continue; /* not in this part's data: no group, no draws */
        if (p->strategy == MREC_ELLIOT_KFOLD) {
            for (int64_t i = 0; i < n; i++) held[g[i]] = i % p->folds == fold;
        } else if (p->strategy == MREC_ELLIOT_RANDOM) {
            int64_t train = p->leave_n ? n - p->leave_n : (int64_t)floor((double)n * (1.0 - p->ratio));
            if (train < 0)
                return mrec_fail(MREC_ERR_ARG, "random_subsampling: user '%s' has %lld interactions, fewer than leave_n_out %d "
                                 "(Elliot stops there: the flags outnumber the rows); filter with user_k_core",
                                 x->user_names[x->user[g[0]]], (long long)n, p->leave_n);
            memset(sp->flags, 0, (size_t)train);
            memset(sp->flags + train, 1, (size_t)(n - train));
            mrec_np_shuffle_u8(&sp->mt, sp->flags, n);
            for (int64_t i = 0; i < n; i++) held[g[i]] = sp->flags[i];
        } else {
            if (p->leave_n) {
                qsort(g, (size_t)n, sizeof *g, by_time_down);
                int64_t out = p->leave_n < n ? p->leave_n : n;
                for (int64_t i = 0; i < out; i++) held[g[i]] = 1;
            } else {
                qsort(g, (size_t)n, sizeof *g, by_time_up);
                int64_t keep = (int64_t)floor((double)n * (1.0 - p->ratio));
                for (int64_t i = keep; i < n; i++) held[g[i]] = 1;
            }
        }
    }
    return MREC_OK;
}

static mrec_status check_part(const mrec_interactions *x, const mrec_elliot_part *p, const char *which) {
    if (p->strategy == MREC_ELLIOT_FIXED_TIME) {
        if (p->best && (p->min_below < 0 || p->min_over < 0))
            return mrec_fail(MREC_ERR_ARG, "%s: fixed_timestamp best needs min_below and min_over >= 0", which);
    } else if (p->strategy == MREC_ELLIOT_RANDOM || p->strategy == MREC_ELLIOT_TEMPORAL) {
        if (p->leave_n < 0 || (p->leave_n && p->ratio != 0) || (!p->leave_n && !(p->ratio > 0 && p->ratio < 1)))
            return mrec_fail(MREC_ERR_ARG, "%s: test_ratio must lie in (0, 1) (got %g), or leave_n_out be >= 1 (got %d), one of the two",
                             which, p->ratio, p->leave_n);
        if (p->folds < 0 || p->folds > MREC_ELLIOT_MAX_FOLDS || (p->strategy == MREC_ELLIOT_TEMPORAL && p->folds > 1))
            return mrec_fail(MREC_ERR_ARG, "%s: folds %d: random_subsampling takes 1 to %d, temporal_hold_out 1", which, p->folds,
                             MREC_ELLIOT_MAX_FOLDS);
    } else if (p->strategy == MREC_ELLIOT_KFOLD) {
        if (p->folds < 2 || p->folds > MREC_ELLIOT_MAX_FOLDS)
            return mrec_fail(MREC_ERR_ARG, "%s: random_cross_validation needs 2 to %d folds (got %d)", which, MREC_ELLIOT_MAX_FOLDS, p->folds);
    } else {
        return mrec_fail(MREC_ERR_ARG, "%s: unknown strategy %d", which, (int)p->strategy);
    }
    if ((p->strategy == MREC_ELLIOT_TEMPORAL || p->strategy == MREC_ELLIOT_FIXED_TIME) && !x->has_timestamp)
        return mrec_fail(MREC_ERR_ARG, "%s: %s needs timestamps, and %s has none", which,
                         p->strategy == MREC_ELLIOT_TEMPORAL ? "temporal_hold_out" : "fixed_timestamp",
                         x->source[0] ? x->source : "the data");
    return MREC_OK;
}

mrec_status mrec_split_elliot_fold(mrec_interactions *x, const mrec_elliot_part *test, const mrec_elliot_part *valid, uint64_t seed,
                                   int test_fold, int valid_fold) {
    mrec_status st = check_part(x, test, "test_splitting");
    if (!st && valid) st = check_part(x, valid, "validation_splitting");
    if (st) return st;
    if (seed > 0xffffffffull)
        return mrec_fail(MREC_ERR_ARG, "random_seed %llu: numpy's np.random.seed takes 0 to 2^32 - 1", (unsigned long long)seed);
    int n_test = mrec_elliot_part_folds(test), n_valid = valid ? mrec_elliot_part_folds(valid) : 1;
    if (test_fold < 0 || test_fold >= n_test || valid_fold < 0 || valid_fold >= n_valid)
        return mrec_fail(MREC_ERR_ARG, "fold %d/%d: the splitting makes %d test and %d validation folds", test_fold, valid_fold, n_test,
                         n_valid);
    int64_t n = x->n;
    size_t rows_n = (size_t)(n ? n : 1);
    splitter sp = {.x = x};
    /* held: the test folds 0 .. test_fold, each (n) 0/1; the folds past test_fold draw into `scratch` */
    int32_t *rank = malloc(sizeof *rank * (size_t)(x->n_users + 1));
    int64_t *rows = malloc(sizeof *rows * rows_n);
    uint8_t *held = malloc(rows_n * (size_t)(test_fold + 1)), *scratch = malloc(rows_n);
    sp.start = malloc(sizeof *sp.start * ((size_t)x->n_users + 1));
    sp.grouped = malloc(sizeof *sp.grouped * rows_n);
    sp.flags = malloc(rows_n);
    if (!rank || !rows || !held || !scratch || !sp.start || !sp.grouped || !sp.flags) {
        st = mrec_fail(MREC_ERR_NOMEM, "splitting %lld interactions", (long long)n);
        goto done;
    }
    if ((st = groupby_rank(x, rank))) goto done;
    sp.rank = rank;
    mrec_mt19937_seed(&sp.mt, (uint32_t)seed);
    for (int64_t k = 0; k < n; k++) rows[k] = k;
    for (int f = 0; f < n_test && !st; f++)
        st = part_fold(&sp, rows, n, test, f, f <= test_fold ? held + (size_t)f * rows_n : scratch, f == test_fold);
    if (st) goto done;
    const uint8_t *mine = held + (size_t)test_fold * rows_n;
    for (int64_t k = 0; k < n; k++) x->split[k] = mine[k] ? MREC_SPLIT_TEST : MREC_SPLIT_TRAIN;
    /* the validation folds of test folds 0 .. test_fold in turn, on each one's training rows */
    for (int t = 0; valid && t <= test_fold && !st; t++) {
        int64_t m = 0;
        for (int64_t k = 0; k < n; k++)
            if (!held[(size_t)t * rows_n + k]) rows[m++] = k;
        for (int v = 0; v < n_valid && !st; v++) {
            int chosen = t == test_fold && v == valid_fold;
            if ((st = part_fold(&sp, rows, m, valid, v, scratch, chosen)) || !chosen) continue;
            for (int64_t i = 0; i < m; i++)
                if (scratch[rows[i]]) x->split[rows[i]] = MREC_SPLIT_VALID;
            break;
        }
    }
    if (st) goto done;
    x->has_split = 1;
    st = mrec_check_split(x, valid != NULL);
done:
    free(rank), free(rows), free(held), free(scratch), free(sp.start), free(sp.grouped), free(sp.flags);
    return st;
}

mrec_status mrec_split_elliot(mrec_interactions *x, const mrec_elliot_part *test, const mrec_elliot_part *valid, uint64_t seed) {
    return mrec_split_elliot_fold(x, test, valid, seed, 0, 0);
}

/* ---- the --split spelling of one part ---- */

mrec_status mrec_elliot_part_parse(const char *s, mrec_elliot_part *out) {
    memset(out, 0, sizeof *out);
    const char *colon = s ? strchr(s, ':') : NULL;
    if (!colon) return mrec_fail(MREC_ERR_ARG, "'%s': a splitting is STRATEGY:VALUE (random:0.2, temporal:n=1, timestamp:best)", s ? s : "");
    size_t len = (size_t)(colon - s);
    const char *v = colon + 1;
    if (len == 5 && !strncmp(s, "kfold", 5)) {
        out->strategy = MREC_ELLIOT_KFOLD;
        long f;
        if (mrec_parse_int(v, 2, MREC_ELLIOT_MAX_FOLDS, &f))
            return mrec_fail(MREC_ERR_ARG, "'%s': random_cross_validation (kfold:N) takes 2 to %d folds", s, MREC_ELLIOT_MAX_FOLDS);
        out->folds = (int)f;
        return MREC_OK;
    }
    if ((len == 6 && !strncmp(s, "random", 6)) || (len == 8 && !strncmp(s, "temporal", 8))) {
        out->strategy = len == 6 ? MREC_ELLIOT_RANDOM : MREC_ELLIOT_TEMPORAL;
        out->folds = 1;
        char value[64];
        const char *folds = strchr(v, ',');
        if (snprintf(value, sizeof value, "%.*s", folds ? (int)(folds - v) : (int)strlen(v), v) >= (int)sizeof value)
            return mrec_fail(MREC_ERR_ARG, "'%.80s': the value is too long", s);
        if (folds) {
            long f;
            if (strncmp(folds, ",folds=", 7) || mrec_parse_int(folds + 7, 1, MREC_ELLIOT_MAX_FOLDS, &f) ||
                out->strategy != MREC_ELLIOT_RANDOM)
                return mrec_fail(MREC_ERR_ARG, "'%s': random:VALUE,folds=N takes 1 to %d folds (temporal splits make one)", s,
                                 MREC_ELLIOT_MAX_FOLDS);
            out->folds = (int)f;
        }
        if (!strncmp(value, "n=", 2)) {
            long n;
            if (mrec_parse_int(value + 2, 1, 1000000, &n))
                return mrec_fail(MREC_ERR_ARG, "'%s': leave_n_out (n=N) must be a whole number from 1 to 1000000", s);
            out->leave_n = (int)n;
        } else {
            double r;
            if (mrec_parse_real(value, 0, 1, MREC_OPEN_LO | MREC_OPEN_HI, &r))
                return mrec_fail(MREC_ERR_ARG, "'%s': test_ratio must be a number in (0, 1) (or n=N for leave_n_out)", s);
            out->ratio = r;
        }
        return MREC_OK;
    }
    if (len == 9 && !strncmp(s, "timestamp", 9)) {
        out->strategy = MREC_ELLIOT_FIXED_TIME;
        if (!strncmp(v, "best", 4) && (!v[4] || v[4] == ':')) { /* best[:MIN_BELOW:MIN_OVER] */
            long below = 1, over = 1;
            out->best = 1;
            int bad = 0;
            if (v[4]) {
                char part[64];
                const char *o = strchr(v + 5, ':');
                bad = !o || snprintf(part, sizeof part, "%.*s", (int)(o - (v + 5)), v + 5) >= (int)sizeof part ||
                      mrec_parse_int(part, 0, 1000000, &below) || mrec_parse_int(o + 1, 0, 1000000, &over);
            }
            if (bad)
                return mrec_fail(MREC_ERR_ARG, "'%s': timestamp:best:MIN_BELOW:MIN_OVER wants two whole numbers >= 0", s);
            out->min_below = (int)below, out->min_over = (int)over;
            return MREC_OK;
        }
        if (*v && strspn(v, "0123456789") == strlen(v)) { /* Elliot's timestamp.isdigit() */
            errno = 0;
            long long t = strtoll(v, NULL, 10);
            if (!errno) {
                out->cut = t;
                return MREC_OK;
            }
        } else if (!mrec_parse_date(v, &out->cut)) {
            return MREC_OK;
        }
        return mrec_fail(MREC_ERR_ARG, "'%s': fixed_timestamp wants whole seconds, a date (2021-01-04[ 10:00:00]) or best", s);
    }
    return mrec_fail(MREC_ERR_ARG, "'%.*s' is not a splitting strategy (random_subsampling as random, temporal_hold_out as temporal, "
                     "fixed_timestamp as timestamp, random_cross_validation as kfold)", (int)len, s);
}

/* ---- what save_on_disk writes ---- */

/* d's shortest decimal digits (at most `max_digits`, enough to read back as float when is_float, else as
 * double) and its decimal point position: d = 0.DIGITS x 10^point. d > 0. */
static void shortest_digits(double d, int is_float, char *digits, int *point) {
    char buf[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, d);
        double back = strtod(buf, NULL);
        if (is_float ? (float)back == (float)d : back == d) break;
    }
    /* buf: D[.DDD]e[+-]XX */
    int n = 0;
    char *e = strchr(buf, 'e');
    for (char *c = buf; c < e; c++)
        if (*c != '.') digits[n++] = *c;
    while (n > 1 && digits[n - 1] == '0') n--;
    digits[n] = 0;
    *point = atoi(e + 1) + 1;
}

/* Python's repr of the double pandas holds for rating r (read from the shortest decimal of the float32):
 * "5.0", "3.5", "0.0001", "1e-05", "1e+16". */
static void python_float(char *out, size_t cap, float r) {
    if (r == 0) {
        snprintf(out, cap, "%s", signbit(r) ? "-0.0" : "0.0");
        return;
    }
    char digits[40];
    int point, n, at;
    shortest_digits(fabs((double)r), 1, digits, &point);
    n = (int)strlen(digits);
    char body[80];
    if (point > -4 && point <= 16) {
        if (point <= 0) {
            at = snprintf(body, sizeof body, "0.");
            for (int i = 0; i < -point; i++) body[at++] = '0';
            at += snprintf(body + at, sizeof body - at, "%s", digits);
        } else if (point >= n) {
            at = snprintf(body, sizeof body, "%s", digits);
            for (int i = n; i < point; i++) body[at++] = '0';
            snprintf(body + at, sizeof body - at, ".0");
        } else {
            snprintf(body, sizeof body, "%.*s.%s", point, digits, digits + point);
        }
    } else {
        int exp = point - 1;
        if (n == 1) snprintf(body, sizeof body, "%ce%c%02d", digits[0], exp < 0 ? '-' : '+', abs(exp));
        else snprintf(body, sizeof body, "%c.%se%c%02d", digits[0], digits + 1, exp < 0 ? '-' : '+', abs(exp));
    }
    snprintf(out, cap, "%s%s", r < 0 ? "-" : "", body);
}

/* days since 1970-01-01 -> civil date (proleptic Gregorian) */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

static void iso_date(char *out, size_t cap, int64_t t, int with_time) {
    int64_t days = floor_div(t, 86400), sec = t - days * 86400, y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (with_time)
        snprintf(out, cap, "%04lld-%02d-%02d %02d:%02d:%02d", (long long)y, m, d, (int)(sec / 3600), (int)(sec / 60 % 60), (int)(sec % 60));
    else
        snprintf(out, cap, "%04lld-%02d-%02d", (long long)y, m, d);
}

static void id_text(char *out, size_t cap, const char *name, int as_int) {
    long long v;
    if (as_int && pandas_int(name, &v)) snprintf(out, cap, "%lld", v);
    else snprintf(out, cap, "%s", name);
}

mrec_status mrec_write_elliot_split(const mrec_interactions *x, mrec_split split, const char *path) {
    int users_int = all_pandas_int(x->user_names, x->n_users), items_int = all_pandas_int(x->item_names, x->n_items);
    int with_time = 0; /* dates carry their time of day only when some row has one */
    for (int64_t k = 0; x->timestamp_dates && k < x->n && !with_time; k++) with_time = floor_div(x->timestamp[k], 86400) * 86400 != x->timestamp[k];
    mrec_atomic_file af;
    mrec_status st = mrec_atomic_begin(&af, path);
    if (st) return st;
    char u[4200], i[4200], r[96], t[64];
    for (int64_t k = 0; k < x->n; k++) {
        if (x->split[k] != (int8_t)split) continue;
        id_text(u, sizeof u, x->user_names[x->user[k]], users_int);
        id_text(i, sizeof i, x->item_names[x->item[k]], items_int);
        if (!x->has_rating) snprintf(r, sizeof r, "1");
        else if (x->rating_decimal) python_float(r, sizeof r, x->rating[k]);
        else snprintf(r, sizeof r, "%lld", (long long)x->rating[k]);
        if (x->has_timestamp && x->timestamp_dates) iso_date(t, sizeof t, x->timestamp[k], with_time);
        else snprintf(t, sizeof t, "%lld", (long long)x->timestamp[k]);
        fprintf(af.f, "%s\t%s\t%s%s%s\n", u, i, r, x->has_timestamp ? "\t" : "", x->has_timestamp ? t : "");
    }
    return mrec_atomic_commit(&af);
}

/* ---- prefilters ---- */

mrec_status mrec_prefilter_apply(mrec_interactions *x, const mrec_prefilter *steps, int n_steps) {
    mrec_status st = MREC_OK;
    for (int s = 0; s < n_steps && !st; s++) {
        const mrec_prefilter *f = &steps[s];
        switch (f->kind) {
        case MREC_PREFILTER_RATING: st = mrec_filter(x, (float)f->threshold, 0, 0, 0); break;
        case MREC_PREFILTER_USER_CORE: st = mrec_filter(x, -INFINITY, f->core, 0, 0); break;
        case MREC_PREFILTER_ITEM_CORE: st = mrec_filter(x, -INFINITY, 0, f->core, 0); break;
        case MREC_PREFILTER_KCORE:
        case MREC_PREFILTER_ROUNDS:
            /* Elliot's order: users, then items on what is left; until no row leaves, or `rounds` times */
            for (int round = 0; !st && (f->kind == MREC_PREFILTER_KCORE || round < f->rounds); round++) {
                int64_t before = x->n;
                st = mrec_filter(x, -INFINITY, f->core, 0, 0);
                if (!st) st = mrec_filter(x, -INFINITY, 0, f->core, 0);
                if (f->kind == MREC_PREFILTER_KCORE && x->n == before) break;
            }
            break;
        default: st = mrec_fail(MREC_ERR_ARG, "prefilter %d: unknown", (int)f->kind);
        }
    }
    return st;
}

mrec_status mrec_prefilter_parse(const char *s, mrec_prefilter *steps, int cap, int *n_steps) {
    static const char *const names[] = {"rating", "user", "item", "kcore", "rounds"};
    *n_steps = 0;
    for (const char *p = s; p && *p;) {
        size_t len = strcspn(p, ",");
        char one[128];
        snprintf(one, sizeof one, "%.*s", (int)(len < 127 ? len : 127), p);
        p += len + (p[len] == ',');
        if (*n_steps == cap) return mrec_fail(MREC_ERR_ARG, "prefilter '%s': at most %d steps", s, cap);
        mrec_prefilter *f = &steps[*n_steps];
        memset(f, 0, sizeof *f);
        char *colon = strchr(one, ':');
        int kind = -1;
        for (int k = 0; k < 5 && colon; k++)
            if ((size_t)(colon - one) == strlen(names[k]) && !strncmp(one, names[k], strlen(names[k]))) kind = k;
        if (kind < 0)
            return mrec_fail(MREC_ERR_ARG, "prefilter step '%s' is not rating:X, user:K, item:K, kcore:K or rounds:K:N", one);
        f->kind = (mrec_prefilter_kind)kind;
        if (kind == MREC_PREFILTER_RATING) {
            if (mrec_parse_double(colon + 1, -INFINITY, INFINITY, &f->threshold))
                return mrec_fail(MREC_ERR_ARG, "prefilter step '%s': the rating threshold is not a number", one);
        } else {
            long core = 0, rounds = 1;
            char k[128];
            snprintf(k, sizeof k, "%s", colon + 1);
            char *r = kind == MREC_PREFILTER_ROUNDS ? strchr(k, ':') : NULL;
            if (r) *r++ = 0; /* K:N, cut at the second colon */
            if ((kind == MREC_PREFILTER_ROUNDS && (!r || mrec_parse_int(r, 1, 1000, &rounds))) || mrec_parse_int(k, 1, 1000000, &core))
                return mrec_fail(MREC_ERR_ARG, "prefilter step '%s': %s", one,
                                 kind == MREC_PREFILTER_ROUNDS ? "rounds:K:N wants a core K >= 1 and N from 1 to 1000 rounds"
                                                               : "the core is a whole number >= 1");
            f->core = (int)core, f->rounds = (int)rounds;
        }
        ++*n_steps;
    }
    return MREC_OK;
}

/* ---- dates ---- */

/* days since 1970-01-01 of a civil date (proleptic Gregorian) */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* n digits at *p as a number, advancing p; -1 when they are not all digits */
static int digits(const char **p, int n) {
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9') return -1;
        v = v * 10 + (**p - '0');
    }
    return v;
}

int mrec_parse_date(const char *s, int64_t *seconds) {
    const char *p = s;
    int y = digits(&p, 4);
    if (y < 0 || *p++ != '-') return -1;
    int m = digits(&p, 2);
    if (m < 1 || m > 12 || *p++ != '-') return -1;
    int d = digits(&p, 2);
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d < 1 || d > mdays[m - 1] || (m == 2 && d == 29 && !leap)) return -1;
    int hh = 0, mm = 0, ss = 0, off = 0;
    if (*p == 'T' || *p == ' ') {
        p++;
        hh = digits(&p, 2);
        if (hh < 0 || hh > 23 || *p++ != ':') return -1;
        mm = digits(&p, 2);
        if (mm < 0 || mm > 59) return -1;
        if (*p == ':') {
            p++;
            ss = digits(&p, 2);
            if (ss < 0 || ss > 59) return -1;
            if (*p == '.') { /* fractions of a second: dropped (whole seconds, as the rest of mrec) */
                p++;
                if (*p < '0' || *p > '9') return -1;
                while (*p >= '0' && *p <= '9') p++;
            }
        }
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh = digits(&p, 2), om = 0;
            if (oh < 0 || oh > 23) return -1;
            if (*p == ':') p++;
            if (*p) om = digits(&p, 2);
            if (om < 0 || om > 59) return -1;
            off = sign * (oh * 3600 + om * 60);
        }
    }
    if (*p) return -1;
    *seconds = days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss - off;
    return 0;
}
