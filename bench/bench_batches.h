/* bench_batches.h: the batch sizes an encoder bench runs, from
 * MREC_BENCH_BATCHES ("1 8 32 128") or the bench's own default; what
 * bench_vision, bench_clip, bench_text, bench_align, bench_clip_train and
 * bench_gpu_ops share. Also the rounds (MREC_BENCH_ROUNDS) in which
 * bench_vision, bench_clip and bench_text time mrec and run the peer. */
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

/* MREC_BENCH_ROUNDS (default 1): how many times a bench times mrec and runs its peer, each side keeping its best
 * figure over all rounds. A shared host's speed drifts by tens of percent over minutes, and one side timed only
 * in a slow spell makes a ratio of the spell. mrec goes first in even rounds and the peer in odd ones, so with
 * two rounds or more each side is timed before and after the other. */
static inline int bench_rounds(void) {
    int r = getenv("MREC_BENCH_ROUNDS") ? atoi(getenv("MREC_BENCH_ROUNDS")) : 1;
    return r < 1 ? 1 : r > 20 ? 20 : r;
}
/* out = the command that runs bench/peers/SCRIPT on dir and list with the thread count, the batch sizes and, with
 * bf16, autocast; through MREC_PYTHON (python3 by default), its errors discarded */
static inline void bench_peer_command(char *out, size_t cap, const char *script, const char *dir, const char *list, int threads,
                                      int bf16, const int *batches, int nb) {
    const char *py = getenv("MREC_PYTHON") ? getenv("MREC_PYTHON") : "python3";
    char sizes[128];
    snprintf(out, cap, "%s bench/peers/%s %s %s %d %s%s 2>/dev/null", py, script, dir, list, threads, bf16 ? "bf16 " : "",
             bench_batches_text(sizes, sizeof sizes, batches, nb));
}
/* In round `round`, whether turn 0 or 1 is the peer's */
static inline int bench_peer_turn(int round, int turn) { return turn != round % 2; }
/* *best = the lesser of *best and seconds, where 0 is none yet (and a seconds of 0 or less is no figure) */
static inline void bench_keep(double *best, double seconds) {
    if (seconds > 0 && (*best <= 0 || seconds < *best)) *best = seconds;
}
#endif
