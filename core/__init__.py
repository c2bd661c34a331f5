"""Glassbox: a small GPT-style transformer whose every intermediate can be shown (no Streamlit here).

This module is the public face: `load_default()` gives the bundled trained model,
`load_checkpoint(path)` any saved one (Glassbox's own, a GPT-2-family checkpoint in Hugging
Face's layout, or a Hugging Face llama / qwen2 / qwen3 / mistral folder),
`Model.run(prompt) -> Trace`, `train(model, TrainSettings(...)) -> History`.
Inside: model/ (the forward pass), text/ (tokenizers, corpus), io/ (checkpoints), train/,
native/ (the C kernels), explain/ (what the pages teach), bench/, cli/, data/, and checks.py
(how every entry point checks what it is given).
"""
import os

# The model's matrices are tiny: BLAS threads cost more than they give, and on a busy 2-core
# machine multi-threaded OpenBLAS made its matmuls 30-100x slower (measured: a [32, 32, 64] @
# [64, 256] product took 100-350 ms instead of 1-2 ms). This only takes effect when NumPy is
# not imported yet; an explicit setting in the environment wins.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from core.native.memory import keep_freed_memory  # noqa: E402  (why: core.native.memory)

keep_freed_memory()

from core.bench.attention import load_benchmark_json  # noqa: E402
from core.data import DEFAULT_CHECKPOINT  # noqa: E402
from core.model.attention import scaled_dot_product_attention  # noqa: E402
from core.model.config import GPTConfig  # noqa: E402
from core.model.interventions import Interventions  # noqa: E402
from core.model.model import Model, load_checkpoint  # noqa: E402
from core.model.sampling import Sampler, distribution_stages  # noqa: E402
from core.model.trace import Trace  # noqa: E402
from core.native.kernel import available_backends  # noqa: E402
from core.train.history import History  # noqa: E402
from core.train.loop import train  # noqa: E402
from core.train.settings import TrainSettings  # noqa: E402


def load_default() -> Model:
    """The bundled model trained on the bundled corpus."""
    return load_checkpoint(DEFAULT_CHECKPOINT)


def load_model(path=None) -> Model:
    """The checkpoint at `path`, or the bundled default model when `path` is None."""
    return load_default() if path is None else load_checkpoint(path)


__all__ = ["DEFAULT_CHECKPOINT", "GPTConfig", "History", "Interventions", "Model", "Sampler", "Trace", "TrainSettings",
           "available_backends", "distribution_stages", "load_benchmark_json", "load_checkpoint", "load_default",
           "load_model", "scaled_dot_product_attention", "train"]
