/* mrec_hf_config.h: Hugging Face config.json, read as hostile input.
 *
 * A config.json decides how large every weight table is and which rows a
 * forward pass reads, so each number is checked before it is used: integers
 * must be JSON numbers with no fraction and inside a range (2.5, 1e300 and
 * "12" are refused), floats finite and inside a range, strings and booleans
 * of their type. A key that is absent or null takes Hugging Face's default,
 * which is range-checked too. Errors name the file, the key (with its
 * section, e.g. "text_config.vocab_size"), the value and the range expected.
 *
 * The BERT/MPNet, ViT and CLIP readers live here, apart from the forward
 * passes, so that they can be driven from memory by a fuzzer.
 */
#ifndef MREC_HF_CONFIG_H
#define MREC_HF_CONFIG_H

#include <stddef.h>

#include "../kernels/mrec_status.h"

struct cJSON;

/* Deeper nesting than this is refused before cJSON (which recurses) sees
 * it; Hugging Face's configs and tokenizers nest a handful of levels. */
#define MREC_JSON_MAX_DEPTH 256

/* Parses JSON text of n bytes (no terminating NUL needed). Refuses nesting
 * past MREC_JSON_MAX_DEPTH and anything but whitespace after the value;
 * errors name label and the line. Free *out with cJSON_Delete. */
mrec_status mrec_json_parse(const char *text, size_t n, const char *label, struct cJSON **out);

/* Typed reads of obj[key] (obj may be NULL: every key absent). `where` is
 * the section printed before the key ("" or "text_config."). */
mrec_status mrec_json_int(const struct cJSON *obj, const char *file, const char *where, const char *key,
                          int required, int def, int lo, int hi, int *out);
/* A finite number in (lo, hi] that stays non-zero as a float (an eps). */
mrec_status mrec_json_positive(const struct cJSON *obj, const char *file, const char *where, const char *key,
                               double def, double hi, float *out);
mrec_status mrec_json_bool(const struct cJSON *obj, const char *file, const char *where, const char *key, int def,
                           int *out);
/* *out points into obj (or is def). */
mrec_status mrec_json_string(const struct cJSON *obj, const char *file, const char *where, const char *key,
                             const char *def, const char **out);

/* The model readers, mrec_bert_config_parse, mrec_vit_config_parse and
 * mrec_clip_config_parse, are declared in their models' headers. */

#endif
