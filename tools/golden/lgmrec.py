#!/usr/bin/env python3
"""lgmrec.py: PyTorch training trajectories for mrec's LGMRec.

    python tools/golden/multimodal.py   # first: the graph, features and batches
    python tools/golden/lgmrec.py

Reads the small random graph, the features (visual 6-d, textual 5-d) and the batches of
tests/fixtures/multimodal/trajectory.json and writes tests/fixtures/multimodal/lgmrec.json: for
each case the Gumbel noise (one draw per modality, (n_items + n_users, hyper_num), the items'
rows then the users', used at every step), the initial weights (xavier-uniform, as the reference
initializes them), the gradients of the first batch, the loss at every Adam step and the weights
after the last, in mrec's parameter order: [E_u ; E_i], then visual W, H, textual W, H.

The model is MMRec's LGMRec (src/models/lgmrec.py) restated in plain PyTorch with dense
matrices: the normalized adjacency D^-1/2 A D^-1/2 (degrees + 1e-7), the interaction matrix R,
the users' modality embeddings R X * 1 / (degree + 1e-7); F.gumbel_softmax written out as
softmax((logits + g) / tau) with the recorded g; dropout off (keep_rate 1); its BPR loss, its
ssl_triple_loss and reg_loss as written there.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

FIXTURE = "tests/fixtures/multimodal"
TAU = 0.2


def graphs(n_users, n_items, pairs):
    n = n_users + n_items
    a = np.zeros((n, n), dtype=np.float64)
    r = np.zeros((n_users, n_items), dtype=np.float32)
    for u, i in pairs:
        a[u, n_users + i] = a[n_users + i, u] = 1.0
        r[u, i] = 1.0
    deg = (a > 0).sum(axis=1)
    d = np.power(deg + 1e-7, -0.5)
    norm = (d[:, None] * a * d[None, :]).astype(np.float32)
    inv = (1.0 / (deg + 1e-7)).astype(np.float32)[:n_users, None]
    return torch.tensor(norm), torch.tensor(r), torch.tensor(inv)


class LGMRec(torch.nn.Module):
    def __init__(self, n_users, n_items, d, feats, case):
        super().__init__()
        self.n_users, self.n_items, self.case = n_users, n_items, case
        k = case["hyper_num"]
        self.Eu = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_users, d)))
        self.Ei = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_items, d)))
        self.feats = [torch.tensor(f) for f in feats]
        self.trs, self.hyper = [], []
        for f in feats:
            self.trs.append(torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.zeros(f.shape[1], d))))
            self.hyper.append(torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.zeros(f.shape[1], k))))

    def params(self):
        return [[self.Eu, self.Ei], self.trs[0], self.hyper[0], self.trs[1], self.hyper[1]]

    def forward(self, adj, r, inv, noise):
        c, U = self.case, self.n_users
        ego = torch.cat((self.Eu, self.Ei), 0)
        layers = [ego]
        for _ in range(c["n_ui_layers"]):
            ego = adj @ ego
            layers.append(ego)
        cge = torch.stack(layers, 1).mean(1)
        mge, hyper = [], []
        for f, w, h, g in zip(self.feats, self.trs, self.hyper, noise):
            i_log = f @ h
            u_log = r @ i_log
            i_dep = torch.softmax((i_log + g[:self.n_items]) / TAU, 1)
            u_dep = torch.softmax((u_log + g[self.n_items:]) / TAU, 1)
            item_feats = f @ w
            x = torch.cat((r @ item_feats * inv, item_feats), 0)
            for _ in range(c["n_mm_layers"]):
                x = adj @ x
            mge.append(x)
            i_ret = cge[U:]
            for _ in range(c["n_hyper_layer"]):
                lat = i_dep.T @ i_ret
                i_ret = i_dep @ lat
                u_ret = u_dep @ lat
            hyper.append((u_ret, i_ret))
        lge = cge + F.normalize(mge[0]) + F.normalize(mge[1])
        ghe = torch.cat(hyper[0], 0) + torch.cat(hyper[1], 0)
        out = lge + c["alpha"] * F.normalize(ghe)
        return out[:U], out[U:], hyper

    def loss(self, adj, r, inv, noise, u, i, j):
        c = self.case
        ue, ie, hyper = self.forward(adj, r, inv, noise)
        ug, pg, ng = ue[u], ie[i], ie[j]
        bpr = -torch.mean(F.logsigmoid((ug * pg).sum(1) - (ug * ng).sum(1)))
        (uv, iv), (ut, it) = hyper
        cl = ssl(uv[u], ut[u], ut) + ssl(iv[i], it[i], it)
        reg = (torch.norm(ug, p=2) + torch.norm(pg, p=2) + torch.norm(ng, p=2)) / ng.shape[0]
        return bpr + c["cl_weight"] * cl + c["reg_weight"] * reg


def ssl(emb1, emb2, all_emb):
    n1, n2, na = F.normalize(emb1), F.normalize(emb2), F.normalize(all_emb)
    pos = torch.exp((n1 * n2).sum(1) / TAU)
    ttl = torch.exp(n1 @ na.T / TAU).sum(1)
    return -torch.log(pos / ttl).sum()


def flat(p):
    if isinstance(p, list):
        return [x for t in p for x in t.detach().numpy().ravel().tolist()]
    return p.detach().numpy().ravel().tolist()


def run(c, feats, case):
    torch.manual_seed(case["seed"])
    n_users, n_items = c["n_users"], c["n_items"]
    m = LGMRec(n_users, n_items, c["dim"], feats, case)
    # F.gumbel_softmax's draw: -log(Exp(1))
    noise = [-torch.empty(n_items + n_users, case["hyper_num"]).exponential_().log() for _ in feats]
    init = [flat(p) for p in m.params()]
    tensors = []
    for p in m.params():
        tensors += p if isinstance(p, list) else [p]
    opt = torch.optim.Adam(tensors, lr=case["lr"])
    adj, r, inv = graphs(n_users, n_items, c["pairs"])
    losses, grad0 = [], None
    for u, i, j in c["batches"]:
        u, i, j = torch.tensor(u), torch.tensor(i), torch.tensor(j)
        opt.zero_grad()
        loss = m.loss(adj, r, inv, noise, u, i, j)
        loss.backward()
        if grad0 is None:
            grad0 = [flat([t.grad for t in p]) if isinstance(p, list) else flat(p.grad) for p in m.params()]
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        ue, ie, _ = m.forward(adj, r, inv, noise)
    return dict(case, noise=[flat(g) for g in noise], init=init, grad0=grad0, losses=losses,
                weights=[flat(p) for p in m.params()], scores=flat(ue[:3] @ ie.T))


def main():
    with open(f"{FIXTURE}/trajectory.json") as f:
        c = json.load(f)
    n = c["n_items"]
    visual = np.array(c["visual"], dtype=np.float32).reshape(n, 6)
    textual = np.array(c["textual"], dtype=np.float32).reshape(n, 5)
    cases = {
        # the Baby settings' structure (2 and 2 layers, one hypergraph layer, 4 hyperedges, alpha 0.3), weights large
        # enough that every term moves the losses
        "baby": dict(seed=0, n_ui_layers=2, n_mm_layers=2, n_hyper_layer=1, hyper_num=4, alpha=0.3, cl_weight=0.05,
                     reg_weight=0.05, lr=0.01),
        # other depths: two hypergraph layers, one propagation each, 3 hyperedges
        "deep": dict(seed=1, n_ui_layers=1, n_mm_layers=1, n_hyper_layer=2, hyper_num=3, alpha=0.6, cl_weight=0.2,
                     reg_weight=0.01, lr=0.01),
    }
    out = {name: run(c, [visual, textual], case) for name, case in cases.items()}
    os.makedirs(FIXTURE, exist_ok=True)
    with open(f"{FIXTURE}/lgmrec.json", "w") as f:
        json.dump(out, f)
    print("wrote", f"{FIXTURE}/lgmrec.json", {k: v["losses"][:3] for k, v in out.items()})


if __name__ == "__main__":
    main()
