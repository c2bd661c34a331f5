"""Small models for the tests: the corpus tokenizer with random (untrained) parameters."""
from __future__ import annotations

import numpy as np

from core.model.config import GPTConfig
from core.model.model import Model
from core.model.params import init_params
from core.text.corpus import load_corpus
from core.text.words import WordTokenizer


def corpus_tokenizer() -> WordTokenizer:
    return WordTokenizer.from_texts(load_corpus())


def random_model(seed: int = 0, n_positions: int = 32, dtype=np.float32) -> Model:
    """A small model over the corpus vocabulary, with weights large enough that attention
    patterns and next-token distributions are far from uniform."""
    tokenizer = corpus_tokenizer()
    config = GPTConfig(vocab_size=tokenizer.vocab_size, n_positions=n_positions, n_embd=32, n_layer=2, n_head=4)
    params = {name: (value * 8 if value.ndim == 2 else value).astype(dtype)
              for name, value in init_params(config, seed).items()}
    return Model(config, params, tokenizer)


def model_that_always_says(token: str, **options) -> Model:
    """A model whose every next-token prediction is `token` (ln_f outputs a constant vector
    that only `token`'s lm_head row points along)."""
    model = random_model(**options)
    params = dict(model.params)
    width = model.config.n_embd
    params["transformer.ln_f.weight"] = np.zeros(width, dtype=np.float32)
    params["transformer.ln_f.bias"] = np.ones(width, dtype=np.float32)
    head = np.random.default_rng(0).normal(0, 0.02, (model.config.vocab_size, width)).astype(np.float32)
    head[model.tokenizer.ids[token]] = 1.0
    params["lm_head.weight"] = head
    return Model(model.config, params, model.tokenizer)
