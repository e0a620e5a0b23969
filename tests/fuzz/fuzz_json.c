/* fuzz_json.c: libFuzzer target for config.json: the depth-checked JSON
 * parse and the BERT/MPNet, ViT and CLIP config readers on top of it.
 * Anything may be refused; nothing may crash or leak, and an accepted config
 * must hold only what the forward passes can index: sizes in range, heads
 * dividing hidden, pad/eos ids inside the vocabulary, MPNet's first
 * position inside its table, eps finite and positive. */
#include "../../nn/mrec_bert.h"
#include "../../nn/mrec_clip.h"
#include "../../nn/mrec_hf_config.h"
#include "../../nn/mrec_vit.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static int good_eps(float eps) { return isfinite(eps) && eps > 0; }

static void check_tower(const mrec_clip_tower_config *c, int vision) {
    if (c->hidden < 1 || c->heads < 1 || c->hidden % c->heads || c->layers < 1 || c->intermediate < 1) abort();
    if (!good_eps(c->layer_norm_eps)) abort();
    if (vision && (c->patch_size < 1 || c->patch_size > c->image_size || c->channels < 1)) abort();
    if (!vision && (c->vocab_size < 1 || c->max_positions < 1 || c->eos_token_id < 0 || c->eos_token_id >= c->vocab_size))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *j;
    if (mrec_json_parse((const char *)data, size, "fuzz/config.json", &j) != MREC_OK) return 0;
    if (!j) abort();
    mrec_bert_config b;
    if (mrec_bert_config_parse(&b, j, "fuzz/config.json") == MREC_OK) {
        if (b.vocab_size < 1 || b.hidden < 1 || b.heads < 1 || b.hidden % b.heads || b.layers < 1 || b.intermediate < 1 ||
            b.max_positions < 1 || b.type_vocab < 1 || !good_eps(b.layer_norm_eps))
            abort();
        if (b.pad_token_id < 0 || b.pad_token_id >= b.vocab_size) abort();
        if (b.mpnet && (b.pad_token_id + 1 >= b.max_positions || b.rel_buckets < 4 || b.rel_buckets > 256)) abort();
    }
    mrec_vit_config v;
    if (mrec_vit_config_parse(&v, j, "fuzz/config.json") == MREC_OK) {
        if (v.patch_size < 1 || v.image_size % v.patch_size || v.hidden % v.heads || v.pooler_size < 1 || v.channels < 1 ||
            !good_eps(v.layer_norm_eps))
            abort();
    }
    mrec_clip_tower_config vision, text;
    int projection_dim = 0;
    if (mrec_clip_config_parse(&vision, &text, &projection_dim, j, "fuzz/config.json") == MREC_OK) {
        if (projection_dim < 1) abort();
        check_tower(&vision, 1);
        check_tower(&text, 0);
    }
    cJSON_Delete(j);
    return 0;
}
