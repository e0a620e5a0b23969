/* test_bad_nn.c: hostile model folders and weight files.
 *
 * Each case copies a tiny fixture model (its config.json edited, its
 * model.safetensors linked or patched) into a fresh folder, or builds a
 * safetensors file byte by byte, and checks that loading it fails with the
 * exact status and a message naming the file and the key or tensor. Nothing
 * may crash, hang or load: a config.json number out of range (a negative
 * or huge pad_token_id, a fraction, 1e300, an eps of 0), JSON nested
 * 100,000 deep, a FIFO or a device instead of a file, a NaN in a weight.
 * A few in-range edits must still load, so the checks are not too strict.
 */
#include "harness.h"

#include "../nn/mrec_bert.h"
#include "../nn/mrec_clip.h"
#include "../nn/mrec_resnet.h"
#include "../nn/mrec_safetensors.h"
#include "../nn/mrec_vit.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIX "tests/fixtures/"

static char tmpdir[] = "/tmp/mrec_test_bad_nn_XXXXXX";
static int n_dirs;

typedef enum { BERT, VIT, CLIP } kind;

/* A setup step that must work for the case to mean anything. */
#define NEED(cond)                                                  \
    do {                                                            \
        if (!t_check((cond) != 0, "setup: %s", #cond)) return;      \
    } while (0)

static char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0', *size = (size_t)n;
    return buf;
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* A new empty folder under tmpdir; its path in buf. */
static const char *new_dir(char *buf, size_t cap) {
    snprintf(buf, cap, "%s/case%d", tmpdir, n_dirs++);
    mkdir(buf, 0700);
    return buf;
}

/* dir/model.safetensors -> the fixture's, by an absolute link. */
static int link_weights(const char *dir, const char *fixture) {
    char src[PATH_MAX], from[PATH_MAX + 32], dst[512];
    snprintf(from, sizeof from, "%s/model.safetensors", fixture);
    if (!realpath(from, src)) return 0;
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    return symlink(src, dst) == 0;
}

/* The fixture's config.json with section.key set to raw JSON text (or
 * removed when raw is NULL), written to dir/config.json. */
static int edit_config(const char *dir, const char *fixture, const char *section, const char *key, const char *raw) {
    char path[512];
    size_t n;
    snprintf(path, sizeof path, "%s/config.json", fixture);
    char *text = slurp(path, &n);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!root) return 0;
    cJSON *obj = section ? cJSON_GetObjectItemCaseSensitive(root, section) : root;
    int ok = obj != NULL;
    if (ok) {
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
        if (raw) ok = cJSON_AddRawToObject(obj, key, raw) != NULL;
    }
    char *out = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    snprintf(path, sizeof path, "%s/config.json", dir);
    ok = out && write_file(path, out, strlen(out));
    free(out);
    return ok;
}

static mrec_status load(kind k, const char *dir) {
    mrec_status st;
    if (k == BERT) {
        mrec_bert m;
        if (!(st = mrec_bert_load(&m, dir))) mrec_bert_free(&m);
    } else if (k == VIT) {
        mrec_vit m;
        if (!(st = mrec_vit_load(&m, dir))) mrec_vit_free(&m);
    } else {
        mrec_clip m;
        if (!(st = mrec_clip_load(&m, dir, MREC_CLIP_BOTH))) mrec_clip_free(&m);
    }
    return st;
}

/* The detail must name every one of the (up to three) strings given. */
static void expect_mentions(const char *what, const char *a, const char *b, const char *c) {
    const char *d = mrec_error_detail();
    t_check((!a || strstr(d, a)) && (!b || strstr(d, b)) && (!c || strstr(d, c)),
            "%s: the message names \"%s\"%s%s%s%s: %s", what, a ? a : "", b ? ", \"" : "", b ? b : "", c ? "\", \"" : "",
            c ? c : "", d);
}

typedef struct {
    kind k;
    const char *fixture, *section, *key, *raw;
    mrec_status want;
    const char *mention; /* besides the file; NULL: section.key */
} config_case;

static void config_cases(void) {
    static const config_case cases[] = {
        /* BERT: sizes */
        {BERT, FIX "tiny_bert", NULL, "vocab_size", "2.5", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "vocab_size", "1e300", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "vocab_size", "-1", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "vocab_size", "0", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "vocab_size", "\"99\"", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "vocab_size", NULL, MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "hidden_size", "33", MREC_ERR_FORMAT, "num_attention_heads"},
        {BERT, FIX "tiny_bert", NULL, "hidden_size", "1e999", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "num_attention_heads", "0", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "num_hidden_layers", "100000", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "num_hidden_layers", "2.000001", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "intermediate_size", "1048577", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "max_position_embeddings", "0", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "type_vocab_size", "2000", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "type_vocab_size", "[2]", MREC_ERR_FORMAT, NULL},
        /* in range but not what the file holds: a tensor is named, nothing huge is allocated */
        {BERT, FIX "tiny_bert", NULL, "vocab_size", "10000000", MREC_ERR_SHAPE, "embeddings.word_embeddings.weight"},
        {BERT, FIX "tiny_bert", NULL, "intermediate_size", "1048576", MREC_ERR_SHAPE, "intermediate.dense.weight"},
        {BERT, FIX "tiny_bert", NULL, "num_hidden_layers", "3", MREC_ERR_NOT_FOUND, "encoder.layer.2."},
        /* BERT: floats, strings */
        {BERT, FIX "tiny_bert", NULL, "layer_norm_eps", "0", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "layer_norm_eps", "-1e-12", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "layer_norm_eps", "1e-50", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "layer_norm_eps", "1e999", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "layer_norm_eps", "\"1e-12\"", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "hidden_act", "5", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "hidden_act", "\"mish\"", MREC_ERR_UNSUPPORTED, NULL},
        {BERT, FIX "tiny_bert", NULL, "model_type", "\"roberta\"", MREC_ERR_UNSUPPORTED, NULL},
        {BERT, FIX "tiny_bert", NULL, "model_type", "7", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "position_embedding_type", "\"relative_key\"", MREC_ERR_UNSUPPORTED, NULL},
        {BERT, FIX "tiny_bert", NULL, "pad_token_id", "99", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_bert", NULL, "pad_token_id", "-1", MREC_ERR_FORMAT, NULL},
        /* MPNet: position ids count from pad_token_id */
        {BERT, FIX "tiny_mpnet", NULL, "pad_token_id", "-100000", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_mpnet", NULL, "pad_token_id", "2147483647", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_mpnet", NULL, "pad_token_id", "-5", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_mpnet", NULL, "pad_token_id", "63", MREC_ERR_FORMAT, "max_position_embeddings"},
        {BERT, FIX "tiny_mpnet", NULL, "pad_token_id", "1.5", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_mpnet", NULL, "relative_attention_num_buckets", "2", MREC_ERR_FORMAT, NULL},
        {BERT, FIX "tiny_mpnet", NULL, "relative_attention_num_buckets", "1024", MREC_ERR_FORMAT, NULL},
        /* ViT */
        {VIT, FIX "vision/vit_tiny", NULL, "image_size", "30", MREC_ERR_FORMAT, "patch_size"},
        {VIT, FIX "vision/vit_tiny", NULL, "image_size", "8193", MREC_ERR_FORMAT, NULL},
        {VIT, FIX "vision/vit_tiny", NULL, "patch_size", "0", MREC_ERR_FORMAT, NULL},
        {VIT, FIX "vision/vit_tiny", NULL, "num_channels", "17", MREC_ERR_FORMAT, NULL},
        {VIT, FIX "vision/vit_tiny", NULL, "pooler_output_size", "0", MREC_ERR_FORMAT, NULL},
        {VIT, FIX "vision/vit_tiny", NULL, "qkv_bias", "\"yes\"", MREC_ERR_FORMAT, NULL},
        {VIT, FIX "vision/vit_tiny", NULL, "pooler_act", "\"relu\"", MREC_ERR_UNSUPPORTED, NULL},
        {VIT, FIX "vision/vit_tiny", NULL, "layer_norm_eps", "-0.0", MREC_ERR_FORMAT, NULL},
        {VIT, FIX "vision/vit_tiny", NULL, "hidden_size", "65535", MREC_ERR_FORMAT, "num_attention_heads"},
        {VIT, FIX "vision/vit_tiny", NULL, "hidden_size", "65532", MREC_ERR_SHAPE, "patch_embeddings.projection.weight"},
        /* CLIP */
        {CLIP, FIX "clip", NULL, "projection_dim", "0", MREC_ERR_FORMAT, NULL},
        {CLIP, FIX "clip", NULL, "model_type", "\"siglip\"", MREC_ERR_UNSUPPORTED, NULL},
        {CLIP, FIX "clip", NULL, "vision_config", "\"x\"", MREC_ERR_FORMAT, "vision_config"},
        {CLIP, FIX "clip", "text_config", "eos_token_id", "49408", MREC_ERR_FORMAT, NULL},
        {CLIP, FIX "clip", "text_config", "eos_token_id", "-1", MREC_ERR_FORMAT, NULL},
        {CLIP, FIX "clip", "text_config", "max_position_embeddings", "65537", MREC_ERR_FORMAT, NULL},
        {CLIP, FIX "clip", "text_config", "vocab_size", "1.5", MREC_ERR_FORMAT, NULL},
        {CLIP, FIX "clip", "text_config", "hidden_size", "17", MREC_ERR_FORMAT, "num_attention_heads"},
        {CLIP, FIX "clip", "text_config", "layer_norm_eps", "0", MREC_ERR_FORMAT, NULL},
        {CLIP, FIX "clip", "vision_config", "patch_size", "64", MREC_ERR_FORMAT, "vision_config.image_size"},
        {CLIP, FIX "clip", "vision_config", "num_hidden_layers", "-2", MREC_ERR_FORMAT, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const config_case *c = &cases[i];
        char dir[512], key[128], what[256];
        new_dir(dir, sizeof dir);
        snprintf(key, sizeof key, "%s%s%s", c->section ? c->section : "", c->section ? "." : "", c->key);
        snprintf(what, sizeof what, "%s %s = %s", c->fixture + strlen(FIX), key, c->raw ? c->raw : "(absent)");
        if (!t_check(edit_config(dir, c->fixture, c->section, c->key, c->raw) && link_weights(dir, c->fixture),
                     "%s: set up", what))
            continue;
        if (!t_status(load(c->k, dir), c->want, "%s is refused", what)) continue;
        char file[600];
        snprintf(file, sizeof file, "%s/%s", dir, c->want == MREC_ERR_FORMAT || c->want == MREC_ERR_UNSUPPORTED ?
                                                   "config.json" : "model.safetensors");
        expect_mentions(what, file, c->mention ? c->mention : key, NULL);
    }
}

/* In-range edits still load, and MPNet with another valid pad_token_id runs. */
static void config_accepted(mrec_context *ctx) {
    static const config_case ok[] = {
        {BERT, FIX "tiny_bert", NULL, "pad_token_id", "null", MREC_OK, NULL},
        {BERT, FIX "tiny_bert", NULL, "layer_norm_eps", "1e-5", MREC_OK, NULL},
        {BERT, FIX "tiny_bert", NULL, "hidden_size", "32.0", MREC_OK, NULL},
        {VIT, FIX "vision/vit_tiny", NULL, "qkv_bias", "true", MREC_OK, NULL},
        {CLIP, FIX "clip", "text_config", "eos_token_id", "2", MREC_OK, NULL},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char dir[512];
        new_dir(dir, sizeof dir);
        if (t_check(edit_config(dir, ok[i].fixture, ok[i].section, ok[i].key, ok[i].raw) && link_weights(dir, ok[i].fixture),
                    "set up"))
            t_status(load(ok[i].k, dir), MREC_OK, "%s %s = %s still loads", ok[i].fixture, ok[i].key, ok[i].raw);
    }
    /* The largest pad_token_id MPNet's table allows (62 of 64 positions):
     * one real token fits, two run past the table and are refused. */
    char dir[512];
    new_dir(dir, sizeof dir);
    mrec_bert m;
    if (!t_check(edit_config(dir, FIX "tiny_mpnet", NULL, "pad_token_id", "62") && link_weights(dir, FIX "tiny_mpnet"),
                 "set up") ||
        !t_status(mrec_bert_load(&m, dir), MREC_OK, "mpnet with pad_token_id 62 loads"))
        return;
    int32_t ids[2] = {5, 7}, mask[2] = {1, 1};
    float hidden[2 * 32];
    mrec_context_reserve(ctx, mrec_bert_workspace_bytes(&m, 1, 2));
    if (t_status(mrec_bert_forward(ctx, &m, ids, NULL, mask, 1, 1, hidden, NULL), MREC_OK, "one real token runs")) {
        int finite = 1;
        for (int h = 0; h < m.cfg.hidden; h++) finite &= isfinite(hidden[h]) != 0;
        t_check(finite, "its output is finite");
    }
    t_status(mrec_bert_forward(ctx, &m, ids, NULL, mask, 1, 2, hidden, NULL), MREC_ERR_ARG,
             "a second real token would need position 64 and is refused");
    expect_mentions("mpnet position", "max_position_embeddings", NULL, NULL);
    mrec_bert_free(&m);
}

/* ---- JSON structure and file types ---- */

static void json_and_files(void) {
    char dir[512], path[600];
    /* 100,000 levels: refused before cJSON recurses */
    new_dir(dir, sizeof dir);
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 16);
    NEED(deep);
    size_t n = 0;
    n += (size_t)sprintf(deep, "{\"x\": ");
    for (size_t i = 0; i < depth; i++) deep[n++] = '[';
    for (size_t i = 0; i < depth; i++) deep[n++] = ']';
    deep[n++] = '}';
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, deep, n);
    free(deep);
    link_weights(dir, FIX "tiny_bert");
    t_status(load(BERT, dir), MREC_ERR_FORMAT, "config.json nested 100,000 deep");
    expect_mentions("deep nesting", path, "nested", NULL);

    /* trailing data after the object */
    new_dir(dir, sizeof dir);
    size_t len;
    char *cfg = slurp(FIX "tiny_bert/config.json", &len);
    NEED(cfg);
    char *more = malloc(len + 16);
    if (more) memcpy(more, cfg, len);
    free(cfg);
    NEED(more);
    memcpy(more + len, "\n{\"x\": 1}\n", 10);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, more, len + 10);
    free(more);
    link_weights(dir, FIX "tiny_bert");
    t_status(load(BERT, dir), MREC_ERR_FORMAT, "config.json with a second object after the first");
    expect_mentions("trailing data", path, "after the JSON value", NULL);

    /* an empty config.json; a JSON array instead of an object */
    new_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, "", 0);
    link_weights(dir, FIX "tiny_bert");
    t_status(load(BERT, dir), MREC_ERR_FORMAT, "an empty config.json");
    expect_mentions("empty", path, "empty", NULL);
    new_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, "[1, 2]", 6);
    link_weights(dir, FIX "vision/vit_tiny");
    t_status(load(VIT, dir), MREC_ERR_FORMAT, "config.json holding an array");
    expect_mentions("array", path, "object", NULL);

    /* a FIFO as config.json: refused at once (alarm() in main catches a hang) */
    new_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (t_check(mkfifo(path, 0600) == 0, "mkfifo")) {
        link_weights(dir, FIX "tiny_bert");
        t_status(load(BERT, dir), MREC_ERR_IO, "a FIFO as config.json");
        expect_mentions("fifo", path, "not a regular file", NULL);
    }
    /* a FIFO, a directory and /dev/zero as model.safetensors */
    const char *kinds[] = {"fifo", "directory", "/dev/zero"};
    for (int i = 0; i < 3; i++) {
        new_dir(dir, sizeof dir);
        edit_config(dir, FIX "tiny_bert", NULL, "vocab_size", "99");
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        int made = i == 0 ? mkfifo(path, 0600) == 0 : i == 1 ? mkdir(path, 0700) == 0 : symlink("/dev/zero", path) == 0;
        if (!t_check(made, "make a %s", kinds[i])) continue;
        t_status(load(BERT, dir), MREC_ERR_IO, "a %s as model.safetensors", kinds[i]);
        expect_mentions(kinds[i], path, "not a regular file", NULL);
        mrec_resnet r;
        t_status(mrec_resnet_load(&r, path), MREC_ERR_IO, "resnet: a %s as the checkpoint", kinds[i]);
    }
}

/* ---- safetensors headers, byte by byte ---- */

static mrec_status parse_header(const char *header, size_t n_data, const char *label) {
    size_t hl = strlen(header), size = 8 + hl + n_data;
    uint8_t *buf = calloc(1, size);
    if (!buf) return MREC_ERR_NOMEM;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    mrec_safetensors st;
    mrec_status s = mrec_safetensors_parse(&st, buf, size, label);
    mrec_safetensors_close(&st);
    free(buf);
    return s;
}

static void safetensors_headers(void) {
    static const struct {
        const char *header;
        size_t n_data;
        mrec_status want;
        const char *mention;
    } cases[] = {
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,9007199254740993]}}", 8, MREC_ERR_FORMAT, "'w'"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, MREC_ERR_FORMAT, "data_offsets"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, MREC_ERR_FORMAT, "data_offsets"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 8, MREC_ERR_FORMAT, "data_offsets"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.5,4.5]}}", 8, MREC_ERR_FORMAT, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, MREC_ERR_FORMAT, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, MREC_ERR_FORMAT, "twice"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, MREC_ERR_SHAPE, "dimension 0"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,4]}}", 4, MREC_ERR_SHAPE, "dimension 0"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4, MREC_ERR_SHAPE, "dimension 0"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,0]}}", 0, MREC_ERR_SHAPE,
         "overflows"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, MREC_ERR_SHAPE, "dimensions"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, MREC_ERR_SHAPE, "needs 12"},
        {"{\"w\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, MREC_ERR_DTYPE, "C64"},
        {"{\"w\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, MREC_ERR_FORMAT, "dtype"},
        {"{\"__metadata__\":{\"format\":3}}", 0, MREC_ERR_FORMAT, "__metadata__"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} {}", 4, MREC_ERR_FORMAT, "after the JSON"},
        {"[1]", 0, MREC_ERR_FORMAT, "'{'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char label[64];
        snprintf(label, sizeof label, "hostile%zu.safetensors", i);
        t_status(parse_header(cases[i].header, cases[i].n_data, label), cases[i].want, "header %zu refused: %s", i,
                 cases[i].header);
        expect_mentions(label, label, cases[i].mention, NULL);
    }
    /* a header nested 100,000 deep */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 16);
    NEED(deep);
    size_t n = (size_t)sprintf(deep, "{\"x\":");
    for (size_t i = 0; i < depth; i++) deep[n++] = '[';
    for (size_t i = 0; i < depth; i++) deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    t_status(parse_header(deep, 0, "deep.safetensors"), MREC_ERR_FORMAT, "a header nested 100,000 deep");
    expect_mentions("deep header", "deep.safetensors", "nested", NULL);
    free(deep);
    /* a header length of 2^64 - 1 */
    uint8_t buf[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    mrec_safetensors st;
    t_status(mrec_safetensors_parse(&st, buf, sizeof buf, "huge.safetensors"), MREC_ERR_FORMAT, "header length 2^64 - 1");
    expect_mentions("huge header", "huge.safetensors", "header length", NULL);
    mrec_safetensors_close(&st);
}

/* ---- non-finite weights ---- */

/* A copy of fixture's model.safetensors into dir with element 0 of tensor
 * `name` set to `value`, next to the fixture's config.json. */
static int patch_weight(const char *dir, const char *fixture, const char *file, const char *name, float value) {
    char src[512], dst[600];
    snprintf(src, sizeof src, "%s/%s", fixture, file);
    mrec_safetensors st;
    if (mrec_safetensors_open(&st, src)) return 0;
    const mrec_st_entry *e = mrec_safetensors_find(&st, name);
    size_t at = e ? (size_t)((const uint8_t *)e->data - (const uint8_t *)st.map) : 0;
    mrec_dtype dtype = e ? e->dtype : MREC_F32;
    mrec_safetensors_close(&st);
    size_t n;
    uint8_t *bytes = e ? (uint8_t *)slurp(src, &n) : NULL;
    if (!bytes) return 0;
    if (dtype == MREC_F32) {
        memcpy(bytes + at, &value, 4);
    } else {
        uint16_t h = dtype == MREC_F16 ? mrec_f32_to_f16(value) : mrec_f32_to_bf16(value);
        bytes[at] = (uint8_t)h, bytes[at + 1] = (uint8_t)(h >> 8);
    }
    snprintf(dst, sizeof dst, "%s/%s", dir, file);
    int ok = write_file(dst, bytes, n);
    free(bytes);
    char cfg[600];
    snprintf(src, sizeof src, "%s/config.json", fixture);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    if (ok && access(src, F_OK) == 0) {
        char *text = slurp(src, &n);
        ok = text && write_file(cfg, text, n);
        free(text);
    }
    return ok;
}

static void nonfinite_weights(void) {
    static const struct {
        int model; /* 0 bert, 1 vit, 2 clip, 3 resnet */
        const char *fixture, *tensor;
        float value;
        const char *says;
    } cases[] = {
        {0, FIX "tiny_bert", "embeddings.LayerNorm.weight", NAN, "NaN"},
        {0, FIX "tiny_mpnet", "encoder.layer.1.output.dense.weight", -INFINITY, "-inf"},
        {1, FIX "vision/vit_tiny", "encoder.layer.0.attention.attention.query.weight", INFINITY, "+inf"},
        {2, FIX "clip", "text_projection.weight", NAN, "NaN"},
        {3, FIX "vision/resnet_tiny", "conv1.weight", NAN, "NaN"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[512], path[600];
        new_dir(dir, sizeof dir);
        if (!t_check(patch_weight(dir, cases[i].fixture, "model.safetensors", cases[i].tensor, cases[i].value),
                     "patch %s in %s", cases[i].tensor, cases[i].fixture))
            continue;
        mrec_status st;
        if (cases[i].model == 3) {
            mrec_resnet r;
            if (!(st = mrec_resnet_load(&r, dir))) mrec_resnet_free(&r);
        } else {
            st = load(cases[i].model == 0 ? BERT : cases[i].model == 1 ? VIT : CLIP, dir);
        }
        t_status(st, MREC_ERR_FORMAT, "%s with %s in %s is refused", cases[i].fixture, cases[i].says, cases[i].tensor);
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        expect_mentions(cases[i].tensor, path, cases[i].tensor, cases[i].says);
    }
}

/* ---- ResNet widths read from the file ---- */

static void resnet_widths(void) {
    /* conv1 with no output channels, and the four stages present (empty) */
    const char *header =
        "{\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[0,3,7,7],\"data_offsets\":[0,0]},"
        "\"layer1.0.conv1.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
        "\"layer2.0.conv1.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
        "\"layer3.0.conv1.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
        "\"layer4.0.conv1.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}";
    const char *huge_k =
        "{\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[1,3,17,17],\"data_offsets\":[0,3468]},"
        "\"layer1.0.conv1.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
        "\"layer2.0.conv1.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
        "\"layer3.0.conv1.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
        "\"layer4.0.conv1.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}";
    const char *headers[2] = {header, huge_k};
    size_t data[2] = {0, 3468};
    for (int i = 0; i < 2; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/resnet%d.safetensors", tmpdir, i);
        size_t hl = strlen(headers[i]), size = 8 + hl + data[i];
        uint8_t *buf = calloc(1, size);
        NEED(buf);
        for (int b = 0; b < 8; b++) buf[b] = (uint8_t)((uint64_t)hl >> (8 * b));
        memcpy(buf + 8, headers[i], hl);
        write_file(path, buf, size);
        free(buf);
        mrec_resnet r;
        mrec_status st = mrec_resnet_load(&r, path);
        if (!st) mrec_resnet_free(&r);
        t_status(st, MREC_ERR_SHAPE, "resnet: %s refused", i ? "a 17x17 kernel" : "a conv with no output channels");
        expect_mentions("resnet width", path, "conv1.weight", NULL);
    }
}

/* 1,025 blocks in one stage: past any torchvision depth, refused before allocating for them */
static void resnet_blocks(void) {
    size_t cap = 1100 * 96, n = 0;
    char *h = malloc(cap);
    NEED(h);
    n += (size_t)snprintf(h + n, cap - n, "{");
    for (int b = 0; b <= 1024; b++)
        n += (size_t)snprintf(h + n, cap - n, "\"layer1.%d.conv1.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},", b);
    n--; /* the last comma */
    n += (size_t)snprintf(h + n, cap - n, "}");
    char path[600];
    snprintf(path, sizeof path, "%s/blocks.safetensors", tmpdir);
    uint8_t len[8];
    for (int b = 0; b < 8; b++) len[b] = (uint8_t)((uint64_t)n >> (8 * b));
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(len, 1, 8, f) == 8 && fwrite(h, 1, n, f) == n;
    if (f) ok &= fclose(f) == 0;
    free(h);
    NEED(ok);
    mrec_resnet r;
    mrec_status st = mrec_resnet_load(&r, path);
    if (!st) mrec_resnet_free(&r);
    t_status(st, MREC_ERR_SHAPE, "resnet: 1,025 blocks in layer1 refused");
    expect_mentions("resnet blocks", path, "layer1", "1024 blocks");
}

int main(void) {
    t_suite("bad_nn");
    alarm(120); /* a load that waits on a FIFO fails the run instead of hanging it */
    T_REQUIRE(mkdtemp(tmpdir) != NULL);
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 1; /* host weights throughout, on a machine with a GPU too */
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    config_cases();
    config_accepted(ctx);
    json_and_files();
    safetensors_headers();
    nonfinite_weights();
    resnet_widths();
    resnet_blocks();
    mrec_context_destroy(ctx);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return t_finish();
}
