/* cmd_convert.c: mrec convert IN.bin|IN.pth|IN.pt OUT.safetensors [--key PATH] [--prefix P] [--overwrite]
 *
 * A PyTorch checkpoint (torch.save of a state dict: Hugging Face's
 * pytorch_model.bin, an mmcv / MMFashion .pth; or of a whole torch.nn /
 * torchvision module, as Ducho's MMFashion.pt) to safetensors, without
 * Python: nn/mrec_pytorch.h reads it with a restricted unpickler that
 * executes nothing, and the tensors are written contiguous, in the file's
 * order, under their state-dict names. OUT appears whole or not at all.
 */
#include "../nn/mrec_pytorch.h"
#include "mrec_options.h"
#include "mrec_parse.h"
#include "mrec_tools.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

enum { C_KEY, C_PREFIX, C_OVERWRITE, N_CONVERT_OPTIONS };

static const mrec_option CONVERT_OPTIONS[N_CONVERT_OPTIONS] = {
    [C_KEY] = {"--key", MREC_OPT_TEXT, "PATH",
               "the dict holding the state dict, as keys joined by '/' (default: the top level when all its values are tensors, "
               "else the first of state_dict, model_state_dict, model, module)",
               .section = "options"},
    [C_PREFIX] = {"--prefix", MREC_OPT_TEXT, "P",
                  "keep only the tensors whose names start with P, P taken off (backbone. of an MMFashion or mmcv checkpoint)"},
    [C_OVERWRITE] = {"--overwrite", MREC_OPT_SWITCH, NULL, "replace an existing OUT (it stays as it was until the new one is whole)"},
};

static const mrec_command CONVERT = {
    "convert", "usage: mrec convert IN.bin|IN.pth|IN.pt OUT.safetensors [--key PATH] [--prefix P] [--overwrite]\n\n"
               "Writes the state dict of a PyTorch checkpoint (torch.save, zip or legacy format) as safetensors,\n"
               "or of a whole module saved by torch.save(model) (its state_dict(): parameters and persistent buffers),\n"
               "each tensor contiguous, under its name, with __metadata__ {\"format\": \"pt\"}.",
    "The pickle is read, never run: only the opcodes and globals of a state dict are taken (dicts, lists,\n"
    "tuples, numbers, strings, collections.OrderedDict, torch's tensor rebuilders, storages and dtypes), and\n"
    "the classes of torch.nn and torchvision.models as records of their attributes, never instantiated;\n"
    "anything else (a function such as os.system, another object) is refused by name, and nothing is written.\n"
    "Element types: F32 F64 F16 BF16 I64 I32 I16 I8 U8 BOOL U16 U32 U64 F8_E4M3 F8_E5M2. Tensors that\n"
    "share a storage are written as separate copies; a big-endian zip checkpoint is swapped to little-endian.\n",
    CONVERT_OPTIONS, N_CONVERT_OPTIONS, 2};

int mrec_cmd_convert(int argc, char **argv) {
    mrec_opt_value v[N_CONVERT_OPTIONS];
    const char *pos[2];
    int n_pos = 0;
    int rc = mrec_options_parse(&CONVERT, argc, argv, v, NULL, pos, &n_pos);
    if (rc == MREC_OPTS_HELP) return 0;
    if (rc) return rc;
    if (n_pos != 2) {
        fprintf(stderr, "mrec convert: an input checkpoint and an output file are needed (mrec convert --help)\n");
        return 1;
    }
    const char *in = pos[0], *out = pos[1];
    struct stat sb;
    if (!v[C_OVERWRITE].given && lstat(out, &sb) == 0) {
        fprintf(stderr, "mrec convert: %s exists (--overwrite replaces it)\n", out);
        return 1;
    }
    mrec_status s = mrec_check_input_file(in, "convert");
    int n = 0;
    int64_t params = 0;
    char selected[256] = "";
    if (!s) s = mrec_pytorch_to_safetensors(in, out, v[C_KEY].given ? v[C_KEY].text : NULL,
                                             v[C_PREFIX].given ? v[C_PREFIX].text : NULL, &n, &params, selected, sizeof selected);
    if (s) {
        fprintf(stderr, "mrec convert: %s: %s\n", mrec_strerror(s), mrec_error_detail());
        return s == MREC_ERR_NOMEM ? 3 : 2;
    }
    int module = selected[0] && (!strncmp(selected, "torch.", 6) || !strncmp(selected, "torchvision.", 12));
    printf("%s: %d tensors, %lld parameters, from %s%s%s%s%s%s\n", out, n, (long long)params, in,
           module ? " (a whole " : selected[0] ? " key " : "", selected, module ? " module)" : "",
           v[C_PREFIX].given ? ", prefix taken off: " : "", v[C_PREFIX].given ? v[C_PREFIX].text : "");
    return 0;
}
