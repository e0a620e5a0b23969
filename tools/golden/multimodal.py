#!/usr/bin/env python3
"""multimodal.py: PyTorch training trajectories for mrec's multimodal recommenders.

    python tools/golden/multimodal.py

Writes tests/fixtures/multimodal/trajectory.json: a small random interaction graph, two random
feature matrices (visual 6-d, textual 5-d), initial weights (PyTorch's initializers, seed 0),
fixed batches of (user, positive, negative) triples, and for each model the loss at every Adam
step and the weights after the last step. The models are MMRec's (src/models/*.py) restated in
plain PyTorch with dropout off:
  VBPR: u (users x 2d) . [i ; Linear(cat(textual, visual))], BPRLoss -mean log(1e-10 + sigmoid),
        EmbLoss (Frobenius norms of the batch's user and item rows over the batch size).
  LATTICE: cf_model lightgcn (2 layers over D^-1 (A + I)), one item-graph layer, k 3, lambda 0.9,
        modal weights [0.5, 0.5] (visual, textual), the learned graph built at the first batch and
        detached for the others, as MMRec's build_item_graph flag does; reg over batch_size 32.
  BM3: LightGCN (2 layers) + the item id embedding, a shared predictor, cosine losses against detached
        targets (dropout off, so the targets are the views themselves), EmbLoss over every row, cl 2.
  NGCF-M (the Ducho-meets-Elliot fork): layers lrelu(S W1 + b1 + (S * x) W2 + b2) over D^-1 (A + I),
        each fed the previous normalized output, the mean of the layers, + <T_u, normalize(Linear(f_i))>
        with f = cat(visual, textual); softplus loss on clamped differences, l_w / 2 squared norms.
  FREEDOM: the frozen kNN item graph (k = 3, visual weight 0.1, textual 0.9; also written out dense,
        for the graph test), LightGCN (2 layers) on the full normalized graph (edge pruning off),
        trainable features and Linear projections, BPR + reg * the modality BPR losses.
"""
import json
import os

import numpy as np
import torch

OUT = "tests/fixtures/multimodal"


def bpr_loss(pos, neg):
    return -torch.log(1e-10 + torch.sigmoid(pos - neg)).mean()


def emb_loss(*embs):
    return sum(torch.norm(e, p=2) for e in embs) / embs[-1].shape[0]


def flat(t):
    return t.detach().numpy().ravel().tolist()


def run_vbpr(feat, user0, item0, w0, b0, reg, lr, batches):
    user = torch.nn.Parameter(torch.tensor(user0))
    item = torch.nn.Parameter(torch.tensor(item0))
    lin = torch.nn.Linear(feat.shape[1], item0.shape[1])
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(w0))
        lin.bias.copy_(torch.tensor(b0))
    f = torch.tensor(feat)
    opt = torch.optim.Adam([user, item, lin.weight, lin.bias], lr=lr)
    losses = []
    for u, i, j in batches:
        u, i, j = torch.tensor(u), torch.tensor(i), torch.tensor(j)
        opt.zero_grad()
        items = torch.cat((item, lin(f)), -1)
        ue, pe, ne = user[u], items[i], items[j]
        loss = bpr_loss((ue * pe).sum(1), (ue * ne).sum(1)) + reg * emb_loss(ue, pe, ne)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return {"losses": losses, "weights": [flat(user), flat(item), flat(lin.weight), flat(lin.bias)]}


def knn_adj(x, k):
    """MMRec's FREEDOM.get_knn_adj_mat + compute_normalized_laplacian, dense at the end."""
    n = x.shape[0]
    xn = x.div(torch.norm(x, p=2, dim=-1, keepdim=True))
    _, ind = torch.topk(xn @ xn.t(), k, dim=-1)
    rows = torch.arange(n).unsqueeze(1).expand(-1, k).flatten()
    idx = torch.stack((rows, ind.flatten()), 0)
    adj = torch.sparse_coo_tensor(idx, torch.ones_like(idx[0]), (n, n))
    r = torch.pow(1e-7 + torch.sparse.sum(adj, -1).to_dense(), -0.5)
    return torch.sparse_coo_tensor(idx, r[idx[0]] * r[idx[1]], (n, n))


def norm_adj(n_users, n_items, pairs):
    n = n_users + n_items
    a = np.zeros((n, n), dtype=np.float64)
    for u, i in pairs:
        a[u, n_users + i] = a[n_users + i, u] = 1.0
    d = np.power((a > 0).sum(axis=1) + 1e-7, -0.5)
    l = (d[:, None] * a * d[None, :]).astype(np.float32)
    idx = np.nonzero(l)
    return torch.sparse_coo_tensor(np.array(idx), l[idx], (n, n)).coalesce()


def logsig_bpr(users, pos, neg):
    return -torch.mean(torch.nn.functional.logsigmoid((users * pos).sum(1) - (users * neg).sum(1)))


def run_freedom(n_users, adj, mm_adj, ego0, feats, lins, reg, lr, batches):
    ego = torch.nn.Parameter(torch.tensor(ego0))
    xs = [torch.nn.Parameter(torch.tensor(f)) for f in feats]
    params = [ego]
    for lin, x in zip(lins, xs):
        params += [lin.weight, lin.bias, x]
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for u, i, j in batches:
        u, i, j = torch.tensor(u), torch.tensor(i), torch.tensor(j)
        opt.zero_grad()
        h = torch.sparse.mm(mm_adj, ego[n_users:])
        layer, acc = ego, [ego]
        for _ in range(2):
            layer = torch.sparse.mm(adj, layer)
            acc.append(layer)
        final = torch.stack(acc, 1).mean(1)
        fu, fi = final[:n_users], final[n_users:] + h
        loss = logsig_bpr(fu[u], fi[i], fi[j])
        for lin, x in zip(lins, xs):
            z = lin(x)
            loss = loss + reg * logsig_bpr(fu[u], z[i], z[j])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return {"losses": losses, "weights": [flat(p) for p in params]}


def dense_knn(adj, k):
    """MMRec's build_knn_neighbourhood: the top k of each row, with their values."""
    val, ind = torch.topk(adj, k, dim=-1)
    return torch.zeros_like(adj).scatter_(-1, ind, val)


def dense_laplacian(adj):
    """MMRec's compute_normalized_laplacian (row sums, inf -> 0)."""
    d = torch.pow(torch.sum(adj, -1), -0.5)
    d[torch.isinf(d)] = 0.0
    return torch.diagflat(d) @ adj @ torch.diagflat(d)


def cos_sim(x):
    xn = x.div(torch.norm(x, p=2, dim=-1, keepdim=True))
    return xn @ xn.t()


def mean_self_adj(n_users, n_items, pairs):
    n = n_users + n_items
    a = np.eye(n, dtype=np.float64)
    for u, i in pairs:
        a[u, n_users + i] = a[n_users + i, u] = 1.0
    return torch.tensor((a / a.sum(axis=1, keepdims=True)).astype(np.float32)).to_sparse()


def run_lattice(n_users, adj, ego0, feats, lins, reg, lr, batches, k=3, lam=0.9):
    ego = torch.nn.Parameter(torch.tensor(ego0))
    xs = [torch.nn.Parameter(torch.tensor(f)) for f in feats]
    mw = torch.nn.Parameter(torch.tensor([0.5, 0.5]))
    originals = [dense_laplacian(dense_knn(cos_sim(torch.tensor(f)), k)) for f in feats]
    params = [ego]
    for lin, x in zip(lins, xs):
        params += [x, lin.weight, lin.bias]
    params.append(mw)
    opt = torch.optim.Adam(params, lr=lr)
    losses, item_adj = [], None
    for step, (u, i, j) in enumerate(batches):
        u, i, j = torch.tensor(u), torch.tensor(i), torch.tensor(j)
        opt.zero_grad()
        if step == 0:
            w = torch.softmax(mw, 0)
            learned = sum(w[m] * dense_knn(cos_sim(lin(x)), k) for m, (lin, x) in enumerate(zip(lins, xs)))
            original = sum(w[m] * originals[m] for m in range(len(xs)))
            item_adj = (1 - lam) * dense_laplacian(learned) + lam * original
        else:
            item_adj = item_adj.detach()
        h = item_adj @ ego[n_users:]
        layer, acc = ego, [ego]
        for _ in range(2):
            layer = torch.sparse.mm(adj, layer)
            acc.append(layer)
        f = torch.stack(acc, 1).mean(1)
        fu, fi = f[:n_users], f[n_users:] + torch.nn.functional.normalize(h, p=2, dim=1)
        a, p_, n_ = fu[u], fi[i], fi[j]
        loss = logsig_bpr(a, p_, n_) + reg * (0.5 * (a ** 2).sum() + 0.5 * (p_ ** 2).sum() + 0.5 * (n_ ** 2).sum()) / 32
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return {"losses": losses, "weights": [flat(p) for p in params]}


def run_bm3(n_users, adj, ego0, pred0, feats, lins, reg, cl, lr, batches):
    ego = torch.nn.Parameter(torch.tensor(ego0))
    pred = torch.nn.Linear(ego0.shape[1], ego0.shape[1])
    with torch.no_grad():
        pred.weight.copy_(torch.tensor(pred0[0]))
        pred.bias.copy_(torch.tensor(pred0[1]))
    xs = [torch.nn.Parameter(torch.tensor(f)) for f in feats]
    params = [ego, pred.weight, pred.bias]
    for lin, x in zip(lins, xs):
        params += [x, lin.weight, lin.bias]
    opt = torch.optim.Adam(params, lr=lr)
    cos = torch.nn.functional.cosine_similarity
    losses = []
    for u, i, _ in batches:
        u, i = torch.tensor(u), torch.tensor(i)
        opt.zero_grad()
        layer, acc = ego, [ego]
        for _ in range(2):
            layer = torch.sparse.mm(adj, layer)
            acc.append(layer)
        f = torch.stack(acc, 1).mean(1)
        uo, io = f[:n_users], f[n_users:] + ego[n_users:]
        ut, it = uo.detach(), io.detach()
        loss = (1 - cos(pred(uo)[u], it[i], dim=-1).mean()) + (1 - cos(pred(io)[i], ut[u], dim=-1).mean())
        loss = loss + reg * (torch.norm(uo, p=2) + torch.norm(io, p=2)) / io.shape[0]
        for lin, x in zip(lins, xs):
            z = lin(x)
            zo = pred(z)[i]
            loss = loss + cl * ((1 - cos(zo, it[i], dim=-1).mean()) + (1 - cos(zo, z.detach()[i], dim=-1).mean()))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return {"losses": losses, "weights": [flat(p) for p in params]}


def run_ngcfm(n_users, adj, ego0, layer0, tu0, proj0, feat, l_w, lr, batches):
    ego = torch.nn.Parameter(torch.tensor(ego0))
    ws = [torch.nn.Parameter(torch.tensor(w)) for w in layer0]
    tu = torch.nn.Parameter(torch.tensor(tu0))
    proj = torch.nn.Linear(feat.shape[1], ego0.shape[1])
    with torch.no_grad():
        proj.weight.copy_(torch.tensor(proj0[0]))
        proj.bias.copy_(torch.tensor(proj0[1]))
    f = torch.tensor(feat)
    params = [ego] + ws + [tu, proj.weight, proj.bias]
    opt = torch.optim.Adam(params, lr=lr)
    lrelu = torch.nn.LeakyReLU(negative_slope=0.2)
    losses = []
    for u, i, j in batches:
        u, i, j = torch.tensor(u), torch.tensor(i), torch.tensor(j)
        opt.zero_grad()
        acc = [ego]
        for l in range(len(ws) // 4):
            w1, b1, w2, b2 = ws[4 * l:4 * l + 4]
            x = acc[l]
            side = torch.sparse.mm(adj, x)
            acc.append(torch.nn.functional.normalize(lrelu(side @ w1 + b1 + (side * x) @ w2 + b2), p=2, dim=1))
        g = torch.stack(acc, 1).mean(1)
        gu, gi = g[:n_users], g[n_users:]
        p_ = torch.nn.functional.normalize(proj(f), p=2, dim=1)
        xp = (gu[u] * gi[i]).sum(1) + (tu[u] * p_[i]).sum(1)
        xn = (gu[u] * gi[j]).sum(1) + (tu[u] * p_[j]).sum(1)
        loss = torch.mean(torch.nn.functional.softplus(-torch.clamp(xp - xn, -80.0, 1e8)))
        loss = loss + l_w * 0.5 * (gu[u].norm(2).pow(2) + gi[i].norm(2).pow(2) + gi[j].norm(2).pow(2) + tu[u].norm(2).pow(2)
                                   + p_[i].norm(2).pow(2) + p_[j].norm(2).pow(2)) / len(u)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return {"losses": losses, "weights": [flat(p) for p in params]}


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n_users, n_items, dim = 30, 25, 8
    pairs = sorted({(int(u), int(i)) for u, i in zip(rng.integers(0, n_users, 160), rng.integers(0, n_items, 160))})
    hist = {}
    for u, i in pairs:
        hist.setdefault(u, set()).add(i)
    batches = []
    for _ in range(6):
        picks = rng.choice(len(pairs), 32)
        us = [pairs[p][0] for p in picks]
        ps = [pairs[p][1] for p in picks]
        ns = []
        for u in us:
            j = int(rng.integers(0, n_items))
            while j in hist[u]:
                j = int(rng.integers(0, n_items))
            ns.append(j)
        batches.append((us, ps, ns))
    visual = rng.normal(size=(n_items, 6)).astype(np.float32)
    textual = rng.normal(size=(n_items, 5)).astype(np.float32)
    out = {"n_users": n_users, "n_items": n_items, "dim": dim, "pairs": pairs, "batches": batches,
           "visual": visual.ravel().tolist(), "textual": textual.ravel().tolist(), "lr": 0.01, "reg": 0.05, "models": {}}

    feat = np.concatenate([textual, visual], 1)  # MMRec: cat(t_feat, v_feat)
    u0 = torch.nn.init.xavier_uniform_(torch.empty(n_users, 2 * dim)).numpy()
    i0 = torch.nn.init.xavier_uniform_(torch.empty(n_items, dim)).numpy()
    w0 = torch.nn.init.xavier_normal_(torch.empty(dim, feat.shape[1])).numpy()
    b0 = np.zeros(dim, dtype=np.float32)
    init = [u0, i0, w0, b0]
    out["models"]["vbpr"] = dict(run_vbpr(feat, u0, i0, w0, b0, 0.05, 0.01, batches), init=[w.ravel().tolist() for w in init])

    # FREEDOM: modalities in the order visual, textual
    mm = (0.1 * knn_adj(torch.tensor(visual), 3) + 0.9 * knn_adj(torch.tensor(textual), 3)).coalesce()
    out["freedom_item_graph"] = flat(mm.to_dense())
    ego0 = np.concatenate([torch.nn.init.xavier_uniform_(torch.empty(n_users, dim)).numpy(),
                           torch.nn.init.xavier_uniform_(torch.empty(n_items, dim)).numpy()])
    lins = [torch.nn.Linear(6, dim), torch.nn.Linear(5, dim)]
    init = [ego0]
    for lin, f in zip(lins, (visual, textual)):
        init += [lin.weight.detach().numpy().copy(), lin.bias.detach().numpy().copy(), f]
    out["models"]["freedom"] = dict(run_freedom(n_users, norm_adj(n_users, n_items, pairs), mm, ego0, [visual, textual], lins,
                                                0.05, 0.01, batches), init=[w.ravel().tolist() for w in init])

    # LATTICE: modalities visual, textual
    ego1 = np.concatenate([torch.nn.init.xavier_uniform_(torch.empty(n_users, dim)).numpy(),
                           torch.nn.init.xavier_uniform_(torch.empty(n_items, dim)).numpy()])
    lins = [torch.nn.Linear(6, dim), torch.nn.Linear(5, dim)]
    init = [ego1]
    for lin, f in zip(lins, (visual, textual)):
        init += [f, lin.weight.detach().numpy().copy(), lin.bias.detach().numpy().copy()]
    init.append(np.array([0.5, 0.5], dtype=np.float32))
    out["models"]["lattice"] = dict(run_lattice(n_users, mean_self_adj(n_users, n_items, pairs), ego1, [visual, textual], lins,
                                                0.05, 0.01, batches), init=[w.ravel().tolist() for w in init])

    # BM3: modalities visual, textual
    ego2 = np.concatenate([torch.nn.init.xavier_uniform_(torch.empty(n_users, dim)).numpy(),
                           torch.nn.init.xavier_uniform_(torch.empty(n_items, dim)).numpy()])
    pw = torch.nn.init.xavier_normal_(torch.empty(dim, dim)).numpy()
    pb = (torch.rand(dim) * 0.2 - 0.1).numpy()
    lins = [torch.nn.Linear(6, dim), torch.nn.Linear(5, dim)]
    init = [ego2, pw, pb]
    for lin, f in zip(lins, (visual, textual)):
        init += [f, lin.weight.detach().numpy().copy(), lin.bias.detach().numpy().copy()]
    out["models"]["bm3"] = dict(run_bm3(n_users, norm_adj(n_users, n_items, pairs), ego2, (pw, pb), [visual, textual], lins,
                                        0.05, 2.0, 0.01, batches), init=[w.ravel().tolist() for w in init])

    # NGCF-M: 2 layers, features cat(visual, textual)
    ego3 = np.concatenate([torch.nn.init.xavier_uniform_(torch.empty(n_users, dim)).numpy(),
                           torch.nn.init.xavier_uniform_(torch.empty(n_items, dim)).numpy()])
    layer0 = []
    for _ in range(2):
        layer0 += [torch.nn.init.xavier_uniform_(torch.empty(dim, dim)).numpy(), torch.nn.init.xavier_uniform_(torch.empty(1, dim)).numpy(),
                   torch.nn.init.xavier_uniform_(torch.empty(dim, dim)).numpy(), torch.nn.init.xavier_uniform_(torch.empty(1, dim)).numpy()]
    tu0 = torch.nn.init.xavier_uniform_(torch.empty(n_users, dim)).numpy()
    lin = torch.nn.Linear(11, dim)
    proj0 = (lin.weight.detach().numpy().copy(), lin.bias.detach().numpy().copy())
    init = [ego3] + layer0 + [tu0, proj0[0], proj0[1]]
    out["models"]["ngcfm"] = dict(run_ngcfm(n_users, mean_self_adj(n_users, n_items, pairs), ego3, layer0, tu0, proj0,
                                            np.concatenate([visual, textual], 1), 0.05, 0.01, batches),
                                  init=[w.ravel().tolist() for w in init])

    os.makedirs(OUT, exist_ok=True)
    with open(f"{OUT}/trajectory.json", "w") as f:
        json.dump(out, f)
    print("wrote", f"{OUT}/trajectory.json", {m: v["losses"][:3] for m, v in out["models"].items()})


if __name__ == "__main__":
    main()
