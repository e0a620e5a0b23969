/* stats.c: significance of the difference between two models' per-user
 * metrics, as Elliot reports it (scipy's ttest_rel and wilcoxon, two-sided).
 */
#include "mrec_recsys.h"

#include <math.h>
#include <stdlib.h>

/* The regularized incomplete beta I_x(a, b), by its continued fraction
 * (modified Lentz), on the side where it converges fast. */
static double incomplete_beta(double a, double b, double x) {
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    if (x > (a + 1) / (a + b + 2)) return 1 - incomplete_beta(b, a, 1 - x);
    double front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x)) / a;
    /* the fraction 1 / (1 + d1 / (1 + d2 / ...)), d_2m = m (b - m) x / ((a + 2m - 1)(a + 2m)),
     * d_2m+1 = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)), evaluated forwards */
    const double tiny = 1e-300;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    d = 1 / (fabs(d) < tiny ? tiny : d);
    double h = d;
    for (int m = 1; m <= 400; m++) {
        double even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
        d = 1 + even * d, c = 1 + even / c;
        d = 1 / (fabs(d) < tiny ? tiny : d), c = fabs(c) < tiny ? tiny : c;
        h *= d * c;
        double odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
        d = 1 + odd * d, c = 1 + odd / c;
        d = 1 / (fabs(d) < tiny ? tiny : d), c = fabs(c) < tiny ? tiny : c;
        h *= d * c;
        if (fabs(d * c - 1) < 1e-15) break;
    }
    return front * h;
}

double mrec_paired_ttest_p(const double *x, const double *y, int n) {
    if (n < 2) return NAN;
    double mean = 0, ss = 0;
    for (int i = 0; i < n; i++) mean += x[i] - y[i];
    mean /= n;
    for (int i = 0; i < n; i++) ss += (x[i] - y[i] - mean) * (x[i] - y[i] - mean);
    double sd = sqrt(ss / (n - 1));
    if (sd == 0) return mean == 0 ? NAN : 0;
    double t = mean / (sd / sqrt(n)), df = n - 1;
    return incomplete_beta(df / 2, 0.5, df / (df + t * t));
}

static int by_abs(const void *a, const void *b) {
    double x = fabs(*(const double *)a), y = fabs(*(const double *)b);
    return (x > y) - (x < y);
}

double mrec_wilcoxon_p(const double *x, const double *y, int n) {
    double *d = malloc(sizeof *d * (size_t)(n + 1));
    if (!d) return NAN;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (x[i] != y[i]) d[m++] = x[i] - y[i]; /* Wilcoxon's rule: zero differences leave */
    qsort(d, (size_t)m, sizeof *d, by_abs);
    double r_plus = 0, ties = 0;
    for (int i = 0; i < m;) {
        int j = i;
        while (j < m && fabs(d[j]) == fabs(d[i])) j++;
        double rank = (i + 1 + j) / 2.0, t = j - i; /* average rank of the tied run */
        for (int k = i; k < j; k++) r_plus += d[k] > 0 ? rank : 0;
        ties += t * t * t - t;
        i = j;
    }
    free(d);
    double mn = m * (m + 1.0) / 4, se = sqrt((m * (m + 1.0) * (2.0 * m + 1) - ties / 2) / 24);
    if (!(se > 0)) return NAN;
    double z = (r_plus - mn) / se;
    return erfc(fabs(z) / sqrt(2.0)); /* 2 * (1 - Phi(|z|)) */
}

typedef struct {
    double p;
    int at;
} ranked_p;

static int by_p(const void *a, const void *b) {
    const ranked_p *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? -1 : 1;
    return (x->at > y->at) - (x->at < y->at);
}

mrec_status mrec_adjust_pvalues(double *adjusted, const double *p, int n, mrec_adjust how) {
    ranked_p *s = malloc(sizeof *s * ((size_t)n + 1));
    if (!s) return mrec_fail(MREC_ERR_NOMEM, "adjusting %d p-values", n);
    int m = 0; /* the family: the defined p-values */
    for (int i = 0; i < n; i++) {
        adjusted[i] = NAN;
        if (!isnan(p[i])) s[m].p = p[i], s[m].at = i, m++;
    }
    qsort(s, (size_t)m, sizeof *s, by_p);
    if (how == MREC_ADJUST_BONFERRONI)
        for (int j = 0; j < m; j++) adjusted[s[j].at] = fmin(1, s[j].p * m);
    else if (how == MREC_ADJUST_HOLM) /* step down: a running maximum from the smallest */
        for (int j = 0; j < m; j++) {
            double v = fmin(1, (double)(m - j) * s[j].p);
            adjusted[s[j].at] = j && adjusted[s[j - 1].at] > v ? adjusted[s[j - 1].at] : v;
        }
    else /* Benjamini-Hochberg, step up: a running minimum from the largest */
        for (int j = m - 1; j >= 0; j--) {
            double v = fmin(1, s[j].p / ((double)(j + 1) / m)); /* statsmodels divides by the ECDF factor */
            adjusted[s[j].at] = j < m - 1 && adjusted[s[j + 1].at] < v ? adjusted[s[j + 1].at] : v;
        }
    free(s);
    return MREC_OK;
}
