/* unicode.c: UTF-8 decoding, the character classes the two tokenizer
 * families test, lowercasing and normalization (through utf8proc).
 *
 * The classes follow what Hugging Face's Rust tokenizers do, which is not
 * always what Python's unicodedata would say: e.g. whitespace is Rust's
 * White_Space property, and the control characters removed before
 * whitespace is mapped to spaces are Cc, Cf and Co, not unassigned code
 * points. Character data comes from utf8proc's Unicode tables.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

int tok_ints_reserve(tok_ints *a, size_t cap) {
    if (cap <= a->cap) return 1;
    size_t c = a->cap ? a->cap : 16;
    while (c < cap) c *= 2;
    int32_t *v = realloc(a->v, c * sizeof *v);
    if (!v) return 0;
    a->v = v;
    a->cap = c;
    return 1;
}

int tok_ints_push(tok_ints *a, int32_t x) {
    if (a->n == a->cap && !tok_ints_reserve(a, a->n + 1)) return 0;
    a->v[a->n++] = x;
    return 1;
}

void tok_ints_free(tok_ints *a) {
    free(a->v);
    memset(a, 0, sizeof *a);
}

int tok_str_append(tok_str *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 64;
        while (c < b->n + n + 1) c *= 2;
        char *p = realloc(b->s, c);
        if (!p) return 0;
        b->s = p;
        b->cap = c;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
    return 1;
}

int tok_str_put_cp(tok_str *b, int32_t cp) {
    uint8_t buf[4];
    utf8proc_ssize_t n = utf8proc_encode_char(cp, buf);
    return n > 0 && tok_str_append(b, (const char *)buf, (size_t)n);
}

void tok_str_free(tok_str *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 and *skip = the
 * length of the maximal invalid subpart to replace by one U+FFFD. */
static int utf8_seq(const uint8_t *s, size_t len, int32_t *cp, size_t *skip) {
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int need;
    int32_t v;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) need = 1, v = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2, v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3, v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *skip = 1;
        return 0;
    }
    size_t i = 1;
    for (; i <= (size_t)need; i++) {
        if (i >= len) break;
        uint8_t b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
        v = v << 6 | (b & 0x3F);
    }
    if (i == (size_t)need + 1) {
        *cp = v;
        return need + 1;
    }
    *skip = i; /* the lead byte and the valid continuation bytes seen */
    return 0;
}

int tok_utf8_valid(const char *text, size_t len) {
    const uint8_t *s = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        size_t skip = 0;
        int n = utf8_seq(s + i, len - i, &cp, &skip);
        if (!n) return 0;
        i += (size_t)n;
    }
    return 1;
}

int tok_utf8_decode(const char *text, size_t len, tok_ints *out) {
    const uint8_t *s = (const uint8_t *)text;
    if (!tok_ints_reserve(out, out->n + len)) return 0;
    size_t i = 0;
    while (i < len) {
        int32_t cp;
        size_t skip = 0;
        int n = utf8_seq(s + i, len - i, &cp, &skip);
        if (n) {
            out->v[out->n++] = cp;
            i += (size_t)n;
        } else {
            out->v[out->n++] = 0xFFFD;
            i += skip;
        }
    }
    return 1;
}

static utf8proc_category_t category(int32_t cp) { return utf8proc_category(cp); }

int tok_is_bert_whitespace(int32_t cp) {
    switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return 1;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

int tok_is_bert_control(int32_t cp) {
    if (cp == '\t' || cp == '\n' || cp == '\r') return 0;
    /* Hugging Face's table of "other" characters is built from the lines of
     * UnicodeData.txt, where unassigned code points and noncharacters (Cn)
     * never appear: they are kept, and WordPiece makes their word [UNK].
     * Surrogates cannot reach here (decoding turns them into U+FFFD). */
    switch (category(cp)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CO:
        return 1;
    default:
        return 0;
    }
}

int tok_is_bert_punct(int32_t cp) {
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
        return 1;
    switch (category(cp)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return 1;
    default:
        return 0;
    }
}

int tok_is_cjk(int32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

int tok_is_letter(int32_t cp) {
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    utf8proc_category_t c = category(cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

int tok_is_number(int32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    utf8proc_category_t c = category(cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

int tok_is_regex_space(int32_t cp) { return tok_is_bert_whitespace(cp); }

int tok_is_mark_nonspacing(int32_t cp) { return category(cp) == UTF8PROC_CATEGORY_MN; }

int tok_lowercase(int32_t cp, tok_ints *out) {
    if (cp < 0x80) return tok_ints_push(out, (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp);
    if (cp == 0x130) return tok_ints_push(out, 'i') && tok_ints_push(out, 0x307); /* SpecialCasing */
    return tok_ints_push(out, utf8proc_tolower(cp));
}

int tok_normalize(tok_ints *cps, int compose) {
    int ascii = 1;
    for (size_t i = 0; i < cps->n && ascii; i++) ascii = cps->v[i] < 0x80;
    if (ascii || cps->n == 0) return 1; /* ASCII is its own NFD and NFC */
    /* utf8proc's whole-string decomposition, not one character at a time:
     * only it puts combining marks in canonical order, which NFD and NFC
     * both require (two accents typed in either order are one string). */
    tok_str utf8 = {0};
    int ok = 1;
    for (size_t i = 0; i < cps->n && ok; i++) ok = tok_str_put_cp(&utf8, cps->v[i]);
    utf8proc_option_t opt = UTF8PROC_STABLE | (compose ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE);
    tok_ints out = {0};
    utf8proc_ssize_t n = -1;
    if (ok) n = utf8proc_decompose((const utf8proc_uint8_t *)utf8.s, (utf8proc_ssize_t)utf8.n, NULL, 0, opt);
    if (n >= 0 && tok_ints_reserve(&out, (size_t)n + 1)) {
        utf8proc_ssize_t m = utf8proc_decompose((const utf8proc_uint8_t *)utf8.s, (utf8proc_ssize_t)utf8.n, out.v, n, opt);
        n = m == n ? m : -1;
        if (n >= 0 && compose) n = utf8proc_normalize_utf32(out.v, n, opt);
    } else {
        n = -1;
    }
    tok_str_free(&utf8);
    if (n < 0) {
        tok_ints_free(&out);
        return 0;
    }
    out.n = (size_t)n;
    tok_ints_free(cps);
    *cps = out;
    return 1;
}
