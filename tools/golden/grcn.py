#!/usr/bin/env python3
"""grcn.py: PyTorch training trajectories for mrec's GRCN.

    python tools/golden/multimodal.py   # first: the graph, features and batches
    python tools/golden/grcn.py

Reads the small random graph, the features (visual 6-d, textual 5-d) and the batches of
tests/fixtures/multimodal/trajectory.json and writes tests/fixtures/multimodal/grcn.json: for
each case the initial weights (the fork's initializers), the gradients of the first batch, the
loss at every Adam step and the weights after the last, in mrec's parameter order: [G_u ; G_i],
then per modality G_u^m, the projection's weight and bias, then the confidences (confid only;
adam_conf false: Adam does not step them).

The model is the Ducho-meets-Elliot fork's GRCN (external/models/grcn/GRCNModel.py with its
GraphRefiningLayer and GraphConvolutionalLayer) restated in plain PyTorch with dense matrices.
What torch_sparse and torch_geometric do there is spelled out: the adjacency's entries are
stored sorted by (row, column), and mul_nnz puts the p-th weight of the fork's edge list on the
p-th stored entry; torch_geometric's softmax(src, ptr) is a softmax over consecutive segments of
the list, the segments given by ptr (the users' degrees, or every node's degree).
"""
import json
import os

import numpy as np
import torch

FIXTURE = "tests/fixtures/multimodal"


def segment_softmax(s, ptr):
    return torch.cat([torch.softmax(s[ptr[t]:ptr[t + 1]], 0) for t in range(len(ptr) - 1)])


def with_weights(n, rows, cols, w):
    """A dense (n, n) matrix whose entry (rows[p], cols[p]) is w[p], differentiable in w."""
    return torch.zeros(n, n).index_put((rows, cols), w)


class GRCN(torch.nn.Module):
    def __init__(self, n_users, n_items, d, k, feats, pairs, case):
        super().__init__()
        self.U, self.I, self.N, self.d, self.k = n_users, n_items, n_users + n_items, d, k
        self.case = case
        M = len(feats)
        self.Gu = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_users, d)))
        self.Gi = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_items, d)))
        self.gum = [torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_users, k))) for _ in feats]
        self.proj = [torch.nn.Linear(f.shape[1], k) for f in feats]
        self.conf = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(self.N, M)))
        self.feats = [torch.tensor(f) for f in feats]
        # the fork's edge list: sp_i_train.nonzero() is user-major, items increasing
        pairs = sorted(pairs)
        self.rows = torch.tensor([u for u, _ in pairs])
        self.cols = torch.tensor([n_users + i for _, i in pairs])
        deg_u = np.bincount(self.rows.numpy(), minlength=n_users)
        deg = np.bincount(np.concatenate((self.rows.numpy(), self.cols.numpy())), minlength=self.N)
        assert deg.min() > 0, "every node needs a pair (the fork's np.unique counts only those)"
        self.ptr = np.concatenate(([0], np.cumsum(deg_u))).tolist()
        self.ptr_full = np.concatenate(([0], np.cumsum(deg))).tolist()
        # SparseTensor(row=cat(rows, cols), col=cat(cols, rows)) stores its entries sorted by (row, col)
        stored = sorted(zip(torch.cat((self.rows, self.cols)).tolist(), torch.cat((self.cols, self.rows)).tolist()))
        self.st_rows = torch.tensor([r for r, _ in stored])
        self.st_cols = torch.tensor([c for _, c in stored])

    def params(self):
        out = [[self.Gu, self.Gi]]
        for g, p in zip(self.gum, self.proj):
            out += [g, p.weight, p.bias]
        if self.case["weight_mode"] == "confid":
            out.append(self.conf)
        return out

    def act(self, x):
        return torch.nn.functional.leaky_relu(x) if self.case["has_act"] else x

    def propagate(self):
        normalize, U, I, N = torch.nn.functional.normalize, self.U, self.I, self.N
        c = self.case
        x_all_m, alphas_m = [], []
        for gum_p, proj, f in zip(self.gum, self.proj, self.feats):
            gum = normalize(gum_p)
            gim = normalize(torch.nn.functional.leaky_relu(proj(f)))
            for _ in range(c["routings"]):
                alpha = segment_softmax((gum[self.rows] * gim[self.cols - U]).sum(-1), self.ptr)
                # adj_user: rows the users, columns U + item, stored in the list's order
                agg = with_weights(N, self.rows, self.cols, alpha) @ torch.cat((gum, gim), 0)
                gum = normalize(gum + self.act(agg[:U]))
            x = torch.cat((gum, gim), 0)
            s = (torch.cat((gum[self.rows], gim[self.cols - U]), 0) * torch.cat((gim[self.cols - U], gum[self.rows]), 0)).sum(-1)
            alpha = segment_softmax(s, self.ptr_full)
            x_all_m.append(x + self.act(with_weights(N, self.st_rows, self.st_cols, alpha) @ x))
            alphas_m.append(alpha)
        alphas = torch.stack(alphas_m, 1)
        if c["weight_mode"] == "mean":
            w = alphas.sum(1) / len(alphas_m)
        elif c["weight_mode"] == "max":
            w = alphas.max(1)[0]
        else:
            confidence = torch.cat((self.conf[self.rows], self.conf[self.cols]), 0)
            w = (alphas * confidence).max(1)[0]
        if c["pruning"]:
            w = torch.relu(w)
        a = with_weights(N, self.st_rows, self.st_cols, w)
        e = [normalize(torch.cat((self.Gu, self.Gi), 0))]
        for _ in range(c["layers"]):
            e.append(normalize(self.act(a @ e[-1])))
        e = torch.stack(e, 1).sum(1)
        if c["fusion"] == "concat":
            x = torch.cat([e] + x_all_m, 1)
        elif c["fusion"] == "id":
            x = e
        else:
            x = torch.mean(torch.stack(x_all_m + [e]), 0)
        return torch.split(x, [U, I], 0)

    def loss(self, u, i, j):
        gu, gi = self.propagate()
        xp = torch.sum(gu[u] * gi[i], 1)
        xn = torch.sum(gu[u] * gi[j], 1)
        loss = -torch.mean(torch.log(torch.sigmoid(xp - xn)))
        uu = torch.cat((u, u))
        reg_content = torch.sum(torch.stack([g[uu].pow(2).mean() for g in self.gum]))
        reg = self.case["l_w"] * (self.Gu[uu].pow(2) + self.Gi[torch.cat((i, j))].pow(2)).mean()
        return loss + reg + reg_content


def flat(p):
    if isinstance(p, list):
        return [x for t in p for x in t.detach().numpy().ravel().tolist()]
    return p.detach().numpy().ravel().tolist()


def run(c, feats, case):
    torch.manual_seed(case["seed"])
    m = GRCN(c["n_users"], c["n_items"], c["dim"], case["k"], feats, [tuple(p) for p in c["pairs"]], case)
    init = [flat(p) for p in m.params()]
    tensors = []
    for p in m.params():
        tensors += p if isinstance(p, list) else [p]
    if not case.get("adam_conf", True):
        tensors = [t for t in tensors if t is not m.conf]
    opt = torch.optim.Adam(tensors, lr=case["lr"])
    losses, grad0 = [], None
    for u, i, j in c["batches"]:
        u, i, j = torch.tensor(u), torch.tensor(i), torch.tensor(j)
        opt.zero_grad()
        loss = m.loss(u, i, j)
        loss.backward()
        if grad0 is None:
            grad0 = [flat([t.grad for t in p]) if isinstance(p, list) else flat(p.grad) for p in m.params()]
        opt.step()
        losses.append(loss.item())
    return dict(case, init=init, grad0=grad0, losses=losses, weights=[flat(p) for p in m.params()])


def main():
    with open(f"{FIXTURE}/trajectory.json") as f:
        c = json.load(f)
    n = c["n_items"]
    visual = np.array(c["visual"], dtype=np.float32).reshape(n, 6)
    textual = np.array(c["textual"], dtype=np.float32).reshape(n, 5)
    cases = {
        # the benchmark's template: confidences, pruning, side by side, no activation; 3 routings, 2 layers. Adam leaves
        # the confidences at their start: a user's confidences scale its whole row of A, which the next normalize undoes,
        # so their true gradient is often exactly 0 and both sides compute rounding noise there, which Adam's first
        # steps turn into full steps of either sign (their first gradient is still compared, the items' rows exactly)
        "template": dict(seed=0, k=4, routings=3, layers=2, weight_mode="confid", pruning=True, has_act=False, fusion="concat",
                         l_w=0.05, lr=0.01, adam_conf=False),
        # the other branches: the maximum without pruning, LeakyReLUs, the mean of the representations (k = d)
        "max_act_mean": dict(seed=1, k=8, routings=1, layers=1, weight_mode="max", pruning=False, has_act=True, fusion="mean",
                             l_w=0.05, lr=0.01),
        # the weights' mean, no routing, the id representation alone, three layers
        "mean_id": dict(seed=2, k=3, routings=0, layers=3, weight_mode="mean", pruning=True, has_act=False, fusion="id",
                        l_w=0.05, lr=0.01),
    }
    out = {name: run(c, [visual, textual], case) for name, case in cases.items()}
    os.makedirs(FIXTURE, exist_ok=True)
    with open(f"{FIXTURE}/grcn.json", "w") as f:
        json.dump(out, f)
    print("wrote", f"{FIXTURE}/grcn.json", {k: v["losses"][:3] for k, v in out.items()})


if __name__ == "__main__":
    main()
