"""Glassbox core: a small GPT-2-style transformer whose every intermediate can be shown.

No Streamlit here: the dashboard calls this package and draws.
`load_default()` gives the bundled trained model (checkpoint in `DEFAULT_CHECKPOINT`),
`load_checkpoint(path)` any saved one, Glassbox's own or a GPT-2-family checkpoint in Hugging
Face's layout (core.checkpoint); see core.model for `Model` and the forward pass,
core.interventions for `Interventions`, core.trace for `Trace`, core.sampling for `Sampler`,
core.tokenizer and core.bpe for the word-level and GPT-2 byte-level BPE tokenizers.
"""
import os
from pathlib import Path

# The model's matrices are tiny: BLAS threads cost more than they give, and on a busy 2-core
# machine multi-threaded OpenBLAS made its matmuls 30-100x slower (measured: a [32, 32, 64] @
# [64, 256] product took 100-350 ms instead of 1-2 ms). This only takes effect when NumPy is
# not imported yet; an explicit setting in the environment wins.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from core.memory import keep_freed_memory  # noqa: E402  (malloc keeps training's freed arrays: core.memory)

keep_freed_memory()

from core.bpe import BPETokenizer
from core.config import GPTConfig
from core.model import Generation, GenerationStep, Interventions, Model, load_checkpoint
from core.sampling import Sampler, distribution_stages
from core.tokenizer import Tokenizer
from core.trace import LayerTrace, Trace

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "data" / "default"


def load_default() -> Model:
    """The bundled model trained on the bundled corpus."""
    return load_checkpoint(DEFAULT_CHECKPOINT)


def load_model(path=None) -> Model:
    """The checkpoint at `path`, or the bundled default model when `path` is None."""
    return load_default() if path is None else load_checkpoint(path)


__all__ = ["BPETokenizer", "DEFAULT_CHECKPOINT", "GPTConfig", "Generation", "GenerationStep", "Interventions", "LayerTrace", "Model",
           "Sampler", "Tokenizer", "Trace", "distribution_stages", "load_checkpoint", "load_default",
           "load_model"]
