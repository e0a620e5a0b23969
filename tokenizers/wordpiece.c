/* wordpiece.c: BERT's normalizer, pre-tokenizer and WordPiece model, as
 * Hugging Face's BertNormalizer, BertPreTokenizer and WordPiece do them:
 *
 *   1. clean: drop NUL, U+FFFD and controls (Cc Cf Co); whitespace -> ' '
 *   2. put spaces around CJK ideographs
 *   3. strip accents (NFD, drop nonspacing marks) if uncased or asked
 *   4. lowercase (full Unicode lowercase)
 *   5. split on whitespace; each punctuation character is its own word
 *   6. each word: more than max_chars characters -> [UNK]; otherwise the
 *      longest vocabulary prefix, then "##"-prefixed pieces; a word with any
 *      piece missing becomes one [UNK].
 */
#include "tok_internal.h"

#include <string.h>

/* Appends the ids of one word (code points) to out. */
static int wordpiece_word(mrec_tokenizer *t, const int32_t *cps, size_t n, tok_ints *out) {
    if (n == 0) return 1;
    if ((int)n > t->max_chars) return tok_ints_push(out, t->unk_id);
    tok_str word = {0}, key = {0};
    size_t offs[257]; /* byte offset of each character; n <= max_chars <= 256 */
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        offs[i] = word.n;
        ok = tok_str_put_cp(&word, cps[i]);
    }
    offs[n] = word.n;
    size_t plen = strlen(t->prefix), mark = out->n;
    for (size_t start = 0; start < n && ok;) {
        int32_t found = -1;
        size_t end = n;
        for (; end > start; end--) {
            if (offs[end] - offs[start] + (start > 0 ? plen : 0) > t->ids.max_len) continue; /* longer than any token */
            key.n = 0;
            if (start > 0) ok = tok_str_append(&key, t->prefix, plen);
            ok = ok && tok_str_append(&key, word.s + offs[start], offs[end] - offs[start]);
            if (!ok) break;
            found = tok_map_get(&t->ids, key.s, key.n);
            if (found >= 0) break;
        }
        if (found < 0) {
            out->n = mark; /* the whole word is unknown */
            ok = ok && tok_ints_push(out, t->unk_id);
            break;
        }
        ok = tok_ints_push(out, found);
        start = end;
    }
    tok_str_free(&word);
    tok_str_free(&key);
    return ok;
}

int tok_wordpiece_segment(mrec_tokenizer *t, const int32_t *in, size_t n, tok_ints *out) {
    tok_ints a = {0}, b = {0};
    int ok = tok_ints_reserve(&a, n + 8);
    /* 1-2: clean, CJK */
    for (size_t i = 0; i < n && ok; i++) {
        int32_t cp = in[i];
        if (t->clean_text) {
            if (cp == 0 || cp == 0xFFFD || tok_is_bert_control(cp)) continue;
            if (tok_is_bert_whitespace(cp)) cp = ' ';
        }
        if (t->chinese_chars && tok_is_cjk(cp)) ok = tok_ints_push(&a, ' ') && tok_ints_push(&a, cp) && tok_ints_push(&a, ' ');
        else ok = tok_ints_push(&a, cp);
    }
    /* 3: strip accents */
    if (ok && t->strip_accents) {
        ok = tok_normalize(&a, 0);
        size_t k = 0;
        for (size_t i = 0; i < a.n && ok; i++)
            if (!tok_is_mark_nonspacing(a.v[i])) a.v[k++] = a.v[i];
        a.n = k;
    }
    /* 4: lowercase */
    if (ok && t->lowercase) {
        ok = tok_ints_reserve(&b, a.n + 8);
        for (size_t i = 0; i < a.n && ok; i++) ok = tok_lowercase(a.v[i], &b);
        tok_ints tmp = a;
        a = b;
        b = tmp;
    }
    /* 5-6: words */
    size_t start = 0;
    for (size_t i = 0; i <= a.n && ok; i++) {
        int end_of_word = i == a.n || tok_is_bert_whitespace(a.v[i]) || tok_is_bert_punct(a.v[i]);
        if (!end_of_word) continue;
        ok = wordpiece_word(t, a.v + start, i - start, out);
        if (ok && i < a.n && tok_is_bert_punct(a.v[i])) ok = wordpiece_word(t, a.v + i, 1, out);
        start = i + 1;
    }
    tok_ints_free(&a);
    tok_ints_free(&b);
    return ok;
}
