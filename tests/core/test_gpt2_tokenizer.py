"""GPT-2's byte-level BPE (core.text.bpe) on GPT-2's real vocabulary: ids exactly `tokenizers`' own,
Unicode round trips, display strings; and the word-level tokenizer's shared interface."""
from __future__ import annotations

import json

import pytest
from helpers.gpt2 import GPT2_TOKENIZER_DIR, corpus_bpe
from tokenizers import ByteLevelBPETokenizer

from core.text.bpe import BPETokenizer, display
from core.text.words import WordTokenizer

TEXTS = ["Hello world", " leading space", "The sky is blue.\n\nNew paragraph\twith a tab",
         "ünïcödé, naïve café, Ελληνικά, русский, 東京, 한국어", "emoji 🤖👍🏽 and flags 🇫🇷", "e\u0301 combining",
         "<|endoftext|>after the end", "   many   spaces   ", "", "\u200b zero width \ufeff BOM",
         "numbers 3.14159 and 1,000,000", "'s 're 've 'll contractions I'm", "\x00\x01 control \x7f"]


@pytest.fixture(scope="module")
def gpt2():
    return BPETokenizer.from_vocab_and_merges(GPT2_TOKENIZER_DIR / "vocab.json", GPT2_TOKENIZER_DIR / "merges.txt")


@pytest.fixture(scope="module")
def reference():
    """`tokenizers`' own GPT-2 byte-level BPE over the same files."""
    return ByteLevelBPETokenizer(str(GPT2_TOKENIZER_DIR / "vocab.json"), str(GPT2_TOKENIZER_DIR / "merges.txt"))


def test_interface(gpt2):
    assert gpt2.kind == "bpe" and gpt2.vocab_size == 50257 and gpt2.eos_id == 50256
    assert len(gpt2.tokens) == 50257 and gpt2.token(50256) == "<|endoftext|>"
    assert gpt2.unknown_words("zxqv ünïcödé") == []


@pytest.mark.parametrize("text", TEXTS)
def test_ids_are_tokenizers_own_and_text_round_trips(gpt2, reference, text):
    ids = gpt2.encode(text)
    if "<|endoftext|>" not in text:
        assert ids == reference.encode(text).ids
    assert gpt2.decode(ids) == text


def test_known_gpt2_ids(gpt2):
    assert gpt2.encode("Hello world") == [15496, 995]
    assert gpt2.encode("<|endoftext|>") == [50256]


def test_display_strings_are_readable(gpt2):
    ids = gpt2.encode("Hello world, ü🤖\n")
    tokens = [gpt2.token(i) for i in ids]
    assert tokens[:3] == ["Hello", "␣world", ","]
    assert "Ġ" not in "".join(tokens) and "Ã" not in "".join(tokens)  # no byte-alphabet mojibake
    assert tokens[-1] == "↵"
    assert any(token.startswith("␣<0x") for token in tokens)  # 🤖's first bytes, shown as bytes
    assert display("é".encode()) == "é" and display(b"\xe2\x82") == "<0xE2><0x82>"


def test_lone_surrogates_are_a_clear_error(gpt2):
    with pytest.raises(ValueError, match="surrogate"):
        gpt2.encode("bad \ud800 text")


def test_bad_ids_are_clear_errors(gpt2):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        gpt2.decode([50257])
    with pytest.raises(TypeError):
        gpt2.token(True)


def test_a_vocabulary_outside_the_byte_alphabet_is_refused(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({"a": 0, "b": 1, "ab": 2, "\u4e00": 3}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b\n")
    with pytest.raises(ValueError, match="byte alphabet"):
        BPETokenizer.from_vocab_and_merges(tmp_path / "vocab.json", tmp_path / "merges.txt", eos_id=0)


def test_a_small_bpe_trained_on_the_corpus_round_trips():
    trained = corpus_bpe()
    tokenizer = BPETokenizer.from_json(trained.to_str())
    for text in ["the sky is blue", "ünïcödé 🤖 text the corpus never saw"]:
        assert tokenizer.encode(text) == trained.encode(text).ids
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_both_kinds_share_one_interface(gpt2):
    word = WordTokenizer.from_texts(["the sky is blue ."])
    for tokenizer in (word, gpt2):
        ids = tokenizer.encode("the sky is blue")
        assert isinstance(tokenizer.decode(ids), str) and tokenizer.kind in ("word", "bpe")
        assert [tokenizer.token(i) for i in ids] == [tokenizer.tokens[i] for i in ids]
        assert isinstance(tokenizer.vocab_size, int) and isinstance(tokenizer.eos_id, int)
        assert isinstance(tokenizer.unknown_words("zebra"), list)


hypothesis = pytest.importorskip("hypothesis")


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(hypothesis.strategies.text(alphabet=hypothesis.strategies.characters(exclude_categories=["Cs"])))
def test_any_unicode_text_round_trips(text):
    tokenizer = _gpt2_once()
    assert tokenizer.decode(tokenizer.encode(text)) == text


def _gpt2_once(cache={}):
    if not cache:
        cache["gpt2"] = BPETokenizer.from_vocab_and_merges(GPT2_TOKENIZER_DIR / "vocab.json",
                                                           GPT2_TOKENIZER_DIR / "merges.txt")
    return cache["gpt2"]
