/* tok_internal.h: what the tokenizer files share. Not a public header. */
#ifndef MREC_TOK_INTERNAL_H
#define MREC_TOK_INTERNAL_H

#include "mrec_tokenizer.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

/* ---- errors ---- */
mrec_tok_status tok_fail(mrec_tok_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- a growable buffer of int32 (code points or ids) ---- */
typedef struct {
    int32_t *v;
    size_t n, cap;
} tok_ints;

int tok_ints_push(tok_ints *a, int32_t x); /* 0 on out of memory */
int tok_ints_reserve(tok_ints *a, size_t cap);
void tok_ints_free(tok_ints *a);

/* ---- a growable byte string ---- */
typedef struct {
    char *s;
    size_t n, cap;
} tok_str;

int tok_str_append(tok_str *b, const char *s, size_t n);
int tok_str_put_cp(tok_str *b, int32_t cp); /* UTF-8 encode */
void tok_str_free(tok_str *b);

/* ---- unicode ---- */
/* Decodes UTF-8 into code points, each maximal invalid subsequence becoming
 * U+FFFD (as Python's decode(errors="replace")). */
int tok_utf8_decode(const char *s, size_t len, tok_ints *out);
int tok_utf8_valid(const char *s, size_t len); /* 1 if s is well-formed UTF-8 */
int tok_is_bert_whitespace(int32_t cp);   /* Rust char::is_whitespace, plus \t \n \r */
int tok_is_bert_control(int32_t cp);      /* Cc Cf Co except \t \n \r (unassigned code points stay) */
int tok_is_bert_punct(int32_t cp);        /* ASCII punctuation or Unicode P* */
int tok_is_cjk(int32_t cp);               /* the CJK ideograph blocks BERT pads with spaces */
int tok_is_letter(int32_t cp);            /* \p{L} */
int tok_is_number(int32_t cp);            /* \p{N} */
int tok_is_regex_space(int32_t cp);       /* \s of the regex engine Hugging Face uses */
int tok_is_mark_nonspacing(int32_t cp);   /* Mn */
/* Appends the full lowercase of cp (Rust char::to_lowercase: U+0130 gives two). */
int tok_lowercase(int32_t cp, tok_ints *out);
/* NFD or NFC of a code point sequence, in place (through utf8proc: canonical
 * ordering of combining marks, then composition for NFC). */
int tok_normalize(tok_ints *cps, int compose);

/* ---- string -> id map (open addressing) ---- */
typedef struct {
    char **keys;     /* NULL = empty slot */
    uint32_t *lens;
    int32_t *vals;
    size_t cap, n;
    size_t max_len;  /* the longest key: no longer string can be found */
} tok_map;

int tok_map_put(tok_map *m, const char *key, size_t len, int32_t val); /* copies key; 0 on OOM */
int32_t tok_map_get(const tok_map *m, const char *key, size_t len);     /* -1 if absent */
void tok_map_free(tok_map *m);
uint64_t tok_hash(const void *p, size_t n);

/* ---- the tokenizer ---- */
typedef struct {
    char *text;
    int32_t id;
    int lstrip, rstrip; /* the whitespace before / after belongs to the token (added_tokens) */
} tok_special;

typedef struct {
    uint64_t key;    /* (left id << 32) | right id; 0 with rank -1 = empty */
    int32_t rank, merged;
} tok_merge;

/* A trie over the Unigram pieces' bytes: node n's children are the edges
 * first[n] .. first[n] + count[n], sorted by label. */
typedef struct {
    int32_t *value;   /* per node: the id of the piece ending here, or -1 */
    uint32_t *first;  /* per node */
    uint16_t *count;  /* per node: at most 256 children */
    uint8_t *label;   /* per edge */
    uint32_t *child;  /* per edge */
    size_t n_nodes, n_edges;
} tok_trie;

/* One normalizer step of a Unigram tokenizer.json, in file order. */
typedef enum { TOK_NORM_PRECOMPILED, TOK_NORM_REPLACE } tok_norm_kind;

typedef struct {
    tok_norm_kind kind;
    /* Replace: a literal string (min_run 0), or one character repeated at
     * least min_run times (a regex "c{n,}" / "c+"), at most max_run (0: no limit). */
    int32_t *from, *to;
    size_t n_from, n_to;
    int min_run, max_run;
} tok_norm_step;

#define TOK_CACHE_LOCKS 64

typedef struct {
    char *word;      /* NULL = empty */
    int32_t *ids;
    int n;
} tok_cache_entry;

struct mrec_tokenizer {
    mrec_tok_kind kind;
    char **vocab;    /* id -> token */
    int n_vocab;
    tok_map ids;     /* token -> id */
    tok_special *specials; /* matched in raw text before anything else */
    int n_specials;
    int max_length;
    int32_t bos_id, eos_id, pad_id, unk_id; /* [CLS] [SEP] [PAD] [UNK] for WordPiece */
    /* How the specials frame a pair: BERT's [CLS] a [SEP] b [SEP] with b of
     * type 1, or RoBERTa's <s> a </s> </s> b </s> all of type 0 (CLIP, MPNet). */
    int pair_double_sep, pair_type_b;

    /* WordPiece */
    int lowercase, strip_accents, chinese_chars, clean_text, max_chars;
    char prefix[16]; /* "##" */

    /* BPE */
    int32_t byte_id[256];      /* id of each byte's printable character */
    int32_t byte_id_end[256];  /* ... with "</w>" */
    int32_t unicode_to_byte[324]; /* printable character -> byte, for decoding */
    tok_merge *merges;         /* hash table of (left, right) -> rank, merged id */
    size_t merges_cap;
    tok_cache_entry *cache;    /* word -> ids, replaced when full */
    size_t cache_cap, cache_n;
    /* the cache's slots guarded in stripes (slot % TOK_CACHE_LOCKS), so that threads encoding with one tokenizer
     * rarely wait on each other; the rest of a tokenizer is read-only once loaded */
    pthread_mutex_t cache_lock[TOK_CACHE_LOCKS];
    int cache_locks_ready;

    /* Unigram (SentencePiece, as Hugging Face's tokenizers runs it) */
    double *scores;            /* per id: the piece's log probability */
    double unk_score;          /* the lowest score minus 10 */
    int byte_fallback;         /* unknown pieces as <0xNN> tokens when all exist */
    int32_t byte_piece[256];   /* id of "<0xNN>", or -1 */
    tok_trie trie;
    tok_norm_step *norm;       /* the normalizer sequence */
    int n_norm;
    uint32_t *charsmap;        /* Precompiled: the double-array units ... */
    size_t charsmap_units;
    char *charsmap_text;       /* ... and the NUL-separated replacements */
    size_t charsmap_len;
    int metaspace;             /* Metaspace pre-tokenizer: 1 when present */
    int32_t meta_char;         /* its replacement for ' ' (U+2581) */
    int prepend;               /* 0 never, 1 always, 2 first (only the text's first piece) */
    int meta_split;            /* split before each replacement character */
};

/* Builds the byte <-> printable character tables (GPT-2's bytes_to_unicode). */
void tok_bytes_to_unicode(int32_t byte_to_cp[256]);
int tok_bpe_add_merge(mrec_tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t merged);
/* After the vocabulary is loaded: byte tables and the merge table. */
mrec_tok_status tok_bpe_finish(mrec_tokenizer *t, const char *src);

/* Appends the ids of one pre-split segment (no special tokens in it). */
int tok_wordpiece_segment(mrec_tokenizer *t, const int32_t *cps, size_t n, tok_ints *out);
int tok_bpe_segment(mrec_tokenizer *t, const int32_t *cps, size_t n, tok_ints *out);
/* at_start: the segment begins the text (Metaspace's "first" scheme). */
int tok_unigram_segment(mrec_tokenizer *t, const int32_t *cps, size_t n, int at_start, tok_ints *out);

/* Unigram set-up, after the vocabulary and scores: the piece trie, unk score, byte pieces. */
mrec_tok_status tok_unigram_finish(mrec_tokenizer *t, const char *src);
/* Decodes base64 and checks the Precompiled charsmap's layout. */
mrec_tok_status tok_charsmap_load(mrec_tokenizer *t, const char *base64, const char *src);
void tok_unigram_free(mrec_tokenizer *t);

#endif
