/* train.cu: what the recommenders' training and evaluation need on the GPU
 * beside the dense ops: dropout from the shared Philox stream, the
 * transposed index of a batch's ids (for deterministic scatter-adds of
 * gradient rows), BPR's gathered scores and loss, and the evaluation mask.
 *
 * Nothing here uses float atomics: every sum has a fixed order, so the same
 * inputs give the same bits on every run.
 */
#include "cuda_internal.h"

#include <cub/device/device_radix_sort.cuh>
#include <math.h>

#include "../philox.h"

#define THREADS 256

__global__ static void dropout_kernel(float *out, const float *in, float p, float scale, uint64_t seed, uint64_t offset,
                                      int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = mrec_philox_uniform((uint64_t)i, offset, seed) >= p ? in[i] * scale : 0.0f;
}

/* out, in: (n) */
extern "C" mrec_status mrec_dropout_cuda(float *out, const float *in, float p, uint64_t seed, uint64_t offset, int64_t n,
                                         mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    if (!(p >= 0.0f && p < 1.0f)) return mrec_fail(MREC_ERR_ARG, "dropout: p %g is outside [0, 1)", p);
    dropout_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(out, in, p, (float)(1.0 / (1.0 - p)), seed, offset, n);
    return MREC_CUDA_LAUNCHED("dropout");
}

/* ---- the transposed index of a batch --------------------------------------------- */

/* bad NULL: the ids were checked on the host */
__global__ static void iota_check(int32_t *pos, const int32_t *ids, int N, int V, int *bad) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < N; i += gridDim.x * blockDim.x) {
        pos[i] = i;
        if (bad && (ids[i] < 0 || ids[i] >= V)) atomicMin(bad, i); /* an int minimum: order-free */
    }
}

/* row_ptr[v] = the first sorted position whose id is >= v */
__global__ static void row_starts(int64_t *row_ptr, const int32_t *sorted, int N, int V) {
    for (int v = blockIdx.x * blockDim.x + threadIdx.x; v <= V; v += gridDim.x * blockDim.x) {
        int lo = 0, hi = N;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (sorted[mid] < v) lo = mid + 1;
            else hi = mid;
        }
        row_ptr[v] = lo;
    }
}

static size_t align256(size_t n) { return (n + 255) / 256 * 256; }

static size_t sort_bytes(int N) {
    size_t bytes = 0;
    cub::DeviceRadixSort::SortPairs(NULL, bytes, (const int32_t *)NULL, (int32_t *)NULL, (const int32_t *)NULL,
                                    (int32_t *)NULL, N);
    return bytes;
}

/* work holds the sorted keys, the identity positions and cub's scratch */
extern "C" mrec_status mrec_index_csr_workspace_bytes_cuda(size_t *bytes, int N, int V) {
    (void)V;
    *bytes = N > 0 ? 2 * align256(sizeof(int32_t) * (size_t)N) + align256(sort_bytes(N)) : 0;
    return MREC_OK;
}

/* row_ptr: (V + 1); pos: (N); ids: (N); checked: the caller checked the ids, so nothing waits on the device */
static mrec_status index_csr(int64_t *row_ptr, int32_t *pos, const int32_t *ids, int N, int V, void *work, size_t work_bytes,
                             int checked, mrec_cuda *cu) {
    if (V < 0 || N < 0) return mrec_fail(MREC_ERR_ARG, "index: %d ids over %d rows", N, V);
    size_t need = 0;
    mrec_index_csr_workspace_bytes_cuda(&need, N, V);
    if (need > work_bytes) return mrec_fail(MREC_ERR_ARG, "index: workspace of %zu bytes, %zu needed", work_bytes, need);
    if (N == 0) {
        row_starts<<<mrec_grid((int64_t)V + 1, THREADS), THREADS, 0, cu->stream>>>(row_ptr, NULL, 0, V);
        return MREC_CUDA_LAUNCHED("index row starts");
    }
    int32_t *keys = (int32_t *)work, *iota = (int32_t *)((char *)work + align256(sizeof(int32_t) * (size_t)N));
    void *scratch = (char *)work + 2 * align256(sizeof(int32_t) * (size_t)N);
    size_t scratch_bytes = sort_bytes(N);
    int bad = N, *flag = checked ? NULL : cu->flag; /* the first bad position, read back unless checked */
    mrec_status st = MREC_OK;
    if (flag && (st = mrec_cuda_check(cudaMemcpyAsync(flag, &bad, sizeof bad, cudaMemcpyHostToDevice, cu->stream), "index")))
        return st;
    iota_check<<<mrec_grid(N, THREADS), THREADS, 0, cu->stream>>>(iota, ids, N, V, flag);
    if ((st = MREC_CUDA_LAUNCHED("index check"))) return st;
    if (flag) {
        st = mrec_cuda_check(cudaMemcpyAsync(&bad, flag, sizeof bad, cudaMemcpyDeviceToHost, cu->stream), "index");
        if (!st) st = mrec_cuda_check(cudaStreamSynchronize(cu->stream), "index");
        if (st) return st;
    }
    if (bad < N) {
        int32_t id = 0;
        st = mrec_cuda_check(cudaMemcpy(&id, ids + bad, sizeof id, cudaMemcpyDeviceToHost), "index");
        return st ? st : mrec_fail(MREC_ERR_ARG, "index: id %d at position %d is outside [0, %d)", id, bad, V);
    }
    /* LSD radix sort is stable: equal ids keep their positions in order. Only
     * the bits that can be set are sorted. */
    int bits = 1;
    while (bits < 31 && (1 << bits) < V) bits++;
    st = mrec_cuda_check(cub::DeviceRadixSort::SortPairs(scratch, scratch_bytes, ids, keys, iota, pos, N, 0, bits,
                                                         cu->stream),
                         "index sort");
    if (st) return st;
    row_starts<<<mrec_grid((int64_t)V + 1, THREADS), THREADS, 0, cu->stream>>>(row_ptr, keys, N, V);
    return MREC_CUDA_LAUNCHED("index row starts");
}

extern "C" mrec_status mrec_index_csr_cuda(int64_t *row_ptr, int32_t *pos, const int32_t *ids, int N, int V, void *work,
                                           size_t work_bytes, mrec_cuda *cu) {
    return index_csr(row_ptr, pos, ids, N, V, work, work_bytes, 0, cu);
}

extern "C" mrec_status mrec_index_csr_checked_cuda(int64_t *row_ptr, int32_t *pos, const int32_t *ids, int N, int V, void *work,
                                                   size_t work_bytes, mrec_cuda *cu) {
    return index_csr(row_ptr, pos, ids, N, V, work, work_bytes, 1, cu);
}

/* ---- BPR ----------------------------------------------------------------------- */

/* One warp per pair; lanes over d, then a fixed shuffle tree. Pairs in a
 * grid-stride loop (the grid is capped), the same for the whole warp, so the
 * shuffles always have all 32 lanes. */
__global__ static void gather_dot_kernel(float *out, const float *A, const int32_t *ia, const float *B, const int32_t *ib,
                                         int n, int d) {
    int64_t warps = (int64_t)gridDim.x * blockDim.x / 32;
    int lane = threadIdx.x & 31;
    for (int64_t b = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; b < n; b += warps) {
        const float *x = A + (size_t)ia[b] * d, *y = B + (size_t)ib[b] * d;
        float s = 0.0f;
        for (int k = lane; k < d; k += 32) s += x[k] * y[k];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) out[b] = s;
    }
}

/* out: (n); A: (Ra, d); B: (Rb, d); ia, ib: (n), valid rows (the sampler's) */
extern "C" mrec_status mrec_gather_dot_cuda(float *out, const float *A, const int32_t *ia, const float *B,
                                            const int32_t *ib, int n, int d, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    gather_dot_kernel<<<mrec_grid((int64_t)n * 32, THREADS), THREADS, 0, cu->stream>>>(out, A, ia, B, ib, n, d);
    return MREC_CUDA_LAUNCHED("gather_dot");
}

/* One warp per output row, lanes over d; each sum starts at 0 and takes its
 * terms in the order of mrec_bpr_rows_ref, each a fused multiply-add (as
 * spmm_kernel's sums are), so the rows are those of a sparse product over
 * the same entries on this device. */
struct bpr_coef {
    float c[3];
    int on;
};

/* coef_at: the factors in device memory (mrec_bpr_batch_loss's), read in place of coef's, 0 for the parts not in
 * `parts` */
__global__ static void bpr_rows_kernel(float *out, const float *T, const int32_t *ids, const float *dx, bpr_coef coef,
                                       const float *coef_at, int parts, int n, int d) {
    int64_t warps = (int64_t)gridDim.x * blockDim.x / 32, rows = 3 * (int64_t)n;
    int lane = threadIdx.x & 31;
    if (coef_at)
        for (int p = 0; p < 3; p++) coef.c[p] = parts >> p & 1 ? coef_at[p] : 0.0f;
    for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; r < rows; r += warps) {
        int b = (int)(r % n), part = (int)(r / n);
        const float *tu = T + (size_t)ids[b] * d, *own = T + (size_t)ids[r] * d;
        const float *ti = T + (size_t)ids[n + b] * d, *tj = T + (size_t)ids[2 * n + b] * d;
        float g = dx ? dx[b] : 0.0f;
        for (int k = lane; k < d; k += 32) {
            float s = 0.0f;
            if (part == 0) {
                if (coef.on) s = fmaf(coef.c[0], tu[k], s);
                if (dx) s = fmaf(g, ti[k], s), s = fmaf(-g, tj[k], s);
            } else {
                if (dx) s = fmaf(part == 1 ? g : -g, tu[k], s);
                if (coef.on) s = fmaf(coef.c[part], own[k], s);
            }
            out[(size_t)r * d + k] = s;
        }
    }
}

static mrec_status bpr_rows(float *out, const float *T, const int32_t *ids, const float *dx, const float *coef,
                            const float *coef_at, int parts, int n, int d, mrec_cuda *cu) {
    if (n <= 0 || d <= 0) return MREC_OK;
    bpr_coef c = {{0, 0, 0}, coef != NULL || coef_at != NULL};
    if (coef) c.c[0] = coef[0], c.c[1] = coef[1], c.c[2] = coef[2];
    bpr_rows_kernel<<<mrec_grid(3 * (int64_t)n * 32, THREADS), THREADS, 0, cu->stream>>>(out, T, ids, dx, c, coef_at, parts, n, d);
    return MREC_CUDA_LAUNCHED("bpr_rows");
}

extern "C" mrec_status mrec_bpr_rows_cuda(float *out, const float *T, const int32_t *ids, const float *dx, const float *coef,
                                          int n, int d, mrec_cuda *cu) {
    return bpr_rows(out, T, ids, dx, coef, NULL, MREC_BPR_PARTS_ALL, n, d, cu);
}

extern "C" mrec_status mrec_bpr_rows_at_cuda(float *out, const float *T, const int32_t *ids, const float *dx,
                                             const float *coef, int parts, int n, int d, mrec_cuda *cu) {
    return bpr_rows(out, T, ids, dx, NULL, coef, parts, n, d, cu);
}

/* Sums each of the block's four partial sums in one fixed tree; thread 0 gets the totals. */
__device__ static void block_sum4(double (*part)[4], double v[4]) {
    for (int q = 0; q < 4; q++) part[threadIdx.x][q] = v[q];
    __syncthreads();
    for (int w = THREADS / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w)
            for (int q = 0; q < 4; q++) part[threadIdx.x][q] += part[threadIdx.x + w][q];
        __syncthreads();
    }
    for (int q = 0; q < 4; q++) v[q] = part[0][q];
}

/* One block: each thread takes its strided pairs, the loss's and the squared
 * norms' partial sums in double, then a fixed tree; thread 0 finishes the
 * formulas of mrec_bpr_batch_loss_cpu (each element's dx with its double
 * arithmetic; CUDA's exp and log are within an ulp of the host's). */
__global__ static void bpr_batch_loss_kernel(float *dx, float *coef, double *loss, const float *dots, int n,
                                             mrec_bpr_spec spec) {
    __shared__ double part[THREADS][4];
    const float *pos = dots, *neg = dots + n, *sq = dots + 2 * (size_t)n;
    double v[4] = {0, 0, 0, 0};
    for (int k = threadIdx.x; k < n; k += THREADS) {
        double x = (double)pos[k] - neg[k];
        float g;
        if (spec.form == MREC_BPR_CLAMPED) {
            int flat = x < -80.0;
            x = fmin(fmax(x, -80.0), 1e8);
            v[0] += x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x));
            g = flat ? 0.0f : (float)(-1.0 / (1.0 + exp(x)) / n);
        } else if (spec.form == MREC_BPR_SOFTPLUS || spec.form == MREC_BPR_SOFTPLUS_SUM) {
            v[0] += x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x));
            g = spec.form == MREC_BPR_SOFTPLUS ? (float)(-1.0 / (1.0 + exp(x)) / n) : (float)(-1.0 / (1.0 + exp(x)));
        } else {
            double eps = spec.form == MREC_BPR_LOG_SIGMOID_1E5 ? 1e-5 : 1e-10, sig = 1.0 / (1.0 + exp(-x));
            v[0] += -log(eps + sig);
            g = (float)(-(sig * (1.0 - sig)) / (eps + sig) / n);
        }
        dx[k] = spec.weight != 1.0f ? __fmul_rn(spec.weight, g) : g;
        if (spec.reg_form == MREC_BPR_REG_SQUARED_ALL) {
            v[1] += sq[k], v[1] += sq[n + k], v[1] += sq[2 * (size_t)n + k];
        } else if (spec.reg_form == MREC_BPR_REG_PAIRS) {
            v[1] += 2.0 * sq[k] + (double)sq[n + k] + (double)sq[2 * (size_t)n + k]; /* 2x is exact: fused or not */
        } else if (spec.reg_form != MREC_BPR_REG_NONE) {
            v[1] += sq[k], v[2] += sq[n + k], v[3] += sq[2 * (size_t)n + k];
        }
    }
    block_sum4(part, v);
    if (threadIdx.x) return;
    float reg = spec.reg;
    double l = spec.form == MREC_BPR_SOFTPLUS_SUM ? v[0] : v[0] / n;
    if (spec.weight != 1.0f) l = spec.weight * l;
    if (spec.reg_form == MREC_BPR_REG_NORMS || spec.reg_form == MREC_BPR_REG_SQUARED) {
        double nu = sqrt(v[1]), ni = sqrt(v[2]), nj = sqrt(v[3]);
        if (spec.reg_form == MREC_BPR_REG_NORMS) {
            coef[0] = nu > 0 ? (float)(reg / n / nu) : 0, coef[1] = ni > 0 ? (float)(reg / n / ni) : 0;
            coef[2] = nj > 0 ? (float)(reg / n / nj) : 0;
            l += reg * (nu + ni + nj) / n;
        } else {
            coef[0] = coef[1] = coef[2] = reg / n; /* the squares unfused, as the host rounds them */
            l += reg * __dadd_rn(__dadd_rn(__dmul_rn(nu, nu), __dmul_rn(ni, ni)), __dmul_rn(nj, nj)) / 2 / n;
        }
    } else if (spec.reg_form == MREC_BPR_REG_SQUARED_ALL) {
        coef[0] = coef[1] = coef[2] = reg / spec.reg_div;
        l += reg * v[1] / 2 / spec.reg_div;
    } else if (spec.reg_form == MREC_BPR_REG_NORMS_UI) {
        double nu = sqrt(v[1]), ni = sqrt(v[2]);
        coef[0] = nu > 0 ? (float)(reg / n / nu) : 0, coef[1] = ni > 0 ? (float)(reg / n / ni) : 0, coef[2] = 0;
        l += reg * (nu + ni) / n;
    } else if (spec.reg_form == MREC_BPR_REG_PAIRS) {
        double half = 2.0 * spec.reg_div;
        coef[0] = (float)(4.0 * reg / half), coef[1] = coef[2] = (float)(2.0 * reg / half);
        l += reg * (v[1] / half);
    }
    *loss = spec.accumulate ? *loss + l : l;
}

/* dx (n), coef (3), loss (1), dots (5n): device memory */
extern "C" mrec_status mrec_bpr_batch_loss_cuda(float *dx, float *coef, double *loss, const float *dots, int n,
                                                const mrec_bpr_spec *spec, mrec_cuda *cu) {
    if (n <= 0) return mrec_fail(MREC_ERR_ARG, "bpr loss of an empty batch");
    bpr_batch_loss_kernel<<<1, THREADS, 0, cu->stream>>>(dx, coef, loss, dots, n, *spec);
    return MREC_CUDA_LAUNCHED("bpr_batch_loss");
}

/* One block: each thread's strided values, then a fixed tree; thread 0 adds the term. */
__global__ static void loss_term_kernel(double *loss, const double *x, int n, float scale, double div, const int32_t *live) {
    __shared__ double part[THREADS][4];
    if (live && (n = *live) <= 0) return; /* mrec_loss_term_at: the count in memory, nothing for none */
    if (live) div = n;
    double v[4] = {0, 0, 0, 0};
    for (int r = threadIdx.x; r < n; r += THREADS) v[0] += x[r];
    block_sum4(part, v);
    if (threadIdx.x == 0) *loss += scale * v[0] / div;
}

extern "C" mrec_status mrec_loss_term_cuda(double *loss, const double *x, int n, float scale, double div, mrec_cuda *cu) {
    loss_term_kernel<<<1, THREADS, 0, cu->stream>>>(loss, x, n, scale, div, NULL);
    return MREC_CUDA_LAUNCHED("loss_term");
}

/* x (at most its capacity), *live: device memory */
extern "C" mrec_status mrec_loss_term_at_cuda(double *loss, const double *x, const int32_t *live, float scale, mrec_cuda *cu) {
    loss_term_kernel<<<1, THREADS, 0, cu->stream>>>(loss, x, 0, scale, 1, live);
    return MREC_CUDA_LAUNCHED("loss_term");
}

/* One block, as loss_term_kernel, over floats: BM3's cosine loss, or (norm) the regularizer of one table. */
__global__ static void loss_floats_kernel(double *loss, float *coef, const float *x, int n, float w, int div, int norm) {
    __shared__ double part[THREADS][4];
    double v[4] = {0, 0, 0, 0};
    for (int r = threadIdx.x; r < n; r += THREADS) v[0] += x[r];
    block_sum4(part, v);
    if (threadIdx.x) return;
    if (!norm) {
        *loss += w * (1.0 - v[0] / n);
        return;
    }
    double s = sqrt(v[0]);
    *coef = s > 0 ? (float)(w / div / s) : 0.0f;
    *loss += w * s / div;
}

extern "C" mrec_status mrec_loss_cos_cuda(double *loss, const float *cos, int n, float weight, mrec_cuda *cu) {
    loss_floats_kernel<<<1, THREADS, 0, cu->stream>>>(loss, NULL, cos, n, weight, 1, 0);
    return MREC_CUDA_LAUNCHED("loss_cos");
}

extern "C" mrec_status mrec_loss_norm_cuda(float *coef, double *loss, const float *sq, int n, float reg, int div, mrec_cuda *cu) {
    loss_floats_kernel<<<1, THREADS, 0, cu->stream>>>(loss, coef, sq, n, reg, div, 1);
    return MREC_CUDA_LAUNCHED("loss_norm");
}

/* A table's squared norm runs to a million entries: P blocks (P from n alone, so the sums' tree is the same on
 * every GPU) each sum a contiguous share's products in double into cu->dot_part, then loss_term_kernel adds the P
 * sums in a fixed tree. */
__global__ static void loss_dot_parts_kernel(double *part, const float *x, const float *y, int64_t n, int64_t share) {
    __shared__ double tree[THREADS][4];
    int64_t lo = blockIdx.x * share, hi = lo + share < n ? lo + share : n;
    double v[4] = {0, 0, 0, 0};
    for (int64_t k = lo + threadIdx.x; k < hi; k += THREADS) v[0] += __dmul_rn((double)x[k], (double)y[k]);
    block_sum4(tree, v);
    if (threadIdx.x == 0) part[blockIdx.x] = v[0];
}

extern "C" mrec_status mrec_loss_dot_cuda(double *loss, const float *x, const float *y, int64_t n, float scale, double div,
                                          mrec_cuda *cu) {
    int64_t P = (n + 8191) / 8192;
    P = P < 1 ? 1 : P > MREC_DOT_PARTS ? MREC_DOT_PARTS : P;
    int64_t share = (n + P - 1) / P;
    loss_dot_parts_kernel<<<(unsigned)P, THREADS, 0, cu->stream>>>(cu->dot_part, x, y, n, share);
    mrec_status st = MREC_CUDA_LAUNCHED("loss dot (parts)");
    if (st) return st;
    loss_term_kernel<<<1, THREADS, 0, cu->stream>>>(loss, cu->dot_part, (int)P, scale, div, NULL); /* the shares' sums, a term */
    return MREC_CUDA_LAUNCHED("loss dot");
}

/* One block: the eight rows' sums (two passes of block_sum4), then thread 0 finishes as mrec_moment_align_cpu and
 * every thread spreads the betas over rows 0-3, read by then. */
__global__ static void moment_align_kernel(float *alpha, float *sums, double *loss, int W, int64_t n, float w) {
    __shared__ double part[THREADS][4];
    __shared__ float beta[4];
    double row[8];
    for (int h = 0; h < 2; h++) {
        double v[4] = {0, 0, 0, 0};
        for (int c = threadIdx.x; c < W; c += THREADS)
            for (int q = 0; q < 4; q++) v[q] += sums[(size_t)(4 * h + q) * W + c];
        if (h) __syncthreads(); /* every thread has read the first pass's totals */
        block_sum4(part, v);
        for (int q = 0; q < 4; q++) row[4 * h + q] = v[q];
    }
    if (threadIdx.x == 0) {
        double mean[4], var[4], total = 0;
        for (int a = 0; a < 4; a++) {
            mean[a] = row[2 * a] / (double)n;
            var[a] = (row[2 * a + 1] - __dmul_rn(row[2 * a], row[2 * a]) / (double)n) / (double)(n - 1);
        }
        for (int a = 0; a < 4; a++)
            for (int b = a + 1; b < 4; b++) total += fabs(var[a] - var[b]) + fabs(mean[a] - mean[b]);
        *loss += w * total;
        for (int a = 0; a < 4; a++) {
            double cv = 0, cm = 0;
            for (int b = 0; b < 4; b++)
                if (b != a) cv += (var[a] > var[b]) - (var[a] < var[b]), cm += (mean[a] > mean[b]) - (mean[a] < mean[b]);
            double al = w * cv * 2.0 / (double)(n - 1), be = __dadd_rn(w * cm / (double)n, -__dmul_rn(al, mean[a]));
            alpha[a] = (float)al, beta[a] = (float)be;
        }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < 4 * W; e += THREADS) sums[e] = beta[e / W];
}

extern "C" mrec_status mrec_moment_align_cuda(float *alpha, float *sums, double *loss, int W, int64_t n, float w,
                                              mrec_cuda *cu) {
    moment_align_kernel<<<1, THREADS, 0, cu->stream>>>(alpha, sums, loss, W, n, w);
    return MREC_CUDA_LAUNCHED("moment_align");
}

/* One thread: the batches' losses in batch order, as the CPU adds them. */
__global__ static void loss_add_kernel(mrec_loss_sum *sum, const double *loss) {
    double l = *loss;
    if (!isfinite(l) && sum->bad < 0) sum->bad = sum->batches, sum->bad_loss = l;
    sum->sum += l;
    sum->batches++;
}

extern "C" mrec_status mrec_loss_add_cuda(mrec_loss_sum *sum, const double *loss, mrec_cuda *cu) {
    loss_add_kernel<<<1, 1, 0, cu->stream>>>(sum, loss);
    return MREC_CUDA_LAUNCHED("loss_add");
}

/* ---- evaluation ------------------------------------------------------------------ */

/* One warp per user row; lanes over the user's masked items. Rows in a
 * grid-stride loop: the grid is capped. */
__global__ static void mask_rows_kernel(float *scores, const int64_t *row_ptr, const int32_t *col, int u0, int R, int C) {
    int64_t warps = (int64_t)gridDim.x * blockDim.x / 32;
    int lane = threadIdx.x & 31;
    for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; r < R; r += warps)
        for (int64_t p = row_ptr[u0 + r] + lane; p < row_ptr[u0 + r + 1]; p += 32) {
            int c = col[p];
            if (c >= 0 && c < C) scores[(size_t)r * C + c] = -INFINITY;
        }
}

/* scores: (R, C); row_ptr, col: the mask's CSR over all users */
extern "C" mrec_status mrec_mask_rows_cuda(float *scores, const int64_t *row_ptr, const int32_t *col, int u0, int R, int C,
                                           mrec_cuda *cu) {
    if (R <= 0) return MREC_OK;
    mask_rows_kernel<<<mrec_grid((int64_t)R * 32, THREADS), THREADS, 0, cu->stream>>>(scores, row_ptr, col, u0, R, C);
    return MREC_CUDA_LAUNCHED("mask_rows");
}

/* One thread a user of the block: its metrics into work (R, MREC_RANK_METRICS, n_k), as the CPU's. rel by value:
 * its pointers are the device's. */
__global__ static void rank_users_kernel(double *work, const int32_t *top, int u0, int R, mrec_rank_relevance rel) {
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= R || rel.n_rel[u0 + b] <= 0) return;
    mrec_rank_user(work + (size_t)b * MREC_RANK_METRICS * rel.n_k, top + (size_t)b * rel.k[rel.n_k - 1], &rel, u0 + b);
}

/* One thread a (metric, cut-off): the block's users added in user order, as the CPU adds them. The loads are
 * independent of the sums, so the unrolled loop keeps several in flight behind the chain of adds. */
__global__ static void rank_sum_kernel(mrec_rank_sums *sums, const double *work, const int32_t *n_rel, int u0, int R, int n_k) {
    int t = threadIdx.x, per = MREC_RANK_METRICS * n_k;
    if (t >= per) return;
    double s = sums->sum[t / n_k][t % n_k];
    int64_t users = 0;
#pragma unroll 8
    for (int b = 0; b < R; b++)
        if (n_rel[u0 + b] > 0) s = __dadd_rn(s, work[(size_t)b * per + t]), users++;
    sums->sum[t / n_k][t % n_k] = s;
    if (t == 0) sums->users += users;
}

extern "C" mrec_status mrec_rank_metrics_cuda(mrec_rank_sums *sums, double *work, const int32_t *top, int u0, int R,
                                              const mrec_rank_relevance *rel, mrec_cuda *cu) {
    if (R <= 0) return MREC_OK;
    rank_users_kernel<<<(R + 127) / 128, 128, 0, cu->stream>>>(work, top, u0, R, *rel);
    mrec_status st = MREC_CUDA_LAUNCHED("rank_metrics users");
    if (st) return st;
    rank_sum_kernel<<<1, MREC_RANK_METRICS * MREC_RANK_MAX_K, 0, cu->stream>>>(sums, work, rel->n_rel, u0, R, rel->n_k);
    return MREC_CUDA_LAUNCHED("rank_metrics sums");
}

/* ---- NGCF's layers: hashed dropout, LeakyReLU's backward, row copies, L2 backward ---- */

/* SplitMix64's finalizer: recsys' mrec_mix64 and train.c's copy, on the device */
__device__ static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* key_at: the key in device memory, read when the kernel runs (a replayed graph's step takes its own), or NULL for key */
__global__ static void hash_dropout_kernel(float *out, const float *x, const int32_t *idx, int64_t n, float p, const uint64_t *key_at,
                                           uint64_t key) {
    if (key_at) key = *key_at;
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (int64_t)gridDim.x * blockDim.x) {
        uint64_t e = idx ? (uint64_t)idx[t] : (uint64_t)t;
        float u = (float)((mix64(key ^ (e * 0x9E3779B97F4A7C15ull)) >> 40) * (1.0 / 16777216.0));
        out[t] = u < p ? 0.0f : x ? __fdiv_rn(x[t], 1.0f - p) : __fdiv_rn(1.0f, 1.0f - p);
    }
}

/* out, x, idx: (n) */
extern "C" mrec_status mrec_hash_dropout_cuda(float *out, const float *x, const int32_t *idx, int64_t n, float p, uint64_t key,
                                              mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    hash_dropout_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(out, x, idx, n, p, NULL, key);
    return MREC_CUDA_LAUNCHED("hash dropout");
}

extern "C" mrec_status mrec_hash_dropout_at_cuda(float *out, const float *x, const int32_t *idx, int64_t n, float p, const uint64_t *key,
                                                 mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    hash_dropout_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(out, x, idx, n, p, key, 0);
    return MREC_CUDA_LAUNCHED("hash dropout");
}

/* the dropout's mask as hash_dropout_kernel draws it, then the layer's output; no contraction, as the ops it replaces */
__global__ static void ngcf_combine_kernel(float *e, float *mask, const float *z1, const float *z2, float slope, float p,
                                           const uint64_t *key_at, uint64_t key, int64_t n) {
    if (key_at) key = *key_at;
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (int64_t)gridDim.x * blockDim.x) {
        float u = (float)((mix64(key ^ ((uint64_t)t * 0x9E3779B97F4A7C15ull)) >> 40) * (1.0 / 16777216.0));
        float m = u < p ? 0.0f : __fdiv_rn(1.0f, 1.0f - p);
        float a = z1[t] >= 0.0f ? z1[t] : __fmul_rn(z1[t], slope), b = z2[t] >= 0.0f ? z2[t] : __fmul_rn(z2[t], slope);
        mask[t] = m, e[t] = __fmul_rn(__fadd_rn(a, b), m);
    }
}

/* e, mask, z1, z2: (n) */
extern "C" mrec_status mrec_ngcf_combine_cuda(float *e, float *mask, const float *z1, const float *z2, float slope, float p,
                                              uint64_t key, int64_t n, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    ngcf_combine_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(e, mask, z1, z2, slope, p, NULL, key, n);
    return MREC_CUDA_LAUNCHED("ngcf combine");
}

extern "C" mrec_status mrec_ngcf_combine_at_cuda(float *e, float *mask, const float *z1, const float *z2, float slope, float p,
                                                 const uint64_t *key, int64_t n, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    ngcf_combine_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(e, mask, z1, z2, slope, p, key, 0, n);
    return MREC_CUDA_LAUNCHED("ngcf combine");
}

__global__ static void ngcf_combine_back_kernel(float *dz1, float *dz2, const float *de, const float *mask, const float *z1,
                                                const float *z2, float slope, int64_t n) {
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (int64_t)gridDim.x * blockDim.x) {
        float g = __fmul_rn(de[t], mask[t]);
        dz1[t] = z1[t] > 0 ? g : __fmul_rn(slope, g), dz2[t] = z2[t] > 0 ? g : __fmul_rn(slope, g);
    }
}

/* dz1, dz2, de, mask, z1, z2: (n) */
extern "C" mrec_status mrec_ngcf_combine_back_cuda(float *dz1, float *dz2, const float *de, const float *mask, const float *z1,
                                                   const float *z2, float slope, int64_t n, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    ngcf_combine_back_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(dz1, dz2, de, mask, z1, z2, slope, n);
    return MREC_CUDA_LAUNCHED("ngcf combine backward");
}

__global__ static void leaky_relu_back_kernel(float *dz, const float *dy, const float *z, float slope, int64_t n) {
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (int64_t)gridDim.x * blockDim.x)
        dz[t] = z[t] > 0 ? dy[t] : __fmul_rn(slope, dy[t]);
}

/* dz, dy, z: (n) */
extern "C" mrec_status mrec_leaky_relu_back_cuda(float *dz, const float *dy, const float *z, float slope, int64_t n,
                                                 mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    leaky_relu_back_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(dz, dy, z, slope, n);
    return MREC_CUDA_LAUNCHED("leaky relu backward");
}

/* One warp per row: the two sums in double, reduced in a fixed tree, then the row written. */
__global__ static void l2_back_kernel(float *dx, const float *dy, const float *y, const float *x, float eps, float beta, int R,
                                      int C) {
    int64_t warps = (int64_t)gridDim.x * blockDim.x / 32;
    int lane = threadIdx.x % 32;
    for (int64_t row = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; row < R; row += warps) {
        size_t o = (size_t)row * C;
        double ss = 0, ydy = 0;
        for (int c = lane; c < C; c += 32) ss += (double)x[o + c] * x[o + c], ydy += (double)y[o + c] * dy[o + c];
        for (int s = 16; s > 0; s /= 2) ss += __shfl_xor_sync(0xffffffffu, ss, s), ydy += __shfl_xor_sync(0xffffffffu, ydy, s);
        double norm = sqrt(ss);
        for (int c = lane; c < C; c += 32) {
            float g = norm > eps ? (float)((dy[o + c] - y[o + c] * ydy) / norm) : (float)(dy[o + c] / (double)eps);
            dx[o + c] = beta == 0.0f ? g : __fadd_rn(__fmul_rn(beta, dx[o + c]), g);
        }
    }
}

/* dx, dy, y, x: (R, C) */
extern "C" mrec_status mrec_l2_normalize_rows_back_cuda(float *dx, const float *dy, const float *y, const float *x, float eps,
                                                        float beta, int R, int C, mrec_cuda *cu) {
    if (R <= 0 || C <= 0) return MREC_OK;
    l2_back_kernel<<<mrec_grid((int64_t)R * 32, THREADS), THREADS, 0, cu->stream>>>(dx, dy, y, x, eps, beta, R, C);
    return MREC_CUDA_LAUNCHED("l2 normalize backward");
}

/* ---- the contrastive graph models: SimGCL's sign noise, InfoNCE's rows ------------- */

__device__ static float hash_uniform(uint64_t key, uint64_t e) {
    return (float)((mix64(key ^ (e * 0x9E3779B97F4A7C15ull)) >> 40) * (1.0 / 16777216.0));
}

/* One thread per row: the row's sum in float in column order (no contraction), as the CPU's, so the bits agree. */
__global__ static void sign_noise_kernel(float *x, const float *u, float eps, const uint64_t *key_at, uint64_t key, uint64_t offset,
                                         int R, int C) {
    if (key_at) key = *key_at;
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < R; r += (int64_t)gridDim.x * blockDim.x) {
        float *row = x + (size_t)r * C, s = 0;
        uint64_t e0 = offset + (uint64_t)r * (uint64_t)C;
        for (int c = 0; c < C; c++) {
            float v = u ? u[(size_t)r * C + c] : hash_uniform(key, e0 + (uint64_t)c);
            s = __fadd_rn(s, __fmul_rn(v, v));
        }
        float scale = __fdiv_rn(eps, fmaxf(__fsqrt_rn(s), 1e-12f));
        for (int c = 0; c < C; c++) {
            float v = u ? u[(size_t)r * C + c] : hash_uniform(key, e0 + (uint64_t)c);
            float sg = (float)((row[c] > 0) - (row[c] < 0));
            row[c] = __fadd_rn(row[c], __fmul_rn(sg, __fmul_rn(v, scale)));
        }
    }
}

/* x, u: (R, C) */
extern "C" mrec_status mrec_sign_noise_cuda(float *x, const float *u, float eps, uint64_t key, uint64_t offset, int R, int C,
                                            mrec_cuda *cu) {
    if (R <= 0 || C <= 0) return MREC_OK;
    sign_noise_kernel<<<mrec_grid(R, THREADS), THREADS, 0, cu->stream>>>(x, u, eps, NULL, key, offset, R, C);
    return MREC_CUDA_LAUNCHED("sign noise");
}

extern "C" mrec_status mrec_sign_noise_at_cuda(float *x, const float *u, float eps, const uint64_t *key, uint64_t offset, int R, int C,
                                               mrec_cuda *cu) {
    if (R <= 0 || C <= 0) return MREC_OK;
    sign_noise_kernel<<<mrec_grid(R, THREADS), THREADS, 0, cu->stream>>>(x, u, eps, key, 0, offset, R, C);
    return MREC_CUDA_LAUNCHED("sign noise");
}

__global__ static void gumbel_kernel(float *out, const uint64_t *key_at, uint64_t key, int64_t n) {
    if (key_at) key = *key_at;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        double u = ((double)(mix64(key ^ ((uint64_t)e * 0x9E3779B97F4A7C15ull)) >> 40) + 0.5) * (1.0 / 16777216.0);
        out[e] = (float)-log(-log(u));
    }
}

/* out: (n) */
extern "C" mrec_status mrec_gumbel_noise_cuda(float *out, uint64_t key, int64_t n, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    gumbel_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(out, NULL, key, n);
    return MREC_CUDA_LAUNCHED("Gumbel noise");
}

extern "C" mrec_status mrec_gumbel_noise_at_cuda(float *out, const uint64_t *key, int64_t n, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    gumbel_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(out, key, 0, n);
    return MREC_CUDA_LAUNCHED("Gumbel noise");
}

/* One block per row: the maximum (exact in any order), then z in double reduced in a fixed tree, then the row. */
__global__ static void xent_rows_kernel(float *g, double *loss, const float *s, const int32_t *target, float alpha, int R, int ld,
                                        const float *alpha_at, const int32_t *live_at) {
    __shared__ float top_part[THREADS];
    __shared__ double z_part[THREADS];
    int C = ld, live = R; /* mrec_softmax_xent_rows_at: rows [live, R) zeros, the live rows live wide and the rest of them zeros */
    if (live_at) {
        live = min(max(*live_at, 0), min(R, ld)), C = live, alpha = *alpha_at;
        for (int r = blockIdx.x; r < R; r += gridDim.x) {
            float *out = g + (size_t)r * ld;
            for (int c = (r < live ? live : 0) + threadIdx.x; c < ld; c += blockDim.x) out[c] = 0;
            if (r >= live && threadIdx.x == 0) loss[r] = 0;
        }
    }
    for (int r = blockIdx.x; r < live; r += gridDim.x) {
        const float *in = s + (size_t)r * ld;
        float *out = g + (size_t)r * ld;
        float top = -INFINITY;
        for (int c = threadIdx.x; c < C; c += blockDim.x) top = fmaxf(top, in[c]);
        top_part[threadIdx.x] = top;
        __syncthreads();
        for (int h = blockDim.x / 2; h > 0; h /= 2) {
            if (threadIdx.x < h) top_part[threadIdx.x] = fmaxf(top_part[threadIdx.x], top_part[threadIdx.x + h]);
            __syncthreads();
        }
        top = top_part[0];
        int t = target ? target[r] : r;
        float at_t = in[t];
        __syncthreads(); /* every thread has read in[t] before out (which may be in) is written */
        double z = 0;
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            float e = expf(__fsub_rn(in[c], top));
            out[c] = e, z += e;
        }
        z_part[threadIdx.x] = z;
        __syncthreads();
        for (int h = blockDim.x / 2; h > 0; h /= 2) {
            if (threadIdx.x < h) z_part[threadIdx.x] += z_part[threadIdx.x + h];
            __syncthreads();
        }
        z = z_part[0];
        if (threadIdx.x == 0) loss[r] = top + log(z) - at_t;
        float scale = (float)(alpha / z);
        for (int c = threadIdx.x; c < C; c += blockDim.x) out[c] = __fsub_rn(__fmul_rn(out[c], scale), c == t ? alpha : 0.0f);
        __syncthreads(); /* the shared parts are reused by the next row */
    }
}

/* g, s: (R, C); loss, target: (R) */
extern "C" mrec_status mrec_softmax_xent_rows_cuda(float *g, double *loss, const float *s, const int32_t *target, float alpha,
                                                   int R, int C, mrec_cuda *cu) {
    if (R <= 0) return MREC_OK;
    xent_rows_kernel<<<(unsigned)(R < 65535 ? R : 65535), THREADS, 0, cu->stream>>>(g, loss, s, target, alpha, R, C, NULL, NULL);
    return MREC_CUDA_LAUNCHED("softmax cross-entropy rows");
}

/* g, s: (R, C); loss (R); *alpha, *live: device memory */
extern "C" mrec_status mrec_softmax_xent_rows_at_cuda(float *g, double *loss, const float *s, const float *alpha, const int32_t *live,
                                                      int R, int C, mrec_cuda *cu) {
    if (R <= 0) return MREC_OK;
    xent_rows_kernel<<<(unsigned)(R < 65535 ? R : 65535), THREADS, 0, cu->stream>>>(g, loss, s, NULL, 1, R, C, alpha, live);
    return MREC_CUDA_LAUNCHED("softmax cross-entropy rows");
}

/* ---- LATTICE's normalized Laplacian --------------------------------------------------- */

__global__ static void inv_sqrt_kernel(float *out, const float *in, int64_t n) {
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (int64_t)gridDim.x * blockDim.x) {
        float x = in[t];
        out[t] = x > 0 ? __fdiv_rn(1.0f, __fsqrt_rn(x)) : x == 0 ? 0.0f : NAN;
    }
}

/* out, in: (n) */
extern "C" mrec_status mrec_inv_sqrt_cuda(float *out, const float *in, int64_t n, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    inv_sqrt_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(out, in, n);
    return MREC_CUDA_LAUNCHED("inverse square root");
}

/* ---- ItemKNN's scores ---------------------------------------------------------------- */

/* One thread per (user, item): the item's neighbours in order, each looked up in the user's sorted items. */
__global__ static void knn_scores_kernel(float *scores, const int64_t *row_ptr, const int32_t *col, const int32_t *nbr,
                                         const float *sim, int u0, int R, int C, int k) {
    int64_t n = (int64_t)R * C;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        int r = (int)(e / C), i = (int)(e % C);
        int64_t lo = row_ptr[u0 + r], hi = row_ptr[u0 + r + 1];
        float s = 0;
        for (int t = 0; t < k; t++) {
            int j = nbr[(size_t)i * k + t];
            if (j < 0) continue;
            int64_t a = lo, b = hi;
            while (a < b) {
                int64_t mid = a + (b - a) / 2;
                if (col[mid] < j) a = mid + 1;
                else b = mid;
            }
            if (a < hi && col[a] == j) s = __fadd_rn(s, sim[(size_t)i * k + t]);
        }
        scores[e] = s;
    }
}

/* scores: (R, C); row_ptr, col: the users' sorted item lists; nbr, sim: (C, k) */
extern "C" mrec_status mrec_knn_scores_cuda(float *scores, const int64_t *row_ptr, const int32_t *col, const int32_t *nbr,
                                            const float *sim, int u0, int R, int C, int k, mrec_cuda *cu) {
    if ((int64_t)R * C <= 0) return MREC_OK;
    knn_scores_kernel<<<mrec_grid((int64_t)R * C, THREADS), THREADS, 0, cu->stream>>>(scores, row_ptr, col, nbr, sim, u0, R, C, k);
    return MREC_CUDA_LAUNCHED("knn scores");
}

/* ---- GRCN's edge attention: a softmax per CSR row ------------------------------------ */

#define SEG_WARPS (THREADS / 32)

/* One warp per row: lanes stride over its entries; the maximum (exact in any order), then z in double in a fixed
 * shuffle tree, then the row. */
__global__ static void segment_softmax_kernel(float *y, const float *x, const int64_t *row_ptr, int R) {
    int lane = threadIdx.x & 31;
    for (int r = blockIdx.x * SEG_WARPS + threadIdx.x / 32; r < R; r += gridDim.x * SEG_WARPS) {
        int64_t lo = row_ptr[r], hi = row_ptr[r + 1];
        float top = -INFINITY;
        for (int64_t p = lo + lane; p < hi; p += 32) top = fmaxf(top, x[p]);
        for (int o = 16; o > 0; o >>= 1) top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, o));
        double z = 0;
        for (int64_t p = lo + lane; p < hi; p += 32) {
            float e = expf(__fsub_rn(x[p], top));
            y[p] = e, z += e; /* y may be x: each lane reads its own entries before writing them */
        }
        for (int o = 16; o > 0; o >>= 1) z += __shfl_xor_sync(0xffffffffu, z, o);
        for (int64_t p = lo + lane; p < hi; p += 32) y[p] = (float)(y[p] / z);
    }
}

__global__ static void segment_softmax_back_kernel(float *dx, const float *dy, const float *y, const int64_t *row_ptr, int R) {
    int lane = threadIdx.x & 31;
    for (int r = blockIdx.x * SEG_WARPS + threadIdx.x / 32; r < R; r += gridDim.x * SEG_WARPS) {
        int64_t lo = row_ptr[r], hi = row_ptr[r + 1];
        double s = 0;
        for (int64_t p = lo + lane; p < hi; p += 32) s += (double)y[p] * dy[p];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        for (int64_t p = lo + lane; p < hi; p += 32) dx[p] = (float)(y[p] * (dy[p] - s));
    }
}

static unsigned segment_blocks(int R) { return mrec_grid(R, SEG_WARPS); }

/* y, x: (row_ptr[R]); row_ptr: (R + 1) */
extern "C" mrec_status mrec_segment_softmax_cuda(float *y, const float *x, const int64_t *row_ptr, int R, mrec_cuda *cu) {
    if (R <= 0) return MREC_OK;
    segment_softmax_kernel<<<segment_blocks(R), THREADS, 0, cu->stream>>>(y, x, row_ptr, R);
    return MREC_CUDA_LAUNCHED("segment softmax");
}

/* dx, dy, y: (row_ptr[R]); row_ptr: (R + 1) */
extern "C" mrec_status mrec_segment_softmax_back_cuda(float *dx, const float *dy, const float *y, const int64_t *row_ptr, int R,
                                                      mrec_cuda *cu) {
    if (R <= 0) return MREC_OK;
    segment_softmax_back_kernel<<<segment_blocks(R), THREADS, 0, cu->stream>>>(dx, dy, y, row_ptr, R);
    return MREC_CUDA_LAUNCHED("segment softmax backward");
}

