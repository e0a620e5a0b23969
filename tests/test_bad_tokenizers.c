/* test_bad_tokenizers.c: hostile tokenizer files and hostile text.
 *
 * Each case writes a file (or a FIFO, a folder, a link) into a fresh
 * temporary folder, loads it, and asserts the exact status and that the
 * message names the file, plus a word that says what was wrong. Nothing may
 * hang (a FIFO is refused without waiting for a writer; an alarm turns a
 * hang into a failure), crash, or load half a vocabulary.
 *
 * Then text: invalid UTF-8 is read as Python's errors="replace" does, and
 * NULL arguments are refused.
 */
#include "harness.h"

#include "../tokenizers/mrec_tokenizer.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define VOCAB "tests/data/tokenizers/bert-base-uncased/vocab.txt"

static char dir[64];

static void path_of(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s%s%s", dir, name[0] ? "/" : "", name);
}

static void put(const char *name, const void *data, size_t len) {
    char path[256];
    path_of(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

static void put_str(const char *name, const char *text) { put(name, text, strlen(text)); }

/* Loads dir/name (or an absolute path) and checks the status and that the
 * message names the file at fault (named, in dir; NULL = the one loaded). */
static void expect_named(const char *name, const char *named, mrec_tok_status want, const char *word, const char *what) {
    char path[256], fault[256];
    if (name[0] == '/') snprintf(path, sizeof path, "%s", name);
    else path_of(path, sizeof path, name);
    if (named) path_of(fault, sizeof fault, named);
    else snprintf(fault, sizeof fault, "%s", path);
    mrec_tokenizer *t = (mrec_tokenizer *)1;
    mrec_tok_status st = mrec_tokenizer_load(&t, path);
    const char *detail = st ? mrec_tok_error_detail() : "";
    if (st == MREC_TOK_OK) mrec_tokenizer_free(t);
    if (getenv("MREC_TEST_VERBOSE")) printf("  %-44s %s\n", what, detail); /* to read the messages */
    t_check(st == want && t == NULL && strstr(detail, fault) != NULL && (!word || strstr(detail, word) != NULL),
            "%s: want '%s' naming %s%s%s, got '%s': %s", what, mrec_tok_strerror(want), fault, word ? " and " : "",
            word ? word : "", mrec_tok_strerror(st), detail);
}

static void expect(const char *name, mrec_tok_status want, const char *word, const char *what) {
    expect_named(name, NULL, want, word, what);
}

/* A file with a given name, loaded, then removed: most cases. */
static void file_case(const char *name, const char *text, mrec_tok_status want, const char *word, const char *what) {
    put_str(name, text);
    expect(name, want, word, what);
    char path[256];
    path_of(path, sizeof path, name);
    unlink(path);
}

static const char WP_SPECIALS[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n";

static void vocab_txt_cases(void) {
    char big[5000];
    file_case("vocab.txt", "", MREC_TOK_ERR_FORMAT, "vocabulary of 0", "empty vocab.txt");
    file_case("vocab.txt", "hello\nworld\n", MREC_TOK_ERR_FORMAT, "[UNK]", "vocab.txt without [UNK] [CLS] [SEP]");
    file_case("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nhello\n", MREC_TOK_ERR_FORMAT, "line 6",
              "duplicate token");
    file_case("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n\nhello\n", MREC_TOK_ERR_FORMAT, "line 5: empty token",
              "empty line");
    file_case("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nok\n\n", MREC_TOK_ERR_FORMAT, "line 6", "blank last line");
    file_case("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nab\xff\xfe\n", MREC_TOK_ERR_FORMAT, "line 5: token is not valid UTF-8",
              "invalid UTF-8 token");
    file_case("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n\xc0\xaf\n", MREC_TOK_ERR_FORMAT, "not valid UTF-8",
              "overlong UTF-8 token");
    file_case("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n\xed\xa0\x80\n", MREC_TOK_ERR_FORMAT, "not valid UTF-8",
              "surrogate in a token");
    file_case("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n\xe4\xb8\n", MREC_TOK_ERR_FORMAT, "not valid UTF-8",
              "truncated UTF-8 at a line end");
    put("vocab.txt", "[PAD]\n[UNK]\na\0b\n[CLS]\n[SEP]\n", 24);
    expect("vocab.txt", MREC_TOK_ERR_FORMAT, "line 3: token contains a NUL", "NUL byte in a token");
    memcpy(big, WP_SPECIALS, sizeof WP_SPECIALS - 1);
    memset(big + sizeof WP_SPECIALS - 1, 'x', sizeof big - sizeof WP_SPECIALS);
    big[sizeof big - 1] = '\0';
    file_case("vocab.txt", big, MREC_TOK_ERR_FORMAT, "line 5: token of", "a 5,000-byte line");

    /* tokenizer_config.json beside a good vocab.txt */
    put_str("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n");
    put_str("tokenizer_config.json", "{\"do_lower_case\": tru");
    expect_named("vocab.txt", "tokenizer_config.json", MREC_TOK_ERR_FORMAT, "line 1 (byte 18): not valid JSON",
                 "malformed tokenizer_config.json");
    put_str("tokenizer_config.json", "[1, 2]");
    expect_named("vocab.txt", "tokenizer_config.json", MREC_TOK_ERR_FORMAT, "not a JSON object", "config not an object");
    char cfg[256];
    path_of(cfg, sizeof cfg, "tokenizer_config.json");
    unlink(cfg);
    if (t_check(mkfifo(cfg, 0600) == 0, "mkfifo %s", cfg))
        expect_named("vocab.txt", "tokenizer_config.json", MREC_TOK_ERR_IO, "not a regular file (a FIFO)",
                     "tokenizer_config.json is a FIFO");
    unlink(cfg);
    char vt[256];
    path_of(vt, sizeof vt, "vocab.txt");
    unlink(vt);
}

/* "{"x": {"x": ... 1 ... }}" or "[[[...]]]" nested n levels. */
static char *nested(int n, int objects) {
    size_t len = (size_t)n * (objects ? 7 : 2) + 8; /* openers, closers, "1", NUL */
    char *s = malloc(len), *p = s;
    for (int i = 0; i < n; i++) p += objects ? (memcpy(p, "{\"x\": ", 6), 6) : (*p = '[', 1);
    *p++ = '1';
    for (int i = 0; i < n; i++) *p++ = objects ? '}' : ']';
    *p = '\0';
    return s;
}

/* A WordPiece tokenizer.json from its parts. */
static void wp_json(char *out, size_t cap, const char *vocab, const char *model_extra, const char *root_extra,
                    const char *normalizer) {
    snprintf(out, cap,
             "{\"model\": {\"type\": \"WordPiece\", \"vocab\": %s%s}, \"normalizer\": {\"type\": \"%s\"},"
             " \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}%s}",
             vocab, model_extra, normalizer, root_extra);
}

static const char WP_VOCAB[] = "{\"[PAD]\": 0, \"[UNK]\": 1, \"[CLS]\": 2, \"[SEP]\": 3, \"hello\": 4}";

static void tokenizer_json_cases(void) {
    char j[2048];
    file_case("tokenizer.json", "{\"model\": ", MREC_TOK_ERR_FORMAT, "not valid JSON", "truncated JSON");
    file_case("tokenizer.json", "[]", MREC_TOK_ERR_FORMAT, "not a JSON object", "a JSON array");
    file_case("tokenizer.json", "", MREC_TOK_ERR_FORMAT, "not valid JSON", "an empty tokenizer.json");
    char *deep = nested(100000, 0);
    file_case("tokenizer.json", deep, MREC_TOK_ERR_FORMAT, "nested deeper than", "100,000 nested arrays");
    free(deep);
    deep = nested(100000, 1);
    file_case("tokenizer.json", deep, MREC_TOK_ERR_FORMAT, "nested deeper than", "100,000 nested objects");
    free(deep);
    /* brackets inside strings do not count as nesting; the file is then unsupported, not too deep */
    file_case("tokenizer.json", "{\"model\": {\"type\": \"WordLevel\", \"s\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}}",
              MREC_TOK_ERR_UNSUPPORTED, "WordLevel", "brackets in a string, model WordLevel");
    file_case("tokenizer.json", "{\"normalizer\": null}", MREC_TOK_ERR_UNSUPPORTED, "model type", "no model");
    wp_json(j, sizeof j, WP_VOCAB, "", "", "NFC");
    file_case("tokenizer.json", j, MREC_TOK_ERR_UNSUPPORTED, "normalizer \"NFC\"", "WordPiece with NFC normalizer");
    snprintf(j, sizeof j, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": %s}, \"normalizer\": {\"type\": \"BertNormalizer\"}}",
             WP_VOCAB);
    file_case("tokenizer.json", j, MREC_TOK_ERR_UNSUPPORTED, "pre_tokenizer", "WordPiece without pre_tokenizer");
    wp_json(j, sizeof j, "{\"[PAD]\": 0, \"[UNK]\": 1, \"[CLS]\": 2, \"[SEP]\": 9}", "", "", "BertNormalizer");
    file_case("tokenizer.json", j, MREC_TOK_ERR_FORMAT, "id 9 outside the vocabulary of 4", "id past the vocabulary");
    wp_json(j, sizeof j, "{\"[PAD]\": 0, \"[UNK]\": 1, \"[CLS]\": 2, \"[SEP]\": -1}", "", "", "BertNormalizer");
    file_case("tokenizer.json", j, MREC_TOK_ERR_FORMAT, "not an integer id", "negative id");
    wp_json(j, sizeof j, "{\"[PAD]\": 0, \"[UNK]\": 1, \"[CLS]\": 2, \"[SEP]\": 2.5}", "", "", "BertNormalizer");
    file_case("tokenizer.json", j, MREC_TOK_ERR_FORMAT, "not an integer id", "fractional id");
    wp_json(j, sizeof j, "{\"[PAD]\": 0, \"[UNK]\": \"1\", \"[CLS]\": 2, \"[SEP]\": 3}", "", "", "BertNormalizer");
    file_case("tokenizer.json", j, MREC_TOK_ERR_FORMAT, "not an integer id", "id as a string");
    wp_json(j, sizeof j, "[\"[PAD]\", \"[UNK]\"]", "", "", "BertNormalizer");
    file_case("tokenizer.json", j, MREC_TOK_ERR_FORMAT, "vocab is not an object", "vocab as an array");
    wp_json(j, sizeof j, "{\"[PAD]\": 0, \"[UNK]\": 1, \"[CLS]\": 1, \"[SEP]\": 3}", "", "", "BertNormalizer");
    file_case("tokenizer.json", j, MREC_TOK_ERR_FORMAT, "id 1 given to both", "two tokens, one id");
    wp_json(j, sizeof j, "{\"[PAD]\": 0, \"[UNK]\": 1, \"[CLS]\": 2, \"[UNK]\": 3}", "", "", "BertNormalizer");
    file_case("tokenizer.json", j, MREC_TOK_ERR_FORMAT, "already has id 1", "a token twice");
    wp_json(j, sizeof j, "{\"[PAD]\": 0, \"[UNK]\": 1, \"[CLS]\": 2, \"[SEP]\": 3, \"\xff\": 4}", "", "", "BertNormalizer");
    file_case("tokenizer.json", j, MREC_TOK_ERR_FORMAT, "not valid UTF-8", "invalid UTF-8 in a JSON token");
    wp_json(j, sizeof j, "{\"[PAD]\": 0, \"[UNK]\": 1, \"[CLS]\": 2, \"[SEP]\": 3, \"\\ud800\": 4}", "", "", "BertNormalizer");
    file_case("tokenizer.json", j, MREC_TOK_ERR_FORMAT, "not valid JSON", "a lone surrogate escape");
    wp_json(j, sizeof j, "{\"[PAD]\": 0, \"[UNK]\": 1, \"[SEP]\": 2}", "", "", "BertNormalizer");
    file_case("tokenizer.json", j, MREC_TOK_ERR_FORMAT, "lacks [UNK], [CLS] or [SEP]", "no [CLS]");
    wp_json(j, sizeof j, WP_VOCAB, "", ", \"added_tokens\": [{\"id\": 77, \"content\": \"[X]\"}]", "BertNormalizer");
    file_case("tokenizer.json", j, MREC_TOK_ERR_FORMAT, "added_tokens", "added token id out of range");
    wp_json(j, sizeof j, WP_VOCAB, "", ", \"added_tokens\": [{\"id\": 4, \"content\": \"\"}]", "BertNormalizer");
    file_case("tokenizer.json", j, MREC_TOK_ERR_FORMAT, "added_tokens", "added token without content");
    wp_json(j, sizeof j, WP_VOCAB, "", ", \"added_tokens\": [{\"id\": 4, \"content\": \"a\xc3\"}]", "BertNormalizer");
    file_case("tokenizer.json", j, MREC_TOK_ERR_FORMAT, "not valid UTF-8", "added token with invalid UTF-8");
    wp_json(j, sizeof j, WP_VOCAB, ", \"continuing_subword_prefix\": \"################\"", "", "BertNormalizer");
    file_case("tokenizer.json", j, MREC_TOK_ERR_FORMAT, "continuing_subword_prefix", "a 16-byte prefix");
    wp_json(j, sizeof j, WP_VOCAB, ", \"max_input_chars_per_word\": 0", "", "BertNormalizer");
    file_case("tokenizer.json", j, MREC_TOK_ERR_UNSUPPORTED, "max_input_chars_per_word", "max 0 characters a word");
    /* the framing: post_processor, padding, unk_token */
    static const struct {
        const char *model_extra, *root_extra;
        mrec_tok_status want;
        const char *word, *what;
    } framing[] = {
        {"", ", \"post_processor\": {\"type\": \"ByteLevel\"}", MREC_TOK_ERR_UNSUPPORTED, "post_processor \"ByteLevel\"",
         "an unknown post_processor"},
        {"", ", \"post_processor\": {\"type\": \"RobertaProcessing\", \"cls\": [\"<s>\", 0]}", MREC_TOK_ERR_FORMAT,
         "without [token, id]", "RobertaProcessing without sep"},
        {"", ", \"post_processor\": {\"type\": \"BertProcessing\", \"cls\": [\"[CLS]\", 3], \"sep\": [\"[SEP]\", 3]}",
         MREC_TOK_ERR_FORMAT, "\"[CLS]\" is id 3, the vocabulary says 2", "cls under another id"},
        {"", ", \"post_processor\": {\"type\": \"BertProcessing\", \"cls\": [\"<s>\", 70], \"sep\": [\"[SEP]\", 3]}",
         MREC_TOK_ERR_FORMAT, "post_processor.cls has no id", "cls id past the vocabulary"},
        {"", ", \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [], \"pair\": []}",
         MREC_TOK_ERR_UNSUPPORTED, "TemplateProcessing of 0 and 0 pieces", "an empty template"},
        {"", ", \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"[CLS]\", "
             "\"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"[SEP]\", "
             "\"type_id\": 0}}], \"pair\": [{}, {}, {}, {}, {}], \"special_tokens\": {}}",
         MREC_TOK_ERR_UNSUPPORTED, "template special \"[CLS]\"", "a template special missing from special_tokens"},
        {"", ", \"padding\": {\"pad_id\": 4, \"pad_token\": \"[PAD]\"}", MREC_TOK_ERR_FORMAT, "\"[PAD]\" is id 4",
         "padding naming [PAD] under another id"},
        {", \"unk_token\": \"<unk>\"", "", MREC_TOK_ERR_FORMAT, "model.unk_token \"<unk>\" is not in the vocabulary",
         "an unk_token missing from the vocabulary"},
    };
    for (size_t i = 0; i < sizeof framing / sizeof framing[0]; i++) {
        wp_json(j, sizeof j, WP_VOCAB, framing[i].model_extra, framing[i].root_extra, "BertNormalizer");
        file_case("tokenizer.json", j, framing[i].want, framing[i].word, framing[i].what);
    }
}

/* A CLIP-style BPE tokenizer.json, built with cJSON so the regex needs no hand escaping. */
static char *bpe_json(const char *vocab_json, const char *merges_json, const char *suffix, const char *regex) {
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    if (suffix) cJSON_AddStringToObject(model, "end_of_word_suffix", suffix);
    cJSON_AddItemToObject(model, "vocab", cJSON_Parse(vocab_json));
    cJSON_AddItemToObject(model, "merges", cJSON_Parse(merges_json));
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON *seq = cJSON_AddArrayToObject(pre, "pretokenizers"), *split = cJSON_CreateObject();
    cJSON_AddItemToArray(seq, split);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", regex);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static const char CLIP_REGEX[] =
    "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

static void bpe_cases(void) {
    const char *v = "{\"a\": 0, \"b\": 1, \"ab\": 2, \"<|startoftext|>\": 3, \"<|endoftext|>\": 4}";
    struct { const char *merges, *suffix, *regex; mrec_tok_status want; const char *word, *what; } cases[] = {
        {"[]", NULL, CLIP_REGEX, MREC_TOK_ERR_UNSUPPORTED, "end_of_word_suffix", "BPE without </w>"},
        {"[]", "</w>", "\\s+", MREC_TOK_ERR_UNSUPPORTED, "split pattern", "BPE with another pre-tokenizer"},
        {"{}", "</w>", CLIP_REGEX, MREC_TOK_ERR_FORMAT, "merges is not an array", "merges as an object"},
        {"[\"a c\"]", "</w>", CLIP_REGEX, MREC_TOK_ERR_FORMAT, "not in the vocabulary", "merge of an unknown token"},
        {"[\"a b\", 7]", "</w>", CLIP_REGEX, MREC_TOK_ERR_FORMAT, "merge 2", "merge as a number"},
        {"[\"a b c\"]", "</w>", CLIP_REGEX, MREC_TOK_ERR_FORMAT, "merge 1", "merge of three parts"},
        {"[\"ab\"]", "</w>", CLIP_REGEX, MREC_TOK_ERR_FORMAT, "merge 1", "merge without a space"},
        {"[\"a b\"]", "</w>", CLIP_REGEX, MREC_TOK_ERR_FORMAT, "byte 0x00", "vocabulary without byte tokens"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *j = bpe_json(v, cases[i].merges, cases[i].suffix, cases[i].regex);
        file_case("clip.tokenizer.json", j, cases[i].want, cases[i].word, cases[i].what);
        free(j);
    }
}

static void vocab_json_cases(void) {
    char merges[256];
    path_of(merges, sizeof merges, "merges.txt");
    put_str("vocab.json", "{\"a\": 0, \"b\": 1, \"ab\": 2}");
    expect_named("vocab.json", "merges.txt", MREC_TOK_ERR_IO, "cannot open", "vocab.json without merges.txt");
    put_str("merges.txt", "#version: 0.2\na b\nab c\n");
    expect_named("vocab.json", "merges.txt", MREC_TOK_ERR_FORMAT, "line 3: merge \"ab c\"", "merges.txt with an unknown token");
    put_str("merges.txt", "#version: 0.2\nab\n");
    expect_named("vocab.json", "merges.txt", MREC_TOK_ERR_FORMAT, "line 2 is not", "merges.txt line without a space");
    char big[4000];
    memset(big, 'a', sizeof big);
    big[1500] = ' ';
    big[sizeof big - 1] = '\0';
    put_str("merges.txt", big);
    expect_named("vocab.json", "merges.txt", MREC_TOK_ERR_FORMAT, "line 1: 3999 bytes", "a 4,000-byte merges line");
    unlink(merges);
    if (t_check(mkfifo(merges, 0600) == 0, "mkfifo %s", merges))
        expect_named("vocab.json", "merges.txt", MREC_TOK_ERR_IO, "not a regular file (a FIFO)", "merges.txt is a FIFO");
    unlink(merges);
    char *deep = nested(100000, 1);
    file_case("vocab.json", deep, MREC_TOK_ERR_FORMAT, "nested deeper than", "vocab.json nested 100,000 deep");
    free(deep);
    file_case("vocab.json", "{\"a\": 0, \"b\": 2}", MREC_TOK_ERR_FORMAT, "id 2 outside the vocabulary of 2",
              "vocab.json with a hole");
}

/* Writes a gzip file of text, whole or cut to its first keep bytes. */
static void put_gz(const char *name, const char *text, long keep) {
    char path[256];
    path_of(path, sizeof path, name);
    gzFile g = gzopen(path, "wb");
    gzwrite(g, text, (unsigned)strlen(text));
    gzclose(g);
    if (keep >= 0 && truncate(path, keep) != 0) fprintf(stderr, "cannot truncate %s\n", path);
}

static void gz_cases(void) {
    file_case("bpe.txt.gz", "not gzip at all", MREC_TOK_ERR_FORMAT, "not gzip data", "a .gz that is not gzip");
    /* a long, varied text so that cutting it leaves a stream without its end */
    static char text[200000];
    size_t n = 0;
    n += (size_t)snprintf(text, sizeof text, "#version: 0.2\n");
    for (int i = 0; n + 32 < sizeof text; i++) n += (size_t)snprintf(text + n, sizeof text - n, "t%d h%d\n", i * 7919 % 100003, i);
    put_gz("bpe.txt.gz", text, 4000);
    expect("bpe.txt.gz", MREC_TOK_ERR_FORMAT, "bad gzip data", "a truncated .gz");
    put_gz("bpe.txt.gz", "#version: 0.2\ni n\nt h\n", -1);
    expect("bpe.txt.gz", MREC_TOK_ERR_FORMAT, "CLIP needs", "a .gz with 2 merges");
    put_gz("bpe.txt.gz", "", -1);
    expect("bpe.txt.gz", MREC_TOK_ERR_FORMAT, "CLIP needs", "an empty .gz");
    char path[256];
    path_of(path, sizeof path, "bpe.txt.gz");
    unlink(path);
}

static void special_file_cases(void) {
    char path[256], target[256];
    const char *fifo_names[] = {"vocab.txt", "tokenizer.json", "bpe.txt.gz", "vocab.json"};
    for (int i = 0; i < 4; i++) {
        path_of(path, sizeof path, fifo_names[i]);
        if (!t_check(mkfifo(path, 0600) == 0, "mkfifo %s", path)) continue;
        expect(fifo_names[i], MREC_TOK_ERR_IO, "not a regular file (a FIFO)", "a FIFO as a vocabulary");
        unlink(path);
    }
    expect("/dev/zero", MREC_TOK_ERR_IO, "not a regular file (a device)", "/dev/zero");
    expect("/dev/null", MREC_TOK_ERR_IO, "not a regular file (a device)", "/dev/null");
    /* a folder by a file's name */
    path_of(path, sizeof path, "tokenizer.json");
    mkdir(path, 0700);
    expect("tokenizer.json", MREC_TOK_ERR_IO, "holds none of", "a folder named tokenizer.json");
    expect_named("", "tokenizer.json", MREC_TOK_ERR_IO, "not a regular file (a folder)",
                 "a folder holding a folder tokenizer.json");
    rmdir(path);
    /* a folder whose tokenizer.json is a FIFO, and a link to a FIFO */
    if (t_check(mkfifo(path, 0600) == 0, "mkfifo %s", path)) {
        expect_named("", "tokenizer.json", MREC_TOK_ERR_IO, "not a regular file (a FIFO)",
                     "a folder holding a FIFO tokenizer.json");
        path_of(target, sizeof target, "link.json");
        if (t_check(symlink(path, target) == 0, "symlink %s", target))
            expect("link.json", MREC_TOK_ERR_IO, "not a regular file (a FIFO)", "a link to a FIFO");
        unlink(target);
        unlink(path);
    }
    expect("missing/vocab.txt", MREC_TOK_ERR_IO, "cannot open", "a missing file");
}

/* Text: invalid UTF-8 as U+FFFD, NULL arguments refused. */
static void text_cases(void) {
    mrec_tokenizer *t;
    if (!t_check(mrec_tokenizer_load(&t, VOCAB) == MREC_TOK_OK, "load %s: %s", VOCAB, mrec_tok_error_detail())) return;
    static const struct { const char *bytes; const char *same_as; } cases[] = {
        {"ab\xff" "cd", "abcd"},                      /* BERT drops U+FFFD, so the word joins */
        {"x \xed\xa0\x80 y", "x y"},                  /* a surrogate: three U+FFFD */
        {"\xc0\xaf", ""},                             /* overlong: two U+FFFD */
        {"caf\xc3", "caf"},                           /* cut sequence at the end */
        {"\xf4\x90\x80\x80 z", " z"},                 /* past U+10FFFF */
        {"\x80\x80\x80", ""},                         /* stray continuation bytes */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t got[16], want[16];
        size_t ng, nw;
        mrec_tok_status st = mrec_tokenize(t, cases[i].bytes, strlen(cases[i].bytes), got, 16, &ng);
        mrec_tokenize(t, cases[i].same_as, strlen(cases[i].same_as), want, 16, &nw);
        t_check(st == MREC_TOK_OK && ng == nw && memcmp(got, want, ng * sizeof *got) == 0,
                "invalid UTF-8 case %zu tokenizes as \"%s\" (status %d, %zu ids)", i, cases[i].same_as, st, ng);
        int32_t ids[16];
        size_t len;
        st = mrec_tokenizer_encode(t, cases[i].bytes, NULL, NULL, ids, NULL, NULL, 16, &len);
        t_check(st == MREC_TOK_OK && len == nw + 2 && ids[0] == 101 && ids[len - 1] == 102,
                "encode of invalid UTF-8 case %zu: [CLS] .. [SEP]", i);
    }
    size_t n;
    int32_t ids[4];
    t_check(mrec_tokenize(t, NULL, 3, ids, 4, &n) == MREC_TOK_ERR_ARG, "tokenize NULL text");
    t_check(mrec_tokenize(NULL, "a", 1, ids, 4, &n) == MREC_TOK_ERR_ARG, "tokenize NULL tokenizer");
    t_check(mrec_tokenize(t, "a", 1, NULL, 0, &n) == MREC_TOK_ERR_SPACE && n == 1, "tokenize counting only");
    t_check(mrec_tokenizer_encode(t, NULL, NULL, NULL, ids, NULL, NULL, 4, &n) == MREC_TOK_ERR_ARG, "encode NULL text");
    t_check(mrec_tokenizer_load(NULL, VOCAB) == MREC_TOK_ERR_ARG, "load into NULL");
    mrec_tokenizer_free(t);
}

int main(void) {
    t_suite("bad_tokenizers");
    alarm(120); /* a FIFO that blocks would otherwise hang the suite */
    snprintf(dir, sizeof dir, "/tmp/mrec_badtok_XXXXXX");
    T_REQUIRE(mkdtemp(dir) != NULL);
    vocab_txt_cases();
    tokenizer_json_cases();
    bpe_cases();
    vocab_json_cases();
    gz_cases();
    special_file_cases();
    text_cases();
    T_REQUIRE(rmdir(dir) == 0);
    return t_finish();
}
