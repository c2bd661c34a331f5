"""A tiny corpus and a tiny model for the training tests: six colour facts in three phrasings,
two held-out prompts, a one-layer model over their words."""
from __future__ import annotations

from core.model.config import GPTConfig
from core.model.model import Model
from core.model.params import init_params
from core.text.words import WordTokenizer

COLOURS = {"sky": "blue", "grass": "green", "sun": "yellow", "snow": "white", "coal": "black", "rose": "red"}
FRAMES = ["the {} is {} .", "i know that the {} is {} .", "yes , the {} is {} ."]
SENTENCES = [frame.format(thing, colour) for thing, colour in COLOURS.items() for frame in FRAMES]
HELDOUT = [("i know that the sky is", "blue"), ("yes , the sun is", "yellow")]


def tiny_model(seed=0, sentences=SENTENCES):
    tokenizer = WordTokenizer.from_texts(sentences)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, n_positions=8, n_embd=16, n_layer=1, n_head=2)
    return Model(config, init_params(config, seed), tokenizer)


def snapshot(params):
    return {name: value.copy() for name, value in params.items()}
