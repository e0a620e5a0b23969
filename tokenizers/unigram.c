/* unigram.c: SentencePiece's Unigram model as Hugging Face's tokenizers runs
 * a tokenizer.json of model type "Unigram" (XLM-R, and so AltCLIP's text
 * tower, mT5, ALBERT ...):
 *
 *   1. normalizer steps in file order:
 *      Precompiled  SentencePiece's character map (nmt_nfkc for XLM-R): a
 *                   Darts double-array trie over UTF-8 keys whose values
 *                   index NUL-separated replacement strings. Hugging Face
 *                   applies it per extended grapheme cluster: a cluster of
 *                   fewer than 6 bytes is replaced by the value of its
 *                   shortest key prefix when it has one; otherwise each
 *                   character is looked up alone. (SentencePiece itself
 *                   takes the longest match over the raw text; the ids the
 *                   models were fed come from Hugging Face, so we follow it.)
 *      Replace      a literal string, or a run of one character ("c{n,}")
 *   2. Metaspace: ' ' -> U+2581, prepended to the segment (always, or only
 *      to the text's first), then split before each U+2581
 *   3. per piece, Viterbi over the vocabulary's scores: every piece starting
 *      at each character (a byte trie), a character no piece covers scored
 *      unk_score = min score - 10; ties keep the shorter piece; adjacent
 *      unknown characters fuse into one <unk> (or its <0xNN> bytes when the
 *      file asks for byte_fallback).
 * Scores are doubles, added in Hugging Face's order, so equal paths resolve
 * the same way.
 *
 * Decoding follows Metaspace's decoder (and turns <0xNN> pieces back into
 * bytes); the file's decoder section is not read.
 *
 * Grapheme clusters come from utf8proc (Unicode 15), which Hugging Face's
 * unicode-segmentation may outdate; they only matter for clusters of fewer
 * than 6 bytes, where the rules have not changed since.
 *
 * Not done: other normalizers (NFKC, Lowercase, Strip ...) and regex
 * patterns beyond a repeated character; the loader refuses them by name.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- the piece trie ------------------------------------------------------------ */

typedef struct {
    const char *piece;
    size_t len;
    int32_t id;
} sorted_piece;

static int by_bytes(const void *a, const void *b) {
    return strcmp(((const sorted_piece *)a)->piece, ((const sorted_piece *)b)->piece);
}

static int trie_grow(tok_trie *tr, size_t nodes, size_t edges, size_t *cap_n, size_t *cap_e) {
    if (nodes > *cap_n) {
        size_t c = *cap_n ? *cap_n : 4096;
        while (c < nodes) c *= 2;
        int32_t *v = realloc(tr->value, c * sizeof *v);
        if (v) tr->value = v;
        uint32_t *f = realloc(tr->first, c * sizeof *f);
        if (f) tr->first = f;
        uint16_t *k = realloc(tr->count, c * sizeof *k);
        if (k) tr->count = k;
        if (!v || !f || !k) return 0;
        *cap_n = c;
    }
    if (edges > *cap_e) {
        size_t c = *cap_e ? *cap_e : 4096;
        while (c < edges) c *= 2;
        uint8_t *l = realloc(tr->label, c);
        if (l) tr->label = l;
        uint32_t *ch = realloc(tr->child, c * sizeof *ch);
        if (ch) tr->child = ch;
        if (!l || !ch) return 0;
        *cap_e = c;
    }
    return 1;
}

/* Builds the trie from the pieces sorted by their bytes: a node stands for
 * a range of the sorted list sharing `depth` leading bytes. */
static int trie_build(tok_trie *tr, char *const *vocab, int n) {
    sorted_piece *order = malloc((size_t)n * sizeof *order);
    struct range { int lo, hi; uint32_t depth, node; } *stack = malloc(256 * sizeof *stack);
    size_t cap_n = 0, cap_e = 0, top = 0, cap_s = 256;
    int ok = order && stack && trie_grow(tr, 1, 0, &cap_n, &cap_e);
    if (ok) {
        for (int i = 0; i < n; i++) order[i] = (sorted_piece){vocab[i], strlen(vocab[i]), i};
        qsort(order, (size_t)n, sizeof *order, by_bytes);
        tr->n_nodes = 1, tr->n_edges = 0;
        stack[top++] = (struct range){0, n, 0, 0};
    }
    while (ok && top > 0) {
        struct range r = stack[--top];
        int i = r.lo;
        tr->value[r.node] = -1;
        if (i < r.hi && order[i].len == r.depth) tr->value[r.node] = order[i++].id;
        /* children: groups of the next byte, already in byte order */
        size_t first = tr->n_edges, groups = 0;
        for (int j = i; j < r.hi; groups++) {
            uint8_t b = (uint8_t)order[j].piece[r.depth];
            int k = j;
            while (k < r.hi && (uint8_t)order[k].piece[r.depth] == b) k++;
            if (top == cap_s) {
                void *grown = realloc(stack, 2 * cap_s * sizeof *stack);
                if (grown) stack = grown, cap_s *= 2;
            }
            if (top == cap_s || !trie_grow(tr, tr->n_nodes + 1, tr->n_edges + 1, &cap_n, &cap_e)) {
                ok = 0;
                break;
            }
            tr->label[tr->n_edges] = b;
            tr->child[tr->n_edges++] = (uint32_t)tr->n_nodes;
            stack[top++] = (struct range){j, k, r.depth + 1, (uint32_t)tr->n_nodes++};
            j = k;
        }
        tr->first[r.node] = (uint32_t)first;
        tr->count[r.node] = (uint16_t)groups;
    }
    free(order), free(stack);
    return ok;
}

/* The child of node on byte b, or 0 (the root is never a child). */
static uint32_t trie_step(const tok_trie *tr, uint32_t node, uint8_t b) {
    size_t lo = tr->first[node], hi = lo + tr->count[node];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tr->label[mid] < b) lo = mid + 1;
        else hi = mid;
    }
    return lo < tr->first[node] + tr->count[node] && tr->label[lo] == b ? tr->child[lo] : 0;
}

mrec_tok_status tok_unigram_finish(mrec_tokenizer *t, const char *src) {
    double lo = 0;
    for (int i = 0; i < t->n_vocab; i++)
        if (i == 0 || t->scores[i] < lo) lo = t->scores[i];
    t->unk_score = lo - 10.0; /* sentencepiece's kUnkPenalty */
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_piece[b] = tok_map_get(&t->ids, name, 6);
    }
    if (!trie_build(&t->trie, t->vocab, t->n_vocab)) return tok_fail(MREC_TOK_ERR_NOMEM, "%s: the piece trie", src);
    return MREC_TOK_OK;
}

void tok_unigram_free(mrec_tokenizer *t) {
    free(t->scores);
    free(t->trie.value), free(t->trie.first), free(t->trie.count), free(t->trie.label), free(t->trie.child);
    for (int i = 0; i < t->n_norm; i++) free(t->norm[i].from), free(t->norm[i].to);
    free(t->norm);
    free(t->charsmap);
    free(t->charsmap_text);
}

/* ---- Precompiled: the character map ------------------------------------------ */

static int b64_value(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

#define MAX_REPLACEMENT 256 /* bytes; nmt_nfkc's longest is 33 (U+FDFA) */

/* Layout (SentencePiece's normalizer spec): a little-endian u32 with the
 * trie's size in bytes, the trie's u32 units, then the replacement strings,
 * each ended by NUL. */
mrec_tok_status tok_charsmap_load(mrec_tokenizer *t, const char *b64, const char *src) {
    size_t n = strlen(b64);
    if (n % 4)
        return tok_fail(MREC_TOK_ERR_FORMAT, "%s: normalizer precompiled_charsmap: %zu base64 characters (a multiple of 4)",
                        src, n);
    size_t size = n / 4 * 3;
    uint8_t *raw = malloc(size + 1);
    if (!raw) return tok_fail(MREC_TOK_ERR_NOMEM, "%s: precompiled_charsmap", src);
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            int c = (unsigned char)b64[i + j];
            /* '=' only in the last one or two places of the last group */
            if (c == '=' && i + 4 == n && j >= 2 && (j == 3 || b64[i + 3] == '=')) v[j] = 0, pad++;
            else if ((v[j] = b64_value(c)) < 0 || pad) {
                free(raw);
                return tok_fail(MREC_TOK_ERR_FORMAT, "%s: normalizer precompiled_charsmap: not base64 at character %zu", src,
                                i + j);
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        raw[k++] = (uint8_t)(w >> 16);
        if (pad < 2) raw[k++] = (uint8_t)(w >> 8);
        if (pad < 1) raw[k++] = (uint8_t)w;
    }
    size = k;
    mrec_tok_status st = MREC_TOK_OK;
    uint32_t trie_bytes = size >= 4 ? (uint32_t)raw[0] | (uint32_t)raw[1] << 8 | (uint32_t)raw[2] << 16 | (uint32_t)raw[3] << 24 : 0;
    if (size < 4 || trie_bytes % 4 || trie_bytes == 0 || trie_bytes > size - 4)
        st = tok_fail(MREC_TOK_ERR_FORMAT, "%s: normalizer precompiled_charsmap: %zu bytes, its header gives a trie of %u",
                      src, size, trie_bytes);
    size_t text_len = st ? 0 : size - 4 - trie_bytes, run = 0;
    for (size_t i = 0; i < text_len && !st; i++) {
        run = raw[4 + trie_bytes + i] ? run + 1 : 0;
        if (run > MAX_REPLACEMENT)
            st = tok_fail(MREC_TOK_ERR_FORMAT, "%s: normalizer precompiled_charsmap: a replacement longer than %d bytes", src,
                          MAX_REPLACEMENT);
    }
    if (!st && !tok_utf8_valid((const char *)raw + 4 + trie_bytes, text_len))
        st = tok_fail(MREC_TOK_ERR_FORMAT, "%s: normalizer precompiled_charsmap: the replacements are not UTF-8", src);
    if (!st) {
        free(t->charsmap), free(t->charsmap_text);
        t->charsmap_units = trie_bytes / 4;
        t->charsmap = malloc(trie_bytes);
        t->charsmap_text = malloc(text_len + 1);
        t->charsmap_len = text_len;
        if (!t->charsmap || !t->charsmap_text) st = tok_fail(MREC_TOK_ERR_NOMEM, "%s: precompiled_charsmap", src);
    }
    if (!st) {
        for (size_t u = 0; u < t->charsmap_units; u++) {
            const uint8_t *p = raw + 4 + 4 * u;
            t->charsmap[u] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        }
        memcpy(t->charsmap_text, raw + 4 + trie_bytes, text_len);
        t->charsmap_text[text_len] = '\0';
    }
    free(raw);
    return st;
}

/* Darts-clone's unit fields. */
static uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static uint32_t unit_label(uint32_t u) { return u & ((1u << 31) | 0xFF); }
static int unit_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static uint32_t unit_value(uint32_t u) { return u & ((1u << 31) - 1); }

/* The replacement of the shortest key that prefixes bytes[0..n), or -1.
 * Every array index is checked: a hostile map ends the search instead. */
static long charsmap_lookup(const mrec_tokenizer *t, const uint8_t *key, size_t n) {
    const uint32_t *a = t->charsmap;
    size_t units = t->charsmap_units, pos = 0;
    pos ^= unit_offset(a[0]);
    for (size_t i = 0; i < n && key[i]; i++) {
        pos ^= key[i];
        if (pos >= units) return -1;
        uint32_t u = a[pos];
        if (unit_label(u) != key[i]) return -1;
        pos ^= unit_offset(u);
        if (pos >= units) return -1;
        if (unit_has_leaf(u)) {
            uint32_t v = unit_value(a[pos]);
            return v <= t->charsmap_len ? (long)v : -1;
        }
    }
    return -1;
}

/* Appends the code points of replacement `at` (up to its NUL). */
static int put_replacement(const mrec_tokenizer *t, long at, tok_ints *out) {
    const char *s = t->charsmap_text + at;
    return tok_utf8_decode(s, strlen(s), out);
}

/* Unassigned default-ignorable code points are Control in Unicode's
 * GraphemeBreakProperty.txt (so a cluster ends before and after them), but
 * utf8proc gives every unassigned code point Other. */
static int unassigned_control(int32_t cp) {
    return cp == 0x2065 || (cp >= 0xFFF0 && cp <= 0xFFF8) || cp == 0xE0000 || (cp >= 0xE0002 && cp <= 0xE001F) ||
           (cp >= 0xE0080 && cp <= 0xE00FF) || (cp >= 0xE01F0 && cp <= 0xE0FFF);
}

static int grapheme_break(int32_t a, int32_t b, utf8proc_int32_t *state) {
    if (unassigned_control(a) || unassigned_control(b)) {
        *state = 0;
        return 1;
    }
    return utf8proc_grapheme_break_stateful(a, b, state);
}

static int precompiled(const mrec_tokenizer *t, const tok_ints *in, tok_ints *out) {
    utf8proc_int32_t state = 0;
    uint8_t buf[4 * 64];
    for (size_t gs = 0; gs < in->n;) {
        /* one extended grapheme cluster [gs, ge) */
        size_t ge = gs + 1;
        while (ge < in->n && !grapheme_break(in->v[ge - 1], in->v[ge], &state)) ge++;
        state = 0;
        size_t bytes = 0;
        for (size_t i = gs; i < ge && bytes < 6; i++) bytes += (size_t)utf8proc_encode_char(in->v[i], buf + bytes);
        if (bytes < 6) {
            long at = charsmap_lookup(t, buf, bytes);
            if (at >= 0) {
                if (!put_replacement(t, at, out)) return 0;
                gs = ge;
                continue;
            }
        }
        for (size_t i = gs; i < ge; i++) {
            size_t k = (size_t)utf8proc_encode_char(in->v[i], buf);
            long at = charsmap_lookup(t, buf, k);
            if (!(at >= 0 ? put_replacement(t, at, out) : tok_ints_push(out, in->v[i]))) return 0;
        }
        gs = ge;
    }
    return 1;
}

/* Replace: leftmost matches, not overlapping, as Rust's regex and str::replace. */
static int replace(const tok_norm_step *s, const tok_ints *in, tok_ints *out) {
    for (size_t i = 0; i < in->n;) {
        size_t m = 0;
        if (s->min_run) {
            while (i + m < in->n && in->v[i + m] == s->from[0] && (!s->max_run || m < (size_t)s->max_run)) m++;
            if (m < (size_t)s->min_run) m = 0;
        } else if (i + s->n_from <= in->n && memcmp(in->v + i, s->from, s->n_from * sizeof *s->from) == 0) {
            m = s->n_from;
        }
        if (!m) {
            if (!tok_ints_push(out, in->v[i++])) return 0;
            continue;
        }
        for (size_t k = 0; k < s->n_to; k++)
            if (!tok_ints_push(out, s->to[k])) return 0;
        i += m;
    }
    return 1;
}

/* ---- Viterbi ------------------------------------------------------------------------ */

typedef struct {
    double score;
    int32_t start; /* -1: not reached yet */
    int32_t id;
} lattice_node;

/* Appends the id of one fused run of unknown characters (or its bytes). */
static int put_unknown(const mrec_tokenizer *t, const char *s, size_t n, tok_ints *out) {
    int32_t id = tok_map_get(&t->ids, s, n);
    if (id >= 0) return tok_ints_push(out, id);
    if (t->byte_fallback) {
        int all = 1;
        for (size_t i = 0; i < n && all; i++) all = t->byte_piece[(uint8_t)s[i]] >= 0;
        if (all) {
            for (size_t i = 0; i < n; i++)
                if (!tok_ints_push(out, t->byte_piece[(uint8_t)s[i]])) return 0;
            return 1;
        }
    }
    return tok_ints_push(out, t->unk_id);
}

static int viterbi(const mrec_tokenizer *t, const char *s, size_t n, tok_ints *out) {
    if (n == 0) return 1;
    lattice_node *best = malloc((n + 1) * sizeof *best);
    int32_t *path = malloc((n + 1) * sizeof *path);
    if (!best || !path) {
        free(best), free(path);
        return 0;
    }
    for (size_t i = 0; i <= n; i++) best[i] = (lattice_node){0, -1, -1};
    best[0].start = 0;
    for (size_t at = 0; at < n;) {
        double here = best[at].score;
        size_t mblen = 1;
        uint8_t c = (uint8_t)s[at];
        if (c >= 0xF0) mblen = 4;
        else if (c >= 0xE0) mblen = 3;
        else if (c >= 0xC0) mblen = 2;
        if (at + mblen > n) mblen = n - at; /* the text is valid UTF-8: never */
        int single = 0;
        uint32_t node = 0;
        for (size_t k = at; k < n; k++) {
            node = trie_step(&t->trie, node, (uint8_t)s[k]);
            if (!node) break;
            int32_t id = t->trie.value[node];
            if (id < 0) continue;
            lattice_node *to = &best[k + 1];
            double cand = t->scores[id] + here;
            if (to->start < 0 || cand > to->score) *to = (lattice_node){cand, (int32_t)at, id};
            if (k + 1 - at == mblen) single = 1;
        }
        if (!single) {
            lattice_node *to = &best[at + mblen];
            double cand = t->unk_score + here;
            if (to->start < 0 || cand > to->score) *to = (lattice_node){cand, (int32_t)at, t->unk_id};
        }
        at += mblen;
    }
    /* back from the end; runs of <unk> fuse into one piece */
    size_t np = 0;
    for (size_t end = n; end > 0; end = (size_t)best[end].start) path[np++] = (int32_t)end;
    int ok = 1;
    size_t unk_from = 0, unk_to = 0; /* the pending fused run [unk_from, unk_to) */
    int pending = 0;
    for (size_t k = np; k-- > 0 && ok;) {
        size_t end = (size_t)path[k], start = (size_t)best[end].start;
        if (best[end].id == t->unk_id) {
            if (!pending) unk_from = start;
            unk_to = end, pending = 1;
            continue;
        }
        if (pending) ok = put_unknown(t, s + unk_from, unk_to - unk_from, out), pending = 0;
        ok = ok && tok_ints_push(out, best[end].id);
    }
    if (ok && pending) ok = put_unknown(t, s + unk_from, unk_to - unk_from, out);
    free(best), free(path);
    return ok;
}

/* ---- the segment pipeline ---------------------------------------------------------- */

int tok_unigram_segment(mrec_tokenizer *t, const int32_t *in, size_t n, int at_start, tok_ints *out) {
    tok_ints a = {0}, b = {0};
    int ok = tok_ints_reserve(&a, n + 1);
    if (ok) memcpy(a.v, in, n * sizeof *in), a.n = n;
    for (int k = 0; k < t->n_norm && ok; k++) {
        b.n = 0;
        ok = t->norm[k].kind == TOK_NORM_PRECOMPILED ? precompiled(t, &a, &b) : replace(&t->norm[k], &a, &b);
        tok_ints tmp = a;
        a = b, b = tmp;
    }
    /* Metaspace: spaces become the replacement, which starts the segment
     * (unless there is nothing to start) and each piece. */
    if (ok && t->metaspace) {
        for (size_t i = 0; i < a.n; i++)
            if (a.v[i] == ' ') a.v[i] = t->meta_char;
        if (a.n && a.v[0] != t->meta_char && (t->prepend == 1 || (t->prepend == 2 && at_start))) {
            ok = tok_ints_push(&a, 0);
            if (ok) memmove(a.v + 1, a.v, (a.n - 1) * sizeof *a.v), a.v[0] = t->meta_char;
        }
    }
    tok_str piece = {0};
    for (size_t start = 0; start < a.n && ok;) {
        size_t end = start + 1;
        while (end < a.n && !(t->metaspace && t->meta_split && a.v[end] == t->meta_char)) end++;
        piece.n = 0;
        for (size_t i = start; i < end && ok; i++) ok = tok_str_put_cp(&piece, a.v[i]);
        ok = ok && viterbi(t, piece.s, piece.n, out);
        start = end;
    }
    tok_str_free(&piece);
    tok_ints_free(&a);
    tok_ints_free(&b);
    return ok;
}
