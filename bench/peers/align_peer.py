#!/usr/bin/env python3
"""align_peer.py: ALIGN's image tower (transformers' AlignVisionModel, EfficientNet-B7 as ALIGN builds it) on
PyTorch CPU, timed as bench_align times mrec's.

    python bench/peers/align_peer.py --make DIR
        writes DIR/{config.json, model.safetensors}: align-base's vision tower (AlignVisionConfig's defaults,
        image_size 289) with random weights (seed 0) and random BatchNorm statistics
    python bench/peers/align_peer.py --make-model DIR
        writes DIR as a kakaobrain/align-base folder with random weights: the whole AlignModel (that vision
        tower, BERT-base text tower, text_projection 768 -> 640), bert-base-uncased's vocabulary and align-base's
        processor config from tests/, for end-to-end runs (`mrec extract` of a Ducho config)
    python bench/peers/align_peer.py DIR THREADS [--bf16] INPUTS BATCH...
        INPUTS: float32 (N, 3, 289, 289) written by bench_align; prints "<batch> <seconds per image>", the best of
        3 passes over the first BATCH images, image_embeds (pooled output, L2-normalized) as AlignModel gives them;
        --bf16 runs them under torch.autocast("cpu", dtype=torch.bfloat16)
"""
import contextlib
import shutil
import sys
import time

import numpy as np
import torch
from transformers import AlignConfig, AlignModel, AlignVisionConfig, AlignVisionModel, BertTokenizer


def make(path):
    torch.manual_seed(0)
    cfg = AlignVisionConfig(image_size=289)
    m = AlignVisionModel(cfg).eval()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1), mod.running_var.uniform_(0.5, 1.5)
    m.save_pretrained(path, safe_serialization=True)


def make_model(path):
    torch.manual_seed(0)
    m = AlignModel(AlignConfig(vision_config=dict(image_size=289), projection_dim=640)).eval()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1), mod.running_var.uniform_(0.5, 1.5)
    m.save_pretrained(path, safe_serialization=True)
    BertTokenizer("tests/data/tokenizers/bert-base-uncased/vocab.txt", do_lower_case=True).save_pretrained(path)
    shutil.copy("tests/fixtures/align/align_base_processor/preprocessor_config.json", path)


def main():
    if sys.argv[1] == "--make":
        return make(sys.argv[2])
    if sys.argv[1] == "--make-model":
        return make_model(sys.argv[2])
    path, threads, rest = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    bf16 = rest[0] == "--bf16"
    inputs, batches = rest[bf16], [int(b) for b in rest[bf16 + 1:]]
    torch.set_num_threads(threads)
    m = AlignVisionModel.from_pretrained(path).eval()
    x = torch.from_numpy(np.fromfile(inputs, dtype=np.float32).reshape(-1, 3, 289, 289))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        m(pixel_values=x[:1])
        for b in batches:
            best = 1e30
            for _ in range(3):
                t0 = time.perf_counter()
                torch.nn.functional.normalize(m(pixel_values=x[:b]).pooler_output, dim=-1)
                best = min(best, (time.perf_counter() - t0) / b)
            print(b, f"{best:.6f}", flush=True)


if __name__ == "__main__":
    main()
