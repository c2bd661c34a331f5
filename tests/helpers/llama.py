"""Small random-weight Llama-family checkpoints written by transformers itself (never downloaded),
with the SentencePiece-style tokenizer of helpers.tokenizers. Needs torch and transformers."""
from __future__ import annotations

from pathlib import Path

from helpers.tokenizers import SENTENCEPIECE_VOCAB_SIZE, write_tokenizer

# 4 query heads sharing 2 key/value heads; the vocabulary is the tokenizer's
TINY = dict(vocab_size=SENTENCEPIECE_VOCAB_SIZE, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, bos_token_id=1,
            eos_token_id=2, tie_word_embeddings=False)


def write_tiny(folder: Path, config_class: str, model_class: str, **options) -> Path:
    """A checkpoint of transformers' `model_class` (e.g. "LlamaForCausalLM") with TINY's sizes and
    `options`, in `folder`. Its weights are drawn wider than transformers' init (matrices 0.3, biases
    0.2, norm weights 0.5-1.5, not all 1), so that every head and norm visibly does something."""
    import torch
    import transformers

    config = getattr(transformers, config_class)(**{**TINY, **options})
    torch.manual_seed(0)
    model = getattr(transformers, model_class)(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim == 2:
                parameter.normal_(0, 0.3)
            elif name.endswith("bias"):
                parameter.normal_(0, 0.2)
            else:
                parameter.uniform_(0.5, 1.5)
    model.save_pretrained(folder)
    write_tokenizer(folder, "sentencepiece")
    return Path(folder)
