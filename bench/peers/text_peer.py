#!/usr/bin/env python3
"""text_peer.py: sentence-transformers on CPU doing what bench_text does, for the ratio.

    python bench/peers/text_peer.py MODEL_DIR TEXTS.txt THREADS [bf16] BATCH...

Prints "<batch> <seconds>" per batch size: the best of 3 encodes of all texts (tokenizing, the
model, pooling and normalization included), torch on THREADS threads. With bf16: under
torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's way of running a model in bf16 on a CPU.
"""
import contextlib
import sys
import time

import torch
from sentence_transformers import SentenceTransformer


def main():
    model_dir, texts_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(threads)
    texts = [l.rstrip("\n") for l in open(texts_path, encoding="utf-8")]
    st = SentenceTransformer(model_dir, device="cpu")
    rest = sys.argv[4:]
    bf16 = bool(rest) and rest[0] == "bf16"
    for b in map(int, rest[1:] if bf16 else rest):
        best = 1e30
        for _ in range(3):
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
                st.encode(texts, batch_size=b, convert_to_numpy=True)
            best = min(best, time.perf_counter() - t0)
        print(f"{b} {best:.4f}", flush=True)


if __name__ == "__main__":
    main()
