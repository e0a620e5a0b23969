/* decode.c: JPEG and PNG to 8-bit RGB, as PIL's Image.open(f).convert('RGB').
 *
 * JPEG goes through libjpeg-turbo, the decoder PIL itself links, with PIL's
 * settings (accurate integer IDCT, fancy upsampling), so the pixels are
 * PIL's to the byte; stb_image's own JPEG decoder differs from it in about
 * 1-2 % of pixels by up to 3 levels (27 on one ImageNet photo), which no
 * later step can undo. PNG goes through stb_image after a structural check
 * that rejects what PIL rejects (bad chunk CRCs, impossible IHDR fields,
 * truncated ancillary chunks, a bad zlib checksum) instead of decoding it.
 *
 * Colour, as PIL converts it:
 *   grayscale            -> R = G = B
 *   alpha                -> dropped, not composited
 *   palette + tRNS       -> the palette colour, transparency dropped
 *   CMYK / YCCK JPEG     -> read as Adobe-inverted CMYK, then PIL's cmyk2rgb:
 *                           R = (255 - K) - C * (255 - K) / 255, rounded
 *   16-bit RGB(A), LA    -> the high byte of each sample
 *   16-bit grayscale     -> PIL's "I;16" to "L": min(value, 255). Most 16-bit
 *                           gray images thus turn almost white; it is what
 *                           Ducho's features are computed from.
 * EXIF orientation is not applied: Image.open does not apply it either.
 */
#include "mrec_image.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h>
#include <zlib.h>

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_NO_STDIO
#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STBI_MAX_DIMENSIONS (1 << 20)
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
/* stb declares static functions it leaves undefined under STBI_ONLY_PNG;
 * GCC reports them at the end of the file, so this one stays off */
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

static mrec_status check_size(const char *name, int64_t w, int64_t h) {
    if (w < 1 || h < 1 || w > MREC_IMAGE_MAX_SIDE || h > MREC_IMAGE_MAX_SIDE || w * h > MREC_IMAGE_MAX_PIXELS)
        return mrec_fail(MREC_ERR_FORMAT, "%s: image size %lldx%lld is outside the limits (%d per side, %lld pixels)", name,
                         (long long)w, (long long)h, MREC_IMAGE_MAX_SIDE, (long long)MREC_IMAGE_MAX_PIXELS);
    return MREC_OK;
}

/* ---- JPEG ---- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf on_error;
    char message[JMSG_LENGTH_MAX];
    int truncated;
} jpeg_errors;

static void jpeg_on_error(j_common_ptr c) {
    jpeg_errors *e = (jpeg_errors *)c->err;
    e->pub.format_message(c, e->message);
    longjmp(e->on_error, 1);
}

/* Warnings are silent, except the end of data before the end of the image:
 * libjpeg fills the rest with gray, PIL calls the file truncated. */
static void jpeg_on_message(j_common_ptr c, int level) {
    jpeg_errors *e = (jpeg_errors *)c->err;
    if (level == -1 && e->pub.msg_code == JWRN_JPEG_EOF) e->truncated = 1;
}

static uint8_t muldiv255(int a, int b) {
    int t = a * b + 128;
    return (uint8_t)((t + (t >> 8)) >> 8);
}

static mrec_status decode_jpeg(const uint8_t *data, size_t size, const char *name, mrec_rgb_image *img) {
    struct jpeg_decompress_struct ci;
    jpeg_errors err = {0};
    uint8_t *volatile buf = NULL, *volatile rgb = NULL;
    ci.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_on_error;
    err.pub.emit_message = jpeg_on_message;
    if (setjmp(err.on_error)) {
        jpeg_destroy_decompress(&ci);
        free(buf), free(rgb);
        return mrec_fail(MREC_ERR_FORMAT, "%s: JPEG: %s", name, err.message);
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, data, (unsigned long)size);
    jpeg_read_header(&ci, TRUE);
    mrec_status st = check_size(name, ci.image_width, ci.image_height);
    if (st) {
        jpeg_destroy_decompress(&ci);
        return st;
    }
    int cmyk = ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK;
    ci.out_color_space = cmyk ? JCS_CMYK : ci.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&ci);
    /* A truncated file is refused, so decoding stops at the first sign of
     * it (a progressive file shows it here, a baseline one mid-scan) rather
     * than filling the rest of a possibly huge image with gray. */
    int w = (int)ci.output_width, h = (int)ci.output_height, nc = ci.output_components;
    if (!err.truncated) {
        buf = malloc((size_t)w * h * nc);
        rgb = nc == 3 ? buf : malloc((size_t)w * h * 3);
        if (!buf || !rgb) {
            jpeg_destroy_decompress(&ci);
            if (rgb != buf) free(rgb);
            free(buf);
            return mrec_fail(MREC_ERR_NOMEM, "%s: %dx%d image", name, w, h);
        }
    }
    while (!err.truncated && ci.output_scanline < ci.output_height) {
        JSAMPROW row = buf + (size_t)ci.output_scanline * w * nc;
        jpeg_read_scanlines(&ci, &row, 1);
    }
    if (!err.truncated) jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    if (err.truncated) {
        if (rgb != buf) free(rgb);
        free(buf);
        return mrec_fail(MREC_ERR_FORMAT, "%s: JPEG: the data ends before the image does (truncated file)", name);
    }
    size_t n = (size_t)w * h;
    if (nc == 1) {
        for (size_t p = 0; p < n; p++) rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = buf[p];
    } else if (nc == 4) {
        /* PIL reads every 4-channel JPEG as Adobe-inverted ("CMYK;I") */
        for (size_t p = 0; p < n; p++) {
            const uint8_t *s = buf + 4 * p;
            int nk = s[3]; /* 255 - (255 - K) */
            for (int k = 0; k < 3; k++) {
                int v = nk - muldiv255(255 - s[k], nk);
                rgb[3 * p + k] = (uint8_t)(v < 0 ? 0 : v);
            }
        }
    }
    if (rgb != buf) free(buf);
    img->rgb = rgb, img->h = h, img->w = w;
    return MREC_OK;
}

/* ---- PNG ---- */

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The fixed lengths of the ancillary chunks PIL parses and refuses when short. */
static int fixed_length(const uint8_t *type) {
    static const struct {
        char type[5];
        int length;
    } table[] = {{"IHDR", 13}, {"IEND", 0}, {"cHRM", 32}, {"gAMA", 4}, {"sRGB", 1}, {"pHYs", 9}, {"tIME", 7}};
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (!memcmp(type, table[i].type, 4)) return table[i].length;
    return -1;
}

/* Walks the chunks: lengths inside the file, CRCs of every chunk but IDAT
 * (PIL does not check those either), IHDR fields PNG allows, and the
 * concatenated IDAT data a complete zlib stream with a correct Adler-32. */
static mrec_status check_png(const uint8_t *d, size_t size, const char *name, int *gray16) {
    size_t p = 8, idat_bytes = 0;
    int seen_ihdr = 0, seen_iend = 0;
    *gray16 = 0;
    z_stream z = {0};
    if (inflateInit(&z) != Z_OK) return mrec_fail(MREC_ERR_NOMEM, "%s: zlib", name);
    int zret = Z_OK;
    uint8_t sink[16384];
    mrec_status st = MREC_OK;
    while (!seen_iend) {
        if (size - p < 12) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: PNG: truncated at byte %zu (no IEND chunk)", name, p);
            break;
        }
        uint32_t len = be32(d + p);
        const uint8_t *type = d + p + 4, *body = d + p + 8;
        char tname[5] = {0};
        for (int i = 0; i < 4; i++) tname[i] = (char)((type[i] >= 'A' && type[i] <= 'Z') || (type[i] >= 'a' && type[i] <= 'z') ? type[i] : '?');
        if (len > size - p - 12) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: PNG: chunk %s at byte %zu declares %u bytes, past the end of the file", name, tname,
                           p, len);
            break;
        }
        int is_idat = !memcmp(type, "IDAT", 4);
        if (!is_idat && be32(body + len) != (uint32_t)crc32(crc32(0, NULL, 0), type, len + 4)) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: PNG: bad CRC in chunk %s at byte %zu", name, tname, p);
            break;
        }
        int want = fixed_length(type);
        if (want >= 0 && (int64_t)len != want) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: PNG: chunk %s has %u bytes, expected %d", name, tname, len, want);
            break;
        }
        if (!seen_ihdr && memcmp(type, "IHDR", 4)) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: PNG: the first chunk is %s, not IHDR", name, tname);
            break;
        }
        if (!memcmp(type, "IHDR", 4)) {
            int depth = body[8], ctype = body[9], ok_depth;
            switch (ctype) {
            case 0: ok_depth = depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16; break;
            case 3: ok_depth = depth == 1 || depth == 2 || depth == 4 || depth == 8; break;
            case 2: case 4: case 6: ok_depth = depth == 8 || depth == 16; break;
            default: ok_depth = 0;
            }
            if (!ok_depth || body[10] != 0 || body[11] != 0 || body[12] > 1) {
                st = mrec_fail(MREC_ERR_FORMAT, "%s: PNG: IHDR colour type %d, depth %d, compression %d, filter %d, interlace %d is not valid PNG",
                               name, ctype, depth, body[10], body[11], body[12]);
                break;
            }
            if ((st = check_size(name, be32(body), be32(body + 4)))) break;
            *gray16 = ctype == 0 && depth == 16;
            seen_ihdr = 1;
        }
        if (is_idat && zret == Z_OK) {
            idat_bytes += len;
            z.next_in = (uint8_t *)body, z.avail_in = len;
            do {
                z.next_out = sink, z.avail_out = sizeof sink;
                zret = inflate(&z, Z_NO_FLUSH);
            } while (zret == Z_OK && (z.avail_in > 0 || z.avail_out == 0));
            if (zret == Z_BUF_ERROR) zret = Z_OK; /* needs the next IDAT */
            if (zret != Z_OK && zret != Z_STREAM_END) {
                st = mrec_fail(MREC_ERR_FORMAT, "%s: PNG: corrupt image data (%s)", name, z.msg ? z.msg : "zlib error");
                break;
            }
        }
        seen_iend = !memcmp(type, "IEND", 4);
        p += 12 + (size_t)len;
    }
    if (!st && zret != Z_STREAM_END)
        st = mrec_fail(MREC_ERR_FORMAT, "%s: PNG: image data (%zu bytes) ends before its zlib stream does", name, idat_bytes);
    inflateEnd(&z);
    return st;
}

static mrec_status decode_png(const uint8_t *data, size_t size, const char *name, mrec_rgb_image *img) {
    int gray16;
    mrec_status st = check_png(data, size, name, &gray16);
    if (st) return st;
    int w, h, comp;
    uint8_t *rgb;
    if (gray16) {
        uint16_t *g = stbi_load_16_from_memory(data, (int)size, &w, &h, &comp, 1);
        if (!g) return mrec_fail(MREC_ERR_FORMAT, "%s: PNG: %s", name, stbi_failure_reason());
        rgb = malloc((size_t)w * h * 3);
        for (size_t p = 0; rgb && p < (size_t)w * h; p++) rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = (uint8_t)(g[p] > 255 ? 255 : g[p]);
        stbi_image_free(g);
    } else {
        rgb = stbi_load_from_memory(data, (int)size, &w, &h, &comp, 3);
        if (!rgb) return mrec_fail(MREC_ERR_FORMAT, "%s: PNG: %s", name, stbi_failure_reason());
    }
    if (!rgb) return mrec_fail(MREC_ERR_NOMEM, "%s: %dx%d image", name, w, h);
    img->rgb = rgb, img->h = h, img->w = w;
    return MREC_OK;
}

/* ---- entry points ---- */

/* What a file that is neither JPEG nor PNG looks like, for the message:
 * the image formats PIL would open name themselves, anything else is
 * called what it is not. */
static const char *other_format(const uint8_t *d, size_t size) {
    if (size >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6))) return "a GIF image";
    if (size >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4)) return "a WebP image";
    if (size >= 2 && !memcmp(d, "BM", 2)) return "a BMP image";
    if (size >= 4 && (!memcmp(d, "II*\0", 4) || !memcmp(d, "MM\0*", 4))) return "a TIFF image";
    if (size >= 12 && !memcmp(d + 4, "ftyp", 4)) return "an HEIF/AVIF/MP4 file";
    if (size >= 4 && !memcmp(d, "\0\0\1\0", 4)) return "an ICO image";
    return NULL;
}

mrec_status mrec_image_decode(const uint8_t *data, size_t size, const char *name, mrec_rgb_image *img) {
    memset(img, 0, sizeof *img);
    if (size == 0) return mrec_fail(MREC_ERR_FORMAT, "%s: empty file (0 bytes), expected a JPEG or PNG image", name);
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return decode_jpeg(data, size, name, img);
    if (size >= 8 && !memcmp(data, "\x89PNG\r\n\x1a\n", 8)) {
        if (size > INT32_MAX) return mrec_fail(MREC_ERR_FORMAT, "%s: PNG file over 2 GiB", name);
        return decode_png(data, size, name, img);
    }
    if (size >= 2 && data[0] == 0xFF && data[1] == 0xD8)
        return mrec_fail(MREC_ERR_FORMAT, "%s: JPEG: no marker after the start of image (a truncated or damaged file)", name);
    if (size >= 4 && !memcmp(data, "\x89PNG", 4))
        return mrec_fail(MREC_ERR_FORMAT, "%s: PNG: the signature is cut short or damaged", name);
    const char *what = other_format(data, size);
    if (what) return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: %s; mrec decodes JPEG and PNG", name, what);
    char first[16] = "";
    for (size_t i = 0, at = 0; i < size && i < 4; i++)
        at += (size_t)snprintf(first + at, sizeof first - at, "%s%02x", i ? " " : "", data[i]);
    return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: not a JPEG or PNG file (%s %s)", name, size < 4 ? "its bytes" : "first bytes",
                     first);
}

static const char *file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

/* Files are read, not mapped: a file truncated by someone else while it is
 * mapped would kill the process with SIGBUS. O_NONBLOCK keeps open() from
 * waiting for a writer when the path is a FIFO, which is then refused by
 * fstat before anything is read; so is every other non-regular file. */
mrec_status mrec_image_load(const char *path, mrec_rgb_image *img) {
    memset(img, 0, sizeof *img);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        struct stat sb;
        if (e == ENXIO && stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) /* a socket */
            return mrec_fail(MREC_ERR_IO, "%s: is %s, expected an image file", path, file_kind(sb.st_mode));
        return mrec_fail(MREC_ERR_IO, "%s: cannot open (%s)", path, strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return mrec_fail(MREC_ERR_IO, "%s: cannot stat (%s)", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return mrec_fail(MREC_ERR_IO, "%s: is %s, expected an image file", path, file_kind(sb.st_mode));
    }
    if (sb.st_size == 0) {
        close(fd);
        return mrec_fail(MREC_ERR_FORMAT, "%s: empty file (0 bytes), expected a JPEG or PNG image", path);
    }
    if ((uint64_t)sb.st_size > MREC_IMAGE_MAX_FILE_BYTES) {
        close(fd);
        return mrec_fail(MREC_ERR_FORMAT, "%s: %lld bytes; image files over %lld bytes are refused", path, (long long)sb.st_size,
                         (long long)MREC_IMAGE_MAX_FILE_BYTES);
    }
    size_t size = (size_t)sb.st_size, got = 0;
    uint8_t *data = malloc(size);
    if (!data) {
        close(fd);
        return mrec_fail(MREC_ERR_NOMEM, "%s: reading %zu bytes", path, size);
    }
    while (got < size) {
        ssize_t n = read(fd, data + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            free(data);
            return mrec_fail(MREC_ERR_IO, "%s: read failed after %zu of %zu bytes (%s)", path, got, size, strerror(e));
        }
        if (n == 0) break; /* the file shrank since fstat: decode what is there, which then reports the truncation */
        got += (size_t)n;
    }
    close(fd);
    mrec_status st = mrec_image_decode(data, got, path, img);
    free(data);
    return st;
}

void mrec_image_free(mrec_rgb_image *img) {
    /* stb's and ours both come from malloc (stb_image uses malloc/free) */
    free(img->rgb);
    img->rgb = NULL;
}
