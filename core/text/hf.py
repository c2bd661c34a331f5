"""Any BPE tokenizer.json (today's open models: Llama 2 and 3, Qwen 2 and 3, Mistral, SmolLM),
through Hugging Face's `tokenizers` (no BPE by hand).

Two kinds of vocabulary are read, each told apart by tokenizer.json itself:
- byte-level BPE (GPT-2, Llama 3, Qwen, SmolLM: a `ByteLevel` pre-tokenizer or decoder): every
  byte is a printable character, a space is "Ġ";
- SentencePiece-style BPE (Llama 2, TinyLlama, Mistral: `Metaspace` or a "▁" normalizer), where
  a space is "▁" and, with `byte_fallback`, a character outside the vocabulary is spelt by
  byte tokens "<0xE2>" "<0x80>" ...

`HFTokenizer` has `core.text.tokenizer.Tokenizer`'s interface. Ids are exactly `tokenizers`'
own, plus the begin-of-text rule of tokenizer_config.json's `add_bos_token` (see `encode`).
Display strings reuse GPT-2's (`core.text.bpe.display`): a space as "␣", a newline as "↵",
a character split across tokens as its bytes "<0xE2>"; byte-fallback tokens as written
("<0xE2>"); special and added tokens as themselves ("<|begin_of_text|>", "<s>").
"""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

from tokenizers import Tokenizer as RustTokenizer

from core import checks
from core.checks import is_whole
from core.text.bpe import BYTE_ALPHABET, display
from core.text.words import check_token_id

TOKENIZER_FILE, TOKENIZER_CONFIG_FILE = "tokenizer.json", "tokenizer_config.json"
SPACE_MARK = "▁"  # SentencePiece's space (U+2581)


def _has_type(component, name: str) -> bool:
    """Whether a tokenizer.json component (a normalizer, pre-tokenizer or decoder, perhaps a
    Sequence of them) is or holds one of type `name`."""
    if isinstance(component, dict):
        return component.get("type") == name or any(_has_type(value, name) for value in component.values())
    if isinstance(component, list):
        return any(_has_type(value, name) for value in component)
    return False


def _token_content(value) -> str | None:
    """tokenizer_config.json's way of naming a token: a string, or {"content": string, ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class HFTokenizer:
    """A BPE tokenizer.json around a `tokenizers.Tokenizer`, with the model's begin-of-text rule.

    `style` is "byte-level" or "sentencepiece"; `bos_id` the begin-of-text token's id (None when
    the tokenizer has none); `add_bos` tokenizer_config.json's `add_bos_token` (None: absent)."""

    kind = "bpe"

    def __init__(self, tokenizer: RustTokenizer, *, eos_id: int | None, bos_id: int | None = None,
                 add_bos: bool | None = None, spec: dict | None = None):
        """`spec`: tokenizer.json's dict when the caller has it (it saves writing and parsing it again)."""
        if not isinstance(tokenizer, RustTokenizer):
            raise TypeError(f"tokenizer must be a tokenizers.Tokenizer, got {type(tokenizer).__name__}")
        if spec is None:
            spec = json.loads(tokenizer.to_str())
        model = spec.get("model") or {}
        if model.get("type") != "BPE":
            raise ValueError(f"only BPE tokenizers are read, this one is {model.get('type')!r}")
        vocab = tokenizer.get_vocab(with_added_tokens=True)  # {token: id}
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise ValueError("the vocabulary's ids must be 0..n-1, each once")
        self._tokenizer = tokenizer
        self._raw = sorted(vocab, key=vocab.get)  # [V] tokens as the vocabulary writes them
        self._added = {added.content for added in tokenizer.get_added_tokens_decoder().values()}
        self.style = ("byte-level" if _has_type(spec.get("pre_tokenizer"), "ByteLevel")
                      or _has_type(spec.get("decoder"), "ByteLevel") else "sentencepiece")
        self.byte_fallback = bool(model.get("byte_fallback"))
        for name, value in (("eos_id", eos_id), ("bos_id", bos_id)):
            if value is not None and not (is_whole(value) and 0 <= value < len(self._raw)):
                raise ValueError(f"{name} must be a token id (0..{len(self._raw) - 1}), got {value!r}")
        if add_bos not in (None, True, False):
            raise TypeError(f"add_bos must be True, False or None, got {add_bos!r}")
        if add_bos and bos_id is None:
            raise ValueError("add_bos is set but there is no begin-of-text token")
        self.eos_id = None if eos_id is None else int(eos_id)
        self.bos_id = None if bos_id is None else int(bos_id)
        self.add_bos = add_bos
        unk = model.get("unk_token")
        self.unk_id = tokenizer.token_to_id(unk) if isinstance(unk, str) else None
        # whether the post-processor itself puts the begin-of-text token first (Llama 3.1's
        # TemplateProcessing does, Qwen's ByteLevel does not): the empty text shows it
        plain = tokenizer.encode("", add_special_tokens=True).ids
        self._processor_adds_bos = self.bos_id is not None and plain[:1] == [self.bos_id]

    @classmethod
    def from_json(cls, text: str, config: dict | None = None, eos_id: int | None = None) -> HFTokenizer:
        """From tokenizer.json's text and tokenizer_config.json's dict (None: absent).

        eos: the config's `eos_token`, else `eos_id` (config.json's `eos_token_id`); bos: the
        config's `bos_token`; `add_bos_token` from the config."""
        try:
            tokenizer = RustTokenizer.from_str(text)
        except Exception as error:  # tokenizers raises its own Exception type for bad files
            raise ValueError(f"not a tokenizers tokenizer.json: {str(error)[:300]}") from None
        return cls._build(tokenizer, config, eos_id, json.loads(text))

    @classmethod
    def _build(cls, tokenizer: RustTokenizer, config: dict | None, eos_id: int | None, spec: dict) -> HFTokenizer:
        config = config or {}
        if not isinstance(config, dict):
            raise ValueError(f"the tokenizer config must be a JSON object, got {type(config).__name__}")

        def token_id(key):
            content = _token_content(config.get(key))
            if content is None:
                return None
            index = tokenizer.token_to_id(content)
            if index is None:
                raise ValueError(f"{key} {content!r} is not in the vocabulary")
            return index

        add_bos = config.get("add_bos_token")
        if add_bos is not None:
            try:
                checks.flag(add_bos, "add_bos_token")
            except TypeError as error:  # a bad file, not a bad argument
                raise ValueError(str(error)) from None
        eos = token_id("eos_token")
        return cls(tokenizer, eos_id=eos_id if eos is None else eos, bos_id=token_id("bos_token"), add_bos=add_bos,
                   spec=spec)

    @classmethod
    def from_folder(cls, folder, eos_id: int | None = None, max_bytes: int = checks.MAX_JSON_BYTES) -> HFTokenizer:
        """From `folder`/tokenizer.json and, when present, `folder`/tokenizer_config.json; `eos_id`
        (config.json's `eos_token_id`) serves when tokenizer_config.json names no eos_token.
        ValueError naming the file for anything wrong."""
        folder = Path(folder)
        path, config_path = folder / TOKENIZER_FILE, folder / TOKENIZER_CONFIG_FILE
        spec, text = checks.json_file(path, "a tokenizer file", max_bytes)
        config = checks.json_file(config_path, "a tokenizer file", max_bytes)[0] if config_path.is_file() else None
        if config is not None and not isinstance(config, dict):
            raise ValueError(f"{config_path} must be a JSON object")
        try:
            tokenizer = RustTokenizer.from_str(text)
        except Exception as error:  # tokenizers raises its own Exception type for bad files
            raise ValueError(f"{path} is not a tokenizers tokenizer.json: {str(error)[:300]}") from None
        try:
            return cls._build(tokenizer, config, eos_id, spec)
        except (ValueError, TypeError) as error:  # a vocabulary, or a token the config names, that is wrong
            raise ValueError(f"{path} (with {config_path.name}): {error}") from None

    def to_json(self) -> str:
        """tokenizer.json's text (what `from_json` reads)."""
        return self._tokenizer.to_str()

    def tokenizer_config(self) -> dict:
        """What tokenizer_config.json must hold for `from_json` to rebuild this tokenizer: the
        begin- and end-of-text tokens and the begin-of-text rule (tokenizer.json alone loses them)."""
        config = {"tokenizer_class": "PreTrainedTokenizerFast"}
        for key, index in (("bos_token", self.bos_id), ("eos_token", self.eos_id)):
            if index is not None:
                config[key] = self._raw[index]
        if self.add_bos is not None:
            config["add_bos_token"] = self.add_bos
        return config

    @property
    def vocab_size(self) -> int:
        return len(self._raw)

    def _display(self, token: str) -> str:
        if token in self._added:
            return token
        if self.style == "byte-level":
            if set(token) <= BYTE_ALPHABET.keys():
                return display(bytes(BYTE_ALPHABET[c] for c in token))
            return token  # not a byte-level spelling: shown as written
        # a byte-fallback token "<0x41>" is ASCII and stays as written, apart from the token "A"
        return display(token.replace(SPACE_MARK, " ").encode("utf-8"))

    @cached_property
    def tokens(self) -> list[str]:
        """The display string of every token, index = id."""
        return [self._display(token) for token in self._raw]

    def token(self, index: int) -> str:
        """The display string of token id `index`."""
        return self.tokens[check_token_id(index, self.vocab_size)]

    def encode(self, text: str) -> list[int]:
        """The token ids of `text` (special-token strings typed in it are those tokens).

        The begin-of-text token: `add_bos` True puts it first (unless the post-processor does),
        False leaves it out (taking away the one the post-processor puts first), None leaves
        tokenizer.json's post-processor to decide."""
        checks.text(text)
        ids = self._tokenizer.encode(text, add_special_tokens=True).ids
        if self.add_bos and not self._processor_adds_bos:
            ids = [self.bos_id, *ids]
        elif self.add_bos is False and self._processor_adds_bos:
            ids = ids[1:]
        return ids

    @property
    def adds_bos(self) -> bool:
        """Whether `encode` puts the begin-of-text token first."""
        return bool(self.add_bos) or (self.add_bos is None and self._processor_adds_bos)

    def decode(self, ids) -> str:
        """The text of token ids `ids`; a first id that is the begin-of-text token `encode` adds is
        left out, so that `decode(encode(text)) == text` (up to the tokenizer's own normalisation:
        Qwen's NFC; a SentencePiece text's one leading space); every other special token is kept."""
        ids = [check_token_id(index, self.vocab_size) for index in ids]
        if self.adds_bos and ids[:1] == [self.bos_id]:
            ids = ids[1:]
        return self._tokenizer.decode(ids, skip_special_tokens=False)

    def unknown_words(self, text: str) -> list[str]:
        """The words of `text` (split at whitespace) that encode to the unknown token, each once:
        always [] for byte-level and byte-fallback BPE, which encode any text."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        if self.unk_id is None or self.byte_fallback or self.style == "byte-level":
            return []
        return list(dict.fromkeys(word for word in text.split()
                                  if self.unk_id in self._tokenizer.encode(word, add_special_tokens=False).ids))
