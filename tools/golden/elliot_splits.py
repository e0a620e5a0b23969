#!/usr/bin/env python3
"""elliot_splits.py: Elliot's splitter restated with numpy's own RandomState and pandas, on small real
subsets of ../shared/data, for tests/test_split.c.

    python tools/golden/elliot_splits.py

What Elliot does (elliot/splitter/base_splitter.py, elliot/prefiltering/standard_prefilters.py,
elliot/dataset/dataset.py in sisinflab/elliot), and so what is restated here:

  - the data: read_csv(sep='\\t', header=None, names=[userId, itemId, rating, timestamp]); an
    all-empty timestamp column is dropped; an all-empty rating column becomes 1;
  - prefiltering: each strategy in turn; user_k_core / item_k_core keep the groups with >= core
    rows (groupby().filter keeps data order); iterative_k_core repeats user then item passes;
  - np.random.seed(random_seed) once, then the test splitting on the data, then the validation
    splitting on the training rows (index reset, data order kept), the stream going on;
  - random_subsampling: for each user of groupby('userId') (sorted ids), the list
    [0] * floor(n (1 - test_ratio)) + [1] * rest (or [0] * (n - leave_n_out) + [1] * leave_n_out)
    np.random.shuffle()d, the user's rows in data order taking the flags; 1 is held out; with folds,
    that again for every fold in turn, the stream going on;
  - random_cross_validation: a user's i-th row (data order) is in fold i % folds, no draws;
  - the validation splitting of every test fold's training rows comes after all test folds, fold
    0's first;
  - temporal_hold_out: rank(method='first') of the timestamp per user; held out the ranks past
    floor(n (1 - test_ratio)), or the leave_n_out latest (ascending=False);
  - fixed_timestamp: held out the rows with timestamp >= the cut; best: the timestamp of the data
    with the most users having >= min_below rows before it and >= min_over from it, the latest on ties;
  - save_on_disk: <folder>/T/test.tsv, and <folder>/T/V/train.tsv + val.tsv (or <folder>/T/train.tsv
    without validation) for test fold T and validation fold V, to_csv(sep='\\t', header=False, index=False), rows in data order.

Elliot cannot rank string dates; for the case with dates this script ranks them after pd.to_datetime,
which is what mrec does with them, and writes them as read.

Writes tests/fixtures/splits/: mt19937.txt (first outputs and shuffles of numpy's RandomState for a
few seeds), cases.tsv (each case: its input, seed, mrec's --split spelling and prefilter), and for
the Baby cases inputs/baby.tsv.gz and one folder per case with the files Elliot saves (gzip, no
timestamps). ML-100K's and H&M's terms forbid copying their rows, so for those cases neither the
subset nor the split files are written: digests.tsv holds each file's size and CRC-32, and
tests/test_split.c builds the same subsets from ../shared/data (SUBSETS below, restated in C there).
"""
import gzip
import io
import math
import os
import zlib

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "..", "shared", "data")
OUT = os.path.join(ROOT, "tests", "fixtures", "splits")
COLS = ["userId", "itemId", "rating", "timestamp"]


def write_gz(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as g:
            g.write(text.encode())


# ---- Elliot's procedure ----

def load(text, dates=False):
    d = pd.read_csv(io.StringIO(text), sep="\t", header=None, names=COLS)
    if d["timestamp"].isna().all():
        d = d.drop(columns=["timestamp"]).reset_index(drop=True)
    if d["rating"].isna().all():
        d["rating"] = 1
    if dates:
        d["time_key"] = pd.to_datetime(d["timestamp"], utc=True)
    return d


def prefilter_rows(d, steps):
    for kind, core in steps:
        if kind == "user":
            d = d.groupby("userId").filter(lambda g: len(g) >= core)
        elif kind == "item":
            d = d.groupby("itemId").filter(lambda g: len(g) >= core)
        elif kind == "kcore":
            while True:
                n = len(d)
                d = d.groupby("userId").filter(lambda g: len(g) >= core)
                d = d.groupby("itemId").filter(lambda g: len(g) >= core)
                if len(d) == n:
                    break
    return d


def held_out_folds(d, part):
    """Boolean Series over d's index, one a fold: the rows each fold of the part holds out."""
    if part[0] == "random":
        # fold after fold, every user each time, the stream going on
        folds = []
        for _ in range(part[3]):
            out = pd.Series(False, index=d.index)
            for _, g in d.groupby("userId", sort=True):
                n = len(g)
                if part[1] == "n":
                    flags = [0] * (n - part[2]) + [1] * part[2]
                else:
                    train = int(math.floor(n * (1 - part[2])))
                    flags = [0] * train + [1] * (n - train)
                assert len(flags) == n
                np.random.shuffle(flags)
                out.loc[g.index] = [bool(f) for f in flags]
            folds.append(out)
        return folds
    if part[0] == "kfold":
        # random_cross_validation: a user's i-th row (data order) in fold i % folds, no draws
        position = d.groupby("userId").cumcount()
        return [position % part[1] == f for f in range(part[1])]
    return [held_out(d, part)]


def held_out(d, part):
    """A boolean Series over d's index: the rows a one-fold part holds out."""
    kind = part[0]
    key = "time_key" if "time_key" in d.columns else "timestamp"
    out = pd.Series(False, index=d.index)
    if kind == "temporal":
        if part[1] == "n":
            r = d.groupby("userId")[key].rank(method="first", ascending=False)
            out = r <= part[2]
        else:
            size = d.groupby("userId").size()
            threshold = size.apply(lambda n: math.floor(n * (1 - part[2])))
            r = d.groupby("userId")[key].rank(method="first", ascending=True)
            out = r > d["userId"].map(threshold)
    elif kind == "timestamp":
        cut = part[1]
        if cut == "best":
            below_min, over_min = part[2], part[3]
            best_t, best_c = None, -1
            per_user = [np.sort(g[key].to_numpy()) for _, g in d.groupby("userId")]
            for t in np.unique(d[key].to_numpy()):
                c = 0
                for ts in per_user:
                    below = int(np.searchsorted(ts, t, side="left"))
                    if below >= below_min and len(ts) - below >= over_min:
                        c += 1
                if c >= best_c:  # the latest timestamp among ties
                    best_t, best_c = t, c
            cut = best_t
        out = d[key] >= cut
    return out


def split(d, test, valid, seed):
    """Every fold as Elliot makes them: {(t, v): (train, val or None, test)}; every test fold is split
    first, then the training rows of test fold 0 into its validation folds, then those of fold 1, ..."""
    np.random.seed(seed)
    pairs = [(d[~t].reset_index(drop=True), d[t].reset_index(drop=True)) for t in held_out_folds(d, test)]
    folds = {}
    for ti, (train, test_df) in enumerate(pairs):
        if valid is None:
            folds[(ti, 0)] = (train, None, test_df)
            continue
        for vi, v in enumerate(held_out_folds(train, valid)):
            folds[(ti, vi)] = (train[~v].reset_index(drop=True), train[v].reset_index(drop=True), test_df)
    return folds


def tsv(df):
    return df.drop(columns=[c for c in df.columns if c == "time_key"]).to_csv(sep="\t", header=False, index=False)


def parse_part(text):
    """mrec's spelling of one part (random:0.2, random:n=1, random:0.2,folds=3, kfold:4, temporal:...,
    timestamp:best[:B:O]) as a tuple."""
    kind, value = text.split(":", 1)
    if kind == "kfold":
        return ("kfold", int(value))
    if kind == "random":
        value, _, folds = value.partition(",folds=")
        folds = int(folds or 1)
        return ("random", "n", int(value[2:]), folds) if value.startswith("n=") else ("random", "r", float(value), folds)
    if kind == "timestamp":
        if value.startswith("best"):
            below, over = (value.split(":")[1:] or ["1", "1"])
            return ("timestamp", "best", int(below), int(over))
        return ("timestamp", int(value))
    if value.startswith("n="):
        return (kind, "n", int(value[2:]))
    return (kind, "r", float(value))


CASES = []
DIGESTS = []
# The inputs built from ../shared/data by the test itself (its shared_subset()), never written here.
SUBSETS = ("ml100k", "hm", "hm_dates")


def case(name, input_name, text, spelling, seed, prefilter="", dates=False):
    """One fixture: the split mrec's --split elliot:SPELLING gives with --seed-split seed (and the prefilter)."""
    parts = spelling.split("/")
    test, valid = parse_part(parts[0]), parse_part(parts[1]) if len(parts) > 1 else None
    steps = [(k, int(v)) for k, v in (s.split(":") for s in prefilter.split(",") if s)]
    d = prefilter_rows(load(text, dates), steps)
    folds = split(d, test, valid, seed)
    files = []
    for (t, v), (train, val, test_df) in sorted(folds.items()):
        if v == 0:
            files.append((f"{t}/test.tsv", tsv(test_df)))
        if val is None:
            files.append((f"{t}/train.tsv", tsv(train)))
        else:
            files += [(f"{t}/{v}/train.tsv", tsv(train)), (f"{t}/{v}/val.tsv", tsv(val))]
    train, val, test_df = folds[(0, 0)]
    if input_name in SUBSETS:  # rows that may not be copied: their size and CRC-32 only
        for rel, body in files:
            data = body.encode()
            DIGESTS.append("\t".join([name, rel, str(len(data)), "%08x" % zlib.crc32(data)]))
    else:
        write_gz(os.path.join(OUT, "inputs", input_name + ".tsv.gz"), text)
        for rel, body in files:
            write_gz(os.path.join(OUT, name, rel + ".gz"), body)
    CASES.append("\t".join([name, input_name, str(seed), "elliot:" + spelling, prefilter or "-"]))
    print(f"{name}: {len(d)} rows, {len(folds)} folds; fold 0/0: train {len(train)}, valid {0 if val is None else len(val)}, "
          f"test {len(test_df)}")


# ---- the data ----

def ml100k(max_user):
    """u.data's rows (user item rating time) of users 1..max_user, in file order."""
    keep = []
    with open(os.path.join(DATA, "ml-100k", "raw", "u.data")) as f:
        for line in f:
            if int(line.split("\t")[0]) <= max_user:
                keep.append(line)
    return "".join(keep)


def baby(n_users):
    """baby_split.tsv's (user, item) pairs of users 0..n_users-1, in file order (its split column dropped)."""
    keep = []
    with open(os.path.join(DATA, "amazon-baby-mmrec", "baby_split.tsv")) as f:
        next(f)
        for line in f:
            u, i, _ = line.rstrip("\n").split("\t")
            if int(u) < n_users:
                keep.append(f"{u}\t{i}\n")
    return "".join(keep)


def hm(n_rows, with_date):
    """hm_2core_interactions.tsv's first n_rows: customer, article, purchases[, first date]."""
    keep = []
    with open(os.path.join(DATA, "hm-fashion-sample", "hm_2core_interactions.tsv")) as f:
        next(f)
        for line in f:
            c, a, t, n = line.rstrip("\n").split("\t")
            keep.append(f"{c}\t{a}\t{n}\t{t}\n" if with_date else f"{c}\t{a}\t{n}\n")
            if len(keep) == n_rows:
                break
    return "".join(keep)


def mt_outputs():
    lines = []
    for seed in (0, 1, 42, 5489, 123456789, 2**32 - 1):
        rs = np.random.RandomState(seed)
        words = rs.randint(0, 2**32, size=8, dtype=np.uint32)  # the raw 32-bit outputs
        lines.append("outputs %d %s" % (seed, " ".join(str(int(w)) for w in words)))
    for seed, n in ((42, 200), (7, 256), (2**31, 17), (0, 2)):
        rs = np.random.RandomState(seed)
        x = list(range(n))
        rs.shuffle(x)
        lines.append("shuffle %d %d %s" % (seed, n, " ".join(str(v) for v in x)))
    # the stream goes on across shuffles, as over Elliot's users
    rs = np.random.RandomState(42)
    for n in (5, 1, 9, 33):
        x = [0] * (n - n // 3) + [1] * (n // 3)
        rs.shuffle(x)
        lines.append("flags 42 %d %s" % (n, " ".join(str(v) for v in x)))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "mt19937.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    mt_outputs()
    ml = ml100k(120)
    case("ml100k_ratio", "ml100k", ml, "random:0.2/random:0.1", 42)
    case("ml100k_leave", "ml100k", ml, "random:n=2/random:n=1", 7, prefilter="item:3")
    case("ml100k_best", "ml100k", ml, "timestamp:best/random:0.25", 42)
    case("ml100k_temporal", "ml100k", ml, "temporal:n=1/temporal:0.1", 42, prefilter="kcore:10")
    case("baby_ratio", "baby", baby(600), "random:0.2/random:0.25", 42, prefilter="user:5")
    case("hm_ratio", "hm", hm(1500, False), "random:0.3", 2**32 - 1)
    case("hm_dates", "hm_dates", hm(1500, True), "temporal:0.2/temporal:n=1", 42, prefilter="kcore:2", dates=True)
    # folds: random_subsampling with folds and random_cross_validation, test and validation
    small = baby(200)
    case("baby_folds", "baby_small", small, "random:0.2,folds=3/random:n=1,folds=2", 42, prefilter="user:5")
    case("baby_kfold", "baby_small", small, "kfold:3/random:0.25", 42, prefilter="user:5")
    case("baby_kfold_only", "baby_small", small, "random:n=1,folds=2/kfold:2", 5, prefilter="user:5")
    case("ml100k_folds", "ml100k", ml, "random:0.2,folds=2/random:0.1,folds=2", 42)
    with open(os.path.join(OUT, "cases.tsv"), "w") as f:
        f.write("# name\tinput (inputs/NAME.tsv.gz, or ml100k, hm, hm_dates: built from ../shared/data)\tseed\t--split\t"
                "prefilter (mrec_prefilter_parse; - none)\n")
        f.write("\n".join(CASES) + "\n")
    with open(os.path.join(OUT, "digests.tsv"), "w") as f:
        f.write("# case\tfile (as save_on_disk names it)\tbytes\tcrc32 (zlib) of the file pandas writes\n")
        f.write("\n".join(DIGESTS) + "\n")


if __name__ == "__main__":
    main()
