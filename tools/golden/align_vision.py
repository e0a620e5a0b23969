#!/usr/bin/env python3
"""align_vision.py: reference outputs of Hugging Face's AlignVisionModel (ALIGN's EfficientNet image tower) and of
the EfficientNetImageProcessor that kakaobrain/align-base ships, for mrec's nn/efficientnet.c and its hf-align preset.

    python tools/golden/align_vision.py

The model keeps the real architecture (EfficientNet-B7 as ALIGN builds it: seven stages with their kernels, strides
and expand ratios, stem zero-pad (0, 1, 0, 1) + valid 3x3/2 conv, stride-2 depthwise convs padded on the bottom and
right, squeeze-excite with swish, BatchNorm eps 1e-3, mean pooling) at width 0.125 and depth 0.5 (10 blocks), with
one block in config.depthwise_padding (symmetric padding). Weights are random (seed 0), BatchNorm running
statistics too, so folding shows. Saved with save_pretrained (safetensors, Hugging Face's tensor names).

Inputs: photos from tests/data/images/odd through EfficientNetImageProcessorPil configured as align-base's (rescale
1 / 127.5 with offset, no normalization, no include_top, bilinear) but at 72 x 72 -> crop 64 to stay small.

Writes tests/fixtures/align/:
  tiny/{config.json, model.safetensors, preprocessor_config.json}  the model, and the processor below
  tiny_processor/preprocessor_config.json and pixel_values.npy (2, 3, 64, 64)
  pooled.npy (2, C)       AlignVisionModel pooler_output = AlignModel.get_image_features
  embeds.npy (2, C)       AlignModel's image_embeds: the pooled output L2-normalized (no projection on the image side)
  last_hidden.npy         (2, C, 2, 2)
  align_base_processor/preprocessor_config.json  the parameters of kakaobrain/align-base's processor
  preprocess.tsv          crc32 of that processor's float32 pixel_values (3, 289, 289) per photo
"""
import json
import os
import sys
import zlib

sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import AlignVisionConfig, AlignVisionModel  # noqa: E402
from transformers.models.efficientnet.image_processing_pil_efficientnet import EfficientNetImageProcessorPil  # noqa: E402

OUT = "tests/fixtures/align"
DATA = "tests/data/images/odd/"
MODEL_PHOTOS = ["pillow/hopper.jpg", "libjpeg-turbo/testorig.jpg"]
PROCESSOR_PHOTOS = ["pillow/hopper.jpg", "libjpeg-turbo/testorig.jpg", "pillow/flower.jpg", "libjpeg-turbo/testimgint.jpg",
                    "pillow/hopper_gray.jpg", "pillow/hopper.png"]
# kakaobrain/align-base's processor, as transformers' convert_align_tf_to_hf.py builds it (size and crop_size are
# EfficientNetImageProcessor's defaults: 346 x 346 and 289 x 289)
ALIGN_BASE = dict(do_resize=True, size={"height": 346, "width": 346}, resample=2, do_center_crop=True,
                  crop_size={"height": 289, "width": 289}, do_rescale=True, rescale_factor=1 / 127.5, rescale_offset=True,
                  do_normalize=False, include_top=False)


def load(rel):
    return Image.open(DATA + rel).convert("RGB")


def randomize_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=gen) + 0.5
            m.bias.data = torch.randn(c, generator=gen) * 0.2
            m.running_mean.data = torch.randn(c, generator=gen) * 0.2
            m.running_var.data = torch.rand(c, generator=gen) + 0.5


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    os.makedirs(OUT, exist_ok=True)

    # the real align-base processor: crc32 of its float32 output per photo, bit-identical expected
    proc = EfficientNetImageProcessorPil(**ALIGN_BASE)
    proc.save_pretrained(OUT + "/align_base_processor")
    with open(OUT + "/preprocess.tsv", "w") as f:
        for rel in PROCESSOR_PHOTOS:
            x = proc(images=[load(rel)], return_tensors="np")["pixel_values"][0].astype(np.float32)
            assert x.shape == (3, 289, 289), x.shape
            f.write("%s\t%d\t%d\t%08x\n" % (rel, x.shape[1], x.shape[2], zlib.crc32(np.ascontiguousarray(x).tobytes())))

    small = dict(ALIGN_BASE, size={"height": 72, "width": 72}, crop_size={"height": 64, "width": 64})
    sproc = EfficientNetImageProcessorPil(**small)
    sproc.save_pretrained(OUT + "/tiny_processor")
    pixels = sproc(images=[load(r) for r in MODEL_PHOTOS], return_tensors="np")["pixel_values"].astype(np.float32)
    np.save(OUT + "/tiny_processor/pixel_values.npy", pixels)

    cfg = AlignVisionConfig(width_coefficient=0.125, depth_coefficient=0.5, depthwise_padding=[2], image_size=64)
    model = AlignVisionModel(cfg).eval()
    # gain 1.5 / sqrt(fan_in): at 1.0 the signal fades through the blocks until the outputs hang on the BatchNorm
    # biases and a wrong depthwise pad moves them by ~1e-5; at 1.5 it moves them by 10-25 % (and 2.0 explodes)
    for p in model.parameters():
        p.data = torch.randn(p.shape, generator=gen) * (1.5 / max(1, p[0].numel()) ** 0.5)
    randomize_bn(model, gen)
    model.save_pretrained(OUT + "/tiny", safe_serialization=True)
    sproc.save_pretrained(OUT + "/tiny")  # so that the extractor's hf-align preset reads the 72 -> 64 sizes
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy(pixels))
    pooled = out.pooler_output.numpy().astype(np.float32)
    embeds = pooled / np.linalg.norm(pooled.astype(np.float64), axis=-1, keepdims=True)
    np.save(OUT + "/pooled.npy", pooled)
    np.save(OUT + "/embeds.npy", embeds.astype(np.float32))
    np.save(OUT + "/last_hidden.npy", out.last_hidden_state.numpy().astype(np.float32))
    print("blocks", len(model.encoder.blocks), "pooled", pooled.shape, "scale", float(np.abs(pooled).max()),
          "last", tuple(out.last_hidden_state.shape))


if __name__ == "__main__":
    main()
