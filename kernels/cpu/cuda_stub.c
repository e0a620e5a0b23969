/* cuda_stub.c: the CUDA entry points of a CPU-only build. Each reports that
 * this build has no GPU support, so callers fall back or fail cleanly. */
#include "../mrec_kernels.h"

#include <stddef.h>

int mrec_cuda_compiled(void) { return 0; }

mrec_status mrec_cuda_create(mrec_cuda **out, int device) {
    (void)device;
    *out = NULL;
    return mrec_fail(MREC_ERR_DEVICE, "this build has no CUDA support (rebuild with make CUDA=1)");
}

void mrec_cuda_destroy(mrec_cuda *cu) { (void)cu; }

static mrec_status no_cuda(void) {
    return mrec_fail(MREC_ERR_DEVICE, "this build has no CUDA support");
}

mrec_status mrec_cuda_malloc(mrec_cuda *cu, void **ptr, size_t bytes) {
    (void)cu, (void)bytes;
    *ptr = NULL;
    return no_cuda();
}
void mrec_cuda_free(mrec_cuda *cu, void *ptr) { (void)cu, (void)ptr; }
mrec_status mrec_cuda_copy_h2d(mrec_cuda *cu, void *dst, const void *src, size_t bytes) {
    (void)cu, (void)dst, (void)src, (void)bytes;
    return no_cuda();
}
mrec_status mrec_cuda_copy_d2h(mrec_cuda *cu, void *dst, const void *src, size_t bytes) {
    (void)cu, (void)dst, (void)src, (void)bytes;
    return no_cuda();
}
mrec_status mrec_cuda_sync(mrec_cuda *cu) {
    (void)cu;
    return no_cuda();
}
mrec_status mrec_cuda_profile(mrec_cuda *cu, int on) {
    (void)cu, (void)on;
    return no_cuda();
}
mrec_status mrec_cuda_graph_run(mrec_cuda *cu, const void *key, size_t key_bytes, mrec_status (*fn)(void *), void *arg) {
    (void)cu, (void)key, (void)key_bytes, (void)fn, (void)arg;
    return no_cuda();
}
long long mrec_cuda_graph_launches(void) { return 0; }
int mrec_cuda_graph_count(const mrec_cuda *cu) {
    (void)cu;
    return 0;
}
mrec_status mrec_gemm_cuda(float *C, const float *A, const float *B, const float *bias,
                           float alpha, float beta, int trans_a, int trans_b,
                           int M, int N, int K, int lda, int ldb, int ldc, mrec_cuda *cu) {
    (void)C, (void)A, (void)B, (void)bias, (void)alpha, (void)beta, (void)trans_a, (void)trans_b;
    (void)M, (void)N, (void)K, (void)lda, (void)ldb, (void)ldc, (void)cu;
    return no_cuda();
}

/* The op twins: parameters are unused by design here. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

mrec_status mrec_gemm_batched_cuda(float *C, const float *A, const float *B, float alpha, float beta, int trans_a,
                                   int trans_b, int batch, int M, int N, int K, int lda, int ldb, int ldc,
                                   int64_t stride_a, int64_t stride_b, int64_t stride_c, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_add_cuda(float *out, const float *a, const float *b, int64_t n, mrec_cuda *cu) { return no_cuda(); }
mrec_status mrec_mul_cuda(float *out, const float *a, const float *b, int64_t n, mrec_cuda *cu) { return no_cuda(); }
mrec_status mrec_scale_cuda(float *out, const float *a, float s, int64_t n, mrec_cuda *cu) { return no_cuda(); }
mrec_status mrec_fill_cuda(float *out, float value, int64_t n, mrec_cuda *cu) { return no_cuda(); }
mrec_status mrec_activation_cuda(float *out, const float *in, mrec_act act, float slope, int64_t n, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_softmax_rows_cuda(float *out, const float *in, const float *mask, int R, int C, int rows_per_mask,
                                   mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_layernorm_cuda(float *out, const float *in, const float *weight, const float *bias, float eps, int R,
                                int C, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_l2_normalize_rows_cuda(float *out, const float *in, float eps, int R, int C, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_embedding_cuda(float *out, const float *table, const int32_t *ids, int N, int V, int D,
                                mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_mean_pool_cuda(float *out, const float *in, const int32_t *mask, int B, int T, int D, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_topk_rows_cuda(int32_t *idx, float *val, const float *scores, int R, int C, int k, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_index_csr_checked_cuda(int64_t *row_ptr, int32_t *pos, const int32_t *ids, int N, int V, void *work,
                                        size_t work_bytes, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_embedding_checked_cuda(float *out, const float *table, const int32_t *ids, int N, int V, int D, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_ffn_bf16_cuda(float *out, const float *x, const float *W1, const float *b1, mrec_act act, const float *W2,
                               const float *b2, float beta, float *hidden, int R, int H, int I, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_linear3_bf16_cuda(float *const out[3], const float *x, const float *const W[3], const float *const b[3], int R,
                                   int N, int K, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_attention_varlen_cuda(float *out, const float *q, const float *k, const float *v, const float *head_bias,
                                       const int32_t *starts, float scale, int B, int T, int heads, int dh, int tf32,
                                       mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_gram_topk_cuda(int32_t *idx, float *val, const float *x, int n, int dim, int k, int unit_rows, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_conv2d_workspace_bytes_cuda(size_t *bytes, const mrec_conv2d_shape *s, mrec_precision prec, mrec_cuda *cu) {
    *bytes = 0;
    return no_cuda();
}
mrec_status mrec_conv2d_cuda(float *out, const float *in, const float *weight, const float *bias, float beta,
                             mrec_precision prec, void *work, size_t work_bytes, const mrec_conv2d_shape *s, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_conv2d_act_cuda(float *out, const float *in, const float *weight, const float *bias, float beta, mrec_act act,
                                 mrec_precision prec, void *work, size_t work_bytes, const mrec_conv2d_shape *s, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_batchnorm_cuda(float *out, const float *in, const float *gamma, const float *beta, const float *mean,
                                const float *var, float eps, int N, int C, int HW, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_maxpool2d_cuda(float *out, const float *in, const mrec_pool2d_shape *s, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_avgpool2d_cuda(float *out, const float *in, const mrec_pool2d_shape *s, mrec_cuda *cu) {
    return no_cuda();
}
int mrec_cuda_bf16_native(const mrec_cuda *cu) { return 0; }
mrec_status mrec_nhwc_bf16_from_nchw_cuda(uint16_t *out, const float *in, int N, int C, int HW, int C_pad, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_conv2d_nhwc_bf16_workspace_bytes_cuda(size_t *bytes, const mrec_conv2d_shape *s, mrec_cuda *cu) {
    *bytes = 0;
    return no_cuda();
}
mrec_status mrec_conv2d_nhwc_bf16_cuda(uint16_t *out, const uint16_t *in, const float *weight, const float *bias, float beta,
                                       int relu, void *work, size_t work_bytes, const mrec_conv2d_shape *s, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_maxpool2d_nhwc_bf16_cuda(uint16_t *out, const uint16_t *in, const mrec_pool2d_shape *s, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_mean_hw_nhwc_bf16_cuda(float *out, const uint16_t *in, int N, int HW, int C, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_spmm_cuda(float *out, const int64_t *row_ptr, const int32_t *col, const float *val, const float *X,
                           int R, int Cc, int D, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_spmm_sum_cuda(float *out, float *sum, const float *sum_in, float scale, const int64_t *row_ptr, const int32_t *col,
                               const float *val, const float *X, int R, int Cc, int D, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_adam_cuda(float *param, float *m, float *v, const float *grad, float lr, float beta1, float beta2,
                           float eps, float weight_decay, int64_t step, int64_t n, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_adam_at_cuda(float *param, float *m, float *v, const float *grad, const float *k, float beta1, float beta2,
                              float eps, float weight_decay, int64_t n, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_attention_cuda(float *out, const float *q, const float *k, const float *v, const float *mask_bias,
                                const float *head_bias, float scale, int B, int T, int heads, int dh, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_attention_tf32_cuda(float *out, const float *q, const float *k, const float *v, const float *mask_bias,
                                     const float *head_bias, float scale, int B, int T, int heads, int dh, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_gemm_ex_cuda(float *C, const void *A, const void *B, const float *bias, int act, float slope,
                              mrec_precision precision, int trans_a, int trans_b, int M, int N, int K, int lda, int ldb,
                              int ldc, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_f32_to_bf16_cuda(uint16_t *out, const float *in, int64_t n, mrec_cuda *cu) { return no_cuda(); }
mrec_status mrec_dropout_cuda(float *out, const float *in, float p, uint64_t seed, uint64_t offset, int64_t n,
                              mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_index_csr_workspace_bytes_cuda(size_t *bytes, int N, int V) {
    *bytes = 0;
    return no_cuda();
}
mrec_status mrec_index_csr_cuda(int64_t *row_ptr, int32_t *pos, const int32_t *ids, int N, int V, void *work,
                                size_t work_bytes, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_bpr_rows_cuda(float *out, const float *T, const int32_t *ids, const float *dx, const float *coef, int n,
                               int d, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_gather_dot_cuda(float *out, const float *A, const int32_t *ia, const float *B, const int32_t *ib,
                                 int n, int d, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_bpr_rows_at_cuda(float *out, const float *T, const int32_t *ids, const float *dx, const float *coef, int parts,
                                  int n, int d, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_bpr_batch_loss_cuda(float *dx, float *coef, double *loss, const float *dots, int n, const mrec_bpr_spec *spec,
                                     mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_loss_add_cuda(mrec_loss_sum *sum, const double *loss, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_loss_term_cuda(double *loss, const double *x, int n, float scale, double div, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_loss_term_at_cuda(double *loss, const double *x, const int32_t *live, float scale, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_loss_cos_cuda(double *loss, const float *cos, int n, float weight, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_loss_norm_cuda(float *coef, double *loss, const float *sq, int n, float reg, int div, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_loss_dot_cuda(double *loss, const float *x, const float *y, int64_t n, float scale, double div, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_moment_align_cuda(float *alpha, float *sums, double *loss, int W, int64_t n, float w, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_scale_at_cuda(float *out, const float *a, const float *s, int64_t n, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_mask_rows_cuda(float *scores, const int64_t *row_ptr, const int32_t *col, int u0, int R, int C,
                                mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_rank_metrics_cuda(mrec_rank_sums *sums, double *work, const int32_t *top, int u0, int R,
                                   const mrec_rank_relevance *rel, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_add_layernorm_cuda(float *out, const float *a, const float *b, const float *weight, const float *bias,
                                    float eps, int R, int C, mrec_cuda *cu) {
    return no_cuda();
}

/* ---- encoders ---- */
mrec_status mrec_embedding_sum_cuda(float *out, const float *word, const int32_t *ids, const float *type,
                                    const int32_t *type_ids, const float *position, const int32_t *pos, int N, int H,
                                    mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_position_ids_cuda(int32_t *pos, const int32_t *ids, int pad_id, int B, int T, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_mask_bias_cuda(float *out, const int32_t *mask, int64_t n, mrec_cuda *cu) { return no_cuda(); }
mrec_status mrec_rel_bias_cuda(float *out, const float *table, const int32_t *bucket, int heads, int T, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_causal_bias_cuda(float *out, int heads, int T, mrec_cuda *cu) { return no_cuda(); }
mrec_status mrec_patchify_cuda(float *out, const float *images, int B, int C, int S, int P, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_class_embed_cuda(float *x, const float *cls, const float *pos, int B, int T, int H, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_copy_rows_cuda(float *out, int ld_out, const float *in, int ld_in, int rows, int cols, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_gemm_lt_cuda(float *C, const float *A, const float *B, const float *bias, float alpha, float beta,
                              mrec_precision precision, int trans_a, int trans_b, int M, int N, int K, int lda, int ldb,
                              int ldc, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_cuda_weights_upload(mrec_cuda *cu, float **out, const float *host, int64_t n, int with_bf16) {
    *out = NULL;
    return no_cuda();
}
void mrec_cuda_weights_free(mrec_cuda *cu, float *weights) {}
mrec_status mrec_hash_dropout_cuda(float *out, const float *x, const int32_t *idx, int64_t n, float p, uint64_t key,
                                   mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_ngcf_combine_cuda(float *e, float *mask, const float *z1, const float *z2, float slope, float p, uint64_t key,
                                   int64_t n, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_ngcf_combine_back_cuda(float *dz1, float *dz2, const float *de, const float *mask, const float *z1,
                                        const float *z2, float slope, int64_t n, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_leaky_relu_back_cuda(float *dz, const float *dy, const float *z, float slope, int64_t n, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_l2_normalize_rows_back_cuda(float *dx, const float *dy, const float *y, const float *x, float eps, float beta,
                                             int R, int C, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_sign_noise_cuda(float *x, const float *u, float eps, uint64_t key, uint64_t offset, int R, int C,
                                 mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_gumbel_noise_cuda(float *out, uint64_t key, int64_t n, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_softmax_xent_rows_cuda(float *g, double *loss, const float *s, const int32_t *target, float alpha, int R,
                                        int C, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_softmax_xent_rows_at_cuda(float *g, double *loss, const float *s, const float *alpha, const int32_t *live, int R,
                                           int C, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_inv_sqrt_cuda(float *out, const float *in, int64_t n, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_knn_scores_cuda(float *scores, const int64_t *row_ptr, const int32_t *col, const int32_t *nbr, const float *sim,
                                 int u0, int R, int C, int k, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_segment_softmax_cuda(float *y, const float *x, const int64_t *row_ptr, int R, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_segment_softmax_back_cuda(float *dx, const float *dy, const float *y, const int64_t *row_ptr, int R, mrec_cuda *cu) {
    return no_cuda();
}

/* ---- pipelined transfers: pinned memory, the copy stream, events ---- */
static mrec_status no_cuda_transfer(const char *what) {
    return mrec_fail(MREC_ERR_DEVICE, "%s: built without CUDA (rebuild with make CUDA=1)", what);
}
mrec_status mrec_cuda_host_alloc(mrec_cuda *cu, void **ptr, size_t bytes) {
    *ptr = NULL;
    return no_cuda_transfer("pinned host memory");
}
mrec_status mrec_cuda_host_free(mrec_cuda *cu, void *ptr) { return ptr ? no_cuda_transfer("pinned host memory") : MREC_OK; }
mrec_status mrec_cuda_copy_h2d_staged(mrec_cuda *cu, void *dst, const void *src, size_t bytes) {
    return no_cuda();
}
double mrec_cuda_stage_wait(const mrec_cuda *cu) {
    return 0;
}
mrec_status mrec_cuda_copy_h2d_async(mrec_cuda *cu, void *dst, const void *src, size_t bytes, mrec_stream stream) {
    return no_cuda_transfer("async copy to GPU");
}
mrec_status mrec_cuda_copy_d2h_async(mrec_cuda *cu, void *dst, const void *src, size_t bytes, mrec_stream stream) {
    return no_cuda_transfer("async copy from GPU");
}
mrec_status mrec_cuda_event_create(mrec_cuda *cu, mrec_event **ev) {
    *ev = NULL;
    return no_cuda_transfer("CUDA event");
}
mrec_status mrec_cuda_event_destroy(mrec_cuda *cu, mrec_event *ev) { return ev ? no_cuda_transfer("CUDA event") : MREC_OK; }
mrec_status mrec_cuda_event_record(mrec_cuda *cu, mrec_event *ev, mrec_stream stream) { return no_cuda_transfer("CUDA event"); }
mrec_status mrec_cuda_stream_wait(mrec_cuda *cu, mrec_stream stream, mrec_event *ev) { return no_cuda_transfer("CUDA stream"); }
mrec_status mrec_cuda_event_sync(mrec_cuda *cu, mrec_event *ev) { return no_cuda_transfer("CUDA event"); }
mrec_status mrec_cuda_stream_sync(mrec_cuda *cu, mrec_stream stream) { return no_cuda_transfer("CUDA stream"); }

/* ---- backward: training the encoders ---- */
mrec_status mrec_linear_back_cuda(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                                  int accumulate, int M, int N, int K, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_layernorm_stats_cuda(float *mean, float *rstd, const float *in, float eps, int R, int C, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_layernorm_back_cuda(float *dx, float *dw, float *db, const float *dy, const float *x, const float *mean,
                                     const float *rstd, const float *w, int accumulate, int R, int C, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_activation_back_cuda(float *dx, const float *dy, const float *x, mrec_act act, float slope, int64_t n,
                                      mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_softmax_rows_back_cuda(float *dx, const float *dy, const float *y, int causal, int R, int C, mrec_cuda *cu) {
    return no_cuda();
}
size_t mrec_attention_back_workspace_bytes_cuda(int B, int T, int heads, int dh) { return 0; }
mrec_status mrec_attention_back_cuda(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                                     const float *v, const float *mask_bias, const float *head_bias, float scale, int B,
                                     int T, int heads, int dh, void *work, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_embedding_back_cuda(float *dtable, const float *dy, const int64_t *row_ptr, const int32_t *pos, int V,
                                     int D, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_patchify_back_cuda(float *dimages, const float *dpatches, int B, int C, int S, int P, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_class_embed_back_cuda(float *dcls, float *dpos, const float *dx, int B, int T, int H, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_gather_rows_back_cuda(float *dx, const float *dy, const int32_t *rows, int B, int H, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_clip_loss_cuda(float *dlogits, double *out, const float *logits, int N, double *work, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_adamw_cuda(float *param, float *m, float *v, const float *grad, double lr, double beta1, double beta2,
                            double eps, double weight_decay, int64_t step, int64_t n, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_sum_squares_cuda(double *out, const float *x, int64_t n, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_depthwise_conv2d_cuda(float *out, const float *in, const float *weight, const float *bias,
                                       const mrec_depthwise_shape *s, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_depthwise_conv2d_act_cuda(float *out, const float *in, const float *weight, const float *bias, mrec_act act,
                                           float *means, const mrec_depthwise_shape *s, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_row_mean_cuda(float *out, const float *in, int R, int HW, mrec_cuda *cu) { return no_cuda(); }
mrec_status mrec_sigmoid_gate_rows_cuda(float *out, const float *in, const float *gate, int R, int HW, mrec_cuda *cu) {
    return no_cuda();
}

mrec_status mrec_layernorm_bf16_cuda(float *out, uint16_t *out16, const float *a, const float *b, const float *weight,
                                     const float *bias, float eps, int R, int C, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_linear_bf16_cuda(void *C, int c_bf16, const uint16_t *A, const float *W, const float *bias, int act, float beta,
                                  int M, int N, int K, int ldc, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_activation_bf16_cuda(uint16_t *x, mrec_act act, int64_t n, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_attention_bf16_cuda(uint16_t *out, const uint16_t *q, const uint16_t *k, const uint16_t *v, int ld,
                                     const float *mask_bias, const float *head_bias, const int32_t *dev_starts, float scale, int B,
                                     int T, int heads, int dh, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_hash_dropout_at_cuda(float *out, const float *x, const int32_t *idx, int64_t n, float p, const uint64_t *key,
                                      mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_ngcf_combine_at_cuda(float *e, float *mask, const float *z1, const float *z2, float slope, float p,
                                      const uint64_t *key, int64_t n, mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_sign_noise_at_cuda(float *x, const float *u, float eps, const uint64_t *key, uint64_t offset, int R, int C,
                                    mrec_cuda *cu) {
    return no_cuda();
}
mrec_status mrec_gumbel_noise_at_cuda(float *out, const uint64_t *key, int64_t n, mrec_cuda *cu) {
    return no_cuda();
}
