#!/usr/bin/env python3
"""tokenizers_heldout.py: Hugging Face ids for held-out strings that stress Unicode handling.

Run from the repository root with transformers and its Rust `tokenizers` installed (no torch):

    python tools/golden/tokenizers_heldout.py

Writes tests/fixtures/tokenizers/heldout.txt, one string a line, four tab-separated fields:
  text     escaped: '\\\\' for a backslash, '\\xNN' for a raw byte. Control, format, private-use,
           unassigned and separator characters are written as the \\xNN of their UTF-8 bytes; so are
           invalid UTF-8 bytes (a surrogate encoded as ED A0 80, a stray continuation byte), whose
           reference text is Python's bytes.decode("utf-8", errors="replace").
  bert     BertTokenizerFast on tests/data/tokenizers/bert-base-uncased/vocab.txt, no special tokens
  minilm   the all-MiniLM-L6-v2 tokenizer.json, no special tokens
  clip     CLIPTokenizerFast on the clip-vit-base-patch32 tokenizer.json (NFC, whitespace, lowercase;
           no ftfy: the fast tokenizer does not use it), no special tokens

The strings are the cases of two differences once found (unassigned code points and noncharacters,
which Hugging Face keeps and turns into [UNK]; combining marks typed out of canonical order, which NFC
reorders), then a few hundred random strings drawn with a fixed seed from pools of scripts, combining
marks, controls, noncharacters, private use, invalid bytes, emoji, CJK and right-to-left text.

Hugging Face's BERT character classes come from an old Unicode table, and its normalization data is
not today's either. Characters assigned since then as format controls, punctuation or marks are
classified differently from the Unicode data of today (which mrec reads through utf8proc); the script
finds those characters by asking Hugging Face about each pool character (cleaning, punctuation,
accent stripping, canonical order against marks of four classes, CLIP's letter / number / other
split) and leaves them out, printing how many. Characters unassigned in this Python's Unicode
version are left out too (they may be assigned in utf8proc's newer one), except the unassigned pool,
taken from planes 4 to 13 which no Unicode version has used.
"""
import os
import random
import sys
import unicodedata

# This folder holds tokenizers.py, which would shadow the `tokenizers` package.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from tokenizers import Regex
from tokenizers.normalizers import NFD, BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer, Split
from transformers import BertTokenizerFast, CLIPTokenizerFast, PreTrainedTokenizerFast

DATA = "tests/data/tokenizers"
OUT = "tests/fixtures/tokenizers/heldout.txt"

FIXED = [
    # Unassigned code points and noncharacters: kept by Hugging Face, so their word is [UNK].
    "\ufdd0", "\ufffe", "\uffff", "\U0010ffff", "\U0004abcd", "\u0378", "ab\ufdd0cd", "x \ufdef y",
    "caf\u00e9\ufffe latte", "\U0001fffe\U0002ffff", "end\U000effff", "[\ufdd5]",
    # Still removed: controls, format characters, private use, U+FFFD.
    "a\u0007b", "a\u200bb", "a\ue000b", "a\U000f0000b", "a\U0010fffdb", "a\ufffdb", "a\u00adb", "a\ufeffb",
    # Two stacked marks out of canonical order (ccc 230 before 220): NFC reorders, then composes.
    "a\u0301\u0323", "a\u0323\u0301", "e\u0301\u0327", "o\u0308\u0331", "q\u0307\u0323",
    "\u1e0b\u0323", "\u1e0d\u0307", "s\u0307\u0323 s\u0323\u0307", "u\u031b\u0301\u0323",
    "A\u0301\u0323 CAF\u0301\u0327E", "\u05d1\u05bc\u05b7", "\u05d1\u05b7\u05bc", "\u0627\u0651\u064e", "\u0627\u064e\u0651",
    "\u1100\u1161\u11a8", "\u0915\u093c\u094d", "Z\u0324\u0301\u0308\u0316",
]

RANGES = {
    "latin": [(0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x1E00, 0x1EFF)],
    "greek_cyrillic": [(0x370, 0x3FF), (0x400, 0x52F)],
    "rtl": [(0x5D0, 0x5EA), (0x591, 0x5C7), (0x600, 0x6FF), (0x750, 0x77F), (0xFB50, 0xFDFF), (0xFE70, 0xFEFC)],
    "indic_thai": [(0x900, 0x97F), (0x980, 0x9FF), (0xB80, 0xBFF), (0xE00, 0xE7F), (0xF00, 0xFFF)],
    "cjk": [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x3040, 0x30FF), (0xAC00, 0xD7A3), (0x20000, 0x2A6DF),
            (0xF900, 0xFAFF), (0x3000, 0x303F), (0xFF00, 0xFFEF)],
    "marks": [(0x300, 0x36F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F)],
    "controls": [(0x0, 0x1F), (0x7F, 0x9F), (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x206F), (0xFEFF, 0xFEFF),
                 (0xAD, 0xAD), (0x1680, 0x1680), (0x2000, 0x200A), (0x3000, 0x3000)],
    "noncharacters": [(0xFDD0, 0xFDEF), (0xFFFE, 0xFFFF), (0x1FFFE, 0x1FFFF), (0x10FFFE, 0x10FFFF)],
    "unassigned": [(0x40000, 0xDFFFD)],
    "private": [(0xE000, 0xF8FF), (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD)],
    "emoji": [(0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F900, 0x1F9FF), (0x2600, 0x27BF), (0x1F1E6, 0x1F1FF)],
    "symbols": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E), (0xA1, 0xBF), (0x2010, 0x2027),
                (0x2030, 0x205E), (0x20A0, 0x20C0), (0x2100, 0x214F), (0x2190, 0x22FF), (0x2E00, 0x2E5D)],
    "digits": [(0x30, 0x39), (0x660, 0x669), (0x966, 0x96F), (0xFF10, 0xFF19), (0x2460, 0x249B), (0x2150, 0x218B)],
}
# Invalid UTF-8: surrogates as their 3-byte form, stray continuation bytes, truncated sequences.
BAD_BYTES = [b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\xb2\xa9", b"\x80", b"\xbf", b"\xe2\x82", b"\xf0\x9f\x98",
             b"\xc0\xaf", b"\xff", b"\xf4\x90\x80\x80"]

_norm = BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
_strip = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=True)
_pre = BertPreTokenizer()
_nfd = NFD()
_clip_pre = Split(Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""), "removed", invert=True)
# Marks of combining class 10, 220, 230 and 240: a character whose class Hugging Face's table does not
# know is ordered differently against them.
_PROBE_MARKS = "\u05b0\u0316\u0301\u0345"


def predicted(c):
    """What Hugging Face should do to c, from today's Unicode data."""
    cat = unicodedata.category(c)
    o = ord(c)
    if c.isspace() and o not in (0x1C, 0x1D, 0x1E, 0x1F) or o in (0x85,):
        kind = "space"
    elif o == 0 or o == 0xFFFD or cat in ("Cc", "Cf", "Co"):
        kind = "removed"
    elif cat.startswith("P") or (o < 0x80 and not c.isalnum() and c != " "):
        kind = "punct"
    else:
        kind = "kept"
    stripped = "".join(x for x in unicodedata.normalize("NFD", c) if unicodedata.category(x) != "Mn").lower()
    orders = [unicodedata.normalize("NFD", c + m) + unicodedata.normalize("NFD", m + c) for m in _PROBE_MARKS]
    clip = "letter" if cat.startswith("L") else "number" if cat.startswith("N") else \
        "space" if kind == "space" else "other"
    return kind, stripped, orders, clip


def observed(c):
    s = "a" + c + "a"
    r = _norm.normalize_str(s)
    if r == "aa":
        kind = "removed"
    elif r == "a a":
        kind = "space"
    else:
        kind = "punct" if [p for p, _ in _pre.pre_tokenize_str(s)] == ["a", c, "a"] else "kept"
    stripped = _strip.normalize_str(c)
    orders = [_nfd.normalize_str(c + m) + _nfd.normalize_str(m + c) for m in _PROBE_MARKS]
    pieces = [p for p, _ in _clip_pre.pre_tokenize_str("a" + c + "1")]
    clip = {("a" + c, "1"): "letter", ("a", c, "1"): "number", ("a", "1"): "space"}.get(tuple(pieces), "other")
    if clip == "number" and not unicodedata.category(c).startswith("N"):
        clip = "other"
    return kind, stripped, orders, clip


def pool(name):
    out = []
    for lo, hi in RANGES[name]:
        for o in range(lo, hi + 1):
            if name == "unassigned":
                if unicodedata.category(chr(o)) == "Cn" and (o & 0xFFFF) < 0xFFFE:
                    out.append(chr(o))
                continue
            out.append(chr(o))
    return out


def usable(c, skipped):
    o = ord(c)
    nonchar = (o & 0xFFFE) == 0xFFFE or 0xFDD0 <= o <= 0xFDEF
    if unicodedata.category(c) == "Cn" and not nonchar and not 0x40000 <= o <= 0xDFFFD:
        return False
    if predicted(c) != observed(c):
        skipped.add(c)
        return False
    return True


def escape(raw):
    """bytes -> fixture text (see the module comment)."""
    out = []
    for ch in raw.decode("utf-8", errors="surrogateescape"):
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append("\\x%02x" % (o - 0xDC00))
        elif ch == "\\":
            out.append("\\\\")
        elif o < 0x20 or unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp"):
            out.append("".join("\\x%02x" % b for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out)


def random_strings(rng, pools, n):
    names = sorted(pools)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 8)):
            kind = rng.choice(names + ["bad", "space", "word"])
            if kind == "bad":
                parts.append(rng.choice(BAD_BYTES))
            elif kind == "space":
                parts.append(rng.choice([b" ", b"  ", b"\t", b"\n", " \u3000".encode()]))
            elif kind == "word":
                parts.append(rng.choice(["the", "Caf\u00e9", "photo", "NA\u00cfVE", "don't", "x2"]).encode())
            else:
                k = rng.randint(1, 4)
                parts.append("".join(rng.choice(pools[kind]) for _ in range(k)).encode("utf-8"))
            if kind in ("latin", "greek_cyrillic") and rng.random() < 0.5:
                parts.append("".join(rng.choice(pools["marks"]) for _ in range(rng.randint(1, 3))).encode())
        out.append(b"".join(parts))
    return out


def main():
    rng = random.Random(20261123)
    skipped = set()
    pools = {name: [c for c in pool(name) if usable(c, skipped)] for name in RANGES}
    strings = [s.encode("utf-8") for s in FIXED] + random_strings(rng, pools, 360)
    strings += [rng.choice(BAD_BYTES) + b"ab" + rng.choice(BAD_BYTES) for _ in range(8)]

    bert = BertTokenizerFast(vocab=f"{DATA}/bert-base-uncased/vocab.txt", do_lower_case=True)
    minilm = PreTrainedTokenizerFast(tokenizer_file=f"{DATA}/all-MiniLM-L6-v2/tokenizer.json")
    clip = CLIPTokenizerFast(tokenizer_file=f"{DATA}/clip/clip-vit-base-patch32.tokenizer.json")
    rows = []
    for raw in strings:
        text = raw.decode("utf-8", errors="replace")
        ids = [tok(text, add_special_tokens=False)["input_ids"] for tok in (bert, minilm, clip)]
        rows.append("\t".join([escape(raw)] + [" ".join(map(str, x)) for x in ids]))
        assert ids[0] == ids[1], f"vocab.txt and tokenizer.json disagree on {raw!r}"
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(rows) + "\n")
    print(f"{len(rows)} strings written to {OUT}; {len(skipped)} pool characters left out "
          "(Hugging Face's Unicode table is older than today's)")


if __name__ == "__main__":
    main()
