/* cuda_emu.h: a CPU emulator for the CUDA C kernels of kernels/cuda, so that they run (and are tested)
 * on a machine without a GPU.
 *
 * tests/emu/transform turns a .cu file into host C++; g++ compiles it with `-include cuda_emu.h`. This header
 * defines what CUDA C gives a kernel (threadIdx and friends, __syncthreads, warp shuffles and votes, the _rn
 * intrinsics, atomics, __ldg) and emulations of the inline-PTX helpers attention.cu uses (mma.sync for bf16
 * and tf32, ldmatrix .trans, cp.async); cuda_emu.cpp runs a launch: the blocks one after another, each CUDA
 * thread of a block a fiber with its own stack, switched at every barrier and warp collective.
 *
 * How it finds bugs:
 *   - scheduling: blocks in a seeded random order; a thread runs until it reaches a barrier or a warp
 *     collective, then the scheduler picks the next runnable thread: any, at random (emu_sched 0), or the one
 *     of the highest priority, each warp a random rank (emu_sched 1: one warp runs ahead of the others, through
 *     several phases of the block). A test runs each case under several seeds and policies and requires the
 *     same bits: a missing __syncthreads shows as a difference, or as NaN through the poison below;
 *   - shared memory is filled with 0xFF bytes (NaN in fp32 and bf16) at each block's start;
 *   - warp collectives: every lane of the mask must arrive at the same kind of collective with the same mask,
 *     else an error ("divergent warp collective"); a lane of the mask that has exited is an error; a deadlock
 *     is reported with where the threads wait;
 *   - cp.async: copies are queued per thread, committed into groups, and performed (emu_cp_mode) at issue (0),
 *     only when cp.async.wait_group retires their group (1, the latest the hardware may), or at a random
 *     scheduling point in between (2); both addresses must be 16-byte aligned and the destination inside the
 *     block's dynamic shared memory; ldmatrix's row addresses likewise;
 *   - out-of-bounds accesses: make emu-check runs the kernel tests a second time built with AddressSanitizer
 *     (the fibers' stacks announced at each switch, cuda_emu.cpp), so that a read or write past a block's
 *     shared memory, a thread's local array or a buffer's allocation stops the test at the kernel's line.
 * An error is printed and counted in emu_errors, which the tests check after every launch.
 *
 * Limits (what it does not model):
 *   - blocks never run concurrently: races between blocks through global memory are not seen, and atomics
 *     are plain read-modify-writes in block order;
 *   - a thread runs until it blocks, and a warp collective is a full fence between the lanes: a missing
 *     __syncwarp between lanes' shared-memory writes and reads is not detected; there is no shadow-memory
 *     race detector, races show only through the random orders and the poison;
 *   - math is the host's libm (expf, erff, tanhf, ... differ from CUDA's in the last ulps; rsqrtf is exact
 *     here, approximate on the GPU); the code is compiled with -ffp-contract=off, so `a * b + c` is never
 *     fused here while nvcc fuses it by default: only explicit __fmaf_rn / fmaf fuse;
 *   - mma.sync sums its products exactly (in double) and rounds once to fp32; the tensor cores' internal
 *     order and truncation are not modelled, so their results are compared with tolerances;
 *   - in the kernel tests (make emu-check), cuBLAS, cuBLASLt and cuDNN are not run: what is reached only
 *     through them is not tested there, but for the static kernels of gemm.cu and conv.cu on those routes,
 *     which tests/emu/statics.h launches directly. Whole programs (make emu-gpu-check) have them, emulated
 *     (tests/emu/cublas_emu.cpp, cudnn_emu.cpp), with the real device.cu over an emulated CUDA runtime
 *     (tests/emu/runtime.cpp: deferred streams, events, CUDA graphs, device memory checked).
 */
#pragma once
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include "emu_runtime.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <functional>
#include <tuple>
#include <type_traits>
#include <type_traits>
#include <utility>

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#undef __align__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static /* statically sized shared arrays: one copy, fine with one block at a time */
#define EMU_ARCH 900      /* __CUDA_ARCH__ after tests/emu/transform: the sm_90 device paths */

/* ---- the emulator's state and knobs (cuda_emu.cpp) ---- */
extern int emu_cp_mode;           /* cp.async: 0 at issue, 1 at the wait that retires it (default), 2 random */
extern int emu_sched;             /* the next thread: 0 any runnable one, at random (default); 1 the runnable one of
                                   * the highest priority, each warp a random rank per block: one warp runs ahead */
extern int emu_errors, emu_notes; /* errors found so far; notes (legal but suspicious) */
extern int emu_quiet;             /* nonzero: errors counted, not printed (a test that expects them) */
/* splitmix64, a few instructions a draw (the Mersenne Twister took a sixth of the time of a whole program's run) */
struct EmuRng {
    typedef uint64_t result_type;
    uint64_t state = 0;
    static constexpr uint64_t min() { return 0; }
    static constexpr uint64_t max() { return ~0ull; }
    void seed(uint64_t s) { state = s; }
    uint64_t operator()() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
};
void emu_reseed(unsigned long long seed); /* the scheduler's random orders */
void emu_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void emu_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- thread and block indices ---- */
extern dim3 emu_blockIdx, emu_blockDim, emu_gridDim;
uint3 &emu_thread_idx();
#define threadIdx (emu_thread_idx())
#define blockIdx (emu_blockIdx)
#define blockDim (emu_blockDim)
#define gridDim (emu_gridDim)
#ifndef warpSize
#define warpSize 32
#endif
void *emu_dyn_smem(); /* the block's dynamic shared memory (extern __shared__, after tests/emu/transform) */
bool emu_is_shared(const void *p, size_t n);
void emu_syncthreads(int line);
#define __syncthreads() emu_syncthreads(__LINE__)

/* ---- warp collectives: a lane blocks until every lane of the mask has arrived; the last computes for all ---- */
enum { EMU_SHFL_IDX = 1, EMU_SHFL_XOR, EMU_SHFL_DOWN, EMU_SHFL_UP, EMU_BALLOT, EMU_SYNCWARP, EMU_MMA_BF16, EMU_MMA_TF32, EMU_LDMATRIX_T };
struct EmuColl {
    int kind, line;
    unsigned mask;
    int arg, width;
    unsigned char in[48]; /* this lane's operands */
    unsigned char out[32]; /* this lane's result */
};
void emu_warp_collective(EmuColl &c);

template <typename T> static inline T emu_shfl(int kind, unsigned mask, T v, int arg, int width, int line) {
    static_assert(sizeof(T) <= 8, "a shuffle of a type over 8 bytes");
    EmuColl c;
    memset(&c, 0, sizeof c);
    c.kind = kind, c.line = line, c.mask = mask, c.arg = arg, c.width = width;
    memcpy(c.in, &v, sizeof(T));
    emu_warp_collective(c);
    T r;
    memcpy(&r, c.out, sizeof(T));
    return r;
}
/* __shfl*_sync: the source lane as CUDA's programming guide gives it (within width-lane segments; a source
 * outside the segment for up/down/xor leaves the lane's own value); a source lane outside the mask is an error */
template <typename T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32, int line = __builtin_LINE()) {
    return emu_shfl(EMU_SHFL_IDX, mask, v, src, width, line);
}
template <typename T> static inline T __shfl_xor_sync(unsigned mask, T v, int lm, int width = 32, int line = __builtin_LINE()) {
    return emu_shfl(EMU_SHFL_XOR, mask, v, lm, width, line);
}
template <typename T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32, int line = __builtin_LINE()) {
    return emu_shfl(EMU_SHFL_DOWN, mask, v, (int)d, width, line);
}
template <typename T> static inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32, int line = __builtin_LINE()) {
    return emu_shfl(EMU_SHFL_UP, mask, v, (int)d, width, line);
}
static inline unsigned __ballot_sync(unsigned mask, int pred, int line = __builtin_LINE()) {
    return emu_shfl<unsigned>(EMU_BALLOT, mask, pred ? 1u : 0u, 0, 32, line);
}
static inline int __any_sync(unsigned mask, int pred, int line = __builtin_LINE()) {
    return emu_shfl<unsigned>(EMU_BALLOT, mask, pred ? 1u : 0u, 0, 32, line) != 0;
}
static inline int __all_sync(unsigned mask, int pred, int line = __builtin_LINE()) {
    return emu_shfl<unsigned>(EMU_BALLOT, mask, pred ? 1u : 0u, 0, 32, line) == mask;
}
static inline void __syncwarp(unsigned mask = 0xffffffffu, int line = __builtin_LINE()) {
    emu_shfl<unsigned>(EMU_SYNCWARP, mask, 0u, 0, 32, line);
}

/* ---- scalar intrinsics: IEEE round-to-nearest on the host, as the _rn forms on the GPU ---- */
static inline unsigned __float_as_uint(float x) { unsigned u; memcpy(&u, &x, 4); return u; }
static inline float __uint_as_float(unsigned u) { float x; memcpy(&x, &u, 4); return x; }
static inline int __float_as_int(float x) { int u; memcpy(&u, &x, 4); return u; }
static inline float __int_as_float(int u) { float x; memcpy(&x, &u, 4); return x; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); } /* the GPU's is approximate (2 ulp) */
/* CUDA's integer min and max (the float ones are fminf, fmaxf) */
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
template <typename T> static inline T __ldg(const T *p) { return *p; }
/* atomics: plain read-modify-writes (threads never run in parallel here) */
static inline int atomicAdd(int *p, int v) { int o = *p; *p = o + v; return o; }
static inline unsigned atomicAdd(unsigned *p, unsigned v) { unsigned o = *p; *p = o + v; return o; }
static inline float atomicAdd(float *p, float v) { float o = *p; *p = o + v; return o; }
static inline double atomicAdd(double *p, double v) { double o = *p; *p = o + v; return o; }
static inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) { auto o = *p; *p = o + v; return o; }
static inline int atomicMin(int *p, int v) { int o = *p; if (v < o) *p = v; return o; }
static inline int atomicMax(int *p, int v) { int o = *p; if (v > o) *p = v; return o; }
static inline int atomicExch(int *p, int v) { int o = *p; *p = v; return o; }
static inline int atomicCAS(int *p, int cmp, int v) { int o = *p; if (o == cmp) *p = v; return o; }
static inline void __threadfence() {}
static inline void __threadfence_block() {}

/* ---- attention.cu's inline-PTX helpers, emulated (tests/emu/transform removes the originals); the PTX
 * semantics each follows are stated at its definition in cuda_emu.cpp ---- */
uint32_t emu_tf32_rna(float x);
void emu_mma_tf32(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1, int line);
void emu_mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, int line);
void emu_ldmatrix_x4_trans(uint32_t (&r)[4], const void *row, int line);
void emu_cp_async16(void *smem, const void *gmem, int bytes);
void emu_cp_async_commit();
void emu_cp_async_wait(int n);
static inline uint32_t tf32_bits(float x) { return emu_tf32_rna(x); }
static inline void mma_tf32(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1,
                            int line = __builtin_LINE()) {
    emu_mma_tf32(d, a0, a1, a2, a3, b0, b1, line);
}
static inline void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, int line = __builtin_LINE()) {
    emu_mma_bf16(d, a, b0, b1, line);
}
static inline void ldmatrix_x4_trans(uint32_t (&r)[4], const __nv_bfloat16 *row, int line = __builtin_LINE()) {
    emu_ldmatrix_x4_trans(r, row, line);
}
static inline void cp_async16(void *smem, const void *gmem, int bytes) { emu_cp_async16(smem, gmem, bytes); }
static inline void cp_async_commit(void) { emu_cp_async_commit(); }
template <int N> static inline void cp_async_wait(void) { emu_cp_async_wait(N); }

/* ---- launches: kernel<<<grid, block, smem, stream>>>(args) after tests/emu/transform ---- */
struct EmuCfg {
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
};
static inline EmuCfg emu_cfg(dim3 g, dim3 b, size_t smem = 0, cudaStream_t s = 0) { return EmuCfg{g, b, smem, s}; }
void emu_run_grid(const EmuCfg &cfg, const std::function<void()> &body, const char *name);
/* a launch's pointer arguments: device memory (a whole program's runtime.cpp checks; the kernel tests' device.cpp
 * does not), else an error naming the kernel and the argument */
void emu_kernel_pointer(const char *kernel, int arg, const void *p);
template <typename T> static inline void emu_arg(const char *, int, const T &) {}
template <typename T> static inline void emu_arg(const char *kernel, int i, T *p) {
    if (p) emu_kernel_pointer(kernel, i, (const void *)p);
}
template <typename... A> static inline void emu_args(const char *kernel, const A &...a) {
    int i = 0;
    (void)i;
    (emu_arg(kernel, i++, a), ...);
}
/* the launch goes to its stream (emu_runtime.h): run now, or later (a deferred queue, a CUDA graph's replay),
 * with the arguments' values at the launch */
/* a launch's configuration checked when it is made, as CUDA does: a bad one is an error the launch reports
 * (cudaGetLastError), and nothing runs */
bool emu_launch_ok(const EmuCfg &cfg, const char *name);
/* a launch's pointer arguments as the bytes it touches, for the race check: the first element of each (a kernel's
 * extent is not known), written unless the kernel's parameter points to const */
template <typename P, typename A> static inline void emu_access_arg(const A &a) {
    if constexpr (std::is_pointer<P>::value && std::is_pointer<A>::value)
        if (a) emu_access((const void *)a, 1, !std::is_const<typename std::remove_pointer<P>::type>::value);
}
template <typename F, typename... A> static inline void emu_accesses(F, const A &...) {}
template <typename... P, typename... A> static inline void emu_accesses(void (*)(P...), const A &...a) {
    if constexpr (sizeof...(P) == sizeof...(A)) (emu_access_arg<P>(a), ...);
}
template <typename F, typename K, typename... A> static void emu_launch_fn(const char *name, EmuCfg cfg, F f, K kernel, A... a) {
    if (!emu_launch_ok(cfg, name)) return;
    emu_accesses(kernel, a...);
    std::tuple<A...> args(a...);
    emu_stream_op(cfg.stream, [cfg, f, args, name]() { emu_run_grid(cfg, std::function<void()>([&]() { std::apply(f, args); }), name); }, name);
}
template <typename R, typename... P> static inline cudaError_t cudaFuncSetAttribute(R (*)(P...), enum cudaFuncAttribute, int) { return cudaSuccess; }template <typename R, typename... P> static inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *a, R (*f)(P...)) {
    return cudaFuncGetAttributes(a, (const void *)f);
}
