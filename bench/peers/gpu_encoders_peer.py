#!/usr/bin/env python3
"""gpu_encoders_peer.py: PyTorch on the GPU running the encoders bench_gpu_ops times, for the ratio.

    python bench/peers/gpu_encoders_peer.py REPS BATCH KIND:T:DIR...

KIND is bert (BertModel or MPNetModel, by config.json), vit, resnet (torchvision resnet50 from a
safetensors state dict), clip-image or clip-text; T the tokens per text. Prints one line per model,
in the order given: the mean seconds per batch over REPS batches after one to warm up, in fp32 (TF32
off), TF32 (matmuls and cuDNN) and bf16 (torch.autocast), then bf16 again with the images already on
the GPU (the encoder alone, ResNet in channels-last memory format; "0" for a text model), "0" where
a run failed. Inputs start on the host
otherwise, as bench_gpu_ops's do: random ids in [1000, 21000) without padding, images of noise at
224 x 224. With MREC_PEER_COMPILE=1 in the environment a fifth number follows: the same bf16 autocast step
through torch.compile (default mode; its compilation is in the warm-up, not the time), ResNet in
channels-last memory format there (PyTorch's advice for convolutions on tensor cores, and what
mrec's bf16 ResNet runs).
"""
import os
import sys
import time

import torch


def load(kind, path, dev):
    if kind == "bert":
        from transformers import AutoModel
        return AutoModel.from_pretrained(path).to(dev).eval()
    if kind == "vit":
        from transformers import ViTModel
        return ViTModel.from_pretrained(path).to(dev).eval()
    if kind == "resnet":
        import torchvision
        from safetensors.torch import load_file
        m = torchvision.models.resnet50()
        m.load_state_dict(load_file(f"{path}/model.safetensors"), strict=False)
        m.fc = torch.nn.Identity()  # bench_gpu_ops times the avgpool features
        return m.to(dev).eval()
    from transformers import CLIPModel
    return CLIPModel.from_pretrained(path).to(dev).eval()


def features(out):
    return out if torch.is_tensor(out) else out.pooler_output  # transformers 4 returns a tensor, 5 an output


def step(kind, model, batch, T, dev, channels_last=False, resident=False):
    if kind in ("bert", "clip-text"):
        ids = torch.randint(1000, 21000, (batch, T))
        mask = torch.ones(batch, T, dtype=torch.long)
        if kind == "bert":
            return lambda: model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).last_hidden_state
        return lambda: torch.nn.functional.normalize(features(model.get_text_features(input_ids=ids.to(dev), attention_mask=mask.to(dev))), dim=-1)
    x = torch.rand(batch, 3, 224, 224) * 4 - 2
    if resident:
        x = x.to(dev)
    if kind == "vit":
        return lambda: model(pixel_values=x.to(dev)).last_hidden_state[:, 0]
    if kind == "resnet" and channels_last:
        return lambda: model(x.to(dev).contiguous(memory_format=torch.channels_last))
    if kind == "resnet":
        return lambda: model(x.to(dev))
    return lambda: torch.nn.functional.normalize(features(model.get_image_features(pixel_values=x.to(dev))), dim=-1)


def timed(fn, reps, precision):
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    if precision == "compile":
        fn = torch.compile(fn)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision in ("bf16", "compile")):
        fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def main():
    reps, batch = int(sys.argv[1]), int(sys.argv[2])
    dev = torch.device("cuda")
    precisions = ["fp32", "tf32", "bf16", "resident"] + (["compile"] if os.environ.get("MREC_PEER_COMPILE") == "1" else [])
    for spec in sys.argv[3:]:
        kind, T, path = spec.split(":", 2)
        line = []
        try:
            model = load(kind, path, dev)
            fn = step(kind, model, batch, int(T), dev)
            for precision in precisions:
                if precision == "resident":
                    if kind in ("bert", "clip-text"):
                        line.append("0")
                        continue
                    if kind == "resnet":  # channels-last, PyTorch's advice for convolutions on tensor cores (as compile below)
                        model = model.to(memory_format=torch.channels_last)
                    fn_r = step(kind, model, batch, int(T), dev, channels_last=kind == "resnet", resident=True)
                    line.append(f"{timed(fn_r, reps, 'bf16'):.6f}")
                    continue
                if precision == "compile" and kind == "resnet":
                    model = model.to(memory_format=torch.channels_last)
                    fn = step(kind, model, batch, int(T), dev, channels_last=True)
                line.append(f"{timed(fn, reps, precision):.6f}")
            del model
            torch.cuda.empty_cache()
        except Exception as e:  # one model failing leaves the others' lines in place
            print(f"{spec}: {e}", file=sys.stderr)
        print(" ".join(line + ["0"] * (len(precisions) - len(line))), flush=True)


if __name__ == "__main__":
    main()
