#!/usr/bin/env python3
"""images.py: PIL's resampling outputs for mrec's resize test, and the one test photo made here.

    python tools/golden/images.py

Writes tests/fixtures/images/: a 120x90 RGB crop of a real photo the repository ships
(tests/data/images/odd/pillow/flower.jpg, Pillow's test image under its MIT-CMU license; decoded and
converted by PIL), and PIL's Image.resize of it for a few sizes, filters and boxes, as int32 .npy
arrays of shape (h, w, 3); cases.txt lists them ("name width height filter box"). Also
torchvision's Resize + CenterCrop + ToTensor + Normalize on the same crop (torchvision_64_56.npy,
ducho_48.npy), float32 (3, h, w).

Also writes tests/data/images/derived/flower_tall_progressive.jpg: a tall 151x347 crop of the same
photo saved by PIL (libjpeg-turbo) as a progressive JPEG with 4:2:2 chroma, quality 90. Product
photos are tall and progressive; none of the freely licensed test images is both.
"""
import os

import numpy as np
from PIL import Image

OUT = "tests/fixtures/images"


def main():
    os.makedirs(OUT, exist_ok=True)
    src = Image.open("tests/data/images/odd/pillow/flower.jpg").convert("RGB")
    derived(src)
    crop = src.crop((100, 80, 220, 170))  # 120 x 90
    np.save(f"{OUT}/input.npy", np.asarray(crop, dtype=np.int32))
    cases = [
        ("up_bicubic", 224, 224, Image.BICUBIC, None),     # Ducho: straight to 224x224, bicubic
        ("down_bicubic", 37, 29, Image.BICUBIC, None),     # strong downscale: wide support
        ("down_bilinear", 64, 48, Image.BILINEAR, None),
        ("short_side_bilinear", 133, 100, Image.BILINEAR, None),
        ("box_bicubic", 50, 40, Image.BICUBIC, (10.5, 7.25, 100.0, 80.5)),
        ("width_only", 77, 90, Image.BICUBIC, None),       # vertical pass skipped
    ]
    lines = []
    for name, w, h, f, box in cases:
        out = crop.resize((w, h), f, box=box)
        np.save(f"{OUT}/{name}.npy", np.asarray(out, dtype=np.int32))
        fname = "bicubic" if f == Image.BICUBIC else "bilinear"
        b = "-" if box is None else ",".join(repr(float(v)) for v in box)
        lines.append(f"{name} {w} {h} {fname} {b}")
    open(f"{OUT}/cases.txt", "w").write("\n".join(lines) + "\n")
    presets(crop)
    print("wrote", OUT)


def derived(src):
    os.makedirs("tests/data/images/derived", exist_ok=True)
    tall = src.crop((181, 7, 332, 354))  # 151 x 347, odd sides: the chroma edges are upsampled from half a block
    tall.save("tests/data/images/derived/flower_tall_progressive.jpg", "JPEG", quality=90, progressive=True,
              subsampling=1, optimize=True)


def presets(crop):
    """torchvision's own transforms on the same crop: Resize(64) + CenterCrop(56) (bilinear, the
    torchvision preset scaled down) and Ducho's Resize((48, 48), bicubic), each with ToTensor and
    ImageNet Normalize: (3, h, w) float32."""
    import torchvision.transforms as T
    norm = [T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
    tv = T.Compose([T.Resize(64), T.CenterCrop(56)] + norm)(crop)
    ducho = T.Compose([T.Resize((48, 48), interpolation=T.InterpolationMode.BICUBIC)] + norm)(crop)
    np.save(f"{OUT}/torchvision_64_56.npy", tv.numpy().astype(np.float32))
    np.save(f"{OUT}/ducho_48.npy", ducho.numpy().astype(np.float32))


if __name__ == "__main__":
    main()
