#!/usr/bin/env python3
"""beyond_metrics.py: expected beyond-accuracy metrics, by Elliot's definitions, for mrec's evaluator,
and adjusted p-values for its multiple-testing corrections.

    python tools/golden/beyond_metrics.py

Writes tests/fixtures/beyond/cases.json: a small problem with distinct random scores, train / valid /
test items with ratings, and for two settings (relevance threshold 0 with train items masked;
threshold 3 with train and valid items masked) Elliot's EFD, EPC, Gini, SEntropy, ItemCoverage,
UserCoverage, APLT, ACLT, ARP, PopREO and PopRSP at each cut-off, restated here from
elliot/evaluation/metrics (novelty, diversity, coverage, bias) and popularity_utils.py:

  - the users are those with an item in the split (Elliot's _process_test_data); EFD, EPC and PopREO
    further keep those with a relevant item (rating >= threshold);
  - popularity is the number of training users of an item; the short head is the items by popularity,
    descending, ties in item order (Python's stable sort), taken until 80 % of the training pairs are
    held; everything else is the long tail;
  - the catalogue is every item of the data (Elliot's is its training items; here one item is never
    trained, and is scored high so that it is recommended).

The problem is built to reach the corners: ties in popularity, users without test items, users
whose test items are all below the threshold, items never recommended, users whose list is shorter
than the largest K (almost every item trained), an item never seen in training.

The p-value case: p-values with ties and NaN, adjusted by statsmodels' multipletests (bonferroni,
holm, fdr_bh) over the defined ones. Needs numpy and statsmodels.
"""
import json
import math
import os

import numpy as np
from statsmodels.stats.multitest import multipletests

OUT = "tests/fixtures/beyond"
KS = [1, 3, 5, 10]
N_USERS, N_ITEMS = 23, 17
NEVER_TRAINED = 16


def make_problem(rng):
    scores = rng.permutation(N_USERS * N_ITEMS).reshape(N_USERS, N_ITEMS).astype(float) / 7.0
    scores[:, NEVER_TRAINED] += 40  # often near the top
    train, valid, test = [dict() for _ in range(N_USERS)], [dict() for _ in range(N_USERS)], [dict() for _ in range(N_USERS)]
    for u in range(N_USERS):
        # a popularity profile with ties: items 0..3 common, the rest rarer
        for i in range(N_ITEMS - 1):
            p = 0.7 if i < 4 else 0.18
            if rng.random() < p:
                train[u][i] = int(rng.integers(1, 6))
        rest = [i for i in range(N_ITEMS) if i not in train[u]]
        rng.shuffle(rest)
        if u % 5 != 4 and rest:  # every fifth user has no test items
            for i in rest[:int(rng.integers(1, 4))]:
                test[u][i] = int(rng.integers(1, 6))
        for i in rest[4:4 + int(rng.integers(0, 3))]:
            valid[u][i] = int(rng.integers(1, 6))
    # a user whose test items are all below threshold 3
    test[1] = {i: 1 for i in test[1]} or {5: 1}
    train[1].pop(5, None)
    valid[1].pop(5, None)
    # a user who trained on almost everything: a list shorter than the largest K
    train[2] = {i: 4 for i in range(N_ITEMS - 1) if i not in (6, 9, 11)}
    valid[2], test[2] = {9: 5}, {6: 5, 11: 2}
    # one training pair less for item 15, so that the 80 % line falls inside a tie (items 4, 9 and 14)
    del train[next(u for u in range(N_USERS) if u != 2 and 15 in train[u])][15]
    for u in range(N_USERS):
        for i in list(valid[u]):
            if i in test[u] or i in train[u]:
                del valid[u][i]
    return scores, train, valid, test


def recommend(scores, masked, kmax):
    """Elliot's lists: the unmasked items by score (all distinct here), at most kmax."""
    recs = {}
    for u in range(N_USERS):
        items = [i for i in range(N_ITEMS) if i not in masked[u]]
        items.sort(key=lambda i: -scores[u, i])
        recs[u] = [(i, scores[u, i]) for i in items[:kmax]]
    return recs


class Popularity:
    def __init__(self, train):
        self.pop = {i: sum(1 for t in train if i in t) for i in range(N_ITEMS)}
        self.transactions = sum(len(t) for t in train)
        self.sorted = dict(sorted(self.pop.items(), key=lambda kv: kv[1], reverse=True))
        limit = self.transactions * 0.8
        self.short_head = []
        for i, p in self.sorted.items():
            self.short_head.append(i)
            limit -= p
            if limit <= 0:
                break
        self.long_tail = [i for i in self.sorted if i not in self.short_head]


def disc(r):
    return 1 / math.log(r + 2) * math.log(2)


def elliot(recs_all, train, test, threshold, k):
    recs = {u: r for u, r in recs_all.items() if test[u]}
    rel = {u: [i for i, v in test[u].items() if v >= threshold] for u in range(N_USERS)}
    pop = Popularity(train)
    out, per_user = {}, {}

    count = {}
    for t in train:
        for i in t:
            count[i] = count.get(i, 0) + 1
    norm = sum(count.values())
    max_nov = -math.log(min(count.values()) / norm) / math.log(2)
    nov_efd = {i: -math.log(v / norm) / math.log(2) for i, v in count.items()}
    n_train_users = sum(1 for t in train if t)
    nov_epc = {i: 1 - v / n_train_users for i, v in count.items()}

    def expected(u_r, u, nov, default):
        s = n = 0
        for r, (i, _) in enumerate(u_r[:k]):
            s += (1 if i in rel[u] else 0) * disc(r) * nov.get(i, default)
            n += disc(r)
        return s / n if n > 0 else s

    efd = {u: expected(r, u, nov_efd, max_nov) for u, r in recs.items() if rel[u]}
    epc = {u: expected(r, u, nov_epc, 1) for u, r in recs.items() if rel[u]}
    out["efd"], out["epc"] = np.average(list(efd.values())), np.average(list(epc.values()))
    lt = set(pop.long_tail)
    aplt = {u: len({i for i, _ in r[:k]} & lt) / len(r[:k]) for u, r in recs.items()}
    aclt = {u: len({i for i, _ in r[:k]} & lt) for u, r in recs.items()}
    arp = {u: sum(pop.pop[i] for i, _ in r[:k]) / len(r[:k]) for u, r in recs.items()}
    out["aplt"], out["aclt"], out["arp"] = (np.average(list(d.values())) for d in (aplt, aclt, arp))
    per_user = {u: {"efd": efd[u], "epc": epc[u], "aplt": aplt[u], "aclt": aclt[u], "arp": arp[u]} for u in efd}

    item_count, item_weights, free_norm = {}, {}, 0
    for u, r in recs.items():
        n = len(r[:k])
        free_norm += n
        for i, _ in r[:k]:
            item_count[i] = item_count.get(i, 0) + 1
            item_weights[i] = item_weights.get(i, 0) + 1 / n
    n_rec = len(item_count)
    gini = sum((2 * (j + (N_ITEMS - n_rec) + 1) - N_ITEMS - 1) * (cs / free_norm)
               for j, cs in enumerate(sorted(item_count.values())))
    out["gini"] = 1 - gini / (N_ITEMS - 1)
    out["sentropy"] = sum(w * -math.log(item_count[i] / free_norm) / math.log(2) for i, w in item_weights.items()) / len(recs)
    out["item_coverage"] = len({i for r in recs.values() for i, _ in r[:k]})
    out["user_coverage"] = sum(1 for r in recs.values() if len(r) > 0)

    sh, lt = set(pop.short_head), set(pop.long_tail)
    num, den = [], []
    for u, r in recs.items():
        got = {i for i, _ in r[:k]}
        u_train = set(train[u])
        num.append([len(got & sh), len(got & lt)])
        den.append([len(sh - u_train), len(lt - u_train)])
    pr = np.sum(np.array(num), axis=0) / np.sum(np.array(den), axis=0)
    out["pop_rsp"] = np.std(pr) / np.mean(pr)
    num, den = [], []
    for u, r in recs.items():
        if not rel[u]:
            continue
        ur = set(rel[u])
        got = {i for i, _ in r[:k] if i in ur}
        u_train = set(train[u])
        num.append([len(got & sh), len(got & lt)])
        den.append([len((sh & ur) - u_train), len((lt & ur) - u_train)])
    pr = np.sum(np.array(num), axis=0) / np.sum(np.array(den), axis=0)
    out["pop_reo"] = np.std(pr) / np.mean(pr)
    return {m: float(v) for m, v in out.items()}, per_user, pop


def adjusted_case(rng):
    p = list(rng.uniform(0, 0.2, 9)) + [0.01, 0.01, 0.5, float("nan"), 0.04, 0.04, 0.9]
    p = [float(x) for x in p]
    ok = [x for x in p if not math.isnan(x)]
    case = {"p": [x if not math.isnan(x) else None for x in p]}
    for name, method in (("bonferroni", "bonferroni"), ("holm", "holm"), ("bh", "fdr_bh")):
        adj = iter(multipletests(ok, method=method)[1])
        case[name] = [None if math.isnan(x) else float(next(adj)) for x in p]
    return case


def main():
    rng = np.random.default_rng(20240611)
    scores, train, valid, test = make_problem(rng)
    as_rows = lambda split: [[[i, v] for i, v in sorted(d.items())] for d in split]
    doc = {"n_users": N_USERS, "n_items": N_ITEMS, "k": KS, "scores": scores.tolist(),
           "train": as_rows(train), "valid": as_rows(valid), "test": as_rows(test), "settings": []}
    for threshold, mask_valid in ((0, False), (3, True)):
        masked = [set(train[u]) | (set(valid[u]) if mask_valid else set()) for u in range(N_USERS)]
        recs = recommend(scores, masked, max(KS))
        setting = {"threshold": threshold, "mask_valid": mask_valid, "expected": {}, "per_user": {}}
        for k in KS:
            values, per_user, pop = elliot(recs, train, test, threshold, k)
            for m, v in values.items():
                setting["expected"][f"{m}@{k}"] = v
            for u, d in per_user.items():
                for m, v in d.items():
                    setting["per_user"].setdefault(str(u), {})[f"{m}@{k}"] = v
        last = pop.short_head[-1]
        assert any(pop.pop[i] == pop.pop[last] for i in pop.long_tail), "the short head should end inside a tie"
        setting["short_head"] = sorted(pop.short_head)
        setting["list_len"] = [len(recs[u]) for u in range(N_USERS)]
        doc["settings"].append(setting)
    doc["adjust"] = adjusted_case(rng)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote", os.path.join(OUT, "cases.json"))


if __name__ == "__main__":
    main()
