#!/usr/bin/env python3
"""mgcn.py: PyTorch training trajectories for mrec's MGCN.

    python tools/golden/multimodal.py   # first: the graph, features and batches
    python tools/golden/mgcn.py

Reads the small random graph, the features (visual 6-d, textual 5-d) and the batches of
tests/fixtures/multimodal/trajectory.json and writes tests/fixtures/multimodal/mgcn.json: for
each case the initial weights (PyTorch's initializers), the gradients of the first batch, the
loss at every Adam step and the weights after the last, in mrec's parameter order: [E_u ; E_i],
then per modality the features, *_trs weight and bias, gate_* weight and bias, gate_*_prefer
weight and bias, then query_common's two layers (weight, bias, weight). Also the kNN graphs'
dense matrices, for the graph test.

The model is MMRec's MGCN (src/models/mgcn.py) restated in plain PyTorch with dense matrices:
get_adj_mat's D^-1/2 A D^-1/2 (zero degrees give 0), build_sim and build_knn_normalized_graph's
top-k similarities normalized by their row sums on both sides, the purifier, the user-item and
item-item views, the attention fuser, BPR with its regularizer over the configured batch size,
and InfoNCE written as MMRec writes it.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

FIXTURE = "tests/fixtures/multimodal"


def norm_adj(n_users, n_items, pairs):
    n = n_users + n_items
    a = torch.zeros(n, n)
    for u, i in pairs:
        a[u, n_users + i] = a[n_users + i, u] = 1.0
    d = a.sum(1).pow(-0.5)
    d[torch.isinf(d)] = 0.0
    return d[:, None] * a * d[None, :]


def knn_graph(x, k):
    """build_sim + build_knn_normalized_graph(is_sparse=True, norm_type='sym'), dense."""
    xn = x / torch.norm(x, p=2, dim=-1, keepdim=True)
    sim = xn @ xn.T
    val, ind = torch.topk(sim, k, dim=-1)
    s = torch.zeros_like(sim).scatter_(-1, ind, val)
    deg = val.sum(1).pow(-0.5)
    deg[torch.isinf(deg)] = 0.0
    return deg[:, None] * s * deg[None, :]


class MGCN(torch.nn.Module):
    def __init__(self, n_users, n_items, d, feats, ui_layers, item_layers, reg, cl, temp, batch_size):
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.ui_layers, self.item_layers, self.reg, self.cl, self.temp, self.batch_size = ui_layers, item_layers, reg, cl, temp, batch_size
        self.user = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_users, d)))
        self.item = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_items, d)))
        self.feat = torch.nn.ParameterList([torch.nn.Parameter(torch.tensor(f)) for f in feats])
        self.trs = torch.nn.ModuleList([torch.nn.Linear(f.shape[1], d) for f in feats])
        self.gate = torch.nn.ModuleList([torch.nn.Linear(d, d) for _ in feats])
        self.prefer = torch.nn.ModuleList([torch.nn.Linear(d, d) for _ in feats])
        self.query = torch.nn.Linear(d, d)
        self.query2 = torch.nn.Linear(d, 1, bias=False)

    def params(self):
        out = [[self.user, self.item]]
        for f, t, g, p in zip(self.feat, self.trs, self.gate, self.prefer):
            out += [f, t.weight, t.bias, g.weight, g.bias, p.weight, p.bias]
        return out + [self.query.weight, self.query.bias, self.query2.weight]

    def forward(self, adj, item_adj):
        ego = torch.cat((self.user, self.item), 0)
        layers = [ego]
        for _ in range(self.ui_layers):
            layers.append(adj @ layers[-1])
        content = torch.stack(layers, 1).mean(1)
        r = adj[:self.n_users, self.n_users:]
        views = []
        for f, t, g, s in zip(self.feat, self.trs, self.gate, item_adj):
            h = self.item * torch.sigmoid(g(t(f)))
            for _ in range(self.item_layers):
                h = s @ h
            views.append(torch.cat((r @ h, h), 0))
        att = torch.cat([self.query2(torch.tanh(self.query(v))) for v in views], -1)
        w = torch.softmax(att, -1)
        common = sum(w[:, k:k + 1] * v for k, v in enumerate(views))
        side = common
        for v, p in zip(views, self.prefer):
            side = side + torch.sigmoid(p(content)) * (v - common)
        side = side / (len(views) + 1)
        return content + side, side, content

    def info_nce(self, a, b):
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
        pos = torch.exp((a * b).sum(-1) / self.temp)
        ttl = torch.exp(a @ b.T / self.temp).sum(1)
        return torch.mean(-torch.log(pos / ttl))

    def loss(self, adj, item_adj, u, i, j):
        final, side, content = self.forward(adj, item_adj)
        U = self.n_users
        eu, ei, ej = final[u], final[U + i], final[U + j]
        mf = -F.logsigmoid((eu * ei).sum(1) - (eu * ej).sum(1)).mean()
        reg = self.reg * (0.5 * (eu ** 2).sum() + 0.5 * (ei ** 2).sum() + 0.5 * (ej ** 2).sum()) / self.batch_size
        cl = self.info_nce(side[U + i], content[U + i]) + self.info_nce(side[u], content[u])
        return mf + reg + self.cl * cl


def flat(p):
    if isinstance(p, list):
        return [x for t in p for x in t.detach().numpy().ravel().tolist()]
    return p.detach().numpy().ravel().tolist()


def run(c, feats, case):
    torch.manual_seed(case["seed"])
    m = MGCN(c["n_users"], c["n_items"], c["dim"], feats, case["ui_layers"], case["item_layers"], case["reg"], case["cl"], case["temp"],
             case["batch_size"])
    init = [flat(p) for p in m.params()]
    tensors = []
    for p in m.params():
        tensors += p if isinstance(p, list) else [p]
    opt = torch.optim.Adam(tensors, lr=case["lr"])
    adj = norm_adj(c["n_users"], c["n_items"], c["pairs"])
    item_adj = [knn_graph(torch.tensor(f), case["knn_k"]) for f in feats]
    losses, grad0 = [], None
    for u, i, j in c["batches"]:
        u, i, j = torch.tensor(u), torch.tensor(i), torch.tensor(j)
        opt.zero_grad()
        loss = m.loss(adj, item_adj, u, i, j)
        loss.backward()
        if grad0 is None:
            grad0 = [flat([t.grad for t in p]) if isinstance(p, list) else flat(p.grad) for p in m.params()]
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = m.forward(adj, item_adj)[0]
    return dict(case, init=init, grad0=grad0, losses=losses, weights=[flat(p) for p in m.params()],
                item_graphs=[flat(s) for s in item_adj], final=flat(final))


def main():
    with open(f"{FIXTURE}/trajectory.json") as f:
        c = json.load(f)
    n = c["n_items"]
    visual = np.array(c["visual"], dtype=np.float32).reshape(n, 6)
    textual = np.array(c["textual"], dtype=np.float32).reshape(n, 5)
    cases = {
        # MMRec's structure (2 user-item layers, 1 item layer) with weights large enough to matter on 6 steps;
        # the regularizer divides by the configured batch size (48), not the batch's 32
        "mmrec": dict(seed=0, ui_layers=2, item_layers=1, knn_k=3, reg=0.05, cl=0.1, temp=0.2, batch_size=48, lr=0.01),
        # one user-item layer, two item layers, another temperature
        "deep_items": dict(seed=1, ui_layers=1, item_layers=2, knn_k=4, reg=0.02, cl=0.5, temp=0.5, batch_size=32, lr=0.01),
    }
    out = {name: run(c, [visual, textual], case) for name, case in cases.items()}
    os.makedirs(FIXTURE, exist_ok=True)
    with open(f"{FIXTURE}/mgcn.json", "w") as f:
        json.dump(out, f)
    print("wrote", f"{FIXTURE}/mgcn.json", {k: v["losses"][:3] for k, v in out.items()})


if __name__ == "__main__":
    main()
