/* files.c: folder helpers for the output trees of the commands: mkdir -p,
 * and output folders that appear whole (built in a scratch folder, locked
 * for the run, swapped in by one rename). */
#define _GNU_SOURCE /* renameat2, to swap a finished folder with the old one */
#include "mrec_tools.h"

#include "../nn/mrec_npy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

mrec_status mrec_mkdirs(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return mrec_fail(MREC_ERR_ARG, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p) continue;
        char was = *p;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return mrec_fail(MREC_ERR_IO, "%s: cannot create (%s)", buf, strerror(errno));
        struct stat sb;
        if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode)) return mrec_fail(MREC_ERR_IO, "%s: exists and is not a folder", buf);
        if (!(*p = was)) break;
    }
    return MREC_OK;
}

void mrec_remove_tree(const char *path) {
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) mrec_remove_tree(p);
        else unlink(p);
    }
    if (d) closedir(d);
    rmdir(path);
}

const char *mrec_weights_dir(void) {
    static char dir[4096];
    const char *env = getenv("MREC_WEIGHTS");
    if (env && *env) return env;
    if (!dir[0]) {
        char exe[3800];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0; /* the binary's folder, */
        slash = strrchr(exe, '/');
        if (slash) *slash = 0; /* its parent */
        snprintf(dir, sizeof dir, "%s/weights", n > 0 && slash ? exe : ".");
    }
    return dir;
}

double mrec_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* ---- output folders ---- */

/* path split into its folder ("" for the current one) and its last name. */
static mrec_status split_path(const char *path, char *dir, size_t dcap, char *name, size_t ncap) {
    char buf[4096];
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--; /* "out/" is "out" */
    if (n == 0 || n >= sizeof buf) return mrec_fail(MREC_ERR_ARG, "'%s': not a usable output folder name", path);
    memcpy(buf, path, n);
    buf[n] = 0;
    char *slash = strrchr(buf, '/');
    const char *last = slash ? slash + 1 : buf;
    if (!*last || !strcmp(last, ".") || !strcmp(last, ".."))
        return mrec_fail(MREC_ERR_ARG, "%s: name the output folder itself, not . or .. or /", path);
    if (slash) *slash = 0;
    if (snprintf(dir, dcap, "%s", slash ? (buf[0] ? buf : "/") : "") >= (int)dcap || snprintf(name, ncap, "%s", last) >= (int)ncap)
        return mrec_fail(MREC_ERR_ARG, "%s: path too long", path);
    return MREC_OK;
}

/* "<dir>/.<name>.<what>" (dir "" for the current folder). */
static int beside(char *out, size_t cap, const char *dir, const char *name, const char *what) {
    int n = snprintf(out, cap, "%s%s.%s.%s", dir, *dir && strcmp(dir, "/") ? "/" : "", name, what);
    return n >= 0 && (size_t)n < cap;
}

static int folder_is_empty(const char *path) {
    DIR *d = opendir(path);
    int empty = d != NULL;
    for (struct dirent *e; empty && (e = readdir(d));) empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    if (d) closedir(d);
    return empty;
}

/* The leftovers of killed runs beside the folder (their scratch and
 * swapped-out folders). Only called with the lock held, so none is in use.
 * With `keep`, the newest scratch folder is kept and named there. */
static void sweep(const char *dir, const char *name, char *keep, size_t cap) {
    char prefix[600];
    snprintf(prefix, sizeof prefix, ".%s.", name);
    size_t pl = strlen(prefix);
    DIR *d = opendir(*dir ? dir : ".");
    char best[4200] = "";
    time_t best_time = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        const char *rest = e->d_name + pl;
        if (strncmp(e->d_name, prefix, pl) || (strncmp(rest, "part-", 5) && strncmp(rest, "old-", 4) && strncmp(rest, "work-", 5))) continue;
        char p[4200];
        struct stat sb;
        if (!beside(p, sizeof p, dir, name, rest) || lstat(p, &sb) != 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != geteuid()) continue; /* not ours: leave it be */
        if (keep && !strncmp(rest, "part-", 5) && (!*best || sb.st_mtime >= best_time)) {
            if (*best) mrec_remove_tree(best);
            snprintf(best, sizeof best, "%s", p);
            best_time = sb.st_mtime;
        } else {
            mrec_remove_tree(p);
        }
    }
    if (d) closedir(d);
    if (keep) snprintf(keep, cap, "%s", best);
}

/* Replacing a folder deletes what it held: never the current folder, one
 * that holds it, or the home folder, whatever --overwrite says. */
static int holds_the_user(const char *path) {
    char rp[PATH_MAX], cwd[PATH_MAX], home[PATH_MAX];
    if (!realpath(path, rp)) return 0;
    size_t n = strlen(rp);
    if (!strcmp(rp, "/")) return 1;
    if (realpath(".", cwd) && !strncmp(cwd, rp, n) && (cwd[n] == '/' || !cwd[n])) return 1;
    const char *h = getenv("HOME");
    return h && *h && realpath(h, home) && !strcmp(home, rp);
}

/* The temporary files a killed run was writing inside its scratch folder
 * (mrec_atomic_begin's ".<name>.XXXXXX"): never part of an output. */
static void remove_hidden(const char *path) {
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        char p[4600];
        struct stat sb;
        if (e->d_name[0] != '.' || !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (snprintf(p, sizeof p, "%s/%s", path, e->d_name) < (int)sizeof p && lstat(p, &sb) == 0 && !S_ISDIR(sb.st_mode)) unlink(p);
    }
    if (d) closedir(d);
}

/* Hard links (else nothing) of the folder's regular files into scratch, for
 * --resume after a finished run: the files are then verified like a killed
 * run's. A file that cannot be linked is simply redone. */
static void link_files(const char *from, const char *to) {
    DIR *d = opendir(from);
    for (struct dirent *e; d && (e = readdir(d));) {
        char a[4400], b[4400];
        if (snprintf(a, sizeof a, "%s/%s", from, e->d_name) >= (int)sizeof a || snprintf(b, sizeof b, "%s/%s", to, e->d_name) >= (int)sizeof b) continue;
        struct stat sb;
        if (e->d_name[0] != '.' && lstat(a, &sb) == 0 && S_ISREG(sb.st_mode) && link(a, b) != 0) continue;
    }
    if (d) closedir(d);
}

mrec_status mrec_out_lock(mrec_out_dir *o, const char *path) {
    memset(o, 0, sizeof *o);
    o->lock_fd = -1;
    char dir[4096], name[512];
    mrec_status st = split_path(path, dir, sizeof dir, name, sizeof name);
    if (st) return st;
    snprintf(o->path, sizeof o->path, "%s", path);
    if (*dir && (st = mrec_mkdirs(dir))) return st;
    if (!beside(o->lock, sizeof o->lock, dir, name, "lock")) return mrec_fail(MREC_ERR_ARG, "%s: path too long", path);
    int fd = -1;
    for (;;) {
        /* O_NOFOLLOW: a link planted at the lock's name is refused, not followed */
        fd = open(o->lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) return mrec_fail(MREC_ERR_IO, "%s: cannot create the lock file %s (%s)", path, o->lock, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            char pid[32] = "";
            ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
            pid[n > 0 ? n : 0] = 0;
            pid[strcspn(pid, "\n")] = 0;
            close(fd);
            if (e == EWOULDBLOCK)
                return mrec_fail(MREC_ERR_IO, "%s: another run (pid %s) is writing this folder; wait for it to finish or choose another folder",
                                 path, *pid ? pid : "unknown");
            return mrec_fail(MREC_ERR_IO, "%s: cannot lock %s (%s)", path, o->lock, strerror(e));
        }
        /* the holder removes the lock file when it is done: a lock taken on a file that is no longer
         * the one at that name locks nothing, so try again */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(o->lock, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) break;
        close(fd);
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) { /* only the message of a second run needs it */ }
    o->lock_fd = fd;
    return MREC_OK;
}

mrec_status mrec_out_begin(mrec_out_dir *o, const char *path, int flags) {
    char dir[4096], name[512];
    memset(o, 0, sizeof *o);
    o->lock_fd = -1;
    if (holds_the_user(path))
        return mrec_fail(MREC_ERR_ARG, "%s: is the current folder, holds it, or is the home folder; an output replaces its folder whole, "
                         "so give it a folder of its own", path);
    mrec_status st = mrec_out_lock(o, path);
    if (!st) st = split_path(path, dir, sizeof dir, name, sizeof name);
    if (st) return st;
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            st = mrec_fail(MREC_ERR_IO, "%s: exists and is not a folder%s", path, S_ISLNK(sb.st_mode) ? " (a link: name the folder itself)" : "");
        else if (!(flags & (MREC_OUT_OVERWRITE | MREC_OUT_RESUME)) && !folder_is_empty(path))
            st = mrec_fail(MREC_ERR_IO, "%s: already holds an output; pass --overwrite to replace it (it stays as it is until the new one is complete)",
                           path);
    } else if (errno != ENOENT) {
        st = mrec_fail(MREC_ERR_IO, "%s: %s", path, strerror(errno));
    }
    if (st) {
        mrec_out_abort(o);
        return st;
    }
    sweep(dir, name, (flags & MREC_OUT_RESUME) ? o->scratch : NULL, sizeof o->scratch);
    if (*o->scratch) {
        remove_hidden(o->scratch);
        o->resumed = 1;
        return MREC_OK;
    }
    if (!beside(o->scratch, sizeof o->scratch, dir, name, "part-XXXXXX") || !mkdtemp(o->scratch)) {
        st = mrec_fail(MREC_ERR_IO, "%s: cannot create a scratch folder beside it (%s)", path, strerror(errno));
        o->scratch[0] = 0;
        mrec_out_abort(o);
        return st;
    }
    chmod(o->scratch, 0755); /* mkdtemp makes 0700; the finished folder is shared like any output */
    if ((flags & MREC_OUT_RESUME) && lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        link_files(path, o->scratch);
        o->resumed = 1;
    }
    return MREC_OK;
}

mrec_status mrec_out_commit(mrec_out_dir *o) {
    mrec_status st = MREC_OK;
    struct stat sb;
    if (lstat(o->path, &sb) != 0) {
        if (rename(o->scratch, o->path) != 0) st = mrec_fail(MREC_ERR_IO, "%s: cannot move the finished folder into place (%s)", o->path, strerror(errno));
    } else if (renameat2(AT_FDCWD, o->scratch, AT_FDCWD, o->path, RENAME_EXCHANGE) == 0) {
        mrec_remove_tree(o->scratch); /* now the old folder */
    } else if (errno == EINVAL || errno == ENOSYS) {
        /* a file system without an atomic swap: the old folder steps aside first, so the name is briefly absent, never mixed */
        char dir[4096], name[512], old[4700];
        split_path(o->path, dir, sizeof dir, name, sizeof name);
        if (!beside(old, sizeof old, dir, name, "old-XXXXXX") || !mkdtemp(old) || rmdir(old) != 0 || rename(o->path, old) != 0)
            st = mrec_fail(MREC_ERR_IO, "%s: cannot move the old folder aside (%s)", o->path, strerror(errno));
        else if (rename(o->scratch, o->path) != 0) {
            st = mrec_fail(MREC_ERR_IO, "%s: cannot move the finished folder into place (%s)", o->path, strerror(errno));
            rename(old, o->path);
        } else {
            mrec_remove_tree(old);
        }
    } else {
        st = mrec_fail(MREC_ERR_IO, "%s: cannot swap in the finished folder (%s)", o->path, strerror(errno));
    }
    if (!st) o->scratch[0] = 0;
    mrec_out_abort(o);
    return st;
}

void mrec_out_abort(mrec_out_dir *o) {
    if (o->scratch[0]) mrec_remove_tree(o->scratch);
    o->scratch[0] = 0;
    if (o->lock_fd >= 0) {
        unlink(o->lock); /* while still held: the next run makes a fresh one (see mrec_out_begin) */
        close(o->lock_fd);
    }
    o->lock_fd = -1;
}

mrec_status mrec_out_work_dir(const mrec_out_dir *o, char *out, size_t cap) {
    char dir[4096], name[512];
    mrec_status st = split_path(o->path, dir, sizeof dir, name, sizeof name);
    if (!st && (!beside(out, cap, dir, name, "work-XXXXXX") || !mkdtemp(out)))
        st = mrec_fail(MREC_ERR_IO, "%s: cannot create a work folder beside it (%s)", o->path, strerror(errno));
    return st;
}

static const char *const *ids_to_sort;
static int compare_ids(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b, c = strcmp(ids_to_sort[x], ids_to_sort[y]);
    return c ? c : x - y;
}

mrec_status mrec_check_unique_ids(const char *const *ids, int n, const char *where) {
    int *order = malloc(sizeof *order * (size_t)(n ? n : 1));
    if (!order) return mrec_fail(MREC_ERR_NOMEM, "%s: %d ids", where, n);
    for (int i = 0; i < n; i++) order[i] = i;
    ids_to_sort = ids;
    qsort(order, (size_t)n, sizeof *order, compare_ids);
    mrec_status st = MREC_OK;
    for (int i = 1; i < n && !st; i++)
        if (!strcmp(ids[order[i]], ids[order[i - 1]]))
            st = mrec_fail(MREC_ERR_FORMAT, "%s: item id '%s' appears twice (items %d and %d); one file per item needs one id per item", where,
                           ids[order[i]], order[i - 1] + 1, order[i] + 1);
    free(order);
    return st;
}

int mrec_feature_file_ok(const char *path, int64_t dim) {
    mrec_npy_array a;
    struct stat sb;
    if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || mrec_npy_read(path, &a)) return 0;
    const mrec_npy_header *h = &a.header;
    int ok = h->dtype == MREC_NPY_F32 && h->ndim == 2 && h->shape[0] == 1 && h->shape[1] == dim;
    for (int64_t i = 0; ok && i < dim; i++) ok = isfinite(((const float *)a.data)[i]);
    mrec_npy_free(&a);
    return ok;
}

mrec_status mrec_check_feature_row(const float *row, int dim, const char *item, const char *model) {
    for (int d = 0; d < dim; d++)
        if (!isfinite(row[d]))
            return mrec_fail(MREC_ERR_FORMAT, "item '%s': the feature from %s has %s at dimension %d; nothing was written", item,
                             model, isnan(row[d]) ? "NaN" : "an infinity", d);
    return MREC_OK;
}

void mrec_json_write_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned c = *p;
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = len > 0;
        for (int k = 1; ok && k < len; k++) ok = (p[k] & 0xC0) == 0x80;
        if (ok && len == 2) ok = c >= 0xC2;                                                   /* no overlong forms */
        if (ok && len == 3) ok = !(c == 0xE0 && p[1] < 0xA0) && !(c == 0xED && p[1] >= 0xA0); /* nor surrogates */
        if (ok && len == 4) ok = c <= 0xF4 && !(c == 0xF0 && p[1] < 0x90) && !(c == 0xF4 && p[1] >= 0x90);
        if (!ok) fputs("\\ufffd", f), p++;
        else if (c == '"' || c == '\\') fputc('\\', f), fputc((int)c, f), p++;
        else if (c < 0x20) fprintf(f, "\\u%04x", c), p++;
        else fwrite(p, 1, (size_t)len, f), p += len;
    }
    fputc('"', f);
}
