/* mrec_numbers.h: how numbers that users give are read.
 *
 * Every number from the command line or a config goes through one of the
 * parsers below. The whole text must be one base-10 number: no spaces, no
 * trailing characters, no hexadecimal; overflow, NaN and infinities are
 * refused, and so is anything outside the range. A refusal returns
 * MREC_ERR_ARG with a detail such as
 *     expected a whole number in [1, 1000000], got '1e12'
 * and the caller puts the option, or the config file, line and key, in front.
 */
#ifndef MREC_NUMBERS_H
#define MREC_NUMBERS_H

#include <stdint.h>

#include "../kernels/mrec_status.h"

/* ---- numbers ---- */

mrec_status mrec_parse_int(const char *s, long lo, long hi, long *out);
mrec_status mrec_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
/* A finite real in [lo, hi]. */
mrec_status mrec_parse_double(const char *s, double lo, double hi, double *out);

/* Exactly n numbers in [lo, hi] separated by commas ("0.485,0.456,0.406"). */
mrec_status mrec_parse_reals(const char *s, int n, double lo, double hi, double *out);

/* mrec_parse_real's flags: a bound left out of the range, as in lr > 0. */
enum { MREC_OPEN_LO = 1, MREC_OPEN_HI = 2 };
mrec_status mrec_parse_real(const char *s, double lo, double hi, int flags, double *out);

#endif
