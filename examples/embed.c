/* embed.c: a program that uses mrec as a library, built against an
 * installed copy:
 *
 *   make install PREFIX=$HOME/.local
 *   cc examples/embed.c $(PKG_CONFIG_PATH=$HOME/.local/lib/pkgconfig pkg-config --cflags --libs mrec) -o embed
 *   LD_LIBRARY_PATH=$HOME/.local/lib ./embed MODEL "a red summer dress" "black leather boots"
 *
 * It embeds the texts with the model folder (a sentence-transformers, BERT
 * or CLIP folder) and prints, for each text, its nearest other text by
 * cosine similarity, the smallest form of "items like this one".
 */
#include <mrec.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static double cosine(const float *a, const float *b, int d) {
    double ab = 0, aa = 0, bb = 0;
    for (int k = 0; k < d; k++) ab += (double)a[k] * b[k], aa += (double)a[k] * a[k], bb += (double)b[k] * b[k];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL TEXT TEXT [TEXT...]\n", argv[0]);
        return 1;
    }
    mrec_encoder *enc;
    mrec_encoder_options opt = {.device = "auto"};
    mrec_status st = mrec_encoder_open(&enc, argv[1], &opt);
    if (st) {
        fprintf(stderr, "embed: %s: %s\n", mrec_strerror(st), mrec_error_detail());
        return 2;
    }
    int n = argc - 2, d = mrec_encoder_text_dim(enc);
    float *v = d > 0 ? malloc(sizeof *v * (size_t)n * d) : NULL;
    if (d > 0 && !v) {
        mrec_encoder_close(enc);
        return 3;
    }
    st = mrec_encoder_embed_texts(enc, (const char *const *)argv + 2, n, v);
    if (st) {
        fprintf(stderr, "embed: %s: %s\n", mrec_strerror(st), mrec_error_detail());
        free(v), mrec_encoder_close(enc);
        return 2;
    }
    printf("mrec %s, %s, %d texts of dimension %d\n", mrec_version(), mrec_encoder_device(enc), n, d);
    for (int i = 0; i < n; i++) {
        int best = -1;
        double best_sim = -2;
        for (int j = 0; j < n; j++) {
            double s = j == i ? -2 : cosine(v + (size_t)i * d, v + (size_t)j * d, d);
            if (s > best_sim) best = j, best_sim = s;
        }
        printf("%-40s nearest: %s (%.4f)\n", argv[2 + i], argv[2 + best], best_sim);
    }
    free(v);
    mrec_encoder_close(enc);
    return 0;
}
