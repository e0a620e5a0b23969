#!/usr/bin/env python3
"""gpu_ops_peer.py: PyTorch on the GPU doing what bench_gpu_ops does, for the ratio.

    python bench/peers/gpu_ops_peer.py REPS

Prints one line per case, in bench_gpu_ops's order (its table reads them by position): the mean
seconds per call over REPS calls after a warm-up, timed between two synchronizations as the C side
does. fp32 with TF32 off, but where the case names TF32 (the products allowed it) or bf16.
"""
import sys
import time

import torch
import torch.nn.functional as F


def timed(fn, reps):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def main():
    reps = int(sys.argv[1])
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    R, C, H, T, I = 32 * 128, 768, 12, 128, 3072
    x = torch.rand(R * I, device=dev) * 4 - 2
    w = torch.rand(C, device=dev) + 0.5
    b = torch.rand(C, device=dev) * 2 - 1
    mask = torch.zeros(32, 1, 1, T, device=dev)
    scores_qk = torch.empty(384, T, T, device=dev)
    cases = [
        lambda: F.layer_norm(x[: R * C].view(R, C), (C,), w, b, 1e-12),
        lambda: F.gelu(x.view(R, I)),
        lambda: torch.add(x[: R * C], x[R * C: 2 * R * C]),
        lambda: torch.softmax(x[: 32 * H * T * T].view(32, H, T, T) + mask, dim=-1),
        lambda: F.normalize(x[: R * C].view(R, C), dim=-1, eps=1e-12),
        # the scale inside the product, as mrec's GEMM takes it (alpha), not a pass of its own after
        lambda: torch.baddbmm(scores_qk, x[: 384 * T * 64].view(384, T, 64),
                              x[384 * T * 64: 2 * 384 * T * 64].view(384, T, 64).transpose(1, 2), beta=0, alpha=0.125),
        lambda: F.linear(x[: R * C].view(R, C), x[R * C: R * C + I * C].view(I, C), x[:I]),
    ]
    def tf32_linear_gelu():
        torch.backends.cuda.matmul.allow_tf32 = True
        y = F.gelu(F.linear(x[: R * C].view(R, C), x[R * C: R * C + I * C].view(I, C), x[:I]),
                   approximate="tanh")
        torch.backends.cuda.matmul.allow_tf32 = False
        return y

    xa, wa = x[: R * C].view(R, C).bfloat16(), x[R * C: R * C + I * C].view(I, C).bfloat16()
    ba = x[:I].bfloat16()
    q = x[: R * C].view(32, T, H, 64).transpose(1, 2)
    kk = x[R * C: 2 * R * C].view(32, T, H, 64).transpose(1, 2)
    vv = x[2 * R * C: 3 * R * C].view(32, T, H, 64).transpose(1, 2)
    qh, kh, vh, mh = q.bfloat16(), kk.bfloat16(), vv.bfloat16(), mask.bfloat16()
    def tf32(fn):  # fn with TF32 allowed in the products, as mrec's tf32 precision
        def run():
            torch.backends.cuda.matmul.allow_tf32 = True
            y = fn()
            torch.backends.cuda.matmul.allow_tf32 = False
            return y
        return run

    # ViT-B/16's attention at batch 128: 197 tokens, no mask
    VB, VT = 128, 197
    vit = [(torch.rand(VB, H, VT, 64, device=dev) * 2 - 1) for _ in range(3)]
    vith = [t.bfloat16() for t in vit]
    cases += [
        tf32_linear_gelu,
        lambda: F.gelu(F.linear(xa, wa, ba), approximate="tanh"),
        lambda: F.layer_norm(x[: R * C].view(R, C) + x[R * C: 2 * R * C].view(R, C), (C,), w, b, 1e-12),
        lambda: F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask, scale=0.125),
        tf32(lambda: F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask, scale=0.125)),
        lambda: F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mh, scale=0.125),
        tf32(lambda: F.scaled_dot_product_attention(*vit, scale=0.125)),
        lambda: F.scaled_dot_product_attention(*vith, scale=0.125),
    ]
    U, V, k = 1024, 40981, 20
    scores = torch.rand(U, V, device=dev) * 2 - 1
    cases.append(lambda: torch.topk(scores, k, dim=1))
    N, D, nnz = 29858 + 40981, 64, 2 * 810128
    rows = torch.div(torch.arange(nnz, device=dev) * N, nnz, rounding_mode="floor")
    cols = torch.randint(0, N, (nnz,), device=dev)
    adj = torch.sparse_coo_tensor(torch.stack([rows, cols]), torch.rand(nnz, device=dev) * 0.1, (N, N)).coalesce()
    adj = adj.to_sparse_csr()
    emb = torch.rand(N, D, device=dev) * 2 - 1
    cases.append(lambda: torch.sparse.mm(adj, emb))
    # ResNet50's layer1 3x3 and a 1x1 at batch 128, bf16 channels-last, the bias and ReLU after (eager's way)
    # (the kernel size is ks: the attention cases above read kk, the keys, when they are called)
    for ci, co, ks in ((64, 64, 3), (256, 64, 1)):
        inp = (torch.rand(128, ci, 56, 56, device=dev) * 4 - 2).bfloat16().contiguous(memory_format=torch.channels_last)
        wt = (torch.rand(co, ci, ks, ks, device=dev) - 0.5).bfloat16().contiguous(memory_format=torch.channels_last)
        bias = torch.rand(co, device=dev).bfloat16()
        cases.append(lambda inp=inp, wt=wt, bias=bias, ks=ks: F.relu(F.conv2d(inp, wt, bias, padding=ks // 2)))
    for fn in cases:
        print(f"{timed(fn, reps):.9f}", flush=True)


if __name__ == "__main__":
    main()
