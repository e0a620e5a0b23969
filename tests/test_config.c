/* test_config.c: YAML configs into trees with line numbers, and the checked
 * reads: shapes like Ducho's and Elliot's configs, and every kind of bad
 * input named by file, key and line. */
#include "harness.h"

#include "../tools/mrec_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tmp[] = "/tmp/mrec_test_config_XXXXXX";

static const char *write_yaml(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
    return path;
}

static int has(const char *needle) { return strstr(mrec_error_detail(), needle) != NULL; }

/* The keys of Ducho's demo config, block and flow style, comments, quotes. */
static void ducho_shape(void) {
    const char *path = write_yaml("ducho.yml",
                                  "dataset_path: ./local/data/demo_baby\n"
                                  "gpu list: [0]\n"
                                  "\n"
                                  "visual:  # the photos\n"
                                  "  items:\n"
                                  "    input_path: images\n"
                                  "    output_path: visual_embeddings\n"
                                  "    model: [\n"
                                  "      { model_name: ResNet50, output_layers: avgpool, reshape: [224, 224],\n"
                                  "        preprocessing: zscore, backend: torch},\n"
                                  "    ]\n"
                                  "textual:\n"
                                  "  items:\n"
                                  "    input_path: meta.tsv\n"
                                  "    item_column: asin\n"
                                  "    text_column: 'description'\n"
                                  "    model:\n"
                                  "      - model_name: sentence-transformers/all-mpnet-base-v2\n"
                                  "        output_layers: 1\n"
                                  "        clear_text: False\n");
    mrec_cfg c;
    if (!t_status(mrec_cfg_load(&c, path), MREC_OK, "a Ducho-shaped config")) return;
    static const char *const top[] = {"dataset_path", "gpu list", "visual", "textual", "visual_textual", NULL};
    t_status(mrec_cfg_check_keys(&c, c.root, "the config", top), MREC_OK, "top-level keys, 'gpu list' with its space");
    const mrec_cfg_node *vis = mrec_cfg_get(mrec_cfg_get(c.root, "visual"), "items");
    const mrec_cfg_node *models = mrec_cfg_get(vis, "model");
    t_check(models && models->kind == MREC_CFG_SEQ && mrec_cfg_count(models) == 1 && models->line == 8, "a flow list of one model, line %d",
            models ? models->line : -1);
    const char *name = NULL;
    t_status(mrec_cfg_string(&c, models->child, "model_name", 1, &name), MREC_OK, "model_name");
    t_check(name && !strcmp(name, "ResNet50"), "model_name is ResNet50");
    const mrec_cfg_node *reshape = mrec_cfg_get(models->child, "reshape");
    double h = 0;
    t_check(reshape && mrec_cfg_count(reshape) == 2 && !mrec_cfg_node_number(&c, reshape->child, "reshape[0]", 1, 4096, &h) && h == 224,
            "reshape [224, 224]");
    const mrec_cfg_node *txt = mrec_cfg_get(mrec_cfg_get(c.root, "textual"), "items");
    const char *col = NULL;
    t_status(mrec_cfg_string(&c, txt, "text_column", 1, &col), MREC_OK, "a quoted string");
    t_check(col && !strcmp(col, "description"), "text_column is description");
    long layers = 0;
    int clear = 1;
    const mrec_cfg_node *m0 = mrec_cfg_get(txt, "model")->child;
    t_status(mrec_cfg_int(&c, m0, "output_layers", 1, 0, 100, &layers), MREC_OK, "an integer");
    t_status(mrec_cfg_bool(&c, m0, "clear_text", 1, &clear), MREC_OK, "Python's False as a boolean");
    t_check(layers == 1 && clear == 0, "output_layers 1, clear_text false");
    /* what the checks refuse, named by key and line */
    static const char *const item_keys[] = {"input_path", "output_path", "model", NULL};
    t_status(mrec_cfg_check_keys(&c, txt, "textual.items", item_keys), MREC_ERR_FORMAT, "an unknown key");
    t_check(has("'item_column'") && has("line 15") && has("ducho.yml") && has("textual.items"), "it names key, line, file, section: %s",
            mrec_error_detail());
    t_status(mrec_cfg_int(&c, txt, "text_column", 1, 0, 10, &layers), MREC_ERR_FORMAT, "a quoted string is not a number");
    t_check(has("line 16") && has("text_column"), "the message names the key and line: %s", mrec_error_detail());
    t_status(mrec_cfg_string(&c, txt, "missing", 1, &col), MREC_ERR_FORMAT, "a required key that is absent");
    t_status(mrec_cfg_string(&c, vis, "model", 1, &col), MREC_ERR_FORMAT, "a list where a value is wanted");
    t_check(has("not a list"), "says what it got: %s", mrec_error_detail());
    t_status(mrec_cfg_int(&c, m0, "output_layers", 1, 2, 100, &layers), MREC_ERR_FORMAT, "out of range");
    mrec_cfg_free(&c);
}

/* Elliot's experiment shape: nested maps, hyper-parameter lists, tuples as strings. */
static void elliot_shape(void) {
    const char *path = write_yaml("elliot.yml",
                                  "experiment:\n"
                                  "  dataset: baby\n"
                                  "  data_config:\n"
                                  "    strategy: fixed\n"
                                  "    train_path: ../data/{0}/train.tsv\n"
                                  "  top_k: 50\n"
                                  "  evaluation:\n"
                                  "    cutoffs: [10, 20, 50]\n"
                                  "    simple_metrics: [Recall, nDCG]\n"
                                  "  models:\n"
                                  "    BPRMF:\n"
                                  "      meta:\n"
                                  "        hyper_opt_alg: grid\n"
                                  "        save_recs: True\n"
                                  "      lr: [0.0005, 0.001]\n"
                                  "      factors: 64\n"
                                  "      l_w: 1e-5\n"
                                  "    NGCFM:\n"
                                  "      weight_size: (64,)\n");
    mrec_cfg c;
    if (!t_status(mrec_cfg_load(&c, path), MREC_OK, "an Elliot-shaped config")) return;
    const mrec_cfg_node *exp = mrec_cfg_get(c.root, "experiment"), *models = mrec_cfg_get(exp, "models");
    t_check(mrec_cfg_count(models) == 2 && !strcmp(models->child->key, "BPRMF") && !strcmp(models->child->next->key, "NGCFM"),
            "models in file order");
    const mrec_cfg_node *bpr = mrec_cfg_get(models, "BPRMF"), *lr = mrec_cfg_get(bpr, "lr");
    double v = 0, lw = 0;
    t_check(lr && lr->kind == MREC_CFG_SEQ && mrec_cfg_count(lr) == 2 && !mrec_cfg_node_number(&c, lr->child->next, "lr", 0, 1, &v) &&
                v == 0.001,
            "a grid list of learning rates");
    t_status(mrec_cfg_number(&c, bpr, "l_w", 1, 0, 1, &lw), MREC_OK, "1e-5 as a number");
    t_check(lw == 1e-5, "l_w = %g", lw);
    const char *ws = NULL;
    t_status(mrec_cfg_string(&c, mrec_cfg_get(models, "NGCFM"), "weight_size", 1, &ws), MREC_OK, "a tuple as text");
    t_check(ws && !strcmp(ws, "(64,)"), "weight_size is the text (64,)");
    mrec_cfg_free(&c);
}

static void malformed(void) {
    mrec_cfg c;
    t_status(mrec_cfg_load(&c, write_yaml("bad1.yml", "a: 1\nb: [1, 2\nc: 3\n")), MREC_ERR_FORMAT, "an unclosed list");
    t_check(has("bad1.yml") && has("line"), "the parser's message names file and line: %s", mrec_error_detail());
    t_status(mrec_cfg_load(&c, write_yaml("bad2.yml", "a: &x 1\nb: *x\n")), MREC_ERR_UNSUPPORTED, "an alias");
    t_check(has("line 2"), "named by line: %s", mrec_error_detail());
    t_status(mrec_cfg_load(&c, write_yaml("bad3.yml", "a: 1\n---\nb: 2\n")), MREC_ERR_UNSUPPORTED, "two documents");
    t_status(mrec_cfg_load(&c, write_yaml("bad7.yml", "a: !!str 1\n")), MREC_ERR_UNSUPPORTED, "a tag");
    t_check(has("line 1") && has("tags"), "named by line: %s", mrec_error_detail());
    t_status(mrec_cfg_load(&c, write_yaml("bad4.yml", "- just\n- a list\n")), MREC_ERR_FORMAT, "a list at the top");
    t_status(mrec_cfg_load(&c, write_yaml("bad5.yml", "")), MREC_ERR_FORMAT, "an empty file");
    t_status(mrec_cfg_load(&c, "no/such.yml"), MREC_ERR_IO, "a missing file");
    if (t_status(mrec_cfg_load(&c, write_yaml("dup.yml", "a: 1\nb: 2\na: 3\n")), MREC_OK, "a repeated key parses")) {
        static const char *const keys[] = {"a", "b", NULL};
        t_status(mrec_cfg_check_keys(&c, c.root, "the config", keys), MREC_ERR_FORMAT, "a repeated key is refused");
        t_check(has("line 3") && has("first on line 1"), "both lines named: %s", mrec_error_detail());
        mrec_cfg_free(&c);
    }
}

int main(void) {
    t_suite("config");
    T_REQUIRE(mkdtemp(tmp) != NULL);
    ducho_shape();
    elliot_shape();
    malformed();
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return t_finish();
}
