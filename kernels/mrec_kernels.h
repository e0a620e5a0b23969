/* mrec_kernels.h: the op set. One C function per op, three variants each:
 *
 *   mrec_<op>_ref   naive loops, double accumulation: the oracle the tests
 *                   trust. Slow on purpose; read these to learn what an op is.
 *   mrec_<op>_cpu   the fast CPU version (blocked, SIMD, threaded on a pool).
 *   mrec_<op>_cuda  the GPU version, in the CUDA build (kernels/cuda/).
 *
 * Signature convention: outputs first, then inputs, then parameters, then
 * dimensions, then the execution handle (a pool on the CPU, a device context
 * on the GPU). Every array argument carries its shape in a comment.
 * All tensors are contiguous, row-major float32 unless a stride is given.
 * Outputs may alias inputs only where an op says so ("in place allowed").
 *
 * This header includes no CUDA header: device handles are opaque.
 */
#ifndef MREC_KERNELS_H
#define MREC_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "mrec_status.h"
#include "rank_metrics.h"

/* ---- CPU execution: SIMD level and thread pool ------------------------- */

/* AMX: AVX-512 and the AMX tiles with bf16 products (TDPBF16PS), which the
 * bf16 GEMM uses; fp32 runs the AVX-512 kernels. */
typedef enum { MREC_SIMD_SCALAR = 0, MREC_SIMD_AVX2 = 1, MREC_SIMD_AVX512 = 2, MREC_SIMD_AMX = 3 } mrec_simd;

/* The best level this CPU and OS support (cpuid), so one binary runs on any
 * x86-64. AMX also needs the kernel's leave to use the tile registers,
 * which the first call asks for (Linux's arch_prctl). */
mrec_simd mrec_simd_detect(void);
const char *mrec_simd_name(mrec_simd simd);

/* A fixed set of worker threads plus one scratch buffer per thread (GEMM
 * packing), created once; ops split their work into tasks on it. The level
 * of SIMD is a property of the pool so tests and benches can pin one. Each
 * task writes a disjoint part of the output in a fixed order, so results do
 * not depend on scheduling (every task runs in the caller's floating-point
 * mode: mrec_flush_subnormals_begin). Tasks are claimed one at a time by
 * whichever thread is free, the caller included (thread 0), so a task may use its
 * thread's scratch but must not compute differently by thread. Idle threads
 * sleep after a short adaptive spin. Pools are not re-entrant: a task must
 * not call mrec_pool_run on the same pool, nor two threads run one pool. */
typedef struct mrec_pool mrec_pool;
typedef void (*mrec_task_fn)(void *arg, int task, int thread);

/* n_threads <= 0 means one per core this process may run on (its CPU
 * affinity mask, as taskset or a container sets it). simd is clamped to
 * what the CPU supports. */
mrec_status mrec_pool_create(mrec_pool **out, int n_threads, mrec_simd simd);
void mrec_pool_destroy(mrec_pool *pool);
int mrec_pool_threads(const mrec_pool *pool);
mrec_simd mrec_pool_simd(const mrec_pool *pool);
void *mrec_pool_scratch(mrec_pool *pool, int thread);
/* Thread `thread`'s view of the pool: one thread (the caller), that
 * thread's scratch, no workers. A task of the pool that runs whole ops of
 * its own (a forward pass per thread) hands them this pool. */
mrec_pool *mrec_pool_alone(mrec_pool *pool, int thread);
void mrec_pool_run(mrec_pool *pool, mrec_task_fn fn, void *arg, int n_tasks);
/* The same for tasks that are whole forward passes (mrec_context_split):
 * always on the pool's threads, and left out of the pool's judgement of
 * whether its threads pay for small jobs (which a few long tasks would
 * skew). */
void mrec_pool_run_spread(mrec_pool *pool, mrec_task_fn fn, void *arg, int n_tasks);

/* ---- subnormals ----------------------------------------------------------
 * Training flushes subnormal floats (below 1.2e-38) to zero. On x86 CPUs a
 * multiply or add that reads or makes one takes a microcode assist, about
 * a hundred times its cost, and gradients drift into that range as a model
 * trains: LGMRec's hypergraph gradient (4,096 x 4 over 7,050 items) took
 * 18 ms a product at first and 250 ms a few steps on. PyTorch keeps them
 * unless asked (torch.set_flush_denormal). A gradient that small gives no
 * visible update through Adam's eps (1e-8). A training batch
 * (mrec_fit_batch, so each of mrec_fit's) flushes on the calling thread and
 * puts its mode back before it returns; evaluation and ranking keep the
 * caller's mode. A pool's workers run each job in the mode of the thread
 * that starts it.
 * x86 only (MXCSR's FTZ and DAZ bits); elsewhere these do nothing. GPUs
 * keep subnormals, at no cost there. */
typedef struct {
    unsigned bits; /* the thread's mode before */
} mrec_fp_mode;
mrec_fp_mode mrec_flush_subnormals_begin(void);
void mrec_flush_subnormals_end(mrec_fp_mode before); /* FTZ and DAZ as before; nothing else of the mode */
int mrec_flushing_subnormals(void); /* on the calling thread */

/* ---- devices, workspaces, the execution context ------------------------- */

typedef enum { MREC_DEVICE_CPU, MREC_DEVICE_CUDA } mrec_device;
typedef struct mrec_cuda mrec_cuda;
/* GEMM precisions: fp32 (the reference), TF32 tensor cores (fp32 in and
 * out, 10-bit mantissa products), bf16 operands with fp32 accumulation. */
typedef enum { MREC_PREC_FP32, MREC_PREC_TF32, MREC_PREC_BF16 } mrec_precision;

typedef struct {
    uint8_t *base;       /* NULL while measuring */
    size_t capacity;
    size_t used;         /* bytes handed out since the last reset */
    size_t peak;         /* the most ever used: what to reserve */
    mrec_device device;
    int owned;           /* base was allocated by mrec_arena_reserve */
} mrec_arena;

#define MREC_ARENA_ALIGN 64

/* A measuring arena: allocations return NULL but are counted in peak. */
mrec_arena mrec_arena_measure(void);
/* Allocates `bytes` once (on the device the context runs on). */
mrec_status mrec_arena_reserve(mrec_arena *a, size_t bytes, mrec_device device, void *cuda);
/* Host memory for a large buffer, 64-byte aligned, on huge pages where the
 * system grants them (Linux's transparent huge pages), or NULL; released
 * with mrec_free_large and the same size. */
void *mrec_alloc_large(size_t bytes);
void mrec_free_large(void *p, size_t bytes);
void mrec_arena_release(mrec_arena *a, void *cuda);
void mrec_arena_reset(mrec_arena *a);
/* Carves a 64-byte aligned block; NULL (and no change) if it would not fit,
 * except while measuring, where it always returns NULL and counts. */
void *mrec_arena_alloc(mrec_arena *a, size_t bytes);
typedef enum { MREC_WANT_AUTO, MREC_WANT_CPU, MREC_WANT_CUDA } mrec_device_request;

typedef struct {
    mrec_device_request device;
    int n_threads;       /* <= 0: one per core */
    mrec_simd max_simd;  /* the highest SIMD level to use (tests pin lower ones) */
    mrec_precision precision; /* of the GEMMs (see mrec_context_create for the CPU) */
} mrec_context_options;

/* Everything a forward pass needs besides weights and inputs: where it runs,
 * the CPU pool, the CUDA handles. No op reaches for hidden global state. */
typedef struct {
    mrec_device device;
    mrec_pool *pool;       /* always present: the CPU does I/O and small ops */
    mrec_cuda *cuda;       /* NULL unless device is MREC_DEVICE_CUDA */
    mrec_arena workspace;  /* activations, on ctx->device; sized by mrec_context_reserve */
    mrec_precision precision; /* what mrec_gemm computes in: on the GPU any; on the CPU fp32, or bf16 with AVX-512 BF16 */
    struct mrec_packs *packs; /* the running model's packed weights (CPU), set around its forward, or NULL */
    char notice[256];      /* e.g. why "auto" fell back to the CPU, for the tool to print */
    int in_graph;          /* inside mrec_graph_run's body: on a CPU context a copy between host and device, or an op
                            * that waits for a GPU, is refused there, as a GPU's capture refuses it, so the CPU's tests
                            * hold a body to the contract */
    struct mrec_graph_check *graph_check; /* NULL, or (tests, mrec_graph_check_enable) a CPU body's launches compared
                                           * between calls with the same key, as a GPU's replay would freeze them */
} mrec_context;

mrec_context_options mrec_context_defaults(void);
/* MREC_WANT_CUDA fails with MREC_ERR_DEVICE if no GPU can be used;
 * MREC_WANT_AUTO falls back to the CPU and says so in ctx->notice. TF32 is
 * a GPU precision, and so is bf16 on a CPU without AVX-512 BF16: asked for
 * with MREC_WANT_CPU they are an error (MREC_ERR_ARG), and an "auto" that
 * falls back computes fp32 and says so. On a CPU with it, bf16 is
 * mrec_gemm_bf16_cpu in mrec_gemm and mrec_conv2d_bf16_cpu in mrec_conv2d;
 * the other ops stay fp32. */
mrec_status mrec_context_create(mrec_context **out, const mrec_context_options *opt);
void mrec_context_destroy(mrec_context *ctx);
/* Makes the workspace at least `bytes` large (on the context's device),
 * releasing the old one; contents are not kept. Call it once, with the
 * size a measuring arena reported for the largest batch. */
mrec_status mrec_context_reserve(mrec_context *ctx, size_t bytes);
const char *mrec_device_name(mrec_device device);

/* Items side by side: a forward pass of an image per thread beats every
 * op of one image split over the threads (no wait between ops, each
 * thread's activations in its own cache). On a CPU pool of T > 1 threads
 * and at least T items, items [0, T q), q = n / T, are tasks of one item
 * each, handed to the threads as they come free: fn(sub, i, i + 1, arg) on
 * sub, a copy of ctx with the thread's one-thread pool (mrec_pool_alone)
 * and its own item_bytes of ctx's free workspace. The last n - T q items
 * then run on ctx, on all threads. Where that does not apply (a GPU, one
 * thread, fewer items, or less free workspace than the T shares: reserve
 * mrec_context_split_bytes) it is fn(ctx, 0, n, arg). fn's results are the
 * same either way where its ops' bits do not depend on the thread count
 * (the CPU kernels' contract). */
typedef mrec_status (*mrec_items_fn)(mrec_context *ctx, int lo, int hi, void *arg);
mrec_status mrec_context_split(mrec_context *ctx, int n, size_t item_bytes, mrec_items_fn fn, void *arg);
/* The workspace that lets mrec_context_split run n items side by side on
 * ctx: the larger of all_bytes (what fn needs for all n at once) and the T
 * shares of item_bytes (all_bytes where it would not split). */
size_t mrec_context_split_bytes(const mrec_context *ctx, int n, size_t item_bytes, size_t all_bytes);

/* A sparse matrix in CSR form, with its shape; the caller checks it once
 * with mrec_csr_validate before handing it to ops. */
typedef struct mrec_csr {
    int n_rows, n_cols;
    const int64_t *row_ptr; /* (n_rows + 1) */
    const int32_t *col;     /* (nnz) */
    const float *val;       /* (nnz) or NULL for ones */
    mrec_device device;
    /* The same matrix transposed, (n_cols, n_rows), or NULL: the GPU computes
     * A^T @ X as a product with it (deterministic, no atomics). */
    const struct mrec_csr *transposed;
} mrec_csr;

/* Row pointers non-decreasing from 0, columns inside [0, n_cols). */
mrec_status mrec_csr_validate(const mrec_csr *a);
/* ---- GEMM ----------------------------------------------------------------
 * C = alpha * op(A) @ op(B) + beta * C + bias, with op(X) = X or X^T.
 *   op(A): (M, K), stored (M, K) with row stride lda, or (K, M) if trans_a
 *   op(B): (K, N), stored (K, N) with row stride ldb, or (N, K) if trans_b
 *          (trans_b = 1 is nn.Linear: y = x W^T + b with W of shape (N, K))
 *   C:     (M, N) with row stride ldc; bias: (N) or NULL.
 * beta = 0 ignores C's previous contents (NaN included), as BLAS does. */
void mrec_gemm_ref(float *C, const float *A, const float *B, const float *bias,
                   float alpha, float beta, int trans_a, int trans_b,
                   int M, int N, int K, int lda, int ldb, int ldc);
void mrec_gemm_cpu(float *C, const float *A, const float *B, const float *bias,
                   float alpha, float beta, int trans_a, int trans_b,
                   int M, int N, int K, int lda, int ldb, int ldc, mrec_pool *pool);
/* The same with the rows of A or B taken through an index, a gather done by
 * the packing instead of into a matrix of its own: row i of A is A +
 * a_rows[i] * lda, row k of B is B + b_rows[k] * ldb (NULL: row i, row k).
 * An index applies to an operand that is not transposed (ignored on one
 * that is). The bits of gathering the rows first and calling mrec_gemm_cpu.
 * (A model's features for a batch's items: a Baby batch gathered 54 MB of
 * rows for two GEMMs to read once each.) */
void mrec_gemm_rows_ref(float *C, const float *A, const int32_t *a_rows, const float *B, const int32_t *b_rows, const float *bias,
                        float alpha, float beta, int trans_a, int trans_b, int M, int N, int K, int lda, int ldb, int ldc);
void mrec_gemm_rows_cpu(float *C, const float *A, const int32_t *a_rows, const float *B, const int32_t *b_rows, const float *bias,
                        float alpha, float beta, int trans_a, int trans_b, int M, int N, int K, int lda, int ldb, int ldc,
                        mrec_pool *pool);

/* Weights packed once. A model whose weights will not change again (an
 * encoder at inference) hands its storage (floats from `storage`) to a pack
 * set. A CPU GEMM given the set whose B is a transposed matrix inside that
 * storage (nn.Linear's W: trans_b = 1, ldb = K) and whose A has more than
 * MREC_GEMM_FEW_ROWS rows then reads B from a copy laid out for the
 * micro-kernel, packed on its first use and kept, instead of packing it on
 * every call. Likewise an A inside the storage, not transposed, lda = K (a
 * convolution's weights, C_out x C_in k k), with more than that many rows. The bits are the same as without. The copy costs the bytes of
 * every W so used (each padded to whole panels); mrec_packs_bytes counts
 * them. Anything else goes to mrec_gemm_cpu. The set may be shared by
 * contexts on several threads; it must be freed before the storage. */
typedef struct mrec_packs mrec_packs;
mrec_status mrec_packs_create(mrec_packs **out, const float *storage, int64_t floats);
void mrec_packs_free(mrec_packs *packs);
size_t mrec_packs_bytes(mrec_packs *packs);
void mrec_gemm_packed_cpu(float *C, const float *A, const float *B, const float *bias,
                          float alpha, float beta, int trans_a, int trans_b,
                          int M, int N, int K, int lda, int ldb, int ldc, mrec_packs *packs, mrec_pool *pool);

/* bf16 GEMM: mrec_gemm_cpu's contract with op(A) and op(B) rounded to
 * bf16 (round to nearest even, as torch's CPU autocast does) and every
 * product summed in fp32 (exact products: the error bound of an fp32 GEMM
 * on the rounded inputs). Needs AVX-512 BF16 (mrec_cpu_has_bf16; else
 * MREC_ERR_UNSUPPORTED). A weight inside `packs` (as for
 * mrec_gemm_packed_cpu) is rounded and packed once, at half the bytes of
 * fp32; any other B on every call (MREC_ERR_NOMEM if that memory is not
 * there: nothing is written). */
int mrec_cpu_has_bf16(void);
mrec_status mrec_gemm_bf16_cpu(float *C, const float *A, const float *B, const float *bias,
                               float alpha, float beta, int trans_a, int trans_b,
                               int M, int N, int K, int lda, int ldb, int ldc, mrec_packs *packs, mrec_pool *pool);

/* Batched GEMM: for b < batch, the GEMM above on A + b*stride_a, B + b*stride_b,
 * C + b*stride_c (strides in elements; 0 broadcasts an operand). No bias. */
void mrec_gemm_batched_ref(float *C, const float *A, const float *B,
                           float alpha, float beta, int trans_a, int trans_b,
                           int batch, int M, int N, int K, int lda, int ldb, int ldc,
                           int64_t stride_a, int64_t stride_b, int64_t stride_c);
void mrec_gemm_batched_cpu(float *C, const float *A, const float *B,
                           float alpha, float beta, int trans_a, int trans_b,
                           int batch, int M, int N, int K, int lda, int ldb, int ldc,
                           int64_t stride_a, int64_t stride_b, int64_t stride_c,
                           mrec_pool *pool);

/* ---- element-wise (n elements; in place allowed) ------------------------ */

void mrec_add_ref(float *out, const float *a, const float *b, int64_t n);
void mrec_add_cpu(float *out, const float *a, const float *b, int64_t n, mrec_pool *pool);
void mrec_mul_ref(float *out, const float *a, const float *b, int64_t n);
void mrec_mul_cpu(float *out, const float *a, const float *b, int64_t n, mrec_pool *pool);
void mrec_scale_ref(float *out, const float *a, float s, int64_t n);
void mrec_scale_cpu(float *out, const float *a, float s, int64_t n, mrec_pool *pool);
void mrec_fill_ref(float *out, float value, int64_t n);
void mrec_fill_cpu(float *out, float value, int64_t n, mrec_pool *pool);

/* Activations as PyTorch defines them:
 *   gelu_erf   x/2 (1 + erf(x/sqrt 2))                     nn.GELU()
 *   gelu_tanh  x/2 (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))  nn.GELU('tanh')
 *   quick_gelu x sigmoid(1.702 x)                          CLIP
 *   relu, leaky_relu (slope for x < 0), silu x sigmoid(x), tanh (BERT's and ViT's poolers) */
typedef enum {
    MREC_ACT_GELU_ERF, MREC_ACT_GELU_TANH, MREC_ACT_QUICK_GELU,
    MREC_ACT_RELU, MREC_ACT_LEAKY_RELU, MREC_ACT_SILU, MREC_ACT_TANH
} mrec_act;
void mrec_activation_ref(float *out, const float *in, mrec_act act, float slope, int64_t n);
void mrec_activation_cpu(float *out, const float *in, mrec_act act, float slope, int64_t n,
                         mrec_pool *pool);
/* The same in place on the (m x n) corner at c (rows ldc apart), on the
 * calling thread, at the pool's SIMD level (NULL: the CPU's): each element
 * gets the bits mrec_activation_cpu on that pool gives it, wherever the
 * corner lies (a GEMM's epilogue, tile by tile). */
void mrec_activation_rows_cpu(float *c, int64_t ldc, int m, int64_t n, mrec_act act, float slope, const mrec_pool *pool);

/* A linear layer and its activation: C (M x N) = act(A W^T + bias), A (M x
 * K) and W (N x K) row-major, bias (N) or NULL. The bits of
 * mrec_gemm_packed_cpu (or mrec_gemm_bf16_cpu) and then mrec_activation_cpu,
 * with each tile of C activated as its last K block is stored, while it is
 * in cache, instead of in a pass of its own over C. */
void mrec_linear_act_cpu(float *C, const float *A, const float *W, const float *bias, mrec_act act, int M, int N, int K,
                         mrec_packs *packs, mrec_pool *pool);
mrec_status mrec_linear_act_bf16_cpu(float *C, const float *A, const float *W, const float *bias, mrec_act act, int M, int N,
                                     int K, mrec_packs *packs, mrec_pool *pool);

/* ---- rows ----------------------------------------------------------------- */

/* Softmax over each row of in (R, C). mask, if not NULL, is additive with
 * shape (R / rows_per_mask, C): row r adds mask row r / rows_per_mask, so one
 * (B, T) attention mask serves scores of shape (B, H, T, T) with
 * rows_per_mask = H*T. A row that is all -inf gives NaN, as PyTorch does. */
void mrec_softmax_rows_ref(float *out, const float *in, const float *mask,
                           int R, int C, int rows_per_mask);
void mrec_softmax_rows_cpu(float *out, const float *in, const float *mask,
                           int R, int C, int rows_per_mask, mrec_pool *pool);
/* The same rows on the calling thread. */
void mrec_softmax_rows_span_cpu(float *out, const float *in, const float *mask, int R, int C, int rows_per_mask);
/* The same rows 16 lanes at a time where the CPU has AVX-512 (libmvec's
 * expf, sums in lanes): a few ulps from mrec_softmax_rows_cpu, which it is
 * elsewhere. For forwards whose GEMMs round to bf16 anyway (attention in a
 * bf16 context, as autocast runs it); fp32 keeps the scalar rows, which
 * CLIP's fine-tuning is checked against PyTorch through AdamW with. */
void mrec_softmax_rows_lanes_cpu(float *out, const float *in, const float *mask,
                                 int R, int C, int rows_per_mask, mrec_pool *pool);
void mrec_softmax_rows_lanes_span_cpu(float *out, const float *in, const float *mask, int R, int C, int rows_per_mask);

/* LayerNorm over the last dim: out = (x - mean) / sqrt(var + eps) * w + b,
 * biased variance as nn.LayerNorm. weight, bias: (C) or NULL. */
void mrec_layernorm_ref(float *out, const float *in, const float *weight, const float *bias,
                        float eps, int R, int C);
void mrec_layernorm_cpu(float *out, const float *in, const float *weight, const float *bias,
                        float eps, int R, int C, mrec_pool *pool);

/* out (R, C) = in / max(||in||_2, eps) per row, as F.normalize. */
void mrec_l2_normalize_rows_ref(float *out, const float *in, float eps, int R, int C);
void mrec_l2_normalize_rows_cpu(float *out, const float *in, float eps, int R, int C,
                                mrec_pool *pool);

/* out (N, D) = table (V, D)[ids (N)]. An id outside [0, V) is an error
 * naming the position; nothing is zero-filled. */
mrec_status mrec_embedding_ref(float *out, const float *table, const int32_t *ids,
                               int N, int V, int D);
mrec_status mrec_embedding_cpu(float *out, const float *table, const int32_t *ids,
                               int N, int V, int D, mrec_pool *pool);

/* Mean over tokens where mask != 0: out (B, D) from in (B, T, D), mask (B, T)
 * or NULL (all tokens). The count is clamped to 1e-9 as sentence-transformers
 * does, so an all-padding row gives zeros. */
void mrec_mean_pool_ref(float *out, const float *in, const int32_t *mask, int B, int T, int D);
void mrec_mean_pool_cpu(float *out, const float *in, const int32_t *mask, int B, int T, int D,
                        mrec_pool *pool);

/* Top-k of each row of scores (R, C), k <= C: idx and val (R, k), in
 * descending order, ties to the lower column; NaN ranks below every number. */
void mrec_topk_rows_ref(int32_t *idx, float *val, const float *scores, int R, int C, int k);
void mrec_topk_rows_cpu(int32_t *idx, float *val, const float *scores, int R, int C, int k,
                        mrec_pool *pool);
/* idx, val (n, k) = mrec_topk_rows of S = x x^T (x: n x dim, row-major),
 * without S: blocks of S are made once each and used for their rows and,
 * by symmetry, their columns (half the products). val may be NULL. The
 * same result as the top-k of the whole rows, ties and NaN included.
 * unit_rows: x's rows divided by their norms first (cosine similarities:
 * each row's sum of squares in double, 1 / sqrt of it rounded to float, a
 * zero row left zero), as mrec_unit_rows_ref; x itself is not changed. */
void mrec_unit_rows_ref(float *out, const float *x, int64_t n, int dim);
mrec_status mrec_gram_topk_cpu(int32_t *idx, float *val, const float *x, int n, int dim, int k, int unit_rows, mrec_pool *pool);

/* ---- attention ------------------------------------------------------------
 * The multi-head self-attention core of the transformer encoders (BERT /
 * MPNet, ViT, CLIP):
 *   out (B, T, H) = concat over heads h of softmax(q_h k_h^T * scale + bias) v_h
 * q, k, v are (B, T, H) token-major, as the linear layers leave them, with
 * H = heads * dh. bias = head_bias (heads, T, T), shared by all sequences
 * (MPNet's relative positions, CLIP's causal mask), plus mask_bias (B, T) on
 * each key (0 for a real token, -FLT_MAX for padding, as HF builds it);
 * either may be NULL; out must not overlap q, k or v. The CPU version reads
 * and writes each head in place (a batched GEMM per sequence, its heads dh
 * apart); its scratch holds the scores, (B, heads, T, T). */
size_t mrec_attention_scratch_floats(int B, int T, int heads, int dh); /* of mrec_attention_cpu */
void mrec_attention_cpu(float *out, const float *q, const float *k, const float *v, const float *mask_bias,
                        const float *head_bias, float scale, int B, int T, int heads, int dh, float *scratch,
                        int bf16, mrec_pool *pool); /* bf16 (a bf16 context): the products with bf16 operands
                                                     * where the CPU has AVX-512 BF16, the softmax in lanes
                                                     * (mrec_softmax_rows_lanes_cpu) */
/* The same over B sequences of different lengths laid end to end (a text
 * encoder's batch without its padding): sequence b is rows starts[b] ..
 * starts[b + 1] of q, k, v and out, none longer than T; head_bias NULL or
 * (heads, T, T), a sequence of length L taking its top-left L x L block (a
 * bias of the distance alone, as MPNet's); no mask. A sequence at a time,
 * each with the bits mrec_attention_cpu gives it alone; scratch:
 * mrec_attention_varlen_scratch_floats. */
size_t mrec_attention_varlen_scratch_floats(int T, int heads, int dh);
void mrec_attention_varlen_cpu(float *out, const float *q, const float *k, const float *v, const float *head_bias, float scale,
                               const int32_t *starts, int B, int T, int heads, int dh, float *scratch, int bf16, mrec_pool *pool);

/* ---- convolution and pooling (NCHW) ------------------------------------- */

typedef struct {
    int N, C_in, H, W;       /* input (N, C_in, H, W) */
    int C_out, KH, KW;       /* weight (C_out, C_in / groups, KH, KW) */
    int stride_h, stride_w, pad_h, pad_w, groups;
} mrec_conv2d_shape;

/* Output height/width; 0 if the shape is invalid. */
int mrec_conv2d_out_h(const mrec_conv2d_shape *s);
int mrec_conv2d_out_w(const mrec_conv2d_shape *s);

/* out (N, C_out, Ho, Wo) = conv(in, weight) + bias (C_out, or NULL). */
void mrec_conv2d_ref(float *out, const float *in, const float *weight, const float *bias,
                     const mrec_conv2d_shape *s);
/* The fast path: a GEMM over the unfolded input, gathered panel by panel
 * (no workspace). A weight inside `packs` (or NULL) is packed for the GEMM
 * once and kept. */
void mrec_conv2d_cpu(float *out, const float *in, const float *weight, const float *bias, const mrec_conv2d_shape *s,
                     mrec_packs *packs, mrec_pool *pool);
/* The same with the input and weights rounded to bf16 and fp32 sums (the
 * bf16 GEMM's contract, weights rounded and packed once in `packs`), on
 * CPUs with AVX-512 BF16 (MREC_ERR_UNSUPPORTED elsewhere). */
mrec_status mrec_conv2d_bf16_cpu(float *out, const float *in, const float *weight, const float *bias,
                                 const mrec_conv2d_shape *s, mrec_packs *packs, mrec_pool *pool);
/* out = act(conv(in, weight) + bias + beta out): a convolution, a residual
 * added where beta is 1, and its activation, in one pass over out (each
 * tile while it is in cache). With beta 0, the bits of the convolution and
 * then mrec_activation_cpu. */
void mrec_conv2d_act_cpu(float *out, const float *in, const float *weight, const float *bias, float beta, mrec_act act,
                         const mrec_conv2d_shape *s, mrec_packs *packs, mrec_pool *pool);
mrec_status mrec_conv2d_act_bf16_cpu(float *out, const float *in, const float *weight, const float *bias, float beta,
                                     mrec_act act, const mrec_conv2d_shape *s, mrec_packs *packs, mrec_pool *pool);

/* BatchNorm2d in eval mode on x (N, C, HW): (x - mean)/sqrt(var + eps)*gamma + beta. */
void mrec_batchnorm_ref(float *out, const float *in, const float *gamma, const float *beta,
                        const float *mean, const float *var, float eps, int N, int C, int HW);
void mrec_batchnorm_cpu(float *out, const float *in, const float *gamma, const float *beta,
                        const float *mean, const float *var, float eps, int N, int C, int HW,
                        mrec_pool *pool);
/* Folds an eval-mode BatchNorm into the conv before it, once at load time:
 * weight (C_out, per_out) is scaled in place, bias_out (C_out) receives the
 * folded bias (conv_bias (C_out) or NULL for a bias-free conv). */
void mrec_batchnorm_fold(float *weight, float *bias_out, const float *conv_bias,
                         const float *gamma, const float *beta, const float *mean,
                         const float *var, float eps, int C_out, int64_t per_out);

typedef struct {
    int N, C, H, W;
    int KH, KW, stride_h, stride_w, pad_h, pad_w;
    int count_include_pad; /* avg pool only, PyTorch's default is 1 */
} mrec_pool2d_shape;
int mrec_pool2d_out_h(const mrec_pool2d_shape *s);
int mrec_pool2d_out_w(const mrec_pool2d_shape *s);
/* out (N, C, Ho, Wo); padding counts as -inf for max. */
void mrec_maxpool2d_ref(float *out, const float *in, const mrec_pool2d_shape *s);
void mrec_maxpool2d_cpu(float *out, const float *in, const mrec_pool2d_shape *s, mrec_pool *pool);
void mrec_avgpool2d_ref(float *out, const float *in, const mrec_pool2d_shape *s);
void mrec_avgpool2d_cpu(float *out, const float *in, const mrec_pool2d_shape *s, mrec_pool *pool);

/* ---- channels-last bf16 (a GPU's bf16 ResNet) ----------------------------
 * The layout and element type a GPU's tensor cores convolve fastest (cuDNN's
 * NHWC kernels): activations (N, H, W, C) in bf16 between layers. A
 * convolution's weight is (C_out, KH, KW, C_in) fp32, rounded to bf16 (on a
 * GPU read from its bf16 twin, mrec_cuda_weights_upload), its bias (C_out)
 * fp32; products and sums in fp32, each output rounded to bf16 once, after
 * the bias, beta times the old output (a residual) and the ReLU; groups 1.
 * Where cuDNN has no fused form a GPU rounds twice (the convolution with the
 * residual, then the bias and ReLU): within a bf16 step of the reference.
 * A GPU's fused forms (cuDNN's, and the cuBLASLt products of its 1x1 and
 * stem convolutions, whose epilogue takes a bias of the output's type) add
 * the bias rounded to bf16 (PyTorch's bf16 convolutions hold it so too):
 * within another half step.
 * The references sum in double. A CPU with AVX-512 BF16 runs the _cpu
 * variants below (sums in fp32; a 3x3 stride-1 convolution as Winograd
 * F(2x2, 3x3) where its weights lie in a pack set); another CPU the
 * references. */

/* out (N, HW, C_pad) = in (N, C, HW) rounded to bf16, channels C .. C_pad - 1 zero
 * (ResNet's 3-channel images padded to 8, the tensor cores' smallest width). */
void mrec_nhwc_bf16_from_nchw_ref(uint16_t *out, const float *in, int N, int C, int HW, int C_pad);
/* out (N, Ho, Wo, C_out) = [relu](conv(in (N, H, W, C_in), weight) + bias + beta out) */
void mrec_conv2d_nhwc_bf16_ref(uint16_t *out, const uint16_t *in, const float *weight, const float *bias, float beta, int relu,
                               const mrec_conv2d_shape *s);
/* out (N, Ho, Wo, C) = max over each window of in (N, H, W, C); padding counts as -inf */
void mrec_maxpool2d_nhwc_bf16_ref(uint16_t *out, const uint16_t *in, const mrec_pool2d_shape *s);
/* out (N, C) fp32 = the mean over HW of in (N, HW, C): summed in float in
 * pixel order, then divided by HW (AdaptiveAvgPool2d(1)); the GPU's bits too. */
void mrec_mean_hw_nhwc_bf16_ref(float *out, const uint16_t *in, int N, int HW, int C);
mrec_status mrec_conv2d_nhwc_bf16_cpu(uint16_t *out, const uint16_t *in, const float *weight, const float *bias, float beta,
                                      int relu, const mrec_conv2d_shape *s, mrec_packs *packs, mrec_pool *pool);
void mrec_maxpool2d_nhwc_bf16_cpu(uint16_t *out, const uint16_t *in, const mrec_pool2d_shape *s, mrec_pool *pool);
void mrec_mean_hw_nhwc_bf16_cpu(float *out, const uint16_t *in, int N, int HW, int C);
void mrec_nhwc_bf16_from_nchw_cpu(uint16_t *out, const float *in, int N, int C, int HW, int C_pad);
/* The bf16-activation ops (below) on a CPU with AVX-512 BF16: LayerNorm in
 * double as the reference; products through the bf16 instructions with the
 * weight packed once where it lies in packs, each output rounded once;
 * activations and a bf16 product's activation from a table of the
 * reference's images of all 65,536 inputs (mrec_bf16_act_table: NULL for
 * an unknown act or without memory), so bit for bit; attention with fp32
 * scores and its probabilities rounded to bf16 for the product with V.
 * Odd widths (K, dh, ld) run the references. */
const uint16_t *mrec_bf16_act_table(mrec_act act);
void mrec_layernorm_bf16_cpu(float *out, uint16_t *out16, const float *a, const float *b, const float *weight, const float *bias,
                             float eps, int R, int C, mrec_pool *pool);
mrec_status mrec_linear_bf16_cpu(void *C, int c_bf16, const uint16_t *A, const float *W, const float *bias, int act, float beta,
                                 int M, int N, int K, int ldc, mrec_packs *packs, mrec_pool *pool);
mrec_status mrec_activation_bf16_cpu(uint16_t *x, mrec_act act, int64_t n, mrec_pool *pool);
mrec_status mrec_attention_bf16_cpu(uint16_t *out, const uint16_t *q, const uint16_t *k, const uint16_t *v, int ld,
                                    const float *mask_bias, const float *head_bias, const int32_t *starts, float scale, int B,
                                    int T, int heads, int dh, mrec_pool *pool);

/* ---- bf16 activations (a GPU's bf16 transformers) --------------------------
 * A transformer layer in bf16 the way PyTorch runs one under autocast: each
 * linear layer's output rounded to bf16 once (after its bias, the bias
 * itself rounded), an activation applied to those rounded values and
 * rounded again, attention on bf16 queries, keys and values; the residual
 * stream and the LayerNorms' statistics stay fp32, and a LayerNorm writes
 * the next product's bf16 operand directly. A GPU moves half the bytes of
 * fp32 activations and converts nothing between its products. Weights are
 * fp32 arrays rounded to bf16 (a GPU reads their bf16 twins). The
 * references sum in double; the CPU runs them (tests do). */

/* out16 (R, C) bf16 = LayerNorm(a + b) (b NULL: of a alone), weight and bias (C) or NULL; out (R, C) fp32,
 * where not NULL, the same values unrounded. out may be a or b. */
void mrec_layernorm_bf16_ref(float *out, uint16_t *out16, const float *a, const float *b, const float *weight, const float *bias,
                             float eps, int R, int C);
/* C (M, N), row stride ldc, = A (M, K) bf16 times W (N, K)^T (W rounded to bf16), fp32 sums, then:
 * c_bf16 0: C fp32 = sum + bias + beta C (bias fp32, NULL for none; act must be MREC_GEMM_NO_ACT);
 * c_bf16 1: C bf16 = round(sum + round(bias)), then with an act, round(act(C)) (beta must be 0). */
void mrec_linear_bf16_ref(void *C, int c_bf16, const uint16_t *A, const float *W, const float *bias, int act, float beta, int M,
                          int N, int K, int ldc);
/* x (n) bf16 = round(act(x)) in place */
void mrec_activation_bf16_ref(uint16_t *x, mrec_act act, int64_t n);
/* out (rows, H) bf16, H = heads * dh: per sequence and head, softmax(q k^T scale + head_bias + mask_bias) v
 * rounded; q, k, v bf16 rows of stride ld (a packed product: q, q + H, q + 2 H and ld 3 H). Sequences padded
 * (B, T), mask_bias (B, T) or NULL, or laid end to end: starts (B + 1, host memory), sequence b rows
 * starts[b] .. starts[b + 1], none longer than T, no mask. head_bias (heads, T, T) or NULL, a shorter
 * sequence reading its top-left block. */
void mrec_attention_bf16_ref(uint16_t *out, const uint16_t *q, const uint16_t *k, const uint16_t *v, int ld,
                             const float *mask_bias, const float *head_bias, const int32_t *starts, float scale, int B, int T,
                             int heads, int dh);

/* ---- encoders: the steps around the layers, and memory on the device --------
 * What the encoders used to do in host loops, as ops: token embeddings with
 * positions, the attention biases, ViT's patch unfold and class token,
 * strided row copies. Each has _ref, _cpu and _cuda variants and an entry
 * (below, with the other entries), so a forward pass runs where its context
 * does. Token ids and positions are int32 and are checked by the caller on
 * the host, where they arrive, before they are copied: these ops trust them. */

/* out (N, H) = word[ids[i]] + type[type_ids[i]] + position[pos[i]], added in
 * that order; type NULL adds nothing (MPNet, CLIP), type_ids NULL means type
 * 0 for every token. word (V, H), type (TV, H), position (P, H); ids, pos,
 * type_ids (N). */
void mrec_embedding_sum_ref(float *out, const float *word, const int32_t *ids, const float *type, const int32_t *type_ids,
                            const float *position, const int32_t *pos, int N, int H);
void mrec_embedding_sum_cpu(float *out, const float *word, const int32_t *ids, const float *type, const int32_t *type_ids,
                            const float *position, const int32_t *pos, int N, int H, mrec_pool *pool);

/* pos (B, T): t for token t when pad_id < 0 (BERT, CLIP; ids unused, may be
 * NULL); otherwise Hugging Face's create_position_ids_from_input_ids (MPNet):
 * pad_id + the number of non-padding tokens up to and including this one, or
 * pad_id for a padding token (id == pad_id). ids (B, T). */
void mrec_position_ids_ref(int32_t *pos, const int32_t *ids, int pad_id, int B, int T);
void mrec_position_ids_cpu(int32_t *pos, const int32_t *ids, int pad_id, int B, int T, mrec_pool *pool);

/* out (n) = 0 where mask != 0 (a real token), -FLT_MAX where mask == 0
 * (padding): Hugging Face's additive attention mask. mask NULL: all zeros. */
void mrec_mask_bias_ref(float *out, const int32_t *mask, int64_t n);
void mrec_mask_bias_cpu(float *out, const int32_t *mask, int64_t n, mrec_pool *pool);

/* A relative position bias shared by every sequence (MPNet's):
 * out (heads, T, T)[h][q][k] = table[bucket[k - q + T - 1] * heads + h], with
 * table (buckets, heads) and bucket (2T - 1) the bucket of each distance
 * k - q in [-(T - 1), T - 1]. */
void mrec_rel_bias_ref(float *out, const float *table, const int32_t *bucket, int heads, int T);
void mrec_rel_bias_cpu(float *out, const float *table, const int32_t *bucket, int heads, int T, mrec_pool *pool);

/* out (heads, T, T)[h][q][k] = 0 for k <= q, -FLT_MAX for k > q: CLIP's
 * causal mask as an additive attention bias. */
void mrec_causal_bias_ref(float *out, int heads, int T);
void mrec_causal_bias_cpu(float *out, int heads, int T, mrec_pool *pool);

/* out (B, G*G, C*P*P) = the P x P patches of images (B, C, S, S), G = S / P,
 * row-major over the grid, each patch ordered (c, y, x) as a convolution
 * weight (C_out, C, P, P) is: a stride-P, P x P convolution becomes one GEMM. */
void mrec_patchify_ref(float *out, const float *images, int B, int C, int S, int P);
void mrec_patchify_cpu(float *out, const float *images, int B, int C, int S, int P, mrec_pool *pool);

/* x (B, T, H) in place: row 0 of each sequence = cls (H) + pos[0], rows
 * t >= 1 += pos[t]; pos (T, H). ViT's and CLIP's class token and positions. */
void mrec_class_embed_ref(float *x, const float *cls, const float *pos, int B, int T, int H);
void mrec_class_embed_cpu(float *x, const float *cls, const float *pos, int B, int T, int H, mrec_pool *pool);

/* out (rows, cols) with row stride ld_out = in (rows, cols) with row stride
 * ld_in (strides in elements, >= cols; out and in must not overlap): the
 * class-token or end-of-text rows of (B, T, H) states, one row per sequence. */
void mrec_copy_rows_ref(float *out, int ld_out, const float *in, int ld_in, int rows, int cols);
void mrec_copy_rows_cpu(float *out, int ld_out, const float *in, int ld_in, int rows, int cols, mrec_pool *pool);

/* The GPU twins, in the CUDA section's conventions (device pointers, the
 * context's stream, a status; MREC_ERR_DEVICE in a CPU-only build). */
mrec_status mrec_embedding_sum_cuda(float *out, const float *word, const int32_t *ids, const float *type,
                                    const int32_t *type_ids, const float *position, const int32_t *pos, int N, int H,
                                    mrec_cuda *cu);
mrec_status mrec_position_ids_cuda(int32_t *pos, const int32_t *ids, int pad_id, int B, int T, mrec_cuda *cu);
mrec_status mrec_mask_bias_cuda(float *out, const int32_t *mask, int64_t n, mrec_cuda *cu);
mrec_status mrec_rel_bias_cuda(float *out, const float *table, const int32_t *bucket, int heads, int T, mrec_cuda *cu);
mrec_status mrec_causal_bias_cuda(float *out, int heads, int T, mrec_cuda *cu);
mrec_status mrec_patchify_cuda(float *out, const float *images, int B, int C, int S, int P, mrec_cuda *cu);
mrec_status mrec_class_embed_cuda(float *x, const float *cls, const float *pos, int B, int T, int H, mrec_cuda *cu);
mrec_status mrec_copy_rows_cuda(float *out, int ld_out, const float *in, int ld_in, int rows, int cols, mrec_cuda *cu);

/* The GEMM of mrec_gemm_cuda (C = alpha op(A) op(B) + beta C + bias, fp32
 * pointers) through cuBLASLt in any precision. For BF16 an operand that lies
 * inside weights given to mrec_cuda_weights_upload is read from their bf16
 * copy; any other operand is converted into a buffer the context keeps (it
 * grows to the largest operand once). A shape cuBLASLt has no TF32 or bf16
 * algorithm for runs in fp32. */
mrec_status mrec_gemm_lt_cuda(float *C, const float *A, const float *B, const float *bias, float alpha, float beta,
                              mrec_precision precision, int trans_a, int trans_b, int M, int N, int K, int lda,
                              int ldb, int ldc, mrec_cuda *cu);
/* mrec_linear3 in bf16 on the GPU: x converted once for the three products. */
mrec_status mrec_linear3_bf16_cuda(float *const out[3], const float *x, const float *const W[3], const float *const b[3], int R,
                                   int N, int K, mrec_cuda *cu);
/* The feed-forward block of mrec_ffn in bf16 on the GPU: hidden (R, I) fp32
 * receives the first product; the activation writes the second product's
 * bf16 operand directly. */
mrec_status mrec_ffn_bf16_cuda(float *out, const float *x, const float *W1, const float *b1, mrec_act act, const float *W2,
                               const float *b2, float beta, float *hidden, int R, int H, int I, mrec_cuda *cu);
/* Weights on the device: *out = one allocation holding a copy of host (n
 * floats), and, with bf16, its bf16 twin for mrec_gemm_lt_cuda (converted
 * once, here). mrec_cuda_weights_free releases both. */
mrec_status mrec_cuda_weights_upload(mrec_cuda *cu, float **out, const float *host, int64_t n, int with_bf16);
void mrec_cuda_weights_free(mrec_cuda *cu, float *weights);

/* Device names and precisions as the command line spells them:
 * "auto", "cpu", "cuda"; "fp32", "tf32", "bf16". MREC_ERR_ARG for another. */
mrec_status mrec_device_request_parse(const char *name, mrec_device_request *out);
mrec_status mrec_precision_parse(const char *name, mrec_precision *out);
const char *mrec_precision_name(mrec_precision precision);

/* ---- sparse ----------------------------------------------------------------
 * A is CSR (R, Cc): row_ptr (R + 1), col (nnz), val (nnz, or NULL for ones).
 *   spmm:   out (R, D)  = A   @ X (Cc, D)
 *   spmm_t: out (Cc, D) = A^T @ X (R, D)
 * Column indices must lie in [0, Cc); the caller validates a graph once. */
void mrec_spmm_ref(float *out, const int64_t *row_ptr, const int32_t *col, const float *val,
                   const float *X, int R, int Cc, int D);
void mrec_spmm_cpu(float *out, const int64_t *row_ptr, const int32_t *col, const float *val,
                   const float *X, int R, int Cc, int D, mrec_pool *pool);
void mrec_spmm_t_ref(float *out, const int64_t *row_ptr, const int32_t *col, const float *val,
                     const float *X, int R, int Cc, int D);
void mrec_spmm_t_cpu(float *out, const int64_t *row_ptr, const int32_t *col, const float *val,
                     const float *X, int R, int Cc, int D, mrec_pool *pool);
/* mrec_spmm_cpu, then sum (R, D) = (sum_in + out) * scale, each row while it is fresh: a graph model's sum of its
 * layers (LightGCN's mean), without passes of its own over the whole table. The bits of mrec_spmm_cpu,
 * mrec_add_cpu and mrec_scale_cpu in turn. sum may be sum_in; out may be neither. */
void mrec_spmm_sum_cpu(float *out, float *sum, const float *sum_in, float scale, const int64_t *row_ptr, const int32_t *col,
                       const float *val, const float *X, int R, int Cc, int D, mrec_pool *pool);

/* ---- optimizer ----------------------------------------------------------------
 * One Adam step as torch.optim.Adam (L2 weight decay added to the gradient;
 * bias corrections for step >= 1) on param (n), moments m and v (n), grad (n):
 *   g = grad + wd * param; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2
 *   param -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps) */
void mrec_adam_ref(float *param, float *m, float *v, const float *grad, float lr, float beta1, float beta2, float eps,
                   float weight_decay, int64_t step, int64_t n);
void mrec_adam_cpu(float *param, float *m, float *v, const float *grad, float lr, float beta1, float beta2, float eps,
                   float weight_decay, int64_t step, int64_t n, mrec_pool *pool);
/* The same step with its two step-dependent factors read from memory: k (2) = mrec_adam_factors(lr, b1, b2, step),
 * k[0] = lr / (1 - b1^step), k[1] = sqrt(1 - b2^step), in the context's memory. A step queued once and replayed
 * (a CUDA graph) then takes each step's values from there. The bits of mrec_adam_cpu, on either device. */
void mrec_adam_factors(float k[2], float lr, float beta1, float beta2, int64_t step);
void mrec_adam_at_cpu(float *param, float *m, float *v, const float *grad, const float *k, float beta1, float beta2,
                      float eps, float weight_decay, int64_t n, mrec_pool *pool);

/* ---- randomness and training helpers ----------------------------------------
 * Dropout as torch's F.dropout in training: out = in / (1 - p) where element
 * i's Philox uniform (kernels/philox.h, stream (seed, offset)) is >= p, else
 * 0; p in [0, 1). The same (seed, offset) gives the same mask on every device
 * and thread count. */
void mrec_dropout_ref(float *out, const float *in, float p, uint64_t seed, uint64_t offset, int64_t n);
void mrec_dropout_cpu(float *out, const float *in, float p, uint64_t seed, uint64_t offset, int64_t n,
                      mrec_pool *pool);

/* The rows of a one-hot (N, V) matrix, transposed: for each v in [0, V) the
 * positions p with ids[p] == v, in increasing order. row_ptr (V + 1), pos (N).
 * A^T @ G is then a deterministic scatter-add of gradient rows G (N, D) into
 * a table (V, D): mrec_spmm with (row_ptr, pos, NULL). Ids outside [0, V)
 * are an error naming the position. */
mrec_status mrec_index_csr_ref(int64_t *row_ptr, int32_t *pos, const int32_t *ids, int N, int V);

/* ---- a BPR batch's loss where its scores are ----
 * A training step that leaves its loss on the device does not wait for it:
 * the gradient's factors are computed beside the scores, and the loss is
 * added up there (mrec_loss_add) for the host to read once an epoch.
 *
 * mrec_bpr_loss is MMRec's BPR loss (common/loss.py), -mean log(1e-10 +
 * sigmoid(pos - neg)); mrec_bpr_softplus_loss the LightGCN authors', mean
 * softplus(neg - pos); mrec_bpr_clamped_loss the Ducho-meets-Elliot fork's
 * (NGCF-M), softplus with pos - neg clamped to [-80, 1e8] and no gradient
 * below -80; MREC_BPR_SOFTPLUS_SUM the fork's SGL, softplus summed over the
 * batch (not its mean); MREC_BPR_LOG_SIGMOID_1E5 SELFRec's (SimGCL),
 * -mean log(1e-5 + sigmoid). Each writes dx (n) = d loss / d (pos - neg)
 * and returns the loss, summed in double in batch order. */
double mrec_bpr_loss(float *dx, const float *pos, const float *neg, int n);
/* -mean log(eps + sigmoid(pos - neg)): mrec_bpr_loss is eps 1e-10 */
double mrec_bpr_log_sigmoid_loss(float *dx, const float *pos, const float *neg, int n, double eps);
double mrec_bpr_softplus_loss(float *dx, const float *pos, const float *neg, int n);
double mrec_bpr_clamped_loss(float *dx, const float *pos, const float *neg, int n);
typedef enum {
    MREC_BPR_LOG_SIGMOID,
    MREC_BPR_SOFTPLUS,
    MREC_BPR_CLAMPED,
    MREC_BPR_SOFTPLUS_SUM,
    MREC_BPR_LOG_SIGMOID_1E5
} mrec_bpr_form;
/* The regularizer on the batch's rows, from their squared norms s_u, s_i,
 * s_j (each the sum over the batch): NORMS is MMRec's reg (|U_b| + |I_b|
 * + |J_b|) / n, the row factors reg / n / |.|; SQUARED the LightGCN
 * authors' reg (s_u + s_i + s_j) / 2 / n (each norm squared again after
 * its square root, as they write it), factors reg / n; SQUARED_ALL
 * LATTICE's reg (one sum of all 3n) / 2 / reg_div, factors reg / reg_div;
 * NORMS_UI SELFRec's (SimGCL) NORMS without the negatives' rows (factor 0);
 * PAIRS MMGCN's and GRCN's mean square of [u, u] and [i, j], reg (2 s_u +
 * s_i + s_j) / (2 reg_div) with reg_div = n d, factors (4, 2, 2) reg /
 * (2 reg_div). */
typedef enum {
    MREC_BPR_REG_NONE,
    MREC_BPR_REG_NORMS,
    MREC_BPR_REG_SQUARED,
    MREC_BPR_REG_SQUARED_ALL,
    MREC_BPR_REG_NORMS_UI,
    MREC_BPR_REG_PAIRS
} mrec_bpr_reg;
typedef struct {
    mrec_bpr_form form;
    float weight;        /* the term's weight: loss weight * bpr, dx weight * dx (a float product); 1 for none */
    mrec_bpr_reg reg_form;
    float reg;
    int reg_div;         /* SQUARED_ALL's and PAIRS' divisor (>= 1) */
    int accumulate;      /* add the term to *loss (a later term of the same batch), else set it */
} mrec_bpr_spec;
/* A run's batch losses, added where they are: the sum in batch order and
 * the first batch whose loss was not finite (bad -1: none yet). */
typedef struct {
    double sum, bad_loss;
    int32_t batches, bad;
} mrec_loss_sum;

/* ---- CUDA (CUDA build only; kernels/cuda/) -------------------------------
 * mrec_cuda owns the device's stream and cuBLAS handle. In a CPU-only build
 * mrec_cuda_create reports MREC_ERR_DEVICE and nothing else is called. */
int mrec_cuda_compiled(void); /* 1 in the CUDA build */
mrec_status mrec_cuda_create(mrec_cuda **out, int device);
void mrec_cuda_destroy(mrec_cuda *cu);
mrec_status mrec_cuda_malloc(mrec_cuda *cu, void **ptr, size_t bytes);
void mrec_cuda_free(mrec_cuda *cu, void *ptr);
mrec_status mrec_cuda_copy_h2d(mrec_cuda *cu, void *dst, const void *src, size_t bytes);
mrec_status mrec_cuda_copy_d2h(mrec_cuda *cu, void *dst, const void *src, size_t bytes);
mrec_status mrec_cuda_sync(mrec_cuda *cu);
/* Opens (on 1) and closes (on 0) the range a profiler started with its
 * collection off records (ncu --profile-from-start off): the benchmarks
 * mark one forward with it. Waits for the queued work first. */
mrec_status mrec_cuda_profile(mrec_cuda *cu, int on);

/* ---- pipelined transfers: pinned host memory, the copy stream, events ----
 * A batch pipeline prepares batch k+1 on the host while batch k computes.
 * The context has two streams: the compute stream every op runs on, and a
 * copy stream for uploads that overlap it. An upload of batch k+1 goes on
 * the copy stream and records an event; the compute stream waits on that
 * event before the forward reads the batch; a "consumed" event recorded on
 * the compute stream after the forward tells the copy stream when the
 * device buffer may be overwritten. Async copies need pinned host memory to
 * overlap (pageable memory makes the driver stage them synchronously).
 *
 * mrec_cuda_copy_h2d (and so mrec_copy_to_device) infers the direction from
 * the pointers: a source already on the device, such as a batch uploaded
 * ahead, becomes a device-to-device copy queued on the compute stream
 * without a wait (a host source is waited for), so a forward that copies
 * its input in takes a pre-uploaded batch unchanged and queues behind the
 * previous batch's instead of draining it.
 *
 * Every call returns a status (MREC_ERR_DEVICE with the CUDA error in the
 * detail; in a CPU-only build, "built without CUDA"); none exits. The
 * functions may be called from any host thread: each selects the context's
 * device first, since the current device is a per-thread setting. */
typedef enum { MREC_STREAM_COMPUTE, MREC_STREAM_COPY } mrec_stream;
typedef struct mrec_event mrec_event; /* a CUDA event (timing off); opaque */
/* Page-locked host memory (cudaHostAlloc); free it with mrec_cuda_host_free. */
mrec_status mrec_cuda_host_alloc(mrec_cuda *cu, void **ptr, size_t bytes);
mrec_status mrec_cuda_host_free(mrec_cuda *cu, void *ptr);
/* Queued on `stream`, returning before the copy is done; dst / src must stay
 * valid (and src unchanged) until an event recorded after it completes. */
mrec_status mrec_cuda_copy_h2d_async(mrec_cuda *cu, void *dst, const void *src, size_t bytes, mrec_stream stream);
mrec_status mrec_cuda_copy_d2h_async(mrec_cuda *cu, void *dst, const void *src, size_t bytes, mrec_stream stream);
/* A small upload from any host memory (a batch's ids, a few numbers), queued
 * on the compute stream through the context's ring of pinned slots: src is
 * copied into a slot at once, so it may change as soon as the call returns,
 * and the host waits only when the slot's copy of MREC_STAGE_SLOTS uploads
 * ago has not run yet. An async copy straight from pageable memory may wait
 * for the stream to drain (the CUDA documentation allows it), which would
 * stall a training step that otherwise never waits. Larger than a slot: a
 * plain async copy from pageable memory (the driver stages it before
 * returning), a slot at a time from pinned memory (a pipeline's buffer,
 * reused once this returns). src is host memory; the ring is the thread's
 * that queues the context's ops (the others' transfers take the calls
 * above). */
#define MREC_STAGE_SLOTS 8
#define MREC_STAGE_BYTES (256u << 10)
mrec_status mrec_cuda_copy_h2d_staged(mrec_cuda *cu, void *dst, const void *src, size_t bytes);
/* Seconds the host has waited for a slot so far: the time a run of queued steps spent blocked on the GPU, not
 * issuing work (the benchmarks' "host busy" share) */
double mrec_cuda_stage_wait(const mrec_cuda *cu);
mrec_status mrec_cuda_event_create(mrec_cuda *cu, mrec_event **ev);
mrec_status mrec_cuda_event_destroy(mrec_cuda *cu, mrec_event *ev);
/* ev marks the work queued on `stream` so far. */
mrec_status mrec_cuda_event_record(mrec_cuda *cu, mrec_event *ev, mrec_stream stream);
/* Work queued on `stream` after this waits for ev (the host does not). */
mrec_status mrec_cuda_stream_wait(mrec_cuda *cu, mrec_stream stream, mrec_event *ev);
/* The host waits for ev. */
mrec_status mrec_cuda_event_sync(mrec_cuda *cu, mrec_event *ev);
mrec_status mrec_cuda_stream_sync(mrec_cuda *cu, mrec_stream stream);

/* The same on a context, whichever device it runs on: on a GPU context the
 * functions above; on the CPU, host memory from malloc, copies done at once
 * (memcpy), events NULL and the waits no-ops, so a pipeline is written once.
 * An event made on one context is used with that context only. */
mrec_status mrec_host_alloc(mrec_context *ctx, void **ptr, size_t bytes);
void mrec_host_free(mrec_context *ctx, void *ptr);
mrec_status mrec_copy_to_device_async(mrec_context *ctx, void *dst, const void *src, size_t bytes, mrec_stream stream);
mrec_status mrec_copy_to_host_async(mrec_context *ctx, void *dst, const void *src, size_t bytes, mrec_stream stream);
mrec_status mrec_copy_to_device_staged(mrec_context *ctx, void *dst, const void *src, size_t bytes);
mrec_status mrec_event_create(mrec_context *ctx, mrec_event **ev);
void mrec_event_destroy(mrec_context *ctx, mrec_event *ev);
mrec_status mrec_event_record(mrec_context *ctx, mrec_event *ev, mrec_stream stream);
mrec_status mrec_stream_wait(mrec_context *ctx, mrec_stream stream, mrec_event *ev);
mrec_status mrec_event_sync(mrec_context *ctx, mrec_event *ev);
/* After a failure st: waits for the work behind the n events (NULL ones and ones never recorded pass at once),
 * so that host buffers an asynchronous copy may still be writing can be freed; st and its message stay as they
 * were. Returns st. */
mrec_status mrec_events_settle(mrec_context *ctx, mrec_event *const *ev, int n, mrec_status st);

/* ---- CUDA graphs: a run of launches replayed as one ----------------------
 * mrec_graph_run runs body(ctx, arg). On a GPU context, the second call with
 * the same key captures the body's launches into a CUDA graph, and from then
 * on a call with that key replays the graph: the host no longer issues each
 * launch, whose cost (a few to tens of microseconds, more through cuDNN's
 * legacy calls) left the GPU idle between short kernels. The key holds the
 * bytes of everything the launches depend on that may change between calls
 * (device pointers, sizes); the context's own scratch is added to it. Every
 * graph is dropped when weights are uploaded or freed, and freeing a block of
 * device memory drops the graphs captured while it lived (not those captured
 * before it was allocated: an evaluation's buffers between two epochs leave a
 * training loop's graphs alone). The body must
 * launch on the context's stream alone and need nothing back from the
 * device in between (no waits, no copies to the host): where capturing
 * fails, the body runs as it is, and that key is not tried again. The first
 * call runs as it is, so the one-time work (plans, algorithm searches,
 * buffers grown) is done before a capture. MREC_CUDA_GRAPHS=0 in the
 * environment turns graphs off. On the CPU: body(ctx, arg). */
typedef mrec_status (*mrec_graph_body)(mrec_context *ctx, void *arg);
/* The error of a copy between host and device inside a body (mrec_context.in_graph), and of an op that waits
 * for the device on a GPU (an embedding or an index whose ids it checks, an event's wait): a CPU context refuses
 * both, so the CPU's tests hold a body to what a capture allows. */
mrec_status mrec_graph_copy_refused(size_t bytes);
mrec_status mrec_graph_wait_refused(const char *what);
/* The replay check, for tests on a CPU context: a GPU captures a body's second call under a key and replays it
 * for the later ones, so every launch's arguments (device pointers, sizes, scalars) must be those of the second
 * call. With the check on, the op entries note their arguments inside a body (mrec_graph_note), and a later call
 * whose launches differ from the second's fails with MREC_ERR_DEVICE, naming the first op that differs (a host
 * value a replay would have frozen). Freeing memory on the CPU forgets the calls seen, as a GPU drops its graphs. */
mrec_status mrec_graph_check_enable(mrec_context *ctx);  /* MREC_GRAPH_CHECK=1: every CPU context made has it on */
/* One launch of op inside a body: its n arguments, each as 64 bits (an address, a number's bits). */
void mrec_graph_note(mrec_context *ctx, const char *op, const uint64_t *v, int n);
/* The running body stops early on a CPU's own decision, one a GPU's body does not take (a training batch whose
 * loss the host saw go bad skips Adam): this call is neither counted nor compared. */
void mrec_graph_check_skip(mrec_context *ctx);
/* The arena frees on the CPU so far, in this process (the replay check forgets its calls when it changes). */
long long mrec_arena_cpu_frees(void);
mrec_status mrec_graph_run(mrec_context *ctx, const void *key, size_t key_bytes, mrec_graph_body body, void *arg);
#define MREC_GRAPH_KEY_MAX 256
mrec_status mrec_cuda_graph_run(mrec_cuda *cu, const void *key, size_t key_bytes, mrec_status (*fn)(void *), void *arg);
/* The graphs captured and kept (for the tests: whether capturing took). */
int mrec_cuda_graph_count(const mrec_cuda *cu);
/* The graph replays launched in this process, over every context (for the tests and benches: whether a loop's
 * steps were replayed). */
long long mrec_cuda_graph_launches(void);

/* fp32 GEMM through cuBLAS (TF32 off), same contract as mrec_gemm_cpu. */
mrec_status mrec_gemm_cuda(float *C, const float *A, const float *B, const float *bias,
                           float alpha, float beta, int trans_a, int trans_b,
                           int M, int N, int K, int lda, int ldb, int ldc, mrec_cuda *cu);

#define MREC_GEMM_NO_ACT (-1)
/* C (M, N) fp32 = act(op(A) op(B) + bias) through cuBLASLt, the layout of
 * mrec_gemm_cuda; A, B fp32 (FP32, TF32) or bf16 (BF16); act an mrec_act or
 * MREC_GEMM_NO_ACT; bias (N) or NULL. */
mrec_status mrec_gemm_ex_cuda(float *C, const void *A, const void *B, const float *bias, int act, float slope,
                              mrec_precision precision, int trans_a, int trans_b, int M, int N, int K,
                              int lda, int ldb, int ldc, mrec_cuda *cu);
/* out (n) bf16, round to nearest even = in (n) fp32 */
mrec_status mrec_f32_to_bf16_cuda(uint16_t *out, const float *in, int64_t n, mrec_cuda *cu);

/* The GPU twins of the ops above: same contracts and shapes, device
 * pointers, launched on the context's stream; each returns a status (a
 * failed launch is MREC_ERR_DEVICE with CUDA's message). In a CPU-only
 * build each reports MREC_ERR_DEVICE. */
mrec_status mrec_gemm_batched_cuda(float *C, const float *A, const float *B,
                                   float alpha, float beta, int trans_a, int trans_b,
                                   int batch, int M, int N, int K, int lda, int ldb, int ldc,
                                   int64_t stride_a, int64_t stride_b, int64_t stride_c, mrec_cuda *cu);
mrec_status mrec_add_cuda(float *out, const float *a, const float *b, int64_t n, mrec_cuda *cu);
mrec_status mrec_mul_cuda(float *out, const float *a, const float *b, int64_t n, mrec_cuda *cu);
mrec_status mrec_scale_cuda(float *out, const float *a, float s, int64_t n, mrec_cuda *cu);
mrec_status mrec_fill_cuda(float *out, float value, int64_t n, mrec_cuda *cu);
mrec_status mrec_activation_cuda(float *out, const float *in, mrec_act act, float slope, int64_t n,
                                 mrec_cuda *cu);
mrec_status mrec_softmax_rows_cuda(float *out, const float *in, const float *mask,
                                   int R, int C, int rows_per_mask, mrec_cuda *cu);
mrec_status mrec_layernorm_cuda(float *out, const float *in, const float *weight, const float *bias,
                                float eps, int R, int C, mrec_cuda *cu);
/* out = LayerNorm(a + b) in one pass (the residual of a post-norm block);
 * out may alias a or b. */
mrec_status mrec_add_layernorm_cuda(float *out, const float *a, const float *b, const float *weight,
                                    const float *bias, float eps, int R, int C, mrec_cuda *cu);
mrec_status mrec_l2_normalize_rows_cuda(float *out, const float *in, float eps, int R, int C,
                                        mrec_cuda *cu);
/* Checks the ids on the device and reads back one int: synchronizes. */
mrec_status mrec_embedding_cuda(float *out, const float *table, const int32_t *ids,
                                int N, int V, int D, mrec_cuda *cu);
/* The gather alone, for ids the caller has checked (mrec_embedding_checked): no wait. */
mrec_status mrec_embedding_checked_cuda(float *out, const float *table, const int32_t *ids, int N, int V, int D,
                                        mrec_cuda *cu);
mrec_status mrec_mean_pool_cuda(float *out, const float *in, const int32_t *mask, int B, int T, int D,
                                mrec_cuda *cu);
/* k <= MREC_TOPK_GPU_MAX on the GPU (MREC_ERR_UNSUPPORTED above; mrec_topk_rows takes a longer list on the host). */
#define MREC_TOPK_GPU_MAX 128
mrec_status mrec_topk_rows_cuda(int32_t *idx, float *val, const float *scores, int R, int C, int k,
                                mrec_cuda *cu);
/* mrec_gram_topk_cpu's result with the products on the GPU: x, idx and val
 * are host memory (a block of rows of x x^T at a time on the device, the
 * rows made unit there); k <= 128. */
mrec_status mrec_gram_topk_cuda(int32_t *idx, float *val, const float *x, int n, int dim, int k, int unit_rows, mrec_cuda *cu);
/* cuDNN on fp32 data: FMA math in fp32, the tensor cores (TF32) in tf32 and
 * bf16; work: the bytes mrec_conv2d_workspace_bytes_cuda gives for the shape
 * and precision, allocated once by the caller. */
mrec_status mrec_conv2d_workspace_bytes_cuda(size_t *bytes, const mrec_conv2d_shape *s, mrec_precision prec,
                                             mrec_cuda *cu);
/* out = conv(in) + bias + beta out */
mrec_status mrec_conv2d_cuda(float *out, const float *in, const float *weight, const float *bias, float beta,
                             mrec_precision prec, void *work, size_t work_bytes, const mrec_conv2d_shape *s,
                             mrec_cuda *cu);
/* out = act(conv(in) + bias + beta out), the bias and activation in one pass */
mrec_status mrec_conv2d_act_cuda(float *out, const float *in, const float *weight, const float *bias, float beta,
                                 mrec_act act, mrec_precision prec, void *work, size_t work_bytes,
                                 const mrec_conv2d_shape *s, mrec_cuda *cu);
mrec_status mrec_batchnorm_cuda(float *out, const float *in, const float *gamma, const float *beta,
                                const float *mean, const float *var, float eps, int N, int C, int HW,
                                mrec_cuda *cu);
/* The channels-last bf16 ops (contracts with their references above);
 * mrec_conv2d_nhwc_bf16_cuda's work is what its _workspace_bytes_cuda gives
 * for the shape. */
mrec_status mrec_nhwc_bf16_from_nchw_cuda(uint16_t *out, const float *in, int N, int C, int HW, int C_pad, mrec_cuda *cu);
/* 1 where the GPU has bf16 tensor cores (compute capability 8.0 or later) */
int mrec_cuda_bf16_native(const mrec_cuda *cu);
mrec_status mrec_conv2d_nhwc_bf16_workspace_bytes_cuda(size_t *bytes, const mrec_conv2d_shape *s, mrec_cuda *cu);
mrec_status mrec_conv2d_nhwc_bf16_cuda(uint16_t *out, const uint16_t *in, const float *weight, const float *bias, float beta,
                                       int relu, void *work, size_t work_bytes, const mrec_conv2d_shape *s, mrec_cuda *cu);
mrec_status mrec_maxpool2d_nhwc_bf16_cuda(uint16_t *out, const uint16_t *in, const mrec_pool2d_shape *s, mrec_cuda *cu);
mrec_status mrec_mean_hw_nhwc_bf16_cuda(float *out, const uint16_t *in, int N, int HW, int C, mrec_cuda *cu);
/* The bf16-activation ops (contracts of their references): the LayerNorm a
 * block of threads a row; the products through cuBLASLt (bf16 in, fp32 or bf16
 * out, the bias in its epilogue); the activation in place, 16-byte loads;
 * attention on the tensor cores (bf16 MMAs, fp32 softmax, the probabilities
 * rounded to bf16 for the second product, as flash attention does: within a
 * few bf16 steps of the reference). dev_starts: the B + 1 starts in device
 * memory, or NULL for padded sequences. */
mrec_status mrec_layernorm_bf16_cuda(float *out, uint16_t *out16, const float *a, const float *b, const float *weight,
                                     const float *bias, float eps, int R, int C, mrec_cuda *cu);
mrec_status mrec_linear_bf16_cuda(void *C, int c_bf16, const uint16_t *A, const float *W, const float *bias, int act, float beta,
                                  int M, int N, int K, int ldc, mrec_cuda *cu);
mrec_status mrec_activation_bf16_cuda(uint16_t *x, mrec_act act, int64_t n, mrec_cuda *cu);
mrec_status mrec_attention_bf16_cuda(uint16_t *out, const uint16_t *q, const uint16_t *k, const uint16_t *v, int ld,
                                     const float *mask_bias, const float *head_bias, const int32_t *dev_starts, float scale, int B,
                                     int T, int heads, int dh, mrec_cuda *cu);
mrec_status mrec_maxpool2d_cuda(float *out, const float *in, const mrec_pool2d_shape *s, mrec_cuda *cu);
mrec_status mrec_avgpool2d_cuda(float *out, const float *in, const mrec_pool2d_shape *s, mrec_cuda *cu);
/* Deterministic (no atomics). A^T @ X is this op on A's transpose, which
 * the caller builds once per graph. */
mrec_status mrec_spmm_cuda(float *out, const int64_t *row_ptr, const int32_t *col, const float *val,
                           const float *X, int R, int Cc, int D, mrec_cuda *cu);
/* The same, then sum = (sum_in + out) * scale row by row, as mrec_spmm_sum_cpu. */
mrec_status mrec_spmm_sum_cuda(float *out, float *sum, const float *sum_in, float scale, const int64_t *row_ptr, const int32_t *col,
                               const float *val, const float *X, int R, int Cc, int D, mrec_cuda *cu);
/* Fused multi-head self-attention, the contract of mrec_attention_cpu:
 * out, q, k, v (B, T, heads * dh); mask_bias (B, T) or NULL; head_bias
 * (heads, T, T) or NULL; dh <= 128. No scratch. */
mrec_status mrec_attention_cuda(float *out, const float *q, const float *k, const float *v,
                                const float *mask_bias, const float *head_bias, float scale,
                                int B, int T, int heads, int dh, mrec_cuda *cu);
/* The same, its two products as TF32 MMAs on the tensor cores (sm_80 and up;
 * the fp32 kernel below that): the tf32 and bf16 precisions' attention. */
mrec_status mrec_attention_tf32_cuda(float *out, const float *q, const float *k, const float *v,
                                     const float *mask_bias, const float *head_bias, float scale,
                                     int B, int T, int heads, int dh, mrec_cuda *cu);
/* mrec_attention_varlen_cpu's contract in one launch, starts (B + 1) in
 * device memory; tf32: the tensor-core kernel (sm_80 and up). */
mrec_status mrec_attention_varlen_cuda(float *out, const float *q, const float *k, const float *v, const float *head_bias,
                                       const int32_t *starts, float scale, int B, int T, int heads, int dh, int tf32,
                                       mrec_cuda *cu);
mrec_status mrec_dropout_cuda(float *out, const float *in, float p, uint64_t seed, uint64_t offset, int64_t n,
                              mrec_cuda *cu);
/* The CSR of mrec_index_csr_ref on the device, through a stable radix sort;
 * work: mrec_index_csr_workspace_bytes_cuda bytes. Ids are checked (one int
 * read back). */
mrec_status mrec_index_csr_workspace_bytes_cuda(size_t *bytes, int N, int V);
mrec_status mrec_index_csr_cuda(int64_t *row_ptr, int32_t *pos, const int32_t *ids, int N, int V, void *work,
                                size_t work_bytes, mrec_cuda *cu);
/* The same for ids the caller has checked (mrec_index_csr_host_checked):
 * no check on the device, so the host does not wait. */
mrec_status mrec_index_csr_checked_cuda(int64_t *row_ptr, int32_t *pos, const int32_t *ids, int N, int V, void *work,
                                        size_t work_bytes, mrec_cuda *cu);
/* out (n) = <A[ia[b]], B[ib[b]]> with A (Ra, d), B (Rb, d): BPR's scores. */
mrec_status mrec_gather_dot_cuda(float *out, const float *A, const int32_t *ia, const float *B, const int32_t *ib,
                                 int n, int d, mrec_cuda *cu);
/* mrec_bpr_rows_ref on the device: dx (n) device memory, coef (3) host memory (passed by value) */
mrec_status mrec_bpr_rows_cuda(float *out, const float *T, const int32_t *ids, const float *dx, const float *coef, int n,
                               int d, mrec_cuda *cu);
/* mrec_bpr_rows_cuda with coef (3) in device memory (mrec_bpr_batch_loss's), 0 for the parts not in `parts` */
mrec_status mrec_bpr_rows_at_cuda(float *out, const float *T, const int32_t *ids, const float *dx, const float *coef, int parts,
                                  int n, int d, mrec_cuda *cu);
/* mrec_bpr_batch_loss_cpu on the device, one block: every sum in a fixed
 * tree where the CPU's runs in order, so the loss may differ from the CPU's
 * in its last bits, and a norm (so coef) in the last bit of a double. */
mrec_status mrec_bpr_batch_loss_cuda(float *dx, float *coef, double *loss, const float *dots, int n, const mrec_bpr_spec *spec,
                                     mrec_cuda *cu);
mrec_status mrec_loss_add_cuda(mrec_loss_sum *sum, const double *loss, mrec_cuda *cu);
/* mrec_loss_term_cpu, _cos_cpu and _norm_cpu on the device, one block each (the sums in a fixed tree) */
mrec_status mrec_loss_term_cuda(double *loss, const double *x, int n, float scale, double div, mrec_cuda *cu);
mrec_status mrec_loss_term_at_cuda(double *loss, const double *x, const int32_t *live, float scale, mrec_cuda *cu);
mrec_status mrec_loss_cos_cuda(double *loss, const float *cos, int n, float weight, mrec_cuda *cu);
mrec_status mrec_loss_norm_cuda(float *coef, double *loss, const float *sq, int n, float reg, int div, mrec_cuda *cu);
/* mrec_loss_dot_cpu: blocks' shares (their count from n alone), then their sums, each in a fixed tree */
mrec_status mrec_loss_dot_cuda(double *loss, const float *x, const float *y, int64_t n, float scale, double div, mrec_cuda *cu);
/* mrec_moment_align_cpu, one block (each row's sum in a fixed tree) */
mrec_status mrec_moment_align_cuda(float *alpha, float *sums, double *loss, int W, int64_t n, float w, mrec_cuda *cu);
/* out = a * *s, s one float in device memory (a factor computed there) */
mrec_status mrec_scale_at_cuda(float *out, const float *a, const float *s, int64_t n, mrec_cuda *cu);
/* scores (R, C) of users u0 .. u0 + R - 1: the columns of each user's row of
 * the mask CSR (row_ptr, col over all users) set to -inf, as evaluation
 * masks the training items. */
mrec_status mrec_mask_rows_cuda(float *scores, const int64_t *row_ptr, const int32_t *col, int u0, int R, int C,
                                mrec_cuda *cu);
/* mrec_rank_metrics_cpu: a thread a user, then one thread a (metric, cut-off) adding the block's users in order */
mrec_status mrec_rank_metrics_cuda(mrec_rank_sums *sums, double *work, const int32_t *top, int u0, int R,
                                   const mrec_rank_relevance *rel, mrec_cuda *cu);
mrec_status mrec_adam_cuda(float *param, float *m, float *v, const float *grad, float lr, float beta1,
                           float beta2, float eps, float weight_decay, int64_t step, int64_t n,
                           mrec_cuda *cu);
mrec_status mrec_adam_at_cuda(float *param, float *m, float *v, const float *grad, const float *k, float beta1, float beta2,
                              float eps, float weight_decay, int64_t n, mrec_cuda *cu);

/* ---- the op entries ----------------------------------------------------------
 * One per op: mrec_<op>(ctx, ...) runs mrec_<op>_cpu on the context's pool,
 * or mrec_<op>_cuda on its stream when ctx->device is MREC_DEVICE_CUDA (all
 * pointers then device pointers). Shapes and contracts are the variants'
 * above. Models call only these, so a model runs wherever its context does;
 * an op without a GPU kernel returns MREC_ERR_UNSUPPORTED naming it.
 * mrec_gemm computes in ctx->precision (on the GPU cuBLAS in fp32, cuBLASLt
 * in TF32 and bf16; on the CPU mrec_gemm_bf16_cpu for bf16, with the weights
 * in ctx->packs rounded once); mrec_gemm_batched is fp32 everywhere. */
mrec_status mrec_gemm(mrec_context *ctx, float *C, const float *A, const float *B, const float *bias, float alpha,
                      float beta, int trans_a, int trans_b, int M, int N, int K, int lda, int ldb, int ldc);
/* mrec_gemm_rows_cpu's gathered GEMM, fp32, on the CPU only (models' GPU
 * paths gather with mrec_embedding and call mrec_gemm): MREC_ERR_UNSUPPORTED
 * on a GPU context, MREC_ERR_ARG for an index on a transposed operand. */
mrec_status mrec_gemm_rows(mrec_context *ctx, float *C, const float *A, const int32_t *a_rows, const float *B,
                           const int32_t *b_rows, const float *bias, float alpha, float beta, int trans_a, int trans_b, int M,
                           int N, int K, int lda, int ldb, int ldc);
/* On the CPU a row of C has the same bits in every GEMM of the same kind:
 * M <= MREC_GEMM_FEW_ROWS (dot products), or taller (the micro-kernels),
 * whatever M, the threads and the row's place. The two kinds sum in other
 * orders. */
#define MREC_GEMM_FEW_ROWS 4
mrec_status mrec_gemm_batched(mrec_context *ctx, float *C, const float *A, const float *B, float alpha, float beta,
                              int trans_a, int trans_b, int batch, int M, int N, int K, int lda, int ldb, int ldc,
                              int64_t stride_a, int64_t stride_b, int64_t stride_c);
mrec_status mrec_add(mrec_context *ctx, float *out, const float *a, const float *b, int64_t n);
mrec_status mrec_mul(mrec_context *ctx, float *out, const float *a, const float *b, int64_t n);
mrec_status mrec_scale(mrec_context *ctx, float *out, const float *a, float s, int64_t n);
mrec_status mrec_fill(mrec_context *ctx, float *out, float value, int64_t n);
mrec_status mrec_activation(mrec_context *ctx, float *out, const float *in, mrec_act act, float slope, int64_t n);
/* C (M x N) = act(A W^T + bias): mrec_gemm then mrec_activation, the same
 * bits, on the CPU in one pass over C (mrec_linear_act_cpu). */
mrec_status mrec_linear_act(mrec_context *ctx, float *C, const float *A, const float *W, const float *bias, mrec_act act,
                            int M, int N, int K);
/* Three products of one operand, out[i] (R, N) = x (R, K) W[i]^T + b[i]
 * (attention's queries, keys and values): the values of three mrec_gemm
 * calls; on a GPU in bf16, x is converted once instead of three times. */
mrec_status mrec_linear3(mrec_context *ctx, float *const out[3], const float *x, const float *const W[3], const float *const b[3],
                         int R, int N, int K);
/* A transformer's feed-forward block: out = beta out + act(x W1^T + b1) W2^T + b2,
 * x (R, H), W1 (I, H), b1 (I), W2 (H, I), b2 (H) or NULL; hidden (R, I) is
 * scratch on the context's device. The values of mrec_linear_act into hidden
 * and then mrec_gemm from it; on a GPU in bf16 the activation writes the
 * second product's bf16 operand itself (one pass over the (R, I) activations
 * where there were three), and hidden keeps the first product. */
mrec_status mrec_ffn(mrec_context *ctx, float *out, const float *x, const float *W1, const float *b1, mrec_act act,
                     const float *W2, const float *b2, float beta, float *hidden, int R, int H, int I);
mrec_status mrec_softmax_rows(mrec_context *ctx, float *out, const float *in, const float *mask, int R, int C,
                              int rows_per_mask);
mrec_status mrec_layernorm(mrec_context *ctx, float *out, const float *in, const float *weight, const float *bias,
                           float eps, int R, int C);
/* out (R, C) = LayerNorm(a + b); out may be a or b */
mrec_status mrec_add_layernorm(mrec_context *ctx, float *out, const float *a, const float *b, const float *weight,
                               const float *bias, float eps, int R, int C);
mrec_status mrec_l2_normalize_rows(mrec_context *ctx, float *out, const float *in, float eps, int R, int C);
mrec_status mrec_embedding(mrec_context *ctx, float *out, const float *table, const int32_t *ids, int N, int V, int D);
/* mrec_embedding for ids already checked against V (a mrec_batch_rows' ids,
 * checked as they were set): a GPU gathers without reading a flag back, so
 * the host does not wait; the CPU checks anyway (it costs nothing there). */
mrec_status mrec_embedding_checked(mrec_context *ctx, float *out, const float *table, const int32_t *ids, int N, int V, int D);
mrec_status mrec_mean_pool(mrec_context *ctx, float *out, const float *in, const int32_t *mask, int B, int T, int D);
/* On a GPU a k above MREC_TOPK_GPU_MAX (a long saved list) is taken on the host: the rows' scores go down,
 * their lists come back up. */
mrec_status mrec_topk_rows(mrec_context *ctx, int32_t *idx, float *val, const float *scores, int R, int C, int k);
/* mrec_gram_topk_cpu's result; x, idx and val are host memory on any context.
 * A GPU context makes the products on its device (k <= MREC_TOPK_GPU_MAX; above, the CPU). */
mrec_status mrec_gram_topk(mrec_context *ctx, int32_t *idx, float *val, const float *x, int n, int dim, int k, int unit_rows);
/* work: mrec_attention_workspace_bytes of memory on the context's device (0 on the GPU: fused) */
size_t mrec_attention_workspace_bytes(const mrec_context *ctx, int B, int T, int heads, int dh);
/* mrec_attention_varlen_cpu's contract where ctx runs: starts in host memory,
 * dev_starts the same B + 1 ints in the context's device memory (the GPU
 * reads those); work: mrec_attention_varlen_workspace_bytes (0 on a GPU). */
size_t mrec_attention_varlen_workspace_bytes(const mrec_context *ctx, int T, int heads, int dh);
mrec_status mrec_attention_varlen(mrec_context *ctx, float *out, const float *q, const float *k, const float *v,
                                  const float *head_bias, float scale, const int32_t *starts, const int32_t *dev_starts, int B,
                                  int T, int heads, int dh, void *work);
mrec_status mrec_attention(mrec_context *ctx, float *out, const float *q, const float *k, const float *v,
                           const float *mask_bias, const float *head_bias, float scale, int B, int T, int heads, int dh,
                           void *work);
/* work: mrec_conv2d_workspace_bytes of device memory (cuDNN's; none on the CPU) */
mrec_status mrec_conv2d_workspace_bytes(const mrec_context *ctx, const mrec_conv2d_shape *s, size_t *bytes);
mrec_status mrec_conv2d(mrec_context *ctx, float *out, const float *in, const float *weight, const float *bias,
                        void *work, size_t work_bytes, const mrec_conv2d_shape *s);
/* out = act(conv(in) + bias + beta out): mrec_conv2d, the residual, then
 * mrec_activation; on the CPU in one pass over out (mrec_conv2d_act_cpu). */
mrec_status mrec_conv2d_act(mrec_context *ctx, float *out, const float *in, const float *weight, const float *bias,
                            float beta, mrec_act act, void *work, size_t work_bytes, const mrec_conv2d_shape *s);
mrec_status mrec_batchnorm(mrec_context *ctx, float *out, const float *in, const float *gamma, const float *beta,
                           const float *mean, const float *var, float eps, int N, int C, int HW);
mrec_status mrec_maxpool2d(mrec_context *ctx, float *out, const float *in, const mrec_pool2d_shape *s);
mrec_status mrec_avgpool2d(mrec_context *ctx, float *out, const float *in, const mrec_pool2d_shape *s);
/* The channels-last bf16 ops where ctx runs (on a CPU with AVX-512 BF16 the
 * _cpu variants, the convolution from ctx's pack set where its weight lies
 * in it; on another CPU the references, one thread; no workspace on a CPU). */
mrec_status mrec_nhwc_bf16_from_nchw(mrec_context *ctx, uint16_t *out, const float *in, int N, int C, int HW, int C_pad);
/* 1 where ctx runs these fast, where a model chooses the channels-last route in bf16: bf16 tensor cores (a
 * GPU of compute capability 8.0 or later) or a CPU with AVX-512 BF16 and no AMX (whose tiles the NCHW
 * route uses); 0 elsewhere. */
int mrec_nhwc_bf16_native(const mrec_context *ctx);
mrec_status mrec_conv2d_nhwc_bf16_workspace_bytes(const mrec_context *ctx, const mrec_conv2d_shape *s, size_t *bytes);
mrec_status mrec_conv2d_nhwc_bf16(mrec_context *ctx, uint16_t *out, const uint16_t *in, const float *weight, const float *bias,
                                  float beta, int relu, void *work, size_t work_bytes, const mrec_conv2d_shape *s);
mrec_status mrec_maxpool2d_nhwc_bf16(mrec_context *ctx, uint16_t *out, const uint16_t *in, const mrec_pool2d_shape *s);
mrec_status mrec_mean_hw_nhwc_bf16(mrec_context *ctx, float *out, const uint16_t *in, int N, int HW, int C);
/* The bf16-activation ops where ctx runs (on a CPU with AVX-512 BF16 the
 * _cpu variants, on another CPU the references, one thread).
 * mrec_bf16_activations_native: ctx is in bf16 on bf16 tensor cores or a
 * CPU with AVX-512 BF16 (AMX's tiles too), where the encoders take this
 * route.
 * attention_bf16: starts and dev_starts as in mrec_attention_varlen, both
 * NULL for padded sequences. */
int mrec_bf16_activations_native(const mrec_context *ctx);
mrec_status mrec_layernorm_bf16(mrec_context *ctx, float *out, uint16_t *out16, const float *a, const float *b, const float *weight,
                                const float *bias, float eps, int R, int C);
mrec_status mrec_linear_bf16(mrec_context *ctx, void *C, int c_bf16, const uint16_t *A, const float *W, const float *bias, int act,
                             float beta, int M, int N, int K, int ldc);
mrec_status mrec_activation_bf16(mrec_context *ctx, uint16_t *x, mrec_act act, int64_t n);
/* qkv (R, 3 H) bf16 = the rows [x Wq^T + bq, x Wk^T + bk, x Wv^T + bv] (mrec_linear_bf16, bf16 out), x (R, H)
 * bf16, each W (H, H), the biases (H) or all NULL: one (3 H, H) product where the weights, and the biases,
 * lie one after another in memory, else three. */
mrec_status mrec_qkv_bf16(mrec_context *ctx, uint16_t *qkv, const uint16_t *x, const float *q_w, const float *k_w, const float *v_w,
                          const float *q_b, const float *k_b, const float *v_b, int R, int H);
mrec_status mrec_attention_bf16(mrec_context *ctx, uint16_t *out, const uint16_t *q, const uint16_t *k, const uint16_t *v, int ld,
                                const float *mask_bias, const float *head_bias, const int32_t *starts, const int32_t *dev_starts,
                                float scale, int B, int T, int heads, int dh);
/* Encoders (the ops above) and their memory. A forward pass takes its
 * inputs from the host (token ids, masks, images: they arrive there) with
 * mrec_copy_to_device into memory it carved from the workspace, and a caller
 * brings outputs back with mrec_copy_to_host; on the CPU both are memcpy. */
mrec_status mrec_embedding_sum(mrec_context *ctx, float *out, const float *word, const int32_t *ids, const float *type,
                               const int32_t *type_ids, const float *position, const int32_t *pos, int N, int H);
mrec_status mrec_position_ids(mrec_context *ctx, int32_t *pos, const int32_t *ids, int pad_id, int B, int T);
mrec_status mrec_mask_bias(mrec_context *ctx, float *out, const int32_t *mask, int64_t n);
mrec_status mrec_rel_bias(mrec_context *ctx, float *out, const float *table, const int32_t *bucket, int heads, int T);
mrec_status mrec_causal_bias(mrec_context *ctx, float *out, int heads, int T);
mrec_status mrec_patchify(mrec_context *ctx, float *out, const float *images, int B, int C, int S, int P);
mrec_status mrec_class_embed(mrec_context *ctx, float *x, const float *cls, const float *pos, int B, int T, int H);
mrec_status mrec_copy_rows(mrec_context *ctx, float *out, int ld_out, const float *in, int ld_in, int rows, int cols);
/* dst (memory on the context's device) = src (host), bytes. */
mrec_status mrec_copy_to_device(mrec_context *ctx, void *dst, const void *src, size_t bytes);
/* dst (host) = src (memory on the context's device), bytes; waits for the
 * work queued before it. */
mrec_status mrec_copy_to_host(mrec_context *ctx, void *dst, const void *src, size_t bytes);
/* A model's weights (n floats of host memory) where the context runs: on the
 * GPU *out is one device allocation holding them (and their bf16 twin when
 * ctx->precision is bf16, for mrec_gemm); on the CPU *out = NULL: the host
 * copy is used as it is. mrec_weights_release frees what this allocated. */
mrec_status mrec_weights_upload(mrec_context *ctx, float **out, const float *host, int64_t n);
void mrec_weights_release(mrec_context *ctx, float *weights);
/* out = A @ X (X: (a->n_cols, D)) or, with transpose, A^T @ X (X: (a->n_rows, D)); on the GPU A^T
 * needs a->transposed */
mrec_status mrec_spmm(mrec_context *ctx, float *out, const mrec_csr *a, const float *X, int D, int transpose);
/* mrec_spmm, then sum = (sum_in + out) * scale (the output's rows, D wide) in the same pass where it can: the same
 * bits as mrec_spmm, mrec_add and mrec_scale in turn. sum may be sum_in; out may be neither. */
mrec_status mrec_spmm_sum(mrec_context *ctx, float *out, float *sum, const float *sum_in, float scale, const mrec_csr *a,
                          const float *X, int D, int transpose);
mrec_status mrec_adam(mrec_context *ctx, float *param, float *m, float *v, const float *grad, float lr, float beta1,
                      float beta2, float eps, float weight_decay, int64_t step, int64_t n);
mrec_status mrec_adam_at(mrec_context *ctx, float *param, float *m, float *v, const float *grad, const float *k, float beta1,
                         float beta2, float eps, float weight_decay, int64_t n);
mrec_status mrec_dropout(mrec_context *ctx, float *out, const float *in, float p, uint64_t seed, uint64_t offset,
                         int64_t n);

/* ---- training and sparse ops -------------------------------------------------
 * What the recommenders need beside the ops above to train and rank where
 * their context runs: copies between the host and the context's device, and
 * the gathers, the batch index and the evaluation mask whose GPU variants
 * are declared with the CUDA ops. The CPU variants live in kernels/cpu/train.c
 * next to their references. */

/* out (n) = <A[ia[b]], B[ib[b]]> over d for each pair b: A (Ra, d), B (Rb, d),
 * ia, ib (n) valid row numbers (the sampler's). The CPU variant sums in
 * float in k order, as the models' host loops do. */
void mrec_gather_dot_ref(float *out, const float *A, const int32_t *ia, const float *B, const int32_t *ib, int n, int d);
void mrec_gather_dot_cpu(float *out, const float *A, const int32_t *ia, const float *B, const int32_t *ib, int n, int d,
                         mrec_pool *pool);
/* The rows a BPR batch's gradient scatters, before the scatter: for n
 * triples whose rows of T (R, d) are ids (3n: the users', then the
 * positives', then the negatives'; valid, as mrec_index_csr checked them),
 *   out[b]      = coef[0] T_u + dx_b T_i - dx_b T_j
 *   out[n + b]  = dx_b T_u + coef[1] T_i
 *   out[2n + b] = -dx_b T_u + coef[2] T_j
 * out (3n, d); dx (n) NULL for no BPR part, coef (3, host memory) NULL for
 * no norm part. Each row sums its terms from 0 in that order, as a sparse
 * product over those entries does (the CPU rounds each product, the GPU
 * fuses it into the add, as their mrec_spmm do). */
void mrec_bpr_rows_ref(float *out, const float *T, const int32_t *ids, const float *dx, const float *coef, int n, int d);
void mrec_bpr_rows_cpu(float *out, const float *T, const int32_t *ids, const float *dx, const float *coef, int n, int d,
                       mrec_pool *pool);
/* dots: pos (n), neg (n), then the squared norms of the batch's user,
 * positive and negative rows (3n; read when reg_form is not NONE). Writes
 * dx (n), coef (3: the regularizer's row factors, for mrec_bpr_rows_at;
 * untouched without one) and *loss (the term, with its regularizer), with
 * the bits of the host code these replaced (mrec_bpr_loss and the models'
 * regularizers, in that order). */
void mrec_bpr_batch_loss_cpu(float *dx, float *coef, double *loss, const float *dots, int n, const mrec_bpr_spec *spec);
void mrec_loss_add_cpu(mrec_loss_sum *sum, const double *loss);
/* *loss += scale * (x[0] + ... + x[n - 1]) / div: a term of a batch's loss made of per-row losses (InfoNCE's),
 * summed in order in double */
void mrec_loss_term_cpu(double *loss, const double *x, int n, float scale, double div);
/* The same with n = div = *live, read from memory (nothing added for live <= 0): the bits of
 * mrec_loss_term_cpu(loss, x, live, scale, live) */
void mrec_loss_term_at_cpu(double *loss, const double *x, const int32_t *live, float scale);
/* *loss += weight (1 - (cos[0] + ... + cos[n - 1]) / n): BM3's cosine loss, the sum in order in double */
void mrec_loss_cos_cpu(double *loss, const float *cos, int n, float weight);
/* The regularizer reg |X| / div of one table from its squared entries' partial sums sq (n, summed in order
 * in double): *loss += reg |X| / div, *coef = reg / div / |X| (0 for a zero table), the factor of X in
 * its gradient (BM3's EmbLoss). */
void mrec_loss_norm_cpu(float *coef, double *loss, const float *sq, int n, float reg, int div);
/* *loss += scale * (x[0] y[0] + ... + x[n-1] y[n-1]) / div, products and sum in double, in order (y may be x: a
 * table's squared norm, MMGCN's and MENTOR's regularizers) */
void mrec_loss_dot_cpu(double *loss, const float *x, const float *y, int64_t n, float scale, double div);
/* MENTOR's alignment of four tables' moments from their column sums. sums (8, W): rows 2a and 2a + 1 the column
 * sums of table a's entries and of their squares, n entries a table. With mean_a = S_a / n and var_a = (Q_a -
 * S_a^2 / n) / (n - 1) (S, Q: a row's sum, in double):
 *   *loss += w sum_{a < b} |var_a - var_b| + |mean_a - mean_b|
 * and the gradient in an entry x of table a is alpha_a x + beta_a: alpha (4) written, and beta_a into every
 * column of sums' row a (rows 0-3 overwritten, the rows a GEMM with a column of ones spreads). |.|'s slope is
 * torch's sign, 0 at 0. n >= 2. */
void mrec_moment_align_cpu(float *alpha, float *sums, double *loss, int W, int64_t n, float w);

/* mrec_index_csr_ref in O(N + V): a stable counting sort. */
mrec_status mrec_index_csr_cpu(int64_t *row_ptr, int32_t *pos, const int32_t *ids, int N, int V, mrec_pool *pool);
/* scores (R, C) of users u0 .. u0 + R - 1: the columns of each user's row of
 * the mask CSR (row_ptr (>= u0 + R + 1), col: over all users) set to -inf;
 * columns outside [0, C) are skipped. */
void mrec_mask_rows_ref(float *scores, const int64_t *row_ptr, const int32_t *col, int u0, int R, int C);
void mrec_mask_rows_cpu(float *scores, const int64_t *row_ptr, const int32_t *col, int u0, int R, int C,
                        mrec_pool *pool);
/* Full-ranking accuracy metrics where the lists are (kernels/rank_metrics.h): the metrics of users u0 ..
 * u0 + R - 1 (u0 + R <= rel->n_rows), top (R, k[n_k - 1]) their lists best first, added into the running sums
 * user by user in user order, so that the sums depend neither on the block size nor on the threads. work:
 * mrec_rank_metrics_work_bytes(R, n_k) bytes, each user's metrics before they are added. */
size_t mrec_rank_metrics_work_bytes(int R, int n_k);
void mrec_rank_metrics_cpu(mrec_rank_sums *sums, double *work, const int32_t *top, int u0, int R,
                           const mrec_rank_relevance *rel, mrec_pool *pool);

/* Entries (see "the op entries" above; the host/device copies are with the
 * encoders' entries). */
mrec_status mrec_gather_dot(mrec_context *ctx, float *out, const float *A, const int32_t *ia, const float *B,
                            const int32_t *ib, int n, int d);
/* dx (n) on the context's device, coef (3) in host memory */
mrec_status mrec_bpr_rows(mrec_context *ctx, float *out, const float *T, const int32_t *ids, const float *dx,
                          const float *coef, int n, int d);
/* the same with coef (3) in the context's memory, as mrec_bpr_batch_loss leaves it; the parts whose bit is
 * clear in `parts` (1 the users' rows, 2 the positives', 4 the negatives') take a factor of 0 */
#define MREC_BPR_PARTS_ALL 7
mrec_status mrec_bpr_rows_at(mrec_context *ctx, float *out, const float *T, const int32_t *ids, const float *dx,
                             const float *coef, int parts, int n, int d);
/* dx (n), coef (3), *loss, dots (5n) in the context's memory; spec on the host */
mrec_status mrec_bpr_batch_loss(mrec_context *ctx, float *dx, float *coef, double *loss, const float *dots, int n,
                                const mrec_bpr_spec *spec);
/* sum and loss in the context's memory */
mrec_status mrec_loss_add(mrec_context *ctx, mrec_loss_sum *sum, const double *loss);
/* loss (1) and x (n) in the context's memory */
mrec_status mrec_loss_term(mrec_context *ctx, double *loss, const double *x, int n, float scale, double div);
/* the same with n = div = *live, live too in the context's memory */
mrec_status mrec_loss_term_at(mrec_context *ctx, double *loss, const double *x, const int32_t *live, float scale);
mrec_status mrec_loss_cos(mrec_context *ctx, double *loss, const float *cos, int n, float weight);
mrec_status mrec_loss_norm(mrec_context *ctx, float *coef, double *loss, const float *sq, int n, float reg, int div);
/* loss (1), x, y (n) in the context's memory */
mrec_status mrec_loss_dot(mrec_context *ctx, double *loss, const float *x, const float *y, int64_t n, float scale, double div);
/* alpha (4), sums (8, W), loss (1) in the context's memory */
mrec_status mrec_moment_align(mrec_context *ctx, float *alpha, float *sums, double *loss, int W, int64_t n, float w);
/* out = a * *s (n), s one float in the context's memory */
mrec_status mrec_scale_at(mrec_context *ctx, float *out, const float *a, const float *s, int64_t n);
/* work: *bytes of memory on the context's device (0 on the CPU) */
mrec_status mrec_index_csr_workspace_bytes(const mrec_context *ctx, int N, int V, size_t *bytes);
mrec_status mrec_index_csr(mrec_context *ctx, int64_t *row_ptr, int32_t *pos, const int32_t *ids, int N, int V, void *work,
                           size_t work_bytes);
/* mrec_index_csr for ids (on the context's device) whose host copy host_ids
 * is at hand: the check runs on the host, with the same error, and a GPU
 * sorts without a wait (the BPR batches' ids come from the host sampler). */
mrec_status mrec_index_csr_host_checked(mrec_context *ctx, int64_t *row_ptr, int32_t *pos, const int32_t *ids,
                                        const int32_t *host_ids, int N, int V, void *work, size_t work_bytes);
/* The two halves of mrec_index_csr_host_checked, for a step whose host part
 * runs apart from its launches: the ids' host copy checked against [0, V)
 * (the same error), then the index of ids the caller has checked (on the
 * CPU mrec_index_csr, which checks as it goes). */
mrec_status mrec_ids_check(const int32_t *host_ids, int N, int V);
mrec_status mrec_index_csr_prechecked(mrec_context *ctx, int64_t *row_ptr, int32_t *pos, const int32_t *ids, int N, int V,
                                      void *work, size_t work_bytes);
mrec_status mrec_mask_rows(mrec_context *ctx, float *scores, const int64_t *row_ptr, const int32_t *col, int u0, int R,
                           int C);
/* sums, work, top and rel's arrays in the context's memory; rel itself on the host */
mrec_status mrec_rank_metrics(mrec_context *ctx, mrec_rank_sums *sums, double *work, const int32_t *top, int u0, int R,
                              const mrec_rank_relevance *rel);

/* What NGCF's layers need beside the dense ops (references and CPU variants
 * in kernels/cpu/train.c, GPU ones in kernels/cuda/train.cu).
 *
 * Dropout drawn from a hash of (key, element), the stream NGCF's host loops
 * use, so the host and the op path drop the same entries whatever the
 * order: element t is dropped when u(key, e) < p, with e = idx ? idx[t] : t
 * (idx renumbers, e.g. a transposed matrix's entries back to the original's)
 * and u(key, e) = (mix64(key ^ e * 0x9E3779B97F4A7C15) >> 40) / 2^24; a kept
 * one is out[t] = x[t] / (1 - p), or 1 / (1 - p) with x NULL (the mask).
 * out, x, idx: (n); p in [0, 1) (0: a copy of x, or ones). */
void mrec_hash_dropout_ref(float *out, const float *x, const int32_t *idx, int64_t n, float p, uint64_t key);
void mrec_hash_dropout_cpu(float *out, const float *x, const int32_t *idx, int64_t n, float p, uint64_t key, mrec_pool *pool);
mrec_status mrec_hash_dropout_cuda(float *out, const float *x, const int32_t *idx, int64_t n, float p, uint64_t key,
                                   mrec_cuda *cu);
/* NGCF's layer output, fused: mask (n) = mrec_hash_dropout's mask (x NULL) of (p, key), and
 *   e = (lrelu(z1) + lrelu(z2)) * mask,   lrelu(z) = z >= 0 ? z : slope z (mrec_activation's)
 * and its backward: t = de * mask, dz1 = z1 > 0 ? t : slope t, dz2 likewise (mrec_leaky_relu_back's). Each
 * gives the bits of the ops it replaces (a dropout, two activations, an add and a multiply; a multiply and two
 * LeakyReLU backwards), in one pass over the arrays. All arrays (n). */
void mrec_ngcf_combine_ref(float *e, float *mask, const float *z1, const float *z2, float slope, float p, uint64_t key, int64_t n);
void mrec_ngcf_combine_cpu(float *e, float *mask, const float *z1, const float *z2, float slope, float p, uint64_t key, int64_t n,
                           mrec_pool *pool);
mrec_status mrec_ngcf_combine_cuda(float *e, float *mask, const float *z1, const float *z2, float slope, float p, uint64_t key,
                                   int64_t n, mrec_cuda *cu);
void mrec_ngcf_combine_back_ref(float *dz1, float *dz2, const float *de, const float *mask, const float *z1, const float *z2,
                                float slope, int64_t n);
void mrec_ngcf_combine_back_cpu(float *dz1, float *dz2, const float *de, const float *mask, const float *z1, const float *z2,
                                float slope, int64_t n, mrec_pool *pool);
mrec_status mrec_ngcf_combine_back_cuda(float *dz1, float *dz2, const float *de, const float *mask, const float *z1,
                                        const float *z2, float slope, int64_t n, mrec_cuda *cu);
/* LeakyReLU's backward: dz (n) = dy where z > 0, else slope * dy (z: its input, (n)). */
void mrec_leaky_relu_back_ref(float *dz, const float *dy, const float *z, float slope, int64_t n);
void mrec_leaky_relu_back_cpu(float *dz, const float *dy, const float *z, float slope, int64_t n, mrec_pool *pool);
mrec_status mrec_leaky_relu_back_cuda(float *dz, const float *dy, const float *z, float slope, int64_t n, mrec_cuda *cu);
/* Column blocks into or out of a wider matrix: mrec_copy_rows, with the encoders' ops. */
/* The backward of y = x / max(|x|, eps) row by row (mrec_l2_normalize_rows):
 * dx = beta dx + (dy - y (y . dy)) / |x| where |x| > eps, else beta dx + dy / eps;
 * beta 0 ignores dx's contents. dx, dy, y, x: (R, C); sums in double. */
void mrec_l2_normalize_rows_back_ref(float *dx, const float *dy, const float *y, const float *x, float eps, float beta, int R,
                                     int C);
void mrec_l2_normalize_rows_back_cpu(float *dx, const float *dy, const float *y, const float *x, float eps, float beta, int R,
                                     int C, mrec_pool *pool);
mrec_status mrec_l2_normalize_rows_back_cuda(float *dx, const float *dy, const float *y, const float *x, float eps, float beta,
                                             int R, int C, mrec_cuda *cu);
/* Entries. */
mrec_status mrec_hash_dropout(mrec_context *ctx, float *out, const float *x, const int32_t *idx, int64_t n, float p,
                              uint64_t key);
mrec_status mrec_leaky_relu_back(mrec_context *ctx, float *dz, const float *dy, const float *z, float slope, int64_t n);
mrec_status mrec_ngcf_combine(mrec_context *ctx, float *e, float *mask, const float *z1, const float *z2, float slope, float p,
                              uint64_t key, int64_t n);
mrec_status mrec_ngcf_combine_back(mrec_context *ctx, float *dz1, float *dz2, const float *de, const float *mask, const float *z1,
                                   const float *z2, float slope, int64_t n);
mrec_status mrec_l2_normalize_rows_back(mrec_context *ctx, float *dx, const float *dy, const float *y, const float *x,
                                        float eps, float beta, int R, int C);
/* The same with the key in the context's memory, read when the op runs: a step queued once and replayed (a CUDA
 * graph) then draws with each step's own key, sent up before it. */
mrec_status mrec_hash_dropout_at_cuda(float *out, const float *x, const int32_t *idx, int64_t n, float p, const uint64_t *key,
                                      mrec_cuda *cu);
mrec_status mrec_ngcf_combine_at_cuda(float *e, float *mask, const float *z1, const float *z2, float slope, float p,
                                      const uint64_t *key, int64_t n, mrec_cuda *cu);
mrec_status mrec_hash_dropout_at(mrec_context *ctx, float *out, const float *x, const int32_t *idx, int64_t n, float p,
                                 const uint64_t *key);
mrec_status mrec_ngcf_combine_at(mrec_context *ctx, float *e, float *mask, const float *z1, const float *z2, float slope, float p,
                                 const uint64_t *key, int64_t n);

/* What SimGCL, SGL, LATTICE and ItemKNN need on top (references and CPU
 * variants in kernels/cpu/train.c, GPU ones in kernels/cuda/train.cu).
 *
 * SimGCL's perturbation, row by row over x (R, C):
 *   x[r, c] += eps * sign(x[r, c]) * (u[r, c] * (1 / max(|u_r|, 1e-12)))
 * with sign(0) = 0 and u (R, C) the uniform draws, or, with u NULL, the hash
 * stream of mrec_hash_dropout: u[r, c] = u(key, offset + r C + c). |u_r| is
 * summed in float in column order and eps / max(..) taken once per row, as
 * SimGCL's host loops compute it, so every variant gives the same bits. */
void mrec_sign_noise_ref(float *x, const float *u, float eps, uint64_t key, uint64_t offset, int R, int C);
void mrec_sign_noise_cpu(float *x, const float *u, float eps, uint64_t key, uint64_t offset, int R, int C, mrec_pool *pool);
mrec_status mrec_sign_noise_cuda(float *x, const float *u, float eps, uint64_t key, uint64_t offset, int R, int C,
                                 mrec_cuda *cu);
/* LGMRec's Gumbel noise, out (n): out[e] = -log(-log(u)) with u = ((mix64(key ^ e * 0x9E3779B97F4A7C15) >> 40) + 0.5)
 * / 2^24, the hash stream's uniform moved to the middle of its cell (in (0, 1): both logs finite); in double, rounded
 * once to float. A GPU's double log is within an ulp of the C library's, so a float may differ by one in a rare case. */
void mrec_gumbel_noise_ref(float *out, uint64_t key, int64_t n);
void mrec_gumbel_noise_cpu(float *out, uint64_t key, int64_t n, mrec_pool *pool);
mrec_status mrec_gumbel_noise_cuda(float *out, uint64_t key, int64_t n, mrec_cuda *cu);
/* Softmax cross-entropy of each row of s (R, C) against a target column
 * (InfoNCE's positive): target (R) valid columns, or NULL for column r (the
 * diagonal of a square s).
 *   loss[r] = logsumexp(s_r) - s_r[t_r]                       (double, (R))
 *   g[r, c] = (float)(alpha / z_r) * exp(s[r, c] - max_r) - alpha [c == t_r]
 * with z_r = sum_c exp(s[r, c] - max_r) summed in double; g may be s. The
 * GPU reduces each row in a fixed tree: the same bits on every run. */
void mrec_softmax_xent_rows_ref(float *g, double *loss, const float *s, const int32_t *target, float alpha, int R, int C);
void mrec_softmax_xent_rows_cpu(float *g, double *loss, const float *s, const int32_t *target, float alpha, int R, int C,
                                mrec_pool *pool);
mrec_status mrec_softmax_xent_rows_cuda(float *g, double *loss, const float *s, const int32_t *target, float alpha, int R,
                                        int C, mrec_cuda *cu);
/* The same over a square problem padded to (R, C), its size and alpha in the context's memory, where a graph
 * replayed for every batch finds them (SimGCL's contrast over a batch's distinct rows, at most the batch):
 * with live = *live (clamped to [0, min(R, C)]), row r < live is the row of live columns (pitch C) against
 * the diagonal with alpha *alpha, its bits those of mrec_softmax_xent_rows over the (live, live) problem;
 * every other entry of g and loss is 0. */
void mrec_softmax_xent_rows_at_cpu(float *g, double *loss, const float *s, const float *alpha, const int32_t *live, int R, int C,
                                   mrec_pool *pool);
mrec_status mrec_softmax_xent_rows_at_cuda(float *g, double *loss, const float *s, const float *alpha, const int32_t *live, int R,
                                           int C, mrec_cuda *cu);
/* LATTICE's normalized Laplacian: out (n) = in^-1/2 where in > 0, 0 where in
 * is 0, NaN below (torch.pow(rowsum, -0.5) with its infinities zeroed), as
 * 1 / sqrt(in) with both steps correctly rounded: the same bits everywhere;
 * in place allowed. */
void mrec_inv_sqrt_ref(float *out, const float *in, int64_t n);
void mrec_inv_sqrt_cpu(float *out, const float *in, int64_t n, mrec_pool *pool);
mrec_status mrec_inv_sqrt_cuda(float *out, const float *in, int64_t n, mrec_cuda *cu);
/* ItemKNN's scores of users u0 .. u0 + R - 1 (scores (R, C)):
 *   scores[r, i] = sum over t < k of sim[i, t] where nbr[i, t] is one of the user's items
 * in t order; row_ptr (>= u0 + R + 1) and col are the users' item lists over all users, each row sorted (a binary
 * search finds an item); nbr, sim (C, k) each item's neighbours, -1 for none. One output per thread on the GPU. */
void mrec_knn_scores_ref(float *scores, const int64_t *row_ptr, const int32_t *col, const int32_t *nbr, const float *sim, int u0,
                         int R, int C, int k);
void mrec_knn_scores_cpu(float *scores, const int64_t *row_ptr, const int32_t *col, const int32_t *nbr, const float *sim, int u0,
                         int R, int C, int k, mrec_pool *pool);
mrec_status mrec_knn_scores_cuda(float *scores, const int64_t *row_ptr, const int32_t *col, const int32_t *nbr, const float *sim,
                                 int u0, int R, int C, int k, mrec_cuda *cu);
/* Their entries. */
mrec_status mrec_sign_noise(mrec_context *ctx, float *x, const float *u, float eps, uint64_t key, uint64_t offset, int R, int C);
mrec_status mrec_gumbel_noise(mrec_context *ctx, float *out, uint64_t key, int64_t n);
/* The same with the key in the context's memory (mrec_hash_dropout_at). */
mrec_status mrec_sign_noise_at_cuda(float *x, const float *u, float eps, const uint64_t *key, uint64_t offset, int R, int C,
                                    mrec_cuda *cu);
mrec_status mrec_gumbel_noise_at_cuda(float *out, const uint64_t *key, int64_t n, mrec_cuda *cu);
mrec_status mrec_sign_noise_at(mrec_context *ctx, float *x, const float *u, float eps, const uint64_t *key, uint64_t offset, int R,
                               int C);
mrec_status mrec_gumbel_noise_at(mrec_context *ctx, float *out, const uint64_t *key, int64_t n);
mrec_status mrec_softmax_xent_rows(mrec_context *ctx, float *g, double *loss, const float *s, const int32_t *target, float alpha,
                                   int R, int C);
mrec_status mrec_softmax_xent_rows_at(mrec_context *ctx, float *g, double *loss, const float *s, const float *alpha, const int32_t *live,
                                      int R, int C);
mrec_status mrec_inv_sqrt(mrec_context *ctx, float *out, const float *in, int64_t n);
mrec_status mrec_knn_scores(mrec_context *ctx, float *scores, const int64_t *row_ptr, const int32_t *col, const int32_t *nbr,
                            const float *sim, int u0, int R, int C, int k);
/* ---- backward: training the encoders ------------------------------------------
 * The backward of every op the CLIP towers use, and AdamW (references and CPU
 * variants in kernels/cpu/backward.c, GPU ones in kernels/cuda/backward.cu,
 * entries in kernels/cpu/dispatch.c). Conventions:
 *   - d<name> is the gradient of the loss with respect to <name>, same shape.
 *   - `accumulate` says which output gradients are added to (+=) rather
 *     than overwritten: MREC_ACC_DX the input's (a residual branch, or q, k
 *     and v adding into one LayerNorm output's gradient), MREC_ACC_PARAMS the
 *     parameters' (gradient accumulation over micro-batches), both, or 0.
 *     Ops without the flag overwrite, except where they say +=.
 *   - A NULL output gradient is not computed (an input that needs none).
 *   - Every sum has a fixed order (no float atomics anywhere): the same
 *     inputs give the same bits on every run and thread count.
 * The fast CPU variants sum in float in the reference's order where they
 * can; the tests hold them to the double references with stated bounds. */

#define MREC_ACC_DX 1
#define MREC_ACC_PARAMS 2

/* nn.Linear y (M, N) = x (M, K) W^T + b, W (N, K), b (N):
 *   dx (M, K) = dy W;  dW (N, K) = dy^T x;  db (N) = sum over rows of dy */
void mrec_linear_back_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int accumulate,
                          int M, int N, int K);
void mrec_linear_back_cpu(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int accumulate,
                          int M, int N, int K, mrec_pool *pool);
mrec_status mrec_linear_back_cuda(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                                  int accumulate, int M, int N, int K, mrec_cuda *cu);

/* LayerNorm's statistics as the forward uses them: mean (R) and
 * rstd (R) = 1 / sqrt(biased var + eps) of in (R, C), in double, rounded once. */
void mrec_layernorm_stats_ref(float *mean, float *rstd, const float *in, float eps, int R, int C);
void mrec_layernorm_stats_cpu(float *mean, float *rstd, const float *in, float eps, int R, int C, mrec_pool *pool);
mrec_status mrec_layernorm_stats_cuda(float *mean, float *rstd, const float *in, float eps, int R, int C, mrec_cuda *cu);
/* With xh = (x - mean) rstd and g = dy * w:
 *   dx (R, C) = rstd (g - mean_c(g) - xh mean_c(g xh));  dw (C) = sum_r dy xh;  db (C) = sum_r dy
 * x (R, C) the forward's input, mean / rstd (R) from mrec_layernorm_stats; w (C) or NULL (ones). */
void mrec_layernorm_back_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *mean,
                             const float *rstd, const float *w, int accumulate, int R, int C);
void mrec_layernorm_back_cpu(float *dx, float *dw, float *db, const float *dy, const float *x, const float *mean,
                             const float *rstd, const float *w, int accumulate, int R, int C, mrec_pool *pool);
mrec_status mrec_layernorm_back_cuda(float *dx, float *dw, float *db, const float *dy, const float *x, const float *mean,
                                     const float *rstd, const float *w, int accumulate, int R, int C, mrec_cuda *cu);

/* dx (n) = dy (n) * act'(x (n)) for every mrec_act (slope: leaky_relu's);
 * dx may be dy. GELU (erf, HF's "gelu") and QuickGELU are CLIP's. */
void mrec_activation_back_ref(float *dx, const float *dy, const float *x, mrec_act act, float slope, int64_t n);
void mrec_activation_back_cpu(float *dx, const float *dy, const float *x, mrec_act act, float slope, int64_t n,
                              mrec_pool *pool);
mrec_status mrec_activation_back_cuda(float *dx, const float *dy, const float *x, mrec_act act, float slope, int64_t n,
                                      mrec_cuda *cu);

/* Softmax over rows, y (R, C) its output: dx = y (dy - sum_c y dy); dx may be
 * dy. causal: rows are queries of (.., C, C) score blocks (row r is query
 * r % C) and columns past the query get dx = 0 without being read, the
 * masked entries of a causal softmax (their y is 0 there anyway). */
void mrec_softmax_rows_back_ref(float *dx, const float *dy, const float *y, int causal, int R, int C);
void mrec_softmax_rows_back_cpu(float *dx, const float *dy, const float *y, int causal, int R, int C, mrec_pool *pool);
mrec_status mrec_softmax_rows_back_cuda(float *dx, const float *dy, const float *y, int causal, int R, int C, mrec_cuda *cu);

/* The backward of mrec_attention (same q, k, v, biases, scale, shapes):
 * dq, dk, dv (B, T, heads * dh) from dout (B, T, heads * dh), overwritten.
 * The probabilities are recomputed from q and k, not saved by the forward:
 * the forward stays the fused inference kernel, and a model keeps
 * (B, heads, T, T) per layer for none of its layers; the price is one more
 * q k^T product and softmax per layer, small beside the MLP at CLIP's
 * lengths (77 tokens, 50 patches). */
void mrec_attention_back_ref(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                             const float *v, const float *mask_bias, const float *head_bias, float scale, int B, int T,
                             int heads, int dh);
size_t mrec_attention_back_scratch_floats(int B, int T, int heads, int dh); /* of mrec_attention_back_cpu */
void mrec_attention_back_cpu(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                             const float *v, const float *mask_bias, const float *head_bias, float scale, int B, int T,
                             int heads, int dh, float *scratch, mrec_pool *pool);
size_t mrec_attention_back_workspace_bytes_cuda(int B, int T, int heads, int dh);
mrec_status mrec_attention_back_cuda(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                                     const float *v, const float *mask_bias, const float *head_bias, float scale, int B,
                                     int T, int heads, int dh, void *work, mrec_cuda *cu);

/* The backward of an embedding lookup (token or position), a deterministic
 * scatter-add: dtable (V, D) row v += the rows of dy (N, D) at the positions
 * of id v, in increasing position order. row_ptr (V + 1) and pos (N) are
 * the batch's index from mrec_index_csr, made once per batch for its ids. */
void mrec_embedding_back_ref(float *dtable, const float *dy, const int64_t *row_ptr, const int32_t *pos, int V, int D);
void mrec_embedding_back_cpu(float *dtable, const float *dy, const int64_t *row_ptr, const int32_t *pos, int V, int D,
                             mrec_pool *pool);
mrec_status mrec_embedding_back_cuda(float *dtable, const float *dy, const int64_t *row_ptr, const int32_t *pos, int V,
                                     int D, mrec_cuda *cu);

/* The backward of mrec_patchify (a stride-P, P x P convolution is patchify
 * then a GEMM; the GEMM's is mrec_linear_back): dimages (B, C, S, S) from
 * dpatches (B, G*G, C*P*P), G = S / P, overwritten; pixels past the last
 * whole patch get 0. */
void mrec_patchify_back_ref(float *dimages, const float *dpatches, int B, int C, int S, int P);
void mrec_patchify_back_cpu(float *dimages, const float *dpatches, int B, int C, int S, int P, mrec_pool *pool);
mrec_status mrec_patchify_back_cuda(float *dimages, const float *dpatches, int B, int C, int S, int P, mrec_cuda *cu);

/* The backward of mrec_class_embed: dcls (H) += sum_b dx[b, 0];
 * dpos (T, H) += sum_b dx[b, t]; either may be NULL. dx (B, T, H). */
void mrec_class_embed_back_ref(float *dcls, float *dpos, const float *dx, int B, int T, int H);
void mrec_class_embed_back_cpu(float *dcls, float *dpos, const float *dx, int B, int T, int H, mrec_pool *pool);
mrec_status mrec_class_embed_back_cuda(float *dcls, float *dpos, const float *dx, int B, int T, int H, mrec_cuda *cu);

/* The backward of gathering one row per sequence (the class token, the
 * end-of-text token): dx (n_rows, H) row rows[b] += dy (B, H) row b, b in
 * order (a row named twice gets both). rows (B) in [0, n_rows). */
void mrec_gather_rows_back_ref(float *dx, const float *dy, const int32_t *rows, int B, int H);
void mrec_gather_rows_back_cpu(float *dx, const float *dy, const int32_t *rows, int B, int H, mrec_pool *pool);
mrec_status mrec_gather_rows_back_cuda(float *dx, const float *dy, const int32_t *rows, int B, int H, mrec_cuda *cu);

/* CLIP's loss on logits (N, N) = exp(logit_scale) img_n txt_n^T (row i an
 * image, column j a text, pair i with i): the mean of the cross-entropies of
 * the rows and of the columns against the diagonal, as HF's clip_loss.
 *   out[0] = loss, out[1] = d loss / d logit_scale = sum(dlogits * logits)
 *   dlogits (N, N) = (softmax_rows(L) + softmax_cols(L) - 2 I) / (2 N)
 * out: two doubles (device memory on the GPU). The image and text gradients
 * are then two GEMMs with exp(logit_scale): dimg = e^s dlogits txt,
 * dtxt = e^s dlogits^T img. work: 3 N doubles (device memory on the GPU). */
void mrec_clip_loss_ref(float *dlogits, double *out, const float *logits, int N);
void mrec_clip_loss_cpu(float *dlogits, double *out, const float *logits, int N, double *work, mrec_pool *pool);
mrec_status mrec_clip_loss_cuda(float *dlogits, double *out, const float *logits, int N, double *work, mrec_cuda *cu);

/* AdamW as torch.optim.AdamW (amsgrad off) on param, m, v, grad (n), step >= 1:
 *   param *= 1 - lr wd  (decoupled decay, before the update)
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   param -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
 * The hyper-parameters are doubles, as torch's are (Python floats): each
 * scalar the update uses (1 - b1, 1 - b2, lr / bias correction, ...) is
 * computed in double and rounded once to float, as torch hands it to its
 * float kernels, so _cpu and _cuda follow torch's float operations. */
void mrec_adamw_ref(float *param, float *m, float *v, const float *grad, double lr, double beta1, double beta2, double eps,
                    double weight_decay, int64_t step, int64_t n);
void mrec_adamw_cpu(float *param, float *m, float *v, const float *grad, double lr, double beta1, double beta2, double eps,
                    double weight_decay, int64_t step, int64_t n, mrec_pool *pool);
mrec_status mrec_adamw_cuda(float *param, float *m, float *v, const float *grad, double lr, double beta1, double beta2,
                            double eps, double weight_decay, int64_t step, int64_t n, mrec_cuda *cu);

/* *out += sum of x (n)^2 in double: on the CPU over fixed 4096-element
 * blocks summed in block order (the same bits whatever the threads), on the
 * GPU in one block's fixed tree. out: one double (device memory on the GPU). */
void mrec_sum_squares_ref(double *out, const float *x, int64_t n);
void mrec_sum_squares_cpu(double *out, const float *x, int64_t n, mrec_pool *pool);
mrec_status mrec_sum_squares_cuda(double *out, const float *x, int64_t n, mrec_cuda *cu);

/* One trainable tensor for the optimizer: its values, moments, gradient,
 * size, and whether weight decay applies (0 for biases, LayerNorms,
 * embeddings, the logit scale: the usual CLIP fine-tuning groups). All
 * pointers on the context's device. */
typedef struct {
    float *param, *m, *v, *grad;
    int64_t n;
    int decay;
} mrec_param_tensor;

typedef struct {
    double lr, beta1, beta2, eps, weight_decay; /* torch's defaults: 1e-3, 0.9, 0.999, 1e-8, 1e-2 */
} mrec_adamw_options;

/* A learning rate with linear warm-up then cosine decay, as transformers'
 * get_cosine_schedule_with_warmup, floored at min_lr:
 *   step < warmup: peak step / warmup;
 *   else min_lr + (peak - min_lr) (1 + cos(pi p)) / 2, p = (step - warmup) / (total - warmup)
 * clamped to [0, 1]. step counts from 0. */
double mrec_lr_warmup_cosine(int64_t step, int64_t warmup, int64_t total, double peak, double min_lr);

/* Entries. */
mrec_status mrec_linear_back(mrec_context *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                             const float *w, int accumulate, int M, int N, int K);
mrec_status mrec_layernorm_stats(mrec_context *ctx, float *mean, float *rstd, const float *in, float eps, int R, int C);
mrec_status mrec_layernorm_back(mrec_context *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                                const float *mean, const float *rstd, const float *w, int accumulate, int R, int C);
mrec_status mrec_activation_back(mrec_context *ctx, float *dx, const float *dy, const float *x, mrec_act act, float slope,
                                 int64_t n);
mrec_status mrec_softmax_rows_back(mrec_context *ctx, float *dx, const float *dy, const float *y, int causal, int R, int C);
/* work: mrec_attention_back_workspace_bytes of memory on the context's device */
size_t mrec_attention_back_workspace_bytes(const mrec_context *ctx, int B, int T, int heads, int dh);
mrec_status mrec_attention_back(mrec_context *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q,
                                const float *k, const float *v, const float *mask_bias, const float *head_bias, float scale,
                                int B, int T, int heads, int dh, void *work);
mrec_status mrec_embedding_back(mrec_context *ctx, float *dtable, const float *dy, const int64_t *row_ptr, const int32_t *pos,
                                int V, int D);
mrec_status mrec_patchify_back(mrec_context *ctx, float *dimages, const float *dpatches, int B, int C, int S, int P);
mrec_status mrec_class_embed_back(mrec_context *ctx, float *dcls, float *dpos, const float *dx, int B, int T, int H);
mrec_status mrec_gather_rows_back(mrec_context *ctx, float *dx, const float *dy, const int32_t *rows, int B, int H);
/* work: 3 N doubles on the context's device; out: two doubles there */
mrec_status mrec_clip_loss(mrec_context *ctx, float *dlogits, double *out, const float *logits, int N, double *work);
mrec_status mrec_adamw(mrec_context *ctx, float *param, float *m, float *v, const float *grad, double lr, double beta1,
                       double beta2, double eps, double weight_decay, int64_t step, int64_t n);
mrec_status mrec_sum_squares(mrec_context *ctx, double *out, const float *x, int64_t n);
/* One AdamW step over every tensor, weight decay where t->decay. */
mrec_status mrec_adamw_step(mrec_context *ctx, const mrec_param_tensor *t, int n_tensors, const mrec_adamw_options *o,
                            double lr, int64_t step);
/* torch.nn.utils.clip_grad_norm_ (norm 2, error_if_nonfinite off): the norm
 * of all gradients together, in double, into *total_norm; when it exceeds
 * max_norm every gradient is scaled by max_norm / (norm + 1e-6). work: one
 * double on the context's device. The GPU reads the norm back: one sync. */
mrec_status mrec_clip_grad_norm(mrec_context *ctx, const mrec_param_tensor *t, int n_tensors, float max_norm,
                                double *total_norm, double *work);

/* GRCN's edge attention (references and CPU variants in kernels/cpu/train.c,
 * GPU ones in kernels/cuda/train.cu): a softmax over each segment of a CSR's
 * entries, torch_geometric.utils.softmax(src, ptr=row_ptr) with its segments
 * the rows, and its backward.
 *   y[p]  = exp(x[p] - max_r) / z_r,  z_r = sum over the row's p of exp(x[p] - max_r)
 *   dx[p] = y[p] (dy[p] - sum over the row's q of y[q] dy[q])
 * for p in [row_ptr[r], row_ptr[r + 1]); z_r and the sums in double, the
 * exponentials in float. x, y, dx, dy: (row_ptr[R]); row_ptr: (R + 1),
 * non-decreasing; an empty row has nothing to write. y may be x and dx may be
 * dy. The CPU sums each row in order, the GPU one warp per row in a fixed
 * shuffle tree: the same bits on every run of one device. */
void mrec_segment_softmax_ref(float *y, const float *x, const int64_t *row_ptr, int R);
void mrec_segment_softmax_cpu(float *y, const float *x, const int64_t *row_ptr, int R, mrec_pool *pool);
mrec_status mrec_segment_softmax_cuda(float *y, const float *x, const int64_t *row_ptr, int R, mrec_cuda *cu);
void mrec_segment_softmax_back_ref(float *dx, const float *dy, const float *y, const int64_t *row_ptr, int R);
void mrec_segment_softmax_back_cpu(float *dx, const float *dy, const float *y, const int64_t *row_ptr, int R, mrec_pool *pool);
mrec_status mrec_segment_softmax_back_cuda(float *dx, const float *dy, const float *y, const int64_t *row_ptr, int R, mrec_cuda *cu);
/* Their entries. */
mrec_status mrec_segment_softmax(mrec_context *ctx, float *y, const float *x, const int64_t *row_ptr, int R);
mrec_status mrec_segment_softmax_back(mrec_context *ctx, float *dx, const float *dy, const float *y, const int64_t *row_ptr, int R);

/* ---- depthwise convolution and the channel ops of squeeze-excite (NCHW) ----
 * EfficientNet's MBConv blocks: a depthwise conv with its own padding on each
 * side (TensorFlow's "same" for stride 2 pads one more at the bottom and right
 * than at the top and left), then a squeeze-excite that averages each channel
 * and rescales it. One output channel per input channel, so no GEMM: a direct
 * loop over each plane (kernels/cpu/depthwise.c, kernels/cuda/depthwise.cu). */
typedef struct {
    int N, C, H, W;          /* input (N, C, H, W), output (N, C, Ho, Wo) */
    int KH, KW, stride_h, stride_w;
    int pad_top, pad_bottom, pad_left, pad_right; /* zeros around the input */
} mrec_depthwise_shape;
/* Ho = (H + pad_top + pad_bottom - KH) / stride_h + 1 (Wo likewise); 0 if the
 * shape is invalid (a size or stride < 1, a negative pad, a kernel wider than
 * the padded input). */
int mrec_depthwise_out_h(const mrec_depthwise_shape *s);
int mrec_depthwise_out_w(const mrec_depthwise_shape *s);
/* out (N, C, Ho, Wo) = depthwise conv of in (N, C, H, W) with weight (C, 1, KH, KW) + bias (C, or NULL) */
void mrec_depthwise_conv2d_ref(float *out, const float *in, const float *weight, const float *bias,
                               const mrec_depthwise_shape *s);
void mrec_depthwise_conv2d_cpu(float *out, const float *in, const float *weight, const float *bias,
                               const mrec_depthwise_shape *s, mrec_pool *pool);
mrec_status mrec_depthwise_conv2d_cuda(float *out, const float *in, const float *weight, const float *bias,
                                       const mrec_depthwise_shape *s, mrec_cuda *cu);
mrec_status mrec_depthwise_conv2d(mrec_context *ctx, float *out, const float *in, const float *weight,
                                  const float *bias, const mrec_depthwise_shape *s);
/* The same, then act (slope 0) on every output, and with means (N * C, or NULL) each output plane's mean after
 * that (squeeze-excite's squeeze): the bits of mrec_depthwise_conv2d, mrec_activation and mrec_row_mean in turn,
 * with swish and the means taken while the planes are in cache on the CPU's AVX-512 path (one write of out,
 * no second read), swish in the kernel on the GPU. */
void mrec_depthwise_conv2d_act_cpu(float *out, const float *in, const float *weight, const float *bias, mrec_act act,
                                   float *means, const mrec_depthwise_shape *s, mrec_pool *pool);
/* The same in a bf16 context (mrec_depthwise_conv2d_act with precision bf16 on the CPU): where the AVX-512 path
 * copies a plane into a padded buffer (output rows of up to 80 columns, stride 1 or 2, KH 2 to 7), the plane and
 * the weights rounded to bf16 (nearest even, as autocast rounds them) and their products summed in float by
 * VDPBF16PS, a pair of kernel rows at a time; wider planes as mrec_depthwise_conv2d_act_cpu. Refused without
 * AVX-512 BF16. */
mrec_status mrec_depthwise_conv2d_act_bf16_cpu(float *out, const float *in, const float *weight, const float *bias, mrec_act act,
                                               float *means, const mrec_depthwise_shape *s, mrec_pool *pool);
mrec_status mrec_depthwise_conv2d_act_cuda(float *out, const float *in, const float *weight, const float *bias, mrec_act act,
                                           float *means, const mrec_depthwise_shape *s, mrec_cuda *cu);
mrec_status mrec_depthwise_conv2d_act(mrec_context *ctx, float *out, const float *in, const float *weight,
                                      const float *bias, mrec_act act, float *means, const mrec_depthwise_shape *s);
/* EfficientNet's expansion handed to its depthwise conv in bf16, as autocast hands it on: the same values the
 * bf16 depthwise conv rounds its float input to, in half the bytes, and no rounding pass in the conv (written
 * once by the GEMM's store, read once as pair rows). A bf16 context on a CPU with AVX-512 BF16 and no AMX
 * (mrec_bf16_planes_native; a GPU runs its own route). mrec_conv2d_to_bf16: out = mrec_conv2d_act's output (act
 * an mrec_act or MREC_GEMM_NO_ACT, beta 0) rounded to nearest even as VCVTNEPS2BF16 rounds, its bits where K
 * is at most 512; for K in (512, 1024] each output's sum runs in one chain where the float route adds blocks of
 * 512 (within a bf16 step of it); through a float copy where the bf16 GEMM's store does not take the shape
 * (groups, K past 1024, an activation other than ReLU and swish).
 * mrec_depthwise_conv2d_act_from_bf16: mrec_depthwise_conv2d_act in a bf16 context on a bf16 input, the bits
 * it gives on that input widened (where its pair rows do not take the shape, its float path on each plane
 * widened in turn; a float copy of the whole input for planes past 32768 values or off the AVX-512 path). */
int mrec_bf16_planes_native(const mrec_context *ctx);
void mrec_conv2d_to_bf16_ref(uint16_t *out, const float *in, const float *weight, const float *bias, int act,
                             const mrec_conv2d_shape *s);
void mrec_depthwise_conv2d_act_from_bf16_ref(float *out, const uint16_t *in, const float *weight, const float *bias,
                                             mrec_act act, float *means, const mrec_depthwise_shape *s);
mrec_status mrec_conv2d_to_bf16_cpu(uint16_t *out, const float *in, const float *weight, const float *bias, int act,
                                    const mrec_conv2d_shape *s, mrec_packs *packs, mrec_pool *pool);
mrec_status mrec_conv2d_to_bf16(mrec_context *ctx, uint16_t *out, const float *in, const float *weight, const float *bias, int act,
                                const mrec_conv2d_shape *s);
mrec_status mrec_depthwise_conv2d_act_from_bf16_cpu(float *out, const uint16_t *in, const float *weight, const float *bias,
                                                    mrec_act act, float *means, const mrec_depthwise_shape *s, mrec_pool *pool);
mrec_status mrec_depthwise_conv2d_act_from_bf16(mrec_context *ctx, float *out, const uint16_t *in, const float *weight,
                                                const float *bias, mrec_act act, float *means, const mrec_depthwise_shape *s);
/* out (R) = the mean of each row of in (R, HW): a global average pool of (N, C, HW) with R = N * C. */
void mrec_row_mean_ref(float *out, const float *in, int R, int HW);
void mrec_row_mean_cpu(float *out, const float *in, int R, int HW, mrec_pool *pool);
mrec_status mrec_row_mean_cuda(float *out, const float *in, int R, int HW, mrec_cuda *cu);
mrec_status mrec_row_mean(mrec_context *ctx, float *out, const float *in, int R, int HW);
/* out (R, HW) = in (R, HW) * sigmoid(gate (R)), row by row (in place allowed):
 * squeeze-excite's rescale, the sigmoid taken once per row. */
void mrec_sigmoid_gate_rows_ref(float *out, const float *in, const float *gate, int R, int HW);
void mrec_sigmoid_gate_rows_cpu(float *out, const float *in, const float *gate, int R, int HW, mrec_pool *pool);
mrec_status mrec_sigmoid_gate_rows_cuda(float *out, const float *in, const float *gate, int R, int HW, mrec_cuda *cu);
mrec_status mrec_sigmoid_gate_rows(mrec_context *ctx, float *out, const float *in, const float *gate, int R, int HW);
#endif
