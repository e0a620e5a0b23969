/* fuzz_unigram_tokenize.c: libFuzzer target for Unigram tokenization: random
 * bytes (invalid UTF-8 included) through the small Unigram tokenizer of
 * tests/data (byte fallback on, and off) and, when ../shared/data holds it,
 * the real XLM-R one with its full character map. Every id must be in
 * range, decode must succeed, and with byte fallback no <unk> may appear
 * (every byte has a piece) unless the text may spell "<unk>". */
#include "../../tokenizers/mrec_tokenizer.h"
#include "../../tokenizers/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mrec_tokenizer *toks[2];
static int n_toks;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    if (mrec_tokenizer_load(&toks[0], "tests/data/tokenizers/unigram-tiny/tokenizer.json")) {
        fprintf(stderr, "fuzz_unigram_tokenize: run from the repository root (tests/data/tokenizers): %s\n",
                mrec_tok_error_detail());
        abort();
    }
    n_toks = 1;
    if (mrec_tokenizer_load(&toks[1], "../shared/data/tokenizers/xlm-roberta-e5/tokenizer.json") == MREC_TOK_OK) n_toks = 2;
    fprintf(stderr, "fuzz_unigram_tokenize: %s\n", n_toks == 2 ? "unigram-tiny and XLM-R" : "unigram-tiny only");
    return 0;
}

/* The normalized text may spell the piece "<unk>" itself (controls are
 * dropped, full-width and small forms become '<'): then <unk> is a real
 * match, as in Hugging Face. Inputs with a '<' or a character that maps
 * to it are left out of the no-<unk> check. */
static int may_spell_unk(const uint8_t *data, size_t size) {
    static const char *lt[] = {"<", "\xef\xbc\x9c", "\xef\xb9\xa4"};
    for (size_t i = 0; i < size; i++)
        for (int k = 0; k < 3; k++) {
            size_t n = strlen(lt[k]);
            if (i + n <= size && memcmp(data + i, lt[k], n) == 0) return 1;
        }
    return 0;
}

static void check(mrec_tokenizer *t, const uint8_t *data, size_t size, int no_unk) {
    static int32_t ids[1 << 17];
    size_t n;
    if (mrec_tokenize(t, (const char *)data, size, ids, 1 << 17, &n) != MREC_TOK_OK) return;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= mrec_tokenizer_vocab_size(t)) abort();
        if (no_unk && ids[i] == t->unk_id && !may_spell_unk(data, size)) abort();
    }
    static char out[1 << 19];
    size_t len;
    mrec_tok_status st = mrec_tokenizer_decode(t, ids, n, 0, out, sizeof out, &len);
    if (st != MREC_TOK_OK && st != MREC_TOK_ERR_SPACE) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check(toks[0], data, size, 1);
    toks[0]->byte_fallback = 0;
    check(toks[0], data, size, 0);
    toks[0]->byte_fallback = 1;
    if (n_toks == 2) check(toks[1], data, size, 0);
    return 0;
}
