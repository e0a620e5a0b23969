/* test_bad_recsys.c: hostile interaction tables and what they must get.
 *
 * Every case is a small file written to a fresh temporary folder, loaded
 * through the public loaders, and checked for the exact status and for the
 * words of the message that let a user find the problem: the file's name,
 * the line, the column, the value. Then the steps after loading: a repeated
 * pair must never sit in train and test after a split, an empty part of a
 * split is an error, a NaN loss stops training naming the model and epoch.
 */
#include "harness.h"

#include "../recsys/mrec_recsys.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/mrec_test_bad_recsys_XXXXXX";

/* Notices land here, so the cases can check what loading said it dropped. */
static char notices[8192];
static void keep_notice(void *ctx, const char *line) {
    (void)ctx;
    size_t at = strlen(notices);
    snprintf(notices + at, sizeof notices - at, "%s\n", line);
}

static mrec_load_options options(void) {
    mrec_load_options o = mrec_load_defaults();
    o.notice = keep_notice;
    return o;
}

static const char *path_of(const char *name) {
    static char path[8][512];
    static int slot;
    slot = (slot + 1) % 8;
    snprintf(path[slot], sizeof path[slot], "%s/%s", tmpdir, name);
    return path[slot];
}

/* Writes len bytes (NULs included); returns the path. */
static const char *write_bytes(const char *name, const char *data, size_t len) {
    const char *p = path_of(name);
    FILE *f = fopen(p, "wb");
    if (!f) return p;
    fwrite(data, 1, len, f);
    fclose(f);
    return p;
}

static const char *write_text(const char *name, const char *text) { return write_bytes(name, text, strlen(text)); }

/* A folder NAME with train.txt and test.txt (NULL: that file is left out). */
static const char *adj_dir(const char *name, const char *train, const char *test) {
    const char *dir = path_of(name);
    mkdir(dir, 0700);
    char p[600];
    if (train) {
        snprintf(p, sizeof p, "%s/train.txt", dir);
        FILE *f = fopen(p, "w");
        if (f) fputs(train, f), fclose(f);
    }
    if (test) {
        snprintf(p, sizeof p, "%s/test.txt", dir);
        FILE *f = fopen(p, "w");
        if (f) fputs(test, f), fclose(f);
    }
    return dir;
}

/* The status and every mention in the detail (NULL ends the list). */
static int expect(const char *what, mrec_status got, mrec_status want, const char *const *mentions) {
    const char *detail = mrec_error_detail();
    int ok = got == want;
    for (int i = 0; ok && mentions[i]; i++) ok = strstr(detail, mentions[i]) != NULL;
    if (getenv("MREC_TEST_VERBOSE")) /* every message, for reading them side by side */ fprintf(stderr, "  %-45s %s\n", what, detail);
    return t_check(ok, "%s: got %s (%s), want %s mentioning every word expected", what, mrec_strerror(got), detail,
                   mrec_strerror(want));
}

#define M(...) ((const char *const[]){__VA_ARGS__, NULL})

typedef enum { TSV, INTER, ADJ } format;

static mrec_status load(format f, const char *path, const mrec_load_options *o, mrec_interactions *x) {
    return f == TSV ? mrec_load_tsv_opt(x, path, o) : f == INTER ? mrec_load_inter_opt(x, path, o) : mrec_load_lightgcn_opt(x, path, o);
}

/* One table case: the file, how it is read, and the error it must get. */
typedef struct {
    const char *name;
    format fmt;
    const char *data;
    size_t len; /* 0: strlen(data) */
    mrec_status want;
    const char *m1, *m2, *m3; /* words the message must hold (besides the file's name) */
} table_case;

static const table_case cases[] = {
    /* numbers: the whole field, finite, in range */
    {"partial.tsv", TSV, "u1\ti1\t4\nu1\ti2\t12abc\n", 0, MREC_ERR_FORMAT, "line 2", "column 3", "'12abc' is not a number"},
    {"nan_rating.tsv", TSV, "u1\ti1\tnan\n", 0, MREC_ERR_FORMAT, "line 1", "column 3", "not finite"},
    {"inf_rating.tsv", TSV, "u1\ti1\t5\nu2\ti1\tinf\n", 0, MREC_ERR_FORMAT, "line 2", "'inf'", "not finite"},
    {"neg_infinity.tsv", TSV, "u1\ti1\t-Infinity\n", 0, MREC_ERR_FORMAT, "line 1", "'-Infinity'", "not finite"},
    {"overflow_rating.tsv", TSV, "u1\ti1\t1e999\n", 0, MREC_ERR_FORMAT, "line 1", "'1e999'", "out of range"},
    {"float_overflow.tsv", TSV, "u1\ti1\t1e39\n", 0, MREC_ERR_FORMAT, "line 1", "'1e39'", "out of range"},
    {"hex_rating.tsv", TSV, "u1\ti1\t0x10\n", 0, MREC_ERR_FORMAT, "line 1", "column 3", "'0x10' is not a number"},
    {"space_rating.tsv", TSV, "u1\ti1\t 5\n", 0, MREC_ERR_FORMAT, "line 1", "column 3", "' 5' is not a number"},
    {"empty_rating.tsv", TSV, "u1\ti1\t\n", 0, MREC_ERR_FORMAT, "line 1", "column 3", "'' is not a number"},
    {"neg_time.tsv", TSV, "u1\ti1\t5\t100\nu1\ti2\t5\t-5\n", 0, MREC_ERR_FORMAT, "line 2", "column 4", "negative"},
    {"frac_time.tsv", TSV, "u1\ti1\t5\t12.5\n", 0, MREC_ERR_FORMAT, "line 1", "'12.5'", "not whole"},
    {"nan_time.tsv", TSV, "u1\ti1\t5\tNaN\n", 0, MREC_ERR_FORMAT, "line 1", "column 4", "not finite"},
    {"huge_time.tsv", TSV, "u1\ti1\t5\t99999999999999999999\n", 0, MREC_ERR_FORMAT, "line 1", "column 4", "out of range"},
    {"exp_time.tsv", TSV, "u1\ti1\t5\t1e30\n", 0, MREC_ERR_FORMAT, "line 1", "'1e30'", "out of range"},
    {"suffix_time.tsv", TSV, "u1\ti1\t5\t17x\n", 0, MREC_ERR_FORMAT, "line 1", "column 4", "'17x' is not a number"},
    {"header.tsv", TSV, "user\titem\trating\nu1\ti1\t5\n", 0, MREC_ERR_FORMAT, "line 1", "'rating'", "a header? this format has none"},
    /* columns */
    {"one_column.tsv", TSV, "u1\n", 0, MREC_ERR_FORMAT, "line 1", "1 column (no tab)", "expected 2 to 4"},
    {"five_columns.tsv", TSV, "u1\ti1\t5\t100\tx\n", 0, MREC_ERR_FORMAT, "line 1", "5 columns", "expected 2 to 4"},
    {"ragged.tsv", TSV, "u1\ti1\nu2\ti2\t5\n", 0, MREC_ERR_FORMAT, "line 2", "3 columns", "the rows before have 2"},
    {"many_columns.tsv", TSV,
     "a\tb\tc\td\te\tf\tg\th\ti\tj\tk\tl\tm\tn\to\tp\tq\tr\ts\tt\tu\tv\tw\tx\ty\tz\ta\tb\tc\td\te\tf\tg\th\ti\tj\tk\tl\tm\tn\to"
     "\tp\tq\tr\ts\tt\tu\tv\tw\tx\ty\tz\ta\tb\tc\td\te\tf\tg\th\ti\tj\tk\tl\tm\tn\n",
     0, MREC_ERR_FORMAT, "line 1", "more than 64 columns", "expected 2 to 4"},
    {"empty_user.tsv", TSV, "u1\ti1\n\ti2\n", 0, MREC_ERR_FORMAT, "line 2", "column 1", "empty user id"},
    {"empty_item.tsv", TSV, "u1\t\n", 0, MREC_ERR_FORMAT, "line 1", "column 2", "empty item id"},
    /* bytes and lines */
    {"empty.tsv", TSV, "", 0, MREC_ERR_FORMAT, "empty file", "no interactions", NULL},
    {"blank_lines.tsv", TSV, "\n\r\n\n", 0, MREC_ERR_FORMAT, "only blank lines", NULL, NULL},
    {"nul.tsv", TSV, "u1\ti1\nu2\ti\0x\n", sizeof "u1\ti1\nu2\ti\0x\n" - 1, MREC_ERR_FORMAT, "line 2", "byte 5", "NUL"},
    {"cr_inside.tsv", TSV, "u1\ti1\nu\r2\ti1\n", 0, MREC_ERR_FORMAT, "line 2", "byte 2", "control character 0x0d"},
    {"mac_ends.tsv", TSV, "u1\ti1\ru2\ti2\r", 0, MREC_ERR_FORMAT, "line 1", "byte 6", "control character 0x0d"},
    {"ctrl.tsv", TSV, "u1\ti\x01\n", 0, MREC_ERR_FORMAT, "line 1", "byte 5", "control character 0x01"},
    {"del.tsv", TSV, "u1\ti1\t5\x7f\n", 0, MREC_ERR_FORMAT, "line 1", "byte 8", "control character 0x7f"},
    /* MMRec .inter */
    {"no_user.inter", INTER, "uid\titemID\n1\t2\n", 0, MREC_ERR_FORMAT, "line 1", "no user column", NULL},
    {"header_only.inter", INTER, "userID\titemID\tx_label\n", 0, MREC_ERR_FORMAT, "a header (line 1)", "no interactions", NULL},
    {"empty.inter", INTER, "", 0, MREC_ERR_FORMAT, "empty file", "expected a header", NULL},
    {"short_row.inter", INTER, "userID\titemID\tx_label\n1\t2\t0\n1\t3\n", 0, MREC_ERR_FORMAT, "line 3", "2 columns",
     "the header (line 1) has 3"},
    {"long_row.inter", INTER, "userID\titemID\tx_label\n1\t2\t0\tzz\n", 0, MREC_ERR_FORMAT, "line 2", "4 columns", "has 3"},
    {"label3.inter", INTER, "userID\titemID\tx_label\n1\t2\t0\n1\t3\t3\n", 0, MREC_ERR_FORMAT, "line 3", "x_label '3'",
     "not 0 (train), 1 (valid) or 2 (test)"},
    {"label_float.inter", INTER, "userID\titemID\tx_label\n1\t2\t1.0\n", 0, MREC_ERR_FORMAT, "line 2", "column 3", "x_label '1.0'"},
    {"label_neg.inter", INTER, "userID\titemID\tx_label\n1\t2\t-1\n", 0, MREC_ERR_FORMAT, "line 2", "x_label '-1'", NULL},
    {"split_word.inter", INTER, "userID\titemID\tsplit\n1\t2\ttrain\n", 0, MREC_ERR_FORMAT, "line 2", "split 'train'", NULL},
    {"no_train.inter", INTER, "userID\titemID\tx_label\n1\t2\t2\n1\t3\t1\n", 0, MREC_ERR_FORMAT, "no training pairs", NULL, NULL},
    {"no_test.inter", INTER, "userID\titemID\tx_label\n1\t2\t0\n1\t3\t1\n", 0, MREC_ERR_FORMAT, "no test pairs", NULL, NULL},
    {"nan.inter", INTER, "user_id:token\titem_id:token\trating:float\n1\t2\tNaN\n", 0, MREC_ERR_FORMAT, "line 2", "column 3",
     "not finite"},
    {"neg_time.inter", INTER, "userID\titemID\ttimestamp\n1\t2\t-1\n", 0, MREC_ERR_FORMAT, "line 2", "column 3", "negative"},
    {"empty_item.inter", INTER, "itemID\tuserID\n\t7\n", 0, MREC_ERR_FORMAT, "line 2", "column 1", "empty item id"},
    /* LightGCN adjacency lists (the file is the training file; test.txt sits beside it) */
    {"adj_nul/train.txt", ADJ, "0 1 2\n1 2\0 3\n", sizeof "0 1 2\n1 2\0 3\n" - 1, MREC_ERR_FORMAT, "line 2", "byte 4", "NUL"},
};

static void test_tables(void) {
    mkdir(path_of("adj_nul"), 0700);
    write_text("adj_nul/test.txt", "0 3\n");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const table_case *k = &cases[c];
        const char *p = write_bytes(k->name, k->data, k->len ? k->len : strlen(k->data));
        mrec_load_options o = options();
        mrec_interactions x;
        mrec_status st = load(k->fmt, p, &o, &x);
        const char *base = strrchr(k->name, '/') ? strrchr(k->name, '/') + 1 : k->name;
        expect(k->name, st, k->want, M(base, k->m1 ? k->m1 : "", k->m2 ? k->m2 : "", k->m3 ? k->m3 : ""));
        if (st == MREC_OK) mrec_interactions_free(&x);
    }
}

/* Lines past the cap, ids past theirs, too many columns in a header. */
static void test_sizes(void) {
    mrec_interactions x;
    mrec_load_options o = options();
    o.max_line = 1024;
    char *big = malloc(6000);
    if (!big) return;
    memset(big, 'a', 5000);
    memcpy(big + 5000, "\ti1\n", 5);
    const char *p = write_text("long_line.tsv", big);
    expect("a line past max_line", mrec_load_tsv_opt(&x, p, &o), MREC_ERR_FORMAT, M("long_line.tsv", "line 1", "longer than 1024 bytes"));
    o.max_line = 0; /* the default cap, 16 MiB: the line fits, the id does not */
    expect("an id past 4096 bytes", mrec_load_tsv_opt(&x, p, &o), MREC_ERR_FORMAT,
           M("long_line.tsv", "line 1", "column 1", "user id of 5000 bytes", "at most 4096"));
    free(big);
    char header[1024] = "userID\titemID";
    for (int i = 0; i < 70; i++) strcat(header, "\tc");
    strcat(header, "\n");
    p = write_text("wide.inter", header);
    expect("a header of 72 columns", mrec_load_inter_opt(&x, p, &o), MREC_ERR_FORMAT, M("wide.inter", "line 1", "more than 64 columns"));
}

/* Whatever is not a regular file is refused at once, never read or waited on. */
static void test_not_files(void) {
    mrec_interactions x;
    mrec_load_options o = options();
    alarm(20); /* a loader that blocks on the FIFO fails the program instead of hanging it */
    const char *fifo = path_of("pipe.tsv");
    if (mkfifo(fifo, 0600) == 0)
        expect("a FIFO", mrec_load_tsv_opt(&x, fifo, &o), MREC_ERR_IO, M("pipe.tsv", "is a FIFO", "not a regular file"));
    else t_skip("mkfifo failed");
    expect("a folder", mrec_load_inter_opt(&x, tmpdir, &o), MREC_ERR_IO, M(tmpdir, "is a folder"));
    if (access("/dev/zero", R_OK) == 0)
        expect("/dev/zero", mrec_load_tsv_opt(&x, "/dev/zero", &o), MREC_ERR_IO, M("/dev/zero", "is a character device"));
    else t_skip("no /dev/zero");
    expect("/dev/null", mrec_load_inter_opt(&x, "/dev/null", &o), MREC_ERR_IO, M("/dev/null", "is a character device"));
    expect("a missing file", mrec_load_tsv_opt(&x, path_of("none.tsv"), &o), MREC_ERR_IO, M("none.tsv", "cannot open"));
    /* LightGCN: a FIFO for test.txt, and a missing test.txt */
    const char *dir = adj_dir("adj_fifo", "0 1 2\n", NULL);
    char p[600];
    snprintf(p, sizeof p, "%s/test.txt", dir);
    if (mkfifo(p, 0600) == 0)
        expect("a FIFO test.txt", mrec_load_lightgcn_opt(&x, dir, &o), MREC_ERR_IO, M("adj_fifo/test.txt", "is a FIFO"));
    dir = adj_dir("adj_no_test", "0 1 2\n", NULL);
    expect("no test.txt", mrec_load_lightgcn_opt(&x, dir, &o), MREC_ERR_IO, M("adj_no_test/test.txt", "cannot open"));
    alarm(0);
}

/* Documented handling that is not an error: CRLF, a byte-order mark, no final
 * newline, a negative rating, a timestamp written as a float. */
static void test_tolerated(void) {
    mrec_interactions x;
    mrec_load_options o = options();
    const char *p = write_text("crlf.tsv", "\xEF\xBB\xBFu1\ti1\t-2\t978300760.0\r\nu2\ti1\t3.5\t5\r\nu2\ti2\t1\t7");
    notices[0] = '\0';
    if (t_status(mrec_load_tsv_opt(&x, p, &o), MREC_OK, "CRLF, BOM, negative rating, float timestamp, no final newline")) {
        t_check(strstr(notices, "crlf.tsv: 1 rows have a negative rating: kept as given") != NULL, "the negative rating is counted and said: %s",
                notices);
        t_check(x.n == 3 && !strcmp(x.user_names[0], "u1") && !strcmp(x.item_names[1], "i2") && x.rating[0] == -2 &&
                    x.timestamp[0] == 978300760 && x.timestamp[2] == 7,
                "their values read as written");
        mrec_interactions_free(&x);
    }
    /* timestamps past 2^53 keep every digit */
    p = write_text("big_time.tsv", "u1\ti1\t1\t9007199254740993\n");
    if (t_status(mrec_load_tsv_opt(&x, p, &o), MREC_OK, "a timestamp past 2^53")) {
        t_check(x.timestamp[0] == 9007199254740993LL, "read as an integer, not rounded");
        mrec_interactions_free(&x);
    }
}

/* ---- pairs across splits ---- */

/* The pairs of test that are also in train. */
static int64_t leaked(const mrec_interactions *x) {
    mrec_user_items tr, te;
    if (mrec_user_items_build(&tr, x, MREC_SPLIT_TRAIN) || mrec_user_items_build(&te, x, MREC_SPLIT_TEST)) return -1;
    int64_t n = 0;
    for (int u = 0; u < te.n_rows; u++)
        for (int64_t e = te.row_ptr[u]; e < te.row_ptr[u + 1]; e++)
            for (int64_t f = tr.row_ptr[u]; f < tr.row_ptr[u + 1]; f++) n += tr.col[f] == te.col[e];
    mrec_user_items_free(&tr), mrec_user_items_free(&te);
    return n;
}

static void test_duplicates(void) {
    /* 40 users x 12 items, every pair written twice (the copy later in the file
     * and in time): before, a split put copies of one pair in train and test */
    size_t cap = 40 * 12 * 2 * 40 + 1, at = 0;
    char *t = malloc(cap);
    if (!t) return;
    for (int copy = 0; copy < 2; copy++)
        for (int u = 0; u < 40; u++)
            for (int i = 0; i < 12; i++)
                at += (size_t)snprintf(t + at, cap - at, "u%d\ti%d\t%d\t%d\n", u, (u + i) % 30, copy ? 1 : 5, 1000 * copy + i);
    const char *p = write_text("dups.tsv", t);
    free(t);
    mrec_interactions x;
    mrec_load_options o = options(), d = options();
    notices[0] = '\0';
    if (t_status(mrec_load_tsv_opt(&x, p, &o), MREC_OK, "a table with every pair twice")) {
        t_check(x.n == 480 && x.n_duplicates == 480 && x.n_cross_split == 0, "480 repeated rows dropped, %lld counted",
                (long long)x.n_duplicates);
        t_check(strstr(notices, "dups.tsv: 480 repeated") && strstr(notices, "earliest"), "the drop is said: %s", notices);
        int first_kept = 1;
        for (int64_t k = 0; k < x.n; k++) first_kept &= x.timestamp[k] < 1000 && x.rating[k] == 5;
        t_check(first_kept, "the earliest copy of each pair kept");
        static const struct { mrec_splitter how; double test, valid; int n; const char *name; } splits[] = {
            {MREC_SPLITTER_RANDOM, 0.2, 0, 0, "random"},
            {MREC_SPLITTER_MMREC, 0, 0, 0, "mmrec"},
            {MREC_SPLITTER_TEMPORAL, 0.3, 0.1, 0, "temporal"},
            {MREC_SPLITTER_LEAVE_N, 0, 0, 2, "leave-2-out"},
        };
        for (size_t s = 0; s < sizeof splits / sizeof splits[0]; s++) {
            if (!t_status(mrec_split_users(&x, splits[s].how, splits[s].test, splits[s].valid, splits[s].n, 7), MREC_OK, "%s split",
                          splits[s].name))
                continue;
            t_check(leaked(&x) == 0, "%s split: %lld test pairs also in train", splits[s].name, (long long)leaked(&x));
        }
        mrec_interactions_free(&x);
    }
    o.duplicates = MREC_DUPLICATES_ERROR;
    expect("repeated pairs under the error policy", mrec_load_tsv_opt(&x, p, &o), MREC_ERR_FORMAT,
           M("dups.tsv", "line 481", "user 'u0', item 'i0' again", "first on line 1"));

    /* the earliest by time wins, wherever it is in the file */
    p = write_text("late_first.tsv", "u\ti\t5\t200\nv\ti\t1\t1\nu\ti\t3\t100\nu\tj\t1\t1\n");
    if (t_status(mrec_load_tsv_opt(&x, p, &d), MREC_OK, "a pair whose later line is earlier in time")) {
        /* rows in file order: v-i, then the kept u-i, then u-j */
        t_check(x.n == 3 && x.rating[1] == 3 && x.timestamp[1] == 100, "the earliest copy kept (rating %g, time %lld)",
                x.rating[1], (long long)x.timestamp[1]);
        mrec_interactions_free(&x);
    }

    /* pre-split: a pair in train and test stays in train, counted and said */
    notices[0] = '\0';
    p = write_text("both.inter", "userID\titemID\tx_label\n1\t1\t0\n1\t2\t0\n2\t1\t0\n2\t3\t0\n1\t1\t2\n1\t3\t2\n2\t3\t1\n");
    if (t_status(mrec_load_inter_opt(&x, p, &d), MREC_OK, "an .inter with pairs in two splits")) {
        int64_t c[3] = {0, 0, 0};
        for (int64_t k = 0; k < x.n; k++) c[x.split[k]]++;
        t_check(x.n_cross_split == 2 && c[0] == 4 && c[1] == 0 && c[2] == 1 && leaked(&x) == 0,
                "kept in train only: %lld/%lld/%lld", (long long)c[0], (long long)c[1], (long long)c[2]);
        t_check(strstr(notices, "both.inter: 2 rows dropped") && strstr(notices, "earlier split"), "said: %s", notices);
        mrec_interactions_free(&x);
    }
    o = options();
    o.duplicates = MREC_DUPLICATES_ERROR;
    expect("a pair in two splits under the error policy", mrec_load_inter_opt(&x, p, &o), MREC_ERR_FORMAT,
           M("both.inter", "line 6", "first on line 2", "a pair in two splits"));

    /* Elliot's fixed files and LightGCN's: the same rule, and a test file left empty is an error */
    const char *tr = write_text("f_train.tsv", "a\tx\t5\nb\ty\t4\n");
    const char *te = write_text("f_test.tsv", "a\tx\t5\nb\tx\t2\n");
    if (t_status(mrec_load_tsv_splits_opt(&x, tr, NULL, te, &d), MREC_OK, "fixed files with a pair in both")) {
        t_check(x.n == 3 && x.n_cross_split == 1 && leaked(&x) == 0, "the train copy kept");
        mrec_interactions_free(&x);
    }
    const char *same = write_text("f_same.tsv", "b\ty\t4\n");
    expect("a test file whose pairs are all in train", mrec_load_tsv_splits_opt(&x, tr, NULL, same, &d), MREC_ERR_FORMAT,
           M("f_same.tsv", "no test pairs left"));
    const char *dir = adj_dir("adj_both", "0 1 2 3\n1 2 4\n", "0 3 5\n1 2\n");
    if (t_status(mrec_load_lightgcn_opt(&x, dir, &d), MREC_OK, "train.txt and test.txt sharing pairs")) {
        t_check(x.n == 6 && x.n_cross_split == 2 && leaked(&x) == 0, "shared pairs kept in train only (%lld rows)", (long long)x.n);
        mrec_interactions_free(&x);
    }
}

/* ---- empty parts ---- */

static void test_empty_parts(void) {
    mrec_interactions x;
    mrec_load_options o = options();
    /* fixed files */
    const char *tr = write_text("e_train.tsv", "a\tx\nb\ty\n");
    const char *empty = write_text("e_empty.tsv", "");
    expect("an empty test file", mrec_load_tsv_splits_opt(&x, tr, NULL, empty, &o), MREC_ERR_FORMAT, M("e_empty.tsv", "empty file"));
    expect("an empty valid file", mrec_load_tsv_splits_opt(&x, tr, empty, tr, &o), MREC_ERR_FORMAT, M("e_empty.tsv", "empty file"));
    expect("an empty train file", mrec_load_tsv_splits_opt(&x, empty, NULL, tr, &o), MREC_ERR_FORMAT, M("e_empty.tsv", "empty file"));
    const char *three = write_text("e_three.tsv", "a\ty\t1\n");
    expect("files with other columns", mrec_load_tsv_splits_opt(&x, tr, NULL, three, &o), MREC_ERR_FORMAT,
           M("e_three.tsv", "line 1", "3 columns", "the rows before have 2"));
    /* LightGCN */
    const char *dir = adj_dir("adj_empty_train", "", "0 1\n");
    expect("an empty train.txt", mrec_load_lightgcn_opt(&x, dir, &o), MREC_ERR_FORMAT, M("adj_empty_train/train.txt", "empty file"));
    dir = adj_dir("adj_users_only", "0 1\n", "0\n1\n");
    expect("a test.txt of users without items", mrec_load_lightgcn_opt(&x, dir, &o), MREC_ERR_FORMAT,
           M("adj_users_only/test.txt", "no interactions"));

    /* a split that leaves training empty: every user has one interaction */
    const char *p = write_text("singles.tsv", "a\tx\nb\ty\nc\tz\n");
    if (t_status(mrec_load_tsv_opt(&x, p, &o), MREC_OK, "load singles.tsv")) {
        expect("a split with no training pairs", mrec_split_users(&x, MREC_SPLITTER_MMREC, 0, 0, 0, 1), MREC_ERR_FORMAT,
               M("singles.tsv", "no training pairs"));
        mrec_interactions_free(&x);
    }
    /* a split that should have validation pairs and has none */
    p = write_text("novalid.inter", "userID\titemID\tx_label\n1\t1\t0\n1\t2\t2\n");
    if (t_status(mrec_load_inter_opt(&x, p, &o), MREC_OK, "an .inter without validation rows (allowed)")) {
        expect("validation asked for and absent", mrec_check_split(&x, 1), MREC_ERR_FORMAT, M("novalid.inter", "no validation pairs"));
        mrec_interactions_free(&x);
    }
    p = write_text("pairs.tsv", "a\tx\na\ty\nb\tx\nb\ty\n");
    if (t_status(mrec_load_tsv_opt(&x, p, &o), MREC_OK, "load pairs.tsv")) {
        /* 1e-17 of validation rounds to none: the split says so instead of training without it */
        expect("a split with no validation pairs", mrec_split_users(&x, MREC_SPLITTER_RANDOM, 0.5, 1e-17, 0, 1), MREC_ERR_FORMAT,
               M("pairs.tsv", "no validation pairs"));
        t_status(mrec_split_users(&x, MREC_SPLITTER_RANDOM, 0.5, 0, 0, 1), MREC_OK, "the same without validation");
        /* a filter that leaves nothing */
        expect("a filter that leaves nothing", mrec_filter(&x, 2.0f, 0, 0, 0), MREC_ERR_ARG, M("pairs.tsv", "no interactions left"));
        mrec_interactions_free(&x);
    }
    /* a fixed split whose test part a filter empties */
    p = write_text("lowtest.inter", "userID\titemID\trating\tx_label\n1\t1\t5\t0\n2\t1\t5\t0\n1\t2\t5\t2\n");
    if (t_status(mrec_load_inter_opt(&x, p, &o), MREC_OK, "load lowtest.inter")) {
        expect("a filter that empties a fixed split's test part", mrec_filter(&x, 0.0f, 0, 2, 0), MREC_ERR_FORMAT,
               M("lowtest.inter", "no test pairs"));
        mrec_interactions_free(&x);
    }
    /* users and items with no training pairs: kept, counted, said */
    notices[0] = '\0';
    p = write_text("cold.inter", "userID\titemID\tx_label\n1\t1\t0\n1\t2\t0\n2\t1\t0\n3\t3\t2\n1\t4\t1\n");
    if (t_status(mrec_load_inter_opt(&x, p, &o), MREC_OK, "an .inter with a cold user and cold items")) {
        t_check(x.n_users == 3 && x.n_items == 4, "cold users and items kept");
        t_check(strstr(notices, "cold.inter: 1 of 3 users and 2 of 4 items have no training pairs") != NULL, "said: %s", notices);
        mrec_interactions_free(&x);
    }
}

/* ---- training ---- */

static double nan_loss(void *self, const int32_t *user, const int32_t *pos, const int32_t *neg, int n) {
    (void)self, (void)user, (void)pos, (void)neg, (void)n;
    return NAN;
}

static int nan_after;
static double late_nan_loss(void *self, const int32_t *user, const int32_t *pos, const int32_t *neg, int n) {
    (void)self, (void)user, (void)pos, (void)neg, (void)n;
    return nan_after-- > 0 ? 0.5 : INFINITY;
}

/* a model whose op fails inside loss_grad: NaN, and the op's status left behind */
static mrec_status op_status;
static double failed_op_loss(void *self, const int32_t *user, const int32_t *pos, const int32_t *neg, int n) {
    (void)self, (void)user, (void)pos, (void)neg, (void)n;
    op_status = mrec_fail(MREC_ERR_DEVICE, "gemm: the launch failed");
    return NAN;
}

static mrec_status zero_scores(void *self, int u0, int n, float *scores) {
    (void)self, (void)u0;
    memset(scores, 0, sizeof *scores * (size_t)n * 3);
    return MREC_OK;
}

static void test_fit(mrec_context *ctx) {
    /* 2 users, 3 items: u0 {0} train, {2} test; u1 {1} train, {0} test */
    int64_t tr_ptr[3] = {0, 1, 2}, te_ptr[3] = {0, 1, 2}, none_ptr[3] = {0, 0, 0};
    int32_t tr_col[2] = {0, 1}, te_col[2] = {2, 0};
    float ones[3] = {1, 1, 1};
    mrec_user_items train = {2, 3, tr_ptr, tr_col, ones}, test = {2, 3, te_ptr, te_col, ones}, empty = {2, 3, none_ptr, tr_col, ones};
    float w[4] = {0}, g[4] = {0};
    mrec_model m = {.name = "nanmodel", .n_params = 1, .param = {w}, .grad = {g}, .size = {4}, .loss_grad = nan_loss,
                    .score = zero_scores};
    mrec_fit_options opt = mrec_fit_defaults();
    opt.epochs = 3, opt.select_k = 1;
    int k[1] = {1};
    mrec_fit_result r;
    expect("a NaN loss", mrec_fit(&r, &m, &train, NULL, &test, k, 1, 1, &opt, ctx), MREC_ERR_ARG,
           M("nanmodel", "epoch 1", "nan"));
    free(r.topk);
    m.name = "latemodel", m.loss_grad = late_nan_loss, nan_after = 2;
    opt.batch_size = 1;
    expect("an infinite loss in the second epoch", mrec_fit(&r, &m, &train, NULL, &test, k, 1, 1, &opt, ctx), MREC_ERR_ARG,
           M("latemodel", "epoch 2", "batch 1", "inf"));
    free(r.topk);
    m.name = "opmodel", m.loss_grad = failed_op_loss, m.status = &op_status;
    expect("an op failing inside a batch", mrec_fit(&r, &m, &train, NULL, &test, k, 1, 1, &opt, ctx), MREC_ERR_DEVICE,
           M("gemm: the launch failed"));
    free(r.topk);
    m.status = NULL;
    m.name = "emptymodel";
    expect("no training pairs", mrec_fit(&r, &m, &empty, NULL, &test, k, 1, 1, &opt, ctx), MREC_ERR_ARG,
           M("emptymodel", "no training pairs"));
    free(r.topk);
    m.loss_grad = NULL, m.name = "countmodel"; /* a model without training (MostPop's kind) */
    expect("no training pairs, nothing to train", mrec_fit(&r, &m, &empty, NULL, &test, k, 1, 1, &opt, ctx), MREC_ERR_ARG,
           M("countmodel", "no training pairs"));
    free(r.topk);
    /* a real model on data with no training pairs: the same error, not a NaN epoch */
    mrec_rng rng = {1};
    mrec_model b;
    if (t_status(mrec_bprmf_create(&b, 2, 3, 4, 0, &rng, ctx), MREC_OK, "bprmf")) {
        expect("BPRMF with no training pairs", mrec_fit(&r, &b, &empty, NULL, &test, k, 1, 1, &opt, ctx), MREC_ERR_ARG,
               M(b.name, "no training pairs"));
        free(r.topk);
        mrec_model_destroy(&b);
    }
}

int main(void) {
    t_suite("bad_recsys");
    T_REQUIRE(mkdtemp(tmpdir) != NULL);
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 1;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    test_tables();
    test_sizes();
    test_not_files();
    test_tolerated();
    test_duplicates();
    test_empty_parts();
    test_fit(ctx);
    mrec_context_destroy(ctx);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return t_finish();
}
