"""GPT-2's byte-level BPE tokenizer, through Hugging Face's `tokenizers` (no BPE by hand).

`BPETokenizer` has the word-level `core.text.words.WordTokenizer`'s interface: `encode`, `decode`,
`tokens` (display strings, index = id), `token(i)`, `vocab_size`, `eos_id`,
`unknown_words` (always []: every text has a byte-level encoding) and `kind` ("bpe").
Ids are exactly GPT-2's and `decode(encode(text)) == text` for any text.

Display strings show a token as a learner reads it: its bytes decoded as UTF-8, a space as
"␣" (GPT-2's vocabulary writes it "Ġ"), a newline as "↵", a tab as "⇥", and the bytes of a
character split across tokens as bytes ("<0xE2>"), never as mojibake.
"""
from __future__ import annotations

from functools import cached_property

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, pre_tokenizers
from tokenizers.models import BPE

from core import checks
from core.checks import is_whole
from core.text.words import END_OF_TEXT, check_token_id

VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥"}


def byte_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the printable character standing for each byte -> the byte
    (`bytes_to_unicode` in GPT-2's encoder.py, inverted)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    alphabet, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            alphabet[chr(byte)] = byte
        else:
            alphabet[chr(256 + shifted)] = byte
            shifted += 1
    return alphabet


BYTE_ALPHABET = byte_alphabet()


def display(raw: bytes) -> str:
    """A token's bytes for display: UTF-8 characters (spaces, newlines and tabs made visible),
    and each byte that is not part of a whole character as <0xNN>."""
    pieces, start = [], 0
    while start < len(raw):
        for size in (1, 2, 3, 4):
            try:
                character = raw[start:start + size].decode("utf-8")
            except UnicodeDecodeError:
                continue
            pieces.append(VISIBLE.get(character, character if character.isprintable() else f"<0x{raw[start]:02X}>"))
            start += size
            break
        else:
            pieces.append(f"<0x{raw[start]:02X}>")
            start += 1
    return "".join(pieces)


class BPETokenizer:
    """GPT-2's byte-level BPE around a `tokenizers.Tokenizer`; `eos_id` is the end-of-text token's id."""

    kind = "bpe"
    unk_id = None  # byte-level: nothing is ever unknown

    def __init__(self, tokenizer: HFTokenizer, eos_id: int):
        if not isinstance(tokenizer, HFTokenizer):
            raise TypeError(f"tokenizer must be a tokenizers.Tokenizer, got {type(tokenizer).__name__}")
        self._tokenizer = tokenizer
        vocab = tokenizer.get_vocab()  # {token: id}, added tokens included
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise ValueError("the vocabulary's ids must be 0..n-1, each once")
        self._raw = sorted(vocab, key=vocab.get)  # [V] tokens as GPT-2's vocabulary writes them
        self._specials = {added.content for added in tokenizer.get_added_tokens_decoder().values()}
        foreign = set("".join(token for token in self._raw if token not in self._specials)) - BYTE_ALPHABET.keys()
        if foreign:
            raise ValueError(f"not a byte-level BPE vocabulary (GPT-2's): it uses characters such as "
                             f"{sorted(foreign)[:3]!r} outside GPT-2's byte alphabet")
        if not (is_whole(eos_id) and 0 <= eos_id < len(self._raw)):
            raise ValueError(f"the end-of-text id must be a token id (0..{len(self._raw) - 1}), got {eos_id!r}")
        self.eos_id = int(eos_id)

    @classmethod
    def from_vocab_and_merges(cls, vocab_file, merges_file, eos_id: int | None = None) -> BPETokenizer:
        """GPT-2's tokenizer from vocab.json ({token: id}) and merges.txt (GPT-2's settings:
        byte-level pre-tokenizer with GPT-2's regex, no prefix space; `<|endoftext|>` special)."""
        tokenizer = HFTokenizer(BPE.from_file(str(vocab_file), str(merges_file)))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        end_of_text = tokenizer.token_to_id(END_OF_TEXT)
        if end_of_text is not None:
            tokenizer.add_special_tokens([END_OF_TEXT])
        return cls(tokenizer, end_of_text if eos_id is None else eos_id)

    @classmethod
    def from_json(cls, text: str, eos_id: int | None = None) -> BPETokenizer:
        """From tokenizer.json's text (as `tokenizers` writes it); must be a byte-level BPE."""
        tokenizer = HFTokenizer.from_str(text)
        if eos_id is None:
            eos_id = tokenizer.token_to_id(END_OF_TEXT)
        return cls(tokenizer, eos_id)

    def to_json(self) -> str:
        """tokenizer.json's text (what `from_json` reads)."""
        return self._tokenizer.to_str()

    @property
    def vocab_size(self) -> int:
        return len(self._raw)

    @cached_property
    def tokens(self) -> list[str]:
        """The display string of every token, index = id."""
        return [token if token in self._specials else display(bytes(BYTE_ALPHABET[c] for c in token))
                for token in self._raw]

    def token(self, index: int) -> str:
        """The display string of token id `index`."""
        return self.tokens[check_token_id(index, self.vocab_size)]

    def encode(self, text: str) -> list[int]:
        """GPT-2's token ids of `text` (`<|endoftext|>` in the text is the end-of-text token)."""
        checks.text(text)
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        """The text of token ids `ids` (a character split across the ids' ends shows as "�")."""
        ids = list(ids)
        for index in ids:
            self.token(index)  # TypeError / ValueError for a bad id
        return self._tokenizer.decode([int(index) for index in ids], skip_special_tokens=False)

    def unknown_words(self, text: str) -> list[str]:
        """Always []: byte-level BPE encodes any text."""
        return []
