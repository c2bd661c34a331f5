"""tokenizer.json tokenizers (core.text.hf): Llama 3's and Qwen 3's real files and a small
SentencePiece-style BPE with byte fallback; ids exactly `tokenizers`' own (and transformers'),
the begin-of-text rule, round trips, display strings, and bad files."""
from __future__ import annotations

import gzip
import json
import unicodedata

import pytest
from helpers.gpt2 import GPT2_TOKENIZER_DIR
from helpers.tokenizers import DATA, LLAMA3_TEMPLATE, SENTENCEPIECE_VOCAB_SIZE, write_tokenizer
from tokenizers import Tokenizer as RustTokenizer

from core.text.bpe import BPETokenizer
from core.text.hf import HFTokenizer
from core.text.tokenizer import Tokenizer
from core.text.words import WordTokenizer

TEXTS = ["Hello world", " leading space", "The sky is blue.\n\nNew paragraph\twith a tab\r\n",
         "ünïcödé, naïve café, Ελληνικά, русский", "東京 한국어 日本語の文章", "emoji 🤖👍🏽 and flags 🇫🇷",
         "e\u0301 combining", "   many   spaces   ", "numbers 3.14159 and 1,000,000", "€5 — “quotes”",
         "typed specials: <s> </s> <|begin_of_text|> <|end_of_text|> <|im_start|> <|im_end|> <|endoftext|>",
         "<s>starts with one", "", "\x00\x01 control \x7f"]
KINDS = ["llama3", "llama3-template", "qwen3", "sentencepiece"]


def write(folder, kind):
    """write_tokenizer, plus "llama3-template": Llama 3's files with Llama 3.1/3.2's post-processor."""
    write_tokenizer(folder, kind.removesuffix("-template"))
    if kind == "llama3-template":
        spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        spec["post_processor"] = LLAMA3_TEMPLATE
        (folder / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {kind: write(tmp_path_factory.mktemp(kind), kind) for kind in KINDS}


@pytest.fixture(scope="module")
def mine(folders):
    return {kind: HFTokenizer.from_folder(folder) for kind, folder in folders.items()}


@pytest.fixture(scope="module")
def reference(folders):
    """`tokenizers`' own, over the same tokenizer.json."""
    return {kind: RustTokenizer.from_file(str(folder / "tokenizer.json")) for kind, folder in folders.items()}


def test_interface(mine):
    for tokenizer in mine.values():
        assert isinstance(tokenizer, Tokenizer) and tokenizer.kind == "bpe"
        assert len(tokenizer.tokens) == tokenizer.vocab_size and tokenizer.unknown_words("zxqv ünïcödé 🤖") == []
    llama, qwen, pieces = mine["llama3"], mine["qwen3"], mine["sentencepiece"]
    assert (llama.vocab_size, llama.eos_id, llama.bos_id, llama.unk_id, llama.style) == (
        128256, 128001, 128000, None, "byte-level")
    assert llama.token(llama.eos_id) == "<|end_of_text|>"
    assert (qwen.vocab_size, qwen.eos_id, qwen.bos_id, qwen.unk_id, qwen.style) == (
        151669, 151645, None, None, "byte-level")
    assert qwen.token(qwen.eos_id) == "<|im_end|>"  # tokenizer_config.json's eos_token
    assert (pieces.vocab_size, pieces.eos_id, pieces.bos_id, pieces.unk_id, pieces.style, pieces.byte_fallback) == (
        SENTENCEPIECE_VOCAB_SIZE, 2, 1, 0, "sentencepiece", True)
    assert 300 <= pieces.vocab_size <= 500


def test_every_tokenizer_satisfies_the_protocol():
    gpt2 = BPETokenizer.from_vocab_and_merges(GPT2_TOKENIZER_DIR / "vocab.json", GPT2_TOKENIZER_DIR / "merges.txt")
    assert isinstance(gpt2, Tokenizer) and isinstance(WordTokenizer.from_texts(["the sky"]), Tokenizer)
    assert not isinstance("not a tokenizer", Tokenizer)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("text", TEXTS)
def test_ids_are_tokenizers_own(mine, reference, kind, text):
    # none of the four configs overrides its post-processor: the ids are exactly `tokenizers`'
    assert mine[kind].encode(text) == reference[kind].encode(text).ids


def test_begin_of_text_follows_the_model(mine):
    assert mine["llama3-template"].encode("Hi")[0] == 128000 and mine["llama3-template"].adds_bos
    assert mine["sentencepiece"].encode("Hi")[0] == 1 and mine["sentencepiece"].adds_bos
    assert mine["sentencepiece"].encode("") == [1]
    for kind in ("qwen3", "llama3"):  # Qwen adds none; Llama 3's first tokenizer.json adds none either
        assert not mine[kind].adds_bos and mine[kind].encode("Hi") == mine[kind].encode("Hi")[:2]
        assert mine[kind].encode("") == []
    assert mine["llama3-template"].encode("<|begin_of_text|>Hi")[:2] == [128000, 128000]  # typed: kept


def with_config(tmp_path, kind, **changes):
    folder = write(tmp_path / kind, kind)
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return HFTokenizer.from_folder(folder), RustTokenizer.from_file(str(folder / "tokenizer.json"))


@pytest.mark.parametrize("text", ["Hello world", "<s> typed", ""])
def test_add_bos_token_overrides_the_post_processor(tmp_path, text):
    # false: none, even where the post-processor adds one
    pieces, reference = with_config(tmp_path, "sentencepiece", add_bos_token=False)
    assert pieces.encode(text) == reference.encode(text, add_special_tokens=False).ids
    assert not pieces.adds_bos and pieces.decode(pieces.encode(text)).startswith(text[:1])
    # absent: the post-processor's choice (<s>)
    pieces, reference = with_config(tmp_path / "absent", "sentencepiece", add_bos_token=None)
    assert pieces.encode(text) == reference.encode(text).ids and pieces.encode(text)[0] == 1
    # true where the post-processor adds none: put first
    qwen, reference = with_config(tmp_path, "qwen3", add_bos_token=True, bos_token="<|endoftext|>")
    assert qwen.encode(text) == [151643, *reference.encode(text).ids]
    llama, reference = with_config(tmp_path, "llama3-template", add_bos_token=False)
    assert llama.encode(text) == reference.encode(text).ids[1:] and 128000 not in llama.encode(text)[:1]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("text", TEXTS)
def test_decode_round_trips(mine, reference, kind, text):
    tokenizer = mine[kind]
    ids = tokenizer.encode(text)
    without_bos = ids[1:] if tokenizer.adds_bos else ids
    assert tokenizer.decode(ids) == reference[kind].decode(without_bos, skip_special_tokens=False)
    if kind == "qwen3":
        text = unicodedata.normalize("NFC", text)  # Qwen's normalizer composes "e" + U+0301 into "é"
    if kind == "sentencepiece" and text[:1].isspace():
        # Metaspace puts no "▁" before a text that starts with a space, and the decoder strips one
        assert tokenizer.decode(ids) == text[1:]
    else:
        assert tokenizer.decode(ids) == text


def test_display_strings(mine):
    llama, qwen, pieces = mine["llama3"], mine["qwen3"], mine["sentencepiece"]
    raw = llama._tokenizer.get_vocab()
    assert llama.token(raw["Ġthe"]) == "␣the" and llama.token(raw["Ċ"]) == "↵" and llama.token(raw["ĉ"]) == "⇥"
    assert llama.token(raw["Ġâ"]) == "␣<0xE2>"  # the first byte of "€" and friends: a byte, not mojibake
    assert [llama.token(i) for i in llama.encode(" the sky\n")] == ["␣the", "␣sky", "↵"]
    assert llama.token(128000) == "<|begin_of_text|>" and qwen.token(151644) == "<|im_start|>"
    assert [qwen.token(i) for i in qwen.encode("東京")] == ["東", "京"]  # whole characters, not bytes
    assert [pieces.token(i) for i in pieces.encode("the €")] == ["<s>", "␣the", "␣", "<0xE2>", "<0x82>", "<0xAC>"]
    assert pieces.token(0) == "<unk>" and pieces.token(1) == "<s>" and pieces.token(2) == "</s>"
    assert pieces.token(3 + 0x41) == "<0x41>" and pieces.token(3 + 0x0A) == "<0x0A>"  # bytes kept apart from "A"
    for tokenizer in mine.values():  # the space markers are gone; "Ġ" stays only as the letter itself ("Äł")
        marked = [tokenizer._raw[i] for i, token in enumerate(tokenizer.tokens) if "▁" in token or "Ġ" in token]
        assert marked == ([] if tokenizer is pieces else ["Äł"])


def test_gpt2s_tokenizer_json_displays_as_bpe_does():
    gpt2 = BPETokenizer.from_vocab_and_merges(GPT2_TOKENIZER_DIR / "vocab.json", GPT2_TOKENIZER_DIR / "merges.txt")
    same = HFTokenizer.from_json(gpt2.to_json(), eos_id=gpt2.eos_id)
    assert same.tokens == gpt2.tokens and same.eos_id == 50256
    assert same.encode(TEXTS[3]) == gpt2.encode(TEXTS[3])


def test_eos_from_the_config_or_from_config_json(tmp_path):
    folder = write_tokenizer(tmp_path / "no-config", "qwen3")
    (folder / "tokenizer_config.json").unlink()
    assert HFTokenizer.from_folder(folder, eos_id=151643).eos_id == 151643  # config.json's eos_token_id
    assert HFTokenizer.from_folder(folder).eos_id is None
    qwen, _ = with_config(tmp_path, "qwen3", eos_token={"content": "<|endoftext|>", "special": True})
    assert qwen.eos_id == 151643


def test_transformers_gives_the_same_ids(folders, mine):
    transformers = pytest.importorskip("transformers")
    for kind, folder in folders.items():
        theirs = transformers.AutoTokenizer.from_pretrained(str(folder))
        for text in TEXTS:
            assert mine[kind].encode(text) == theirs(text)["input_ids"], (kind, text)


@pytest.fixture()
def llama_folder(tmp_path):
    return write_tokenizer(tmp_path / "llama", "llama3")


def test_missing_tokenizer_json(tmp_path):
    with pytest.raises(ValueError, match=r"tokenizer\.json is missing"):
        HFTokenizer.from_folder(tmp_path)


@pytest.mark.parametrize("name", ["tokenizer.json", "tokenizer_config.json"])
def test_invalid_json_names_the_file(llama_folder, name):
    (llama_folder / name).write_text('{"version": "1.0", "model": ', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{name.replace('.', '[.]')} is not valid JSON"):
        HFTokenizer.from_folder(llama_folder)


def test_too_large_is_refused_before_parsing(llama_folder):
    size = (llama_folder / "tokenizer.json").stat().st_size
    with pytest.raises(ValueError, match=rf"tokenizer\.json is too large \({size} bytes"):
        HFTokenizer.from_folder(llama_folder, max_bytes=size - 1)


def test_not_a_tokenizer_names_the_file(llama_folder):
    (llama_folder / "tokenizer.json").write_text('{"model": {"type": "nothing"}}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"tokenizer\.json is not a tokenizers tokenizer\.json"):
        HFTokenizer.from_folder(llama_folder)


def test_a_config_naming_an_unknown_token(tmp_path):
    with pytest.raises(ValueError, match=r"tokenizer\.json \(with tokenizer_config\.json\): eos_token '<nope>'"):
        with_config(tmp_path, "qwen3", eos_token="<nope>")
    with pytest.raises(ValueError, match="add_bos_token must be True or False"):
        with_config(tmp_path / "b", "sentencepiece", add_bos_token="yes")


def test_a_word_level_tokenizer_json_is_refused(tmp_path):
    from tokenizers.models import WordLevel

    (tmp_path / "tokenizer.json").write_text(RustTokenizer(WordLevel({"a": 0, "<unk>": 1}, "<unk>")).to_str())
    with pytest.raises(ValueError, match=r"tokenizer\.json .*only BPE tokenizers are read"):
        HFTokenizer.from_folder(tmp_path)


def test_bundled_files_are_the_notices(tmp_path):
    # the NOTICE's sha256 of each uncompressed file holds
    import hashlib

    for kind in ("llama3", "qwen3"):
        notice = (DATA / f"{kind}-tokenizer" / "NOTICE.md").read_text(encoding="utf-8")
        data = gzip.decompress((DATA / f"{kind}-tokenizer" / "tokenizer.json.gz").read_bytes())
        assert f"{hashlib.sha256(data).hexdigest()}  tokenizer.json" in notice


def test_bad_input(mine):
    import numpy as np

    pieces = mine["sentencepiece"]
    with pytest.raises(TypeError):
        pieces.encode(b"bytes")
    with pytest.raises(ValueError, match="lone surrogate"):
        pieces.encode("\ud800")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        pieces.decode([1, pieces.vocab_size])
    with pytest.raises(TypeError):
        pieces.token(1.5)
    assert pieces.decode(np.array(pieces.encode("the sky"))) == "the sky" and pieces.decode([]) == ""


@pytest.mark.parametrize("kind", KINDS)
def test_to_json_and_tokenizer_config_rebuild_it(mine, kind):
    tokenizer = mine[kind]
    again = HFTokenizer.from_json(tokenizer.to_json(), tokenizer.tokenizer_config())
    assert (again.eos_id, again.bos_id, again.add_bos, again.adds_bos) == (
        tokenizer.eos_id, tokenizer.bos_id, tokenizer.add_bos, tokenizer.adds_bos)
    assert all(again.encode(text) == tokenizer.encode(text) for text in TEXTS)


def test_unknown_words_without_byte_fallback(folders):
    spec = json.loads((folders["sentencepiece"] / "tokenizer.json").read_text(encoding="utf-8"))
    spec["model"]["byte_fallback"] = False
    pieces = HFTokenizer.from_json(json.dumps(spec), {"bos_token": "<s>", "eos_token": "</s>"})
    assert pieces.unknown_words("the sky 東京 is 東京 blue€") == ["東京", "blue€"]
    assert pieces.unk_id == 0 and 0 in pieces.encode("the 東京")


def test_added_tokens_show_as_written(folders):
    # an added token is stored as its text, not in the byte alphabet ("é" there would be byte 0xE9)
    tokenizer = RustTokenizer.from_file(str(folders["qwen3"] / "tokenizer.json"))
    tokenizer.add_tokens(["naïveté"])
    qwen = HFTokenizer(tokenizer, eos_id=None)
    assert qwen.token(qwen.vocab_size - 1) == "naïveté" and qwen.encode("a naïveté")[-1] == qwen.vocab_size - 1
