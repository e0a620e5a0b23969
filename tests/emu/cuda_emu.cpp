/* cuda_emu.cpp: the emulator's runtime (see cuda_emu.h for what it models and what not): fibers, the block
 * scheduler, barriers, warp collectives, the PTX emulations, and the few CUDA runtime calls the launch
 * wrappers of kernels/cuda make. */
#include "cuda_emu.h"
#include <stdarg.h>
#include <algorithm>
#include <random>
#include <string>
#include <vector>

/* ---- fibers ----
 * On x86-64 a hand-written context switch (System V ABI: the callee-saved registers, MXCSR and the x87
 * control word are saved on the old stack, the stack pointer swapped); elsewhere, or with -DEMU_UCONTEXT,
 * POSIX ucontext (swapcontext), which is portable and slower (it saves the signal mask with a system call).
 * Built with AddressSanitizer (make emu-check's second pass), each switch tells it which stack comes next, so
 * that it checks the kernels' accesses and not the switches. */
#if defined(__x86_64__) && !defined(EMU_UCONTEXT)
extern "C" void emu_ctx_switch(void **save_sp, void *load_sp);
asm(R"(
.text
.globl emu_ctx_switch
.type emu_ctx_switch,@function
emu_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size emu_ctx_switch, .-emu_ctx_switch
.section .note.GNU-stack,"",@progbits
.text
)");
struct EmuContext {
    void *sp;
    const void *bottom; /* its stack (AddressSanitizer's bookkeeping) */
    size_t size;
};
static void context_make(EmuContext &c, char *stack, size_t size, void (*entry)()) {
    c.bottom = stack, c.size = size;
    uint64_t *sp = (uint64_t *)(((uintptr_t)(stack + size)) & ~(uintptr_t)15);
    *--sp = 0;                          /* entry's return address: entry never returns */
    *--sp = (uint64_t)(uintptr_t)entry; /* where emu_ctx_switch's ret goes */
    for (int r = 0; r < 6; r++) *--sp = 0; /* rbp, rbx, r12-r15 */
    --sp;
    uint32_t csr[2] = {0x1f80, 0x037f}; /* MXCSR and x87 control word at their defaults */
    memcpy(sp, csr, 8);
    c.sp = sp;
}
static void context_jump(EmuContext &from, EmuContext &to) { emu_ctx_switch(&from.sp, to.sp); }
#else
#include <ucontext.h>
struct EmuContext {
    ucontext_t uc;
    const void *bottom;
    size_t size;
};
static void context_make(EmuContext &c, char *stack, size_t size, void (*entry)()) {
    c.bottom = stack, c.size = size;
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = NULL; /* entry never returns */
    makecontext(&c.uc, entry, 0);
}
static void context_jump(EmuContext &from, EmuContext &to) { swapcontext(&from.uc, &to.uc); }
#endif

static EmuContext sched_ctx; /* the scheduler's: the host thread's own stack */

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
/* a fiber has just started or resumed: the stack it came from was the scheduler's */
static void asan_arrived(void *fake_stack) {
    const void *bottom;
    size_t size;
    __sanitizer_finish_switch_fiber(fake_stack, &bottom, &size);
    if (bottom) sched_ctx.bottom = bottom, sched_ctx.size = size;
}
/* from -> to; a thread that exits passes last, so its fake stack frames are dropped */
static void context_switch(EmuContext &from, EmuContext &to, bool last = false) {
    void *fake = NULL;
    __sanitizer_start_switch_fiber(last ? NULL : &fake, to.bottom, to.size);
    context_jump(from, to);
    asan_arrived(fake);
}
/* a fresh stack: the frames of the threads that used it last left their red zones behind */
static void stack_clean(char *stack, size_t size) { ASAN_UNPOISON_MEMORY_REGION(stack, size); }
#else
static void asan_arrived(void *) {}
static void context_switch(EmuContext &from, EmuContext &to, bool = false) { context_jump(from, to); }
static void stack_clean(char *, size_t) {}
#endif

enum { RUNNABLE, WAIT_BAR, WAIT_WARP, DONE };
struct CpCopy {
    void *dst;
    const void *src;
    int bytes;
    int group; /* -1 until committed */
};
struct EmuFiber {
    EmuContext ctx;
    uint3 tid;
    int lin, state;
    int bar_line;   /* the __syncthreads it waits at */
    EmuColl *coll;  /* the collective it waits at */
    std::vector<CpCopy> cp; /* its cp.async copies not yet performed */
    int next_group; /* cp.async.commit_group's count */
};

int emu_cp_mode = 1;
int emu_sched = 0;
static std::vector<unsigned> prio; /* emu_sched 1: each thread's priority in this block */
int emu_errors, emu_notes, emu_quiet;
dim3 emu_blockIdx, emu_blockDim, emu_gridDim;
static EmuFiber *cur; /* the running thread */
static std::vector<EmuFiber> fibers;
static std::vector<int> runq;
/* the scheduler's random numbers (EmuRng, cuda_emu.h) */
static EmuRng rng;
static const std::function<void()> *body_fn;
static unsigned char *dyn_smem;
static size_t dyn_smem_size;
static int n_threads, bar_arrived, bar_first_line; /* the line of the first thread waiting at the barrier */
static int n_alive;                                 /* threads not yet exited */
static std::vector<int> warp_waiting, warp_done;    /* per warp: lanes waiting at a collective, lanes exited */
static const char *kernel_name;
static const size_t STACK = 256 << 10; /* a thread's stack */
static char *stack_pool;
static size_t stack_pool_n;
static std::vector<std::string> seen_notes;

void emu_reseed(unsigned long long s) { rng.seed(s); }

void emu_error(const char *fmt, ...) {
    if (++emu_errors > 20 || emu_quiet) return; /* the first ones tell */
    va_list ap;
    va_start(ap, fmt);
    if (kernel_name)
        fprintf(stderr, "EMU ERROR [%s block (%u,%u,%u) thread %d]: ", kernel_name, emu_blockIdx.x, emu_blockIdx.y, emu_blockIdx.z,
                cur ? cur->lin : -1);
    else
        fputs("EMU ERROR [host]: ", stderr); /* a runtime or library call (tests/emu/runtime.cpp) */
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
/* a note is printed once per kernel and text */
void emu_note(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    std::string s = std::string(kernel_name ? kernel_name : "host") + ": " + msg;
    if (std::find(seen_notes.begin(), seen_notes.end(), s) != seen_notes.end()) return;
    seen_notes.push_back(s);
    emu_notes++;
    fprintf(stderr, "EMU NOTE %s\n", s.c_str());
}

uint3 &emu_thread_idx() { return cur->tid; }
void *emu_dyn_smem() { return dyn_smem; }
bool emu_is_shared(const void *p, size_t n) {
    const unsigned char *c = (const unsigned char *)p;
    return c >= dyn_smem && c + n <= dyn_smem + dyn_smem_size;
}

static void yield_to_sched() { context_switch(cur->ctx, sched_ctx); }
static void make_runnable(int i) {
    fibers[i].state = RUNNABLE;
    runq.push_back(i);
}
static int alive_threads() { return n_alive; }

/* cp.async.cg.shared.global [dst], [src], 16, src-size: src-size bytes copied, the rest of the 16 zero-filled */
static void do_copy(const CpCopy &c) {
    unsigned char tmp[16];
    memset(tmp, 0, 16);
    if (c.bytes > 0) memcpy(tmp, c.src, (size_t)c.bytes);
    memcpy(c.dst, tmp, 16);
}
/* emu_cp_mode 2: each pending copy of the running thread may land at any of its scheduling points */
static void maybe_land_copies() {
    if (emu_cp_mode != 2) return;
    auto &v = cur->cp;
    for (size_t i = 0; i < v.size();)
        if (rng() % 4 == 0) {
            do_copy(v[i]);
            v.erase(v.begin() + (long)i);
        } else
            i++;
}

static void fiber_entry() {
    asan_arrived(NULL);
    (*body_fn)();
    if (!cur->cp.empty()) emu_note("a thread exits with %zu cp.async copies not waited for", cur->cp.size());
    for (auto &c : cur->cp) do_copy(c);
    cur->cp.clear();
    cur->state = DONE;
    n_alive--;
    warp_done[cur->lin / 32]++;
    /* a barrier the others wait at may now be complete: exited threads do not count (sm_70+) */
    int alive = alive_threads();
    if (bar_arrived > 0 && bar_arrived == alive) {
        emu_note("__syncthreads completed with %d of %d threads exited", n_threads - alive, n_threads);
        bar_arrived = 0;
        for (size_t i = 0; i < fibers.size(); i++)
            if (fibers[i].state == WAIT_BAR) make_runnable((int)i);
    }
    context_switch(cur->ctx, sched_ctx, true);
    abort(); /* never resumed */
}

void emu_syncthreads(int line) {
    maybe_land_copies();
    int alive = alive_threads();
    if (alive != n_threads) emu_note("__syncthreads (line %d) after some threads exited", line);
    if (bar_arrived == 0) bar_first_line = line;
    else if (bar_first_line != line)
        emu_note("__syncthreads at different lines %d and %d meet (legal on sm_70+, but check)", bar_first_line, line);
    cur->state = WAIT_BAR;
    cur->bar_line = line;
    if (++bar_arrived == alive) { /* the last to arrive releases all, in a random order */
        bar_arrived = 0;
        std::vector<int> w;
        for (size_t i = 0; i < fibers.size(); i++)
            if (fibers[i].state == WAIT_BAR) w.push_back((int)i);
        std::shuffle(w.begin(), w.end(), rng);
        for (int i : w) make_runnable(i);
    }
    yield_to_sched();
}

static const char *coll_name(int k) {
    static const char *n[] = {"?", "shfl", "shfl_xor", "shfl_down", "shfl_up", "ballot", "syncwarp", "mma.bf16", "mma.tf32", "ldmatrix.trans"};
    return k >= 0 && k <= EMU_LDMATRIX_T ? n[k] : "?";
}
static float bf16_value(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* D = A B + C (16 x K by K x 8) into each lane's four D registers, the C/D layout of both MMAs: d_i at row g
 * (i < 2) or g + 8, column 2t + (i & 1). Exact products, summed in double, one rounding. */
template <int K>
static void mma_out(EmuFiber **L, const float (&A)[16][K], const float (&B)[K][8], const float (&C)[16][8]) {
    for (int l = 0; l < 32; l++) {
        int g = l >> 2, t = l & 3;
        float d[4];
        for (int i = 0; i < 4; i++) {
            int row = i < 2 ? g : g + 8, col = 2 * t + (i & 1);
            double s = C[row][col];
            for (int k = 0; k < K; k++) s += (double)A[row][k] * B[k][col];
            d[i] = (float)s;
        }
        memcpy(L[l]->coll->out, d, 16);
    }
}

/* mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (PTX ISA, "Matrix fragments for mma.m16n8k16"): with
 * g = lane >> 2 and t = lane & 3, and two bf16 in a register, the low half first,
 *   A (16x16, 4 registers, elements a0..a7): a_i at row g for i in {0,1,4,5}, else g + 8; col 2t + (i & 1), + 8 for i >= 4;
 *   B (16x8, 2 registers, b0..b3): b_i at row 2t + (i & 1), + 8 for i >= 2; col g;
 *   C, D (16x8, 4 floats): c_i at row g for i < 2, else g + 8; col 2t + (i & 1).
 * The products are exact and summed in double with C, then rounded once to fp32. */
static void mma_bf16_warp(EmuFiber **L) {
    float A[16][16], B[16][8], C[16][8];
    for (int l = 0; l < 32; l++) {
        int g = l >> 2, t = l & 3;
        uint32_t a[4], b[2];
        float c[4];
        memcpy(a, L[l]->coll->in, 16), memcpy(b, L[l]->coll->in + 16, 8), memcpy(c, L[l]->coll->in + 24, 16);
        for (int i = 0; i < 8; i++) {
            int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8, col = 2 * t + (i & 1) + (i >= 4 ? 8 : 0);
            A[row][col] = bf16_value((uint16_t)(a[i >> 1] >> (16 * (i & 1))));
        }
        for (int i = 0; i < 4; i++) B[2 * t + (i & 1) + (i >= 2 ? 8 : 0)][g] = bf16_value((uint16_t)(b[i >> 1] >> (16 * (i & 1))));
        for (int i = 0; i < 4; i++) C[i < 2 ? g : g + 8][2 * t + (i & 1)] = c[i];
    }
    mma_out(L, A, B, C);
}

/* mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 (PTX ISA, "Matrix fragments for mma.m16n8k8", .tf32):
 *   A (16x8): a0 (g, t), a1 (g + 8, t), a2 (g, t + 4), a3 (g + 8, t + 4);
 *   B (8x8):  b0 (t, g), b1 (t + 4, g);
 *   C, D as for bf16 above.
 * The tensor core reads only the tf32 bits of each operand: their low 13 bits are ignored. Exact products,
 * summed in double, one rounding. */
static void mma_tf32_warp(EmuFiber **L) {
    float A[16][8], B[8][8], C[16][8];
    for (int l = 0; l < 32; l++) {
        int g = l >> 2, t = l & 3;
        uint32_t a[4], b[2];
        float c[4];
        memcpy(a, L[l]->coll->in, 16), memcpy(b, L[l]->coll->in + 16, 8), memcpy(c, L[l]->coll->in + 24, 16);
        for (int i = 0; i < 4; i++) a[i] &= ~0x1fffu;
        for (int i = 0; i < 2; i++) b[i] &= ~0x1fffu;
        A[g][t] = __uint_as_float(a[0]), A[g + 8][t] = __uint_as_float(a[1]);
        A[g][t + 4] = __uint_as_float(a[2]), A[g + 8][t + 4] = __uint_as_float(a[3]);
        B[t][g] = __uint_as_float(b[0]), B[t + 4][g] = __uint_as_float(b[1]);
        for (int i = 0; i < 4; i++) C[i < 2 ? g : g + 8][2 * t + (i & 1)] = c[i];
    }
    mma_out(L, A, B, C);
}

/* ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 (PTX ISA, ldmatrix): lanes 8i .. 8i + 7 give the addresses of
 * rows 0..7 of matrix i (16 bytes each, 16-byte aligned, in shared memory). Without .trans lane l would receive
 * row l / 4, elements 2 (l % 4) and 2 (l % 4) + 1; with .trans the matrix is transposed: lane l receives
 * (row 2 (l % 4), col l / 4) and (row 2 (l % 4) + 1, col l / 4), low half first; register i from matrix i. */
static void ldmatrix_trans_warp(EmuFiber **L) {
    const uint16_t *rows[32];
    int bad = 0;
    for (int l = 0; l < 32; l++) {
        memcpy(&rows[l], L[l]->coll->in, sizeof(void *));
        if ((uintptr_t)rows[l] & 15) bad = 1, emu_error("ldmatrix: lane %d's row address %p is not 16-byte aligned", l, (const void *)rows[l]);
        if (!emu_is_shared(rows[l], 16)) bad = 1, emu_error("ldmatrix: lane %d's row address is outside the dynamic shared memory", l);
    }
    if (bad) return;
    for (int l = 0; l < 32; l++) {
        uint32_t r[4];
        int g = l >> 2, t = l & 3;
        for (int i = 0; i < 4; i++) {
            uint16_t lo = rows[8 * i + 2 * t][g], hi = rows[8 * i + 2 * t + 1][g];
            r[i] = (uint32_t)lo | (uint32_t)hi << 16;
        }
        memcpy(L[l]->coll->out, r, 16);
    }
}

/* every lane of the mask has arrived: check they agree, then compute each lane's result */
static void compute_collective(EmuFiber **L, unsigned mask) {
    EmuColl &c0 = *L[__builtin_ctz(mask)]->coll;
    int kind = c0.kind;
    for (int l = 0; l < 32; l++)
        if (mask >> l & 1) {
            EmuColl &c = *L[l]->coll;
            if (c.kind != kind || c.mask != mask)
                emu_error("divergent warp collective: lane %d at %s (line %d, mask %08x), lane %d at %s (line %d, mask %08x)",
                          __builtin_ctz(mask), coll_name(kind), c0.line, mask, l, coll_name(c.kind), c.line, c.mask);
            else if (c.line != c0.line)
                emu_note("lanes meet at the same %s from different lines %d and %d", coll_name(kind), c0.line, c.line);
        }
    if ((kind == EMU_MMA_BF16 || kind == EMU_MMA_TF32 || kind == EMU_LDMATRIX_T) && mask != 0xffffffffu) {
        emu_error("%s (line %d) with a partial warp", coll_name(kind), c0.line);
        return;
    }
    switch (kind) {
    case EMU_SHFL_IDX:
    case EMU_SHFL_XOR:
    case EMU_SHFL_DOWN:
    case EMU_SHFL_UP:
        for (int l = 0; l < 32; l++) {
            if (!(mask >> l & 1)) continue;
            EmuColl &c = *L[l]->coll;
            int w = c.width, base = l & ~(w - 1), src = l;
            if (w <= 0 || (w & (w - 1)) || w > 32) {
                emu_error("shfl width %d", w);
                continue;
            }
            if (kind == EMU_SHFL_IDX) src = base + (c.arg & (w - 1));
            else if (kind == EMU_SHFL_XOR) {
                src = l ^ c.arg; /* a group may read earlier groups; a later one gives the caller its own value */
                if (src >= base + w) src = l;
            } else if (kind == EMU_SHFL_DOWN) {
                src = l + c.arg;
                if (src >= base + w) src = l;
            } else {
                src = l - c.arg;
                if (src < base) src = l;
            }
            if (!(mask >> src & 1)) {
                emu_error("%s (line %d): lane %d reads lane %d, outside the mask %08x (undefined)", coll_name(kind), c.line, l, src, mask);
                memset(c.out, 0xff, 8);
            } else
                memcpy(c.out, L[src]->coll->in, 8);
        }
        break;
    case EMU_BALLOT: {
        unsigned b = 0;
        for (int l = 0; l < 32; l++)
            if (mask >> l & 1) b |= (L[l]->coll->in[0] ? 1u : 0u) << l;
        for (int l = 0; l < 32; l++)
            if (mask >> l & 1) memcpy(L[l]->coll->out, &b, 4);
        break;
    }
    case EMU_SYNCWARP: break;
    case EMU_MMA_BF16: mma_bf16_warp(L); break;
    case EMU_MMA_TF32: mma_tf32_warp(L); break;
    case EMU_LDMATRIX_T: ldmatrix_trans_warp(L); break;
    default: emu_error("unknown collective %d", kind);
    }
}

void emu_warp_collective(EmuColl &c) {
    maybe_land_copies();
    int lane = cur->lin & 31, w0 = cur->lin & ~31;
    if (!(c.mask >> lane & 1)) emu_error("%s (line %d): the calling lane %d is not in the mask %08x", coll_name(c.kind), c.line, lane, c.mask);
    cur->coll = &c; /* on this thread's stack, alive while it waits */
    cur->state = WAIT_WARP;
    int warp = cur->lin / 32;
    warp_waiting[warp]++;
    /* the mask's lanes cannot all be here yet, and none has exited: nothing to look at */
    if (!warp_done[warp] && warp_waiting[warp] < __builtin_popcount(c.mask)) {
        yield_to_sched();
        return;
    }
    EmuFiber *L[32] = {0};
    bool all = true;
    for (int l = 0; l < 32 && all; l++) {
        if (!(c.mask >> l & 1)) continue;
        if (w0 + l >= (int)fibers.size()) {
            emu_error("collective mask %08x names lane %d past the block", c.mask, l);
            all = false;
            break;
        }
        EmuFiber &f = fibers[w0 + l];
        if (f.state == DONE) { /* stricter than CUDA for shuffles and votes, which ignore exited lanes */
            emu_error("%s (line %d): lane %d of the mask has exited", coll_name(c.kind), c.line, l);
            all = false;
        } else if (f.state != WAIT_WARP || !(f.coll->mask >> lane & 1))
            all = false;
        else
            L[l] = &f;
    }
    if (all) { /* the last lane to arrive computes for all and releases them in a random order */
        compute_collective(L, c.mask);
        std::vector<int> w;
        for (int l = 0; l < 32; l++)
            if (c.mask >> l & 1) w.push_back(w0 + l);
        std::shuffle(w.begin(), w.end(), rng);
        for (int i : w) fibers[i].coll = NULL, make_runnable(i);
        warp_waiting[warp] -= (int)w.size();
    }
    yield_to_sched();
}

/* cvt.rna.tf32.f32 (PTX ISA, cvt): round to nearest, ties away from zero, to tf32's 10 mantissa bits (the low
 * 13 bits of the result zero): add half a tf32 ulp to the magnitude, then truncate. Inf stays; a NaN becomes
 * 0x7fffffff (PTX leaves it to the implementation; the emulated mma drops its low 13 bits, so it stays a NaN). */
uint32_t emu_tf32_rna(float x) {
    uint32_t u = __float_as_uint(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return (u & 0x7fffffu) ? 0x7fffffffu : u;
    u += 0x1000u;
    return u & ~0x1fffu;
}
void emu_mma_tf32(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0, uint32_t b1, int line) {
    EmuColl c;
    memset(&c, 0, sizeof c);
    c.kind = EMU_MMA_TF32, c.mask = 0xffffffffu, c.line = line;
    uint32_t a[4] = {a0, a1, a2, a3}, b[2] = {b0, b1};
    memcpy(c.in, a, 16), memcpy(c.in + 16, b, 8), memcpy(c.in + 24, d, 16);
    emu_warp_collective(c);
    memcpy(d, c.out, 16);
}
void emu_mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, int line) {
    EmuColl c;
    memset(&c, 0, sizeof c);
    c.kind = EMU_MMA_BF16, c.mask = 0xffffffffu, c.line = line;
    uint32_t b[2] = {b0, b1};
    memcpy(c.in, a, 16), memcpy(c.in + 16, b, 8), memcpy(c.in + 24, d, 16);
    emu_warp_collective(c);
    memcpy(d, c.out, 16);
}
void emu_ldmatrix_x4_trans(uint32_t (&r)[4], const void *row, int line) {
    EmuColl c;
    memset(&c, 0, sizeof c);
    c.kind = EMU_LDMATRIX_T, c.mask = 0xffffffffu, c.line = line;
    memcpy(c.in, &row, sizeof row);
    emu_warp_collective(c);
    memcpy(r, c.out, 16);
}
/* cp.async.cg.shared.global [dst], [src], 16, src-size (PTX ISA, cp.async): queued; performed by do_copy */
void emu_cp_async16(void *smem, const void *gmem, int bytes) {
    int e0 = emu_errors;
    if (bytes < 0 || bytes > 16) emu_error("cp.async src-size %d", bytes);
    if ((uintptr_t)smem & 15) emu_error("cp.async.cg destination %p not 16-byte aligned", smem);
    if ((uintptr_t)gmem & 15) emu_error("cp.async.cg source %p not 16-byte aligned", gmem);
    if (!emu_is_shared(smem, 16)) emu_error("cp.async destination outside the dynamic shared memory");
    if (emu_errors != e0) return;
    CpCopy c = {smem, gmem, bytes, -1};
    if (emu_cp_mode == 0) do_copy(c);
    else cur->cp.push_back(c);
}
/* cp.async.commit_group: the thread's uncommitted copies become its next group */
void emu_cp_async_commit() {
    int g = cur->next_group++;
    for (auto &c : cur->cp)
        if (c.group < 0) c.group = g;
}
/* cp.async.wait_group N: every committed group but the N most recent is complete (uncommitted copies are not
 * waited for) */
void emu_cp_async_wait(int n) {
    int limit = cur->next_group - n;
    auto &v = cur->cp;
    for (size_t i = 0; i < v.size();)
        if (v[i].group >= 0 && v[i].group < limit) {
            do_copy(v[i]);
            v.erase(v.begin() + (long)i);
        } else
            i++;
}

/* ---- a block: its threads as fibers, run until all have exited or none can go on ---- */
static void run_block(const EmuCfg &cfg) {
    n_threads = (int)(cfg.block.x * cfg.block.y * cfg.block.z);
    if ((size_t)n_threads * STACK > stack_pool_n) {
        free(stack_pool);
        stack_pool_n = (size_t)n_threads * STACK;
        stack_pool = (char *)aligned_alloc(64, stack_pool_n);
        if (!stack_pool) {
            fprintf(stderr, "cuda_emu: out of memory for %d threads' stacks\n", n_threads);
            abort();
        }
    }
    fibers.assign(n_threads, EmuFiber());
    runq.clear();
    bar_arrived = 0, n_alive = n_threads;
    warp_waiting.assign((n_threads + 31) / 32, 0), warp_done.assign((n_threads + 31) / 32, 0);
    for (int i = 0; i < n_threads; i++) {
        EmuFiber &f = fibers[i];
        f.lin = i;
        f.tid = make_uint3(i % cfg.block.x, i / cfg.block.x % cfg.block.y, i / (cfg.block.x * cfg.block.y));
        f.next_group = 0;
        f.coll = NULL;
        f.state = RUNNABLE;
        stack_clean(stack_pool + (size_t)i * STACK, STACK);
        context_make(f.ctx, stack_pool + (size_t)i * STACK, STACK, fiber_entry);
        runq.push_back(i);
    }
    if (emu_sched == 1) { /* each warp a random rank, the lanes a random order within it */
        std::vector<unsigned> wr((n_threads + 31) / 32);
        for (size_t w = 0; w < wr.size(); w++) wr[w] = (unsigned)w;
        std::shuffle(wr.begin(), wr.end(), rng);
        prio.resize(n_threads);
        for (int i = 0; i < n_threads; i++) prio[i] = wr[i / 32] << 8 | (unsigned)(rng() & 255);
    }
    while (!runq.empty()) {
        size_t k = 0;
        if (emu_sched == 1) { /* the runnable thread of the highest priority */
            for (size_t j = 1; j < runq.size(); j++)
                if (prio[runq[j]] > prio[runq[k]]) k = j;
        } else /* any runnable thread */
            k = rng() % runq.size();
        int i = runq[k];
        runq[k] = runq.back(), runq.pop_back();
        cur = &fibers[i];
        context_switch(sched_ctx, cur->ctx);
        cur = NULL;
    }
    int stuck = alive_threads();
    if (stuck) { /* their stacks are abandoned; the next block starts them afresh */
        int nb = 0, nw = 0;
        for (auto &f : fibers) nb += f.state == WAIT_BAR, nw += f.state == WAIT_WARP;
        emu_error("deadlock: %d threads never finish (%d at __syncthreads, %d at a warp collective)", stuck, nb, nw);
        int shown = 0;
        for (auto &f : fibers)
            if (f.state == WAIT_WARP && shown++ < 4)
                fprintf(stderr, "   thread %d waits at %s line %d, mask %08x\n", f.lin, coll_name(f.coll->kind), f.coll->line, f.coll->mask);
            else if (f.state == WAIT_BAR && shown++ < 4)
                fprintf(stderr, "   thread %d waits at __syncthreads line %d\n", f.lin, f.bar_line);
    }
}

void emu_run_grid(const EmuCfg &cfg, const std::function<void()> &body, const char *name) {
    kernel_name = name;
    body_fn = &body;
    emu_gridDim = cfg.grid, emu_blockDim = cfg.block;
    size_t nt = (size_t)cfg.block.x * cfg.block.y * cfg.block.z, nb = (size_t)cfg.grid.x * cfg.grid.y * cfg.grid.z;
    if (nt == 0 || nt > 1024) emu_error("a block of %zu threads", nt);
    if (cfg.grid.y > 65535 || cfg.grid.z > 65535) emu_error("grid (%u, %u, %u): y and z at most 65535", cfg.grid.x, cfg.grid.y, cfg.grid.z);
    if (cfg.smem > 227 * 1024) emu_error("%zu bytes of dynamic shared memory, over sm_90's 227 KiB", cfg.smem);
    if (nt == 0 || nt > 1024 || cfg.smem > 227 * 1024) return;
    std::vector<size_t> order(nb);
    for (size_t i = 0; i < nb; i++) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t o : order) {
        emu_blockIdx = make_uint3((unsigned)(o % cfg.grid.x), (unsigned)(o / cfg.grid.x % cfg.grid.y),
                                  (unsigned)(o / ((size_t)cfg.grid.x * cfg.grid.y)));
        dyn_smem_size = cfg.smem;
        dyn_smem = (unsigned char *)malloc(cfg.smem ? cfg.smem : 1);
        memset(dyn_smem, 0xff, cfg.smem); /* poison: NaN in fp32 and bf16 */
        run_block(cfg);
        free(dyn_smem);
        dyn_smem = NULL;
    }
    kernel_name = NULL;
}
