/* test_baby.c: Amazon Baby as the data allows it to be compared.
 *
 * - MMRec's splitting rule (per user: n < 10 -> 1 valid, 1 test; else
 *   vt = int(0.2 n), valid vt // 2, test the rest), drawn from a seed: every
 *   user of the shipped Baby data follows it, the same seed gives the same
 *   draw (whatever the file's row order or format), another seed another draw.
 * - DiffMM's split as shipped (x_label 1 = DiffMM's tstMat) follows the rule,
 *   which is how its labels were mapped.
 * - The guard that refuses to join a row-numbered table to another id space.
 * - `mrec demo` names the data "MMRec's Baby interactions, DiffMM's split"
 *   and labels each published column by what it shares with the run. The
 *   demo is run on a tiny Baby-shaped folder (--data), so the labels are
 *   checked in seconds; tests/check_demo.sh checks them on the real run.
 */
#include "../recsys/mrec_recsys.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmp[256];

static const char *tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", tmp, name);
    return buf;
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    int ok = f && fputs(text, f) >= 0;
    if (f) ok &= fclose(f) == 0;
    return ok;
}

static void rule_sizes(void) {
    /* n, valid, test: int(0.2 n) held out from 10 on, the larger half to test */
    static const int64_t cases[][3] = {{2, 1, 1},  {5, 1, 1},  {9, 1, 1},  {10, 1, 1}, {14, 1, 1},
                                       {15, 1, 2}, {19, 1, 2}, {20, 2, 2}, {25, 2, 3}, {34, 3, 3},
                                       {35, 3, 4}, {50, 5, 5}, {54, 5, 5}, {55, 5, 6}, {1000, 100, 100}};
    int ok = 1;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t v, t;
        mrec_mmrec_split_sizes(cases[c][0], &v, &t);
        if (v != cases[c][1] || t != cases[c][2]) {
            ok = 0;
            fprintf(stderr, "n %lld: valid %lld test %lld, want %lld %lld\n", (long long)cases[c][0], (long long)v,
                    (long long)t, (long long)cases[c][1], (long long)cases[c][2]);
        }
    }
    t_check(ok, "MMRec's per-user sizes");
}

/* Fraction of rows whose label differs. */
static double differ(const int8_t *a, const int8_t *b, int64_t n) {
    int64_t d = 0;
    for (int64_t k = 0; k < n; k++) d += a[k] != b[k];
    return n ? (double)d / (double)n : 0;
}

/* Per-label counts. */
static void count_labels(const mrec_interactions *x, int64_t c[3]) {
    c[0] = c[1] = c[2] = 0;
    for (int64_t k = 0; k < x->n; k++) c[x->split[k]]++;
}

static int load_baby(mrec_interactions *x) {
    return mrec_load_tsv_splits(x, "data/baby/train.tsv", "data/baby/val.tsv", "data/baby/test.tsv") == MREC_OK;
}

/* (user, item) key of row k, for matching two loads with the same numbering */
typedef struct {
    int64_t key;
    int8_t split;
} keyed;

static int by_key(const void *a, const void *b) {
    int64_t x = ((const keyed *)a)->key, y = ((const keyed *)b)->key;
    return x < y ? -1 : x > y;
}

static keyed *keyed_rows(const mrec_interactions *x) {
    keyed *r = malloc(sizeof *r * (size_t)(x->n ? x->n : 1));
    if (!r) return NULL;
    for (int64_t k = 0; k < x->n; k++) r[k] = (keyed){(int64_t)x->user[k] * x->n_items + x->item[k], x->split[k]};
    qsort(r, (size_t)x->n, sizeof *r, by_key);
    return r;
}

/* Same users and items under the same dense ids, and the same label for every pair. */
static int same_draw(const mrec_interactions *a, const mrec_interactions *b, const char *what) {
    if (a->n != b->n || a->n_users != b->n_users || a->n_items != b->n_items) {
        fprintf(stderr, "%s: %lld / %lld rows, %d / %d users, %d / %d items\n", what, (long long)a->n, (long long)b->n,
                a->n_users, b->n_users, a->n_items, b->n_items);
        return 0;
    }
    for (int u = 0; u < a->n_users; u++)
        if (strcmp(a->user_names[u], b->user_names[u])) return fprintf(stderr, "%s: user %d named differently\n", what, u), 0;
    for (int i = 0; i < a->n_items; i++)
        if (strcmp(a->item_names[i], b->item_names[i])) return fprintf(stderr, "%s: item %d named differently\n", what, i), 0;
    keyed *ra = keyed_rows(a), *rb = keyed_rows(b);
    int ok = ra && rb;
    for (int64_t k = 0; ok && k < a->n; k++)
        if (ra[k].key != rb[k].key || ra[k].split != rb[k].split) {
            fprintf(stderr, "%s: pair %lld differs (key %lld/%lld, label %d/%d)\n", what, (long long)k, (long long)ra[k].key,
                    (long long)rb[k].key, ra[k].split, rb[k].split);
            ok = 0;
        }
    free(ra), free(rb);
    return ok;
}

static void draws_on_shipped_baby(void) {
    mrec_interactions x, y;
    if (!t_check(load_baby(&x), "load data/baby: %s", mrec_error_detail())) return;
    t_check(x.n == 160792 && x.n_users == 19445 && x.n_items == 7050, "data/baby: %lld pairs, %d users, %d items",
            (long long)x.n, x.n_users, x.n_items);
    /* DiffMM's split as shipped: val.tsv (its tstMat) has MMRec's valid sizes, test.tsv its test sizes */
    t_status(mrec_split_mmrec_check(&x, "data/baby"), MREC_OK, "DiffMM's split follows MMRec's per-user sizes");
    int8_t *diffmm = malloc((size_t)x.n), *first = malloc((size_t)x.n);
    if (!t_check(diffmm && first, "memory")) goto done;
    memcpy(diffmm, x.split, (size_t)x.n);
    int64_t want[3], got[3];
    count_labels(&x, want);

    if (!t_status(mrec_split_mmrec_draw(&x, 1), MREC_OK, "draw seed 1")) goto done;
    t_status(mrec_split_mmrec_check(&x, "draw 1"), MREC_OK, "draw 1: every one of the 19,445 users follows the rule");
    count_labels(&x, got);
    t_check(got[0] == want[0] && got[1] == want[1] && got[2] == want[2], "draw 1: %lld / %lld / %lld pairs, as DiffMM's",
            (long long)got[0], (long long)got[1], (long long)got[2]);
    memcpy(first, x.split, (size_t)x.n);
    /* a draw of its own, not a copy of DiffMM's: about 60% of labels agree by chance (PROVENANCE) */
    double d = differ(first, diffmm, x.n);
    t_check(d > 0.25 && d < 0.55, "draw 1 differs from DiffMM's split on %.1f%% of pairs", 100 * d);

    /* the same seed on a fresh load: the same draw */
    if (t_check(load_baby(&y), "reload data/baby")) {
        t_status(mrec_split_mmrec_draw(&y, 1), MREC_OK, "draw seed 1 again");
        t_check(y.n == x.n && memcmp(y.split, first, (size_t)x.n) == 0, "seed 1 twice: the same draw");
        mrec_interactions_free(&y);
    }
    /* another seed: another draw with the same sizes */
    t_status(mrec_split_mmrec_draw(&x, 2), MREC_OK, "draw seed 2");
    t_status(mrec_split_mmrec_check(&x, "draw 2"), MREC_OK, "draw 2 follows the rule");
    d = differ(first, x.split, x.n);
    t_check(d > 0.25 && d < 0.55, "seeds 1 and 2 label %.1f%% of pairs differently", 100 * d);

    /* DiffMM's own file, another format and row order: the same draw for the same seed */
    char path[512];
    if (t_data(path, sizeof path, "amazon-baby-mmrec/baby_split.tsv")) {
        if (t_status(mrec_load_inter(&y, path), MREC_OK, "load %s", path)) {
            int64_t c[3];
            count_labels(&y, c);
            t_check(c[0] == want[0] && c[1] == want[1] && c[2] == want[2], "baby_split.tsv holds data/baby's labels");
            mrec_split_mmrec_draw(&x, 1);
            mrec_split_mmrec_draw(&y, 1);
            t_check(same_draw(&x, &y, "data/baby vs baby_split.tsv"), "seed 1 from baby_split.tsv: the draw of data/baby");
            mrec_interactions_free(&y);
        }
    } else {
        t_skip("amazon-baby-mmrec/baby_split.tsv not found: the draw across formats is checked on the small file only");
    }
    /* MMRec's item map has the count and the ids of data/baby, yet another numbering (MMRec's
     * item 0 is item 693 here): the guard passes, which is why PROVENANCE has to say it */
    if (t_data(path, sizeof path, "amazon-baby-mmrec/original_mmrec_idmaps/i_id_mapping.csv"))
        t_status(mrec_idmap_check(path, 1, 1, &x, 1), MREC_OK, "MMRec's item map fits data/baby's id space by count and ids");
done:
    free(diffmm), free(first);
    mrec_interactions_free(&x);
}

/* The same interactions in two row orders and formats give the same draw; bad input is named. */
static void draw_order_and_errors(void) {
    char a[8192], b[8192], path_a[512], path_b[512];
    int at = 0, bt = 0;
    bt += snprintf(b + bt, sizeof b - (size_t)bt, "userID\titemID\tx_label\n");
    /* users u0..u5 with 5..30 interactions; file b lists them backwards */
    static const int sizes[6] = {5, 9, 10, 15, 23, 30};
    for (int u = 0; u < 6; u++)
        for (int i = 0; i < sizes[u]; i++) at += snprintf(a + at, sizeof a - (size_t)at, "u%d\tit%d\t1\n", u, (i * 7 + u) % 40);
    for (int u = 5; u >= 0; u--)
        for (int i = sizes[u] - 1; i >= 0; i--)
            bt += snprintf(b + bt, sizeof b - (size_t)bt, "u%d\tit%d\t0\n", u, (i * 7 + u) % 40);
    tmp_path(path_a, sizeof path_a, "a.tsv");
    tmp_path(path_b, sizeof path_b, "b.inter");
    if (!t_check(write_file(path_a, a) && write_file(path_b, b), "write small files")) return;
    mrec_interactions x, y;
    if (!t_status(mrec_load_tsv(&x, path_a), MREC_OK, "load a.tsv")) return;
    mrec_load_options lo = mrec_load_defaults();
    lo.resplit = 1; /* every row is train until the draw */
    if (!t_status(mrec_load_inter_opt(&y, path_b, &lo), MREC_OK, "load b.inter")) {
        mrec_interactions_free(&x);
        return;
    }
    /* the dense numbering differs (first appearance), so match pairs by name */
    int ok = 1, differs = 0;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        ok &= mrec_split_mmrec_draw(&x, seed) == MREC_OK && mrec_split_mmrec_draw(&y, seed) == MREC_OK;
        ok &= mrec_split_mmrec_check(&x, "a.tsv") == MREC_OK;
        for (int64_t k = 0; k < x.n; k++) {
            int64_t m = -1;
            for (int64_t j = 0; j < y.n && m < 0; j++)
                if (!strcmp(x.user_names[x.user[k]], y.user_names[y.user[j]]) && !strcmp(x.item_names[x.item[k]], y.item_names[y.item[j]]))
                    m = j;
            ok &= m >= 0 && x.split[k] == y.split[m];
        }
        if (seed == 1) memcpy(a, x.split, (size_t)x.n);
        else differs |= memcmp(a, x.split, (size_t)x.n) != 0;
    }
    t_check(ok, "a draw depends on the seed and the names, not on row order or format");
    t_check(differs, "seeds 1, 2, 3 do not all give the same draw");

    /* a broken split is named: move one valid pair of u3 to train */
    for (int64_t k = 0; k < x.n; k++)
        if (!strcmp(x.user_names[x.user[k]], "u3") && x.split[k] == MREC_SPLIT_VALID) {
            x.split[k] = MREC_SPLIT_TRAIN;
            break;
        }
    mrec_status st = mrec_split_mmrec_check(&x, "a.tsv");
    t_check(st == MREC_ERR_FORMAT && strstr(mrec_error_detail(), "a.tsv") && strstr(mrec_error_detail(), "'u3'") &&
                strstr(mrec_error_detail(), "15 interactions"),
            "a split off the rule names the file and user: %s", mrec_error_detail());
    mrec_interactions_free(&x), mrec_interactions_free(&y);

    /* one interaction cannot give 1 valid and 1 test */
    tmp_path(path_a, sizeof path_a, "one.tsv");
    if (!t_check(write_file(path_a, "u0\ti0\t1\nu0\ti1\t1\nu0\ti2\t1\nlonely\ti0\t1\n"), "write one.tsv")) return;
    if (!t_status(mrec_load_tsv(&x, path_a), MREC_OK, "load one.tsv")) return;
    st = mrec_split_mmrec_draw(&x, 1);
    t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "'lonely'"), "a user with 1 interaction is named: %s",
            mrec_error_detail());
    mrec_interactions_free(&x);
}

/* A bare matrix joins by row number only when its rows are exactly the interactions' ids. */
static void id_space_guard(void) {
    char path[512];
    tmp_path(path, sizeof path, "ids.tsv");
    if (!t_check(write_file(path, "0\t0\t1\n0\t1\t1\n1\t2\t1\n1\t3\t1\n2\t4\t1\n"), "write ids.tsv")) return;
    mrec_interactions x;
    if (!t_status(mrec_load_tsv(&x, path), MREC_OK, "load ids.tsv")) return;
    t_status(mrec_idspace_check_rows("feat.npy", 5, &x, 1), MREC_OK, "5 rows for items 0..4");
    t_status(mrec_idspace_check_rows("users.npy", 3, &x, 0), MREC_OK, "3 rows for users 0..2");
    mrec_status st = mrec_idspace_check_rows("feat.npy", 7050, &x, 1);
    t_check(st == MREC_ERR_SHAPE && strstr(mrec_error_detail(), "feat.npy") && strstr(mrec_error_detail(), "7050 rows") &&
                strstr(mrec_error_detail(), "5 items"),
            "another count is refused, with both counts: %s", mrec_error_detail());
    st = mrec_idspace_check_rows("feat.npy", 4, &x, 1);
    t_check(st == MREC_ERR_SHAPE, "fewer rows than items is refused");

    /* id maps as MMRec writes them: a header, then original id <TAB> the interactions' id */
    char map[512];
    tmp_path(map, sizeof map, "i_id_mapping.csv");
    static const struct {
        const char *text, *want; /* want: NULL for a map that fits, else a piece of the message */
        mrec_status st;
    } maps[] = {
        {"asin\titemID\nB00A\t3\nB00B\t0\nB00C\t4\nB00D\t1\nB00E\t2\n", NULL, MREC_OK},
        {"asin\titemID\nB00A\t3\nB00B\t0\nB00C\t4\nB00D\t1\n", "4 item ids for the 5 items", MREC_ERR_SHAPE},
        {"asin\titemID\nB00A\t3\nB00B\t0\nB00C\t4\nB00D\t1\nB00E\t2\nB00F\t5\n", "6 item ids for the 5 items", MREC_ERR_SHAPE},
        {"asin\titemID\nB00A\t3\nB00B\t0\nB00C\t9\nB00D\t1\nB00E\t2\n", "item '4' of the interactions has no mapping", MREC_ERR_FORMAT},
        {"asin\titemID\nB00A\t3\nB00B\t0\nB00C\t3\nB00D\t1\nB00E\t2\n", "'3' is mapped twice (lines 2 and 4)", MREC_ERR_FORMAT},
        {"asin\titemID\nB00A\t3\nB00B 0\n", "line 3 has no column 2", MREC_ERR_FORMAT},
    };
    for (size_t m = 0; m < sizeof maps / sizeof maps[0]; m++) {
        if (!t_check(write_file(map, maps[m].text), "write map %zu", m)) break;
        st = mrec_idmap_check(map, 1, 1, &x, 1);
        t_check(st == maps[m].st && (!maps[m].want || (strstr(mrec_error_detail(), maps[m].want) && strstr(mrec_error_detail(), map))),
                "id map %zu: status %d, want %d with \"%s\": %s", m, st, maps[m].st, maps[m].want ? maps[m].want : "",
                st ? mrec_error_detail() : "ok");
    }
    mrec_interactions_free(&x);

    /* same count, but ids that are not row numbers: no mapping, so no join */
    tmp_path(path, sizeof path, "names.tsv");
    if (!t_check(write_file(path, "0\tB000A\t1\n0\t1\t1\n1\t2\t1\n"), "write names.tsv")) return;
    if (!t_status(mrec_load_tsv(&x, path), MREC_OK, "load names.tsv")) return;
    st = mrec_idspace_check_rows("feat.npy", 3, &x, 1);
    t_check(st == MREC_ERR_FORMAT && strstr(mrec_error_detail(), "'B000A'"), "an id without a row is named: %s",
            mrec_error_detail());
    mrec_interactions_free(&x);
    /* ids past the end: 3 items named 0, 1, 5 */
    if (!t_check(write_file(path, "0\t0\t1\n0\t1\t1\n1\t5\t1\n"), "rewrite names.tsv")) return;
    if (!t_status(mrec_load_tsv(&x, path), MREC_OK, "reload names.tsv")) return;
    st = mrec_idspace_check_rows("feat.npy", 3, &x, 1);
    t_check(st == MREC_ERR_FORMAT && strstr(mrec_error_detail(), "'5'"), "an id past the last row is named: %s",
            mrec_error_detail());
    mrec_interactions_free(&x);
}

/* `mrec demo` on a tiny Baby-shaped folder: what it calls the data and the published columns. */
static void demo_labels(void) {
    const char *bin = getenv("MREC_BIN");
    if (!bin) bin = "bin/mrec";
    if (access(bin, X_OK) != 0) {
        t_skip("demo labels: %s not built", bin);
        return;
    }
    char dir[512], path[600], cmd[4096];
    tmp_path(dir, sizeof dir, "demo_data/baby");
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (!t_check(system(cmd) == 0, "mkdir %s", dir)) return;
    /* 40 users, 30 items: 4 train, 1 valid, 1 test pairs each */
    static char tr[8192], va[2048], te[2048];
    int a = 0, b = 0, c = 0;
    for (int u = 0; u < 40; u++) {
        for (int j = 0; j < 6; j++) {
            int i = (u * 7 + j * 5) % 30;
            if (j < 4) a += snprintf(tr + a, sizeof tr - (size_t)a, "%d\t%d\t1\n", u, i);
            else if (j == 4) b += snprintf(va + b, sizeof va - (size_t)b, "%d\t%d\t1\n", u, i);
            else c += snprintf(te + c, sizeof te - (size_t)c, "%d\t%d\t1\n", u, i);
        }
    }
    int ok = 1;
    snprintf(path, sizeof path, "%s/train.tsv", dir), ok &= write_file(path, tr);
    snprintf(path, sizeof path, "%s/val.tsv", dir), ok &= write_file(path, va);
    snprintf(path, sizeof path, "%s/test.tsv", dir), ok &= write_file(path, te);
    if (!t_check(ok, "write the tiny Baby folder")) return;
    /* --weights at an empty place: part 2 (H&M, MiniLM) is skipped */
    snprintf(cmd, sizeof cmd, "%s demo --data %s/demo_data --weights %s/no_weights --out %s/demo_out --threads 1 2>&1", bin, tmp,
             tmp, tmp);
    FILE *p = popen(cmd, "r");
    static char out[1 << 16];
    size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[n] = 0;
    int st = p ? pclose(p) : -1;
    if (!t_check(st == 0, "mrec demo on a tiny folder: status %d\n%s", st, out)) return;
    t_check(strstr(out, "mrec demo, part 1: Amazon Baby") && strstr(out, "MMRec's Baby interactions, DiffMM's split"),
            "the demo's header says \"MMRec's Baby interactions, DiffMM's split\"");
    t_check(strstr(out, "DiffMM re-split MMRec's interactions at random") != NULL, "with a one-line reason");
    t_check(strstr(out, "MMRec, published (same data, other split)") != NULL, "MMRec's column: same data, other split");
    t_check(strstr(out, "DiffMM Table 1 (same split") != NULL, "DiffMM's column: same split");
    t_check(strstr(out, "BPRMF") && strstr(out, ".0575 / .0249") && strstr(out, ".0440 / .0200"),
            "BPRMF beside MMRec's and DiffMM's published values");
    t_check(strstr(out, "baby-draws-demo") != NULL, "points to the reproduce mode with the spread over draws");
    t_check(strstr(out, "MMRec's split") == NULL, "never calls the data \"MMRec's split\"");

    /* mrec train --split mmrec --seed-split S, as bench/reproduce.sh baby-draws calls it: the saved
     * split is the same for the same seed and another for another seed */
    static char saved[3][8192];
    static const int seeds[3] = {4, 4, 5};
    for (int r = 0; r < 3; r++) {
        snprintf(cmd, sizeof cmd,
                 "%s train --data %s/train.tsv,%s/val.tsv,%s/test.tsv --format tsv --split mmrec --seed-split %d --model mostpop --k 10 --select recall@10 "
                 "--out %s/train_out%d --save-splits %s/splits%d > /dev/null 2>&1",
                 bin, dir, dir, dir, seeds[r], tmp, r, tmp, r);
        if (!t_check(system(cmd) == 0, "mrec train --split mmrec --seed-split %d", seeds[r])) return;
        snprintf(path, sizeof path, "%s/splits%d/test.tsv", tmp, r);
        FILE *f = fopen(path, "r");
        size_t got = f ? fread(saved[r], 1, sizeof saved[r] - 1, f) : 0;
        saved[r][got] = 0;
        if (f) fclose(f);
        t_check(got > 0, "%s written", path);
    }
    t_check(strcmp(saved[0], saved[1]) == 0, "mrec train: seed 4 twice, the same test pairs");
    t_check(strcmp(saved[0], saved[2]) != 0, "mrec train: seeds 4 and 5, other test pairs");
}

int main(void) {
    t_suite("baby");
    snprintf(tmp, sizeof tmp, "/tmp/mrec_test_baby_%d", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmp);
    T_REQUIRE(system(cmd) == 0);
    rule_sizes();
    draw_order_and_errors();
    id_space_guard();
    draws_on_shipped_baby();
    demo_labels();
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return t_finish();
}
