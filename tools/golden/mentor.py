#!/usr/bin/env python3
"""mentor.py: PyTorch training trajectories for mrec's MENTOR.

    python tools/golden/multimodal.py   # first: the graph, features and batches
    python tools/golden/mentor.py

Reads the small random graph, the features (visual 6-d, textual 5-d) and the batches of
tests/fixtures/multimodal/trajectory.json and writes tests/fixtures/multimodal/mentor.json: for each
case the initial weights (PyTorch's initializers), the gradients of the first batch, the loss at every
Adam step, the weights after the last, and the fused table R of the last forward (what the reference
ranks with), in mrec's parameter order: per network (v, t, id, v1, t1, v2, t2) its user preferences P,
MLP weight and bias, MLP_1 weight and bias side by side; then id_feat; then weight_u (U, 2).

The model is the authors' MENTOR (Jinfeng-Xu/MENTOR, src/models/mentor.py) restated in plain PyTorch
with dense matrices: Base_gcn's message passing as a product with the dense D^-1/2 A D^-1/2 of its edge
list (both directions, degrees of the source ends), GCN.forward, the six tables, calculate_loss's BPR in
log2, reg, align and InfoNCE terms as written there. Its feature-masking term is left out: it is
computed under torch.no_grad, a constant with no gradient. The perturbations' uniforms come from mrec's
hash stream (mrec_sign_noise keyed by the seed, the step, the network and the layer, restated below
with numpy's uint64 arithmetic) so both sides add the same noise.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

FIXTURE = "tests/fixtures/multimodal"
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(z):
    """SplitMix64's finalizer over uint64 arrays (wrapping products), as mrec_mix64."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniforms(seed, step, k, layer, shape):
    """mrec_mentor_set_noise_seed's draws of network k (3..6) after layer (0, 1) at step."""
    key = mix64(np.uint64(seed) ^ mix64(np.uint64(8 * step + 2 * (k - 3) + layer)))
    e = np.arange(shape[0] * shape[1], dtype=np.uint64)
    with np.errstate(over="ignore"):
        u = (mix64(key ^ (e * GOLDEN)) >> np.uint64(40)).astype(np.float64) / 16777216.0
    return torch.tensor(u.astype(np.float32).reshape(shape))


def gcn_adj(n_users, n_items, pairs):
    """Base_gcn over edge_index (both directions): out[dst] += deg^-1/2[src] deg^-1/2[dst] x[src], deg of src."""
    n = n_users + n_items
    src = torch.tensor([u for u, _ in pairs] + [n_users + i for _, i in pairs])
    dst = torch.tensor([n_users + i for _, i in pairs] + [u for u, _ in pairs])
    deg = torch.bincount(src, minlength=n).float()
    dis = deg.pow(-0.5)
    a = torch.zeros(n, n)
    a.index_put_((dst, src), dis[src] * dis[dst], accumulate=True)
    return a


def knn_adj(x, k):
    """get_knn_adj_mat + compute_normalized_laplacian, dense."""
    xn = x.div(torch.norm(x, p=2, dim=-1, keepdim=True))
    sim = xn @ xn.T
    _, ind = torch.topk(sim, k, dim=-1)
    a = torch.zeros_like(sim).scatter_(-1, ind, 1.0)
    d = (1e-7 + a.sum(-1)).pow(-0.5)
    return d[:, None] * a * d[None, :]


class GCN(torch.nn.Module):
    def __init__(self, n_users, dim_feat, d):
        super().__init__()
        self.preference = torch.nn.Parameter(torch.nn.init.xavier_normal_(torch.empty(n_users, d), gain=1))
        self.MLP = torch.nn.Linear(dim_feat, 4 * d)
        self.MLP_1 = torch.nn.Linear(4 * d, d)

    def params(self):
        return [self.preference, self.MLP.weight, self.MLP.bias, self.MLP_1.weight, self.MLP_1.bias]

    def forward(self, adj, features, noise=None):
        temp = self.MLP_1(F.leaky_relu(self.MLP(features)))
        x = F.normalize(torch.cat((self.preference, temp), 0))
        h = adj @ x
        if noise is not None:
            h = h + torch.sign(h) * F.normalize(noise(0, h.shape), dim=-1) * noise.eps
        h1 = adj @ h
        if noise is not None:
            h1 = h1 + torch.sign(h1) * F.normalize(noise(1, h1.shape), dim=-1) * noise.eps
        return x + h + h1


class Noise:
    def __init__(self, seed, step, k, eps):
        self.seed, self.step, self.k, self.eps = seed, step, k, eps

    def __call__(self, layer, shape):
        return uniforms(self.seed, self.step, self.k, layer, shape)


class MENTOR(torch.nn.Module):
    def __init__(self, n_users, n_items, feats, d, case):
        super().__init__()
        self.U, self.case, self.feats = n_users, case, [torch.tensor(f) for f in feats]
        src = [0, 1, None, 0, 1, 0, 1]
        self.src = src
        self.nets = torch.nn.ModuleList([GCN(n_users, d if s is None else feats[s].shape[1], d) for s in src])
        self.id_feat = torch.nn.Parameter(torch.nn.init.xavier_normal_(torch.empty(n_items, d), gain=1))
        w = torch.nn.init.xavier_normal_(torch.empty(n_users, 2, 1))
        self.weight_u = torch.nn.Parameter(F.softmax(w, dim=1))

    def params(self):
        out = []
        for g in self.nets:
            out += g.params()
        return out + [self.id_feat, self.weight_u]

    def packed(self, tensors):
        """mrec's parameter tensors: each network's five side by side, then id_feat, weight_u."""
        out = [torch.cat([t.reshape(-1) for t in tensors[5 * k:5 * k + 5]]) for k in range(7)]
        return out + [tensors[35].reshape(-1), tensors[36].reshape(-1)]

    def forward(self, adj, mm_adj, step):
        c, U = self.case, self.U
        reps = []
        for k, (g, s) in enumerate(zip(self.nets, self.src)):
            x = self.id_feat if s is None else self.feats[s]
            noise = Noise(c["noise_seed"], step, k, c["eps"]) if k >= 3 and c["eps"] > 0 else None
            reps.append(g(adj, x, noise))
        w = self.weight_u

        def table(a, b, weighted):
            ua, ub = a[:U], b[:U]
            if weighted:
                ua, ub = w[:, 0] * ua, w[:, 1] * ub
            items = torch.cat((a[U:], b[U:]), 1)
            h = items
            for _ in range(c["item_layers"]):
                h = mm_adj @ h
            return torch.cat((torch.cat((ua, ub), 1), items + h), 0)

        v, t, i_d, v1, t1, v2, t2 = reps
        return [table(v, t, True), table(i_d, i_d, False), table(v, v, False), table(t, t, False), table(v1, t1, True),
                table(v2, t2, True)]

    @staticmethod
    def info_nce(view1, view2, temp):
        view1, view2 = F.normalize(view1, dim=1), F.normalize(view2, dim=1)
        pos = torch.exp((view1 * view2).sum(dim=-1) / temp)
        ttl = torch.exp(view1 @ view2.T / temp).sum(dim=1)
        return torch.mean(-torch.log(pos / ttl))

    def loss(self, adj, mm_adj, u, i, j, step):
        c, U = self.case, self.U
        tabs = self.forward(adj, mm_adj, step)
        r = tabs[0]
        pos = (r[u] * r[U + i]).sum(1)
        neg = (r[u] * r[U + j]).sum(1)
        bpr = -torch.mean(torch.log2(torch.sigmoid(pos - neg)))
        reg = c["reg"] * ((self.nets[0].preference[u] ** 2).mean() + (self.nets[1].preference[u] ** 2).mean())
        reg = reg + c["reg"] * (self.weight_u ** 2).mean()
        stats = [(torch.var(x), torch.mean(x)) for x in tabs[:4]]
        align = 0
        for a in range(4):
            for b in range(a + 1, 4):
                align = align + (torch.abs(stats[a][0] - stats[b][0]) + torch.abs(stats[a][1] - stats[b][1])).mean()
        mask_g = c["mask_g"] * (self.info_nce(tabs[4][:U], tabs[5][:U], c["temp"]) + self.info_nce(tabs[4][U:], tabs[5][U:], c["temp"]))
        return bpr + reg + c["align"] * align + mask_g, r


def flat(p):
    return p.detach().numpy().ravel().tolist()


def run(c, feats, case):
    U, I, d = c["n_users"], c["n_items"], c["dim"]
    pairs = [tuple(p) for p in c["pairs"]]
    torch.manual_seed(case["seed"])
    m = MENTOR(U, I, feats, d, case)
    init = [flat(p) for p in m.packed(m.params())]
    opt = torch.optim.Adam(m.params(), lr=case["lr"])
    adj = gcn_adj(U, I, pairs)
    mm_adj = 0.1 * knn_adj(torch.tensor(feats[0]), case["knn_k"]) + 0.9 * knn_adj(torch.tensor(feats[1]), case["knn_k"])
    losses, grad0, last = [], None, None
    for step, (u, i, j) in enumerate(c["batches"]):
        u, i, j = torch.tensor(u), torch.tensor(i), torch.tensor(j)
        opt.zero_grad()
        loss, last = m.loss(adj, mm_adj, u, i, j, step)
        loss.backward()
        if grad0 is None:
            grad0 = [flat(g) for g in m.packed([p.grad for p in m.params()])]
        opt.step()
        losses.append(loss.item())
    return dict(case, init=init, grad0=grad0, losses=losses, weights=[flat(p) for p in m.packed(m.params())], final=flat(last))


def main():
    with open(f"{FIXTURE}/trajectory.json") as f:
        c = json.load(f)
    n = c["n_items"]
    visual = np.array(c["visual"], dtype=np.float32).reshape(n, 6)
    textual = np.array(c["textual"], dtype=np.float32).reshape(n, 5)
    cases = {
        # the reference's structure (n_mm_layers 1, the noise 0.1, temperature 0.2), weights large enough to matter in 6 steps
        "mentor": dict(seed=0, item_layers=1, knn_k=3, reg=0.05, align=0.1, mask_g=0.1, temp=0.2, eps=0.1, lr=0.01, noise_seed=1234567),
        # two item-graph layers, no noise, another temperature, heavier alignment and contrast
        "deeper": dict(seed=1, item_layers=2, knn_k=4, reg=0.01, align=0.5, mask_g=0.5, temp=0.5, eps=0.0, lr=0.01, noise_seed=1),
        # no item-graph layer, no contrast, no alignment, a larger noise (which then reaches no loss)
        "plain": dict(seed=2, item_layers=0, knn_k=3, reg=0.1, align=0.0, mask_g=0.0, temp=0.2, eps=0.2, lr=0.01, noise_seed=42),
    }
    out = {"cases": {name: run(c, [visual, textual], case) for name, case in cases.items()}}
    os.makedirs(FIXTURE, exist_ok=True)
    with open(f"{FIXTURE}/mentor.json", "w") as f:
        json.dump(out, f)
    print("wrote", f"{FIXTURE}/mentor.json", {k: v["losses"][:3] for k, v in out["cases"].items()})


if __name__ == "__main__":
    main()
