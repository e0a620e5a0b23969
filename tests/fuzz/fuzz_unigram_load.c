/* fuzz_unigram_load.c: libFuzzer target for the Unigram tokenizer.json loader
 * and the Precompiled character map. The input is a character map's raw
 * bytes, a 0xFF byte, then a tokenizer.json in which "@CHARSMAP@" stands
 * for those bytes in base64 (so the map's double-array trie is mutated as
 * bytes, not through base64). A file that loads must then tokenize
 * multilingual text, encode and decode without fault, every id in range. */
#define _GNU_SOURCE /* memmem */
#include "../../tokenizers/mrec_tokenizer.h"
#include "scratch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char path[320];

static char *base64(const uint8_t *p, size_t n, size_t *len) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (!out) abort();
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        out[k++] = abc[w >> 18 & 63];
        out[k++] = abc[w >> 12 & 63];
        out[k++] = i + 1 < n ? abc[w >> 6 & 63] : '=';
        out[k++] = i + 2 < n ? abc[w & 63] : '=';
    }
    out[k] = '\0';
    *len = k;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!path[0]) {
        snprintf(path, sizeof path, "%s/tokenizer.json", fuzz_scratch("fuzz_unigram_load"));
    }
    const uint8_t *cut = memchr(data, 0xFF, size);
    if (!cut) return 0;
    size_t map_len = (size_t)(cut - data), b64_len;
    char *map = base64(data, map_len, &b64_len);
    const char *json = (const char *)cut + 1;
    size_t json_len = size - map_len - 1;
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    /* Copy the text between markers in whole runs: a byte loop here cost a
     * quarter of each execution in traced compares. */
    for (const char *at = json, *end = json + json_len; at < end;) {
        const char *mark = memmem(at, (size_t)(end - at), "@CHARSMAP@", 10);
        fwrite(at, 1, (size_t)((mark ? mark : end) - at), f);
        if (!mark) break;
        fwrite(map, 1, b64_len, f);
        at = mark + 10;
    }
    fclose(f);
    free(map);
    mrec_tokenizer *tok;
    if (mrec_tokenizer_load(&tok, path) == MREC_TOK_OK) {
        static const char text[] = "Hello,  wörld! <s> ＦＵＬＬ ﬁne ½ 中文 日本語 한국어 العربية עברית हिन्दी 😀👍🏽 e\xcc\x81 \r\n\t\xe2\x80\x8d";
        int32_t ids[512], types[512], mask[512];
        size_t n;
        mrec_tokenize(tok, text, sizeof text - 1, ids, 512, &n);
        mrec_tok_options o = mrec_tok_defaults();
        o.max_length = 24, o.padding = 1;
        if (mrec_tokenizer_encode(tok, text, "pair", &o, ids, types, mask, 512, &n) == MREC_TOK_OK) {
            for (size_t i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= mrec_tokenizer_vocab_size(tok)) abort();
            char out[4096];
            size_t len;
            mrec_tokenizer_decode(tok, ids, n, 0, out, sizeof out, &len);
        }
        mrec_tokenizer_free(tok);
    }
    unlink(path);
    return 0;
}
