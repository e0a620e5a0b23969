#!/usr/bin/env python3
"""stats.py: p-values of scipy's paired t-test and Wilcoxon signed-rank test, for mrec's.

    python tools/golden/stats.py

Writes tests/fixtures/stats/pvalues.json: paired samples shaped like per-user metrics (many
zeros, many ties, a few hundred users) and scipy.stats.ttest_rel(x, y).pvalue and
scipy.stats.wilcoxon(x, y).pvalue (defaults: two-sided, zero differences dropped, normal
approximation with tie correction above 50 pairs, no continuity correction).
"""
import json
import os

import numpy as np
import scipy.stats as st

rng = np.random.default_rng(7)
cases = []
for n, p_hit, shift in [(300, 0.3, 0.0), (500, 0.2, 0.05), (120, 0.5, 0.1), (1000, 0.05, 0.0)]:
    # recall-like values: 0 or k / n_rel
    n_rel = rng.integers(1, 6, size=n)
    x = (rng.random(n) < p_hit) * rng.integers(1, 3, size=n) / n_rel
    y = (rng.random(n) < p_hit + shift) * rng.integers(1, 3, size=n) / n_rel
    x, y = np.minimum(x, 1.0), np.minimum(y, 1.0)
    cases.append({"x": [round(float(v), 6) for v in x], "y": [round(float(v), 6) for v in y]})
for c in cases:  # p-values of the rounded values, as the test reads them
    x, y = np.array(c["x"]), np.array(c["y"])
    c["ttest_p"] = float(st.ttest_rel(x, y).pvalue)
    c["wilcoxon_p"] = float(st.wilcoxon(x, y).pvalue)
out = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "stats")
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "pvalues.json"), "w") as f:
    json.dump({"scipy": st.__name__ and __import__("scipy").__version__, "cases": cases}, f)
print("wrote", len(cases), "cases")
