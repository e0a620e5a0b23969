#!/usr/bin/env python3
"""decode.py: what PIL's Image.open(path).convert('RGB') gives for every image mrec's decoder test reads.

    python tools/golden/decode.py

Walks ../shared/data/images (the ImageNet sample, the product photos and the 133 odd files), every
8th H&M photo of ../shared/data/hm-fashion-sample/images and the photos made here
(tests/data/images/derived, see tools/golden/images.py), and writes tests/fixtures/images/decode.tsv:
"path  ok  width  height  crc32" (crc32 of the RGB bytes, row-major, as zlib computes it), or
"path  error  -  -  PIL's exception", paths relative to ../shared/data (or tests/data). Only
digests: no pixels of the research-only photos are written. EXIF orientation is not
applied: Image.open does not apply it.
"""
import os
import sys
import warnings
import zlib

sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = "../shared/data"
OUT = "tests/fixtures/images/decode.tsv"


def files():
    out = []
    for top in ["images"]:
        for d, _, names in os.walk(os.path.join(ROOT, top)):
            out += [os.path.join(d, n) for n in names if n.lower().endswith((".jpg", ".jpeg", ".png"))]
    hm = []
    for d, _, names in os.walk(os.path.join(ROOT, "hm-fashion-sample/images")):
        hm += [os.path.join(d, n) for n in names if n.lower().endswith(".jpg")]
    made = [os.path.join("tests/data/images/derived", n) for n in os.listdir("tests/data/images/derived")]
    return sorted(out) + sorted(hm)[::8] + sorted(made)


def main():
    warnings.simplefilter("ignore")
    lines = []
    for path in files():
        rel = os.path.relpath(path, "tests/data" if path.startswith("tests/data/") else ROOT)
        try:
            with Image.open(path) as im:
                a = np.ascontiguousarray(np.asarray(im.convert("RGB")))
            lines.append(f"{rel}\tok\t{a.shape[1]}\t{a.shape[0]}\t{zlib.crc32(a.tobytes()):08x}")
        except Exception as e:  # every failure is an expected "error" row
            msg = f"{type(e).__name__}: {e}".replace("\t", " ").replace("\n", " ")
            lines.append(f"{rel}\terror\t-\t-\t{msg}")
    open(OUT, "w").write("\n".join(lines) + "\n")
    print(f"wrote {OUT}: {len(lines)} files, {sum(' error ' in l.replace(chr(9), ' ') for l in lines)} errors")


if __name__ == "__main__":
    main()
