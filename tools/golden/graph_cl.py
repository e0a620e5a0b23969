#!/usr/bin/env python3
"""graph_cl.py: PyTorch training trajectories for mrec's SimGCL, SGL and LightGCN-M.

    python tools/golden/graph_cl.py

Writes tests/fixtures/graph_cl/trajectory.json: a small random interaction graph, initial
ego embeddings (xavier-uniform, seed 0), fixed batches of (user, positive, negative) triples,
and for each model the loss at every Adam step and the embeddings after the last step.

The models restate the Ducho-meets-Elliot benchmark's Elliot fork (external/models/simgcl and
external/models/sgl) in plain PyTorch: LGConv(normalize=True) is D^-1/2 A D^-1/2 over the
graph's own degrees, without self-loops. The randomness is passed in, so mrec sees the same:
SimGCL's uniform noise draws (per step: 2 views x layers x nodes x dim, rand_like's place),
and SGL's views as the training pairs each keeps (per step: 2 x pairs, the pairs sorted by
user then item). LightGCN-M (external/models/lightgcn_m) takes two modalities' features
(trained too), nn.Linear projections and the mean aggregation.
"""
import json
import os

import numpy as np
import torch

OUT = "tests/fixtures/graph_cl"


def norm_adj(n_users, n_items, pairs, keep=None):
    n = n_users + n_items
    a = np.zeros((n, n), dtype=np.float64)
    for e, (u, i) in enumerate(pairs):
        if keep is None or keep[e]:
            a[u, n_users + i] = a[n_users + i, u] = 1.0
    deg = a.sum(axis=1)
    d = np.where(deg > 0, np.power(np.maximum(deg, 1e-30), -0.5), 0.0)
    return torch.tensor((d[:, None] * a * d[None, :]).astype(np.float32))


def simgcl_propagate(ego, adj, layers, eps, noise):
    """The fork's propagate_embeddings; noise (layers, N, d) or None (no perturbation)."""
    outs = []
    x = ego
    for k in range(layers):
        x = adj @ x
        if noise is not None:
            x = x + torch.sign(x) * torch.nn.functional.normalize(noise[k], dim=-1) * eps
        outs.append(x)
    return torch.stack(outs, dim=1).mean(dim=1)


def info_nce(v1, v2, temp):
    v1, v2 = torch.nn.functional.normalize(v1, dim=1), torch.nn.functional.normalize(v2, dim=1)
    score = torch.diag(torch.nn.functional.log_softmax(v1 @ v2.T / temp, dim=1))
    return -score.mean()


def run_simgcl(n_users, ego0, adj, layers, l_w, eps, reg_cl, temp, lr, batches, noises):
    ego = torch.nn.Parameter(torch.tensor(ego0))
    opt = torch.optim.Adam([ego], lr=lr)
    losses = []
    for (u, i, j), noise in zip(batches, noises):
        u, i, j = torch.tensor(u), torch.tensor(i), torch.tensor(j)
        noise = torch.tensor(noise)
        opt.zero_grad()
        f = simgcl_propagate(ego, adj, layers, eps, None)
        fu, fi = f[:n_users], f[n_users:]
        ue, pe, ne = fu[u], fi[i], fi[j]
        x = (ue * pe).sum(1) - (ue * ne).sum(1)
        rec = torch.mean(-torch.log(10e-6 + torch.sigmoid(x)))
        l2 = l_w * (torch.norm(ue, p=2) / ue.shape[0] + torch.norm(pe, p=2) / pe.shape[0])
        v1 = simgcl_propagate(ego, adj, layers, eps, noise[0])
        v2 = simgcl_propagate(ego, adj, layers, eps, noise[1])
        uu, ii = torch.unique(u), torch.unique(i)
        cl = info_nce(v1[:n_users][uu], v2[:n_users][uu], temp) + info_nce(v1[n_users:][ii], v2[n_users:][ii], temp)
        loss = rec + l2 + reg_cl * cl
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses, ego.detach().numpy()


def sgl_propagate(ego, adj, layers):
    outs = [ego]
    for k in range(layers):
        outs.append(adj @ outs[-1])
    return torch.stack(outs, dim=1).mean(dim=1)


def run_sgl(n_users, n_items, pairs, ego0, adj, layers, l_w, ssl_reg, temp, lr, batches, keeps):
    ego = torch.nn.Parameter(torch.tensor(ego0))
    opt = torch.optim.Adam([ego], lr=lr)
    losses = []
    for (u, i, j), keep in zip(batches, keeps):
        u, i, j = torch.tensor(u), torch.tensor(i), torch.tensor(j)
        a1 = norm_adj(n_users, n_items, pairs, keep[0])
        a2 = norm_adj(n_users, n_items, pairs, keep[1])
        opt.zero_grad()
        f = sgl_propagate(ego, adj, layers)
        v1 = torch.nn.functional.normalize(sgl_propagate(ego, a1, layers), dim=1)
        v2 = torch.nn.functional.normalize(sgl_propagate(ego, a2, layers), dim=1)
        gu, gi = f[:n_users], f[n_users:]
        gu1, gi1, gu2, gi2 = v1[:n_users], v1[n_users:], v2[:n_users], v2[n_users:]
        sup = (gu[u] * gi[i]).sum(1) - (gu[u] * gi[j]).sum(1)
        pos_u = (gu1[u] * gu2[u]).sum(1)
        pos_i = (gi1[i] * gi2[i]).sum(1)
        logits_u = gu1[u] @ gu2.T - pos_u[:, None]
        logits_i = gi1[i] @ gi2.T - pos_i[:, None]
        bpr = -torch.sum(torch.nn.functional.logsigmoid(sup))
        reg = 0.5 * (ego[u].pow(2).sum() + ego[n_users + i].pow(2).sum() + ego[n_users + j].pow(2).sum())
        nce = torch.sum(torch.logsumexp(logits_u / temp, dim=1) + torch.logsumexp(logits_i / temp, dim=1))
        loss = bpr + ssl_reg * nce + l_w * reg
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses, ego.detach().numpy()


def run_lightgcnm(n_users, user0, feats, ws, bs, adj, layers, l_w, lr, batches):
    user = torch.nn.Parameter(torch.tensor(user0))
    fs = [torch.nn.Parameter(torch.tensor(f)) for f in feats]
    projs = []
    for w, b in zip(ws, bs):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(w))
            lin.bias.copy_(torch.tensor(b))
        projs.append(lin)
    params = [user]
    for f, lin in zip(fs, projs):
        params += [f, lin.weight, lin.bias]
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for u, i, j in batches:
        u, i, j = torch.tensor(u), torch.tensor(i), torch.tensor(j)
        opt.zero_grad()
        x = torch.mean(torch.stack([torch.nn.functional.normalize(lin(f), p=2, dim=1) for f, lin in zip(fs, projs)], dim=-1), dim=-1)
        f = sgl_propagate(torch.cat([user, x], 0), adj, layers)
        gu, fi = f[:n_users], f[n_users:]
        xp = (gu[u] * fi[i]).sum(1)
        xn = (gu[u] * fi[j]).sum(1)
        loss = torch.mean(torch.nn.functional.softplus(xn - xp))
        loss = loss + l_w * 0.5 * (user[u].norm(2).pow(2) + fi[i].norm(2).pow(2) + fi[j].norm(2).pow(2)) / float(len(u))
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    out = [user.detach().numpy().ravel().tolist()]
    for f, lin in zip(fs, projs):
        out += [f.detach().numpy().ravel().tolist(), lin.weight.detach().numpy().ravel().tolist(),
                lin.bias.detach().numpy().ravel().tolist()]
    return losses, out


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n_users, n_items, dim, layers, steps = 7, 9, 8, 2, 5
    pairs = sorted({(int(u), int(i)) for u, i in zip(rng.integers(0, n_users, 36), rng.integers(0, n_items, 36))})
    seen = {}
    for u, i in pairs:
        seen.setdefault(u, set()).add(i)
    batches = []
    for _ in range(steps):
        picks = rng.choice(len(pairs), 12)
        us = [pairs[p][0] for p in picks]
        ps = [pairs[p][1] for p in picks]
        ns = []
        for u in us:
            j = int(rng.integers(0, n_items))
            while j in seen[u]:
                j = int(rng.integers(0, n_items))
            ns.append(j)
        batches.append([us, ps, ns])
    user0 = torch.nn.init.xavier_uniform_(torch.empty(n_users, dim))
    item0 = torch.nn.init.xavier_uniform_(torch.empty(n_items, dim))
    ego0 = torch.cat([user0, item0], 0).numpy()
    adj = norm_adj(n_users, n_items, pairs)
    n = n_users + n_items
    noises = [rng.random((2, layers, n, dim), dtype=np.float32) for _ in range(steps)]
    keeps = [(rng.random((2, len(pairs))) > 0.3).astype(np.int64) for _ in range(steps)]
    out = {"n_users": n_users, "n_items": n_items, "dim": dim, "layers": layers, "pairs": pairs, "batches": batches,
           "ego0": ego0.ravel().tolist()}
    s = {"l_w": 0.05, "eps": 0.1, "reg_cl": 0.5, "temp": 0.2, "lr": 0.01}
    losses, ego = run_simgcl(n_users, ego0, adj, layers, s["l_w"], s["eps"], s["reg_cl"], s["temp"], s["lr"], batches, noises)
    s.update(noise=[x.ravel().tolist() for x in noises], losses=losses, ego=ego.ravel().tolist())
    out["simgcl"] = s
    g = {"l_w": 0.01, "ssl_reg": 0.1, "temp": 0.2, "lr": 0.01}
    losses, ego = run_sgl(n_users, n_items, pairs, ego0, adj, layers, g["l_w"], g["ssl_reg"], g["temp"], g["lr"], batches, keeps)
    g.update(keep=[k.ravel().tolist() for k in keeps], losses=losses, ego=ego.ravel().tolist())
    out["sgl"] = g
    feats = [rng.standard_normal((n_items, 5)).astype(np.float32), rng.standard_normal((n_items, 3)).astype(np.float32)]
    ws = [rng.uniform(-0.4, 0.4, (dim, f.shape[1])).astype(np.float32) for f in feats]
    bs = [rng.uniform(-0.4, 0.4, dim).astype(np.float32) for f in feats]
    m = {"l_w": 0.05, "lr": 0.01, "feats": [f.ravel().tolist() for f in feats], "feat_dims": [f.shape[1] for f in feats],
         "w0": [w.ravel().tolist() for w in ws], "b0": [b.ravel().tolist() for b in bs]}
    losses, params = run_lightgcnm(n_users, ego0[:n_users], feats, ws, bs, adj, layers, m["l_w"], m["lr"], batches)
    m.update(losses=losses, params=params)
    out["lightgcnm"] = m
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "trajectory.json"), "w") as f:
        json.dump(out, f)
    print("simgcl losses", out["simgcl"]["losses"])
    print("sgl losses", out["sgl"]["losses"])
    print("lightgcnm losses", out["lightgcnm"]["losses"])


if __name__ == "__main__":
    main()
