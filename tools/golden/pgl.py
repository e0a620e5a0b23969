#!/usr/bin/env python3
"""pgl.py: PyTorch training trajectories for mrec's PGL (local variant).

    python tools/golden/multimodal.py   # first: the graph, features and batches
    python tools/golden/pgl.py

Reads the small random graph, the features (visual 6-d, textual 5-d) and the batches of
tests/fixtures/multimodal/trajectory.json and writes tests/fixtures/multimodal/pgl.json: for each
case the initial weights (PyTorch's initializers), two principal subgraphs drawn by torch.multinomial
as the reference draws them (the first for steps 0-2, the second for steps 3-5), the gradients of the
first batch, the loss at every Adam step, the weights after the last and the final embeddings on the
full graph, in mrec's parameter order: the users' embeddings (U, M d) (one (U, d) block per modality,
side by side), then per modality the features, *_trs weight and bias. Also FREEDOM's item graph of the
case (dense) and, for the sampler test, how often torch.multinomial keeps each training edge over
10^6 draws.

The model is the authors' PGL (demonph10/PGL, src/models/pgl.py, mode 'local') restated in plain
PyTorch with dense matrices: get_norm_adj_mat's D^-1/2 A D^-1/2 (degrees + 1e-7), get_knn_adj_mat and
compute_normalized_laplacian per modality summed with mm_image_weight, get_edge_info's edge values,
pre_epoch_processing's multinomial draw and _normalize_adj_m, forward, bpr_loss and InfoNCE as written
there. The two dropout views use mrec's hash stream (mrec_hash_dropout keyed by the seed and the step,
restated below with numpy's uint64 arithmetic) so both sides drop the same entries.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

FIXTURE = "tests/fixtures/multimodal"
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(z):
    """SplitMix64's finalizer over uint64 arrays (wrapping products), as mrec_mix64."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def dropout_keep(seed, step, view, count, p):
    """mrec_pgl_set_dropout_seed's masks: element e kept unless u(key, e) < p."""
    key = mix64(np.uint64(seed) ^ mix64(np.uint64(2 * step + view)))
    e = np.arange(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        u = (mix64(key ^ (e * GOLDEN)) >> np.uint64(40)).astype(np.float64) / 16777216.0
    return torch.tensor(~(u < float(np.float32(p))))


def norm_adj(n_users, n_items, pairs):
    """get_norm_adj_mat: scipy in double, stored as float."""
    n = n_users + n_items
    a = np.zeros((n, n))
    for u, i in pairs:
        a[u, n_users + i] = a[n_users + i, u] = 1.0
    d = np.power(a.sum(1) + 1e-7, -0.5)
    return torch.tensor(d[:, None] * a * d[None, :], dtype=torch.float32)


def sub_adj(n_users, n_items, pairs):
    """pre_epoch_processing's graph over the kept pairs: _normalize_adj_m in float, both halves."""
    r = torch.tensor([u for u, _ in pairs])
    c = torch.tensor([i for _, i in pairs])
    row_sum = 1e-7 + torch.bincount(r, minlength=n_users).float()
    col_sum = 1e-7 + torch.bincount(c, minlength=n_items).float()
    vals = row_sum.pow(-0.5)[r] * col_sum.pow(-0.5)[c]
    n = n_users + n_items
    a = torch.zeros(n, n)
    a[r, n_users + c] = vals
    a[n_users + c, r] = vals
    return a


def edge_values(n_users, n_items, pairs):
    """get_edge_info: _normalize_adj_m over every training edge, the multinomial's weights."""
    r = torch.tensor([u for u, _ in pairs])
    c = torch.tensor([i for _, i in pairs])
    row_sum = 1e-7 + torch.bincount(r, minlength=n_users).float()
    col_sum = 1e-7 + torch.bincount(c, minlength=n_items).float()
    return row_sum.pow(-0.5)[r] * col_sum.pow(-0.5)[c]


def knn_adj(x, k):
    """get_knn_adj_mat + compute_normalized_laplacian, dense."""
    xn = x.div(torch.norm(x, p=2, dim=-1, keepdim=True))
    sim = xn @ xn.T
    _, ind = torch.topk(sim, k, dim=-1)
    a = torch.zeros_like(sim).scatter_(-1, ind, 1.0)
    d = (1e-7 + a.sum(-1)).pow(-0.5)
    return d[:, None] * a * d[None, :]


class PGL(torch.nn.Module):
    def __init__(self, n_users, feats, d, case):
        super().__init__()
        self.n_users, self.case = n_users, case
        # user_image, user_text, ...: one xavier (U, d) each, side by side
        self.user = torch.nn.Parameter(torch.cat([torch.nn.init.xavier_uniform_(torch.empty(n_users, d)) for _ in feats], 1))
        self.feat = torch.nn.ParameterList([torch.nn.Parameter(torch.tensor(f)) for f in feats])
        self.trs = torch.nn.ModuleList([torch.nn.Linear(f.shape[1], d) for f in feats])

    def params(self):
        out = [self.user]
        for f, t in zip(self.feat, self.trs):
            out += [f, t.weight, t.bias]
        return out

    def forward(self, adj, mm_adj):
        items = torch.cat([F.normalize(t(f)) for f, t in zip(self.feat, self.trs)], 1)
        h = items
        for _ in range(self.case["item_layers"]):
            h = mm_adj @ h
        ego = torch.cat((self.user, items), 0)
        layers = [ego]
        for _ in range(self.case["layers"]):
            layers.append(adj @ layers[-1])
        all_e = torch.stack(layers, 1).mean(1)
        u, i = all_e[:self.n_users], all_e[self.n_users:]
        return u, i + h

    @staticmethod
    def info_nce(view1, view2, temperature):
        view1, view2 = F.normalize(view1, dim=1), F.normalize(view2, dim=1)
        pos = torch.exp((view1 * view2).sum(dim=-1) / temperature)
        ttl = torch.exp(view1 @ view2.T / temperature).sum(dim=1)
        return torch.mean(-torch.log(pos / ttl))

    def loss(self, adj, mm_adj, u, i, j, step):
        ua, ia = self.forward(adj, mm_adj)
        eu, ei, ej = ua[u], ia[i], ia[j]
        mf = -torch.mean(F.logsigmoid((eu * ei).sum(1) - (eu * ej).sum(1)))
        n, p = len(u), self.case["dropout"]
        rows = torch.cat((eu, ei), 0)
        scale = torch.tensor(np.float32(1) - np.float32(p))
        views = [torch.where(dropout_keep(self.case["dropout_seed"], step, v, rows.numel(), p).reshape(rows.shape), rows / scale,
                             torch.zeros(())) for v in (0, 1)]
        t = self.case["temp"]
        cl = (self.info_nce(views[0][:n], views[1][:n], t) + self.info_nce(views[0][n:], views[1][n:], t)) / 2
        return mf + self.case["cl"] * cl


def flat(p):
    return p.detach().numpy().ravel().tolist()


def run(c, feats, weights, case):
    U, I, d = c["n_users"], c["n_items"], c["dim"]
    pairs = [tuple(p) for p in c["pairs"]]  # sorted by user, then item: mrec's edge numbers
    torch.manual_seed(case["seed"])
    m = PGL(U, feats, d, case)
    init = [flat(p) for p in m.params()]
    opt = torch.optim.Adam(m.params(), lr=case["lr"])
    adj = norm_adj(U, I, pairs)
    mm_adj = sum(w * knn_adj(torch.tensor(f), case["knn_k"]) for w, f in zip(weights, feats))
    # two principal subgraphs as pre_epoch_processing draws them
    values = edge_values(U, I, pairs)
    keep = int(values.size(0) * (1.0 - case["edge_dropout"]))
    samples = [sorted(torch.multinomial(values, keep).tolist()) for _ in range(2)]
    subs = [sub_adj(U, I, [pairs[e] for e in s]) for s in samples]
    losses, grad0 = [], None
    for step, (u, i, j) in enumerate(c["batches"]):
        u, i, j = torch.tensor(u), torch.tensor(i), torch.tensor(j)
        opt.zero_grad()
        loss = m.loss(subs[step // 3], mm_adj, u, i, j, step)
        loss.backward()
        if grad0 is None:
            grad0 = [flat(p.grad) for p in m.params()]
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        ua, ia = m.forward(adj, mm_adj)
    return dict(case, init=init, samples=samples, grad0=grad0, losses=losses, weights=[flat(p) for p in m.params()],
                item_graph=flat(mm_adj), final=flat(torch.cat((ua, ia), 0)))


def keep_frequencies(c, edge_dropout, draws=1000000, chunk=50000):
    """How often torch.multinomial(values, keep) (without replacement) keeps each edge."""
    pairs = [tuple(p) for p in c["pairs"]]
    values = edge_values(c["n_users"], c["n_items"], pairs)
    keep = int(values.size(0) * (1.0 - edge_dropout))
    counts = torch.zeros(values.size(0), dtype=torch.float64)
    torch.manual_seed(99)
    for _ in range(draws // chunk):
        picks = torch.multinomial(values.expand(chunk, -1).contiguous(), keep)
        counts += torch.bincount(picks.ravel(), minlength=values.size(0)).double()
    return dict(edge_dropout=edge_dropout, keep=keep, draws=draws, frequency=(counts / draws).tolist(), values=values.tolist())


def main():
    with open(f"{FIXTURE}/trajectory.json") as f:
        c = json.load(f)
    n = c["n_items"]
    visual = np.array(c["visual"], dtype=np.float32).reshape(n, 6)
    textual = np.array(c["textual"], dtype=np.float32).reshape(n, 5)
    cases = {
        # the reference's structure (2 user-item layers, 1 item-graph layer, 30 % of the edges, temperature 0.2,
        # dropout 0.2), with a contrast weight large enough to matter on 6 steps
        "pgl": (dict(seed=0, modalities=["visual", "textual"], layers=2, item_layers=1, knn_k=3, cl=0.5, dropout=0.2, edge_dropout=0.7,
                     temp=0.2, lr=0.01, dropout_seed=1234567), [visual, textual], [0.1, 0.9]),
        # one user-item layer, two item-graph layers, another temperature, dropout and share of edges
        "deeper": (dict(seed=1, modalities=["visual", "textual"], layers=1, item_layers=2, knn_k=4, cl=1.0, dropout=0.4,
                        edge_dropout=0.5, temp=0.5, lr=0.01, dropout_seed=7654321), [visual, textual], [0.1, 0.9]),
        # one modality, three layers, no item-graph layer (h is the items' own embeddings)
        "textual": (dict(seed=2, modalities=["textual"], layers=3, item_layers=0, knn_k=3, cl=0.3, dropout=0.1, edge_dropout=0.6,
                         temp=0.2, lr=0.01, dropout_seed=42), [textual], [1.0]),
    }
    out = {"cases": {name: run(c, feats, w, case) for name, (case, feats, w) in cases.items()},
           "sampler": keep_frequencies(c, 0.7)}
    os.makedirs(FIXTURE, exist_ok=True)
    with open(f"{FIXTURE}/pgl.json", "w") as f:
        json.dump(out, f)
    print("wrote", f"{FIXTURE}/pgl.json", {k: v["losses"][:3] for k, v in out["cases"].items()})


if __name__ == "__main__":
    main()
