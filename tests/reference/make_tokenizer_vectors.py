#!/usr/bin/env python3
"""Reference data for the tokenizer tests (tests/model/test_tokenizer_*.cpp).

Run from the repository root:  .venv/bin/python tests/reference/make_tokenizer_vectors.py
Needs: tokenizers, gguf (scripts/requirements.txt). Deterministic (fixed seeds).

Writes under tests/reference/data/tokenizers/:
  corpus.jsonl                 the test strings, one JSON string per line (>= 2,000: many
                               scripts, emoji, combining marks, whitespace runs, digits, code,
                               special-token text, invalid-looking byte text, random mixes)
  <name>/tokenizer.json        one tokenizer per style (see STYLES below): trained here with
                               `tokenizers` (BpeTrainer on a small corpus) except `claude`, the
                               real file shipped in the litellm wheel (pass --litellm-wheel to
                               refresh it; it is committed)
  <name>.gguf                  GGUF files with only tokenizer.ggml.* metadata, written with the
                               `gguf` package from a trained tokenizer (llama/SPM-style and gpt2
                               byte-level with pre "llama-bpe" / "qwen2" / "gpt2" / "deepseek-v3",
                               tested against the vectors of the tokenizer.json they came from)
  <name>.jsonl                 a header {"prefix": ids, "suffix": ids} (what the post-processor
                               adds), then for every corpus string: {"ids": encode(s) with special
                               tokens} plus, only where they differ, "plain" (encode without
                               special tokens, when not ids less prefix and suffix), "dec" (decode(ids, skip_special_tokens=False)) and "skip"
                               (decode(ids, skip_special_tokens=True)); "dec" absent means the
                               decoded text equals the input string (lossless round trip).

The SmolLM2 reference is its GGUF (the bundled model): the Hugging Face tokenizer is rebuilt
from the GGUF metadata with the `gguf` reader: vocabulary = tokenizer.ggml.tokens, merges =
tokenizer.ggml.merges, the pre-tokenizer Hugging Face ships for SmolLM2 (Sequence[Digits(
individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)], which is what
tokenizer.ggml.pre = "smollm" names), ByteLevel decoder, and the control tokens
(token_type 3) as special added tokens. Vectors: smollm2_gguf.jsonl.

GGUF "llama" (SentencePiece-style) reference: the Hugging Face tokenizer transformers' Llama
converter builds from a SentencePiece vocabulary: BPE with merges from the scores (every split
of a token into two vocabulary tokens, stably sorted by the token's score, highest first),
byte_fallback, fuse_unk, normalizer Prepend("▁") + Replace(" ", "▁"), decoder Replace("▁", " ")
+ ByteFallback + Fuse + Strip(" ", 1, 0), BOS added (add_bos_token).
"""
import argparse
import json
import os
import random
import sys
import unicodedata
import zipfile

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers import AddedToken

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "reference", "data", "tokenizers")
SMOLLM2_GGUF = os.path.expanduser(os.environ.get("VLLM_CPP_MODEL", "~/.cache/vllm-cpp/SmolLM2-135M-Instruct.Q4_1.gguf"))

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
DEEPSEEK_SPLITS = [r"\p{N}{1,3}", "[一-龥\u3040-ゟ゠-ヿ]+",
                   "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"]
SPIECE = "\u2581"

# ----------------------------------------------------------------------------------------------
# The corpus
# ----------------------------------------------------------------------------------------------
SCRIPTS = {
    "latin": "Le cœur a ses raisons que la raison ne connaît point. Ça coûte très cher, n'est-ce pas? Straße, Übermäßig, naïve façade, smörgåsbord, Łódź, Dvořák, İstanbul, Ærøskøbing",
    "greek": "Η γλώσσα μου έδωσαν ελληνική· το σπίτι φτωχικό στις αμμουδιές του Ομήρου. ΑΒΓΔ άέήίόύώ ϊϋΐΰ",
    "cyrillic": "Съешь же ещё этих мягких французских булок, да выпей чаю. Ёлка, йогурт, Україна, Беларусь, Србија",
    "arabic": "العربية لغة جميلة، وهي لغة القرآن. مرحبا بالعالم! ٠١٢٣٤٥٦٧٨٩ فارسی: سلام دنیا",
    "hebrew": "שלום עולם, זוהי בדיקה של עברית עם ניקוד: בְּרֵאשִׁית בָּרָא",
    "devanagari": "हिन्दी भाषा बहुत सुंदर है। नमस्ते दुनिया! क्षत्रिय ज्ञान श्री ०१२३४५",
    "bengali": "আমি বাংলায় গান গাই। বাংলা ভাষা ১২৩",
    "tamil": "யாமறிந்த மொழிகளிலே தமிழ்மொழி போல் இனிதாவது எங்கும் காணோம்",
    "thai": "ภาษาไทยเป็นภาษาที่สวยงาม สวัสดีครับ ๑๒๓",
    "cjk": "我能吞下玻璃而不伤身体。中文测试：你好，世界！繁體中文與简体中文。龘靐齉",
    "japanese": "私はガラスを食べられます。それは私を傷つけません。カタカナ、ひらがな、漢字。ｶﾀｶﾅ",
    "korean": "나는 유리를 먹을 수 있어요. 그래도 아프지 않아요. 한국어 테스트",
    "georgian": "მინას ვჭამ და არა მტკივა.",
    "armenian": "Կրնամ ապակի ուտել և ինծի անհանգիստ չըներ։",
    "ethiopic": "ብርሃን ዘለቀ፡ ሰላም ለዓለም",
    "other": "ᚠᛇᚻ᛫ᛒᛦᚦ ᐊᓕᒍᖅ ꦗꦮ 𐌰𐌱𐌲 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐁𝐨𝐥𝐝 ℌℑℜ ﬁﬂ ① ⅷ Ⅻ ㎏ ㍻",
}
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🇯🇵", "❤️", "✨", "🤖", "🧑🏿‍💻", "😂😂😂", "🫠", "👩‍❤️‍💋‍👨", "#️⃣", "☺︎", "🐍", "🚀"]
COMBINING = ["e\u0301", "a\u0300\u0323", "o\u0308\u0304", "n\u0303", "A\u030a", "\u1100\u1161\u11a8",
             "z\u0335\u0311\u0345\u0323", "i\u0307\u0301", "\u0915\u094d\u0937", "c\u0327\u0301",
             "\u0301leading mark", "x\u20dd", "q\u0323\u0307", "\u05d1\u05bc\u05b8", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034d"]
WHITESPACE = [" ", "  ", "\t", "\n", "\r\n", "\n\n", "   \n", "\u00a0", "\u3000", "\u2003", "\u0085", "\u2028", "\x0b", "\x0c", " \t \n"]
CODE = [
    "def fibonacci(n: int) -> int:\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "#include <vector>\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\tfor (auto& x : v) x *= 2;\n\treturn v.size() == 3 ? 0 : 1;\n}\n",
    '{"name": "vllm-cpp", "version": "0.1.0", "tags": ["llm", "c++"], "nested": {"a": [1, 2.5e-3, null, true]}}',
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC LIMIT 10;",
    "const f = async (x) => { await fetch(`/api/${x}?q=1&r=2`); return x ?? 'none'; };",
    "<div class=\"main\"><p>Hello &amp; welcome &lt;user&gt;!</p></div>",
    "fn main() { let s: &str = \"héllo\"; println!(\"{s:?} {}\", s.len()); }",
    "$ ls -la /usr/bin | grep -E '^-rwx' | wc -l && echo \"done\" || exit 1",
    "x = [i**2 for i in range(10) if i % 3 == 0]  # comprehension\n\n\n    \n",
    "    indented\n        more indented\n\t\ttabs\n",
]
SPECIAL_TEXT = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>", "</s>", "<unk>", "<pad>", "<mask>",
                "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<EOT>", "<META>",
                "<|im_start", "im_start|>", "<|", "|>", "<<s>>", "< s >", "<|endoftext|><|endoftext|>",
                "[INST]", "[/INST]", "<repo_name>", "<filename>", "<jupyter_code>", "<0x0A>", "<0xFF>", "<0x41>",
                "<extra>", "[MASK]", "<special_word>"]
INVALIDISH = ["\\xff\\xfe", "\\x00\\x01", "Ã©tÃ©", "â€™", "Ð¿Ñ€Ð¸Ð²ÐµÑ‚", "\ufffd", "\ufffd\ufffd abc", "\ufeffBOM", "\x00", "\x01\x02\x1f",
              "\x7f", "\u200b\u200c\u200d", "\u2060", "\ue000\uf8ff", "\U000f0000", "\uffff", "\U0010ffff", "\ufffe", "\u202e reversed \u202c",
              "%E2%82%AC", "&#x1F600;", "\\u00e9", "0xDEADBEEF", "\u00ad soft hyphen", "\u0600\u06dd"]
ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you'll love it; they've said we'd go, and it's the best thing I've ever seen.",
    "DON'T SHOUT! I'LL BE THERE, WE'RE COMING, THEY'VE LEFT, SHE'D KNOW.",
    "Hello, world! How are you doing today? Fine, thanks.",
    "In 1969, Apollo 11 landed on the Moon; 3.14159 is pi and 2,718,281 is not e.",
    "e-mail: someone@example.com, URL: https://example.org/path?query=1#frag",
    "Mr. Smith paid $1,234.56 (incl. 20% VAT) on 2024-03-15 at 09:30:00Z.",
    "  leading spaces and trailing spaces  ",
    "A sentence with   multiple    spaces and\ttabs\tand\nnewlines\n.",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
]
DIGITS = ["0", "7", "42", "123", "1234", "12345678901234567890", "3.14159", "1,000,000", "-273.15", "1e-10",
          "٣٤٥", "۱۲۳", "१२३", "１２３", "²³¹", "½¾", "Ⅻ", "007", "0x1F", "10^9+7", "2024年3月15日"]


def build_corpus():
    rng = random.Random(20240501)
    corpus = ["", " ", "a", "\n", "  ", "hello", " hello", "hello ", "Hello World"]
    corpus += ENGLISH + CODE + DIGITS + SPECIAL_TEXT + INVALIDISH + EMOJI + COMBINING + WHITESPACE
    corpus += list(SCRIPTS.values())
    # Every script sentence cut into words and short fragments.
    for text in SCRIPTS.values():
        words = text.split(" ")
        corpus += words[:12]
        for _ in range(12):
            a = rng.randrange(len(text))
            corpus.append(text[a:a + rng.randint(1, 30)])
    # Long whitespace runs, alone and between words.
    for n in [3, 7, 16, 33, 100]:
        for ws in [" ", "\t", "\n", "\r\n", " \n", "\u3000", "\u00a0"]:
            corpus.append(ws * n)
            corpus.append("word" + ws * n + "word")
    for _ in range(40):
        corpus.append("".join(rng.choice(WHITESPACE) for _ in range(rng.randint(2, 40))) + rng.choice(ENGLISH))
    # Special-token text embedded in text, with and without spaces around.
    for _ in range(120):
        parts = []
        for _ in range(rng.randint(2, 6)):
            kind = rng.random()
            if kind < 0.4:
                parts.append(rng.choice(SPECIAL_TEXT))
            elif kind < 0.7:
                parts.append(rng.choice(ENGLISH)[: rng.randint(1, 30)])
            elif kind < 0.85:
                parts.append(rng.choice(WHITESPACE))
            else:
                parts.append(rng.choice(list(SCRIPTS.values()))[: rng.randint(1, 10)])
        corpus.append("".join(parts))
    # Chat-formatted strings as a server would produce them.
    for _ in range(40):
        corpus.append(f"<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n{rng.choice(ENGLISH)}<|im_end|>\n<|im_start|>assistant\n")
    # Emoji sequences and emoji inside text.
    for _ in range(50):
        corpus.append("".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 5))) + rng.choice(["", " ", " ok", "!"]) )
        corpus.append(rng.choice(ENGLISH)[:20] + rng.choice(EMOJI) + rng.choice(ENGLISH)[-15:])
    # Combining marks in words, NFC and NFD forms of the same text.
    for text in list(SCRIPTS.values()) + ENGLISH[:3]:
        corpus.append(unicodedata.normalize("NFD", text))
        corpus.append(unicodedata.normalize("NFKD", text))
    for _ in range(60):
        base = rng.choice("aeiouAEIOUnczs")
        marks = "".join(chr(rng.randint(0x300, 0x36F)) for _ in range(rng.randint(1, 6)))
        corpus.append(rng.choice(["", "x", "The "]) + base + marks + rng.choice(["", "b", " end"]))
    # Digits in context.
    for _ in range(80):
        number = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 25)))
        corpus.append(rng.choice(["", "x", "abc", " ", "$", "v"]) + number + rng.choice(["", ".", " apples", "%", "px", "\n"]))
    # Code fragments and their lines.
    for code in CODE:
        corpus += [line for line in code.split("\n") if line][:6]
    for _ in range(60):
        code = rng.choice(CODE)
        a = rng.randrange(len(code))
        corpus.append(code[a:a + rng.randint(5, 80)])
    # Random code points from many blocks (the hardest cases for regexes and byte fallback).
    blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF),
              (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x1E00, 0x1EFF), (0x2000, 0x206F),
              (0x2070, 0x209F), (0x20A0, 0x20CF), (0x2100, 0x214F), (0x2190, 0x21FF), (0x2200, 0x22FF), (0x2460, 0x24FF),
              (0x3000, 0x303F), (0x3040, 0x30FF), (0x4E00, 0x4FFF), (0xAC00, 0xAD00), (0xFB00, 0xFB4F), (0xFE00, 0xFE0F),
              (0xFF00, 0xFFEF), (0x1F300, 0x1F64F), (0x1F900, 0x1F9FF), (0x1D400, 0x1D4FF), (0x10000, 0x1007F), (0xE0000, 0xE007F)]

    def random_char():
        lo, hi = rng.choice(blocks)
        while True:
            cp = rng.randint(lo, hi)
            if not 0xD800 <= cp <= 0xDFFF:
                return chr(cp)

    for _ in range(400):
        n = rng.randint(1, 40)
        s = "".join(random_char() if rng.random() < 0.7 else rng.choice(" aeiou\n\t0123456789.,'") for _ in range(n))
        corpus.append(s)
    # Random mixtures of everything.
    pools = [ENGLISH, CODE, DIGITS, SPECIAL_TEXT, INVALIDISH, EMOJI, COMBINING, WHITESPACE, list(SCRIPTS.values())]
    for _ in range(450):
        parts = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 5))]
        s = rng.choice(["", " ", ""]).join(parts)
        if len(s) > 300:
            a = rng.randrange(len(s) - 200)
            s = s[a:a + 200]
        corpus.append(s)
    # Contractions in every case.
    for c in ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]:
        corpus += ["it" + c, "IT" + c.upper(), "it" + c.upper(), " x" + c + " y", c]
    # single_word / lstrip / rstrip added tokens next to every kind of character.
    for ctx in ["é", "中", ".", "_", "1", "٣", " ", "\u00a0", "-", "😀", "\u0301", "ab", "\u200d", "ǅ", "Ⅻ"]:
        corpus += [ctx + "<special_word>", "<special_word>" + ctx, ctx + " <mask> " + ctx, ctx + "[MASK]  " + ctx]
    return corpus


def training_text(corpus):
    """A small multilingual training corpus: Python stdlib source, the script samples, English."""
    import textwrap, json as _json, random as _random  # noqa: F401 (their sources are text)
    texts = []
    for module in [textwrap, _json, _random]:
        with open(module.__file__, encoding="utf-8") as f:
            texts.append(f.read())
    texts += list(SCRIPTS.values()) * 20 + ENGLISH * 30 + CODE * 10 + EMOJI * 5 + DIGITS * 10
    texts += corpus[:2000:7]  # a fixed head of the corpus, so appending test strings keeps the trained files
    return texts


# ----------------------------------------------------------------------------------------------
# Tokenizers
# ----------------------------------------------------------------------------------------------
def train_bpe(normalizer, pre_tokenizer, texts, vocab_size, special_tokens, byte_level, byte_fallback=False,
              unk_token=None):
    tok = Tokenizer(models.BPE(unk_token=unk_token, byte_fallback=byte_fallback, fuse_unk=byte_fallback))
    if normalizer is not None:
        tok.normalizer = normalizer
    if pre_tokenizer is not None:
        tok.pre_tokenizer = pre_tokenizer
    alphabet = pre_tokenizers.ByteLevel.alphabet() if byte_level else []
    # No limit_alphabet: pruning the alphabet breaks ties in hash order, which makes training
    # non-deterministic; every character of the training text is kept instead.
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens, initial_alphabet=alphabet,
                                  show_progress=False, max_token_length=16)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def add_byte_tokens(tok):
    """SentencePiece-style vocab: specials, then <0x00>..<0xFF>, then the trained tokens (re-numbered)."""
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    specials = [t["content"] for t in data["added_tokens"]]
    ordered = specials + [f"<0x{b:02X}>" for b in range(256)]
    ordered += [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if t not in specials]
    data["model"]["vocab"] = {t: i for i, t in enumerate(ordered)}
    for t in data["added_tokens"]:
        t["id"] = data["model"]["vocab"][t["content"]]
    return Tokenizer.from_str(json.dumps(data))


def special(content, **kw):
    return AddedToken(content, special=True, normalized=False, **kw)


def make_styles(texts):
    styles = {}

    # GPT-2: ByteLevel pre-tokenizer with its built-in regex, ByteLevel decoder/post-processor.
    t = train_bpe(None, pre_tokenizers.ByteLevel(add_prefix_space=False), texts, 3000, ["<|endoftext|>"], True)
    t.decoder = decoders.ByteLevel()
    t.post_processor = processors.ByteLevel(trim_offsets=False)
    styles["gpt2"] = t

    # The same with the legacy merges format ("a b" strings) written into the file.
    data = json.loads(t.to_str())
    data["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]]
    styles["gpt2_legacy_merges"] = json.dumps(data, ensure_ascii=False)  # saved verbatim (save() would rewrite the merges)

    # Llama-3: Split(regex) + ByteLevel(use_regex=False), ignore_merges, BOS template.
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    t = train_bpe(None, pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), texts, 3000, specials, True)
    t.decoder = decoders.ByteLevel()
    t.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)])
    data = json.loads(t.to_str())
    data["model"]["ignore_merges"] = True
    styles["llama3"] = Tokenizer.from_str(json.dumps(data))

    # Qwen2: NFC + Split(regex) + ByteLevel, ChatML specials.
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    t = train_bpe(normalizers.NFC(), pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), texts, 3000, specials, True)
    t.decoder = decoders.ByteLevel()
    styles["qwen2"] = t

    # Llama-2 (legacy SentencePiece conversion): Prepend + Replace normalizer, no pre-tokenizer,
    # byte fallback, decoders Replace/ByteFallback/Fuse/Strip, BOS template.
    llama_norm = normalizers.Sequence([normalizers.Prepend(SPIECE), normalizers.Replace(" ", SPIECE)])
    t = train_bpe(llama_norm, pre_tokenizers.Metaspace(prepend_scheme="never", split=True), texts, 2500,
                  ["<unk>", "<s>", "</s>"], False, byte_fallback=True, unk_token="<unk>")
    t = add_byte_tokens(t)
    t.pre_tokenizer = None
    t.decoder = decoders.Sequence([decoders.Replace(SPIECE, " "), decoders.ByteFallback(), decoders.Fuse(),
                                   decoders.Strip(" ", 1, 0)])
    t.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", t.token_to_id("<s>"))])
    styles["llama2"] = t

    # Mistral / newer Llama (legacy=False): Metaspace(prepend_scheme="first", split=False) pre-tokenizer.
    data = json.loads(t.to_str())
    data["normalizer"] = None
    data["pre_tokenizer"] = {"type": "Metaspace", "replacement": SPIECE, "prepend_scheme": "first", "split": False}
    data["added_tokens"].append({"id": len(data["model"]["vocab"]), "content": "[INST]", "single_word": False,
                                 "lstrip": False, "rstrip": False, "normalized": False, "special": True})
    data["added_tokens"].append({"id": len(data["model"]["vocab"]) + 1, "content": "[/INST]", "single_word": False,
                                 "lstrip": False, "rstrip": False, "normalized": False, "special": True})
    styles["mistral"] = Tokenizer.from_str(json.dumps(data))

    # Metaspace pre-tokenizer with split and the Metaspace decoder (prepend always).
    t = train_bpe(None, pre_tokenizers.Metaspace(prepend_scheme="always", split=True), texts, 2500,
                  ["<pad>", "</s>", "<unk>"], False, unk_token="<unk>")
    t.decoder = decoders.Metaspace(prepend_scheme="always")
    t.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    styles["metaspace_split"] = t

    # DeepSeek style: a Sequence of Splits (numbers, CJK, words) + ByteLevel; Digits variant.
    t = train_bpe(normalizers.Sequence([]), pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(p), behavior="isolated", invert=False) for p in DEEPSEEK_SPLITS]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), texts, 3000,
        ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"], True)
    t.decoder = decoders.ByteLevel()
    t.post_processor = processors.TemplateProcessing(single="<｜begin▁of▁sentence｜> $A", special_tokens=[("<｜begin▁of▁sentence｜>", 0)])
    styles["deepseek"] = t

    # Digits (contiguous) + Whitespace-free ByteLevel with add_prefix_space; RoBERTa-style
    # post-processor; added tokens with lstrip / rstrip / single_word / normalized flags.
    t = train_bpe(None, pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=False),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=True)]), texts, 3000,
                  ["<s>", "<pad>", "</s>", "<unk>"], True)
    t.decoder = decoders.ByteLevel()
    t.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    t.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True, normalized=False)])
    t.add_tokens([AddedToken("<special_word>", single_word=True, normalized=False),
                  AddedToken("[MASK]", rstrip=True, normalized=False),
                  AddedToken("hello", normalized=True)])
    styles["roberta_digits"] = t

    # Split with literal String patterns and every delimiter behavior, NFKC + Replace(regex).
    t = train_bpe(normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(r"\s{3,}"), "  ")]),
                  pre_tokenizers.Sequence([
                      pre_tokenizers.Split(",", behavior="merged_with_previous"),
                      pre_tokenizers.Split(".", behavior="merged_with_next"),
                      pre_tokenizers.Split("-", behavior="contiguous"),
                      pre_tokenizers.Split(";", behavior="removed"),
                      pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated", invert=True),
                      pre_tokenizers.Digits(individual_digits=True),
                      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]),
                  texts, 2000, ["<|endoftext|>"], True)
    t.decoder = decoders.ByteLevel()
    styles["split_behaviors"] = t
    # Falcon style: Punctuation (contiguous) + ByteLevel + individual Digits.
    t = train_bpe(None, pre_tokenizers.Sequence([pre_tokenizers.Punctuation(behavior="contiguous"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
                                                 pre_tokenizers.Digits(individual_digits=True)]),
                  texts, 2000, [">>TITLE<<", "<|endoftext|>"], True)
    t.decoder = decoders.ByteLevel()
    styles["falcon"] = t

    # Word-level pre-tokenizers (Whitespace = \w+|[^\w\s]+) with end_of_word_suffix and the
    # BPEDecoder; unk for characters never seen in training.
    tok = Tokenizer(models.BPE(unk_token="[UNK]", end_of_word_suffix="</w>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Whitespace(),
                                                 pre_tokenizers.Punctuation()])
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=["[UNK]", "[SEP]"], end_of_word_suffix="</w>",
                                  show_progress=False, max_token_length=16)
    tok.train_from_iterator(texts, trainer=trainer)
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    styles["whitespace_suffix"] = tok
    return styles


def claude_tokenizer(wheel):
    if wheel:
        with zipfile.ZipFile(wheel) as z:
            data = z.read("litellm/litellm_core_utils/tokenizers/anthropic_tokenizer.json")
        os.makedirs(os.path.join(OUT, "claude"), exist_ok=True)
        with open(os.path.join(OUT, "claude", "tokenizer.json"), "wb") as f:
            f.write(data)
    return Tokenizer.from_file(os.path.join(OUT, "claude", "tokenizer.json"))


# ----------------------------------------------------------------------------------------------
# GGUF
# ----------------------------------------------------------------------------------------------
def smollm2_from_gguf(path):
    from gguf import GGUFReader
    reader = GGUFReader(path)
    f = reader.fields
    tokens = f["tokenizer.ggml.tokens"].contents()
    merges = f["tokenizer.ggml.merges"].contents()
    types = f["tokenizer.ggml.token_type"].contents()
    assert f["tokenizer.ggml.pre"].contents() == "smollm"
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges]))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([special(tokens[i]) for i in range(len(tokens)) if types[i] == 3])
    return tok


def spm_merges(tokens, scores):
    """transformers' SentencePieceExtractor.extract(vocab_scores) merge order."""
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for piece, score in zip(tokens, scores):
        local = []
        for index in range(1, len(piece)):
            left, right = piece[:index], piece[index:]
            if left in vocab and right in vocab:
                local.append((left, right, score))
        local.sort(key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges.extend(local)
    merges.sort(key=lambda x: x[2], reverse=True)
    return [(a, b) for a, b, _ in merges]


def write_llama_gguf(src, path):
    """A SentencePiece-style GGUF (tokenizer.ggml.model = llama) from the llama2-style tokenizer."""
    import gguf
    data = json.loads(src.to_str())
    vocab = data["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    specials = {"<unk>": 2, "<s>": 3, "</s>": 3}
    types, scores = [], []
    for i, t in enumerate(tokens):
        if t in specials:
            types.append(specials[t]); scores.append(0.0)
        elif t.startswith("<0x") and len(t) == 6:
            types.append(6); scores.append(0.0)
        else:
            types.append(1); scores.append(float(-i))
    # One user-defined token, matched verbatim like llama.cpp does.
    tokens.append("<extra>"); types.append(4); scores.append(0.0)
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(tokens.index("<s>"))
    w.add_eos_token_id(tokens.index("</s>"))
    w.add_unk_token_id(tokens.index("<unk>"))
    w.add_add_bos_token(True)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()

    # The Hugging Face tokenizer the Llama converter makes of it.
    hf = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=spm_merges(tokens, scores),
                              unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    hf.normalizer = normalizers.Sequence([normalizers.Prepend(SPIECE), normalizers.Replace(" ", SPIECE)])
    hf.decoder = decoders.Sequence([decoders.Replace(SPIECE, " "), decoders.ByteFallback(), decoders.Fuse(),
                                    decoders.Strip(" ", 1, 0)])
    hf.add_special_tokens([special(t) for t, ty in zip(tokens, types) if ty in (2, 3)])
    hf.add_tokens([AddedToken(t, special=False, normalized=False) for t, ty in zip(tokens, types) if ty == 4])
    hf.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tokens.index("<s>"))])
    return hf


def write_bpe_gguf(src, path, pre, add_bos):
    """A byte-level BPE GGUF (tokenizer.ggml.model = gpt2) from a trained tokenizer.json."""
    import gguf
    data = json.loads(src.to_str())
    vocab = data["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    added = {t["content"] for t in data["added_tokens"]}
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types([3 if t in added else 1 for t in tokens])
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]])
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_add_bos_token(add_bos)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


def write_bad_ggufs():
    """Small GGUFs whose tokenizer metadata is wrong, for the error tests."""
    import gguf
    cases = {
        "bad_model.gguf": dict(model="bert", tokens=["a", "b"], types=[1, 1]),
        "bad_pre.gguf": dict(model="gpt2", pre="no-such-pre", tokens=["a", "b", "ab"], types=[1, 1, 1], merges=["a b"]),
        "bad_merges.gguf": dict(model="gpt2", pre="gpt2", tokens=["a", "b"], types=[1, 1], merges=["a c"]),
        "bad_types.gguf": dict(model="gpt2", pre="gpt2", tokens=["a", "b"], types=[1], merges=[]),
        "no_tokens.gguf": dict(model="llama", tokens=None, types=None),
    }
    for name, c in cases.items():
        w = gguf.GGUFWriter(os.path.join(OUT, name), "llama")
        w.add_tokenizer_model(c["model"])
        if "pre" in c:
            w.add_tokenizer_pre(c["pre"])
        if c["tokens"] is not None:
            w.add_token_list(c["tokens"])
            w.add_token_types(c["types"])
        if "merges" in c:
            w.add_token_merges(c["merges"])
        w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


# ----------------------------------------------------------------------------------------------
def write_vectors(name, tok, corpus):
    # The post-processor's additions around a sequence, found from a non-empty one.
    with_specials, without = tok.encode("x", add_special_tokens=True).ids, tok.encode("x", add_special_tokens=False).ids
    at = next(i for i in range(len(with_specials)) if with_specials[i:i + len(without)] == without)
    prefix, suffix = with_specials[:at], with_specials[at + len(without):]
    with open(os.path.join(OUT, name + ".jsonl"), "w", encoding="utf-8") as f:
        f.write(json.dumps({"prefix": prefix, "suffix": suffix}) + "\n")
        for s in corpus:
            ids = tok.encode(s, add_special_tokens=True).ids
            rec = {"ids": ids}
            plain = tok.encode(s, add_special_tokens=False).ids
            if prefix + plain + suffix != ids:
                rec["plain"] = plain
            dec = tok.decode(ids, skip_special_tokens=False)
            if dec != s:
                rec["dec"] = dec
            skip = tok.decode(ids, skip_special_tokens=True)
            if skip != dec:
                rec["skip"] = skip
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--litellm-wheel", help="refresh claude/tokenizer.json from this litellm wheel")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    corpus = build_corpus()
    with open(os.path.join(OUT, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for s in corpus:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    print(f"corpus: {len(corpus)} strings")

    styles = make_styles(training_text(corpus))
    for name, tok in styles.items():
        if name == "gpt2_legacy_merges":  # same tokenizer as gpt2 (tested against gpt2.jsonl)
            os.makedirs(os.path.join(OUT, name), exist_ok=True)
            with open(os.path.join(OUT, name, "tokenizer.json"), "w", encoding="utf-8") as f:
                f.write(tok)
            assert Tokenizer.from_str(tok).encode("hello world").ids == styles["gpt2"].encode("hello world").ids
            continue
        os.makedirs(os.path.join(OUT, name), exist_ok=True)
        tok.save(os.path.join(OUT, name, "tokenizer.json"), pretty=False)
        # Reload from the saved file so the vectors come from exactly what is committed.
        write_vectors(name, Tokenizer.from_file(os.path.join(OUT, name, "tokenizer.json")), corpus)
        print("wrote", name)
    write_vectors("claude", claude_tokenizer(args.litellm_wheel), corpus)
    print("wrote claude")

    write_vectors("llama_spm_gguf", write_llama_gguf(styles["llama2"], os.path.join(OUT, "llama_spm.gguf")), corpus)
    # These two are tested against llama3.jsonl / qwen2.jsonl: same tokenizer, other container.
    write_bpe_gguf(styles["llama3"], os.path.join(OUT, "llama3_bpe.gguf"), "llama-bpe", True)
    write_bpe_gguf(styles["qwen2"], os.path.join(OUT, "qwen2_bpe.gguf"), "qwen2", False)
    write_bpe_gguf(styles["gpt2"], os.path.join(OUT, "gpt2_bpe.gguf"), "gpt2", False)
    write_bpe_gguf(styles["deepseek"], os.path.join(OUT, "deepseek_bpe.gguf"), "deepseek-v3", True)
    write_bad_ggufs()
    print("wrote GGUF fixtures")

    if os.path.exists(SMOLLM2_GGUF):
        write_vectors("smollm2_gguf", smollm2_from_gguf(SMOLLM2_GGUF), corpus)
        print("wrote smollm2_gguf")
    else:
        print(f"warning: {SMOLLM2_GGUF} not found; smollm2_gguf.jsonl not refreshed", file=sys.stderr)


if __name__ == "__main__":
    main()
