/* hf_config.c: checked reads of Hugging Face config.json for BERT/MPNet, ViT
 * and CLIP, and the JSON parse they (and every other JSON reader) go through.
 *
 * Every number that sizes a weight table or indexes one is checked here,
 * before a model allocates or reads anything; the model loaders then check
 * the tensors against the config. Defaults are those of transformers'
 * BertConfig / MPNetConfig, ViTConfig and CLIPTextConfig / CLIPVisionConfig.
 */
#include "mrec_hf_config.h"
#include "mrec_bert.h"
#include "mrec_clip.h"
#include "mrec_ops.h"
#include "mrec_vit.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* ---- parsing ---- */

static int line_at(const char *text, size_t pos) {
    int line = 1;
    for (size_t i = 0; i < pos; i++) line += text[i] == '\n';
    return line;
}

mrec_status mrec_json_parse(const char *text, size_t n, const char *label, cJSON **out) {
    *out = NULL;
    if (n == 0) return mrec_fail(MREC_ERR_FORMAT, "%s: empty file, expected JSON", label);
    /* cJSON recurses once per level; count the levels first, skipping strings. */
    int depth = 0, in_string = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = text[i];
        if (in_string) {
            if (ch == '\\') i++;
            else if (ch == '"') in_string = 0;
        } else if (ch == '"') {
            in_string = 1;
        } else if (ch == '{' || ch == '[') {
            if (++depth > MREC_JSON_MAX_DEPTH)
                return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: JSON nested more than %d levels deep", label,
                                 line_at(text, i), MREC_JSON_MAX_DEPTH);
        } else if (ch == '}' || ch == ']') {
            depth--;
        }
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!j) {
        size_t at = end && end >= text && end <= text + n ? (size_t)(end - text) : 0;
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: not valid JSON", label, line_at(text, at));
    }
    size_t at = (size_t)(end - text);
    while (at < n && (text[at] == ' ' || text[at] == '\t' || text[at] == '\n' || text[at] == '\r')) at++;
    if (at < n) {
        cJSON_Delete(j);
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: unexpected data after the JSON value", label, line_at(text, at));
    }
    *out = j;
    return MREC_OK;
}

/* ---- typed keys ---- */

/* How a value reads in a message: the number itself, or its JSON type. */
static const char *describe(const cJSON *v, char *buf, size_t cap) {
    if (!v) return "missing";
    if (cJSON_IsNumber(v)) {
        snprintf(buf, cap, "%.15g", v->valuedouble);
        return buf;
    }
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v) ? "true" : "false";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "not a value";
}

static const cJSON *key_of(const cJSON *obj, const char *key) {
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return v && !cJSON_IsNull(v) ? v : NULL;
}

mrec_status mrec_json_int(const cJSON *obj, const char *file, const char *where, const char *key, int required, int def,
                          int lo, int hi, int *out) {
    const cJSON *v = key_of(obj, key);
    char buf[64];
    if (!v && !required) {
        if (def < lo || def > hi)
            return mrec_fail(MREC_ERR_FORMAT, "%s: \"%s%s\" is absent and its default %d is outside [%d, %d]", file, where,
                             key, def, lo, hi);
        *out = def;
        return MREC_OK;
    }
    /* the comparisons are false for NaN, and inf is out of any range */
    if (!v || !cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) ||
        v->valuedouble != floor(v->valuedouble))
        return mrec_fail(MREC_ERR_FORMAT, "%s: \"%s%s\" is %s; expected an integer in [%d, %d]", file, where, key,
                         describe(v, buf, sizeof buf), lo, hi);
    *out = (int)v->valuedouble;
    return MREC_OK;
}

mrec_status mrec_json_positive(const cJSON *obj, const char *file, const char *where, const char *key, double def,
                               double hi, float *out) {
    const cJSON *v = key_of(obj, key);
    char buf[64];
    if (!v) {
        *out = (float)def;
        return MREC_OK;
    }
    /* a value that rounds to 0 as a float would divide by zero all the same */
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0 && v->valuedouble <= hi) || !((float)v->valuedouble > 0))
        return mrec_fail(MREC_ERR_FORMAT, "%s: \"%s%s\" is %s; expected a finite number in (0, %g]", file, where, key,
                         describe(v, buf, sizeof buf), hi);
    *out = (float)v->valuedouble;
    return MREC_OK;
}

mrec_status mrec_json_bool(const cJSON *obj, const char *file, const char *where, const char *key, int def, int *out) {
    const cJSON *v = key_of(obj, key);
    char buf[64];
    if (!v) {
        *out = def;
        return MREC_OK;
    }
    if (!cJSON_IsBool(v))
        return mrec_fail(MREC_ERR_FORMAT, "%s: \"%s%s\" is %s; expected true or false", file, where, key,
                         describe(v, buf, sizeof buf));
    *out = cJSON_IsTrue(v);
    return MREC_OK;
}

mrec_status mrec_json_string(const cJSON *obj, const char *file, const char *where, const char *key, const char *def,
                             const char **out) {
    const cJSON *v = key_of(obj, key);
    char buf[64];
    if (!v) {
        *out = def;
        return MREC_OK;
    }
    if (!cJSON_IsString(v))
        return mrec_fail(MREC_ERR_FORMAT, "%s: \"%s%s\" is %s; expected a string", file, where, key,
                         describe(v, buf, sizeof buf));
    *out = v->valuestring;
    return MREC_OK;
}

int mrec_act_from_hf(const char *name, mrec_act *act) {
    static const struct { const char *name; mrec_act act; } names[] = {
        {"gelu", MREC_ACT_GELU_ERF}, {"gelu_new", MREC_ACT_GELU_TANH}, {"gelu_pytorch_tanh", MREC_ACT_GELU_TANH},
        {"quick_gelu", MREC_ACT_QUICK_GELU}, {"relu", MREC_ACT_RELU}, {"silu", MREC_ACT_SILU}, {"swish", MREC_ACT_SILU},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i].name)) return *act = names[i].act, 1;
    return 0;
}

static mrec_status read_act(const cJSON *obj, const char *file, const char *where, const char *def, mrec_act *act) {
    const char *a;
    mrec_status st = mrec_json_string(obj, file, where, "hidden_act", def, &a);
    if (!st && !mrec_act_from_hf(a, act))
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: \"%shidden_act\" is \"%s\" (mrec knows " MREC_HF_ACT_NAMES ")", file,
                       where, a);
    return st;
}

typedef struct {
    const char *key;
    size_t off;
    int required, def, lo, hi;
} int_key;

static mrec_status read_ints(void *cfg, const cJSON *obj, const char *file, const char *where, const int_key *keys,
                             size_t n) {
    mrec_status st = MREC_OK;
    for (size_t i = 0; i < n && !st; i++)
        st = mrec_json_int(obj, file, where, keys[i].key, keys[i].required, keys[i].def, keys[i].lo, keys[i].hi,
                           (int *)((char *)cfg + keys[i].off));
    return st;
}

static mrec_status check_heads(const char *file, const char *where, int hidden, int heads) {
    if (hidden % heads)
        return mrec_fail(MREC_ERR_FORMAT, "%s: \"%shidden_size\" %d is not a multiple of \"%snum_attention_heads\" %d",
                         file, where, hidden, where, heads);
    return MREC_OK;
}

/* ---- BERT / MPNet ---- */

mrec_status mrec_bert_config_parse(mrec_bert_config *c, const cJSON *j, const char *file) {
    memset(c, 0, sizeof *c);
    static const int_key ints[] = {
        {"vocab_size", offsetof(mrec_bert_config, vocab_size), 1, 0, 1, 10000000},
        {"hidden_size", offsetof(mrec_bert_config, hidden), 1, 0, 1, 65536},
        {"num_hidden_layers", offsetof(mrec_bert_config, layers), 1, 0, 1, 512},
        {"num_attention_heads", offsetof(mrec_bert_config, heads), 1, 0, 1, 1024},
        {"intermediate_size", offsetof(mrec_bert_config, intermediate), 1, 0, 1, 1 << 20},
        {"max_position_embeddings", offsetof(mrec_bert_config, max_positions), 1, 0, 1, 1 << 20},
        {"type_vocab_size", offsetof(mrec_bert_config, type_vocab), 0, 2, 1, 1024},
    };
    mrec_status st = read_ints(c, j, file, "", ints, sizeof ints / sizeof ints[0]);
    if (!st) st = check_heads(file, "", c->hidden, c->heads);
    if (!st) st = mrec_json_positive(j, file, "", "layer_norm_eps", 1e-12, 1.0, &c->layer_norm_eps);
    if (!st) st = read_act(j, file, "", "gelu", &c->act);
    const char *type = "bert", *pos_type = "absolute";
    if (!st) st = mrec_json_string(j, file, "", "model_type", "bert", &type);
    /* Other RoBERTa-style models also offset positions by pad_token_id, but
     * under names of their own; reading them as BERT would give wrong vectors
     * without a word, so only these. AltCLIP's text tower is an XLM-R. */
    if (!st && strcmp(type, "bert") && strcmp(type, "mpnet") && strcmp(type, "align_text_model") && strcmp(type, "altclip_text_model"))
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: \"model_type\" is \"%s\"; the text encoder reads bert, mpnet, align and altclip",
                       file, type);
    c->mpnet = !st && !strcmp(type, "mpnet");
    c->roberta = !st && !strcmp(type, "altclip_text_model");
    int pad_positions = c->mpnet || c->roberta;
    if (!st) st = mrec_json_int(j, file, "", "pad_token_id", 0, pad_positions ? 1 : 0, 0, c->vocab_size - 1, &c->pad_token_id);
    /* MPNet and RoBERTa number real tokens pad_token_id + 1, + 2, ...: the
     * first one must still have a row in the position table. */
    if (!st && pad_positions && c->pad_token_id > c->max_positions - 2)
        st = mrec_fail(MREC_ERR_FORMAT,
                       "%s: \"pad_token_id\" is %d; %s numbers positions from it + 1, so it must be at most "
                       "\"max_position_embeddings\" %d - 2", file, c->pad_token_id, c->mpnet ? "MPNet" : "RoBERTa", c->max_positions);
    /* AltCLIP: the transformation's width (Linear hidden -> project_dim) */
    if (!st && c->roberta) st = mrec_json_int(j, file, "", "project_dim", 0, 768, 1, 65536, &c->project_dim);
    /* buckets / 4 exact distances must stay below MPNet's max distance (128) */
    if (!st && c->mpnet)
        st = mrec_json_int(j, file, "", "relative_attention_num_buckets", 0, 32, 4, 256, &c->rel_buckets);
    if (!st) st = mrec_json_string(j, file, "", "position_embedding_type", "absolute", &pos_type);
    if (!st && strcmp(pos_type, "absolute"))
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: \"position_embedding_type\" is \"%s\" (mrec implements absolute)", file,
                       pos_type);
    return st;
}

/* ---- ViT ---- */

mrec_status mrec_vit_config_parse(mrec_vit_config *c, const cJSON *j, const char *file) {
    memset(c, 0, sizeof *c);
    static const int_key ints[] = {
        {"image_size", offsetof(mrec_vit_config, image_size), 0, 224, 1, 8192},
        {"patch_size", offsetof(mrec_vit_config, patch_size), 0, 16, 1, 1024},
        {"num_channels", offsetof(mrec_vit_config, channels), 0, 3, 1, 16},
        {"hidden_size", offsetof(mrec_vit_config, hidden), 0, 768, 1, 65536},
        {"num_hidden_layers", offsetof(mrec_vit_config, layers), 0, 12, 1, 512},
        {"num_attention_heads", offsetof(mrec_vit_config, heads), 0, 12, 1, 1024},
        {"intermediate_size", offsetof(mrec_vit_config, intermediate), 0, 3072, 1, 1 << 20},
    };
    mrec_status st = read_ints(c, j, file, "", ints, sizeof ints / sizeof ints[0]);
    if (!st) st = mrec_json_int(j, file, "", "pooler_output_size", 0, c->hidden, 1, 1 << 20, &c->pooler_size);
    if (!st) st = check_heads(file, "", c->hidden, c->heads);
    if (!st && c->image_size % c->patch_size)
        st = mrec_fail(MREC_ERR_FORMAT, "%s: \"image_size\" %d is not a multiple of \"patch_size\" %d", file,
                       c->image_size, c->patch_size);
    if (!st) st = mrec_json_positive(j, file, "", "layer_norm_eps", 1e-12, 1.0, &c->layer_norm_eps);
    if (!st) st = mrec_json_bool(j, file, "", "qkv_bias", 1, &c->qkv_bias);
    if (!st) st = read_act(j, file, "", "gelu", &c->act);
    const char *pact = "tanh";
    if (!st) st = mrec_json_string(j, file, "", "pooler_act", "tanh", &pact);
    if (!st && strcmp(pact, "tanh"))
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: \"pooler_act\" is \"%s\" (mrec implements tanh)", file, pact);
    return st;
}

/* ---- CLIP ---- */

static mrec_status read_tower(mrec_clip_tower_config *c, const cJSON *root, const char *file, int vision) {
    const char *section = vision ? "vision_config" : "text_config", *where = vision ? "vision_config." : "text_config.";
    const cJSON *j = key_of(root, section);
    char buf[64];
    if (j && !cJSON_IsObject(j))
        return mrec_fail(MREC_ERR_FORMAT, "%s: \"%s\" is %s; expected an object", file, section,
                         describe(j, buf, sizeof buf));
    static const int_key text[] = {
        {"hidden_size", offsetof(mrec_clip_tower_config, hidden), 0, 512, 1, 65536},
        {"num_hidden_layers", offsetof(mrec_clip_tower_config, layers), 0, 12, 1, 512},
        {"num_attention_heads", offsetof(mrec_clip_tower_config, heads), 0, 8, 1, 1024},
        {"intermediate_size", offsetof(mrec_clip_tower_config, intermediate), 0, 2048, 1, 1 << 20},
        {"vocab_size", offsetof(mrec_clip_tower_config, vocab_size), 0, 49408, 1, 10000000},
        {"max_position_embeddings", offsetof(mrec_clip_tower_config, max_positions), 0, 77, 1, 1 << 16},
    };
    static const int_key image[] = {
        {"hidden_size", offsetof(mrec_clip_tower_config, hidden), 0, 768, 1, 65536},
        {"num_hidden_layers", offsetof(mrec_clip_tower_config, layers), 0, 12, 1, 512},
        {"num_attention_heads", offsetof(mrec_clip_tower_config, heads), 0, 12, 1, 1024},
        {"intermediate_size", offsetof(mrec_clip_tower_config, intermediate), 0, 3072, 1, 1 << 20},
        {"image_size", offsetof(mrec_clip_tower_config, image_size), 0, 224, 1, 8192},
        {"patch_size", offsetof(mrec_clip_tower_config, patch_size), 0, 32, 1, 1024},
        {"num_channels", offsetof(mrec_clip_tower_config, channels), 0, 3, 1, 16},
    };
    mrec_status st = vision ? read_ints(c, j, file, where, image, sizeof image / sizeof image[0])
                            : read_ints(c, j, file, where, text, sizeof text / sizeof text[0]);
    if (!st) st = check_heads(file, where, c->hidden, c->heads);
    /* the pooled row is found by comparing ids with it, so it must be one */
    if (!st && !vision)
        st = mrec_json_int(j, file, where, "eos_token_id", 0, 49407, 0, c->vocab_size - 1, &c->eos_token_id);
    if (!st && vision && c->patch_size > c->image_size)
        st = mrec_fail(MREC_ERR_FORMAT, "%s: \"vision_config.patch_size\" %d exceeds \"vision_config.image_size\" %d", file,
                       c->patch_size, c->image_size);
    if (!st) st = mrec_json_positive(j, file, where, "layer_norm_eps", 1e-5, 1.0, &c->layer_norm_eps);
    if (!st) st = read_act(j, file, where, "quick_gelu", &c->act);
    return st;
}

mrec_status mrec_clip_config_parse(mrec_clip_tower_config *vision, mrec_clip_tower_config *text, int *projection_dim,
                                   const cJSON *j, const char *file) {
    memset(vision, 0, sizeof *vision);
    memset(text, 0, sizeof *text);
    const char *type = "clip";
    mrec_status st = mrec_json_string(j, file, "", "model_type", "clip", &type);
    int altclip = !st && !strcmp(type, "altclip");
    if (!st && strcmp(type, "clip") && !altclip)
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: \"model_type\" is \"%s\", not clip or altclip", file, type);
    if (!st) st = mrec_json_int(j, file, "", "projection_dim", 0, altclip ? 768 : 512, 1, 65536, projection_dim);
    if (!st) st = read_tower(vision, j, file, 1);
    /* AltCLIP's text tower is an XLM-R, read by the BERT family (mrec_bert.h): left empty here */
    if (!st && !altclip) st = read_tower(text, j, file, 0);
    return st;
}
