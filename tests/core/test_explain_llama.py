"""core.explain on the llama family, against the model's own hooks: a random-weight Llama with
grouped-query attention (4 query heads, 2 key/value heads) written by transformers, and a Qwen3
(q/k norms); each explanation's numbers must be the forward pass's."""
from __future__ import annotations

import numpy as np
import pytest
from helpers.llama import write_tiny

import core
from core.explain import block, exercises, pipeline, questions, rope, stream

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

PROMPT = "the cat sat on the mat and the dog sat on the log"
def write(folder, config_class, model_class, **options):
    return core.load_checkpoint(write_tiny(folder, config_class, model_class, **options))


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return write(tmp_path_factory.mktemp("llama"), "LlamaConfig", "LlamaForCausalLM", attention_bias=True)


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):
    return write(tmp_path_factory.mktemp("qwen3"), "Qwen3Config", "Qwen3ForCausalLM", head_dim=16)


@pytest.fixture(scope="module")
def trace(llama):
    return llama.run(PROMPT)


def close(actual, expected, atol=1e-5):
    np.testing.assert_allclose(actual, np.asarray(expected, dtype=np.float64), rtol=1e-5, atol=atol)


def test_kv_grouping_is_the_forward_s(llama):
    assert [block.kv_head_of(llama.config, h) for h in range(4)] == [0, 0, 1, 1]
    assert block.kv_groups(llama.config) == [[0, 1], [2, 3]]


@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("head", [0, 1, 3])
def test_head_projections_are_q_proj_rows_and_the_kv_head_s_rows(llama, trace, layer, head):
    parts = block.head_projections(llama.params, llama.config, layer, head, trace.layers[layer].ln_1)
    kv = block.kv_head_of(llama.config, head)
    close(parts["Q"]["out"], trace[f"blocks.{layer}.attn.hook_q"][head])
    close(parts["K"]["out"], trace[f"blocks.{layer}.attn.hook_k"][kv])
    close(parts["V"]["out"], trace[f"blocks.{layer}.attn.hook_v"][kv])
    assert np.abs(parts["Q"]["bias"]).max() > 0  # attention_bias: the biases are used


def test_heads_joined_through_o_proj_is_the_attention_output(llama, trace):
    for layer, layer_trace in enumerate(trace.layers):
        result = block.heads_joined(llama.params, llama.config, layer, layer_trace.head_outputs)
        close(result["out"], layer_trace.attn_out)
        close(result["per_head"].sum(axis=0) + result["bias"], layer_trace.attn_out)


@pytest.mark.parametrize("which", block.NORMS)
def test_rms_norm_steps_are_the_model_s_norms(llama, trace, which):
    x, weight, bias = block.norm_input(llama.params, trace, which, 1)
    assert not bias.any()  # RMSNorm has no bias
    own = {"ln_1": trace.layers[1].ln_1, "ln_2": trace.layers[1].ln_2, "ln_f": trace.final_ln}[which]
    scale = {"ln_1": "blocks.1.ln1.hook_scale", "ln_2": "blocks.1.ln2.hook_scale", "ln_f": "ln_final.hook_scale"}[which]
    for position in (0, 5):
        steps = block.rms_norm_steps(x[position], weight, llama.config.layer_norm_epsilon)
        close(steps["out"], own[position])
        close(steps["rms"], trace[scale][position, 0])
        # LayerNorm's steps on the same numbers give another answer: the centring matters
        assert np.abs(block.layer_norm_steps(x[position], weight, bias, 1e-6)["out"] - own[position]).max() > 1e-3


def test_swiglu_steps_are_the_model_s_mlp(llama, trace):
    for layer in range(2):
        steps = block.mlp_steps(llama.params, llama.config, layer, trace.layers[layer].ln_2[3])
        close(steps["pre"], trace[f"blocks.{layer}.mlp.hook_pre"][3])
        close(steps["pre_linear"], trace[f"blocks.{layer}.mlp.hook_pre_linear"][3])
        close(steps["post"], trace[f"blocks.{layer}.mlp.hook_post"][3])
        close(steps["out"], trace.layers[layer].mlp_out[3])
        close(steps["gate"], steps["pre"] / (1 + np.exp(-steps["pre"])))
    x, y = block.silu_curve(-4, 4, 9)
    close(y, x / (1 + np.exp(-x)), atol=1e-12)


def test_residual_parts_and_direct_logit_attribution_through_the_final_rms_norm(llama, trace):
    parts = block.residual_parts(trace)
    assert [name for name, _ in parts][:2] == ["token embedding", "attention 0"]  # no position embedding
    close(sum(part for _, part in parts), trace.layers[-1].resid_post, atol=1e-4)
    token = block.predicted_token(trace)
    result = block.logit_attribution(llama.params, trace, token)
    assert result["bias_term"] == 0.0
    assert result["total"] == pytest.approx(result["logit"], rel=1e-5, abs=1e-4)
    other = block.logit_attribution(llama.params, trace, (token + 1) % 456, position=4)
    assert other["total"] == pytest.approx(other["logit"], rel=1e-5, abs=1e-4)


def test_the_logit_lens_uses_the_final_rms_norm(llama, trace):
    ids, probs = stream.lens_table(llama.params, llama.config, trace.residual_stream, [2, len(trace.tokens) - 1], 3)
    last = trace.logits[-1].astype(np.float64)
    expected = np.exp(last - last.max()) / np.exp(last - last.max()).sum()
    assert ids[-1, -1, 0] == int(np.argmax(last))
    close(probs[-1, -1], np.sort(expected)[::-1][:3])


def test_the_rms_norm_exercise_is_the_model_s_value(llama, trace):
    exercise = exercises.layer_norm_exercise(llama.params, llama.config, trace, 1, 2, 5)
    assert exercise.answer == pytest.approx(float(trace.layers[1].ln_1[2, 5]))
    assert "RMSNorm" in exercise.task and "mean of x²" in exercise.hints[0]
    x = trace.layers[1].resid_pre[2].astype(np.float64)
    weight = llama.params["model.layers.1.input_layernorm.weight"][5]
    assert exercise.accepts(x[5] / np.sqrt((x * x).mean() + llama.config.layer_norm_epsilon) * weight)
    assert not exercise.accepts((x[5] - x.mean()) / x.std() * weight + 1)


def test_pipeline_and_path_questions_speak_of_the_family(llama, qwen3):
    steps = {step: (what, shape) for step, what, shape, _ in pipeline.pipeline_shapes(llama.config, 5)}
    assert "RMSNorm" in steps["ln_1"][0] and "RMSNorm" in steps["ln_f"][0] and "SwiGLU" in steps["MLP"][0]
    assert "no position embedding" in steps["embeddings"][0]
    assert steps["q, k, v"][1] == "[5, 32] -> q [4, 5, 8], k, v [2, 5, 8]"
    assert steps["MLP"][1] == "[5, 32] -> 2 x [5, 48] -> [5, 48] -> [5, 32]"
    assert "q_norm" in {s: w for s, w, _, _ in pipeline.pipeline_shapes(qwen3.config, 5)}["q, k, v"]
    assert block.norm_name(llama.config) == "RMSNorm" and block.norm_name(core.GPTConfig(vocab_size=8)) == "LayerNorm"
    path = questions.path_questions(llama.config, ["a", "b"])
    text = " ".join(question.reveal for question in path)
    assert "RMSNorm" in text and "SwiGLU" in text and "no position embedding" in text
    assert path[6].options[path[6].answer] == "48"


@pytest.mark.parametrize("head", [0, 3])
def test_rope_steps_are_the_model_s_rotations_and_score(llama, trace, head):
    layer, query, key = 1, 9, 4
    kv = block.kv_head_of(llama.config, head)
    q = trace[f"blocks.{layer}.attn.hook_q"][head, query]
    k = trace[f"blocks.{layer}.attn.hook_k"][kv, key]
    steps = rope.rope_steps(llama.config, q, k, query, key)
    close(steps["q_rotated"], trace[f"blocks.{layer}.attn.hook_rot_q"][head, query])
    close(steps["k_rotated"], trace[f"blocks.{layer}.attn.hook_rot_k"][kv, key])
    close(steps["score"], trace.layers[layer].scaled_scores[head, query, key])
    close(steps["pair_products"].sum(), steps["raw"], atol=1e-12)
    half = llama.config.head_dim // 2
    close(steps["q_pairs"][:, 1], np.asarray(q, dtype=np.float64)[half:], atol=0)  # pair i = dims i and i + D/2
    # a rotation keeps each pair's length
    close(np.linalg.norm(steps["q_rotated_pairs"], axis=1), np.linalg.norm(steps["q_pairs"], axis=1), atol=1e-9)


def test_the_score_depends_on_the_distance_only(llama, trace):
    q, k = trace["blocks.0.attn.hook_q"][1, 3], trace["blocks.0.attn.hook_k"][0, 2]
    scores = rope.shifted_scores(llama.config, q, k, 3, [3, 7, 20, 50])
    close(scores, np.full(4, scores[0]), atol=1e-9)
    by_distance = rope.scores_by_distance(llama.config, q, k, [0, 1, 2, 3])
    assert by_distance[3] == pytest.approx(scores[0], abs=1e-9)
    assert np.ptp(by_distance) > 1e-3  # another distance, another score
    with pytest.raises(ValueError):
        rope.shifted_scores(llama.config, q, k, 3, [2])


def test_qwen3_explanations_follow_its_q_k_norms(qwen3):
    trace = qwen3.run(PROMPT)
    layer, head, query, key = 1, 2, 6, 2
    kv = block.kv_head_of(qwen3.config, head)
    steps = rope.rope_steps(qwen3.config, trace[f"blocks.{layer}.attn.hook_q"][head, query],
                            trace[f"blocks.{layer}.attn.hook_k"][kv, key], query, key)
    close(steps["score"], trace.layers[layer].scaled_scores[head, query, key])
    parts = block.head_projections(qwen3.params, qwen3.config, layer, head, trace.layers[layer].ln_1)
    close(parts["Q"]["normed"], trace[f"blocks.{layer}.attn.hook_q"][head])
    close(parts["K"]["normed"], trace[f"blocks.{layer}.attn.hook_k"][kv])
    close(parts["V"]["out"], trace[f"blocks.{layer}.attn.hook_v"][kv])
    assert np.abs(parts["Q"]["out"] - parts["Q"]["normed"]).max() > 1e-3  # the norm changes q
    result = block.heads_joined(qwen3.params, qwen3.config, layer, trace.layers[layer].head_outputs)
    close(result["out"], trace.layers[layer].attn_out)
    token = block.predicted_token(trace)
    attribution = block.logit_attribution(qwen3.params, trace, token)
    assert attribution["total"] == pytest.approx(attribution["logit"], rel=1e-5, abs=1e-4)
