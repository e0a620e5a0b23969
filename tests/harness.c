/* harness.c: counters, float comparison, the seeded generator and test data paths. */
#include "harness.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *suite = "tests";
static int n_pass, n_fail, n_skip;

void t_suite(const char *name) {
    suite = name;
    setvbuf(stdout, NULL, _IOLBF, 0); /* a run killed at a time limit still shows how far it got */
}

int t_check(int ok, const char *fmt, ...) {
    if (ok) {
        n_pass++;
        return 1;
    }
    n_fail++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL [%s] ", suite);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 0;
}

static int compare(const char *what, const float *ref, const float *out, const double *tol,
                   double atol, double rtol, int64_t n) {
    int64_t bad = 0, worst = -1;
    double worst_err = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double r = ref[i], o = out[i], err = fabs(r - o);
        double limit = tol ? tol[i] : atol + rtol * fabs(r);
        int ok = (isnan(r) && isnan(o)) || (r == o) || err <= limit;
        if (!isnan(err) && err > worst_err) worst_err = err, worst = i;
        if (!ok) {
            if (bad < 5)
                fprintf(stderr, "  %s[%lld]: ref %.9g, got %.9g, err %.3g > %.3g\n", what, (long long)i, r,
                        o, err, limit);
            bad++;
        }
    }
    if (bad) {
        n_fail++;
        fprintf(stderr, "FAIL [%s] %s: %lld of %lld differ; max err %.3g at %lld\n", suite, what,
                (long long)bad, (long long)n, worst_err, (long long)worst);
        return 0;
    }
    n_pass++;
    if (getenv("MREC_TEST_VERBOSE")) printf("  %s: max err %.3g over %lld values\n", what, worst_err, (long long)n);
    return 1;
}

int t_allclose(const char *what, const float *ref, const float *out, int64_t n, double atol, double rtol) {
    return compare(what, ref, out, NULL, atol, rtol, n);
}

int t_within(const char *what, const float *ref, const float *out, const double *tol, int64_t n) {
    return compare(what, ref, out, tol, 0, 0, n);
}

int t_status(mrec_status st, mrec_status want, const char *fmt, ...) {
    if (st == want) {
        n_pass++;
        return 1;
    }
    n_fail++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL [%s] ", suite);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, ": got '%s' (%s), expected '%s'\n", mrec_strerror(st), mrec_error_detail(),
            mrec_strerror(want));
    va_end(ap);
    return 0;
}

void t_skip(const char *fmt, ...) {
    n_skip++;
    va_list ap;
    va_start(ap, fmt);
    printf("skipped [%s] ", suite);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

void t_no_gpu(const char *why) {
    if (!getenv("MREC_REQUIRE_GPU")) return;
    n_fail++;
    fprintf(stderr, "FAIL [%s] MREC_REQUIRE_GPU is set and no GPU opens: %s\n", suite, why);
}

int t_graphs_off(void) { return getenv("MREC_CUDA_GRAPHS") && !strcmp(getenv("MREC_CUDA_GRAPHS"), "0"); }

int t_finish(void) {
    printf("%s: %d passed, %d failed, %d skipped\n", suite, n_pass, n_fail, n_skip);
    fflush(stdout);
    return n_fail ? 1 : 0;
}

const char *t_data(char *buf, size_t n, const char *rel) {
    const char *roots[] = {"tests/data/", "../shared/data/", "shared/data/"};
    for (int i = 0; i < 3; i++)
        if ((size_t)snprintf(buf, n, "%s%s", roots[i], rel) < n && access(buf, R_OK) == 0) return buf;
    return NULL;
}

uint64_t t_rand_u64(uint64_t *s) {
    /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float t_rand_uniform(uint64_t *s, float lo, float hi) {
    return lo + (hi - lo) * (float)((t_rand_u64(s) >> 40) * (1.0 / 16777216.0));
}

void t_fill_uniform(float *x, int64_t n, uint64_t *s, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) x[i] = t_rand_uniform(s, lo, hi);
}

int t_run(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = out && cap ? fread(out, 1, cap - 1, p) : 0;
    if (out && cap) out[n] = '\0';
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) {
    }
    int st = pclose(p);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

char *t_slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) free(s), s = NULL;
    if (s) s[n] = '\0';
    fclose(f);
    return s;
}

char *t_recs_rows(const char *tsv) {
    size_t cap = strlen(tsv) + 1;
    char *out = malloc(cap), user[512] = "";
    size_t at = 0;
    for (const char *s = tsv; out && *s;) {
        const char *nl = strchr(s, '\n');
        if (!nl) break;
        const char *t1 = strchr(s, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t1 || !t2 || t2 > nl) break;
        char u[512];
        snprintf(u, sizeof u, "%.*s", (int)(t1 - s), s);
        if (strcmp(u, user)) at += (size_t)snprintf(out + at, cap - at, "%s%s", at ? "\n" : "", u), snprintf(user, sizeof user, "%s", u);
        at += (size_t)snprintf(out + at, cap - at, "\t%.*s", (int)(t2 - t1 - 1), t1 + 1);
        s = nl + 1;
    }
    if (out && at + 1 < cap) out[at++] = '\n', out[at] = '\0';
    return out;
}
