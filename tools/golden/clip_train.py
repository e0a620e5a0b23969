#!/usr/bin/env python3
"""clip_train.py: the gradients of CLIP's contrastive loss through both towers, by autograd.

    python tools/golden/clip_train.py

Loads the tiny random CLIPModel of tests/fixtures/clip (vision: hidden 24, 2 layers, 4 heads,
32x32 images in 8x8 patches; text: hidden 16, 2 layers, 4 heads; projection 12; QuickGELU),
runs CLIPModel(input_ids, attention_mask, pixel_values, return_loss=True) in float64 on 3
image-text pairs made here (random pixels; ids with the end-of-text token 49407 at different
places and padding after it, mask 0 there), and writes tests/fixtures/clip_train/:

  pixel_values.npy (3, 3, 32, 32) float32, input_ids.npy and attention_mask.npy (3, 7) int32,
  loss.npy, and d_<name>.npy for every parameter, named as in model.safetensors; the token
  embedding's gradient (49408 x 16, zero outside the batch's ids) only at the rows of
  token_rows.npy (the distinct ids, ascending), as d_text_model.embeddings.token_embedding.rows.npy.
"""
import os
import sys

# tools/golden/tokenizers.py would shadow the tokenizers package transformers imports
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import CLIPModel  # noqa: E402

SRC = "tests/fixtures/clip"
OUT = "tests/fixtures/clip_train"


def main():
    os.makedirs(OUT, exist_ok=True)
    model = CLIPModel.from_pretrained(SRC, attn_implementation="eager").double().train()
    g = torch.Generator().manual_seed(0)
    B, T = 3, 7
    pixels = (torch.rand(B, 3, 32, 32, generator=g) * 4 - 2).float()
    ids = torch.randint(300, 5000, (B, T), generator=g, dtype=torch.int64)
    ids[:, 0] = 49406
    mask = torch.ones(B, T, dtype=torch.int64)
    for b, eos in enumerate([6, 3, 5]):
        ids[b, eos] = 49407
        ids[b, eos + 1:] = 1
        mask[b, eos + 1:] = 0
    out = model(input_ids=ids, attention_mask=mask, pixel_values=pixels.double(), return_loss=True)
    out.loss.backward()
    np.save(os.path.join(OUT, "pixel_values.npy"), pixels.numpy())
    np.save(os.path.join(OUT, "input_ids.npy"), ids.numpy().astype(np.int32))
    np.save(os.path.join(OUT, "attention_mask.npy"), mask.numpy().astype(np.int32))
    np.save(os.path.join(OUT, "loss.npy"), out.loss.detach().numpy().reshape(1).astype(np.float32))
    rows = np.unique(ids.numpy()).astype(np.int32)
    np.save(os.path.join(OUT, "token_rows.npy"), rows)
    for name, p in model.named_parameters():
        grad = p.grad.detach().numpy().astype(np.float32)
        if name == "text_model.embeddings.token_embedding.weight":
            np.save(os.path.join(OUT, "d_text_model.embeddings.token_embedding.rows.npy"), grad[rows])
            continue
        np.save(os.path.join(OUT, "d_" + name + ".npy"), grad)


if __name__ == "__main__":
    main()
