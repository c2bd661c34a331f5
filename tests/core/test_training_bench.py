"""core.bench.training and `python -m core bench --training`: it runs and reports what it measured.
No timing assertions: only that the figures exist, are positive and agree with each other."""
from __future__ import annotations

import functools

import pytest

from core.bench import peers, timing
from core.bench import training as bench_training
from core.cli import main


def test_glassbox_alone_gives_both_modes():
    result = bench_training.run(steps=2, warmup=1, rounds=1, peer=False)
    assert [(row["framework"], row["mode"]) for row in result["rows"]] == [("glassbox", "full"), ("glassbox", "head")]
    assert result["rows"][0]["threads"] == timing.kernel_threads()
    assert all(row["tokens_per_s"] > 0 for row in result["rows"])
    for row in result["rows"]:  # tokens/s and ms/step describe the same 32 x 32-token steps
        assert row["tokens_per_s"] * row["step_ms"] / 1e3 == pytest.approx(1024)
    assert result["ratios"] == {} and "not installed" in bench_training.table(result)[0]


@pytest.mark.skipif(not peers.transformers_available(), reason="torch and transformers are not installed")
def test_the_peer_runs_side_by_side_through_the_command(capsys, monkeypatch):
    monkeypatch.setattr(bench_training, "run", functools.partial(bench_training.run, steps=2, warmup=1))
    assert main(["bench", "--training", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "pytorch eager" in out and "full: Glassbox runs at" in out and "head: Glassbox runs at" in out
    peers = [line for line in out.splitlines() if line.startswith("pytorch eager")]
    assert len(peers) == 2 * len({1, timing.kernel_threads()})  # both modes, one row per thread count


@pytest.mark.skipif(not peers.transformers_available(), reason="torch and transformers are not installed")
def test_the_peer_model_computes_glassboxs_logits():
    import numpy as np
    import torch

    from core.model.forward import gpt_forward
    model = bench_training.bundled_shape_model()
    peer = bench_training.torch_model(model, "head").eval()
    ids = np.arange(16).reshape(2, 8)
    with torch.no_grad():
        theirs = peer(torch.from_numpy(ids)).logits.numpy()
    np.testing.assert_allclose(theirs, gpt_forward(model.params, model.config, ids), atol=1e-4)


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        bench_training.run(steps=0)
