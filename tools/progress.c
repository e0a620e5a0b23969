/* progress.c: how far a long step is, on standard error. On a terminal one
 * line redrawn in place (done/total, items/s, ETA); otherwise, for logs, a
 * plain line every 10 seconds and one at the end. */
#include "mrec_tools.h"

#include <stdio.h>
#include <unistd.h>

void mrec_progress_start(mrec_progress *p, const char *label, int total) {
    *p = (mrec_progress){.label = label, .total = total, .t0 = mrec_now(), .tty = isatty(2)};
    p->last = p->t0;
}

void mrec_progress_update(void *ctx, int done, int total) {
    mrec_progress *p = ctx;
    double now = mrec_now(), secs = now - p->t0, rate = secs > 0 ? done / secs : 0;
    p->done = done, p->total = total;
    int final = done >= total;
    if (!final && now - p->last < (p->tty ? 0.2 : 10.0)) return;
    p->last = now;
    double eta = rate > 0 ? (total - done) / rate : 0;
    if (p->tty) {
        int width = 24, fill = total ? (int)((long long)width * done / total) : width;
        fprintf(stderr, "\r%s [%.*s%*s] %d/%d %.1f/s ETA %.0f s ", p->label, fill, "########################", width - fill, "", done, total,
                rate, eta);
        if (final) fputc('\n', stderr);
    } else if (!final) {
        fprintf(stderr, "%s: %d/%d, %.1f/s, ETA %.0f s\n", p->label, done, total, rate, eta);
    }
}

void mrec_chunk_progress_update(void *ctx, int done, int total) {
    (void)total;
    mrec_chunk_progress *c = ctx;
    mrec_progress_update(c->p, c->offset + done, c->total);
}

void mrec_train_log_stdout(void *ctx, const char *line) {
    (void)ctx;
    printf("%s\n", line);
    fflush(stdout);
}

void mrec_train_notice_stderr(void *ctx, const char *line) {
    (void)ctx;
    fprintf(stderr, "mrec train: %s\n", line);
}
