#!/usr/bin/env python3
"""tokenizers.py: expected token ids from Hugging Face for mrec's tokenizer tests.

Run from the repository root, with ../shared/data beside it and transformers (with its Rust
`tokenizers`) installed:

    python tools/golden/tokenizers.py

Writes into tests/fixtures/tokenizers/ (gzip, one line per corpus text):
  corpus.txt.gz      the texts: SQuAD v1.1 dev questions (CC BY-SA 4.0), the item texts written for the
                     tests (tests/data/texts/items.txt) and the hand-made edge cases below. Escaped one per line:
                     '\\\\' for a backslash, '\\xNN' for bytes below 0x20 and 0x7f; all else raw UTF-8.
  bert_ids.txt.gz    BertTokenizerFast (bert-base-uncased vocab.txt) ids, no special tokens; the
                     all-MiniLM-L6-v2 tokenizer.json gives the same ids (checked here), so the test
                     holds both loaders to this one file
  clip_ids.txt.gz    CLIPTokenizerFast (clip-vit-base-patch32 tokenizer.json) ids, no special tokens
  mpnet_ids.txt.gz   all-mpnet-base-v2's tokenizer.json (MPNetTokenizerFast: BERT's WordPiece with
                     RoBERTa's <s> </s> framing and <pad> 1) ids, no special tokens
  encode.txt         full encodings (special tokens, pairs, truncation, padding) for a few cases
  shared_ids.tsv.gz  for the real item texts whose terms forbid copying them (ML-100K titles and
                     plots, H&M names and descriptions): a key, the text's size and CRC-32, and the
                     count and CRC-32 of each tokenizer's ids; the test reads the texts from
                     ../shared/data (shared_corpus() below gives the order)
"""
import csv
import gzip
import io
import json
import os
import sys
import zlib

# This file's name would shadow the `tokenizers` package that transformers imports.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from transformers import AutoTokenizer, BertTokenizerFast, CLIPTokenizerFast, PreTrainedTokenizerFast

DATA = "../shared/data"
OUT = "tests/fixtures/tokenizers"
ITEMS = "tests/data/texts/items.txt"

EDGE_CASES = [
    "", " ", "   \t  ", "Hello, World!", "HELLO world", "héllo wörld", "Beyoncé Knowles",
    "cafe\u0301 vs caf\u00e9",            # NFD vs NFC é
    "Ångström ÅNGSTRÖM ångström", "naïve façade coöperate", "İstanbul ıi", "ß straße STRASSE",
    "Ǆemal ǅ ǆ", "ﬁne ﬂour", "ＦＵＬＬＷＩＤＴＨ ｆｕｌｌ", "①②③ ⅫⅣ ½ ²³",
    "中文字符测试", "日本語のテキスト、カタカナとひらがな", "한국어 텍스트", "mixed中文english",
    "emoji 😀😃 👍🏽 family 👨‍👩‍👧‍👦 flag 🇮🇹", "❤️ ✨ ☕",
    "العربية نص", "עברית טקסט", "हिन्दी पाठ", "ภาษาไทย ข้อความ", "Ελληνικά κείμενο ΣΊΣΥΦΟΣ", "Русский текст Ёё",
    "tab\there", "new\nline", "carriage\rreturn", "vertical\x0btab form\x0cfeed", "nul\x00byte", "bell\x07char",
    "zero\u200bwidth", "soft\u00adhyphen", "nbsp\u00a0space", "ideographic\u3000space", "line\u2028separator",
    "next\u0085line", "bom\ufeffmark", "replacement\ufffdchar", "rtl\u200fmark", "private\ue000use",
    "a" * 99, "b" * 100, "c" * 101, "supercalifragilisticexpialidocious" * 4,
    "word " * 60, "x  y   z    w", "  leading and trailing  ",
    "don't can't won't it's I'm you're we've they'll she'd", "DON'T CAN'T IT'S", "'quoted' \"double\" `back`",
    "rock'n'roll o'clock ma'am", "’curly’ ‘quotes’ “double”",
    "3.14159 1,000,000 -42 +7 1e10 0x1F 2nd 3rd 21st", "phone: +1 (555) 123-4567", "2024-01-31T12:00:00Z",
    "https://www.example.com/path?query=1&b=2#frag", "user@example.com", "C:\\path\\to\\file.txt",
    "&amp; &lt;b&gt; &quot;x&quot; &#39; &nbsp;", "<html><body>tag</body></html>",
    "$100 €50 £30 ¥20 ₹10 100% #hashtag @mention ^caret ~tilde |pipe",
    "a+b=c a*b a/b a\\b a_b a-b a–b a—b", "...!!!???", "¿Qué? ¡Sí!", "«guillemets» „low“",
    "[CLS] inside [SEP] text [MASK] [PAD] [UNK]", "<|startoftext|>clip<|endoftext|>", "[cls] lower",
    "unaffable unbelievable unconstitutional", "antidisestablishmentarianism", "pneumonoultramicroscopicsilicovolcanoconiosis",
    "Ⅷ ⅷ ℃ ℉ № ™ ©", "x²+y²=z² H₂O", "ℌ𝔢𝔩𝔩𝔬 𝐁𝐨𝐥𝐝", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇",
    "\U0001F600" * 5, "\U00020000\U0002A700 rare CJK", "ཀུན tibetan", "ᚠᚢᚦ runic", "Ꭰ cherokee",
]


def escape(text):
    out = []
    for ch in text:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif o < 0x20 or o == 0x7F:
            out.append("\\x%02x" % o)
        else:
            out.append(ch)
    return "".join(out)


def corpus():
    """The committed texts: SQuAD questions (CC BY-SA 4.0), the item texts written for the tests
    (tests/data/texts/items.txt) and the edge cases."""
    texts = [q["original"] for q in json.load(open(f"{DATA}/tokenizers/bert-base-uncased/reference/squad_dev_v1.1_question_tokens.json"))]
    texts += [line.rstrip("\n") for line in open(ITEMS, encoding="utf-8")]
    return texts + EDGE_CASES


def shared_corpus():
    """Real item texts whose terms forbid copying them (ML-100K titles and plots, H&M product names
    and descriptions), as (key, text): only digests of their ids are committed, and test_tokenizers
    reads the texts from ../shared/data in this order."""
    texts = []
    for k, item in enumerate(json.load(open(f"{DATA}/ml-100k/clayrs/items_info.json"))):
        texts.append((f"ml100k item {k} title", item["title"]))
        if item.get("plot"):
            texts.append((f"ml100k item {k} plot", item["plot"]))
    seen = set()
    with open(f"{DATA}/hm-fashion-sample/original/articles_train_sample.csv", newline="", encoding="utf-8") as f:
        for r, row in enumerate(csv.DictReader(f)):
            for col in ("prod_name", "detail_desc"):
                t = row[col]
                if t and t not in seen and len(seen) < 3000:
                    seen.add(t)
                    texts.append((f"hm row {r} {col}", t))
    return texts


def digest(ids):
    """count:crc32 of the ids written as in the *_ids.txt files."""
    return "%d:%08x" % (len(ids), zlib.crc32(" ".join(map(str, ids)).encode()))


def gz_text(path):
    """A gzip text file with no timestamp, so reruns give the same bytes."""
    return io.TextIOWrapper(gzip.GzipFile(path, "wb", compresslevel=9, mtime=0), encoding="utf-8", newline="\n")


def write_ids(path, rows):
    with gz_text(path) as f:
        for ids in rows:
            f.write(" ".join(map(str, ids)) + "\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    texts = corpus()
    for t in texts:
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in t)
    with gz_text(f"{OUT}/corpus.txt.gz") as f:
        for t in texts:
            f.write(escape(t) + "\n")

    bert = BertTokenizerFast(vocab=f"{DATA}/tokenizers/bert-base-uncased/vocab.txt", do_lower_case=True)
    minilm = PreTrainedTokenizerFast(tokenizer_file=f"{DATA}/tokenizers/all-MiniLM-L6-v2/tokenizer.json")
    clip = CLIPTokenizerFast(tokenizer_file=f"{DATA}/tokenizers/clip/clip-vit-base-patch32.tokenizer.json")
    # all-mpnet-base-v2's files are kept in the repository (tests/data), not in ../shared/data.
    mpnet = AutoTokenizer.from_pretrained("tests/data/tokenizers/all-mpnet-base-v2")
    bert_rows = [bert(t, add_special_tokens=False)["input_ids"] for t in texts]
    minilm_rows = [minilm(t, add_special_tokens=False)["input_ids"] for t in texts]
    clip_rows = [clip(t, add_special_tokens=False)["input_ids"] for t in texts]
    write_ids(f"{OUT}/bert_ids.txt.gz", bert_rows)
    write_ids(f"{OUT}/clip_ids.txt.gz", clip_rows)
    write_ids(f"{OUT}/mpnet_ids.txt.gz", [mpnet(t, add_special_tokens=False)["input_ids"] for t in texts])
    with gz_text(f"{OUT}/shared_ids.tsv.gz") as f:
        f.write("# key\ttext bytes:crc32 (UTF-8)\tbert ids count:crc32\tclip\tmpnet (ids written as in bert_ids.txt)\n")
        for key, t in shared_corpus():
            b = bert(t, add_special_tokens=False)["input_ids"]
            assert b == minilm(t, add_special_tokens=False)["input_ids"]
            raw = t.encode()
            f.write("\t".join([key, "%d:%08x" % (len(raw), zlib.crc32(raw)), digest(b),
                               digest(clip(t, add_special_tokens=False)["input_ids"]),
                               digest(mpnet(t, add_special_tokens=False)["input_ids"])]) + "\n")

    # Full encodings: name | text | pair | max_length | ids | token types | attention mask
    cases = []
    long_text = " ".join(texts[100:140])
    for name, tok, text, pair, max_len in [
        ("bert", bert, "Hello, World!", None, 0),
        ("bert", bert, "Which NFL team represented the AFC at Super Bowl 50?", "Denver Broncos", 0),
        ("bert", bert, long_text, None, 32),
        ("bert", bert, long_text, "a short second segment", 24),
        ("bert", bert, "short", "pair", 12),
        ("bert", bert, "short", None, 12),
        ("bert", bert, "q one", "answer two", 6),
        ("bert", bert, long_text, "short pair", 10),
        ("bert", bert, "short first", long_text, 10),
        ("bert", bert, long_text, long_text[::-1], 9),
        ("bert", bert, long_text, long_text, 12),
        ("bert", bert, "one two three four five", None, 3),
        ("clip", clip, "a photo of a cat", None, 77),
        ("clip", clip, "a photo of a cat", "a drawing of a dog", 0),
        ("clip", clip, long_text, "a drawing of a dog", 20),
        ("clip", clip, long_text, None, 77),
        ("clip", clip, "", None, 77),
        ("mpnet", mpnet, "Hello, World!", None, 0),
        ("mpnet", mpnet, "Which NFL team represented the AFC at Super Bowl 50?", "Denver Broncos", 0),
        ("mpnet", mpnet, long_text, "a short second segment", 24),
        ("mpnet", mpnet, "short", "pair", 12),
        ("mpnet", mpnet, "short", None, 12),
        ("mpnet", mpnet, long_text, None, 16),
        ("mpnet", mpnet, "", None, 4),
    ]:
        kw = dict(add_special_tokens=True)
        if max_len:
            kw.update(max_length=max_len, truncation=True, padding="max_length")
        enc = tok(text, pair, **kw) if pair is not None else tok(text, **kw)
        types = enc.get("token_type_ids", [0] * len(enc["input_ids"]))
        cases.append("\t".join([name, escape(text), escape(pair) if pair is not None else "-", str(max_len),
                                " ".join(map(str, enc["input_ids"])), " ".join(map(str, types)),
                                " ".join(map(str, enc["attention_mask"]))]))
    with open(f"{OUT}/encode.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(cases) + "\n")

    diff = sum(a != b for a, b in zip(bert_rows, minilm_rows))
    assert diff == 0, f"vocab.txt and tokenizer.json disagree on {diff} texts"
    print(f"{len(texts)} texts written to {OUT}")


if __name__ == "__main__":
    main()
