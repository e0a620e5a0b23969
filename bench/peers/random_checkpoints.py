#!/usr/bin/env python3
"""random_checkpoints.py: full-size checkpoints with random weights, for timing only.

    python bench/peers/random_checkpoints.py DIR

Writes DIR/{bert-base, mpnet-base, vit_b16, resnet50, clip_b16}/ with config.json (where the model has
one) and model.safetensors, under the real architectures' tensor names, from the libraries' own
classes at their default sizes (BERT-base, MPNet-base, ViT-B/16, torchvision's ResNet50, CLIP
ViT-B/16). Needs no network and no data, so it runs on a machine that has only PyTorch and
transformers: bench_gpu_ops reads the folder as MREC_FULL_DIR. Nothing here is a reference output.
"""
import os
import sys

import torch


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    from transformers import (BertConfig, BertModel, CLIPConfig, CLIPModel, MPNetConfig, MPNetModel, ViTConfig,
                              ViTModel)
    hf = {
        "bert-base": lambda: BertModel(BertConfig()),
        "mpnet-base": lambda: MPNetModel(MPNetConfig()),
        "vit_b16": lambda: ViTModel(ViTConfig()),
        "clip_b16": lambda: CLIPModel(CLIPConfig(text_config=dict(eos_token_id=49407, bos_token_id=49406),
                                                 vision_config=dict(patch_size=16), projection_dim=512)),
    }
    for name, make in hf.items():
        if not os.path.exists(f"{out}/{name}/model.safetensors"):
            make().eval().save_pretrained(f"{out}/{name}", safe_serialization=True)
    if not os.path.exists(f"{out}/resnet50/model.safetensors"):
        import torchvision
        from safetensors.torch import save_file
        sd = torchvision.models.resnet50().state_dict()
        os.makedirs(f"{out}/resnet50", exist_ok=True)
        save_file({k: v.contiguous() for k, v in sd.items() if not k.endswith("num_batches_tracked")},
                  f"{out}/resnet50/model.safetensors")
    print("wrote", out)


if __name__ == "__main__":
    main()
