/* recommend.c: recommendations from a saved model, in a program that links
 * an installed mrec:
 *
 *   mrec train --data train.tsv,val.tsv,test.tsv --format tsv --model lightgcn --out run --save model
 *   cc examples/recommend.c $(pkg-config --cflags --libs mrec) -o recommend
 *   ./recommend model USER [K]
 *
 * It prints the user's K best items with their scores, then, for the first
 * of them, the items most like it.
 */
#include <mrec.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR USER [K]\n", argv[0]);
        return 1;
    }
    char *end = NULL;
    long k = argc > 3 ? strtol(argv[3], &end, 10) : 10;
    if ((end && (end == argv[3] || *end)) || k < 1 || k > 1000) {
        fprintf(stderr, "K must be from 1 to 1000\n");
        return 1;
    }
    mrec_recommender *r;
    mrec_status st = mrec_recommender_open(&r, argv[1]);
    if (st) {
        fprintf(stderr, "%s: %s\n", mrec_strerror(st), mrec_error_detail());
        return 2;
    }
    printf("%s: %d users, %d items\n", mrec_recommender_model(r), mrec_recommender_n_users(r), mrec_recommender_n_items(r));
    int items[1000], n;
    float scores[1000];
    if ((st = mrec_recommender_recommend(r, argv[2], k, items, scores, &n))) {
        fprintf(stderr, "%s: %s\n", mrec_strerror(st), mrec_error_detail());
        mrec_recommender_close(r);
        return 2;
    }
    printf("for user %s:\n", argv[2]);
    for (int j = 0; j < n; j++) printf("  %2d. %-20s %.6f\n", j + 1, mrec_recommender_item_id(r, items[j]), scores[j]);
    if (n > 0) {
        const char *first = mrec_recommender_item_id(r, items[0]);
        int near[5], m;
        float sims[5];
        if (!mrec_recommender_similar(r, first, 5, near, sims, &m)) {
            printf("like %s:\n", first);
            for (int j = 0; j < m; j++) printf("  %-20s cosine %.4f\n", mrec_recommender_item_id(r, near[j]), sims[j]);
        }
    }
    mrec_recommender_close(r);
    return 0;
}
