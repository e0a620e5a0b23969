/* test_io.c: safetensors and .npy readers and writers, half precision.
 *
 * Parity: the tiny BERT checkpoint, its F16/BF16 casts and the .npy files
 * were written by PyTorch, safetensors and numpy (tools/golden/core_fixtures.py);
 * values must match bit for bit, and mrec's .npy writer must produce the
 * same bytes as numpy's. Hostile input: a set of malformed safetensors
 * files, built here one defect each, must be rejected with the right status
 * and a message naming the file and the tensor.
 */
#include "harness.h"

#include "../nn/mrec_npy.h"
#include "../nn/mrec_safetensors.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/"

static char tmpdir[] = "/tmp/mrec_test_io_XXXXXX";

static const char *tmp_path(const char *name) {
    static char buf[4][256];
    static int slot;
    slot = (slot + 1) % 4;
    snprintf(buf[slot], sizeof buf[slot], "%s/%s", tmpdir, name);
    return buf[slot];
}

static char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    *size = (size_t)n;
    return buf;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

/* ---- half precision -------------------------------------------------------- */

static void test_half(void) {
    /* Every half widens exactly and narrows back to itself. */
    int bad16 = 0, badbf = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = mrec_f16_to_f32((uint16_t)h);
        uint16_t back = mrec_f32_to_f16(f);
        if (isnan(f) ? !isnan(mrec_f16_to_f32(back)) : back != h) bad16++;
        float g = mrec_bf16_to_f32((uint16_t)h);
        uint16_t gback = mrec_f32_to_bf16(g);
        if (isnan(g) ? !isnan(mrec_bf16_to_f32(gback)) : gback != h) badbf++;
    }
    t_check(bad16 == 0, "f16 -> f32 -> f16 round trip: %d of 65536 differ", bad16);
    t_check(badbf == 0, "bf16 -> f32 -> bf16 round trip: %d of 65536 differ", badbf);

    /* Narrowing rounds as PyTorch's .half() and .bfloat16() do. */
    float *x;
    int ndim;
    int64_t shape[8];
    mrec_status st = mrec_npy_read_f32(FIX "half_rounding.npy", &x, &ndim, shape);
    if (!t_status(st, MREC_OK, "read half_rounding.npy")) return;
    int64_t n = shape[1];
    int bh = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = mrec_f32_to_f16(x[i]), b = mrec_f32_to_bf16(x[i]);
        if (h != (uint16_t)x[n + i] && !(isnan(x[i]) && isnan(mrec_f16_to_f32(h)))) {
            if (bh++ < 5) fprintf(stderr, "  f16(%.9g) = 0x%04x, torch 0x%04x\n", x[i], h, (unsigned)x[n + i]);
        }
        if (b != (uint16_t)x[2 * n + i] && !(isnan(x[i]) && isnan(mrec_bf16_to_f32(b)))) {
            if (bb++ < 5) fprintf(stderr, "  bf16(%.9g) = 0x%04x, torch 0x%04x\n", x[i], b, (unsigned)x[2 * n + i]);
        }
    }
    t_check(bh == 0, "f32 -> f16 rounding matches torch on %lld values (%d differ)", (long long)n, bh);
    t_check(bb == 0, "f32 -> bf16 rounding matches torch on %lld values (%d differ)", (long long)n, bb);
    free(x);
}

/* ---- safetensors: real checkpoint layout -------------------------------------- */

static void test_tiny_bert(void) {
    mrec_safetensors st;
    mrec_status s = mrec_safetensors_open(&st, FIX "tiny_bert/model.safetensors");
    if (!t_status(s, MREC_OK, "open tiny_bert")) return;
    t_check(st.n_tensors == 39, "tiny_bert has 39 tensors, read %d", st.n_tensors);
    t_check(mrec_safetensors_meta(&st, "format") && strcmp(mrec_safetensors_meta(&st, "format"), "pt") == 0,
            "__metadata__ format = pt kept");
    int64_t qshape[2] = {32, 32};
    float q[32 * 32], qref[32 * 32];
    s = mrec_safetensors_read_f32(&st, "encoder.layer.0.attention.self.query.weight", 2, qshape, q);
    t_status(s, MREC_OK, "read query weight");
    float *ref;
    int ndim;
    int64_t shape[8];
    if (t_status(mrec_npy_read_f32(FIX "tiny_bert/query0.npy", &ref, &ndim, shape), MREC_OK, "query0.npy")) {
        memcpy(qref, ref, sizeof qref);
        t_allclose("query weight: safetensors vs numpy", qref, q, 32 * 32, 0, 0);
        free(ref);
    }
    int64_t wrong[2] = {32, 31};
    s = mrec_safetensors_read_f32(&st, "encoder.layer.0.attention.self.query.weight", 2, wrong, q);
    t_status(s, MREC_ERR_SHAPE, "wrong expected shape");
    t_check(strstr(mrec_error_detail(), "query.weight") && strstr(mrec_error_detail(), "(32, 32)"),
            "shape error names tensor and shape: %s", mrec_error_detail());
    s = mrec_safetensors_expect(&st, "bert.pooler.dense.weight", 2, qshape, NULL);
    t_status(s, MREC_ERR_NOT_FOUND, "missing tensor");
    t_check(strstr(mrec_error_detail(), "model.safetensors") != NULL, "not-found names the file: %s", mrec_error_detail());
    mrec_safetensors_close(&st);

    /* F16 and BF16 casts widen to what PyTorch's .float() gives. */
    static const char *tags[2] = {"f16", "bf16"};
    for (int t = 0; t < 2; t++) {
        char path[128], npy[128];
        snprintf(path, sizeof path, FIX "tiny_bert_%s.safetensors", tags[t]);
        snprintf(npy, sizeof npy, FIX "tiny_bert/query0_%s.npy", tags[t]);
        if (!t_status(mrec_safetensors_open(&st, path), MREC_OK, "open %s", path)) continue;
        const mrec_st_entry *e = mrec_safetensors_find(&st, "encoder.layer.0.attention.self.query.weight");
        t_check(e && e->dtype == (t ? MREC_BF16 : MREC_F16), "%s dtype", tags[t]);
        s = mrec_safetensors_read_f32(&st, "encoder.layer.0.attention.self.query.weight", 2, qshape, q);
        t_status(s, MREC_OK, "read %s query", tags[t]);
        if (t_status(mrec_npy_read_f32(npy, &ref, &ndim, shape), MREC_OK, "%s", npy)) {
            t_allclose(tags[t], ref, q, 32 * 32, 0, 0);
            free(ref);
        }
        mrec_safetensors_close(&st);
    }
}

/* ---- safetensors: writer round trip ------------------------------------------- */

static void test_st_roundtrip(void) {
    float f32[6] = {1, -2, 3.5f, 0, -0.0f, 1e-30f};
    uint16_t f16[3] = {0x3C00, 0xC000, 0x7C00}, bf16[2] = {0x3F80, 0xFF80};
    int32_t i32[4] = {1, -1, 2147483647, 0};
    int64_t i64[2] = {-5, 1LL << 40};
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s2[1] = {2}, s4[2] = {2, 2}, s0[2] = {0, 7};
    mrec_st_tensor_in in[] = {
        {"a.weight", MREC_F32, 2, s23, f32}, {"b.half", MREC_F16, 1, s3, f16}, {"c.bf", MREC_BF16, 1, s2, bf16},
        {"d.int", MREC_I32, 2, s4, i32},     {"e.long", MREC_I64, 1, s2, i64}, {"f.empty", MREC_F32, 2, s0, f32},
    };
    const char *keys[] = {"format", "note"}, *vals[] = {"pt", "written by mrec"};
    const char *path = tmp_path("round.safetensors");
    t_status(mrec_safetensors_write(path, in, 6, keys, vals, 2), MREC_OK, "write");
    mrec_safetensors st;
    if (!t_status(mrec_safetensors_open(&st, path), MREC_OK, "reopen")) return;
    t_check(st.n_tensors == 6, "6 tensors back, got %d", st.n_tensors);
    t_check((st.data - (const uint8_t *)st.map) % 8 == 0, "data section 8-byte aligned");
    for (int i = 0; i < 6; i++) {
        const mrec_st_entry *e = mrec_safetensors_find(&st, in[i].name);
        int ok = e && e->dtype == in[i].dtype && e->ndim == in[i].ndim;
        for (int d = 0; ok && d < e->ndim; d++) ok = e->shape[d] == in[i].shape[d];
        ok = ok && memcmp(e->data, in[i].data, e->end - e->begin) == 0;
        t_check(ok, "round trip of %s", in[i].name);
    }
    t_check(mrec_safetensors_meta(&st, "note") && strcmp(mrec_safetensors_meta(&st, "note"), "written by mrec") == 0,
            "metadata round trip");
    mrec_safetensors_close(&st);
    int leftovers = 0;
    DIR *dir = opendir(tmpdir);
    for (struct dirent *de; dir && (de = readdir(dir));) leftovers += strstr(de->d_name, ".tmp.") != NULL;
    if (dir) closedir(dir);
    t_check(access(path, F_OK) == 0 && leftovers == 0, "written under its name, no temporary left");
}

/* ---- safetensors: malformed files ---------------------------------------------- */

/* A file from a header string and n_data bytes of data. */
static void make_st(const char *path, const char *header, size_t n_data) {
    size_t hl = strlen(header);
    uint8_t *buf = calloc(8 + hl + n_data + 1, 1);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    write_file(path, buf, 8 + hl + n_data);
    free(buf);
}

static void expect_reject(const char *name, const char *header, size_t n_data, mrec_status want, const char *mention) {
    const char *path = tmp_path(name);
    make_st(path, header, n_data);
    mrec_safetensors st;
    mrec_status s = mrec_safetensors_open(&st, path);
    if (t_status(s, want, "malformed %s", name) && want != MREC_OK) {
        t_check(strstr(mrec_error_detail(), name) != NULL, "%s: message names the file: %s", name, mrec_error_detail());
        if (mention)
            t_check(strstr(mrec_error_detail(), mention) != NULL, "%s: message mentions '%s': %s", name, mention,
                    mrec_error_detail());
    }
    if (s == MREC_OK) mrec_safetensors_close(&st);
}

static void test_st_malformed(void) {
    /* Sanity: the template itself is valid. */
    expect_reject("valid.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16,
                  MREC_OK, NULL);
    expect_reject("truncated.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 10,
                  MREC_ERR_FORMAT, "'w'");
    expect_reject("overlap.safetensors",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                  12, MREC_ERR_FORMAT, "overlap");
    expect_reject("mismatch.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 16,
                  MREC_ERR_SHAPE, "'w'");
    expect_reject("dtype.safetensors", "{\"w\":{\"dtype\":\"F8_E8M0\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
                  MREC_ERR_DTYPE, "F8_E8M0");
    expect_reject("duplicate.safetensors",
                  "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                  8, MREC_ERR_FORMAT, "twice");
    expect_reject("notjson.safetensors", "{\"w\": [1, 2", 0, MREC_ERR_FORMAT, "JSON");
    expect_reject("notobject.safetensors", "[1, 2, 3]", 0, MREC_ERR_FORMAT, NULL);
    expect_reject("huge.safetensors",
                  "{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,4]}}", 4,
                  MREC_ERR_SHAPE, "overflow");
    expect_reject("hugedim.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4,
                  MREC_ERR_SHAPE, NULL);
    expect_reject("negdim.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
                  MREC_ERR_SHAPE, NULL);
    expect_reject("fracdim.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
                  MREC_ERR_SHAPE, NULL);
    expect_reject("rank9.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
                  4, MREC_ERR_SHAPE, NULL);
    expect_reject("offsets.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
                  MREC_ERR_FORMAT, NULL);
    expect_reject("backwards.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
                  MREC_ERR_FORMAT, NULL);
    expect_reject("nodtype.safetensors", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, MREC_ERR_FORMAT, NULL);
    expect_reject("meta.safetensors", "{\"__metadata__\":{\"k\":1}}", 0, MREC_ERR_FORMAT, "__metadata__");
    expect_reject("entry.safetensors", "{\"w\":5}", 0, MREC_ERR_FORMAT, NULL);

    /* Length prefix past the end, too short, empty, absent. */
    uint8_t big[16] = {0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, '{', '}'};
    write_file(tmp_path("pastend.safetensors"), big, 16);
    mrec_safetensors st;
    t_status(mrec_safetensors_open(&st, tmp_path("pastend.safetensors")), MREC_ERR_FORMAT, "header length past EOF");
    t_check(strstr(mrec_error_detail(), "past the end") != NULL, "past-end message: %s", mrec_error_detail());
    write_file(tmp_path("short.safetensors"), big, 5);
    t_status(mrec_safetensors_open(&st, tmp_path("short.safetensors")), MREC_ERR_FORMAT, "5-byte file");
    write_file(tmp_path("empty.safetensors"), big, 0);
    t_status(mrec_safetensors_open(&st, tmp_path("empty.safetensors")), MREC_ERR_FORMAT, "empty file");
    t_status(mrec_safetensors_open(&st, tmp_path("absent.safetensors")), MREC_ERR_IO, "missing file");
    t_check(strstr(mrec_error_detail(), "absent.safetensors") != NULL, "missing file named: %s", mrec_error_detail());
}

/* ---- .npy ---------------------------------------------------------------------- */

static void test_npy(void) {
    float *x;
    int ndim;
    int64_t shape[8];
    if (t_status(mrec_npy_read_f32(FIX "npy/f32_2d.npy", &x, &ndim, shape), MREC_OK, "f32_2d")) {
        float want[12];
        for (int i = 0; i < 12; i++) want[i] = (float)i / 7.0f;
        t_check(ndim == 2 && shape[0] == 3 && shape[1] == 4, "f32_2d shape");
        t_allclose("f32_2d values", want, x, 12, 0, 0);
        /* mrec writes the bytes numpy writes. */
        t_status(mrec_npy_write(tmp_path("f32_2d.npy"), MREC_NPY_F32, 2, shape, x), MREC_OK, "write f32_2d");
        size_t na, nb;
        char *a = slurp(FIX "npy/f32_2d.npy", &na), *b = slurp(tmp_path("f32_2d.npy"), &nb);
        t_check(a && b && na == nb && memcmp(a, b, na) == 0, "npy writer is byte-identical to numpy (2-D)");
        free(a), free(b), free(x);
    }
    mrec_npy_array arr;
    if (t_status(mrec_npy_read(FIX "npy/f64_1d.npy", &arr), MREC_OK, "f64_1d")) {
        const double *d = arr.data;
        t_check(arr.header.dtype == MREC_NPY_F64 && arr.header.ndim == 1 && d[0] == 0.1 && d[2] == 1e300, "f64 values");
        t_status(mrec_npy_write(tmp_path("f64_1d.npy"), MREC_NPY_F64, 1, arr.header.shape, arr.data), MREC_OK, "write f64");
        size_t na, nb;
        char *a = slurp(FIX "npy/f64_1d.npy", &na), *b = slurp(tmp_path("f64_1d.npy"), &nb);
        t_check(a && b && na == nb && memcmp(a, b, na) == 0, "npy writer is byte-identical to numpy (1-D f64)");
        free(a), free(b);
        mrec_npy_free(&arr);
    }
    if (t_status(mrec_npy_read(FIX "npy/i64_3d.npy", &arr), MREC_OK, "i64_3d")) {
        const int64_t *v = arr.data;
        t_check(arr.header.ndim == 3 && arr.header.shape[2] == 4 && v[0] == -5 && v[23] == 18, "i64 values");
        mrec_npy_free(&arr);
    }
    if (t_status(mrec_npy_read(FIX "npy/i32_1d.npy", &arr), MREC_OK, "i32_1d")) {
        const int32_t *v = arr.data;
        t_check(v[1] == -1 && v[2] == 2147483647, "i32 values");
        mrec_npy_free(&arr);
    }
    if (t_status(mrec_npy_read_f32(FIX "npy/f16_2d.npy", &x, &ndim, shape), MREC_OK, "f16_2d")) {
        float want[4] = {0.5f, -1.25f, 65504.0f, mrec_f16_to_f32(1)}; /* 6e-8 rounds to the smallest subnormal */
        t_allclose("f16 values", want, x, 4, 0, 0);
        free(x);
    }
    if (t_status(mrec_npy_read_f32(FIX "npy/scalar.npy", &x, &ndim, shape), MREC_OK, "scalar")) {
        t_check(ndim == 0 && x[0] == 3.5f, "0-d array");
        t_status(mrec_npy_write(tmp_path("scalar.npy"), MREC_NPY_F32, 0, shape, x), MREC_OK, "write scalar");
        size_t na, nb;
        char *a = slurp(FIX "npy/scalar.npy", &na), *b = slurp(tmp_path("scalar.npy"), &nb);
        t_check(a && b && na == nb && memcmp(a, b, na) == 0, "npy writer is byte-identical to numpy (0-D)");
        free(a), free(b), free(x);
    }
    if (t_status(mrec_npy_read_f32(FIX "npy/empty.npy", &x, &ndim, shape), MREC_OK, "empty")) {
        t_check(ndim == 2 && shape[0] == 0 && shape[1] == 5, "(0, 5) array");
        free(x);
    }
    if (t_status(mrec_npy_read_f32(FIX "npy/v2_f32.npy", &x, &ndim, shape), MREC_OK, "format 2.0")) {
        t_check(ndim == 2 && x[1] == 2.5f, "format 2.0 values");
        free(x);
    }
    static const struct { const char *file; mrec_status want; } bad[] = {
        {"bad_fortran.npy", MREC_ERR_UNSUPPORTED}, {"bad_bigendian.npy", MREC_ERR_DTYPE},
        {"bad_bool.npy", MREC_ERR_DTYPE},         {"bad_truncated.npy", MREC_ERR_FORMAT},
        {"bad_trailing.npy", MREC_ERR_FORMAT},    {"bad_magic.npy", MREC_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, FIX "npy/%s", bad[i].file);
        mrec_status s = mrec_npy_read(path, &arr);
        if (t_status(s, bad[i].want, "%s", bad[i].file))
            t_check(strstr(mrec_error_detail(), bad[i].file) != NULL, "%s named: %s", bad[i].file, mrec_error_detail());
        if (s == MREC_OK) mrec_npy_free(&arr);
    }
    /* Hand-made hostile headers. */
    static const char *headers[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), 'extra': 1, }",
        "{'descr': '<f4', 'fortran_order': False, }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }",
        "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (3,), }",
        "{'descr': '<f4' 'fortran_order': False, 'shape': (3,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, -4), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776, 1099511627776), }",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        uint8_t buf[256] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
        size_t hl = strlen(headers[i]);
        buf[8] = (uint8_t)hl;
        memcpy(buf + 10, headers[i], hl);
        mrec_npy_header h;
        mrec_status s = mrec_npy_parse_header(buf, 10 + hl, &h, "hostile.npy");
        t_check(s != MREC_OK, "hostile header %zu rejected", i);
    }
    /* A key given twice: the second value would otherwise replace the first. */
    {
        const char *twice = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), 'descr': '<f4', }";
        uint8_t buf[256] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
        size_t hl = strlen(twice);
        buf[8] = (uint8_t)hl;
        memcpy(buf + 10, twice, hl);
        mrec_npy_header h;
        t_status(mrec_npy_parse_header(buf, 10 + hl, &h, "twice.npy"), MREC_ERR_FORMAT, "npy header with descr twice");
        t_check(strstr(mrec_error_detail(), "twice.npy") && strstr(mrec_error_detail(), "'descr' appears twice"),
                "the message names the file and the key: %s", mrec_error_detail());
    }
    /* Writer: every dtype round trips. */
    double d[3] = {1, 2, 3};
    int64_t three[1] = {3};
    t_status(mrec_npy_write(tmp_path("d.npy"), MREC_NPY_F64, 1, three, d), MREC_OK, "write f64");
    if (t_status(mrec_npy_read(tmp_path("d.npy"), &arr), MREC_OK, "reread f64")) {
        t_check(memcmp(arr.data, d, sizeof d) == 0, "f64 round trip");
        mrec_npy_free(&arr);
    }
    t_status(mrec_npy_write(tmp_path("nodir/x.npy"), MREC_NPY_F64, 1, three, d), MREC_ERR_IO, "write into a missing folder");
}

int main(void) {
    t_suite("io");
    T_REQUIRE(mkdtemp(tmpdir) != NULL);
    test_half();
    test_tiny_bert();
    test_st_roundtrip();
    test_st_malformed();
    test_npy();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return t_finish();
}
