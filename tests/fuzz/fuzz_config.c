/* fuzz_config.c: libFuzzer target for the YAML config reader, its checked
 * reads and the Elliot experiment reader on top: anything may be refused,
 * nothing may crash or leak, and an accepted file is a map whose nodes are
 * well formed. (The experiment reader only reads: it checks that paths exist
 * and creates nothing.) */
#include "../../tools/elliot.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void walk(const mrec_cfg *c, const mrec_cfg_node *n, int depth) {
    for (; n; n = n->next) {
        if (n->line < 1 || (n->kind == MREC_CFG_SCALAR && !n->value)) abort();
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
        if (depth < 64) walk(c, n->child, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mrec_cfg c;
    if (mrec_cfg_parse(&c, (const char *)data, size, "fuzz.yml") == MREC_OK) {
        if (!c.root || c.root->kind != MREC_CFG_MAP) abort();
        walk(&c, c.root, 0);
        static experiment e;
        memset(&e, 0, sizeof e);
        e.c = &c;
        if (elliot_read(&e, c.root) == MREC_OK && (e.n_models < 1 || e.n_k < 1)) abort();
        mrec_cfg_free(&c);
    }
    return 0;
}
