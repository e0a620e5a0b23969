#!/usr/bin/env python3
"""vision_peer.py: PyTorch CPU doing what bench_vision does, for the ratio.

    python bench/peers/vision_peer.py FULL_DIR IMAGES.txt THREADS [bf16] BATCH...

FULL_DIR is tools/golden/vision.py --full's folder (resnet50/, vit_b16/), or - for the decoding alone. Prints
"decode <seconds>" for PIL open + convert + Resize((224, 224), bicubic) + ToTensor + Normalize of every
image in IMAGES.txt, then "resnet50 <batch> <seconds per image>" and "vit_b16 <batch> <seconds per image>":
the best of 3 forward passes (8 below batch 8, where one pass is short and a busy host
moves it most) and of at least 3 s of them, as bench_vision times mrec (torch.no_grad, float32) on THREADS threads. With bf16, also
"vit_b16_bf16 <batch> <seconds per image>" and "resnet50_bf16 <batch> <seconds per image>": the
models under torch.autocast("cpu", dtype=torch.bfloat16).
"""
import sys
import time

import torch
import torchvision
import torchvision.transforms as T
from PIL import Image
from safetensors.torch import load_file
from transformers import ViTModel


def best(f, reps=3, seconds=3.0):
    b, spent, n = 1e30, 0.0, 0
    while n < reps or spent < seconds:
        t0 = time.perf_counter()
        f()
        t = time.perf_counter() - t0
        b, spent, n = min(b, t), spent + t, n + 1
    return b


def main():
    full, images, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(threads)
    paths = [l.strip() for l in open(images)]
    tf = T.Compose([T.Resize((224, 224), interpolation=T.InterpolationMode.BICUBIC), T.ToTensor(),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    print(f"decode {best(lambda: [tf(Image.open(p).convert('RGB')) for p in paths]):.4f}", flush=True)
    if full == "-":  # decode + preprocess only
        return
    r = torchvision.models.resnet50()
    r.load_state_dict(load_file(f"{full}/resnet50/model.safetensors"), strict=False)
    r.fc = torch.nn.Identity()
    r.eval()
    v = ViTModel.from_pretrained(f"{full}/vit_b16").eval()
    rest = sys.argv[4:]
    bf16 = bool(rest) and rest[0] == "bf16"
    for b in map(int, rest[1:] if bf16 else rest):
        x = torch.randn(b, 3, 224, 224)
        reps = 3 if b >= 8 else 8
        with torch.no_grad():
            r(x), v(pixel_values=x)  # warm up
            print(f"resnet50 {b} {best(lambda: r(x), reps) / b:.5f}", flush=True)
            print(f"vit_b16 {b} {best(lambda: v(pixel_values=x), reps) / b:.5f}", flush=True)
            if bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    v(pixel_values=x)  # warm up
                    print(f"vit_b16_bf16 {b} {best(lambda: v(pixel_values=x), reps) / b:.5f}", flush=True)
                    r(x)  # warm up
                    print(f"resnet50_bf16 {b} {best(lambda: r(x), reps) / b:.5f}", flush=True)


if __name__ == "__main__":
    main()
