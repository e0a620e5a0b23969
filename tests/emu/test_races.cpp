/* test_races.cpp: the emulated runtime's race check (tests/emu/runtime.cpp) on programs small enough to say
 * what it must find: two streams touching the same device bytes, one of them writing, with and without each of
 * the things that order them (an event waited for, the host's wait, the legacy stream's implicit waits, the
 * same stream), reads beside reads, disjoint bytes of one allocation, and a CUDA graph's replayed launches.
 * Each case runs the program's work, then counts the emulator's errors it caused (and takes them back, so that
 * the expected ones do not fail the program at exit). Run under make emu-gpu-check. */
#include "emu_test.h"

#include <cuda_runtime.h>

static void read_kernel(float *out, const float *in, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = in[i] + 1.0f;
}

static void write_kernel(float *buf, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) buf[i] = 2.0f;
}

enum { N = 64 };

static void launch_read(float *out, const float *in, cudaStream_t s) {
    emu_launch_fn("read_kernel", emu_cfg(1, N, 0, s), [=](auto... a) { read_kernel(a...); }, read_kernel, out, in, (int)N);
}
static void launch_write(float *buf, cudaStream_t s) {
    emu_launch_fn("write_kernel", emu_cfg(1, N, 0, s), [=](auto... a) { write_kernel(a...); }, write_kernel, buf, (int)N);
}

static float *dev(size_t n) {
    void *p = NULL;
    cudaMalloc(&p, n * sizeof(float));
    cudaMemset(p, 0, n * sizeof(float));
    return (float *)p;
}

/* Runs body, waits for the device, and checks whether the emulator reported errors (a race) as expected. */
template <typename F> static void expect(bool race, const char *what, F body) {
    int e0 = emu_errors;
    emu_quiet = !verbose();
    body();
    cudaDeviceSynchronize();
    int found = emu_errors - e0;
    emu_errors = e0, emu_quiet = 0;
    t_check(race ? found > 0 : found == 0, "%s: %s (%d error(s))", what, race ? "a race reported" : "no race", found);
}

int main() {
    t_suite("emu_races");
    cudaStream_t s1, s2, blocking;
    cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking);
    cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking);
    cudaStreamCreateWithFlags(&blocking, cudaStreamDefault);
    cudaEvent_t ev;
    cudaEventCreate(&ev);
    float *host = NULL;
    cudaHostAlloc((void **)&host, 2 * N * sizeof(float), 0);
    for (int i = 0; i < 2 * N; i++) host[i] = (float)i;
    float *buf = dev(2 * N), *out = dev(N), *out2 = dev(N);

    expect(true, "an upload on one stream, a kernel reading it on another, no wait", [&] {
        cudaMemcpyAsync(buf, host, N * sizeof(float), cudaMemcpyHostToDevice, s1);
        launch_read(out, buf, s2);
    });
    expect(false, "the same with an event recorded after the upload and waited for", [&] {
        cudaMemcpyAsync(buf, host, N * sizeof(float), cudaMemcpyHostToDevice, s1);
        cudaEventRecord(ev, s1);
        cudaStreamWaitEvent(s2, ev, 0);
        launch_read(out, buf, s2);
    });
    expect(true, "the event waited for recorded before the upload", [&] {
        cudaEventRecord(ev, s1);
        cudaMemcpyAsync(buf, host, N * sizeof(float), cudaMemcpyHostToDevice, s1);
        cudaStreamWaitEvent(s2, ev, 0);
        launch_read(out, buf, s2);
    });
    expect(false, "the host waiting for the upload's stream before the launch", [&] {
        cudaMemcpyAsync(buf, host, N * sizeof(float), cudaMemcpyHostToDevice, s1);
        cudaStreamSynchronize(s1);
        launch_read(out, buf, s2);
    });
    expect(false, "the host waiting for an event after the upload", [&] {
        cudaMemcpyAsync(buf, host, N * sizeof(float), cudaMemcpyHostToDevice, s1);
        cudaEventRecord(ev, s1);
        cudaEventSynchronize(ev);
        launch_read(out, buf, s2);
    });
    expect(false, "upload and kernel on one stream", [&] {
        cudaMemcpyAsync(buf, host, N * sizeof(float), cudaMemcpyHostToDevice, s1);
        launch_read(out, buf, s1);
    });
    expect(false, "two streams only reading the same bytes (const parameters, a download)", [&] {
        launch_read(out, buf, s1);
        launch_read(out2, buf, s2);
        cudaMemcpyAsync(host + N, buf, N * sizeof(float), cudaMemcpyDeviceToHost, s1);
    });
    expect(true, "a kernel writing on one stream, a download of the bytes on another", [&] {
        launch_write(buf, s1);
        cudaMemcpyAsync(host + N, buf, N * sizeof(float), cudaMemcpyDeviceToHost, s2);
    });
    expect(true, "a kernel reading on one stream, then a memset of the bytes on another", [&] {
        launch_read(out, buf, s1);
        cudaMemsetAsync(buf, 0, N * sizeof(float), s2);
    });
    expect(false, "an upload and a kernel on disjoint halves of one allocation", [&] {
        cudaMemcpyAsync(buf, host, N * sizeof(float), cudaMemcpyHostToDevice, s1);
        launch_read(out, buf + N, s2);
    });
    expect(false, "an upload on the legacy stream, a kernel on a blocking stream (the legacy stream's implicit wait)", [&] {
        cudaMemcpyAsync(buf, host, N * sizeof(float), cudaMemcpyHostToDevice, 0);
        launch_read(out, buf, blocking);
    });
    expect(false, "a kernel on a blocking stream, then an upload on the legacy stream", [&] {
        launch_read(out, buf, blocking);
        cudaMemcpyAsync(buf, host, N * sizeof(float), cudaMemcpyHostToDevice, 0);
    });
    expect(true, "an upload on the legacy stream, a kernel on a non-blocking stream", [&] {
        cudaMemcpyAsync(buf, host, N * sizeof(float), cudaMemcpyHostToDevice, 0);
        launch_read(out, buf, s2);
    });

    /* a graph's replayed launches touch what their capture did */
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    cudaStreamBeginCapture(s1, cudaStreamCaptureModeThreadLocal);
    launch_write(buf, s1);
    cudaStreamEndCapture(s1, &graph);
    cudaGraphInstantiate(&exec, graph, 0);
    expect(true, "a graph writing on one stream, a download on another, no wait", [&] {
        cudaGraphLaunch(exec, s1);
        cudaMemcpyAsync(host + N, buf, N * sizeof(float), cudaMemcpyDeviceToHost, s2);
    });
    expect(false, "the same with an event after the graph, waited for", [&] {
        cudaGraphLaunch(exec, s1);
        cudaEventRecord(ev, s1);
        cudaStreamWaitEvent(s2, ev, 0);
        cudaMemcpyAsync(host + N, buf, N * sizeof(float), cudaMemcpyDeviceToHost, s2);
    });
    t_check(host[N] == 2.0f, "the graph's kernel ran (%g)", host[N]);
    cudaGraphExecDestroy(exec), cudaGraphDestroy(graph);

    /* the check runs when work is queued, so a race the streams' order happens to hide is found all the same */
    expect(true, "a download queued after the host ran the writer's stream, without a recorded order", [&] {
        launch_write(buf, s1);
        cudaMemcpyAsync(out, buf, N * sizeof(float), cudaMemcpyDeviceToDevice, s1); /* s1 now has two ops */
        cudaEventRecord(ev, s2);
        cudaEventSynchronize(ev); /* waits for s2, not s1 */
        cudaMemcpyAsync(host + N, buf, N * sizeof(float), cudaMemcpyDeviceToHost, s2);
    });

    cudaFree(buf), cudaFree(out), cudaFree(out2), cudaFreeHost(host);
    cudaEventDestroy(ev);
    cudaStreamDestroy(s1), cudaStreamDestroy(s2), cudaStreamDestroy(blocking);
    return t_finish();
}
