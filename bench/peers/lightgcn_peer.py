#!/usr/bin/env python3
"""lightgcn_peer.py: plain PyTorch LightGCN (or NGCF, or BPRMF) doing what bench_lightgcn (CPU) and
bench_gpu_gowalla (GPU) do, for the ratio.

    python bench/peers/lightgcn_peer.py TRAIN.txt TEST.txt THREADS STEPS [DEVICE [MODEL]]

DEVICE: cpu (default) or cuda; on a GPU the graph, the embeddings and each batch live there, and
each timed phase ends with a synchronization. MODEL: lightgcn (default), ngcf or bprmf.

LightGCN, the MMRec / LightGCN-PyTorch recipe: D^-1/2 A D^-1/2 as a torch sparse tensor, 3 layers,
64-d, batch 2048, BPR + EmbLoss, Adam. NGCF as its authors' code computes it (and mrec's ngcf):
D^-1 (A + I) with 10 % of its entries dropped each step (kept ones scaled by 1 / 0.9), per layer
S = A E, E' = lrelu(S W1 + b1) + lrelu((E * S) W2 + b2) (slope 0.2), 10 % message dropout, the
final rows [E0, normalize(E1), ..] (3 layers of 64), BPR + 1e-5 |batch rows|^2 / 2 / batch, Adam. BPRMF, MMRec's
BPR: the embeddings themselves, BPR + EmbLoss at 1e-5, Adam.
Evaluation scores every user against every item in blocks of 1024 users, masks training items,
torch.topk(20). Prints "sample <s>", "step <s>" (mean of STEPS training steps) and "eval <s>".
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
    model = sys.argv[6] if len(sys.argv) > 6 else "lightgcn"
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.set_num_threads(threads)
    tu, ti = read(train_path)
    n_users, n_items = int(tu.max()) + 1, int(ti.max()) + 1
    eu, ei = read(test_path)
    n_users, n_items = max(n_users, int(eu.max()) + 1), max(n_items, int(ei.max()) + 1)
    n = n_users + n_items
    rows = np.concatenate([tu, ti + n_users])
    cols = np.concatenate([ti + n_users, tu])
    if model == "ngcf":  # D^-1 (A + I)
        rows, cols = np.concatenate([rows, np.arange(n)]), np.concatenate([cols, np.arange(n)])
        vals = (1.0 / np.bincount(rows, minlength=n)[rows]).astype(np.float32)
    else:
        deg = np.bincount(rows, minlength=n).astype(np.float64) + 1e-7
        d = np.power(deg, -0.5)
        vals = (d[rows] * d[cols]).astype(np.float32)
    adj = torch.sparse_coo_tensor(np.stack([rows, cols]), vals, (n, n)).coalesce().to(dev)
    torch.manual_seed(0)
    user = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_users, 64)).to(dev))
    item = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_items, 64)).to(dev))
    layers = [torch.nn.Linear(64, 64).to(dev) for _ in range(6)]  # W1, W2 of each of the 3 layers
    params = [user, item] + ([p for lin in layers for p in lin.parameters()] if model == "ngcf" else [])
    opt = torch.optim.Adam(params, lr=1e-3)
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

    def forward_ngcf(training):
        a = adj
        if training:  # node dropout: 10 % of the entries, the rest scaled up
            keep = torch.rand(adj._nnz(), device=dev) >= 0.1
            a = torch.sparse_coo_tensor(adj.indices()[:, keep], adj.values()[keep] / 0.9, adj.shape)
        ego = torch.cat([user, item])
        acc = [ego]
        for k in range(3):
            side = torch.sparse.mm(a, ego)
            ego = (torch.nn.functional.leaky_relu(layers[2 * k](side), 0.2) +
                   torch.nn.functional.leaky_relu(layers[2 * k + 1](ego * side), 0.2))
            if training:
                ego = torch.nn.functional.dropout(ego, 0.1)
            acc.append(torch.nn.functional.normalize(ego, dim=1))
        f = torch.cat(acc, 1)
        return f[:n_users], f[n_users:]

    def forward(training=False):
        if model == "ngcf":
            return forward_ngcf(training)
        if model == "bprmf":
            return user, item
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
        fu, fi = forward(True)
        x = (fu[u] * fi[i]).sum(1) - (fu[u] * fi[j]).sum(1)
        if model == "ngcf":
            loss = torch.nn.functional.softplus(-x).mean()
            loss = loss + 1e-5 * ((fu[u] ** 2).sum() + (fi[i] ** 2).sum() + (fi[j] ** 2).sum()) / 2 / len(b)
        else:
            loss = -torch.log(1e-10 + torch.sigmoid(x)).mean()
            reg = 1e-5 if model == "bprmf" else 1e-4
            loss = loss + reg * (user[u].norm() + item[i].norm() + item[j].norm()) / len(b)
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
