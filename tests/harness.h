/* harness.h: the tiny test harness every test program uses.
 *
 * A test program calls t_suite() once, records cases with t_check /
 * t_allclose / t_skip, and returns t_finish(), which prints
 * "<suite>: N passed, N failed, N skipped" and returns non-zero on any
 * failure. tests/run.sh adds up those lines. Failures print the case, the
 * first mismatches and the largest error; nothing fails quietly.
 *
 * Float comparison: |ref - out| <= atol + rtol * |ref|, elementwise; each
 * call site says why its tolerance is what it is. MREC_TEST_VERBOSE=1 prints
 * the largest error of every comparison that passed, for reports.
 */
#ifndef MREC_HARNESS_H
#define MREC_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../kernels/mrec_status.h"

void t_suite(const char *name);
/* Records a case; on failure prints the printf-style message. Returns ok. */
int t_check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records a case that compares n floats. Returns 1 if all are close. */
int t_allclose(const char *what, const float *ref, const float *out, int64_t n, double atol,
               double rtol);
/* As t_allclose with a per-element bound (tol[i]) instead of atol/rtol. */
int t_within(const char *what, const float *ref, const float *out, const double *tol, int64_t n);
/* Records a status: ok if st == want; prints the detail otherwise. */
int t_status(mrec_status st, mrec_status want, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void t_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Records that no GPU opened (why: the detail): a failure where MREC_REQUIRE_GPU is set (make gpu-check
 * sets it, so a GPU machine whose GPU does not open fails rather than skipping every GPU case), else
 * nothing; the caller says what it skips. */
void t_no_gpu(const char *why);
/* 1 when MREC_CUDA_GRAPHS=0 (the user's switch: every body runs as it is, so no graph to count) */
int t_graphs_off(void);
int t_finish(void);

/* Real test data: "tests/data/REL" when the repository ships that file
 * (the small set every clone has), else "../shared/data/REL" (the full
 * set, beside the repository in CI), else "shared/data/REL" (the part
 * make gpu-deps stages inside the tree for a GPU machine). Writes the
 * path to buf and returns it, or NULL when none exists. */
const char *t_data(char *buf, size_t n, const char *rel);

/* Runs a shell command, its standard output (the first cap - 1 bytes, the
 * rest read and dropped) into out when out is not NULL. Returns its exit
 * status, 128 + the signal if one ended it, -1 if it could not start. */
int t_run(const char *cmd, char *out, size_t cap);
/* A whole file, NUL-terminated (malloc'd), or NULL. */
char *t_slurp(const char *path);
/* `mrec recommend`'s TSV (user, item, score, rank per line) folded into the
 * rows of a run's recommendations.tsv ("user<TAB>item<TAB>item..."), so the
 * two can be compared with strcmp. malloc'd, or NULL. */
char *t_recs_rows(const char *tsv);

/* A fixed-seed generator so every run sees the same inputs. */
uint64_t t_rand_u64(uint64_t *state);
float t_rand_uniform(uint64_t *state, float lo, float hi);
void t_fill_uniform(float *x, int64_t n, uint64_t *state, float lo, float hi);

/* Tools and tests abort on setup failures they cannot recover from (a
 * malloc in a test); they print where. Library code never does this. */
#define T_REQUIRE(cond)                                                              \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: requirement failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                                \
        }                                                                            \
    } while (0)

#endif
