/* bench_batches.h: the batch sizes an encoder bench runs, from
 * MREC_BENCH_BATCHES ("1 8 32 128") or the bench's own default; what
 * bench_vision, bench_clip, bench_text, bench_align, bench_clip_train and
 * bench_gpu_ops share. */
#ifndef MREC_BENCH_BATCHES_H
#define MREC_BENCH_BATCHES_H

#include <stdio.h>
#include <stdlib.h>

#define BENCH_MAX_BATCHES 8

/* out = up to BENCH_MAX_BATCHES sizes from least to most in text, in its
 * order; a size outside that range is skipped with a notice, and reading
 * stops at the first word that is not a number. Returns how many. */
static inline int bench_batches_in(int out[BENCH_MAX_BATCHES], const char *text, int least, int most) {
    int n = 0;
    for (const char *p = text; n < BENCH_MAX_BATCHES && *p;) {
        char *end;
        long b = strtol(p, &end, 10);
        if (end == p) {
            while (*p == ' ' || *p == ',') p++;
            if (*p) fprintf(stderr, "MREC_BENCH_BATCHES: \"%s\" is not a batch size; the list ends there\n", p);
            break;
        }
        if (b >= least && b <= most) out[n++] = (int)b;
        else fprintf(stderr, "MREC_BENCH_BATCHES: batch %ld skipped (this bench runs %d to %d)\n", b, least, most);
        for (p = end; *p == ','; p++) {}
    }
    return n;
}

/* The sizes MREC_BENCH_BATCHES gives, or where it gives none, the bench's default's. */
static inline int bench_batches(int out[BENCH_MAX_BATCHES], const char *fallback, int least, int most) {
    const char *given = getenv("MREC_BENCH_BATCHES");
    int n = given ? bench_batches_in(out, given, least, most) : 0;
    if (!n && given) fprintf(stderr, "MREC_BENCH_BATCHES: no batch size in \"%s\"; running %s\n", given, fallback);
    return n ? n : bench_batches_in(out, fallback, least, most);
}
/* out = the sizes as a peer's arguments take them: "1 8 32" */
static inline const char *bench_batches_text(char *out, size_t cap, const int *batches, int n) {
    size_t at = 0;
    out[0] = 0;
    for (int k = 0; k < n && at < cap; k++) at += (size_t)snprintf(out + at, cap - at, k ? " %d" : "%d", batches[k]);
    return out;
}
#endif
