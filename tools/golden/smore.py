#!/usr/bin/env python3
"""smore.py: PyTorch training trajectories for mrec's SMORE.

    python tools/golden/multimodal.py   # first: the graph, features and batches
    python tools/golden/smore.py

Reads the small random graph, the features (visual 6-d as the image modality, textual 5-d as the
text one) and the batches of tests/fixtures/multimodal/trajectory.json and writes
tests/fixtures/multimodal/smore.json: for each case the initial weights (PyTorch's initializers),
the gradients of the first batch, the loss at every Adam step and the weights after the last, in
mrec's parameter order: [E_u ; E_i], per modality (image, text) the features, *_trs weight and
bias, per view (image, text, fusion) the complex weight (its K real parts, then its K imaginary
parts), gate_* weight and bias, gate_*_prefer weight and bias, then query_v and query_t (first
layer's weight and bias, second layer's weight). Also the three item graphs as dense matrices and
the final embeddings.

The model is the authors' SMORE (kennethorq/SMORE, src/models/smore.py) restated in plain
PyTorch: get_adj_mat's D^-1/2 A D^-1/2, build_sim and build_knn_normalized_graph (sparse, 'sym'),
max_pool_fusion as the reference writes it (sparse), torch.fft.rfft / irfft with norm='ortho' and
the complex weights, the gates, the three item views, the query softmax over the columns, the
preference gates with dropout, BPR with its regularizer over the configured batch size, and
InfoNCE with the given temperature. Dropout masks are mrec's hash stream (mrec_hash_dropout keyed
by key_of in recsys/smore.c, the seed being the first draw of mrec_rng {1}), so both sides drop
the same entries.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

FIXTURE = "tests/fixtures/multimodal"
M64 = (1 << 64) - 1


def mix64(z):
    """mrec_mix64 (SplitMix64's finalizer) on Python ints or numpy uint64 arrays."""
    if isinstance(z, np.ndarray):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def rng_first(state):
    return mix64((state + 0x9E3779B97F4A7C15) & M64)


def dropout_mask(seed, step, view, n, p):
    """mrec_hash_dropout(mask, NULL, NULL, n, p, key_of(step, view)) of recsys/smore.c."""
    key = mix64(seed ^ mix64((step * 4 + view) & M64))
    with np.errstate(over="ignore"):
        e = np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        u = (mix64(np.uint64(key) ^ e) >> np.uint64(40)).astype(np.float64) * (1.0 / 16777216.0)
    u = u.astype(np.float32)
    p = np.float32(p)
    keep = np.float32(1) / (np.float32(1) - p)
    return torch.tensor(np.where(u < p, np.float32(0), keep).astype(np.float32))


def norm_adj(n_users, n_items, pairs):
    n = n_users + n_items
    a = torch.zeros(n, n)
    for u, i in pairs:
        a[u, n_users + i] = a[n_users + i, u] = 1.0
    d = a.sum(1).pow(-0.5)
    d[torch.isinf(d)] = 0.0
    return d[:, None] * a * d[None, :]


def knn_graph(x, k):
    """build_sim + build_knn_normalized_graph(is_sparse=True, norm_type='sym'): a sparse COO tensor."""
    xn = x.div(torch.norm(x, p=2, dim=-1, keepdim=True))
    sim = xn @ xn.T
    val, ind = torch.topk(sim, k, dim=-1)
    row = torch.arange(len(ind)).repeat_interleave(k)
    col = ind.flatten()
    v = val.flatten()
    deg = torch.zeros(len(ind)).scatter_add(0, row, v)
    dis = deg.pow(-0.5)
    dis[torch.isinf(dis)] = 0.0
    return torch.sparse_coo_tensor(torch.stack((row, col)), dis[row] * v * dis[col], sim.shape).coalesce()


def max_pool_fusion(image_adj, text_adj):
    """The reference's max_pool_fusion."""
    ii, iv = image_adj.indices(), image_adj.values()
    ti, tv = text_adj.indices(), text_adj.values()
    comb, inv = torch.unique(torch.cat((ii, ti), dim=1), dim=1, return_inverse=True)
    vi = torch.full((comb.size(1),), float("-inf"))
    vt = torch.full((comb.size(1),), float("-inf"))
    vi[inv[:ii.size(1)]] = iv
    vt[inv[ii.size(1):]] = tv
    vals, _ = torch.max(torch.stack((vi, vt)), dim=0)
    return torch.sparse_coo_tensor(comb, vals, image_adj.size()).coalesce()


class SMORE(torch.nn.Module):
    def __init__(self, n_users, n_items, d, feats, c):
        super().__init__()
        self.n_users, self.n_items, self.d, self.c = n_users, n_items, d, c
        self.user = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_users, d)))
        self.item = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_items, d)))
        self.feat = torch.nn.ParameterList([torch.nn.Parameter(torch.tensor(f)) for f in feats])
        self.trs = torch.nn.ModuleList([torch.nn.Linear(f.shape[1], d) for f in feats])
        self.cw = torch.nn.ParameterList([torch.nn.Parameter(torch.randn(1, d // 2 + 1, 2)) for _ in range(3)])
        self.gate = torch.nn.ModuleList([torch.nn.Linear(d, d) for _ in range(3)])
        self.prefer = torch.nn.ModuleList([torch.nn.Linear(d, d) for _ in range(3)])
        self.query = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.Tanh(), torch.nn.Linear(d, d, bias=False))
                                          for _ in range(2)])

    def params(self):
        """mrec's order; the complex weights as views (K real parts, then K imaginary parts) of the parameters."""
        out = [[self.user, self.item]]
        for f, t in zip(self.feat, self.trs):
            out += [f, t.weight, t.bias]
        for w, g, p in zip(self.cw, self.gate, self.prefer):
            out += [("complex", w), g.weight, g.bias, p.weight, p.bias]
        for q in self.query:
            out += [q[0].weight, q[0].bias, q[2].weight]
        return out

    def forward(self, adj, item_adj, masks):
        d = self.d
        ego = torch.cat((self.user, self.item), 0)
        layers = [ego]
        for _ in range(self.c["ui_layers"]):
            layers.append(adj @ layers[-1])
        content = torch.stack(layers, 1).mean(1)
        fv, ft = self.trs[0](self.feat[0]), self.trs[1](self.feat[1])
        Fv = torch.fft.rfft(fv, dim=1, norm="ortho")
        Ft = torch.fft.rfft(ft, dim=1, norm="ortho")
        wv, wt, wf = (torch.view_as_complex(w) for w in self.cw)
        convs = [torch.fft.irfft(Fv * wv, n=d, dim=1, norm="ortho"), torch.fft.irfft(Ft * wt, n=d, dim=1, norm="ortho"),
                 torch.fft.irfft(Ft * Fv * wf, n=d, dim=1, norm="ortho")]
        r = adj[:self.n_users, self.n_users:]
        views = []
        for conv, g, s in zip(convs, self.gate, item_adj):
            h = self.item * torch.sigmoid(g(conv))
            for _ in range(self.c["item_layers"]):
                h = torch.sparse.mm(s, h)
            views.append(torch.cat((r @ h, h), 0))
        mv, mt, mf = views
        agg_v = torch.softmax(self.query[0](mf), -1) * mv
        agg_t = torch.softmax(self.query[1](mf), -1) * mt
        prefs = [torch.sigmoid(p(content)) for p in self.prefer]
        if masks is not None:
            prefs = [p * m.reshape(p.shape) for p, m in zip(prefs, masks)]
        side = torch.mean(torch.stack([prefs[0] * agg_v, prefs[1] * agg_t, prefs[2] * mf]), dim=0)
        return content + side, side, content

    def info_nce(self, a, b):
        t = self.c["temp"]
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
        pos = torch.exp((a * b).sum(-1) / t)
        ttl = torch.exp(a @ b.T / t).sum(1)
        return torch.mean(-torch.log(pos / ttl))

    def loss(self, adj, item_adj, masks, u, i, j):
        final, side, content = self.forward(adj, item_adj, masks)
        U, c = self.n_users, self.c
        eu, ei, ej = final[u], final[U + i], final[U + j]
        mf = -F.logsigmoid((eu * ei).sum(1) - (eu * ej).sum(1)).mean()
        reg = c["reg"] * (0.5 * (eu ** 2).sum() + 0.5 * (ei ** 2).sum() + 0.5 * (ej ** 2).sum()) / c["batch_size"]
        cl = self.info_nce(side[U + i], content[U + i]) + self.info_nce(side[u], content[u])
        return mf + reg + c["cl"] * cl


def flat(p, grad=False):
    if isinstance(p, list):
        return [x for t in p for x in flat(t, grad)]
    if isinstance(p, tuple):  # a complex weight (1, K, 2): its real parts, then its imaginary parts
        t = p[1].grad if grad else p[1]
        return t.detach()[0].T.numpy().ravel().tolist()
    t = p.grad if grad else p
    return t.detach().numpy().ravel().tolist()


def run(c, feats, case):
    torch.manual_seed(case["seed"])
    U, I, d = c["n_users"], c["n_items"], case["dim"]
    m = SMORE(U, I, d, feats, case)
    init = [flat(p) for p in m.params()]
    opt = torch.optim.Adam(m.parameters(), lr=case["lr"])
    adj = norm_adj(U, I, c["pairs"])
    gi = knn_graph(torch.tensor(feats[0]), case["image_knn_k"])
    gt = knn_graph(torch.tensor(feats[1]), case["text_knn_k"])
    item_adj = [gi, gt, max_pool_fusion(gi, gt)]
    seed = rng_first(1)  # mrec_rng {1}'s first draw, as the test creates the model
    losses, grad0 = [], None
    for step, (u, i, j) in enumerate(c["batches"]):
        u, i, j = torch.tensor(u), torch.tensor(i), torch.tensor(j)
        masks = [dropout_mask(seed, step, g, (U + I) * d, case["dropout"]) for g in range(3)]
        opt.zero_grad()
        loss = m.loss(adj, item_adj, masks, u, i, j)
        loss.backward()
        if grad0 is None:
            grad0 = [flat(p, grad=True) for p in m.params()]
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = m.forward(adj, item_adj, None)[0]
    return dict(case, init=init, grad0=grad0, losses=losses, weights=[flat(p) for p in m.params()],
                item_graphs=[flat(s.to_dense()) for s in item_adj], final=flat(final))


def main():
    with open(f"{FIXTURE}/trajectory.json") as f:
        c = json.load(f)
    n = c["n_items"]
    visual = np.array(c["visual"], dtype=np.float32).reshape(n, 6)
    textual = np.array(c["textual"], dtype=np.float32).reshape(n, 5)
    cases = {
        # the authors' Baby structure (4 user-item layers, 1 item layer, dropout 0.1, two k) at the fixture's size, with
        # weights large enough to matter on 6 steps; the regularizer divides by the configured batch size (48), not the batch's 32
        "baby": dict(seed=0, dim=8, ui_layers=4, item_layers=1, image_knn_k=4, text_knn_k=3, reg=0.05, cl=0.1, temp=0.2, dropout=0.1,
                     batch_size=48, lr=0.01),
        # an odd embedding size (no d / 2 bin), two item layers, no dropout, another temperature
        "odd": dict(seed=1, dim=7, ui_layers=2, item_layers=2, image_knn_k=3, text_knn_k=5, reg=0.02, cl=0.5, temp=0.5, dropout=0.0,
                    batch_size=32, lr=0.01),
    }
    out = {name: run(c, [visual, textual], case) for name, case in cases.items()}
    os.makedirs(FIXTURE, exist_ok=True)
    with open(f"{FIXTURE}/smore.json", "w") as f:
        json.dump(out, f)
    print("wrote", f"{FIXTURE}/smore.json", {k: v["losses"][:3] for k, v in out.items()})


if __name__ == "__main__":
    main()
