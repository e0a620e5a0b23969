/* test_outputs.c: outputs appear whole or not at all.
 *
 * The atomic file (nn/io.c) against links planted at the names it could
 * use and against writers racing on one path (two processes, two threads);
 * output folders (tools/files.c, included here as the binary links it):
 * the lock that refuses a second run and names the first, --overwrite that
 * leaves the old folder untouched until the new one is complete and never
 * merges the two; and through the binary ($MREC_BIN): --resume, which keeps
 * the verified items of a killed run and redoes the rest byte for byte, and
 * a NaN feature, which is refused with the item named and nothing written.
 * Every input is generated here or comes from tests/fixtures.
 */
#include "../tools/files.c" /* first: it sets _GNU_SOURCE for itself */

#include "harness.h"

#include "../nn/mrec_io.h"
#include "../nn/mrec_npy.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <sys/wait.h>

static char dir[] = "/tmp/mrec_test_outputs_XXXXXX";
static const char *bin;

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd) != 0) fprintf(stderr, "setup command failed: %s\n", cmd);
}

/* `mrec args` with its stdout and stderr in out; a stuck run is stopped by timeout(1). Returns the exit status. */
static int run(const char *args, char *out, size_t cap) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "timeout 120 %s %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int read_all(const char *path, char *buf, size_t cap, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    *n = fread(buf, 1, cap, f);
    fclose(f);
    return 1;
}

static int same_file(const char *a, const char *b) {
    static char x[1 << 16], y[1 << 16];
    size_t nx, ny;
    return read_all(a, x, sizeof x, &nx) && read_all(b, y, sizeof y, &ny) && nx == ny && nx < sizeof x && !memcmp(x, y, nx);
}

/* Names in a folder, hidden ones included ("." and ".." left out). */
static int count_entries(const char *path, const char *prefix) {
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && !strncmp(e->d_name, prefix, strlen(prefix))) n++;
    if (d) closedir(d);
    return n;
}

/* Two folders hold the same names with the same bytes. */
static int same_tree(const char *a, const char *b, int *files) {
    DIR *d = opendir(a);
    int ok = d != NULL;
    *files = 0;
    for (struct dirent *e; ok && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char pa[8192], pb[8192];
        snprintf(pa, sizeof pa, "%s/%s", a, e->d_name);
        snprintf(pb, sizeof pb, "%s/%s", b, e->d_name);
        ok = same_file(pa, pb);
        if (!ok) fprintf(stderr, "  %s differs from %s\n", pb, pa);
        ++*files;
    }
    if (d) closedir(d);
    return ok && count_entries(b, "") == *files;
}

/* ---- the atomic file ---- */

static void atomic_links(void) {
    char victim[4200], path[4200], planted[4400];
    snprintf(victim, sizeof victim, "%s/victim", dir);
    sh("printf precious > %s", victim);
    /* the names earlier versions used: <path>.tmp and <path>.tmp.<pid>, with the pid of the writer known in
     * advance (a child that waits), and the final name itself */
    snprintf(path, sizeof path, "%s/feat.npy", dir);
    int go[2];
    if (!t_check(pipe(go) == 0, "a pipe")) return;
    pid_t child = fork();
    if (child == 0) {
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) != 1) _exit(3);
        float row[4] = {1, 2, 3, 4};
        _exit(mrec_npy_write(path, MREC_NPY_F32, 2, (int64_t[]){1, 4}, row) ? 1 : 0);
    }
    close(go[0]);
    const char *suffixes[] = {".tmp", ".tmp.%ld", ""};
    for (int i = 0; i < 3; i++) {
        char suffix[64];
        snprintf(suffix, sizeof suffix, suffixes[i], (long)child);
        snprintf(planted, sizeof planted, "%s%s", path, suffix);
        if (symlink(victim, planted) != 0) fprintf(stderr, "symlink %s failed\n", planted);
    }
    if (write(go[1], "g", 1) != 1) fprintf(stderr, "pipe write failed\n");
    close(go[1]);
    int st = 0;
    waitpid(child, &st, 0);
    char buf[64];
    size_t n = 0;
    read_all(victim, buf, sizeof buf, &n);
    struct stat sb;
    t_check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the write with links planted at <path>.tmp, <path>.tmp.<pid> and <path> succeeds");
    t_check(n == 8 && !memcmp(buf, "precious", 8), "no planted link is followed: the file it points to is untouched (%zu bytes)", n);
    t_check(lstat(path, &sb) == 0 && S_ISREG(sb.st_mode) && mrec_feature_file_ok(path, 4),
            "the output replaced the link at its own name with a whole regular file");
    snprintf(planted, sizeof planted, "%s.tmp.%ld", path, (long)child);
    t_check(lstat(planted, &sb) == 0 && S_ISLNK(sb.st_mode), "the planted links are left as they were, not used");
    sh("rm -f %s/feat.npy*", dir);

    /* the lock file's name: a link there is refused, not followed */
    char out[4200], lock[4400];
    snprintf(out, sizeof out, "%s/linked", dir);
    snprintf(lock, sizeof lock, "%s/.linked.lock", dir);
    if (symlink(victim, lock) != 0) fprintf(stderr, "symlink %s failed\n", lock);
    mrec_out_dir od;
    mrec_status s = mrec_out_begin(&od, out, 0);
    t_check(s == MREC_ERR_IO && strstr(mrec_error_detail(), "linked"), "a link planted at the lock file's name is refused: %s",
            mrec_error_detail());
    read_all(victim, buf, sizeof buf, &n);
    t_check(n == 8 && !memcmp(buf, "precious", 8), "the lock file's link is not followed");
    if (!s) mrec_out_abort(&od);
    unlink(lock);
}

/* Two writers of one path: whatever the order, the file is one writer's whole array and no temporary is left. */
typedef struct {
    const char *path;
    float value;
    int failures;
} writer;

static void *write_many(void *arg) {
    writer *w = arg;
    float row[256];
    for (int i = 0; i < 256; i++) row[i] = w->value;
    for (int r = 0; r < 200; r++) w->failures += mrec_npy_write(w->path, MREC_NPY_F32, 2, (int64_t[]){1, 256}, row) != MREC_OK;
    return NULL;
}

static int one_writers_array(const char *path, float a, float b) {
    float *v = NULL;
    int nd = 0, ok;
    int64_t s[8];
    ok = !mrec_npy_read_f32(path, &v, &nd, s) && nd == 2 && s[0] == 1 && s[1] == 256;
    for (int i = 1; ok && i < 256; i++) ok = v[i] == v[0];
    ok = ok && (v[0] == a || v[0] == b);
    free(v);
    return ok;
}

static void atomic_races(void) {
    char sub[4200], path[4400];
    snprintf(sub, sizeof sub, "%s/race", dir);
    mkdir(sub, 0755);
    snprintf(path, sizeof path, "%s/shared.npy", sub);
    /* two processes */
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        if ((kids[k] = fork()) == 0) {
            writer w = {path, (float)(k + 1), 0};
            write_many(&w);
            _exit(w.failures ? 1 : 0);
        }
    }
    int bad = 0;
    for (int k = 0; k < 2; k++) {
        int st = 0;
        waitpid(kids[k], &st, 0);
        bad += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    t_check(!bad && one_writers_array(path, 1, 2), "two processes writing one .npy 200 times each: every write succeeds, the file is whole");
    /* two threads of one process share a pid, so a name made from the pid is shared too */
    writer w[2] = {{path, 3, 0}, {path, 4, 0}};
    pthread_t th[2];
    for (int k = 0; k < 2; k++) pthread_create(&th[k], NULL, write_many, &w[k]);
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    t_check(!w[0].failures && !w[1].failures && one_writers_array(path, 3, 4),
            "two threads writing one .npy: %d and %d failed writes, the file is whole", w[0].failures, w[1].failures);
    t_check(count_entries(sub, "") == 1, "no temporary file is left beside it (%d entries)", count_entries(sub, ""));
}

/* ---- output folders ---- */

static void out_folders(void) {
    char out[4200], file[4600], lock[4400];
    snprintf(out, sizeof out, "%s/folder", dir);
    snprintf(lock, sizeof lock, "%s/.folder.lock", dir);
    mrec_out_dir od;
    mrec_status st = mrec_out_begin(&od, out, 0);
    struct stat sb;
    t_check(!st && stat(od.scratch, &sb) == 0 && S_ISDIR(sb.st_mode) && stat(out, &sb) != 0 && stat(lock, &sb) == 0,
            "a new output folder: a scratch folder beside it, the folder itself absent, a lock file");
    if (st) return;
    snprintf(file, sizeof file, "%s/old.txt", od.scratch);
    sh("echo old > %s", file);
    t_check(!mrec_out_commit(&od) && stat(out, &sb) == 0 && count_entries(dir, ".folder.") == 0,
            "commit puts it in place; no scratch folder or lock file is left");

    /* a second run while the first holds the folder: refused at once, naming the folder and the first run's pid */
    int held[2], release[2];
    if (!t_check(pipe(held) == 0 && pipe(release) == 0, "pipes")) return;
    pid_t child = fork();
    if (child == 0) {
        mrec_out_dir mine;
        char c = mrec_out_begin(&mine, out, MREC_OUT_OVERWRITE) ? 'n' : 'y';
        if (write(held[1], &c, 1) != 1 || read(release[0], &c, 1) != 1) _exit(3);
        mrec_out_abort(&mine);
        _exit(0);
    }
    char c = 0, pid[32];
    if (read(held[0], &c, 1) != 1) c = 0;
    snprintf(pid, sizeof pid, "pid %ld", (long)child);
    st = mrec_out_begin(&od, out, MREC_OUT_OVERWRITE);
    t_check(c == 'y' && st == MREC_ERR_IO && strstr(mrec_error_detail(), out) && strstr(mrec_error_detail(), pid),
            "a second run into a locked folder fails at once, naming it and %s: %s", pid, mrec_error_detail());
    if (!st) mrec_out_abort(&od);
    if (write(release[1], "r", 1) != 1) fprintf(stderr, "pipe write failed\n");
    int ws = 0;
    waitpid(child, &ws, 0);
    st = mrec_out_begin(&od, out, MREC_OUT_OVERWRITE);
    t_check(!st, "once the first run is done, the folder can be taken: %s", st ? mrec_error_detail() : "");
    if (!st) mrec_out_abort(&od);
    snprintf(file, sizeof file, "%s/old.txt", out);
    t_check(stat(file, &sb) == 0, "a run that stops without committing leaves the folder as it was");

    /* an existing output: refused without --overwrite; with it, untouched until the new one is complete, then replaced whole */
    st = mrec_out_begin(&od, out, 0);
    t_check(st == MREC_ERR_IO && strstr(mrec_error_detail(), "--overwrite") && strstr(mrec_error_detail(), out),
            "an existing output is refused without --overwrite: %s", mrec_error_detail());
    if (!st) mrec_out_abort(&od);
    st = mrec_out_begin(&od, out, MREC_OUT_OVERWRITE);
    if (!t_check(!st, "--overwrite takes it")) return;
    snprintf(file, sizeof file, "%s/new.txt", od.scratch);
    sh("echo new > %s", file);
    snprintf(file, sizeof file, "%s/new.txt", out);
    t_check(stat(file, &sb) != 0 && count_entries(out, "") == 1, "before the commit the old folder is untouched");
    st = mrec_out_commit(&od);
    char old[4600];
    snprintf(old, sizeof old, "%s/old.txt", out);
    t_check(!st && stat(file, &sb) == 0 && stat(old, &sb) != 0 && count_entries(dir, ".folder.") == 0,
            "after it the folder is the new one only: old and new never merge, nothing is left beside it");

    /* never the folder the user stands in, or one holding it */
    char cwd[4096], up[4200];
    if (getcwd(cwd, sizeof cwd)) {
        snprintf(up, sizeof up, "%s", cwd);
        *strrchr(up, '/') = 0; /* the folder holding it, by name */
        const char *precious[] = {cwd, up};
        for (int k = 0; k < 2; k++) {
            st = mrec_out_begin(&od, precious[k], MREC_OUT_OVERWRITE);
            t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "folder of its own"), "--overwrite of %s is refused: %s", precious[k],
                    mrec_error_detail());
            if (!st) mrec_out_abort(&od);
        }
    }

    /* an empty folder is as good as none (a folder made for the output beforehand) */
    snprintf(out, sizeof out, "%s/empty", dir);
    mkdir(out, 0755);
    st = mrec_out_begin(&od, out, 0);
    t_check(!st, "an existing empty folder is taken without --overwrite");
    if (!st) mrec_out_abort(&od);
    t_check(stat(out, &sb) == 0 && S_ISDIR(sb.st_mode), "an aborted run leaves the empty folder as it was");

    /* a killed run's scratch folder: swept by the next run, taken up with --resume */
    snprintf(out, sizeof out, "%s/killed", dir);
    sh("mkdir -p %s/.killed.part-AAAAAA && echo x > %s/.killed.part-AAAAAA/a.npy", dir, dir);
    st = mrec_out_begin(&od, out, MREC_OUT_RESUME);
    snprintf(file, sizeof file, "%s/a.npy", od.scratch);
    t_check(!st && od.resumed && stat(file, &sb) == 0, "--resume takes up a killed run's scratch folder");
    if (!st) mrec_out_abort(&od);
    sh("mkdir -p %s/.killed.part-BBBBBB", dir);
    st = mrec_out_begin(&od, out, 0);
    t_check(!st && !od.resumed && count_entries(dir, ".killed.part-") == 1, "without --resume a killed run's scratch folder is swept");
    if (!st) mrec_out_abort(&od);

    /* the row check names the item and the model */
    float row[3] = {0, NAN, 1};
    st = mrec_check_feature_row(row, 3, "item42", "tiny-model");
    t_check(st && strstr(mrec_error_detail(), "item42") && strstr(mrec_error_detail(), "tiny-model") && strstr(mrec_error_detail(), "NaN"),
            "a NaN row is refused naming the item and the model: %s", mrec_error_detail());
    row[1] = INFINITY;
    t_check(mrec_check_feature_row(row, 3, "i", "m") != MREC_OK, "an infinite value is refused too");
}

/* ---- through the binary: resume, overwrite, NaN ---- */

/* A text model from tests/fixtures/tiny_bert with a vocabulary written here; `poison` makes the word
 * 'poison' (id 15) embed as NaN. */
static int make_model(const char *name, int poison) {
    char cwd[1024], path[4400];
    if (!getcwd(cwd, sizeof cwd)) return 0;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    mkdir(path, 0755);
    sh("ln -sf %s/tests/fixtures/tiny_bert/config.json %s/config.json", cwd, path);
    sh("printf '[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\na\\nb\\nc\\nred\\nblue\\nshoe\\nhat\\nbig\\nsmall\\ngreen\\npoison\\n' > %s/vocab.txt", path);
    if (!poison) {
        sh("ln -sf %s/tests/fixtures/tiny_bert/model.safetensors %s/model.safetensors", cwd, path);
        return 1;
    }
    /* a copy whose word-embedding row 15 is FLT_MAX: finite, so the checkpoint loads (NaN weights are
     * refused at load), and the LayerNorm of a row of them overflows to NaN in the forward pass */
    static char buf[1 << 20];
    size_t n = 0;
    if (!read_all("tests/fixtures/tiny_bert/model.safetensors", buf, sizeof buf, &n) || n < 8 || n == sizeof buf) return 0;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | (uint8_t)buf[i];
    if (hlen > n - 8) return 0;
    cJSON *h = cJSON_ParseWithLength(buf + 8, (size_t)hlen), *t = cJSON_GetObjectItem(h, "embeddings.word_embeddings.weight");
    cJSON *off = cJSON_GetObjectItem(t, "data_offsets"), *shape = cJSON_GetObjectItem(t, "shape");
    int ok = off && shape && cJSON_GetArraySize(shape) == 2;
    if (ok) {
        size_t start = 8 + (size_t)hlen + (size_t)cJSON_GetArrayItem(off, 0)->valuedouble;
        int hidden = cJSON_GetArrayItem(shape, 1)->valueint;
        float huge = FLT_MAX;
        for (int d = 0; d < hidden; d++) memcpy(buf + start + ((size_t)15 * hidden + d) * 4, &huge, 4);
        snprintf(path, sizeof path, "%s/%s/model.safetensors", dir, name);
        FILE *f = fopen(path, "wb");
        ok = f && fwrite(buf, 1, n, f) == n;
        if (f) ok &= fclose(f) == 0;
    }
    cJSON_Delete(h);
    return ok;
}

/* items.tsv: n items it0..it(n-1), each text a different mix of the vocabulary; item `poisoned` says 'poison'. */
static void make_items(const char *name, int n, int poisoned) {
    static const char *const words[] = {"a", "b", "c", "red", "blue", "shoe", "hat", "big", "small", "green"};
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "id\ttext\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "it%d\t%s %s %s%s\n", i, words[i % 10], words[(i / 10) % 10], words[(i / 100) % 10], i == poisoned ? " poison" : "");
    fclose(f);
}

static void through_binary(void) {
    char out[65536], args[8192], a[1024], b[1024];
    if (!t_check(make_model("model", 0) && make_model("nan_model", 1), "tiny text models (one with a NaN embedding row)")) return;
    make_items("items.tsv", 100, -1);
    make_items("few.tsv", 10, -1);
    make_items("poisoned.tsv", 40, 7);
    const char *common = "extract-text --id-column id --text-column text --format per-item --batch-size 4";
    snprintf(args, sizeof args, "%s --model %s/model --input %s/items.tsv --out %s/ref", common, dir, dir, dir);
    int rc = run(args, out, sizeof out);
    snprintf(a, sizeof a, "%s/ref", dir);
    if (!t_check(rc == 0 && count_entries(a, "") == 100, "reference per-item extraction: rc %d, %d files, %.300s", rc, count_entries(a, ""), out))
        return;

    /* a killed run's scratch folder: 40 whole files, one cut short, one NaN, one of the wrong shape, and a lock file
     * left by a run that is gone */
    snprintf(b, sizeof b, "%s/.res.part-Q1w2E3", dir);
    mkdir(b, 0755);
    for (int i = 0; i < 40; i++) sh("cp %s/ref/it%d.npy %s/", dir, i, b);
    sh("head -c 100 %s/ref/it40.npy > %s/it40.npy", dir, b);
    float row[33];
    for (int d = 0; d < 33; d++) row[d] = d == 5 ? NAN : 0.5f;
    snprintf(a, sizeof a, "%s/.res.part-Q1w2E3/it41.npy", dir);
    mrec_npy_write(a, MREC_NPY_F32, 2, (int64_t[]){1, 32}, row);
    snprintf(a, sizeof a, "%s/.res.part-Q1w2E3/it42.npy", dir);
    row[5] = 0.5f;
    mrec_npy_write(a, MREC_NPY_F32, 2, (int64_t[]){1, 33}, row);
    sh("echo 999999 > %s/.res.lock", dir);
    snprintf(args, sizeof args, "%s --model %s/model --input %s/items.tsv --out %s/res --resume", common, dir, dir, dir);
    rc = run(args, out, sizeof out);
    int files = 0;
    snprintf(a, sizeof a, "%s/ref", dir);
    snprintf(b, sizeof b, "%s/res", dir);
    t_check(rc == 0 && strstr(out, "kept 32 of 100"), "--resume keeps the first chunk (32 verified items) and redoes the rest: rc %d, %.400s", rc, out);
    t_check(same_tree(a, b, &files) && files == 100, "the resumed output is byte-identical to the uninterrupted one (%d files)", files);
    t_check(count_entries(dir, ".res.") == 0, "no scratch folder or lock file is left (%d)", count_entries(dir, ".res."));

    /* re-running into an existing output */
    snprintf(args, sizeof args, "%s --model %s/model --input %s/few.tsv --out %s/ref", common, dir, dir, dir);
    rc = run(args, out, sizeof out);
    t_check(rc == 2 && strstr(out, "--overwrite") && count_entries(a, "") == 100, "a re-run without --overwrite is refused, the output untouched: rc %d, %.300s",
            rc, out);
    snprintf(args, sizeof args, "%s --model %s/model --input %s/few.tsv --out %s/ref --overwrite", common, dir, dir, dir);
    rc = run(args, out, sizeof out);
    t_check(rc == 0 && count_entries(a, "") == 10, "--overwrite replaces the output whole: %d files, not the old 100 plus the new 10", count_entries(a, ""));
    /* the matrix layout: the matrix and its ids come and go together */
    snprintf(args, sizeof args, "extract-text --id-column id --text-column text --model %s/model --input %s/items.tsv --out %s/mat", dir, dir, dir);
    rc = run(args, out, sizeof out);
    snprintf(args, sizeof args, "extract-text --id-column id --text-column text --model %s/model --input %s/few.tsv --out %s/mat --overwrite", dir, dir, dir);
    rc |= run(args, out, sizeof out);
    float *v = NULL;
    int nd = 0, lines = 0;
    int64_t s[8] = {0};
    snprintf(a, sizeof a, "%s/mat/text_feat.npy", dir);
    int ok = !mrec_npy_read_f32(a, &v, &nd, s);
    free(v);
    snprintf(a, sizeof a, "%s/mat/text_feat_ids.txt", dir);
    FILE *f = fopen(a, "r");
    for (int ch; f && (ch = fgetc(f)) != EOF;) lines += ch == '\n';
    if (f) fclose(f);
    t_check(rc == 0 && ok && s[0] == 10 && lines == 10, "matrix then --overwrite: text_feat.npy has %lld rows, its ids %d lines", (long long)s[0], lines);

    /* one id twice: per-item files would overwrite each other */
    sh("printf 'id\ttext\nx1\tred\nx2\tblue\nx1\tshoe\n' > %s/dup.tsv", dir);
    snprintf(args, sizeof args, "%s --model %s/model --input %s/dup.tsv --out %s/dup", common, dir, dir, dir);
    rc = run(args, out, sizeof out);
    snprintf(a, sizeof a, "%s/dup", dir);
    t_check(rc == 2 && strstr(out, "'x1' appears twice") && count_entries(dir, "dup") == 1 && count_entries(dir, ".dup.") == 0,
            "an id that appears twice is refused before anything is written: rc %d, %.300s", rc, out);

    /* a NaN feature: refused, naming the item and the model, nothing written */
    snprintf(args, sizeof args, "%s --model %s/nan_model --input %s/poisoned.tsv --out %s/nan", common, dir, dir, dir);
    rc = run(args, out, sizeof out);
    snprintf(a, sizeof a, "%s/nan", dir);
    struct stat sb;
    t_check(rc == 2 && strstr(out, "'it7'") && strstr(out, "nan_model") && strstr(out, "NaN"),
            "a NaN feature stops the run naming the item and the model: rc %d, %.300s", rc, out);
    t_check(stat(a, &sb) != 0 && count_entries(dir, ".nan.") == 0, "and nothing is written: no output folder, no scratch folder");
    snprintf(args, sizeof args, "extract-text --id-column id --text-column text --model %s/nan_model --input %s/poisoned.tsv --out %s/nan", dir, dir, dir);
    rc = run(args, out, sizeof out);
    t_check(rc == 2 && strstr(out, "'it7'") && stat(a, &sb) != 0, "the matrix layout refuses it too: rc %d", rc);
}

/* mrec extract on a Ducho config: a re-run into the old tree is refused, and with --overwrite replaces each
 * model's folder whole (the old items do not stay beside the new ones), its matrix and ids with it. */
static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    int n = 0;
    for (int ch; f && (ch = fgetc(f)) != EOF;) n += ch == '\n';
    if (f) fclose(f);
    return n;
}

static void ducho(void) {
    char out[65536], cfg[1024], args[8192], leaf[1024], npy[1100], ids[1100];
    for (int k = 0; k < 2; k++) {
        snprintf(cfg, sizeof cfg, "%s/ducho%d.yml", dir, k);
        FILE *f = fopen(cfg, "w");
        if (!f) return;
        fprintf(f, "dataset_path: %s\ntextual:\n  items:\n    input_path: %s\n    item_column: id\n    text_column: text\n"
                   "    output_path: feats\n    model: [{model_name: model, output_layers: 1, batch_size: 4}]\n",
                dir, k ? "few.tsv" : "items.tsv");
        fclose(f);
    }
    snprintf(leaf, sizeof leaf, "%s/feats/sentence_transformers/model/1", dir);
    snprintf(npy, sizeof npy, "%s.npy", leaf);
    snprintf(ids, sizeof ids, "%s_ids.txt", leaf);
    snprintf(args, sizeof args, "extract %s/ducho0.yml --weights %s --matrix", dir, dir);
    int rc = run(args, out, sizeof out);
    if (!t_check(rc == 0 && count_entries(leaf, "") == 100 && count_lines(ids) == 100, "mrec extract on a Ducho config: rc %d, %d files, %.300s", rc,
                 count_entries(leaf, ""), rc ? out : ""))
        return;
    snprintf(args, sizeof args, "extract %s/ducho1.yml --weights %s --matrix", dir, dir);
    rc = run(args, out, sizeof out);
    t_check(rc == 2 && strstr(out, leaf) && strstr(out, "--overwrite") && count_entries(leaf, "") == 100,
            "a re-run of a Ducho config into its old tree is refused, naming the folder: rc %d, %.300s", rc, out);
    snprintf(args, sizeof args, "extract %s/ducho1.yml --weights %s --matrix --overwrite", dir, dir);
    rc = run(args, out, sizeof out);
    float *v = NULL;
    int nd = 0;
    int64_t s[8] = {0};
    int ok = !mrec_npy_read_f32(npy, &v, &nd, s);
    free(v);
    t_check(rc == 0 && count_entries(leaf, "") == 10 && ok && s[0] == 10 && count_lines(ids) == 10,
            "with --overwrite the model's folder is the new run's alone: %d files (the old run had 100), matrix %lld rows, ids %d", count_entries(leaf, ""),
            (long long)s[0], count_lines(ids));
    char parent[1100];
    snprintf(parent, sizeof parent, "%s/feats/sentence_transformers/model", dir);
    t_check(count_entries(parent, ".") == 0, "nothing is left beside it (%d hidden entries)", count_entries(parent, "."));
}

int main(void) {
    t_suite("outputs");
    signal(SIGPIPE, SIG_IGN);
    bin = getenv("MREC_BIN");
    T_REQUIRE(mkdtemp(dir) != NULL);
    atomic_links();
    atomic_races();
    out_folders();
    if (bin && access(bin, X_OK) == 0) through_binary(), ducho();
    else t_skip("resume, overwrite and NaN through the binary: MREC_BIN is not set");
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_finish();
}
