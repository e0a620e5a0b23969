#!/usr/bin/env python3
"""catalogue_peer.py: Ducho's way of extracting a whole catalogue, on PyTorch CPU, for bench/catalogue.sh.

    python bench/peers/catalogue_peer.py RESNET50_DIR IMAGES.tsv TEXT_MODEL_DIR ARTICLES.csv THREADS [BATCH]

Images: every path of IMAGES.tsv (id, path; a header) opened with PIL, Resize((224, 224), bicubic),
ToTensor, Normalize (Ducho's ResNet50 preprocessing), batches of BATCH (default 32) through
torchvision's resnet50 up to the average pool. Each batch is decoded, then encoded, in this thread;
the two times are printed apart. Texts: ARTICLES.csv's detail_desc column (empty ones as ""),
sentence-transformers' encode with batch_size BATCH. Prints one line per stage:
"<stage> <seconds> <items>". MREC_PEER_DEVICE=cuda runs both models on the GPU (the batches go up
from the host, as Ducho's do; the encode time waits for the GPU). MREC_PEER_PRECISION (fp32, the
default; tf32; bf16) is mrec's --precision: TF32 allowed in the products and convolutions, or the
forwards under torch.autocast in bf16; fp32 turns TF32 off (cuDNN allows it by default).
"""
import csv
import os
import sys
import time

import torch
import torchvision
import torchvision.transforms as T
from PIL import Image
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer


def main():
    resnet_dir, images, text_dir, articles, threads = sys.argv[1:6]
    batch = int(sys.argv[6]) if len(sys.argv) > 6 else 32
    torch.set_num_threads(int(threads))
    with open(images, newline="") as f:
        paths = [row[1] for row in csv.reader(f, delimiter="\t")][1:]
    tf = T.Compose([T.Resize((224, 224), interpolation=T.InterpolationMode.BICUBIC), T.ToTensor(),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    r = torchvision.models.resnet50()
    r.load_state_dict(load_file(f"{resnet_dir}/model.safetensors"), strict=False)
    r.fc = torch.nn.Identity()
    dev = torch.device(os.environ.get("MREC_PEER_DEVICE", "cpu"))
    precision = os.environ.get("MREC_PEER_PRECISION", "fp32")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    r.eval().to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    decode = encode = 0.0
    with torch.no_grad(), autocast:
        for i in range(0, len(paths), batch):
            t0 = time.perf_counter()
            x = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths[i:i + batch]])
            t1 = time.perf_counter()
            r(x.to(dev)).cpu()
            sync()
            decode, encode = decode + t1 - t0, encode + time.perf_counter() - t1
    print(f"image_decode {decode:.2f} {len(paths)}", flush=True)
    print(f"image_encode {encode:.2f} {len(paths)}", flush=True)
    with open(articles, newline="", encoding="utf-8") as f:
        texts = [row["detail_desc"] or "" for row in csv.DictReader(f)]
    st = SentenceTransformer(text_dir, device=str(dev))
    t0 = time.perf_counter()
    with autocast:
        st.encode(texts, batch_size=batch, normalize_embeddings=False)
    print(f"text {time.perf_counter() - t0:.2f} {len(texts)}", flush=True)


if __name__ == "__main__":
    main()
