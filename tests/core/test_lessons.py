"""core.explain.block, .questions, .exercises and .experiments against the model's own intermediates,
on the bundled toy model and on a GPT-2-shaped one (12 layers x 12 heads, width 768, random weights,
the toy vocabulary)."""
from __future__ import annotations

import numpy as np
import pytest

from core.explain import block as explain_block
from core.explain import exercises, experiments
from core.explain import questions as explain_questions
from core.model.config import GPTConfig
from core.model.interventions import Interventions
from core.model.model import Model
from core.model.params import init_params
from core.model.sampling import keep_top_p, softmax

ATOL = 2e-5  # float32 model against float64 lessons


@pytest.fixture(scope="module")
def gpt2_shaped(toy_model):
    config = GPTConfig(vocab_size=toy_model.config.vocab_size, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
    return Model(config, init_params(config), toy_model.tokenizer)


@pytest.fixture(params=["toy_model", "gpt2_shaped"])
def model(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def trace(model):
    return model.run("the sky is")


# --- the block ------------------------------------------------------------------------------------

def test_head_projections_are_the_models_q_k_v(model, trace):
    for layer in (0, model.config.n_layer - 1):
        for head in (0, model.config.n_head - 1):
            parts = explain_block.head_projections(model.params, model.config, layer, head, trace.layers[layer].ln_1)
            for name in "QKV":
                assert parts[name]["weight"].shape == (model.config.n_embd, model.config.d_head)
                model_value = getattr(trace.layers[layer], name.lower())[head]  # [L, D]
                np.testing.assert_allclose(parts[name]["out"], model_value, atol=ATOL)


def test_head_slices_cover_c_attn_once():
    config = GPTConfig(vocab_size=10, n_embd=8, n_head=2)
    columns = [c for head in range(2) for part in explain_block.head_slices(config, head).values()
               for c in range(part.start, part.stop)]
    assert sorted(columns) == list(range(24))
    with pytest.raises(ValueError, match="head 2 does not exist"):
        explain_block.head_slices(config, 2)


def test_heads_joined_is_the_attention_output_and_a_sum_over_heads(model, trace):
    layer = model.config.n_layer - 1
    result = explain_block.heads_joined(model.params, model.config, layer, trace.layers[layer].head_outputs)
    np.testing.assert_allclose(result["out"], trace.layers[layer].attn_out, atol=ATOL)
    np.testing.assert_allclose(result["per_head"].sum(axis=0) + result["bias"], result["out"], atol=1e-10)
    assert result["merged"].shape == (3, model.config.n_embd)


@pytest.mark.parametrize("which", explain_block.NORMS)
def test_layer_norm_steps_match_the_model(model, trace, which):
    layer = model.config.n_layer - 1
    x, weight, bias = explain_block.norm_input(model.params, trace, which, layer)
    model_out = {"ln_1": trace.layers[layer].ln_1, "ln_2": trace.layers[layer].ln_2, "ln_f": trace.final_ln}[which]
    for position in range(3):
        steps = explain_block.layer_norm_steps(x[position], weight, bias, model.config.layer_norm_epsilon)
        np.testing.assert_allclose(steps["out"], model_out[position], atol=ATOL)
        assert abs(steps["normalised"].mean()) < 1e-9
        assert steps["mean"] == pytest.approx(x[position].mean())
        assert steps["std"] == pytest.approx(np.sqrt(x[position].var() + model.config.layer_norm_epsilon))


def test_norm_input_refuses_an_unknown_norm(toy_model):
    with pytest.raises(ValueError, match="which must be one of"):
        explain_block.norm_input(toy_model.params, toy_model.run("the sky is"), "ln_3")


def test_mlp_steps_match_the_model(model, trace):
    for layer in range(model.config.n_layer):
        steps = explain_block.mlp_steps(model.params, model.config, layer, trace.layers[layer].ln_2[-1])
        np.testing.assert_allclose(steps["pre"], trace.layers[layer].mlp_pre[-1], atol=ATOL)
        np.testing.assert_allclose(steps["post"], trace.layers[layer].mlp_post[-1], atol=ATOL)
        np.testing.assert_allclose(steps["out"], trace.layers[layer].mlp_out[-1], atol=ATOL)
        assert steps["post"][steps["top"][0]] == steps["post"].max()


def test_gelu_curve_spans_the_range_and_rejects_an_empty_one():
    x, y = explain_block.gelu_curve(-4.0, 4.0, 9)
    assert x[0] == -4.0 and x[-1] == 4.0 and y[4] == 0.0 and y[-1] == pytest.approx(4.0, abs=1e-3)
    with pytest.raises(ValueError):
        explain_block.gelu_curve(1.0, 1.0)


def test_residual_parts_add_up_to_the_final_residual(model, trace):
    parts = explain_block.residual_parts(trace)
    assert len(parts) == 2 + 2 * model.config.n_layer
    np.testing.assert_allclose(sum(part for _, part in parts), trace.layers[-1].resid_post, atol=1e-4)


def test_logit_attribution_sums_to_the_real_logit(model, trace):
    for token_id in (explain_block.predicted_token(trace), 5):
        result = explain_block.logit_attribution(model.params, trace, token_id)
        assert result["logit"] == float(trace.logits[-1, token_id])
        assert result["contributions"].sum() + result["bias_term"] == pytest.approx(result["logit"], abs=1e-4)
        assert result["scale"] == float(trace["ln_final.hook_scale"][-1, 0])


def test_the_toy_models_blue_is_written_mostly_by_the_mlps(toy_model):
    result = explain_block.logit_attribution(toy_model.params, toy_model.run("the sky is"),
                                             toy_model.tokenizer.ids["blue"])
    pushes = dict(zip(result["names"], result["contributions"]))
    assert max(pushes, key=pushes.get) == "MLP 0"


def test_attribution_refuses_a_trace_with_interventions(toy_model):
    changed = toy_model.run("the sky is", Interventions(zero_heads={(0, 0)}))
    with pytest.raises(ValueError, match="plain model"):
        explain_block.logit_attribution(toy_model.params, changed, 3)


# --- predict, then reveal ---------------------------------------------------------------------------

def test_attention_question_answer_is_the_argmax_of_the_real_row(model, trace):
    for layer in range(min(2, model.config.n_layer)):
        for head in range(min(4, model.config.n_head)):
            question = explain_questions.attention_question(trace, layer, head, "t")
            assert question is not None
            query = int(question.key.rsplit("-", 1)[1])
            row = trace.layers[layer].weights[head, query, :query + 1]
            assert question.answer == int(np.argmax(row))
            assert question.is_right(question.options[int(np.argmax(row))])
            assert len(question.options) == query + 1


def test_attention_question_on_a_long_prompt_offers_the_most_attended_keys(toy_model):
    trace = toy_model.run("the sky is blue and the grass is green and the sun is yellow")
    question = explain_questions.attention_question(trace, 1, 0)
    query = int(question.key.rsplit("-", 1)[1])
    row = trace.layers[1].weights[0, query, :query + 1]
    best = int(np.argmax(row))
    assert len(question.options) == explain_questions.MAX_OPTIONS < row.size
    assert question.options[question.answer] == f"{best} {trace.tokens[best]}"
    positions = [int(option.split()[0]) for option in question.options]
    assert positions == sorted(positions) and set(positions) == set(np.argsort(-row, kind="stable")[:10].tolist())


def test_attention_question_skips_tied_rows(toy_model):
    trace = toy_model.run("the sky is")
    trace.layers[0].weights[0, 2, :3] = 1 / 3  # the last row ties: the question falls back to row 1
    question = explain_questions.attention_question(trace, 0, 0)
    assert question.key.endswith("-1")
    trace.layers[0].weights[0, 1, :2] = 0.5
    assert explain_questions.attention_question(trace, 0, 0) is None
    assert explain_questions.attention_question(toy_model.run("sky"), 0, 0) is None  # one token: nothing to choose


def test_next_token_question(toy_model):
    trace = toy_model.run("the sky is")
    question = explain_questions.next_token_question(trace, trace.vocabulary)
    assert question.options[question.answer] == "blue" and len(question.options) == 4
    trace.next_token_probs = np.full(toy_model.config.vocab_size, 1 / toy_model.config.vocab_size)
    assert explain_questions.next_token_question(trace, trace.vocabulary) is None


def test_top_p_question_counts_like_the_sampler(toy_model):
    trace = toy_model.run("the sky is")
    probs = np.zeros(toy_model.config.vocab_size)
    probs[[7, 3, 9, 4]] = [0.5, 0.3, 0.15, 0.05]
    trace.next_token_probs = probs
    question = explain_questions.top_p_question(trace, trace.vocabulary)
    assert question.options[question.answer] == "3" == str(int((keep_top_p(probs, 0.9) > 0).sum()))
    probs[[7, 3, 9, 4]] = [0.5, 0.4, 0.05, 0.05]  # the running total is exactly 0.9: rounding could mislead
    assert explain_questions.top_p_question(trace, trace.vocabulary) is None


def test_scale_question_compares_the_entropies(model, trace):
    question = explain_questions.scale_question(trace, 0, 0)
    raw = trace.layers[0].raw_scores[0, 2, :3].astype(np.float64)
    with_scale, without = (-(p * np.log2(p)).sum() for p in (softmax(raw * trace.layers[0].scale), softmax(raw)))
    assert question.answer == (0 if without < with_scale else 1)
    assert question.options[question.answer] == "sharper (lower entropy)"  # a larger spread is always sharper
    assert explain_questions.scale_question(model.run("sky"), 0, 0) is None


def test_ablation_effects_are_the_change_in_probability(toy_model):
    trace = toy_model.run("the sky is")
    token = explain_block.predicted_token(trace)
    heads = experiments.heads_to_ablate(toy_model.config, None)
    assert len(heads) == 8 <= explain_questions.MAX_AUTO_ABLATIONS
    effects = explain_questions.ablation_effects(toy_model, trace.ids, token, heads)
    for (layer, head), effect in zip(heads, effects):
        ablated = toy_model.run("the sky is", Interventions(zero_heads={(layer, head)})).next_token_probs[token]
        assert effect == pytest.approx(ablated - trace.next_token_probs[token], abs=1e-9)
    question = explain_questions.head_question(effects[:4], 0, "blue")
    assert question.answer == int(np.argmax(np.abs(effects[:4])))
    assert explain_questions.head_question(np.array([0.1, -0.1, 0.0]), 0, "blue") is None  # two heads tie


def test_a_gpt2_shaped_model_ablates_one_layer_at_a_time(gpt2_shaped):
    assert len(experiments.heads_to_ablate(gpt2_shaped.config, None)) == 144 > explain_questions.MAX_AUTO_ABLATIONS
    heads = experiments.heads_to_ablate(gpt2_shaped.config, 11)
    assert heads == [(11, h) for h in range(12)]


# --- compute it yourself ----------------------------------------------------------------------------

def test_score_exercise_is_the_models_scaled_score(model, trace):
    exercise = exercises.score_exercise(trace, 0, 1, 2, 1)
    layer = trace.layers[0]
    assert exercise.answer == float(layer.scaled_scores[1, 2, 1])
    assert exercise.answer == pytest.approx(layer.q[1, 2].astype(float) @ layer.k[1, 1] * layer.scale, abs=1e-5)
    assert len(exercise.hints) == 3
    assert exercise.accepts(exercise.answer + 0.9 * exercise.tolerance)
    assert not exercise.accepts(exercise.answer + 1.1 * exercise.tolerance)
    with pytest.raises(ValueError):
        exercises.score_exercise(trace, 0, 1, 1, 2)  # key after the query: hidden by the mask


def test_softmax_exercise_is_the_models_weight(toy_model):
    trace = toy_model.run("the sky is")
    exercise = exercises.softmax_exercise(trace, 1, 2, 2, 0)
    assert exercise.answer == float(trace.layers[1].weights[2, 2, 0])
    assert exercise.accepts(exercise.answer - 0.004) and not exercise.accepts(exercise.answer - 0.006)
    assert not exercise.accepts("not a number") and not exercise.accepts(float("nan"))


def test_layer_norm_exercise_is_the_models_ln_1(model, trace):
    exercise = exercises.layer_norm_exercise(model.params, model.config, trace, 0, 2, 5)
    assert exercise.answer == float(trace.layers[0].ln_1[2, 5])
    final_hint = float(exercise.hints[-1].rsplit("= ", 1)[1])
    assert exercise.accepts(final_hint)  # the last hint's result, to 4 decimals, is accepted
    assert not exercise.accepts(exercise.answer + 0.05 * max(1, abs(exercise.answer)))


def test_parse_number():
    assert exercises.parse_number(" 0.25 ") == 0.25
    assert exercises.parse_number("-1,5") == -1.5
    assert exercises.parse_number("1e-3") == 0.001
    assert exercises.parse_number("abc") is None and exercises.parse_number("inf") is None


# --- why the softmax must be stable -------------------------------------------------------------------

@pytest.mark.parametrize("row", [np.array([1.92, -1.90, 2.03]), np.array([-6.25, -3.07, -7.16])])
def test_naive_softmax_is_nan_past_the_breaking_point_and_stable_is_not(row):
    breaking = experiments.breaking_factor(row)
    below, past = experiments.softmax_two_ways(row, 0.99 * breaking), experiments.softmax_two_ways(row, 1.01 * breaking)
    assert np.isfinite(below["naive"]).all()
    assert np.isnan(past["naive"]).any()
    for result, factor in ((below, 0.99 * breaking), (past, 1.01 * breaking)):
        assert np.isfinite(result["stable"]).all()
        np.testing.assert_allclose(result["stable"], softmax(row * factor), atol=1e-6)


def test_the_float32_limit_is_about_88_7():
    assert experiments.FLOAT32_EXP_LIMIT == pytest.approx(88.72, abs=0.01)
    with np.errstate(over="ignore"):
        assert np.isinf(np.exp(np.float32(88.8))) and np.isfinite(np.exp(np.float32(88.7)))
    assert experiments.breaking_factor(np.array([2.0, 1.0])) == pytest.approx(44.36, abs=0.01)
    assert experiments.breaking_factor(np.array([0.0, -1.0])) is None


def test_the_kernels_stay_exact_where_naive_breaks(toy_model):
    trace = toy_model.run("the sky is")
    row = trace.layers[1].masked_scores[2, 2, :3]
    factor = 10 * experiments.breaking_factor(row)
    assert np.isnan(experiments.softmax_two_ways(row, factor)["naive"]).any()
    expected = softmax(row.astype(np.float64) * factor)
    for weights in experiments.kernel_row(trace, 1, 2, 2, factor).values():
        np.testing.assert_allclose(weights, expected, atol=1e-5)


def test_pressure_factors_reach_past_the_breaking_point():
    factors = experiments.pressure_factors(43.7)
    assert factors[:4] == [1.0, 2.0, 5.0, 10.0] and factors[-1] >= 87.4 > factors[-2]
    assert experiments.pressure_factors(None)[-1] == 1000.0


# --- minimal pairs and attention against effect ------------------------------------------------------

def test_minimal_pair_of_the_same_prompt_is_zero(toy_model):
    result = experiments.minimal_pair(toy_model.run("the sky is"), toy_model.run("the sky is"))
    assert not result["distance"].any() and not result["attention_change"].any()
    assert result["next_token"]["total_variation"] == 0.0


def test_minimal_pair_sky_and_grass(model):
    a, b = model.run("the sky is"), model.run("the grass is")
    result = experiments.minimal_pair(a, b)
    assert result["distance"].shape == (model.config.n_layer + 1,)
    assert result["distance"][0] == 0.0  # the last token is "is" at the same position in both
    assert result["distance"][-1] > 0
    assert result["attention_change"].shape == (model.config.n_layer, model.config.n_head)
    expected_tv = 0.5 * np.abs(a.next_token_probs - b.next_token_probs).sum()
    assert result["next_token"]["total_variation"] == pytest.approx(expected_tv)


def test_minimal_pair_of_different_lengths_pads_the_attention(toy_model):
    result = experiments.minimal_pair(toy_model.run("the sky is"), toy_model.run("is"))
    row = toy_model.run("the sky is").layers[0].weights[0, -1]
    assert result["attention_change"][0, 0] == pytest.approx(0.5 * (np.abs(row - [1, 0, 0]).sum()))


def test_last_token_focus(toy_model):
    trace = toy_model.run("the sky is")
    largest, where = experiments.last_token_focus(trace)
    assert largest[1, 2] == pytest.approx(trace.layers[1].weights[2, -1].max())
    assert where[1, 2] == int(trace.layers[1].weights[2, -1].argmax())


# --- the guided path --------------------------------------------------------------------------------

def test_path_questions_use_this_prompt_and_model(model):
    questions = explain_questions.path_questions(model.config, ["the", "sky", "is"])
    assert len(questions) == 10 and len({q.key for q in questions}) == 10
    assert questions[0].options[questions[0].answer] == "3"
    assert questions[1].options[questions[1].answer] == f"[3, {model.config.n_embd}]"
    assert questions[6].options[questions[6].answer] == str(4 * model.config.n_embd)
    assert questions[8].options[questions[8].answer] == str(model.config.vocab_size)
    for question in questions:
        assert len(set(question.options)) == len(question.options)


# --- the MLP follows the config: its width (d_mlp, n_inner) and its activation ----------------------

def mlp_setup(**options):
    """A float64 model whose MLP pre-activations span [-3, 3] (where the activations differ most),
    with the forward pass's hooks for one prompt."""
    from core.model.config import GPTConfig
    from core.model.forward import gpt_forward
    from core.model.params import init_params
    config = GPTConfig(vocab_size=11, n_positions=8, n_embd=8, n_layer=2, n_head=2, **options)
    params = {name: value.astype(np.float64) for name, value in init_params(config, seed=3).items()}
    for layer in range(config.n_layer):
        params[f"transformer.h.{layer}.mlp.c_fc.bias"] = np.linspace(-3.0, 3.0, config.d_mlp)
    cache = {}
    gpt_forward(params, config, np.array([1, 4, 2, 7]), cache=cache)
    return config, params, cache


def test_the_mlp_width_is_the_configs_d_mlp_not_four_times_n_embd():
    from core.explain import block, questions
    from core.explain.pipeline import pipeline_shapes
    config, params, cache = mlp_setup(n_inner=20)  # GPT-2 configs may set n_inner; 4 x n_embd would be 32
    shapes = {step: shape for step, _, shape, _ in pipeline_shapes(config, 4)}
    assert shapes["MLP"] == "[4, 8] -> [4, 20] -> [4, 8]"
    for layer in range(config.n_layer):
        steps = block.mlp_steps(params, config, layer, cache[f"blocks.{layer}.ln2.hook_normalized"][-1])
        assert steps["pre"].shape == steps["post"].shape == (20,)
        for name, hook in (("pre", "mlp.hook_pre"), ("post", "mlp.hook_post"), ("out", "hook_mlp_out")):
            np.testing.assert_allclose(steps[name], cache[f"blocks.{layer}.{hook}"][-1], rtol=0, atol=1e-12)
    path_mlp = questions.path_questions(config, ["the", "sky", "is"])[6]
    assert path_mlp.options[path_mlp.answer] == "20" and "20" in path_mlp.reveal


@pytest.mark.parametrize("activation", ["gelu", "relu", "silu"])
def test_mlp_steps_run_the_configs_activation(activation):
    from core.explain import block
    config, params, cache = mlp_setup(activation=activation)  # not gelu_new, GPT-2's tanh GELU
    for layer in range(config.n_layer):
        steps = block.mlp_steps(params, config, layer, cache[f"blocks.{layer}.ln2.hook_normalized"][-1])
        np.testing.assert_allclose(steps["post"], cache[f"blocks.{layer}.mlp.hook_post"][-1], rtol=0, atol=1e-12)
        np.testing.assert_allclose(steps["out"], cache[f"blocks.{layer}.hook_mlp_out"][-1], rtol=0, atol=1e-12)
