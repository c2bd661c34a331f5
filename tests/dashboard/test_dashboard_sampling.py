"""The next-token and sampling page through Streamlit's AppTest: one generated step shows as one
step, every token and head is labelled, the numbers read as a learner expects ("1 token",
"0.00 bits"), a certain prompt says so, the settings are kept for the session, and GPT-2's shapes
(12 x 12 heads in the KV-cache view) open without an error."""
from __future__ import annotations

import pytest
from helpers.dashboard import FULL_CONTEXT, LONG_WORDS, assert_clean, assert_every_tab_fits, infos, open_page
from helpers.dashboard import open_tab, rows, set_prompt, titled, use_gpt2

import core
from core.model.sampling import Sampler, ranking
from dashboard.navigation import SAMPLING


def metric(at, label: str):
    return next(element for element in at.metric if element.label == label)


def sampling_page(at):
    return open_page(at, "sampling")


# --- one step is one step ---------------------------------------------------------------------------

def assert_one_step(at, cached_keys: int) -> None:
    assert_clean(at)
    assert titled(at, rf"^Step 1: the new query over {cached_keys} cached keys$")
    assert not [slider for slider in at.slider if slider.key == "kv_step"]  # nothing to choose between
    assert any(element.value.startswith("One step") for element in at.caption)


def test_one_new_token_shows_one_kv_cache_step(app):
    sampling_page(app)
    app.slider(key="new_tokens").set_value(1).run()
    assert_one_step(app, 3)


def test_a_prompt_ending_the_text_stops_at_once_and_still_shows_its_step(app):
    sampling_page(app)
    set_prompt(app, "the sky is blue .")
    assert core.load_default().generate("the sky is blue .", 5).stop_reason == "end_of_text"
    assert_one_step(app, 5)
    assert "stopped: end of text" in "\n".join(element.value for element in app.markdown)


def test_a_prompt_filling_the_context_generates_one_step(app):
    sampling_page(app)
    set_prompt(app, " ".join(["the sky is blue ."] * 7) + " the sky is")  # 38 tokens: the last 32 fill it
    assert_one_step(app, 32)
    assert "stopped: context full" in "\n".join(element.value for element in app.markdown)


# --- labels and numbers ------------------------------------------------------------------------------

def test_every_stage_names_all_its_tokens_and_the_kv_cache_all_its_heads(app):
    sampling_page(app)
    stages = titled(app, "The distribution at every stage")
    assert len({row["token"] for row in rows(stages)}) == 12
    assert stages["spec"]["encoding"]["y"]["axis"]["labelOverlap"] is False
    kv = titled(app, "new query over")
    assert {row["row"] for row in rows(kv)} == {f"layer {l} head {h}" for l in range(2) for h in range(4)}
    assert kv["layer"][0]["encoding"]["y"]["axis"]["labelOverlap"] is False
    assert kv["layer"][0]["encoding"]["x"]["axis"]["labelOverlap"] is False


def test_the_top_tokens_follow_core_ranking(app):
    sampling_page(app)
    probs = core.load_default().run("the sky is").next_token_probs
    bars = rows(titled(app, r"^The 12 most likely next tokens of 243"))
    assert [row["label"] for row in bars] == [core.load_default().tokenizer.token(int(i)) for i in ranking(probs)[:12]]


def test_a_certain_pick_reads_one_token_and_zero_bits_and_suggests_an_unsure_prompt(app):
    sampling_page(app)
    app.slider(key="temperature").set_value(0.0).run()
    greedy = metric(app, "after temperature")
    assert greedy.value == "1 token"
    assert "entropy 0.00 bits" == greedy.proto.delta  # not "-0.00"
    assert "The model is sure of 'blue'" in infos(app) and "'the dog'" in infos(app)
    set_prompt(app, "the dog")
    assert_clean(app)
    assert "The model is sure" not in infos(app)
    assert float(metric(app, "raw softmax").proto.delta.split()[1]) > 1.0


# --- settings kept for the session -------------------------------------------------------------------

def test_sampling_settings_survive_other_tabs_and_pages(app):
    sampling_page(app)
    app.slider(key="temperature").set_value(0.7)
    app.number_input(key="top_k").set_value(5)
    app.slider(key="top_p").set_value(0.9)
    app.slider(key="new_tokens").set_value(3).run()
    open_tab(app, "sampling_tab", SAMPLING.tabs.lab)
    open_page(app, "explorer")
    open_page(app, "sampling")
    assert app.slider(key="temperature").value == pytest.approx(0.7)
    assert app.number_input(key="top_k").value == 5
    assert app.slider(key="top_p").value == pytest.approx(0.9)
    assert metric(app, "after top-k").value == "5 tokens"
    open_tab(app, "sampling_tab", SAMPLING.tabs.generation)
    assert app.slider(key="new_tokens").value == 3


# --- GPT-2's shapes ---------------------------------------------------------------------------------

def test_gpt2_shaped_sampling_page_shows_one_layer_of_heads_at_a_time(app, gpt2):
    sampling_page(app)
    use_gpt2(app)
    probs = gpt2.run("the sky is").next_token_probs
    bars = rows(titled(app, r"^The 12 most likely next tokens of 50,257"))
    assert [row["label"] for row in bars] == [gpt2.tokenizer.token(int(i)) for i in ranking(probs)[:12]]
    kv = titled(app, "new query over")
    assert {row["row"] for row in rows(kv)} == {f"layer 0 head {h}" for h in range(12)}
    app.selectbox(key="kv_layer").set_value(11).run()
    assert_clean(app)
    step = gpt2.generate("the sky is", 5, Sampler(temperature=1.0, seed=0)).steps[-1]  # the page's defaults
    shown = {(row["row"], row["col"]): row["value"] for row in rows(titled(app, "new query over"))}
    assert shown[("layer 11 head 4", "0 the")] == pytest.approx(step.weights[11][4, 0], rel=1e-5)
    queries = titled(app, "The new query vectors")
    assert len({row["col"] for row in rows(queries)}) == 64  # d_head
    app.default_timeout = 300  # the lab samples GPT-2's shapes 25 times (5 settings x 5): slow on a busy machine
    open_tab(app, "sampling_tab", SAMPLING.tabs.lab)
    assert list(app.dataframe[-1].value["setting"]) == ["greedy", "T=0.7", "T=1.5", "top-k 5", "top-p 0.9"]
    assert app.slider(key="lab_samples_20").value == 5  # bounded work per request on a large model


# --- every figure fits the page at 1280 px -----------------------------------------------

@pytest.mark.parametrize("prompt", ["the sky is", FULL_CONTEXT])
def test_every_sampling_figure_fits_the_page_at_1280_px(app, prompt):
    sampling_page(app)
    set_prompt(app, prompt)
    assert_every_tab_fits(app, "sampling_tab", SAMPLING.tabs)


def test_the_kv_cache_of_a_long_gpt2_prompt_fits_the_page_at_1280_px(app, gpt2):
    sampling_page(app)
    use_gpt2(app)
    set_prompt(app, " ".join([LONG_WORDS] * 8))
    assert_every_tab_fits(app, "sampling_tab", SAMPLING.tabs[:1])
