#!/usr/bin/env python3
"""clip.py: reference outputs of Hugging Face's CLIPModel for mrec's CLIP towers.

    python tools/golden/clip.py             a tiny checkpoint for the tests
    python tools/golden/clip.py --full DIR  ViT-B/16-sized CLIP with random weights (local runs, bench)

The model is transformers' own CLIPModel built from a CLIPConfig, so tensor names and the forward are
the real ones; weights are random (seed 0), LayerNorm scales and shifts too, so a missing or swapped
norm shows. The text tower keeps the real vocabulary size (49408) so the ids come from the real CLIP
tokenizer (../shared/data/tokenizers/clip); its token embedding is stored as float16 (and the
reference runs on the float16-rounded values) to keep the fixture small.

Inputs are real: five freely licensed photos the repository ships (tests/data/images: Pillow's
flower.jpg, a tall progressive crop of it, libjpeg-turbo's testorig.jpg, Pillow's hopper_gray.jpg and
the CMYK pil_sample_cmyk.jpg; see tests/data/images/PROVENANCE.md) through CLIPImageProcessorPil (the PIL path that transformers 4, and so Ducho, took; transformers 5's default
torchvision backend resizes differently by up to one level), item texts written for the tests (tests/data/texts/items.txt) and captions through CLIPTokenizerFast (padding to the
longest, truncation at 77).

Writes tests/fixtures/clip/: config.json, model.safetensors, preprocessor_config.json (32-pixel
sizes), config_legacy.json (eos_token_id 2: the argmax pooling rule), config_gelu.json (hidden_act
gelu in both towers); images.txt, texts.txt; pixel_values, input_ids, attention_mask; image_pooler,
image_projected, image_embeds, text_pooler, text_projected, text_embeds, logits_per_image (float32
.npy); noeos_ids and the text_embeds of the legacy and eos-id rules on them (sequences without an
end-of-text token, where the two rules differ); text_embeds_gelu, image_embeds_gelu.

The product and ImageNet photos of ../shared/data/images may be used for research only: no pixels of
theirs are written, only the model's image_embeds of five of them (shared_image_embeds.npy, the
photos listed in shared_images.txt), which the tests recompute from the photos when ../shared/data
is beside the repository.
"""
import json
import os
import shutil
import sys

sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizerFast  # noqa: E402
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil  # noqa: E402

OUT = "tests/fixtures/clip"
DATA = "../shared/data"
TOKENIZER = f"{DATA}/tokenizers/clip/clip-vit-base-patch32.tokenizer.json"
IMAGES = ["images/odd/pillow/flower.jpg",                  # paths relative to tests/data
          "images/derived/flower_tall_progressive.jpg",
          "images/odd/libjpeg-turbo/testorig.jpg",
          "images/odd/pillow/hopper_gray.jpg",
          "images/odd/pillow/pil_sample_cmyk.jpg"]
CAPTIONS = ["a photo of a pink flower", "a flower between green leaves", "a red rose", "a black and white portrait", ""]
SHARED_IMAGES = ["images/products-clayrs/anthropologie-skirt-light-pink-434-1.jpg",  # relative to ../shared/data
                 "images/products-clayrs/o-neill-dress-black-and-white-164-1.jpg",
                 "images/products-clayrs/wildfox-floral-print-leggings-357-1.jpg",
                 "images/imagenet-sample/images/n02104029_kuvasz.JPEG",
                 "images/imagenet-sample/images/n01440764_tench.JPEG"]


def item_texts(n):
    """The first n item texts written for the tests (tests/data/texts/items.txt), and ten of them
    joined: long enough to be truncated at 77 tokens."""
    lines = [line.rstrip("\n") for line in open("tests/data/texts/items.txt", encoding="utf-8")]
    return lines[:n] + [" ".join(lines[5:15])]


def tiny_config(**act):
    text = dict(vocab_size=49408, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=1, **act)
    vision = dict(image_size=32, patch_size=8, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, **act)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=12)


def full_config():
    """openai/clip-vit-base-patch16's shapes (CLIPConfig's defaults, patch 16)."""
    return CLIPConfig(text_config=dict(eos_token_id=49407, bos_token_id=49406),
                      vision_config=dict(patch_size=16), projection_dim=512)


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "logit_scale":
                p.fill_(2.6592)
            elif name.endswith("layer_norm1.weight") or name.endswith("layer_norm2.weight") or "layrnorm" in name \
                    or "layernorm" in name or "final_layer_norm" in name:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen)) if name.endswith("weight") else \
                    p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * (0.02 if "embedding" in name else p.shape[-1] ** -0.5))
        emb = model.text_model.embeddings.token_embedding.weight
        emb.copy_(emb.half().float())


def save(model, out):
    sd = {k: v.contiguous() for k, v in model.state_dict().items() if "position_ids" not in k}
    sd["text_model.embeddings.token_embedding.weight"] = sd["text_model.embeddings.token_embedding.weight"].half()
    save_file(sd, f"{out}/model.safetensors")
    model.config.save_pretrained(out)


def outputs(model, pixel_values, ids, mask):
    with torch.no_grad():
        v = model.vision_model(pixel_values=pixel_values)
        t = model.text_model(input_ids=ids, attention_mask=mask)
        r = model(input_ids=ids, attention_mask=mask, pixel_values=pixel_values)
        return {"image_pooler": v.pooler_output, "image_projected": model.visual_projection(v.pooler_output),
                "image_embeds": r.image_embeds, "text_pooler": t.pooler_output,
                "text_projected": model.text_projection(t.pooler_output), "text_embeds": r.text_embeds,
                "logits_per_image": r.logits_per_image}


def npy(out, name, x):
    np.save(f"{out}/{name}.npy", np.ascontiguousarray(x.numpy() if torch.is_tensor(x) else x))


def main():
    full = len(sys.argv) == 3 and sys.argv[1] == "--full"
    out = sys.argv[2] if full else OUT
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    cfg = full_config() if full else tiny_config(hidden_act="quick_gelu")
    model = CLIPModel(cfg).eval()
    randomize(model, gen)
    save(model, out)
    size = cfg.vision_config.image_size
    sizes = dict(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    CLIPImageProcessor(**sizes).save_pretrained(out)
    proc = CLIPImageProcessorPil(**sizes)  # the PIL path, as transformers 4 (and so Ducho) took
    tok = CLIPTokenizerFast(tokenizer_file=TOKENIZER)
    if full:
        shutil.copy(TOKENIZER, f"{out}/tokenizer.json")

    ims = [Image.open(f"tests/data/{p}").convert("RGB") for p in IMAGES]
    pixel_values = torch.from_numpy(np.stack([proc(images=im, return_tensors="np")["pixel_values"][0] for im in ims]))
    texts = item_texts(3) + CAPTIONS
    enc = tok(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    open(f"{out}/images.txt", "w").write("\n".join(IMAGES) + "\n")
    open(f"{out}/texts.txt", "w", encoding="utf-8").write("\n".join(t.replace("\n", " ") for t in texts) + "\n")
    npy(out, "pixel_values", pixel_values.float())
    npy(out, "input_ids", ids.to(torch.int32))
    npy(out, "attention_mask", mask.to(torch.int32))
    for k, v in outputs(model, pixel_values, ids, mask).items():
        npy(out, k, v.float())
    if full:
        print("wrote", out)
        return

    shared = [Image.open(f"{DATA}/{p}").convert("RGB") for p in SHARED_IMAGES]
    shared_pixels = torch.from_numpy(np.stack([proc(images=im, return_tensors="np")["pixel_values"][0] for im in shared]))
    npy(out, "shared_image_embeds", outputs(model, shared_pixels, ids, mask)["image_embeds"].float())
    open(f"{out}/shared_images.txt", "w").write("\n".join(SHARED_IMAGES) + "\n")

    # the two pooling rules differ only on sequences without an end-of-text token
    noeos = torch.tensor([[320, 1125, 539, 320, 2368, 49406, 1929, 12],
                          [9000, 3, 11, 12, 13, 14, 49405, 15]], dtype=torch.long)
    npy(out, "noeos_ids", noeos.to(torch.int32))
    with torch.no_grad():
        eos_rule = model.text_projection(model.text_model(input_ids=noeos).pooler_output)
        legacy = CLIPModel(tiny_config(hidden_act="quick_gelu")).eval()
        legacy.config.text_config.eos_token_id = 2
        legacy.text_model.eos_token_id = 2
        legacy.load_state_dict(model.state_dict())
        legacy_rule = legacy.text_projection(legacy.text_model(input_ids=noeos).pooler_output)
    npy(out, "noeos_projected", eos_rule.float())
    npy(out, "noeos_projected_legacy", legacy_rule.float())
    assert not torch.allclose(eos_rule, legacy_rule)
    c = json.load(open(f"{out}/config.json"))
    c["text_config"]["eos_token_id"] = 2
    json.dump(c, open(f"{out}/config_legacy.json", "w"), indent=2, sort_keys=True)

    gelu = CLIPModel(tiny_config(hidden_act="gelu")).eval()
    gelu.load_state_dict(model.state_dict())
    r = outputs(gelu, pixel_values, ids, mask)
    npy(out, "text_embeds_gelu", r["text_embeds"].float())
    npy(out, "image_embeds_gelu", r["image_embeds"].float())
    c = json.load(open(f"{out}/config.json"))
    c["text_config"]["hidden_act"] = c["vision_config"]["hidden_act"] = "gelu"
    json.dump(c, open(f"{out}/config_gelu.json", "w"), indent=2, sort_keys=True)
    print("wrote", out)


if __name__ == "__main__":
    main()
