/* mrec.h: mrec's public C interface, for programs that embed it.
 *
 * Link with `pkg-config --cflags --libs mrec` after `make install`. Every
 * function returns an mrec_status (mrec_status.h, installed beside this
 * header): MREC_OK, or a code whose one-line detail, naming the file, the
 * item or the key, is read on the same thread with mrec_error_detail().
 * Nothing here prints or exits, and there is no global state: handles are
 * independent.
 *
 * Thread safety: different handles may be used from different threads at
 * once; one handle is used by one thread at a time (its calls reuse the
 * handle's buffers and threads; mrec_recommender_clone gives a thread its
 * own handle on a loaded model). Opening and closing handles is safe from
 * any thread. mrec_error_detail() is per thread, like errno.
 */
#ifndef MREC_H
#define MREC_H

#include <stddef.h>

#include "mrec_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The one place the version is written (the Makefile and `mrec --version`
 * read it here); the shared library's SONAME carries the major number. */
#define MREC_VERSION "0.1.0"

/* The library's version, which may differ from the header's MREC_VERSION. */
const char *mrec_version(void);

/* ---- encoders: texts and images to feature vectors ---------------------- */

typedef struct mrec_encoder mrec_encoder;

/* Zero-initialized fields take the defaults. */
typedef struct {
    const char *device;    /* "auto" (default: a GPU if there is one, else the CPU), "cpu" or "cuda" */
    const char *precision; /* "fp32" (default), "tf32" or "bf16" (GPU only) */
    int threads;           /* CPU threads; 0: one per core the process may use */
    int batch_size;        /* inputs per forward pass; 0: 32 */
} mrec_encoder_options;

/* Opens an encoder from a model folder as mrec's commands read them: a
 * sentence-transformers or Hugging Face BERT-family folder (texts), a
 * ViT folder or a torchvision ResNet .safetensors file (images), or a CLIP
 * folder (both: texts through the text tower, images through the vision
 * tower, each tower's image_embeds / text_embeds). Text models use the
 * folder's pooling and normalization (sentence-transformers files), image
 * models their default layer and preprocessing (ResNet: avgpool, Ducho's
 * resize; ViT: the class token). options may be NULL. */
mrec_status mrec_encoder_open(mrec_encoder **encoder, const char *model, const mrec_encoder_options *options);

/* Frees the encoder; NULL is allowed. */
void mrec_encoder_close(mrec_encoder *encoder);

/* The length of one text's / one image's vector; 0 where the model does
 * not take texts / images. */
int mrec_encoder_text_dim(const mrec_encoder *encoder);
int mrec_encoder_image_dim(const mrec_encoder *encoder);

/* The device the encoder runs on: "cpu" or "cuda". */
const char *mrec_encoder_device(const mrec_encoder *encoder);

/* texts: n NUL-terminated UTF-8 strings. out: n * text_dim floats, row i
 * for texts[i]. On an error out is left as it was. */
mrec_status mrec_encoder_embed_texts(mrec_encoder *encoder, const char *const *texts, int n, float *out);

/* paths: n JPEG or PNG files. out: n * image_dim floats, row i for
 * paths[i]. An image that cannot be read or decoded is an error naming its
 * path, and out is left as it was. */
mrec_status mrec_encoder_embed_images(mrec_encoder *encoder, const char *const *paths, int n, float *out);

/* The same for encoded images in memory (as read from a file or received
 * over a network): data[i] holds sizes[i] bytes of JPEG or PNG. An image
 * that cannot be decoded is an error naming it as "image i". */
mrec_status mrec_encoder_embed_image_data(mrec_encoder *encoder, const void *const *data, const size_t *sizes, int n, float *out);

/* ---- recommenders: answers from a model saved by `mrec train --save` ------ */

typedef struct mrec_recommender mrec_recommender;

/* Opens a saved model folder (model.safetensors, users.tsv, items.tsv),
 * checking every tensor's name, shape and checksum and the id files; a
 * folder changed or cut short after saving is refused, naming the file. */
mrec_status mrec_recommender_open(mrec_recommender **recommender, const char *dir);

/* Another handle on the same loaded model, for another thread: the model's
 * memory is shared (read-only), each handle has its own scratch. Close
 * each; the model is freed with the last. */
mrec_status mrec_recommender_clone(mrec_recommender **copy, const mrec_recommender *recommender);

/* Frees the handle; NULL is allowed. */
void mrec_recommender_close(mrec_recommender *recommender);

/* The model's name ("LightGCN"), its numbers of users and items, and the id
 * of a user or an item by its index (0 .. n - 1, the order of the saved
 * users.tsv and items.tsv; NULL outside). */
const char *mrec_recommender_model(const mrec_recommender *recommender);
int mrec_recommender_n_users(const mrec_recommender *recommender);
int mrec_recommender_n_items(const mrec_recommender *recommender);
const char *mrec_recommender_user_id(const mrec_recommender *recommender, int index);
const char *mrec_recommender_item_id(const mrec_recommender *recommender, int index);

/* The user's k best items, best first, leaving out the items the user had
 * in training: item indices (ids through mrec_recommender_item_id) and
 * scores, k of each; *n says how many were filled (fewer than k when fewer
 * items are left). An unknown user is MREC_ERR_NOT_FOUND naming the id. The
 * scores are the model's own: the lists equal those of the training run. */
mrec_status mrec_recommender_recommend(mrec_recommender *recommender, const char *user, int k, int *items, float *scores, int *n);

/* The k items most like the item, by cosine of the model's item vectors,
 * the item itself left out: indices and cosines, *n of them. */
mrec_status mrec_recommender_similar(mrec_recommender *recommender, const char *item, int k, int *items, float *similarities,
                                     int *n);

/* The model's scores of the given items for the user: scores[i] for
 * items[i], whether or not the user had them in training. An unknown user or
 * item is MREC_ERR_NOT_FOUND naming it, and scores are left as they were. */
mrec_status mrec_recommender_score(mrec_recommender *recommender, const char *user, const char *const *items, int n,
                                   float *scores);

#ifdef __cplusplus
}
#endif

#endif
