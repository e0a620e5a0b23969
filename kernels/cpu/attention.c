/* attention.c: multi-head self-attention on the CPU kernels. */
#include "../mrec_kernels.h"
#include "gemm_internal.h"
#include "parallel.h"

#include <string.h>

size_t mrec_attention_scratch_floats(int B, int T, int heads, int dh) {
    (void)dh;
    return (size_t)B * heads * T * T;
}

/* One head of one sequence on one thread: its scores (T x T) stay in cache
 * from the product to the softmax to the product with V, with no trip
 * through memory between the three steps. The bits are those of the
 * batched products and the softmax over all rows: each product is the
 * batched GEMM's item (mrec_gemm_item_cpu, or mrec_gemm_bf16_item in a bf16
 * context, as autocast's matmuls), each softmax row the same row (scalar in
 * fp32, 16 lanes in bf16). */
typedef struct {
    float *out, *scores;
    const float *q, *k, *v, *mask_bias, *head_bias;
    float scale;
    int T, nh, dh, bf16, B;
    mrec_pool *pool;
} head_job;

/* Head `task`'s rows of q, k and v toward L2 while an earlier head runs. A
 * head's rows are dh floats in every nh * dh, a stride the prefetchers do
 * not follow across pages: packing them waited on memory for a third of a
 * bf16 head through the tiles. */
static void prefetch_head(const head_job *a, int task) {
    if (task >= a->B * a->nh) return;
    int ld = a->nh * a->dh;
    size_t at = (size_t)(task / a->nh) * a->T * ld + (size_t)(task % a->nh) * a->dh;
    for (int t = 0; t < a->T; t++)
        for (int c = 0; c < a->dh; c += 16) {
            size_t o = at + (size_t)t * ld + c;
            __builtin_prefetch(a->q + o, 0, 2), __builtin_prefetch(a->k + o, 0, 2), __builtin_prefetch(a->v + o, 0, 2);
        }
}

static void head_task(void *arg, int task, int thread) {
    const head_job *a = arg;
    int b = task / a->nh, h = task % a->nh, T = a->T, ld = a->nh * a->dh;
    size_t tt = (size_t)T * T, at = (size_t)b * T * ld + (size_t)h * a->dh;
    float *scores = a->scores + (size_t)task * tt;
    const float *mask = a->mask_bias ? a->mask_bias + (size_t)b * T : NULL;
    if (a->bf16 && mrec_attention_head_amx_fits(T, a->dh, a->pool)) {
        prefetch_head(a, task + mrec_pool_threads(a->pool)); /* the tasks go to the threads in turn, roughly */
        mrec_attention_head_amx(a->out + at, a->q + at, a->k + at, a->v + at, mask, a->head_bias ? a->head_bias + (size_t)h * tt : NULL,
                                a->scale, T, a->dh, ld, a->pool, thread);
        return;
    }
    if (a->bf16) mrec_gemm_bf16_item(scores, a->q + at, a->k + at, a->scale, 0, 1, T, T, a->dh, ld, ld, T, a->pool, thread);
    else mrec_gemm_item_cpu(scores, a->q + at, a->k + at, a->scale, 0, 1, a->nh, T, T, a->dh, ld, ld, T, a->pool, thread);
    if (a->head_bias) {
        const float *hb = a->head_bias + (size_t)h * tt;
        for (size_t i = 0; i < tt; i++) scores[i] = scores[i] + hb[i];
    }
    if (a->bf16) {
        mrec_softmax_rows_lanes_span_cpu(scores, scores, mask, T, T, T);
        mrec_gemm_bf16_item(a->out + at, scores, a->v + at, 1.0f, 0, 0, T, a->dh, T, T, ld, ld, a->pool, thread);
    } else {
        mrec_softmax_rows_span_cpu(scores, scores, mask, T, T, T);
        mrec_gemm_item_cpu(a->out + at, scores, a->v + at, 1.0f, 0, 0, a->nh, T, a->dh, T, T, ld, ld, a->pool, thread);
    }
}

/* q, k, v and out are (B, T, nh, dh): head h of sequence b is a (T, dh)
 * matrix at b * T * nh * dh + h * dh with rows nh * dh apart, which the
 * GEMMs read and write in place, so no head is copied out and back. */
void mrec_attention_cpu(float *out, const float *q, const float *k, const float *v, const float *mask_bias,
                        const float *head_bias, float scale, int B, int T, int nh, int dh, float *scratch,
                        int bf16, mrec_pool *pool) {
    float *scores = scratch; /* (B, nh, T, T) */
    int ld = nh * dh;
    int64_t tt = (int64_t)T * T;
    size_t seq = (size_t)T * ld;
    bf16 = bf16 && mrec_cpu_has_bf16();
    if (!bf16 || (mrec_gemm_bf16_item_fits(T, T, dh, pool) && mrec_gemm_bf16_item_fits(T, dh, T, pool))) {
        head_job a = {out, scores, q, k, v, mask_bias, head_bias, scale, T, nh, dh, bf16, B, pool};
        mrec_pool_run(pool, head_task, &a, B * nh);
        return;
    }
    /* Very long sequences in a bf16 context: a product whose packing does not fit a thread's scratch runs in fp32, in
     * passes over all heads. */
    for (int b = 0; b < B; b++)
        if (!mrec_gemm_bf16_batched(scores + (size_t)b * nh * tt, q + b * seq, k + b * seq, scale, 0, 1, nh, T, T, dh, ld, ld, T,
                                    dh, dh, tt, pool))
            mrec_gemm_batched_cpu(scores + (size_t)b * nh * tt, q + b * seq, k + b * seq, scale, 0, 0, 1, nh, T, T, dh, ld, ld,
                                  T, dh, dh, tt, pool);
    if (head_bias)
        for (int b = 0; b < B; b++) mrec_add_cpu(scores + (size_t)b * nh * tt, scores + (size_t)b * nh * tt, head_bias, nh * tt, pool);
    /* each row of mask_bias serves the nh * T score rows of its sequence */
    mrec_softmax_rows_lanes_cpu(scores, scores, mask_bias, B * nh * T, T, nh * T, pool);
    for (int b = 0; b < B; b++)
        if (!mrec_gemm_bf16_batched(out + b * seq, scores + (size_t)b * nh * tt, v + b * seq, 1, 0, 0, nh, T, dh, T, T, ld, ld,
                                    tt, dh, dh, pool))
            mrec_gemm_batched_cpu(out + b * seq, scores + (size_t)b * nh * tt, v + b * seq, 1, 0, 0, 0, nh, T, dh, T, T, ld, ld,
                                  tt, dh, dh, pool);
}

size_t mrec_attention_varlen_scratch_floats(int T, int heads, int dh) {
    return mrec_attention_scratch_floats(1, T, heads, dh) + (size_t)heads * T * T; /* the scores, then a bias block */
}

void mrec_attention_varlen_cpu(float *out, const float *q, const float *k, const float *v, const float *head_bias, float scale,
                               const int32_t *starts, int B, int T, int nh, int dh, float *scratch, int bf16, mrec_pool *pool) {
    float *block = scratch + mrec_attention_scratch_floats(1, T, nh, dh);
    size_t H = (size_t)nh * dh;
    for (int b = 0; b < B; b++) {
        int L = starts[b + 1] - starts[b];
        size_t o = (size_t)starts[b] * H;
        if (L <= 0) continue;
        /* a sequence of L tokens reads the top-left L x L of each head's bias, contiguous here */
        if (head_bias)
            for (int h = 0; h < nh; h++)
                for (int i = 0; i < L; i++)
                    memcpy(block + ((size_t)h * L + i) * L, head_bias + ((size_t)h * T + i) * T, sizeof(float) * (size_t)L);
        mrec_attention_cpu(out + o, q + o, k + o, v + o, NULL, head_bias ? block : NULL, scale, 1, L, nh, dh, scratch, bf16, pool);
    }
}
