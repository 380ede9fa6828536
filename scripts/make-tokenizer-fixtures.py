#!/usr/bin/env python3
"""Tokenizer fixtures from Hugging Face's Rust tokenizers and SentencePiece, for
test/text.charsmap.test.ts, test/text.bpe.test.ts and test/pairrm.transformers.test.ts.

Needs the Python packages tokenizers, sentencepiece and protobuf (no PyTorch, no GPU, nothing
downloaded). It trains a tiny SentencePiece Unigram model with SentencePiece's default
normalization rule (nmt_nfkc, DeBERTa-v3's), so its precompiled charsmap is the real one, and
builds from it a tokenizer.json shaped like transformers 4's DeBERTa-v3 conversion (Strip,
Precompiled, Replace("  +" -> " "); Metaspace; [CLS] $A [SEP]) with PairRM's slot tokens added.
Into test/fixtures/charsmap/ it writes
  tokenizer.json.gz   that tokenizer, as Rust tokenizers saves it
  unigram2k.tokenizer.json.gz  the same shape with 2000 pieces trained on the project's own docs
                      (its charsmap, the same bytes, is left to tokenizer.json.gz)
  expected.json.gz    what Rust tokenizers computes from them: the charsmap's output for every
                      Unicode scalar value it changes, for random strings of graphemes that
                      stress the per-grapheme rule (combining marks, Hangul jamo, emoji
                      sequences, half-width kana with sound marks, controls, spaces), and the
                      token ids and normalized text of unusual texts; with the 2000 pieces, the
                      ids of lines of those docs, plain and with unusual characters spliced in
  python3 scripts/make-tokenizer-fixtures.py [--out test/fixtures/charsmap] [--seed 7]

Into test/fixtures/bpe/ (test/text.bpe.test.ts) it writes the two BPE shapes policy models use,
trained on the same docs with Rust tokenizers -- Llama 3's byte-level BPE (its regex split) and
Llama 2 / Mistral's SentencePiece BPE with byte fallback -- and Rust's ids for 642 texts.

With --pairrm-tokenizer FOLDER (a local copy of llm-blender/PairRM-hf's tokenizer files) it also
records that tokenizer's ids for the unusual texts and for the collator's truncated segments into
test/fixtures/transformers-pairrm/tokenizer/. The ids come from Rust tokenizers reading the
folder's tokenizer.json as written, which is what transformers 4 (llm-blender's) runs. transformers
5 does not: its DebertaV2Tokenizer replaces the file's normalizer with Replace/NFC/Strip, so it
ignores the charsmap; the record names both versions and, where transformers is installed, how
many texts transformers itself tokenizes differently.
"""
import argparse
import base64
import gzip
import json
import os
import random
import shutil
import subprocess
import tempfile

import sentencepiece as spm
import tokenizers
from sentencepiece import sentencepiece_model_pb2
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "test", "fixtures")

UNUSUAL_TEXTS = [
    "café naïve façade", "\ufb01nance \ufb02ow", "\uff21\uff42\uff43 \uff11\uff12\uff13", "\u2460\u2461 x\u00b2 \u00bd",
    "nbsp\u00a0space", "tab\there", "line\nbreak", "emoji \U0001F600 \u2764\ufe0f", "\u2126 ohm and \u03a9 omega",
    "A\u030a and \u00c5", "\uff76\uff80\uff76\uff85", "\ud55c\uad6d\uc5b4 \u4e2d\u6587", "zero\u200bwidth",
    "soft\u00adhyphen", "\uff21\uff5e\uff22", "bell\u0007char", "\ufeffbom", "multiple   spaces",
    "  leading and trailing  ", "a [SEP] b", "x <|source|> y", "\u3000ideographic space", "\u2028line sep",
    "\uff76\uff9e\uff77\uff9e half-width voiced", "e\u0301\u0323 stacked marks", "\u1100\u1161\u11a8 jamo",
    "\U0001F468\u200d\U0001F469\u200d\U0001F467 family", "\U0001F1EF\U0001F1F5 flag", "\u0915\u094d\u0937 conjunct",
    "\u00e9\u0301 precomposed plus mark", "x\u20dd enclosed", "\u2163 roman four", "\u33a1 square m",
    "\u0085next line\u0085", " \ufeff bom inside \ufeff ", "cr\r\nlf", "\u00a0\u3000 wide spaces at the ends \u2003",
]
SLOTS = ["<|source|>", "<|candidate1|>", "<|candidate2|>", "<|candidate|>"]


def ranges(*pairs):
    return [c for lo, hi in pairs for c in range(lo, hi + 1)]


# Pools of code points for random strings, chosen where graphemes and the charsmap interact.
POOLS = {
    "ascii": ranges((0x61, 0x7A), (0x41, 0x5A), (0x30, 0x39), (0x20, 0x20), (0x2E, 0x2E)),
    "marks": ranges((0x0300, 0x036F), (0x20D0, 0x20F0), (0x1AB0, 0x1ABE)),
    "jamo": ranges((0x1100, 0x1112), (0x1161, 0x1175), (0x11A8, 0x11C2), (0x3131, 0x318E)),
    "hangul": ranges((0xAC00, 0xAC40), (0xD7A0, 0xD7A3)),
    "kana": ranges((0xFF66, 0xFF9F), (0x3099, 0x309C), (0x30AB, 0x30C8)),
    "emoji": ranges((0x1F600, 0x1F64F), (0x1F3FB, 0x1F3FF), (0x1F1E6, 0x1F1FF), (0x200D, 0x200D),
                    (0xFE0E, 0xFE0F), (0x2764, 0x2764), (0x1F468, 0x1F469)),
    "indic": ranges((0x0915, 0x0939), (0x093E, 0x094D), (0x0E01, 0x0E3A)),
    "controls": ranges((0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x200B, 0x200F), (0x2028, 0x202E),
                       (0x2060, 0x2064), (0xFEFF, 0xFEFF), (0xFFFD, 0xFFFD)),
    "spaces": ranges((0x00A0, 0x00A0), (0x2000, 0x200A), (0x3000, 0x3000), (0x1680, 0x1680), (0x205F, 0x205F)),
    "compat": ranges((0xFB00, 0xFB06), (0xFF01, 0xFF5E), (0x2460, 0x24FF), (0x3300, 0x33FF), (0x2150, 0x218B),
                     (0x00B2, 0x00BE), (0x1D400, 0x1D44F), (0xF900, 0xF90F)),
}


def tiny_corpus(seed):
    rng = random.Random(seed)
    words = ["the", "sky", "is", "blue", "prefer", "response", "win", "rate", "model", "token", "caf\u00e9",
             "na\u00efve", "\u6771\u4eac", "\ud55c\uad6d\uc5b4", "fine", "x2", "hello", "world"]
    return [" ".join(rng.choice(words) for _ in range(12)) for _ in range(3000)]


# The prose the real-sized vocabularies are trained on: the docs as they stood at this commit, so
# that later edits to them leave the fixtures as they are.
DOCS_REV = "ae6eeac"


def docs_corpus():
    """The project's own prose (README, docs, bench/RESULTS.md at DOCS_REV): real English."""
    root = os.path.join(HERE, "..")
    git = lambda *args: subprocess.run(["git", "-C", root, *args], check=True, capture_output=True, text=True).stdout
    names = ["README.md", "bench/RESULTS.md"] + sorted(
        n for n in git("ls-tree", "--name-only", DOCS_REV, "docs/").split() if n.endswith(".md"))
    lines = []
    for name in names:
        lines += [line.strip() for line in git("show", f"{DOCS_REV}:{name}").splitlines() if len(line.strip()) > 20]
    return lines


def train_spm(workdir, lines, vocab_size, name):
    corpus = os.path.join(workdir, name + ".txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    prefix = os.path.join(workdir, name)
    # DeBERTa-v3's spm layout: [PAD] 0, [CLS] 1, [SEP] 2, [UNK] 3; nmt_nfkc is the default rule.
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=prefix, vocab_size=vocab_size, model_type="unigram",
                                   character_coverage=1.0, num_threads=1, normalization_rule_name="nmt_nfkc",
                                   pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]",
                                   eos_piece="[SEP]", unk_piece="[UNK]", minloglevel=2)
    proto = sentencepiece_model_pb2.ModelProto()
    with open(prefix + ".model", "rb") as f:
        proto.ParseFromString(f.read())
    return proto


def build_tokenizer(proto):
    vocab = [(p.piece, p.score) for p in proto.pieces]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Strip(),
        normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    tok.add_special_tokens([tokenizers.AddedToken(t, special=True, normalized=False) for t in ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]])
    # llm-blender adds its slot tokens with tokenizer.add_tokens: normalized, not special.
    tok.add_tokens([tokenizers.AddedToken(t, normalized=True) for t in SLOTS])
    return tok


def random_strings(rng, count):
    names = sorted(POOLS)
    out = []
    for _ in range(count):
        n = rng.randint(1, 10)
        out.append("".join(chr(rng.choice(POOLS[rng.choice(names)])) for _ in range(n)))
    return out


def write_gz(path, data):
    # mtime 0: the same inputs give the same bytes, so a rerun leaves git clean.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as f:
        f.write(data)


SAME_CHARSMAP = "(the charsmap of tokenizer.json.gz)"


def save_tokenizer(tok, path, drop_charsmap=None):
    """Saves `tok` as Rust tokenizers writes it; drop_charsmap: that charsmap, replaced by a note."""
    with tempfile.TemporaryDirectory() as work:
        tmp = os.path.join(work, "tokenizer.json")
        tok.save(tmp)
        with open(tmp, "rb") as src:
            data = src.read()
    if drop_charsmap is not None:
        j = json.loads(data)
        node = next(n for n in j["normalizer"]["normalizers"] if n["type"] == "Precompiled")
        assert base64.b64decode(node["precompiled_charsmap"]) == drop_charsmap, "the two models' charsmaps differ"
        node["precompiled_charsmap"] = SAME_CHARSMAP
        data = json.dumps(j, ensure_ascii=False).encode("utf-8")
    write_gz(path, data)


def make_charsmap(out, seed):
    with tempfile.TemporaryDirectory() as work:
        proto = train_spm(work, tiny_corpus(seed), 64, "tiny")
        docs = docs_corpus()
        big = train_spm(work, docs, 2000, "docs")
    tok = build_tokenizer(proto)
    big_tok = build_tokenizer(big)
    pre = normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap)
    changed = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        s = chr(cp)
        n = pre.normalize_str(s)
        if n != s:
            changed.append([cp, n])
    rng = random.Random(seed)
    strings = random_strings(rng, 4000)
    texts = UNUSUAL_TEXTS + random_strings(rng, 300)
    # For the 2000-piece vocabulary: lines of the prose it was trained on, the same lines with
    # unusual characters spliced in, and the unusual texts, so that Unigram's best segmentation
    # (and its ties) is compared, not only the normalizer.
    sample = rng.sample(docs, 400)
    noisy = []
    for line in sample[:200]:
        at = rng.randrange(len(line) + 1)
        noisy.append(line[:at] + "".join(chr(rng.choice(POOLS[rng.choice(sorted(POOLS))])) for _ in range(3)) + line[at:])
    big_texts = UNUSUAL_TEXTS + sample + noisy
    expected = {
        "tokenizers": tokenizers.__version__, "sentencepiece": spm.__version__,
        "rule": proto.normalizer_spec.name,
        "changed": changed,
        "strings": [[s, pre.normalize_str(s)] for s in strings],
        "texts": [{"text": t, "normalized": tok.normalizer.normalize_str(t), "ids": tok.encode(t, add_special_tokens=False).ids}
                  for t in texts],
        "unigram": [{"text": t, "ids": big_tok.encode(t, add_special_tokens=False).ids} for t in big_texts],
    }
    os.makedirs(out, exist_ok=True)
    save_tokenizer(tok, os.path.join(out, "tokenizer.json.gz"))
    # nmt_nfkc's charsmap does not depend on the training text: stored once.
    save_tokenizer(big_tok, os.path.join(out, "unigram2k.tokenizer.json.gz"), drop_charsmap=proto.normalizer_spec.precompiled_charsmap)
    write_gz(os.path.join(out, "expected.json.gz"), json.dumps(expected, ensure_ascii=False).encode("utf-8"))
    print(f"charsmap: wrote {out} ({len(changed)} changed code points, {len(strings)} strings, {len(texts)} texts, "
          f"{len(big_texts)} texts for the {big_tok.get_vocab_size()}-token vocabulary)")


# Llama 3's pre-tokenizer split, as its tokenizer.json writes it.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")


def make_bpe(out, seed):
    """The two BPE shapes policies use, trained on the docs: Llama 3's byte-level BPE (regex split,
    ByteLevel) and Llama 2 / Mistral's SentencePiece BPE (Prepend + Replace, byte fallback)."""
    docs = docs_corpus()
    llama3 = Tokenizer(models.BPE(ignore_merges=True))
    llama3.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    llama3.decoder = decoders.ByteLevel()
    llama3.train_from_iterator(docs, trainers.BpeTrainer(vocab_size=3000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                         special_tokens=["<|begin_of_text|>", "<|eot_id|>"], show_progress=False))
    llama2 = Tokenizer(models.BPE(byte_fallback=True, fuse_unk=True, unk_token="<unk>"))
    llama2.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    llama2.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    byte_pieces = ["<0x%02X>" % i for i in range(256)]
    llama2.train_from_iterator([line.replace(" ", "\u2581") for line in docs],
                               trainers.BpeTrainer(vocab_size=3000, special_tokens=["<unk>", "<s>", "</s>"] + byte_pieces,
                                                   limit_alphabet=200, show_progress=False))
    rng = random.Random(seed)
    texts = UNUSUAL_TEXTS + rng.sample(docs, 300) + random_strings(rng, 300) + [
        "  two  spaces\n\n\nnewlines\t\ttabs  ", "it's I'M we'Ll DON'T", "12345678 3.14159 1,000,000",
        "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3001\u53e5\u8aad\u70b9\u3002", "x" * 300]
    os.makedirs(out, exist_ok=True)
    save_tokenizer(llama3, os.path.join(out, "llama3-bpe.tokenizer.json.gz"))
    save_tokenizer(llama2, os.path.join(out, "llama2-bpe.tokenizer.json.gz"))
    expected = {"tokenizers": tokenizers.__version__, "texts": texts,
                "llama3": [llama3.encode(t, add_special_tokens=False).ids for t in texts],
                "llama2": [llama2.encode(t, add_special_tokens=False).ids for t in texts]}
    write_gz(os.path.join(out, "expected.json.gz"), json.dumps(expected, ensure_ascii=False).encode("utf-8"))
    print(f"bpe: wrote {out} ({len(texts)} texts)")


def make_pairrm_tokenizer(tok_folder, out_root):
    """Golden ids of the real PairRM tokenizer, from Rust tokenizers reading its tokenizer.json."""
    tok = Tokenizer.from_file(os.path.join(tok_folder, "tokenizer.json"))
    folder = os.path.join(out_root, "tokenizer")
    os.makedirs(folder, exist_ok=True)
    for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "config.json"]:
        if os.path.exists(os.path.join(tok_folder, name)):
            shutil.copy(os.path.join(tok_folder, name), os.path.join(folder, name))
    # A folder saved with add_tokens() lists the slot tokens in added_tokens.json only.
    added_file = os.path.join(tok_folder, "added_tokens.json")
    if os.path.exists(added_file):
        with open(added_file, encoding="utf-8") as f:
            extra = [t for t, _ in sorted(json.load(f).items(), key=lambda kv: kv[1]) if tok.token_to_id(t) is None]
        tok.add_tokens(extra)
    sep = "[SEP]"
    segments = []
    for prefix, text, max_len in [("<|source|>", "the sky is blue " * 40, 30), ("<|candidate|>", "caf\u00e9 [SEP] ok", 412),
                                  ("<|candidate|>", "\uff21\uff42\uff43 " * 50, 20)]:
        tok.enable_truncation(max_len)
        segments.append({"prefix": prefix, "text": text, "max": max_len,
                         "ids": tok.encode((prefix + text).replace(sep, " ")).ids})
    tok.no_truncation()
    expected = {"tokenizers": tokenizers.__version__,
                "texts": [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in UNUSUAL_TEXTS],
                "segments": segments}
    try:
        import transformers
        hf = transformers.AutoTokenizer.from_pretrained(tok_folder)
        expected["transformers"] = transformers.__version__
        expected["transformers_differs"] = [t["text"] for t in expected["texts"]
                                            if hf(t["text"], add_special_tokens=False)["input_ids"] != t["ids"]]
    except ImportError:
        pass
    with open(os.path.join(folder, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False)
    print(f"pairrm tokenizer: wrote {folder}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(FIXTURES, "charsmap"))
    ap.add_argument("--bpe-out", default=os.path.join(FIXTURES, "bpe"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--pairrm-tokenizer", help="a local llm-blender/PairRM-hf folder: record its tokenizer's golden ids")
    ap.add_argument("--pairrm-out", default=os.path.join(FIXTURES, "transformers-pairrm"))
    a = ap.parse_args()
    make_charsmap(a.out, a.seed)
    make_bpe(a.bpe_out, a.seed)
    if a.pairrm_tokenizer:
        make_pairrm_tokenizer(a.pairrm_tokenizer, a.pairrm_out)


if __name__ == "__main__":
    main()
