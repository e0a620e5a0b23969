#!/usr/bin/env python3
"""finetune_clip.py: optimizer steps of CLIP fine-tuning, by PyTorch, for tests/test_finetune.c.

    python tools/golden/finetune_clip.py              # writes tests/fixtures/finetune_clip/
    python tools/golden/finetune_clip.py --check DIR ITEMS.tsv FEATS  # a folder finetune-clip wrote, in transformers

Loads the tiny random CLIPModel of tests/fixtures/clip in float64 (the reference; mrec computes
float32), takes the 3 image-text pairs of tests/fixtures/clip_train (pixel_values, input_ids,
attention_mask), and runs CLIPModel(..., return_loss=True), loss.backward(),
torch.nn.utils.clip_grad_norm_(params, 1.0) and torch.optim.AdamW(lr 1e-3, betas (0.9, 0.98),
eps 1e-6) with two groups: weight decay 0.2 on the weight matrices (q/k/v/out_proj, fc1, fc2,
visual_projection, text_projection), none on the rest (biases, LayerNorms, the patch, class,
position and token embeddings, the logit scale). Two cases:

  full:   every tensor trained; two steps on the same batch (after1_*, after2_*);
  frozen: the vision tower's embeddings and pre_layrnorm and its first block, and the text
          tower's embeddings and both its blocks, frozen (requires_grad off); one step (frozen_*).

The tensors after each step go to <case>.safetensors (after1, after2, frozen), float32, named as
in model.safetensors; the token embedding only at the batch's rows (token_rows.npy of
tests/fixtures/clip_train), as text_model.embeddings.token_embedding.weight.rows.
Also loss.npy (before the first step) and norm.npy (the gradient norm clip_grad_norm_ returns, for
each of after1, after2, frozen).

--check DIR ITEMS.tsv FEATS loads DIR (a folder mrec finetune-clip wrote) with
CLIPModel.from_pretrained, embeds the items of ITEMS.tsv (columns id, text, image: an absolute
path) through CLIPImageProcessor (PIL) and the folder's tokenizer.json, and prints the largest
difference from FEATS/image_feat.npy and text_feat.npy (mrec extract-clip on DIR, same items).
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
BATCH = "tests/fixtures/clip_train"
OUT = "tests/fixtures/finetune_clip"
DECAY = ("q_proj.weight", "k_proj.weight", "v_proj.weight", "out_proj.weight", "fc1.weight", "fc2.weight",
         "visual_projection.weight", "text_projection.weight")


def batch():
    px = torch.from_numpy(np.load(os.path.join(BATCH, "pixel_values.npy"))).double()
    ids = torch.from_numpy(np.load(os.path.join(BATCH, "input_ids.npy"))).long()
    mask = torch.from_numpy(np.load(os.path.join(BATCH, "attention_mask.npy"))).long()
    return px, ids, mask


def frozen(name):
    vision = ("vision_model.embeddings.", "vision_model.pre_layrnorm.", "vision_model.encoder.layers.0.")
    text = ("text_model.embeddings.", "text_model.encoder.layers.0.", "text_model.encoder.layers.1.")
    return name.startswith(vision + text)


def run(case, steps, freeze, rows):
    model = CLIPModel.from_pretrained(SRC, attn_implementation="eager").double().train()
    for name, p in model.named_parameters():
        p.requires_grad_(not (freeze and frozen(name)))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if n.endswith(DECAY)], "weight_decay": 0.2},
              {"params": [p for n, p in named if not n.endswith(DECAY)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.98), eps=1e-6)
    px, ids, mask = batch()
    losses, norms = [], []
    for step in range(steps):
        opt.zero_grad()
        out = model(input_ids=ids, attention_mask=mask, pixel_values=px, return_loss=True)
        out.loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)))
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(max=np.log(100.0))
        losses.append(float(out.loss.detach()))
        tag = case if steps == 1 else "%s%d" % (case, step + 1)
        tensors = {}
        for name, p in model.named_parameters():
            w = p.detach().numpy().astype(np.float32)
            if name == "text_model.embeddings.token_embedding.weight":
                tensors[name + ".rows"] = np.ascontiguousarray(w[rows])
            else:
                tensors[name] = w
        save_file(tensors, os.path.join(OUT, tag + ".safetensors"))
    return losses, norms


def check(d, items, feats):
    """transformers' CLIPModel on DIR against extract-clip's features of the items (same order)."""
    import csv
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPTokenizerFast
    model = CLIPModel.from_pretrained(d).float().eval()
    proc = CLIPImageProcessor.from_pretrained(d)
    tok = CLIPTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"))
    rows = list(csv.DictReader(open(items), delimiter="\t"))
    px = proc(images=[Image.open(r["image"]).convert("RGB") for r in rows], return_tensors="pt")["pixel_values"]
    t = tok([r["text"] for r in rows], padding=True, truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=t["input_ids"], attention_mask=t["attention_mask"], pixel_values=px)
    for k, f in (("image_embeds", "image_feat.npy"), ("text_embeds", "text_feat.npy")):
        ref = getattr(out, k).numpy()
        got = np.load(os.path.join(feats, f))
        print("%s %s: max |transformers - mrec| = %.3g; by item: %s" % (k, ref.shape, np.abs(ref - got).max(), " ".join(
            "%s %.2g" % (r["id"], e) for r, e in zip(rows, np.abs(ref - got).max(axis=1)))))


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--check":
        return check(sys.argv[2], sys.argv[3], sys.argv[4])
    os.makedirs(OUT, exist_ok=True)
    rows = np.load(os.path.join(BATCH, "token_rows.npy")).astype(np.int64)
    losses, n_full = run("after", 2, False, rows)
    _, n_frozen = run("frozen", 1, True, rows)
    np.save(os.path.join(OUT, "loss.npy"), np.array(losses[:1], dtype=np.float32))
    np.save(os.path.join(OUT, "norm.npy"), np.array(n_full + n_frozen, dtype=np.float32))
    print("loss", losses, "norms", n_full + n_frozen)


if __name__ == "__main__":
    main()
