/* test_tokenizers.c: WordPiece and CLIP BPE against Hugging Face.
 *
 * Parity: tools/golden/tokenizers.py ran BertTokenizerFast (bert-base-uncased
 * vocab.txt; the all-MiniLM-L6-v2 tokenizer.json gives the same ids) and
 * CLIPTokenizerFast on SQuAD questions, item texts written for the tests
 * and hand-made edge cases; every text must give the same ids, exactly. Real
 * ML-100K and H&M item texts are checked by digest, read from ../shared/data
 * when it is there (their terms forbid copying them into the repository). The SQuAD ids of Google's original Python tokenizer,
 * shipped with the vocabulary, must match too. Then full encodings (special
 * tokens, pairs, truncation, padding), decoding, loaders of every format,
 * and malformed vocabularies.
 *
 * Held-out strings (tools/golden/tokenizers_heldout.py): unassigned code
 * points, noncharacters, controls, private use, invalid UTF-8, combining
 * marks out of canonical order, across scripts; the three tokenizers must
 * give Hugging Face's ids for every one.
 *
 * The vocabularies ship in tests/data/tokenizers, so a fresh clone runs every
 * test; so does the first part of the SQuAD reference. When the full
 * reference is found in ../shared/data/tokenizers it is used instead.
 */
#include "harness.h"

#include "../extractors/mrec_extract.h"
#include "../tokenizers/mrec_tokenizer.h"
#include "../tokenizers/tok_internal.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define TOK "tests/data/tokenizers/"
#ifndef SHARED /* -DSHARED='"/nonexistent/"' runs the tests as a fresh clone would */
#define SHARED "../shared/data/tokenizers/"
#endif
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

/* One BPE tokenizer shared by four threads, its word cache empty at the start so that they fill it and read it
 * at once, each thread taking every fourth text of the corpus (the threads and the cache's replacements
 * interleave): every text's ids are still Hugging Face's. */
typedef struct {
    mrec_tokenizer *tok;
    const lines_t *corpus, *want;
    int first, bad;
} shared_job;

static void *shared_encode(void *arg) {
    shared_job *j = arg;
    char *text = malloc(1 << 16);
    int32_t *got = malloc(sizeof *got * (1 << 14)), *exp = malloc(sizeof *exp * (1 << 14));
    for (int round = 0; text && got && exp && round < 2; round++)
        for (int i = j->first; i < j->corpus->n; i += 4) {
            size_t len = unescape(j->corpus->lines[i], text), n;
            mrec_tok_status st = mrec_tokenize(j->tok, text, len, got, 1 << 14, &n);
            int ne = parse_ids(j->want->lines[i], exp, 1 << 14);
            j->bad += st || (int)n != ne || memcmp(got, exp, n * sizeof *got) != 0;
        }
    if (!text || !got || !exp) j->bad = -1;
    free(text), free(got), free(exp);
    return NULL;
}

static void shared_tokenizer(const lines_t *corpus) {
    mrec_tokenizer *tok;
    lines_t want;
    if (!t_check(mrec_tokenizer_load(&tok, TOK "clip/clip-vit-base-patch32.tokenizer.json") == MREC_TOK_OK, "a fresh CLIP tokenizer"))
        return;
    if (t_check(read_lines(FIX "clip_ids.txt.gz", &want) && want.n == corpus->n, "the CLIP references")) {
        shared_job job[4];
        pthread_t th[4];
        int started = 0, bad = 0;
        for (int k = 0; k < 4; k++) {
            job[k] = (shared_job){tok, corpus, &want, k, 0};
            if (pthread_create(&th[k], NULL, shared_encode, &job[k]) == 0) started++;
            else break;
        }
        for (int k = 0; k < started; k++) pthread_join(th[k], NULL), bad += job[k].bad;
        t_check(started == 4 && bad == 0, "clip bpe from 4 threads at once, twice over the corpus: %d of %d encodings differ", bad,
                2 * corpus->n);
        free_lines(&want);
    }
    mrec_tokenizer_free(tok);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    *n = 0;
    size_t k;
    while (buf && (k = fread(buf + *n, 1, cap - *n, f)) > 0)
        if ((*n += k) == cap) buf = realloc(buf, cap *= 2);
    fclose(f);
    return buf;
}

/* Google's Python WordPiece ids for SQuAD questions, shipped with the
 * vocabulary: all 10,570 when the full reference is at hand, else the first
 * 2,000 that the repository carries. */
static void squad_reference(mrec_tokenizer *tok) {
    const char *q_path = SHARED "bert-base-uncased/reference/squad_dev_v1.1_question_tokens.json";
    const char *id_path = SHARED "bert-base-uncased/reference/squad_dev_v1.1_question_ids.json";
    int want_n = 10570;
    if (access(q_path, R_OK) != 0 || access(id_path, R_OK) != 0) {
        q_path = TOK "bert-base-uncased/reference/squad_dev_v1.1_first2000_question_tokens.json";
        id_path = TOK "bert-base-uncased/reference/squad_dev_v1.1_first2000_question_ids.json";
        want_n = 2000;
    }
    size_t na, nb;
    char *a = slurp(q_path, &na), *b = slurp(id_path, &nb);
    cJSON *qs = a ? cJSON_ParseWithLength(a, na) : NULL, *ids = b ? cJSON_ParseWithLength(b, nb) : NULL;
    free(a), free(b);
    if (!t_check(qs && ids, "SQuAD reference: read and parse %s and %s", q_path, id_path)) {
        cJSON_Delete(qs), cJSON_Delete(ids);
        return;
    }
    int n = cJSON_GetArraySize(qs), bad = 0;
    const cJSON *q = qs->child, *row = ids->child;
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
    t_check(n == want_n && cJSON_GetArraySize(ids) == want_n && bad == 0,
            "SQuAD reference ids (Google's Python tokenizer): %d of %d differ", bad, n);
    printf("SQuAD reference: %d of %d questions identical (%s)\n", n - bad, n, q_path);
    cJSON_Delete(qs), cJSON_Delete(ids);
}

/* Held-out strings: text, then the ids of bert-base-uncased vocab.txt, the
 * all-MiniLM-L6-v2 tokenizer.json and CLIP, tab-separated. */
static void heldout(mrec_tokenizer *bert, mrec_tokenizer *minilm, mrec_tokenizer *clip) {
    lines_t rows;
    if (!t_check(read_lines(FIX "heldout.txt", &rows), "read " FIX "heldout.txt")) return;
    static const char *names[3] = {"bert vocab.txt", "minilm tokenizer.json", "clip"};
    mrec_tokenizer *toks[3] = {bert, minilm, clip};
    static char text[1 << 14];
    static int32_t got[1 << 12], want[1 << 12];
    int bad[3] = {0, 0, 0};
    for (int i = 0; i < rows.n; i++) {
        char *field[4], *p = rows.lines[i];
        int nf = 0;
        for (; nf < 4 && p; nf++) {
            field[nf] = p;
            p = strchr(p, '\t');
            if (p) *p++ = '\0';
        }
        if (!t_check(nf == 4 && !p, "heldout.txt line %d: 4 tab-separated fields", i + 1)) continue;
        size_t len = unescape(field[0], text);
        for (int k = 0; k < 3; k++) {
            size_t n;
            mrec_tok_status st = mrec_tokenize(toks[k], text, len, got, 1 << 12, &n);
            int nw = parse_ids(field[k + 1], want, 1 << 12);
            if (st == MREC_TOK_OK && (int)n == nw && memcmp(got, want, n * sizeof *got) == 0) continue;
            if (bad[k]++ < 4) {
                fprintf(stderr, "  heldout line %d (%s) \"%.60s\": got", i + 1, names[k], field[0]);
                for (size_t j = 0; j < n && j < 16; j++) fprintf(stderr, " %d", got[j]);
                fprintf(stderr, "\n    want %.120s\n", field[k + 1]);
            }
        }
    }
    for (int k = 0; k < 3; k++)
        t_check(bad[k] == 0, "held-out strings, %s: %d of %d differ from Hugging Face", names[k], bad[k], rows.n);
    free_lines(&rows);
}

/* ---- real item texts that may not be copied into the repository ----
 * ML-100K titles and plots and H&M product names and descriptions (their
 * terms forbid redistribution): read from ../shared/data in the order
 * tools/golden/tokenizers.py walks them, each checked against the committed
 * size and CRC-32 of the text (so a reader difference shows as such) and the
 * count and CRC-32 of each tokenizer's ids (shared_ids.tsv.gz). */
#define SHARED_ROOT SHARED "../"

typedef struct {
    char **v;
    int n, cap;
} texts_t;

static int texts_push(texts_t *t, const char *s) {
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 1024;
        char **v = realloc(t->v, sizeof *v * (size_t)cap);
        if (!v) return 0;
        t->v = v, t->cap = cap;
    }
    return (t->v[t->n] = strdup(s)) != NULL && ++t->n;
}

/* The ids as the *_ids.txt files write them, as count:crc32. */
static void ids_digest(const int32_t *ids, size_t n, char *out, size_t cap) {
    uLong crc = crc32(0L, Z_NULL, 0);
    char num[16];
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(num, sizeof num, i ? " %d" : "%d", ids[i]);
        crc = crc32(crc, (const Bytef *)num, (uInt)k);
    }
    snprintf(out, cap, "%zu:%08lx", n, crc);
}

static int shared_texts(texts_t *t) {
    size_t n = 0;
    char *json = slurp(SHARED_ROOT "ml-100k/clayrs/items_info.json", &n);
    cJSON *items = json ? cJSON_Parse(json) : NULL;
    free(json);
    if (!t_check(cJSON_IsArray(items), "ml-100k/clayrs/items_info.json: a JSON array")) return cJSON_Delete(items), 0;
    const cJSON *item;
    int ok = 1;
    cJSON_ArrayForEach(item, items) {
        const cJSON *title = cJSON_GetObjectItemCaseSensitive(item, "title"), *plot = cJSON_GetObjectItemCaseSensitive(item, "plot");
        ok = ok && cJSON_IsString(title) && texts_push(t, title->valuestring);
        if (ok && cJSON_IsString(plot) && plot->valuestring[0]) ok = texts_push(t, plot->valuestring);
    }
    cJSON_Delete(items);
    mrec_table tab;
    int cols[2];
    const char *csv = SHARED_ROOT "hm-fashion-sample/original/articles_train_sample.csv";
    if (!ok || !t_status(mrec_table_read(&tab, csv, ','), MREC_OK, "read the H&M articles")) return 0;
    ok = !mrec_table_column(&tab, "prod_name", csv, &cols[0]) && !mrec_table_column(&tab, "detail_desc", csv, &cols[1]);
    /* first sightings of non-empty names and descriptions, 3,000 at most (a hash set of the texts kept) */
    enum { SLOTS = 8192 };
    static const char *seen[SLOTS];
    memset(seen, 0, sizeof seen);
    int n_seen = 0;
    for (int r = 0; ok && r < tab.n_rows; r++)
        for (int c = 0; ok && c < 2; c++) {
            const char *x = tab.cells[(size_t)r * tab.n_cols + cols[c]];
            if (!x[0] || n_seen >= 3000) continue;
            uint32_t h = (uint32_t)crc32(0L, (const Bytef *)x, (uInt)strlen(x)) & (SLOTS - 1);
            while (seen[h] && strcmp(seen[h], x)) h = (h + 1) & (SLOTS - 1);
            if (seen[h]) continue;
            ok = texts_push(t, x);
            seen[h] = ok ? t->v[t->n - 1] : NULL, n_seen++;
        }
    mrec_table_free(&tab);
    return ok;
}

static void shared_parity(mrec_tokenizer *bert, mrec_tokenizer *minilm, mrec_tokenizer *clip, mrec_tokenizer *mpnet) {
    if (access(SHARED_ROOT "ml-100k/clayrs/items_info.json", R_OK) ||
        access(SHARED_ROOT "hm-fashion-sample/original/articles_train_sample.csv", R_OK)) {
        t_skip("ML-100K and H&M item texts: ../shared/data is not beside the repository (their terms forbid copying them here)");
        return;
    }
    lines_t want;
    texts_t texts = {0};
    if (!t_check(read_lines(FIX "shared_ids.tsv.gz", &want), "read " FIX "shared_ids.tsv.gz")) return;
    if (shared_texts(&texts)) {
        int row = 0, bad_text = 0, bad[4] = {0, 0, 0, 0};
        static const char *names[4] = {"wordpiece", "wordpiece (tokenizer.json)", "clip bpe", "wordpiece (mpnet tokenizer.json)"};
        mrec_tokenizer *toks[4] = {bert, minilm, clip, mpnet};
        static int32_t ids[1 << 14];
        for (int i = 0; i < want.n; i++) {
            if (want.lines[i][0] == '#') continue;
            char *field[5], *p = want.lines[i];
            int nf = 0;
            for (; nf < 5 && p; nf++) {
                field[nf] = p;
                p = strchr(p, '\t');
                if (p) *p++ = '\0';
            }
            if (nf != 5 || row >= texts.n) {
                t_check(0, "shared_ids.tsv.gz line %d: 5 fields (%d), a text to go with it (%d of %d)", i + 1, nf, row, texts.n);
                break;
            }
            const char *text = texts.v[row++];
            char got[64];
            snprintf(got, sizeof got, "%zu:%08lx", strlen(text), crc32(0L, (const Bytef *)text, (uInt)strlen(text)));
            if (strcmp(got, field[1])) {
                if (bad_text++ < 3) fprintf(stderr, "  %s: read as %s, Python read %s\n", field[0], got, field[1]);
                continue;
            }
            for (int k = 0; k < 4; k++) {
                size_t n = 0;
                mrec_tok_status st = mrec_tokenize(toks[k], text, strlen(text), ids, 1 << 14, &n);
                ids_digest(ids, n, got, sizeof got);
                if (st == MREC_TOK_OK && !strcmp(got, field[k < 2 ? 2 : k == 2 ? 3 : 4])) continue;
                if (bad[k]++ < 3) fprintf(stderr, "  %s (%s) \"%.60s\": ids %s, Hugging Face %s\n", names[k], field[0], text, got,
                                          field[k < 2 ? 2 : k == 2 ? 3 : 4]);
            }
        }
        t_check(bad_text == 0 && row == texts.n, "ML-100K and H&M texts: %d read as the golden script read them (%d differ)", row, bad_text);
        for (int k = 0; k < 4; k++)
            t_check(bad[k] == 0, "%s: %d of %d ML-100K and H&M texts differ from Hugging Face", names[k], bad[k], row);
        printf("ML-100K and H&M item texts: %d, identical to Hugging Face with every tokenizer\n", row);
    }
    for (int i = 0; i < texts.n; i++) free(texts.v[i]);
    free(texts.v);
    free_lines(&want);
}

/* Full encodings (specials, pairs, truncation, padding) as Hugging Face
 * makes them: BERT's framing, CLIP's and MPNet's (RoBERTa's, read from the
 * tokenizer.json post_processor, with <pad> 1 from its padding section). */
static void encode_cases(mrec_tokenizer *bert, mrec_tokenizer *clip, mrec_tokenizer *mpnet) {
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
        mrec_tokenizer *tok = strcmp(fields[0], "bert") == 0 ? bert : strcmp(fields[0], "mpnet") == 0 ? mpnet : clip;
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

/* The steps one by one. */
static void unit_steps(mrec_tokenizer *bert, mrec_tokenizer *clip) {
    /* UTF-8 decoding as Python's bytes.decode("utf-8", "replace"), cases checked with CPython. */
    static const struct { const char *bytes; int n; int32_t want[5]; int nw; } utf8[] = {
        {"\xe2\x82", 2, {0xFFFD}, 1},
        {"\xf0\x80", 2, {0xFFFD, 0xFFFD}, 2},
        {"\xed\xa0\x80", 3, {0xFFFD, 0xFFFD, 0xFFFD}, 3},
        {"\xc0\xaf", 2, {0xFFFD, 0xFFFD}, 2},
        {"a\xe2\x82\xac" "b", 5, {'a', 0x20AC, 'b'}, 3},
        {"\xf4\x90\x80\x80", 4, {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}, 4},
        {"\xf0\x9f\x98", 3, {0xFFFD}, 1},
    };
    for (size_t i = 0; i < sizeof utf8 / sizeof utf8[0]; i++) {
        tok_ints cps = {0};
        tok_utf8_decode(utf8[i].bytes, (size_t)utf8[i].n, &cps);
        t_check((int)cps.n == utf8[i].nw && memcmp(cps.v, utf8[i].want, cps.n * 4) == 0, "utf8 case %zu: %zu code points",
                i, cps.n);
        tok_ints_free(&cps);
    }
    /* Character classes. */
    t_check(tok_is_bert_punct('$') && tok_is_bert_punct('`') && tok_is_bert_punct(0x2014) && !tok_is_bert_punct('a'),
            "punctuation: ASCII symbols and Unicode P*");
    t_check(tok_is_bert_control(0x200B) && tok_is_bert_control(0x0B) && !tok_is_bert_control('\n'), "controls");
    t_check(tok_is_bert_whitespace(0x3000) && tok_is_bert_whitespace(0xA0) && !tok_is_bert_whitespace(0x200B), "whitespace");
    t_check(tok_is_cjk(0x4E2D) && !tok_is_cjk(0x3042), "CJK ideographs, not kana");
    tok_ints lower = {0};
    tok_lowercase(0x130, &lower);
    t_check(lower.n == 2 && lower.v[0] == 'i' && lower.v[1] == 0x307, "U+0130 lowercases to i + U+0307");
    tok_ints_free(&lower);
    tok_ints nfd = {0};
    tok_ints_push(&nfd, 0xE9);
    tok_normalize(&nfd, 0);
    t_check(nfd.n == 2 && nfd.v[0] == 'e' && nfd.v[1] == 0x301, "NFD of U+00E9");
    tok_normalize(&nfd, 1);
    t_check(nfd.n == 1 && nfd.v[0] == 0xE9, "NFC back");
    tok_ints_free(&nfd);
    int32_t table[256];
    tok_bytes_to_unicode(table);
    t_check(table['A'] == 'A' && table[0] == 256 && table[' '] == 288 && table[0xAD] == 323, "byte table");
    /* WordPiece: greedy longest match, ## pieces, [UNK] for over-long words. */
    int32_t ids[8];
    size_t n;
    mrec_tokenize(bert, "unaffable", 9, ids, 8, &n);
    t_check(n == 3 && strcmp(mrec_tokenizer_token(bert, ids[0]), "una") == 0 &&
                strcmp(mrec_tokenizer_token(bert, ids[1]), "##ffa") == 0 && strcmp(mrec_tokenizer_token(bert, ids[2]), "##ble") == 0,
            "unaffable -> una ##ffa ##ble (as Hugging Face)");
    char longword[102];
    memset(longword, 'a', 101), longword[101] = '\0';
    mrec_tokenize(bert, longword, 101, ids, 8, &n);
    t_check(n == 1 && ids[0] == 100, "101 characters -> [UNK]");
    mrec_tokenize(bert, "\xe4\xb8\xad\xe6\x96\x87", 6, ids, 8, &n);
    t_check(n == 2, "each CJK character is a word");
    /* Hugging Face keeps unassigned code points and noncharacters (its table
     * of "other" characters has no Cn), so their word is [UNK]; controls,
     * format characters and private use are removed. */
    mrec_tokenize(bert, "ab\xef\xb7\x90" "cd", 7, ids, 8, &n);
    t_check(n == 1 && ids[0] == 100, "ab U+FDD0 cd -> [UNK] (%zu ids)", n);
    mrec_tokenize(bert, "\xef\xbf\xbe", 3, ids, 8, &n);
    t_check(n == 1 && ids[0] == 100, "U+FFFE -> [UNK] (%zu ids)", n);
    mrec_tokenize(bert, "a\xee\x80\x80" "b\xe2\x80\x8b", 8, ids, 8, &n);
    t_check(n == 1 && strcmp(mrec_tokenizer_token(bert, ids[0]), "ab") == 0, "private use and U+200B are removed");
    /* NFC puts stacked marks in canonical order (U+0323 class 220 before
     * U+0301 class 230) before composing: both spellings are one string. */
    tok_ints x = {0}, y = {0};
    tok_ints_push(&x, 'a'), tok_ints_push(&x, 0x301), tok_ints_push(&x, 0x323);
    tok_ints_push(&y, 'a'), tok_ints_push(&y, 0x323), tok_ints_push(&y, 0x301);
    tok_normalize(&x, 1), tok_normalize(&y, 1);
    t_check(x.n == 2 && y.n == 2 && x.v[0] == 0x1EA1 && x.v[1] == 0x301 && y.v[0] == 0x1EA1 && y.v[1] == 0x301,
            "NFC of a U+0301 U+0323 and a U+0323 U+0301 is U+1EA1 U+0301");
    tok_normalize(&x, 0);
    t_check(x.n == 3 && x.v[1] == 0x323 && x.v[2] == 0x301, "NFD orders marks by combining class");
    tok_ints_free(&x), tok_ints_free(&y);
    int32_t want[8];
    size_t nw;
    mrec_tokenize(clip, "a\xcc\x81\xcc\xa3", 5, ids, 8, &n);
    mrec_tokenize(clip, "a\xcc\xa3\xcc\x81", 5, want, 8, &nw);
    t_check(n == nw && memcmp(ids, want, n * 4) == 0, "CLIP: marks in either order tokenize alike");
    /* BPE: a word ends in </w>, merges by rank. */
    mrec_tokenize(clip, "hello", 5, ids, 8, &n);
    t_check(n == 1 && strcmp(mrec_tokenizer_token(clip, ids[0]), "hello</w>") == 0, "hello -> hello</w>");
    mrec_tokenize(clip, "don't", 5, ids, 8, &n);
    t_check(n == 2 && strcmp(mrec_tokenizer_token(clip, ids[1]), "'t</w>") == 0, "contractions are their own piece");
}

/* vocab.json + merges.txt, written here from the CLIP tokenizer.json, load
 * to the same tokenizer. */
static void vocab_json_merges(const char *dir) {
    FILE *f = fopen(TOK "clip/clip-vit-base-patch32.tokenizer.json", "rb");
    if (!f) return;
    static char data[3 << 20];
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    cJSON *root = cJSON_ParseWithLength(data, n);
    cJSON *model = cJSON_GetObjectItem(root, "model");
    char path[256];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    char *vocab = cJSON_PrintUnformatted(cJSON_GetObjectItem(model, "vocab"));
    f = fopen(path, "wb");
    fputs(vocab, f);
    fclose(f);
    free(vocab);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    f = fopen(path, "wb");
    fputs("#version: 0.2\n", f);
    for (const cJSON *m = cJSON_GetObjectItem(model, "merges")->child; m; m = m->next) fprintf(f, "%s\n", m->valuestring);
    fclose(f);
    cJSON_Delete(root);
    mrec_tokenizer *a, *b;
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    if (t_check(mrec_tokenizer_load(&a, path) == MREC_TOK_OK, "load vocab.json + merges.txt: %s", mrec_tok_error_detail())) {
        mrec_tokenizer_load(&b, TOK "clip/clip-vit-base-patch32.tokenizer.json");
        const char *s = "Sunglasses with plastic frames and UV-protective, tinted mirrored lenses.";
        int32_t x[64], y[64];
        size_t nx, ny;
        mrec_tokenize(a, s, strlen(s), x, 64, &nx);
        mrec_tokenize(b, s, strlen(s), y, 64, &ny);
        t_check(nx == ny && memcmp(x, y, nx * 4) == 0, "vocab.json + merges.txt tokenize as tokenizer.json");
        mrec_tokenizer_free(a), mrec_tokenizer_free(b);
    }
    unlink(path);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    unlink(path);
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
    vocab_json_merges(dir);
    static const struct { const char *name, *content; mrec_tok_status want; } bad[] = {
        {"vocab.txt", "hello\nworld\n", MREC_TOK_ERR_FORMAT},                       /* no [UNK] [CLS] [SEP] */
        {"a.json", "{\"model\": {\"type\": \"WordLevel\"}}", MREC_TOK_ERR_UNSUPPORTED},
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

/* ---- Unigram (SentencePiece; XLM-R, AltCLIP's text tower) ------------------------- */

/* The real XLM-R tokenizer.json: ../shared/data, or where .ci/run puts it. */
static const char *xlmr_path(void) {
    static const char *paths[] = {SHARED "xlm-roberta-e5/tokenizer.json", "build/weights/xlm-roberta-e5/tokenizer.json"};
    for (int i = 0; i < 2; i++)
        if (access(paths[i], R_OK) == 0) return paths[i];
    return NULL;
}

/* corpus.txt.gz then unigram_corpus.txt.gz, as tools/golden/unigram.py ran them. */
static int unigram_corpus(lines_t *base, lines_t *extra, lines_t *all) {
    if (!read_lines(FIX "corpus.txt.gz", base)) return 0;
    if (!read_lines(FIX "unigram_corpus.txt.gz", extra)) {
        free_lines(base);
        return 0;
    }
    all->buf = NULL;
    all->n = base->n + extra->n;
    all->lines = malloc(sizeof(char *) * (size_t)all->n);
    if (!all->lines) return 0;
    memcpy(all->lines, base->lines, sizeof(char *) * (size_t)base->n);
    memcpy(all->lines + base->n, extra->lines, sizeof(char *) * (size_t)extra->n);
    return 1;
}

/* Full encodings and decodes: name, text, pair, max_length, ids, types, mask, decoded. */
static void unigram_encode_cases(mrec_tokenizer *xlmr, mrec_tokenizer *tiny) {
    lines_t cases;
    if (!t_check(read_lines(FIX "unigram_encode.txt", &cases), "read unigram_encode.txt")) return;
    static char a[1 << 15], b[1 << 12], want_text[1 << 15], got_text[1 << 15];
    int ran = 0;
    for (int i = 0; i < cases.n; i++) {
        char *f[8], *p = cases.lines[i];
        int nf = 0;
        for (; nf < 8 && p; nf++) {
            f[nf] = p;
            p = strchr(p, '\t');
            if (p) *p++ = '\0';
        }
        if (!t_check(nf == 8, "unigram_encode.txt line %d has %d fields", i + 1, nf)) continue;
        mrec_tokenizer *tok = strcmp(f[0], "xlmr") == 0 ? xlmr : tiny;
        if (!tok) continue;
        ran++;
        unescape(f[1], a);
        int has_pair = strcmp(f[2], "-") != 0;
        if (has_pair) unescape(f[2], b);
        mrec_tok_options o = mrec_tok_defaults();
        o.max_length = atoi(f[3]);
        o.padding = o.truncation = o.max_length > 0;
        int32_t ids[600], types[600], mask[600], we[600], wt[600], wm[600];
        size_t len, dlen;
        mrec_tok_status st = mrec_tokenizer_encode(tok, a, has_pair ? b : NULL, &o, ids, types, mask, 600, &len);
        int ne = parse_ids(f[4], we, 600);
        parse_ids(f[5], wt, 600);
        parse_ids(f[6], wm, 600);
        int ok = st == MREC_TOK_OK && (int)len == ne && !memcmp(ids, we, len * 4) && !memcmp(types, wt, len * 4) &&
                 !memcmp(mask, wm, len * 4);
        t_check(ok, "unigram encode line %d (%s, max_length %s): %d ids, want %d", i + 1, f[0], f[3], (int)len, ne);
        unescape(f[7], want_text);
        st = mrec_tokenizer_decode(tok, ids, len, 1, got_text, sizeof got_text, &dlen);
        t_check(st == MREC_TOK_OK && strcmp(got_text, want_text) == 0, "unigram decode line %d (%s): '%s', want '%s'", i + 1,
                f[0], got_text, want_text);
    }
    printf("unigram: %d encode and decode cases\n", ran);
    free_lines(&cases);
}

/* A tokenizer.json written here, for cases small enough to check by hand. */
static mrec_tok_status load_json_text(mrec_tokenizer **t, const char *dir, const char *name, const char *json) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return MREC_TOK_ERR_IO;
    fputs(json, f);
    fclose(f);
    mrec_tok_status st = mrec_tokenizer_load(t, path);
    unlink(path);
    return st;
}

static int ids_are(mrec_tokenizer *t, const char *text, const int32_t *want, size_t nw) {
    int32_t got[64];
    size_t n;
    if (mrec_tokenize(t, text, strlen(text), got, 64, &n) != MREC_TOK_OK || n != nw) return 0;
    return n == 0 || memcmp(got, want, n * sizeof *got) == 0;
}

/* Viterbi, unknown characters, byte fallback, Replace and Metaspace on
 * vocabularies whose best paths can be worked out by hand. */
static void unigram_by_hand(const char *dir) {
    /* pieces: <unk>0 ▁1 a2 b3 ab4 ▁ab5 <0xE2>6 <0x98>7 <0x83>8 c9
     * "▁ab": ▁ab (-4) beats ▁ + ab (-1 - 2.5 = -3.5)? no: -3.5 > -4, so ▁ + ab. */
    const char *base = "{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"byte_fallback\": %s, \"vocab\": ["
                       "[\"<unk>\", 0], [\"\\u2581\", -1], [\"a\", -2], [\"b\", -2], [\"ab\", -2.5], [\"\\u2581ab\", -4],"
                       "[\"<0xE2>\", -9], [\"<0x98>\", -9], [\"<0x83>\", -9], [\"c\", -2]]},"
                       "\"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"Regex\": \"c{2,}\"}, \"content\": \"c\"},"
                       "\"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"prepend_scheme\": \"%s\"},"
                       "\"post_processor\": null}";
    char json[2048];
    mrec_tokenizer *t;
    snprintf(json, sizeof json, base, "false", "always");
    if (!t_check(load_json_text(&t, dir, "hand.json", json) == MREC_TOK_OK, "hand-made Unigram: %s", mrec_tok_error_detail()))
        return;
    t_check(mrec_tokenizer_kind(t) == MREC_TOK_UNIGRAM, "model type Unigram gives a Unigram tokenizer");
    t_check(ids_are(t, "ab", (int32_t[]){1, 4}, 2), "\"ab\" -> ▁ ab (-3.5 beats ▁ab at -4 and ▁ a b at -5)");
    t_check(ids_are(t, "ba", (int32_t[]){1, 3, 2}, 3), "\"ba\" -> ▁ b a");
    /* ☃ (E2 98 83) and é are unknown: min score -9, so each scores -19, and
     * adjacent unknowns fuse into one <unk>. */
    t_check(ids_are(t, "a\xe2\x98\x83\xc3\xa9" "b", (int32_t[]){1, 2, 0, 3}, 4), "two unknown characters fuse into one <unk>");
    t_check(ids_are(t, "a b", (int32_t[]){1, 2, 1, 3}, 4), "spaces start pieces (Metaspace)");
    t_check(ids_are(t, "cccc", (int32_t[]){1, 9}, 2), "Replace c{2,} -> c");
    t_check(ids_are(t, "", NULL, 0) && ids_are(t, "\xe2\x98\x83", (int32_t[]){1, 0}, 2), "empty text; ▁ then <unk>");
    int32_t ids[4] = {1, 4, 1, 3};
    char out[64];
    size_t len;
    t_check(mrec_tokenizer_decode(t, ids, 4, 1, out, sizeof out, &len) == MREC_TOK_OK && strcmp(out, "ab b") == 0,
            "decode ▁ ab ▁ b -> 'ab b' ('%s')", out);
    mrec_tok_options o = mrec_tok_defaults();
    int32_t enc[8];
    t_check(mrec_tokenizer_encode(t, "ab", NULL, &o, enc, NULL, NULL, 8, &len) == MREC_TOK_OK && len == 2,
            "no post_processor: no special tokens added");
    mrec_tokenizer_free(t);
    /* byte fallback: the unknown ☃ becomes its three bytes; é lacks byte
     * pieces, so its run stays <unk>. */
    snprintf(json, sizeof json, base, "true", "first");
    if (t_check(load_json_text(&t, dir, "hand.json", json) == MREC_TOK_OK, "byte fallback: %s", mrec_tok_error_detail())) {
        t_check(ids_are(t, "a\xe2\x98\x83" "b", (int32_t[]){1, 2, 6, 7, 8, 3}, 6), "☃ -> <0xE2> <0x98> <0x83>");
        t_check(ids_are(t, "a\xc3\xa9" "b", (int32_t[]){1, 2, 0, 3}, 4), "é has no byte pieces: <unk>");
        int32_t d[6] = {1, 2, 6, 7, 8, 3};
        t_check(mrec_tokenizer_decode(t, d, 6, 0, out, sizeof out, &len) == MREC_TOK_OK && strcmp(out, "a\xe2\x98\x83" "b") == 0,
                "decode turns byte pieces back into bytes ('%s')", out);
        mrec_tokenizer_free(t);
    }
}

/* Malformed Unigram files: refused, the message naming the file and key. */
static void unigram_malformed(const char *dir) {
    static const struct { const char *json, *key; mrec_tok_status want; } bad[] = {
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": {\"a\": 1}}}", "model.vocab", MREC_TOK_ERR_FORMAT},
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"a\", \"x\"]]}}", "model.vocab[0]", MREC_TOK_ERR_FORMAT},
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"a\", -1, 2]]}}", "model.vocab[0]", MREC_TOK_ERR_FORMAT},
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"a\", -1e999]]}}", "model.vocab[0]", MREC_TOK_ERR_FORMAT},
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 5, \"vocab\": [[\"a\", -1]]}}", "model.unk_id", MREC_TOK_ERR_FORMAT},
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", -1]]}}", "model.unk_id", MREC_TOK_ERR_FORMAT},
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"a\", -1], [\"a\", -2]]}}", "already has id",
         MREC_TOK_ERR_FORMAT},
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"a\", -1]]}, \"normalizer\": {\"type\": \"NFKC\"}}",
         "normalizer", MREC_TOK_ERR_UNSUPPORTED},
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"a\", -1]]}, \"normalizer\": {\"type\": \"Sequence\", "
         "\"normalizers\": [{\"type\": \"Replace\", \"pattern\": {\"Regex\": \"\\\\s+\"}, \"content\": \" \"}]}}",
         "normalizer.normalizers[0]", MREC_TOK_ERR_UNSUPPORTED},
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"a\", -1]]}, \"normalizer\": {\"type\": \"Precompiled\", "
         "\"precompiled_charsmap\": \"not*base64\"}}", "precompiled_charsmap", MREC_TOK_ERR_FORMAT},
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"a\", -1]]}, \"normalizer\": {\"type\": \"Precompiled\", "
         "\"precompiled_charsmap\": \"AAAAAA==\"}}", "precompiled_charsmap", MREC_TOK_ERR_FORMAT},   /* a trie of 0 bytes */
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"a\", -1]]}, \"normalizer\": {\"type\": \"Precompiled\", "
         "\"precompiled_charsmap\": \"QAAAAAAAAAA=\"}}", "precompiled_charsmap", MREC_TOK_ERR_FORMAT}, /* says 64, has 4 */
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"a\", -1]]}, \"normalizer\": {\"type\": \"Precompiled\", "
         "\"precompiled_charsmap\": \"BAAAAAAAAABhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=\"}}", "longer than", MREC_TOK_ERR_FORMAT}, /* a 300-byte replacement */
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"a\", -1]]}, \"normalizer\": {\"type\": \"Precompiled\", "
         "\"precompiled_charsmap\": \"BAAAAAAAAAD/AA==\"}}", "not UTF-8", MREC_TOK_ERR_FORMAT},
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"a\", -1]]}, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}",
         "pre_tokenizer", MREC_TOK_ERR_UNSUPPORTED},
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"a\", -1]]}, \"pre_tokenizer\": {\"type\": \"Metaspace\", "
         "\"replacement\": \"ab\"}}", "pre_tokenizer.replacement", MREC_TOK_ERR_FORMAT},
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"a\", -1]]}, \"pre_tokenizer\": {\"type\": \"Metaspace\", "
         "\"replacement\": \"_\", \"prepend_scheme\": \"sometimes\"}}", "pre_tokenizer.prepend_scheme", MREC_TOK_ERR_FORMAT},
        {"{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"a\", -1]]}, \"post_processor\": {\"type\": "
         "\"RobertaProcessing\", \"cls\": [\"<s>\", 0], \"sep\": [\"</s>\", 2]}}", "post_processor.sep", MREC_TOK_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mrec_tokenizer *t;
        mrec_tok_status st = load_json_text(&t, dir, "bad_unigram.json", bad[i].json);
        if (st == MREC_TOK_OK) mrec_tokenizer_free(t);
        const char *msg = mrec_tok_error_detail();
        t_check(st == bad[i].want && strstr(msg, "bad_unigram.json") && strstr(msg, bad[i].key),
                "malformed Unigram %zu: got '%s' (%s), want the key %s", i + 1, mrec_tok_strerror(st), msg, bad[i].key);
    }
}

static void unigram(void) {
    mrec_tokenizer *tiny, *xlmr = NULL;
    if (!t_check(mrec_tokenizer_load(&tiny, TOK "unigram-tiny") == MREC_TOK_OK, "load the Unigram folder " TOK "unigram-tiny: %s",
                 mrec_tok_error_detail()))
        return;
    t_check(mrec_tokenizer_kind(tiny) == MREC_TOK_UNIGRAM && mrec_tokenizer_pad_id(tiny) == 1 &&
                mrec_tokenizer_max_length(tiny) == 512,
            "unigram-tiny: Unigram, <pad> 1, context 512");
    lines_t base, extra, all;
    if (t_check(unigram_corpus(&base, &extra, &all), "read the Unigram corpora")) {
        corpus_parity(tiny, "unigram tiny (byte fallback)", &all, FIX "unigram_tiny_ids.txt.gz");
        tiny->byte_fallback = 0; /* the same vocabulary, unknown runs as <unk> */
        corpus_parity(tiny, "unigram tiny (no byte fallback)", &extra, FIX "unigram_tiny_unk_ids.txt.gz");
        tiny->byte_fallback = 1;
        const char *path = xlmr_path();
        if (!path) {
            t_skip("XLM-R tokenizer.json: not in " SHARED "xlm-roberta-e5 nor build/weights/xlm-roberta-e5 (.ci/run fetches it)");
        } else if (t_check(mrec_tokenizer_load(&xlmr, path) == MREC_TOK_OK, "load %s: %s", path, mrec_tok_error_detail())) {
            t_check(mrec_tokenizer_kind(xlmr) == MREC_TOK_UNIGRAM && mrec_tokenizer_vocab_size(xlmr) == 250002 &&
                        mrec_tokenizer_pad_id(xlmr) == 1 && mrec_tokenizer_id(xlmr, "<mask>") == 250001,
                    "XLM-R: 250,002 pieces, <pad> 1, <mask> 250001");
            corpus_parity(xlmr, "unigram xlm-r", &all, FIX "xlmr_ids.txt.gz");
        }
        free(all.lines);
        free_lines(&base), free_lines(&extra);
    }
    unigram_encode_cases(xlmr, tiny);
    char dir[] = "/tmp/mrec_unigram_XXXXXX";
    if (t_check(mkdtemp(dir) != NULL, "temporary folder")) {
        unigram_by_hand(dir);
        unigram_malformed(dir);
        rmdir(dir);
    }
    mrec_tokenizer_free(xlmr);
    mrec_tokenizer_free(tiny);
}

int main(void) {
    t_suite("tokenizers");
    mrec_tokenizer *bert, *clip, *minilm, *mpnet;
    T_REQUIRE(mrec_tokenizer_load(&bert, TOK "bert-base-uncased/vocab.txt") == MREC_TOK_OK);
    T_REQUIRE(mrec_tokenizer_load(&clip, TOK "clip/clip-vit-base-patch32.tokenizer.json") == MREC_TOK_OK);
    T_REQUIRE(mrec_tokenizer_load(&minilm, TOK "all-MiniLM-L6-v2/tokenizer.json") == MREC_TOK_OK);
    T_REQUIRE(mrec_tokenizer_load(&mpnet, TOK "all-mpnet-base-v2/tokenizer.json") == MREC_TOK_OK);
    lines_t corpus;
    T_REQUIRE(read_lines(FIX "corpus.txt.gz", &corpus));
    corpus_parity(bert, "wordpiece", &corpus, FIX "bert_ids.txt.gz");
    corpus_parity(minilm, "wordpiece (tokenizer.json)", &corpus, FIX "bert_ids.txt.gz");
    corpus_parity(clip, "clip bpe", &corpus, FIX "clip_ids.txt.gz");
    corpus_parity(mpnet, "wordpiece (mpnet tokenizer.json)", &corpus, FIX "mpnet_ids.txt.gz");
    shared_tokenizer(&corpus);
    free_lines(&corpus);
    shared_parity(bert, minilm, clip, mpnet);
    heldout(bert, minilm, clip);
    squad_reference(bert);
    encode_cases(bert, clip, mpnet);
    t_check(mrec_tokenizer_pad_id(mpnet) == 1, "mpnet pads with <pad> 1, got %d", mrec_tokenizer_pad_id(mpnet));
    roundtrip_and_api(bert, clip);
    unit_steps(bert, clip);
    loaders();
    unigram();
    mrec_tokenizer_free(minilm);
    mrec_tokenizer_free(mpnet);
    mrec_tokenizer_free(bert);
    mrec_tokenizer_free(clip);
    return t_finish();
}
