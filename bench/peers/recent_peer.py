#!/usr/bin/env python3
"""recent_peer.py: MGCN and LGMRec (MMRec), PGL, SMORE and MENTOR (their authors' code, on MMRec) restated in
PyTorch as their reference code computes them, timed as bench_recent times mrec.

    python bench/peers/recent_peer.py BABY_SPLIT.tsv THREADS STEPS [DEVICE]

Reads the split (training pairs, x_label 0) and build/bench_mm/{image,text}_feat.npy (written by bench_recent).
Prints "<model> <seconds per step>": the mean of STEPS steps of 2048 triples (forward over the whole graph, loss,
backward, Adam), after one warm-up step that also runs the epoch's preparation (PGL's edge draw), on THREADS
threads; and "<model>_build <seconds>" for the graphs built once (kNN item graphs). Hyper-parameters are mrec's
defaults (bench_recent prints them). Sparse where the reference is sparse (the user-item graphs, R, the kNN item
graphs: torch.sparse.mm), dense where it is dense (LGMRec's hypergraph products and its contrast against every
user or item, MENTOR's InfoNCE over all users and all items); the noise is torch's (dropout, gumbel_softmax,
rand). MENTOR's message passing (torch_geometric in the reference) is the same sum as a sparse product, and its
gradient-free masking term is left out, as in mrec. DEVICE (default cpu) is where everything lives (torch's default
device), "cuda" as the references train; a step's ids are drawn on the host and sent up inside its time, and every
timed span ends waiting for the device.
"""
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

B = 2048
warnings.filterwarnings("ignore", "Sparse invariant checks")  # coalesced COO built here


def bpr(u, p, n):
    return -F.logsigmoid((u * p).sum(1) - (u * n).sum(1)).mean()


def info_nce(a, b, t):
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    pos = torch.exp((a * b).sum(-1) / t)
    ttl = torch.exp(a @ b.t() / t).sum(1)
    return torch.mean(-torch.log(pos / ttl))


def sparse(rows, cols, vals, shape):
    return torch.sparse_coo_tensor(torch.stack((rows, cols)), vals, shape).coalesce()


def ui_graph(r, c, U, I, eps):
    """D^-1/2 A D^-1/2 of the bipartite pairs, users then items (eps 0: zero degrees give 0)."""
    du = torch.bincount(r, minlength=U).float() + eps
    di = torch.bincount(c, minlength=I).float() + eps
    v = du[r].pow(-0.5) * di[c].pow(-0.5)
    return sparse(torch.cat((r, c + U)), torch.cat((c + U, r)), torch.cat((v, v)), (U + I, U + I))


def knn_sim(x, k):
    """MMRec's build_sim + build_knn_normalized_graph(is_sparse=True, 'sym'): top-k similarities, sym-normalized."""
    xn = x.div(torch.norm(x, p=2, dim=-1, keepdim=True))
    val, ind = torch.topk(xn @ xn.t(), k, dim=-1)
    row = torch.arange(len(ind)).repeat_interleave(k)
    v = val.flatten()
    d = torch.zeros(len(ind)).scatter_add(0, row, v).pow(-0.5)
    d[torch.isinf(d)] = 0.0
    return sparse(row, ind.flatten(), d[row] * v * d[ind.flatten()], (len(ind), len(ind)))


def knn_binary(x, k):
    """FREEDOM's get_knn_adj_mat + compute_normalized_laplacian: top-k ones, sym-normalized (degrees + 1e-7)."""
    xn = x.div(torch.norm(x, p=2, dim=-1, keepdim=True))
    _, ind = torch.topk(xn @ xn.t(), k, dim=-1)
    row = torch.arange(len(ind)).repeat_interleave(k)
    d = (1e-7 + torch.full((len(ind),), float(k))).pow(-0.5)
    return sparse(row, ind.flatten(), d[row] * d[ind.flatten()], (len(ind), len(ind)))


def lightgcn(adj, ego, layers):
    acc = [ego]
    for _ in range(layers):
        acc.append(torch.sparse.mm(adj, acc[-1]))
    return torch.stack(acc, 1).mean(1)


def xavier(*shape):
    return torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(*shape)))


def main():
    path, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    dev = torch.device(sys.argv[4] if len(sys.argv) > 4 else "cpu")
    torch.set_default_device(dev)  # every factory call below (parameters, layers, aranges, noise) makes its tensor there
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    d = np.loadtxt(path, dtype=np.int64, skiprows=1)
    tr = d[d[:, 2] == 0]
    U, I = int(d[:, 0].max()) + 1, int(d[:, 1].max()) + 1
    N = U + I
    v_feat = torch.from_numpy(np.load("build/bench_mm/image_feat.npy")).to(dev)
    t_feat = torch.from_numpy(np.load("build/bench_mm/text_feat.npy")).to(dev)
    rows, cols = torch.from_numpy(tr[:, 0]).to(dev), torch.from_numpy(tr[:, 1]).to(dev)
    R = sparse(rows, cols, torch.ones(len(rows)), (U, I))
    rng = np.random.default_rng(0)

    only = os.environ.get("MREC_BENCH_MODELS")  # as bench_recent: time only these

    def timed(name, step_fn, params, lr, pre_epoch=None):
        if only and name not in only.split():
            return
        opt = torch.optim.Adam(params, lr=lr)
        draws = [[rng.integers(0, n, B) for n in (U, I, I)] for _ in range(steps + 1)]
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
        print(f"{name} {(time.perf_counter() - t0) / steps:.5f}", flush=True)

    # ---- MGCN (MMRec src/models/mgcn.py): dim 64, 2 ui layers, 1 item layer, knn_k 10, reg 1e-4, cl 0.01, t 0.2
    t0 = time.perf_counter()
    adj0 = ui_graph(rows, cols, U, I, 0.0)  # get_adj_mat: zero degrees give 0
    item_adj = [knn_sim(v_feat, 10), knn_sim(t_feat, 10)]
    sync()
    print(f"mgcn_build {time.perf_counter() - t0:.4f}", flush=True)
    # R: the user-item block of the normalized adjacency (MMRec's self.R)
    du = torch.bincount(rows, minlength=U).float()
    di = torch.bincount(cols, minlength=I).float()
    Rn = sparse(rows, cols, du[rows].pow(-0.5) * di[cols].pow(-0.5), (U, I))
    eu, ei = xavier(U, 64), xavier(I, 64)
    feats = [torch.nn.Parameter(v_feat.clone()), torch.nn.Parameter(t_feat.clone())]
    trs = [torch.nn.Linear(4096, 64), torch.nn.Linear(384, 64)]
    gate = [torch.nn.Linear(64, 64) for _ in range(2)]
    prefer = [torch.nn.Linear(64, 64) for _ in range(2)]
    query, query2 = torch.nn.Linear(64, 64), torch.nn.Linear(64, 1, bias=False)

    def mgcn(u, i, j):
        content = lightgcn(adj0, torch.cat((eu, ei), 0), 2)
        views = []
        for f, t, g, s in zip(feats, trs, gate, item_adj):
            h = torch.sparse.mm(s, ei * torch.sigmoid(g(t(f))))
            views.append(torch.cat((torch.sparse.mm(Rn, h), h), 0))
        w = torch.softmax(torch.cat([query2(torch.tanh(query(v))) for v in views], -1), -1)
        common = w[:, 0:1] * views[0] + w[:, 1:2] * views[1]
        side = (common + sum(torch.sigmoid(p(content)) * (v - common) for v, p in zip(views, prefer))) / 3
        final = content + side
        a, p_, n_ = final[u], final[U + i], final[U + j]
        reg = 1e-4 * (0.5 * (a ** 2).sum() + 0.5 * (p_ ** 2).sum() + 0.5 * (n_ ** 2).sum()) / B
        cl = info_nce(side[U + i], content[U + i], 0.2) + info_nce(side[u], content[u], 0.2)
        return bpr(a, p_, n_) + reg + 0.01 * cl
    params = [eu, ei] + feats + [q for m in trs + gate + prefer + [query, query2] for q in m.parameters()]
    timed("mgcn", mgcn, params, 1e-3)
    del item_adj, feats

    # ---- LGMRec (MMRec src/models/lgmrec.py): dim 64, 2 ui and 2 mm layers, 1 hyper layer, 4 hyperedges, keep 0.5,
    # alpha 0.3, cl 1e-4, reg 1e-6, tau 0.2; fixed features
    adj7 = ui_graph(rows, cols, U, I, 1e-7)
    inv = (1.0 / (du + 1e-7)).unsqueeze(1)
    eu, ei = xavier(U, 64), xavier(I, 64)
    W = [xavier(4096, 64), xavier(384, 64)]
    H = [xavier(4096, 4), xavier(384, 4)]

    def lgmrec(u, i, j):
        cge = lightgcn(adj7, torch.cat((eu, ei), 0), 2)
        mge, hyper = [], []
        for f, w, h in zip((v_feat, t_feat), W, H):
            i_hyper = f @ h
            u_hyper = torch.sparse.mm(R, i_hyper)
            i_dep = F.dropout(F.gumbel_softmax(i_hyper, 0.2, dim=1), 0.5)
            u_dep = F.dropout(F.gumbel_softmax(u_hyper, 0.2, dim=1), 0.5)
            item_feats = f @ w
            x = torch.cat((torch.sparse.mm(R, item_feats) * inv, item_feats), 0)
            for _ in range(2):
                x = torch.sparse.mm(adj7, x)
            mge.append(x)
            lat = i_dep.t() @ cge[U:]
            hyper.append((u_dep @ lat, i_dep @ lat))
        lge = cge + F.normalize(mge[0]) + F.normalize(mge[1])
        ghe = torch.cat(hyper[0], 0) + torch.cat(hyper[1], 0)
        out = lge + 0.3 * F.normalize(ghe)
        a, p_, n_ = out[u], out[U + i], out[U + j]
        (uv, iv), (ut, it) = hyper

        def ssl(e1, e2, every):
            n1, n2, na = F.normalize(e1), F.normalize(e2), F.normalize(every)
            return -torch.log(torch.exp((n1 * n2).sum(1) / 0.2) / torch.exp(n1 @ na.t() / 0.2).sum(1)).sum()
        cl = ssl(uv[u], ut[u], ut) + ssl(iv[i], it[i], it)
        reg = (torch.norm(a) + torch.norm(p_) + torch.norm(n_)) / B
        return bpr(a, p_, n_) + 1e-4 * cl + 1e-6 * reg
    timed("lgmrec", lgmrec, [eu, ei] + W + H, 1e-3)

    # ---- PGL (demonph10/PGL, local): 64 per modality, 2 ui layers, 1 item layer, FREEDOM's graph (k 10, 0.1 / 0.9),
    # 30 % of the edges drawn by torch.multinomial each epoch, cl 0.05, dropout 0.2, t 0.2
    t0 = time.perf_counter()
    mm_adj = (0.1 * knn_binary(v_feat, 10) + 0.9 * knn_binary(t_feat, 10)).coalesce()
    sync()
    print(f"pgl_build {time.perf_counter() - t0:.4f}", flush=True)
    edge_w = (du + 1e-7)[rows].pow(-0.5) * (di + 1e-7)[cols].pow(-0.5)
    user = torch.nn.Parameter(torch.cat((xavier(U, 64).data, xavier(U, 64).data), 1))
    feats = [torch.nn.Parameter(v_feat.clone()), torch.nn.Parameter(t_feat.clone())]
    trs = [torch.nn.Linear(4096, 64), torch.nn.Linear(384, 64)]
    state = {}

    def pre_epoch():
        keep = torch.multinomial(edge_w, int(len(edge_w) * 0.3))
        state["adj"] = ui_graph(rows[keep], cols[keep], U, I, 1e-7)

    def pgl(u, i, j):
        items = torch.cat([F.normalize(t(f)) for f, t in zip(feats, trs)], 1)
        h = torch.sparse.mm(mm_adj, items)
        e = lightgcn(state["adj"], torch.cat((user, items), 0), 2)
        a, p_, n_ = e[u], e[U + i] + h[i], e[U + j] + h[j]
        cl = (info_nce(F.dropout(a, 0.2), F.dropout(a, 0.2), 0.2) + info_nce(F.dropout(p_, 0.2), F.dropout(p_, 0.2), 0.2)) / 2
        return bpr(a, p_, n_) + 0.05 * cl
    timed("pgl", pgl, [user] + feats + [q for m in trs for q in m.parameters()], 1e-3, pre_epoch)
    del feats

    # ---- SMORE (kennethorq/SMORE): dim 64, 4 ui layers, 1 item layer, image k 40, text k 15, the max-pool fusion,
    # spectral filters by torch.fft, preference dropout 0.1, reg 1e-4, cl 0.01, t 0.2
    t0 = time.perf_counter()
    ia, ta = knn_sim(v_feat, 40), knn_sim(t_feat, 15)
    comb, inv_ = torch.unique(torch.cat((ia.indices(), ta.indices()), 1), dim=1, return_inverse=True)
    vi, vt = torch.full((comb.size(1),), float("-inf")), torch.full((comb.size(1),), float("-inf"))
    vi[inv_[:ia.indices().size(1)]] = ia.values()
    vt[inv_[ia.indices().size(1):]] = ta.values()
    fa = torch.sparse_coo_tensor(comb, torch.max(vi, vt), ia.size()).coalesce()
    item_adj = [ia, ta, fa]
    sync()
    print(f"smore_build {time.perf_counter() - t0:.4f}", flush=True)
    eu, ei = xavier(U, 64), xavier(I, 64)
    feats = [torch.nn.Parameter(v_feat.clone()), torch.nn.Parameter(t_feat.clone())]
    trs = [torch.nn.Linear(4096, 64), torch.nn.Linear(384, 64)]
    cw = [torch.nn.Parameter(torch.randn(1, 33, 2)) for _ in range(3)]
    gate = [torch.nn.Linear(64, 64) for _ in range(3)]
    prefer = [torch.nn.Linear(64, 64) for _ in range(3)]
    query = [torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64, bias=False)) for _ in range(2)]

    def smore(u, i, j):
        content = lightgcn(adj0, torch.cat((eu, ei), 0), 4)
        fv = torch.fft.rfft(trs[0](feats[0]), dim=1, norm="ortho")
        ft = torch.fft.rfft(trs[1](feats[1]), dim=1, norm="ortho")
        wv, wt, wf = (torch.view_as_complex(w) for w in cw)
        convs = [torch.fft.irfft(fv * wv, n=64, dim=1, norm="ortho"), torch.fft.irfft(ft * wt, n=64, dim=1, norm="ortho"),
                 torch.fft.irfft(fv * ft * wf, n=64, dim=1, norm="ortho")]
        views = []
        for conv, g, s in zip(convs, gate, item_adj):
            h = torch.sparse.mm(s, ei * torch.sigmoid(g(conv)))
            views.append(torch.cat((torch.sparse.mm(Rn, h), h), 0))
        mv, mt, mf = views
        agg_v = torch.softmax(query[0](mf), -1) * mv
        agg_t = torch.softmax(query[1](mf), -1) * mt
        pv, pt, pf = (F.dropout(torch.sigmoid(p(content)), 0.1) for p in prefer)
        side = torch.mean(torch.stack([pv * agg_v, pt * agg_t, pf * mf]), dim=0)
        final = content + side
        a, p_, n_ = final[u], final[U + i], final[U + j]
        reg = 1e-4 * (0.5 * (a ** 2).sum() + 0.5 * (p_ ** 2).sum() + 0.5 * (n_ ** 2).sum()) / B
        cl = info_nce(side[U + i], content[U + i], 0.2) + info_nce(side[u], content[u], 0.2)
        return bpr(a, p_, n_) + reg + 0.01 * cl
    params = [eu, ei] + feats + cw + [q for m in trs + gate + prefer + query for q in m.parameters()]
    timed("smore", smore, params, 1e-3)
    del item_adj, feats

    # ---- MENTOR (Jinfeng-Xu/MENTOR): dim 64, seven two-layer graph networks (noise 0.1 on four), FREEDOM's graph
    # (1 layer), reg 1e-3, align 0.1, mask_g 1e-4 over ALL users and items (dense), t 0.2, lr 1e-4
    class GCN(torch.nn.Module):
        def __init__(self, f):
            super().__init__()
            self.pref = torch.nn.Parameter(torch.nn.init.xavier_normal_(torch.empty(U, 64)))
            self.mlp, self.mlp1 = torch.nn.Linear(f, 256), torch.nn.Linear(256, 64)

        def forward(self, x, noisy):
            x = F.normalize(torch.cat((self.pref, self.mlp1(F.leaky_relu(self.mlp(x)))), 0))
            h = torch.sparse.mm(adj0, x)
            if noisy:
                h = h + torch.sign(h) * F.normalize(torch.rand_like(h), dim=-1) * 0.1
            h1 = torch.sparse.mm(adj0, h)
            if noisy:
                h1 = h1 + torch.sign(h1) * F.normalize(torch.rand_like(h1), dim=-1) * 0.1
            return x + h + h1
    src = [v_feat, t_feat, None, v_feat, t_feat, v_feat, t_feat]
    nets = [GCN(64 if s is None else s.shape[1]) for s in src]
    id_feat = torch.nn.Parameter(torch.nn.init.xavier_normal_(torch.empty(I, 64)))
    weight_u = torch.nn.Parameter(F.softmax(torch.nn.init.xavier_normal_(torch.empty(U, 2, 1)), dim=1))

    def mentor(u, i, j):
        reps = [g(id_feat if s is None else s, k >= 3) for k, (g, s) in enumerate(zip(nets, src))]
        w = weight_u.squeeze(-1)

        def table(a, b, weighted):
            ua, ub = (w[:, 0:1] * a[:U], w[:, 1:2] * b[:U]) if weighted else (a[:U], b[:U])
            items = torch.cat((a[U:], b[U:]), 1)
            return torch.cat((torch.cat((ua, ub), 1), items + torch.sparse.mm(mm_adj, items)), 0)
        v, t, idr, v1, t1, v2, t2 = reps
        tabs = [table(v, t, True), table(idr, idr, False), table(v, v, False), table(t, t, False), table(v1, t1, True),
                table(v2, t2, True)]
        r = tabs[0]
        loss = -torch.mean(torch.log2(torch.sigmoid((r[u] * r[U + i]).sum(1) - (r[u] * r[U + j]).sum(1))))
        loss = loss + 1e-3 * ((nets[0].pref[u] ** 2).mean() + (nets[1].pref[u] ** 2).mean() + (weight_u ** 2).mean())
        stats = [(torch.var(x), torch.mean(x)) for x in tabs[:4]]
        loss = loss + 0.1 * sum(torch.abs(stats[a][0] - stats[b][0]) + torch.abs(stats[a][1] - stats[b][1])
                                for a in range(4) for b in range(a + 1, 4))
        return loss + 1e-4 * (info_nce(tabs[4][:U], tabs[5][:U], 0.2) + info_nce(tabs[4][U:], tabs[5][U:], 0.2))
    timed("mentor", mentor, [q for g in nets for q in g.parameters()] + [id_feat, weight_u], 1e-4)


if __name__ == "__main__":
    main()
