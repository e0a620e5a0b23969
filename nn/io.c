/* io.c: atomic writes, read-only file mapping, JSON files. */
#include "mrec_io.h"
#include "mrec_hf_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The temporary file lives in the target's own folder (rename does not
 * cross file systems) under a name mkstemp picks: created with O_EXCL, so
 * neither a second run nor a link planted in advance can stand in for it. */
mrec_status mrec_atomic_begin(mrec_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0, n = strlen(path) + 16;
    af->path = strdup(path);
    af->tmp_path = malloc(n);
    if (!af->path || !af->tmp_path) {
        mrec_atomic_abort(af);
        return mrec_fail(MREC_ERR_NOMEM, "%s: allocating a path", path);
    }
    /* "<dir>/.<name>.XXXXXX": hidden, and never a name the outputs use */
    snprintf(af->tmp_path, n, "%.*s.%s.XXXXXX", (int)dir_len, path, path + dir_len);
    int fd = mkstemp(af->tmp_path);
    if (fd < 0) {
        int e = errno;
        free(af->tmp_path);
        af->tmp_path = NULL; /* nothing was created: nothing to remove */
        mrec_atomic_abort(af);
        return mrec_fail(MREC_ERR_IO, "%s: cannot create (%s)", path, strerror(e));
    }
    /* mkstemp makes 0600; outputs are meant to be shared like any result file */
    fchmod(fd, 0644);
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        int e = errno;
        close(fd);
        mrec_atomic_abort(af);
        return mrec_fail(MREC_ERR_IO, "%s: cannot create (%s)", path, strerror(e));
    }
    return MREC_OK;
}

mrec_status mrec_atomic_write(mrec_atomic_file *af, const void *buf, size_t n) {
    if (af->failed) return MREC_ERR_IO;
    if (n && fwrite(buf, 1, n, af->f) != n) {
        af->failed = 1;
        return mrec_fail(MREC_ERR_IO, "%s: write failed (%s)", af->path, strerror(errno));
    }
    return MREC_OK;
}

mrec_status mrec_atomic_commit(mrec_atomic_file *af) {
    if (af->failed) {
        mrec_atomic_abort(af);
        return MREC_ERR_IO;
    }
    int bad = ferror(af->f) | (fflush(af->f) != 0); /* fprintf's errors stick to the stream */
    bad |= fclose(af->f) != 0;
    af->f = NULL;
    if (bad || rename(af->tmp_path, af->path) != 0) {
        mrec_status st = mrec_fail(MREC_ERR_IO, "%s: cannot finish writing (%s)", af->path,
                                   strerror(errno));
        mrec_atomic_abort(af);
        return st;
    }
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
    return MREC_OK;
}

void mrec_atomic_abort(mrec_atomic_file *af) {
    if (af->f) fclose(af->f);
    if (af->tmp_path) unlink(af->tmp_path);
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

mrec_status mrec_open_regular(FILE **fp, const char *path) {
    *fp = NULL;
    /* Non-blocking, so a FIFO with no writer cannot hold the open; then fstat
     * decides before any byte is read. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return mrec_fail(MREC_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return mrec_fail(MREC_ERR_IO, "%s: cannot stat (%s)", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        const char *kind = S_ISDIR(sb.st_mode) ? "a folder" : S_ISFIFO(sb.st_mode) ? "a FIFO" : S_ISCHR(sb.st_mode) ? "a character device"
                           : S_ISBLK(sb.st_mode) ? "a block device" : S_ISSOCK(sb.st_mode) ? "a socket" : "not a regular file";
        return mrec_fail(MREC_ERR_IO, "%s: is %s, not a regular file", path, kind);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    *fp = fdopen(fd, "r");
    if (!*fp) {
        int e = errno;
        close(fd);
        return mrec_fail(MREC_ERR_IO, "%s: cannot open (%s)", path, strerror(e));
    }
    return MREC_OK;
}

mrec_status mrec_map_file(const char *path, void **map, size_t *size) {
    *map = NULL;
    *size = 0;
    FILE *f;
    mrec_status st = mrec_open_regular(&f, path);
    if (st) return st;
    int fd = fileno(f);
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        fclose(f);
        return mrec_fail(MREC_ERR_IO, "%s: cannot stat (%s)", path, strerror(e));
    }
    if (sb.st_size > 0) {
        void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            fclose(f);
            return mrec_fail(MREC_ERR_IO, "%s: cannot map (%s)", path, strerror(e));
        }
        *map = p;
        *size = (size_t)sb.st_size;
    }
    fclose(f); /* the mapping outlives the descriptor */
    return MREC_OK;
}

void mrec_unmap_file(void *map, size_t size) {
    if (map) munmap(map, size);
}

mrec_status mrec_read_json(const char *path, int optional, cJSON **out) {
    *out = NULL;
    if (optional && access(path, F_OK) != 0 && errno == ENOENT) return MREC_OK;
    void *map;
    size_t size;
    mrec_status st = mrec_map_file(path, &map, &size);
    if (st) return st;
    /* depth-checked before cJSON recurses; trailing data refused */
    st = mrec_json_parse(map, size, path, out);
    mrec_unmap_file(map, size);
    return st;
}

mrec_status mrec_read_json_object(const char *path, int optional, cJSON **out) {
    mrec_status st = mrec_read_json(path, optional, out);
    if (st || !*out || cJSON_IsObject(*out)) return st;
    cJSON_Delete(*out);
    *out = NULL;
    return mrec_fail(MREC_ERR_FORMAT, "%s: not a JSON object", path);
}
