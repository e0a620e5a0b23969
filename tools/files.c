/* files.c: folder helpers for the output trees of the config-driven commands. */
#include "mrec_tools.h"

#include <dirent.h>
#include <errno.h>
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

mrec_status mrec_move_contents(const char *from, const char *to) {
    mrec_status st = mrec_mkdirs(to);
    DIR *d = st ? NULL : opendir(from);
    if (!st && !d) return mrec_fail(MREC_ERR_IO, "%s: cannot read (%s)", from, strerror(errno));
    for (struct dirent *e; !st && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        struct stat sb;
        if (stat(a, &sb) == 0 && S_ISDIR(sb.st_mode) && stat(b, &sb) == 0 && S_ISDIR(sb.st_mode)) st = mrec_move_contents(a, b);
        else if (rename(a, b) != 0) st = mrec_fail(MREC_ERR_IO, "%s: cannot move to %s (%s)", a, b, strerror(errno));
    }
    if (d) closedir(d);
    if (!st) rmdir(from);
    return st;
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
