"""`python -m core fetch` for GPT-2 and the Llama family, offline: huggingface_hub's
snapshot_download is replaced by a fake hub that serves a repository listing through the same
allow-pattern filter, so what is asked for (and what never is: pickles) is checked."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from core.cli import main
from core.cli.fetch import FILES, download

huggingface_hub = pytest.importorskip("huggingface_hub")
from huggingface_hub.utils import filter_repo_objects  # noqa: E402 (after the importorskip)

LLAMA_REPO = [  # meta-llama/Llama-3.2-1B's layout: one safetensors file, Meta's pickled original/ copy
    ".gitattributes", "LICENSE.txt", "README.md", "USE_POLICY.md", "config.json", "generation_config.json",
    "model.safetensors", "original/consolidated.00.pth", "original/params.json", "original/tokenizer.model",
    "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
SHARDED_REPO = [  # a Mistral-style repository: shards, an index, a second copy and pickles beside them
    "config.json", "consolidated.safetensors", "generation_config.json", "model-00001-of-00003.safetensors",
    "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json",
    "params.json", "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin",
    "pytorch_model.bin.index.json", "special_tokens_map.json", "tokenizer.json", "tokenizer.model",
    "tokenizer_config.json", "flax_model.msgpack", "tf_model.h5", "model.onnx", "training_args.bin"]
PICKLE_REPO = ["config.json", "pytorch_model.bin", "tokenizer.json", "tokenizer_config.json", "README.md"]


def fake_hub(monkeypatch, listing: list[str], source: Path | None = None) -> list[dict]:
    """Replace snapshot_download: it writes the files of `listing` that its allow_patterns select
    (huggingface_hub's own filter), copied from `source` when it holds them; returns its calls."""
    calls = []

    def snapshot_download(*, repo_id, revision=None, local_dir, allow_patterns=None, ignore_patterns=None, **rest):
        calls.append({"repo_id": repo_id, "allow_patterns": allow_patterns, "ignore_patterns": ignore_patterns})
        for name in filter_repo_objects(listing, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns):
            path = Path(local_dir) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if source is not None and (source / name).is_file():
                shutil.copyfile(source / name, path)
            else:
                path.write_bytes(b"fake " + name.encode())
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


def fetched(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def test_a_llama_repository_gives_weights_config_and_tokenizer_only(tmp_path, monkeypatch):
    calls = fake_hub(monkeypatch, LLAMA_REPO)
    download("meta-llama/Llama-3.2-1B", tmp_path, None)
    assert fetched(tmp_path) == {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    assert calls == [{"repo_id": "meta-llama/Llama-3.2-1B", "allow_patterns": FILES, "ignore_patterns": None}]


def test_a_sharded_repository_gives_the_shards_and_never_a_pickle(tmp_path, monkeypatch):
    fake_hub(monkeypatch, SHARDED_REPO)
    download("mistralai/Mistral-7B-v0.3", tmp_path, None)
    assert fetched(tmp_path) == {"config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                 "model-00003-of-00003.safetensors", "model.safetensors.index.json",
                                 "tokenizer.json", "tokenizer_config.json"}


def test_gpt2s_files_are_still_fetched(tmp_path, monkeypatch):
    fake_hub(monkeypatch, ["config.json", "merges.txt", "vocab.json", "model.safetensors", "pytorch_model.bin",
                           "tf_model.h5", "tokenizer.json", "64-8bits.tflite", "onnx/decoder_model.onnx"])
    download("gpt2", tmp_path, None)
    assert fetched(tmp_path) == {"config.json", "merges.txt", "vocab.json", "model.safetensors", "tokenizer.json"}


def test_a_pickle_only_repository_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    fake_hub(monkeypatch, PICKLE_REPO)
    assert main(["fetch", "someone/old-model", "--to", str(tmp_path / "models" / "old")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: 'someone/old-model' has no safetensors weights")
    assert "pytorch_model.bin" in error and "Traceback" not in error
    assert os.listdir(tmp_path / "models") == []  # the staging folder is gone


def test_a_whole_fetch_lands_a_loadable_checkpoint(tmp_path, monkeypatch, capsys):
    from helpers.gpt2 import write_gpt2_checkpoint

    hub = tmp_path / "hub"
    write_gpt2_checkpoint(hub, n_layer=1, n_head=2, n_embd=8, n_positions=16, vocab="corpus", tokenizer_json=True)
    fake_hub(monkeypatch, [*sorted(fetched(hub)), "pytorch_model.bin"], source=hub)
    assert main(["fetch", "tiny/gpt2", "--to", str(tmp_path / "models" / "tiny")]) == 0
    assert "tiny/gpt2 -> " in capsys.readouterr().out
    assert "pytorch_model.bin" not in fetched(tmp_path / "models" / "tiny")
    assert os.listdir(tmp_path / "models") == ["tiny"]


def test_a_whole_llama_fetch_lands_a_loadable_checkpoint(tmp_path, monkeypatch, capsys):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("torch")
    from helpers.tokenizers import SENTENCEPIECE_VOCAB_SIZE, write_tokenizer

    hub = tmp_path / "hub"
    config = transformers.LlamaConfig(vocab_size=SENTENCEPIECE_VOCAB_SIZE, hidden_size=16, intermediate_size=24,
                                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                      max_position_embeddings=32)
    transformers.LlamaForCausalLM(config).save_pretrained(hub)
    write_tokenizer(hub, "sentencepiece")
    fake_hub(monkeypatch, [*sorted(fetched(hub)), "pytorch_model.bin", "original/consolidated.00.pth"], source=hub)
    assert main(["fetch", "tiny/llama", "--to", str(tmp_path / "models" / "tiny")]) == 0
    assert "tiny/llama -> " in capsys.readouterr().out
    assert fetched(tmp_path / "models" / "tiny") == {"config.json", "model.safetensors", "tokenizer.json",
                                                     "tokenizer_config.json"}
