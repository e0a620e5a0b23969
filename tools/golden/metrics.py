#!/usr/bin/env python3
"""metrics.py: expected top-K metrics, by MMRec's and Elliot's definitions, for mrec's evaluator.

    python tools/golden/metrics.py

Writes tests/fixtures/metrics/cases.json: a small random problem (scores with ties, train /
valid / test items with ratings) and, for two settings, the metrics computed here:
  "mmrec":  every test item relevant, train items masked; MMRec's recall_, precision_, ndcg_ and
            map_ (utils/metrics.py) on the boolean hit matrix, averaged over users with a test item.
  "elliot": relevance threshold 3, train and valid items masked; Elliot's per-user HR, MRR,
            Precision, Recall, nDCG (gains 2^(r - t + 1) - 1, log2 discount) and MAP (mean of
            P@1..P@K), averaged over users with a relevant item.
The rankings are by score, ties to the lower item id, the rule mrec uses. Only numpy is needed.
"""
import json
import math
import os

import numpy as np

OUT = "tests/fixtures/metrics"
KS = [1, 3, 5, 10, 20]


def rank(scores, masked):
    s = scores.copy()
    s[list(masked)] = -np.inf
    order = sorted(range(len(s)), key=lambda i: (-s[i], i))
    return order[:max(KS)]


# ---- MMRec (utils/metrics.py), over a boolean matrix users x Kmax ----
def mmrec_metrics(pos_index, pos_len):
    pos_index = pos_index.astype(float)
    K = pos_index.shape[1]
    ranks = np.arange(1, K + 1)
    recall = (np.cumsum(pos_index, axis=1) / pos_len[:, None]).mean(axis=0)
    precision = (np.cumsum(pos_index, axis=1) / ranks).mean(axis=0)
    idcg_len = np.minimum(pos_len, K)
    idcg = np.cumsum(1.0 / np.log2(ranks + 1))
    idcg = np.array([np.where(ranks <= n, idcg, idcg[n - 1]) for n in idcg_len])
    dcg = np.cumsum(np.where(pos_index > 0, 1.0 / np.log2(ranks + 1), 0), axis=1)
    ndcg = (dcg / idcg).mean(axis=0)
    pre = np.cumsum(pos_index, axis=1) / ranks
    sum_pre = np.cumsum(pre * pos_index, axis=1)
    denom = np.array([np.where(ranks <= n, ranks, n) for n in idcg_len])
    mapk = (sum_pre / denom).mean(axis=0)
    return {"recall": recall, "precision": precision, "ndcg": ndcg, "map": mapk}


# ---- Elliot, per user ----
def elliot_user(rec, gains, cutoff):
    rec = rec[:cutoff]
    rel = set(gains)
    hits = [1 if i in rel else 0 for i in rec]
    hr = 1 if sum(hits) > 0 else 0
    mrr = next((1 / (r + 1) for r, h in enumerate(hits) if h), 0)
    precision = sum(hits) / cutoff
    recall = sum(hits) / len(rel)
    disc = lambda r: 1 / math.log(r + 2) * math.log(2)
    g = sorted(gains.values())
    n = min(len(g), cutoff)
    idcg = sum(g[len(g) - r - 1] * disc(r) for r in range(n))
    dcg = sum(gains.get(i, 0) * disc(r) for r, i in enumerate(rec))
    ndcg = dcg / idcg if dcg > 0 else 0
    mapk = np.average([sum(hits[:n + 1]) / (n + 1) for n in range(cutoff)])
    return {"hr": hr, "mrr": mrr, "precision": precision, "recall": recall, "ndcg_graded": ndcg, "map_elliot": mapk}


def main():
    rng = np.random.default_rng(7)
    n_users, n_items = 60, 45
    scores = np.round(rng.normal(size=(n_users, n_items)), 1)  # one decimal: many ties
    train, valid, test = [], [], []
    for u in range(n_users):
        items = rng.permutation(n_items)
        a, b, c = rng.integers(0, 12), rng.integers(0, 4), rng.integers(0 if u % 9 == 0 else 1, 7)
        train.append(sorted(int(i) for i in items[:a]))
        valid.append(sorted(int(i) for i in items[a:a + b]))
        test.append([[int(i), int(rng.integers(1, 6))] for i in sorted(items[a + b:a + b + c])])
    case = {"n_users": n_users, "n_items": n_items, "k": KS, "scores": scores.round(1).tolist(),
            "train": train, "valid": valid, "test": test}

    # MMRec: all test items relevant, train masked
    users = [u for u in range(n_users) if test[u]]
    hit = np.array([[i in {t[0] for t in test[u]} for i in rank(scores[u], train[u])] for u in users])
    pos_len = np.array([len(test[u]) for u in users])
    m = mmrec_metrics(hit, pos_len)
    case["mmrec"] = {"threshold": 0, "mask_valid": False, "n_users": len(users),
                     "expected": {f"{name}@{k}": float(v[k - 1]) for name, v in m.items() for k in KS}}

    # Elliot: threshold 3, train and valid masked
    t = 3
    sums, n = {}, 0
    for u in range(n_users):
        gains = {i: 2 ** (r - t + 1) - 1 for i, r in test[u] if r >= t}
        if not gains:
            continue
        n += 1
        rec = rank(scores[u], set(train[u]) | set(valid[u]))
        for k in KS:
            for name, v in elliot_user(rec, gains, k).items():
                sums[f"{name}@{k}"] = sums.get(f"{name}@{k}", 0.0) + v
    case["elliot"] = {"threshold": t, "mask_valid": True, "n_users": n,
                      "expected": {key: v / n for key, v in sums.items()}}
    os.makedirs(OUT, exist_ok=True)
    with open(f"{OUT}/cases.json", "w") as f:
        json.dump(case, f)
    print("wrote", f"{OUT}/cases.json")


if __name__ == "__main__":
    main()
