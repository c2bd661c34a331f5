"""tokenizer.json tokenizers for the tests: Llama 3's and Qwen 3's real ones, and a small
SentencePiece-style BPE with byte fallback (Llama 2's kind).

`write_tokenizer(folder, kind)` writes `folder/tokenizer.json` and `folder/tokenizer_config.json`
and returns `folder` (a pathlib.Path); kind is "llama3", "qwen3" or "sentencepiece".

- "llama3", "qwen3": the files in tests/data/{kind}-tokenizer, unchanged (tokenizer.json is
  stored gzip-compressed; see NOTICE.md there). Llama 3's is the first hub version, whose
  post-processor is ByteLevel (no begin-of-text token added); `LLAMA3_TEMPLATE` is the
  TemplateProcessing later versions (Llama 3.1, 3.2) use, which adds `<|begin_of_text|>`.
- "sentencepiece": built here, not downloaded: a BPE trained with `tokenizers` on the bundled
  corpus, laid out like Llama 2's: `<unk>` `<s>` `</s>` (ids 0, 1, 2), the 256 byte tokens
  `<0x00>`..`<0xFF>` (ids 3..258), then the learnt pieces (SENTENCEPIECE_VOCAB_SIZE in all);
  Metaspace pre-tokenizer ("▁" for a space, one put before the text), byte fallback,
  a TemplateProcessing that puts `<s>` first and Llama 2's decoder; tokenizer_config.json says
  add_bos_token true.
"""
from __future__ import annotations

import gzip
import json
import shutil
from functools import lru_cache
from pathlib import Path

from helpers import ROOT

KINDS = ("llama3", "qwen3", "sentencepiece")
DATA = ROOT / "tests" / "data"
SENTENCEPIECE_SPECIALS = ("<unk>", "<s>", "</s>")
SENTENCEPIECE_LEARNT = 200  # the trainer's vocabulary: the 3 specials, the corpus's characters, merges
SENTENCEPIECE_VOCAB_SIZE = SENTENCEPIECE_LEARNT + 256
LLAMA3_TEMPLATE = {  # Llama 3.1's and 3.2's post-processor: <|begin_of_text|> before each sequence
    "type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
             {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
                                             "tokens": ["<|begin_of_text|>"]}},
}


def write_tokenizer(folder, kind: str) -> Path:
    """Write tokenizer.json + tokenizer_config.json of `kind` into `folder` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if kind in ("llama3", "qwen3"):
        source = DATA / f"{kind}-tokenizer"
        (folder / "tokenizer.json").write_bytes(_decompressed(kind))
        shutil.copyfile(source / "tokenizer_config.json", folder / "tokenizer_config.json")
    elif kind == "sentencepiece":
        (folder / "tokenizer.json").write_text(sentencepiece_json(), encoding="utf-8")
        config = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
                  "unk_token": "<unk>", "clean_up_tokenization_spaces": False,
                  "model_max_length": 2048, "tokenizer_class": "PreTrainedTokenizerFast"}
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    else:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return folder


@lru_cache(maxsize=2)
def _decompressed(kind: str) -> bytes:
    return gzip.decompress((DATA / f"{kind}-tokenizer" / "tokenizer.json.gz").read_bytes())


@lru_cache(maxsize=1)
def sentencepiece_json() -> str:
    """tokenizer.json's text of the small SentencePiece-style BPE (see the module's docstring)."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer

    from core.text.corpus import load_corpus

    # training splits at spaces ("▁" starts each word), as SentencePiece does, so no piece spans words
    trainer_tokenizer = Tokenizer(BPE(unk_token="<unk>"))
    trainer_tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = BpeTrainer(vocab_size=SENTENCEPIECE_LEARNT, special_tokens=list(SENTENCEPIECE_SPECIALS),
                         show_progress=False)
    trainer_tokenizer.train_from_iterator(load_corpus(), trainer)
    learnt = json.loads(trainer_tokenizer.to_str())["model"]
    pieces = [token for token in sorted(learnt["vocab"], key=learnt["vocab"].get)
              if token not in SENTENCEPIECE_SPECIALS]
    bytes_ = [f"<0x{byte:02X}>" for byte in range(256)]
    vocab = {token: index for index, token in enumerate([*SENTENCEPIECE_SPECIALS, *bytes_, *pieces])}
    merges = [tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge) for merge in learnt["merges"]]

    tokenizer = Tokenizer(BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.add_special_tokens(list(SENTENCEPIECE_SPECIALS))
    # Llama 2's conversion: "▁" before the text only (not after each special token), no splitting
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])])
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    return tokenizer.to_str()
