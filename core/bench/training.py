"""Training speed, measured fairly: Glassbox's training step against the same model in PyTorch.

`python -m core bench --training` times training steps on the bundled model's shape (a fresh
model over the bundled corpus's vocabulary, TrainSettings's recipe: batch 32 x 32 tokens, AdamW,
gradient clipping, dropout 0.1 in full mode) in two frameworks, side by side in one run:

- Glassbox: `core.train.loop.train` itself, as `python -m core train` runs it.
- PyTorch eager, when torch and transformers are importable: transformers' `GPT2LMHeadModel`
  with the same sizes, initial weights, batches, AdamW (same betas, eps and decay groups),
  learning-rate schedule, clipping and dropout, on one thread and on as many as Glassbox's
  attention kernel may use (`torch.set_num_threads`); the ratio is against the faster of the two.

Each (framework, mode) runs `warmup` untimed steps, then `steps` timed ones; the rounds
alternate between frameworks so that a busy machine slows both alike, and each figure is the
best round (the least disturbed). Evaluation is off: only training steps are timed.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np

from core.bench.peers import transformers_available, version
from core.bench.timing import kernel_threads  # Glassbox runs on the kernel's threads
from core.checks import is_whole
from core.model.config import GPTConfig
from core.model.model import Model
from core.model.params import HEAD, init_params
from core.text.corpus import load_corpus
from core.text.words import WordTokenizer
from core.train.data import BatchSampler, token_stream
from core.train.loop import train
from core.train.optim import decays, learning_rate
from core.train.settings import TrainSettings

FRAMEWORKS = ("glassbox", "pytorch")


def bundled_shape_model(seed: int = 0) -> Model:
    """A fresh model of the bundled model's shape over the bundled corpus's vocabulary."""
    tokenizer = WordTokenizer.from_texts(load_corpus())
    config = GPTConfig(vocab_size=tokenizer.vocab_size)
    return Model(config, init_params(config, seed), tokenizer)


def glassbox_seconds(mode: str, steps: int, warmup: int) -> float:
    """Wall time of `steps` training steps of core.train.loop.train, after `warmup` steps."""
    marks = {}
    total = warmup + steps

    def clock(record, params):
        if record["step"] in (warmup, total):
            marks[record["step"]] = time.perf_counter()

    settings = replace(TrainSettings(), mode=mode, steps=total, eval_every=total + 1, val_fraction=0.0)
    train(bundled_shape_model(), settings, heldout=[], callback=clock)  # no held-out prompts: no evaluation
    return marks[total] - marks[warmup]


def torch_model(model: Model, mode: str):
    """transformers' GPT2LMHeadModel with `model`'s sizes and weights, dropout as TrainSettings says."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config, dropout = model.config, TrainSettings().dropout if mode == "full" else 0.0
    hf_config = GPT2Config(vocab_size=config.vocab_size, n_positions=config.n_positions, n_embd=config.n_embd,
                           n_layer=config.n_layer, n_head=config.n_head, activation_function="gelu_new",
                           resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=0.0,  # as gpt_forward's dropout
                           layer_norm_epsilon=config.layer_norm_epsilon, tie_word_embeddings=False,
                           bos_token_id=model.tokenizer.eos_id, eos_token_id=model.tokenizer.eos_id)
    peer = GPT2LMHeadModel(hf_config)
    peer.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in model.params.items()},
                         strict=False)  # strict=False: the causal-mask buffers are not parameters
    peer.train()
    return peer


def torch_seconds(mode: str, steps: int, warmup: int, threads: int) -> float:
    """Wall time of `steps` PyTorch training steps (same recipe as train()), after `warmup` steps."""
    import torch

    torch.set_num_threads(threads)
    recipe, model = TrainSettings(mode=mode), bundled_shape_model()
    peer = torch_model(model, mode)
    named = dict(peer.named_parameters())
    trained = [HEAD] if mode == "head" else [name for name in named if name in model.params]
    for name, parameter in named.items():
        parameter.requires_grad_(name in trained)
    groups = [{"params": [named[name] for name in trained if decays(name)], "weight_decay": recipe.weight_decay},
              {"params": [named[name] for name in trained if not decays(name)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW([group for group in groups if group["params"]], lr=recipe.peak_lr,
                                  betas=(0.9, 0.95), eps=1e-8)
    seq_len, total = model.config.n_positions, warmup + steps
    stream = token_stream(model.tokenizer, load_corpus(), seq_len)
    sampler = BatchSampler(len(stream.starts), recipe.batch_size, np.random.default_rng(recipe.seed))
    began = None
    for step in range(1, total + 1):
        if step == warmup + 1:
            began = time.perf_counter()
        inputs, targets = (torch.from_numpy(array) for array in stream.windows(sampler.next(), seq_len))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, peak=recipe.peak_lr, warmup_steps=recipe.warmup, total_steps=total)
        logits = peer(inputs).logits  # [B, L, V]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([named[name] for name in trained], recipe.grad_clip)
        optimizer.step()
        loss.item()  # the loss is read every step, as train() records it
    return time.perf_counter() - began


def runners(peer: bool) -> list[tuple[str, int]]:
    """(framework, threads) to time: Glassbox as it runs, and PyTorch on one thread and on as many
    as Glassbox's kernel uses (on a busy machine its OpenMP threads can be far slower than one)."""
    threads = kernel_threads()
    return [("glassbox", threads)] + ([("pytorch", count) for count in sorted({1, threads})] if peer else [])


def run(*, steps: int = 30, warmup: int = 5, rounds: int = 3, peer: bool | None = None, progress=None) -> dict:
    """Best tokens/s per (framework, threads, mode) over `rounds` alternating rounds.

    Returns {"rows": [{framework, threads, mode, tokens_per_s, step_ms}], "torch": versions or None,
    "ratios": {mode: x}} where a ratio is Glassbox's tokens/s over PyTorch's best (above 1: Glassbox
    is faster)."""
    for name, value in (("steps", steps), ("warmup", warmup), ("rounds", rounds)):
        if not (is_whole(value) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    peer = transformers_available() if peer is None else peer
    tokens = steps * TrainSettings().batch_size * GPTConfig(vocab_size=3).n_positions
    best = {}
    for _ in range(rounds):
        for mode in ("full", "head"):
            for framework, threads in runners(peer):
                seconds = (glassbox_seconds(mode, steps, warmup) if framework == "glassbox"
                           else torch_seconds(mode, steps, warmup, threads))
                key = framework, threads, mode
                best[key] = min(seconds, best.get(key, math.inf))
                if progress is not None:
                    progress(framework, threads, mode, tokens / seconds)
    rows = [{"framework": framework, "threads": threads, "mode": mode, "tokens_per_s": tokens / seconds,
             "step_ms": 1e3 * seconds / steps} for (framework, threads, mode), seconds in best.items()]
    rows.sort(key=lambda row: (row["mode"] != "full", row["framework"], row["threads"]))
    ratios = {}
    for mode in ("full", "head"):
        peers = [row["tokens_per_s"] for row in rows if row["mode"] == mode and row["framework"] == "pytorch"]
        if peers:
            ours = next(row["tokens_per_s"] for row in rows if row["mode"] == mode and row["framework"] == "glassbox")
            ratios[mode] = ours / max(peers)
    versions = f"torch {version('torch')}, transformers {version('transformers')}" if peer else None
    return {"rows": rows, "torch": versions, "ratios": ratios}


def table(result: dict) -> list[str]:
    """The result of `run` as lines of text: one row per framework, threads and mode, then the ratios."""
    lines = [f"# training steps, bundled model's shape (batch 32 x 32 tokens, AdamW, clipping, dropout 0.1 in full "
             f"mode); best of the rounds; peer: {result['torch'] or 'not installed'}",
             f"{'framework':<16}{'threads':>8}  {'mode':<6}{'tokens/s':>10}{'ms/step':>10}"]
    for row in result["rows"]:
        name = "glassbox" if row["framework"] == "glassbox" else "pytorch eager"
        lines.append(f"{name:<16}{row['threads']:>8}  {row['mode']:<6}{row['tokens_per_s']:>10,.0f}"
                     f"{row['step_ms']:>10.1f}")
    for mode, ratio in result["ratios"].items():
        lines.append(f"{mode}: Glassbox runs at {ratio:.2f}x the tokens/s of PyTorch eager at its best")
    return lines
