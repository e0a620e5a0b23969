/* numbers.c: the checked number parsers of mrec_numbers.h.
 *
 * strtol, strtoull and strtod do the conversion; what they forgive is
 * refused here first: leading spaces, a missing number ("" -> 0), text after
 * the number ("1e12" read as 1 by atoi), hexadecimal, "inf" and "nan", and
 * a minus sign before an unsigned number (strtoull wraps it).
 */
#include "mrec_numbers.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The text as it goes into a message: quoted, cut at 64 characters. */
#define SHOWN(s) (s) ? "'" : "", (s) ? (s) : "nothing", (s) ? (strlen(s) > 64 ? "...'" : "'") : ""
#define SHOWN_FMT "%s%.64s%s"

static int in_range(double x, double lo, double hi, int flags) {
    return isfinite(x) && ((flags & MREC_OPEN_LO) ? x > lo : x >= lo) && ((flags & MREC_OPEN_HI) ? x < hi : x <= hi);
}

/* s begins like a base-10 number: an optional sign, then a digit (or, for
 * reals, a decimal point). */
static int number_start(const char *s, int allow_minus, int allow_point) {
    if (*s == '+' || (allow_minus && *s == '-')) s++;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) return 0;
    return (*s >= '0' && *s <= '9') || (allow_point && *s == '.' && s[1] >= '0' && s[1] <= '9');
}

mrec_status mrec_parse_int(const char *s, long lo, long hi, long *out) {
    char *end = NULL;
    long v = 0;
    int ok = s && number_start(s, 1, 0);
    if (ok) {
        errno = 0;
        v = strtol(s, &end, 10);
        ok = !*end;
        if (ok && errno == ERANGE)
            return mrec_fail(MREC_ERR_ARG, "expected a whole number in [%ld, %ld], got " SHOWN_FMT " (out of range)", lo, hi, SHOWN(s));
    }
    if (!ok || v < lo || v > hi) return mrec_fail(MREC_ERR_ARG, "expected a whole number in [%ld, %ld], got " SHOWN_FMT, lo, hi, SHOWN(s));
    *out = v;
    return MREC_OK;
}

mrec_status mrec_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
    char *end = NULL;
    unsigned long long v = 0;
    int ok = s && number_start(s, 0, 0);
    if (ok) {
        errno = 0;
        v = strtoull(s, &end, 10);
        ok = !*end && errno != ERANGE;
    }
    if (!ok || v < lo || v > hi)
        return mrec_fail(MREC_ERR_ARG, "expected a whole number in [%llu, %llu], got " SHOWN_FMT, (unsigned long long)lo, (unsigned long long)hi,
                         SHOWN(s));
    *out = v;
    return MREC_OK;
}

mrec_status mrec_parse_real(const char *s, double lo, double hi, int flags, double *out) {
    char range[96];
    snprintf(range, sizeof range, "%s%g, %g%s", flags & MREC_OPEN_LO ? "(" : "[", lo, hi, flags & MREC_OPEN_HI ? ")" : "]");
    char *end = NULL;
    double v = 0;
    int ok = s && number_start(s, 1, 1);
    if (ok) {
        errno = 0;
        v = strtod(s, &end);
        ok = !*end;
        /* ERANGE: too large for a double, or so small it lost its precision */
        if (ok && (errno == ERANGE || !isfinite(v)))
            return mrec_fail(MREC_ERR_ARG, "expected a number in %s, got " SHOWN_FMT " (out of range)", range, SHOWN(s));
    }
    if (!ok || !in_range(v, lo, hi, flags)) return mrec_fail(MREC_ERR_ARG, "expected a number in %s, got " SHOWN_FMT, range, SHOWN(s));
    *out = v;
    return MREC_OK;
}

mrec_status mrec_parse_double(const char *s, double lo, double hi, double *out) { return mrec_parse_real(s, lo, hi, 0, out); }

mrec_status mrec_parse_reals(const char *s, int n, double lo, double hi, double *out) {
    const char *p = s ? s : "";
    for (int i = 0; i < n; i++) {
        char part[64];
        size_t len = strcspn(p, ",");
        if (len >= sizeof part || (i < n - 1) != (p[len] == ','))
            return mrec_fail(MREC_ERR_ARG, "expected %d numbers separated by commas, got " SHOWN_FMT, n, SHOWN(s));
        memcpy(part, p, len), part[len] = 0;
        mrec_status st = mrec_parse_double(part, lo, hi, &out[i]);
        if (st) return st;
        p += len + (p[len] == ',');
    }
    return MREC_OK;
}
