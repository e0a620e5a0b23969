/* bpe.c: CLIP's byte-level BPE, as Hugging Face's CLIPTokenizerFast does it:
 *
 *   1. NFC; every run of whitespace -> one space; lowercase
 *   2. pieces, by CLIP's pattern: 's 't 're 've 'm 'll 'd | letter runs |
 *      one digit | runs of anything else but whitespace (whitespace goes)
 *   3. each piece's UTF-8 bytes -> printable characters (GPT-2's table), the
 *      last one carrying "</w>"
 *   4. merge the adjacent pair of lowest rank (the leftmost of equals)
 *      until no pair has a rank; the symbols left are the ids.
 * Symbols are kept as vocabulary ids and merges as (left id, right id) ->
 * (rank, merged id), so merging compares integers, not strings. Finished
 * pieces are cached: product text repeats words a lot.
 */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

#define CACHE_SLOTS 65536 /* a direct-mapped cache of pieces */

void tok_bytes_to_unicode(int32_t byte_to_cp[256]) {
    /* Printable Latin-1 bytes map to themselves; the other 68 bytes to
     * U+0100.. in byte order, so every byte is a visible character. */
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        byte_to_cp[b] = printable ? b : 256 + n++;
    }
}

static size_t merge_slot(const mrec_tokenizer *t, uint64_t key) {
    return (size_t)(tok_hash(&key, sizeof key) & (t->merges_cap - 1));
}

int tok_bpe_add_merge(mrec_tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t merged) {
    if (2 * (size_t)(rank + 1) >= t->merges_cap) {
        size_t cap = t->merges_cap ? t->merges_cap * 2 : 1 << 16;
        tok_merge *m = malloc(cap * sizeof *m);
        if (!m) return 0;
        for (size_t i = 0; i < cap; i++) m[i].rank = -1;
        tok_merge *old = t->merges;
        size_t old_cap = t->merges_cap;
        t->merges = m, t->merges_cap = cap;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].rank >= 0) {
                size_t at = merge_slot(t, old[i].key);
                while (m[at].rank >= 0) at = (at + 1) & (cap - 1);
                m[at] = old[i];
            }
        free(old);
    }
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t at = merge_slot(t, key);
    while (t->merges[at].rank >= 0) {
        if (t->merges[at].key == key) return 1; /* the first (best) rank stays */
        at = (at + 1) & (t->merges_cap - 1);
    }
    t->merges[at] = (tok_merge){key, rank, merged};
    return 1;
}

static const tok_merge *find_merge(const mrec_tokenizer *t, int32_t left, int32_t right) {
    if (!t->merges_cap) return NULL;
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t at = merge_slot(t, key);
    while (t->merges[at].rank >= 0) {
        if (t->merges[at].key == key) return &t->merges[at];
        at = (at + 1) & (t->merges_cap - 1);
    }
    return NULL;
}

mrec_tok_status tok_bpe_finish(mrec_tokenizer *t, const char *src) {
    int32_t cps[256];
    tok_bytes_to_unicode(cps);
    for (int i = 0; i < 324; i++) t->unicode_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        tok_str s = {0};
        if (!tok_str_put_cp(&s, cps[b])) return tok_fail(MREC_TOK_ERR_NOMEM, "%s: byte table", src);
        t->byte_id[b] = tok_map_get(&t->ids, s.s, s.n);
        tok_str_append(&s, "</w>", 4);
        t->byte_id_end[b] = tok_map_get(&t->ids, s.s, s.n);
        tok_str_free(&s);
        if (t->byte_id[b] < 0 || t->byte_id_end[b] < 0)
            return tok_fail(MREC_TOK_ERR_FORMAT, "%s: the vocabulary lacks the token for byte 0x%02x (with and without </w>)",
                            src, b);
        t->unicode_to_byte[cps[b]] = b;
    }
    t->cache = calloc(CACHE_SLOTS, sizeof *t->cache);
    if (!t->cache) return tok_fail(MREC_TOK_ERR_NOMEM, "%s: cache", src);
    t->cache_cap = CACHE_SLOTS;
    for (int i = 0; i < TOK_CACHE_LOCKS; i++) pthread_mutex_init(&t->cache_lock[i], NULL);
    t->cache_locks_ready = 1;
    return MREC_TOK_OK;
}

/* A candidate merge: the pair starting at symbol `pos`, as it was when pushed
 * (left, right ids). The heap pops the lowest rank, leftmost first, as
 * Hugging Face's BPE does; a popped pair whose symbols changed since is
 * stale and skipped. */
typedef struct {
    int32_t rank, pos, left, right, merged;
} bpe_pair;

static int pair_before(const bpe_pair *a, const bpe_pair *b) { return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos; }

static void heap_push(bpe_pair *h, size_t *n, bpe_pair p) {
    size_t i = (*n)++;
    while (i > 0 && pair_before(&p, &h[(i - 1) / 2])) h[i] = h[(i - 1) / 2], i = (i - 1) / 2;
    h[i] = p;
}

static bpe_pair heap_pop(bpe_pair *h, size_t *n) {
    bpe_pair top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && pair_before(&h[c + 1], &h[c])) c++;
        if (!pair_before(&h[c], &last)) break;
        h[i] = h[c], i = c;
    }
    if (*n) h[i] = last;
    return top;
}

static void push_if_merge(const mrec_tokenizer *t, bpe_pair *h, size_t *n, const int32_t *id, int32_t pos, int32_t next) {
    if (pos < 0 || next < 0) return;
    const tok_merge *m = find_merge(t, id[pos], id[next]);
    if (m) heap_push(h, n, (bpe_pair){m->rank, pos, id[pos], id[next], m->merged});
}

/* Merges the byte symbols of one piece; appends the ids. The symbols are a
 * linked list over their first byte's position and the candidate pairs a
 * heap, so a piece of n bytes costs O(n log n), however long (a URL or a
 * base64 blob in a description is one piece). */
static int bpe_piece(mrec_tokenizer *t, const char *bytes, size_t n, tok_ints *out) {
    size_t slot = (size_t)(tok_hash(bytes, n) & (t->cache_cap - 1));
    tok_cache_entry *e = &t->cache[slot];
    pthread_mutex_t *lock = &t->cache_lock[slot % TOK_CACHE_LOCKS];
    pthread_mutex_lock(lock);
    if (e->word && strlen(e->word) == n && memcmp(e->word, bytes, n) == 0) {
        int ok = 1;
        for (int i = 0; i < e->n && ok; i++) ok = tok_ints_push(out, e->ids[i]);
        pthread_mutex_unlock(lock);
        return ok;
    }
    pthread_mutex_unlock(lock);
    if (n > (size_t)INT32_MAX / 4) return 0;
    int32_t *id = malloc(sizeof *id * (n + 1)), *next = malloc(sizeof *next * (n + 1)), *prev = malloc(sizeof *prev * (n + 1));
    /* each merge pushes at most two pairs: n - 1 at the start, 2 per merge after, fewer than 3n in all */
    bpe_pair *heap = malloc(sizeof *heap * (3 * n + 1));
    int32_t *ids = malloc(sizeof *ids * (n + 1));
    char *word = malloc(n + 1);
    int ok = id && next && prev && heap && ids && word;
    size_t n_heap = 0, n_ids = 0;
    for (size_t i = 0; ok && i < n; i++) {
        id[i] = (i + 1 == n ? t->byte_id_end : t->byte_id)[(uint8_t)bytes[i]];
        prev[i] = (int32_t)i - 1, next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; ok && i + 1 < n; i++) push_if_merge(t, heap, &n_heap, id, (int32_t)i, (int32_t)i + 1);
    while (ok && n_heap) {
        bpe_pair p = heap_pop(heap, &n_heap);
        int32_t q = next[p.pos];
        if (id[p.pos] != p.left || q < 0 || id[q] != p.right) continue; /* stale */
        id[p.pos] = p.merged, id[q] = -1; /* q joins p.pos */
        next[p.pos] = next[q];
        if (next[q] >= 0) prev[next[q]] = p.pos;
        push_if_merge(t, heap, &n_heap, id, prev[p.pos], p.pos);
        push_if_merge(t, heap, &n_heap, id, p.pos, next[p.pos]);
    }
    for (int32_t i = ok && n ? 0 : -1; i >= 0; i = next[i]) ids[n_ids++] = id[i];
    for (size_t i = 0; i < n_ids && ok; i++) ok = tok_ints_push(out, ids[i]);
    /* Remember it (replacing whatever shared the slot). */
    if (ok && memchr(bytes, 0, n) == NULL) {
        memcpy(word, bytes, n);
        word[n] = '\0';
        pthread_mutex_lock(lock);
        free(e->word), free(e->ids);
        e->word = word, e->ids = ids, e->n = (int)n_ids;
        pthread_mutex_unlock(lock);
        word = NULL, ids = NULL;
    }
    free(id), free(next), free(prev), free(heap), free(ids), free(word);
    return ok;
}

/* CLIP's contractions: 's 't 're 've 'm 'll 'd (text is lowercase by now). */
static size_t contraction(const int32_t *c, size_t n) {
    if (n < 2 || c[0] != '\'') return 0;
    if (c[1] == 's' || c[1] == 't' || c[1] == 'm' || c[1] == 'd') return 2;
    if (n >= 3 && ((c[1] == 'r' && c[2] == 'e') || (c[1] == 'v' && c[2] == 'e') || (c[1] == 'l' && c[2] == 'l')))
        return 3;
    return 0;
}

static size_t literal(const int32_t *c, size_t n, const char *lit) {
    size_t k = strlen(lit);
    if (n < k) return 0;
    for (size_t i = 0; i < k; i++)
        if (c[i] != (unsigned char)lit[i]) return 0;
    return k;
}

int tok_bpe_segment(mrec_tokenizer *t, const int32_t *in, size_t n, tok_ints *out) {
    tok_ints a = {0}, b = {0};
    tok_str piece = {0};
    int ok = tok_ints_reserve(&a, n) && tok_ints_reserve(&b, n + 8);
    if (ok) memcpy(a.v, in, n * sizeof *in), a.n = n;
    ok = ok && tok_normalize(&a, 1);
    /* whitespace runs -> ' ', then lowercase */
    for (size_t i = 0; i < a.n && ok; i++) {
        if (tok_is_regex_space(a.v[i])) {
            if (i == 0 || !tok_is_regex_space(a.v[i - 1])) ok = tok_ints_push(&b, ' ');
        } else {
            ok = tok_lowercase(a.v[i], &b);
        }
    }
    const int32_t *c = b.v;
    size_t i = 0;
    while (i < b.n && ok) {
        size_t len = 0, rest = b.n - i;
        if (tok_is_regex_space(c[i])) {
            i++;
            continue;
        }
        if ((len = literal(c + i, rest, "<|startoftext|>")) || (len = literal(c + i, rest, "<|endoftext|>")) ||
            (len = contraction(c + i, rest))) {
        } else if (tok_is_letter(c[i])) {
            while (len < rest && tok_is_letter(c[i + len])) len++;
        } else if (tok_is_number(c[i])) {
            len = 1;
        } else {
            while (len < rest && !tok_is_regex_space(c[i + len]) && !tok_is_letter(c[i + len]) &&
                   !tok_is_number(c[i + len]))
                len++;
        }
        piece.n = 0;
        for (size_t k = 0; k < len && ok; k++) ok = tok_str_put_cp(&piece, c[i + k]);
        ok = ok && bpe_piece(t, piece.s, piece.n, out);
        i += len;
    }
    tok_ints_free(&a);
    tok_ints_free(&b);
    tok_str_free(&piece);
    return ok;
}
