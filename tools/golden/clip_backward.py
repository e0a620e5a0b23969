#!/usr/bin/env python3
"""clip_backward.py: PyTorch autograd's gradients for mrec's backward ops.

    python tools/golden/clip_backward.py

Writes tests/fixtures/clip_backward/*.npy (float32, small):

  block_*   one reduced CLIP encoder layer as transformers' CLIPEncoderLayer computes it
            (pre-LN: x + out_proj(attn(LN1 x)), then + fc2(quick_gelu(fc1(LN2 x))), the
            scale dh^-0.5, the causal mask of the text tower) on x (B=2, T=5, H=12), 3 heads,
            MLP 20; the loss sum(out * dy) for a random dy; the gradient of x and of every
            weight (names as in the checkpoint, "d_" in front). Computed in float64 from
            float32 values, so the fixture is the exact gradient to float32 rounding.
  loss_*    CLIP's head: image and text features (6, 8), normalized, logits =
            exp(logit_scale) txt img^T, the mean of the two cross-entropies as
            CLIPModel's clip_loss; the loss and the gradients of both features and of
            logit_scale (float64, stored float32).
  adamw_*   torch.optim.AdamW (lr 0.01, betas (0.9, 0.98), eps 1e-6, weight_decay 0.2,
            amsgrad off) in float32 on a weight (7, 5) that decays and a bias (5) that does
            not, three steps with given gradients; the parameters and moments after them.
  clip_*    torch.nn.utils.clip_grad_norm_(max_norm=1.0) on three gradients (the norm in
            float64, as mrec computes it): the norm and the clipped gradients.
"""
import os

import numpy as np
import torch

OUT = "tests/fixtures/clip_backward"


def save(name, t):
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32)))


def rand(g, *shape, scale=1.0):
    return (torch.rand(*shape, generator=g, dtype=torch.float32) * 2 - 1) * scale


def block(g):
    B, T, H, heads, I = 2, 5, 12, 3, 20
    dh = H // heads
    w = {
        "layer_norm1.weight": 1 + rand(g, H, scale=0.2), "layer_norm1.bias": rand(g, H, scale=0.1),
        "self_attn.q_proj.weight": rand(g, H, H, scale=0.4), "self_attn.q_proj.bias": rand(g, H, scale=0.1),
        "self_attn.k_proj.weight": rand(g, H, H, scale=0.4), "self_attn.k_proj.bias": rand(g, H, scale=0.1),
        "self_attn.v_proj.weight": rand(g, H, H, scale=0.4), "self_attn.v_proj.bias": rand(g, H, scale=0.1),
        "self_attn.out_proj.weight": rand(g, H, H, scale=0.4), "self_attn.out_proj.bias": rand(g, H, scale=0.1),
        "layer_norm2.weight": 1 + rand(g, H, scale=0.2), "layer_norm2.bias": rand(g, H, scale=0.1),
        "mlp.fc1.weight": rand(g, I, H, scale=0.4), "mlp.fc1.bias": rand(g, I, scale=0.1),
        "mlp.fc2.weight": rand(g, H, I, scale=0.3), "mlp.fc2.bias": rand(g, H, scale=0.1),
    }
    x = rand(g, B, T, H)
    dy = rand(g, B, T, H)
    save("block_x", x)
    save("block_dy", dy)
    for k, v in w.items():
        save("block_" + k, v)
    p = {k: v.double().requires_grad_(True) for k, v in w.items()}
    xd = x.double().requires_grad_(True)
    ln = torch.nn.functional.layer_norm
    lin = torch.nn.functional.linear
    h = ln(xd, (H,), p["layer_norm1.weight"], p["layer_norm1.bias"], 1e-5)
    q = lin(h, p["self_attn.q_proj.weight"], p["self_attn.q_proj.bias"]) * dh ** -0.5
    k = lin(h, p["self_attn.k_proj.weight"], p["self_attn.k_proj.bias"])
    v = lin(h, p["self_attn.v_proj.weight"], p["self_attn.v_proj.bias"])
    split = lambda t: t.view(B, T, heads, dh).transpose(1, 2)
    s = split(q) @ split(k).transpose(-1, -2)
    causal = torch.triu(torch.full((T, T), float("-inf"), dtype=torch.float64), 1)
    a = torch.softmax(s + causal, dim=-1) @ split(v)
    a = a.transpose(1, 2).reshape(B, T, H)
    x1 = xd + lin(a, p["self_attn.out_proj.weight"], p["self_attn.out_proj.bias"])
    h = ln(x1, (H,), p["layer_norm2.weight"], p["layer_norm2.bias"], 1e-5)
    f = lin(h, p["mlp.fc1.weight"], p["mlp.fc1.bias"])
    f = f * torch.sigmoid(1.702 * f)
    out = x1 + lin(f, p["mlp.fc2.weight"], p["mlp.fc2.bias"])
    save("block_out", out)
    (out * dy.double()).sum().backward()
    save("block_d_x", xd.grad)
    for k, t in p.items():
        save("block_d_" + k, t.grad)


def contrastive(g):
    N, D = 6, 8
    img, txt = rand(g, N, D), rand(g, N, D)
    scale = torch.tensor([np.log(1 / 0.07)], dtype=torch.float32)
    save("loss_img", img), save("loss_txt", txt), save("loss_logit_scale", scale)
    i, t, s = img.double().requires_grad_(True), txt.double().requires_grad_(True), scale.double().requires_grad_(True)
    i_n = i / i.norm(p=2, dim=-1, keepdim=True)
    t_n = t / t.norm(p=2, dim=-1, keepdim=True)
    logits_per_text = s.exp() * t_n @ i_n.t()
    ce = torch.nn.functional.cross_entropy
    target = torch.arange(N)
    loss = (ce(logits_per_text, target) + ce(logits_per_text.t(), target)) / 2
    loss.backward()
    save("loss_value", loss.reshape(1))
    save("loss_d_img", i.grad), save("loss_d_txt", t.grad), save("loss_d_logit_scale", s.grad)


def adamw(g):
    w, b = rand(g, 7, 5), rand(g, 5)
    grads = [(rand(g, 7, 5), rand(g, 5)) for _ in range(3)]
    save("adamw_w0", w), save("adamw_b0", b)
    for n, (gw, gb) in enumerate(grads):
        save("adamw_gw%d" % (n + 1), gw), save("adamw_gb%d" % (n + 1), gb)
    pw, pb = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    opt = torch.optim.AdamW([{"params": [pw], "weight_decay": 0.2}, {"params": [pb], "weight_decay": 0.0}],
                            lr=0.01, betas=(0.9, 0.98), eps=1e-6, foreach=False)
    for gw, gb in grads:
        pw.grad, pb.grad = gw.clone(), gb.clone()
        opt.step()
    save("adamw_w3", pw), save("adamw_b3", pb)
    save("adamw_mw3", opt.state[pw]["exp_avg"]), save("adamw_vw3", opt.state[pw]["exp_avg_sq"])


def clip_norm(g):
    gs = [rand(g, 4, 9), rand(g, 13), rand(g, 3, 2, 5)]
    for n, t in enumerate(gs):
        save("clip_g%d" % n, t)
    ps = [torch.zeros_like(t, dtype=torch.float64, requires_grad=True) for t in gs]
    for p, t in zip(ps, gs):
        p.grad = t.double()
    norm = torch.nn.utils.clip_grad_norm_(ps, max_norm=1.0)
    save("clip_norm", norm.reshape(1))
    for n, p in enumerate(ps):
        save("clip_clipped%d" % n, p.grad)


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    block(g)
    contrastive(g)
    adamw(g)
    clip_norm(g)


if __name__ == "__main__":
    main()
