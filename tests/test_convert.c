/* test_convert.c: PyTorch checkpoints to safetensors (nn/mrec_pytorch.h, mrec convert).
 *
 * Parity: checkpoints written by torch.save (tools/golden/torch_checkpoints.py:
 * every element type, views sharing one storage, an mmcv-style nested
 * checkpoint, the legacy format, protocol 4, a big-endian archive) are
 * converted and compared tensor by tensor with the safetensors file the
 * script wrote from torch's own bytes: name, dtype, shape and every byte.
 * The tolerance is zero: conversion copies bytes (or swaps them), it never
 * computes. Hostile input: each file of tests/fixtures/torch/hostile/ (a
 * pickle calling os.system, builtins.eval, unknown opcodes, truncated
 * archives, sizes that overflow, memo indices out of range, an offset past its
 * storage, a zip entry declaring 4 GB) must be refused with its message,
 * and no output file (nor a temporary one) may be left; every truncation of
 * a real checkpoint must be refused too. Runs $MREC_BIN for the command.
 */
#include "harness.h"

#include "../nn/mrec_io.h"
#include "../nn/mrec_pytorch.h"
#include "../nn/mrec_resnet.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/torch/"

static char tmpdir[] = "/tmp/mrec_test_convert_XXXXXX";
static const char *bin;

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int slot;
    slot = (slot + 1) % 4;
    snprintf(buf[slot], sizeof buf[slot], "%s/%s", tmpdir, name);
    return buf[slot];
}

static int files_in_tmp(void) {
    int n = 0;
    DIR *d = opendir(tmpdir);
    for (struct dirent *e; d && (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) closedir(d);
    return n;
}

/* got and want hold the same tensors in the same dtypes and shapes, byte for byte. */
static void same_tensors(const char *what, const char *got_path, const char *want_path) {
    mrec_safetensors got, want;
    if (!t_status(mrec_safetensors_open(&want, want_path), MREC_OK, "%s: open %s", what, want_path)) return;
    if (!t_status(mrec_safetensors_open(&got, got_path), MREC_OK, "%s: open the converted file", what)) {
        mrec_safetensors_close(&want);
        return;
    }
    int ok = t_check(got.n_tensors == want.n_tensors, "%s: %d tensors, want %d", what, got.n_tensors, want.n_tensors);
    int bad = 0;
    for (int i = 0; i < want.n_tensors && ok; i++) {
        const mrec_st_entry *w = &want.tensors[i], *g = mrec_safetensors_find(&got, w->name);
        int same = g && g->dtype == w->dtype && g->ndim == w->ndim && g->end - g->begin == w->end - w->begin;
        for (int d = 0; same && d < w->ndim; d++) same = g->shape[d] == w->shape[d];
        if (same) same = memcmp(g->data, w->data, (size_t)(w->end - w->begin)) == 0;
        if (!same && bad++ < 5)
            fprintf(stderr, "  %s: tensor '%s' differs (%s)\n", what, w->name, g ? "dtype, shape or bytes" : "missing");
    }
    if (ok) t_check(!bad, "%s: %d tensors, every one equal to torch's bytes (%d differ)", what, want.n_tensors, bad);
    const char *fmt = mrec_safetensors_meta(&got, "format");
    t_check(fmt && !strcmp(fmt, "pt"), "%s: __metadata__ format pt", what);
    mrec_safetensors_close(&got);
    mrec_safetensors_close(&want);
}

static void test_parity(void) {
    static const struct {
        const char *file, *expected, *selected;
        int n;
    } cases[] = {
        {"dtypes.bin", "dtypes", "", 23},   {"proto4.bin", "proto4", "", 23},   {"views.bin", "views", "", 7},
        {"nested.pth", "nested", "state_dict", 9}, {"legacy.pth", "legacy", "state_dict", 9}, {"bigendian.bin", "bigendian", "", 5},
        {"module.pt", "module", "torchvision.models.resnet.ResNet", 98},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char in[256], want[256], selected[256];
        snprintf(in, sizeof in, FIX "%s", cases[i].file);
        snprintf(want, sizeof want, FIX "%s.expected.safetensors", cases[i].expected);
        const char *out = tmp_path("out.safetensors");
        int n = -1;
        int64_t params = 0;
        if (!t_status(mrec_pytorch_to_safetensors(in, out, NULL, NULL, &n, &params, selected, sizeof selected), MREC_OK, "convert %s", in))
            continue;
        t_check(n == cases[i].n && !strcmp(selected, cases[i].selected), "%s: %d tensors from '%s'", cases[i].file, n, selected);
        same_tensors(cases[i].file, out, want);
        unlink(out);
    }
    /* What the reader sees before writing: the legacy flag, the byte order, the views' strides. */
    mrec_pytorch pt;
    if (t_status(mrec_pytorch_open(&pt, FIX "views.bin", NULL), MREC_OK, "open views.bin")) {
        int shared = 1, strided = 0;
        for (int i = 0; i < pt.n_tensors; i++) shared &= pt.tensors[i].storage == pt.tensors[0].storage;
        for (int i = 0; i < pt.n_tensors; i++) strided += !strcmp(pt.tensors[i].name, "t") && pt.tensors[i].stride[0] == 1 && pt.tensors[i].stride[1] == 6;
        t_check(pt.n_storages == 1 && shared && strided == 1 && !pt.legacy, "views.bin: 7 views of one storage, 't' with strides (1, 6)");
        mrec_pytorch_close(&pt);
    }
    if (t_status(mrec_pytorch_open(&pt, FIX "legacy.pth", "state_dict"), MREC_OK, "open legacy.pth with key state_dict"))
        t_check(pt.legacy && pt.n_tensors == 9, "legacy.pth is read as the legacy format");
    mrec_pytorch_close(&pt);
    if (t_status(mrec_pytorch_open(&pt, FIX "bigendian.bin", NULL), MREC_OK, "open bigendian.bin"))
        t_check(pt.big_endian, "bigendian.bin: byteorder big");
    mrec_pytorch_close(&pt);
}

static void test_keys(void) {
    const char *out = tmp_path("k.safetensors");
    t_status(mrec_pytorch_to_safetensors(FIX "nested.pth", out, "state_dict", NULL, NULL, NULL, NULL, 0), MREC_OK, "--key state_dict");
    same_tensors("nested.pth --key state_dict", out, FIX "nested.expected.safetensors");
    unlink(out);
    t_status(mrec_pytorch_to_safetensors(FIX "nested.pth", out, "weights", NULL, NULL, NULL, NULL, 0), MREC_ERR_NOT_FOUND, "a missing --key");
    t_check(strstr(mrec_error_detail(), "'weights'") != NULL, "the missing key is named: %s", mrec_error_detail());
    t_status(mrec_pytorch_to_safetensors(FIX "nested.pth", out, "optimizer/state", NULL, NULL, NULL, NULL, 0), MREC_ERR_FORMAT,
             "--key optimizer/state (a dict of dicts)");
    t_check(strstr(mrec_error_detail(), "(optimizer/state) is int, not a string") != NULL, "a key that is no string is refused: %s",
            mrec_error_detail());
    t_status(mrec_pytorch_to_safetensors(FIX "nested.pth", out, "meta/epoch", NULL, NULL, NULL, NULL, 0), MREC_ERR_FORMAT, "--key to an int");
    t_check(access(out, F_OK) != 0 && files_in_tmp() == 0, "no output after a refused key");
}

/* A whole module (torch.save(model), as Ducho's MMFashion.pt) gives its
 * state_dict(); --prefix takes MMFashion's backbone out of its checkpoint;
 * the ResNet loader reads the module file as it reads the safetensors. */
static void test_modules(void) {
    const char *out = tmp_path("m.safetensors");
    int n = 0;
    t_status(mrec_pytorch_to_safetensors(FIX "mmfashion.pth", out, NULL, "backbone.", &n, NULL, NULL, 0), MREC_OK, "--prefix backbone.");
    t_check(n == 98, "mmfashion.pth --prefix backbone.: the backbone's 98 tensors (%d), not the head's", n);
    same_tensors("mmfashion.pth --prefix backbone.", out, FIX "mmfashion.expected.safetensors");
    unlink(out);
    t_status(mrec_pytorch_to_safetensors(FIX "mmfashion.pth", out, NULL, "neck.", NULL, NULL, NULL, 0), MREC_ERR_NOT_FOUND,
             "a prefix no tensor has");
    t_check(strstr(mrec_error_detail(), "'neck.'") && access(out, F_OK) != 0, "the prefix is named, nothing written: %s", mrec_error_detail());

    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 1;
    mrec_context *ctx;
    if (!t_status(mrec_context_create(&ctx, &o), MREC_OK, "a CPU context")) return;
    enum { B = 2, H = 40, W = 36 };
    static float x[B * 3 * H * W], want[B * 32], got[B * 32], want_logits[B * 5], got_logits[B * 5];
    for (int i = 0; i < B * 3 * H * W; i++) x[i] = (float)((i * 7919) % 201 - 100) / 100.0f;
    const char *files[2] = {FIX "module.expected.safetensors", FIX "module.pt"};
    float *pooled[2] = {want, got}, *logits[2] = {want_logits, got_logits};
    int ok = 1;
    for (int f = 0; f < 2; f++) {
        mrec_resnet m;
        ok &= t_status(mrec_resnet_load(&m, files[f]), MREC_OK, "ResNet from %s", files[f]) &&
              t_status(mrec_context_reserve(ctx, mrec_resnet_workspace_bytes(&m, H, W)), MREC_OK, "workspace") &&
              t_status(mrec_resnet_forward(ctx, &m, x, B, H, W, pooled[f], logits[f]), MREC_OK, "forward from %s", files[f]);
        mrec_resnet_free(&m);
    }
    if (ok)
        t_check(!memcmp(want, got, sizeof want) && !memcmp(want_logits, got_logits, sizeof want_logits),
                "the ResNet read from module.pt gives the bits of the one read from its safetensors");
    mrec_resnet m;
    t_status(mrec_resnet_load(&m, FIX "mmfashion.pth"), MREC_ERR_NOT_FOUND, "mmfashion.pth without --prefix is no torchvision ResNet");
    t_check(strstr(mrec_error_detail(), "mmfashion.pth") != NULL, "the file is named: %s", mrec_error_detail());
    mrec_resnet_free(&m);
    mrec_context_destroy(ctx);
}

static void test_hostile(void) {
    static const struct {
        const char *file;
        mrec_status want;
        const char *says;
    } cases[] = {
        {"os_system.bin", MREC_ERR_UNSUPPORTED, "global 'os.system'"},
        {"eval.bin", MREC_ERR_UNSUPPORTED, "global 'builtins.eval'"},
        {"stack_global.bin", MREC_ERR_UNSUPPORTED, "global 'posix.system'"},
        {"complex.bin", MREC_ERR_UNSUPPORTED, "'torch.ComplexFloatStorage'"},
        {"newobj.bin", MREC_ERR_UNSUPPORTED, "NEWOBJ at byte 28 on a class or function that is not a module class"},
        {"module_main.pt", MREC_ERR_UNSUPPORTED, "global '__main__.Net'"},
        {"module_args.pt", MREC_ERR_UNSUPPORTED, "makes torch.nn.modules.linear.Linear with arguments"},
        {"module_cycle.pt", MREC_ERR_FORMAT, "modules nested more than 64 deep (a cycle?) at 'self.self."},
        {"unknown_opcode.bin", MREC_ERR_FORMAT, "unknown pickle opcode 0xff"},
        {"build.bin", MREC_ERR_FORMAT, "BUILD at byte 5 on a list"},
        {"no_stop.bin", MREC_ERR_FORMAT, "without STOP"},
        {"memo.bin", MREC_ERR_FORMAT, "memo index 200"},
        {"memo_huge.bin", MREC_ERR_FORMAT, "memo index 4294967295"},
        {"marks.bin", MREC_ERR_FORMAT, "open MARKs"},
        {"huge_size.bin", MREC_ERR_SHAPE, "tensor 'w': its element count overflows"},
        {"offset.bin", MREC_ERR_SHAPE, "tensor 'w' (offset 3) reaches byte 20 of storage '0', which holds 16 bytes"},
        {"short_storage.bin", MREC_ERR_FORMAT, "'archive/data/0' holds 16 bytes where the pickle declares 32"},
        {"missing_storage.bin", MREC_ERR_FORMAT, "no entry 'archive/data/7'"},
        {"bad_key.bin", MREC_ERR_FORMAT, "storage key '../0'"},
        {"not_tensor.bin", MREC_ERR_FORMAT, "key 'w' of the state dict (state_dict) holds str"},
        {"zipbomb.bin", MREC_ERR_FORMAT, "declares 4294967280 bytes from 1033 compressed"},
        {"truncated.bin", MREC_ERR_FORMAT, "not a readable zip archive"},
        {"legacy_truncated.pth", MREC_ERR_FORMAT, "(truncated)"},
        {"not_torch.bin", MREC_ERR_FORMAT, "not a PyTorch checkpoint"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char in[256];
        snprintf(in, sizeof in, FIX "hostile/%s", cases[i].file);
        const char *out = tmp_path("hostile.safetensors");
        mrec_status st = mrec_pytorch_to_safetensors(in, out, NULL, NULL, NULL, NULL, NULL, 0);
        const char *d = mrec_error_detail();
        t_check(st == cases[i].want && strstr(d, cases[i].says) && strstr(d, cases[i].file) && access(out, F_OK) != 0 && files_in_tmp() == 0,
                "%s refused (%s, want %s) naming the file and '%s', nothing written: %s", cases[i].file, mrec_strerror(st),
                mrec_strerror(cases[i].want), cases[i].says, d);
    }
}

/* Every prefix of a real checkpoint is refused: a cut file never converts
 * (the zip's directory is at its end; the legacy format's storages are). */
static void test_truncations(void) {
    const char *files[] = {FIX "legacy.pth", FIX "views.bin"};
    for (int f = 0; f < 2; f++) {
        void *map;
        size_t size;
        if (!t_status(mrec_map_file(files[f], &map, &size), MREC_OK, "map %s", files[f])) continue;
        int accepted = 0;
        for (size_t n = 0; n < size; n++) {
            uint8_t *copy = malloc(n ? n : 1); /* exactly n bytes, so a read past them is a sanitizer error */
            if (!copy) break;
            memcpy(copy, map, n);
            mrec_pytorch pt;
            if (mrec_pytorch_parse(&pt, copy, n, "cut", NULL) == MREC_OK) {
                accepted++;
                mrec_pytorch_close(&pt);
            }
            free(copy);
        }
        mrec_pytorch pt;
        t_status(mrec_pytorch_parse(&pt, map, size, files[f], NULL), MREC_OK, "%s whole, from memory", files[f]);
        mrec_pytorch_close(&pt);
        t_check(accepted == 0, "%s: all %zu truncations refused (%d accepted)", files[f], size, accepted);
        mrec_unmap_file(map, size);
    }
}

static int run(const char *args, char *out, size_t cap) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", bin, args);
    return t_run(cmd, out, cap);
}

static void test_cli(void) {
    static char out[8192];
    char args[1024];
    snprintf(args, sizeof args, "convert " FIX "nested.pth %s", tmp_path("cli.safetensors"));
    int rc = run(args, out, sizeof out);
    t_check(rc == 0 && strstr(out, "9 tensors, 139 parameters") && strstr(out, "key state_dict"), "mrec convert nested.pth: %s", out);
    same_tensors("mrec convert nested.pth", tmp_path("cli.safetensors"), FIX "nested.expected.safetensors");
    rc = run(args, out, sizeof out);
    t_check(rc == 1 && strstr(out, "exists (--overwrite"), "an existing output is refused: %s", out);
    snprintf(args, sizeof args, "convert " FIX "views.bin %s --overwrite", tmp_path("cli.safetensors"));
    rc = run(args, out, sizeof out);
    t_check(rc == 0, "--overwrite replaces it: %s", out);
    same_tensors("mrec convert --overwrite", tmp_path("cli.safetensors"), FIX "views.expected.safetensors");
    unlink(tmp_path("cli.safetensors"));
    snprintf(args, sizeof args, "convert " FIX "hostile/os_system.bin %s", tmp_path("cli.safetensors"));
    rc = run(args, out, sizeof out);
    t_check(rc == 2 && strstr(out, "os_system.bin") && strstr(out, "'os.system'") && access(tmp_path("cli.safetensors"), F_OK) != 0,
            "mrec convert refuses os.system with exit 2, writing nothing: %s", out);
    snprintf(args, sizeof args, "convert " FIX "legacy.pth %s --key meta", tmp_path("cli.safetensors"));
    rc = run(args, out, sizeof out);
    t_check(rc == 2 && strstr(out, "key 'mmcv_version'") && strstr(out, "not a tensor"), "--key meta: %s", out);
    rc = run("convert " FIX "views.bin", out, sizeof out);
    t_check(rc == 1, "one argument is a usage error: %s", out);
    t_check(files_in_tmp() == 0, "nothing left behind by the command");
}

/* weights/fetch, offline: a row whose file is a pytorch_model.bin is fetched, verified and
 * converted beside itself; a hostile one is fetched, verified and refused, leaving no safetensors. */
/* The benchmark's Ducho config names MMFashion as a whole pickled module
 * (./demos/demo_x/MMFashion.pt): mrec extract reads it as it reads the same
 * ResNet's safetensors, to the byte, into torch/MMFashion/avgpool as Ducho
 * names a model file (the path the benchmark's Elliot template reads). */
static void test_ducho_module(void) {
    static char out[8192];
    char cmd[3072];
    snprintf(cmd, sizeof cmd,
             "d=%s/duc && mkdir -p $d/images && n=0 && for p in $(head -3 tests/fixtures/clip/images.txt); do "
             "cp tests/data/$p $d/images/i$n.jpg; n=$((n+1)); done && cp " FIX "module.pt $d/MMFashion.pt && "
             "cp " FIX "module.expected.safetensors $d/tiny.safetensors && printf '%%s\n' 'dataset_path: .' 'gpu list: -1' "
             "'visual:' '  items:' '    input_path: images' '    output_path: visual' '    model: [' "
             "'      { model_name: ./MMFashion.pt, output_layers: avgpool, reshape: [224, 224], preprocessing: zscore, backend: torch },' "
             "'      { model_name: ./tiny.safetensors, output_layers: avgpool, reshape: [224, 224], preprocessing: zscore, backend: torch }' "
             "'    ]' > $d/config.yml && cd $d && %s%s extract config.yml 2>&1 && for i in 0 1 2; do "
             "cmp visual/torch/MMFashion/avgpool/i$i.npy visual/torch/tiny/avgpool/i$i.npy || exit 9; done",
             tmpdir, bin[0] == '/' ? "" : "$OLDPWD/", bin);
    int rc = t_run(cmd, out, sizeof out);
    t_check(rc == 0 && strstr(out, "3 images (32-d avgpool"), "a Ducho config naming MMFashion.pt extracts the bytes of its safetensors: %s",
            out);
    snprintf(cmd, sizeof cmd, "rm -rf %s/duc", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s/duc\n", tmpdir);
}

static void test_fetch(void) {
    static char out[16384];
    char cmd[16384], cwd[2048], abs_bin[2300];
    if (system("command -v curl >/dev/null 2>&1") != 0) {
        t_skip("weights/fetch: curl is not installed");
        return;
    }
    if (!getcwd(cwd, sizeof cwd)) return;
    snprintf(abs_bin, sizeof abs_bin, "%s%s%s", bin[0] == '/' ? "" : cwd, bin[0] == '/' ? "" : "/", bin);
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir -p hub/org/pt/resolve/main hub/org/evil/resolve/main && cp %s/" FIX "views.bin hub/org/pt/resolve/main/pytorch_model.bin && "
             "cp %s/" FIX "hostile/os_system.bin hub/org/evil/resolve/main/pytorch_model.bin && "
             "for r in pt evil; do printf 'org/%%s\torg/%%s\tpytorch_model.bin\t%%s\t-\n' $r $r "
             "$(sha256sum hub/org/$r/resolve/main/pytorch_model.bin | cut -d' ' -f1); done > m.tsv",
             tmpdir, cwd, cwd);
    if (!t_check(system(cmd) == 0, "a file:// hub with two pytorch_model.bin")) return;
    snprintf(cmd, sizeof cmd, "cd %s && MREC=%s %s/weights/fetch --manifest m.tsv --base file://%s/hub --dest w org/pt 2>&1", tmpdir, abs_bin, cwd, tmpdir);
    int rc = t_run(cmd, out, sizeof out);
    t_check(rc == 0 && strstr(out, "sha256 verified") && strstr(out, "7 tensors"), "weights/fetch converts a verified pytorch_model.bin: %s", out);
    same_tensors("weights/fetch's model.safetensors", tmp_path("w/org/pt/model.safetensors"), FIX "views.expected.safetensors");
    rc = t_run(cmd, out, sizeof out);
    t_check(rc == 0 && strstr(out, "present") && !strstr(out, "tensors"), "a second fetch finds both and converts nothing: %s", out);
    snprintf(cmd, sizeof cmd, "cd %s && MREC=%s %s/weights/fetch --manifest m.tsv --base file://%s/hub --dest w org/evil 2>&1", tmpdir, abs_bin, cwd, tmpdir);
    rc = t_run(cmd, out, sizeof out);
    t_check(rc == 2 && strstr(out, "'os.system'") && strstr(out, "not written") && access(tmp_path("w/org/evil/model.safetensors"), F_OK) != 0,
            "weights/fetch refuses a hostile pytorch_model.bin and writes no safetensors: %s", out);
    snprintf(cmd, sizeof cmd, "cd %s && rm -rf hub w m.tsv", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not clean %s\n", tmpdir);
}

int main(void) {
    t_suite("convert");
    bin = getenv("MREC_BIN");
    if (!bin) bin = "bin/mrec";
    T_REQUIRE(mkdtemp(tmpdir) != NULL);
    test_parity();
    test_keys();
    test_modules();
    test_hostile();
    test_truncations();
    test_cli();
    test_ducho_module();
    test_fetch();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return t_finish();
}
