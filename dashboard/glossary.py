"""The glossary's words (drawn by dashboard/views/glossary.py) and links to its entries.

`link("entropy")` is a markdown link to the entry on the Glossary page (its anchor is
`anchor("entropy")`), for any page that uses the word.
"""
import re

from core.text.markdown import escaped
from dashboard.navigation import GLOSSARY

TERMS = {
    "token": "A piece of the prompt the model reads as one unit: a word in the toy model, a word or part of a word "
             "for GPT-2. Each token is looked up by its id.",
    "<unk>": "The token a word-level model uses for a word it has never seen. Every unknown word becomes the same "
             "`<unk>`, so the model cannot tell them apart.",
    "embedding": "The row of numbers a token is looked up as (plus a row for its position). It is the token's first "
                 "self-description, before any other token has been looked at.",
    "d_model": "The width of the residual stream: how many numbers describe each token between the blocks (C, "
               "n_embd; 64 in the toy model, 768 in GPT-2 small).",
    "head": "One of the attention mechanisms that run side by side in a block. Each has its own queries, keys and "
            "values, so different heads can look for different things (the previous word, the subject, ...).",
    "d_head": "The width of one head's queries, keys and values: d_model divided by the number of heads.",
    "query, key, value": "Three projections of each token. The query is the question a token asks, the key is the "
                         "name tag it wears, the value is what it shares with whoever listens.",
    "softmax": "Turns a row of scores into weights that are positive and add up to 1: exp of each score, divided by "
               "the sum. Subtracting the row's largest score first gives the same weights without overflow.",
    "causal mask": "Hides from each token the tokens that come after it: their scores become -inf before softmax, "
                   "so their weights are 0. A model that predicts the next word must not read it.",
    "logit": "A raw score for one possible next token, before softmax. Larger means more likely; only the "
             "differences between logits matter.",
    "residual stream": "The running sum each token carries through the model: the embedding, plus the output of every "
                       "attention and MLP sub-layer. Every block reads it and adds its update to it.",
    "LayerNorm": "Rescales one token's vector to mean 0 and spread 1, then applies a learned gain and bias per "
                 "dimension. It keeps the numbers in a steady range from block to block.",
    "GELU": "The MLP's activation: lets large positive values through, squashes negative ones to nearly 0, and bends "
            "smoothly in between (unlike ReLU's sharp corner).",
    "MLP": "The feed-forward part of a block: expand each token's vector to 4 x d_model, apply GELU, project back. "
           "It works on every token alone; attention is what mixes tokens.",
    "entropy": "How spread out a distribution is: 0 when all the weight is on one item, larger when it is spread. "
               "Measured in bits (log base 2) or nats (natural log).",
    "bits and nats": "Units of information: a bit uses log base 2, a nat the natural log; 1 nat = 1.4427 bits. A fair "
                     "coin flip carries 1 bit.",
    "surprisal": "-log p of what actually happened: 0 bits for a certain event, 1 bit for a coin flip, more for "
                 "rarer events.",
    "perplexity": "2 to the power of the mean surprisal in bits: the number of equally likely choices that would be "
                  "as surprising. 1 means the model is always sure and right.",
    "cross-entropy loss": "What training lowers: the surprisal of the token that really came next, averaged over "
                          "the batch, in nats per token. A model that gives the right token probability 1 scores 0.",
    "KL divergence": "How badly one distribution stands in for another, in bits: KL(p || q) is the extra surprisal of "
                     "using q when the truth is p. 0 when they are equal; not symmetric.",
    "total variation": "Half the sum of the absolute differences between two distributions: the largest amount of "
                       "probability they disagree on, from 0 (the same) to 1 (nothing in common).",
    "temperature": "Divides the logits before softmax: below 1 the distribution gets sharper, above 1 flatter, and 0 "
                   "always picks the most likely token.",
    "top-k and top-p": "Filters before sampling: top-k keeps the k most likely tokens, top-p the fewest most likely "
                       "tokens whose probabilities add up to at least p. The rest get probability 0.",
    "KV cache": "While generating, the keys and values of earlier tokens never change, so they are kept. Each new "
                "token computes only its own query, key and value and looks at the cached ones.",
    "PCA": "Principal component analysis: finds the directions in which vectors differ most, so that many-numbered "
           "vectors can be drawn as points in 2-D. The axes say how much of the spread they keep.",
    "ablation": "Switching a part off (here, zeroing a head's output) and measuring what changes. It tests whether a "
                "part matters, which looking at its attention alone cannot.",
    "direct logit attribution": "Splits the predicted token's logit into one push per part of the residual stream, "
                                "read through the final LayerNorm and lm_head. It shows which parts wrote the answer.",
    "gradient": "For each parameter, how fast the loss on a batch rises when that parameter grows. Backpropagation "
                "computes all of them in one backward pass; its norm (the square root of the sum of squares) says "
                "how steep the loss is.",
    "learning rate": "How far one training step moves the parameters: plain SGD subtracts learning rate x gradient. "
                     "Too small and nothing changes; too large and the loss jumps up instead of down.",
}


def anchor(term: str) -> str:
    """The entry's anchor on the Glossary page: "KV cache" -> "kv-cache", "<unk>" -> "unk"."""
    return re.sub(r"[^a-z0-9]+", "-", term.lower()).strip("-")


def link(term: str, text: str | None = None) -> str:
    """A markdown link to `term`'s entry (KeyError for a word the glossary does not have)."""
    if term not in TERMS:
        raise KeyError(f"the glossary has no entry {term!r}")
    return f"[{escaped(text or term)}]({GLOSSARY.url_path}#{anchor(term)})"
