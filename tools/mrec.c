/* mrec.c: the command line. One binary, subcommands dispatched by name.
 *
 * Exit status: 0 on success, 1 on a usage error, 2 when an input is bad
 * (the message names the file and the problem), 3 on an internal failure.
 */
#include "../nn/mrec_safetensors.h"
#include "../nn/mrec_tensor.h"

#include <stdio.h>
#include <string.h>

#define MREC_VERSION "0.1.0"

static void usage(FILE *f) {
    fprintf(f,
            "mrec %s: multimodal recommendation in one C binary\n"
            "\n"
            "usage: mrec <command> [options]\n"
            "\n"
            "commands:\n"
            "  inspect FILE.safetensors   list tensors (name dtype shape) and the parameter count\n"
            "  info                       what this build and machine offer (SIMD, threads, GPU)\n"
            "\n"
            "options:\n"
            "  -h, --help                 this help\n"
            "  --version                  the version\n",
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
    mrec_status s = mrec_safetensors_open(&st, argv[1]);
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
    if (strcmp(cmd, "info") == 0) return cmd_info();
    fprintf(stderr, "mrec: unknown command '%s' (see mrec --help)\n", cmd);
    return 1;
}
