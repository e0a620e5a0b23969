#!/usr/bin/env python3
"""clip_peer.py: Hugging Face CLIPModel (or AltCLIPModel) on the CPU doing what bench_clip does, for the ratio.

    python bench/peers/clip_peer.py MODEL_DIR TEXTS.txt THREADS [bf16] BATCH...

MODEL_DIR is tools/golden/clip.py --full's folder, or altclip.py --full's (XLMRobertaTokenizerFast, texts cut
at 512 tokens as Ducho's AltCLIPProcessor call does). Prints "image <batch> <seconds per image>" (the best
of 3 calls, and of 3 s of calls at least, of get_image_features on a (batch, 3, S, S) tensor, then the
normalization) and
"text <batch> <seconds per text>" (tokenizing with the fast tokenizer, padding to the longest of each
batch, texts sorted by length as sentence-transformers does, get_text_features and the normalization,
over every text in TEXTS.txt), torch.no_grad, float32, on THREADS threads. With bf16: under
torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's way of running a model in bf16 on a CPU.
"""
import contextlib
import json
import sys
import time

import torch
from transformers import AltCLIPModel, CLIPModel, CLIPTokenizerFast, XLMRobertaTokenizerFast


def best(f, reps=3, seconds=0.0):
    b, spent, n = 1e30, 0.0, 0
    while n < reps or spent < seconds:
        t0 = time.perf_counter()
        f()
        t = time.perf_counter() - t0
        b, spent, n = min(b, t), spent + t, n + 1
    return b


def main():
    path, texts_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(threads)
    altclip = json.load(open(f"{path}/config.json")).get("model_type") == "altclip"
    model = (AltCLIPModel if altclip else CLIPModel).from_pretrained(path).eval()
    tok = XLMRobertaTokenizerFast(tokenizer_file=f"{path}/tokenizer.json") if altclip else CLIPTokenizerFast.from_pretrained(path)
    max_length = 512 if altclip else 77
    texts = [l.rstrip("\n") for l in open(texts_path, encoding="utf-8")]
    size = model.config.vision_config.image_size

    def embed_texts(b):
        order = sorted(range(len(texts)), key=lambda i: len(tok(texts[i], truncation=True)["input_ids"]))
        out = [None] * len(texts)
        for s in range(0, len(texts), b):
            idx = order[s:s + b]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            e = model.get_text_features(**enc).pooler_output.float()
            e = e / e.norm(dim=-1, keepdim=True)
            for k, i in enumerate(idx):
                out[i] = e[k]
        return out

    rest = sys.argv[4:]
    bf16 = bool(rest) and rest[0] == "bf16"
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.no_grad(), autocast:
        for b in map(int, rest[1:] if bf16 else rest):
            x = torch.randn(b, 3, size, size)

            def images():
                e = model.get_image_features(pixel_values=x).pooler_output.float()
                return e / e.norm(dim=-1, keepdim=True)
            images()  # warm up
            print(f"image {b} {best(images, seconds=3.0) / b:.5f}", flush=True)
            embed_texts(b)
            print(f"text {b} {best(lambda: embed_texts(b)) / len(texts):.6f}", flush=True)


if __name__ == "__main__":
    main()
