/* load.c: reading vocabularies into a tokenizer.
 *
 *   vocab.txt (+ tokenizer_config.json beside it)  WordPiece, line n = id n
 *   tokenizer.json                                  WordPiece, BPE or Unigram, Hugging Face's format
 *   vocab.json + merges.txt                         BPE
 *   bpe_simple_vocab_16e6.txt.gz                    CLIP's original merges (the vocabulary is
 *                                                   built from them, as OpenAI's code does)
 *   a folder                                        the first of tokenizer.json, vocab.txt,
 *                                                   vocab.json, bpe_simple_vocab_16e6.txt.gz
 * Files are read whole with size caps; every JSON value is type-checked and
 * every id range-checked before use. Errors name the file and the key or line.
 */
#include "tok_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_FILE (512u << 20)   /* no tokenizer file is near this */
#define MAX_VOCAB (1 << 22)
#define CLIP_MERGES (49152 - 256 - 2)

/* Opens path for reading only if it is a regular file. O_NONBLOCK makes
 * opening a FIFO return at once instead of waiting for a writer; fstat then
 * refuses it, and devices and folders, before a byte is read. */
static mrec_tok_status open_regular(const char *path, int *fd_out, size_t *size) {
    *fd_out = -1;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return tok_fail(MREC_TOK_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return tok_fail(MREC_TOK_ERR_IO, "%s: cannot stat (%s)", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return tok_fail(MREC_TOK_ERR_IO, "%s: not a regular file (a %s)", path,
                        S_ISDIR(sb.st_mode) ? "folder" : S_ISFIFO(sb.st_mode) ? "FIFO" :
                        S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode) ? "device" : "socket or other special file");
    }
    if ((uint64_t)sb.st_size > MAX_FILE) {
        close(fd);
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: %lld bytes, larger than the %u a tokenizer file may have", path,
                        (long long)sb.st_size, MAX_FILE);
    }
    /* Back to blocking reads: a regular file never blocks, and stdio and
     * zlib do not expect EAGAIN. */
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    *fd_out = fd;
    *size = (size_t)sb.st_size;
    return MREC_TOK_OK;
}

static mrec_tok_status read_file(const char *path, char **data, size_t *size) {
    *data = NULL;
    *size = 0;
    int fd;
    size_t expect;
    mrec_tok_status st = open_regular(path, &fd, &expect);
    if (st) return st;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return tok_fail(MREC_TOK_ERR_NOMEM, "%s: cannot open a stream", path);
    }
    tok_str buf = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (buf.n + n > MAX_FILE) {
            fclose(f);
            tok_str_free(&buf);
            return tok_fail(MREC_TOK_ERR_FORMAT, "%s: larger than %u bytes", path, MAX_FILE);
        }
        if (!tok_str_append(&buf, chunk, n)) {
            fclose(f);
            tok_str_free(&buf);
            return tok_fail(MREC_TOK_ERR_NOMEM, "%s: %zu bytes", path, buf.n + n);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        tok_str_free(&buf);
        return tok_fail(MREC_TOK_ERR_IO, "%s: read error", path);
    }
    if (!buf.s && !tok_str_append(&buf, "", 0)) return tok_fail(MREC_TOK_ERR_NOMEM, "%s", path);
    *data = buf.s;
    *size = buf.n;
    return MREC_TOK_OK;
}

static mrec_tok_status read_gz(const char *path, char **data, size_t *size) {
    *data = NULL;
    *size = 0;
    int fd;
    size_t packed;
    mrec_tok_status st = open_regular(path, &fd, &packed);
    if (st) return st;
    gzFile f = gzdopen(fd, "rb");
    if (!f) {
        close(fd);
        return tok_fail(MREC_TOK_ERR_NOMEM, "%s: cannot open a gzip stream", path);
    }
    tok_str buf = {0};
    char chunk[65536];
    int n;
    while ((n = gzread(f, chunk, sizeof chunk)) > 0) {
        if (buf.n + (size_t)n > MAX_FILE) {
            gzclose(f);
            tok_str_free(&buf);
            return tok_fail(MREC_TOK_ERR_FORMAT, "%s: larger than %u bytes uncompressed", path, MAX_FILE);
        }
        if (!tok_str_append(&buf, chunk, (size_t)n)) {
            gzclose(f);
            tok_str_free(&buf);
            return tok_fail(MREC_TOK_ERR_NOMEM, "%s: %zu bytes uncompressed", path, buf.n + (size_t)n);
        }
    }
    int err;
    const char *msg = gzerror(f, &err);
    /* zlib reads a file that is not gzip as plain bytes: a .gz vocabulary must be gzip. */
    int plain = gzdirect(f);
    const char *why = msg ? strstr(msg, ": ") : NULL; /* zlib names the stream "<fd:N>"; the path says more */
    if (n < 0 || (err != Z_OK && err != Z_STREAM_END))
        st = tok_fail(MREC_TOK_ERR_FORMAT, "%s: bad gzip data (%s)", path, why ? why + 2 : msg ? msg : "?");
    else if (plain)
        st = tok_fail(MREC_TOK_ERR_FORMAT, "%s: not gzip data (the name ends in .gz)", path);
    gzclose(f);
    if (!st && !buf.s && !tok_str_append(&buf, "", 0)) st = tok_fail(MREC_TOK_ERR_NOMEM, "%s", path);
    if (st) {
        tok_str_free(&buf);
        return st;
    }
    *data = buf.s;
    *size = buf.n;
    return MREC_TOK_OK;
}

/* JSON is parsed only after a scan of its nesting: cJSON recurses once per
 * level, and no tokenizer file nests more than a few levels. */
#define MAX_JSON_DEPTH 64

static mrec_tok_status parse_json(const char *path, const char *data, size_t size, cJSON **root) {
    *root = NULL;
    int depth = 0, in_string = 0, line = 1;
    for (size_t i = 0; i < size; i++) {
        char c = data[i];
        line += c == '\n';
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > MAX_JSON_DEPTH)
                return tok_fail(MREC_TOK_ERR_FORMAT, "%s: line %d: JSON nested deeper than %d levels", path, line,
                                MAX_JSON_DEPTH);
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(data, size, &end, 0);
    if (!*root) {
        size_t at = end && end >= data && end <= data + size ? (size_t)(end - data) : 0;
        int err_line = 1;
        for (size_t i = 0; i < at; i++) err_line += data[i] == '\n';
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: line %d (byte %zu): not valid JSON", path, err_line, at);
    }
    return MREC_TOK_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* ---- vocabulary ----------------------------------------------------------- */

static mrec_tok_status set_vocab_size(mrec_tokenizer *t, int n, const char *src) {
    if (n <= 0 || n > MAX_VOCAB) return tok_fail(MREC_TOK_ERR_FORMAT, "%s: vocabulary of %d tokens", src, n);
    t->vocab = calloc((size_t)n, sizeof *t->vocab);
    if (!t->vocab) return tok_fail(MREC_TOK_ERR_NOMEM, "%s: vocabulary", src);
    t->n_vocab = n;
    return MREC_TOK_OK;
}

#define MAX_TOKEN 1024 /* bytes; real tokens are a few dozen at most */

/* Where a token came from, for messages: "line 7" of a vocab.txt, or the
 * token itself (cut short) for a JSON vocabulary. */
static void token_where(char *buf, size_t cap, int line, const char *s, size_t len) {
    if (line > 0) snprintf(buf, cap, "line %d", line);
    else if (!tok_utf8_valid(s, len < 40 ? len : 40)) snprintf(buf, cap, "a token of %zu bytes", len);
    else snprintf(buf, cap, "token \"%.*s\"", (int)(len < 40 ? len : 40), s);
}

static mrec_tok_status add_token(mrec_tokenizer *t, const char *s, size_t len, int32_t id, int line, const char *src) {
    char where[64];
    token_where(where, sizeof where, line, s, len);
    if (id < 0 || id >= t->n_vocab)
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: %s: id %d outside the vocabulary of %d", src, where, id, t->n_vocab);
    if (len == 0) return tok_fail(MREC_TOK_ERR_FORMAT, "%s: %s: empty token", src, where);
    if (len > MAX_TOKEN)
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: %s: token of %zu bytes (at most %d)", src, where, len, MAX_TOKEN);
    if (memchr(s, 0, len)) return tok_fail(MREC_TOK_ERR_FORMAT, "%s: %s: token contains a NUL byte", src, where);
    if (!tok_utf8_valid(s, len)) return tok_fail(MREC_TOK_ERR_FORMAT, "%s: %s: token is not valid UTF-8", src, where);
    int32_t other = tok_map_get(&t->ids, s, len);
    if (other >= 0 && line > 0)
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: line %d: token \"%.*s\" already has id %d (line %d)", src, line,
                        (int)(len < 64 ? len : 64), s, other, other + 1);
    if (other >= 0)
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: %s already has id %d (a token has one id)", src, where, other);
    if (t->vocab[id])
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: id %d given to both \"%.64s\" and \"%.*s\"", src, id, t->vocab[id],
                        (int)(len < 64 ? len : 64), s);
    char *copy = malloc(len + 1);
    if (!copy || !tok_map_put(&t->ids, s, len, id)) {
        free(copy);
        return tok_fail(MREC_TOK_ERR_NOMEM, "%s: vocabulary", src);
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    t->vocab[id] = copy;
    return MREC_TOK_OK;
}

static mrec_tok_status add_special(mrec_tokenizer *t, const char *text, int32_t id, const char *src) {
    for (int i = 0; i < t->n_specials; i++)
        if (strcmp(t->specials[i].text, text) == 0) {
            t->specials[i].id = id;
            return MREC_TOK_OK;
        }
    tok_special *s = realloc(t->specials, (size_t)(t->n_specials + 1) * sizeof *s);
    if (!s) return tok_fail(MREC_TOK_ERR_NOMEM, "%s: special tokens", src);
    t->specials = s;
    s[t->n_specials].text = strdup(text);
    s[t->n_specials].id = id;
    s[t->n_specials].lstrip = s[t->n_specials].rstrip = 0;
    if (!s[t->n_specials].text) return tok_fail(MREC_TOK_ERR_NOMEM, "%s: special tokens", src);
    t->n_specials++;
    return MREC_TOK_OK;
}

/* Every id has a token: the vocabulary has no holes. */
static mrec_tok_status check_complete(const mrec_tokenizer *t, const char *src) {
    for (int i = 0; i < t->n_vocab; i++)
        if (!t->vocab[i]) return tok_fail(MREC_TOK_ERR_FORMAT, "%s: no token has id %d", src, i);
    return MREC_TOK_OK;
}

/* ---- WordPiece --------------------------------------------------------------- */

/* BERT's specials found by name: a vocab.txt, or a tokenizer.json whose
 * post_processor and padding did not name them (ids left at -1). */
static mrec_tok_status wordpiece_specials(mrec_tokenizer *t, const char *src) {
    static const char *names[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    if (t->unk_id < 0) t->unk_id = tok_map_get(&t->ids, "[UNK]", 5);
    if (t->bos_id < 0) t->bos_id = tok_map_get(&t->ids, "[CLS]", 5);
    if (t->eos_id < 0) t->eos_id = tok_map_get(&t->ids, "[SEP]", 5);
    if (t->pad_id < 0) t->pad_id = tok_map_get(&t->ids, "[PAD]", 5);
    if (t->unk_id < 0 || t->bos_id < 0 || t->eos_id < 0)
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: the vocabulary lacks [UNK], [CLS] or [SEP]", src);
    if (t->pad_id < 0) t->pad_id = 0;
    if (t->n_specials == 0)
        for (int i = 0; i < 5; i++) {
            int32_t id = tok_map_get(&t->ids, names[i], strlen(names[i]));
            mrec_tok_status st = id >= 0 ? add_special(t, names[i], id, src) : MREC_TOK_OK;
            if (st) return st;
        }
    return MREC_TOK_OK;
}

static void wordpiece_defaults(mrec_tokenizer *t) {
    t->kind = MREC_TOK_WORDPIECE;
    t->pair_double_sep = 0, t->pair_type_b = 1;
    t->lowercase = 1;
    t->strip_accents = -1; /* follows lowercase */
    t->chinese_chars = 1;
    t->clean_text = 1;
    t->max_chars = 100;
    t->max_length = 512;
    t->bos_id = t->eos_id = t->pad_id = t->unk_id = -1; /* found by name unless a file names them */
    strcpy(t->prefix, "##");
}

static int json_bool(const cJSON *obj, const char *key, int fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return fallback; /* absent or null: the default */
}

/* tokenizer_config.json beside a vocab.txt: casing and context length. */
static mrec_tok_status read_tokenizer_config(mrec_tokenizer *t, const char *path) {
    char *data;
    size_t size;
    mrec_tok_status st = read_file(path, &data, &size);
    if (st) return st;
    cJSON *root;
    st = parse_json(path, data, size, &root);
    free(data);
    if (st) return st;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: not a JSON object", path);
    }
    t->lowercase = json_bool(root, "do_lower_case", t->lowercase);
    t->strip_accents = json_bool(root, "strip_accents", t->strip_accents);
    t->chinese_chars = json_bool(root, "tokenize_chinese_chars", t->chinese_chars);
    const cJSON *len = cJSON_GetObjectItemCaseSensitive(root, "model_max_length");
    if (cJSON_IsNumber(len) && len->valuedouble >= 1 && len->valuedouble <= 1e6) t->max_length = (int)len->valuedouble;
    cJSON_Delete(root);
    return MREC_TOK_OK;
}

static mrec_tok_status load_vocab_txt(mrec_tokenizer *t, const char *path) {
    wordpiece_defaults(t);
    char *data;
    size_t size;
    mrec_tok_status st = read_file(path, &data, &size);
    if (st) return st;
    int lines = 0;
    for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
    if (size && data[size - 1] != '\n') lines++;
    st = set_vocab_size(t, lines, path);
    size_t at = 0;
    for (int id = 0; id < lines && !st; id++) {
        size_t end = at;
        while (end < size && data[end] != '\n') end++;
        size_t len = end - at;
        if (len && data[at + len - 1] == '\r') len--;
        st = add_token(t, data + at, len, id, id + 1, path);
        at = end + 1;
    }
    free(data);
    if (st) return st;
    /* tokenizer_config.json in the same folder decides casing when present. */
    char cfg[4096];
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path) : 1;
    snprintf(cfg, sizeof cfg, "%.*s/tokenizer_config.json", dir_len, slash ? path : ".");
    struct stat sb;
    if (stat(cfg, &sb) == 0 && (st = read_tokenizer_config(t, cfg))) return st;
    if (t->strip_accents < 0) t->strip_accents = t->lowercase;
    return wordpiece_specials(t, path);
}

/* ---- BPE --------------------------------------------------------------------- */

/* One merge "left right" (a line of merges.txt, or a tokenizer.json entry). */
static mrec_tok_status add_merge_pair(mrec_tokenizer *t, const char *left, size_t ll, const char *right, size_t rl,
                                      int rank, const char *src) {
    int32_t a = tok_map_get(&t->ids, left, ll), b = tok_map_get(&t->ids, right, rl);
    tok_str both = {0};
    if (!tok_str_append(&both, left, ll) || !tok_str_append(&both, right, rl)) {
        tok_str_free(&both);
        return tok_fail(MREC_TOK_ERR_NOMEM, "%s: merges", src);
    }
    int32_t m = tok_map_get(&t->ids, both.s, both.n);
    tok_str_free(&both);
    if (a < 0 || b < 0 || m < 0)
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: merge %d (\"%.*s %.*s\") uses a token not in the vocabulary", src,
                        rank + 1, (int)ll, left, (int)rl, right);
    if (!tok_bpe_add_merge(t, a, b, rank, m)) return tok_fail(MREC_TOK_ERR_NOMEM, "%s: merges", src);
    return MREC_TOK_OK;
}

/* Merge lines "a b" from text; skips a "#version" header and blank lines. */
static mrec_tok_status add_merge_lines(mrec_tokenizer *t, const char *data, size_t size, int limit, const char *src) {
    size_t at = 0;
    int rank = 0, line = 0;
    while (at < size && (limit < 0 || rank < limit)) {
        size_t end = at;
        while (end < size && data[end] != '\n') end++;
        size_t len = end - at;
        line++;
        if (len && data[at + len - 1] == '\r') len--;
        const char *s = data + at;
        at = end + 1;
        if (len == 0 || (line == 1 && len >= 8 && memcmp(s, "#version", 8) == 0)) continue;
        const char *sp = memchr(s, ' ', len);
        if (!sp || sp == s || sp == s + len - 1 || memchr(sp + 1, ' ', (size_t)(s + len - sp - 1)))
            return tok_fail(MREC_TOK_ERR_FORMAT, "%s: line %d is not \"left right\"", src, line);
        if (len > 2 * MAX_TOKEN + 1)
            return tok_fail(MREC_TOK_ERR_FORMAT, "%s: line %d: %zu bytes, longer than a merge can be", src, line, len);
        mrec_tok_status st = add_merge_pair(t, s, (size_t)(sp - s), sp + 1, (size_t)(s + len - sp - 1), rank, src);
        if (st == MREC_TOK_ERR_FORMAT)
            return tok_fail(st, "%s: line %d: merge \"%.*s\" uses a token not in the vocabulary", src, line,
                            (int)(len < 80 ? len : 80), s);
        if (st) return st;
        rank++;
    }
    if (limit >= 0 && rank < limit)
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: %d merges, CLIP's vocabulary needs %d", src, rank, limit);
    return MREC_TOK_OK;
}

static void bpe_defaults(mrec_tokenizer *t) {
    t->kind = MREC_TOK_BPE;
    t->pair_double_sep = 1, t->pair_type_b = 0;
    t->max_length = 77;
}

static mrec_tok_status bpe_specials(mrec_tokenizer *t, const char *src) {
    t->bos_id = tok_map_get(&t->ids, "<|startoftext|>", 15);
    t->eos_id = tok_map_get(&t->ids, "<|endoftext|>", 13);
    if (t->bos_id < 0 || t->eos_id < 0)
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: the vocabulary lacks <|startoftext|> or <|endoftext|>", src);
    t->pad_id = t->unk_id = t->eos_id; /* CLIP pads with <|endoftext|> */
    mrec_tok_status st = MREC_TOK_OK;
    if (t->n_specials == 0) {
        st = add_special(t, "<|startoftext|>", t->bos_id, src);
        if (!st) st = add_special(t, "<|endoftext|>", t->eos_id, src);
    }
    return st ? st : tok_bpe_finish(t, src);
}

/* CLIP's own file: the vocabulary is the 256 byte characters, the same with
 * "</w>", one token per merge (in merge order), then the two specials. */
static mrec_tok_status load_clip_gz(mrec_tokenizer *t, const char *path) {
    bpe_defaults(t);
    char *data;
    size_t size;
    mrec_tok_status st = read_gz(path, &data, &size);
    if (st) return st;
    size_t at = 0; /* skip the header line */
    while (at < size && data[at] != '\n') at++;
    at = at < size ? at + 1 : size;
    st = set_vocab_size(t, 256 * 2 + CLIP_MERGES + 2, path);
    int32_t cps[256];
    tok_bytes_to_unicode(cps);
    int id = 0;
    for (int pass = 0; pass < 2 && !st; pass++) {
        /* OpenAI lists the byte characters in the order of its table: the
         * printable bytes first, then the rest. */
        int order[256], k = 0;
        for (int b = 0; b < 256; b++)
            if (cps[b] == b) order[k++] = b;
        for (int b = 0; b < 256; b++)
            if (cps[b] != b) order[k++] = b;
        for (int i = 0; i < 256 && !st; i++) {
            tok_str s = {0};
            if (!tok_str_put_cp(&s, cps[order[i]]) || (pass && !tok_str_append(&s, "</w>", 4)))
                st = tok_fail(MREC_TOK_ERR_NOMEM, "%s: byte tokens", path);
            else st = add_token(t, s.s, s.n, id++, 0, path);
            tok_str_free(&s);
        }
    }
    /* merge tokens */
    size_t p = at;
    for (int r = 0; r < CLIP_MERGES && !st; r++) {
        size_t end = p;
        while (end < size && data[end] != '\n') end++;
        const char *sp = memchr(data + p, ' ', end - p);
        if (p >= size || !sp) {
            st = tok_fail(MREC_TOK_ERR_FORMAT, "%s: line %d is not \"left right\" (CLIP needs %d merges)", path, r + 2,
                          CLIP_MERGES);
            break;
        }
        tok_str s = {0};
        if (!tok_str_append(&s, data + p, (size_t)(sp - (data + p))) || !tok_str_append(&s, sp + 1, (size_t)(data + end - sp - 1)))
            st = tok_fail(MREC_TOK_ERR_NOMEM, "%s: merge tokens", path);
        else st = add_token(t, s.s, s.n, id++, 0, path);
        tok_str_free(&s);
        p = end + 1;
    }
    if (!st) st = add_token(t, "<|startoftext|>", 15, id++, 0, path);
    if (!st) st = add_token(t, "<|endoftext|>", 13, id++, 0, path);
    if (!st) st = add_merge_lines(t, data + at, size - at, CLIP_MERGES, path);
    free(data);
    return st ? st : bpe_specials(t, path);
}

/* vocab.json {token: id} into the tokenizer. */
static mrec_tok_status vocab_from_json(mrec_tokenizer *t, const cJSON *vocab, const char *src) {
    if (!cJSON_IsObject(vocab)) return tok_fail(MREC_TOK_ERR_FORMAT, "%s: vocab is not an object", src);
    int n = cJSON_GetArraySize(vocab);
    mrec_tok_status st = set_vocab_size(t, n, src);
    for (const cJSON *e = vocab->child; e && !st; e = e->next) {
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0 && e->valuedouble < MAX_VOCAB) ||
            e->valuedouble != (double)(int32_t)e->valuedouble)
            return tok_fail(MREC_TOK_ERR_FORMAT, "%s: vocab entry \"%s\" is not an integer id", src, e->string);
        st = add_token(t, e->string, strlen(e->string), (int32_t)e->valuedouble, 0, src);
    }
    return st ? st : check_complete(t, src);
}

static mrec_tok_status load_vocab_json(mrec_tokenizer *t, const char *path) {
    bpe_defaults(t);
    char *data;
    size_t size;
    mrec_tok_status st = read_file(path, &data, &size);
    if (st) return st;
    cJSON *root;
    st = parse_json(path, data, size, &root);
    free(data);
    if (!st) st = vocab_from_json(t, root, path);
    cJSON_Delete(root);
    if (st) return st;
    char merges[4096];
    const char *slash = strrchr(path, '/');
    snprintf(merges, sizeof merges, "%.*s/merges.txt", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if ((st = read_file(merges, &data, &size))) return st;
    st = add_merge_lines(t, data, size, -1, merges);
    free(data);
    return st ? st : bpe_specials(t, path);
}

/* ---- tokenizer.json ----------------------------------------------------------- */

static const char *json_type(const cJSON *obj) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(ty) ? ty->valuestring : NULL;
}

static mrec_tok_status json_wordpiece(mrec_tokenizer *t, const cJSON *root, const cJSON *model, const char *path) {
    wordpiece_defaults(t);
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const char *nt = json_type(norm);
    if (!nt || strcmp(nt, "BertNormalizer") != 0)
        return tok_fail(MREC_TOK_ERR_UNSUPPORTED, "%s: normalizer \"%s\" (mrec's WordPiece implements BertNormalizer)",
                        path, nt ? nt : "none");
    t->clean_text = json_bool(norm, "clean_text", 1);
    t->chinese_chars = json_bool(norm, "handle_chinese_chars", 1);
    t->lowercase = json_bool(norm, "lowercase", 1);
    t->strip_accents = json_bool(norm, "strip_accents", t->lowercase);
    const char *pt = json_type(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
    if (!pt || strcmp(pt, "BertPreTokenizer") != 0)
        return tok_fail(MREC_TOK_ERR_UNSUPPORTED, "%s: pre_tokenizer \"%s\" (mrec's WordPiece implements BertPreTokenizer)",
                        path, pt ? pt : "none");
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    if (cJSON_IsString(prefix)) {
        if (strlen(prefix->valuestring) >= sizeof t->prefix)
            return tok_fail(MREC_TOK_ERR_FORMAT, "%s: continuing_subword_prefix is too long", path);
        strcpy(t->prefix, prefix->valuestring);
    }
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
    if (cJSON_IsNumber(mc)) {
        if (mc->valuedouble < 1 || mc->valuedouble > 256)
            return tok_fail(MREC_TOK_ERR_UNSUPPORTED, "%s: max_input_chars_per_word %g (mrec allows 1..256)", path,
                            mc->valuedouble);
        t->max_chars = (int)mc->valuedouble;
    }
    const cJSON *trunc = cJSON_GetObjectItemCaseSensitive(root, "truncation");
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(trunc, "max_length");
    if (cJSON_IsNumber(ml) && ml->valuedouble >= 1 && ml->valuedouble <= 1e6) t->max_length = (int)ml->valuedouble;
    return vocab_from_json(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), path);
}

static mrec_tok_status json_bpe(mrec_tokenizer *t, const cJSON *root, const cJSON *model, const char *path) {
    bpe_defaults(t);
    const cJSON *suffix = cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix");
    if (!cJSON_IsString(suffix) || strcmp(suffix->valuestring, "</w>") != 0)
        return tok_fail(MREC_TOK_ERR_UNSUPPORTED, "%s: BPE without end_of_word_suffix \"</w>\" (mrec implements CLIP's BPE)",
                        path);
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
    const cJSON *split = cJSON_GetArrayItem(seq, 0);
    const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(split, "pattern"), "Regex");
    static const char clip_regex[] =
        "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";
    if (!cJSON_IsString(pattern) || strcmp(pattern->valuestring, clip_regex) != 0)
        return tok_fail(MREC_TOK_ERR_UNSUPPORTED, "%s: the pre-tokenizer is not CLIP's split pattern", path);
    mrec_tok_status st = vocab_from_json(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), path);
    if (st) return st;
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges)) return tok_fail(MREC_TOK_ERR_FORMAT, "%s: model.merges is not an array", path);
    int rank = 0;
    for (const cJSON *m = merges->child; m && !st; m = m->next, rank++) {
        if (cJSON_IsString(m)) { /* "left right" */
            const char *s = m->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return tok_fail(MREC_TOK_ERR_FORMAT, "%s: merge %d is not \"left right\"", path, rank + 1);
            st = add_merge_pair(t, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), rank, path);
        } else if (cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
            const char *l = m->child->valuestring, *r = m->child->next->valuestring; /* ["left", "right"] */
            st = add_merge_pair(t, l, strlen(l), r, strlen(r), rank, path);
        } else {
            return tok_fail(MREC_TOK_ERR_FORMAT, "%s: merge %d is neither a string nor a pair", path, rank + 1);
        }
    }
    return st ? st : bpe_specials(t, path);
}

/* added_tokens: the literals matched in raw text before anything else. */
static mrec_tok_status json_added_tokens(mrec_tokenizer *t, const cJSON *root, const char *path) {
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    for (const cJSON *a = cJSON_IsArray(added) ? added->child : NULL; a; a = a->next) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (!cJSON_IsString(content) || !cJSON_IsNumber(id) || !(id->valuedouble >= 0 && id->valuedouble < t->n_vocab) ||
            id->valuedouble != (double)(int32_t)id->valuedouble || content->valuestring[0] == '\0')
            return tok_fail(MREC_TOK_ERR_FORMAT, "%s: an added_tokens entry lacks content or an id in 0..%d", path,
                            t->n_vocab - 1);
        size_t len = strlen(content->valuestring);
        if (len > MAX_TOKEN || !tok_utf8_valid(content->valuestring, len))
            return tok_fail(MREC_TOK_ERR_FORMAT, "%s: added token %d is not valid UTF-8 of at most %d bytes", path,
                            (int)id->valuedouble, MAX_TOKEN);
        mrec_tok_status st = add_special(t, content->valuestring, (int32_t)id->valuedouble, path);
        if (st) return st;
        for (int i = 0; i < t->n_specials; i++)
            if (strcmp(t->specials[i].text, content->valuestring) == 0)
                t->specials[i].lstrip = json_bool(a, "lstrip", 0), t->specials[i].rstrip = json_bool(a, "rstrip", 0);
    }
    return MREC_TOK_OK;
}

/* The id of a token named in a tokenizer.json: `name` must be in the
 * vocabulary (or an added token) under that id when one is given. */
static mrec_tok_status json_token_id(const mrec_tokenizer *t, const char *name, const cJSON *id, const char *what,
                                     const char *path, int32_t *out) {
    int32_t found = name ? tok_map_get(&t->ids, name, strlen(name)) : -1;
    for (int i = 0; found < 0 && name && i < t->n_specials; i++)
        if (strcmp(t->specials[i].text, name) == 0) found = t->specials[i].id;
    if (id) {
        if (!cJSON_IsNumber(id) || !(id->valuedouble >= 0 && id->valuedouble < t->n_vocab) ||
            id->valuedouble != (double)(int32_t)id->valuedouble)
            return tok_fail(MREC_TOK_ERR_FORMAT, "%s: %s has no id in 0..%d", path, what, t->n_vocab - 1);
        if (name && found >= 0 && found != (int32_t)id->valuedouble)
            return tok_fail(MREC_TOK_ERR_FORMAT, "%s: %s \"%s\" is id %d, the vocabulary says %d", path, what, name,
                            (int)id->valuedouble, found);
        found = (int32_t)id->valuedouble;
    }
    if (found < 0) return tok_fail(MREC_TOK_ERR_FORMAT, "%s: %s \"%s\" is not in the vocabulary", path, what, name ? name : "?");
    *out = found;
    return MREC_TOK_OK;
}

/* One piece of a TemplateProcessing template: a special token (its id
 * through special_tokens) or a sequence A / B, with its type id. */
static mrec_tok_status template_piece(const mrec_tokenizer *t, const cJSON *piece, const cJSON *specials, const char *path,
                                      char *seq, int32_t *special, int *type) {
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(piece, "SpecialToken");
    const cJSON *sq = cJSON_GetObjectItemCaseSensitive(piece, "Sequence");
    const cJSON *body = sp ? sp : sq;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "id"), *ty = cJSON_GetObjectItemCaseSensitive(body, "type_id");
    if (!body || !cJSON_IsString(name) || !cJSON_IsNumber(ty) || (ty->valuedouble != 0 && ty->valuedouble != 1))
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: a post_processor template piece is neither a SpecialToken nor a Sequence "
                        "with type_id 0 or 1", path);
    *type = (int)ty->valuedouble;
    *seq = 0, *special = -1;
    if (sq) {
        if (strcmp(name->valuestring, "A") != 0 && strcmp(name->valuestring, "B") != 0)
            return tok_fail(MREC_TOK_ERR_FORMAT, "%s: template sequence \"%s\" (A or B)", path, name->valuestring);
        *seq = name->valuestring[0];
        return MREC_TOK_OK;
    }
    const cJSON *entry = cJSON_GetObjectItemCaseSensitive(specials, name->valuestring);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(entry, "ids");
    if (cJSON_GetArraySize(ids) != 1)
        return tok_fail(MREC_TOK_ERR_UNSUPPORTED, "%s: template special \"%s\" is not one token in special_tokens", path,
                        name->valuestring);
    return json_token_id(t, NULL, ids->child, "a template special token", path, special);
}

/* The shapes mrec frames sequences in, read from a template:
 * single [X] A [Y]; pair X A Y B Y (BERT) or X A Y Y B Y (RoBERTa). */
static mrec_tok_status json_template(mrec_tokenizer *t, const cJSON *pp, const char *path) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single"), *pair = cJSON_GetObjectItemCaseSensitive(pp, "pair");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
    char seq[8];
    int32_t sp[8];
    int ty[8], n = cJSON_GetArraySize(single), m = cJSON_GetArraySize(pair);
    if (n != 3 || (m != 5 && m != 6))
        return tok_fail(MREC_TOK_ERR_UNSUPPORTED, "%s: a TemplateProcessing of %d and %d pieces (mrec reads X $A Y and "
                        "X $A Y [Y] $B Y)", path, n, m);
    const cJSON *piece = single->child;
    for (int i = 0; i < 3; i++, piece = piece->next) {
        mrec_tok_status st = template_piece(t, piece, specials, path, &seq[i], &sp[i], &ty[i]);
        if (st) return st;
    }
    if (seq[0] || seq[1] != 'A' || seq[2] || ty[0] || ty[1] || ty[2])
        return tok_fail(MREC_TOK_ERR_UNSUPPORTED, "%s: the single template is not X $A Y of type 0", path);
    t->bos_id = sp[0], t->eos_id = sp[2];
    piece = pair->child;
    for (int i = 0; i < m; i++, piece = piece->next) {
        mrec_tok_status st = template_piece(t, piece, specials, path, &seq[i], &sp[i], &ty[i]);
        if (st) return st;
    }
    int b = m - 2, ok = seq[1] == 'A' && seq[b] == 'B' && sp[0] == t->bos_id && sp[2] == t->eos_id &&
                        sp[m - 1] == t->eos_id && (m == 5 || sp[3] == t->eos_id) && !ty[0] && !ty[1] && !ty[2] &&
                        (m == 5 || !ty[3]) && ty[b] == ty[m - 1];
    if (!ok)
        return tok_fail(MREC_TOK_ERR_UNSUPPORTED, "%s: the pair template is not X $A Y [Y] $B Y with the single's specials",
                        path);
    t->pair_double_sep = m == 6, t->pair_type_b = ty[b];
    return MREC_TOK_OK;
}

/* A tokenizer.json's framing: post_processor (BertProcessing,
 * RobertaProcessing or a TemplateProcessing of those shapes) and padding's
 * pad_id. No post_processor leaves bos and eos at -1. */
static mrec_tok_status json_framing(mrec_tokenizer *t, const cJSON *root, const char *path) {
    mrec_tok_status st = MREC_TOK_OK;
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    const char *type = json_type(pp);
    if (!pp || cJSON_IsNull(pp)) {
    } else if (type && (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0)) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(pp, "cls"), *sep = cJSON_GetObjectItemCaseSensitive(pp, "sep");
        if (cJSON_GetArraySize(cls) != 2 || !cJSON_IsString(cls->child) || cJSON_GetArraySize(sep) != 2 ||
            !cJSON_IsString(sep->child))
            return tok_fail(MREC_TOK_ERR_FORMAT, "%s: post_processor %s without [token, id] for cls and sep", path, type);
        st = json_token_id(t, cls->child->valuestring, cls->child->next, "post_processor.cls", path, &t->bos_id);
        if (!st) st = json_token_id(t, sep->child->valuestring, sep->child->next, "post_processor.sep", path, &t->eos_id);
        int roberta = type[0] == 'R';
        t->pair_double_sep = roberta, t->pair_type_b = !roberta;
    } else if (type && strcmp(type, "TemplateProcessing") == 0) {
        st = json_template(t, pp, path);
    } else {
        return tok_fail(MREC_TOK_ERR_UNSUPPORTED, "%s: post_processor \"%s\" (mrec reads BertProcessing, RobertaProcessing "
                        "and TemplateProcessing)", path, type ? type : "without a type");
    }
    const cJSON *pad = cJSON_GetObjectItemCaseSensitive(root, "padding");
    if (!st && cJSON_IsObject(pad)) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(pad, "pad_token");
        st = json_token_id(t, cJSON_IsString(name) ? name->valuestring : NULL, cJSON_GetObjectItemCaseSensitive(pad, "pad_id"),
                           "padding.pad_token", path, &t->pad_id);
    }
    /* no padding section: HF pads with the tokenizer's pad token, [PAD] or RoBERTa's <pad> */
    if (!st && t->pad_id < 0 && tok_map_get(&t->ids, "[PAD]", 5) < 0) t->pad_id = tok_map_get(&t->ids, "<pad>", 5);
    return st;
}

/* A WordPiece tokenizer.json's specials: its framing and model.unk_token;
 * what none names is found by BERT's names. */
static mrec_tok_status json_wordpiece_specials(mrec_tokenizer *t, const cJSON *root, const char *path) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    mrec_tok_status st = MREC_TOK_OK;
    if (cJSON_IsString(unk)) st = json_token_id(t, unk->valuestring, NULL, "model.unk_token", path, &t->unk_id);
    if (!st) st = json_framing(t, root, path);
    return st ? st : wordpiece_specials(t, path);
}

/* ---- Unigram ------------------------------------------------------------------------ */

/* A Replace normalizer: a String pattern, or a Regex of one character and a
 * repetition ("c", "c+", "c{n}", "c{n,}", "c{n,m}", c possibly escaped). */
static mrec_tok_status json_replace(tok_norm_step *step, const cJSON *norm, const char *what, const char *path) {
    const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(norm, "pattern");
    const cJSON *lit = cJSON_GetObjectItemCaseSensitive(pattern, "String");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pattern, "Regex");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(norm, "content");
    if (!cJSON_IsString(content) || (!cJSON_IsString(lit) && !cJSON_IsString(re)))
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: %s (Replace) needs a pattern {\"String\" or \"Regex\": ...} and a content "
                        "string", path, what);
    const char *p = cJSON_IsString(lit) ? lit->valuestring : re->valuestring;
    size_t plen = strlen(p), clen = strlen(content->valuestring);
    if (plen > MAX_TOKEN || clen > MAX_TOKEN || !tok_utf8_valid(p, plen) || !tok_utf8_valid(content->valuestring, clen))
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: %s: pattern or content is not UTF-8 of at most %d bytes", path, what,
                        MAX_TOKEN);
    tok_ints from = {0}, to = {0};
    if (!tok_utf8_decode(p, plen, &from) || !tok_utf8_decode(content->valuestring, clen, &to)) {
        tok_ints_free(&from), tok_ints_free(&to);
        return tok_fail(MREC_TOK_ERR_NOMEM, "%s: %s", path, what);
    }
    step->kind = TOK_NORM_REPLACE;
    step->from = from.v, step->n_from = from.n, step->to = to.v, step->n_to = to.n;
    if (from.n == 0) return tok_fail(MREC_TOK_ERR_FORMAT, "%s: %s: an empty pattern", path, what);
    if (cJSON_IsString(lit)) return MREC_TOK_OK;
    /* the regex: one literal character, then its repetition */
    size_t at = 0;
    int32_t c = from.v[at++];
    static const char meta[] = ".^$|?*+()[]{}";
    if (c == '\\' && at < from.n && from.v[at] < 128 && strchr(meta, (int)from.v[at]) && from.v[at]) c = from.v[at++];
    else if (c < 128 && strchr(meta, (int)c)) at = from.n + 1; /* refused below */
    long lo = 1, hi = 1;
    if (at < from.n && from.v[at] == '+') lo = 1, hi = 0, at++;
    else if (at < from.n && from.v[at] == '{') {
        char num[64];
        size_t k = 0;
        for (at++; at < from.n && from.v[at] != '}' && k < sizeof num - 1; at++) num[k++] = (char)(from.v[at] < 128 ? from.v[at] : '?');
        num[k] = '\0';
        at = at < from.n ? at + 1 : from.n + 1;
        char *end;
        lo = strtol(num, &end, 10);
        hi = lo;
        if (*end == ',') hi = end[1] ? strtol(end + 1, &end, 10) : (end++, 0);
        if (end == num || *end || lo < 1 || lo > 1024 || hi < 0 || hi > 1024 || (hi && hi < lo)) at = from.n + 1;
    }
    if (at != from.n)
        return tok_fail(MREC_TOK_ERR_UNSUPPORTED, "%s: %s: Regex \"%.80s\" (mrec reads one character with a repetition, "
                        "like \" {2,}\")", path, what, p);
    step->from[0] = c, step->n_from = 1;
    step->min_run = (int)lo, step->max_run = (int)hi;
    return MREC_TOK_OK;
}

/* normalizer: null, Precompiled, Replace, or a Sequence of those. */
static mrec_tok_status json_unigram_normalizer(mrec_tokenizer *t, const cJSON *norm, const char *path) {
    if (!norm || cJSON_IsNull(norm)) return MREC_TOK_OK;
    const char *type = json_type(norm);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(norm, "normalizers");
    int seq = type && strcmp(type, "Sequence") == 0;
    if (seq && !cJSON_IsArray(list))
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: normalizer Sequence without a normalizers array", path);
    int n = seq ? cJSON_GetArraySize(list) : 1;
    if (n > 16) return tok_fail(MREC_TOK_ERR_UNSUPPORTED, "%s: a normalizer Sequence of %d steps (at most 16)", path, n);
    t->norm = calloc((size_t)(n ? n : 1), sizeof *t->norm);
    if (!t->norm) return tok_fail(MREC_TOK_ERR_NOMEM, "%s: normalizers", path);
    const cJSON *one = seq ? list->child : norm;
    for (int i = 0; i < n; i++, one = one->next) {
        char what[64];
        snprintf(what, sizeof what, seq ? "normalizer.normalizers[%d]" : "normalizer", i);
        const char *ty = json_type(one);
        mrec_tok_status st;
        t->n_norm = i + 1;
        if (ty && strcmp(ty, "Precompiled") == 0) {
            const cJSON *map = cJSON_GetObjectItemCaseSensitive(one, "precompiled_charsmap");
            if (!cJSON_IsString(map))
                return tok_fail(MREC_TOK_ERR_FORMAT, "%s: %s (Precompiled) has no precompiled_charsmap string", path, what);
            if (t->charsmap)
                return tok_fail(MREC_TOK_ERR_UNSUPPORTED, "%s: %s: a second Precompiled normalizer", path, what);
            t->norm[i].kind = TOK_NORM_PRECOMPILED;
            st = tok_charsmap_load(t, map->valuestring, path);
        } else if (ty && strcmp(ty, "Replace") == 0) {
            st = json_replace(&t->norm[i], one, what, path);
        } else {
            st = tok_fail(MREC_TOK_ERR_UNSUPPORTED, "%s: %s \"%s\" (mrec's Unigram reads Precompiled and Replace)", path,
                          what, ty ? ty : "without a type");
        }
        if (st) return st;
    }
    return MREC_TOK_OK;
}

/* pre_tokenizer: null, or Metaspace (alone or as a one-step Sequence). */
static mrec_tok_status json_metaspace(mrec_tokenizer *t, const cJSON *pre, const char *path) {
    if (!pre || cJSON_IsNull(pre)) return MREC_TOK_OK;
    const char *type = json_type(pre);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
    if (type && strcmp(type, "Sequence") == 0 && cJSON_GetArraySize(list) == 1) {
        pre = list->child;
        type = json_type(pre);
    }
    if (!type || strcmp(type, "Metaspace") != 0)
        return tok_fail(MREC_TOK_ERR_UNSUPPORTED, "%s: pre_tokenizer \"%s\" (mrec's Unigram reads Metaspace)", path,
                        type ? type : "without a type");
    t->metaspace = 1;
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(pre, "replacement");
    tok_ints c = {0};
    int one = cJSON_IsString(rep) && tok_utf8_valid(rep->valuestring, strlen(rep->valuestring)) &&
              tok_utf8_decode(rep->valuestring, strlen(rep->valuestring), &c) && c.n == 1;
    t->meta_char = one ? c.v[0] : 0;
    tok_ints_free(&c);
    if (!one) return tok_fail(MREC_TOK_ERR_FORMAT, "%s: pre_tokenizer.replacement is not one character", path);
    /* prepend_scheme (tokenizers >= 0.15), else the older add_prefix_space */
    const cJSON *scheme = cJSON_GetObjectItemCaseSensitive(pre, "prepend_scheme");
    if (cJSON_IsString(scheme)) {
        const char *s = scheme->valuestring;
        t->prepend = strcmp(s, "always") == 0 ? 1 : strcmp(s, "first") == 0 ? 2 : strcmp(s, "never") == 0 ? 0 : -1;
        if (t->prepend < 0)
            return tok_fail(MREC_TOK_ERR_FORMAT, "%s: pre_tokenizer.prepend_scheme \"%.40s\" (always, first or never)", path, s);
    } else {
        t->prepend = json_bool(pre, "add_prefix_space", 1);
    }
    t->meta_split = json_bool(pre, "split", 1);
    return MREC_TOK_OK;
}

static mrec_tok_status json_unigram(mrec_tokenizer *t, const cJSON *root, const cJSON *model, const char *path) {
    t->kind = MREC_TOK_UNIGRAM;
    t->pair_double_sep = 1, t->pair_type_b = 0;
    t->max_length = 512;
    t->bos_id = t->eos_id = t->pad_id = t->unk_id = -1;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsArray(vocab)) return tok_fail(MREC_TOK_ERR_FORMAT, "%s: model.vocab is not an array of [piece, score]", path);
    mrec_tok_status st = set_vocab_size(t, cJSON_GetArraySize(vocab), path);
    if (st) return st;
    t->scores = malloc((size_t)t->n_vocab * sizeof *t->scores);
    if (!t->scores) return tok_fail(MREC_TOK_ERR_NOMEM, "%s: scores", path);
    int id = 0;
    for (const cJSON *e = vocab->child; e && !st; e = e->next, id++) {
        const cJSON *piece = cJSON_GetArrayItem(e, 0), *score = cJSON_GetArrayItem(e, 1);
        if (cJSON_GetArraySize(e) != 2 || !cJSON_IsString(piece) || !cJSON_IsNumber(score) ||
            !(score->valuedouble >= -1e30 && score->valuedouble <= 1e30))
            return tok_fail(MREC_TOK_ERR_FORMAT, "%s: model.vocab[%d] is not [piece, finite score]", path, id);
        t->scores[id] = score->valuedouble;
        st = add_token(t, piece->valuestring, strlen(piece->valuestring), id, 0, path);
    }
    if (st) return st;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_id");
    if (!cJSON_IsNumber(unk) || !(unk->valuedouble >= 0 && unk->valuedouble < t->n_vocab) ||
        unk->valuedouble != (double)(int32_t)unk->valuedouble)
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: model.unk_id is not an id in 0..%d (text with unknown characters needs "
                        "one)", path, t->n_vocab - 1);
    t->unk_id = (int32_t)unk->valuedouble;
    t->byte_fallback = json_bool(model, "byte_fallback", 0);
    st = json_unigram_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), path);
    if (!st) st = json_metaspace(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), path);
    const cJSON *trunc = cJSON_GetObjectItemCaseSensitive(root, "truncation");
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(trunc, "max_length");
    if (cJSON_IsNumber(ml) && ml->valuedouble >= 1 && ml->valuedouble <= 1e6) t->max_length = (int)ml->valuedouble;
    return st ? st : tok_unigram_finish(t, path);
}

/* A Unigram tokenizer.json's specials: its framing; padding with <pad> or
 * else <unk>. */
static mrec_tok_status json_unigram_specials(mrec_tokenizer *t, const cJSON *root, const char *path) {
    mrec_tok_status st = json_framing(t, root, path);
    if (!st && t->pad_id < 0) t->pad_id = t->unk_id;
    return st;
}

static mrec_tok_status load_tokenizer_json(mrec_tokenizer *t, const char *path) {
    char *data;
    size_t size;
    mrec_tok_status st = read_file(path, &data, &size);
    if (st) return st;
    cJSON *root;
    st = parse_json(path, data, size, &root);
    free(data);
    if (st) return st;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: not a JSON object", path);
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *type = json_type(model);
    if (type && strcmp(type, "WordPiece") == 0) st = json_wordpiece(t, root, model, path);
    else if (type && strcmp(type, "BPE") == 0) st = json_bpe(t, root, model, path);
    else if (type && strcmp(type, "Unigram") == 0) st = json_unigram(t, root, model, path);
    else st = tok_fail(MREC_TOK_ERR_UNSUPPORTED, "%s: model type \"%s\" (mrec reads WordPiece, BPE and Unigram)", path,
                       type ? type : "none");
    if (!st) st = json_added_tokens(t, root, path);
    if (!st && t->kind == MREC_TOK_WORDPIECE) st = json_wordpiece_specials(t, root, path);
    if (!st && t->kind == MREC_TOK_UNIGRAM) st = json_unigram_specials(t, root, path);
    cJSON_Delete(root);
    return st;
}

/* ---- entry point ----------------------------------------------------------------- */

/* One file, by its name. Non-regular files are refused when read. */
static mrec_tok_status load_file(mrec_tokenizer *t, const char *path) {
    if (ends_with(path, "vocab.json")) return load_vocab_json(t, path);
    if (ends_with(path, ".json")) return load_tokenizer_json(t, path);
    if (ends_with(path, ".gz")) return load_clip_gz(t, path);
    return load_vocab_txt(t, path);
}

mrec_tok_status mrec_tokenizer_load(mrec_tokenizer **out, const char *path) {
    if (!out || !path) return tok_fail(MREC_TOK_ERR_ARG, "tokenizer load: no %s", out ? "path" : "output pointer");
    *out = NULL;
    mrec_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return tok_fail(MREC_TOK_ERR_NOMEM, "%s: tokenizer", path);
    struct stat sb;
    mrec_tok_status st;
    char file[4096];
    if (stat(path, &sb) != 0) {
        st = tok_fail(MREC_TOK_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    } else if (S_ISDIR(sb.st_mode)) {
        static const char *names[] = {"tokenizer.json", "vocab.txt", "vocab.json", "bpe_simple_vocab_16e6.txt.gz"};
        st = tok_fail(MREC_TOK_ERR_IO, "%s: holds none of tokenizer.json, vocab.txt, vocab.json, bpe_simple_vocab_16e6.txt.gz", path);
        for (int i = 0; i < 4; i++) {
            if ((size_t)snprintf(file, sizeof file, "%s/%s", path, names[i]) >= sizeof file) {
                st = tok_fail(MREC_TOK_ERR_ARG, "%s: path too long", path);
                break;
            }
            if (stat(file, &sb) != 0) continue; /* present but a FIFO or folder: refused when read */
            st = load_file(t, file);
            break;
        }
    } else {
        st = load_file(t, path);
    }
    if (st) {
        mrec_tokenizer_free(t);
        return st;
    }
    *out = t;
    return MREC_TOK_OK;
}

void mrec_tokenizer_free(mrec_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_vocab; i++) free(t->vocab[i]);
    free(t->vocab);
    tok_map_free(&t->ids);
    for (int i = 0; i < t->n_specials; i++) free(t->specials[i].text);
    free(t->specials);
    free(t->merges);
    for (size_t i = 0; i < t->cache_cap; i++) free(t->cache[i].word), free(t->cache[i].ids);
    free(t->cache);
    for (int i = 0; t->cache_locks_ready && i < TOK_CACHE_LOCKS; i++) pthread_mutex_destroy(&t->cache_lock[i]);
    tok_unigram_free(t);
    free(t);
}
