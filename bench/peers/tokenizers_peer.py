#!/usr/bin/env python3
"""tokenizers_peer.py: Hugging Face `tokenizers` (Rust) on the same corpus as bench_tokenizers.

    python bench/peers/tokenizers_peer.py CORPUS.txt.gz BERT_TOKENIZER_JSON CLIP_TOKENIZER_JSON [XLMR_TOKENIZER_JSON]

Prints one line per tokenizer: "<name> <tokens> <seconds>", the best of 3 runs of encode_batch
on one thread (RAYON_RS_NUM_CPUS=1), no special tokens, same texts as the C bench.
"""
import gzip
import os
import sys
import time

os.environ["RAYON_RS_NUM_CPUS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402


def unescape(line):
    out, i = [], 0
    while i < len(line):
        if line.startswith("\\\\", i):
            out.append("\\")
            i += 2
        elif line.startswith("\\x", i):
            out.append(chr(int(line[i + 2:i + 4], 16)))
            i += 4
        else:
            out.append(line[i])
            i += 1
    return "".join(out)


def main():
    corpus, paths = sys.argv[1], sys.argv[2:5]
    with gzip.open(corpus, "rt", encoding="utf-8", newline="\n") as f:
        texts = [unescape(l.rstrip("\n")) for l in f]
    for name, path in zip(("wordpiece", "clip", "xlmr"), paths):
        tok = Tokenizer.from_file(path)
        tok.no_truncation()
        tok.no_padding()
        best, n = 1e30, 0
        for _ in range(3):
            t0 = time.perf_counter()
            enc = tok.encode_batch(texts, add_special_tokens=False)
            best = min(best, time.perf_counter() - t0)
            n = sum(len(e.ids) for e in enc)
        print(f"{name} {n} {best:.6f}", flush=True)


if __name__ == "__main__":
    main()
