"""A GPT-2-family model end to end: the trace, KV-cache generation against full recompute, and
(where torch and transformers are installed, never a dependency) parity with GPT2LMHeadModel."""
from __future__ import annotations

import numpy as np
import pytest
from helpers.gpt2 import small_gpt2

import core
from core.model.forward import gpt_forward
from core.model.sampling import Sampler


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return small_gpt2(tmp_path_factory.mktemp("gpt2") / "m", buffers=True)


@pytest.fixture(scope="module")
def model(folder):
    return core.load_checkpoint(folder)


def test_the_trace_has_transformerlens_hooks_and_display_tokens(model):
    trace = model.run("Hello world, ünïcödé")
    length = len(model.tokenizer.encode("Hello world, ünïcödé"))
    assert trace.tokens[:2] == ["Hello", "␣world"]
    assert trace["blocks.1.attn.hook_pattern"].shape == (4, length, length)
    assert trace["blocks.0.mlp.hook_post"].shape == (length, 128)
    np.testing.assert_allclose(trace.logits, model.forward(trace.ids), rtol=1e-6, atol=1e-6)


def test_kv_cache_generation_equals_full_recompute(model):
    generation = model.generate("The meaning of life is", 12)
    ids = list(generation.prompt_ids)
    for step in generation.steps:
        logits = model.forward(ids)[-1]  # the whole sequence again, no cache
        np.testing.assert_allclose(step.logits, logits, rtol=1e-4, atol=1e-4)
        assert step.token_id == int(np.argmax(logits))
        ids.append(step.token_id)
    assert generation.text == model.tokenizer.decode(generation.prompt_ids + generation.new_ids)


def test_sampling_and_interventions_run_unchanged(model):
    sampled = model.generate("Once upon a time", 5, Sampler(temperature=0.8, top_k=40, top_p=0.9, seed=1))
    again = model.generate("Once upon a time", 5, Sampler(temperature=0.8, top_k=40, top_p=0.9, seed=1))
    assert sampled.new_ids == again.new_ids and len(sampled.steps) == 5
    plain = model.run("Once upon a time")
    zeroed = model.run("Once upon a time", core.Interventions(zero_heads={(0, 1)}, activation="relu"))
    assert not np.allclose(plain.logits, zeroed.logits)
    assert np.all(zeroed["blocks.0.attn.hook_z"][1] == 0)
    assert np.all(zeroed["blocks.0.mlp.hook_post"] >= 0)


def test_a_prompt_beyond_the_context_is_truncated_with_a_notice(model):
    trace = model.run("word " * 100)
    assert len(trace.tokens) == 64 and any("only the last 64" in notice for notice in trace.notices)


# --- transformers parity ---------------------------------------------------------------------------

def hf_model(folder):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    return torch, transformers.GPT2LMHeadModel.from_pretrained(
        str(folder), attn_implementation="eager", dtype=torch.float32).eval()  # float16 files: computed in float32


@pytest.mark.parametrize("options", [{}, {"tied": False, "prefix": False, "activation": "gelu"},
                                     {"dtype": "float16", "sharded": True, "activation": "relu"}], ids=str)
def test_logits_and_attention_equal_transformers(tmp_path, options):
    folder = small_gpt2(tmp_path / "m", **options)
    model = core.load_checkpoint(folder)
    torch, reference = hf_model(folder)
    text = "The quick brown fox jumps over the lazy dog. ünïcödé 🤖"
    trace = model.run(text)
    with torch.no_grad():
        out = reference(torch.tensor([trace.ids.tolist()]), output_attentions=True, output_hidden_states=True)
    expected = out.logits[0].double().numpy()
    scale = np.abs(expected).max()
    np.testing.assert_allclose(trace.logits, expected, rtol=1e-4, atol=1e-4 * scale)
    for layer, attentions in enumerate(out.attentions):
        np.testing.assert_allclose(trace[f"blocks.{layer}.attn.hook_pattern"], attentions[0].numpy(),
                                   rtol=1e-4, atol=1e-6)


def test_greedy_generation_equals_transformers_generate(folder, model):
    torch, reference = hf_model(folder)
    prompt = "Hello, my name is"
    ours = model.generate(prompt, 15)
    with torch.no_grad():
        theirs = reference.generate(torch.tensor([ours.prompt_ids]), max_new_tokens=15, do_sample=False,
                                    pad_token_id=model.tokenizer.eos_id, eos_token_id=None)
    assert ours.new_ids == theirs[0, len(ours.prompt_ids):].tolist()[:len(ours.new_ids)]
    assert len(ours.steps) == 15 or ours.stop_reason == "end_of_text"


def test_gpt2_small_shapes_equal_transformers(gpt2_models_dir):
    folder = gpt2_models_dir / "gpt2-random"
    model = core.load_checkpoint(folder)
    assert model.parameter_count == 124_439_808  # GPT-2 small's own count (tied head)
    torch, reference = hf_model(folder)
    ids = model.tokenizer.encode("Glassbox explains a real GPT-2, one step at a time.")
    with torch.no_grad():
        expected = reference(torch.tensor([ids])).logits[0].numpy()
    logits = gpt_forward(model.params, model.config, ids)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
