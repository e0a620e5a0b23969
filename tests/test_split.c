/* test_split.c: Elliot's splitter, byte for byte.
 *
 * Parity: tests/fixtures/splits/ (tools/golden/elliot_splits.py) holds numpy's own MT19937 outputs
 * and shuffles for several seeds, and for real subsets of ML-100K, Amazon Baby and H&M what Elliot's
 * save_on_disk writes for a split restated with numpy's RandomState and pandas; mrec loads the same
 * input, prefilters, splits and writes, and every file must be the same bytes. For Baby the files
 * are committed; ML-100K's and H&M's terms forbid copying their rows, so those subsets are built here
 * from ../shared/data (skipped when it is absent) and each file's size and CRC-32 must be those in
 * digests.tsv. Exact equality is the only tolerance: a split is a set of rows, and one draw out of
 * step moves them all.
 * Then the end-to-end path (Elliot configs through `mrec train`, save_on_disk), and bad input:
 * ratios out of range, dates that are not dates, unknown strategies, users too small for
 * leave_n_out, a seed numpy refuses. Runs the binary in $MREC_BIN for the config case.
 */
#include "harness.h"

#include "../recsys/mrec_np_random.h"
#include "../recsys/mrec_recsys.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#define FIX "tests/fixtures/splits/"
#define SHARED "../shared/data/"

static char dir[] = "/tmp/mrec-split-XXXXXX";

/* A whole file, gzip or plain, into memory; NULL when it cannot be read. */
static char *slurp(const char *path, size_t *len) {
    gzFile f = gzopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    int k;
    while (buf && (k = gzread(f, buf + n, (unsigned)(cap - n - 1))) > 0) {
        n += (size_t)k;
        if (cap - n < 4096) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) free(buf);
            buf = grown, cap *= 2;
        }
    }
    gzclose(f);
    if (buf) buf[n] = 0, *len = n;
    return buf;
}

static int write_text(const char *path, const char *text, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(text, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* Same bytes, or the first differing line printed. */
static int same_file(const char *what, const char *expected_gz, const char *got) {
    size_t ne = 0, ng = 0;
    char *e = slurp(expected_gz, &ne), *g = slurp(got, &ng);
    int ok = e && g && ne == ng && memcmp(e, g, ne) == 0;
    if (!ok && e && g) {
        size_t at = 0, line = 1;
        while (at < ne && at < ng && e[at] == g[at]) line += e[at++] == '\n';
        size_t from = at;
        while (from > 0 && e[from - 1] != '\n') from--;
        fprintf(stderr, "  %s: %zu bytes, expected %zu; first difference on line %zu:\n    expected: %.*s\n    got:      %.*s\n", what, ng, ne,
                line, (int)strcspn(e + from, "\n"), e + from, (int)strcspn(g + from, "\n"), g + from);
    }
    t_check(ok, "%s: the same bytes as Elliot's file (%zu bytes)%s", what, ne, e && g ? "" : " (a file is missing)");
    free(e), free(g);
    return ok;
}

/* ---- the inputs and outputs that may not be copied ---- */

/* The subsets tools/golden/elliot_splits.py takes, by the name cases.tsv gives them; NULL for an input
 * committed under inputs/, or with *why when the source is absent (and *absent set) or malformed.
 *   ml100k:   u.data's lines of users 1..120, as they are, in file order (ml100k(120));
 *   hm:       hm_2core_interactions.tsv's first 1,500 rows after its header, written as
 *             customer, article, n_purchases (hm(1500, False));
 *   hm_dates: the same rows as customer, article, n_purchases, first_t_dat (hm(1500, True)). */
static char *shared_subset(const char *input, size_t *len, const char **why, int *absent) {
    int ml = !strcmp(input, "ml100k"), hm = !strcmp(input, "hm"), dates = !strcmp(input, "hm_dates");
    *why = NULL, *absent = 0;
    if (!ml && !hm && !dates) return NULL;
    const char *src = ml ? SHARED "ml-100k/raw/u.data" : SHARED "hm-fashion-sample/hm_2core_interactions.tsv";
    size_t n = 0;
    char *text = slurp(src, &n);
    if (!text) {
        *why = ml ? SHARED "ml-100k/raw/u.data is not here" : SHARED "hm-fashion-sample/hm_2core_interactions.tsv is not here";
        *absent = 1;
        return NULL;
    }
    char *out = malloc(n + 1), *o = out; /* hm's rows only trade columns, so no row grows */
    int rows = 0;
    for (char *line = text, *next; out && *line && (ml || rows < 1500); line = next) {
        char *end = strchr(line, '\n');
        next = end ? end + 1 : line + strlen(line);
        if (end) *end = 0;
        if (ml) {
            if (strtol(line, NULL, 10) <= 120) o += sprintf(o, "%s%s", line, end ? "\n" : "");
            continue;
        }
        if (line == text) continue; /* the header */
        char *f[4] = {line};
        int k = 1;
        for (char *c = line; *c; c++)
            if (*c == '\t') *c = 0, f[k < 4 ? k : 3] = c + 1, k++;
        if (k != 4) {
            *why = SHARED "hm-fashion-sample/hm_2core_interactions.tsv: a row without 4 columns";
            free(out), out = NULL;
            break;
        }
        o += sprintf(o, dates ? "%s\t%s\t%s\t%s\n" : "%s\t%s\t%s\n", f[0], f[1], f[3], f[2]);
        rows++;
    }
    free(text);
    if (out) *o = 0, *len = (size_t)(o - out);
    return out;
}

/* digests.tsv: case, file, bytes, crc32 of the files pandas wrote for the cases whose rows may not be copied. */
static struct {
    char name[64], file[64];
    unsigned long bytes, crc;
} digests[64];
static int n_digests;

static void read_digests(void) {
    size_t n = 0;
    char *text = slurp(FIX "digests.tsv", &n);
    if (!t_check(text != NULL, "read " FIX "digests.tsv")) return;
    for (char *save, *line = strtok_r(text, "\n", &save); line && n_digests < 64; line = strtok_r(NULL, "\n", &save))
        if (line[0] != '#' && sscanf(line, "%63s %63s %lu %lx", digests[n_digests].name, digests[n_digests].file, &digests[n_digests].bytes,
                                     &digests[n_digests].crc) == 4)
            n_digests++;
    t_check(n_digests >= 27, FIX "digests.tsv: %d files of the ML-100K and H&M cases", n_digests);
    free(text);
}

/* The file `got` against the case's committed file (NAME/FILE.gz) or, for a case in digests.tsv, its size and CRC-32. */
static int check_output(const char *what, const char *name, const char *file, const char *got) {
    for (int d = 0; d < n_digests; d++) {
        if (strcmp(digests[d].name, name) || strcmp(digests[d].file, file)) continue;
        size_t n = 0;
        char *g = slurp(got, &n);
        unsigned long crc = g ? crc32(0L, (const Bytef *)g, (uInt)n) : 0;
        free(g);
        return t_check(g && n == digests[d].bytes && crc == digests[d].crc,
                       "%s: the size and CRC-32 of Elliot's file (%lu bytes, %08lx; got %zu, %08lx)%s", what, digests[d].bytes, digests[d].crc,
                       n, crc, g ? "" : " (not written)");
    }
    char want[4200];
    snprintf(want, sizeof want, FIX "%s/%s.gz", name, file);
    return same_file(what, want, got);
}

/* The input of a case: built from ../shared/data, or inputs/NAME.tsv.gz; NULL with *why when it cannot be had,
 * *absent when that is because ../shared/data is not beside the repository. */
static char *case_input(const char *input, size_t *n, const char **why, int *absent) {
    char *text = shared_subset(input, n, why, absent);
    if (text || *why) return text;
    char path[4096];
    snprintf(path, sizeof path, FIX "inputs/%s.tsv.gz", input);
    text = slurp(path, n);
    if (!text) *why = "its file under " FIX "inputs/ cannot be read";
    return text;
}

/* ---- numpy's stream ---- */

static void mt_parity(void) {
    size_t n = 0;
    char *text = slurp(FIX "mt19937.txt", &n);
    if (!t_check(text != NULL, "read " FIX "mt19937.txt")) return;
    int outputs = 0, shuffles = 0, flags_ok = 1, flags = 0;
    mrec_mt19937 stream; /* the "flags" lines continue one stream, as Elliot's users do */
    mrec_mt19937_seed(&stream, 42);
    for (char *save, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char kind[16];
        unsigned long long seed;
        int len = 0, at = 0;
        if (sscanf(line, "%15s %llu%n", kind, &seed, &at) != 2) continue;
        const char *p = line + at;
        mrec_mt19937 mt;
        mrec_mt19937_seed(&mt, (uint32_t)seed);
        if (!strcmp(kind, "outputs")) {
            int ok = 1;
            unsigned long long want;
            for (int i = 0; i < 8 && sscanf(p, "%llu%n", &want, &at) == 1; i++, p += at) {
                uint32_t got = mrec_mt19937_next32(&mt);
                if (got != want) ok = 0, fprintf(stderr, "  seed %llu output %d: %u, numpy %llu\n", seed, i, got, want);
            }
            t_check(ok, "MT19937 seeded as np.random.seed(%llu): the first 8 outputs are numpy's", seed);
            outputs++;
            continue;
        }
        if (sscanf(p, "%d%n", &len, &at) != 1 || len < 1 || len > 256) continue;
        p += at;
        uint8_t x[256], want[256];
        for (int i = 0; i < len; i++) {
            int v = 0;
            sscanf(p, "%d%n", &v, &at), p += at;
            want[i] = (uint8_t)v;
        }
        if (!strcmp(kind, "shuffle")) {
            for (int i = 0; i < len; i++) x[i] = (uint8_t)i;
            mrec_np_shuffle_u8(&mt, x, len);
            t_check(memcmp(x, want, (size_t)len) == 0, "RandomState(%llu).shuffle(list(range(%d))) is numpy's", seed, len);
            shuffles++;
        } else if (!strcmp(kind, "flags")) {
            for (int i = 0; i < len; i++) x[i] = i >= len - len / 3;
            mrec_np_shuffle_u8(&stream, x, len);
            flags_ok &= memcmp(x, want, (size_t)len) == 0;
            flags++;
        }
    }
    t_check(outputs >= 6 && shuffles >= 4 && flags >= 4 && flags_ok,
            "numpy fixtures: %d seeds' outputs, %d shuffles, %d flag lists shuffled in one stream as numpy does", outputs, shuffles, flags);
    free(text);
}

/* ---- the fixture cases ---- */

static mrec_status split_spelling(const char *spelling, mrec_elliot_part *test, mrec_elliot_part *valid, int *has_valid) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spelling + strlen("elliot:"));
    char *slash = strchr(buf, '/');
    if (slash) *slash = 0;
    *has_valid = slash != NULL;
    mrec_status st = mrec_elliot_part_parse(buf, test);
    return st || !slash ? st : mrec_elliot_part_parse(slash + 1, valid);
}

static void one_case(const char *name, const char *input, unsigned long long seed, const char *spelling, const char *prefilter) {
    char out[4096];
    size_t n = 0;
    const char *why = NULL;
    int absent = 0;
    char *text = case_input(input, &n, &why, &absent);
    if (absent) {
        t_skip("%s: %s (ML-100K's and H&M's rows may not be copied into the repository)", name, why);
        return;
    }
    snprintf(out, sizeof out, "%s/%s.tsv", dir, name);
    if (!t_check(text && write_text(out, text, n), "%s: input %s%s%s", name, input, why ? ": " : "", why ? why : "")) return free(text);
    free(text);
    mrec_interactions x;
    mrec_status st = mrec_load_tsv(&x, out);
    if (!t_status(st, MREC_OK, "%s: load", name)) return;
    mrec_prefilter steps[8];
    int n_steps = 0;
    if (strcmp(prefilter, "-") && !t_status(mrec_prefilter_parse(prefilter, steps, 8, &n_steps), MREC_OK, "%s: prefilter %s", name, prefilter))
        return mrec_interactions_free(&x);
    mrec_elliot_part test, valid;
    int has_valid = 0;
    st = mrec_prefilter_apply(&x, steps, n_steps);
    if (!st) st = split_spelling(spelling, &test, &valid, &has_valid);
    if (!t_status(st, MREC_OK, "%s: %s", name, spelling)) return mrec_interactions_free(&x);
    /* every fold, each split on its own from the same rows (T/test.tsv once, T/V/... or T/train.tsv) */
    int n_test = mrec_elliot_part_folds(&test), n_valid = has_valid ? mrec_elliot_part_folds(&valid) : 1;
    for (int t = 0; t < n_test; t++)
        for (int v = 0; v < n_valid; v++) {
            st = mrec_split_elliot_fold(&x, &test, has_valid ? &valid : NULL, seed, t, v);
            if (!t_status(st, MREC_OK, "%s: %s, seed %llu, fold %d/%d", name, spelling, seed, t, v)) return mrec_interactions_free(&x);
            static const char *const files[3] = {"train", "val", "test"};
            for (int s = 0; s < 3; s++) {
                if ((s == MREC_SPLIT_VALID && !has_valid) || (s == MREC_SPLIT_TEST && v > 0)) continue;
                char got[4200], file[64], what[320];
                snprintf(got, sizeof got, "%s/%s.%s.tsv", dir, name, files[s]);
                if (s == MREC_SPLIT_TEST || !has_valid) snprintf(file, sizeof file, "%d/%s.tsv", t, files[s]);
                else snprintf(file, sizeof file, "%d/%d/%s.tsv", t, v, files[s]);
                snprintf(what, sizeof what, "%s (%s, seed %llu%s%s): %s", name, spelling, seed, strcmp(prefilter, "-") ? ", " : "",
                         strcmp(prefilter, "-") ? prefilter : "", file);
                if (t_status(mrec_write_elliot_split(&x, (mrec_split)s, got), MREC_OK, "%s: write", what)) check_output(what, name, file, got);
            }
        }
    mrec_interactions_free(&x);
}

static void fixture_cases(void) {
    size_t n = 0;
    read_digests();
    char *text = slurp(FIX "cases.tsv", &n);
    if (!t_check(text != NULL, "read " FIX "cases.tsv")) return;
    int cases = 0;
    for (char *save, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char name[64], input[64], spelling[256], prefilter[128];
        unsigned long long seed;
        if (sscanf(line, "%63s %63s %llu %255s %127s", name, input, &seed, spelling, prefilter) != 5) continue;
        one_case(name, input, seed, spelling, prefilter);
        cases++;
    }
    t_check(cases >= 11, "%d fixture cases (ML-100K, Baby, H&M; random, leave-n-out, temporal, fixed_timestamp best, folds)", cases);
    free(text);
}

/* ---- through the command line: Elliot configs with save_on_disk ---- */

/* baby_ratio of cases.tsv as an Elliot config (line 9 is test_splitting; bad_settings edits it). */
static const char baby_yml[] = "experiment:\n"
                               "  dataset: baby\n"
                               "  data_config: {strategy: dataset, dataset_path: baby.tsv}\n"
                               "  prefiltering:\n"
                               "    - {strategy: user_k_core, core: 5}\n"
                               "  splitting:\n"
                               "    save_on_disk: True\n"
                               "    save_folder: saved/{0}\n"
                               "    test_splitting: {strategy: random_subsampling, test_ratio: 0.2}\n"
                               "    validation_splitting: {strategy: random_subsampling, test_ratio: 0.25}\n"
                               "  random_seed: 42\n"
                               "  top_k: 10\n"
                               "  evaluation: {cutoffs: [10], simple_metrics: [Recall]}\n"
                               "  models:\n"
                               "    MostPop:\n"
                               "      meta: {validation_metric: Recall@10}\n";

/* ml100k_leave of cases.tsv: leave_n_out and item_k_core through a config. */
static const char ml_yml[] = "experiment:\n"
                             "  dataset: ml\n"
                             "  data_config: {strategy: dataset, dataset_path: ml100k.tsv}\n"
                             "  prefiltering:\n"
                             "    - {strategy: item_k_core, core: 3}\n"
                             "  splitting:\n"
                             "    save_on_disk: True\n"
                             "    save_folder: saved/{0}\n"
                             "    test_splitting: {strategy: random_subsampling, leave_n_out: 2}\n"
                             "    validation_splitting: {strategy: random_subsampling, leave_n_out: 1}\n"
                             "  random_seed: 7\n"
                             "  top_k: 10\n"
                             "  evaluation: {cutoffs: [10], simple_metrics: [Recall]}\n"
                             "  models:\n"
                             "    MostPop:\n"
                             "      meta: {validation_metric: Recall@10}\n";

/* baby_folds of cases.tsv: random_subsampling with folds, test and validation; six runs of MostPop. */
static const char folds_yml[] = "experiment:\n"
                                "  dataset: folds\n"
                                "  data_config: {strategy: dataset, dataset_path: baby_small.tsv}\n"
                                "  prefiltering:\n"
                                "    - {strategy: user_k_core, core: 5}\n"
                                "  splitting:\n"
                                "    save_on_disk: True\n"
                                "    save_folder: saved/{0}\n"
                                "    test_splitting: {strategy: random_subsampling, test_ratio: 0.2, folds: 3}\n"
                                "    validation_splitting: {strategy: random_subsampling, leave_n_out: 1, folds: 2}\n"
                                "  random_seed: 42\n"
                                "  top_k: 10\n"
                                "  evaluation: {cutoffs: [10], simple_metrics: [Recall]}\n"
                                "  models:\n"
                                "    MostPop:\n"
                                "      meta: {validation_metric: Recall@10}\n";

static const char *const one_fold_files[] = {"0/0/train.tsv", "0/0/val.tsv", "0/test.tsv", NULL};
static const char *const folds_files[] = {"0/test.tsv", "1/test.tsv", "2/test.tsv", "0/0/train.tsv", "0/0/val.tsv", "0/1/train.tsv",
                                          "0/1/val.tsv", "1/0/train.tsv", "1/0/val.tsv", "1/1/train.tsv", "1/1/val.tsv", "2/0/train.tsv",
                                          "2/0/val.tsv", "2/1/train.tsv", "2/1/val.tsv", NULL};

/* `mrec train DATASET.yml` with the case's input beside it as DATASET_PATH; the files save_on_disk writes under
 * saved/DATASET must be the case's. */
static void config_run(const char *bin, const char *input, const char *dataset_path, const char *dataset, const char *yml, const char *name,
                       const char *what_config, const char *const *files) {
    char path[4096], cmd[16384];
    size_t n = 0;
    const char *why = NULL;
    int absent = 0;
    char *text = case_input(input, &n, &why, &absent);
    if (absent) {
        t_skip("Elliot config with %s: %s (ML-100K's and H&M's rows may not be copied into the repository)", what_config, why);
        return;
    }
    snprintf(path, sizeof path, "%s/%s", dir, dataset_path);
    if (!t_check(text && write_text(path, text, n), "config case %s: input %s%s%s", name, input, why ? ": " : "", why ? why : ""))
        return free(text);
    free(text);
    snprintf(path, sizeof path, "%s/%s.yml", dir, dataset);
    write_text(path, yml, strlen(yml));
    snprintf(cmd, sizeof cmd, "cd %s && %s train %s.yml --out res_%s > log_%s.txt 2>&1", dir, bin, dataset, dataset, dataset);
    int rc = system(cmd);
    if (!t_check(rc == 0, "mrec train on an Elliot config with %s: exit %d (see %s/log_%s.txt)", what_config,
                 WIFEXITED(rc) ? WEXITSTATUS(rc) : rc, dir, dataset))
        return;
    for (int s = 0; files[s]; s++) {
        char got[4200], what[256];
        snprintf(got, sizeof got, "%s/saved/%s/%s", dir, dataset, files[s]);
        snprintf(what, sizeof what, "save_on_disk from an Elliot config (%s): saved/%s/%s", name, dataset, files[s]);
        check_output(what, name, files[s], got);
    }
}

static void bad_settings(const char *bin, const char *yml);

/* The folds run of config_case: one run per (test fold, validation fold) under runs/T/V/, and the reported
 * MostPop result is the mean over the validation folds of the test fold Elliot's run.py picks (the best). The
 * runs' own results.tsv hold each fold's numbers; the test recomputes the choice from them. */
static void folds_results(const char *bin) {
    (void)bin;
    char path[4096];
    double recall[3][2], valid[3][2];
    int ok = 1;
    for (int t = 0; t < 3; t++)
        for (int v = 0; v < 2; v++) {
            snprintf(path, sizeof path, "%s/res_folds/runs/%d/%d/MostPop/results.tsv", dir, t, v);
            size_t n = 0;
            char *text = slurp(path, &n);
            /* model, params, split, best_epoch, recall@10 */
            const char *tr = text ? strstr(text, "\ttest\t0\t") : NULL, *vr = text ? strstr(text, "\tvalid\t0\t") : NULL;
            if (!tr || !vr) {
                ok = 0;
                t_check(0, "folds: %s holds test and valid recall@10", path);
            } else {
                recall[t][v] = strtod(tr + strlen("\ttest\t0\t"), NULL), valid[t][v] = strtod(vr + strlen("\tvalid\t0\t"), NULL);
            }
            free(text);
        }
    if (!ok) return;
    int best = 0;
    for (int t = 1; t < 3; t++)
        if ((valid[t][0] + valid[t][1]) / 2 > (valid[best][0] + valid[best][1]) / 2) best = t;
    double want = (recall[best][0] + recall[best][1]) / 2;
    snprintf(path, sizeof path, "%s/res_folds/performance/rec_cutoff_10_relthreshold_0.tsv", dir);
    size_t n = 0;
    char *text = slurp(path, &n);
    const char *row = text ? strstr(text, "\nMostPop") : NULL;
    const char *tab = row ? strrchr(row, '\t') : NULL;
    double got = tab ? strtod(tab + 1, NULL) : -1;
    t_check(row && fabs(got - want) < 1.5e-6, "folds: the table's Recall@10 %.6f is the mean over test fold %d's validation folds (%.6f)",
            got, best + 1, want);
    t_check(best == 1, "folds: the chosen test fold is the second (mean validation recall .0200 against .0075 and .0175), got %d", best + 1);
    free(text);
}

static void config_case(void) {
    const char *bin = getenv("MREC_BIN");
    if (!bin) {
        t_skip("Elliot config through mrec train: MREC_BIN is not set (tests/run.sh sets it)");
        return;
    }
    char abs_bin[4096];
    if (bin[0] != '/' && getcwd(abs_bin, sizeof abs_bin)) snprintf(abs_bin + strlen(abs_bin), sizeof abs_bin - strlen(abs_bin), "/%s", bin);
    else snprintf(abs_bin, sizeof abs_bin, "%s", bin);
    bin = abs_bin;
    config_run(bin, "baby", "baby.tsv", "baby", baby_yml, "baby_ratio", "random_subsampling test_ratio and user_k_core", one_fold_files);
    config_run(bin, "ml100k", "ml100k.tsv", "ml", ml_yml, "ml100k_leave", "random_subsampling leave_n_out and item_k_core", one_fold_files);
    config_run(bin, "baby_small", "baby_small.tsv", "folds", folds_yml, "baby_folds", "3 test folds of 2 validation folds", folds_files);
    folds_results(bin);
    bad_settings(bin, baby_yml);
}

/* Bad splitting and prefiltering keys in an Elliot config, and bad --split / --prefilter values: refused before
 * anything runs, with the file, line and what is wrong (exit 2 for a config, 1 for an option). */
static void bad_settings(const char *bin, const char *yml) {
    static const struct {
        const char *from, *to, *want;
    } edits[] = {
        {"test_ratio: 0.2}", "test_ratio: 1.5}", "line 9: test_ratio must lie in (0, 1)"},
        {"test_ratio: 0.2}", "test_ratio: 0.2, folds: 101}", "line 9"},
        {"{strategy: random_subsampling, test_ratio: 0.2}", "{strategy: temporal_hold_out, test_ratio: 0.2, folds: 2}",
         "line 9: folds: temporal_hold_out makes one fold"},
        {"{strategy: random_subsampling, test_ratio: 0.2}", "{strategy: random_cross_validation}", "line 9: random_cross_validation needs folds"},
        {"{strategy: random_subsampling, test_ratio: 0.2}", "{strategy: random_cross_validation, folds: 1}", "line 9"},
        {"{strategy: random_subsampling, test_ratio: 0.2}", "{strategy: random_cross_validation, folds: 3, test_ratio: 0.2}",
         "random_cross_validation takes folds only"},
        {"test_ratio: 0.2}", "test_ratio: 0.2, leave_n_out: 2}", "give test_ratio or leave_n_out, one of the two"},
        {"{strategy: random_subsampling, test_ratio: 0.2}", "{strategy: cross_validation, folds: 5}",
         "line 9: splitting strategy is random_subsampling, random_cross_validation, temporal_hold_out or fixed_timestamp"},
        {"{strategy: random_subsampling, test_ratio: 0.2}", "{strategy: fixed_timestamp, timestamp: 2021-02-30}",
         "fixed_timestamp wants whole seconds, a date"},
        {"{strategy: random_subsampling, test_ratio: 0.2}", "{strategy: fixed_timestamp, timestamp: 1000, min_over: 2}",
         "min_below and min_over go with timestamp: best"},
        {"{strategy: user_k_core, core: 5}", "{strategy: user_average}", "line 5: prefiltering strategy is global_threshold, user_k_core"},
        {"{strategy: user_k_core, core: 5}", "{strategy: user_k_core, core: 0}", "line 5"},
        {"{strategy: user_k_core, core: 5}", "{strategy: global_threshold, threshold: average}", "threshold average is not supported"},
    };
    char path[4096], cmd[16384], text[4096];
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
        const char *at = strstr(yml, edits[e].from);
        if (!t_check(at != NULL, "bad config %zu: '%s' is in the config", e, edits[e].from)) continue;
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - yml), yml, edits[e].to, at + strlen(edits[e].from));
        snprintf(path, sizeof path, "%s/bad.yml", dir);
        write_text(path, text, strlen(text));
        snprintf(cmd, sizeof cmd, "cd %s && %s train bad.yml --out bad > bad.txt 2>&1", dir, bin);
        int rc = system(cmd);
        size_t n = 0;
        snprintf(path, sizeof path, "%s/bad.txt", dir);
        char *out = slurp(path, &n);
        t_check(WIFEXITED(rc) && WEXITSTATUS(rc) == 2 && out && strstr(out, "bad.yml") && strstr(out, edits[e].want),
                "config with %s: exit 2 naming bad.yml and '%s' (exit %d: %.300s)", edits[e].to, edits[e].want,
                WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out ? out : "");
        free(out);
    }
    static const struct {
        const char *args, *want;
    } options[] = {
        {"--split elliot:shuffle:0.2", "'shuffle' is not a splitting strategy"},
        {"--split elliot:random:0.2/temporal:1.5", "test_ratio must be a number in (0, 1)"},
        {"--split random:1.5", "--split"},
        {"--split splitmix:0", "--split"},
        {"--split elliot:random:0.2,folds=0", "random:VALUE,folds=N takes 1 to 100 folds"},
        {"--split elliot:temporal:0.2,folds=2", "temporal splits make one"},
        {"--split elliot:kfold:1", "random_cross_validation (kfold:N) takes 2 to 100 folds"},
        {"--split elliot:random:0.2,folds=2 --fold 2", "--fold 2: elliot:random:0.2,folds=2 makes 2 test and 1 validation folds"},
        {"--split random:0.2 --fold 0/1", "--fold 0/1: random:0.2 makes 1 test and 1 validation folds"},
        {"--split elliot:kfold:3 --fold x", "--fold 'x': T or T/V"},
        {"--prefilter user:0", "--prefilter: prefilter step 'user:0': the core is a whole number >= 1"},
        {"--prefilter cold:3", "is not rating:X, user:K, item:K, kcore:K or rounds:K:N"},
    };
    for (size_t o = 0; o < sizeof options / sizeof options[0]; o++) {
        snprintf(cmd, sizeof cmd, "cd %s && %s train --data baby.tsv --format tsv %s --model mostpop --out bad > bad.txt 2>&1", dir, bin,
                 options[o].args);
        int rc = system(cmd);
        size_t n = 0;
        snprintf(path, sizeof path, "%s/bad.txt", dir);
        char *out = slurp(path, &n);
        t_check(WIFEXITED(rc) && WEXITSTATUS(rc) == 1 && out && strstr(out, options[o].want), "%s: exit 1 naming '%s' (exit %d: %.300s)",
                options[o].args, options[o].want, WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out ? out : "");
        free(out);
    }
}

/* ---- dates and bad input ---- */

static void expect_error(const char *what, mrec_status st, const char *needle) {
    const char *detail = st ? mrec_error_detail() : "";
    int ok = st != MREC_OK && strstr(detail, needle) != NULL;
    t_check(ok, "%s: refused, naming '%s' (%s)", what, needle, st ? detail : "accepted");
}

static void dates_and_errors(void) {
    static const struct {
        const char *text;
        long long seconds;
    } dates[] = {{"1970-01-01", 0},
                 {"2020-06-26", 1593129600},
                 {"2020-02-29 23:59:59", 1583020799},
                 {"2020-06-26T12:00:00Z", 1593172800},
                 {"2020-06-26T14:00:00+02:00", 1593172800},
                 {"2020-06-26T07:30-0430", 1593172800},
                 {"2020-06-26T12:00:00.750", 1593172800},
                 {"1969-12-31", -86400},
                 {"2000-03-01", 951868800}};
    int ok = 1;
    for (size_t i = 0; i < sizeof dates / sizeof dates[0]; i++) {
        int64_t s = 0;
        if (mrec_parse_date(dates[i].text, &s) || s != dates[i].seconds)
            ok = 0, fprintf(stderr, "  %s: %lld, expected %lld\n", dates[i].text, (long long)s, dates[i].seconds);
    }
    t_check(ok, "ISO dates and times to seconds since 1970 UTC (leap day, zones, fractions dropped)");
    static const char *const not_dates[] = {"2021-02-29", "1900-02-29", "2020-13-01", "2020-06-31", "2020-6-26", "2020-06-26 25:00",
                                            "2020-06-26T12", "2020-06-26x", "20200626", "2020-06-26 12:00:00+2"};
    ok = 1;
    for (size_t i = 0; i < sizeof not_dates / sizeof not_dates[0]; i++) {
        int64_t s;
        if (!mrec_parse_date(not_dates[i], &s)) ok = 0, fprintf(stderr, "  '%s' read as a date\n", not_dates[i]);
    }
    t_check(ok, "days that do not exist and malformed dates are not dates");

    char path[4096];
    mrec_interactions x;
    snprintf(path, sizeof path, "%s/bad_date.tsv", dir);
    const char *bad_date = "u1\ti1\t5\t2020-06-26\nu1\ti2\t4\t2020-06-27\nu2\ti1\t3\t2020-13-02\n";
    write_text(path, bad_date, strlen(bad_date));
    expect_error("a month 13 in a column of dates", mrec_load_tsv(&x, path), "line 3, column 4: timestamp '2020-13-02' is not a date");
    const char *mixed = "u1\ti1\t5\t2020-06-26\nu1\ti2\t4\t1593129600\n";
    write_text(path, mixed, strlen(mixed));
    expect_error("a number in a column of dates", mrec_load_tsv(&x, path), "line 2, column 4: timestamp '1593129600' is not a date, line 1 has a date");
    const char *words = "u1\ti1\t5\tyesterday\n";
    write_text(path, words, strlen(words));
    expect_error("a word for a timestamp", mrec_load_tsv(&x, path), "timestamp 'yesterday' is not a number or a date");

    /* a column of dates: temporal splits order by them, and save_on_disk writes them back */
    const char *good = "u1\ti1\t5.0\t2020-06-27\nu1\ti2\t4.5\t2020-06-26\nu1\ti3\t3.0\t2020-06-28\nu2\ti1\t1.0\t2019-01-01\nu2\ti3\t2.0\t2018-12-31\n";
    write_text(path, good, strlen(good));
    if (t_status(mrec_load_tsv(&x, path), MREC_OK, "a column of dates loads")) {
        mrec_elliot_part t = {.strategy = MREC_ELLIOT_TEMPORAL, .leave_n = 1};
        t_status(mrec_split_elliot(&x, &t, NULL, 42), MREC_OK, "temporal_hold_out on dates");
        snprintf(path, sizeof path, "%s/dates_test.tsv", dir);
        size_t n = 0;
        char *text = mrec_write_elliot_split(&x, MREC_SPLIT_TEST, path) ? NULL : slurp(path, &n);
        t_check(text && !strcmp(text, "u1\ti3\t3.0\t2020-06-28\nu2\ti1\t1.0\t2019-01-01\n"),
                "the latest date of each user is held out, written back as read, ratings as pandas writes floats: '%s'", text ? text : "");
        free(text);
        mrec_elliot_part f = {.strategy = MREC_ELLIOT_FIXED_TIME};
        t_status(mrec_elliot_part_parse("timestamp:2020-06-27", &f), MREC_OK, "fixed_timestamp at a date");
        t_status(mrec_split_elliot(&x, &f, NULL, 42), MREC_OK, "fixed_timestamp at a date splits");
        int held = 0;
        for (int64_t k = 0; k < x.n; k++) held += x.split[k] == MREC_SPLIT_TEST;
        t_check(held == 2, "fixed_timestamp 2020-06-27: the 2 rows from that day on are held out (%d)", held);
        mrec_interactions_free(&x);
    }

    /* bad parts, bad seeds, users too small for Elliot */
    mrec_elliot_part p;
    expect_error("test_ratio 1.5", mrec_elliot_part_parse("random:1.5", &p), "test_ratio must be a number in (0, 1)");
    expect_error("test_ratio 0", mrec_elliot_part_parse("temporal:0", &p), "test_ratio must be a number in (0, 1)");
    expect_error("leave_n_out 0", mrec_elliot_part_parse("random:n=0", &p), "leave_n_out (n=N) must be a whole number");
    expect_error("an unknown strategy", mrec_elliot_part_parse("random_cross_validation:5", &p), "is not a splitting strategy");
    expect_error("a timestamp that is not one", mrec_elliot_part_parse("timestamp:2020-02-30", &p), "fixed_timestamp wants whole seconds");
    expect_error("a prefilter that is not Elliot's", mrec_prefilter_parse("user_average:1", (mrec_prefilter[4]){0}, 4, &(int){0}),
                 "is not rating:X, user:K, item:K, kcore:K or rounds:K:N");
    /* the numbers go through the checked parsers: no blanks, hexadecimal, NaN or trailing text that strtod forgives */
    static const char *const loose_parts[][2] = {
        {"random:0x1p-2", "test_ratio must be a number"}, {"random: 0.2", "test_ratio must be a number"},
        {"random:nan", "test_ratio must be a number"},
        {"kfold: 3", "takes 2 to"},                         {"kfold:3 ", "takes 2 to"},
        {"kfold:0x3", "takes 2 to"},                        {"random:0.2,folds= 2", "folds=N takes 1 to"},
        {"random:n= 1", "leave_n_out (n=N)"},               {"random:n=1e3", "leave_n_out (n=N)"},
        {"timestamp:best: 1:1", "MIN_BELOW:MIN_OVER"},      {"timestamp:best:1:1x", "MIN_BELOW:MIN_OVER"},
        {"timestamp:best:1", "MIN_BELOW:MIN_OVER"},
    };
    for (size_t i = 0; i < sizeof loose_parts / sizeof loose_parts[0]; i++)
        expect_error(loose_parts[i][0], mrec_elliot_part_parse(loose_parts[i][0], &p), loose_parts[i][1]);
    static const char *const loose_filters[][2] = {
        {"rating: 3", "not a number"}, {"rating:0x3", "not a number"}, {"rating:inf", "not a number"},
        {"user:5.0", "whole number"},  {"kcore: 5", "whole number"},   {"rounds:5: 2", "rounds:K:N"},
        {"rounds:5", "rounds:K:N"},    {"rounds:5:2:1", "rounds:K:N"},
    };
    for (size_t i = 0; i < sizeof loose_filters / sizeof loose_filters[0]; i++)
        expect_error(loose_filters[i][0], mrec_prefilter_parse(loose_filters[i][0], (mrec_prefilter[4]){0}, 4, &(int){0}),
                     loose_filters[i][1]);
    {
        mrec_prefilter f[2];
        int n = 0;
        t_check(!mrec_prefilter_parse("rounds:5:2,rating:-1.5", f, 2, &n) && n == 2 && f[0].core == 5 && f[0].rounds == 2 &&
                    f[1].threshold == -1.5,
                "rounds:5:2,rating:-1.5 reads as two steps");
        t_check(!mrec_elliot_part_parse("timestamp:best:3:0", &p) && p.best && p.min_below == 3 && p.min_over == 0,
                "timestamp:best:3:0 reads");
    }
    snprintf(path, sizeof path, "%s/small.tsv", dir);
    const char *small = "1\t10\t5\n1\t11\t4\n1\t12\t3\n2\t10\t5\n";
    write_text(path, small, strlen(small));
    if (t_status(mrec_load_tsv(&x, path), MREC_OK, "a small file loads")) {
        mrec_elliot_part bad = {.strategy = MREC_ELLIOT_RANDOM, .ratio = 1.5};
        expect_error("test_ratio 1.5 given to the splitter", mrec_split_elliot(&x, &bad, NULL, 42), "test_ratio must lie in (0, 1)");
        bad = (mrec_elliot_part){.strategy = (mrec_elliot_strategy)7, .ratio = 0.2};
        expect_error("an unknown strategy given to the splitter", mrec_split_elliot(&x, &bad, NULL, 42), "unknown strategy");
        bad = (mrec_elliot_part){.strategy = MREC_ELLIOT_RANDOM, .leave_n = 2};
        expect_error("leave_n_out 2 with a user of 1 row", mrec_split_elliot(&x, &bad, NULL, 42), "user '2' has 1 interactions, fewer than leave_n_out 2");
        bad = (mrec_elliot_part){.strategy = MREC_ELLIOT_RANDOM, .ratio = 0.5};
        expect_error("a seed numpy refuses", mrec_split_elliot(&x, &bad, NULL, 1ull << 32), "np.random.seed takes 0 to 2^32 - 1");
        bad = (mrec_elliot_part){.strategy = MREC_ELLIOT_TEMPORAL, .ratio = 0.5};
        expect_error("temporal_hold_out without timestamps", mrec_split_elliot(&x, &bad, NULL, 42), "temporal_hold_out needs timestamps");
        mrec_interactions_free(&x);
    }
    const char *twice = "1\t10\n01\t11\n";
    write_text(path, twice, strlen(twice));
    if (t_status(mrec_load_tsv(&x, path), MREC_OK, "ids '1' and '01' load as two users")) {
        mrec_elliot_part r = {.strategy = MREC_ELLIOT_RANDOM, .ratio = 0.5};
        expect_error("'1' and '01', one user to pandas", mrec_split_elliot(&x, &r, NULL, 42), "are one user to Elliot");
        mrec_interactions_free(&x);
    }
}

int main(void) {
    t_suite("split");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    mt_parity();
    fixture_cases();
    config_case();
    dates_and_errors();
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_finish();
}
