"""Tests for core.text.words and the bundled corpus (core.text.corpus): round trips, <unk>, vocabulary files,
and the corpus's promises (deterministic, small, unambiguous, held-out prompts unseen)."""
from __future__ import annotations

import numpy as np
import pytest

from core.text import corpus
from core.text.words import END_OF_TEXT, UNKNOWN, WordTokenizer, tokenize


@pytest.fixture(scope="module")
def sentences():
    return corpus.load_corpus()


@pytest.fixture(scope="module")
def tokenizer(sentences):
    return WordTokenizer.from_texts(sentences)


# --- the tokenizer ---------------------------------------------------------------------------

def test_tokenize_lower_cases_and_splits_punctuation():
    assert tokenize("The Sky is BLUE.") == ["the", "sky", "is", "blue", "."]
    assert tokenize("  yes,the dog's ball?!\n") == ["yes", ",", "the", "dog's", "ball", "?", "!"]
    assert tokenize("a <|endoftext|> b <unk>") == ["a", END_OF_TEXT, "b", UNKNOWN]
    assert tokenize("") == [] and tokenize("   ") == []


def test_every_corpus_line_round_trips(sentences, tokenizer):
    for line in sentences:
        ids = tokenizer.encode(line)
        assert tokenizer.unk_id not in ids
        assert tokenizer.decode(ids) == line


def test_specials_come_first(tokenizer):
    assert tokenizer.tokens[:2] == [END_OF_TEXT, UNKNOWN]
    assert (tokenizer.eos_id, tokenizer.unk_id) == (0, 1)
    assert tokenizer.encode("<|endoftext|>") == [0]


def test_unknown_words_become_unk_and_are_reported(tokenizer):
    ids = tokenizer.encode("the zebra is blue , the zebra !")
    assert ids.count(tokenizer.unk_id) == 3  # zebra twice, "!" once
    assert tokenizer.decode(ids) == "the <unk> is blue , the <unk> <unk>"
    assert tokenizer.unknown_words("the zebra is blue , the zebra !") == ["zebra", "!"]
    assert tokenizer.unknown_words("the sky is blue") == []


def test_vocab_dict_round_trip(tokenizer):
    again = WordTokenizer.from_vocab_dict(tokenizer.to_vocab_dict())
    assert again.tokens == tokenizer.tokens


@pytest.mark.parametrize("vocab, error", [
    ([1, 2], TypeError), ({"a": "0"}, TypeError), ({"a": True}, TypeError),
    ({END_OF_TEXT: 0, UNKNOWN: 2}, ValueError), ({END_OF_TEXT: 0, UNKNOWN: 0}, ValueError),
    ({END_OF_TEXT: 0, "a": 1}, ValueError), ({END_OF_TEXT: 0, UNKNOWN: 1, "two words": 2}, ValueError),
    ({END_OF_TEXT: 0, UNKNOWN: 1, "Sky": 2}, ValueError),
])
def test_bad_vocabularies_are_rejected(vocab, error):
    with pytest.raises(error):
        WordTokenizer.from_vocab_dict(vocab)


def test_bad_arguments_are_clear(tokenizer):
    with pytest.raises(TypeError, match="string"):
        tokenizer.encode(["the"])
    with pytest.raises(ValueError, match="outside"):
        tokenizer.decode([tokenizer.vocab_size])
    with pytest.raises(ValueError, match="outside"):
        tokenizer.decode([-1])
    with pytest.raises(TypeError, match="integer"):
        tokenizer.decode([1.5])
    assert tokenizer.decode(np.array([2, 3])) == " ".join(tokenizer.tokens[2:4])


# --- the corpus ------------------------------------------------------------------------------

def test_committed_corpus_is_what_the_grammar_generates(sentences):
    generated, heldout = corpus.generate_corpus()
    assert generated == sentences
    assert heldout == corpus.load_heldout()
    assert corpus.generate_corpus(seed=1)[0] != generated


def test_corpus_is_small_and_short(sentences, tokenizer):
    assert 2000 <= len(sentences) <= 6000
    assert 150 <= tokenizer.vocab_size <= 400
    assert max(len(tokenize(line)) for line in sentences) <= 20  # two sentences fit n_positions = 32
    assert all(line == line.lower() for line in sentences)


def test_each_fact_has_one_answer_in_the_training_text(sentences):
    padded = [f" {line} " for line in sentences]
    for fact in corpus.all_facts():
        key = f" {fact.clause} "
        following = {line[index + len(key):].split()[0]
                     for line in padded for index in _occurrences(line, key)}
        assert following == {fact.answer}, fact.clause
    assert sum(" the sky is blue " in line for line in padded) > 10


def _occurrences(text: str, key: str):
    index = text.find(key)
    while index >= 0:
        yield index
        index = text.find(key, index + 1)


def test_heldout_prompts_are_unseen_but_their_facts_are_known(sentences, tokenizer):
    heldout = corpus.load_heldout()
    assert 100 <= len(heldout) <= 300
    padded = [f" {line} " for line in sentences]
    for prompt, expected in heldout:
        assert not any(f" {prompt} " in line for line in padded), prompt
        assert tokenizer.unknown_words(prompt) == [] and tokenizer.encode(expected) != [tokenizer.unk_id]
        assert sum(f" {expected} " in line for line in padded) >= 5
    assert ("i know that the sky is", "blue") in heldout or any(p.endswith("the sky is") for p, _ in heldout)


def test_split_corpus_is_seeded_and_disjoint(sentences):
    train, validation = corpus.split_corpus(sentences, 0.1, seed=3)
    assert len(validation) == round(len(sentences) * 0.1) and len(train) + len(validation) == len(sentences)
    assert corpus.split_corpus(sentences, 0.1, seed=3) == (train, validation)
    assert corpus.split_corpus(sentences, 0.1, seed=4)[1] != validation
    with pytest.raises(ValueError):
        corpus.split_corpus(sentences, 0.0)
    with pytest.raises(ValueError, match="too few"):
        corpus.split_corpus(["one sentence ."], 0.5)


def test_malformed_heldout_lines_are_rejected(tmp_path):
    path = tmp_path / "heldout.tsv"
    path.write_text("the sky is\tblue\nno tab here\n")
    with pytest.raises(ValueError, match="line 2"):
        corpus.load_heldout(path)


def test_heldout_scores_counts_correct_predictions(tokenizer):
    class Oracle:  # predicts "blue" after anything
        def __init__(self):
            self.tokenizer = tokenizer

        def forward(self, ids):
            logits = np.zeros((len(ids), tokenizer.vocab_size))
            logits[:, tokenizer.ids["blue"]] = 10.0
            return logits

    scores = corpus.heldout_scores(Oracle(), [("the sky is", "blue"), ("the grass is", "green")])
    assert scores["accuracy"] == 0.5 and scores["correct"] == [True, False] and scores["count"] == 2
    assert scores["predicted"] == [tokenizer.ids["blue"]] * 2
    probability_blue = np.exp(10) / (np.exp(10) + tokenizer.vocab_size - 1)
    expected_perplexity = np.exp(-(np.log(probability_blue) + np.log(1 / (np.exp(10) + tokenizer.vocab_size - 1))) / 2)
    assert scores["perplexity"] == pytest.approx(expected_perplexity)
    with pytest.raises(ValueError, match="not one known token"):
        corpus.heldout_scores(Oracle(), [("the sky is", "zebra")])


def test_accented_words_stay_whole():
    assert tokenize("Ünïcödé été, naïve") == ["ünïcödé", "été", ",", "naïve"]
    assert tokenize("e\u0301te\u0301") == ["e\u0301te\u0301"]  # combining accents belong to their word
    tokenizer = WordTokenizer.from_texts(["the sky is blue ."])
    assert tokenizer.encode("the ünïcödé sky") == [tokenizer.ids["the"], tokenizer.unk_id, tokenizer.ids["sky"]]
    assert tokenizer.unknown_words("the ünïcödé sky") == ["ünïcödé"]
    assert tokenizer.kind == "word"
