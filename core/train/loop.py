"""`train(model, settings)`: training the GPT on a corpus of sentences, with honest curves.

Two modes:
- "head": the blocks are frozen and only `lm_head` learns (softmax regression on the final
  LayerNorm's output): the blocks mix context, the head learns to read it. Fast.
- "full": every parameter learns by backpropagation (core.train.backward), with dropout.

Both use AdamW (decoupled weight decay on the matrices of linear layers and lm_head only:
never on biases, LayerNorm parameters or the embeddings), clipping of the global gradient
norm, and a learning rate that warms up linearly and then follows a cosine down to a tenth
(core.train.optim). The batches are windows of the corpus's token stream (core.train.data);
the settings are a `TrainSettings` (core.train.settings).

Evaluation every `eval_every` steps and at the end: `val_loss`, the mean next-token loss on a
held-out `val_fraction` of the sentences (core.text.corpus.split_corpus), and the next-word top-1
`accuracy` and perplexity on the held-out prompts (core.text.corpus.heldout_scores).

The model passed in is never left half-updated: training works on a copy and writes it back
into `model.params` only when it ends (all steps done, or stopped by the callback). Training
that diverges stops too (`divergence`: a loss or gradient norm that is not finite, a loss far
above the first step's, an exploding gradient norm, or an update that makes a parameter
non-finite, the last one included); the parameters written back are then the last ones whose
loss was accepted, `History.diverged` is True and `History.stop_reason` says what happened.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np

from core.model.forward import final_features, gpt_forward
from core.model.params import HEAD, init_params
from core.native.parallel import beside, cores, matmul
from core.text.corpus import heldout_scores, load_corpus, load_heldout, split_corpus
from core.train import backward
from core.train.data import (
    MAX_UNKNOWN_FRACTION,
    BatchSampler,
    TokenStream,
    corpus_sentences,
    token_stream,
)
from core.train.history import RECORD_KEYS, History
from core.train.optim import AdamW, clip_gradients, learning_rate
from core.train.settings import TrainSettings

DIVERGED_LOSS_FACTOR, DIVERGED_LOSS_MARGIN = 3.0, 1.0  # diverged: loss > 3 x the first step's + 1 nat
DIVERGED_GRAD_FACTOR, DIVERGED_GRAD_FLOOR = 1000.0, 100.0  # or gradient norm > 1000 x the first's (and > 100)


@dataclass
class _Snapshot:
    """params + config + tokenizer with the `.forward(ids)` that core.text.corpus.heldout_scores calls."""

    params: dict
    config: object
    tokenizer: object

    def forward(self, ids):
        return gpt_forward(self.params, self.config, ids)


def validation_loss(params, config, stream: TokenStream, seq_len: int, chunk: int = 256) -> float:
    """Mean next-token loss over every validation sentence's window, `chunk` windows per forward pass."""
    total, count = 0.0, len(stream.starts)
    for first in range(0, count, chunk):
        inputs, targets = stream.windows(np.arange(first, min(first + chunk, count)), seq_len)
        total += backward.softmax_cross_entropy(gpt_forward(params, config, inputs), targets)[0] * len(inputs)
    return total / count


def usable_heldout(tokenizer, heldout, n_positions: int) -> list[tuple[str, str]]:
    """The held-out pairs this model can score: expected word one known token, prompt within context."""
    return [(prompt, expected) for prompt, expected in heldout
            if len(tokenizer.encode(expected)) == 1 and tokenizer.encode(expected)[0] != tokenizer.unk_id
            and 0 < len(tokenizer.encode(prompt)) <= n_positions]


def _evaluate(params, config, tokenizer, validation, seq_len, heldout) -> dict:
    """val_loss, accuracy and heldout_perplexity of the current parameters (None where there is no data)."""
    result = {}
    if validation is not None:
        result["val_loss"] = validation_loss(params, config, validation, seq_len)
    if heldout:
        scores = heldout_scores(_Snapshot(params, config, tokenizer), heldout)
        result.update(accuracy=scores["accuracy"], heldout_perplexity=scores["perplexity"])
    return result


def _prepare_data(tokenizer, corpus, seq_len, batch_size, val_fraction, seed):
    """(train stream, validation stream or None)."""
    sentences = corpus_sentences(corpus)
    if not sentences:
        raise ValueError("the corpus is empty: it needs sentences, one a line")
    validation = None
    if val_fraction:
        sentences, held = split_corpus(sentences, val_fraction, seed)
        validation = token_stream(tokenizer, held, seq_len, "validation part of the corpus",
                                  "use a larger val_fraction, or val_fraction=0 for no validation loss")
    stream = token_stream(tokenizer, sentences, seq_len)
    if batch_size > len(stream.starts):
        raise ValueError(f"batch_size {batch_size} is larger than the {len(stream.starts)} training sentences "
                         f"of the corpus; use a smaller batch")
    total = len(stream.ids) - seq_len - 1
    if stream.unknown_tokens > MAX_UNKNOWN_FRACTION * total:
        raise ValueError(f"{stream.unknown_tokens} of the corpus's {total} tokens are outside the model's "
                         f"vocabulary (e.g. {', '.join(stream.unknown_words[:5])}): train a fresh model, whose "
                         f"vocabulary is built from this corpus")
    if stream.unknown_tokens:
        warnings.warn(f"{stream.unknown_tokens} corpus tokens are outside the model's vocabulary and were mapped "
                      f"to <unk>: {', '.join(stream.unknown_words[:10])}"
                      f"{' ...' if len(stream.unknown_words) > 10 else ''}", UserWarning, stacklevel=3)
    return stream, validation


def divergence(loss: float, grad_norm: float, first: tuple[float, float] | None) -> str | None:
    """Why this step's loss and gradient norm mean training has diverged, or None.
    `first`: the first step's (loss, gradient norm); None at the first step."""
    if not (math.isfinite(loss) and math.isfinite(grad_norm)):
        return f"the loss became {loss} (gradient norm {grad_norm})"
    if first is None:
        return None
    first_loss, first_norm = first
    if loss > DIVERGED_LOSS_FACTOR * first_loss + DIVERGED_LOSS_MARGIN:
        return (f"the loss rose to {loss:.4g}, from {first_loss:.4g} at the first step "
                f"(the limit is {DIVERGED_LOSS_FACTOR:g} x that + {DIVERGED_LOSS_MARGIN:g})")
    if grad_norm > DIVERGED_GRAD_FACTOR * first_norm and grad_norm > DIVERGED_GRAD_FLOOR:
        return (f"the gradient norm exploded to {grad_norm:.4g}, {grad_norm / first_norm:.0f} times "
                f"its first value {first_norm:.4g}")
    return None


def head_share(params, config, ids, targets) -> tuple[float, np.ndarray]:
    """Head mode on one share of the batch, ids and targets [b, L]: (mean loss, d_lm_head [V, C])."""
    with np.errstate(over="ignore", invalid="ignore"):  # as in _Trainer.gradients (a pool thread has its own state)
        features = final_features(params, config, ids)  # [b, L, C]: the frozen blocks
        logits = matmul(features, params[HEAD].T)  # [b, L, C] @ [C, V] -> [b, L, V]
        loss, d_logits = backward.softmax_cross_entropy(logits, targets)
        return loss, backward.lm_head_weight_gradient(d_logits, features)


def head_gradients(params, config, inputs, targets) -> tuple[float, np.ndarray]:
    """Head mode's (mean loss, d_lm_head) for a batch [B, L]: the batch cut into one share of its
    sequences per core, the shares run at once on the shared pool (NumPy and the C kernels release
    the GIL; a share's own products then stay in its thread), their means weighted by their sizes."""
    shares = np.array_split(np.arange(len(inputs)), min(cores(), len(inputs)))  # sequence numbers per share
    running = [beside(head_share, params, config, inputs[rows], targets[rows]) for rows in shares]
    results = [future.result() for future in running]
    weights = [len(rows) / len(inputs) for rows in shares]
    loss = sum(weight * share_loss for weight, (share_loss, _) in zip(weights, results))
    grad = sum(weight * share_grad for weight, (_, share_grad) in zip(weights, results))  # [V, C]
    return loss, grad


class _Trainer:
    """The working copy of the parameters and everything that updates it, one step at a time."""

    def __init__(self, model, settings: TrainSettings):
        start = init_params(model.config, settings.seed) if settings.from_scratch else model.params
        dtype = next(iter(model.params.values())).dtype
        self.params = {name: np.array(value, dtype=dtype) for name, value in start.items()}  # the working copy
        self.trained = [HEAD] if settings.mode == "head" else list(self.params)
        self.last_good = {name: self.params[name].copy() for name in self.trained}  # gave the last accepted loss
        self.optimizer = AdamW({name: self.params[name] for name in self.trained},
                               weight_decay=settings.weight_decay)
        self.config, self.mode, self.grad_clip = model.config, settings.mode, settings.grad_clip
        self.dropout = settings.dropout if settings.mode == "full" else 0.0
        self.rng = np.random.default_rng(settings.seed)  # batches and dropout masks

    def gradients(self, inputs, targets) -> tuple[float, float, dict]:
        """(loss, gradient norm before clipping, clipped grads of the trained parameters) for one batch."""
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging model: reported, not warned about
            if self.mode == "head":
                loss, head_grad = head_gradients(self.params, self.config, inputs, targets)
                grads = {HEAD: head_grad}
            else:
                cache = {}
                logits = gpt_forward(self.params, self.config, inputs, cache=cache, dropout=self.dropout,
                                     rng=self.rng, record_scores=False)
                loss, d_logits = backward.softmax_cross_entropy(logits, targets)
                grads = backward.gpt_backward(self.params, self.config, cache, d_logits)
            grad_norm = clip_gradients(grads, self.grad_clip)
        return loss, grad_norm, grads

    def update(self, grads: dict, lr: float) -> bool:
        """One AdamW update from parameters that gave an accepted loss (kept as the last good ones);
        False, with the parameters put back, when the update made any of them non-finite."""
        for name in self.trained:
            self.last_good[name][...] = self.params[name]
        with np.errstate(over="ignore", invalid="ignore"):
            self.optimizer.step(self.params, grads, lr)
        if all(np.isfinite(self.params[name]).all() for name in self.trained):
            return True
        self.restore()
        return False

    def restore(self) -> None:
        """Back to the last parameters that gave an accepted loss."""
        for name in self.trained:
            self.params[name][...] = self.last_good[name]


def _check_fits(settings: TrainSettings, config) -> None:
    if settings.seq_len is not None and settings.seq_len > config.n_positions:
        raise ValueError(f"seq_len {settings.seq_len} is longer than the model's context of "
                         f"{config.n_positions} positions")


def train(model, settings: TrainSettings = TrainSettings(), *, corpus=None, heldout=None, callback=None) -> History:
    """Train `model` (its .params, .config, .tokenizer) as `settings` say and return the History.

    corpus: sentences (a list of strings, or one string with a sentence a line); None = the bundled one.
    heldout: (prompt, expected word) pairs; None = core/data/heldout.tsv.
    callback(record, params) runs after every step (params: the live working copy, read-only);
    returning False stops training there.
    Training stops early, with History.diverged and the last good parameters, when it diverges
    (see `divergence`) or an update makes a parameter non-finite.
    """
    if not isinstance(settings, TrainSettings):
        raise TypeError(f"settings must be a TrainSettings, got {type(settings).__name__}")
    config, tokenizer = model.config, model.tokenizer
    _check_fits(settings, config)
    recorded = settings.recorded(config)
    seq_len, steps = recorded["seq_len"], settings.steps
    stream, validation = _prepare_data(tokenizer, load_corpus() if corpus is None else corpus, seq_len,
                                       settings.batch_size, settings.val_fraction, settings.seed)
    heldout = usable_heldout(tokenizer, load_heldout() if heldout is None else heldout, config.n_positions)
    trainer = _Trainer(model, settings)
    sampler = BatchSampler(len(stream.starts), settings.batch_size, trainer.rng)
    history = History(settings=dict(
        recorded, train_sentences=len(stream.starts), heldout_prompts=len(heldout),
        unknown_tokens=stream.unknown_tokens, unknown_words=stream.unknown_words))
    began, first = time.perf_counter(), None
    for step in range(1, steps + 1):
        step_began = time.perf_counter()
        inputs, targets = stream.windows(sampler.next(), seq_len)
        step_lr = learning_rate(step, peak=settings.peak_lr, warmup_steps=settings.warmup, total_steps=steps)
        loss, grad_norm, grads = trainer.gradients(inputs, targets)
        problem, kept = divergence(loss, grad_norm, first), max(1, step - 1)  # kept: that step's start
        if problem is None and not trainer.update(grads, step_lr):
            problem, kept = f"the update at learning rate {step_lr:.3g} made parameters non-finite", step
        if problem is not None:
            trainer.restore()
            _stop_diverged(history, step, problem, kept)
            break
        first = first or (loss, grad_norm)
        record = dict.fromkeys(RECORD_KEYS)
        record.update(step=step, train_loss=loss, lr=step_lr, grad_norm=grad_norm,
                      tokens_per_s=inputs.size / (time.perf_counter() - step_began))
        if step % settings.eval_every == 0 or step == steps:
            record.update(_evaluate(trainer.params, config, tokenizer, validation, seq_len, heldout))
        record["elapsed_s"] = time.perf_counter() - began
        history.records.append(record)
        if callback is not None and callback(record, trainer.params) is False:
            history.stop_reason = f"stopped by the callback after step {step}"
            break
    model.params.update(trainer.params)
    return history


def _stop_diverged(history: History, step: int, problem: str, kept_step: int) -> None:
    """kept_step: the step whose starting parameters were kept."""
    kept = f"those step {kept_step} started from" if kept_step > 1 else "the starting ones"
    history.stop_reason = (f"training diverged at step {step}: {problem}; it stopped and kept the last good "
                           f"parameters ({kept})")
    history.diverged = True
