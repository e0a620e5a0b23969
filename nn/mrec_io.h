/* mrec_io.h: file helpers shared by the readers and writers.
 *
 * Writes go to a temporary file that mkstemp creates beside the target,
 * "<dir>/.<name>.XXXXXX", and are renamed into place on commit, so a killed
 * run never leaves a half-written output under the real name, two runs never
 * share a temporary file, and a link planted at any name is never followed.
 */
#ifndef MREC_IO_H
#define MREC_IO_H

#include <stddef.h>
#include <stdio.h>

#include "../kernels/mrec_status.h"

typedef struct {
    FILE *f;
    char *path, *tmp_path;
    int failed;
} mrec_atomic_file;

mrec_status mrec_atomic_begin(mrec_atomic_file *af, const char *path);
mrec_status mrec_atomic_write(mrec_atomic_file *af, const void *buf, size_t n);
/* Flushes, closes and renames; on any failure (a write through af->f
 * included) removes the temporary file. */
mrec_status mrec_atomic_commit(mrec_atomic_file *af);
void mrec_atomic_abort(mrec_atomic_file *af);

/* Opens path for reading if it is a regular file. The open does not block
 * (a FIFO with no writer would hold it forever) and fstat refuses a folder,
 * FIFO, device or socket, naming it, before any byte is read. */
mrec_status mrec_open_regular(FILE **fp, const char *path);

/* Maps a whole file read-only. An empty file maps to (NULL, 0). Anything
 * but a regular file (a FIFO, a directory, a device) is refused at once. */
mrec_status mrec_map_file(const char *path, void **map, size_t *size);
void mrec_unmap_file(void *map, size_t size);

/* Parses a whole JSON file; free *out with cJSON_Delete. With optional set,
 * a missing file gives *out = NULL and MREC_OK; a malformed one is always an
 * error naming it and the line (nesting past MREC_JSON_MAX_DEPTH and data
 * after the value included). The _object form also requires an object
 * (config.json). */
struct cJSON;
mrec_status mrec_read_json(const char *path, int optional, struct cJSON **out);
mrec_status mrec_read_json_object(const char *path, int optional, struct cJSON **out);

#endif
