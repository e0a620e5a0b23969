/* fuzz_config.c: libFuzzer target for the YAML config reader, its checked
 * reads, the number parsers behind them and the Elliot experiment reader on
 * top: anything may be refused, nothing may crash or leak, an accepted file
 * is a map whose nodes are well formed and at most 64 levels deep, and a
 * number the parsers accept lies in the range asked for, a hyper-parameter's
 * in the registry's. (The experiment
 * reader only reads: it checks that paths exist and creates nothing.) */
#include "../../tools/elliot.h"
#include "../../tools/mrec_options.h"
#include "../../tools/mrec_parse.h"
#include "../../recsys/mrec_recsys.h"

#include <math.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Every scalar through every parser: an accepted value is inside its range. */
static void numbers(const char *s) {
    long i;
    uint64_t u;
    double d, three[3];
    if (!mrec_parse_int(s, -5, 1000, &i) && (i < -5 || i > 1000)) abort();
    if (!mrec_parse_u64(s, 2, 1u << 20, &u) && (u < 2 || u > 1u << 20)) abort();
    if (!mrec_parse_real(s, 0, 1, MREC_OPEN_LO | MREC_OPEN_HI, &d) && !(d > 0 && d < 1)) abort();
    if (!mrec_parse_double(s, -1e300, 1e300, &d) && !isfinite(d)) abort();
    if (!mrec_parse_reals(s, 3, -1, 1, three) && !(fabs(three[0]) <= 1 && fabs(three[1]) <= 1 && fabs(three[2]) <= 1)) abort();
    /* the --split and --prefilter spellings an Elliot config becomes, and dates */
    mrec_elliot_part part;
    if (!mrec_elliot_part_parse(s, &part) &&
        !(part.strategy == MREC_ELLIOT_FIXED_TIME || (part.strategy == MREC_ELLIOT_KFOLD && part.folds >= 2) ||
          ((part.leave_n >= 1 || (part.ratio > 0 && part.ratio < 1)) && part.folds >= 1 && part.folds <= MREC_ELLIOT_MAX_FOLDS)))
        abort();
    mrec_prefilter steps[4];
    int n_steps = -1;
    if (!mrec_prefilter_parse(s, steps, 4, &n_steps) && (n_steps < 0 || n_steps > 4)) abort();
    int64_t seconds;
    mrec_parse_date(s, &seconds);
    mrec_param_value v;
    for (int h = 0; h < MREC_HP_COUNT; h++) /* every hyper-parameter: an accepted value is inside its range */
        if (mrec_param_parse((mrec_hp)h, s, &v) == MREC_OK && mrec_param_check((mrec_hp)h, &v) != MREC_OK) abort();
}

static void walk(const mrec_cfg *c, const mrec_cfg_node *n, int depth) {
    for (; n; n = n->next) {
        if (n->line < 1 || (n->kind == MREC_CFG_SCALAR && !n->value) || depth > 64) abort();
        if (n->kind == MREC_CFG_SCALAR) numbers(n->value);
        if (n->kind == MREC_CFG_MAP) {
            static const char *const keys[] = {"a", "models", NULL};
            mrec_cfg_check_keys(c, n, "fuzz", keys);
            long v;
            double d;
            int b;
            const char *s;
            mrec_cfg_int(c, n, "a", 0, -5, 5, &v), mrec_cfg_number(c, n, "a", 0, -1, 1, &d);
            mrec_cfg_bool(c, n, "a", 0, &b), mrec_cfg_string(c, n, "a", 0, &s);
        }
        walk(c, n->child, depth + 1); /* the reader refuses more than 64 levels */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mrec_cfg c;
    if (mrec_cfg_parse(&c, (const char *)data, size, "fuzz.yml") == MREC_OK) {
        if (!c.root || c.root->kind != MREC_CFG_MAP) abort();
        walk(&c, c.root, 1);
        static experiment e;
        memset(&e, 0, sizeof e);
        e.c = &c;
        if (elliot_read(&e, c.root) == MREC_OK && (e.n_models < 1 || e.n_k < 1)) abort();
        mrec_cfg_free(&c);
    }
    return 0;
}
