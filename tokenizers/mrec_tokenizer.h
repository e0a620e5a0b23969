/* mrec_tokenizer.h: text to token ids, the same ids as Hugging Face.
 *
 * Two families:
 *   WordPiece, as BertTokenizerFast does it (BERT, MiniLM, MPNet, sentence-transformers):
 *     clean text, pad CJK characters, strip accents and lowercase (uncased
 *     models), split on whitespace and punctuation, greedy longest match with
 *     "##" continuations, [CLS] a [SEP] (b [SEP]); or framed as a
 *     tokenizer.json's post_processor says (BertProcessing, RobertaProcessing:
 *     <s> a </s> (</s> b </s>), or a TemplateProcessing of those shapes),
 *     padded with its padding's token.
 *   Byte-level BPE, as CLIPTokenizerFast does it: NFC, whitespace runs to
 *     one space, lowercase, CLIP's pre-tokenization (contractions, letter
 *     runs, single digits, other runs), bytes mapped to printable characters,
 *     merges applied by rank with "</w>" ending each word, <|startoftext|> a
 *     <|endoftext|>, context 77.
 *   SentencePiece Unigram, as Hugging Face runs a tokenizer.json of model
 *     "Unigram" (XLM-R, AltCLIP's text tower): the file's normalizers
 *     (Precompiled character map, Replace), Metaspace, Viterbi over the
 *     piece scores (unknown characters min score - 10, fused; byte
 *     fallback when the file says so), framed as its post_processor says.
 * ftfy's text repairs and HTML unescaping in OpenAI's original CLIP code are
 * not done: Hugging Face's fast tokenizer does not do them either, and its
 * ids are the ones models in the wild were fed.
 *
 * Loads vocab.txt (+ tokenizer_config.json), tokenizer.json, vocab.json +
 * merges.txt, CLIP's bpe_simple_vocab_16e6.txt.gz, or a folder holding one.
 * Files must be regular files (a FIFO or device is refused, never waited
 * on); a vocabulary must give each token one id and each id one token of
 * valid UTF-8; JSON may nest at most 64 levels.
 *
 * Unicode: WordPiece removes control, format and private-use characters
 * (Cc Cf Co) and keeps unassigned code points and noncharacters, which make
 * their word [UNK], as Hugging Face's tokenizers do. NFC and NFD are full
 * (utf8proc): stacked combining marks are put in canonical order first.
 * Hugging Face classifies characters with older Unicode tables than
 * utf8proc's; characters assigned since (Unicode 9 onward) as format
 * controls, punctuation or marks may tokenize differently.
 *
 * Text is UTF-8. Invalid UTF-8 is decoded as Python's bytes.decode(errors=
 * "replace") does: each maximal invalid subsequence becomes U+FFFD, which
 * WordPiece then drops (as BERT drops U+FFFD) and BPE encodes as its bytes.
 *
 * Added tokens (a tokenizer.json's added_tokens) are matched in the raw text first;
 * their lstrip / rstrip take the whitespace before / after them.
 *
 * A loaded tokenizer may encode from several threads at once: it is read-only
 * but for BPE's cache of words it has split, whose slots are locked.
 *
 * Errors: functions return an mrec_tok_status; mrec_tok_error_detail() names
 * the file, key or line. This module depends on no other part of mrec.
 */
#ifndef MREC_TOKENIZER_H
#define MREC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    MREC_TOK_OK = 0,
    MREC_TOK_ERR_NOMEM,
    MREC_TOK_ERR_IO,          /* a file cannot be opened or read */
    MREC_TOK_ERR_FORMAT,      /* a vocabulary / merges / tokenizer.json is malformed */
    MREC_TOK_ERR_UNSUPPORTED, /* valid, but a model type or setting mrec does not implement */
    MREC_TOK_ERR_ARG,         /* a bad argument (an id out of range, max_length too small) */
    MREC_TOK_ERR_SPACE,       /* the caller's buffer is too small; the count says how much is needed */
} mrec_tok_status;

const char *mrec_tok_strerror(mrec_tok_status status);
const char *mrec_tok_error_detail(void);

typedef enum { MREC_TOK_WORDPIECE, MREC_TOK_BPE, MREC_TOK_UNIGRAM } mrec_tok_kind;

typedef struct mrec_tokenizer mrec_tokenizer;

mrec_tok_status mrec_tokenizer_load(mrec_tokenizer **out, const char *path);
void mrec_tokenizer_free(mrec_tokenizer *tok);

mrec_tok_kind mrec_tokenizer_kind(const mrec_tokenizer *tok);
int mrec_tokenizer_vocab_size(const mrec_tokenizer *tok);
/* The token string of an id, or NULL if out of range. */
const char *mrec_tokenizer_token(const mrec_tokenizer *tok, int32_t id);
/* The id of a token string, or -1. */
int32_t mrec_tokenizer_id(const mrec_tokenizer *tok, const char *token);
/* The default context: 512 for BERT-family and Unigram (or the file's), 77 for CLIP. */
int mrec_tokenizer_max_length(const mrec_tokenizer *tok);
int32_t mrec_tokenizer_pad_id(const mrec_tokenizer *tok);

/* The ids of one text, without special tokens, into ids[0 .. cap). *n_ids
 * receives the count even when it exceeds cap (then MREC_TOK_ERR_SPACE and
 * ids holds the first cap). */
mrec_tok_status mrec_tokenize(mrec_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                              size_t cap, size_t *n_ids);

typedef struct {
    int max_length;   /* with truncation / padding; 0 = the tokenizer's default */
    int truncation;   /* cut to max_length; pairs lose tokens from the longer side first */
    int padding;      /* pad to max_length with the pad id, attention mask 0 */
    int add_special;  /* [CLS] .. [SEP] / <|startoftext|> .. <|endoftext|> */
} mrec_tok_options;

mrec_tok_options mrec_tok_defaults(void);

/* One text, or a pair (b may be NULL), into ids / type_ids / attention_mask
 * (any may be NULL except ids), each of room cap. *len receives the encoded
 * length (as with mrec_tokenize, even past cap). */
mrec_tok_status mrec_tokenizer_encode(mrec_tokenizer *tok, const char *a, const char *b,
                                      const mrec_tok_options *opt, int32_t *ids, int32_t *type_ids,
                                      int32_t *attention_mask, size_t cap, size_t *len);

/* n texts (and pairs, or NULL) into row-major (n, L) arrays padded with the
 * pad id and mask 0 up to L; lengths (n) receives each row's real length.
 * Rows longer than L are an error unless opt->truncation and L >= max_length. */
mrec_tok_status mrec_tokenizer_encode_batch(mrec_tokenizer *tok, const char *const *texts,
                                            const char *const *pairs, int n,
                                            const mrec_tok_options *opt, int L, int32_t *ids,
                                            int32_t *type_ids, int32_t *attention_mask,
                                            int32_t *lengths);

/* ids back to text (NUL-terminated in buf; *len without the NUL, even past cap).
 * WordPiece joins words with spaces and glues "##" pieces; BPE maps bytes
 * back and turns "</w>" into spaces. Special tokens are skipped if asked. */
mrec_tok_status mrec_tokenizer_decode(const mrec_tokenizer *tok, const int32_t *ids, size_t n,
                                      int skip_special, char *buf, size_t cap, size_t *len);

#endif
