/* fuzz_tokenize.c: libFuzzer target for the tokenizers themselves: random
 * bytes (invalid UTF-8 included) through the real BERT and CLIP
 * vocabularies. Every id must be in range and decode must succeed. */
#include "../../tokenizers/mrec_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mrec_tokenizer *toks[2];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    if (mrec_tokenizer_load(&toks[0], "tests/data/tokenizers/bert-base-uncased/vocab.txt") ||
        mrec_tokenizer_load(&toks[1], "tests/data/tokenizers/clip/clip-vit-base-patch32.tokenizer.json")) {
        fprintf(stderr, "fuzz_tokenize: run from the repository root (tests/data/tokenizers): %s\n", mrec_tok_error_detail());
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int32_t ids[1 << 16];
    for (int k = 0; k < 2; k++) {
        size_t n;
        if (mrec_tokenize(toks[k], (const char *)data, size, ids, 1 << 16, &n) != MREC_TOK_OK) continue;
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= mrec_tokenizer_vocab_size(toks[k])) abort();
        static char out[1 << 18];
        size_t len;
        mrec_tok_status st = mrec_tokenizer_decode(toks[k], ids, n, 0, out, sizeof out, &len);
        if (st != MREC_TOK_OK && st != MREC_TOK_ERR_SPACE) abort();
    }
    return 0;
}
