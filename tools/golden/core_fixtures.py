#!/usr/bin/env python3
"""core_fixtures.py: reference files for the core tests (safetensors, .npy, half precision).

Run from the repository root with PyTorch, transformers, safetensors and numpy installed:

    python tools/golden/core_fixtures.py

Writes into tests/fixtures/:
  tiny_bert/            a Hugging Face BertModel (real architecture and tensor names, tiny sizes,
                        random weights, seed 0) saved with save_pretrained, plus inspect.txt: the
                        expected `mrec inspect` output, computed here from the safetensors header,
                        and query0.npy: one tensor as numpy sees it.
  tiny_bert_f16.safetensors / tiny_bert_bf16.safetensors: the same weights cast by PyTorch, and
                        query0_f16.npy / query0_bf16.npy: those casts widened back to float32 by PyTorch.
  half_rounding.npy     (3, n) float32 inputs, and the bit patterns PyTorch's .half() and
                        .bfloat16() give them (as float32 rows holding the uint16 values).
  npy/                  arrays written by numpy: dtypes, ranks, format 2.0, and files mrec must reject.
"""
import json
import os
import struct

import sys

# tools/golden/tokenizers.py would shadow the `tokenizers` package that transformers imports.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

OUT = "tests/fixtures"


def tiny_bert():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=37, max_position_embeddings=64, type_vocab_size=2)
    model = BertModel(cfg).eval()
    path = os.path.join(OUT, "tiny_bert")
    model.save_pretrained(path, safe_serialization=True)
    st = os.path.join(path, "model.safetensors")
    lines, params = [], 0
    with safe_open(st, "pt") as f:
        names = sorted(f.keys())
        for name in names:
            t = f.get_tensor(name)
            dtype = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                     torch.int64: "I64", torch.int32: "I32"}[t.dtype]
            shape = "(" + ", ".join(str(d) for d in t.shape) + ("," if t.dim() == 1 else "") + ")"
            lines.append(f"{name} {dtype} {shape}")
            params += t.numel()
        meta = f.metadata() or {}
    for k in sorted(meta):
        lines.append(f"# {k} = {meta[k]}")
    lines.append(f"{len(names)} tensors, {params} parameters")
    with open(os.path.join(path, "inspect.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    q = model.state_dict()["encoder.layer.0.attention.self.query.weight"]
    np.save(os.path.join(path, "query0.npy"), q.numpy().astype(np.float32))

    for dt, tag in ((torch.float16, "f16"), (torch.bfloat16, "bf16")):
        sd = {k: v.to(dt) if v.is_floating_point() else v for k, v in model.state_dict().items()}
        save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(OUT, f"tiny_bert_{tag}.safetensors"),
                  metadata={"format": "pt"})
        np.save(os.path.join(path, f"query0_{tag}.npy"),
                sd["encoder.layer.0.attention.self.query.weight"].float().numpy())


def half_rounding():
    """Inputs that exercise rounding: ties, subnormals, overflow, NaN, inf, signed zero."""
    vals = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.0, 65520.0, 1e5, -1e5, float("inf"), float("-inf"),
            6.1035156e-05, 6.0975552e-05, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08, 8.9406967e-08,
            1.00048828125, 1.00146484375, 1.0009765625, 3.14159265, 1e-10, -1e-10, 3.0e38, 1.17549435e-38]
    rng = np.random.default_rng(0)
    vals += list(rng.normal(0, 1, 200).astype(np.float32))
    vals += list((rng.normal(0, 1, 100) * 1e-5).astype(np.float32))
    vals += list((rng.normal(0, 1, 100) * 3e4).astype(np.float32))
    # exact ties between two halves / bfloats, both rounding directions
    vals += [1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8]
    x = torch.tensor(np.array(vals, dtype=np.float32))
    h = x.half().view(torch.int16).numpy().astype(np.uint16).astype(np.float32)
    b = x.bfloat16().view(torch.int16).numpy().astype(np.uint16).astype(np.float32)
    np.save(os.path.join(OUT, "half_rounding.npy"), np.stack([x.numpy(), h, b]).astype(np.float32))


def npy_files():
    d = os.path.join(OUT, "npy")
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "f32_2d.npy"), np.arange(12, dtype=np.float32).reshape(3, 4) / 7)
    np.save(os.path.join(d, "f64_1d.npy"), np.array([0.1, -2.5, 1e300], dtype=np.float64))
    np.save(os.path.join(d, "i64_3d.npy"), np.arange(24, dtype=np.int64).reshape(2, 3, 4) - 5)
    np.save(os.path.join(d, "i32_1d.npy"), np.array([7, -1, 2 ** 31 - 1], dtype=np.int32))
    np.save(os.path.join(d, "f16_2d.npy"), np.array([[0.5, -1.25], [65504, 6e-8]], dtype=np.float16))
    np.save(os.path.join(d, "scalar.npy"), np.array(3.5, dtype=np.float32))
    np.save(os.path.join(d, "empty.npy"), np.zeros((0, 5), dtype=np.float32))
    with open(os.path.join(d, "v2_f32.npy"), "wb") as f:
        np.lib.format.write_array(f, np.array([[1.5, 2.5]], dtype=np.float32), version=(2, 0))
    # files mrec must reject, each for one reason
    np.save(os.path.join(d, "bad_fortran.npy"), np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    np.save(os.path.join(d, "bad_bigendian.npy"), np.arange(3, dtype=">f4"))
    np.save(os.path.join(d, "bad_bool.npy"), np.array([True, False]))
    good = open(os.path.join(d, "f32_2d.npy"), "rb").read()
    open(os.path.join(d, "bad_truncated.npy"), "wb").write(good[:-5])
    open(os.path.join(d, "bad_trailing.npy"), "wb").write(good + b"\0\0\0\0")
    open(os.path.join(d, "bad_magic.npy"), "wb").write(b"\x93NUMPZ" + good[6:])


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    tiny_bert()
    half_rounding()
    npy_files()
    print("wrote", OUT)
