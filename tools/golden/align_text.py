#!/usr/bin/env python3
"""align_text.py: reference outputs of Hugging Face's AlignModel text side (ALIGN's BERT under text_model. and its
text_projection), for mrec's nn/bert.c (mrec_bert_project) and the text extractor's ALIGN path.

    python tools/golden/align_text.py

AlignModel keeps the real architecture: BERT (absolute positions, one token-type row used, gelu, LayerNorm eps
1e-12) and text_projection, a Linear with bias applied to the [CLS] row of the last hidden state (not the pooler).
Sizes are reduced (2 layers, hidden 8, 2 heads, projection_dim = the image side's width) but the vocabulary is bert-base-uncased's, the one
kakaobrain/align-base ships, so real item texts go through the real tokenizer. Weights are random (seed 0),
rounded to float16 and saved as float16 so the file stays under 1 MB; the reference runs on those rounded values
in float32. The image tower is tests/fixtures/align/tiny's configuration.

Writes tests/fixtures/align/text_tiny/: config.json, model.safetensors, vocab.txt, tokenizer_config.json, and
  ref_ids.npy (B, 64) int32, ref_mask.npy  the tokenizer's ids for the first B lines of tests/data/texts/items.txt,
                                            padded to 64 and cut there as AlignProcessor does
  ref_features.npy (B, P)                    AlignModel.get_text_features (projected, not normalized)
  ref_embeds.npy (B, P)                      AlignModel.forward's text_embeds: those rows L2-normalized
"""
import json
import os
import shutil
import sys

sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AlignConfig, AlignModel, BertTokenizer  # noqa: E402

OUT = "tests/fixtures/align/text_tiny"
B = 6


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    vision = json.load(open("tests/fixtures/align/tiny/config.json"))
    for k in ("architectures", "dtype", "transformers_version", "model_type"):
        vision.pop(k, None)
    text = dict(vocab_size=30522, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                max_position_embeddings=512, type_vocab_size=2)
    cfg = AlignConfig(text_config=text, vision_config=vision, projection_dim=int(np.load("tests/fixtures/align/embeds.npy").shape[1]))  # logits need both sides alike
    model = AlignModel(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.data = (torch.randn_like(p) * 0.5).half().float()
    model.half().save_pretrained(OUT)
    model.float()
    shutil.copy("tests/data/tokenizers/bert-base-uncased/vocab.txt", OUT)
    tok = BertTokenizer(OUT + "/vocab.txt", do_lower_case=True)
    tok.save_pretrained(OUT)
    for f in ("special_tokens_map.json", "tokenizer.json"):  # vocab.txt is the tokenizer; keeps it small
        if os.path.exists(os.path.join(OUT, f)):
            os.remove(os.path.join(OUT, f))
    texts = [line.rstrip("\n") for line in open("tests/data/texts/items.txt", encoding="utf-8")][:B]
    enc = tok(texts, padding="max_length", max_length=64, truncation=True, return_tensors="pt")
    with torch.no_grad():
        feats = model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                        token_type_ids=enc["token_type_ids"])
        feats = feats.pooler_output if hasattr(feats, "pooler_output") else feats
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                    token_type_ids=enc["token_type_ids"], pixel_values=torch.zeros(1, 3, 64, 64))
    assert torch.allclose(out.text_embeds, feats / feats.norm(dim=-1, keepdim=True), atol=1e-6)
    np.save(OUT + "/ref_ids.npy", enc["input_ids"].numpy().astype(np.int32))
    np.save(OUT + "/ref_mask.npy", enc["attention_mask"].numpy().astype(np.int32))
    np.save(OUT + "/ref_features.npy", feats.numpy().astype(np.float32))
    np.save(OUT + "/ref_embeds.npy", out.text_embeds.numpy().astype(np.float32))
    print("wrote", OUT, feats.shape, "longest text", int(enc["attention_mask"].sum(1).max()))


if __name__ == "__main__":
    main()
