/* mrec_options.h: a command's options declared once, in a table that both the
 * parser and --help read.
 *
 * Each option has a type, and its value is checked as the table says before
 * the command does anything: numbers whole and in range through mrec_parse.h,
 * an enum one of its choices, a list of cut-offs ascending, an input path a
 * regular file (or folder) that can be read. A refusal names the option and
 * the value ("mrec train: --epochs: expected a whole number in [1, 1000000],
 * got '1e12'") and the command exits 1 (2 for an input path that cannot be
 * read). An option given twice takes its last value.
 *
 * A row of type MREC_OPT_MODEL_PARAMS stands for every model hyper-parameter
 * of the registry (mrec_registry.h): their options are parsed into an
 * mrec_param_values and listed in help with their ranges and each model's
 * default, so a new hyper-parameter appears in `mrec train` by itself.
 */
#ifndef MREC_OPTIONS_H
#define MREC_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include "../recsys/mrec_registry.h"

typedef enum {
    MREC_OPT_SWITCH,      /* no value */
    MREC_OPT_INT,         /* a whole number in [lo, hi] */
    MREC_OPT_U64,         /* any unsigned 64-bit number */
    MREC_OPT_REAL,        /* a real in the range (open: MREC_OPEN_LO / _HI) that stays in it in single precision */
    MREC_OPT_ENUM,        /* one of choices, "drop|error" */
    MREC_OPT_TEXT,        /* text the command checks itself (a format, an output folder) */
    MREC_OPT_PATH,        /* a file to read (a folder too with allow_dir), checked before anything runs */
    MREC_OPT_LIST,        /* whole numbers in [lo, hi] separated by commas, ascending, at most max_items */
    MREC_OPT_MODEL_PARAMS /* no option: where the registry's hyper-parameters are parsed and shown */
} mrec_opt_type;

#define MREC_OPT_MAX_ITEMS 16

typedef struct {
    const char *flag;    /* "--epochs" */
    mrec_opt_type type;
    const char *meta;    /* the value as help shows it: "N", "PATH" */
    const char *help;    /* one line */
    const char *def;     /* the default as help shows it, or NULL */
    double lo, hi;       /* INT, REAL, each LIST item */
    int open;            /* REAL: MREC_OPEN_LO, MREC_OPEN_HI */
    const char *choices; /* ENUM */
    int max_items;       /* LIST */
    int allow_dir;       /* PATH: a folder is an input too */
    const char *section; /* a heading help prints above this option */
} mrec_option;

typedef struct {
    int given;
    const char *text;    /* as given (SWITCH: the flag) */
    long i;              /* INT; ENUM: the index of the choice */
    uint64_t u;          /* U64 */
    double r;            /* REAL, as single precision keeps it */
    long list[MREC_OPT_MAX_ITEMS];
    int n;               /* LIST */
} mrec_opt_value;

typedef struct {
    const char *name;  /* "train": messages start "mrec train: " */
    const char *usage; /* the usage lines, first in help */
    const char *notes; /* what help says after the options, or NULL */
    const mrec_option *opt;
    int n_opt;
    int max_positional; /* arguments that are no option (a config file); 0: none */
} mrec_command;

enum { MREC_OPTS_OK = 0, MREC_OPTS_USAGE = 1, MREC_OPTS_INPUT = 2, MREC_OPTS_HELP = -1 };

/* Parses argv[1..argc) into val (one per row of c->opt) and, when the table
 * has a MREC_OPT_MODEL_PARAMS row, the hyper-parameters into hp (given set
 * for each one on the command line). Positional arguments go to pos
 * (n_pos of them). Returns MREC_OPTS_OK; MREC_OPTS_HELP after printing help to
 * standard output (-h, --help); else the exit status, the refusal printed. */
int mrec_options_parse(const mrec_command *c, int argc, char **argv, mrec_opt_value *val, mrec_param_values *hp, const char **pos,
                       int *n_pos);
void mrec_options_help(FILE *f, const mrec_command *c);

/* The rows every command that runs a model carries: where it runs and the
 * GEMMs' precision there. */
#define MREC_OPTION_DEVICE                                                                                                          \
    {"--device", MREC_OPT_ENUM, "auto|cpu|cuda",                                                                                    \
     "where the model runs: a GPU when there is one (auto; else the CPU, with a one-line notice), cuda (fails without one), cpu", \
     "auto", .choices = "auto|cpu|cuda", .section = "device"}
#define MREC_OPTION_PRECISION                                                                                                         \
    {"--precision", MREC_OPT_ENUM, "fp32|tf32|bf16",                                                                                 \
     "the GEMMs' precision (bf16: weights converted once, fp32 accumulation); tf32 is for a GPU, bf16 for a GPU or a CPU with " \
     "AVX-512 BF16; asking the CPU for one it lacks is an error",                                                                  \
     "fp32", .choices = "fp32|tf32|bf16"}
/* Fills o's device and precision from those two rows' values; returns 1 when
 * --device was given (a fallback notice is then always printed). */
int mrec_options_device(const mrec_opt_value *device, const mrec_opt_value *precision, mrec_context_options *o);

/* text as a value of hyper-parameter h: a number in its range, one of its
 * choices, or its items ("0.96:50", or as an Elliot tuple "(0.96, 50)"); the
 * value is marked given. A refusal's detail says what was expected and what
 * was given; the caller puts the option, or the config file, line and key,
 * in front. */
mrec_status mrec_param_parse(mrec_hp h, const char *text, mrec_param_value *out);

#endif
