/* parse.c: the option and input-path checks of mrec_parse.h (the number
 * parsers are in nn/numbers.c). */
#include "mrec_parse.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- command-line options ---- */

static int refused(const char *cmd, const char *opt) {
    fprintf(stderr, "mrec %s: %s: %s\n", cmd, opt, mrec_error_detail());
    return 1;
}

int mrec_opt_missing(const char *cmd, const char *opt, const char *v) {
    if (v && strncmp(v, "--", 2) != 0) return 0;
    fprintf(stderr, "mrec %s: %s needs a value%s%s%s\n", cmd, opt, v ? " (got the option '" : "", v ? v : "", v ? "')" : "");
    return 1;
}

int mrec_opt_int(const char *cmd, const char *opt, const char *v, long lo, long hi, int *out) {
    long x;
    if (lo < -2147483647L) lo = -2147483647L;
    if (hi > 2147483647L) hi = 2147483647L;
    if (mrec_parse_int(v, lo, hi, &x)) return refused(cmd, opt);
    *out = (int)x;
    return 0;
}

/* ---- input files ---- */

static const char *file_kind(mode_t m) {
    return S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a file";
}

mrec_status mrec_check_input(const char *path, const char *what, int allow_dir) {
    if (!path || !*path) return mrec_fail(MREC_ERR_ARG, "%s: an empty path", what);
    struct stat sb;
    if (stat(path, &sb) != 0) return mrec_fail(MREC_ERR_IO, "%s '%s': %s", what, path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        if (!allow_dir) return mrec_fail(MREC_ERR_IO, "%s '%s': a folder, where a file is expected", what, path);
        DIR *d = opendir(path);
        if (!d) return mrec_fail(MREC_ERR_IO, "%s '%s': cannot read the folder (%s)", what, path, strerror(errno));
        mrec_status st = MREC_OK;
        for (struct dirent *e; !st && (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[4096];
            struct stat eb;
            if (snprintf(p, sizeof p, "%s/%s", path, e->d_name) >= (int)sizeof p) continue;
            /* a dangling link is left to the reader that wants it, which names it */
            if (stat(p, &eb) == 0 && !S_ISREG(eb.st_mode) && !S_ISDIR(eb.st_mode))
                st = mrec_fail(MREC_ERR_IO, "%s '%s': holds %s, %s, not a regular file", what, path, e->d_name, file_kind(eb.st_mode));
        }
        closedir(d);
        return st;
    }
    if (!S_ISREG(sb.st_mode)) return mrec_fail(MREC_ERR_IO, "%s '%s': %s, not a regular file", what, path, file_kind(sb.st_mode));
    /* O_NONBLOCK: should the path have become a FIFO since stat, open still returns */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return mrec_fail(MREC_ERR_IO, "%s '%s': cannot open (%s)", what, path, strerror(errno));
    int regular = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode);
    close(fd);
    if (!regular) return mrec_fail(MREC_ERR_IO, "%s '%s': not a regular file", what, path);
    return MREC_OK;
}

mrec_status mrec_check_input_file(const char *path, const char *what) { return mrec_check_input(path, what, 0); }
