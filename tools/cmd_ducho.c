/* cmd_ducho.c: `mrec extract CONFIG`: a Ducho configuration file, run as
 * Ducho runs it, with mrec's extractors.
 *
 *   dataset_path: data/demo          # the other paths are inside it
 *   gpu list: 0                      # ("gpu_list" too) -1: the CPU; a GPU index: the GPU when there is one
 *   precision: bf16                  # mrec's own key: the encoders' GEMMs, fp32 (the default), tf32 or bf16
 *   visual:   {items: {input_path: images, output_path: visual_embeddings,
 *                      model: [{model_name: ResNet50, output_layers: avgpool, reshape: [224, 224],
 *                               preprocessing: zscore, mean: [...], std: [...], backend: torch, batch_size: 32}]}}
 *   textual:  {items: {input_path: meta.tsv, item_column: asin, text_column: description,
 *                      model: [{model_name: sentence-transformers/all-mpnet-base-v2, output_layers: 1}]}}
 *   visual_textual: {items: {input_path: {visual: images, textual: meta.tsv}, item_column: asin,
 *                            text_column: description, output_path: {visual: ..., textual: ...},
 *                            model: [{model_name: openai/clip-vit-base-patch16, backend: transformers,
 *                                     output_layers: 1, fusion: concat}]}}
 *
 * Each model writes Ducho's tree, <dataset_path>/<output_path>/<backend>/<model_name>/<output_layers>/<id>.npy,
 * of shape (1, dim); a model_name that is a file is named there by its stem (MMFashion.pt -> MMFashion). A
 * model_name is a folder or a file, or a name from weights/manifest.tsv found under the weights folder. Every section is checked (keys, types, files, models) before anything runs, and each leaf folder
 * is an output folder (mrec_out_begin): locked for the run, built beside itself, swapped in whole.
 *
 * Where Ducho pairs images and texts by position (visual_textual), mrec pairs them by item id.
 */
#include "mrec_extract_pipeline.h"
#include "mrec_options.h"
#include "mrec_parse.h"
#include "mrec_tools.h"

#include "../extractors/mrec_image_encoder.h"
#include "../nn/mrec_io.h"
#include "../nn/mrec_npy.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { VISUAL, TEXTUAL, VISUAL_TEXTUAL };
static const char *const SECTIONS[] = {"visual", "textual", "visual_textual"};

typedef struct {
    int modality, line;
    char name[256], model_dir[4096], backend[64], layer_dir[64]; /* layer_dir: output_layers as written */
    const char *layer, *pooling;                                  /* mrec's names, or NULL for the default */
    int batch;                                                    /* 0: the command's default */
    int size_h, size_w;                                           /* reshape, or 0 */
    int normalize_given;                                          /* mean and std were given */
    float mean[3], std[3];
    char fusion[16];
    char images[4096], table[4096], item_col[256], text_col[256];
    char out[3][4096]; /* the leaf folders: visual or textual; visual_textual: visual, textual, fused */
    int split;         /* visual_textual with ALIGN or AltCLIP: an image run and a text run of the one folder */
} job;

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int exists(const char *p) { return access(p, R_OK) == 0; }

/* A sequence of `want` numbers; *given says whether the key is there. */
static mrec_status number_list(const mrec_cfg *c, const mrec_cfg_node *map, const char *key, int want, double lo, double hi, double *out,
                               int *given) {
    const mrec_cfg_node *n = mrec_cfg_get(map, key);
    *given = !!n;
    if (!n) return MREC_OK;
    if (n->kind != MREC_CFG_SEQ || mrec_cfg_count(n) != want)
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: %s must be a list of %d numbers", c->path, n->line, key, want);
    int k = 0;
    for (const mrec_cfg_node *e = n->child; e; e = e->next) {
        mrec_status st = mrec_cfg_node_number(c, e, key, lo, hi, &out[k++]);
        if (st) return st;
    }
    return MREC_OK;
}

/* A scalar of any YAML type as text (output_layers is 1 or avgpool). */
static mrec_status text_of(const mrec_cfg *c, const mrec_cfg_node *map, const char *key, char *out, size_t cap) {
    const mrec_cfg_node *n = mrec_cfg_get(map, key);
    if (!n) return MREC_OK;
    if (n->kind == MREC_CFG_SEQ && mrec_cfg_count(n) == 1) n = n->child; /* Ducho allows [avgpool] */
    if (n->kind != MREC_CFG_SCALAR || !*n->value)
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: %s must be one value", c->path, n->line, key);
    snprintf(out, cap, "%s", n->value);
    return MREC_OK;
}

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && !strcmp(s + n - t, tail);
}

/* model_name: a folder or file that exists, else weights/<model_name>, else
 * weights/<lowercased name> (torchvision's ResNet50 -> weights/resnet50). A
 * file is a torchvision ResNet: safetensors, or a PyTorch checkpoint (.pt,
 * .pth, .bin: a state dict, or a whole module as Ducho's MMFashion.pt) read
 * by mrec's restricted unpickler. */
static mrec_status resolve_model(const mrec_cfg *c, int line, const char *name, const char *weights, char *dir, size_t cap) {
    if (exists(name) && !is_dir(name) && !ends_with(name, ".safetensors") && !ends_with(name, ".pt") && !ends_with(name, ".pth") &&
        !ends_with(name, ".bin"))
        return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: line %d: model_name %s: a file must be a torchvision ResNet as .safetensors, "
                         ".pt, .pth or .bin", c->path, line, name);
    if (exists(name)) return snprintf(dir, cap, "%s", name), MREC_OK;
    snprintf(dir, cap, "%s/%s", weights, name);
    if (exists(dir)) return MREC_OK;
    char lower[256];
    size_t i = 0;
    for (; name[i] && i < sizeof lower - 1; i++) lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    lower[i] = 0;
    snprintf(dir, cap, "%s/%s", weights, lower);
    if (exists(dir)) return MREC_OK;
    return mrec_fail(MREC_ERR_IO,
                     "%s: line %d: model_name '%s': no such folder, and no local copy in %s (`make weights` or "
                     "`weights/fetch %s` downloads the checkpoints of weights/manifest.tsv)",
                     c->path, line, name, weights, lower);
}

/* The model_type of a folder's config.json, into type; "" when there is none. */
static void model_type(const char *dir, char *type, size_t cap) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    *type = 0;
    cJSON *j = NULL;
    if (!is_dir(dir) || mrec_read_json_object(path, 1, &j) || !j) return;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    if (cJSON_IsString(t)) snprintf(type, cap, "%s", t->valuestring);
    cJSON_Delete(j);
}

/* output_layers -> mrec's layer (image) or pooling (text) for this model.
 * CLIP runs both towers in one pass; ALIGN and AltCLIP hold two encoders of
 * their own in one folder (EfficientNet + BERT, CLIP's ViT + XLM-R), so their
 * visual_textual runs as an image run and a text run of that folder. */
static mrec_status map_layer(const mrec_cfg *c, job *j) {
    const char *l = j->layer_dir;
    char type[64];
    model_type(j->model_dir, type, sizeof type);
    int clip = !strcmp(type, "clip"), align = !strcmp(type, "align"), altclip = !strcmp(type, "altclip");
    int text_only = j->modality == TEXTUAL, image_only = j->modality == VISUAL;
    mrec_image_model kind = MREC_IMAGE_RESNET;
    mrec_status st = text_only ? MREC_OK : mrec_image_model_kind(j->model_dir, &kind);
    if (st) return st;
    if (j->modality == VISUAL_TEXTUAL && !clip && !align && !altclip)
        return mrec_fail(MREC_ERR_ARG, "%s: line %d: visual_textual needs a model with an image and a text tower (CLIP, ALIGN, "
                         "AltCLIP); %s is not one", c->path, j->line, j->name);
    j->split = j->modality == VISUAL_TEXTUAL && !clip;
    if (j->split && *j->fusion)
        return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: line %d: fusion with %s: mrec fuses CLIP's two towers only", c->path, j->line,
                         j->name);
    if (!*l || !strcmp(l, "1")) return MREC_OK; /* Ducho's "1": the model's usual output */
    const char *expect;
    if (clip && !image_only) {
        expect = "1, embeds, projected, pooler";
        if (!strcmp(l, "embeds") || !strcmp(l, "projected") || !strcmp(l, "pooler")) return j->layer = l, MREC_OK;
    } else if (j->split) { /* one name for both towers */
        expect = "1, embeds";
        if (!strcmp(l, "embeds")) return j->layer = "embeds", j->pooling = "embeds", MREC_OK;
    } else if (text_only && (align || altclip)) {
        expect = "1, embeds, text_embeds";
        if (!strcmp(l, "embeds") || !strcmp(l, "text_embeds")) return j->pooling = "embeds", MREC_OK;
        if (align && (!strcmp(l, "cls") || !strcmp(l, "pooler"))) return j->pooling = l, MREC_OK;
        if (align && !strcmp(l, "pooler_output")) return j->pooling = "pooler", MREC_OK;
        if (align) expect = "1, embeds, text_embeds, cls, pooler, pooler_output";
    } else if (text_only) {
        expect = "1, mean, cls, pooler";
        if (!strcmp(l, "mean") || !strcmp(l, "cls") || !strcmp(l, "pooler")) return j->pooling = l, MREC_OK;
        if (!strcmp(l, "pooler_output")) return j->pooling = "pooler", MREC_OK;
    } else if (kind == MREC_IMAGE_CLIP) {
        expect = "1, embeds, image_embeds, projected, pooler, pooler_output";
        if (!strcmp(l, "embeds") || !strcmp(l, "image_embeds")) return j->layer = "embeds", MREC_OK;
        if (!strcmp(l, "projected")) return j->layer = "projected", MREC_OK;
        if (!strcmp(l, "pooler") || !strcmp(l, "pooler_output")) return j->layer = "pooler", MREC_OK;
    } else if (kind == MREC_IMAGE_ALIGN) {
        expect = "1, embeds, image_embeds, pooler, pooler_output";
        if (!strcmp(l, "embeds") || !strcmp(l, "image_embeds")) return j->layer = "embeds", MREC_OK;
        if (!strcmp(l, "pooler") || !strcmp(l, "pooler_output")) return j->layer = "pooler", MREC_OK;
    } else if (kind == MREC_IMAGE_RESNET) {
        expect = "avgpool, fc";
        if (!strcmp(l, "avgpool")) return j->layer = "avgpool", MREC_OK;
        if (!strcmp(l, "fc") || !strcmp(l, "classifier") || !strcmp(l, "logits")) return j->layer = "logits", MREC_OK;
    } else {
        expect = "pooler_output, last_hidden_state";
        if (!strcmp(l, "pooler_output") || !strcmp(l, "pooler")) return j->layer = "pooler", MREC_OK;
        if (!strcmp(l, "last_hidden_state") || !strcmp(l, "cls")) return j->layer = "cls", MREC_OK;
    }
    return mrec_fail(MREC_ERR_ARG, "%s: line %d: output_layers '%s' is not one mrec has for %s (%s)", c->path, j->line, l, j->name,
                     expect);
}

static mrec_status path_in(const mrec_cfg *c, const mrec_cfg_node *n, const char *base, const char *what, int must_exist, char *out,
                           size_t cap) {
    if (!n || n->kind != MREC_CFG_SCALAR || !*n->value)
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: %s must be a path", c->path, n ? n->line : 0, what);
    if (n->value[0] == '/' || !*base) snprintf(out, cap, "%s", n->value);
    else snprintf(out, cap, "%s/%s", base, n->value);
    if (must_exist && !exists(out)) return mrec_fail(MREC_ERR_IO, "%s: line %d: %s %s: no such file or folder", c->path, n->line, what, out);
    return MREC_OK;
}

/* One modality section's items: its jobs appended to js. */
static mrec_status read_section(const mrec_cfg *c, const mrec_cfg_node *sec, int modality, const char *base, const char *weights,
                                int skip, job *js, int *n_jobs) {
    static const char *const sec_keys[] = {"items", NULL};
    static const char *const item_keys[] = {"input_path", "output_path", "item_column", "text_column", "model", NULL};
    static const char *const model_keys[] = {"model_name", "output_layers", "backend", "batch_size", "reshape", "preprocessing",
                                             "mean", "std", "fusion", "clear_text", "task", NULL};
    char where[128];
    snprintf(where, sizeof where, "%s", SECTIONS[modality]);
    if (sec->kind != MREC_CFG_MAP) return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: %s must be a map with items", c->path, sec->line, where);
    if (mrec_cfg_get(sec, "interactions"))
        return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: line %d: %s.interactions (review texts) is not supported; items is", c->path,
                         mrec_cfg_get(sec, "interactions")->line, where);
    mrec_status st = mrec_cfg_check_keys(c, sec, where, sec_keys);
    const mrec_cfg_node *items = mrec_cfg_get(sec, "items");
    if (!st && !items) return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: %s has no items", c->path, sec->line, where);
    snprintf(where, sizeof where, "%s.items", SECTIONS[modality]);
    if (!st && items->kind != MREC_CFG_MAP) st = mrec_fail(MREC_ERR_FORMAT, "%s: line %d: %s must be a map", c->path, items->line, where);
    if (!st) st = mrec_cfg_check_keys(c, items, where, item_keys);
    const mrec_cfg_node *input = mrec_cfg_get(items, "input_path"), *output = mrec_cfg_get(items, "output_path"),
                        *models = mrec_cfg_get(items, "model");
    if (!st && !input) st = mrec_fail(MREC_ERR_FORMAT, "%s: line %d: %s needs input_path", c->path, items->line, where);
    if (!st && (!models || models->kind != MREC_CFG_SEQ || !mrec_cfg_count(models)))
        st = mrec_fail(MREC_ERR_FORMAT, "%s: line %d: %s needs a model list", c->path, models ? models->line : items->line, where);
    const char *item_col = NULL, *text_col = NULL;
    if (!st && modality != VISUAL) st = mrec_cfg_string(c, items, "item_column", 1, &item_col);
    if (!st && modality != VISUAL) st = mrec_cfg_string(c, items, "text_column", 1, &text_col);
    int index = 0;
    for (const mrec_cfg_node *m = st ? NULL : models->child; m && !st; m = m->next, index++) {
        if (*n_jobs == MREC_MAX_EXTRACTED) return mrec_fail(MREC_ERR_ARG, "%s: more than %d models", c->path, MREC_MAX_EXTRACTED);
        job *j = &js[*n_jobs];
        memset(j, 0, sizeof *j);
        j->modality = modality, j->line = m->line;
        char mwhere[160];
        snprintf(mwhere, sizeof mwhere, "%s.model[%d]", where, index);
        if (m->kind != MREC_CFG_MAP) return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: %s must be a map", c->path, m->line, mwhere);
        const char *name = NULL, *backend = modality == VISUAL ? "torch" : modality == TEXTUAL ? "sentence_transformers" : "transformers",
                   *pre = "zscore", *fusion = NULL, *task = "pretrained";
        long batch = 0;
        int clear = 0;
        if (!st) st = mrec_cfg_check_keys(c, m, mwhere, model_keys);
        if (!st) st = mrec_cfg_string(c, m, "model_name", 1, &name);
        if (!st) st = mrec_cfg_string(c, m, "backend", 0, &backend);
        if (!st) st = mrec_cfg_string(c, m, "preprocessing", 0, &pre);
        if (!st) st = mrec_cfg_string(c, m, "fusion", 0, &fusion);
        if (!st) st = mrec_cfg_string(c, m, "task", 0, &task);
        if (!st) st = mrec_cfg_int(c, m, "batch_size", 0, 1, 4096, &batch);
        if (!st) st = mrec_cfg_bool(c, m, "clear_text", 0, &clear);
        if (!st) st = text_of(c, m, "output_layers", j->layer_dir, sizeof j->layer_dir);
        double size[2], mean[3], std[3];
        int has_size = 0, has_mean = 0, has_std = 0;
        if (!st && modality == VISUAL) st = number_list(c, m, "reshape", 2, 8, 4096, size, &has_size);
        if (!st && modality == VISUAL) st = number_list(c, m, "mean", 3, -10, 10, mean, &has_mean);
        if (!st && modality == VISUAL) st = number_list(c, m, "std", 3, 1e-6, 10, std, &has_std);
        if (st) return st;
        if (has_size && (size[0] != (int)size[0] || size[1] != (int)size[1]))
            return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: reshape must be two whole numbers", c->path, mrec_cfg_get(m, "reshape")->line);
        if (has_size) j->size_h = (int)size[0], j->size_w = (int)size[1];
        j->normalize_given = has_mean && has_std;
        for (int k = 0; j->normalize_given && k < 3; k++) j->mean[k] = (float)mean[k], j->std[k] = (float)std[k];
        if (!strcmp(backend, "tensorflow"))
            return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: line %d: backend tensorflow: mrec reads PyTorch / Hugging Face checkpoints (torch, "
                             "transformers, sentence_transformers)", c->path, m->line);
        if (strcmp(backend, "torch") && strcmp(backend, "transformers") && strcmp(backend, "sentence_transformers"))
            return mrec_fail(MREC_ERR_ARG, "%s: line %d: backend '%s' is not torch, transformers or sentence_transformers", c->path,
                             m->line, backend);
        if (strcmp(pre, "zscore"))
            return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: line %d: preprocessing '%s': mrec has zscore (mean / std)", c->path, m->line, pre);
        if (has_mean != has_std) return mrec_fail(MREC_ERR_ARG, "%s: line %d: mean and std go together", c->path, m->line);
        if (strcmp(task, "pretrained"))
            return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: line %d: task '%s': mrec extracts with pretrained models only", c->path, m->line, task);
        if (clear)
            return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: line %d: clear_text: True (Ducho's text cleaning) is not supported", c->path, m->line);
        if (fusion && (modality != VISUAL_TEXTUAL || (strcmp(fusion, "concat") && strcmp(fusion, "sum") && strcmp(fusion, "mul") &&
                                                      strcmp(fusion, "mean"))))
            return mrec_fail(MREC_ERR_ARG, "%s: line %d: fusion '%s' %s", c->path, m->line, fusion,
                             modality != VISUAL_TEXTUAL ? "is for visual_textual" : "is not concat, sum, mul or mean");
        if (strstr(name, "..") || strstr(name, "//"))
            return mrec_fail(MREC_ERR_ARG, "%s: line %d: model_name '%s' cannot be part of an output path", c->path, m->line, name);
        snprintf(j->name, sizeof j->name, "%s", name);
        snprintf(j->backend, sizeof j->backend, "%s", backend);
        j->batch = (int)batch;
        if (fusion) snprintf(j->fusion, sizeof j->fusion, "%s", fusion);
        if (!*j->layer_dir) snprintf(j->layer_dir, sizeof j->layer_dir, "%s", modality == VISUAL ? "avgpool" : "1");
        if (strchr(j->layer_dir, '/')) return mrec_fail(MREC_ERR_ARG, "%s: line %d: output_layers has a '/'", c->path, m->line);
        if ((st = resolve_model(c, m->line, name, weights, j->model_dir, sizeof j->model_dir)) || (st = map_layer(c, j))) {
            if (!skip) return st;
            printf("note: %s: left out (--skip-unsupported)\n", mrec_error_detail());
            st = MREC_OK;
            continue;
        }
        /* inputs and outputs */
        if (item_col) snprintf(j->item_col, sizeof j->item_col, "%s", item_col), snprintf(j->text_col, sizeof j->text_col, "%s", text_col);
        const char *outs[3] = {"visual_embeddings", "textual_embeddings", "visual_textual_embeddings"};
        char outdir[3][4096];
        if (modality == VISUAL_TEXTUAL) {
            if (input->kind != MREC_CFG_MAP || (st = mrec_cfg_check_keys(c, input, "visual_textual.items.input_path",
                                                                         (const char *const[]){"visual", "textual", NULL})))
                return st ? st : mrec_fail(MREC_ERR_FORMAT, "%s: line %d: input_path must be {visual: ..., textual: ...}", c->path, input->line);
            if ((st = path_in(c, mrec_cfg_get(input, "visual"), base, "input_path.visual", 1, j->images, sizeof j->images)) ||
                (st = path_in(c, mrec_cfg_get(input, "textual"), base, "input_path.textual", 1, j->table, sizeof j->table)))
                return st;
            if (output && (output->kind != MREC_CFG_MAP ||
                           (st = mrec_cfg_check_keys(c, output, "visual_textual.items.output_path",
                                                     (const char *const[]){"visual", "textual", "visual_textual", NULL}))))
                return st ? st : mrec_fail(MREC_ERR_FORMAT, "%s: line %d: output_path must be {visual: ..., textual: ...}", c->path, output->line);
            for (int k = 0; k < 3; k++) {
                const mrec_cfg_node *o = output ? mrec_cfg_get(output, SECTIONS[k]) : NULL;
                if (o && (st = path_in(c, o, base, "output_path", 0, outdir[k], sizeof outdir[k]))) return st;
                if (!o) snprintf(outdir[k], sizeof outdir[k], "%s%s%s", base, *base ? "/" : "", outs[k]);
            }
        } else {
            if ((st = path_in(c, input, base, "input_path", 1, modality == VISUAL ? j->images : j->table, sizeof j->images))) return st;
            if (output && (st = path_in(c, output, base, "output_path", 0, outdir[0], sizeof outdir[0]))) return st;
            if (!output) snprintf(outdir[0], sizeof outdir[0], "%s%s%s", base, *base ? "/" : "", outs[modality]);
        }
        /* a model given as a file is named by its stem, as Ducho names it (./demos/x/MMFashion.pt ->
         * torch/MMFashion/avgpool, the path the benchmark's Elliot template reads); a hub name stays whole */
        char leaf[256];
        snprintf(leaf, sizeof leaf, "%s", j->name);
        if (!is_dir(j->model_dir)) {
            const char *base = strrchr(j->name, '/') ? strrchr(j->name, '/') + 1 : j->name;
            const char *dot = strrchr(base, '.');
            snprintf(leaf, sizeof leaf, "%.*s", dot && dot > base ? (int)(dot - base) : (int)strlen(base), base);
        }
        for (int k = 0; k < (modality == VISUAL_TEXTUAL ? 3 : 1); k++)
            snprintf(j->out[k], sizeof j->out[k], "%s/%s/%s/%s", outdir[k], j->backend, leaf, j->layer_dir);
        ++*n_jobs;
    }
    return st;
}

/* The config's 'gpu list' as a --device value, or NULL for the default.
 * Ducho writes a number, a list of numbers or a string of them ("0,1"); the
 * first is the GPU used, -1 the CPU. */
static mrec_status gpu_list_device(const mrec_cfg *c, const mrec_cfg_node *root, const char **device) {
    *device = NULL;
    const mrec_cfg_node *n = mrec_cfg_get(root, "gpu list");
    if (!n) n = mrec_cfg_get(root, "gpu_list");
    if (!n) return MREC_OK;
    const mrec_cfg_node *first = n->kind == MREC_CFG_SEQ ? n->child : n;
    if (!first) return *device = "cpu", MREC_OK; /* an empty list: no GPU */
    char text[32] = "";
    if (first->kind == MREC_CFG_SCALAR) {
        size_t len = strcspn(first->value, ",");
        snprintf(text, sizeof text, "%.*s", (int)(len < sizeof text ? len : sizeof text - 1), first->value);
    }
    long gpu;
    if (first->kind != MREC_CFG_SCALAR || mrec_parse_int(text, -1, 1024, &gpu))
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: gpu list: a GPU number (-1 for the CPU) or a list of them", c->path, first->line);
    *device = gpu < 0 ? "cpu" : "gpu"; /* a GPU: asked for, so a run that falls back to the CPU says so */
    if (gpu > 0) fprintf(stderr, "mrec extract: gpu list %ld: mrec runs on the first GPU\n", gpu);
    return MREC_OK;
}

/* One model into Ducho's tree. Each leaf folder is an output folder (locked, built beside itself, swapped in
 * whole): the text and image runs make it themselves (and resume it), the matrix follows under the leaf's
 * lock, from the features the run returned; visual_textual's three leaves are held here and filled from one
 * CLIP run. */
static int run_job(const job *j, const mrec_ducho_options *o) {
    if (j->split) { /* ALIGN, AltCLIP: the image run into the visual leaf, the text run into the textual one */
        job v = *j, t = *j;
        v.modality = VISUAL, v.split = t.split = 0, v.pooling = NULL;
        t.modality = TEXTUAL, t.layer = NULL;
        snprintf(t.out[0], sizeof t.out[0], "%s", j->out[1]);
        int rc = run_job(&v, o);
        return rc ? rc : run_job(&t, o);
    }
    char work[4400] = "", clip_out[4500];
    int clip = j->modality == VISUAL_TEXTUAL, n_leaves = clip ? 2 + !!*j->fusion : 1, rc = 0;
    mrec_out_dir od[3] = {{.lock_fd = -1}, {.lock_fd = -1}, {.lock_fd = -1}};
    /* the CLIP run does not resume: its leaves are redone whole, which --resume allows like --overwrite */
    mrec_status st = MREC_OK;
    for (int k = 0; clip && k < n_leaves && !st; k++) st = mrec_out_begin(&od[k], j->out[k], o->out_flags ? MREC_OUT_OVERWRITE : 0);
    if (!st && clip && !(st = mrec_out_work_dir(&od[0], work, sizeof work)))
        snprintf(clip_out, sizeof clip_out, "%s/all", work);
    if (st) {
        fprintf(stderr, "mrec extract: %s\n", mrec_error_detail());
        for (int k = 0; k < n_leaves; k++) mrec_out_abort(&od[k]);
        return 2;
    }
    mrec_extract_common run = mrec_extract_defaults();
    run.model = j->model_dir, run.out = clip ? clip_out : j->out[0], run.per_item = 1, run.threads = o->threads;
    run.out_flags = clip ? 0 : o->out_flags, run.keep = o->matrix;
    if (j->batch) run.batch_size = j->batch;
    run.device = o->device, run.precision = o->precision, run.device_given = o->device_given;
    mrec_extract_result r = {0};
    fprintf(stderr, "== %s %s -> %s\n", SECTIONS[j->modality], j->name, j->out[0]);
    if (j->modality == VISUAL) {
        mrec_image_extract_spec s = {.run = run, .images = j->images, .layer = j->layer, .size_h = j->size_h, .size_w = j->size_w,
                                     .normalize_given = j->normalize_given, .decode_threads = 2};
        memcpy(s.mean, j->mean, sizeof s.mean), memcpy(s.std, j->std, sizeof s.std);
        rc = mrec_extract_image_run(&s, &r);
    } else if (j->modality == TEXTUAL) {
        mrec_text_extract_spec s = {.run = run, .input = j->table, .id_column = j->item_col, .text_column = j->text_col,
                                    .pooling = j->pooling, .layer = j->layer, .normalize = -1};
        rc = mrec_extract_text_run(&s, &r);
    } else {
        mrec_clip_extract_spec s = {.run = run, .images = j->images, .input = j->table, .id_column = j->item_col, .text_column = j->text_col,
                                    .layer = j->layer, .fusion = *j->fusion ? j->fusion : NULL, .decode_threads = 2};
        rc = mrec_extract_clip_run(&s, &r);
    }
    if (!rc && clip) {
        const char *parts[3] = {"visual", "textual", NULL};
        char fused[32], from[4600];
        snprintf(fused, sizeof fused, "visual_textual_%s", j->fusion);
        parts[2] = fused;
        for (int k = 0; k < n_leaves && !st; k++) {
            snprintf(from, sizeof from, "%s/%s", clip_out, parts[k]);
            mrec_remove_tree(od[k].scratch); /* empty: the leaf was not resumed */
            if (rename(from, od[k].scratch) != 0) st = mrec_fail(MREC_ERR_IO, "%s: cannot move to %s (%s)", from, od[k].scratch, strerror(errno));
        }
    }
    if (*work) mrec_remove_tree(work);
    const char *const *ids = (const char *const *)r.ids;
    if (!rc && !st && o->matrix && !clip && !(st = mrec_out_lock(&od[0], j->out[0])))
        st = mrec_extract_matrix_write(j->out[0], ids, r.features, r.n_rows, r.dim);
    const float *leaf_rows[3] = {r.features, r.text_features, r.fused_features};
    const int leaf_dim[3] = {r.dim, r.dim_text, r.dim_fused};
    for (int k = 0; !rc && !st && o->matrix && clip && k < n_leaves; k++)
        st = mrec_extract_matrix_write(j->out[k], ids, leaf_rows[k], r.n_rows, leaf_dim[k]);
    for (int k = 0; !rc && !st && clip && k < n_leaves; k++) st = mrec_out_commit(&od[k]);
    for (int k = 0; k < n_leaves; k++) mrec_out_abort(&od[k]);
    mrec_extract_result_free(&r);
    if (!rc && st) {
        fprintf(stderr, "mrec extract: %s\n", mrec_error_detail());
        rc = 2;
    }
    return rc;
}

mrec_ducho_options mrec_ducho_defaults(void) {
    mrec_extract_common d = mrec_extract_defaults();
    return (mrec_ducho_options){.device = d.device, .precision = d.precision};
}

int mrec_ducho_run(const mrec_cfg *c, const mrec_cfg_node *root, const mrec_ducho_options *opt, mrec_extracted *out) {
    static const char *const top[] = {"dataset_path", "gpu list", "gpu_list", "precision", "visual", "textual", "visual_textual", NULL};
    const char *weights = opt->weights ? opt->weights : mrec_weights_dir();
    const char *base = "";
    job *js = calloc(MREC_MAX_EXTRACTED, sizeof *js); /* a job holds its paths: too big for the stack */
    int n = 0;
    mrec_status st = !js                        ? mrec_fail(MREC_ERR_NOMEM, "%d models", MREC_MAX_EXTRACTED)
                     : root->kind == MREC_CFG_MAP ? mrec_cfg_check_keys(c, root, "the extraction config", top)
                                                : mrec_fail(MREC_ERR_FORMAT, "%s: line %d: the extraction config must be a map", c->path, root->line);
    if (!st && mrec_cfg_get(root, "audio"))
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: line %d: audio extraction is not supported", c->path, mrec_cfg_get(root, "audio")->line);
    if (!st) st = mrec_cfg_string(c, root, "dataset_path", 0, &base);
    const char *device = NULL;
    if (!st) st = gpu_list_device(c, root, &device);
    /* the command line's device, else the config's 'gpu list': -1 the CPU, a GPU number auto's choice (a GPU
     * where there is one, else the CPU with a notice) */
    mrec_ducho_options o = *opt;
    if (!o.device_given && device) o.device = !strcmp(device, "cpu") ? MREC_WANT_CPU : MREC_WANT_AUTO, o.device_given = 1;
    /* the command line's precision, else the config's (mrec's key: Ducho extracts in fp32) */
    const char *precision = NULL;
    if (!st) st = mrec_cfg_string(c, root, "precision", 0, &precision);
    if (!st && precision && !o.precision_given && mrec_precision_parse(precision, &o.precision))
        st = mrec_fail(MREC_ERR_FORMAT, "%s: line %d: precision '%s' is not fp32, tf32 or bf16", c->path,
                       mrec_cfg_get(root, "precision")->line, precision);
    if (!st && *base && !is_dir(base))
        st = mrec_fail(MREC_ERR_IO, "%s: line %d: dataset_path %s: no such folder", c->path, mrec_cfg_get(root, "dataset_path")->line, base);
    for (int m = 0; m < 3 && !st; m++) {
        const mrec_cfg_node *sec = mrec_cfg_get(root, SECTIONS[m]);
        if (sec) st = read_section(c, sec, m, base, weights, opt->skip_unsupported, js, &n);
    }
    if (!st && !n) st = mrec_fail(MREC_ERR_FORMAT, "%s: no visual, textual or visual_textual section: nothing to extract", c->path);
    if (st) {
        fprintf(stderr, "mrec extract: %s\n", mrec_error_detail());
        free(js);
        return st == MREC_ERR_NOMEM ? 3 : 2;
    }
    if (out) out->n = 0;
    double t0 = mrec_now();
    for (int i = 0; i < n; i++) {
        double t = mrec_now();
        int rc = run_job(&js[i], &o);
        if (rc) return free(js), rc;
        fprintf(stderr, "time: %s %s %.1f s\n", SECTIONS[js[i].modality], js[i].name, mrec_now() - t);
        for (int k = 0; out && k < (js[i].modality == VISUAL_TEXTUAL ? 2 + !!*js[i].fusion : 1) && out->n < MREC_MAX_EXTRACTED; k++) {
            snprintf(out->modality[out->n], sizeof out->modality[0], "%s",
                     js[i].modality != VISUAL_TEXTUAL ? SECTIONS[js[i].modality] : k < 2 ? SECTIONS[k] : "visual_textual");
            snprintf(out->model[out->n], sizeof out->model[0], "%s", js[i].name);
            snprintf(out->folder[out->n++], sizeof out->folder[0], "%s", js[i].out[k]);
        }
        printf("%s\t%s\t%s\n", SECTIONS[js[i].modality], js[i].name, js[i].out[0]);
    }
    fprintf(stderr, "mrec extract: %d model%s in %.1f s\n", n, n == 1 ? "" : "s", mrec_now() - t0);
    free(js);
    return 0;
}

enum { X_WEIGHTS, X_MATRIX, X_THREADS, X_SKIP, X_OVERWRITE, X_RESUME, X_DEVICE, X_PRECISION, N_OPTIONS };

static const mrec_option OPTIONS[N_OPTIONS] = {
    [X_WEIGHTS] = {"--weights", MREC_OPT_TEXT, "DIR", "where model_name folders are looked up", "$MREC_WEIGHTS, else weights/ beside bin/",
                   .section = "options"},
    [X_MATRIX] = {"--matrix", MREC_OPT_SWITCH, NULL, "also LEAF.npy and LEAF_ids.txt beside each leaf, the items in id order (MMRec's layout)"},
    [X_THREADS] = {"--threads", MREC_OPT_INT, "N", "threads", "0 (one per core)", 0, 1024},
    [X_SKIP] = {"--skip-unsupported", MREC_OPT_SWITCH, NULL, "models without a local copy, or that mrec cannot run, are listed and left out"},
    [X_OVERWRITE] = {"--overwrite", MREC_OPT_SWITCH, NULL, "replace existing model folders (each stays as it was until the new one is whole)"},
    [X_RESUME] = {"--resume", MREC_OPT_SWITCH, NULL, "take up the items a killed run finished"},
    [X_DEVICE] = MREC_OPTION_DEVICE,
    [X_PRECISION] = MREC_OPTION_PRECISION,
};

static const mrec_command COMMAND = {
    "extract", "usage: mrec extract CONFIG.yml [--weights DIR] [--matrix] [--threads N] [--skip-unsupported] [--overwrite] [--resume]\n"
               "                               [--device auto|cpu|cuda] [--precision fp32|tf32|bf16]\n",
    "Runs a Ducho configuration: dataset_path, 'gpu list', and visual / textual / visual_textual\n"
    "sections of items (input_path, output_path, item_column, text_column, model list with\n"
    "model_name, output_layers, backend, batch_size, reshape, preprocessing, mean, std, fusion).\n"
    "Writes Ducho's tree: <dataset_path>/<output_path>/<backend>/<model_name>/<output_layers>/<id>.npy.\n"
    "model_name is a folder, or a name found in the weights folder (--weights, $MREC_WEIGHTS, else\n"
    "weights/ beside bin/): ResNet50 -> weights/resnet50, openai/clip-vit-base-patch16 ->\n"
    "weights/openai/clip-vit-base-patch16. --matrix also writes LEAF.npy and LEAF_ids.txt, the\n"
    "items in id order, as MMRec reads features. Images and texts of visual_textual are paired by\n"
    "item id (Ducho pairs them by position); ALIGN and AltCLIP there run their image tower on the\n"
    "images and their text tower on the texts. Relative paths are taken from the current folder.\n"
    "Prints one line per model: modality, model_name, output folder. --skip-unsupported lists and\n"
    "leaves out the models that have no local copy or that mrec cannot run.\n"
    "Each model's folder is built beside itself and appears whole when the model is done; one that\n"
    "exists is replaced only with --overwrite (it stays as it was until then), and a second run into\n"
    "it at the same time is refused. --resume takes up the items a killed run finished (visual and\n"
    "textual models), keeping the files that verify, and redoes the rest; a finished model's folder is\n"
    "verified and kept. A NaN or infinite feature stops the run, naming the item and the model.\n"
    "'gpu list' picks the device as Ducho does: -1 the CPU, a GPU number the GPU when there is one\n"
    "(else the CPU, with a notice); --device overrides it. 'precision: fp32|tf32|bf16' (mrec's own key)\n"
    "sets the encoders' precision; --precision overrides it.\n",
    OPTIONS, N_OPTIONS, 1};

int mrec_cmd_extract(int argc, char **argv) {
    mrec_opt_value v[N_OPTIONS];
    const char *pos[1];
    int n_pos = 0, rc = mrec_options_parse(&COMMAND, argc, argv, v, NULL, pos, &n_pos);
    if (rc == MREC_OPTS_HELP) return 0;
    if (rc) return rc;
    if (!n_pos) return fprintf(stderr, "mrec extract: a config file is needed (mrec extract --help)\n"), 1;
    int out_flags = (v[X_OVERWRITE].given ? MREC_OUT_OVERWRITE : 0) | (v[X_RESUME].given ? MREC_OUT_RESUME : 0);
    mrec_cfg c;
    mrec_status st = mrec_cfg_load(&c, pos[0]);
    if (st) {
        fprintf(stderr, "mrec extract: %s\n", mrec_error_detail());
        return 2;
    }
    mrec_ducho_options o = mrec_ducho_defaults();
    o.weights = v[X_WEIGHTS].text, o.threads = (int)v[X_THREADS].i, o.matrix = v[X_MATRIX].given, o.skip_unsupported = v[X_SKIP].given;
    o.out_flags = out_flags;
    mrec_context_options device = mrec_context_defaults();
    o.device_given = mrec_options_device(&v[X_DEVICE], &v[X_PRECISION], &device);
    o.device = device.device, o.precision = device.precision, o.precision_given = v[X_PRECISION].given;
    rc = mrec_ducho_run(&c, c.root, &o, NULL);
    mrec_cfg_free(&c);
    return rc;
}
