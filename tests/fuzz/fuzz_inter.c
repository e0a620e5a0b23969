/* fuzz_inter.c: libFuzzer target for the interaction table readers (.inter,
 * Elliot TSV and fixed splits, LightGCN train.txt / test.txt). Anything may
 * be refused; nothing may crash, leak or hang, and an accepted table must
 * keep the loaders' promises: ids in range, finite ratings, timestamps >= 0,
 * split labels 0..2, each (user, item) pair once, and pre-split data with
 * training and test pairs.
 *
 * Input: byte 0 picks the reader (bits 0-1), the duplicate policy (bit 2)
 * and a 64-byte line cap (bit 3); the rest is the file, or the files of a
 * fixed split separated by 0xFF bytes. The fuzz build links only the parsers
 * the Makefile lists, so the reader's source is compiled in here. */
#include "../../recsys/data.c"

#include "scratch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void quiet(void *ctx, const char *line) { (void)ctx, (void)line; }

static int by_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void check(const mrec_interactions *x) {
    if (x->n < 1 || x->n_users < 1 || x->n_items < 1 || !x->user_names || !x->item_names) abort();
    int64_t count[3] = {0, 0, 0};
    uint64_t *pairs = malloc(sizeof *pairs * (size_t)x->n);
    if (!pairs) abort();
    for (int64_t k = 0; k < x->n; k++) {
        if (x->user[k] < 0 || x->user[k] >= x->n_users || x->item[k] < 0 || x->item[k] >= x->n_items) abort();
        if (!isfinite(x->rating[k]) || x->timestamp[k] < 0 || x->split[k] < 0 || x->split[k] > 2) abort();
        count[x->split[k]]++;
        pairs[k] = (uint64_t)x->user[k] << 32 | (uint32_t)x->item[k];
    }
    qsort(pairs, (size_t)x->n, sizeof *pairs, by_u64);
    for (int64_t k = 1; k < x->n; k++)
        if (pairs[k] == pairs[k - 1]) abort();
    free(pairs);
    if (x->has_split && (!count[MREC_SPLIT_TRAIN] || !count[MREC_SPLIT_TEST])) abort();
    for (int u = 0; u < x->n_users; u++)
        if (!x->user_names[u] || !x->user_names[u][0]) abort();
    mrec_user_items m;
    if (mrec_user_items_build(&m, x, MREC_SPLIT_TRAIN) != MREC_OK) abort();
    mrec_user_items_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = fuzz_scratch("fuzz_inter");
    if (size < 1) return 0;
    int mode = data[0] & 3;
    mrec_load_options o = mrec_load_defaults();
    o.notice = quiet;
    o.duplicates = data[0] & 4 ? MREC_DUPLICATES_ERROR : MREC_DUPLICATES_DROP;
    if (data[0] & 8) o.max_line = 64;
    data++, size--;
    /* up to three parts, split at 0xFF */
    const uint8_t *part[3] = {data, NULL, NULL};
    size_t len[3] = {size, 0, 0};
    int n_parts = 1;
    for (size_t i = 0; i < size && n_parts < 3; i++)
        if (data[i] == 0xFF) {
            len[n_parts - 1] = (size_t)(data + i - part[n_parts - 1]);
            part[n_parts] = data + i + 1, len[n_parts] = size - i - 1;
            n_parts++;
        }
    char a[256], b[256], c[256];
    mrec_interactions x;
    mrec_status st;
    if (mode == 0) {
        fuzz_put("t.inter", data, size, a, sizeof a);
        st = mrec_load_inter_opt(&x, a, &o);
    } else if (mode == 1) {
        fuzz_put("t.tsv", data, size, a, sizeof a);
        st = mrec_load_tsv_opt(&x, a, &o);
    } else if (mode == 2) {
        fuzz_put("train.tsv", part[0], len[0], a, sizeof a);
        fuzz_put("valid.tsv", part[1], len[1], b, sizeof b);
        fuzz_put("test.tsv", part[2], len[2], c, sizeof c);
        st = mrec_load_tsv_splits_opt(&x, a, n_parts == 3 ? b : NULL, n_parts == 3 ? c : b, &o);
    } else {
        fuzz_put("train.txt", part[0], len[0], a, sizeof a);
        fuzz_put("test.txt", part[1], len[1], b, sizeof b);
        st = mrec_load_lightgcn_opt(&x, dir, &o);
    }
    if (st == MREC_OK) {
        check(&x);
        mrec_interactions_free(&x);
    } else if (!mrec_error_detail()[0]) {
        abort(); /* every refusal says why */
    }
    return 0;
}
