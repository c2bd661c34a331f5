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

Settings live in one frozen dataclass, `TrainSettings`, whose defaults are the bundled model's
recipe; the CLI, the dashboard, `History.settings` and core.training_bench all start from it.

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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core import backward
from core.checkpoint import history_text, save_checkpoint
from core.corpus import heldout_scores, load_corpus, load_heldout, split_corpus
from core.model import final_features, gpt_forward, init_params
from core.parallel import beside, cores, matmul

MODES = ("head", "full")
DEFAULT_LR = {"head": 1e-2, "full": 3e-3}  # peak learning rate per mode
HEAD = "lm_head.weight"
MAX_UNKNOWN_FRACTION = 0.25  # above this share of <unk> tokens the corpus does not fit the vocabulary
MAX_TRAINABLE_PARAMETERS = 5_000_000  # the dashboard trains models up to this size
DIVERGED_LOSS_FACTOR, DIVERGED_LOSS_MARGIN = 3.0, 1.0  # diverged: loss > 3 x the first step's + 1 nat
DIVERGED_GRAD_FACTOR, DIVERGED_GRAD_FLOOR = 1000.0, 100.0  # or gradient norm > 1000 x the first's (and > 100)
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


# --- settings --------------------------------------------------------------------------------------

def _is_whole(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


@dataclass(frozen=True)
class TrainSettings:
    """How to train. The defaults are the bundled model's recipe
    (`python -m core train --mode full --steps 1000 --out core/data/default`).

    mode: "full" (every parameter) or "head" (lm_head only). lr: the peak learning rate
    (None: DEFAULT_LR[mode]). warmup_steps: None = min(100, steps // 10), at least 1.
    dropout: "full" mode only. seq_len: None = the model's n_positions. val_fraction: the share
    of sentences held out for the validation loss (0: none). from_scratch: start from a fresh
    random init (init_params(config, seed)) instead of the model's parameters.
    Checked on construction (ValueError/TypeError naming the setting); seq_len against the
    model's context is checked by train().
    """

    mode: str = "full"
    steps: int = 1000
    batch_size: int = 32
    lr: float | None = None
    seed: int = 0
    weight_decay: float = 0.01
    eval_every: int = 50
    dropout: float = 0.1
    warmup_steps: int | None = None
    grad_clip: float = 1.0
    seq_len: int | None = None
    val_fraction: float = 0.1
    from_scratch: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        given = {name: value for name, value in asdict(self).items()  # an optional None follows the default rule
                 if not (value is None and name in ("lr", "warmup_steps", "seq_len"))}
        for name in ("steps", "batch_size", "eval_every", "seq_len"):
            if name in given and not _is_whole(given[name]):
                raise TypeError(f"{name} must be an integer, got {given[name]!r}")
            if name in given and given[name] <= 0:
                raise ValueError(f"{name} must be positive, got {given[name]}")
        for name in ("seed", "warmup_steps"):
            if name in given and not (_is_whole(given[name]) and given[name] >= 0):
                raise ValueError(f"{name} must be a whole number >= 0, got {given[name]!r}")
        for name in ("lr", "grad_clip"):
            if name in given and not (_is_number(given[name]) and math.isfinite(given[name]) and given[name] > 0):
                raise ValueError(f"{name} must be a positive number, got {given[name]!r}")
        for name in ("weight_decay", "dropout", "val_fraction"):
            if not (_is_number(getattr(self, name)) and 0 <= getattr(self, name) < 1):
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not isinstance(self.from_scratch, bool):
            raise TypeError(f"from_scratch must be True or False, got {self.from_scratch!r}")

    @property
    def peak_lr(self) -> float:
        return DEFAULT_LR[self.mode] if self.lr is None else float(self.lr)

    @property
    def warmup(self) -> int:
        return max(1, min(100, self.steps // 10)) if self.warmup_steps is None else self.warmup_steps

    def recorded(self, config) -> dict:
        """The settings as run on a model with this config: every None resolved (History.settings)."""
        return {**asdict(self), "lr": self.peak_lr, "warmup_steps": self.warmup,
                "seq_len": config.n_positions if self.seq_len is None else self.seq_len,
                "dropout": self.dropout if self.mode == "full" else 0.0}


# --- the record of a run -----------------------------------------------------------------------

@dataclass
class History:
    """What a training run did: one record per completed step (RECORD_KEYS; evaluation fields
    None between evaluations), the settings it ran with (TrainSettings.recorded plus facts about
    the data), why it stopped early (None if it did not), and whether that was divergence."""

    records: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    stop_reason: str | None = None
    diverged: bool = False

    def evaluations(self) -> list[dict]:
        """The records where the model was evaluated (validation loss and/or held-out accuracy)."""
        return [record for record in self.records
                if record.get("val_loss") is not None or record.get("accuracy") is not None]

    def to_json(self) -> str:
        """The records as history.json holds them (core.checkpoint.history_text)."""
        return history_text(self.records)


def save_trained(model, history: History, directory, *, overwrite: bool = False) -> Path:
    """The checkpoint with its history.json, written as one (core.checkpoint.save_checkpoint)."""
    return save_checkpoint(model, directory, overwrite=overwrite, history=history.records)


def trainability(model) -> str | None:
    """None when the dashboard may train `model`; otherwise a sentence saying why not."""
    if getattr(model.tokenizer, "kind", "word") == "bpe":
        return ("This model reads text with a byte-level BPE tokenizer (GPT-2 family): the dashboard "
                "trains only word-level models on its own corpus.")
    count = sum(int(value.size) for value in model.params.values())
    if count > MAX_TRAINABLE_PARAMETERS:
        return (f"This model has {count:,} parameters; the dashboard trains models of at most "
                f"{MAX_TRAINABLE_PARAMETERS:,}, so that a run stays short.")
    return None


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


def _evaluate(params, config, tokenizer, validation, seq_len, heldout) -> dict:
    """val_loss, accuracy and heldout_perplexity of the current parameters (None where there is no data)."""
    result = {}
    if validation is not None:
        result["val_loss"] = validation_loss(params, config, validation, seq_len)
    if heldout:
        scores = heldout_scores(_Snapshot(params, config, tokenizer), heldout)
        result.update(accuracy=scores["accuracy"], heldout_perplexity=scores["perplexity"])
    return result


# --- training ------------------------------------------------------------------------------------

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
