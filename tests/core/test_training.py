"""core.train (optim, data, settings, history, loop) and `python -m core train`: schedule, AdamW,
clipping, History, train() and its guarantees."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers.training import HELDOUT, SENTENCES, snapshot, tiny_model

import core
from core.cli import main
from core.io.checkpoint import load_history
from core.model import forward
from core.model.params import init_params
from core.text.words import WordTokenizer
from core.train import backward, data, loop
from core.train import history as train_history
from core.train import settings as train_settings
from core.train.history import History
from core.train.loop import train
from core.train.optim import AdamW, clip_gradients, decays, learning_rate
from core.train.settings import TrainSettings


def quick_train(model, callback=None, **options):
    settings = dict(mode="full", steps=12, batch_size=4, lr=1e-2, seed=0, eval_every=5, val_fraction=0.2,
                    dropout=0.0)
    settings.update(options)
    return train(model, TrainSettings(**settings), corpus=SENTENCES, heldout=HELDOUT, callback=callback)


# --- pieces ----------------------------------------------------------------------------------------

def test_learning_rate_warms_up_then_decays_to_a_tenth():
    rates = [learning_rate(step, peak=1.0, warmup_steps=10, total_steps=100) for step in range(1, 101)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(later > earlier for earlier, later in zip(rates[:10], rates[1:10]))
    assert all(later <= earlier for earlier, later in zip(rates[9:], rates[10:]))
    assert rates[-1] == pytest.approx(0.1)
    assert rates[54] == pytest.approx(0.55)  # half way through the cosine: midway between peak and floor


def test_weight_decay_applies_to_matrices_only():
    assert decays("lm_head.weight") and decays("transformer.h.0.attn.c_attn.weight")
    assert decays("transformer.h.1.mlp.c_proj.weight")
    for name in ("transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
                 "transformer.h.0.attn.c_attn.bias", "transformer.ln_f.bias"):
        assert not decays(name), name


def test_adamw_first_step_and_decoupled_decay():
    params = {"lm_head.weight": np.array([[1.0, -2.0]]), "transformer.ln_f.bias": np.array([3.0])}
    grads = {"lm_head.weight": np.array([[0.5, 0.5]]), "transformer.ln_f.bias": np.array([-4.0])}
    AdamW(params, weight_decay=0.1).step(params, grads, lr=0.01)
    # first Adam step moves each element by lr * sign(grad); decay shrinks the matrix by (1 - lr * 0.1) first
    np.testing.assert_allclose(params["lm_head.weight"], [[1.0 * 0.999 - 0.01, -2.0 * 0.999 - 0.01]], rtol=1e-7)
    np.testing.assert_allclose(params["transformer.ln_f.bias"], [3.01], rtol=1e-7)


def test_adamw_minimises_a_quadratic():
    params = {"transformer.ln_f.bias": np.array([5.0, -3.0])}
    optimizer = AdamW(params, weight_decay=0.0)
    for _ in range(500):
        optimizer.step(params, {"transformer.ln_f.bias": 2 * params["transformer.ln_f.bias"]}, lr=0.05)
    np.testing.assert_allclose(params["transformer.ln_f.bias"], 0, atol=1e-2)


def test_clip_gradients_scales_to_the_global_norm():
    grads = {"a": np.array([3.0]), "b": np.array([[4.0]])}
    assert clip_gradients(grads, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose([grads["a"][0], grads["b"][0, 0]], [0.6, 0.8])
    small = {"a": np.array([0.3])}
    assert clip_gradients(small, 1.0) == pytest.approx(0.3) and small["a"][0] == 0.3
    assert math.isnan(clip_gradients({"a": np.array([np.nan])}, 1.0))


def test_token_stream_windows_start_at_sentences_and_wrap():
    tokenizer = WordTokenizer.from_texts(["a b .", "c ."])
    stream = data.token_stream(tokenizer, ["a b .", "c ."], seq_len=4)
    inputs, targets = stream.windows(np.array([0, 1]), 4)
    decode = tokenizer.decode
    assert decode(inputs[0]) == "a b . <|endoftext|>" and decode(targets[0]) == "b . <|endoftext|> c"
    assert decode(inputs[1]) == "c . <|endoftext|> a"  # wraps to the first sentence
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])


def test_history_json_is_a_list_of_records(tmp_path):
    history = History(records=[{"step": 1, "train_loss": 2.5, "val_loss": None, "accuracy": None}])
    assert json.loads(history.to_json()) == history.records
    train_history.save_trained(tiny_model(), history, tmp_path / "saved")
    assert load_history(tmp_path / "saved") == history.records
    assert (tmp_path / "saved" / "history.json").read_text() == history.to_json()


# --- train() ---------------------------------------------------------------------------------------

def test_records_have_every_field_and_evaluations_where_asked():
    model = tiny_model()
    history = quick_train(model)
    assert [record["step"] for record in history.records] == list(range(1, 13))
    for record in history.records:
        assert set(train_history.RECORD_KEYS) <= record.keys()
        assert record["tokens_per_s"] > 0 and record["lr"] > 0 and record["grad_norm"] >= 0
    assert [record["step"] for record in history.evaluations()] == [5, 10, 12]
    for record in history.evaluations():
        assert 0 <= record["accuracy"] <= 1 and record["val_loss"] > 0 and record["heldout_perplexity"] >= 1
    assert history.records[0]["val_loss"] is None and history.stop_reason is None
    assert history.settings["mode"] == "full" and history.settings["heldout_prompts"] == 2


def test_same_seed_same_curve_and_another_seed_another():
    def curve(seed):
        history = quick_train(tiny_model(), seed=seed, dropout=0.1)
        return [(r["train_loss"], r["grad_norm"], r["val_loss"], r["accuracy"]) for r in history.records]

    assert curve(3) == curve(3)
    assert curve(3) != curve(4)


def test_full_training_lowers_the_loss_and_changes_every_parameter():
    model = tiny_model()
    before = snapshot(model.params)
    history = quick_train(model, steps=60, eval_every=60)
    losses = [record["train_loss"] for record in history.records]
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5])
    assert all(not np.array_equal(before[name], model.params[name]) for name in before)


def test_head_mode_changes_only_lm_head():
    model = tiny_model()
    before = snapshot(model.params)
    history = quick_train(model, mode="head", steps=30)
    assert history.records[-1]["train_loss"] < history.records[0]["train_loss"]
    for name, value in model.params.items():
        assert np.array_equal(before[name], value) == (name != "lm_head.weight"), name


def test_head_mode_shares_of_the_batch_give_the_whole_batch_loss_and_gradient():
    model = core.load_default()
    rng = np.random.default_rng(0)
    ids = rng.integers(0, model.config.vocab_size, (5, 13))  # 5 sequences: shares of 3 and 2
    inputs, targets = ids[:, :-1], ids[:, 1:]
    loss, grad = loop.head_gradients(model.params, model.config, inputs, targets)
    cache = {}
    logits = forward.gpt_forward(model.params, model.config, inputs, cache=cache)
    whole_loss, d_logits = backward.softmax_cross_entropy(logits, targets)
    assert loss == pytest.approx(whole_loss, rel=1e-6)
    np.testing.assert_allclose(grad, backward.lm_head_weight_gradient(d_logits, cache["ln_final.hook_normalized"]),
                               rtol=1e-4, atol=1e-7)


def test_training_makes_none_of_the_display_only_scores(monkeypatch):
    made = []
    scores = forward.masked_scores
    monkeypatch.setattr(forward, "masked_scores", lambda *args: made.append(1) or scores(*args))
    for mode in train_settings.MODES:
        quick_train(tiny_model(), mode=mode, steps=2, val_fraction=0.0)
    assert made == []
    forward.gpt_forward(tiny_model().params, tiny_model().config, [1, 2], cache={})
    assert made == [1]  # a display's forward pass still makes them


def test_head_mode_reads_the_trained_blocks_on_the_bundled_corpus():
    # the bundled model's blocks, frozen, with a fresh random head: a few seconds of softmax regression
    model = core.load_default()
    model.params["lm_head.weight"] = init_params(model.config, 1)["lm_head.weight"]
    before = snapshot(model.params)
    history = train(model, TrainSettings(mode="head", steps=60, batch_size=32, eval_every=60, seed=0))
    assert history.records[-1]["accuracy"] >= 0.9
    assert history.records[-1]["val_loss"] < history.records[0]["train_loss"] / 2
    for name, value in model.params.items():
        assert np.array_equal(before[name], value) == (name != "lm_head.weight"), name


def test_from_scratch_starts_from_a_fresh_init():
    model = tiny_model(seed=5)
    quick_train(model, mode="head", steps=3, seed=7, from_scratch=True)
    fresh = init_params(model.config, 7)
    for name, value in model.params.items():
        if name != "lm_head.weight":
            np.testing.assert_array_equal(value, fresh[name])


def test_callback_sees_every_step_and_can_stop_early():
    model = tiny_model()
    seen = []

    def callback(record, params):
        seen.append((record["step"], snapshot(params)))
        return record["step"] < 4

    history = quick_train(model, callback=callback)
    assert [step for step, _ in seen] == [1, 2, 3, 4] and len(history.records) == 4
    assert "callback" in history.stop_reason
    for name, value in model.params.items():  # written back: the state after step 4
        np.testing.assert_array_equal(value, seen[-1][1][name])


def test_model_is_untouched_when_training_fails_midway():
    model = tiny_model()
    before = snapshot(model.params)

    def callback(record, params):
        if record["step"] == 3:
            raise RuntimeError("the dashboard went away")

    with pytest.raises(RuntimeError):
        quick_train(model, callback=callback)
    for name, value in model.params.items():
        np.testing.assert_array_equal(value, before[name])


def test_nan_loss_stops_and_keeps_the_last_good_parameters(monkeypatch):
    model = tiny_model()
    kept = []
    real_loss = backward.softmax_cross_entropy
    calls = {"count": 0}

    def loss_that_fails_at_step_4(logits, targets):
        calls["count"] += 1
        loss, d_logits = real_loss(logits, targets)
        return (math.nan if calls["count"] == 4 else loss), d_logits

    monkeypatch.setattr(backward, "softmax_cross_entropy", loss_that_fails_at_step_4)
    history = quick_train(model, eval_every=100, val_fraction=0.0,
                          callback=lambda record, params: kept.append(snapshot(params)))
    assert len(history.records) == 3 and "step 4" in history.stop_reason and "nan" in history.stop_reason
    assert history.diverged
    for name, value in model.params.items():  # those that gave step 3's finite loss: after step 2's update
        np.testing.assert_array_equal(value, kept[1][name])


# --- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("corpus, options, message", [
    ([], {}, "empty"),
    (["", "   "], {}, "empty"),
    (["the sky is blue ."], {"val_fraction": 0.0}, "tokens, fewer than"),
    (["the sky is blue ."] * 10, {"val_fraction": 0.1}, "larger val_fraction"),
    (SENTENCES, {"batch_size": 40, "val_fraction": 0.0}, "larger than the 18"),
    (SENTENCES, {"seq_len": 9}, "longer than the model's context"),
    (["zebras quietly eat purple hay ."] * 20, {}, "outside the model's vocabulary"),
])
def test_data_that_does_not_fit_raises_a_clear_value_error(corpus, options, message):
    settings = dict(mode="full", steps=5, batch_size=2)
    settings.update(options)
    with pytest.raises(ValueError, match=message):
        train(tiny_model(), TrainSettings(**settings), corpus=corpus, heldout=HELDOUT)


@pytest.mark.parametrize("options, error, message", [
    ({"steps": 0}, ValueError, "steps must be positive"),
    ({"steps": -5}, ValueError, "steps must be positive"),
    ({"steps": 2.5}, TypeError, "steps must be an integer"),
    ({"batch_size": True}, TypeError, "batch_size must be an integer"),
    ({"lr": 0.0}, ValueError, "lr must be a positive"),
    ({"lr": -1e-3}, ValueError, "lr must be a positive"),
    ({"lr": math.nan}, ValueError, "lr must be a positive"),
    ({"lr": math.inf}, ValueError, "lr must be a positive"),
    ({"mode": "middle"}, ValueError, "mode must be one of"),
    ({"dropout": 1.0}, ValueError, "dropout must be in"),
    ({"val_fraction": 1.0}, ValueError, "val_fraction must be in"),
    ({"weight_decay": -0.1}, ValueError, "weight_decay must be in"),
    ({"seed": -5}, ValueError, "seed must be a whole number >= 0"),
    ({"warmup_steps": -1}, ValueError, "warmup_steps must be a whole number"),
    ({"grad_clip": 0}, ValueError, "grad_clip must be a positive"),
    ({"seq_len": 0}, ValueError, "seq_len must be positive"),
    ({"from_scratch": "yes"}, TypeError, "from_scratch"),
    ({"steps": None}, TypeError, "steps must be an integer"),
    ({"seed": None}, ValueError, "seed must be"),
    ({"grad_clip": None}, ValueError, "grad_clip must be"),
])
def test_bad_settings_are_refused_when_made(options, error, message):
    with pytest.raises(error, match=message):
        TrainSettings(**options)


def test_settings_are_frozen_and_train_wants_them():
    settings = TrainSettings()
    with pytest.raises(AttributeError):
        settings.steps = 5
    with pytest.raises(TypeError, match="settings must be a TrainSettings"):
        train(tiny_model(), {"steps": 5})


def test_the_defaults_are_the_bundled_models_recipe_and_history_records_them():
    recipe = TrainSettings()
    assert (recipe.mode, recipe.steps, recipe.batch_size, recipe.dropout, recipe.eval_every) == ("full", 1000, 32, 0.1, 50)
    assert (recipe.peak_lr, recipe.warmup, recipe.weight_decay, recipe.grad_clip) == (3e-3, 100, 0.01, 1.0)
    history = quick_train(tiny_model(), steps=3, mode="head", dropout=0.1)
    settings = history.settings
    assert settings["lr"] == 1e-2 and settings["warmup_steps"] == 1 and settings["seq_len"] == 8
    assert settings["dropout"] == 0.0  # head mode runs without dropout, and says so
    assert settings["train_sentences"] == 14 and settings["heldout_prompts"] == 2


def test_a_few_unknown_words_are_mapped_counted_and_reported():
    model = tiny_model()
    corpus = SENTENCES + ["the zebra is blue ."]
    with pytest.warns(UserWarning, match="1 corpus tokens .* zebra"):
        history = train(model, TrainSettings(steps=2, batch_size=2, val_fraction=0.0), corpus=corpus, heldout=HELDOUT)
    assert history.settings["unknown_tokens"] == 1 and history.settings["unknown_words"] == ["zebra"]


def test_non_string_sentences_are_a_type_error():
    with pytest.raises(TypeError, match="strings"):
        train(tiny_model(), TrainSettings(steps=2, batch_size=1), corpus=["the sky is blue .", 42])


# --- the command line ------------------------------------------------------------------------------

def test_cli_trains_saves_and_reloads(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES * 2) + "\n")
    out = tmp_path / "run"
    code = main(["train", "--mode", "full", "--steps", "4", "--out", str(out), "--corpus", str(corpus),
                 "--batch-size", "4", "--n-embd", "16", "--n-layer", "1", "--n-head", "2", "--n-positions", "12",
                 "--eval-every", "2"])
    assert code == 0
    assert "held-out accuracy" in capsys.readouterr().out
    model = core.load_checkpoint(out)
    assert model.config.n_embd == 16 and model.config.n_layer == 1
    records = load_history(out)
    assert [record["step"] for record in records] == [1, 2, 3, 4]


def test_cli_continues_from_a_checkpoint(tmp_path):
    start = tiny_model()
    start.save(tmp_path / "start")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n")
    code = main(["train", "--mode", "head", "--steps", "2", "--init", str(tmp_path / "start"), "--corpus", str(corpus),
                 "--out", str(tmp_path / "next"), "--batch-size", "2", "--quiet", "--val-fraction", "0"])
    assert code == 0
    trained = core.load_checkpoint(tmp_path / "next")
    np.testing.assert_array_equal(trained.params["transformer.wte.weight"], start.params["transformer.wte.weight"])
    assert not np.array_equal(trained.params["lm_head.weight"], start.params["lm_head.weight"])


@pytest.mark.parametrize("arguments, message", [
    (["--steps", "0"], "steps must be positive"),
    (["--lr", "-1"], "lr must be a positive"),
    (["--init", "/no/such/checkpoint"], "no checkpoint directory"),
    (["--corpus", "/no/such/corpus.txt"], "corpus.txt"),
    (["--out", __file__], "is a file"),
])
def test_cli_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, arguments, message):
    code = main(["train", "--out", str(tmp_path / "out"), "--quiet", "--steps", "1", *arguments])
    error = capsys.readouterr().err
    assert code == 2 and error.startswith("error:") and message in error and "Traceback" not in error
