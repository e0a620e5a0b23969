#!/usr/bin/env python3
"""vision.py: reference outputs of torchvision's ResNet and Hugging Face's ViTModel for mrec's vision encoders.

    python tools/golden/vision.py             tiny checkpoints for the tests
    python tools/golden/vision.py --full DIR  full-size resnet50 and ViT-B/16 with random weights (local only)

Tiny checkpoints keep the real architectures and tensor names: a ResNet built from torchvision's own
Bottleneck (and BasicBlock) classes and _make_layer with stage widths divided by 8, and a ViTConfig with
small sizes. Weights are random (seed 0), BatchNorm running statistics too, so folding is exercised.
Inputs are three freely licensed photos the repository ships (tests/data/images/odd: Pillow's
flower.jpg and hopper.jpg, libjpeg-turbo's testorig.jpg; see that folder's PROVENANCE.md),
preprocessed by torchvision (Resize + CenterCrop + ToTensor + Normalize), as float32 (B, 3, h, w).

Writes tests/fixtures/vision/: resnet_tiny/model.safetensors (Bottleneck [1, 2, 1, 1]),
resnet_basic/model.safetensors (BasicBlock [2, 1, 1, 1], no fc), images_64x72.npy and each model's
pooled features and logits; vit_tiny/{config.json, model.safetensors} and its last_hidden_state CLS
and pooler_output on images_32.npy; vit_prefixed/ the same weights under "vit." names. Preprocessing:
preprocess.tsv (torchvision presets, crc32 of the float output) and hf_vit_32/, hf_clip_32/
(HF processor configs and their pixel_values) on the images listed in preprocess_images.txt, all
shipped in tests/data (colour photos of several sizes and shapes, a tall progressive JPEG, an
EXIF-rotated one, grayscale, CMYK, an RGBA and a palette PNG).

The product and ImageNet photos of ../shared/data/images may be used for research only, so no
pixels of theirs are written here, only digests: preprocess_shared.tsv (the same torchvision
crc32 rows) and hf_vit_32/, hf_clip_32/shared_levels.tsv (per photo, the crc32 of the processor's
output turned back into its 8-bit levels, round((x * std + mean) * 255), uint8 (3, h, w)).
"""
import json
import os
import sys

sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torchvision.transforms as T  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet  # noqa: E402

OUT = "tests/fixtures/vision"
PHOTOS = ["odd/pillow/flower.jpg", "odd/pillow/hopper.jpg", "odd/libjpeg-turbo/testorig.jpg"]


class NarrowResNet(ResNet):
    """torchvision's ResNet with every stage width divided by `div` (same blocks, same names)."""

    def __init__(self, block, layers, div=8, num_classes=10):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = 64 // div, 1, 1, 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64 // div, layers[0])
        self.layer2 = self._make_layer(block, 128 // div, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256 // div, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512 // div, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 // div * block.expansion, num_classes)


def randomize_bn(model, gen):
    """Non-trivial eval-mode statistics, so a wrong fold shows."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=gen) * 1.5 + 0.25
            m.bias.data = torch.randn(c, generator=gen) * 0.2
            m.running_mean.data = torch.randn(c, generator=gen) * 0.2
            m.running_var.data = torch.rand(c, generator=gen) * 1.5 + 0.3


def state(model):
    return {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def photos(h, w):
    tf = T.Compose([T.Resize(min(h, w)), T.CenterCrop((h, w)), T.ToTensor(),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    ims = [Image.open(f"tests/data/images/{p}").convert("RGB") for p in PHOTOS]
    return torch.stack([tf(im) for im in ims])


def resnet_features(model, x):
    with torch.no_grad():
        f = model.layer4(model.layer3(model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x))))))))
        pooled = torch.flatten(model.avgpool(f), 1)
        return pooled, model.fc(pooled)


def resnets(out, full):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x = photos(224, 224) if full else photos(64, 72)
    np.save(f"{out}/images_{'224' if full else '64x72'}.npy", x.numpy())
    cases = [("resnet50", __import__("torchvision").models.resnet50(), True)] if full else [
        ("resnet_tiny", NarrowResNet(Bottleneck, [1, 2, 1, 1]), True),
        ("resnet_basic", NarrowResNet(BasicBlock, [2, 1, 1, 1]), False)]
    for name, model, keep_fc in cases:
        randomize_bn(model, gen)
        model.eval()
        pooled, logits = resnet_features(model, x)
        os.makedirs(f"{out}/{name}", exist_ok=True)
        sd = state(model)
        if not keep_fc:
            sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
        save_file(sd, f"{out}/{name}/model.safetensors")
        np.save(f"{out}/{name}/pooled.npy", pooled.numpy())
        if keep_fc:
            np.save(f"{out}/{name}/logits.npy", logits.numpy())


def vits(out, full):
    from transformers import ViTConfig, ViTModel
    torch.manual_seed(0)
    if full:
        cfg = ViTConfig()  # ViT-B/16 at 224: hidden 768, 12 layers, 12 heads
        size = 224
    else:
        cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, layer_norm_eps=1e-12)
        size = 32
    model = ViTModel(cfg).eval()
    with torch.no_grad():  # default init leaves the LayerNorms at 1/0 and tiny position embeddings: perturb
        for n, p in model.named_parameters():
            if "layernorm" in n or "position_embeddings" in n or "cls_token" in n:
                p.add_(torch.randn_like(p) * 0.3)
    x = photos(size, size)
    np.save(f"{out}/images_{size}.npy", x.numpy())
    with torch.no_grad():
        o = model(pixel_values=x)
    name = "vit_b16" if full else "vit_tiny"
    model.save_pretrained(f"{out}/{name}", safe_serialization=True)
    np.save(f"{out}/{name}/cls.npy", o.last_hidden_state[:, 0].numpy())
    np.save(f"{out}/{name}/pooled.npy", o.pooler_output.numpy())
    if not full:
        from safetensors.torch import load_file
        os.makedirs(f"{out}/vit_prefixed", exist_ok=True)
        w = load_file(f"{out}/{name}/model.safetensors")
        save_file({"vit." + k: v for k, v in w.items() if not k.startswith("pooler.")}, f"{out}/vit_prefixed/model.safetensors")
        json.dump(json.load(open(f"{out}/{name}/config.json")), open(f"{out}/vit_prefixed/config.json", "w"), indent=2)


PREPROCESS_IMAGES = [  # shipped in tests/data, paths relative to it
    "images/odd/pillow/flower.jpg",                       # 480x360 baseline
    "images/derived/flower_tall_progressive.jpg",         # 151x347 progressive, 4:2:2
    "images/odd/libjpeg-turbo/testorig.jpg",              # 227x149 baseline
    "images/odd/pillow/hopper.jpg",                       # 128x128 baseline
    "images/odd/pillow/hopper_orientation_6.jpg",         # EXIF orientation 6, not applied (PIL does not either)
    "images/odd/pillow/hopper_gray.jpg",                  # 1-component JPEG
    "images/odd/pillow/pil_sample_cmyk.jpg",              # Adobe YCCK JPEG
    "images/odd/libpng/pngsuite/basn6a08.png",            # 32x32 RGBA PNG (alpha dropped)
    "images/odd/libpng/pngsuite/basn3p08.png"]            # 32x32 palette PNG
SHARED = "../shared/data/"
SHARED_IMAGES = ["images/products-clayrs/" + n for n in sorted(os.listdir(SHARED + "images/products-clayrs"))
                 if n.endswith(".jpg")] + [
    "images/imagenet-sample/images/n02104029_kuvasz.JPEG", "images/imagenet-sample/images/n01440764_tench.JPEG"]


def preprocess(out):
    """torchvision presets at full size: crc32 of the float32 (3, 224, 224) bytes (torchvision resizes
    PIL images with PIL, so the result is exact). Hugging Face's default processors (ViT, CLIP) with
    32-pixel sizes, saved with save_pretrained, and their pixel_values on the same images from the PIL
    backend (transformers 5's *ImageProcessorPil, the path transformers 4 and so Ducho took; the
    default torchvision backend resizes differently, by up to one level on ~1% of values)."""
    import zlib
    from transformers import CLIPImageProcessor, ViTImageProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil
    B = Image.BICUBIC
    norm = [T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
    presets = {"ducho-resnet": T.Compose([T.Resize((224, 224), interpolation=B)] + norm),
               "torchvision": T.Compose([T.Resize(256), T.CenterCrop(224)] + norm)}
    ims = [Image.open("tests/data/" + p).convert("RGB") for p in PREPROCESS_IMAGES]
    shared = [Image.open(SHARED + p).convert("RGB") for p in SHARED_IMAGES]
    for file, paths, images in (("preprocess.tsv", PREPROCESS_IMAGES, ims), ("preprocess_shared.tsv", SHARED_IMAGES, shared)):
        rows = []
        for name, tf in presets.items():
            for p, im in zip(paths, images):
                x = tf(im).numpy()
                rows.append(f"{name}\t{p}\t{x.shape[1]}\t{x.shape[2]}\t{zlib.crc32(x.tobytes()):08x}")
        open(f"{out}/{file}", "w").write("\n".join(rows) + "\n")
    vit = dict(size={"height": 32, "width": 32})
    clip = dict(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    for name, proc, pil in (("hf_vit_32", ViTImageProcessor(**vit), ViTImageProcessorPil(**vit)),
                            ("hf_clip_32", CLIPImageProcessor(**clip), CLIPImageProcessorPil(**clip))):
        proc.save_pretrained(f"{out}/{name}")
        x = np.stack([pil(images=im, return_tensors="np")["pixel_values"][0] for im in ims])
        np.save(f"{out}/{name}/pixel_values.npy", x.astype(np.float32))
        mean, std = (np.array(v, dtype=np.float64).reshape(3, 1, 1) for v in (pil.image_mean, pil.image_std))
        rows = []
        for p, im in zip(SHARED_IMAGES, shared):
            v = pil(images=im, return_tensors="np")["pixel_values"][0].astype(np.float64)
            q = v * std + mean
            levels = np.rint(q * 255)
            assert np.abs(q * 255 - levels).max() < 1e-3 and levels.min() >= 0 and levels.max() <= 255
            levels = np.ascontiguousarray(levels.astype(np.uint8))
            rows.append(f"{p}\t{v.shape[1]}\t{v.shape[2]}\t{zlib.crc32(levels.tobytes()):08x}")
        open(f"{out}/{name}/shared_levels.tsv", "w").write("\n".join(rows) + "\n")
    open(f"{out}/preprocess_images.txt", "w").write("\n".join(PREPROCESS_IMAGES) + "\n")


def main():
    full = len(sys.argv) == 3 and sys.argv[1] == "--full"
    out = sys.argv[2] if full else OUT
    os.makedirs(out, exist_ok=True)
    if not full:
        preprocess(out)
    resnets(out, full)
    vits(out, full)
    print("wrote", out)


if __name__ == "__main__":
    main()
