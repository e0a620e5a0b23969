/* test_kill.c: a run killed at any moment leaves the old output or none,
 * never part of one, and a rerun finishes it.
 *
 * Runs the binary ($MREC_BIN) on inputs made here and on the tiny models of
 * tests/fixtures: extract-text (per item and as one matrix), extract-image
 * and train, each killed with SIGKILL after several delays spread over an
 * uninterrupted run's time. After each kill the output folder is absent or
 * whole (equal to an uninterrupted run's), or, when the run was replacing an
 * output with --overwrite, the old one byte for byte; then a rerun (with
 * --resume for per-item extraction) gives the uninterrupted run's bytes.
 * Last, two runs into one folder at once: the second stops at once, naming
 * the folder and the first run's pid, and the first one's output is right.
 * Every child is stopped after a time limit, so nothing here can hang.
 */
#include "harness.h"

#include "../nn/mrec_npy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static char dir[] = "/tmp/mrec_test_kill_XXXXXX";
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

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* Starts `mrec args` (split at spaces), its output into dir/log. */
static pid_t spawn(const char *args) {
    static char buf[8192], log[1024];
    snprintf(buf, sizeof buf, "%s", args);
    snprintf(log, sizeof log, "%s/log", dir);
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)bin;
    for (char *t = strtok(buf, " "); t && argc < 63; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(log, "w", stdout);
        if (f) dup2(fileno(stdout), 2);
        execv(bin, argv);
        _exit(127);
    }
    return pid;
}

/* Waits for the child at most `limit` seconds (then kills it). Returns its exit status, 128 + signal, or -1. */
static int wait_for(pid_t pid, double limit) {
    double t0 = now();
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0) return -1;
        if (now() - t0 > limit) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            fprintf(stderr, "a child ran past %.0f s and was killed\n", limit);
            return -1;
        }
        usleep(2000);
    }
}

static int run(const char *args) { return wait_for(spawn(args), 300); }

static void log_text(char *out, size_t cap) {
    char path[1100];
    snprintf(path, sizeof path, "%s/log", dir);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
}

/* Kills `mrec args` after `delay` seconds; returns the exit status it had if it finished first, else -9. */
static int run_killed(const char *args, double delay) {
    pid_t pid = spawn(args);
    double t0 = now();
    int st = 0;
    while (now() - t0 < delay) {
        if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -9;
}

/* Files written so far into the scratch folder of output `name` (".<name>.part-*" in `parent`). */
static int scratch_files_in(const char *parent, const char *name) {
    char prefix[300];
    snprintf(prefix, sizeof prefix, ".%s.part-", name);
    DIR *d = opendir(parent);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, strlen(prefix))) continue;
        char p[1400];
        snprintf(p, sizeof p, "%s/%s", parent, e->d_name);
        DIR *s = opendir(p);
        for (struct dirent *f; s && (f = readdir(s));) n += f->d_name[0] != '.';
        if (s) closedir(s);
    }
    if (d) closedir(d);
    return n;
}

static int scratch_files(const char *name) { return scratch_files_in(dir, name); }

/* Kills `mrec args` once `files` item files are in the scratch folder of output `name`, so that the kill lands
 * among the writes whatever the machine's speed; returns the exit status if it finished first, else -9. */
static int run_killed_after(const char *args, const char *name, int files) {
    pid_t pid = spawn(args);
    double t0 = now();
    int st = 0;
    while (scratch_files(name) < files && now() - t0 < 300) {
        if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(500);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -9;
}

static int read_all(const char *path, char **buf, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc(len > 0 ? (size_t)len : 1);
    *n = *buf ? fread(*buf, 1, (size_t)len, f) : 0;
    fclose(f);
    return *buf && *n == (size_t)len;
}

static int same_file(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int ok = read_all(a, &x, &nx) && read_all(b, &y, &ny) && nx == ny && !memcmp(x, y, nx);
    free(x), free(y);
    return ok;
}

static int count_entries(const char *path, const char *prefix) {
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && !strncmp(e->d_name, prefix, strlen(prefix))) n++;
    if (d) closedir(d);
    return n;
}

/* Folder b holds exactly the names of folder a (`only`: those names; NULL: all), with the same bytes. */
static int same_tree(const char *a, const char *b, const char *const *only) {
    int files = 0, ok = 1;
    if (only) {
        for (; *only && ok; only++, files++) {
            char pa[2200], pb[2200];
            snprintf(pa, sizeof pa, "%s/%s", a, *only);
            snprintf(pb, sizeof pb, "%s/%s", b, *only);
            ok = same_file(pa, pb);
        }
        return ok;
    }
    DIR *d = opendir(a);
    ok = d != NULL;
    for (struct dirent *e; ok && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char pa[2200], pb[2200];
        snprintf(pa, sizeof pa, "%s/%s", a, e->d_name);
        snprintf(pb, sizeof pb, "%s/%s", b, e->d_name);
        ok = same_file(pa, pb);
        files++;
    }
    if (d) closedir(d);
    return ok && count_entries(b, "") == files;
}

static int exists(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* ---- inputs ---- */

static void text_model(void) {
    char cwd[1024];
    if (!getcwd(cwd, sizeof cwd)) return;
    sh("mkdir -p %s/model && ln -sf %s/tests/fixtures/tiny_bert/config.json %s/tests/fixtures/tiny_bert/model.safetensors %s/model/", dir, cwd, cwd,
       dir);
    sh("printf '[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n[MASK]\\na\\nb\\nc\\nred\\nblue\\nshoe\\nhat\\nbig\\nsmall\\ngreen\\n' > %s/model/vocab.txt", dir);
}

static void text_items(const char *name, int n) {
    static const char *const words[] = {"a", "b", "c", "red", "blue", "shoe", "hat", "big", "small", "green"};
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "id\ttext\n");
    for (int i = 0; i < n; i++) fprintf(f, "it%d\t%s %s %s %s\n", i, words[i % 10], words[(i / 10) % 10], words[(i / 100) % 10], words[(i / 7) % 10]);
    fclose(f);
}

static void put_u32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v; }

static int png_chunk(FILE *f, const char *type, const uint8_t *data, uint32_t n) {
    uint8_t head[8];
    put_u32(head, n);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(0, head + 4, 4);
    if (n) crc = crc32(crc, data, n); /* zlib takes a NULL buffer as a request for the initial value */
    uint8_t tail[4];
    put_u32(tail, (uint32_t)crc);
    return fwrite(head, 1, 8, f) == 8 && (!n || fwrite(data, 1, n, f) == n) && fwrite(tail, 1, 4, f) == 4;
}

/* A w x h RGB PNG (filter 0 on every row), its pixels from `seed`. */
static int write_png(const char *path, int w, int h, unsigned seed) {
    size_t raw_n = (size_t)h * (1 + 3 * (size_t)w);
    uint8_t *raw = malloc(raw_n), *z = malloc(compressBound(raw_n));
    uLongf zn = compressBound(raw_n);
    int ok = raw && z;
    for (int y = 0; ok && y < h; y++) {
        uint8_t *row = raw + (size_t)y * (1 + 3 * (size_t)w);
        row[0] = 0;
        for (int x = 0; x < 3 * w; x++) row[1 + x] = (uint8_t)((seed * 37u + (unsigned)x * 11u + (unsigned)y * 5u * (seed % 7 + 1)) & 0xFF);
    }
    ok = ok && compress2(z, &zn, raw, raw_n, 6) == Z_OK;
    uint8_t ihdr[13] = {0};
    put_u32(ihdr, (uint32_t)w), put_u32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8, ihdr[9] = 2; /* 8-bit RGB */
    FILE *f = ok ? fopen(path, "wb") : NULL;
    ok = f && fwrite("\x89PNG\r\n\x1a\n", 1, 8, f) == 8 && png_chunk(f, "IHDR", ihdr, 13) && png_chunk(f, "IDAT", z, (uint32_t)zn) &&
         png_chunk(f, "IEND", NULL, 0);
    if (f) ok &= fclose(f) == 0;
    free(raw), free(z);
    return ok;
}

/* ---- the cases ---- */

/* Kills `args` (its --out is dir/<out>) at five points: with n_items > 0, when that fraction of the items is
 * written; else after that fraction of `full` seconds. Each time the folder must be absent or equal to ref;
 * then the rerun (the same run, with --resume where it applies) must give ref's bytes. */
static void kill_and_rerun(const char *what, const char *args_fmt, const char *rerun_suffix, const char *out, double full, int n_items,
                           const char *const *only) {
    static const double fractions[] = {0.02, 0.25, 0.5, 0.75, 0.95};
    char args[8192], folder[1100], ref[1100], prefix[300];
    snprintf(ref, sizeof ref, "%s/ref_%s", dir, out);
    int partial = 0, killed = 0, rerun_bad = 0, debris = 0;
    for (int k = 0; k < 5; k++) {
        char name[200];
        snprintf(name, sizeof name, "%s%d", out, k);
        snprintf(folder, sizeof folder, "%s/%s", dir, name);
        snprintf(args, sizeof args, args_fmt, folder);
        int rc = n_items ? run_killed_after(args, name, (int)(n_items * fractions[k]) + 1) : run_killed(args, full * fractions[k]);
        killed += rc == -9;
        if (exists(folder) && !same_tree(ref, folder, only)) {
            partial++;
            fprintf(stderr, "  %s: killed after %.2f s, %s is partial\n", what, full * fractions[k], folder);
        }
        /* a run killed just after its folder appeared has finished its output: the rerun replaces it */
        snprintf(args + strlen(args), sizeof args - strlen(args), "%s%s", exists(folder) ? " --overwrite" : "", rerun_suffix);
        rc = run(args);
        if (rc != 0 || !same_tree(ref, folder, only)) {
            char log[4096];
            log_text(log, sizeof log);
            fprintf(stderr, "  %s: the rerun after a kill at %.2f s: rc %d, %s\n", what, full * fractions[k], rc, log);
            rerun_bad++;
        }
        snprintf(prefix, sizeof prefix, ".%s.", name);
        debris += count_entries(dir, prefix);
    }
    /* a kill by time may come after a fast run has finished; one by the count of files written seldom does,
     * though on a busy machine the last items may be written before the kill lands */
    t_check(killed >= (n_items ? 3 : 1), "%s: %d of 5 runs were killed before they finished", what, killed);
    t_check(!partial, "%s: after each kill the output is absent or whole, never partial (%d partial)", what, partial);
    t_check(!rerun_bad, "%s: each rerun gives the uninterrupted run's bytes (%d differ)", what, rerun_bad);
    t_check(!debris, "%s: after the reruns nothing is left beside the output (%d scratch or lock entries)", what, debris);
}

/* A run replacing an output with --overwrite, killed (as in kill_and_rerun): the old output stays, byte for byte.
 * A kill by time (n_items 0) may land after the new output was committed, on a busy machine: then the folder
 * must be that whole new output, the same file set and the same bytes in the files that hold no times (only). */
static void kill_overwrite(const char *what, const char *make_old, const char *args_fmt, const char *out, double full, int n_items,
                           const char *const *only) {
    char folder[1100], saved[1100], args[8192];
    snprintf(folder, sizeof folder, "%s/%s", dir, out);
    snprintf(saved, sizeof saved, "%s/%s_saved", dir, out);
    snprintf(args, sizeof args, make_old, folder);
    if (!t_check(run(args) == 0, "%s: the old output", what)) return;
    sh("cp -r %s %s", folder, saved);
    int changed = 0, killed = 0;
    for (int k = 1; k <= 3; k++) {
        snprintf(args, sizeof args, args_fmt, folder);
        int rc = n_items ? run_killed_after(args, out, n_items * k / 4) : run_killed(args, full * k / 4.0);
        killed += rc == -9;
        if (rc != -9) {
            char log[4096];
            log_text(log, sizeof log);
            fprintf(stderr, "  %s: a run over the old output was not killed: rc %d after %.2f s, %.300s\n", what, rc, full * k / 4.0, log);
        }
        if (rc == -9 && !same_tree(saved, folder, NULL)) {
            int whole_new = !n_items && only && count_entries(folder, "") == count_entries(saved, "") && same_tree(saved, folder, only);
            if (!whole_new) changed++;
        }
    }
    t_check(killed >= (n_items ? 2 : 1) && !changed, "%s: --overwrite killed %d times, the old output is untouched each time (%d changed)", what, killed, changed);
}

static void text(void) {
    text_model();
    text_items("items.tsv", 1500);
    text_items("few.tsv", 10);
    char args[8192];
    const char *per_item = "extract-text --model %s/model --input %s/items.tsv --id-column id --text-column text --format per-item --batch-size 4 "
                           "--threads 1 --out %%s";
    char fmt[4096];
    snprintf(fmt, sizeof fmt, per_item, dir, dir);
    char ref[1100];
    snprintf(ref, sizeof ref, "%s/ref_text", dir);
    snprintf(args, sizeof args, fmt, ref);
    double t0 = now();
    int rc = run(args);
    double full = now() - t0;
    if (!t_check(rc == 0 && count_entries(ref, "") == 1500, "extract-text per-item, uninterrupted: rc %d, %d files in %.1f s", rc,
                 count_entries(ref, ""), full))
        return;
    kill_and_rerun("extract-text per-item", fmt, " --resume", "text", full, 1500, NULL);
    char old_fmt[4096];
    snprintf(old_fmt, sizeof old_fmt,
             "extract-text --model %s/model --input %s/few.tsv --id-column id --text-column text --format per-item --batch-size 4 --out %%s", dir,
             dir);
    snprintf(fmt + strlen(fmt), sizeof fmt - strlen(fmt), " --overwrite");
    kill_overwrite("extract-text per-item", old_fmt, fmt, "text_old", full, 1500, NULL);

    /* mrec extract on a Ducho config, killed among its writes, then resumed */
    char cfg[1100], leaf[1200], parent[1100];
    snprintf(cfg, sizeof cfg, "%s/ducho.yml", dir);
    FILE *f = fopen(cfg, "w");
    if (f) {
        fprintf(f, "dataset_path: %s\ntextual:\n  items:\n    input_path: items.tsv\n    item_column: id\n    text_column: text\n"
                   "    output_path: feats\n    model: [{model_name: model, output_layers: 1, batch_size: 4}]\n",
                dir);
        fclose(f);
    }
    snprintf(parent, sizeof parent, "%s/feats/sentence_transformers/model", dir);
    snprintf(leaf, sizeof leaf, "%s/1", parent);
    snprintf(args, sizeof args, "extract %s --weights %s --threads 1", cfg, dir);
    pid_t pid = spawn(args);
    t0 = now();
    while (scratch_files_in(parent, "1") < 300 && now() - t0 < 300 && waitpid(pid, NULL, WNOHANG) == 0) usleep(500);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    int was_partial = scratch_files_in(parent, "1") > 0 && !exists(leaf);
    snprintf(args, sizeof args, "extract %s --weights %s --threads 1 --resume", cfg, dir);
    rc = run(args);
    char log[4096];
    log_text(log, sizeof log);
    t_check(was_partial && rc == 0 && strstr(log, "--resume: kept") && same_tree(ref, leaf, NULL),
            "mrec extract (Ducho) killed with half its items written, then --resume: the uninterrupted bytes (rc %d, %.200s)", rc, log);

    /* the matrix and its ids: both or neither */
    snprintf(fmt, sizeof fmt, "extract-text --model %s/model --input %s/items.tsv --id-column id --text-column text --batch-size 4 --threads 1 --out %%s",
             dir, dir);
    snprintf(ref, sizeof ref, "%s/ref_mat", dir);
    snprintf(args, sizeof args, fmt, ref);
    t0 = now();
    rc = run(args);
    full = now() - t0;
    static const char *const mat_files[] = {"text_feat.npy", "text_feat_ids.txt", NULL};
    if (t_check(rc == 0, "extract-text matrix, uninterrupted: rc %d", rc)) kill_and_rerun("extract-text matrix", fmt, "", "mat", full, 0, mat_files);
}

static void image(void) {
    char path[1100], args[8192];
    snprintf(path, sizeof path, "%s/photos", dir);
    mkdir(path, 0755);
    int ok = 1;
    for (int i = 0; i < 300 && ok; i++) {
        snprintf(path, sizeof path, "%s/photos/p%03d.png", dir, i);
        ok = write_png(path, 40 + i % 9, 36 + i % 5, (unsigned)i);
    }
    if (!t_check(ok, "300 generated PNG photos")) return;
    char fmt[4096], ref[1100];
    snprintf(fmt, sizeof fmt, "extract-image --model tests/fixtures/vision/resnet_tiny --images %s/photos --size 32,32 --format per-item --batch-size 4 "
             "--threads 1 --decode-threads 1 --out %%s", dir);
    snprintf(ref, sizeof ref, "%s/ref_image", dir);
    snprintf(args, sizeof args, fmt, ref);
    double t0 = now();
    int rc = run(args);
    double full = now() - t0;
    char log[4096];
    log_text(log, sizeof log);
    if (!t_check(rc == 0 && count_entries(ref, "") == 300, "extract-image per-item, uninterrupted: rc %d, %d files in %.1f s %.300s", rc,
                 count_entries(ref, ""), full, rc ? log : ""))
        return;
    kill_and_rerun("extract-image per-item", fmt, " --resume", "image", full, 300, NULL);
}

static void train(void) {
    char path[1100], args[8192];
    snprintf(path, sizeof path, "%s/inter.tsv", dir);
    FILE *f = fopen(path, "w");
    uint64_t s = 7;
    for (int u = 0; f && u < 400; u++)
        for (int j = 0; j < 20; j++) fprintf(f, "u%d\ti%d\t%d\t%d\n", u, (int)(t_rand_u64(&s) % 300), 1 + (int)(t_rand_u64(&s) % 5), u * 100 + j);
    if (f) fclose(f);
    char fmt[4096], ref[1100];
    snprintf(fmt, sizeof fmt, "train --data %s/inter.tsv --format tsv --split random:0.2:0.1 --model bprmf --epochs 40 --dim 32 --batch-size 256 "
             "--k 10,20 --save-topk 10 --per-user --threads 1 --out %%s", dir);
    snprintf(ref, sizeof ref, "%s/ref_train", dir);
    snprintf(args, sizeof args, fmt, ref);
    double t0 = now();
    int rc = run(args);
    double full = now() - t0;
    char log[4096];
    log_text(log, sizeof log);
    if (!t_check(rc == 0, "train, uninterrupted: rc %d in %.1f s %.300s", rc, full, rc ? log : "")) return;
    /* history.tsv and timing.tsv hold times; the rest is the same bytes on every run */
    static const char *const files[] = {"results.tsv", "recommendations.tsv", "test_per_user.tsv", "users.tsv", "items.tsv", NULL};
    kill_and_rerun("train", fmt, "", "train", full, 0, files);
    /* killed at times, rerun with --resume: from the last evaluation's checkpoint where there is one, the same bytes */
    sh("cp -r %s %s_r", ref, ref);
    kill_and_rerun("train, resumed", fmt, " --resume", "train_r", full, 0, files);
    /* killed once the first checkpoint is in the folder being built: --resume goes on from it, says so, and ends
     * with the uninterrupted run's bytes; the finished folder holds no checkpoint */
    char folder[1100];
    snprintf(folder, sizeof folder, "%s/train_ck", dir);
    snprintf(args, sizeof args, fmt, folder);
    rc = run_killed_after(args, "train_ck", 1);
    t_check(rc == -9, "train: killed once its first checkpoint was written (rc %d)", rc);
    snprintf(args + strlen(args), sizeof args - strlen(args), " --resume");
    rc = run(args);
    log_text(log, sizeof log);
    char ck[1200];
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", folder);
    t_check(rc == 0 && strstr(log, "resumed from") && same_tree(ref, folder, files) && !exists(ck),
            "train --resume after a kill: goes on from the checkpoint, ends with the uninterrupted run's bytes, keeps no "
            "checkpoint (rc %d, %.300s)", rc, log);
    /* once more on the finished folder: nothing was stopped, it stays as it is */
    rc = run(args);
    log_text(log, sizeof log);
    t_check(rc == 0 && strstr(log, "finished run") && same_tree(ref, folder, files), "train --resume on a finished folder leaves it "
            "(rc %d, %.300s)", rc, log);
    char fmt_over[4200];
    snprintf(fmt_over, sizeof fmt_over, "%s --overwrite", fmt);
    kill_overwrite("train", fmt, fmt_over, "train_old", full, 0, files);
}

/* Two runs into one folder at once. */
static void concurrent(void) {
    char folder[1100], lock[1100], args[8192], log[4096];
    snprintf(folder, sizeof folder, "%s/both", dir);
    snprintf(lock, sizeof lock, "%s/.both.lock", dir);
    snprintf(args, sizeof args, "extract-text --model %s/model --input %s/items.tsv --id-column id --text-column text --format per-item --batch-size 4 "
             "--threads 1 --out %s", dir, dir, folder);
    pid_t first = spawn(args);
    char second[8300], ref[1100], pid[32];
    snprintf(pid, sizeof pid, "pid %ld", (long)first);
    /* The first run is stopped while it holds the lock (its pid written in
     * the lock file, the lock not ours to take), so the second meets it
     * however fast the first would finish on an idle machine. */
    int held = 0, rc1 = -1;
    for (double t0 = now(); !held && now() - t0 < 30;) {
        int st = 0;
        kill(first, SIGSTOP);
        if (waitpid(first, &st, WUNTRACED) != first || !WIFSTOPPED(st)) {
            rc1 = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            break;
        }
        char text[32] = "";
        int fd = open(lock, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? pread(fd, text, sizeof text - 1, 0) : 0;
        text[n > 0 ? n : 0] = 0;
        held = fd >= 0 && atol(text) == (long)first && flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
        if (fd >= 0) close(fd); /* a lock we took goes with the descriptor */
        if (!held) kill(first, SIGCONT), usleep(300);
    }
    if (!t_check(held, "the first run was caught holding the lock (it ended first with rc %d)", rc1)) {
        kill(first, SIGCONT);
        wait_for(first, 300);
        return;
    }
    snprintf(second, sizeof second, "timeout 60 %s %s --overwrite 2>&1", bin, args);
    FILE *p = popen(second, "r");
    size_t n = p ? fread(log, 1, sizeof log - 1, p) : 0;
    log[n] = 0;
    int st = p ? pclose(p) : -1;
    int rc2 = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    kill(first, SIGCONT);
    rc1 = wait_for(first, 300);
    snprintf(ref, sizeof ref, "%s/ref_text", dir);
    t_check(rc2 == 2 && strstr(log, folder) && strstr(log, pid), "the second run into one folder fails at once, naming it and %s: rc %d, %.300s", pid,
            rc2, log);
    t_check(rc1 == 0 && same_tree(ref, folder, NULL), "the first run's output is whole and right: rc %d", rc1);
}

int main(void) {
    t_suite("kill");
    bin = getenv("MREC_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        t_skip("kill tests: MREC_BIN is not set (make test sets it)");
        return t_finish();
    }
    T_REQUIRE(mkdtemp(dir) != NULL);
    text();
    image();
    train();
    concurrent();
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_finish();
}
