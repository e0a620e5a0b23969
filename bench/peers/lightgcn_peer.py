#!/usr/bin/env python3
"""lightgcn_peer.py: plain PyTorch LightGCN doing what bench_lightgcn (CPU) and bench_gpu_gowalla (GPU) do, for the ratio.

    python bench/peers/lightgcn_peer.py TRAIN.txt TEST.txt THREADS STEPS [DEVICE]

DEVICE: cpu (default) or cuda; on a GPU the graph, the embeddings and each batch live there, and
each timed phase ends with a synchronization.

The MMRec / LightGCN-PyTorch recipe: D^-1/2 A D^-1/2 as a torch sparse tensor, 3 layers, 64-d,
batch 2048, BPR + EmbLoss, Adam; evaluation scores every user against every item in blocks of
1024 users, masks training items, torch.topk(20). Prints "sample <s>", "step <s>" (mean of
STEPS training steps) and "eval <s>".
"""
import sys
import time

import numpy as np
import torch


def read(path):
    users, items = [], []
    for line in open(path):
        parts = line.split()
        if len(parts) > 1:
            u = int(parts[0])
            for i in parts[1:]:
                users.append(u)
                items.append(int(i))
    return np.array(users), np.array(items)


def main():
    train_path, test_path, threads, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    dev = torch.device(sys.argv[5] if len(sys.argv) > 5 else "cpu")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.set_num_threads(threads)
    tu, ti = read(train_path)
    n_users, n_items = int(tu.max()) + 1, int(ti.max()) + 1
    eu, ei = read(test_path)
    n_users, n_items = max(n_users, int(eu.max()) + 1), max(n_items, int(ei.max()) + 1)
    n = n_users + n_items
    rows = np.concatenate([tu, ti + n_users])
    cols = np.concatenate([ti + n_users, tu])
    deg = np.bincount(rows, minlength=n).astype(np.float64) + 1e-7
    d = np.power(deg, -0.5)
    vals = (d[rows] * d[cols]).astype(np.float32)
    adj = torch.sparse_coo_tensor(np.stack([rows, cols]), vals, (n, n)).coalesce().to(dev)
    torch.manual_seed(0)
    user = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_users, 64)).to(dev))
    item = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_items, 64)).to(dev))
    opt = torch.optim.Adam([user, item], lr=1e-3)
    hist = [set() for _ in range(n_users)]
    for u, i in zip(tu, ti):
        hist[u].add(i)

    t0 = time.perf_counter()  # one epoch of BPR triples, as MMRec's loader makes them
    order = np.random.permutation(len(tu))
    neg = np.random.randint(0, n_items, len(tu))
    for k in range(len(tu)):
        while neg[k] in hist[tu[order[k]]]:
            neg[k] = np.random.randint(0, n_items)
    t_sample = time.perf_counter() - t0

    def forward():
        ego = torch.cat([user, item])
        acc, layer = [ego], ego
        for _ in range(3):
            layer = torch.sparse.mm(adj, layer)
            acc.append(layer)
        f = torch.stack(acc, 1).mean(1)
        return f[:n_users], f[n_users:]

    times = []
    for s in range(steps + 1):
        b = order[s * 2048:(s + 1) * 2048]
        t0 = time.perf_counter()  # the batch's copy to the device counts, as a loader's would
        u, i, j = (torch.tensor(a).to(dev) for a in (tu[b], ti[b], neg[s * 2048:(s + 1) * 2048]))
        opt.zero_grad()
        fu, fi = forward()
        x = (fu[u] * fi[i]).sum(1) - (fu[u] * fi[j]).sum(1)
        loss = -torch.log(1e-10 + torch.sigmoid(x)).mean()
        loss = loss + 1e-4 * (user[u].norm() + item[i].norm() + item[j].norm()) / len(b)
        loss.backward()
        opt.step()
        sync()
        if s:  # the first step warms up
            times.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    with torch.no_grad():
        fu, fi = forward()
        train_rows = torch.tensor(tu).to(dev)
        train_cols = torch.tensor(ti).to(dev)
        for u0 in range(0, n_users, 1024):
            scores = fu[u0:u0 + 1024] @ fi.T
            sel = (train_rows >= u0) & (train_rows < u0 + 1024)
            scores[train_rows[sel] - u0, train_cols[sel]] = -np.inf
            torch.topk(scores, 20, dim=1)
        sync()
    t_eval = time.perf_counter() - t0
    print(f"sample {t_sample:.4f}\nstep {np.mean(times):.5f}\neval {t_eval:.4f}", flush=True)


if __name__ == "__main__":
    main()
