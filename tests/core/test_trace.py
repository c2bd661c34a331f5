"""Tests for Model.run and core.model.trace: shapes, invariants, the TransformerLens mapping, the
same logits as the plain forward, interventions, notices and bad input."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.model.interventions import Interventions
from core.model.ops import merge_heads

HOOKS_PER_LAYER = ["hook_resid_pre", "ln1.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v",
                   "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid",
                   "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post"]


@pytest.fixture(scope="module")
def trace(small_model):
    return small_model.run("I know that the sky is")


def test_trace_fields_have_the_documented_shapes(small_model, trace):
    config = small_model.config
    L, C, H, D, V = 6, config.n_embd, config.n_head, config.d_head, config.vocab_size
    assert trace.tokens == ["i", "know", "that", "the", "sky", "is"]
    assert trace.ids.tolist() == small_model.tokenizer.encode("i know that the sky is")
    assert trace.token_embeddings.shape == trace.position_embeddings.shape == trace.embeddings.shape == (L, C)
    assert len(trace.layers) == small_model.config.n_layer
    for layer in trace.layers:
        for name in ("resid_pre", "ln_1", "attn_out", "resid_mid", "ln_2", "mlp_out", "resid_post"):
            assert getattr(layer, name).shape == (L, C), name
        for name in ("q", "k", "v", "head_outputs"):
            assert getattr(layer, name).shape == (H, L, D), name
        for name in ("raw_scores", "scaled_scores", "masked_scores", "weights"):
            assert getattr(layer, name).shape == (H, L, L), name
        assert layer.mlp_pre.shape == layer.mlp_post.shape == (L, 4 * C)
    assert trace.final_ln.shape == (L, C) and trace.logits.shape == (L, V) and trace.next_token_probs.shape == (V,)
    assert trace.residual_stream.shape == (small_model.config.n_layer + 1, L, C)
    assert trace.notices == []


def test_traced_logits_are_the_plain_forwards(small_model, trace):
    np.testing.assert_array_equal(trace.logits, small_model.forward(trace.ids))
    last = trace.logits[-1].astype(np.float64)
    np.testing.assert_allclose(trace.next_token_probs, np.exp(last - last.max()) / np.exp(last - last.max()).sum())
    assert trace.next_token_probs.sum() == pytest.approx(1.0)


def test_attention_invariants(trace):
    above = np.triu(np.ones((6, 6), dtype=bool), 1)
    for layer in trace.layers:
        np.testing.assert_allclose(layer.weights.sum(-1), 1.0, rtol=1e-6)
        assert np.all(layer.weights[:, above] == 0) and np.all(layer.weights[:, ~above] > 0)
        np.testing.assert_allclose(layer.raw_scores, layer.q @ np.swapaxes(layer.k, -1, -2), rtol=1e-6)
        assert layer.scale == pytest.approx(1 / math.sqrt(layer.q.shape[-1]))
        np.testing.assert_allclose(layer.scaled_scores, layer.raw_scores * layer.scale)
        assert np.all(np.isneginf(layer.masked_scores[:, above]))
        np.testing.assert_allclose(layer.masked_scores[:, ~above], layer.scaled_scores[:, ~above], rtol=1e-6)
        exps = np.exp(layer.masked_scores - layer.masked_scores.max(-1, keepdims=True))
        np.testing.assert_allclose(exps / exps.sum(-1, keepdims=True), layer.weights, atol=1e-6)
        np.testing.assert_allclose(layer.head_outputs, layer.weights @ layer.v, atol=1e-6)


def test_residual_stream_identities(small_model, trace):
    np.testing.assert_allclose(trace.embeddings, trace.token_embeddings + trace.position_embeddings)
    np.testing.assert_array_equal(trace.token_embeddings, small_model.params["transformer.wte.weight"][trace.ids])
    for number, layer in enumerate(trace.layers):
        np.testing.assert_allclose(layer.resid_mid, layer.resid_pre + layer.attn_out, rtol=1e-6)
        np.testing.assert_allclose(layer.resid_post, layer.resid_mid + layer.mlp_out, rtol=1e-6)
        p = f"transformer.h.{number}.attn.c_proj."
        np.testing.assert_allclose(layer.attn_out, merge_heads(layer.head_outputs) @ small_model.params[p + "weight"]
                                   + small_model.params[p + "bias"], atol=1e-5)
        if number + 1 < len(trace.layers):
            np.testing.assert_array_equal(trace.layers[number + 1].resid_pre, layer.resid_post)
    np.testing.assert_allclose(trace.final_ln @ small_model.params["lm_head.weight"].T, trace.logits, atol=1e-4)


def test_trace_is_a_transformerlens_mapping_without_batch_dims(small_model, trace):
    names = {"hook_embed", "hook_pos_embed", "ln_final.hook_normalized"}
    names |= {f"blocks.{layer}.{hook}" for layer in range(small_model.config.n_layer) for hook in HOOKS_PER_LAYER}
    assert names <= set(trace)
    assert len(trace) == len(list(trace.keys()))
    assert trace["blocks.1.attn.hook_pattern"] is trace.layers[1].weights
    assert trace["blocks.0.attn.hook_q"].shape == (4, 6, 8)
    assert trace["blocks.0.attn.hook_attn_scores"] is trace.layers[0].masked_scores
    assert trace["ln_final.hook_normalized"] is trace.final_ln
    assert "blocks.0.hook_resid_pre" in trace and trace.get("nope") is None
    with pytest.raises(KeyError, match="no hook named"):
        trace["blocks.9.attn.hook_q"]
    assert trace == trace and trace != small_model.run("the sky is")


def test_top_predictions_are_sorted(trace):
    predictions = trace.top_predictions(5)
    probabilities = [probability for _, probability in predictions]
    assert len(predictions) == 5 and probabilities == sorted(probabilities, reverse=True)
    assert predictions[0][0] == trace.vocabulary[int(np.argmax(trace.next_token_probs))]


def test_ids_and_text_give_the_same_trace(small_model, trace):
    again = small_model.run(trace.ids.tolist())
    np.testing.assert_array_equal(again.logits, trace.logits)
    assert again.tokens == trace.tokens


def test_unknown_words_are_shown_and_reported(small_model):
    trace = small_model.run("the zebra is")
    assert trace.tokens == ["the", "<unk>", "is"]
    assert trace.notices == ["unknown words shown as <unk>: zebra"]


def test_a_long_prompt_keeps_its_last_tokens_with_a_notice(small_model):
    words = ("the sky is blue , and " * 8).split()  # 48 tokens, context 32
    trace = small_model.run(" ".join(words))
    assert trace.tokens == words[-32:]
    assert "48 tokens" in trace.notices[0] and "last 32" in trace.notices[0]
    np.testing.assert_array_equal(trace.logits, small_model.forward(trace.ids))
    with pytest.raises(ValueError, match="context"):
        small_model.forward(np.array(small_model.tokenizer.encode(" ".join(words))))


@pytest.mark.parametrize("prompt, error, message", [
    ("", ValueError, "empty"), ("   ", ValueError, "empty"), ("zebra giraffe", ValueError, "none of the prompt"),
    ([], ValueError, "empty"), ([[1, 2]], ValueError, "1-D"), ([0, 10_000], ValueError, r"0\.\.242"),
    ([1.5], TypeError, "integers"), (None, ValueError, "1-D"),
])
def test_bad_prompts_are_clear_errors(small_model, prompt, error, message):
    with pytest.raises(error, match=message):
        small_model.run(prompt)


def test_bad_interventions_are_clear_errors(small_model):
    with pytest.raises(TypeError, match="Interventions"):
        small_model.run("the sky is", interventions={"causal": False})
    with pytest.raises(ValueError, match="head"):
        small_model.run("the sky is", interventions=Interventions(zero_heads={(0, 9)}))


def test_interventions_show_in_the_trace(small_model, trace):
    plain = small_model.run("i know that the sky is", interventions=Interventions())
    np.testing.assert_array_equal(plain.logits, trace.logits)
    unscaled = small_model.run("i know that the sky is", interventions=Interventions(scale_scores=False))
    assert unscaled.layers[0].scale == 1.0
    np.testing.assert_array_equal(unscaled.layers[0].scaled_scores, unscaled.layers[0].raw_scores)
    assert unscaled.interventions.scale_scores is False
    open_mask = small_model.run("i know that the sky is", interventions=Interventions(causal=False))
    assert np.isfinite(open_mask.layers[0].masked_scores).all() and np.all(open_mask.layers[0].weights > 0)
    zeroed = small_model.run("i know that the sky is", interventions=Interventions(zero_heads={(0, 1)}))
    assert np.all(zeroed.layers[0].head_outputs[1] == 0)
    assert not np.allclose(zeroed.next_token_probs, trace.next_token_probs)


def test_json_form_is_strict_json_with_shapes(trace):
    data = json.loads(json.dumps(trace.to_json_dict(), allow_nan=False))
    assert data["tokens"] == trace.tokens and data["ids"] == trace.ids.tolist()
    scores = data["arrays"]["blocks.0.attn.hook_attn_scores"]
    assert scores["shape"] == [4, 6, 6]
    assert scores["values"][0][0][1] is None and scores["values"][0][0][0] is not None  # -inf -> null
    assert data["arrays"]["logits"]["shape"] == list(trace.logits.shape)
    assert data["arrays"]["blocks.1.attn.raw_scores"]["shape"] == [4, 6, 6]
    assert data["top_predictions"][0][0] == trace.top_predictions(1)[0][0]
