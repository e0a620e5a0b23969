/* mrec_parse.h: how the tools read options and input paths that users give.
 *
 * Every number goes through the checked parsers of nn/mrec_numbers.h
 * (included here), which the library's own readers of user text share.
 *
 * Input paths are checked before anything opens them: a FIFO would block a
 * reader forever and a device or socket is no file to read, so only regular
 * files (and folders, where a folder is expected) pass.
 */
#ifndef MREC_PARSE_H
#define MREC_PARSE_H

#include <stdint.h>

#include "../kernels/mrec_status.h"
#include "../nn/mrec_numbers.h"

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
