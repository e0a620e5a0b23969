/* bench_tokenizers.c: tokens per second, one thread, WordPiece, CLIP BPE and
 * XLM-R's Unigram (when ../shared/data holds its tokenizer.json),
 * on the 17,010-text tokenizer corpus, side by side with Hugging Face's Rust
 * tokenizers (bench/peers/tokenizers_peer.py, encode_batch on one thread) in
 * the same run.
 *
 *   build/cpu/bench/bench_tokenizers          (make bench runs it)
 *   MREC_PYTHON=/path/to/python               the interpreter with `tokenizers` for the peer
 *
 * Validates first (token counts equal the peer's), then reports the best of
 * 3 passes over the corpus. The first pass of CLIP also fills the merge
 * cache; the best pass is a warm one, as the peer's is.
 */
#include "../tokenizers/mrec_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define TOK "../shared/data/tokenizers/"
#define CORPUS "tests/fixtures/tokenizers/corpus.txt.gz"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t *lens; /* texts may hold NUL bytes */

static char **load_corpus(int *n_out, size_t *bytes) {
    gzFile f = gzopen(CORPUS, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 22, n = 0;
    char *buf = malloc(cap);
    int k;
    while ((k = gzread(f, buf + n, (unsigned)(cap - n - 1))) > 0)
        if ((n += (size_t)k) + 1 >= cap) buf = realloc(buf, cap *= 2);
    gzclose(f);
    buf[n] = '\0';
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += buf[i] == '\n';
    char **texts = malloc(sizeof *texts * (size_t)lines);
    lens = malloc(sizeof *lens * (size_t)lines);
    char *s = buf;
    *bytes = 0;
    for (int i = 0; i < lines; i++) {
        char *e = strchr(s, '\n');
        *e = '\0';
        /* undo the fixture escaping in place */
        char *w = s;
        for (char *r = s; *r; r++) {
            if (r[0] == '\\' && r[1] == '\\') *w++ = '\\', r++;
            else if (r[0] == '\\' && r[1] == 'x') {
                char hex[3] = {r[2], r[3], 0};
                *w++ = (char)strtol(hex, NULL, 16);
                r += 3;
            } else *w++ = *r;
        }
        *w = '\0';
        texts[i] = s;
        lens[i] = (size_t)(w - s);
        *bytes += lens[i];
        s = e + 1;
    }
    *n_out = lines;
    return texts;
}

static double run(mrec_tokenizer *tok, char **texts, int n, long *tokens) {
    static int32_t ids[1 << 15];
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        long count = 0;
        double t0 = now();
        for (int i = 0; i < n; i++) {
            size_t k;
            mrec_tokenize(tok, texts[i], lens[i], ids, sizeof ids / sizeof ids[0], &k);
            count += (long)k;
        }
        double t = now() - t0;
        best = t < best ? t : best;
        *tokens = count;
    }
    return best;
}

int main(void) {
    int n;
    size_t bytes;
    char **texts = load_corpus(&n, &bytes);
    mrec_tokenizer *bert, *clip, *xlmr = NULL;
    if (!texts || mrec_tokenizer_load(&bert, TOK "all-MiniLM-L6-v2/tokenizer.json") ||
        mrec_tokenizer_load(&clip, TOK "clip/clip-vit-base-patch32.tokenizer.json")) {
        fprintf(stderr, "bench_tokenizers: needs %s and %s (%s)\n", CORPUS, TOK, mrec_tok_error_detail());
        return 1;
    }
    if (mrec_tokenizer_load(&xlmr, TOK "xlm-roberta-e5/tokenizer.json")) xlmr = NULL; /* optional */
    long tok_bert, tok_clip, tok_xlmr = 0;
    double t_bert = run(bert, texts, n, &tok_bert), t_clip = run(clip, texts, n, &tok_clip);
    double t_xlmr = xlmr ? run(xlmr, texts, n, &tok_xlmr) : 0;

    /* The peer, in the same run. */
    const char *py = getenv("MREC_PYTHON") ? getenv("MREC_PYTHON") : "python3";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s bench/peers/tokenizers_peer.py %s %sall-MiniLM-L6-v2/tokenizer.json "
             "%sclip/clip-vit-base-patch32.tokenizer.json %s 2>/dev/null", py, CORPUS, TOK, TOK,
             xlmr ? TOK "xlm-roberta-e5/tokenizer.json" : "");
    FILE *p = popen(cmd, "r");
    int rows = xlmr ? 3 : 2;
    long peer_tokens[3] = {0, 0, 0};
    double peer_t[3] = {0, 0, 0};
    char name[32];
    for (int i = 0; p && i < rows; i++)
        if (fscanf(p, "%31s %ld %lf", name, &peer_tokens[i], &peer_t[i]) != 3) peer_t[i] = 0;
    if (p) pclose(p);

    printf("tokenizers, one thread, %d texts (%.1f MB)\n", n, bytes / 1e6);
    printf("%-10s %10s %12s %14s %14s %8s\n", "tokenizer", "tokens", "mrec tok/s", "HF tok/s", "mrec MB/s", "ratio");
    const char *names[3] = {"wordpiece", "clip bpe", "xlm-r uni"};
    long toks[3] = {tok_bert, tok_clip, tok_xlmr};
    double ts[3] = {t_bert, t_clip, t_xlmr};
    for (int i = 0; i < rows; i++) {
        if (peer_t[i] > 0 && peer_tokens[i] != toks[i])
            printf("%s: INVALID: mrec gives %ld tokens, Hugging Face %ld\n", names[i], toks[i], peer_tokens[i]);
        if (peer_t[i] > 0)
            printf("%-10s %10ld %12.3g %14.3g %14.1f %7.2fx\n", names[i], toks[i], toks[i] / ts[i],
                   peer_tokens[i] / peer_t[i], bytes / ts[i] / 1e6, peer_t[i] / ts[i]);
        else
            printf("%-10s %10ld %12.3g %14s %14.1f %8s\n", names[i], toks[i], toks[i] / ts[i], "(no peer)",
                   bytes / ts[i] / 1e6, "-");
    }
    mrec_tokenizer_free(bert);
    mrec_tokenizer_free(clip);
    mrec_tokenizer_free(xlmr);
    free(texts[0]);
    free(texts);
    free(lens);
    return 0;
}
