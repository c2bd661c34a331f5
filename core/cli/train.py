"""`python -m core train --out DIR`: train a model on the bundled corpus (or --corpus FILE), with a
text progress bar, and save it as a checkpoint plus history.json.

It starts from a fresh random model (vocabulary built from the corpus, sizes from --n-embd etc.)
unless `--init default` (the bundled model) or `--init DIR` (a checkpoint) says otherwise.
The defaults are TrainSettings's, the recipe of the bundled model, so the same command with the
same seed gives the same curve and the same weights on the same kind of machine (see README):
    python -m core train --mode full --steps 1000 --out core/data/default --force

`--out` is checked before training starts: a new folder, or an existing checkpoint with `--force`.
Training that diverges (core.train.loop.divergence) saves nothing, says why and exits with code 1.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import core
from core import checks
from core.io.checkpoint import check_target, memory_available
from core.model.config import GPTConfig
from core.model.model import Model
from core.model.params import init_params, param_shapes
from core.text.corpus import load_corpus
from core.text.words import WordTokenizer
from core.train.history import save_trained
from core.train.loop import train
from core.train.settings import DEFAULT_LR, MODES, TrainSettings

BAR_WIDTH = 24
MAX_CORPUS_BYTES = 100_000_000  # --corpus: one sentence a line; the bundled corpus is about 0.6 MB
# training holds the weights, their gradients and Adam's two moments: four float32 copies
TRAINING_COPIES, FLOAT32_BYTES = 4, 4


def add_arguments(parser) -> None:
    recipe = TrainSettings()
    parser.add_argument("--out", metavar="DIR", required=True,
                        help="where to save the checkpoint and history.json: a new folder (or a checkpoint, with --force)")
    parser.add_argument("--force", action="store_true", help="replace the checkpoint already at --out")
    parser.add_argument("--mode", choices=MODES, default=recipe.mode,
                        help="full: every parameter (default); head: lm_head only, the blocks frozen")
    parser.add_argument("--steps", type=int, default=recipe.steps, help=f"optimisation steps (default {recipe.steps})")
    parser.add_argument("--init", metavar="default|DIR", default=None,
                        help="start from the bundled model (default) or a checkpoint DIR (default: a fresh random model)")
    parser.add_argument("--corpus", metavar="FILE", default=None, help="one sentence a line (default: the bundled corpus)")
    parser.add_argument("--batch-size", type=int, default=recipe.batch_size,
                        help=f"sentences per step (default {recipe.batch_size})")
    parser.add_argument("--lr", type=float, default=recipe.lr,
                        help=f"peak learning rate (default {DEFAULT_LR['full']:g} full, {DEFAULT_LR['head']:g} head)")
    parser.add_argument("--seed", type=int, default=recipe.seed,
                        help=f"seeds the init, the batches and dropout (default {recipe.seed})")
    parser.add_argument("--weight-decay", type=float, default=recipe.weight_decay,
                        help=f"AdamW decay of weight matrices (default {recipe.weight_decay:g})")
    parser.add_argument("--dropout", type=float, default=recipe.dropout,
                        help=f"dropout rate in full mode (default {recipe.dropout:g})")
    parser.add_argument("--warmup", type=int, default=recipe.warmup_steps, help="warm-up steps (default min(100, steps/10))")
    parser.add_argument("--eval-every", type=int, default=recipe.eval_every,
                        help=f"evaluate every this many steps (default {recipe.eval_every})")
    parser.add_argument("--val-fraction", type=float, default=recipe.val_fraction,
                        help=f"share of sentences held out for the validation loss (default {recipe.val_fraction:g}; 0 = none)")
    sizes = parser.add_argument_group("a fresh model's sizes (ignored with --init)")
    defaults = GPTConfig(vocab_size=3)
    sizes.add_argument("--n-embd", type=int, default=defaults.n_embd, help=f"default {defaults.n_embd}")
    sizes.add_argument("--n-layer", type=int, default=defaults.n_layer, help=f"default {defaults.n_layer}")
    sizes.add_argument("--n-head", type=int, default=defaults.n_head, help=f"default {defaults.n_head}")
    sizes.add_argument("--n-positions", type=int, default=defaults.n_positions, help=f"default {defaults.n_positions}")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def settings_from(args) -> TrainSettings:
    """The TrainSettings the arguments ask for (ValueError/TypeError naming a bad one)."""
    return TrainSettings(mode=args.mode, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         weight_decay=args.weight_decay, eval_every=args.eval_every, dropout=args.dropout,
                         warmup_steps=args.warmup, val_fraction=args.val_fraction)


def metric(value: float) -> str:
    """A loss or perplexity for the terminal: 3 decimals, or 3 significant digits when huge (1.2e+250, inf)."""
    return f"{value:.3f}" if abs(value) < 1e6 else f"{value:.3g}"


def read_corpus(path) -> list[str]:
    """The sentences of the --corpus file: a regular UTF-8 text file of at most MAX_CORPUS_BYTES,
    one sentence a line (blank lines skipped), at least one of them."""
    text = checks.text_file(Path(path), "a corpus (one sentence a line)", MAX_CORPUS_BYTES)
    sentences = [line.strip() for line in text.splitlines() if line.strip()]
    if not sentences:
        raise ValueError(f"{path} holds no sentences: a corpus is one sentence a line")
    return sentences


def check_trainable(config: GPTConfig) -> None:
    """ValueError, before anything is allocated, when training a model of `config` needs more memory
    than this machine has available (weights, gradients and Adam's two moments, in float32)."""
    parameters = sum(math.prod(shape) for shape in param_shapes(config).values())
    needed = parameters * FLOAT32_BYTES * TRAINING_COPIES
    available = memory_available()
    if needed > available:
        raise ValueError(f"a model of {parameters:,} parameters needs about {needed / 1e9:,.1f} GB to train "
                         f"(weights, gradients and Adam's state in float32), more than the {available / 1e9:.1f} GB "
                         "of memory available: choose smaller --n-layer, --n-embd or --n-positions")


def starting_model(args, sentences: list[str]) -> Model:
    """The bundled model, a checkpoint, or a fresh random model whose vocabulary is the corpus's."""
    if args.init == "default":
        return core.load_default()
    if args.init is not None:
        return core.load_checkpoint(args.init)
    tokenizer = WordTokenizer.from_texts(sentences)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, n_positions=args.n_positions, n_embd=args.n_embd,
                       n_layer=args.n_layer, n_head=args.n_head)
    check_trainable(config)
    return Model(config, init_params(config, args.seed), tokenizer)


class ProgressBar:
    """One line on stderr, redrawn every step on a terminal; a line per evaluation otherwise."""

    def __init__(self, steps: int, mode: str, stream=None):
        stream = sys.stderr if stream is None else stream  # looked up now: sys.stderr may be replaced after import
        self.steps, self.mode, self.stream = steps, mode, stream
        self.redraw = stream.isatty()
        self.last_evaluation = ""

    def __call__(self, record: dict, params) -> None:
        if record["accuracy"] is not None:
            self.last_evaluation = f"  held-out acc {record['accuracy']:6.1%}"
            if record["val_loss"] is not None:
                self.last_evaluation = f"  val {metric(record['val_loss'])}" + self.last_evaluation
        filled = BAR_WIDTH * record["step"] // self.steps
        line = (f"train {self.mode} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {record['step']:>{len(str(self.steps))}}"
                f"/{self.steps}  loss {metric(record['train_loss'])}{self.last_evaluation}"
                f"  {record['tokens_per_s']:,.0f} tok/s  {record['elapsed_s']:.0f}s"
                f" (~{record['elapsed_s'] / record['step'] * (self.steps - record['step']):.0f}s left)")
        if self.redraw:
            print("\r" + line, end="", file=self.stream, flush=True)
        elif record["accuracy"] is not None:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.redraw:
            print(file=self.stream)


def summary(history, seconds: float) -> list[str]:
    """What the run reached, for the terminal."""
    records = history.records
    if not records:
        return ["no step completed"]
    speeds = sorted(record["tokens_per_s"] for record in records)
    lines = [f"{len(records)} steps in {seconds:.1f} s, median {speeds[len(speeds) // 2]:,.0f} tokens/s"]
    scored = [record for record in history.evaluations() if record["accuracy"] is not None]
    if scored:
        final = scored[-1]
        lines.append(f"held-out accuracy {final['accuracy']:.1%}, held-out perplexity {metric(final['heldout_perplexity'])}")
        reached = next((record for record in scored if record["accuracy"] >= 0.9), None)
        if reached:
            lines.append(f"90% held-out accuracy first measured at step {reached['step']} ({reached['elapsed_s']:.1f} s)")
    validated = [record for record in history.evaluations() if record["val_loss"] is not None]
    if validated:
        lines.append(f"validation loss {metric(validated[-1]['val_loss'])}")
    return lines


def run(args) -> int:
    settings = settings_from(args)
    check_target(args.out, overwrite=args.force)  # before any step: a bad --out fails at once
    sentences = load_corpus() if args.corpus is None else read_corpus(args.corpus)
    model = starting_model(args, sentences)
    check_trainable(model.config)
    progress = None if args.quiet else ProgressBar(settings.steps, settings.mode)
    began = time.perf_counter()
    try:
        history = train(model, settings, corpus=sentences, callback=progress)
    finally:
        if progress is not None:
            progress.close()
    for line in summary(history, time.perf_counter() - began):
        print(line)
    if history.diverged:
        print(f"error: {history.stop_reason}. Nothing was saved; try a lower --lr.", file=sys.stderr)
        return 1
    path = save_trained(model, history, args.out, overwrite=args.force)
    print(f"saved {path} (checkpoint + history.json)")
    return 0
