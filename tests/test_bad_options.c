/* test_bad_options.c: hostile command lines and configs. Every number the
 * command line or a config gives goes through one checked parser; a bad one
 * stops the command with a message naming the option (or the config's key
 * and line) before anything is read or written. A FIFO given as an input is
 * refused instead of blocking, and a config nested 40,000 deep is refused
 * instead of overflowing the stack.
 *
 * The first half tests the parser itself; the second runs $MREC_BIN under
 * `timeout`, so a hang fails a case instead of hanging the suite. */
#include "harness.h"

#include "../tools/mrec_config.h"
#include "../tools/mrec_options.h"
#include "../tools/mrec_parse.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *bin;
static char dir[] = "/tmp/mrec-bad-options-XXXXXX";

/* ---- the parser ---- */

static void parse_ints(void) {
    long v = -7;
    static const char *const bad[] = {"", " 5", "5 ", "1e12", "1.0", "0x10", "abc", "+", "-", "5abc", "--5", "9223372036854775808", "\t3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = -7;
        t_status(mrec_parse_int(bad[i], -1000, 1000000, &v), MREC_ERR_ARG, "int '%s' is refused", bad[i]);
        t_check(v == -7, "a refused int leaves the output alone ('%s')", bad[i]);
    }
    t_status(mrec_parse_int(NULL, 0, 1, &v), MREC_ERR_ARG, "no text is refused");
    t_status(mrec_parse_int("0", 1, 10, &v), MREC_ERR_ARG, "below the range");
    t_check(strstr(mrec_error_detail(), "[1, 10]") && strstr(mrec_error_detail(), "'0'"), "the message gives the range and the text: %s",
            mrec_error_detail());
    t_status(mrec_parse_int("11", 1, 10, &v), MREC_ERR_ARG, "above the range");
    t_status(mrec_parse_int("9223372036854775808", LONG_MIN, LONG_MAX, &v), MREC_ERR_ARG, "overflow of long");
    t_check(strstr(mrec_error_detail(), "out of range") != NULL, "overflow is said: %s", mrec_error_detail());
    t_check(!mrec_parse_int("10", 1, 10, &v) && v == 10, "the top of the range");
    t_check(!mrec_parse_int("-3", -5, 5, &v) && v == -3, "a negative number");
    t_check(!mrec_parse_int("+7", 0, 9, &v) && v == 7, "a plus sign");
    t_check(!mrec_parse_int("007", 0, 9, &v) && v == 7, "leading zeros are decimal, not octal");
    char longtext[200];
    memset(longtext, '9', sizeof longtext - 1), longtext[sizeof longtext - 1] = 0;
    t_status(mrec_parse_int(longtext, 0, 10, &v), MREC_ERR_ARG, "a 199-digit number");
    t_check(strlen(mrec_error_detail()) < 200 && strstr(mrec_error_detail(), "..."), "a long text is cut in the message: %s", mrec_error_detail());
}

static void parse_u64s(void) {
    uint64_t v = 5;
    static const char *const bad[] = {"-1", "18446744073709551616", "1e3", "", " 1", "0x1", "-0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        t_status(mrec_parse_u64(bad[i], 0, UINT64_MAX, &v), MREC_ERR_ARG, "u64 '%s' is refused (strtoull wraps a minus)", bad[i]);
    t_check(v == 5, "refusals leave the output alone");
    t_check(!mrec_parse_u64("18446744073709551615", 0, UINT64_MAX, &v) && v == UINT64_MAX, "the largest u64");
    t_check(!mrec_parse_u64("0", 0, UINT64_MAX, &v) && v == 0, "zero");
    t_status(mrec_parse_u64("11", 0, 10, &v), MREC_ERR_ARG, "u64 above its range");
}

static void parse_doubles(void) {
    double v = 0.5;
    static const char *const bad[] = {"abc", "", "nan", "NAN", "inf", "-inf", "infinity", "1e400", "-1e400", "1e-400", "0x1p3", " 1", "1 ",
                                      "1,5", "1.5.2", ".", "e5", "1e", "--1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        t_status(mrec_parse_double(bad[i], -1e300, 1e300, &v), MREC_ERR_ARG, "real '%s' is refused", bad[i]);
    t_check(v == 0.5, "refusals leave the output alone");
    t_check(!mrec_parse_double("1e-3", 0, 1, &v) && v == 1e-3, "an exponent");
    t_check(!mrec_parse_double(".5", 0, 1, &v) && v == 0.5, "a leading point");
    t_check(!mrec_parse_double("-0.25", -1, 1, &v) && v == -0.25, "a negative real");
    t_status(mrec_parse_real("0", 0, 1, MREC_OPEN_LO, &v), MREC_ERR_ARG, "an open lower bound leaves 0 out");
    t_check(strstr(mrec_error_detail(), "(0, 1]") != NULL, "the open bound is written as such: %s", mrec_error_detail());
    t_status(mrec_parse_real("1", 0, 1, MREC_OPEN_HI, &v), MREC_ERR_ARG, "an open upper bound leaves 1 out");
    t_check(!mrec_parse_real("0.999", 0, 1, MREC_OPEN_HI, &v) && v == 0.999, "just under an open bound");
    double three[3];
    t_check(!mrec_parse_reals("0.485,0.456,0.406", 3, 0, 1, three) && three[2] == 0.406, "three numbers by commas");
    t_status(mrec_parse_reals("0.485,0.456", 3, 0, 1, three), MREC_ERR_ARG, "two where three are wanted");
    t_status(mrec_parse_reals("1,2,3,4", 3, 0, 9, three), MREC_ERR_ARG, "four where three are wanted");
    t_status(mrec_parse_reals("1,,3", 3, 0, 9, three), MREC_ERR_ARG, "an empty part");
    t_status(mrec_parse_reals("1,2,3x", 3, 0, 9, three), MREC_ERR_ARG, "junk after the last");
}

/* The registry's hyper-parameters through the parser both the command line and configs use. */
static void train_table(void) {
    mrec_param_value v = {.x = {7}};
    t_check(!strcmp(mrec_param_spec_of(MREC_HP_EPOCHS)->flag, "--epochs") && !strcmp(mrec_param_spec_of(MREC_HP_LR)->flag, "--lr"),
            "the registry names the options of mrec train's hyper-parameters");
    t_status(mrec_param_parse(MREC_HP_EPOCHS, "1e12", &v), MREC_ERR_ARG, "--epochs 1e12");
    t_check(v.x[0] == 7 && !v.given, "a refused value leaves the output alone");
    t_check(strstr(mrec_error_detail(), "[1, 1000000]") && strstr(mrec_error_detail(), "'1e12'"), "the range and the text: %s",
            mrec_error_detail());
    t_status(mrec_param_parse(MREC_HP_EPOCHS, "0", &v), MREC_ERR_ARG, "--epochs 0");
    t_status(mrec_param_parse(MREC_HP_LR, "0", &v), MREC_ERR_ARG, "--lr 0");
    t_status(mrec_param_parse(MREC_HP_LR, "1e-60", &v), MREC_ERR_ARG, "--lr that is 0 in single precision");
    t_status(mrec_param_parse(MREC_HP_REG, "-1", &v), MREC_ERR_ARG, "--reg -1");
    t_status(mrec_param_parse(MREC_HP_REG, "abc", &v), MREC_ERR_ARG, "--reg abc");
    t_status(mrec_param_parse(MREC_HP_SEED, "-1", &v), MREC_ERR_ARG, "--seed -1");
    t_status(mrec_param_parse(MREC_HP_EDGE_DROPOUT, "1", &v), MREC_ERR_ARG, "--edge-dropout 1");
    t_status(mrec_param_parse(MREC_HP_SAMPLER, "random", &v), MREC_ERR_ARG, "--sampler random");
    t_check(strstr(mrec_error_detail(), "pairs or users") != NULL, "the choices are said: %s", mrec_error_detail());
    t_status(mrec_param_parse(MREC_HP_LR_DECAY, "0.9:5x", &v), MREC_ERR_ARG, "--lr-decay 0.9:5x");
    t_status(mrec_param_parse(MREC_HP_LR_DECAY, "0.9:5:1", &v), MREC_ERR_ARG, "--lr-decay with three parts");
    t_status(mrec_param_parse(MREC_HP_LR_DECAY, "0.9::5", &v), MREC_ERR_ARG, "--lr-decay with an empty part");
    t_status(mrec_param_parse(MREC_HP_LR_DECAY, "(0.9, 5.5)", &v), MREC_ERR_ARG, "lr_sched (0.9, 5.5): every is whole");
    t_status(mrec_param_parse(MREC_HP_LR_DECAY, "(0.96, 50)", &v), MREC_OK, "lr_sched (0.96, 50)");
    t_check(v.given && v.x[0] == (double)0.96f && v.x[1] == 50, "an Elliot tuple is the same list as 0.96:50");
    t_status(mrec_param_parse(MREC_HP_SEED, "18446744073709551615", &v), MREC_OK, "any u64 seed");
    t_check(v.u == UINT64_MAX, "the largest seed, exactly");
    t_status(mrec_param_parse(MREC_HP_LR, "0.001", &v), MREC_OK, "--lr 0.001");
    t_check(v.x[0] == (double)0.001f, "a real is held in single precision, as the models use it");
    t_status(mrec_param_parse(MREC_HP_REG, "0", &v), MREC_OK, "--reg 0");
}

/* ---- input files and configs, in the library ---- */

static void inputs(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/fifo", dir);
    if (!t_check(mkfifo(path, 0600) == 0, "a FIFO to give as input")) return;
    t_status(mrec_check_input_file(path, "--data"), MREC_ERR_IO, "a FIFO is no input file");
    t_check(strstr(mrec_error_detail(), "--data") && strstr(mrec_error_detail(), "FIFO") && strstr(mrec_error_detail(), path),
            "the message names option, path and kind: %s", mrec_error_detail());
    mrec_cfg c;
    t_status(mrec_cfg_load(&c, path), MREC_ERR_IO, "a FIFO as a config is refused without blocking");
    t_status(mrec_check_input_file("/dev/zero", "--input"), MREC_ERR_IO, "a device is no input file");
    t_status(mrec_check_input_file(dir, "--input"), MREC_ERR_IO, "a folder where a file is wanted");
    t_status(mrec_check_input(dir, "--model", 1), MREC_ERR_IO, "a folder holding a FIFO");
    t_check(strstr(mrec_error_detail(), "fifo") != NULL, "the FIFO inside is named: %s", mrec_error_detail());
    snprintf(path, sizeof path, "%s/sub", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/sub/ok.txt", dir);
    FILE *f = fopen(path, "w");
    if (f) fputs("x\n", f), fclose(f);
    snprintf(path, sizeof path, "%s/sub", dir);
    t_status(mrec_check_input(path, "--model", 1), MREC_OK, "a folder of regular files");
    snprintf(path, sizeof path, "%s/sub/ok.txt", dir);
    t_status(mrec_check_input_file(path, "--data"), MREC_OK, "a regular file");
    t_status(mrec_check_input_file("/no/such/file", "--data"), MREC_ERR_IO, "a missing file");
    t_check(strstr(mrec_error_detail(), "/no/such/file") != NULL, "named: %s", mrec_error_detail());
}

static void deep_config(void) {
    enum { DEPTH = 40000 };
    char *text = malloc(2 * DEPTH + 16);
    if (!t_check(text != NULL, "a buffer for 40,000 nested lists")) return;
    int n = sprintf(text, "a: ");
    memset(text + n, '[', DEPTH), memset(text + n + DEPTH, ']', DEPTH);
    n += 2 * DEPTH;
    text[n++] = '\n';
    mrec_cfg c;
    t_status(mrec_cfg_parse(&c, text, (size_t)n, "deep.yml"), MREC_ERR_FORMAT, "a config 40,000 lists deep is refused, not a stack overflow");
    t_check(strstr(mrec_error_detail(), "deep.yml") && strstr(mrec_error_detail(), "line 1") && strstr(mrec_error_detail(), "64"),
            "the message names the file, the line and the limit: %s", mrec_error_detail());
    /* block style: a map 40,000 keys deep, one level of indentation each */
    free(text);
    size_t cap = 800 * 800 / 2 + 800 * 12; /* 800 levels: indentation and keys */
    text = malloc(cap);
    size_t at = 0;
    for (int d = 0; text && d < 800; d++) {
        memset(text + at, ' ', (size_t)d), at += (size_t)d;
        at += (size_t)sprintf(text + at, "k%d:\n", d);
    }
    if (text) {
        t_status(mrec_cfg_parse(&c, text, at, "deep_block.yml"), MREC_ERR_FORMAT, "a block map 800 levels deep is refused");
        t_check(strstr(mrec_error_detail(), "line 65") != NULL, "at the line that goes past 64 levels: %s", mrec_error_detail());
    }
    free(text);
    /* 64 levels are fine: the limit is not off by one */
    char ok[512];
    n = sprintf(ok, "a: ");
    memset(ok + n, '[', 63), memset(ok + n + 63, ']', 63);
    n += 126;
    if (t_status(mrec_cfg_parse(&c, ok, (size_t)n, "ok.yml"), MREC_OK, "a config 64 levels deep (the map and 63 lists) parses")) mrec_cfg_free(&c);
    n = sprintf(ok, "a: ");
    memset(ok + n, '[', 64), memset(ok + n + 64, ']', 64);
    n += 128;
    t_status(mrec_cfg_parse(&c, ok, (size_t)n, "ok.yml"), MREC_ERR_FORMAT, "65 levels do not");
}

static void big_config(void) {
    /* a scalar past 64 KiB, and more nodes than a config holds */
    size_t len = 70000;
    char *text = malloc(len + 16);
    if (!t_check(text != NULL, "a buffer")) return;
    memcpy(text, "a: ", 3);
    memset(text + 3, 'x', len);
    text[3 + len] = '\n';
    mrec_cfg c;
    t_status(mrec_cfg_parse(&c, text, len + 4, "long.yml"), MREC_ERR_FORMAT, "a value of 70,000 bytes is refused");
    t_check(strstr(mrec_error_detail(), "long.yml") && strstr(mrec_error_detail(), "line 1"), "named by file and line: %s", mrec_error_detail());
    free(text);
    size_t cap = 4 + 2 * 120000 + 4;
    text = malloc(cap);
    if (!text) return;
    size_t at = (size_t)sprintf(text, "a: [");
    for (int i = 0; i < 120000; i++) text[at++] = '1', text[at++] = ',';
    text[at - 1] = ']';
    t_status(mrec_cfg_parse(&c, text, at, "many.yml"), MREC_ERR_FORMAT, "120,000 values are refused");
    t_check(strstr(mrec_error_detail(), "many.yml") != NULL, "named: %s", mrec_error_detail());
    free(text);
    /* whole numbers past 2^53 are read exactly, not through a double */
    const char *seed = "random_seed: 9007199254740993\n";
    long v = 0;
    if (t_status(mrec_cfg_parse(&c, seed, strlen(seed), "seed.yml"), MREC_OK, "a large seed")) {
        t_status(mrec_cfg_int(&c, c.root, "random_seed", 1, 0, 1L << 62, &v), MREC_OK, "read as an int");
        t_check(v == 9007199254740993L, "exactly: %ld", v);
        mrec_cfg_free(&c);
    }
}

/* ---- the binary ---- */

/* Runs `bin args` under a 10 s timeout with stderr captured. Returns the exit status (124: it hung). */
static int run(const char *args, char *out, size_t cap) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd %s && timeout 10 %s %s 2>&1 < /dev/null", dir, bin, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void write_file(const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

static int exists(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

typedef struct {
    const char *args;  /* with OUT where the output goes */
    const char *named; /* the message must contain this */
    int rc;            /* 1: the command line is wrong; 2: an input it names is */
} hostile;

static void cli(void) {
    static char out[65536];
    /* a small fixed split, a table, a config of each kind, and a FIFO */
    write_file("tr.tsv", "u1\ti1\t5\nu1\ti2\t3\nu2\ti2\t4\nu2\ti3\t1\nu3\ti1\t2\nu3\ti3\t5\n");
    write_file("va.tsv", "u1\ti3\t4\n");
    write_file("te.tsv", "u2\ti1\t5\nu3\ti2\t1\n");
    write_file("items.tsv", "id\ttext\ni1\ta red dress\n");
    write_file("images.tsv", "id\tpath\ni1\tnone.jpg\n");
    char path[512];
    snprintf(path, sizeof path, "%s/model", dir);
    mkdir(path, 0700);
    const char *elliot = "experiment:\n"
                         "  dataset: tiny\n"
                         "  data_config:\n"
                         "    strategy: fixed\n"
                         "    train_path: tr.tsv\n"
                         "    validation_path: va.tsv\n"
                         "    test_path: te.tsv\n"
                         "  top_k: 2\n"
                         "  evaluation:\n"
                         "    cutoffs: [1, 2]\n"
                         "    simple_metrics: [Recall]\n"
                         "  models:\n"
                         "    external.BPRMF:\n"
                         "      meta:\n"
                         "        hyper_opt_alg: grid\n"
                         "        validation_metric: Recall@2\n"
                         "      lr: %s\n"
                         "      epochs: %s\n"
                         "      factors: 4\n"
                         "      batch_size: 4\n"
                         "      l_w: %s\n"
                         "      seed: %s\n";
    char text[2048];
    snprintf(text, sizeof text, elliot, "0.01", "2", "1e-5", "1");
    write_file("elliot.yml", text);
    /* the good config runs, so the refusals below are about the one value each changes */
    int rc = run("train elliot.yml --out good --threads 1", out, sizeof out);
    t_check(rc == 0 && exists("good"), "the Elliot config as written trains: exit %d, %.300s", rc, rc ? out : "");
    snprintf(text, sizeof text, elliot, "0.01", "1e3", "1e-5", "1");
    write_file("epochs_1e3.yml", text);
    snprintf(text, sizeof text, elliot, "0.01", "2", "abc", "1");
    write_file("lw_abc.yml", text);
    snprintf(text, sizeof text, elliot, "0.01", "2", "1e-5", "-1");
    write_file("seed_neg.yml", text);
    snprintf(text, sizeof text, elliot, "0", "2", "1e-5", "1");
    write_file("lr_zero.yml", text);
    snprintf(text, sizeof text, elliot, "[0.01, -0.5]", "2", "1e-5", "1");
    write_file("lr_grid.yml", text);
    snprintf(text, sizeof text, elliot, "0.01", "2", "-1e-5", "1");
    write_file("lw_neg.yml", text);
    /* keys a model holds at its own value, and a list-valued one, checked before the first point trains */
    const char *model_key = "experiment:\n"
                            "  dataset: tiny\n"
                            "  data_config:\n"
                            "    strategy: fixed\n"
                            "    train_path: tr.tsv\n"
                            "    test_path: te.tsv\n"
                            "  top_k: 2\n"
                            "  evaluation:\n"
                            "    cutoffs: [2]\n"
                            "    simple_metrics: [Recall]\n"
                            "  models:\n"
                            "    MostPop: {}\n"
                            "    %s:\n"
                            "      epochs: 1\n"
                            "      factors: 4\n"
                            "      %s\n"
                            "%s";
    snprintf(text, sizeof text, model_key, "LightGCN", "normalize: False", "");
    write_file("lightgcn_norm.yml", text);
    snprintf(text, sizeof text, model_key, "BPRMF", "lr: 0.01", "    FREEDOM:\n      lr_sched: (2, 50)\n");
    write_file("freedom_sched.yml", text);
    snprintf(text, sizeof text, model_key, "NGCF", "lr: 0.01", "      weight_size: 8\n");
    write_file("ngcf_size.yml", text);
    write_file("ducho.yml", "dataset_path: .\ntextual:\n  items:\n    input_path: items.tsv\n    output_path: ducho_out\n"
                            "    item_column: id\n    text_column: text\n    model: [{model_name: model, batch_size: 2}]\n");
    write_file("ducho_batch.yml", "dataset_path: .\ntextual:\n  items:\n    input_path: items.tsv\n    output_path: ducho_out\n"
                                  "    item_column: id\n    text_column: text\n    model: [{model_name: model, batch_size: 1e9}]\n");
    {
        enum { DEPTH = 40000 };
        char *deep = malloc(2 * DEPTH + 8);
        if (deep) {
            int n = sprintf(deep, "a: ");
            memset(deep + n, '[', DEPTH), memset(deep + n + DEPTH, ']', DEPTH);
            deep[n + 2 * DEPTH] = '\n', deep[n + 2 * DEPTH + 1] = 0;
            write_file("deep.yml", deep);
            free(deep);
        }
    }
    snprintf(path, sizeof path, "%s/fifo.yml", dir);
    int fifo_ok = mkfifo(path, 0600) == 0;
    snprintf(path, sizeof path, "%s/fifo.tsv", dir);
    fifo_ok &= mkfifo(path, 0600) == 0;
    t_check(fifo_ok, "FIFOs to give as inputs");
    snprintf(path, sizeof path, "%s/nofeat", dir); /* a features folder with no <id>.npy of these items */
    t_check(mkdir(path, 0700) == 0, "an empty features folder");
    write_file("nofeat.yml", "experiment:\n  data_config:\n    strategy: fixed\n    train_path: tr.tsv\n    validation_path: va.tsv\n"
               "    test_path: te.tsv\n    side_information:\n      - dataloader: VisualAttribute\n        visual_features: nofeat\n"
               "      - dataloader: TextualAttribute\n        textual_features: nofeat\n  dataset: d\n  top_k: 20\n"
               "  evaluation: {cutoffs: [20], simple_metrics: [Recall]}\n  models:\n    external.VBPR: {epochs: 1, factors: 8, "
               "batch_size: 64, lr: 0.01, l_w: 1e-5, comb_mod: concat, modalities: \"('visual', 'textual')\", "
               "loaders: \"('VisualAttribute', 'TextualAttribute')\"}\n");

#define TRAIN "train --data tr.tsv,va.tsv,te.tsv --format tsv --model bprmf --epochs 1 --out OUT "
#define TEXT "extract-text --model model --input items.tsv --id-column id --text-column text --out OUT "
#define IMAGE "extract-image --model model --images images.tsv --out OUT "
#define CLIP "extract-clip --model model --images images.tsv --input items.tsv --id-column id --text-column text --out OUT "
    static const hostile cases[] = {
        /* mrec train: every numeric option */
        {TRAIN "--epochs 1e12", "--epochs", 1},
        {TRAIN "--epochs 0", "--epochs", 1},
        {TRAIN "--epochs -5", "--epochs", 1},
        {TRAIN "--epochs 99999999999999999999999", "--epochs", 1},
        {TRAIN "--lr abc", "--lr", 1},
        {TRAIN "--lr 0", "--lr", 1},
        {TRAIN "--lr nan", "--lr", 1},
        {TRAIN "--lr inf", "--lr", 1},
        {TRAIN "--lr 1e-50", "--lr", 1},
        {TRAIN "--reg abc", "--reg", 1},
        {TRAIN "--reg -1", "--reg", 1},
        {TRAIN "--reg 1e400", "--reg", 1},
        {TRAIN "--dim 0", "--dim", 1},
        {TRAIN "--dim 64x", "--dim", 1},
        {TRAIN "--dim 0x40", "--dim", 1},
        {TRAIN "--layers 17", "--layers", 1},
        {TRAIN "--layers 2.5", "--layers", 1},
        {TRAIN "--batch-size 0", "--batch-size", 1},
        {TRAIN "--batch-size ' 64'", "--batch-size", 1},
        {TRAIN "--seed -1", "--seed", 1},
        {TRAIN "--seed 18446744073709551616", "--seed", 1},
        {TRAIN "--seed-split x", "--seed-split", 1},
        {TRAIN "--patience 0", "--patience", 1},
        {TRAIN "--eval-every 1.5", "--eval-every", 1},
        {TRAIN "--threshold nan", "--threshold", 1},
        {TRAIN "--threads 2000", "--threads", 1},
        {TRAIN "--threads -1", "--threads", 1},
        {TRAIN "--min-rating ''", "--min-rating", 1},
        {TRAIN "--kcore 3k", "--kcore", 1},
        {TRAIN "--neighbours 0", "--neighbours", 1},
        {TRAIN "--save-topk -1", "--save-topk", 1},
        {TRAIN "--knn-k 0", "--knn-k", 1},
        {TRAIN "--lambda 2", "--lambda", 1},
        {TRAIN "--cl-weight -1", "--cl-weight", 1},
        {TRAIN "--target-dropout 1", "--target-dropout", 1},
        {TRAIN "--edge-dropout 1.5", "--edge-dropout", 1},
        {TRAIN "--node-dropout -0.1", "--node-dropout", 1},
        {TRAIN "--mess-dropout 1", "--mess-dropout", 1},
        {TRAIN "--lr-decay 0.9:5x", "--lr-decay", 1},
        {TRAIN "--lr-decay 0:5", "--lr-decay", 1},
        {TRAIN "--k 1,,2", "--k", 1},
        {TRAIN "--k 1,2x", "--k", 1},
        {TRAIN "--select recall@2x", "--select", 1},
        {TRAIN "--split random:0.8x", "--split", 1},
        {TRAIN "--split random:1.5", "--split", 1},
        {TRAIN "--split leave:0", "--split", 1},
        {TRAIN "--epochs", "--epochs needs a value", 1},
        {"train --data tr.tsv,va.tsv,te.tsv --format tsv --model bprmf --out --epochs 1", "--out needs a value", 1},
        {TRAIN "--bogus 3", "'--bogus'", 1},
        /* the flag and the value, and what was expected */
        {TRAIN "--reg abc", "--reg: expected a number in [0, 1e+06], got 'abc'", 1},
        {TRAIN "--epochs 1e12", "--epochs: expected a whole number in [1, 1000000], got '1e12'", 1},
        {TRAIN "--model dualgnn", "--model: 'dualgnn' is not one of mostpop, itemknn, bprmf", 1},
        {TRAIN "--sampler random", "--sampler: expected pairs or users, got 'random'", 1},
        {TRAIN "--loss bpr", "--loss: expected mmrec or authors, got 'bpr'", 1},
        {TRAIN "--format csv", "--format: expected one of inter|tsv|lightgcn, got 'csv'", 1},
        {TRAIN "--missing zero", "--missing", 1},
        {TRAIN "--duplicates keep", "--duplicates", 1},
        {TRAIN "--k 20,10", "--k", 1},
        {TRAIN "--k 1,2,3,4,5,6,7,8,9", "--k", 1},
        {TRAIN "--lr-decay 0.9", "--lr-decay", 1},
        {TRAIN "--lr-decay 0.9:5:1", "--lr-decay", 1},
        {TRAIN "--metrics recall,f1", "--metrics", 1},
        {"train --data tr.tsv,va.tsv,te.tsv --format tsv --model vbpr --features visual --out OUT", "NAME=PATH", 1},
        {TRAIN "--model vbpr --features =x.npy", "NAME=PATH", 1},
        {TRAIN "--model vbpr --features visual=", "NAME=PATH", 1},
        {"train --data tr.tsv --format tsv --out OUT", "--model", 1},
        /* mrec train CONFIG and mrec run CONFIG */
        {"train elliot.yml --out OUT --epochs 1e12", "--epochs", 1},
        {"train elliot.yml --out OUT --threads abc", "--threads", 1},
        {"train elliot.yml --out OUT --threads", "--threads needs a value", 1},
        {"run elliot.yml --out OUT --epochs 0", "--epochs", 1},
        {"run elliot.yml --out OUT --threads 1e3", "--threads", 1},
        {"train elliot.yml --out OUT --device gpu", "--device", 1},
        {"run elliot.yml --out OUT --precision fp16", "fp32|tf32|bf16", 1},
        {"train epochs_1e3.yml --out OUT", "epochs_1e3.yml: line 18: epochs", 2},
        {"train lw_abc.yml --out OUT", "lw_abc.yml: line 21: l_w", 2},
        {"train seed_neg.yml --out OUT", "seed_neg.yml: line 22: seed", 2},
        {"train lr_zero.yml --out OUT", "lr_zero.yml: line 17: lr", 2},
        {"train lr_grid.yml --out OUT", "lr_grid.yml: line 17: lr", 2},
        {"train lw_neg.yml --out OUT", "lw_neg.yml: line 21: l_w", 2},
        {"train lightgcn_norm.yml --out OUT", "lightgcn_norm.yml: line 16: normalize: mrec's graph is always normalized", 2},
        {"train freedom_sched.yml --out OUT", "freedom_sched.yml: line 18: lr_sched: expected (factor, every)", 2},
        {"train ngcf_size.yml --out OUT", "ngcf_size.yml: line 17: weight_size", 2},
        /* mrec extract CONFIG */
        {"extract ducho.yml --threads x", "--threads", 1},
        {"extract ducho.yml --threads 5000", "--threads", 1},
        {"extract ducho_batch.yml", "batch_size", 2},
        /* extract-text, extract-image, extract-clip, clip-scores, tokenize */
        {TEXT "--batch-size 1e3", "--batch-size", 1},
        {TEXT "--batch-size 0", "--batch-size", 1},
        {TEXT "--threads abc", "--threads", 1},
        {IMAGE "--batch-size 5000", "--batch-size", 1},
        {IMAGE "--threads 1.5", "--threads", 1},
        {IMAGE "--decode-threads 0", "--decode-threads", 1},
        {IMAGE "--decode-threads 17", "--decode-threads", 1},
        {IMAGE "--size 224,224x", "--size", 1},
        {IMAGE "--mean 0.5,0.5,nan --std 1,1,1", "--mean", 1},
        {CLIP "--batch-size -1", "--batch-size", 1},
        {CLIP "--threads 1e2", "--threads", 1},
        {CLIP "--decode-threads x", "--decode-threads", 1},
        {"clip-scores --model model --image a.jpg --text t --threads 99999", "--threads", 1},
        {"tokenize --tokenizer model --max-length 0", "--max-length", 1},
        {"tokenize --tokenizer model --max-length 12x", "--max-length", 1},
        {"tokenize --tokenizer model --max-length", "--max-length needs a value", 1},
        {"demo --out OUT --threads 1e3", "--threads", 1},
        {"demo --threads 4 --out", "--out needs a value", 1},
        /* hostile files: a config 40,000 deep, FIFOs as config and as inputs */
        {"train deep.yml --out OUT", "deep.yml: line 1", 2},
        {"run deep.yml --out OUT", "nested more than 64", 2},
        {"extract deep.yml", "nested more than 64", 2},
        {"train fifo.yml --out OUT", "FIFO", 2},
        {"run fifo.yml --out OUT", "fifo.yml", 2},
        {"extract fifo.yml", "FIFO", 2},
        {"train --data fifo.tsv --format tsv --split mmrec --model bprmf --out OUT", "--data 'fifo.tsv': a FIFO", 2},
        {"train --data tr.tsv,fifo.tsv,te.tsv --format tsv --model bprmf --out OUT", "--data 'fifo.tsv'", 2},
        {TRAIN "--model vbpr --features visual=fifo.tsv", "--features 'fifo.tsv'", 2},
        /* the first of two modalities unreadable: the second, never read, is not freed (a crash once) */
        {TRAIN "--model vbpr --features visual=nofeat,textual=nofeat", "nofeat: no <id>.npy", 2},
        {"train nofeat.yml --out OUT", "nofeat: no <id>.npy", 2},
        {"extract-text --model model --input fifo.tsv --id-column id --text-column text --out OUT", "--input 'fifo.tsv'", 2},
        {"extract-image --model model --images fifo.tsv --out OUT", "--images 'fifo.tsv'", 2},
        {"extract-clip --model model --images images.tsv --input fifo.tsv --id-column id --text-column text --out OUT", "--input 'fifo.tsv'", 2},
        {"tokenize --tokenizer fifo.tsv", "--tokenizer 'fifo.tsv'", 2},
        {"inspect fifo.tsv", "fifo.tsv", 2},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    t_check(n >= 45, "%d hostile command lines", n);
    for (int i = 0; i < n; i++) {
        char outdir[32], args[2048];
        snprintf(outdir, sizeof outdir, "out%d", i);
        /* OUT -> out<i> */
        const char *s = cases[i].args;
        size_t at = 0;
        for (; *s && at + 40 < sizeof args; s++) {
            if (!strncmp(s, "OUT", 3)) at += (size_t)snprintf(args + at, sizeof args - at, "%s", outdir), s += 2;
            else args[at++] = *s;
        }
        args[at] = 0;
        rc = run(args, out, sizeof out);
        t_check(rc == cases[i].rc, "mrec %s: exit %d, expected %d (124 is a hang): %.300s", args, rc, cases[i].rc, out);
        t_check(strstr(out, cases[i].named) != NULL, "mrec %s: the message names '%s': %.300s", args, cases[i].named, out);
        t_check(!exists(outdir) && !exists("ducho_out") && !exists("results"), "mrec %s: nothing written", args);
    }
}

int main(void) {
    t_suite("bad_options");
    bin = getenv("MREC_BIN");
    if (!bin) bin = "bin/mrec";
    static char abs_bin[4096];
    if (bin[0] != '/') { /* the binary runs from the scratch folder */
        char cwd[2048];
        T_REQUIRE(getcwd(cwd, sizeof cwd) != NULL);
        snprintf(abs_bin, sizeof abs_bin, "%s/%s", cwd, bin);
        bin = abs_bin;
    }
    T_REQUIRE(mkdtemp(dir) != NULL);
    parse_ints();
    parse_u64s();
    parse_doubles();
    train_table();
    inputs();
    deep_config();
    big_config();
    cli();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_finish();
}
