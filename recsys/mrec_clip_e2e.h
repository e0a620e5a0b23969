/* mrec_clip_e2e.h: a recommender whose item vectors come out of CLIP's two
 * towers inside the training loop (recsys/clip_e2e.c), as the end-to-end
 * setting of "Large Multi-modal Encoders for Recommendation" (Yi et al.,
 * 2023). The towers see pixels and token ids already prepared by the caller
 * (tools/ decodes, preprocesses and tokenizes): recsys reads no image file
 * and no text.
 */
#ifndef MREC_CLIP_E2E_H
#define MREC_CLIP_E2E_H

#include "../nn/mrec_clip_train.h"
#include "mrec_recsys.h"

/* The catalogue as the towers read it, row i for dense item i (host memory). */
typedef struct mrec_clip_items {
    mrec_clip *clip;           /* both towers, on the host (the model moves them to its context's device; with blocks
                                * to train, without a bf16 twin) or already there at fp32 or tf32; the model updates
                                * its trainable blocks in place */
    int n_items, T;
    const float *images;       /* (n_items, channels, image_size, image_size), CLIP-normalized */
    const int32_t *ids, *mask; /* (n_items, T) token ids and attention mask (mask may be NULL: all real) */
} mrec_clip_items;

typedef struct {
    int dim;            /* the users' and the fused items' size */
    float reg;          /* weight of MMRec's EmbLoss on the batch's user and item vectors */
    int blocks;         /* trainable transformer blocks at the top of each tower; 0: both towers frozen */
    float tower_lr;     /* AdamW's learning rate for the towers' trainable weights */
    float tower_decay;  /* AdamW's weight decay there (matrices only) */
    int max_batch;      /* triples a batch is expected to hold (a larger one grows the buffers once) */
} mrec_clip_e2e_options;

/* item(i) = W [img_i ; txt_i] + b, img_i and txt_i the towers' unit embeddings
 * (extract-clip's "embeds"); score = <U_u, item(i)>; BPR + reg * EmbLoss.
 * Items' inputs are read at creation only: the frozen bottom of each tower
 * runs there once and its output is kept. Any context: the model's arrays live
 * on its device, and a GPU context moves the CLIP weights there (in place). */
mrec_status mrec_clip_e2e_create(mrec_model *m, int n_users, const mrec_clip_items *items, const mrec_clip_e2e_options *o,
                                 mrec_rng *rng, mrec_context *ctx);

/* For tests: the towers' gradients of the last batch, in their storage layout, on the context's device (NULL when blocks = 0). */
void mrec_clip_e2e_tower_grads(const mrec_model *m, const float **vision, const float **text);

#endif
