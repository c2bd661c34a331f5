"""`python -m core fetch gpt2 --to models/gpt2`: download a checkpoint from the Hugging Face hub
(the optional extra: `pip install -e '.[hub]'`), only the files Glassbox reads: GPT-2's family, or
the Llama family (Llama, Qwen 2/2.5/3, Mistral, SmolLM2: `python -m core fetch
HuggingFaceTB/SmolLM2-135M --to models/smollm2-135m`).

Nothing else in Glassbox touches the network. The files land in a temporary folder beside
`--to`, are loaded once to check them, then renamed into place.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import core
from core.io.checkpoint import check_target

# what core.io.checkpoint reads, at the repository's top level: safetensors weights (one file, or
# shards and their index), the config, tokenizer.json + tokenizer_config.json (or GPT-2's
# vocab.json + merges.txt). Never pytorch_model.bin or *.pth (pickles, which can run code when
# loaded), other frameworks' weights, or a second copy of the weights (Mistral's
# consolidated.safetensors, Llama's original/ folder).
FILES = ["config.json", "model.safetensors", "model.safetensors.index.json", "model-*-of-*.safetensors",
         "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"]


def add_arguments(parser) -> None:
    parser.add_argument("model", help="a model on the Hugging Face hub: gpt2, distilgpt2, gpt2-medium, "
                                      "HuggingFaceTB/SmolLM2-135M, Qwen/Qwen2.5-0.5B, Qwen/Qwen3-0.6B, ...")
    parser.add_argument("--to", metavar="DIR", required=True, help="the folder to create, e.g. models/gpt2")
    parser.add_argument("--revision", default=None, help="a branch, tag or commit (default: main)")
    parser.add_argument("--force", action="store_true", help="replace DIR if it already holds a checkpoint")


def download(model: str, folder: Path, revision: str | None) -> None:
    """snapshot_download of FILES into `folder`; RuntimeError with one line when it cannot."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise RuntimeError("fetching needs huggingface_hub: pip install -e '.[hub]'") from None
    try:
        snapshot_download(repo_id=model, revision=revision, local_dir=folder, allow_patterns=FILES)
    except Exception as error:  # offline, unknown model, HTTP errors: huggingface_hub raises many kinds
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RuntimeError(f"could not download {model!r} from the Hugging Face hub (offline? "
                           f"HF_HUB_OFFLINE set?): {type(error).__name__}: {reason[:200]}") from None
    if not any(folder.glob("*.safetensors")):  # e.g. a repository with pytorch_model.bin alone
        raise RuntimeError(f"{model!r} has no safetensors weights (model.safetensors or model-*-of-*.safetensors);"
                           " Glassbox never loads pickled weights such as pytorch_model.bin")


def run(args) -> int:
    target = Path(args.to)
    check_target(target, overwrite=args.force)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        download(args.model, staging, args.revision)
        shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping
        model = core.load_checkpoint(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    config = model.config
    print(f"{args.model} -> {target}: {config.n_layer} layers x {config.n_head} heads, n_embd {config.n_embd}, "
          f"{model.parameter_count:,} parameters, {model.tokenizer.kind} vocabulary of {config.vocab_size}")
    return 0
