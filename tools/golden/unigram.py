#!/usr/bin/env python3
"""unigram.py: expected token ids from Hugging Face `tokenizers` for mrec's Unigram tokenizer.

Run from the repository root after tools/golden/tokenizers.py (it reuses that script's corpus),
with ../shared/data beside the repository and the Rust-backed `tokenizers` package installed:

    python tools/golden/unigram.py

Reads:
  ../shared/data/tokenizers/xlm-roberta-e5/tokenizer.json   the real XLM-R tokenizer (see its PROVENANCE.md)
  tests/fixtures/tokenizers/corpus.txt.gz                    the texts of tokenizers.py (mostly English)
Writes into tests/fixtures/tokenizers/:
  unigram_corpus.txt.gz     more texts, escaped as corpus.txt.gz: one sentence in each of many languages and
                            scripts, product-like multilingual phrases, edge cases (empty, whitespace runs,
                            controls, emoji sequences, combining marks, CJK, RTL, long words, unassigned code
                            points, NFKC-affected characters), and 3,000 random strings over those ranges
                            (fixed seed)
  xlmr_ids.txt.gz           the real XLM-R tokenizer's ids, no special tokens, for corpus.txt.gz then
                            unigram_corpus.txt.gz
  unigram_tiny_ids.txt.gz   the same texts through the synthetic tokenizer below (byte fallback on)
  unigram_tiny_unk_ids.txt.gz  ... with byte fallback off (unknown runs become one <unk>), for
                            unigram_corpus.txt.gz only
  unigram_encode.txt        full encodings (special tokens, pairs, truncation, padding) and decodes
and tests/data/tokenizers/unigram-tiny/tokenizer.json: a small Unigram model trained here by
`tokenizers`' UnigramTrainer on the corpus texts, with the real file's normalizer (its Precompiled
character map and Replace), Metaspace with prepend_scheme "first", 256 <0xNN> byte pieces with
byte_fallback, RobertaProcessing and added tokens that take the whitespace around them (<mask>
lstrip, <pad> rstrip), so that every clone tests the algorithm without the 17 MB file.
"""
import base64
import gzip
import io
import json
import os
import random
import sys

# This folder holds a tokenizers.py that would shadow the package.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

# One trainer thread: the trained model, and so the fixtures, are the same on every run.
os.environ["RAYON_NUM_THREADS"] = "1"

import tokenizers
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

DATA = "../shared/data"
XLMR = f"{DATA}/tokenizers/xlm-roberta-e5/tokenizer.json"
FIX = "tests/fixtures/tokenizers"
TINY = "tests/data/tokenizers/unigram-tiny"

# Article 1 of the Universal Declaration of Human Rights, and a few more sentences, in many
# languages and scripts.
MULTILINGUAL = [
    "All human beings are born free and equal in dignity and rights.",
    "Tous les êtres humains naissent libres et égaux en dignité et en droits.",
    "Alle Menschen sind frei und gleich an Würde und Rechten geboren.",
    "Todos los seres humanos nacen libres e iguales en dignidad y derechos.",
    "Todos os seres humanos nascem livres e iguais em dignidade e em direitos.",
    "Tutti gli esseri umani nascono liberi ed eguali in dignità e diritti.",
    "Alle mensen worden vrij en gelijk in waardigheid en rechten geboren.",
    "Wszyscy ludzie rodzą się wolni i równi pod względem swej godności i swych praw.",
    "Všichni lidé rodí se svobodní a sobě rovní co do důstojnosti a práv.",
    "Minden emberi lény szabadon születik és egyenlő méltósága és joga van.",
    "Toate ființele umane se nasc libere și egale în demnitate și în drepturi.",
    "Kaikki ihmiset syntyvät vapaina ja tasavertaisina arvoltaan ja oikeuksiltaan.",
    "Alla människor är födda fria och lika i värde och rättigheter.",
    "Öll erum við borin frjáls og jöfn öðrum að virðingu og réttindum.",
    "Tüm insanlar hür, haysiyet ve haklar bakımından eşit doğarlar.",
    "Все люди рождаются свободными и равными в своем достоинстве и правах.",
    "Усі люди народжуються вільними і рівними у своїй гідності та правах.",
    "Всички хора се раждат свободни и равни по достойнство и права.",
    "Όλοι οι άνθρωποι γεννιούνται ελεύθεροι και ίσοι στην αξιοπρέπεια και τα δικαιώματα.",
    "Ყველა ადამიანი იბადება თავისუფალი და თანასწორი თავისი ღირსებითა და უფლებებით.",
    "Բոլոր մարդիկ ծնվում են ազատ ու հավասար իրենց արժանապատվությամբ ու իրավունքներով։",
    "يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق.",
    "כל בני אדם נולדו בני חורין ושווים בערכם ובזכויותיהם.",
    "تمام انسان آزاد اور حقوق و عزت کے اعتبار سے برابر پیدا ہوئے ہیں۔",
    "تمام افراد بشر آزاد به دنیا می‌آیند و از لحاظ حیثیت و حقوق با هم برابرند.",
    "सभी मनुष्यों को गौरव और अधिकारों के मामले में जन्मजात स्वतन्त्रता और समानता प्राप्त है।",
    "সমস্ত মানুষ স্বাধীনভাবে সমান মর্যাদা এবং অধিকার নিয়ে জন্মগ্রহণ করে।",
    "பிறப்பொக்கும் எல்லா உயிர்க்கும் சிறப்பொவ்வா செய்தொழில் வேற்றுமை யான்.",
    "ప్రతిపత్తిస్వత్వముల విషయమున మానవులెల్లరును జన్మతః స్వతంత్రులును సమానులును నగుదురు.",
    "ಎಲ್ಲಾ ಮಾನವರೂ ಸ್ವತಂತ್ರರಾಗಿಯೇ ಜನಿಸಿದ್ದಾರೆ.",
    "മനുഷ്യരെല്ലാവരും തുല്യാവകാശങ്ങളോടും അന്തസ്സോടും സ്വാതന്ത്ര്യത്തോടുംകൂടി ജനിച്ചിട്ടുള്ളവരാണ്‌.",
    "ਸਾਰਾ ਮਨੁੱਖੀ ਪਰਿਵਾਰ ਆਪਣੀ ਮਹਿਮਾ, ਸ਼ਾਨ ਅਤੇ ਹੱਕਾਂ ਦੇ ਪੱਖੋਂ ਜਨਮ ਤੋਂ ਹੀ ਆਜ਼ਾਦ ਹੈ।",
    "સર્વે માનવો જન્મથી સ્વતંત્ર છે અને ગૌરવ અને અધિકારોમાં સમાન છે.",
    "මනුෂ්‍යයෝ සැම දෙනාම නිදහස්ව උපත ලබා ඇත.",
    "มนุษย์ทั้งหลายเกิดมามีอิสระและเสมอภาคกันในเกียรติศักด์และสิทธิ",
    "ມະນຸດທຸກຄົນເກີດມາມີສິດເສລີພາບ ແລະ ສະເໝີພາບໃນທາງກຽດຕິສັກ ແລະ ທາງສິດ.",
    "មនុស្សទាំងអស់ កើតមកមានសេរីភាព និងសមភាព ក្នុងសិទ្ធិ និងសេចក្ដីថ្លៃថ្នូរ។",
    "လူတိုင်းသည် တူညီ လွတ်လပ်သော ဂုဏ်သိက္ခာဖြင့် လည်းကောင်း၊ တူညီလွတ်လပ်သော အခွင့်အရေးများဖြင့် လည်းကောင်း၊ မွေးဖွားလာသူများ ဖြစ်သည်။",
    "人人生而自由，在尊严和权利上一律平等。",
    "人人生而自由，在尊嚴和權利上一律平等。",
    "すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等である。",
    "모든 인간은 태어날 때부터 자유로우며 그 존엄과 권리에 있어 동등하다.",
    "Mọi người sinh ra đều được tự do và bình đẳng về nhân phẩm và quyền lợi.",
    "Semua orang dilahirkan merdeka dan mempunyai martabat dan hak-hak yang sama.",
    "Lahat ng tao'y isinilang na malaya at pantay-pantay sa karangalan at mga karapatan.",
    "Watu wote wamezaliwa huru, hadhi na haki zao ni sawa.",
    "Ọmọnìyàn ni a bí ní òmìnira; iyì àti ẹ̀tọ́ kọ̀ọ̀kan sì dọ́gba.",
    "Bütün insanlar ləyaqət və hüquqlarına görə azad və bərabər doğulurlar.",
    "Адамдардын баары өз беделинде жана укуктарында эркин жана тең укуктуу болуп жаралат.",
    "Хүн бүр төрөхдөө эрх чөлөөтэй, адилхан нэр төртэй, ижил эрхтэй байдаг.",
    "ሁሉም የሰው ልጆች ሲወለዱ ነጻና በክብርና በመብትም እኩልነት ያላቸው ናቸው።",
    "ᐃᓅᔪᓕᒫᑦ ᐊᓂᖅᑎᕆᔪᓕᒫᑦ ᐃᓱᒪᕐᓱᕐᒥᒃ ᐊᑐᓂᒃ ᓂᕐᓱᐊᖅᑎᑦᑎᑦᓯᐊᕐᓂᒃ.",
    "Pawb ydyn ni wedi'n geni'n rhydd ac yn gydradd â'n gilydd o ran urddas a hawliau.",
    "Rugadh na daoine uile saor agus comhionann i ndínit agus i gcearta.",
    "Gizon-emakume guztiak aske jaiotzen dira, duintasun eta eskubide berberak dituztela.",
    "Tots els éssers humans neixen lliures i iguals en dignitat i en drets.",
    "Alle mennesker er født frie og med samme menneskeverd og menneskerettigheter.",
    "Visi žmonės gimsta laisvi ir lygūs savo orumu ir teisėmis.",
    "Visi cilvēki piedzimst brīvi un vienlīdzīgi savā pašcieņā un tiesībās.",
    "Kõik inimesed sünnivad vabadena ja võrdsetena oma väärikuselt ja õigustelt.",
    "Ĉiuj homoj estas denaske liberaj kaj egalaj laŭ digno kaj rajtoj.",
    "ཉིན་རེ་བཞིན་དུ་མི་ཚང་མ་རང་དབང་དང་ལྡན་པར་སྐྱེས་ཤིང་།",
    "Ǹjé o ti jẹun? Ẹ káàárọ̀! Ẹ ṣé o.",
    # product-like multilingual text, as an item catalogue would hold
    "Robe d'été en coton bio, taille 38 — couleur « bleu marine » (100 % coton)",
    "Damen Sommerkleid aus Baumwolle, Größe M, Farbe: Dunkelblau – 29,99 €",
    "Vestido de verano para mujer, algodón orgánico, talla M, ¡envío gratis!",
    "女士夏季连衣裙 纯棉 M码 深蓝色 包邮！",
    "レディース 夏 ワンピース 綿100% Mサイズ ネイビー【送料無料】",
    "여성 여름 원피스 면 100% M 사이즈 네이비 무료배송",
    "Женское летнее платье из хлопка, размер M, тёмно-синий цвет",
    "فستان صيفي نسائي من القطن، مقاس M، لون كحلي",
    "שמלת קיץ לנשים מכותנה, מידה M, צבע כחול כהה",
    "महिलाओं की गर्मियों की सूती ड्रेस, साइज M, नेवी ब्लू",
    "ชุดเดรสฤดูร้อนผู้หญิง ผ้าฝ้าย ไซส์ M สีกรมท่า",
    "Váy mùa hè nữ bằng cotton, cỡ M, màu xanh navy",
    "Yazlık kadın elbisesi, %100 pamuk, M beden, lacivert",
    "iPhone 15 Pro Max 256GB – Titan Natur (MwSt. inkl.)",
    "Nike Air Max 90 «Infrared» — EU 42 / US 8.5",
]

EDGE_CASES = [
    "", " ", "  ", "     ", "\t", "\n", "\r\n", " \t \n ", "a  b", "a   b    c", "  leading", "trailing  ",
    "x\u3000\u3000y", "nbsp\u00a0\u00a0twice", "en\u2002em\u2003thin\u2009hair\u200aspace", "line\u2028para\u2029sep",
    "carriage\r\nreturn", "cr\ronly", "tab\tand\ttabs\t\t", "vertical\x0btab form\x0cfeed", "nul\x00byte",
    "bell\x07 esc\x1b del\x7f c1\x80\x9f", "zero\u200bwidth\u200c\u200djoiners", "soft\u00adhyphen", "bom\ufeffmark",
    "rtl\u200f\u200e marks \u202a\u202b\u202c\u202d\u202e", "word\u2060joiner", "replacement\ufffdchar",
    "private\ue000\uf8ff use", "\U000f0000 plane 15 private",
    # NFKC-affected
    "ＦＵＬＬＷＩＤＴＨ ｆｕｌｌ １２３ ！？", "ﾊﾝｶｸ ｶﾀｶﾅ ｶﾞｷﾞ ﾊﾟ", "ﬁne ﬂour ﬀ ﬃ ﬄ ﬅ ﬆ", "Ǆemal ǅ ǆ Ĳ ĳ ŉ",
    "①②③ ⑴⑵ ⒈⒉ ⅫⅣ ⅷ ½ ¾ ⅓ ²³ ₁₂", "℃ ℉ № ™ © ® ℡ ㎏ ㎝ ㍻ ㈱ ㊤", "x²+y²=z² H₂O", "ℌ𝔢𝔩𝔩𝔬 𝐁𝐨𝐥𝐝 𝕯𝖔𝖚𝖇𝖑𝖊 𝟘𝟙𝟚",
    "ｶﾞ Ａ\u0301 e\u0301 e\u1dc4", "Å Å Å", "Ω Ω", "K K", "ﷺ ﷻ ﷽", "ﻻ ﻷ ﺎ", "ᄀ\u1161\u11a8 가",
    # combining marks
    "cafe\u0301 vs caf\u00e9", "a\u0301\u0323 a\u0323\u0301", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇", "o\u0308\u0304\u0301\u0300",
    "\u0301 leading mark", "e" + "\u0301" * 12,
    # emoji
    "emoji 😀😃 👍🏽 family 👨‍👩‍👧‍👦 flag 🇮🇹🇯🇵 🏳️‍🌈", "❤️ ✨ ☕ ☺︎ ☺️", "#️⃣ 1️⃣ *️⃣", "🧑🏿‍💻 👩‍❤️‍💋‍👨",
    "\U0001F600" * 5, "🇦🇧🇨",
    # scripts
    "中文字符测试", "日本語のテキスト、カタカナとひらがな", "한국어 텍스트", "mixed中文english日本語", "\U00020000\U0002A700 rare CJK",
    "العربية نص مع أرقام ١٢٣", "עברית טקסט עם ניקוד: שָׁלוֹם", "abc עברית def", "हिन्दी पाठ क्षत्रिय", "ภาษาไทย ข้อความ",
    "ཀུན tibetan", "ᚠᚢᚦ runic", "Ꭰ cherokee", "𓀀𓀁 hieroglyphs", "ꦗꦮ javanese",
    # long words
    "a" * 300, "supercalifragilisticexpialidocious" * 8, "pneumonoultramicroscopicsilicovolcanoconiosis",
    "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft",
    "長" * 200, "word " * 80,
    # unassigned code points and noncharacters
    "\u0378\u0379 greek gap", "\u2fe0 \U000e0080", "\ufdd0\ufdef \ufffe\uffff", "\U0001fffe \U0010ffff", "\u0870 \U00011700",
    # specials written in the text
    "<s> inside </s> text <mask> <pad> <unk>", "a<mask>b", "<s>", "</s></s>", "<unk>",
    "Hello, World!", "HELLO world", "don't can't won't it's", "3.14159 1,000,000 -42", "https://www.example.com/a?b=1",
    "user@example.com", "C:\\path\\to\\file.txt", "&amp; &lt;b&gt;", "``quoted'' text", "$100 €50 £30 ¥20 ₹10",
]

# Ranges the random strings draw from: (low, high) inclusive, weighted alike.
RANGES = [
    (0x20, 0x7E), (0x20, 0x20), (0x09, 0x0D), (0x00, 0x1F), (0x7F, 0x9F), (0xA0, 0xFF), (0x100, 0x24F),
    (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F),
    (0xE00, 0xE7F), (0x1100, 0x11FF), (0x1DC0, 0x1DFF), (0x2000, 0x206F), (0x2070, 0x209F), (0x2100, 0x218F),
    (0x2460, 0x24FF), (0x2E80, 0x2FDF), (0x3000, 0x30FF), (0x3130, 0x318F), (0x3200, 0x33FF), (0x4E00, 0x4FFF),
    (0xAC00, 0xAD00), (0xE000, 0xE010), (0xF900, 0xFAFF), (0xFB00, 0xFB4F), (0xFDD0, 0xFDFF), (0xFE00, 0xFE0F),
    (0xFE30, 0xFE4F), (0xFF00, 0xFFEF), (0xFFF0, 0xFFFF), (0x1D400, 0x1D7FF), (0x1F1E6, 0x1F1FF),
    (0x1F300, 0x1F6FF), (0x1F3FB, 0x1F3FF), (0x200D, 0x200D), (0x20000, 0x20100), (0xE0000, 0xE007F),
]


def random_texts(n, seed=20240601):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(1, 24)
        chars = []
        for _ in range(k):
            lo, hi = RANGES[rng.randrange(len(RANGES))]
            cp = rng.randint(lo, hi)
            chars.append(chr(cp))
        out.append("".join(chars))
    return out


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


def unescape(line):
    out, i = [], 0
    while i < len(line):
        if line[i] == "\\" and line[i + 1] == "\\":
            out.append("\\")
            i += 2
        elif line[i] == "\\" and line[i + 1] == "x":
            out.append(chr(int(line[i + 2:i + 4], 16)))
            i += 4
        else:
            out.append(line[i])
            i += 1
    return "".join(out)


def gz_text(path):
    """A gzip text file with no timestamp, so reruns give the same bytes."""
    return io.TextIOWrapper(gzip.GzipFile(path, "wb", compresslevel=9, mtime=0), encoding="utf-8", newline="\n")


def write_ids(path, rows):
    with gz_text(path) as f:
        for ids in rows:
            f.write(" ".join(map(str, ids)) + "\n")


def train_tiny(texts, xlmr_json):
    """A small Unigram model trained on the corpus, dressed as XLM-R's file is."""
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = tokenizers.normalizers.Sequence([
        tokenizers.normalizers.Precompiled(base64.b64decode(xlmr_json["normalizer"]["normalizers"][0]["precompiled_charsmap"])),
        tokenizers.normalizers.Replace(tokenizers.Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    trainer = trainers.UnigramTrainer(vocab_size=3000, special_tokens=specials, unk_token="<unk>",
                                      shrinking_factor=0.75, max_piece_length=12, n_sub_iterations=2)
    # A text with NUL would teach a "\x00" piece, which JSON readers that stop at NUL (cJSON) cannot hold.
    tok.train_from_iterator([t for t in texts if "\x00" not in t], trainer=trainer)
    trained = json.loads(tok.to_str())
    vocab = trained["model"]["vocab"]
    assert all(p and "\x00" not in p for p, _ in vocab)
    have = {p for p, _ in vocab}
    low = min(s for _, s in vocab)
    # byte pieces for byte_fallback, scored below every trained piece, then <mask> last as XLM-R has it
    vocab += [[f"<0x{b:02X}>", low - 1.0] for b in range(256) if f"<0x{b:02X}>" not in have]
    vocab.append(["<mask>", 0.0])
    data = json.loads(tok.to_str())
    data["model"] = {"type": "Unigram", "unk_id": 3, "vocab": vocab, "byte_fallback": True}
    # <mask> takes the whitespace before it, as xlm-roberta-base's file says; <pad> the one after,
    # so that both sides are tested
    data["added_tokens"] = [
        {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": c == "<pad>", "normalized": False,
         "special": True} for i, c in enumerate(specials)
    ] + [{"id": len(vocab) - 1, "content": "<mask>", "single_word": False, "lstrip": True, "rstrip": False,
          "normalized": False, "special": True}]
    data["post_processor"] = {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0],
                              "trim_offsets": True, "add_prefix_space": True}
    # Llama's decoder shape: <0xNN> pieces back to bytes, the prefix space dropped
    data["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
        {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False))


def main():
    os.makedirs(FIX, exist_ok=True)
    os.makedirs(TINY, exist_ok=True)
    with gzip.open(f"{FIX}/corpus.txt.gz", "rt", encoding="utf-8", newline="\n") as f:
        base = [unescape(line.rstrip("\n")) for line in f]
    extra = MULTILINGUAL + EDGE_CASES + random_texts(3000)
    for t in extra:
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in t)
    with gz_text(f"{FIX}/unigram_corpus.txt.gz") as f:
        for t in extra:
            f.write(escape(t) + "\n")
    texts = base + extra

    xlmr_json = json.load(open(XLMR, encoding="utf-8"))
    xlmr = Tokenizer.from_file(XLMR)
    write_ids(f"{FIX}/xlmr_ids.txt.gz", [e.ids for e in xlmr.encode_batch(texts, add_special_tokens=False)])

    tiny = train_tiny(base + MULTILINGUAL, xlmr_json)
    with open(f"{TINY}/tokenizer.json", "w", encoding="utf-8") as f:
        f.write(tiny.to_str(pretty=False))
        f.write("\n")
    tiny = Tokenizer.from_file(f"{TINY}/tokenizer.json")
    write_ids(f"{FIX}/unigram_tiny_ids.txt.gz", [e.ids for e in tiny.encode_batch(texts, add_special_tokens=False)])
    unk_json = json.loads(tiny.to_str())
    unk_json["model"]["byte_fallback"] = False
    tiny_unk = Tokenizer.from_str(json.dumps(unk_json))
    write_ids(f"{FIX}/unigram_tiny_unk_ids.txt.gz",
              [e.ids for e in tiny_unk.encode_batch(extra, add_special_tokens=False)])

    # Full encodings: name | text | pair | max_length | ids | types | mask | decoded (specials skipped)
    long_text = " ".join(MULTILINGUAL[:12])
    rows = []
    for name, tok in (("xlmr", xlmr), ("tiny", tiny)):
        for text, pair, max_len in [
            ("Hello, World!", None, 0),
            ("Robe d'été en coton bio", "女士夏季连衣裙 纯棉", 0),
            (long_text, None, 32),
            (long_text, "a short second segment", 24),
            ("short", "pair", 12),
            ("short", None, 12),
            (long_text, long_text[::-1], 9),
            ("", None, 4),
            ("<s>hello</s> world", None, 0),
            ("  spaced   out  ", None, 0),
            ("Paris is the <mask> of France.", None, 0),
            ("a  <mask>  b <pad>  c\u3000<mask>\t<pad>\u2003d", None, 0),
            ("Ｔｏｋｙｏ ﬁne ½ ＡＢＣ", None, 0),
            ("\U0002A6D6\U0002A6D7 ꙮ \u0870", None, 0),
        ]:
            if max_len:
                tok.enable_truncation(max_len)
                tok.enable_padding(length=max_len, pad_id=1, pad_token="<pad>")
            else:
                tok.no_truncation()
                tok.no_padding()
            enc = tok.encode(text, pair) if pair is not None else tok.encode(text)
            decoded = tok.decode(enc.ids, skip_special_tokens=True)
            rows.append("\t".join([name, escape(text), escape(pair) if pair is not None else "-", str(max_len),
                                   " ".join(map(str, enc.ids)), " ".join(map(str, enc.type_ids)),
                                   " ".join(map(str, enc.attention_mask)), escape(decoded)]))
        tok.no_truncation()
        tok.no_padding()
    with open(f"{FIX}/unigram_encode.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    print(f"{len(texts)} texts ({len(extra)} new), tokenizers {tokenizers.__version__}, tiny vocabulary "
          f"{tiny.get_vocab_size()}")


if __name__ == "__main__":
    main()
