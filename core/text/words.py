"""A word-level tokenizer: lower-cased words, punctuation split off, `<unk>` and `<|endoftext|>`.

Text is cut into tokens by `tokenize` ("The sky is blue." -> ["the", "sky", "is", "blue", "."]);
`encode` maps them to ids, unknown words to `<unk>` (list them with `unknown_words`);
`decode` joins tokens with single spaces, the corpus's own spelling, so
`decode(encode(line)) == line` for every corpus line. The vocabulary is saved as GPT-2's
`vocab.json` (`{token: id}`).
"""
from __future__ import annotations

import re

from core.checks import is_whole, whole

END_OF_TEXT = "<|endoftext|>"  # GPT-2's end-of-text token, the special token of both tokenizers
UNKNOWN = "<unk>"
SPECIALS = (END_OF_TEXT, UNKNOWN)
# the special tokens, words (runs of letters of any alphabet, digits, apostrophes and combining
# accents, so "ünïcödé" is one word), or any other single visible character
TOKEN_PATTERN = re.compile("|".join(map(re.escape, SPECIALS)) + r"|(?:[^\W_]|['\u0300-\u036f])+|[^\s]")


def tokenize(text: str) -> list[str]:
    """The tokens of `text`, lower-cased, as typed (unknown words are kept as they are)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    return TOKEN_PATTERN.findall(text.lower())


def check_token_id(index, vocab_size: int) -> int:
    """`index` as an int when it is a token id of a vocabulary of `vocab_size` (both tokenizers'
    check); TypeError or ValueError otherwise."""
    index = whole(index, "a token id")
    if not 0 <= index < vocab_size:
        raise ValueError(f"token id {index} is outside the vocabulary (0..{vocab_size - 1})")
    return index


class WordTokenizer:
    """Maps tokens to ids and back; `tokens[i]` is the token with id i (its display string too)."""

    kind = "word"

    def __init__(self, tokens):
        tokens = list(tokens)
        bad = [token for token in tokens if not isinstance(token, str)
               or (token not in SPECIALS and tokenize(token) != [token])]
        if bad:
            raise ValueError(f"vocabulary entries must be single lower-case tokens, got {bad[:5]!r}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("the vocabulary holds a token twice")
        missing = [special for special in SPECIALS if special not in tokens]
        if missing:
            raise ValueError(f"the vocabulary needs the special tokens {missing}")
        self.tokens = tokens
        self.ids = {token: index for index, token in enumerate(tokens)}

    @classmethod
    def from_texts(cls, texts) -> WordTokenizer:
        """The special tokens (ids 0 and 1), then every token in `texts`, sorted."""
        words = sorted({token for text in texts for token in tokenize(text)} - set(SPECIALS))
        return cls([*SPECIALS, *words])

    @classmethod
    def from_vocab_dict(cls, vocab) -> WordTokenizer:
        """From GPT-2's vocab.json form {token: id}; ids must be exactly 0..n-1."""
        if not isinstance(vocab, dict):
            raise TypeError(f"the vocabulary must be a JSON object {{token: id}}, got {type(vocab).__name__}")
        ids = list(vocab.values())
        if not all(is_whole(index) for index in ids):
            raise TypeError("vocabulary ids must be integers")
        if sorted(ids) != list(range(len(ids))):
            raise ValueError("vocabulary ids must be 0..n-1, each once")
        return cls(sorted(vocab, key=vocab.get))

    def to_vocab_dict(self) -> dict[str, int]:
        return dict(self.ids)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def eos_id(self) -> int:
        return self.ids[END_OF_TEXT]

    @property
    def unk_id(self) -> int:
        return self.ids[UNKNOWN]

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; words outside the vocabulary become `<unk>`."""
        return [self.ids.get(token, self.unk_id) for token in tokenize(text)]

    def unknown_words(self, text: str) -> list[str]:
        """The words of `text` outside the vocabulary, each once, in order of appearance."""
        return list(dict.fromkeys(token for token in tokenize(text) if token not in self.ids))

    def token(self, index: int) -> str:
        """The token with id `index`."""
        return self.tokens[check_token_id(index, self.vocab_size)]

    def decode(self, ids) -> str:
        """The tokens of `ids` joined by single spaces."""
        return " ".join(self.token(index) for index in ids)
