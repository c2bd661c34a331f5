"""Compute it yourself: `Exercise`s on one score, one softmax weight and one LayerNorm output,
checked against the model within a tolerance, with hints one partial result at a time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from core.checks import index
from core.explain.block import f64, layer_norm_steps, norm_input, rms_norm_steps
from core.explain.heads import softmax_stages
from core.text.markdown import escaped
from core.model.trace import token_labels


@dataclass(frozen=True)
class Exercise:
    """A number to compute by hand from `given` (markdown), checked against the model's own
    value `answer` within `tolerance`; `hints` reveal one partial result at a time."""

    key: str
    task: str
    given: str
    hints: tuple[str, ...]
    answer: float
    tolerance: float

    def accepts(self, value) -> bool:
        """True when `value` is a finite number within the tolerance of the model's value."""
        try:
            value = float(value)
        except (TypeError, ValueError):
            return False
        return math.isfinite(value) and abs(value - self.answer) <= self.tolerance


def parse_number(text: str) -> float | None:
    """A typed number ("0.25", " -1,5 ", "1e-3") as a float; None when it is not one."""
    try:
        value = float(str(text).strip().replace(",", "."))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _numbers(values, digits: int = 4) -> str:
    return "[" + ", ".join(f"{value:.{digits}f}" for value in values) + "]"


def _tolerance(answer: float) -> float:
    """1% of the answer, at least 0.01: room for rounding the 4-decimal inputs by hand."""
    return 0.01 * max(1.0, abs(answer))


def score_exercise(trace, layer: int, head: int, query: int, key: int, tag: str = "") -> Exercise:
    """One cell of the scaled scores: q[query] . k[key] * scale, for a key the query can see."""
    layer_trace = trace.layers[index(layer, len(trace.layers), "layer")]
    query = index(query, len(trace.tokens), "query")
    key = index(key, query + 1, "key (a token at or before the query)")
    q, k = f64(layer_trace.q[head, query]), f64(layer_trace.k[head, key])  # [D] each
    labels = [escaped(label) for label in token_labels(trace.tokens)]  # the task is Markdown
    products = q * k  # [D]
    answer = float(layer_trace.scaled_scores[head, query, key])
    return Exercise(
        key=f"score-{tag}-{layer}-{head}-{query}-{key}",
        task=f"The scaled score of query **{labels[query]}** against key **{labels[key]}**: "
             f"q · k × {layer_trace.scale:.4f}",
        given=f"q = {_numbers(q)}  \nk = {_numbers(k)}",
        hints=(f"Multiply dimension by dimension: {_numbers(products)}",
               f"Add them up: q · k = {products.sum():.4f}",
               f"Times the scale 1/√{q.size} = {layer_trace.scale:.4f}: {products.sum() * layer_trace.scale:.4f}"),
        answer=answer, tolerance=_tolerance(answer))


def softmax_exercise(trace, layer: int, head: int, query: int, key: int, tag: str = "") -> Exercise:
    """One softmax entry: the weight `query` gives `key`, from the row's visible scaled scores."""
    layer_trace = trace.layers[index(layer, len(trace.layers), "layer")]
    query = index(query, len(trace.tokens), "query")
    key = index(key, query + 1, "key (a token at or before the query)")
    stages = softmax_stages(f64(layer_trace.masked_scores[head, query, :query + 1]))  # [query + 1] visible keys
    labels = [escaped(label) for label in token_labels(trace.tokens)]  # the task is Markdown
    row_max, exps, total = stages["max"][0], stages["exp"], stages["sum"][0]
    answer = float(layer_trace.weights[head, query, key])
    return Exercise(
        key=f"softmax-{tag}-{layer}-{head}-{query}-{key}",
        task=f"The attention weight of **{labels[query]}** on **{labels[key]}**: softmax of the row, entry {key}",
        given=f"The row's scaled scores (keys {labels[0]} .. {labels[query]}): {_numbers(stages['scores'])}",
        hints=(f"The row's largest score: {row_max:.4f}",
               f"Subtract it: {_numbers(stages['shifted'])}",
               f"exp of each: {_numbers(exps)}",
               f"Their sum: {total:.4f}; entry {key} is exp / sum = {exps[key]:.4f} / {total:.4f}"),
        answer=answer, tolerance=0.005)


def layer_norm_exercise(params, config, trace, layer: int, position: int, dim: int, tag: str = "") -> Exercise:
    """One output of ln_1: token `position`, dimension `dim`, from the residual entering the block."""
    x, weight, bias = norm_input(params, trace, "ln_1", layer)
    position = index(position, x.shape[0], "position")
    dim = index(dim, x.shape[1], "dim")
    if config.family == "llama":
        return rms_norm_exercise(trace, layer, position, dim, x, weight, config.layer_norm_epsilon, tag)
    steps = layer_norm_steps(x[position], weight, bias, config.layer_norm_epsilon)
    answer = float(trace.layers[layer].ln_1[position, dim])
    return Exercise(
        key=f"ln-{tag}-{layer}-{position}-{dim}",
        task=f"ln_1 of layer {layer}, token **{escaped(token_labels(trace.tokens)[position])}**, dimension {dim}: "
             f"(x[{dim}] − mean) / √(variance + ε) × weight[{dim}] + bias[{dim}]",
        given=f"x = {_numbers(x[position])}  \nweight[{dim}] = {weight[dim]:.4f}, bias[{dim}] = {bias[dim]:.4f}, "
              f"ε = {steps['eps']:g}",
        hints=(f"The mean of x: {steps['mean']:.4f}",
               f"The variance (mean of (x − mean)²): {steps['variance']:.4f}; "
               f"√(variance + ε) = {steps['std']:.4f}",
               f"Normalised: ({x[position, dim]:.4f} − {steps['mean']:.4f}) / {steps['std']:.4f} = "
               f"{steps['normalised'][dim]:.4f}",
               f"× {weight[dim]:.4f} + {bias[dim]:.4f} = {steps['out'][dim]:.4f}"),
        answer=answer, tolerance=_tolerance(answer))


def rms_norm_exercise(trace, layer: int, position: int, dim: int, x, weight, eps: float, tag: str = "") -> Exercise:
    """One output of the llama family's input_layernorm (RMSNorm: no mean, no bias): token
    `position`, dimension `dim`, x[dim] / sqrt(mean(x²) + eps) * weight[dim]."""
    steps = rms_norm_steps(x[position], weight, eps)
    answer = float(trace.layers[layer].ln_1[position, dim])
    return Exercise(
        key=f"rms-{tag}-{layer}-{position}-{dim}",
        task=f"The RMSNorm before attention (input_layernorm) of layer {layer}, token "
             f"**{escaped(token_labels(trace.tokens)[position])}**, dimension {dim}: "
             f"x[{dim}] / √(mean(x²) + ε) × weight[{dim}] (no mean subtracted, no bias)",
        given=f"x = {_numbers(x[position])}  \nweight[{dim}] = {weight[dim]:.4f}, ε = {steps['eps']:g}",
        hints=(f"The mean of x²: {steps['mean_square']:.4f}",
               f"√(mean(x²) + ε) = {steps['rms']:.4f}",
               f"Normalised: {x[position, dim]:.4f} / {steps['rms']:.4f} = {steps['normalised'][dim]:.4f}",
               f"× {weight[dim]:.4f} = {steps['out'][dim]:.4f}"),
        answer=answer, tolerance=_tolerance(answer))
