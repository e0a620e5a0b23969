/* emu_runtime.h: what the emulated CUDA runtime (tests/emu/runtime.cpp) gives the emulated libraries
 * (tests/emu/cublas_emu.cpp, tests/emu/cudnn_emu.cpp), so that a whole GPU program (device.cu, every kernel
 * file, cuBLAS, cuBLASLt and cuDNN) runs on the CPU.
 *
 * Device memory is host memory handed out by cudaMalloc, and remembered: every pointer a library or a copy
 * is given as device memory is checked to lie inside one live allocation (a host pointer passed as a device
 * one is the bug this finds). Work goes to a stream: queued, and run when the host waits for it (runtime.cpp
 * says when), or, while the stream is being captured into a CUDA graph, recorded and run at each launch of
 * the graph. A library call therefore copies what it needs by value into
 * the recorded operation: the pointers, the sizes, the scalars (alpha and beta), the descriptors' contents. */
#pragma once
#include <cuda_runtime.h>
#include <stddef.h>
#include <functional>

/* op on stream s: now, or recorded into the graph being captured there (what names it in reports) */
void emu_stream_op(cudaStream_t s, std::function<void()> op, const char *what);
/* The device bytes the next emu_stream_op of this thread touches: [p, p + bytes), written or only read. The
 * runtime checks them against the other streams' work it is not ordered after (runtime.cpp, the race check). */
void emu_access(const void *p, size_t bytes, bool write);
/* 1 when [p, p + bytes) lies inside one live cudaMalloc allocation; else an emu_error naming what, and 0 */
bool emu_device_range(const void *p, size_t bytes, const char *what);
/* errors are printed and counted (cuda_emu.cpp); a test fails on any */
void emu_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int emu_errors;
