"""core.bench.models on tiny shapes: the report has every field, and each measured call ran what
it names (generation produced every token asked for, the trace held every layer's pattern). No
timing assertions."""
import pytest

import core
from core.bench import models, peers

pytestmark = pytest.mark.skipif(not peers.transformers_available(), reason="torch and transformers are not installed")

TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=96, vocab_size=300, max_position_embeddings=256)
TINY_MODELS = {"tiny llama": {**models.SMOLLM2_135M, **TINY}, "tiny qwen2": {**models.QWEN25_05B, **TINY}}


def test_the_published_shapes_are_what_the_loader_reads():
    from core.model.config import GPTConfig

    smol, qwen = (GPTConfig.from_hf_dict(shapes) for shapes in (models.SMOLLM2_135M, models.QWEN25_05B))
    assert (smol.model_type, smol.n_embd, smol.n_layer, smol.n_head, smol.n_kv_head, smol.vocab_size) == \
        ("llama", 576, 30, 9, 3, 49152)
    assert (qwen.model_type, qwen.n_embd, qwen.n_layer, qwen.n_head, qwen.n_kv_head, qwen.vocab_size) == \
        ("qwen2", 896, 24, 14, 2, 151936)
    assert smol.tied and qwen.tied


def test_a_written_model_loads_with_its_byte_level_tokenizer(tmp_path):
    folder = models.write_random_model(tmp_path / "qwen2", TINY_MODELS["tiny qwen2"])
    model = core.load_checkpoint(folder)
    assert model.config.model_type == "qwen2" and model.config.vocab_size == 300
    assert model.tokenizer.vocab_size == 256 and model.tokenizer.eos_id is None
    assert model.config.attention_bias and "model.layers.0.self_attn.q_proj.bias" in model.params  # Qwen2's


def test_the_report_has_every_field_and_the_calls_ran_what_they_name():
    new_tokens = 3
    report = models.run_models_benchmark(repeats=1, new_tokens=new_tokens, models=TINY_MODELS)
    assert set(report) >= {"threads", "numpy", "torch", "transformers", "models"}
    assert list(report["models"]) == list(TINY_MODELS)
    for name, result in report["models"].items():
        assert set(result["trace"]) == {16, 128}
        for length, trace in result["trace"].items():
            assert trace["tokens"] == length
            assert trace["glassbox_patterns"] == trace["transformers_patterns"] == TINY["num_hidden_layers"]
            assert trace["glassbox_s"] > 0 and trace["transformers_s"] > 0
        generate = result["generate"]
        assert generate["glassbox_tokens"] == generate["transformers_tokens"] == new_tokens
        assert generate["glassbox_s"] > 0 and generate["transformers_s"] > 0
        assert result["load"]["weights_mb"] > 0 and result["load"]["rss_over_weights"] > 0
        for rows in result["profile"].values():  # only where a target was missed
            assert 0 < len(rows) <= models.PROFILE_TOP
    text = models.format_report(report)
    for name in TINY_MODELS:
        assert name in text
    rows = [line.split("  ")[0] for line in text.splitlines()]  # each table row's label
    for label in ("trace, 16 tokens", "trace, 128 tokens", "greedy generation, per token"):
        assert rows.count(label) == len(TINY_MODELS)
    assert sum(line.startswith("loading:") for line in text.splitlines()) == len(TINY_MODELS)


def test_top_functions_names_where_a_call_spent_its_time():
    rows = models.top_functions(lambda: sorted(range(100_000), key=lambda value: -value), count=3)
    assert 1 <= len(rows) <= 3
    assert all({"function", "calls", "own_s", "share"} <= set(row) for row in rows)
