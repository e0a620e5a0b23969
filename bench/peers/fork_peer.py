#!/usr/bin/env python3
"""fork_peer.py: the Ducho-meets-Elliot benchmark's Elliot fork's GRCN, MMGCN, LightGCN-M, SGL and
SimGCL (external/models/*) restated in PyTorch and timed as bench_recent times mrec.

    python bench/peers/fork_peer.py BABY_SPLIT.tsv THREADS STEPS [DEVICE]

Reads the split (training pairs, x_label 0) and build/bench_mm/{image,text}_feat.npy (written by
bench_recent). Prints "<model> <seconds per step>": the mean of STEPS steps (forward over the whole
graph, loss, backward, Adam) after one warm-up step (which also draws SGL's views for the epoch), on
THREADS threads, at mrec's defaults (which bench_recent prints). GRCN's message passing
(torch_geometric's gather, segment softmax and scatter-add; torch_sparse's weighted product) is
written with index_select and index_add, which do the same work; the other models' graph products
(LGConv, torch_sparse's matmul with mean or sum) as torch.sparse.mm. DEVICE (default cpu) is where
everything lives (torch's default device); a step's ids are drawn on the host and sent up inside its
time, which ends waiting for the device.
"""
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore", "Sparse invariant checks")  # coalesced COO built here


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
    dev = torch.device(sys.argv[4] if len(sys.argv) > 4 else "cpu")
    torch.set_default_device(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    d = np.loadtxt(path, dtype=np.int64, skiprows=1)
    tr = d[d[:, 2] == 0]
    tr = tr[np.lexsort((tr[:, 1], tr[:, 0]))]  # sp_i_train.nonzero(): user-major, items increasing
    U, I = int(d[:, 0].max()) + 1, int(d[:, 1].max()) + 1
    N = U + I
    feats = [torch.from_numpy(np.load(f"build/bench_mm/{m}_feat.npy")).to(dev) for m in ("image", "text")]
    rows, items = torch.from_numpy(tr[:, 0]).to(dev), torch.from_numpy(tr[:, 1]).to(dev)
    dst, src = torch.cat((rows, items + U)), torch.cat((items + U, rows))  # both directions
    rng = np.random.default_rng(0)
    only = os.environ.get("MREC_BENCH_MODELS")

    def timed(name, step_fn, params, lr, batch, pre_epoch=None):
        if only and name not in only.split():
            return
        opt = torch.optim.Adam(params, lr=lr)
        draws = [[rng.integers(0, n, batch) for n in (U, I, I)] for _ in range(steps + 1)]
        # one warm-up step, then the timed ones back to back as Elliot's loop runs them: each batch's loss read
        # back (its train_step returns it as a number), the time ending when the device is done
        for k, ids in enumerate(draws):
            if k == 1:
                sync()
                t0 = time.perf_counter()
            u, i, j = (torch.from_numpy(x).to(dev) for x in ids)
            if pre_epoch and k == 0:
                pre_epoch()
            opt.zero_grad()
            loss = step_fn(u, i, j)
            loss.backward()
            opt.step()
            loss.item()
        sync()
        print(f"{name} {(time.perf_counter() - t0) / steps:.5f}", flush=True)

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

    def adjacency(keep=None, mean=False):
        """The bipartite graph of the kept pairs, both directions: D^-1/2 A D^-1/2 (LGConv), or D^-1 A (mean)."""
        r, c = (rows, items) if keep is None else (rows[keep], items[keep])
        a, b = torch.cat((r, c + U)), torch.cat((c + U, r))
        deg = torch.bincount(a, minlength=N).float()
        inv = deg.pow(-1.0 if mean else -0.5)
        inv[torch.isinf(inv)] = 0.0
        v = inv[a] if mean else inv[a] * inv[b]
        return torch.sparse_coo_tensor(torch.stack((a, b)), v, (N, N)).coalesce()
    adj, adj_mean = adjacency(), adjacency(mean=True)

    def mean_of_layers(a, x, layers, with_ego=True, noise=0.0):
        outs = [x] if with_ego else []
        for _ in range(layers):
            x = torch.sparse.mm(a, x)
            if noise:
                x = x + torch.sign(x) * F.normalize(torch.rand_like(x), dim=-1) * noise
            outs.append(x)
        return torch.stack(outs, 1).mean(1)

    def info_nce(v1, v2, t):
        v1, v2 = F.normalize(v1, dim=1), F.normalize(v2, dim=1)
        return -torch.diag(F.log_softmax(v1 @ v2.T / t, dim=1)).mean()

    # ---- MMGCN: dim 64, 3 layers, visual projected to 256, textual as it is, mean aggregation, no concatenation,
    # id embeddings added, lr 1e-5, l_w 1e-5
    Gu, Gi = xavier(U, dim), xavier(I, dim)
    mods = []
    for f, dm in zip(feats, (256, None)):
        k0 = dm or f.shape[1]
        mods.append(dict(gum=xavier(U, k0), proj=torch.nn.Linear(f.shape[1], dm) if dm else None,
                         c=[xavier(k0 if l == 0 else dim, k0 if l == 0 else dim) for l in range(3)],
                         l=[torch.nn.Linear(k0 if l == 0 else dim, dim) for l in range(3)],
                         g=[torch.nn.Linear(k0 if l == 0 else dim, dim) for l in range(3)]))

    def mmgcn(u, i, j):
        ego, reps = torch.cat((Gu, Gi), 0), []
        for m, f in zip(mods, feats):
            x = F.normalize(torch.cat((m["gum"], m["proj"](f) if m["proj"] else f), 0))
            for l in range(3):
                h = F.leaky_relu(torch.sparse.mm(adj_mean, x @ m["c"][l]))
                x = F.leaky_relu(m["g"][l](h) + F.leaky_relu(m["l"][l](x)) + ego)
            reps.append(x)
        x = torch.stack(reps).mean(0)
        xu, xi = x[:U], x[U:]
        loss = -torch.mean(torch.log(torch.sigmoid((xu[u] * xi[i]).sum(1) - (xu[u] * xi[j]).sum(1))))
        return loss + 1e-5 * ((Gu[torch.cat((u, u))].pow(2) + Gi[torch.cat((i, j))].pow(2)).mean() + mods[0]["gum"].pow(2).mean())
    params = [Gu, Gi]
    for m in mods:
        params += [m["gum"]] + m["c"] + [q for mod in m["l"] + m["g"] + ([m["proj"]] if m["proj"] else []) for q in mod.parameters()]
    timed("mmgcn", mmgcn, params, 1e-5, 1024)

    # ---- LightGCN-M: dim 64, 1 layer, the features trained with their projections, their mean, lr 5e-4, l_w 1e-2
    user = xavier(U, dim)
    fs = [torch.nn.Parameter(f.clone()) for f in feats]
    lins = [torch.nn.Linear(f.shape[1], dim) for f in feats]

    def lightgcnm(u, i, j):
        x = torch.stack([F.normalize(lin(f), dim=1) for f, lin in zip(fs, lins)], -1).mean(-1)
        out = mean_of_layers(adj, torch.cat((user, x), 0), 1)
        gu, gi = out[:U], out[U:]
        loss = torch.mean(F.softplus((gu[u] * gi[j]).sum(1) - (gu[u] * gi[i]).sum(1)))
        return loss + 1e-2 * 0.5 * (user[u].norm(2).pow(2) + gi[i].norm(2).pow(2) + gi[j].norm(2).pow(2)) / float(len(u))
    timed("lightgcnm", lightgcnm, [user] + fs + [q for lin in lins for q in lin.parameters()], 5e-4, 2048)
    del fs

    # ---- SGL: dim 64, 1 layer, node dropout 0.1 (two views drawn each epoch), InfoNCE against all users and all
    # items (t 0.2, weight 0.1), lr 5e-4, l_w 1e-2
    ego = xavier(N, dim)
    views = []

    def draw_views():
        views.clear()
        for _ in range(2):
            kept = torch.rand(N) >= 0.1
            views.append(adjacency(kept[rows] & kept[items + U]))

    def sgl(u, i, j):
        f = mean_of_layers(adj, ego, 1)
        v1, v2 = (F.normalize(mean_of_layers(v, ego, 1), dim=1) for v in views)
        gu, gi = f[:U], f[U:]
        sup = (gu[u] * gi[i]).sum(1) - (gu[u] * gi[j]).sum(1)
        lu = v1[:U][u] @ v2[:U].T - (v1[:U][u] * v2[:U][u]).sum(1)[:, None]
        li = v1[U:][i] @ v2[U:].T - (v1[U:][i] * v2[U:][i]).sum(1)[:, None]
        reg = 0.5 * (ego[u].pow(2).sum() + ego[U + i].pow(2).sum() + ego[U + j].pow(2).sum())
        nce = torch.sum(torch.logsumexp(lu / 0.2, dim=1) + torch.logsumexp(li / 0.2, dim=1))
        return -torch.sum(F.logsigmoid(sup)) + 0.1 * nce + 1e-2 * reg
    timed("sgl", sgl, [ego], 5e-4, 2048, draw_views)

    # ---- SimGCL: dim 64, 3 layers, noise 0.1, InfoNCE of two noisy views over the batch's users and items (t 0.2,
    # weight 0.5), lr 1e-4, l_w 1e-4
    ego = xavier(N, dim)

    def simgcl(u, i, j):
        f = mean_of_layers(adj, ego, 3, with_ego=False)
        ue, pe, ne = f[:U][u], f[U:][i], f[U:][j]
        rec = torch.mean(-torch.log(10e-6 + torch.sigmoid((ue * pe).sum(1) - (ue * ne).sum(1))))
        l2 = 1e-4 * (torch.norm(ue, p=2) / ue.shape[0] + torch.norm(pe, p=2) / pe.shape[0])
        v1, v2 = (mean_of_layers(adj, ego, 3, with_ego=False, noise=0.1) for _ in range(2))
        uu, ii = torch.unique(u), torch.unique(i)
        cl = info_nce(v1[:U][uu], v2[:U][uu], 0.2) + info_nce(v1[U:][ii], v2[U:][ii], 0.2)
        return rec + l2 + 0.5 * cl
    timed("simgcl", simgcl, [ego], 1e-4, 1024)


if __name__ == "__main__":
    main()
