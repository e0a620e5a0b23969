/* lightgcn_peer.h: bench/peers/lightgcn_peer.py run and read, for the Gowalla
 * benches (bench_lightgcn on the CPU, bench_gpu_gowalla on the GPU: BPRMF,
 * LightGCN and NGCF). */
#ifndef MREC_BENCH_LIGHTGCN_PEER_H
#define MREC_BENCH_LIGHTGCN_PEER_H
#include <stdio.h>
#include <stdlib.h>

/* PyTorch's seconds for one epoch's sampling, a mean training step and an
 * evaluation into out[0..2] of model "lightgcn", "ngcf" or "bprmf"; 0 where the peer
 * gave nothing (no Python with torch, no GPU for device "cuda"). MREC_PYTHON
 * names the interpreter. */
static void lightgcn_peer(double out[3], const char *train, const char *test, int threads, int steps, const char *device,
                          const char *model) {
    const char *py = getenv("MREC_PYTHON") ? getenv("MREC_PYTHON") : "python3";
    char cmd[9000], name[16];
    snprintf(cmd, sizeof cmd, "%s bench/peers/lightgcn_peer.py %s %s %d %d %s %s 2>/dev/null", py, train, test, threads, steps, device,
             model);
    FILE *p = popen(cmd, "r");
    for (int i = 0; i < 3; i++) out[i] = 0;
    for (int i = 0; p && i < 3; i++)
        if (fscanf(p, "%15s %lf", name, &out[i]) != 2) out[i] = 0;
    if (p) pclose(p);
}
#endif
