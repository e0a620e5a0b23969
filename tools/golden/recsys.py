#!/usr/bin/env python3
"""recsys.py: PyTorch training trajectories for mrec's BPRMF and LightGCN.

    python tools/golden/recsys.py

Writes tests/fixtures/recsys/trajectory.json: a small random interaction graph, initial
embeddings (PyTorch's xavier init, seed 0), fixed batches of (user, positive, negative)
triples, and for each model the loss at every Adam step and the embeddings after the last
step. NGCF follows its authors' code (two LeakyReLU branches, D^-1 (A + I), log-sigmoid BPR,
squared-norm regularizer on the final embeddings), dropout off. The other models are MMRec's
(src/models/bpr.py, src/models/lightgcn.py) restated in plain PyTorch: BPRLoss -mean log(1e-10 + sigmoid(pos - neg)), EmbLoss (Frobenius norms of the
batch's rows divided by the batch size), the D^-1/2 A D^-1/2 graph with degrees + 1e-7,
torch.sparse.mm propagation, the mean of the layers, torch.optim.Adam.
"""
import json
import os

import numpy as np
import torch

OUT = "tests/fixtures/recsys"


def norm_adj(n_users, n_items, pairs):
    n = n_users + n_items
    a = np.zeros((n, n), dtype=np.float64)
    for u, i in pairs:
        a[u, n_users + i] = a[n_users + i, u] = 1.0
    d = np.power((a > 0).sum(axis=1) + 1e-7, -0.5)
    l = (d[:, None] * a * d[None, :]).astype(np.float32)
    idx = np.nonzero(l)
    return torch.sparse_coo_tensor(np.array(idx), l[idx], (n, n)).coalesce()


def mean_self_adj(n_users, n_items, pairs):
    """NGCF's D^-1 (A + I)."""
    n = n_users + n_items
    a = np.eye(n, dtype=np.float64)
    for u, i in pairs:
        a[u, n_users + i] = a[n_users + i, u] = 1.0
    l = (a / a.sum(axis=1, keepdims=True)).astype(np.float32)
    idx = np.nonzero(l)
    return torch.sparse_coo_tensor(np.array(idx), l[idx], (n, n)).coalesce()


def run_ngcf(n_users, user0, item0, weights, adj, decay, lr, batches):
    """NGCF as the authors' TensorFlow code (LeakyReLU 0.2 on each branch), dropout off."""
    user = torch.nn.Parameter(torch.tensor(user0))
    item = torch.nn.Parameter(torch.tensor(item0))
    ws = [torch.nn.Parameter(torch.tensor(w)) for w in weights]
    opt = torch.optim.Adam([user, item] + ws, lr=lr)
    lrelu = torch.nn.LeakyReLU(0.2)
    losses = []
    for u, i, j in batches:
        u, i, j = torch.tensor(u), torch.tensor(i), torch.tensor(j)
        opt.zero_grad()
        ego = torch.cat([user, item], 0)
        outs = [ego]
        for k in range(len(ws) // 4):
            w1, b1, w2, b2 = ws[4 * k:4 * k + 4]
            side = torch.sparse.mm(adj, ego)
            ego = lrelu(side @ w1 + b1) + lrelu((ego * side) @ w2 + b2)
            outs.append(torch.nn.functional.normalize(ego, p=2, dim=1))
        final = torch.cat(outs, 1)
        fu, fi = final[:n_users], final[n_users:]
        eu, ei, ej = fu[u], fi[i], fi[j]
        mf = -torch.nn.functional.logsigmoid((eu * ei).sum(1) - (eu * ej).sum(1)).mean()
        reg = (eu.norm() ** 2 + ei.norm() ** 2 + ej.norm() ** 2) / 2
        loss = mf + decay * reg / len(u)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, user.detach().numpy().ravel().tolist(), item.detach().numpy().ravel().tolist(), \
        [w.detach().numpy().ravel().tolist() for w in ws]


def bpr_loss(pos, neg):
    return -torch.log(1e-10 + torch.sigmoid(pos - neg)).mean()


def emb_loss(*embs):
    return sum(torch.norm(e, p=2) for e in embs) / embs[-1].shape[0]


def run(model, n_users, n_items, user0, item0, adj, layers, reg, lr, batches):
    user = torch.nn.Parameter(torch.tensor(user0))
    item = torch.nn.Parameter(torch.tensor(item0))
    opt = torch.optim.Adam([user, item], lr=lr)
    losses = []
    for u, i, j in batches:
        u, i, j = torch.tensor(u), torch.tensor(i), torch.tensor(j)
        opt.zero_grad()
        if model == "bprmf":
            ue, pe, ne = user[u], item[i], item[j]
            loss = bpr_loss((ue * pe).sum(1), (ue * ne).sum(1)) + reg * emb_loss(ue, pe, ne)
        else:
            ego = torch.cat([user, item], 0)
            layer, acc = ego, [ego]
            for _ in range(layers):
                layer = torch.sparse.mm(adj, layer)
                acc.append(layer)
            final = torch.stack(acc, 1).mean(1)
            fu, fi = final[:n_users], final[n_users:]
            loss = bpr_loss((fu[u] * fi[i]).sum(1), (fu[u] * fi[j]).sum(1)) + reg * emb_loss(user[u], item[i], item[j])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, user.detach().numpy().ravel().tolist(), item.detach().numpy().ravel().tolist()


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
    user0 = torch.nn.init.xavier_uniform_(torch.empty(n_users, dim)).numpy()
    item0 = torch.nn.init.xavier_uniform_(torch.empty(n_items, dim)).numpy()
    adj = norm_adj(n_users, n_items, pairs)
    out = {"n_users": n_users, "n_items": n_items, "dim": dim, "pairs": pairs, "batches": batches,
           "user0": user0.ravel().tolist(), "item0": item0.ravel().tolist(), "lr": 0.01, "reg": 0.05, "models": {}}
    for model, layers in (("bprmf", 0), ("lightgcn", 2)):
        losses, user, item = run(model, n_users, n_items, user0, item0, adj, layers, 0.05, 0.01, batches)
        out["models"][model] = {"layers": layers, "losses": losses, "user": user, "item": item}
    weights = []
    for _ in range(2):
        for shape in ((dim, dim), (1, dim), (dim, dim), (1, dim)):
            weights.append(torch.nn.init.xavier_uniform_(torch.empty(*shape)).numpy())
    out["ngcf_weights0"] = [w.ravel().tolist() for w in weights]
    losses, user, item, ws = run_ngcf(n_users, user0, item0, weights, mean_self_adj(n_users, n_items, pairs), 0.05, 0.01,
                                      batches)
    out["models"]["ngcf"] = {"layers": 2, "losses": losses, "user": user, "item": item, "weights": ws}
    os.makedirs(OUT, exist_ok=True)
    with open(f"{OUT}/trajectory.json", "w") as f:
        json.dump(out, f)
    print("wrote", f"{OUT}/trajectory.json", {m: v["losses"][:3] for m, v in out["models"].items()})


if __name__ == "__main__":
    main()
