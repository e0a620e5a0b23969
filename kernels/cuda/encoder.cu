/* encoder.cu: the encoders' steps around their layers on the GPU (token
 * embeddings with positions, attention biases, ViT's patch unfold and class
 * token, strided row copies), with the contracts of their CPU twins in
 * mrec_kernels.h ("encoders").
 *
 * All of them move data; none sums more than three terms, so each output
 * equals the CPU's bit for bit (the same float adds in the same order).
 * Token ids and positions were checked on the host before they were copied
 * here, so the kernels index with them directly.
 */
#include "cuda_internal.h"

#include <float.h>

#define THREADS 256

/* One thread per (token, feature): word + type + position, that order. */
__global__ static void embedding_sum_kernel(float *out, const float *word, const int32_t *ids, const float *type,
                                            const int32_t *type_ids, const float *position, const int32_t *pos, int H,
                                            int64_t n) {
    for (int64_t at = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; at < n; at += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = at / H;
        int h = (int)(at % H);
        float x = word[(size_t)ids[i] * H + h];
        if (type) x = x + type[(size_t)(type_ids ? type_ids[i] : 0) * H + h];
        out[at] = x + position[(size_t)pos[i] * H + h];
    }
}

/* out (N, H); word, type, position: tables; ids, type_ids, pos: (N) */
extern "C" mrec_status mrec_embedding_sum_cuda(float *out, const float *word, const int32_t *ids, const float *type,
                                               const int32_t *type_ids, const float *position, const int32_t *pos, int N,
                                               int H, mrec_cuda *cu) {
    int64_t n = (int64_t)N * H;
    if (n <= 0) return MREC_OK;
    embedding_sum_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(out, word, ids, type, type_ids, position, pos, H, n);
    return MREC_CUDA_LAUNCHED("embedding_sum");
}

/* One thread per sequence: MPNet's positions count the real tokens so far,
 * a running count along the row (T <= a few thousand, once per batch). */
__global__ static void position_ids_kernel(int32_t *pos, const int32_t *ids, int pad_id, int B, int T) {
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= B) return;
    int real = 0;
    for (int t = 0; t < T; t++) {
        size_t i = (size_t)b * T + t;
        if (pad_id < 0) pos[i] = t;
        else pos[i] = ids[i] != pad_id ? pad_id + ++real : pad_id;
    }
}

/* pos, ids: (B, T) */
extern "C" mrec_status mrec_position_ids_cuda(int32_t *pos, const int32_t *ids, int pad_id, int B, int T, mrec_cuda *cu) {
    if (B <= 0 || T <= 0) return MREC_OK;
    position_ids_kernel<<<(B + 63) / 64, 64, 0, cu->stream>>>(pos, ids, pad_id, B, T);
    return MREC_CUDA_LAUNCHED("position_ids");
}

__global__ static void mask_bias_kernel(float *out, const int32_t *mask, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = mask && !mask[i] ? -FLT_MAX : 0.0f;
}

/* out, mask: (n) */
extern "C" mrec_status mrec_mask_bias_cuda(float *out, const int32_t *mask, int64_t n, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    mask_bias_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(out, mask, n);
    return MREC_CUDA_LAUNCHED("mask_bias");
}

/* One thread per (head, query, key); table NULL makes the causal mask. */
__global__ static void attention_bias_kernel(float *out, const float *table, const int32_t *bucket, int heads, int T,
                                             int64_t n) {
    for (int64_t at = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; at < n; at += (int64_t)gridDim.x * blockDim.x) {
        int k = (int)(at % T), q = (int)(at / T % T), h = (int)(at / ((int64_t)T * T));
        out[at] = table ? table[(size_t)bucket[k - q + T - 1] * heads + h] : k > q ? -FLT_MAX : 0.0f;
    }
}

/* out (heads, T, T); table (buckets, heads); bucket (2T - 1) */
extern "C" mrec_status mrec_rel_bias_cuda(float *out, const float *table, const int32_t *bucket, int heads, int T,
                                          mrec_cuda *cu) {
    int64_t n = (int64_t)heads * T * T;
    if (n <= 0) return MREC_OK;
    attention_bias_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(out, table, bucket, heads, T, n);
    return MREC_CUDA_LAUNCHED("rel_bias");
}

/* out (heads, T, T) */
extern "C" mrec_status mrec_causal_bias_cuda(float *out, int heads, int T, mrec_cuda *cu) {
    int64_t n = (int64_t)heads * T * T;
    if (n <= 0) return MREC_OK;
    attention_bias_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(out, NULL, NULL, heads, T, n);
    return MREC_CUDA_LAUNCHED("causal_bias");
}

/* One thread per output value, walking the output in order, so writes are
 * coalesced; reads are rows of P pixels. */
__global__ static void patchify_kernel(float *out, const float *images, int C, int S, int P, int64_t n) {
    int G = S / P, K = C * P * P;
    for (int64_t at = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; at < n; at += (int64_t)gridDim.x * blockDim.x) {
        int64_t patch = at / K;
        int e = (int)(at % K), c = e / (P * P), y = e / P % P, x = e % P;
        int64_t b = patch / ((int64_t)G * G);
        int gy = (int)(patch / G % G), gx = (int)(patch % G);
        out[at] = images[(((size_t)b * C + c) * S + (size_t)gy * P + y) * S + (size_t)gx * P + x];
    }
}

/* out (B, G*G, C*P*P); images (B, C, S, S) */
extern "C" mrec_status mrec_patchify_cuda(float *out, const float *images, int B, int C, int S, int P, mrec_cuda *cu) {
    if (P < 1 || S % P) return mrec_fail(MREC_ERR_SHAPE, "patchify: %dx%d images do not split into %dx%d patches", S, S, P, P);
    int64_t n = (int64_t)B * (S / P) * (S / P) * C * P * P;
    if (n <= 0) return MREC_OK;
    patchify_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(out, images, C, S, P, n);
    return MREC_CUDA_LAUNCHED("patchify");
}

__global__ static void class_embed_kernel(float *x, const float *cls, const float *pos, int T, int H, int64_t n) {
    for (int64_t at = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; at < n; at += (int64_t)gridDim.x * blockDim.x) {
        int h = (int)(at % H), t = (int)(at / H % T);
        x[at] = (t == 0 ? cls[h] : x[at]) + pos[(size_t)t * H + h];
    }
}

/* x (B, T, H) in place; cls (H); pos (T, H) */
extern "C" mrec_status mrec_class_embed_cuda(float *x, const float *cls, const float *pos, int B, int T, int H,
                                             mrec_cuda *cu) {
    int64_t n = (int64_t)B * T * H;
    if (n <= 0) return MREC_OK;
    class_embed_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(x, cls, pos, T, H, n);
    return MREC_CUDA_LAUNCHED("class_embed");
}

/* out (rows, cols), row stride ld_out; in (rows, cols), row stride ld_in: one strided copy on the stream */
extern "C" mrec_status mrec_copy_rows_cuda(float *out, int ld_out, const float *in, int ld_in, int rows, int cols,
                                           mrec_cuda *cu) {
    if (rows <= 0 || cols <= 0) return MREC_OK;
    return mrec_cuda_check(cudaMemcpy2DAsync(out, sizeof(float) * (size_t)ld_out, in, sizeof(float) * (size_t)ld_in,
                                             sizeof(float) * (size_t)cols, (size_t)rows, cudaMemcpyDeviceToDevice, cu->stream),
                           "copy_rows");
}
