"""`Model`: config, parameters and tokenizer together; prompts in, traces and text out.

`run(prompt) -> Trace` (core.model.trace), `generate(prompt, max_new_tokens, sampler) -> Generation`
(KV-cache decoding through core.model.forward), `Model.load(path)` / `load_checkpoint(path)` and
`save(path)` (core.io.checkpoint reads and writes the files; it knows nothing of Model).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.checks import whole
from core.io.checkpoint import read_checkpoint, save_checkpoint
from core.model.config import GPTConfig
from core.model.forward import KVCache, check_ids, gpt_forward
from core.model.interventions import NO_INTERVENTIONS, Interventions
from core.model.params import check_params
from core.model.sampling import Sampler
from core.model.trace import Trace
from core.text.tokenizer import Tokenizer

WATCHED = ("hook_embed", "hook_pos_embed", "hook_scale", "hook_resid_post")  # small hooks, in computing order


def check_finite(logits: np.ndarray, cache: dict | None, params: dict) -> np.ndarray:
    """`logits` when the pass stayed inside float32; otherwise ValueError naming where it overflowed.
    Weights near float32's largest value (3.4e38) are finite, so they load, but the sums they make
    overflow: a norm's sqrt(variance) becomes inf and every normalised value 0 (the logits stay finite,
    and every later number is meaningless). So the norms' scales, the residual stream (from `cache`,
    cheap: [L, 1] and [L, C] per layer) and the logits are checked, and the first place named."""
    broken = next((key for key, value in (cache or {}).items() if key.endswith(WATCHED)
                   and not np.isfinite(value).all()), None)
    if broken is None and np.isfinite(logits).all():
        return logits
    if broken is None:
        where = "the logits"
    elif broken.startswith("blocks."):
        where = f"layer {broken.split('.')[1]} ({broken})"
    elif broken.startswith("ln_final"):
        where = "the final norm (ln_final)"
    else:
        where = f"the embeddings ({broken})"
    largest = max(float(np.abs(value).max()) for value in params.values() if value.size)
    raise ValueError(f"the model's numbers overflowed float32 in {where}: some became inf or NaN (its largest "
                     f"weight is {largest:.3g}; float32 holds at most 3.4e38), so nothing it computes is meaningful")


@dataclass(eq=False)
class GenerationStep:
    """One decoding step: the new token, how likely it was, and what the new query saw."""

    token: str
    token_id: int
    probability: float  # of this token under `distribution`
    distribution: np.ndarray  # [V] what the sampler drew from (after temperature, top-k, top-p)
    logits: np.ndarray  # [V] the model's logits for this position
    queries: list[np.ndarray]  # per layer [H, D]: the newest token's query vectors (llama family: after RoPE)
    keys: list[np.ndarray]  # per layer [H, T, D]: every cached key it was compared with ([Hkv, T, D] after RoPE
    # for the llama family: query head h compared with key head h // (H / Hkv))
    weights: list[np.ndarray]  # per layer [H, T]: its attention weights over those keys


@dataclass(eq=False)
class Generation:
    """A prompt and its continuation; `stop_reason` is "max_new_tokens", "end_of_text" or
    "context_full" (the context of n_positions tokens cannot take another token). Tokens are
    the tokenizer's display strings; `text` is prompt and continuation decoded to text."""

    prompt_tokens: list[str]
    prompt_ids: list[int]
    steps: list[GenerationStep]
    stop_reason: str
    notices: list[str]
    text: str = ""

    @property
    def new_steps(self) -> list[GenerationStep]:
        """The steps that produced text: all but a final end-of-text."""
        return self.steps[:-1] if self.stop_reason == "end_of_text" else self.steps

    @property
    def new_tokens(self) -> list[str]:
        """The generated tokens (display strings), without a final end-of-text."""
        return [step.token for step in self.new_steps]

    @property
    def new_ids(self) -> list[int]:
        return [step.token_id for step in self.new_steps]


class Model:
    """A GPT-2-style or Llama-style model with its tokenizer: prompts in, logits, traces and text out.

    The tokenizer may have fewer tokens than the config's vocab_size: an embedding padded with
    rows no text encodes to (Qwen's). Those ids show as "<pad ID>" in `vocabulary` and have no text."""

    def __init__(self, config: GPTConfig, params: dict, tokenizer: Tokenizer):
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"tokenizer must be a core.text tokenizer (WordTokenizer, BPETokenizer, HFTokenizer), "
                            f"got {type(tokenizer).__name__}")
        check_params(params, config)
        if tokenizer.vocab_size > config.vocab_size:
            raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens, the config {config.vocab_size}")
        self.config, self.params, self.tokenizer = config, params, tokenizer
        padded = range(tokenizer.vocab_size, config.vocab_size)
        self.vocabulary = list(tokenizer.tokens) + [f"<pad {index}>" for index in padded]  # [V] display strings

    def __repr__(self):
        return f"Model({self.config}, {self.parameter_count} parameters)"

    @classmethod
    def load(cls, path) -> Model:
        """The model in the checkpoint folder `path` (core.io.checkpoint.read_checkpoint)."""
        return cls(*read_checkpoint(path))

    @property
    def parameter_count(self) -> int:
        """Every parameter once (a tied head is the token embedding, not counted twice)."""
        return sum(value.size for value in self.params.values())

    def forward(self, ids) -> np.ndarray:
        """Logits [L, V] for token ids [L] (at most n_positions of them)."""
        if np.ndim(ids) != 1:
            raise ValueError(f"forward takes a 1-D sequence of token ids, got shape {np.shape(ids)}")
        return check_finite(gpt_forward(self.params, self.config, ids), None, self.params)

    def encode_prompt(self, text_or_ids) -> tuple[np.ndarray, list[str], list[str]]:
        """(ids [L], tokens, notices) for a prompt given as text or token ids; a prompt longer
        than the context keeps its last n_positions tokens, with a notice."""
        notices = []
        if isinstance(text_or_ids, str):
            ids = np.array(self.tokenizer.encode(text_or_ids), dtype=np.int64)
            if ids.size == 0:
                raise ValueError("the prompt is empty: type a few words, for example 'the sky is'")
            unknown = [shorten(word) for word in self.tokenizer.unknown_words(text_or_ids)]
            if unknown and np.all(ids == self.tokenizer.unk_id):
                raise ValueError(f"none of the prompt's words are in the model's vocabulary: {', '.join(unknown)}")
            if unknown:
                notices.append(f"unknown words shown as <unk>: {', '.join(unknown)}")
        else:
            ids = np.asarray(text_or_ids)
            if ids.ndim != 1:
                raise ValueError(f"a prompt is text or a 1-D sequence of token ids, got shape {ids.shape}")
        if ids.shape[0] > self.config.n_positions:
            notices.append(f"the prompt has {ids.shape[0]} tokens but the context holds {self.config.n_positions}:"
                           f" only the last {self.config.n_positions} are used")
            ids = ids[-self.config.n_positions:]
        ids = check_ids(ids, self.config)
        return ids, [self.vocabulary[index] for index in ids], notices

    def run(self, text_or_ids, interventions: Interventions | None = None) -> Trace:
        """The forward pass over a prompt with every intermediate kept (see core.model.trace)."""
        if interventions is not None and not isinstance(interventions, Interventions):
            raise TypeError(f"interventions must be an Interventions or None, got {type(interventions).__name__}")
        interventions = NO_INTERVENTIONS if interventions is None else interventions
        ids, tokens, notices = self.encode_prompt(text_or_ids)
        cache = {}
        logits = gpt_forward(self.params, self.config, ids, cache=cache, interventions=interventions)
        check_finite(logits, cache, self.params)
        return Trace.from_cache(cache, tokens, ids, logits, self.config, interventions, notices,
                                self.vocabulary)

    def generate(self, prompt, max_new_tokens: int = 20, sampler: Sampler | None = None) -> Generation:
        """Continue `prompt` token by token with a KV cache: each step runs only the newest
        token's query against the cached keys and values. Greedy when `sampler` is None."""
        whole(max_new_tokens, "max_new_tokens", low=1)
        sampler = Sampler(temperature=0.0) if sampler is None else sampler
        if not isinstance(sampler, Sampler):
            raise TypeError(f"sampler must be a core.model.sampling.Sampler, got {type(sampler).__name__}")
        ids, tokens, notices = self.encode_prompt(prompt)
        kv_cache, steps = KVCache(), []
        cache = {}
        logits = gpt_forward(self.params, self.config, ids, cache=cache, kv_cache=kv_cache)  # [L, V]
        while True:
            check_finite(logits, cache, self.params)
            steps.append(self._step(logits[-1], cache, sampler))
            if self.tokenizer.eos_id is not None and steps[-1].token_id == self.tokenizer.eos_id:
                stop_reason = "end_of_text"
            elif len(steps) == max_new_tokens:
                stop_reason = "max_new_tokens"
            elif kv_cache.length == self.config.n_positions:
                stop_reason = "context_full"
            else:
                cache = {}
                logits = gpt_forward(self.params, self.config, [steps[-1].token_id], cache=cache,
                                     kv_cache=kv_cache)  # [1, V]: one new query against the cache
                continue
            generation = Generation(tokens, ids.tolist(), steps, stop_reason, notices)
            generation.text = self.tokenizer.decode([index for index in generation.prompt_ids + generation.new_ids
                                                     if index < self.tokenizer.vocab_size])  # padded rows: no text
            return generation

    def _step(self, logits: np.ndarray, cache: dict, sampler: Sampler) -> GenerationStep:
        """Choose the next token from the last position's logits [V]; keep what its query saw."""
        distribution = sampler.distribution(logits)  # [V]
        token_id = sampler.choose(distribution)
        layers = range(self.config.n_layer)
        q, k = ("hook_rot_q", "hook_rot_k") if self.config.rope else ("hook_q", "hook_k")
        return GenerationStep(
            token=self.vocabulary[token_id], token_id=token_id, probability=float(distribution[token_id]),
            distribution=distribution, logits=logits,
            queries=[cache[f"blocks.{layer}.attn.{q}"][:, -1] for layer in layers],  # [H, D]
            keys=[cache[f"blocks.{layer}.attn.{k}"] for layer in layers],  # [H, T, D] ([Hkv, T, D])
            weights=[cache[f"blocks.{layer}.attn.hook_pattern"][:, -1] for layer in layers])  # [H, T]

    def save(self, path, *, overwrite: bool = False) -> Path:
        """Write this model as a checkpoint folder (see core.io.checkpoint.save_checkpoint)."""
        return save_checkpoint(self, path, overwrite=overwrite)


def load_checkpoint(path) -> Model:
    """The Model in the checkpoint folder `path`: Glassbox's own, Hugging Face's GPT-2 layout, or a
    Hugging Face llama / qwen2 / qwen3 / mistral folder (see core.io.checkpoint); ValueError naming
    the file for anything wrong."""
    return Model.load(path)


def shorten(word: str, limit: int = 30) -> str:
    """`word`, or its first `limit` characters and "…" when longer (for notices)."""
    return word if len(word) <= limit else word[:limit] + "…"
