#!/usr/bin/env python3
"""altclip.py: reference outputs of Hugging Face's AltCLIPModel for mrec's AltCLIP path: the XLM-R text
tower in nn/bert.c (RoBERTa positions, pre_LN, transformation, text_projection) and the CLIP vision tower
in nn/clip.c read from an "altclip" folder.

    python tools/golden/altclip.py              a tiny checkpoint for the tests
    python tools/golden/altclip.py --full DIR   BAAI/AltCLIP's shapes with random weights (local runs, bench)

The model is transformers' own AltCLIPModel built from an AltCLIPConfig, so tensor names and the forward
are the real ones: the text tower is an XLM-R (position ids counted from pad_token_id + 1 over real tokens,
one token-type row, gelu, LayerNorm eps 1e-5), then pre_LN on every token, transformation (Linear with bias,
hidden -> project_dim), the first token's row, and text_projection (no bias); the vision tower is CLIP's
(quick_gelu). Sizes are reduced: the text tower has 2 layers of width 16 over the 3,257 pieces of
tests/data/tokenizers/unigram-tiny (a SentencePiece Unigram tokenizer.json carrying the real XLM-R file's
normalizer, pre-tokenizer and post-processor; the real vocabulary would make the fixture 4 MB), 514
positions as the real model has; the vision tower is a 32-pixel ViT with patch 8. Weights are random
(seed 0), LayerNorm scales and shifts too; the word embedding is stored as float16 and the reference runs
on the rounded values.

Inputs are real: the photos clip.py uses, through CLIPImageProcessorPil at 32 pixels (BAAI/AltCLIP's
preprocessor is CLIP's at 224), and item texts in six languages through XLMRobertaTokenizerFast on
unigram-tiny, padded to the longest and cut at 512 tokens as AltCLIPProcessor does in Ducho; the last text
joins every line of tests/data/texts/items.txt, so it is cut.

Writes tests/fixtures/altclip/tiny/: config.json, model.safetensors, preprocessor_config.json
(tokenizer.json there is a link to unigram-tiny's, made once by hand), texts.txt, images.txt, and float32 / int32 .npy files:
  input_ids, attention_mask (B, T)   the tokenizer's output
  text_pooler (B, project_dim)       AltCLIPTextModel's pooler_output (transformation of pre_LN, first token)
  text_features (B, P)               get_text_features (text_projection of it)
  text_embeds (B, P)                 AltCLIPModel.forward's text_embeds (L2-normalized)
  image_features, image_embeds (N, P)  get_image_features, and forward's image_embeds
"""
import os
import shutil
import sys

sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AltCLIPConfig, AltCLIPModel, CLIPImageProcessor, XLMRobertaTokenizerFast  # noqa: E402
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil  # noqa: E402

OUT = "tests/fixtures/altclip/tiny"
TOKENIZER = "tests/data/tokenizers/unigram-tiny/tokenizer.json"
XLMR = "../shared/data/tokenizers/xlm-roberta-e5/tokenizer.json"  # the real XLM-R file, for --full
IMAGES = ["images/odd/pillow/flower.jpg",  # paths relative to tests/data, as clip.py
          "images/derived/flower_tall_progressive.jpg",
          "images/odd/libjpeg-turbo/testorig.jpg",
          "images/odd/pillow/hopper_gray.jpg",
          "images/odd/pillow/pil_sample_cmyk.jpg"]
# product-like texts in other languages, written for these tests
OTHER = ["Babyschale mit Sonnendach, für Neugeborene bis 13 kg, ECE R44/04 geprüft.",
         "纯棉婴儿连体衣，适合 0-3 个月的新生儿。",
         "غطاء عربة الأطفال المقاوم للمطر، مقاس عالمي.",
         "ベビー用おしりふき（無香料）、12パック。",
         "Biberon en verre 240 ml — tétine débit lent, sans BPA."]


def texts():
    lines = [line.rstrip("\n") for line in open("tests/data/texts/items.txt", encoding="utf-8")]
    return lines[:3] + OTHER + ["", " ".join(lines)]


def tiny_config(vocab):
    text = dict(vocab_size=vocab, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32,
                max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                layer_norm_eps=1e-5, project_dim=12, hidden_act="gelu")
    vision = dict(image_size=32, patch_size=8, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, hidden_act="quick_gelu", projection_dim=10)
    return AltCLIPConfig(text_config=text, vision_config=vision, projection_dim=10)


def full_config():
    """BAAI/AltCLIP's shapes: XLM-R large (24 x 1024, 250,002 pieces) and CLIP ViT-L/14."""
    text = dict(vocab_size=250002, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, project_dim=768)
    vision = dict(image_size=224, patch_size=14, hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                  num_attention_heads=16, hidden_act="quick_gelu", projection_dim=768)
    return AltCLIPConfig(text_config=text, vision_config=vision, projection_dim=768)


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "logit_scale":
                p.fill_(2.6592)
            elif ("LayerNorm" in name or "layer_norm" in name or "layrnorm" in name or "layernorm" in name
                  or "pre_LN" in name):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen)) if name.endswith("weight") else \
                    p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if "embedding" in name else p.shape[-1] ** -0.5))
        emb = model.text_model.roberta.embeddings.word_embeddings.weight
        emb.copy_(emb.half().float())


def save(model, out):
    # BAAI/AltCLIP's checkpoint names the text layers encoder.layer.N (transformers 5 renames them to layers.N
    # as it loads); the fixture keeps the checkpoint's names
    sd = {k.replace("roberta.encoder.layers.", "roberta.encoder.layer."): v.contiguous()
          for k, v in model.state_dict().items() if "position_ids" not in k and "token_type_ids" not in k}
    word = "text_model.roberta.embeddings.word_embeddings.weight"
    sd[word] = sd[word].half()
    save_file(sd, f"{out}/model.safetensors")
    model.config.save_pretrained(out)


def npy(out, name, x):
    np.save(f"{out}/{name}.npy", np.ascontiguousarray(x.numpy() if torch.is_tensor(x) else x))


def main():
    full = len(sys.argv) == 3 and sys.argv[1] == "--full"
    out = sys.argv[2] if full else OUT
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    tok = XLMRobertaTokenizerFast(tokenizer_file=XLMR if full else TOKENIZER)
    cfg = full_config() if full else tiny_config(len(tok))
    model = AltCLIPModel(cfg).eval()
    randomize(model, gen)
    save(model, out)
    if full:
        shutil.copy(XLMR, f"{out}/tokenizer.json")  # the tests' folder links to unigram-tiny's instead
    size = cfg.vision_config.image_size
    sizes = dict(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    CLIPImageProcessor(**sizes).save_pretrained(out)
    proc = CLIPImageProcessorPil(**sizes)  # the PIL path, as transformers 4 (and so Ducho) took

    ims = [Image.open(f"tests/data/{p}").convert("RGB") for p in IMAGES]
    pixel_values = torch.from_numpy(np.stack([proc(images=im, return_tensors="np")["pixel_values"][0] for im in ims]))
    ts = texts()
    enc = tok(ts, padding=True, truncation=True, max_length=512, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert full or int(mask.sum(1).max()) == 512, "the last text must be cut"
    open(f"{out}/images.txt", "w").write("\n".join(IMAGES) + "\n")
    open(f"{out}/texts.txt", "w", encoding="utf-8").write("\n".join(ts) + "\n")
    with torch.no_grad():
        t = model.text_model(input_ids=ids, attention_mask=mask)
        r = model(input_ids=ids, attention_mask=mask, pixel_values=pixel_values)
        text_features = model.text_projection(t.pooler_output)
        image_features = model.visual_projection(model.vision_model(pixel_values=pixel_values).pooler_output)
    assert torch.allclose(r.text_embeds, text_features / text_features.norm(dim=-1, keepdim=True), atol=1e-6)
    npy(out, "input_ids", ids.to(torch.int32))
    npy(out, "attention_mask", mask.to(torch.int32))
    npy(out, "text_pooler", t.pooler_output.float())
    npy(out, "text_features", text_features.float())
    npy(out, "text_embeds", r.text_embeds.float())
    npy(out, "image_features", image_features.float())
    npy(out, "image_embeds", r.image_embeds.float())
    print("wrote", out, "ids", tuple(ids.shape), "text_embeds", tuple(r.text_embeds.shape))


if __name__ == "__main__":
    main()
