"""The interface every tokenizer has: what `Model`, the trace, training and the dashboard use.

`WordTokenizer` (core.text.words), GPT-2's `BPETokenizer` (core.text.bpe) and `HFTokenizer`
(core.text.hf, any tokenizer.json) satisfy it; `isinstance(x, Tokenizer)` checks that the names
exist (a runtime-checkable Protocol checks names, not types).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Tokenizer(Protocol):
    kind: str  # "word" or "bpe": what `python -m core info` names and how a checkpoint saves it
    tokens: list[str]  # [V] display strings, index = id (special tokens as themselves)
    vocab_size: int  # V, the tokenizer's own count (a model's embedding may have more rows)
    eos_id: int | None  # the token that ends generation
    unk_id: int | None  # the unknown-word token, None when every text has an encoding

    def encode(self, text: str) -> list[int]:
        """The ids of `text`, with the begin-of-text token where the model expects one."""
        ...

    def decode(self, ids) -> str:
        """The text of `ids`."""
        ...

    def token(self, index: int) -> str:
        """The display string of id `index`; TypeError or ValueError for a bad id."""
        ...

    def unknown_words(self, text: str) -> list[str]:
        """The words of `text` the vocabulary lacks ([] for byte-level and byte-fallback BPE)."""
        ...
