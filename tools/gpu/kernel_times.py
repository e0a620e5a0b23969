#!/usr/bin/env python3
"""kernel_times.py: where a forward's (or a few training steps') GPU time goes, from ncu's CSV.

    ncu --profile-from-start off --csv --metrics gpu__time_duration.sum PROGRAM > k.csv
    python3 tools/gpu/kernel_times.py k.csv [WALL_MS]

Sums gpu__time_duration by kernel (the name up to its argument list) and prints a markdown table,
longest first: calls, total microseconds, share of the kernels' sum; then the sum itself, and
beside it WALL_MS (the same range timed without the profiler) when given: the difference is
time the GPU spent idle between kernels (launch overhead, host waits).
"""
import csv
import sys

UNITS = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3, "s": 1e6, "second": 1e6}


def short(name):
    """The name without its argument list: cut at the "(" that opens the last balanced "(...)", since
    template arguments hold parentheses too (void k<(int)64>(float *, int))."""
    name = name.strip()
    depth = 0
    for at in range(len(name) - 1, -1, -1) if name.endswith(")") else ():
        depth += {")": 1, "(": -1}.get(name[at], 0)
        if depth == 0:
            name = name[:at].rstrip()
            break
    return name if len(name) <= 80 else name[:77] + "..."


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    with open(sys.argv[1], newline="") as f:
        lines = [l for l in f if l.startswith('"')]  # ncu's own notes ("==PROF==") are not CSV
    rows = csv.DictReader(lines)
    total, by = 0.0, {}
    for r in rows:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        try:
            us = float(r["Metric Value"].replace(",", "")) * UNITS.get(r.get("Metric Unit", "ns").strip(), 1e-3)
        except ValueError:  # "n/a": a kernel ncu could not time
            continue
        k = short(r["Kernel Name"])
        calls, t = by.get(k, (0, 0.0))
        by[k] = (calls + 1, t + us)
        total += us
    if not by:
        print("no kernel times in the profile")
        return 1
    print("| kernel | calls | us | share |")
    print("|--|--:|--:|--:|")
    ranked = sorted(by.items(), key=lambda kv: -kv[1][1])
    for k, (calls, t) in ranked[:20]:
        print(f"| `{k}` | {calls} | {t:.0f} | {100 * t / total:.1f} % |")
    rest = ranked[20:]
    if rest:
        t = sum(v[1] for _, v in rest)
        print(f"| {len(rest)} other kernels | {sum(v[0] for _, v in rest)} | {t:.0f} | {100 * t / total:.1f} % |")
    line = f"\nkernels: {sum(v[0] for v in by.values())} launches, {total / 1e3:.3f} ms on the GPU"
    if len(sys.argv) > 2:
        wall = float(sys.argv[2])
        line += f"; the same range unprofiled: {wall:.3f} ms ({100 * total / 1e3 / wall:.0f} % of it in kernels)"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
