#!/usr/bin/env python3
"""multimodal_peer.py: MMRec's LightGCN, VBPR, FREEDOM, LATTICE and BM3 and the Ducho-meets-Elliot fork's NGCF-M
restated in PyTorch, timed as bench_multimodal times mrec.

    python bench/peers/multimodal_peer.py BABY_SPLIT.tsv THREADS STEPS [DEVICE]

Reads the split (training pairs, x_label 0) and build/bench_mm/{image,text}_feat.npy (written by
bench_multimodal). Prints "knn <seconds>" for FREEDOM's item graph (MMRec's dense similarity and
torch.topk) and "<model> <seconds per step>": the mean of STEPS steps of 2048 triples (forward over
the whole graph as MMRec does, BPR loss, backward, Adam), after one warm-up step, on THREADS threads;
then "eval <seconds>": LightGCN's evaluation as MMRec runs it after an epoch (the forward, the scores of
every test user in batches of 4,096 against all items, training items set to -1e10, torch.topk 20, the
lists brought to the host and Recall / nDCG@20 computed there in numpy, as its TopKEvaluator does),
the second of two.
DEVICE (default cpu) is where the models and data live, "cuda" as MMRec trains; a step's ids are
drawn on the host and sent up inside its time, and on a GPU each step ends waiting for the device.
"""
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def sym_norm(rows, cols, n_rows, n_cols, shape, offset):
    """D^-1/2 A D^-1/2 of the bipartite pairs (degrees + 1e-7), users then items."""
    du = np.bincount(rows, minlength=n_rows) + 1e-7
    di = np.bincount(cols, minlength=n_cols) + 1e-7
    v = (du[rows] ** -0.5 * di[cols] ** -0.5).astype(np.float32)
    idx = np.concatenate([np.stack([rows, cols + offset]), np.stack([cols + offset, rows])], 1)
    return torch.sparse_coo_tensor(torch.from_numpy(idx), torch.from_numpy(np.concatenate([v, v])), shape).coalesce()


def bpr(u, p, n):
    return -F.logsigmoid((u * p).sum(1) - (u * n).sum(1)).mean()


def main():
    path, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    dev = torch.device(sys.argv[4] if len(sys.argv) > 4 else "cpu")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.set_num_threads(threads)
    d = np.loadtxt(path, dtype=np.int64, skiprows=1)
    tr = d[d[:, 2] == 0]
    U, I = int(d[:, 0].max()) + 1, int(d[:, 1].max()) + 1
    N = U + I
    v_feat = torch.from_numpy(np.load("build/bench_mm/image_feat.npy")).to(dev)
    t_feat = torch.from_numpy(np.load("build/bench_mm/text_feat.npy")).to(dev)
    adj = sym_norm(tr[:, 0], tr[:, 1], U, I, (N, N), U).to(dev)

    def param(*shape):
        return torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(*shape, device=dev)))

    def linear(i, o):
        return torch.nn.Linear(i, o).to(dev)
    rng = np.random.default_rng(0)

    def batches():
        while True:
            yield (rng.integers(0, U, 2048), rng.integers(0, I, 2048), rng.integers(0, I, 2048))

    def timed(step_fn, params, pre_epoch=None):
        opt = torch.optim.Adam(params, lr=1e-3)
        it = batches()
        draws = [next(it) for _ in range(steps + 1)]
        # one warm-up step, then the timed ones back to back as MMRec's trainer runs them: each batch's loss read
        # back (total_loss += loss.item()), the time ending when the device is done
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
        return (time.perf_counter() - t0) / steps

    # LATTICE (MMRec, cf_model lightgcn): dense items x items graphs, rebuilt at an epoch's first step
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        gpu0 = torch.cuda.memory_allocated()
    deg = np.concatenate([np.bincount(tr[:, 0], minlength=U), np.bincount(tr[:, 1], minlength=I)]) + 1.0
    idx = np.concatenate([np.stack([tr[:, 0], tr[:, 1] + U]), np.stack([tr[:, 1] + U, tr[:, 0]]), np.stack([np.arange(N)] * 2)], 1)
    mean_adj = torch.sparse_coo_tensor(torch.from_numpy(idx), torch.from_numpy((1.0 / deg[idx[0]]).astype(np.float32)), (N, N)).to(dev)

    def knn_dense(a, k=10):
        val, ind = torch.topk(a, k, dim=-1)
        return torch.zeros_like(a).scatter_(-1, ind, val)

    def lap(a):
        d = torch.pow(torch.sum(a, -1), -0.5)
        d[torch.isinf(d)] = 0.0
        return torch.diagflat(d) @ a @ torch.diagflat(d)

    def sim(x):
        xn = x.div(torch.norm(x, p=2, dim=-1, keepdim=True))
        return xn @ xn.t()
    lvx, ltx = torch.nn.Parameter(v_feat.clone()), torch.nn.Parameter(t_feat.clone())
    lvl, ltl = linear(4096, 64), linear(384, 64)
    with torch.no_grad():
        orig = [lap(knn_dense(sim(v_feat))), lap(knn_dense(sim(t_feat)))]
    ego3 = param(N, 64)
    mw = torch.nn.Parameter(torch.tensor([0.5, 0.5], device=dev))
    st = {"build": True}

    def lattice(u, i, j):
        if st["build"]:
            w = torch.softmax(mw, 0)
            learned = w[0] * knn_dense(sim(lvl(lvx))) + w[1] * knn_dense(sim(ltl(ltx)))
            st["adj"] = 0.1 * lap(learned) + 0.9 * (w[0] * orig[0] + w[1] * orig[1])
            st["build"] = False
        else:
            st["adj"] = st["adj"].detach()
        h = st["adj"] @ ego3[U:]
        acc, layer = [ego3], ego3
        for _ in range(2):
            layer = torch.sparse.mm(mean_adj, layer)
            acc.append(layer)
        f = torch.stack(acc, 1).mean(1)
        fu, fi = f[:U], f[U:] + F.normalize(h, p=2, dim=1)
        a, p_, n_ = fu[u], fi[i], fi[j]
        return bpr(a, p_, n_) + 1e-4 * (0.5 * (a ** 2).sum() + 0.5 * (p_ ** 2).sum() + 0.5 * (n_ ** 2).sum()) / 2048
    params = [ego3, lvx, lvl.weight, lvl.bias, ltx, ltl.weight, ltl.bias, mw]
    opt = torch.optim.Adam(params, lr=1e-3)
    sync()
    t0 = time.perf_counter()
    u, i, j = (torch.from_numpy(rng.integers(0, n, 2048)).to(dev) for n in (U, I, I))
    opt.zero_grad()
    lattice(u, i, j).backward()
    opt.step()
    sync()
    print(f"lattice_build {time.perf_counter() - t0:.4f}", flush=True)
    print(f"LATTICE {timed(lattice, params):.5f}", flush=True)
    if dev.type == "cuda":  # the device's memory: what MMRec runs out of at Elec's size
        print(f"lattice_mb {(torch.cuda.max_memory_allocated() - gpu0) / 2**20:.1f}", flush=True)
    else:
        print(f"lattice_mb {(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024:.1f}", flush=True)

    # LightGCN (MMRec): 2 layers, mean, EmbLoss
    ego = param(N, 64)

    def lightgcn_forward():
        acc, layer = [ego], ego
        for _ in range(2):
            layer = torch.sparse.mm(adj, layer)
            acc.append(layer)
        f = torch.stack(acc, 1).mean(1)
        return f[:U], f[U:]

    def lightgcn(u, i, j):
        fu, fi = lightgcn_forward()
        reg = (ego[u].norm() + ego[U + i].norm() + ego[U + j].norm()) / 2048
        return bpr(fu[u], fi[i], fi[j]) + 1e-4 * reg
    print(f"LightGCN {timed(lightgcn, [ego]):.5f}", flush=True)

    # LightGCN's evaluation after an epoch, as MMRec's trainer and TopKEvaluator run it
    te = d[d[:, 2] == 2]
    test_users = np.unique(te[:, 0])
    train_items = [[] for _ in range(U)]
    for a, b in tr[:, :2]:
        train_items[a].append(b)
    test_items = [set() for _ in range(U)]
    for a, b in te[:, :2]:
        test_items[a].add(b)

    def evaluate():
        with torch.no_grad():
            fu, fi = lightgcn_forward()
            tops = []
            for s in range(0, len(test_users), 4096):
                users = test_users[s:s + 4096]
                scores = fu[torch.from_numpy(users).to(dev)] @ fi.t()
                rows = np.concatenate([np.full(len(train_items[x]), r) for r, x in enumerate(users)])
                cols = np.concatenate([np.asarray(train_items[x], dtype=np.int64) for x in users])
                scores[torch.from_numpy(rows).to(dev), torch.from_numpy(cols).to(dev)] = -1e10
                tops.append(torch.topk(scores, 20, dim=-1)[1])
            top = torch.cat(tops).cpu().numpy()
        hits = np.array([[item in test_items[x] for item in row] for x, row in zip(test_users, top)], dtype=np.float64)
        n_rel = np.array([len(test_items[x]) for x in test_users])
        recall = (hits.sum(1) / n_rel).mean()
        disc = 1.0 / np.log2(np.arange(2, 22))
        idcg = np.array([disc[:min(n, 20)].sum() for n in n_rel])
        ndcg = ((hits * disc).sum(1) / idcg).mean()
        return recall, ndcg
    for _ in range(2):
        sync()
        t0 = time.perf_counter()
        evaluate()
        sync()
        secs = time.perf_counter() - t0
    print(f"eval {secs:.4f}", flush=True)

    # VBPR (MMRec): every item's features projected at each step
    ue = param(U, 128)
    ie = param(I, 64)
    lin = linear(4480, 64)
    raw = torch.cat((t_feat, v_feat), -1)

    def vbpr(u, i, j):
        items = torch.cat((ie, lin(raw)), -1)
        a, p, n = ue[u], items[i], items[j]
        return bpr(a, p, n) + 1e-3 * (a.norm() + p.norm() + n.norm()) / 2048
    print(f"VBPR {timed(vbpr, [ue, ie, lin.weight, lin.bias]):.5f}", flush=True)

    # FREEDOM (MMRec): the dense-similarity kNN graph, edge pruning per epoch, trainable features
    sync()
    t0 = time.perf_counter()

    def knn_adj(x, k=10):
        xn = x.div(torch.norm(x, p=2, dim=-1, keepdim=True))
        _, ind = torch.topk(xn @ xn.t(), k, dim=-1)
        rows = torch.arange(I, device=dev).unsqueeze(1).expand(-1, k).flatten()
        idx = torch.stack((rows, ind.flatten()), 0)
        a = torch.sparse_coo_tensor(idx, torch.ones_like(idx[0]), (I, I))
        r = torch.pow(1e-7 + torch.sparse.sum(a, -1).to_dense(), -0.5)
        return torch.sparse_coo_tensor(idx, r[idx[0]] * r[idx[1]], (I, I))
    mm = (0.1 * knn_adj(v_feat) + 0.9 * knn_adj(t_feat)).coalesce()
    sync()
    print(f"knn {time.perf_counter() - t0:.4f}", flush=True)
    ego2 = param(N, 64)
    vx, tx = torch.nn.Parameter(v_feat.clone()), torch.nn.Parameter(t_feat.clone())
    vl, tl = linear(4096, 64), linear(384, 64)
    rows, cols = torch.from_numpy(tr[:, 0]).to(dev), torch.from_numpy(tr[:, 1]).to(dev)
    du = torch.bincount(rows, minlength=U).float() + 1e-7
    di = torch.bincount(cols, minlength=I).float() + 1e-7
    edge_w = du[rows] ** -0.5 * di[cols] ** -0.5
    state = {}

    def prune():
        keep = torch.multinomial(edge_w, int(len(edge_w) * 0.2))
        r, c = rows[keep], cols[keep]
        ku = torch.bincount(r, minlength=U).float() + 1e-7
        ki = torch.bincount(c, minlength=I).float() + 1e-7
        v = ku[r] ** -0.5 * ki[c] ** -0.5
        idx = torch.cat((torch.stack((r, c + U)), torch.stack((c + U, r))), 1)
        state["adj"] = torch.sparse_coo_tensor(idx, torch.cat((v, v)), (N, N))

    def freedom(u, i, j):
        h = torch.sparse.mm(mm, ego2[U:])
        acc, layer = [ego2], ego2
        for _ in range(2):
            layer = torch.sparse.mm(state["adj"], layer)
            acc.append(layer)
        f = torch.stack(acc, 1).mean(1)
        fu, fi = f[:U], f[U:] + h
        loss = bpr(fu[u], fi[i], fi[j])
        zt, zv = tl(tx), vl(vx)
        return loss + 1e-3 * (bpr(fu[u], zt[i], zt[j]) + bpr(fu[u], zv[i], zv[j]))
    print(f"FREEDOM {timed(freedom, [ego2, vx, tx, vl.weight, vl.bias, tl.weight, tl.bias], prune):.5f}", flush=True)


    # BM3 (MMRec): 1 layer, predictor, cosine losses against dropped-out targets, no negatives
    ego4 = param(N, 64)
    pred = linear(64, 64)
    bvx, btx = torch.nn.Parameter(v_feat.clone()), torch.nn.Parameter(t_feat.clone())
    bvl, btl = linear(4096, 64), linear(384, 64)
    cos = F.cosine_similarity

    def bm3(u, i, j):
        f = torch.stack([ego4, torch.sparse.mm(adj, ego4)], 1).mean(1)
        uo, io = f[:U], f[U:] + ego4[U:]
        zt, zv = btl(btx), bvl(bvx)
        with torch.no_grad():
            ut, it, ztt, zvt = (F.dropout(x.clone(), 0.3) for x in (uo, io, zt, zv))
        loss = (1 - cos(pred(uo)[u], it[i], dim=-1).mean()) + (1 - cos(pred(io)[i], ut[u], dim=-1).mean())
        loss = loss + 0.1 * (torch.norm(uo) + torch.norm(io)) / I
        for z, zt_ in ((zt, ztt), (zv, zvt)):
            zo = pred(z)[i]
            loss = loss + 2.0 * ((1 - cos(zo, it[i], dim=-1).mean()) + (1 - cos(zo, zt_[i], dim=-1).mean()))
        return loss
    print(f"BM3 {timed(bm3, [ego4, pred.weight, pred.bias, bvx, bvl.weight, bvl.bias, btx, btl.weight, btl.bias]):.5f}", flush=True)

    # NGCF-M (the fork): 3 layers over D^-1 (A + I), message dropout 0.5, normalized outputs, the mean
    ego5 = param(N, 64)
    lw = [param(*s) for _ in range(3) for s in ((64, 64), (1, 64), (64, 64), (1, 64))]
    tu = param(U, 64)
    proj = linear(4480, 64)

    def ngcfm(u, i, j):
        acc = [ego5]
        for l in range(3):
            w1, b1, w2, b2 = lw[4 * l:4 * l + 4]
            x = acc[l]
            side = torch.sparse.mm(mean_adj, x)
            acc.append(F.normalize(F.dropout(F.leaky_relu(side @ w1 + b1 + (side * x) @ w2 + b2, 0.2), 0.5), p=2, dim=1))
        g = torch.stack(acc, 1).mean(1)
        gu, gi = g[:U], g[U:]
        p_ = F.normalize(proj(raw), p=2, dim=1)
        xp = (gu[u] * gi[i]).sum(1) + (tu[u] * p_[i]).sum(1)
        xn = (gu[u] * gi[j]).sum(1) + (tu[u] * p_[j]).sum(1)
        reg = gu[u].norm().pow(2) + gi[i].norm().pow(2) + gi[j].norm().pow(2) + tu[u].norm().pow(2) + p_[i].norm().pow(2) + p_[j].norm().pow(2)
        return torch.mean(F.softplus(-torch.clamp(xp - xn, -80.0, 1e8))) + 0.01 * 0.5 * reg / len(u)
    print(f"NGCF-M {timed(ngcfm, [ego5] + lw + [tu, proj.weight, proj.bias]):.5f}", flush=True)


if __name__ == "__main__":
    main()
