"""core.bench.gpt2: its measurements measure the thing they name (no timing assertions)."""
import numpy as np
import pytest
from helpers.gpt2 import small_gpt2

import core
from core.bench import gpt2, peers


def test_loading_is_measured_in_a_fresh_process_against_the_weights_size(tmp_path):
    folder = small_gpt2(tmp_path / "small")
    model = core.load_checkpoint(folder)
    weights = sum(value.nbytes for value in {id(v): v for v in model.params.values()}.values())
    load = gpt2.measure_loading(folder)
    assert load["weights_mb"] == pytest.approx(weights / 2**20)
    assert load["load_s"] > 0
    assert load["rss_over_weights"] == pytest.approx(load["load_rss_mb"] * 2**20 / weights)


def test_the_report_names_every_comparison_and_its_ratio():
    times = {"glassbox_s": 0.05, "transformers_s": 0.1}
    report = {"threads": 2, "torch": "x", "transformers": "y", "trace": {16: times, 128: times},
              "generate": {"glassbox_s": 0.02, "transformers_s": 0.01},
              "load": {"load_s": 1.0, "load_rss_mb": 500.0, "weights_mb": 475.0, "rss_over_weights": 1.05}}
    text = gpt2.format_report(report)
    assert "trace, 16 tokens" in text and "trace, 128 tokens" in text
    assert "2.00x" in text and "0.50x" in text and "(1.05x)" in text


@pytest.mark.skipif(not peers.transformers_available(), reason="torch and transformers are not installed")
def test_both_sides_run_the_same_prompt(tmp_path):
    import torch
    from transformers import GPT2LMHeadModel

    folder = small_gpt2(tmp_path / "small")
    ours = core.load_checkpoint(folder)
    theirs = GPT2LMHeadModel.from_pretrained(folder, attn_implementation="eager").eval()
    ids = np.arange(5, 13)
    traces = gpt2.compare_traces(ours, theirs, torch, ids, repeats=1)
    generation = gpt2.compare_generation(ours, theirs, torch, ids, new_tokens=3, repeats=1)
    assert traces["glassbox_s"] > 0 and traces["transformers_s"] > 0
    assert generation["glassbox_s"] > 0 and generation["transformers_s"] > 0
