#!/usr/bin/env python3
"""clip_train_peer.py: the CLIP training step bench_clip_train times, in PyTorch.

    python bench/peers/clip_train_peer.py CLIP_DIR THREADS BATCH TOKENS STEPS INPUTS

Hugging Face's CLIPModel from CLIP_DIR (float32, train mode: CLIP has no dropout), the inputs
bench_clip_train wrote (BATCH images as float32, then BATCH x TOKENS int32 ids), and one step:
the contrastive loss (return_loss=True), backward, clip_grad_norm_(1.0), torch.optim.AdamW
(lr 1e-5, betas (0.9, 0.98), eps 1e-6; weight decay 0.2 on the weight matrices, none on
biases, LayerNorms, embeddings and the logit scale), zero_grad. Prints the mean seconds of STEPS
steps after one warm-up, and the peak resident size in MB.
"""
import resource
import sys
import time

import numpy as np
import torch
from transformers import CLIPModel


def main():
    path, threads, B, T, steps, inputs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    torch.set_num_threads(threads)
    model = CLIPModel.from_pretrained(path, torch_dtype=torch.float32).train()
    S = model.config.vision_config.image_size
    raw = np.fromfile(inputs, dtype=np.uint8)
    n_img = B * 3 * S * S
    images = torch.from_numpy(raw[:n_img * 4].view(np.float32).reshape(B, 3, S, S).copy())
    ids = torch.from_numpy(raw[n_img * 4:n_img * 4 + B * T * 4].view(np.int32).reshape(B, T).astype(np.int64))
    decay, rest = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "embedding" not in name else rest).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.2}, {"params": rest, "weight_decay": 0.0}], lr=1e-5,
                            betas=(0.9, 0.98), eps=1e-6)
    total = 0.0
    for k in range(steps + 1):
        t0 = time.perf_counter()
        loss = model(input_ids=ids, pixel_values=images, return_loss=True).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if k:
            total += time.perf_counter() - t0
    print(f"{total / steps:.6f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0:.1f}")


if __name__ == "__main__":
    main()
