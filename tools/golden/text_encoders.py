#!/usr/bin/env python3
"""text_encoders.py: reference outputs of Hugging Face BertModel for mrec's BERT forward.

    python tools/golden/text_encoders.py     (after core_fixtures.py, which made tests/fixtures/tiny_bert)

Writes into tests/fixtures/tiny_bert/: a batch of 4 sequences with mixed lengths, padding and
token types (bert_ids.npy, bert_types.npy, bert_mask.npy, int32) and BertModel's outputs in
eval mode (bert_hidden.npy: last_hidden_state, bert_pooled.npy: pooler_output, float32).
Also tests/fixtures/tiny_bert_prefixed/: the same weights under "bert."-prefixed names, as
BertForPreTraining-style checkpoints store them.
"""
import os
import shutil

import sys

# tools/golden/tokenizers.py would shadow the `tokenizers` package that transformers imports.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file
from transformers import BertModel

D = "tests/fixtures/tiny_bert"


def main():
    model = BertModel.from_pretrained(D).eval()
    rng = np.random.default_rng(1)
    lengths, T = [9, 5, 12, 1], 12
    ids = np.zeros((4, T), dtype=np.int32)
    types = np.zeros((4, T), dtype=np.int32)
    mask = np.zeros((4, T), dtype=np.int32)
    for b, n in enumerate(lengths):
        ids[b, :n] = rng.integers(1, model.config.vocab_size, n)
        mask[b, :n] = 1
    types[0, 5:9] = 1  # a pair: the second segment has type 1
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids, dtype=torch.long), token_type_ids=torch.tensor(types, dtype=torch.long),
                    attention_mask=torch.tensor(mask, dtype=torch.long))
    for name, arr in (("bert_ids", ids), ("bert_types", types), ("bert_mask", mask),
                      ("bert_hidden", out.last_hidden_state.numpy()), ("bert_pooled", out.pooler_output.numpy())):
        np.save(f"{D}/{name}.npy", arr)
    p = "tests/fixtures/tiny_bert_prefixed"
    os.makedirs(p, exist_ok=True)
    shutil.copy(f"{D}/config.json", p)
    weights = load_file(f"{D}/model.safetensors")
    save_file({"bert." + k: v for k, v in weights.items()}, f"{p}/model.safetensors", metadata={"format": "pt"})
    print("wrote", D, p)


if __name__ == "__main__":
    main()
