/* scratch.h: the scratch folder of a fuzz target whose reader takes a path.
 * Each execution writes its input there and reads it back, so the folder
 * lives in RAM where one is offered (/dev/shm, else $TMPDIR, else /tmp): on a
 * disk-backed /tmp the writes and truncations cost more than the parsing. */
#ifndef MREC_FUZZ_SCRATCH_H
#define MREC_FUZZ_SCRATCH_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_scratch_dir[256];

/* At exit the folder goes, so that long campaigns leave nothing in RAM. */
static void fuzz_scratch_remove(void) {
    DIR *d = opendir(fuzz_scratch_dir);
    if (!d) return;
    char path[512];
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%s", fuzz_scratch_dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(fuzz_scratch_dir);
}

/* The folder, made on the first call (named after the target) and the same
 * one after; aborts if none can be made. */
static const char *fuzz_scratch(const char *name) {
    char *dir = fuzz_scratch_dir;
    if (dir[0]) return dir;
    const char *tmp = getenv("TMPDIR");
    const char *roots[] = {"/dev/shm", tmp && tmp[0] ? tmp : "/tmp", "/tmp"};
    for (int i = 0; i < 3; i++) {
        struct stat st;
        if (stat(roots[i], &st) != 0 || !S_ISDIR(st.st_mode) || access(roots[i], W_OK) != 0) continue;
        snprintf(dir, sizeof fuzz_scratch_dir, "%s/mrec_%s_XXXXXX", roots[i], name);
        if (mkdtemp(dir)) {
            atexit(fuzz_scratch_remove);
            return dir;
        }
    }
    abort();
}

/* Writes data to DIR/name and leaves the path in path[cap]. */
static void fuzz_put(const char *name, const void *data, size_t size, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", fuzz_scratch("fuzz"), name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
}

#endif
