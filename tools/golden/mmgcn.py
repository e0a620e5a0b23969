#!/usr/bin/env python3
"""mmgcn.py: PyTorch training trajectories for mrec's MMGCN.

    python tools/golden/multimodal.py   # first: the graph, features and batches
    python tools/golden/mmgcn.py

Reads the small random graph, the features (visual 6-d, textual 5-d) and the batches of
tests/fixtures/multimodal/trajectory.json and writes tests/fixtures/multimodal/mmgcn.json: for
each case the initial weights (the fork's initializers), the gradients of the first batch, the
loss at every Adam step and the weights after the last, in mrec's parameter order: [G_u ; G_i],
then per modality G_u^m, the projection's weight and bias where there is one, and the layers'
C, L, l, W, w one after another (each a block: Adam is elementwise).

The model is the Ducho-meets-Elliot fork's MMGCN (external/models/mmgcn/MMGCNModel.py)
restated in plain PyTorch: torch_sparse's matmul(adj, x, reduce="mean") as a dense D^-1 A
(rows without neighbours stay 0), reduce "add" as A; MMGCNLayer as x @ C; its loss
-mean log sigmoid(pos - neg) and its regularizer, as written there.
"""
import json
import os

import numpy as np
import torch

FIXTURE = "tests/fixtures/multimodal"


def adjacency(n_users, n_items, pairs, mean):
    n = n_users + n_items
    a = torch.zeros(n, n)
    for u, i in pairs:
        a[u, n_users + i] = a[n_users + i, u] = 1.0
    if mean:
        deg = a.sum(1, keepdim=True)
        a = torch.where(deg > 0, a / deg.clamp(min=1), a)
    return a


class MMGCN(torch.nn.Module):
    """The fork's MMGCNModel, its propagate_embeddings and train_step."""

    def __init__(self, n_users, n_items, d, dims_multimod, feats, layers, concat, has_id, l_w):
        super().__init__()
        self.n_users, self.n_items, self.d, self.layers = n_users, n_items, d, layers
        self.concat, self.has_id, self.l_w = concat, has_id, l_w
        self.Gu = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_users, d)))
        self.Gi = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_items, d)))
        self.feats = [torch.tensor(f) for f in feats]
        self.mods = []
        for f, dm in zip(feats, dims_multimod):
            k0 = dm if dm else f.shape[1]
            mod = {"gum": torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_users, k0))),
                   "proj": torch.nn.Linear(f.shape[1], dm) if dm else None, "c": [], "l": [], "g": []}
            for layer in range(layers):
                k = k0 if layer == 0 else d
                mod["c"].append(torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(k, k))))
                lin = torch.nn.Linear(k, d)
                torch.nn.init.xavier_uniform_(lin.weight)
                mod["l"].append(lin)
                g = torch.nn.Linear(k + d if concat else k, d)
                torch.nn.init.xavier_uniform_(g.weight)
                mod["g"].append(g)
            self.mods.append(mod)

    def params(self):
        """mrec's parameter order: [G_u ; G_i] as one block, each modality's layer weights as one more."""
        out = [[self.Gu, self.Gi]]
        for mod in self.mods:
            out.append(mod["gum"])
            if mod["proj"] is not None:
                out += [mod["proj"].weight, mod["proj"].bias]
            out.append([t for layer in range(self.layers) for t in
                        (mod["c"][layer], mod["l"][layer].weight, mod["l"][layer].bias, mod["g"][layer].weight, mod["g"][layer].bias)])
        return out

    def propagate(self, adj):
        lrelu = torch.nn.functional.leaky_relu
        ego = torch.cat((self.Gu, self.Gi), 0)
        reps = []
        for mod, f in zip(self.mods, self.feats):
            t = mod["proj"](f) if mod["proj"] is not None else f
            x = torch.nn.functional.normalize(torch.cat((mod["gum"], t), 0))
            for layer in range(self.layers):
                h = lrelu(adj @ (x @ mod["c"][layer]))
                x_hat = lrelu(mod["l"][layer](x)) + ego if self.has_id else lrelu(mod["l"][layer](x))
                x = lrelu(mod["g"][layer](torch.cat((h, x_hat), 1))) if self.concat else lrelu(mod["g"][layer](h) + x_hat)
            reps.append(x)
        x_all = torch.mean(torch.stack(reps), 0)
        return torch.split(x_all, [self.n_users, self.n_items], 0)

    def loss(self, adj, u, i, j):
        gum, gim = self.propagate(adj)
        xp = torch.sum(gum[u] * gim[i], 1)
        xn = torch.sum(gum[u] * gim[j], 1)
        loss = -torch.mean(torch.log(torch.sigmoid(xp - xn)))
        reg = self.l_w * ((self.Gu[torch.cat((u, u))].pow(2) + self.Gi[torch.cat((i, j))].pow(2)).mean()
                          + self.mods[0]["gum"].pow(2).mean())
        return loss + reg


def flat(p):
    if isinstance(p, list):
        return [x for t in p for x in t.detach().numpy().ravel().tolist()]
    return p.detach().numpy().ravel().tolist()


def run(c, feats, case):
    torch.manual_seed(case["seed"])
    m = MMGCN(c["n_users"], c["n_items"], c["dim"], case["multimod"], feats, case["layers"], case["concat"], case["has_id"],
              case["l_w"])
    init = [flat(p) for p in m.params()]
    tensors = []
    for p in m.params():
        tensors += p if isinstance(p, list) else [p]
    opt = torch.optim.Adam(tensors, lr=case["lr"])
    adj = adjacency(c["n_users"], c["n_items"], c["pairs"], case["aggregation"] == "mean")
    losses, grad0 = [], None
    for u, i, j in c["batches"]:
        u, i, j = torch.tensor(u), torch.tensor(i), torch.tensor(j)
        opt.zero_grad()
        loss = m.loss(adj, u, i, j)
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
        # the template's choices: sum with the own part, ids in, mean pooling; visual projected, textual as it is
        "sum_mean": dict(seed=0, multimod=[4, None], layers=2, concat=False, has_id=True, aggregation="mean", l_w=0.05, lr=0.01),
        # the fork's defaults otherwise: side by side, no ids, summed neighbours; both projected, one layer
        "concat_add": dict(seed=1, multimod=[3, 4], layers=1, concat=True, has_id=False, aggregation="add", l_w=0.05, lr=0.01),
    }
    out = {name: run(c, [visual, textual], case) for name, case in cases.items()}
    os.makedirs(FIXTURE, exist_ok=True)
    with open(f"{FIXTURE}/mmgcn.json", "w") as f:
        json.dump(out, f)
    print("wrote", f"{FIXTURE}/mmgcn.json", {k: v["losses"][:3] for k, v in out.items()})


if __name__ == "__main__":
    main()
