"""`python -m core info`: the model's config, parameter count and the attention backend in use."""
from __future__ import annotations

import json
from pathlib import Path

import core
from core.io.checkpoint import load_history
from core.native.kernel import available_backends, default_backend


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the information as JSON")
    parser.add_argument("--checkpoint", metavar="DIR", default=None, help="a checkpoint directory (default: the bundled model)")


def run(args) -> int:
    path = Path(core.DEFAULT_CHECKPOINT if args.checkpoint is None else args.checkpoint)
    model = core.load_checkpoint(path)
    history = load_history(path)
    info = {
        "checkpoint": str(path),
        "config": model.config.to_hf_dict(eos_token_id=model.tokenizer.eos_id),
        "d_head": model.config.d_head,
        "family": model.config.family,
        "kv_heads": model.config.n_kv_head,
        "parameters": model.parameter_count,
        "vocabulary": model.tokenizer.vocab_size,
        "tokenizer": model.tokenizer.kind,
        "trained_steps": history[-1].get("step") if history else None,
        "attention_backend": default_backend(),
        "available_backends": list(available_backends()),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    config = model.config
    print(f"checkpoint: {info['checkpoint']}")
    if config.family == "llama":
        print(llama_summary(model))
    else:
        print(f"model: GPT-2 style, {config.n_layer} layers, {config.n_head} heads of {config.d_head} dims, "
              f"n_embd {config.n_embd}, context {config.n_positions} tokens, vocabulary {config.vocab_size} "
              f"({'byte-level BPE' if model.tokenizer.kind == 'bpe' else 'words'}), MLP {config.d_mlp} "
              f"({config.activation}), output head {'tied to the token embedding' if config.tied else 'its own matrix'}")
    print(f"parameters: {info['parameters']:,}")
    print("training: " + (f"{info['trained_steps']} steps (history.json)" if history else "no history.json (untrained?)"))
    print(f"attention backend: {info['attention_backend']} (available: {', '.join(info['available_backends'])})")
    return 0


def llama_summary(model) -> str:
    """The llama family's "model:" line: family, heads and key/value heads, head_dim, RoPE, norms, MLP."""
    config = model.config
    rope = f"RoPE theta {config.rope_theta:g}" + (
        f", llama3 scaling {dict(config.rope_scaling)}" if config.rope_scaling else "")
    context = f"context {config.n_positions} tokens"
    if config.max_position_embeddings and config.max_position_embeddings != config.n_positions:
        context += f" (the config says {config.max_position_embeddings}; capped"
        context += " at its sliding window)" if config.sliding_window == config.n_positions else ")"
    extras = [name for flag, name in ((config.attention_bias, "q/k/v biases"), (config.qk_norm, "q/k RMSNorm"))
              if flag]
    return (f"model: Llama family ({config.model_type}), {config.n_layer} layers, {config.n_head} heads and "
            f"{config.n_kv_head} key/value heads, head_dim {config.head_dim}, n_embd {config.n_embd}, {rope}, "
            f"{context}, vocabulary {config.vocab_size} (tokenizer: {model.tokenizer.vocab_size}), SwiGLU MLP "
            f"{config.d_mlp} ({config.activation}), RMSNorm eps {config.layer_norm_epsilon:g}"
            f"{''.join(', ' + extra for extra in extras)}, output head "
            f"{'tied to the token embedding' if config.tied else 'its own matrix'}")
