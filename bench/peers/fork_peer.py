#!/usr/bin/env python3
"""fork_peer.py: GRCN as the Ducho-meets-Elliot benchmark's Elliot fork computes it
(external/models/grcn: GraphRefiningLayer, GraphConvolutionalLayer), restated in PyTorch and timed
as bench_recent times mrec.

    python bench/peers/fork_peer.py BABY_SPLIT.tsv THREADS STEPS

Reads the split (training pairs, x_label 0) and build/bench_mm/{image,text}_feat.npy (written by
bench_recent). Prints "<model> <seconds per step>": the mean of STEPS steps (forward over the whole
graph, loss, backward, Adam) after one warm-up step, on THREADS threads, at mrec's defaults (which
bench_recent prints): batch 1024, dim 64, 2 layers, 3 routings, modality size 128, confidences,
pruning, concatenation, no activation, lr 1e-4, l_w 1e-5. The fork's message passing
(torch_geometric's gather, segment softmax and scatter-add; torch_sparse's weighted product) is
written with index_select and index_add, which do the same work.
"""
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def segment_softmax(s, index, n):
    """torch_geometric.utils.softmax(s, index): exp(s - max) / sum over the entries sharing an index."""
    top = torch.full((n,), float("-inf")).scatter_reduce(0, index, s.detach(), "amax")
    e = (s - top[index]).exp()
    return e / (torch.zeros(n).index_add(0, index, e) + 1e-16)[index]


def spread(w, src, dst, x, n):
    """sum over the edges (src -> dst) of w * x[src], into n rows."""
    return torch.zeros(n, x.shape[1]).index_add(0, dst, w[:, None] * x[src])


def main():
    path, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    d = np.loadtxt(path, dtype=np.int64, skiprows=1)
    tr = d[d[:, 2] == 0]
    tr = tr[np.lexsort((tr[:, 1], tr[:, 0]))]  # sp_i_train.nonzero(): user-major, items increasing
    U, I = int(d[:, 0].max()) + 1, int(d[:, 1].max()) + 1
    N = U + I
    feats = [torch.from_numpy(np.load("build/bench_mm/image_feat.npy")), torch.from_numpy(np.load("build/bench_mm/text_feat.npy"))]
    rows, items = torch.from_numpy(tr[:, 0]), torch.from_numpy(tr[:, 1])
    dst, src = torch.cat((rows, items + U)), torch.cat((items + U, rows))  # both directions
    rng = np.random.default_rng(0)
    only = os.environ.get("MREC_BENCH_MODELS")

    def timed(name, step_fn, params, lr, batch):
        if only and name not in only.split():
            return
        opt = torch.optim.Adam(params, lr=lr)
        total = 0.0
        for k in range(steps + 1):
            u, i, j = (torch.from_numpy(rng.integers(0, n, batch)) for n in (U, I, I))
            t0 = time.perf_counter()
            opt.zero_grad()
            step_fn(u, i, j).backward()
            opt.step()
            if k:
                total += time.perf_counter() - t0
        print(f"{name} {total / steps:.5f}", flush=True)

    # ---- GRCN
    k, dim = 128, 64
    xavier = lambda *s: torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(*s)))
    Gu, Gi = xavier(U, dim), xavier(I, dim)
    gum = [xavier(U, k) for _ in feats]
    proj = [torch.nn.Linear(f.shape[1], k) for f in feats]
    conf = xavier(N, len(feats))

    def grcn(u, i, j):
        x_m, alphas = [], []
        for g, p, f in zip(gum, proj, feats):
            gu, gi = F.normalize(g), F.normalize(F.leaky_relu(p(f)))
            for _ in range(3):  # routing: the users' preferences over their items' modality vectors
                a = segment_softmax((gu[rows] * gi[items]).sum(-1), rows, U)
                gu = F.normalize(gu + spread(a, items, rows, gi, U))
            x = torch.cat((gu, gi), 0)
            a = segment_softmax((x[dst] * x[src]).sum(-1), dst, N)
            x_m.append(x + spread(a, src, dst, x, N))
            alphas.append(a)
        w = torch.relu((torch.stack(alphas, 1) * conf[dst]).max(1)[0])  # confid, pruning
        e = F.normalize(torch.cat((Gu, Gi), 0))
        acc = e
        for _ in range(2):
            e = F.normalize(spread(w, src, dst, e, N))
            acc = acc + e
        x = torch.cat([acc] + x_m, 1)
        xu, xi = x[:U], x[U:]
        xp, xn = (xu[u] * xi[i]).sum(1), (xu[u] * xi[j]).sum(1)
        loss = -torch.mean(torch.log(torch.sigmoid(xp - xn)))
        uu = torch.cat((u, u))
        reg_content = sum(g[uu].pow(2).mean() for g in gum)
        return loss + reg_content + 1e-5 * (Gu[uu].pow(2) + Gi[torch.cat((i, j))].pow(2)).mean()
    timed("grcn", grcn, [Gu, Gi, conf] + gum + [q for p in proj for q in p.parameters()], 1e-4, 1024)


if __name__ == "__main__":
    main()
