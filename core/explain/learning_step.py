"""Watch learning happen: one training step taken apart.

For a model and a seeded batch of the bundled corpus: the loss, the gradient norm of each
parameter group (core.train.backward's gradients, measured with core.train.optim.clip_gradients), the
parameters after one update, and what that update does to a prompt: its next-token distribution
and one head's attention pattern before and after. Also how a prompt's next-token distribution
moved between consecutive snapshots of a training run.

The update is plain SGD by default (params -= lr * grad): the step is then exactly the gradient
shown, scaled, so the per-group norms say which parts move most. "adamw" is one step of
core.train.optim.AdamW from fresh moments, as at the first step of a training run: its moments are
still g and g^2, so every parameter moves by about lr whatever the size of its gradient (the
sign of the gradient, scaled), which hides what the norms say; it is offered for comparison.
Neither step clips the gradient or uses dropout, so a step is deterministic given the batch.

Pure NumPy, no Streamlit. L = tokens, C = n_embd, V = vocab_size, B = batch size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.checks import choice, index, is_number
from core.explain.stream import distribution_change
from core.model.forward import gpt_forward
from core.model.model import Model
from core.model.params import HEAD
from core.text.corpus import load_corpus
from core.train import backward
from core.train.data import BatchSampler, token_stream
from core.train.optim import AdamW, clip_gradients
from core.train.settings import TrainSettings, trainability

OPTIMIZERS = ("sgd", "adamw")
STEP_BATCH = 8  # sentences in the batch of the step shown (training's default is 32: one step stays quick)
MAX_STEP_LENGTH = 64  # tokens per window at most (the toy model's context is 32), for the same reason
MAX_STEP_PARAMETERS = 5_000_000  # a step of a larger model (GPT-2 small: 124M) takes seconds and gigabytes


def step_refusal(model) -> str | None:
    """None when one step of `model` can be taken here; otherwise a sentence saying why not
    (BPE / GPT-2-family models cannot be trained here; a tied head or a large model is refused too)."""
    reason = trainability(model)
    if reason is None and HEAD not in model.params:
        reason = "This model's output head is tied to the token embedding; core.train.backward needs its own lm_head."
    count = sum(int(value.size) for value in model.params.values())
    if reason is None and count > MAX_STEP_PARAMETERS:
        reason = (f"This model has {count:,} parameters; one step is taken apart here for models of at most "
                  f"{MAX_STEP_PARAMETERS:,}, so that it stays quick.")
    return reason


def parameter_group(name: str) -> str:
    """The group a parameter is shown in: embeddings, block N attention / MLP / LayerNorms,
    final LayerNorm, output head."""
    if name.startswith(("transformer.wte.", "transformer.wpe.")):
        return "embeddings"
    if name.startswith("transformer.ln_f."):
        return "final LayerNorm"
    if name == HEAD:
        return "output head"
    layer, part = name.split(".")[2], name.split(".")[3]  # transformer.h.<layer>.<part>....
    kind = {"attn": "attention", "mlp": "MLP", "ln_1": "LayerNorms", "ln_2": "LayerNorms"}[part]
    return f"block {layer} {kind}"


def group_names(params: dict) -> list[str]:
    """The groups of these parameters, in the model's order (embeddings first, output head last)."""
    return list(dict.fromkeys(parameter_group(name) for name in params))


def step_batch(model, batch_size: int = STEP_BATCH, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), both [B, seq_len]: the first batch a seeded training run would draw
    from the bundled corpus (windows of n_positions tokens, at most MAX_STEP_LENGTH, starting at
    sentence starts)."""
    seq_len = min(TrainSettings().recorded(model.config)["seq_len"], MAX_STEP_LENGTH)
    stream = token_stream(model.tokenizer, load_corpus(), seq_len)
    sampler = BatchSampler(len(stream.starts), batch_size, np.random.default_rng(seed))
    return stream.windows(sampler.next(), seq_len)


def batch_loss(params: dict, config, inputs, targets) -> float:
    """Mean next-token cross-entropy of `params` on the batch."""
    return backward.softmax_cross_entropy(gpt_forward(params, config, inputs), targets)[0]


def batch_gradients(params: dict, config, inputs, targets) -> tuple[float, dict]:
    """(loss, gradient of every parameter) on the batch: core.train.backward, no dropout, no clipping."""
    cache = {}
    logits = gpt_forward(params, config, inputs, cache=cache)  # [B, L, V]
    loss, d_logits = backward.softmax_cross_entropy(logits, targets)
    return loss, backward.gpt_backward(params, config, cache, d_logits)


def group_norms(grads: dict) -> dict[str, float]:
    """L2 norm of the gradient of each parameter group (their root sum of squares is the global norm)."""
    groups = {}
    for name, grad in grads.items():
        groups.setdefault(parameter_group(name), {})[name] = grad
    return {group: clip_gradients(members, math.inf) for group, members in groups.items()}  # inf: measure only


def updated_params(params: dict, grads: dict, lr: float, optimizer: str = "sgd") -> dict:
    """New parameters after one update (the old ones are not touched): plain SGD or one AdamW step
    from fresh moments (training's weight decay)."""
    choice(optimizer, OPTIMIZERS, "optimizer")
    if not (is_number(lr) and math.isfinite(lr) and lr >= 0):
        raise ValueError(f"lr must be a number >= 0, got {lr!r}")
    new = {name: np.array(value) for name, value in params.items()}  # copies
    if optimizer == "sgd":
        for name, grad in grads.items():
            new[name] -= np.asarray(lr * grad, dtype=new[name].dtype)
    else:
        AdamW(new, weight_decay=TrainSettings().weight_decay).step(new, grads, lr)
    return new


@dataclass
class LearningStep:
    """One update on one batch, and how it went."""

    lr: float
    optimizer: str
    loss_before: float
    loss_after: float
    norms: dict[str, float]  # gradient norm per parameter group
    total_norm: float  # global gradient norm (what training clips)
    params_after: dict


def one_training_step(model, lr: float, optimizer: str = "sgd", *, grads=None,
                      batch=None) -> LearningStep:
    """One update of `model.params` (left unchanged) on the seeded batch.
    grads: (loss, grads) from `batch_gradients`, to try several learning rates without a new backward pass."""
    reason = step_refusal(model)
    if reason is not None:
        raise ValueError(reason)
    inputs, targets = step_batch(model) if batch is None else batch
    loss, gradients = batch_gradients(model.params, model.config, inputs, targets) if grads is None else grads
    after = updated_params(model.params, gradients, lr, optimizer)
    return LearningStep(lr=float(lr), optimizer=optimizer, loss_before=loss,
                        loss_after=batch_loss(after, model.config, inputs, targets),
                        norms=group_norms(gradients), total_norm=clip_gradients(dict(gradients), math.inf),
                        params_after=after)


def prompt_change(model, params_after: dict, ids, layer: int, head: int) -> dict:
    """What a change of parameters does to a prompt: `distribution` (core.explain.stream.distribution_change
    of the next-token probabilities, before -> after), and one head's attention pattern
    `pattern_before`, `pattern_after` and `pattern_change` = after - before, each [L, L], and
    `largest_pattern_change` (the largest |change| of one weight)."""
    layer = index(layer, model.config.n_layer, "layer")
    head = index(head, model.config.n_head, "head")
    before = model.run(ids)
    after = Model(model.config, params_after, model.tokenizer).run(ids)
    pattern_before = before.layers[layer].weights[head].astype(np.float64)  # [L, L]
    pattern_after = after.layers[layer].weights[head].astype(np.float64)  # [L, L]
    return {"distribution": distribution_change(before.next_token_probs, after.next_token_probs),
            "pattern_before": pattern_before, "pattern_after": pattern_after,
            "pattern_change": pattern_after - pattern_before,
            "largest_pattern_change": float(np.abs(pattern_after - pattern_before).max())}


def snapshot_moves(config, tokenizer, snapshots, ids, count: int = 5) -> list[dict]:
    """How the prompt's next-token distribution moved between consecutive snapshots
    [(step, params), ...]: for each pair `from_step`, `to_step`, `total_variation`, `kl` (bits,
    core.explain.stream.distribution_change) and `top` (the most likely token at `to_step`, with its probability)."""
    probabilities = [(step, Model(config, params, tokenizer).run(ids).next_token_probs)
                     for step, params in snapshots]
    moves = []
    for (first, before), (second, after) in zip(probabilities, probabilities[1:]):
        change = distribution_change(before, after, count)
        best = int(np.argmax(after))
        moves.append({"from_step": first, "to_step": second, "total_variation": change["total_variation"],
                      "kl": change["kl"], "top": tokenizer.token(best), "top_probability": float(after[best])})
    return moves
