/* test_bad_images.c: hostile files given as images. Each is made here, in a
 * fresh temporary folder, so the suite needs no data beside it; each must
 * give one exact status, a message naming the file, and no image. None may
 * hang: the non-regular files are loaded in a child process under a 10 s
 * alarm, so a loader that blocks fails the case instead of the suite.
 *
 * Statuses: MREC_ERR_IO for paths that are not regular readable files,
 * MREC_ERR_FORMAT for JPEG/PNG files that are empty, truncated, corrupt or
 * over the size limits (PIL's decompression-bomb limit), and
 * MREC_ERR_UNSUPPORTED for other formats and non-images. The name never
 * decides the format: a PNG called .jpg decodes, as PIL decodes it.
 */
#include "harness.h"

#include "../extractors/mrec_image.h"
#include "../extractors/mrec_image_encoder.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jpeglib.h>
#include <zlib.h>

static char dir[64];

static const char *in_dir(const char *name) {
    static char path[4][256];
    static int slot;
    slot = (slot + 1) % 4;
    snprintf(path[slot], sizeof path[slot], "%s/%s", dir, name);
    return path[slot];
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* ---- making images ---- */

typedef struct {
    uint8_t *data;
    size_t n, cap;
} buffer;

static void put(buffer *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data) abort(); /* a test's own allocation */
    }
    memcpy(b->data + b->n, p, n);
    b->n += n;
}

static void put_be32(buffer *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(b, x, 4);
}

static void put_chunk(buffer *b, const char *type, const uint8_t *body, uint32_t len) {
    put_be32(b, len);
    size_t at = b->n;
    put(b, type, 4);
    if (len) put(b, body, len);
    put_be32(b, (uint32_t)crc32(crc32(0, NULL, 0), b->data + at, len + 4));
}

/* An 8-bit RGB PNG of w x h whose IHDR may claim another size (claim_w,
 * claim_h), with pixel (x, y) = (x, y, x + y). */
static buffer make_png(int w, int h, uint32_t claim_w, uint32_t claim_h) {
    buffer b = {0};
    put(&b, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {0};
    for (int i = 0; i < 4; i++) ihdr[i] = (uint8_t)(claim_w >> (24 - 8 * i)), ihdr[4 + i] = (uint8_t)(claim_h >> (24 - 8 * i));
    ihdr[8] = 8, ihdr[9] = 2;
    put_chunk(&b, "IHDR", ihdr, 13);
    size_t raw_n = (size_t)h * (1 + 3 * (size_t)w);
    uint8_t *raw = calloc(raw_n ? raw_n : 1, 1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = raw + (size_t)y * (1 + 3 * w) + 1 + 3 * x;
            p[0] = (uint8_t)x, p[1] = (uint8_t)y, p[2] = (uint8_t)(x + y);
        }
    uLongf z_n = compressBound((uLong)raw_n);
    uint8_t *z = malloc(z_n);
    if (!raw || !z || compress(z, &z_n, raw, (uLong)raw_n) != Z_OK) abort();
    put_chunk(&b, "IDAT", z, (uint32_t)z_n);
    put_chunk(&b, "IEND", NULL, 0);
    free(raw), free(z);
    return b;
}

/* A baseline RGB JPEG of w x h. */
static buffer make_jpeg(int w, int h) {
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr err;
    ci.err = jpeg_std_error(&err);
    jpeg_create_compress(&ci);
    unsigned char *out = NULL;
    unsigned long out_n = 0;
    jpeg_mem_dest(&ci, &out, &out_n);
    ci.image_width = (JDIMENSION)w, ci.image_height = (JDIMENSION)h, ci.input_components = 3, ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_start_compress(&ci, TRUE);
    uint8_t *row = malloc((size_t)w * 3);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) row[3 * x] = (uint8_t)(4 * x), row[3 * x + 1] = (uint8_t)(4 * y), row[3 * x + 2] = 128;
        JSAMPROW r = row;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    free(row);
    buffer b = {0};
    put(&b, out, out_n);
    free(out);
    return b;
}

/* The offset of a JPEG's SOF0 height field. */
static size_t sof_dims(const buffer *b) {
    for (size_t i = 2; i + 8 < b->n; i++)
        if (b->data[i] == 0xFF && b->data[i + 1] == 0xC0) return i + 5;
    return 0;
}

static buffer jpeg_claiming(int h, int w) {
    buffer b = make_jpeg(16, 16);
    size_t at = sof_dims(&b);
    b.data[at] = (uint8_t)(h >> 8), b.data[at + 1] = (uint8_t)h, b.data[at + 2] = (uint8_t)(w >> 8), b.data[at + 3] = (uint8_t)w;
    return b;
}

/* ---- checking ---- */

/* Loads path and checks status, that the message names the file and, when
 * it must, contains `says`, and that no image is left. */
static void expect(const char *what, const char *path, mrec_status want, const char *says) {
    mrec_rgb_image img;
    mrec_clear_error();
    mrec_status st = mrec_image_load(path, &img);
    const char *detail = mrec_error_detail();
    int ok = st == want;
    if (want != MREC_OK) ok = ok && img.rgb == NULL && strstr(detail, path) && (!says || strstr(detail, says));
    t_check(ok, "%s: expected %s%s%s, got %s: %s", what, mrec_strerror(want), says ? " saying " : "", says ? says : "",
            mrec_strerror(st), detail);
    if (st == MREC_OK) mrec_image_free(&img);
}

static void expect_bytes(const char *what, const char *name, const void *data, size_t n, mrec_status want, const char *says) {
    const char *path = in_dir(name);
    if (!t_check(write_file(path, data, n), "%s: writing %s", what, path)) return;
    expect(what, path, want, says);
}

/* Loads path in a child under an alarm, so a blocking open fails the case;
 * the child reports its status as exit code, 100 + if the message named the file. */
static void expect_in_child(const char *what, const char *path, mrec_status want) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        t_check(0, "%s: fork failed (%s)", what, strerror(errno));
        return;
    }
    if (pid == 0) {
        alarm(10);
        mrec_rgb_image img;
        mrec_status st = mrec_image_load(path, &img);
        int named = st != MREC_OK && img.rgb == NULL && strstr(mrec_error_detail(), path) != NULL;
        if (st != want || !named) fprintf(stderr, "  %s: %s (%s)\n", what, mrec_error_detail(), mrec_strerror(st));
        _exit(st == want && named ? 0 : 1 + (int)st);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status))
        t_check(0, "%s: loading %s %s", what, path,
                WTERMSIG(status) == SIGALRM ? "blocked for 10 s" : "was killed by a signal");
    else
        t_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: expected %s naming the file (child exit %d)", what,
                mrec_strerror(want), WEXITSTATUS(status));
}

/* ---- the cases ---- */

static void not_regular_files(void) {
    const char *fifo = in_dir("pipe.jpg");
    if (t_check(mkfifo(fifo, 0600) == 0, "mkfifo %s", fifo)) expect_in_child("a FIFO (nobody writes to it)", fifo, MREC_ERR_IO);
    const char *link = in_dir("link-to-pipe.png");
    if (t_check(symlink("pipe.jpg", link) == 0, "symlink to the FIFO")) expect_in_child("a symlink to a FIFO", link, MREC_ERR_IO);
    const char *folder = in_dir("folder.jpg");
    if (t_check(mkdir(folder, 0700) == 0, "mkdir %s", folder)) expect_in_child("a directory named .jpg", folder, MREC_ERR_IO);
    expect_in_child("/dev/null", "/dev/null", MREC_ERR_IO);
    expect_in_child("/dev/zero (endless)", "/dev/zero", MREC_ERR_IO);
    const char *sock = in_dir("socket.png");
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock);
    if (fd >= 0 && strlen(sock) < sizeof addr.sun_path && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
        listen(fd, 1);
        expect_in_child("a listening socket named .png", sock, MREC_ERR_IO);
    } else {
        t_skip("cannot bind a unix socket in %s", dir);
    }
    if (fd >= 0) close(fd);
    expect("a missing file", in_dir("missing.jpg"), MREC_ERR_IO, "cannot open");
    const char *dangling = in_dir("dangling.jpg");
    if (t_check(symlink("nowhere.jpg", dangling) == 0, "dangling symlink")) expect("a dangling symlink", dangling, MREC_ERR_IO, NULL);
    const char *locked = in_dir("locked.jpg");
    buffer ok_jpeg = make_jpeg(8, 8);
    if (geteuid() == 0) {
        t_skip("running as root: a file without read permission is still readable");
    } else if (t_check(write_file(locked, ok_jpeg.data, ok_jpeg.n) && chmod(locked, 0) == 0, "unreadable file")) {
        expect("a file without read permission", locked, MREC_ERR_IO, "cannot open");
    }
    free(ok_jpeg.data);
}

static void wrong_contents(void) {
    expect_bytes("an empty .jpg", "empty.jpg", "", 0, MREC_ERR_FORMAT, "empty file");
    expect_bytes("an empty .png", "empty.png", "", 0, MREC_ERR_FORMAT, "empty file");
    const char *text = "item_id,description\n42,a red shirt\n";
    expect_bytes("a text file named .jpg", "text.jpg", text, strlen(text), MREC_ERR_UNSUPPORTED, "not a JPEG or PNG");
    const char *html = "<!DOCTYPE html><html><body>404 Not Found</body></html>";
    expect_bytes("an HTML error page saved as .jpg", "page.jpg", html, strlen(html), MREC_ERR_UNSUPPORTED, NULL);
    expect_bytes("a GIF named .jpg", "anim.jpg", "GIF89a\x01\x00\x01\x00\x00\x00\x00;", 14, MREC_ERR_UNSUPPORTED, "GIF");
    expect_bytes("a WebP named .png", "photo.png", "RIFF\x10\x00\x00\x00WEBPVP8 ", 16, MREC_ERR_UNSUPPORTED, "WebP");
    expect_bytes("a BMP named .jpg", "bitmap.jpg", "BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00", 12, MREC_ERR_UNSUPPORTED, "BMP");
    expect_bytes("a TIFF named .png", "scan.png", "II*\x00\x08\x00\x00\x00", 8, MREC_ERR_UNSUPPORTED, "TIFF");
    expect_bytes("one byte", "one.jpg", "\xFF", 1, MREC_ERR_UNSUPPORTED, NULL);
    uint8_t noise[4096];
    uint64_t s = 7;
    for (size_t i = 0; i < sizeof noise; i++) noise[i] = (uint8_t)(t_rand_u64(&s) >> 56 | 1);
    noise[0] = 0x43; /* not a signature of any format */
    expect_bytes("random bytes named .png", "noise.png", noise, sizeof noise, MREC_ERR_UNSUPPORTED, NULL);

    /* right format, wrong name: decoded from the bytes, as PIL does */
    buffer png = make_png(5, 3, 5, 3);
    mrec_rgb_image img;
    const char *path = in_dir("really-a-png.jpg");
    if (t_check(write_file(path, png.data, png.n), "writing %s", path) &&
        t_status(mrec_image_load(path, &img), MREC_OK, "a PNG named .jpg decodes")) {
        t_check(img.w == 5 && img.h == 3 && img.rgb[3 * (2 * 5 + 4)] == 4 && img.rgb[3 * (2 * 5 + 4) + 1] == 2 &&
                    img.rgb[3 * (2 * 5 + 4) + 2] == 6,
                "a PNG named .jpg gives its own pixels");
        mrec_image_free(&img);
    }
    buffer jpeg = make_jpeg(24, 16);
    expect_bytes("a JPEG named .png decodes", "really-a-jpeg.png", jpeg.data, jpeg.n, MREC_OK, NULL);

    /* truncated */
    expect_bytes("a JPEG cut to its SOI marker", "soi.jpg", "\xFF\xD8\xFF", 3, MREC_ERR_FORMAT, "JPEG");
    buffer big = make_jpeg(256, 256); /* enough scan data that half of it is inside the scan */
    expect_bytes("a JPEG cut in half", "half.jpg", big.data, big.n / 2, MREC_ERR_FORMAT, "truncated");
    free(big.data);
    /* PIL refuses one too ("image file is truncated (0 bytes not processed)") */
    expect_bytes("a JPEG without its EOI marker", "no-eoi.jpg", jpeg.data, jpeg.n - 2, MREC_ERR_FORMAT, "truncated");
    uint8_t zeros[64] = {0xFF, 0xD8, 0xFF};
    expect_bytes("a JPEG marker then zeros", "zeros.jpg", zeros, sizeof zeros, MREC_ERR_FORMAT, "JPEG");
    expect_bytes("a PNG signature alone", "sig.png", png.data, 8, MREC_ERR_FORMAT, "truncated");
    expect_bytes("a PNG cut inside IHDR", "ihdr-cut.png", png.data, 20, MREC_ERR_FORMAT, "PNG");
    expect_bytes("a PNG without IEND", "no-iend.png", png.data, png.n - 12, MREC_ERR_FORMAT, "IEND");
    expect_bytes("a damaged PNG signature", "sig-bad.png", "\x89PNG\r\n\x00\n", 8, MREC_ERR_FORMAT, "signature");
    expect_bytes("a PNG cut inside its signature", "sig-cut.png", "\x89PNG\r", 5, MREC_ERR_FORMAT, "signature");
    expect_bytes("a JPEG cut after FF D8", "ffd8.jpg", "\xFF\xD8", 2, MREC_ERR_FORMAT, "JPEG");

    /* corrupt */
    buffer bad = {0};
    put(&bad, png.data, png.n);
    bad.data[8 + 8 + 13] ^= 1; /* the IHDR CRC */
    expect_bytes("a PNG with a bad IHDR CRC", "crc.png", bad.data, bad.n, MREC_ERR_FORMAT, "CRC");
    memcpy(bad.data, png.data, png.n);
    bad.data[8 + 25 + 8 + 2] ^= 0xFF; /* inside the IDAT zlib data */
    expect_bytes("a PNG with corrupt image data", "zlib.png", bad.data, bad.n, MREC_ERR_FORMAT, NULL);
    memcpy(bad.data, png.data, png.n);
    bad.data[8 + 25] = 0x40; /* IDAT claims 1 GiB */
    expect_bytes("a PNG whose IDAT claims 1 GiB", "idat-huge.png", bad.data, bad.n, MREC_ERR_FORMAT, "past the end");
    free(bad.data);

    buffer depth = {0};
    put(&depth, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {0, 0, 0, 4, 0, 0, 0, 4, 4, 2, 0, 0, 0}; /* RGB at 4 bits: not valid PNG */
    put_chunk(&depth, "IHDR", ihdr, 13);
    put_chunk(&depth, "IEND", NULL, 0);
    expect_bytes("a PNG with RGB at 4 bits", "depth.png", depth.data, depth.n, MREC_ERR_FORMAT, "not valid PNG");
    free(depth.data);

    buffer palette = {0};
    put(&palette, "\x89PNG\r\n\x1a\n", 8);
    uint8_t pihdr[13] = {0, 0, 0, 2, 0, 0, 0, 2, 8, 3, 0, 0, 0}; /* palette colour, no PLTE chunk */
    put_chunk(&palette, "IHDR", pihdr, 13);
    uint8_t raw[6] = {0}, z[64];
    uLongf zn = sizeof z;
    compress(z, &zn, raw, sizeof raw);
    put_chunk(&palette, "IDAT", z, (uint32_t)zn);
    put_chunk(&palette, "IEND", NULL, 0);
    expect_bytes("a palette PNG without a palette", "no-plte.png", palette.data, palette.n, MREC_ERR_FORMAT, NULL);
    free(palette.data);
    free(png.data), free(jpeg.data);
}

/* Headers that claim more pixels than PIL allows (2 x 89,478,485) or a side
 * over 65,500: refused from the header alone, before any pixel is allocated. */
static void too_large(void) {
    static const struct {
        const char *name;
        uint32_t w, h;
        mrec_status want;
    } png_sizes[] = {
        {"65535x65535.png", 65535, 65535, MREC_ERR_FORMAT},
        {"4000000000x1.png", 4000000000u, 1, MREC_ERR_FORMAT},
        {"70000x10.png", 70000, 10, MREC_ERR_FORMAT},
        {"13380x13380.png", 13380, 13380, MREC_ERR_FORMAT}, /* 179,024,400: just over twice PIL's limit */
        {"0x10.png", 0, 10, MREC_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof png_sizes / sizeof *png_sizes; i++) {
        buffer b = make_png(4, 4, png_sizes[i].w, png_sizes[i].h);
        expect_bytes(png_sizes[i].name, png_sizes[i].name, b.data, b.n, png_sizes[i].want, "outside the limits");
        free(b.data);
    }
    /* 13370x13380 = 178,890,600 is inside the limit: the header passes and
     * the short image data is what is refused */
    buffer b = make_png(4, 4, 13370, 13380);
    const char *path = in_dir("13370x13380.png");
    mrec_rgb_image img;
    if (t_check(write_file(path, b.data, b.n), "writing %s", path)) {
        mrec_status st = mrec_image_load(path, &img);
        t_check(st == MREC_ERR_FORMAT && !strstr(mrec_error_detail(), "outside the limits"),
                "a PNG just under the pixel limit passes the size check and fails on its data: %s", mrec_error_detail());
        if (!st) mrec_image_free(&img);
    }
    free(b.data);

    static const struct {
        const char *name;
        int h, w;
    } jpeg_sizes[] = {{"65535x65535.jpg", 65535, 65535}, {"20000x20000.jpg", 20000, 20000}, {"65000x3000.jpg", 3000, 65000}};
    for (size_t i = 0; i < sizeof jpeg_sizes / sizeof *jpeg_sizes; i++) {
        buffer j = jpeg_claiming(jpeg_sizes[i].h, jpeg_sizes[i].w);
        expect_bytes(jpeg_sizes[i].name, jpeg_sizes[i].name, j.data, j.n, MREC_ERR_FORMAT, NULL);
        free(j.data);
    }
    buffer j = jpeg_claiming(0, 16);
    expect_bytes("a JPEG of height 0", "height0.jpg", j.data, j.n, MREC_ERR_FORMAT, "JPEG");
    free(j.data);
}

/* The extractor's decode threads, given a FIFO, a directory and an empty
 * file among good images: those three are reported per item and skipped,
 * the others embedded, and the run neither blocks nor fails. In a child
 * under an alarm, as a blocked decode thread would block the whole run. */
static void extractor_skips_bad_files(void) {
    static char names[5][256], model[256]; /* in_dir's buffers are reused */
    const char *const base[5] = {"good.jpg", "pipe.jpg", "folder.jpg", "empty.png", "good.jpg"};
    const char *paths[5];
    for (int i = 0; i < 5; i++) snprintf(names[i], sizeof names[i], "%s", in_dir(base[i])), paths[i] = names[i];
    snprintf(model, sizeof model, "%s", in_dir("vit"));
    const char *good = paths[0];
    buffer jpeg = make_jpeg(40, 30);
    int written = write_file(good, jpeg.data, jpeg.n);
    free(jpeg.data);
    if (!t_check(written, "writing %s", good)) return;
    /* the tiny ViT with a 32-pixel preprocessor config beside it */
    char cwd[1024], src[1200];
    static const char *const files[][2] = {{"vit_tiny/config.json", "config.json"},
                                           {"vit_tiny/model.safetensors", "model.safetensors"},
                                           {"hf_vit_32/preprocessor_config.json", "preprocessor_config.json"}};
    if (!t_check(getcwd(cwd, sizeof cwd) && mkdir(model, 0700) == 0, "making %s", model)) return;
    for (int i = 0; i < 3; i++) {
        char dst[300];
        snprintf(src, sizeof src, "%s/tests/fixtures/vision/%s", cwd, files[i][0]);
        snprintf(dst, sizeof dst, "%s/%s", model, files[i][1]);
        if (!t_check(symlink(src, dst) == 0, "linking %s", dst)) return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        t_check(0, "fork failed (%s)", strerror(errno));
        return;
    }
    if (pid == 0) {
        alarm(20);
        mrec_context_options o = mrec_context_defaults();
        o.device = MREC_WANT_CPU, o.n_threads = 1;
        mrec_context *ctx;
        mrec_image_encoder e;
        if (mrec_context_create(&ctx, &o) || mrec_image_encoder_load(&e, model, NULL, NULL)) {
            fprintf(stderr, "  extractor: %s\n", mrec_error_detail());
            _exit(2);
        }
        e.batch_size = 2; /* the bad files fall in different batches */
        int ok[5], dim = mrec_image_encoder_dim(&e), bad = 0;
        char *errors[5];
        float *out = calloc((size_t)5 * dim, sizeof *out);
        mrec_status st = mrec_image_encoder_embed(ctx, &e, paths, 5, out, ok, errors);
        for (int i = 0; i < 5; i++) {
            int want_ok = i == 0 || i == 4;
            int named = want_ok ? errors[i] == NULL : errors[i] && strstr(errors[i], paths[i]) != NULL;
            if (ok[i] != want_ok || !named) {
                fprintf(stderr, "  extractor item %d (%s): ok %d, error %s\n", i, paths[i], ok[i], errors[i] ? errors[i] : "none");
                bad = 1;
            }
            free(errors[i]);
        }
        if (!st && !bad && memcmp(out, out + (size_t)4 * dim, dim * sizeof *out)) bad = 1; /* the same image twice */
        free(out);
        mrec_image_encoder_free(&e);
        mrec_context_destroy(ctx);
        _exit(st ? 3 : bad ? 4 : 0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status))
        t_check(0, "extractor with a FIFO, a directory and an empty file among its images: %s",
                WTERMSIG(status) == SIGALRM ? "blocked for 20 s" : "killed by a signal");
    else
        t_check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "extractor reports the FIFO, the directory and the empty file per item and embeds the rest (child exit %d)",
                WEXITSTATUS(status));
}

static void remove_dir(void) {
    const char *names[] = {"pipe.jpg", "link-to-pipe.png", "socket.png", "dangling.jpg", "locked.jpg", "empty.jpg", "empty.png",
                           "text.jpg", "page.jpg", "anim.jpg", "photo.png", "bitmap.jpg", "scan.png", "one.jpg", "noise.png",
                           "really-a-png.jpg", "really-a-jpeg.png", "soi.jpg", "half.jpg", "no-eoi.jpg", "zeros.jpg", "sig.png",
                           "ihdr-cut.png", "no-iend.png", "sig-bad.png", "sig-cut.png", "ffd8.jpg", "crc.png", "zlib.png", "idat-huge.png", "depth.png",
                           "no-plte.png", "65535x65535.png", "4000000000x1.png", "70000x10.png", "13380x13380.png", "0x10.png",
                           "13370x13380.png", "good.jpg", "65535x65535.jpg", "20000x20000.jpg", "65000x3000.jpg", "height0.jpg"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) unlink(in_dir(names[i]));
    rmdir(in_dir("folder.jpg"));
    unlink(in_dir("vit/config.json")), unlink(in_dir("vit/model.safetensors")), unlink(in_dir("vit/preprocessor_config.json"));
    rmdir(in_dir("vit"));
    rmdir(dir);
}

int main(void) {
    t_suite("bad_images");
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/mrec-bad-images-XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    T_REQUIRE(mkdtemp(dir) != NULL);
    not_regular_files();
    wrong_contents();
    too_large();
    extractor_skips_bad_files();
    remove_dir();
    return t_finish();
}
