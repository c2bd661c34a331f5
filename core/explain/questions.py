"""Predict, then reveal: `Question`s made from the live tensors of a prompt, each with exactly one
right answer given the numbers (ties are never asked about), and the guided path's questions.
Their texts and options are Markdown: every token string in them goes through markdown.escaped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.checks import index
from core.explain.block import f64
from core.text.markdown import escaped
from core.explain.sampling_lab import entropy_bits
from core.model.forward import gpt_forward
from core.model.interventions import Interventions
from core.model.sampling import keep_top_p, ranking, softmax
from core.model.trace import token_labels

TIE = 1e-6  # two numbers closer than this count as a tie: no question is made from them
MAX_OPTIONS = 10  # answers offered for a question about the keys of a long prompt
MAX_AUTO_ABLATIONS = 16  # heads ablated without asking (the toy model's 8); GPT-2's 144 wait for a button
ABLATION_BATCH_TOKENS = 256  # tokens per batched ablation pass (GPT-2: its logits are 256 x 50,257 floats, 51 MB)


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


def _percent(share: float) -> str:
    """A share as a percentage with 3 significant digits (52.1%, 0.00235%): small ones stay apart."""
    return f"{100 * share:.3g}%"


def _no_tie(values) -> bool:
    """True when the largest of `values` beats the second largest by more than TIE."""
    ordered = np.sort(f64(values))[::-1]
    return ordered.size == 1 or ordered[0] - ordered[1] > TIE


def attention_question(trace, layer: int, head: int, tag: str = "") -> Question | None:
    """Which key will a query attend to most? The last query row (of this layer and head) that
    sees at least two keys and has no tie for the largest weight; None when every row ties."""
    weights = f64(trace.layers[index(layer, len(trace.layers), "layer")].weights[head])  # [L, L]
    labels = [escaped(label) for label in token_labels(trace.tokens)]
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
    probs = f64(trace.next_token_probs)
    order = ranking(probs)[:count]
    if len(order) > 1 and probs[order[0]] - probs[order[1]] <= TIE:
        return None
    options = sorted(int(i) for i in order)
    shares = ", ".join(f"{escaped(vocabulary[i])} {_percent(probs[i])}" for i in order)
    return Question(
        key=f"next-{tag}", text=f"Which token does the model find most likely after **{escaped(' '.join(trace.tokens))}**?",
        given="", options=tuple(escaped(vocabulary[i]) for i in options), answer=options.index(int(order[0])),
        reveal=f"The model's probabilities: {shares}.")


def top_p_question(trace, vocabulary, top_p: float = 0.9, shown: int = 6, tag: str = "") -> Question | None:
    """How many tokens does top-p keep? The learner sees the most likely tokens' probabilities
    (to 3 decimals); None when rounding could change the count (a running total within 0.005
    of p) or the answer needs more tokens than are shown."""
    probs = f64(trace.next_token_probs)
    kept = int((keep_top_p(probs, top_p) > 0).sum())
    order = ranking(probs)[:shown]
    running = np.cumsum(probs[order])  # [shown]
    if kept > shown - 1 or np.abs(running - top_p).min() < 0.005:
        return None
    first = max(1, kept - 1)
    options = [str(n) for n in range(first, first + 4)]
    listing = ", ".join(f"{escaped(vocabulary[i])} {probs[i]:.3f}" for i in order)
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
    layer_trace = trace.layers[index(layer, len(trace.layers), "layer")]
    query = len(trace.tokens) - 1
    if query == 0:
        return None
    raw = f64(layer_trace.raw_scores[head, query, :query + 1])  # [query + 1] q.k of the visible keys
    with_scale = entropy_bits(softmax(raw * layer_trace.scale))
    without = entropy_bits(softmax(raw))
    if abs(with_scale - without) <= TIE:
        answer = 2
    else:
        answer = 0 if without < with_scale else 1
    return Question(
        key=f"scale-{tag}-{layer}-{head}",
        text=f"Layer {layer}, head {head}, the row of **{escaped(token_labels(trace.tokens)[query])}**: without the "
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
    return np.array([softmax(row)[token_id] for row in f64(logits[:, -1])])  # [B]


def head_question(effects, layer: int, token: str, tag: str = "") -> Question | None:
    """Which head of `layer` matters most for predicting `token`: the one whose removal changes
    its probability most (effects [H] from `ablation_effects`); None when the top two tie."""
    size = np.abs(f64(effects))
    if not _no_tie(size):
        return None
    best = int(size.argmax())
    changes = ", ".join(f"head {h} {change:+.5f}" for h, change in enumerate(f64(effects)))
    return Question(
        key=f"head-{tag}-{layer}", text=f"Which head of layer {layer} matters most for predicting **{escaped(token)}**?",
        given="'Matters' means: zeroing the head's output changes the token's probability the most.",
        options=tuple(f"head {h}" for h in range(size.size)), answer=best,
        reveal=f"Change in the probability of {escaped(token)} when each head is zeroed: {changes}.")


def path_questions(config, tokens) -> list[Question]:
    """One question per stop of the guided path (tokens, embeddings, Q/K/V, scores, softmax,
    weighted sum, MLP, residual and LayerNorm, logits, sampling); the sizes are this model's
    and this prompt's, the words its family's (llama: RMSNorm, SwiGLU, no position embedding)."""
    L, C, M, V = len(tokens), config.n_embd, config.d_mlp, config.vocab_size
    counts = sorted({max(1, L - 1), L, L + 1, L + 2})[:4]
    shapes = (f"[{L}, {C}]", f"[{C}, {L}]", f"[{V}, {C}]", f"[{L}]")
    widths = sorted({C, 3 * C, M, config.d_head})
    llama = config.family == "llama"
    embedded = (" Only the token embedding: there is no position embedding, RoPE turns each query and key by "
                "its position inside attention." if llama else " The token embedding plus the position embedding.")
    mlp = (f"The SwiGLU MLP has d_mlp = {M} units ({M / C:g} x d_model): silu(gate_proj x) times up_proj x, "
           "then down_proj back to d_model." if llama else f"{M / C:g} x d_model = {M}.")
    norm = ("Before each sub-layer an RMSNorm (no mean subtracted, no bias) rescales a copy of the stream."
            if llama else "Before each sub-layer a LayerNorm rescales a copy of the stream.")
    return [
        Question("path-tokens", f"Your prompt is **{escaped(' '.join(tokens))}**. How many tokens does the model see?",
                 "", tuple(str(n) for n in counts), counts.index(L), f"{L} tokens: {', '.join(map(escaped, tokens))}."),
        Question("path-embeddings", "What shape is the matrix of your prompt's embeddings?", "",
                 shapes, 0, f"One row of d_model = {C} numbers per token: [{L}, {C}].{embedded}"),
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
                 tuple(str(width) for width in widths), widths.index(M), mlp),
        Question("path-residual", "What happens to the output of each attention and MLP sub-layer?", "",
                 ("it replaces the residual stream", "it is added to the residual stream", "it is thrown away"), 1,
                 "It is added: the residual stream is the running sum of the embedding and every sub-layer's output. "
                 + norm),
        Question("path-logits", "How many logits does the model produce for the next token?", "",
                 tuple(str(n) for n in (L, C, V)), 2, f"One per word of the vocabulary: {V}."),
        Question("path-sampling", "With temperature 0, which token is chosen?", "",
                 ("a random one", "the most likely one", "the least likely one"), 1,
                 "The most likely one (greedy decoding)."),
    ]
