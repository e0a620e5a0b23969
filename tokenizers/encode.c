/* encode.c: from text to model inputs, and back.
 *
 * Special tokens written in the text itself ("[CLS]", "<|endoftext|>") are
 * found first, in the raw text, and become their ids, as Hugging Face's
 * added tokens do; the text between them goes through the tokenizer family's
 * pipeline. Then the sequence(s) are truncated to leave room for the special
 * tokens (pairs as Hugging Face's "longest_first"), the special tokens added,
 * and the result padded.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

mrec_tok_kind mrec_tokenizer_kind(const mrec_tokenizer *t) { return t->kind; }
int mrec_tokenizer_vocab_size(const mrec_tokenizer *t) { return t->n_vocab; }
int mrec_tokenizer_max_length(const mrec_tokenizer *t) { return t->max_length; }
int32_t mrec_tokenizer_pad_id(const mrec_tokenizer *t) { return t->pad_id; }

const char *mrec_tokenizer_token(const mrec_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->vocab[id] : NULL;
}

int32_t mrec_tokenizer_id(const mrec_tokenizer *t, const char *token) {
    return tok_map_get(&t->ids, token, strlen(token));
}

mrec_tok_options mrec_tok_defaults(void) {
    mrec_tok_options o = {.max_length = 0, .truncation = 1, .padding = 0, .add_special = 1};
    return o;
}

/* The longest special token written at text[i], or -1. */
static int special_at(const mrec_tokenizer *t, const char *text, size_t len, size_t i, size_t *match) {
    int best = -1;
    *match = 0;
    for (int s = 0; s < t->n_specials; s++) {
        size_t k = strlen(t->specials[s].text);
        if (k > *match && k <= len - i && memcmp(text + i, t->specials[s].text, k) == 0) best = s, *match = k;
    }
    return best;
}

static int segment(mrec_tokenizer *t, const char *text, size_t len, int at_start, tok_ints *out) {
    if (len == 0) return 1;
    tok_ints cps = {0};
    int ok = tok_utf8_decode(text, len, &cps);
    if (ok) ok = t->kind == MREC_TOK_WORDPIECE ? tok_wordpiece_segment(t, cps.v, cps.n, out)
                 : t->kind == MREC_TOK_BPE     ? tok_bpe_segment(t, cps.v, cps.n, out)
                                               : tok_unigram_segment(t, cps.v, cps.n, at_start, out);
    tok_ints_free(&cps);
    return ok;
}

/* The length of the whitespace character (Unicode White_Space, as the
 * regex \s of Hugging Face's added tokens) ending at text[end), or 0. */
static size_t space_before(const char *text, size_t end) {
    for (size_t k = 1; k <= 3 && k <= end; k++) {
        const unsigned char *p = (const unsigned char *)text + end - k;
        if (k == 1 ? *p >= 0x80 : (*p & 0xC0) == 0x80) continue; /* not where a character starts */
        tok_ints cp = {0};
        int ok = tok_utf8_decode(text + end - k, k, &cp) && cp.n == 1 && tok_is_regex_space(cp.v[0]);
        tok_ints_free(&cp);
        return ok ? k : 0;
    }
    return 0;
}

static size_t space_after(const char *text, size_t len, size_t at) {
    for (size_t k = 1; k <= 3 && at + k <= len; k++) {
        tok_ints cp = {0};
        int ok = tok_utf8_decode(text + at, k, &cp) && cp.n == 1 && cp.v[0] != 0xFFFD && tok_is_regex_space(cp.v[0]);
        tok_ints_free(&cp);
        if (ok) return k;
    }
    return 0;
}

/* All ids of one text, without added special tokens, into out. */
static int tokenize_all(mrec_tokenizer *t, const char *text, size_t len, tok_ints *out) {
    size_t start = 0;
    for (size_t i = 0; i < len;) {
        size_t k;
        int s = t->n_specials ? special_at(t, text, len, i, &k) : -1;
        if (s < 0) {
            i++;
            continue;
        }
        /* lstrip / rstrip: the token takes the whitespace around it */
        size_t end = i, w;
        while (t->specials[s].lstrip && end > start && (w = space_before(text, end))) end -= w;
        if (!segment(t, text + start, end - start, start == 0, out) || !tok_ints_push(out, t->specials[s].id)) return 0;
        i += k;
        while (t->specials[s].rstrip && i < len && (w = space_after(text, len, i))) i += w;
        start = i;
    }
    return segment(t, text + start, len - start, start == 0, out);
}

mrec_tok_status mrec_tokenize(mrec_tokenizer *t, const char *text, size_t len, int32_t *ids, size_t cap,
                              size_t *n_ids) {
    if (!t || (!text && len) || (!ids && cap) || !n_ids)
        return tok_fail(MREC_TOK_ERR_ARG, "tokenize: a NULL argument (tokenizer, text, ids or count)");
    if (!text) text = "";
    tok_ints out = {0};
    if (!tokenize_all(t, text, len, &out)) {
        tok_ints_free(&out);
        return tok_fail(MREC_TOK_ERR_NOMEM, "tokenize: %zu bytes of text", len);
    }
    size_t n = out.n;
    *n_ids = n;
    if (n && cap) memcpy(ids, out.v, (n < cap ? n : cap) * sizeof *ids);
    tok_ints_free(&out);
    return n <= cap ? MREC_TOK_OK : tok_fail(MREC_TOK_ERR_SPACE, "tokenize: %zu ids, room for %zu", n, cap);
}

mrec_tok_status mrec_tokenizer_encode(mrec_tokenizer *t, const char *a, const char *b, const mrec_tok_options *opt,
                                      int32_t *ids, int32_t *type_ids, int32_t *mask, size_t cap, size_t *len) {
    if (!t || !a || (!ids && cap) || !len)
        return tok_fail(MREC_TOK_ERR_ARG, "encode: a NULL argument (tokenizer, text, ids or length)");
    mrec_tok_options o = opt ? *opt : mrec_tok_defaults();
    int max_len = o.max_length > 0 ? o.max_length : t->max_length;
    tok_ints x = {0}, y = {0};
    if (!tokenize_all(t, a, strlen(a), &x) || (b && !tokenize_all(t, b, strlen(b), &y))) {
        tok_ints_free(&x), tok_ints_free(&y);
        return tok_fail(MREC_TOK_ERR_NOMEM, "encode: tokenizing");
    }
    /* Specials: BERT's [CLS] a [SEP] (b [SEP]); RoBERTa's <s> a </s> (</s> b </s>), as CLIP and MPNet.
     * A tokenizer.json without a post_processor adds none. */
    if (t->bos_id < 0 || t->eos_id < 0) o.add_special = 0;
    size_t extra = !o.add_special ? 0 : !b ? 2 : t->pair_double_sep ? 4 : 3;
    if (o.truncation && x.n + y.n + extra > (size_t)max_len) {
        if ((size_t)max_len < extra) {
            tok_ints_free(&x), tok_ints_free(&y);
            return tok_fail(MREC_TOK_ERR_ARG, "encode: max_length %d leaves no room for %zu special tokens", max_len, extra);
        }
        size_t budget = (size_t)max_len - extra;
        if (!b) {
            x.n = budget;
        } else {
            /* Hugging Face's longest-first: the shorter side keeps what it
             * can up to half the budget, the longer side takes the rest. */
            size_t n1 = x.n, n2 = y.n;
            int swap = n1 > n2;
            if (swap) n1 = y.n, n2 = x.n;
            n2 = n1 > budget ? n1 : (n1 > budget - n1 ? n1 : budget - n1);
            if (n1 + n2 > budget) n1 = budget / 2, n2 = n1 + budget % 2;
            if (swap) {
                size_t tmp = n1;
                n1 = n2, n2 = tmp;
            }
            if (n1 < x.n) x.n = n1;
            if (n2 < y.n) y.n = n2;
        }
    }
    size_t n = 0, total = x.n + y.n + extra;
    size_t padded = o.padding && total < (size_t)max_len ? (size_t)max_len : total;
    *len = padded;
    if (padded > cap) {
        tok_ints_free(&x), tok_ints_free(&y);
        return tok_fail(MREC_TOK_ERR_SPACE, "encode: %zu ids, room for %zu", padded, cap);
    }
#define PUT(id_, type_)                            \
    do {                                           \
        ids[n] = (id_);                            \
        if (type_ids) type_ids[n] = (type_);       \
        if (mask) mask[n] = 1;                     \
        n++;                                       \
    } while (0)
    if (o.add_special) PUT(t->bos_id, 0);
    for (size_t i = 0; i < x.n; i++) PUT(x.v[i], 0);
    if (o.add_special) PUT(t->eos_id, 0);
    if (b) {
        if (o.add_special && t->pair_double_sep) PUT(t->eos_id, 0);
        for (size_t i = 0; i < y.n; i++) PUT(y.v[i], t->pair_type_b);
        if (o.add_special) PUT(t->eos_id, t->pair_type_b);
    }
#undef PUT
    for (; n < padded; n++) {
        ids[n] = t->pad_id;
        if (type_ids) type_ids[n] = 0;
        if (mask) mask[n] = 0;
    }
    tok_ints_free(&x), tok_ints_free(&y);
    return MREC_TOK_OK;
}

mrec_tok_status mrec_tokenizer_encode_batch(mrec_tokenizer *t, const char *const *texts, const char *const *pairs, int n,
                                            const mrec_tok_options *opt, int L, int32_t *ids, int32_t *type_ids,
                                            int32_t *mask, int32_t *lengths) {
    mrec_tok_options o = opt ? *opt : mrec_tok_defaults();
    o.padding = 0;
    for (int i = 0; i < n; i++) {
        size_t len;
        int32_t *row_ids = ids + (size_t)i * L, *row_types = type_ids ? type_ids + (size_t)i * L : NULL;
        int32_t *row_mask = mask ? mask + (size_t)i * L : NULL;
        mrec_tok_status st = mrec_tokenizer_encode(t, texts[i], pairs ? pairs[i] : NULL, &o, row_ids, row_types,
                                                   row_mask, (size_t)L, &len);
        if (st == MREC_TOK_ERR_SPACE)
            return tok_fail(st, "encode_batch: text %d needs %zu tokens, rows hold %d", i, len, L);
        if (st) return st;
        lengths[i] = (int32_t)len;
        for (size_t j = len; j < (size_t)L; j++) {
            row_ids[j] = t->pad_id;
            if (row_types) row_types[j] = 0;
            if (row_mask) row_mask[j] = 0;
        }
    }
    return MREC_TOK_OK;
}

static int is_special_id(const mrec_tokenizer *t, int32_t id) {
    for (int s = 0; s < t->n_specials; s++)
        if (t->specials[s].id == id) return 1;
    return 0;
}

mrec_tok_status mrec_tokenizer_decode(const mrec_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                                      char *buf, size_t cap, size_t *len) {
    tok_str out = {0};
    int ok = tok_str_append(&out, "", 0), first = 1;
    for (size_t i = 0; i < n && ok; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) {
            tok_str_free(&out);
            return tok_fail(MREC_TOK_ERR_ARG, "decode: id %d at position %zu is outside the vocabulary of %d", ids[i], i,
                            t->n_vocab);
        }
        if (skip_special && is_special_id(t, ids[i])) continue;
        const char *tok = t->vocab[ids[i]];
        if (t->kind == MREC_TOK_WORDPIECE) {
            size_t plen = strlen(t->prefix);
            if (plen && strncmp(tok, t->prefix, plen) == 0) ok = tok_str_append(&out, tok + plen, strlen(tok + plen));
            else ok = (out.n == 0 || tok_str_append(&out, " ", 1)) && tok_str_append(&out, tok, strlen(tok));
            continue;
        }
        if (t->kind == MREC_TOK_UNIGRAM) {
            /* <0xNN> pieces are bytes (byte fallback); the Metaspace
             * character is a space, except in the first token when the
             * pre-tokenizer prepends it (Metaspace's decoder). */
            unsigned byte;
            char c;
            if (t->byte_fallback && strlen(tok) == 6 && sscanf(tok, "<0x%2X>", &byte) == 1) {
                c = (char)byte;
                ok = tok_str_append(&out, &c, 1);
                first = 0;
                continue;
            }
            tok_ints cps = {0};
            ok = tok_utf8_decode(tok, strlen(tok), &cps);
            for (size_t k = 0; k < cps.n && ok; k++) {
                int space = t->metaspace && cps.v[k] == t->meta_char;
                if (space && first && t->prepend) continue; /* Hugging Face drops them all in the first token */
                ok = space ? tok_str_append(&out, " ", 1) : tok_str_put_cp(&out, cps.v[k]);
            }
            tok_ints_free(&cps);
            first = 0;
            continue;
        }
        /* BPE: printable characters back to bytes; "</w>" ends a word. */
        tok_ints cps = {0};
        ok = tok_utf8_decode(tok, strlen(tok), &cps);
        for (size_t k = 0; k < cps.n && ok; k++) {
            if (cps.v[k] == '<' && k + 3 < cps.n && cps.v[k + 1] == '/' && cps.v[k + 2] == 'w' && cps.v[k + 3] == '>') {
                ok = tok_str_append(&out, " ", 1);
                k += 3;
                continue;
            }
            int32_t cp = cps.v[k];
            int byte = cp >= 0 && cp < 324 ? t->unicode_to_byte[cp] : -1;
            char c = (char)byte;
            ok = byte >= 0 ? tok_str_append(&out, &c, 1) : tok_str_put_cp(&out, cp);
        }
        tok_ints_free(&cps);
    }
    if (!ok) {
        tok_str_free(&out);
        return tok_fail(MREC_TOK_ERR_NOMEM, "decode");
    }
    /* BPE text may end in the space of a last "</w>"; bytes may not be valid UTF-8 alone. */
    size_t end = out.n;
    while (t->kind == MREC_TOK_BPE && end > 0 && out.s[end - 1] == ' ') end--;
    *len = end;
    if (cap) {
        size_t k = end < cap - 1 ? end : cap - 1;
        memcpy(buf, out.s, k);
        buf[k] = '\0';
    }
    tok_str_free(&out);
    return end < cap ? MREC_TOK_OK : tok_fail(MREC_TOK_ERR_SPACE, "decode: %zu bytes, room for %zu", end, cap);
}
