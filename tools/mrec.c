/* mrec.c: the command line. One binary, subcommands dispatched by name.
 *
 * Exit status: 0 on success, 1 on a usage error, 2 when an input is bad
 * (the message names the file and the problem), 3 on an internal failure.
 */
#include "../include/mrec.h"
#include "../nn/mrec_safetensors.h"
#include "../nn/mrec_tensor.h"
#include "../tokenizers/mrec_tokenizer.h"
#include "mrec_options.h"
#include "mrec_parse.h"
#include "mrec_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "mrec %s: multimodal recommendation in one C binary\n"
            "\n"
            "usage: mrec <command> [options]\n"
            "\n"
            "commands:\n"
            "  demo                       the whole job on the data that ships with mrec, in minutes\n"
            "  extract CONFIG.yml         run a Ducho extraction config (mrec extract --help)\n"
            "  train CONFIG.yml           run an Elliot experiment config (mrec train CONFIG --help)\n"
            "  run CONFIG.yml             extraction and experiment from one file (mrec run --help)\n"
            "  inspect FILE.safetensors   list tensors (name dtype shape) and the parameter count\n"
            "  convert IN.bin OUT.safetensors  a PyTorch checkpoint's state dict as safetensors, no Python\n"
            "  tokenize --tokenizer PATH  token ids of each line of standard input\n"
            "  train --data PATH ...      train and evaluate a recommender (mrec train --help)\n"
            "  extract-text --model DIR ...  embed the text of an item table (mrec extract-text --help)\n"
            "  extract-image --model PATH ... visual features of item images (mrec extract-image --help)\n"
            "  extract-clip --model DIR ...  CLIP image and text features per item, paired by id\n"
            "  clip-scores --model DIR ...   CLIP's image x caption similarity, to check a checkpoint\n"
            "  recommend MODEL_DIR ...    each user's best items from a model saved by train --save\n"
            "  similar MODEL_DIR ...      each item's nearest items in a saved model\n"
            "  serve MODEL_DIR ...        an HTTP/JSON service over a saved model (mrec serve --help)\n"
            "  info                       what this build and machine offer (SIMD, threads, GPU)\n"
            "  finetune-clip --model DIR ... CLIP fine-tuned on the items' own image-text pairs\n"
            "\n"
            "options:\n"
            "  -h, --help                 this help\n"
            "  --version                  the version\n"
            "\n"
            "In every command an option given twice takes its last value; a number must be given whole\n"
            "(no trailing text) and inside the option's range, or the command stops before reading anything.\n",
            MREC_VERSION);
}

static int cmd_inspect(int argc, char **argv) {
    if (argc != 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fprintf(argc == 2 ? stdout : stderr,
                "usage: mrec inspect FILE.safetensors\n"
                "prints one line per tensor, 'name dtype shape', then the parameter count\n");
        return argc == 2 ? 0 : 1;
    }
    mrec_safetensors st;
    mrec_status s = mrec_check_input_file(argv[1], "inspect");
    if (!s) s = mrec_safetensors_open(&st, argv[1]);
    if (s) {
        fprintf(stderr, "mrec inspect: %s: %s\n", mrec_strerror(s), mrec_error_detail());
        return 2;
    }
    int64_t params = 0;
    for (int i = 0; i < st.n_tensors; i++) {
        const mrec_st_entry *e = &st.tensors[i];
        char shape[160];
        printf("%s %s %s\n", e->name, mrec_dtype_name(e->dtype), mrec_shape_str(shape, sizeof shape, e->ndim, e->shape));
        params += mrec_st_entry_numel(e);
    }
    for (int i = 0; i < st.n_meta; i++) printf("# %s = %s\n", st.meta_keys[i], st.meta_values[i]);
    printf("%d tensors, %lld parameters\n", st.n_tensors, (long long)params);
    mrec_safetensors_close(&st);
    return 0;
}

enum { K_TOKENIZER, K_MAX_LENGTH, K_PAIR, K_NO_SPECIAL, N_TOKENIZE_OPTIONS };

static const mrec_option TOKENIZE_OPTIONS[N_TOKENIZE_OPTIONS] = {
    [K_TOKENIZER] = {"--tokenizer", MREC_OPT_PATH, "PATH",
                     "vocab.txt, tokenizer.json, vocab.json (+ merges.txt), CLIP's bpe_simple_vocab_16e6.txt.gz, or a folder holding one",
                     .allow_dir = 1, .section = "options"},
    [K_MAX_LENGTH] = {"--max-length", MREC_OPT_INT, "N", "truncate to N tokens (special tokens included)", NULL, 1, 1000000},
    [K_PAIR] = {"--pair", MREC_OPT_SWITCH, NULL, "each line is two texts separated by a tab"},
    [K_NO_SPECIAL] = {"--no-special", MREC_OPT_SWITCH, NULL, "no [CLS]/[SEP] or <|startoftext|>/<|endoftext|>"},
};

static const mrec_command TOKENIZE = {"tokenize", "usage: mrec tokenize --tokenizer PATH [--max-length N] [--pair] [--no-special]\n",
                                      "Reads UTF-8 lines on standard input and prints, for each, its token ids\n"
                                      "separated by spaces, with the model's special tokens, without padding.\n",
                                      TOKENIZE_OPTIONS, N_TOKENIZE_OPTIONS, 0};

static int cmd_tokenize(int argc, char **argv) {
    mrec_opt_value v[N_TOKENIZE_OPTIONS];
    int rc = mrec_options_parse(&TOKENIZE, argc, argv, v, NULL, NULL, NULL);
    if (rc == MREC_OPTS_HELP) return 0;
    if (rc) return rc;
    const char *path = v[K_TOKENIZER].text;
    int pair = v[K_PAIR].given;
    mrec_tok_options opt = mrec_tok_defaults();
    if (v[K_MAX_LENGTH].given) opt.max_length = (int)v[K_MAX_LENGTH].i;
    if (v[K_NO_SPECIAL].given) opt.add_special = 0;
    if (!path) return fprintf(stderr, "mrec tokenize: --tokenizer is needed (mrec tokenize --help)\n"), 1;
    opt.truncation = opt.max_length > 0;
    mrec_tokenizer *tok;
    mrec_tok_status st = mrec_tokenizer_load(&tok, path);
    if (st) {
        fprintf(stderr, "mrec tokenize: %s: %s\n", mrec_tok_strerror(st), mrec_tok_error_detail());
        return 2;
    }
    char *line = NULL;
    size_t line_cap = 0, cap = 0;
    ssize_t n;
    int32_t *ids = NULL;
    long line_no = 0;
    rc = 0;
    while ((n = getline(&line, &line_cap, stdin)) >= 0) {
        line_no++;
        if (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
        if (n > 0 && line[n - 1] == '\r') line[--n] = '\0';
        if (strlen(line) != (size_t)n) {
            fprintf(stderr, "mrec tokenize: line %ld contains a NUL byte\n", line_no);
            rc = 2;
            break;
        }
        char *second = NULL;
        if (pair) {
            second = strchr(line, '\t');
            if (!second) {
                fprintf(stderr, "mrec tokenize: line %ld has no tab to separate the pair\n", line_no);
                rc = 2;
                break;
            }
            *second++ = '\0';
        }
        size_t len = 0;
        for (;;) {
            st = mrec_tokenizer_encode(tok, line, second, &opt, ids, NULL, NULL, cap, &len);
            if (st != MREC_TOK_ERR_SPACE) break;
            int32_t *grown = realloc(ids, (len + 16) * sizeof *ids);
            if (!grown) break;
            ids = grown;
            cap = len + 16;
        }
        if (st) {
            fprintf(stderr, "mrec tokenize: line %ld: %s: %s\n", line_no, mrec_tok_strerror(st), mrec_tok_error_detail());
            rc = st == MREC_TOK_ERR_ARG ? 1 : 3;
            break;
        }
        for (size_t i = 0; i < len; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    }
    free(line);
    free(ids);
    mrec_tokenizer_free(tok);
    if (fflush(stdout) != 0) return 3;
    return rc;
}

static int cmd_info(void) {
    printf("mrec %s\n", MREC_VERSION);
    printf("simd: %s\n", mrec_simd_name(mrec_simd_detect()));
    mrec_context_options opt = mrec_context_defaults();
    mrec_context *ctx;
    mrec_status s = mrec_context_create(&ctx, &opt);
    if (s) {
        fprintf(stderr, "mrec info: %s: %s\n", mrec_strerror(s), mrec_error_detail());
        return 3;
    }
    printf("threads: %d\n", mrec_pool_threads(ctx->pool));
    printf("cuda build: %s\n", mrec_cuda_compiled() ? "yes" : "no");
    printf("device: %s\n", mrec_device_name(ctx->device));
    if (ctx->notice[0]) printf("notice: %s\n", ctx->notice);
    mrec_context_destroy(ctx);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("mrec %s\n", MREC_VERSION);
        return 0;
    }
    if (strcmp(cmd, "inspect") == 0) return cmd_inspect(argc - 1, argv + 1);
    if (strcmp(cmd, "convert") == 0) return mrec_cmd_convert(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0) return cmd_info();
    if (strcmp(cmd, "tokenize") == 0) return cmd_tokenize(argc - 1, argv + 1);
    if (strcmp(cmd, "extract") == 0) return mrec_cmd_extract(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0) return mrec_cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "demo") == 0) return mrec_cmd_demo(argc - 1, argv + 1);
    if (strcmp(cmd, "train") == 0) /* mrec train CONFIG.yml is an Elliot experiment */
        return argc >= 3 && argv[2][0] != '-' ? mrec_cmd_experiment(argc - 1, argv + 1) : mrec_cmd_train(argc - 1, argv + 1);
    if (strcmp(cmd, "extract-text") == 0) return mrec_cmd_extract_text(argc - 1, argv + 1);
    if (strcmp(cmd, "extract-image") == 0) return mrec_cmd_extract_image(argc - 1, argv + 1);
    if (strcmp(cmd, "extract-clip") == 0) return mrec_cmd_extract_clip(argc - 1, argv + 1);
    if (strcmp(cmd, "clip-scores") == 0) return mrec_cmd_clip_scores(argc - 1, argv + 1);
    if (strcmp(cmd, "recommend") == 0) return mrec_cmd_recommend(argc - 1, argv + 1);
    if (strcmp(cmd, "similar") == 0) return mrec_cmd_similar(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0) return mrec_cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "finetune-clip") == 0) return mrec_cmd_finetune_clip(argc - 1, argv + 1);
    fprintf(stderr, "mrec: unknown command '%s' (see mrec --help)\n", cmd);
    return 1;
}
