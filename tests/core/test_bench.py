"""core.bench and `python -m core bench`: cases, FLOP counts, one timed row per backend,
ratios, the CLI table and JSON, and reading pytest-benchmark's JSON. Tiny sizes only."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import threadpoolctl

from core.bench import attention, peers
from core.cli import main
from core.native.kernel import available_backends


def test_causal_flops_count_the_visible_half():
    full = attention.BenchCase("gpt2", 12, 1024, 1024, 64)
    causal = attention.BenchCase("gpt2", 12, 1024, 1024, 64, causal=True)
    assert full.flops == 4 * 12 * 1024 * 1024 * 64
    assert causal.visible_pairs == 1024 * 1025 // 2
    decode = attention.BenchCase("decode", 12, 1, 4096, 64, causal=True)  # one query sees every cached key
    assert decode.visible_pairs == 4096


def test_default_cases_cover_the_issue_grid():
    cases = attention.default_cases()
    names = [case.name for case in cases]
    assert len(set(names)) == len(names)
    groups = {case.group for case in cases}
    assert groups == {"toy", "small", "gpt2", "decode"}
    assert {case.lq for case in cases if case.group == "gpt2"} == {256, 1024, 2048}
    assert {case.lk for case in cases if case.group == "decode"} == {128, 1024, 4096}
    assert {(case.dtype, case.causal, case.return_weights) for case in cases if case.lq == 256} == {
        (dtype, causal, weights) for dtype in ("float32", "float64") for causal in (False, True)
        for weights in (False, True)}
    assert 0 < len(attention.default_cases(quick=True)) < len(cases)


def test_parse_size_reads_flags_and_rejects_nonsense():
    case = attention.parse_size("2x16x32x8:causal:f64:weights")
    assert (case.heads, case.lq, case.lk, case.d, case.dtype, case.causal, case.return_weights) == (
        2, 16, 32, 8, "float64", True, True)
    with pytest.raises(ValueError, match="HEADSxLQxLKxD"):
        attention.parse_size("12x10")
    with pytest.raises(ValueError, match="unknown flag"):
        attention.parse_size("1x4x4x4:fast")
    with pytest.raises(ValueError, match="positive"):
        attention.parse_size("0x4x4x4")


def test_run_grid_rows_have_times_ratios_and_accuracy():
    case = attention.BenchCase("toy", 2, 8, 12, 4, causal=True, return_weights=True)
    rows = attention.run_grid([case], available_backends(), repeats=2)
    assert [row["backend"] for row in rows] == list(available_backends())
    for row in rows:
        assert row["seconds"] > 0 and row["gflops"] > 0 and row["name"] == case.name
        assert row["max_abs_diff"] < 1e-5
        assert row["speedup_vs_peer"] is None
    numpy_row = next(row for row in rows if row["backend"] == "numpy")
    assert numpy_row["speedup_vs_numpy"] == pytest.approx(1.0)
    json.dumps(rows)  # plain data, ready for the dashboard


def test_run_case_can_report_the_fastest_sample():
    case = attention.BenchCase("toy", 1, 4, 4, 4)
    row = attention.run_case(case, "numpy", repeats=3, statistic="min")
    assert row["statistic"] == "min" and row["seconds"] == row["seconds_min"] <= row["seconds_median"]
    with pytest.raises(ValueError, match="statistic"):
        attention.run_case(case, "numpy", statistic="mean")


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown or unavailable backend"):
        attention.attention_call(attention.BenchCase("toy", 1, 4, 4, 4), "cuda", *attention.make_inputs(attention.BenchCase("toy", 1, 4, 4, 4)))


def test_cli_prints_a_table_and_saves_json(tmp_path, capsys):
    out_path = tmp_path / "bench.json"
    assert main(["bench", "--sizes", "1x4x4x4:causal", "--backends", *available_backends(), "--repeats", "1",
                 "--json", str(out_path)]) == 0
    printed = capsys.readouterr().out
    assert "GFLOP/s" in printed and "custom h1 L4x4 d4 f32 causal" in printed
    saved = json.loads(out_path.read_text())
    assert len(saved["rows"]) == len(available_backends()) and "cpu" in saved["machine"]
    if "c" in available_backends():  # each float32 row: the yardstick timed beside it, and its share of it
        assert saved["machine"]["sgemm_gflops_kernel_threads"] > 0 and "% sgemm" in printed
        for row in saved["rows"]:
            assert row["sgemm_gflops"] > 0 and row["share_of_sgemm"] == pytest.approx(row["gflops"] / row["sgemm_gflops"])


def test_cli_says_when_openblas_runs_another_cpus_kernels(monkeypatch, capsys):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert main(["bench", "--sizes", "1x4x4x4", "--backends", "numpy", "--repeats", "1"]) == 0
    assert "# OPENBLAS_CORETYPE=Haswell is set" in capsys.readouterr().out
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert main(["bench", "--sizes", "1x4x4x4", "--backends", "numpy", "--repeats", "1"]) == 0
    assert "OPENBLAS_CORETYPE" not in capsys.readouterr().out


def test_time_calls_takes_the_backends_samples_in_turn():
    order = []
    samples = attention.time_calls({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3)
    assert [len(samples["a"]), len(samples["b"])] == [3, 3] and min(samples["a"] + samples["b"]) > 0
    runs = [name for index, name in enumerate(order) if index == 0 or order[index - 1] != name]
    assert runs == ["a", "b"] * 4  # one warm-up call each, then three rounds of one sample each


@pytest.mark.skipif("c" not in available_backends(), reason="the yardstick runs on the C kernel's threads")
def test_the_yardstick_is_timed_with_float32_cases_only():
    calls = []
    real_sgemm_call = attention.sgemm_call

    def counted_sgemm_call(threads):
        calls.append(threads)
        return real_sgemm_call(threads)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(attention, "sgemm_call", counted_sgemm_call)
        f32, = attention.run_backends(attention.BenchCase("toy", 1, 4, 4, 4), ["c"], repeats=2, yardstick=True)
        f64, = attention.run_backends(attention.BenchCase("toy", 1, 4, 4, 4, dtype="float64"), ["c"], repeats=2, yardstick=True)
        plain, = attention.run_backends(attention.BenchCase("toy", 1, 4, 4, 4), ["c"], repeats=2)
    assert calls == [attention.kernel_info()["threads"]]  # only the float32 case with the yardstick asked for sgemm
    assert f32["sgemm_gflops"] > 0 and f32["share_of_sgemm"] == pytest.approx(f32["gflops"] / f32["sgemm_gflops"])
    assert f64["sgemm_gflops"] is f64["share_of_sgemm"] is plain["share_of_sgemm"] is None


def test_sgemm_sets_the_blas_thread_count_for_its_own_call_only():
    blas = threadpoolctl.ThreadpoolController().select(user_api="blas")
    before = [info["num_threads"] for info in blas.info()]  # 1 where core was imported before NumPy
    seen = []  # BLAS's thread counts once the call's limit is in place, before its matmul
    real_limit = attention._blas().limit

    def watching_limit(**kwargs):
        limiter = real_limit(**kwargs)  # threadpoolctl applies the limit here
        seen.append([info["num_threads"] for info in blas.info()])
        return limiter
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(attention._blas(), "limit", watching_limit)
        attention.sgemm_call(3)()
    assert seen == [[3] * len(before)]
    assert [info["num_threads"] for info in blas.info()] == before
    assert attention.sgemm_gflops(2, repeats=1) > 0


def test_cli_rejects_bad_sizes(capsys):
    assert main(["bench", "--sizes", "12x10"]) == 2
    assert "HEADSxLQxLKxD" in capsys.readouterr().err


def test_load_benchmark_json_flattens_pytest_benchmark_output(tmp_path):
    case = attention.BenchCase("toy", 1, 4, 4, 4)
    saved = {"benchmarks": [{
        "group": case.name, "name": "test_attention[toy-c]",
        "extra_info": {"backend": "c", "flops": case.flops, "lq": 4, "group": "toy"},
        "stats": {"median": 2e-6, "min": 1e-6, "mean": 3e-6, "rounds": 10},
    }]}
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(saved))
    [row] = attention.load_benchmark_json(path)
    assert row["name"] == case.name and row["group"] == "toy" and row["backend"] == "c"
    assert row["seconds"] == 2e-6 and row["seconds_min"] == 1e-6 and row["rounds"] == 10
    assert row["gflops"] == pytest.approx(case.flops / 2e-6 / 1e9)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a pytest-benchmark JSON"):
        attention.load_benchmark_json(path)


def test_make_inputs_are_reproducible():
    case = attention.BenchCase("small", 2, 5, 7, 3, "float64")
    first, second = attention.make_inputs(case), attention.make_inputs(case)
    for a, b in zip(first, second):
        assert a.dtype == np.float64
        np.testing.assert_array_equal(a, b)


needs_torch = pytest.mark.skipif(not peers.torch_available(), reason="PyTorch (the peer) is not installed")


@needs_torch
@pytest.mark.parametrize("case, path", [
    (attention.BenchCase("toy", 2, 8, 8, 4, causal=True), "torch sdpa 4-D, is_causal"),
    (attention.BenchCase("toy", 2, 3, 8, 4, causal=True), "torch sdpa 4-D, bool mask"),  # Lq != Lk: bottom-right mask
    (attention.BenchCase("toy", 2, 8, 8, 4), "torch sdpa 4-D"),
    (attention.BenchCase("toy", 2, 8, 8, 4, causal=True, return_weights=True), "torch matmul+softmax+matmul 4-D"),
])
def test_peer_runs_its_fused_call_on_the_kernels_threads_and_says_so(monkeypatch, case, path):
    import torch

    monkeypatch.setenv("GLASSBOX_NUM_THREADS", "2")
    torch.set_num_threads(1)  # as core's OMP_NUM_THREADS=1 default leaves it
    rows = attention.run_grid([case], ["numpy", attention.PEER], repeats=1)
    peer_row = rows[1]
    assert peer_row["max_abs_diff"] < 1e-5  # the same answer as ours, alignment included
    assert (peer_row["peer_path"], peer_row["peer_threads"], peer_row["peer_version"]) == (path, 2, torch.__version__)
    assert torch.get_num_threads() == 2
    assert rows[0]["speedup_vs_peer_path"] == path and rows[0]["speedup_vs_peer"] > 0
    json.dumps(rows)


@needs_torch
def test_peer_call_passes_4d_tensors_to_torch(monkeypatch):
    import torch

    shapes = []
    fused = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda q, *args, **kwargs: shapes.append(tuple(q.shape)) or fused(q, *args, **kwargs))
    case = attention.BenchCase("toy", 3, 5, 5, 4, causal=True)
    out = attention.attention_call(case, attention.PEER, *attention.make_inputs(case))()
    assert set(shapes) == {(1, 3, 5, 4)} and out.shape == (3, 5, 4)


@pytest.mark.skipif("c" not in available_backends(), reason="thread scaling times the C kernel")
@pytest.mark.parametrize("before", [None, "2"])
def test_thread_scaling_times_one_thread_against_the_kernels_own_and_restores_the_setting(monkeypatch, before):
    if before is None:
        monkeypatch.delenv(attention.THREADS_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(attention.THREADS_VARIABLE, before)
    threads = attention.kernel_info()["threads"]
    seen = []  # the kernel's thread count during each timed call
    real_call = attention.attention_call

    def watched_call(case, backend, q, k, v):
        call = real_call(case, backend, q, k, v)
        return lambda: (seen.append(attention.kernel_info()["threads"]), call())[1]
    monkeypatch.setattr(attention, "attention_call", watched_call)
    result = attention.thread_scaling(attention.BenchCase("toy", 1, 4, 4, 4), repeats=2)
    assert set(seen) == {1, threads} and result["threads"] == threads
    assert result["one_thread_seconds"] > 0 and result["threads_seconds"] > 0
    assert result["speedup"] == pytest.approx(result["one_thread_seconds"] / result["threads_seconds"])
    assert os.environ.get(attention.THREADS_VARIABLE) == before


@pytest.mark.skipif("c" not in available_backends(), reason="thread scaling times the C kernel")
def test_cli_prints_thread_scaling_and_rejects_no_samples(capsys):
    assert main(["bench", "--threads", "--sizes", "1x4x4x4", "--repeats", "1"]) == 0
    printed = capsys.readouterr().out
    assert "custom h1 L4x4 d4 f32: one thread" in printed and "(fastest of 1 samples each" in printed
    assert main(["bench", "--threads", "--repeats", "0"]) == 2
    assert "--repeats must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("causal", [False, True])
def test_plain_per_head_attention_is_the_same_attention(causal):
    case = attention.BenchCase("small", 3, 5, 7, 4, causal=causal)
    q, k, v = attention.make_inputs(case)
    np.testing.assert_allclose(attention.plain_per_head_attention(q, k, v, causal), attention.reference_output(case, q, k, v),
                               rtol=1e-5, atol=1e-6)


def test_fallback_overhead_and_its_cli_line(capsys):
    result = attention.fallback_overhead(attention.BenchCase("toy", 1, 4, 4, 4, causal=True), repeats=2)
    assert result["backend_seconds"] > 0 and result["plain_seconds"] > 0 and result["samples"] == 2
    assert result["ratio"] == pytest.approx(result["backend_seconds"] / result["plain_seconds"])
    assert main(["bench", "--fallback", "--sizes", "1x4x4x4:causal", "--repeats", "1"]) == 0
    printed = capsys.readouterr().out
    assert "custom h1 L4x4 d4 f32 causal: NumPy backend" in printed and "plain per-head NumPy" in printed
