/* fuzz_tok_load.c: libFuzzer target for the tokenizer file loaders.
 * The first byte picks the format (vocab.txt, tokenizer.json, vocab.json +
 * merges.txt split at the first 0xFF byte, gzip); the rest is the file. A
 * file that loads must then tokenize, encode and decode without fault. */
#include "../../tokenizers/mrec_tokenizer.h"
#include "scratch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_scratch("fuzz_tok_load");
    if (size < 1) return 0;
    static const char *names[] = {"vocab.txt", "tokenizer.json", "vocab.json", "vocab.txt.gz"};
    int kind = data[0] % 4;
    data++, size--;
    char path[256];
    if (kind == 2) {
        const uint8_t *cut = memchr(data, 0xFF, size);
        size_t n = cut ? (size_t)(cut - data) : size;
        fuzz_put("merges.txt", cut ? cut + 1 : data, cut ? size - n - 1 : 0, path, sizeof path);
        fuzz_put("vocab.json", data, n, path, sizeof path);
    } else {
        fuzz_put(names[kind], data, size, path, sizeof path);
    }
    mrec_tokenizer *tok;
    if (mrec_tokenizer_load(&tok, path) == MREC_TOK_OK) {
        static const char text[] = "Hello, wörld! [CLS] <|endoftext|> 中文 don't 42";
        int32_t ids[256], types[256], mask[256];
        size_t n;
        mrec_tokenize(tok, text, sizeof text - 1, ids, 256, &n);
        mrec_tok_options o = mrec_tok_defaults();
        o.max_length = 16, o.padding = 1;
        if (mrec_tokenizer_encode(tok, text, "pair", &o, ids, types, mask, 256, &n) == MREC_TOK_OK) {
            for (size_t i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= mrec_tokenizer_vocab_size(tok)) abort();
            char out[1024];
            size_t len;
            mrec_tokenizer_decode(tok, ids, n, 0, out, sizeof out, &len);
        }
        mrec_tokenizer_free(tok);
    }
    return 0;
}
