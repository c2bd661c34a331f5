"""Training the GPT on a corpus of sentences, with honest curves.

Two modes:
- "head": the blocks are frozen and only `lm_head` learns (softmax regression on the final
  LayerNorm's output): the blocks mix context, the head learns to read it. Fast.
- "full": every parameter learns by backpropagation (core.backward), with dropout.

Both use AdamW (decoupled weight decay on the matrices of linear layers and lm_head only:
never on biases, LayerNorm parameters or the embeddings), clipping of the global gradient
norm, and a learning rate that warms up linearly and then follows a cosine down to a tenth.

Data: each sentence becomes its tokens plus `<|endoftext|>`; the sentences, in order, form one
stream (read cyclically). A training example is `seq_len + 1` tokens starting at a sentence's
first token (inputs = the first seq_len, targets = the next), so position 0 is always a
sentence start, as in a prompt typed into the model; later positions carry on into the
following sentences. Batches draw sentence starts without repetition within an epoch.

Evaluation every `eval_every` steps and at the end: `val_loss`, the mean next-token loss on a
held-out `val_fraction` of the sentences (core.corpus.split_corpus), and the next-word top-1
`accuracy` and perplexity on the held-out prompts (core.corpus.heldout_scores).

The model passed in is never left half-updated: training works on a copy and writes it back
into `model.params` only when it ends (all steps done, or stopped by the callback). A loss or
gradient that is not finite stops training too; the parameters written back are then the last
ones that gave a finite loss (from before the previous update), and `History.stop_reason` says so.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core import backward
from core.checkpoint import HISTORY_FILE
from core.corpus import heldout_scores, load_corpus, load_heldout, split_corpus
from core.model import gpt_forward, init_params

MODES = ("head", "full")
DEFAULT_LR = {"head": 1e-2, "full": 3e-3}  # peak learning rate per mode
HEAD = "lm_head.weight"
MAX_UNKNOWN_FRACTION = 0.25  # above this share of <unk> tokens the corpus does not fit the vocabulary
RECORD_KEYS = ("step", "train_loss", "val_loss", "accuracy", "heldout_perplexity", "lr", "grad_norm",
               "tokens_per_s", "elapsed_s")


# --- optimisation pieces -----------------------------------------------------------------------

def learning_rate(step: int, *, peak: float, warmup_steps: int, total_steps: int, final_ratio: float = 0.1) -> float:
    """Linear warm-up to `peak` over steps 1..warmup_steps, then a cosine down to final_ratio * peak
    at total_steps (steps count from 1)."""
    if step <= warmup_steps:
        return peak * step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # 0 -> 1
    return peak * (final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def decays(name: str) -> bool:
    """Whether AdamW's weight decay applies: the linear layers' matrices and lm_head, nothing else."""
    return name == HEAD or name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight"))


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter), updating arrays in place."""

    def __init__(self, params: dict, *, weight_decay: float, betas=(0.9, 0.95), eps: float = 1e-8):
        self.weight_decay, self.betas, self.eps, self.steps = weight_decay, betas, eps, 0
        self.moments = {name: np.zeros_like(value) for name, value in params.items()}
        self.squares = {name: np.zeros_like(value) for name, value in params.items()}

    def step(self, params: dict, grads: dict, lr: float) -> None:
        """One update of every array in `grads` (a subset of the params given at construction)."""
        beta1, beta2 = self.betas
        self.steps += 1
        unbias1, unbias2 = 1.0 - beta1**self.steps, 1.0 - beta2**self.steps
        for name, grad in grads.items():
            param, moment, square = params[name], self.moments[name], self.squares[name]
            moment *= beta1
            moment += (1.0 - beta1) * grad
            square *= beta2
            square += (1.0 - beta2) * grad * grad
            if self.weight_decay and decays(name):
                param *= 1.0 - lr * self.weight_decay
            param -= lr * (moment / unbias1) / (np.sqrt(square / unbias2) + self.eps)


def clip_gradients(grads: dict, max_norm: float) -> float:
    """Scale every gradient in place so that their global L2 norm is at most max_norm;
    returns the norm before clipping (inf or nan when a gradient is not finite)."""
    norm = math.sqrt(sum(float(np.vdot(grad, grad)) for grad in grads.values()))
    if math.isfinite(norm) and norm > max_norm:
        for grad in grads.values():
            grad *= max_norm / norm
    return norm


# --- data ----------------------------------------------------------------------------------------

@dataclass
class TokenStream:
    """Sentences as one cyclic stream of ids, and where each sentence starts in it."""

    ids: np.ndarray  # [T + seq_len + 1]: the stream, then its beginning again (so every window fits)
    starts: np.ndarray  # [number of sentences]
    unknown_tokens: int  # how many tokens were mapped to <unk>
    unknown_words: list[str]  # those words, each once

    def windows(self, chosen: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets), both [len(chosen), seq_len], for the sentences chosen by index."""
        tokens = self.ids[self.starts[chosen][:, None] + np.arange(seq_len + 1)]  # [B, seq_len + 1]
        return tokens[:, :-1], tokens[:, 1:]


def _sentences(corpus) -> list[str]:
    if isinstance(corpus, str):
        corpus = corpus.splitlines()
    sentences = list(corpus)
    bad = [sentence for sentence in sentences if not isinstance(sentence, str)]
    if bad:
        raise TypeError(f"the corpus must hold strings (one sentence each), got {type(bad[0]).__name__}")
    return [sentence.strip() for sentence in sentences if sentence.strip()]


def token_stream(tokenizer, sentences: list[str], seq_len: int, what: str = "corpus",
                 remedy: str = "add sentences or use a shorter seq_len") -> TokenStream:
    """The stream of `sentences` for windows of seq_len + 1 tokens; ValueError if too short."""
    encoded = [tokenizer.encode(sentence) + [tokenizer.eos_id] for sentence in sentences]
    lengths = np.array([len(ids) for ids in encoded])
    total = int(lengths.sum())
    if total < seq_len + 1:
        raise ValueError(f"the {what} has {total} tokens, fewer than the {seq_len + 1} one training window needs: "
                         f"{remedy}")
    stream = np.concatenate(encoded)  # [T]
    stream = np.concatenate([stream, stream[:seq_len + 1]])  # cyclic: the last windows wrap around
    unknown = [word for sentence in sentences for word in tokenizer.unknown_words(sentence)]
    return TokenStream(ids=stream, starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]),
                       unknown_tokens=int((stream[:total] == tokenizer.unk_id).sum()),
                       unknown_words=list(dict.fromkeys(unknown)))


class BatchSampler:
    """Sentence indices in batches: a fresh seeded permutation each epoch, none repeated within one."""

    def __init__(self, count: int, batch_size: int, rng: np.random.Generator):
        self.count, self.batch_size, self.rng = count, batch_size, rng
        self.order, self.position = rng.permutation(count), 0

    def next(self) -> np.ndarray:
        if self.position + self.batch_size > self.count:
            self.order, self.position = self.rng.permutation(self.count), 0
        chosen = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return chosen


# --- the record of a run -----------------------------------------------------------------------

@dataclass
class History:
    """What a training run did: one record per step (RECORD_KEYS; evaluation fields None
    between evaluations), the settings it ran with, and why it stopped early (None if it did not)."""

    records: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    stop_reason: str | None = None

    def evaluations(self) -> list[dict]:
        """The records where the model was evaluated (validation loss and/or held-out accuracy)."""
        return [record for record in self.records
                if record.get("val_loss") is not None or record.get("accuracy") is not None]

    def to_json(self) -> str:
        """The records as a JSON list (what history.json holds), one record a line."""
        return "[\n" + ",\n".join(json.dumps(record) for record in self.records) + "\n]"

    def save(self, directory) -> Path:
        """Writes the records to `directory`/history.json (beside a checkpoint); returns that path."""
        target = Path(directory) / HISTORY_FILE
        target.write_text(self.to_json() + "\n", encoding="utf-8")
        return target


def save_trained(model, history: History, directory) -> Path:
    """The checkpoint (core.checkpoint) plus history.json beside it, in `directory`."""
    path = model.save(directory)
    history.save(path)
    return path


# --- evaluation ----------------------------------------------------------------------------------

@dataclass
class _Snapshot:
    """params + config + tokenizer with the `.forward(ids)` that core.corpus.heldout_scores calls."""

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


# --- training ------------------------------------------------------------------------------------

def _check_settings(mode, steps, batch_size, lr, weight_decay, eval_every, dropout, grad_clip, seq_len,
                    warmup_steps, config):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    for name, value in (("steps", steps), ("batch_size", batch_size), ("eval_every", eval_every),
                        ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, (int, np.integer)) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be a whole number >= 0, got {warmup_steps!r}")
    if seq_len > config.n_positions:
        raise ValueError(f"seq_len {seq_len} is longer than the model's context of {config.n_positions} positions")
    for name, value in (("lr", lr), ("grad_clip", grad_clip)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not (isinstance(weight_decay, (int, float)) and 0 <= weight_decay < 1):
        raise ValueError(f"weight_decay must be in [0, 1), got {weight_decay!r}")
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")


def _prepare_data(tokenizer, corpus, seq_len, batch_size, val_fraction, seed):
    """(train stream, validation stream or None)."""
    sentences = _sentences(corpus)
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


class _Trainer:
    """The working copy of the parameters and everything that updates it, one step at a time."""

    def __init__(self, model, *, mode, seed, from_scratch, weight_decay, dropout, grad_clip):
        start = init_params(model.config, seed) if from_scratch else model.params
        dtype = next(iter(model.params.values())).dtype
        self.params = {name: np.array(value, dtype=dtype) for name, value in start.items()}  # the working copy
        self.trained = [HEAD] if mode == "head" else list(self.params)
        self.last_good = {name: self.params[name].copy() for name in self.trained}  # gave the last finite loss
        self.optimizer = AdamW({name: self.params[name] for name in self.trained}, weight_decay=weight_decay)
        self.config, self.mode, self.grad_clip = model.config, mode, grad_clip
        self.dropout = dropout if mode == "full" else 0.0
        self.rng = np.random.default_rng(seed)  # batches and dropout masks

    def gradients(self, inputs, targets) -> tuple[float, dict]:
        """(loss, grads of the trained parameters) for one batch."""
        cache = {}
        logits = gpt_forward(self.params, self.config, inputs, cache=cache, dropout=self.dropout, rng=self.rng)
        loss, d_logits = backward.softmax_cross_entropy(logits, targets)
        if self.mode == "head":
            _, d_head = backward.lm_head_backward(d_logits, cache["ln_final.hook_normalized"], self.params[HEAD])
            return loss, {HEAD: d_head}
        return loss, backward.gpt_backward(self.params, self.config, cache, d_logits)

    def step(self, inputs, targets, lr: float) -> tuple[float, float]:
        """One clipped AdamW update; returns (loss, gradient norm before clipping). When either is
        not finite nothing is updated and the parameters go back to the last good ones."""
        loss, grads = self.gradients(inputs, targets)
        grad_norm = clip_gradients(grads, self.grad_clip)
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            self.params.update(self.last_good)
            return loss, grad_norm
        for name in self.trained:
            self.last_good[name][...] = self.params[name]
        self.optimizer.step(self.params, grads, lr)
        return loss, grad_norm


def train(model, corpus=None, *, mode="head", steps=200, batch_size=32, lr=None, seed=0, weight_decay=0.01,
          eval_every=100, callback=None, dropout=0.0, warmup_steps=None, grad_clip=1.0, seq_len=None,
          val_fraction=0.1, heldout=None, from_scratch=False) -> History:
    """Train `model` (its .params, .config, .tokenizer) on `corpus` and return the History.

    corpus: sentences (a list of strings, or one string with a sentence a line); None = the bundled one.
    mode: "head" (lm_head only) or "full" (everything). lr: peak learning rate (None: DEFAULT_LR[mode]).
    warmup_steps: None = min(100, steps // 10). seq_len: None = n_positions.
    dropout: "full" mode only. heldout: (prompt, expected word) pairs; None = core/data/heldout.tsv.
    from_scratch: start from a fresh random init (init_params(config, seed)) instead of model.params.
    callback(record, params) runs after every step (params: the live working copy, read-only);
    returning False stops training there.
    """
    config, tokenizer = model.config, model.tokenizer
    lr = DEFAULT_LR[mode] if lr is None and mode in MODES else lr  # a bad mode is reported below
    seq_len = config.n_positions if seq_len is None else seq_len
    warmup_steps = max(1, min(100, steps // 10)) if warmup_steps is None else warmup_steps
    _check_settings(mode, steps, batch_size, lr, weight_decay, eval_every, dropout, grad_clip, seq_len,
                    warmup_steps, config)
    stream, validation = _prepare_data(tokenizer, load_corpus() if corpus is None else corpus, seq_len,
                                       batch_size, val_fraction, seed)
    heldout = usable_heldout(tokenizer, load_heldout() if heldout is None else heldout, config.n_positions)
    trainer = _Trainer(model, mode=mode, seed=seed, from_scratch=from_scratch, weight_decay=weight_decay,
                       dropout=dropout, grad_clip=grad_clip)
    sampler = BatchSampler(len(stream.starts), batch_size, trainer.rng)
    history = History(settings=dict(
        mode=mode, steps=steps, batch_size=batch_size, lr=lr, seed=seed, weight_decay=weight_decay,
        eval_every=eval_every, dropout=trainer.dropout, warmup_steps=warmup_steps, grad_clip=grad_clip,
        seq_len=seq_len, val_fraction=val_fraction, from_scratch=from_scratch,
        train_sentences=len(stream.starts), heldout_prompts=len(heldout),
        unknown_tokens=stream.unknown_tokens, unknown_words=stream.unknown_words))
    began = time.perf_counter()
    for step in range(1, steps + 1):
        step_began = time.perf_counter()
        inputs, targets = stream.windows(sampler.next(), seq_len)
        step_lr = learning_rate(step, peak=lr, warmup_steps=warmup_steps, total_steps=steps)
        loss, grad_norm = trainer.step(inputs, targets, step_lr)
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            kept = f"those step {step - 1} started from" if step > 1 else "the starting ones"
            history.stop_reason = (f"step {step}: the loss became {loss} (gradient norm {grad_norm}); training "
                                   f"stopped and kept the last parameters that gave a finite loss ({kept})")
            break
        record = dict.fromkeys(RECORD_KEYS)
        record.update(step=step, train_loss=loss, lr=step_lr, grad_norm=grad_norm,
                      tokens_per_s=inputs.size / (time.perf_counter() - step_began))
        if step % eval_every == 0 or step == steps:
            record.update(_evaluate(trainer.params, config, tokenizer, validation, seq_len, heldout))
        record["elapsed_s"] = time.perf_counter() - began
        history.records.append(record)
        if callback is not None and callback(record, trainer.params) is False:
            history.stop_reason = f"stopped by the callback after step {step}"
            break
    model.params.update(trainer.params)
    return history


def _evaluate(params, config, tokenizer, validation, seq_len, heldout) -> dict:
    """val_loss, accuracy and heldout_perplexity of the current parameters (None where there is no data)."""
    result = {}
    if validation is not None:
        result["val_loss"] = validation_loss(params, config, validation, seq_len)
    if heldout:
        scores = heldout_scores(_Snapshot(params, config, tokenizer), heldout)
        result.update(accuracy=scores["accuracy"], heldout_perplexity=scores["perplexity"])
    return result
