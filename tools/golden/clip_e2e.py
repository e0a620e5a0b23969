#!/usr/bin/env python3
"""clip_e2e.py: CLIP-E2E's loss, gradients and optimizer steps (recsys/clip_e2e.c), by autograd.

    python tools/golden/clip_e2e.py

The tiny random CLIPModel of tests/fixtures/clip in float64, 5 items (random pixels; texts of 7
tokens with the end-of-text token at different places and padding after it), 4 users, dim 6:

  img_i = normalize(visual_projection(vision_model(pixels_i).pooler_output))
  txt_i = normalize(text_projection(text_model(ids_i, mask_i).pooler_output))
  item_i = W [img_i ; txt_i] + b;  score = <U_u, item_i>
  loss = -mean log(1e-10 + sigmoid(pos - neg)) + reg (|U_b| + |item_b+| + |item_b-|) / n   (Frobenius)

U, W and b are given (written here), so the test loads them instead of the model's draws. For N
trainable blocks per tower (N = 0, 1, 2), the last N blocks of each tower, its final LayerNorm
and projection train (N = 0: nothing of CLIP). Three fixed batches of 4 triples (an item twice in
a batch, as positive and negative) each take one step: torch.optim.Adam (lr 0.01) on U, W, b;
torch.optim.AdamW (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.1 on matrices only)
on the towers. Learning rates larger than the model's defaults, so that three steps move the
weights well past float32 rounding. Writes tests/fixtures/clip_e2e/, one safetensors per case:

  inputs.safetensors: pixel_values (5, 3, 32, 32), input_ids, attention_mask (5, 7) int32,
    user (4, 6), w (6, 24), b (6), triples (3, 3, 4) int32 (batch, u/pos/neg, n);
  n<N>.safetensors (N blocks), float32: loss (the first batch's), d_<name> (its gradients: user,
    w, b and each trainable tower tensor with model.safetensors' name), w_<name> (every trainable
    tensor after the three steps).
"""
import os
import sys

# tools/golden/tokenizers.py would shadow the tokenizers package transformers imports
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from transformers import CLIPModel  # noqa: E402

SRC = "tests/fixtures/clip"
OUT = "tests/fixtures/clip_e2e"
REG = 0.01


def inputs():
    g = torch.Generator().manual_seed(1)
    n_items, T, n_users, dim, D = 5, 7, 4, 6, 12
    pixels = (torch.rand(n_items, 3, 32, 32, generator=g) * 4 - 2).float()
    ids = torch.randint(300, 5000, (n_items, T), generator=g, dtype=torch.int64)
    ids[:, 0] = 49406
    mask = torch.ones(n_items, T, dtype=torch.int64)
    for i, eos in enumerate([6, 3, 5, 2, 6]):
        ids[i, eos] = 49407
        ids[i, eos + 1:] = 1
        mask[i, eos + 1:] = 0
    user = (torch.randn(n_users, dim, generator=g) * 0.5).float()
    w = (torch.randn(dim, 2 * D, generator=g) * 0.3).float()
    b = (torch.randn(dim, generator=g) * 0.1).float()
    # (u, pos, neg) per batch; batch 0 has item 2 as a positive and as a negative
    triples = np.array([[[0, 1, 2, 3], [2, 0, 4, 1], [3, 2, 1, 0]],
                        [[3, 2, 1, 0], [4, 3, 0, 2], [0, 1, 3, 4]],
                        [[1, 1, 0, 2], [1, 4, 2, 3], [2, 0, 3, 4]]], dtype=np.int32)
    return pixels, ids, mask, user, w, b, triples


def run(N, pixels, ids, mask, user0, w0, b0, triples):
    model = CLIPModel.from_pretrained(SRC, attn_implementation="eager").double().train()
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = []
    if N > 0:
        for tower, proj, post in (("vision_model", "visual_projection", "post_layernorm"),
                                  ("text_model", "text_projection", "final_layer_norm")):
            L = len(getattr(model, tower).encoder.layers)
            for name, p in model.named_parameters():
                top = any(name.startswith(f"{tower}.encoder.layers.{l}.") for l in range(L - N, L))
                if top or name.startswith(f"{tower}.{post}.") or name.startswith(f"{proj}."):
                    p.requires_grad_(True)
                    trainable.append((name, p))
    user = user0.double().clone().requires_grad_(True)
    w = w0.double().clone().requires_grad_(True)
    b = b0.double().clone().requires_grad_(True)
    adam = torch.optim.Adam([user, w, b], lr=0.01)
    tower_opt = None
    if trainable:
        decay = [p for n, p in trainable if p.dim() == 2]
        no_decay = [p for n, p in trainable if p.dim() != 2]
        tower_opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                      lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    pv = pixels.double()

    def item_vectors():
        img = model.visual_projection(model.vision_model(pixel_values=pv).pooler_output)
        txt = model.text_projection(model.text_model(input_ids=ids, attention_mask=mask).pooler_output)
        e = torch.cat([torch.nn.functional.normalize(img, dim=1), torch.nn.functional.normalize(txt, dim=1)], dim=1)
        return e @ w.T + b

    out = {}
    for step in range(3):
        u, i, j = (torch.from_numpy(triples[step, k].astype(np.int64)) for k in range(3))
        z = item_vectors()
        eu, zi, zj = user[u], z[i], z[j]
        pos, neg = (eu * zi).sum(1), (eu * zj).sum(1)
        n = len(u)
        loss = -torch.log(1e-10 + torch.sigmoid(pos - neg)).mean() + REG * (eu.norm() + zi.norm() + zj.norm()) / n
        adam.zero_grad()
        if tower_opt:
            tower_opt.zero_grad()
        loss.backward()
        if step == 0:
            out["loss"] = loss.detach().numpy().reshape(1)
            out["d_user"], out["d_w"], out["d_b"] = user.grad.numpy().copy(), w.grad.numpy().copy(), b.grad.numpy().copy()
            for name, p in trainable:
                out["d_" + name] = p.grad.numpy().copy()
        adam.step()
        if tower_opt:
            tower_opt.step()
    out["w_user"], out["w_w"], out["w_b"] = user.detach().numpy(), w.detach().numpy(), b.detach().numpy()
    for name, p in trainable:
        out["w_" + name] = p.detach().numpy()
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}, os.path.join(OUT, f"n{N}.safetensors"))


def main():
    os.makedirs(OUT, exist_ok=True)
    pixels, ids, mask, user, w, b, triples = inputs()
    save_file({"pixel_values": pixels.numpy(), "input_ids": ids.numpy().astype(np.int32),
               "attention_mask": mask.numpy().astype(np.int32), "user": user.numpy(), "w": w.numpy(), "b": b.numpy(),
               "triples": np.ascontiguousarray(triples, dtype=np.int32)}, os.path.join(OUT, "inputs.safetensors"))
    for N in (0, 1, 2):
        run(N, pixels, ids, mask, user, w, b, triples)


if __name__ == "__main__":
    main()
