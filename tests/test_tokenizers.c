/* test_tokenizers.c: WordPiece and CLIP BPE against Hugging Face.
 *
 * Parity: tools/golden/tokenizers.py ran BertTokenizerFast (bert-base-uncased
 * vocab.txt; the all-MiniLM-L6-v2 tokenizer.json gives the same ids) and
 * CLIPTokenizerFast on 17,010 texts (SQuAD questions, ML-100K plots and
 * titles, H&M product text, hand-made edge cases); every text must give the
 * same ids, exactly. The SQuAD ids of Google's original Python tokenizer,
 * shipped with the vocabulary, must match too. Then full encodings (special
 * tokens, pairs, truncation, padding), decoding, loaders of every format,
 * and malformed vocabularies.
 *
 * Reads the vocabularies from ../shared/data/tokenizers; prints "skipped" for
 * what is absent there.
 */
#include "harness.h"

#include "../tokenizers/mrec_tokenizer.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define TOK "../shared/data/tokenizers/"
#define FIX "tests/fixtures/tokenizers/"

typedef struct {
    char **lines;
    int n;
    char *buf;
} lines_t;

static void free_lines(lines_t *l) {
    free(l->buf);
    free(l->lines);
}

/* Reads a gzip (or plain) text file into lines. */
static int read_lines(const char *path, lines_t *out) {
    gzFile f = gzopen(path, "rb");
    if (!f) return 0;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    int k;
    while (buf && (k = gzread(f, buf + n, (unsigned)(cap - n - 1))) > 0) {
        n += (size_t)k;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    gzclose(f);
    if (!buf) return 0;
    buf[n] = '\0';
    out->buf = buf;
    out->n = 0;
    for (size_t i = 0; i < n; i++) out->n += buf[i] == '\n';
    out->lines = malloc(sizeof(char *) * (size_t)(out->n + 1));
    char *s = buf;
    for (int i = 0; i < out->n; i++) {
        char *e = strchr(s, '\n');
        *e = '\0';
        out->lines[i] = s;
        s = e + 1;
    }
    return 1;
}

/* Undoes the fixture escaping: "\\\\" and "\\xNN". Returns the length. */
static size_t unescape(const char *in, char *out) {
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        if (*p == '\\' && p[1] == '\\') out[n++] = '\\', p++;
        else if (*p == '\\' && p[1] == 'x') {
            char hex[3] = {p[2], p[3], 0};
            out[n++] = (char)strtol(hex, NULL, 16);
            p += 3;
        } else out[n++] = *p;
    }
    out[n] = '\0';
    return n;
}

static int parse_ids(const char *s, int32_t *ids, int cap) {
    int n = 0;
    char *end;
    while (*s && n < cap) {
        long v = strtol(s, &end, 10);
        if (end == s) break;
        ids[n++] = (int32_t)v;
        s = end;
    }
    return n;
}

/* Every corpus text against the expected ids; reports the first few misses. */
static void corpus_parity(mrec_tokenizer *tok, const char *name, const lines_t *corpus, const char *ids_file) {
    lines_t want;
    if (!t_check(read_lines(ids_file, &want), "%s: read %s", name, ids_file)) return;
    if (!t_check(want.n == corpus->n, "%s: %d expected rows for %d texts", name, want.n, corpus->n)) return;
    static char text[1 << 16];
    static int32_t got[1 << 14], exp[1 << 14];
    int bad = 0;
    for (int i = 0; i < corpus->n; i++) {
        size_t len = unescape(corpus->lines[i], text), n;
        mrec_tok_status st = mrec_tokenize(tok, text, len, got, 1 << 14, &n);
        int ne = parse_ids(want.lines[i], exp, 1 << 14);
        if (st || (int)n != ne || memcmp(got, exp, n * sizeof *got) != 0) {
            if (bad++ < 5) {
                fprintf(stderr, "  %s text %d \"%.80s\": got", name, i, corpus->lines[i]);
                for (size_t k = 0; k < n && k < 24; k++) fprintf(stderr, " %d", got[k]);
                fprintf(stderr, "\n    want %.200s\n", want.lines[i]);
            }
        }
    }
    t_check(bad == 0, "%s: %d of %d texts differ from Hugging Face", name, bad, corpus->n);
    printf("%s: %d of %d texts identical to Hugging Face\n", name, corpus->n - bad, corpus->n);
    free_lines(&want);
}

/* Google's Python WordPiece ids for the SQuAD questions, shipped with the vocabulary. */
static void squad_reference(mrec_tokenizer *tok) {
    FILE *f = fopen(TOK "bert-base-uncased/reference/squad_dev_v1.1_question_tokens.json", "rb");
    FILE *g = fopen(TOK "bert-base-uncased/reference/squad_dev_v1.1_question_ids.json", "rb");
    if (!f || !g) {
        if (f) fclose(f);
        if (g) fclose(g);
        t_skip("SQuAD reference not found under " TOK);
        return;
    }
    static char a[4 << 20], b[2 << 20];
    size_t na = fread(a, 1, sizeof a - 1, f), nb = fread(b, 1, sizeof b - 1, g);
    fclose(f), fclose(g);
    cJSON *qs = cJSON_ParseWithLength(a, na), *ids = cJSON_ParseWithLength(b, nb);
    int n = cJSON_GetArraySize(qs), bad = 0;
    const cJSON *q = qs ? qs->child : NULL, *row = ids ? ids->child : NULL;
    for (; q && row; q = q->next, row = row->next) {
        const char *text = cJSON_GetObjectItem(q, "original")->valuestring;
        int32_t got[512];
        size_t len;
        mrec_tokenize(tok, text, strlen(text), got, 512, &len);
        int same = (int)len == cJSON_GetArraySize(row);
        int k = 0;
        for (const cJSON *v = row->child; v && same; v = v->next, k++) same = got[k] == v->valueint;
        if (!same && bad++ < 3) fprintf(stderr, "  squad: \"%s\" differs\n", text);
    }
    t_check(n == 10570 && bad == 0, "SQuAD reference ids (Google's Python tokenizer): %d of %d differ", bad, n);
    cJSON_Delete(qs), cJSON_Delete(ids);
}

static void encode_cases(mrec_tokenizer *bert, mrec_tokenizer *clip) {
    lines_t cases;
    if (!t_check(read_lines(FIX "encode.txt", &cases), "read encode.txt")) return;
    static char a[1 << 15], b[1 << 12], *fields[8];
    for (int i = 0; i < cases.n; i++) {
        char *s = cases.lines[i];
        int nf = 0;
        for (char *p = s; nf < 7; nf++) {
            fields[nf] = p;
            char *tab = strchr(p, '\t');
            if (!tab) {
                nf++;
                break;
            }
            *tab = '\0';
            p = tab + 1;
        }
        if (!t_check(nf == 7, "encode.txt line %d has %d fields", i + 1, nf)) continue;
        mrec_tokenizer *tok = strcmp(fields[0], "bert") == 0 ? bert : clip;
        unescape(fields[1], a);
        int has_pair = strcmp(fields[2], "-") != 0;
        if (has_pair) unescape(fields[2], b);
        mrec_tok_options o = mrec_tok_defaults();
        o.max_length = atoi(fields[3]);
        o.padding = o.truncation = o.max_length > 0;
        int32_t ids[600], types[600], mask[600], we[600], wt[600], wm[600];
        size_t len;
        mrec_tok_status st = mrec_tokenizer_encode(tok, a, has_pair ? b : NULL, &o, ids, types, mask, 600, &len);
        int ne = parse_ids(fields[4], we, 600);
        parse_ids(fields[5], wt, 600);
        parse_ids(fields[6], wm, 600);
        int ok = st == MREC_TOK_OK && (int)len == ne && !memcmp(ids, we, len * 4) && !memcmp(mask, wm, len * 4) &&
                 (tok == clip || !memcmp(types, wt, len * 4));
        t_check(ok, "encode case %d (%s, max_length %s): %d ids, want %d", i + 1, fields[0], fields[3], (int)len, ne);
    }
    free_lines(&cases);
}

static void roundtrip_and_api(mrec_tokenizer *bert, mrec_tokenizer *clip) {
    char out[256];
    size_t len;
    int32_t ids[64];
    size_t n;
    mrec_tokenize(bert, "Hello, world! unaffable", 23, ids, 64, &n);
    t_check(mrec_tokenizer_decode(bert, ids, n, 1, out, sizeof out, &len) == MREC_TOK_OK &&
                strcmp(out, "hello , world ! unaffable") == 0,
            "bert decode: '%s'", out);
    mrec_tokenize(clip, "A photo of a Cat, 2024!", 23, ids, 64, &n);
    t_check(mrec_tokenizer_decode(clip, ids, n, 1, out, sizeof out, &len) == MREC_TOK_OK &&
                strcmp(out, "a photo of a cat , 2 0 2 4 !") == 0,
            "clip decode: '%s'", out);
    int32_t bad_id = 1 << 30;
    t_check(mrec_tokenizer_decode(bert, &bad_id, 1, 0, out, sizeof out, &len) == MREC_TOK_ERR_ARG, "decode of a bad id");
    t_check(mrec_tokenize(bert, "one two three four", 18, ids, 2, &n) == MREC_TOK_ERR_SPACE && n == 4,
            "a small buffer reports the count needed (%zu)", n);
    /* Invalid UTF-8 decodes as U+FFFD: BERT drops it, CLIP encodes its bytes. */
    const char bad_utf8[] = "ab\xff\xfe cd \xe2\x82";
    mrec_tokenize(bert, bad_utf8, sizeof bad_utf8 - 1, ids, 64, &n);
    int32_t want[8];
    size_t nw;
    mrec_tokenize(bert, "ab cd ", 6, want, 8, &nw);
    t_check(n == nw && memcmp(ids, want, n * 4) == 0, "bert drops invalid UTF-8 like U+FFFD");
    mrec_tokenize(clip, bad_utf8, sizeof bad_utf8 - 1, ids, 64, &n);
    const char replaced[] = "ab\xef\xbf\xbd\xef\xbf\xbd cd \xef\xbf\xbd";
    mrec_tokenize(clip, replaced, sizeof replaced - 1, want, 8, &nw);
    t_check(n == nw && memcmp(ids, want, n * 4) == 0, "clip reads invalid UTF-8 as U+FFFD (Python's errors='replace')");
    /* Batch: rows padded, lengths reported. */
    const char *texts[3] = {"short", "a somewhat longer text here", ""};
    int32_t bids[3 * 16], bmask[3 * 16], blen[3];
    mrec_tok_options o = mrec_tok_defaults();
    t_check(mrec_tokenizer_encode_batch(bert, texts, NULL, 3, &o, 16, bids, NULL, bmask, blen) == MREC_TOK_OK &&
                blen[0] == 3 && blen[2] == 2 && bids[16 * 2 + 1] == 102 && bmask[3] == 0 && bids[3] == 0,
            "encode_batch pads rows");
    o.truncation = 0;
    t_check(mrec_tokenizer_encode_batch(bert, texts, NULL, 3, &o, 4, bids, NULL, bmask, blen) == MREC_TOK_ERR_SPACE,
            "encode_batch without truncation refuses a row that does not fit");
    t_check(mrec_tokenizer_max_length(clip) == 77 && mrec_tokenizer_pad_id(clip) == 49407, "clip context 77, pad 49407");
}

static void loaders(void) {
    mrec_tokenizer *t;
    /* The same BERT vocabulary three ways gives the same ids. */
    const char *paths[] = {TOK "bert-base-uncased/vocab.txt", TOK "bert-base-uncased", TOK "all-MiniLM-L6-v2"};
    int32_t ref[64], ids[64];
    size_t nref = 0, n;
    for (int i = 0; i < 3; i++) {
        if (!t_check(mrec_tokenizer_load(&t, paths[i]) == MREC_TOK_OK, "load %s: %s", paths[i], mrec_tok_error_detail()))
            continue;
        mrec_tokenize(t, "Ångström's café: 中文 [MASK]!", strlen("Ångström's café: 中文 [MASK]!"), i ? ids : ref, 64, i ? &n : &nref);
        if (i) t_check(n == nref && memcmp(ids, ref, n * 4) == 0, "%s agrees with vocab.txt", paths[i]);
        mrec_tokenizer_free(t);
    }
    /* CLIP: OpenAI's .gz and Hugging Face's tokenizer.json are one vocabulary. */
    mrec_tokenizer *a, *b;
    if (mrec_tokenizer_load(&a, TOK "clip/bpe_simple_vocab_16e6.txt.gz") == MREC_TOK_OK &&
        mrec_tokenizer_load(&b, TOK "clip/clip-vit-base-patch32.tokenizer.json") == MREC_TOK_OK) {
        int same = mrec_tokenizer_vocab_size(a) == mrec_tokenizer_vocab_size(b) && mrec_tokenizer_vocab_size(a) == 49408;
        for (int i = 0; i < mrec_tokenizer_vocab_size(a) && same; i++)
            same = strcmp(mrec_tokenizer_token(a, i), mrec_tokenizer_token(b, i)) == 0;
        t_check(same, "CLIP .gz and tokenizer.json have the same 49,408 tokens in the same order");
        const char *s = "A photo of two dogs playing in the snow, 4K HDR!!";
        size_t na, nb;
        mrec_tokenize(a, s, strlen(s), ref, 64, &na);
        mrec_tokenize(b, s, strlen(s), ids, 64, &nb);
        t_check(na == nb && memcmp(ref, ids, na * 4) == 0, "CLIP .gz and tokenizer.json tokenize alike");
        mrec_tokenizer_free(a), mrec_tokenizer_free(b);
    } else {
        t_check(0, "load CLIP: %s", mrec_tok_error_detail());
    }

    /* Malformed files: each rejected with a message naming the file. */
    char dir[] = "/tmp/mrec_tok_XXXXXX";
    if (!t_check(mkdtemp(dir) != NULL, "temporary folder")) return;
    static const struct { const char *name, *content; mrec_tok_status want; } bad[] = {
        {"vocab.txt", "hello\nworld\n", MREC_TOK_ERR_FORMAT},                       /* no [UNK] [CLS] [SEP] */
        {"a.json", "{\"model\": {\"type\": \"Unigram\"}}", MREC_TOK_ERR_UNSUPPORTED},
        {"b.json", "{\"model\": ", MREC_TOK_ERR_FORMAT},
        {"c.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}, \"normalizer\": {\"type\": \"NFC\"}}",
         MREC_TOK_ERR_UNSUPPORTED},
        {"d.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": 0, \"[CLS]\": 5, \"[SEP]\": 1}},"
                   "\"normalizer\": {\"type\": \"BertNormalizer\"}, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
         MREC_TOK_ERR_FORMAT},                                                         /* id past the vocabulary */
        {"e.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": \"x\"}},"
                   "\"normalizer\": {\"type\": \"BertNormalizer\"}, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
         MREC_TOK_ERR_FORMAT},
        {"vocab.json", "{\"a\": 0, \"b\": 1, \"ab\": 2}", MREC_TOK_ERR_IO},          /* names the missing merges.txt */
        {"x.gz", "not gzip at all", MREC_TOK_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, bad[i].name);
        FILE *f = fopen(path, "wb");
        fputs(bad[i].content, f);
        fclose(f);
        mrec_tok_status st = mrec_tokenizer_load(&t, path);
        if (st == MREC_TOK_OK) mrec_tokenizer_free(t);
        const char *named = strcmp(bad[i].name, "vocab.json") == 0 ? "merges.txt" : bad[i].name;
        t_check(st == bad[i].want && strstr(mrec_tok_error_detail(), named) != NULL,
                "malformed %s: got '%s' (%s)", bad[i].name, mrec_tok_strerror(st), mrec_tok_error_detail());
        unlink(path);
    }
    t_check(mrec_tokenizer_load(&t, "/nonexistent/vocab.txt") == MREC_TOK_ERR_IO, "missing file");
    rmdir(dir);
}

int main(void) {
    t_suite("tokenizers");
    if (access(TOK "bert-base-uncased/vocab.txt", R_OK) != 0) {
        t_skip("vocabularies not found under " TOK);
        return t_finish();
    }
    mrec_tokenizer *bert, *clip;
    T_REQUIRE(mrec_tokenizer_load(&bert, TOK "bert-base-uncased/vocab.txt") == MREC_TOK_OK);
    T_REQUIRE(mrec_tokenizer_load(&clip, TOK "clip/clip-vit-base-patch32.tokenizer.json") == MREC_TOK_OK);
    lines_t corpus;
    T_REQUIRE(read_lines(FIX "corpus.txt.gz", &corpus));
    corpus_parity(bert, "wordpiece", &corpus, FIX "bert_ids.txt.gz");
    mrec_tokenizer *minilm;
    if (mrec_tokenizer_load(&minilm, TOK "all-MiniLM-L6-v2/tokenizer.json") == MREC_TOK_OK) {
        corpus_parity(minilm, "wordpiece (tokenizer.json)", &corpus, FIX "bert_ids.txt.gz");
        mrec_tokenizer_free(minilm);
    }
    corpus_parity(clip, "clip bpe", &corpus, FIX "clip_ids.txt.gz");
    free_lines(&corpus);
    squad_reference(bert);
    encode_cases(bert, clip);
    roundtrip_and_api(bert, clip);
    loaders();
    mrec_tokenizer_free(bert);
    mrec_tokenizer_free(clip);
    return t_finish();
}
