/* mrec_parse.h: how the tools read numbers and input paths that users give.
 *
 * Every number from the command line or a config goes through one of the
 * parsers below. The whole text must be one base-10 number: no spaces, no
 * trailing characters, no hexadecimal; overflow, NaN and infinities are
 * refused, and so is anything outside the range. A refusal returns
 * MREC_ERR_ARG with a detail such as
 *     expected a whole number in [1, 1000000], got '1e12'
 * and the caller puts the option, or the config file, line and key, in front.
 *
 * Input paths are checked before anything opens them: a FIFO would block a
 * reader forever and a device or socket is no file to read, so only regular
 * files (and folders, where a folder is expected) pass.
 */
#ifndef MREC_PARSE_H
#define MREC_PARSE_H

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

/* ---- command-line options ----
 * The commands declare their options in tables (mrec_options.h); these are
 * what the table parser and a command with repeated options (clip-scores)
 * use. mrec_opt_int parses the value v of option opt of `mrec cmd`. On a refusal it prints
 * "mrec CMD: OPT: <why>" to standard error and returns 1 (the exit status of
 * a usage error); else stores the value and returns 0. A missing value (v
 * NULL) is refused the same way. */
int mrec_opt_int(const char *cmd, const char *opt, const char *v, long lo, long hi, int *out);

/* A value that is itself an option ("--out --epochs 3"): the value was left
 * out. Returns 1 after printing "mrec CMD: OPT needs a value", else 0. */
int mrec_opt_missing(const char *cmd, const char *opt, const char *v);

/* ---- input files ---- */

/* path must be a regular file that can be opened for reading (with
 * allow_dir, a folder also passes; the entries directly inside it must then be
 * regular files or folders). `what` names where the path came from
 * ("--data", "the config"); the detail names it and the path. */
mrec_status mrec_check_input(const char *path, const char *what, int allow_dir);
mrec_status mrec_check_input_file(const char *path, const char *what);

#endif
