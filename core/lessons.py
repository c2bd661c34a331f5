"""Lessons: the rest of the block worked out number by number, questions and exercises made
from the live tensors of a prompt, and the small experiments behind them.

Pure NumPy (no Streamlit), in float64 unless a function says otherwise. Everything reads the
model's own parameters and a plain trace of the prompt (`Model.run` without interventions);
tests/test_lessons.py checks each result against the model's own intermediates.
L = tokens, C = n_embd, H = n_head, D = d_head, V = vocab_size.

- the block: one head's slice of c_attn (Q, K, V), the heads joined and c_proj, LayerNorm of
  one token, the MLP of one token, the residual stream as a sum of parts and each part's direct
  push on a logit (through ln_f and lm_head);
- predict, then reveal: `Question`s with exactly one right answer given the numbers;
- compute it yourself: `Exercise`s checked within a tolerance, with hints one partial result at a time;
- why the softmax must be stable, minimal pairs of prompts, and head ablation against attention.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.attention import available_backends, scaled_dot_product_attention
from core.explain import distribution_change, entropy_bits
from core.model import NO_INTERVENTIONS, Interventions, block_params, check_index, gelu, gpt_forward
from core.params import output_head
from core.sampling import keep_top_p, ranking, softmax

TIE = 1e-6  # two numbers closer than this count as a tie: no question is made from them
FLOAT32_EXP_LIMIT = float(np.log(np.finfo(np.float32).max))  # 88.72: exp of anything larger is inf
FLOAT32_EXP_FLOOR = float(np.log(np.finfo(np.float32).smallest_subnormal))  # -103.28: below, exp is 0
MAX_OPTIONS = 10  # answers offered for a question about the keys of a long prompt
MAX_AUTO_ABLATIONS = 16  # heads ablated without asking (the toy model's 8); GPT-2's 144 wait for a button
ABLATION_BATCH_TOKENS = 256  # tokens per batched ablation pass (GPT-2: its logits are 256 x 50,257 floats, 51 MB)


def _f64(array) -> np.ndarray:
    return np.asarray(array, dtype=np.float64)


def _check_plain(trace) -> None:
    """The sums below hold for the plain model only: a trace with interventions is a ValueError."""
    if trace.interventions != NO_INTERVENTIONS:
        raise ValueError("this lesson needs a trace of the plain model (no interventions)")


# --- the block, step by step ---------------------------------------------------------------

def head_slices(config, head: int) -> dict[str, slice]:
    """The columns of c_attn.weight [C, 3C] that make this head's Q, K and V (D columns each)."""
    head = check_index(head, config.n_head, "head")
    C, D = config.n_embd, config.d_head
    return {name: slice(part * C + head * D, part * C + (head + 1) * D) for part, name in enumerate("QKV")}


def head_projections(params, config, layer: int, head: int, x) -> dict[str, dict[str, np.ndarray]]:
    """X [L, C] (ln_1's output) through this head's slice of c_attn: for "Q", "K" and "V" the
    `weight` [C, D], `bias` [D] and `out` = X @ weight + bias [L, D]."""
    layer = check_index(layer, config.n_layer, "layer")
    p = block_params(params, layer)
    x = _f64(x)  # [L, C]
    result = {}
    for name, columns in head_slices(config, head).items():
        weight = _f64(p["attn.c_attn.weight"][:, columns])  # [C, D]
        bias = _f64(p["attn.c_attn.bias"][columns])  # [D]
        result[name] = {"weight": weight, "bias": bias, "out": x @ weight + bias}  # [L, C] @ [C, D] -> [L, D]
    return result


def heads_joined(params, config, layer: int, z) -> dict[str, np.ndarray]:
    """The heads' outputs z [H, L, D] joined and mapped back to C by c_proj: `merged` [L, C]
    (head h in columns h*D..(h+1)*D), `per_head` [H, L, C] (head h's z @ its D rows of c_proj),
    `bias` [C], and `out` [L, C] = merged @ c_proj + bias = the sum of per_head + bias."""
    layer = check_index(layer, config.n_layer, "layer")
    p = block_params(params, layer)
    z = _f64(z)  # [H, L, D]
    H, L, D = z.shape
    weight = _f64(p["attn.c_proj.weight"])  # [C, C]
    merged = np.swapaxes(z, 0, 1).reshape(L, H * D)  # [L, C]
    per_head = np.einsum("hld,hdc->hlc", z, weight.reshape(H, D, -1))  # [H, L, D] x [H, D, C] -> [H, L, C]
    bias = _f64(p["attn.c_proj.bias"])
    return {"merged": merged, "per_head": per_head, "bias": bias, "out": merged @ weight + bias}


NORMS = ("ln_1", "ln_2", "ln_f")


def norm_input(params, trace, which: str, layer: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x [L, C] entering the LayerNorm `which`, its weight [C], its bias [C]); `layer` is
    ignored for ln_f (it normalises the residual leaving the last block)."""
    if which not in NORMS:
        raise ValueError(f"which must be one of {NORMS}, got {which!r}")
    if which == "ln_f":
        x, prefix = trace.layers[-1].resid_post, "transformer.ln_f."
    else:
        layer = check_index(layer, len(trace.layers), "layer")
        x = trace.layers[layer].resid_pre if which == "ln_1" else trace.layers[layer].resid_mid
        prefix = f"transformer.h.{layer}.{which}."
    return _f64(x), _f64(params[prefix + "weight"]), _f64(params[prefix + "bias"])


def layer_norm_steps(x, weight, bias, eps: float) -> dict:
    """LayerNorm of one token's vector x [C], every stage: `mean`, `centred` [C], `variance`,
    `std` = sqrt(variance + eps), `normalised` [C] (mean 0, variance about 1), `weight`, `bias`
    and `out` = normalised * weight + bias [C]."""
    x = _f64(x)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x must be one token's vector [C], got shape {x.shape}")
    mean = float(x.mean())
    centred = x - mean  # [C]
    variance = float((centred * centred).mean())
    std = math.sqrt(variance + eps)
    normalised = centred / std  # [C]
    weight, bias = _f64(weight), _f64(bias)
    return {"x": x, "mean": mean, "centred": centred, "variance": variance, "eps": eps, "std": std,
            "normalised": normalised, "weight": weight, "bias": bias, "out": normalised * weight + bias}


def mlp_steps(params, config, layer: int, x) -> dict[str, np.ndarray]:
    """The MLP for one token: x [C] (ln_2's output) -> `pre` = x @ c_fc + b [4C] -> `post` =
    GELU(pre) [4C] -> `out` = post @ c_proj + b [C]; `top` [8]: the units that fire most."""
    layer = check_index(layer, config.n_layer, "layer")
    p = block_params(params, layer)
    x = _f64(x)  # [C]
    pre = x @ _f64(p["mlp.c_fc.weight"]) + _f64(p["mlp.c_fc.bias"])  # [C] @ [C, 4C] -> [4C]
    post = gelu(pre)  # [4C]
    out = post @ _f64(p["mlp.c_proj.weight"]) + _f64(p["mlp.c_proj.bias"])  # [4C] @ [4C, C] -> [C]
    return {"x": x, "pre": pre, "post": post, "out": out, "top": np.argsort(-post, kind="stable")[:8]}


def gelu_curve(low: float, high: float, count: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """GELU (GPT-2's tanh form) sampled at `count` points from low to high: (x [count], y [count])."""
    if not (math.isfinite(low) and math.isfinite(high) and low < high) or count < 2:
        raise ValueError(f"the curve needs low < high and at least 2 points, got {low}, {high}, {count}")
    x = np.linspace(low, high, count)
    return x, gelu(x)


def residual_parts(trace) -> list[tuple[str, np.ndarray]]:
    """The residual stream as a sum: (name, [L, C]) for the token embedding, the position
    embedding, then each block's attention and MLP output. They add up to the residual
    leaving the last block (the model adds each output back; no part is ever rescaled)."""
    _check_plain(trace)
    parts = [("token embedding", _f64(trace.token_embeddings)), ("position embedding", _f64(trace.position_embeddings))]
    for layer, layer_trace in enumerate(trace.layers):
        parts += [(f"attention {layer}", _f64(layer_trace.attn_out)), (f"MLP {layer}", _f64(layer_trace.mlp_out))]
    return parts


def logit_attribution(params, trace, token_id: int, position: int = -1) -> dict:
    """Direct logit attribution: how much each part of the residual stream pushes `token_id`'s
    logit at `position`.

    ln_f(x) = (x - mean x) / s * w + b, with s = sqrt(var x + eps) of the actual residual x
    (the trace's ln_final.hook_scale). Centring is linear and s is one number for the token, so
    the logit u . ln_f(x) (u = the output head's row for the token) splits exactly into one term per part,
    ((part - mean part) / s * w) . u, plus `bias_term` = b . u.
    Returns `names` [P], `contributions` [P], `bias_term`, `scale` s, `logit` (the model's own)
    and `total` (the contributions plus the bias term; equal to the logit up to rounding).
    """
    parts = residual_parts(trace)
    length = len(trace.tokens)
    position = check_index(position % length if isinstance(position, int) and position < 0 else position,
                           length, "position")
    token_id = check_index(token_id, trace.logits.shape[-1], "token_id")
    scale = float(trace["ln_final.hook_scale"][position, 0])
    unembed = _f64(output_head(params)[token_id])  # [C] u: lm_head's row (the token's embedding when tied)
    direction = _f64(params["transformer.ln_f.weight"]) * unembed  # [C] w * u
    contributions = np.array([float((part[position] - part[position].mean()) / scale @ direction)
                              for _, part in parts])  # [P]
    bias_term = float(_f64(params["transformer.ln_f.bias"]) @ unembed)
    return {"names": [name for name, _ in parts], "contributions": contributions, "bias_term": bias_term,
            "scale": scale, "logit": float(trace.logits[position, token_id]),
            "total": float(contributions.sum() + bias_term)}


def predicted_token(trace) -> int:
    """The most likely next token's id (the lowest id among ties)."""
    return int(ranking(trace.next_token_probs)[0])


# --- predict, then reveal -------------------------------------------------------------------

@dataclass(frozen=True)
class Question:
    """A question with exactly one right answer given the prompt's numbers.

    `key` names it in the session (it changes with the prompt, layer and head); `given` is what
    the learner may read before answering; `answer` indexes `options`; `reveal` holds the real
    numbers, shown after the learner answered."""

    key: str
    text: str
    given: str
    options: tuple[str, ...]
    answer: int
    reveal: str

    def is_right(self, choice: str) -> bool:
        return choice == self.options[self.answer]


def _labels(tokens) -> list[str]:
    return [f"{position} {token}" for position, token in enumerate(tokens)]


def _percent(share: float) -> str:
    """A share as a percentage with 3 significant digits (52.1%, 0.00235%): small ones stay apart."""
    return f"{100 * share:.3g}%"


def _no_tie(values) -> bool:
    """True when the largest of `values` beats the second largest by more than TIE."""
    ordered = np.sort(_f64(values))[::-1]
    return ordered.size == 1 or ordered[0] - ordered[1] > TIE


def attention_question(trace, layer: int, head: int, tag: str = "") -> Question | None:
    """Which key will a query attend to most? The last query row (of this layer and head) that
    sees at least two keys and has no tie for the largest weight; None when every row ties."""
    weights = _f64(trace.layers[check_index(layer, len(trace.layers), "layer")].weights[head])  # [L, L]
    labels = _labels(trace.tokens)
    for query in range(len(labels) - 1, 0, -1):
        row = weights[query, :query + 1]  # the keys this query can see
        if _no_tie(row):
            best = int(row.argmax())
            keys = sorted(ranking(row)[:MAX_OPTIONS].tolist())  # every visible key, or the most attended ones
            shares = ", ".join(f"{labels[key]} {_percent(row[key])}" for key in keys)
            given = "Its query is compared with the key of every token up to itself."
            if len(keys) < row.size:
                given += f" The options are the {len(keys)} of its {row.size} keys it attends to most."
            return Question(
                key=f"attend-{tag}-{layer}-{head}-{query}",
                text=f"Layer {layer}, head {head}: which token will **{labels[query]}** attend to most?",
                given=given, options=tuple(labels[key] for key in keys), answer=keys.index(best),
                reveal=f"Its weights: {shares}. The largest is {labels[best]} ({_percent(row[best])}).")
    return None


def next_token_question(trace, vocabulary, count: int = 4, tag: str = "") -> Question | None:
    """Which word comes next? The `count` most likely tokens as options (in id order, so the
    order gives nothing away); None when the top two tie."""
    probs = _f64(trace.next_token_probs)
    order = ranking(probs)[:count]
    if len(order) > 1 and probs[order[0]] - probs[order[1]] <= TIE:
        return None
    options = sorted(int(i) for i in order)
    shares = ", ".join(f"{vocabulary[i]} {_percent(probs[i])}" for i in order)
    return Question(
        key=f"next-{tag}", text=f"Which token does the model find most likely after **{' '.join(trace.tokens)}**?",
        given="", options=tuple(vocabulary[i] for i in options), answer=options.index(int(order[0])),
        reveal=f"The model's probabilities: {shares}.")


def top_p_question(trace, vocabulary, top_p: float = 0.9, shown: int = 6, tag: str = "") -> Question | None:
    """How many tokens does top-p keep? The learner sees the most likely tokens' probabilities
    (to 3 decimals); None when rounding could change the count (a running total within 0.005
    of p) or the answer needs more tokens than are shown."""
    probs = _f64(trace.next_token_probs)
    kept = int((keep_top_p(probs, top_p) > 0).sum())
    order = ranking(probs)[:shown]
    running = np.cumsum(probs[order])  # [shown]
    if kept > shown - 1 or np.abs(running - top_p).min() < 0.005:
        return None
    first = max(1, kept - 1)
    options = [str(n) for n in range(first, first + 4)]
    listing = ", ".join(f"{vocabulary[i]} {probs[i]:.3f}" for i in order)
    totals = ", ".join(f"{total:.3f}" for total in running[:kept + 1])
    return Question(
        key=f"top-p-{tag}-{top_p}",
        text=f"Top-p = {top_p} keeps the fewest most likely tokens whose probabilities add up to at least "
             f"{top_p}. How many tokens does it keep here?",
        given=f"The most likely tokens: {listing}.", options=tuple(options), answer=options.index(str(kept)),
        reveal=f"Running totals from the most likely token down: {totals}. The total first reaches {top_p} "
               f"at token {kept}, so top-p keeps {kept}.")


SCALE_OPTIONS = ("sharper (lower entropy)", "flatter (higher entropy)", "no change")


def scale_question(trace, layer: int, head: int, tag: str = "") -> Question | None:
    """Does removing the 1/sqrt(d_head) scale make the last query's row sharper or flatter?
    Answered by the entropy of softmax(q.k) against softmax(q.k / sqrt(d_head)); None when the
    last query sees one key only (its weight is 1 either way)."""
    layer_trace = trace.layers[check_index(layer, len(trace.layers), "layer")]
    query = len(trace.tokens) - 1
    if query == 0:
        return None
    raw = _f64(layer_trace.raw_scores[head, query, :query + 1])  # [query + 1] q.k of the visible keys
    with_scale = entropy_bits(softmax(raw * layer_trace.scale))
    without = entropy_bits(softmax(raw))
    if abs(with_scale - without) <= TIE:
        answer = 2
    else:
        answer = 0 if without < with_scale else 1
    return Question(
        key=f"scale-{tag}-{layer}-{head}",
        text=f"Layer {layer}, head {head}, the row of **{_labels(trace.tokens)[query]}**: without the "
             f"1/√d_head factor (here ×{layer_trace.scale:.4f}), is the attention row sharper or flatter?",
        given="Sharper means more of the weight on fewer tokens; entropy measures the spread.",
        options=SCALE_OPTIONS, answer=answer,
        reveal=f"Entropy with the scale: {with_scale:.3f} bits; without it: {without:.3f} bits. Without the "
               f"scale the scores are {1 / layer_trace.scale:.1f}x further apart, and softmax turns larger "
               "gaps into a sharper row.")


def ablation_effects(model, ids, token_id: int, heads) -> np.ndarray:
    """For each (layer, head) in `heads`: the change in `token_id`'s next-token probability when
    that head's output is zeroed, [len(heads)]; negative = the head helped. The plain model and
    the ablations run as rows of batched forward passes (zero_head_by_row), so that each pass
    reads the weights once for many ablations; ABLATION_BATCH_TOKENS bounds a pass's memory."""
    ids = np.asarray(ids, dtype=np.int64)  # [L]
    rows = [None, *heads]  # row 0: the plain model
    per_pass = max(1, ABLATION_BATCH_TOKENS // ids.size)
    probabilities = np.concatenate([_next_probabilities(model, ids, token_id, rows[first:first + per_pass])
                                    for first in range(0, len(rows), per_pass)])  # [1 + len(heads)]
    return probabilities[1:] - probabilities[0]


def _next_probabilities(model, ids, token_id: int, zeroed) -> np.ndarray:
    """`token_id`'s next-token probability with one (layer, head) or None zeroed per row, [len(zeroed)]."""
    batch = np.broadcast_to(ids, (len(zeroed), ids.size))  # [B, L]
    logits = gpt_forward(model.params, model.config, batch,
                         interventions=Interventions(zero_head_by_row=zeroed))  # [B, L, V]
    return np.array([softmax(row)[token_id] for row in _f64(logits[:, -1])])  # [B]


def head_question(effects, layer: int, token: str, tag: str = "") -> Question | None:
    """Which head of `layer` matters most for predicting `token`: the one whose removal changes
    its probability most (effects [H] from `ablation_effects`); None when the top two tie."""
    size = np.abs(_f64(effects))
    if not _no_tie(size):
        return None
    best = int(size.argmax())
    changes = ", ".join(f"head {h} {change:+.5f}" for h, change in enumerate(_f64(effects)))
    return Question(
        key=f"head-{tag}-{layer}", text=f"Which head of layer {layer} matters most for predicting **{token}**?",
        given="'Matters' means: zeroing the head's output changes the token's probability the most.",
        options=tuple(f"head {h}" for h in range(size.size)), answer=best,
        reveal=f"Change in the probability of {token} when each head is zeroed: {changes}.")


# --- compute it yourself ----------------------------------------------------------------------

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
    layer_trace = trace.layers[check_index(layer, len(trace.layers), "layer")]
    query = check_index(query, len(trace.tokens), "query")
    key = check_index(key, query + 1, "key (a token at or before the query)")
    q, k = _f64(layer_trace.q[head, query]), _f64(layer_trace.k[head, key])  # [D] each
    labels = _labels(trace.tokens)
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
    layer_trace = trace.layers[check_index(layer, len(trace.layers), "layer")]
    query = check_index(query, len(trace.tokens), "query")
    key = check_index(key, query + 1, "key (a token at or before the query)")
    scores = _f64(layer_trace.masked_scores[head, query, :query + 1])  # [query + 1] the visible scores
    labels = _labels(trace.tokens)
    shifted = scores - scores.max()
    exps = np.exp(shifted)
    answer = float(layer_trace.weights[head, query, key])
    return Exercise(
        key=f"softmax-{tag}-{layer}-{head}-{query}-{key}",
        task=f"The attention weight of **{labels[query]}** on **{labels[key]}**: softmax of the row, entry {key}",
        given=f"The row's scaled scores (keys {labels[0]} .. {labels[query]}): {_numbers(scores)}",
        hints=(f"The row's largest score: {scores.max():.4f}",
               f"Subtract it: {_numbers(shifted)}",
               f"exp of each: {_numbers(exps)}",
               f"Their sum: {exps.sum():.4f}; entry {key} is exp / sum = {exps[key]:.4f} / {exps.sum():.4f}"),
        answer=answer, tolerance=0.005)


def layer_norm_exercise(params, config, trace, layer: int, position: int, dim: int, tag: str = "") -> Exercise:
    """One output of ln_1: token `position`, dimension `dim`, from the residual entering the block."""
    x, weight, bias = norm_input(params, trace, "ln_1", layer)
    position = check_index(position, x.shape[0], "position")
    dim = check_index(dim, x.shape[1], "dim")
    steps = layer_norm_steps(x[position], weight, bias, config.layer_norm_epsilon)
    answer = float(trace.layers[layer].ln_1[position, dim])
    return Exercise(
        key=f"ln-{tag}-{layer}-{position}-{dim}",
        task=f"ln_1 of layer {layer}, token **{_labels(trace.tokens)[position]}**, dimension {dim}: "
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


# --- why the softmax must be stable -----------------------------------------------------------

def softmax_two_ways(scores, factor: float, dtype=np.float32) -> dict[str, np.ndarray]:
    """One row of visible scores [n] multiplied by `factor`, softmaxed in `dtype` two ways:
    `naive` = exp(x) / sum (exp overflows to inf past FLOAT32_EXP_LIMIT, and inf / inf is NaN)
    and `stable` = exp(x - max) / sum (the largest term is exp(0) = 1); with `scaled` x and
    both `naive_exp` and `stable_exp`."""
    x = (_f64(scores) * factor).astype(dtype)  # [n]
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        naive_exp = np.exp(x)
        naive = naive_exp / naive_exp.sum()
        stable_exp = np.exp(x - x.max())
        stable = stable_exp / stable_exp.sum()
    return {"scaled": x, "naive_exp": naive_exp, "naive": naive, "stable_exp": stable_exp, "stable": stable}


def breaking_factor(scores) -> float | None:
    """The factor past which float32's naive softmax of this row breaks: where the largest score
    times it passes 88.72 (exp overflows); for a row of negative scores, where even the largest
    passes -103.28 (every exp underflows to 0 and 0 / 0 is NaN); None for a largest score of 0."""
    top = float(_f64(scores).max())
    if top == 0:
        return None
    return (FLOAT32_EXP_LIMIT if top > 0 else FLOAT32_EXP_FLOOR) / top


def pressure_factors(breaking: float | None, limit: float = 1e12) -> list[float]:
    """Factors for the slider: 1, 2, 5, 10, 20, ... up to the first at least twice `breaking`
    (1000 when the row never breaks), and at most `limit`."""
    top = min(limit, 1000.0 if breaking is None else max(10.0, 2 * breaking))
    factors = [1.0]
    while factors[-1] < top:
        factors.append(factors[-1] * (2.5 if len(factors) % 3 == 2 else 2.0))  # 1, 2, 5, 10, 20, 50, ...
    return factors


def kernel_row(trace, layer: int, head: int, query: int, factor: float) -> dict[str, np.ndarray]:
    """The same row from the attention kernels, their scale multiplied by `factor`: "c" (when
    built) and "numpy" weights [query + 1], in the model's dtype; both subtract the max."""
    layer_trace = trace.layers[check_index(layer, len(trace.layers), "layer")]
    query = check_index(query, len(trace.tokens), "query")
    q = layer_trace.q[head, query:query + 1]  # [1, D]
    k, v = layer_trace.k[head, :query + 1], layer_trace.v[head, :query + 1]  # [query + 1, D]
    result = {}
    for backend in available_backends():
        _, weights = scaled_dot_product_attention(q, k, v, scale=layer_trace.scale * factor, return_weights=True,
                                                  backend=backend)  # [1, query + 1]
        result[backend] = weights[0]
    return result


# --- minimal pairs ------------------------------------------------------------------------------

def _padded(row, length: int) -> np.ndarray:
    return np.pad(_f64(row), (0, length - len(row)))


def minimal_pair(trace_a, trace_b) -> dict:
    """How two prompts differ inside the model, at their last tokens.

    `distance` [n_layer + 1]: the L2 distance between the two last-token residual vectors at
    each point (the embedding, then after every block), `relative` the same over prompt a's
    norm; `attention_change` [n_layer, n_head]: the total variation between the last query's
    attention rows (positions aligned from the start, the shorter row padded with zeros);
    `next_token`: core.explain.distribution_change of the next-token distributions (total
    variation and KL(a || b) in bits)."""
    if trace_a.logits.shape[-1] != trace_b.logits.shape[-1] or len(trace_a.layers) != len(trace_b.layers):
        raise ValueError("the two traces must come from the same model")
    stream_a, stream_b = _f64(trace_a.residual_stream[:, -1]), _f64(trace_b.residual_stream[:, -1])  # [P, C]
    distance = np.linalg.norm(stream_a - stream_b, axis=-1)  # [P]
    length = max(len(trace_a.tokens), len(trace_b.tokens))
    change = np.array([[0.5 * np.abs(_padded(a[-1], length) - _padded(b[-1], length)).sum()
                        for a, b in zip(layer_a.weights, layer_b.weights)]
                       for layer_a, layer_b in zip(trace_a.layers, trace_b.layers)])  # [n_layer, n_head]
    return {"distance": distance, "relative": distance / np.maximum(np.linalg.norm(stream_a, axis=-1), 1e-12),
            "attention_change": change,
            "next_token": distribution_change(trace_a.next_token_probs, trace_b.next_token_probs)}


# --- attention is not explanation -------------------------------------------------------------

def last_token_focus(trace) -> tuple[np.ndarray, np.ndarray]:
    """Where the last token looks: (largest weight [n_layer, n_head], the key it goes to [n_layer, n_head])."""
    rows = np.stack([_f64(layer.weights[:, -1]) for layer in trace.layers])  # [n_layer, n_head, L]
    return rows.max(axis=-1), rows.argmax(axis=-1)


def heads_to_ablate(config, layer: int | None) -> list[tuple[int, int]]:
    """Every (layer, head) of one layer, or of the whole model when `layer` is None."""
    layers = range(config.n_layer) if layer is None else [check_index(layer, config.n_layer, "layer")]
    return [(l, h) for l in layers for h in range(config.n_head)]


# --- the guided path ------------------------------------------------------------------------------

def path_questions(config, tokens) -> list[Question]:
    """One question per stop of the guided path (tokens, embeddings, Q/K/V, scores, softmax,
    weighted sum, MLP, residual and LayerNorm, logits, sampling); the sizes are this model's
    and this prompt's."""
    L, C, V = len(tokens), config.n_embd, config.vocab_size
    counts = sorted({max(1, L - 1), L, L + 1, L + 2})[:4]
    shapes = (f"[{L}, {C}]", f"[{C}, {L}]", f"[{V}, {C}]", f"[{L}]")
    widths = sorted({C, 3 * C, 4 * C, config.d_head})
    return [
        Question("path-tokens", f"Your prompt is **{' '.join(tokens)}**. How many tokens does the model see?",
                 "", tuple(str(n) for n in counts), counts.index(L), f"{L} tokens: {', '.join(tokens)}."),
        Question("path-embeddings", "What shape is the matrix of your prompt's embeddings?", "",
                 shapes, 0, f"One row of d_model = {C} numbers per token: [{L}, {C}]."),
        Question("path-qkv", "Which of the three vectors plays the part of the name tag a token wears?", "",
                 ("the query", "the key", "the value"), 1,
                 "The key: queries are compared with keys; the values are what gets shared."),
        Question("path-scores", "Why are the cells above the diagonal of the scores -inf?", "",
                 ("those scores overflowed", "a token may not look at tokens after it", "they are the padding"), 1,
                 "The causal mask: a token only sees itself and the tokens before it."),
        Question("path-softmax", "What does every row of attention weights add up to?", "",
                 ("0", "1", "the number of tokens", "it depends on the scores"), 1,
                 "1: softmax shares one unit of attention among the keys a query can see."),
        Question("path-sum", "What does a head mix together with the attention weights?", "",
                 ("the queries", "the keys", "the values", "the logits"), 2,
                 "The values: each token takes home a weighted mix of what the others share."),
        Question("path-mlp", "How many hidden units does the MLP of one block have per token?", "",
                 tuple(str(width) for width in widths), widths.index(4 * C), f"4 x d_model = {4 * C}."),
        Question("path-residual", "What happens to the output of each attention and MLP sub-layer?", "",
                 ("it replaces the residual stream", "it is added to the residual stream", "it is thrown away"), 1,
                 "It is added: the residual stream is the running sum of the embedding and every sub-layer's output."),
        Question("path-logits", "How many logits does the model produce for the next token?", "",
                 tuple(str(n) for n in (L, C, V)), 2, f"One per word of the vocabulary: {V}."),
        Question("path-sampling", "With temperature 0, which token is chosen?", "",
                 ("a random one", "the most likely one", "the least likely one"), 1,
                 "The most likely one (greedy decoding)."),
    ]
