"""The fast C forward kernel's accuracy: the tiled FlashAttention path and
the row path against a float64 reference, on every code path this CPU runs (AVX-512,
AVX2+FMA, portable C), any thread count; the vectorised exp2's error in ULP; the thread and code-path
settings; memory at L=16384 without weights. No timing assertions here: speed is
measured by tests/benchmarks and `python -m core bench`."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.model.attention import scaled_dot_product_attention
from core.native.kernel import available_backends

pytestmark = pytest.mark.skipif("c" not in available_backends(), reason="the C kernel is not built")

if "c" in available_backends():
    from core.native import _kernel

    ffi, lib = _kernel.ffi, _kernel.lib

TILE_MIN_ROWS = 16  # kernels/attention.c: fewer query rows take the row path
TOLERANCE = {np.float32: 3e-5, np.float64: 1e-12}  # |out - reference| / max(1, |v|max)
EXP2_MAX_ULP = 1.0  # the softmax's exp2; measured max 0.83 ULP (float32), 0.80 ULP (float64) on AVX2, 0.51 portable


SIMD_SETTINGS = {"portable": "portable", "avx2+fma": "avx2", "avx512": "auto"}  # GLASSBOX_SIMD per code path


def path_under(setting: str) -> str:
    """The forward kernel's code path while GLASSBOX_SIMD is `setting`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GLASSBOX_SIMD", setting)
        return ffi.string(lib.gb_forward_code_path()).decode()


def code_paths() -> list[str]:
    """The code paths this CPU can run: always "portable"; "avx2+fma" and "avx512" when it
    has their features."""
    if "c" not in available_backends():
        return ["portable"]
    return sorted({path_under(setting) for setting in SIMD_SETTINGS.values()})


@pytest.fixture(params=code_paths())
def code_path(request, monkeypatch):
    monkeypatch.setenv("GLASSBOX_SIMD", SIMD_SETTINGS[request.param])
    assert ffi.string(lib.gb_forward_code_path()).decode() == request.param
    return request.param


def reference(q, k, v, *, causal=False, mask=None, scale=None):
    """Masked softmax attention in float64, vectorised (no early exits, no tiles)."""
    q, k, v = (np.asarray(array, dtype=np.float64) for array in (q, k, v))
    lq, lk = q.shape[-2], k.shape[-2]
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    allowed = np.ones((*q.shape[:-2], lq, lk), dtype=bool)  # [..., Lq, Lk]
    if causal:
        allowed &= np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq)
    if mask is not None:
        allowed &= mask
    scores = np.where(allowed, q @ np.swapaxes(k, -1, -2) * scale, -np.inf)  # [..., Lq, Lk]
    row_max = scores.max(axis=-1, keepdims=True)
    exps = np.where(allowed, np.exp(scores - np.where(np.isfinite(row_max), row_max, 0)), 0.0)
    totals = exps.sum(axis=-1, keepdims=True)
    weights = exps / np.where(totals > 0, totals, 1)
    return weights @ v, weights


def assert_close_to_reference(q, k, v, return_weights=False, **options):
    """The C kernel's out (and weights) equal the float64 reference's; returns out."""
    result = scaled_dot_product_attention(q, k, v, backend="c", return_weights=return_weights, **options)
    out = result[0] if return_weights else result
    expected, expected_weights = reference(q, k, v, **options)
    tolerance = TOLERANCE[q.dtype.type]
    assert out.dtype == q.dtype and out.shape == expected.shape
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, expected, rtol=0, atol=tolerance * max(1.0, float(np.abs(v).max())))
    if return_weights:
        weights = result[1]
        assert weights.dtype == q.dtype and np.isfinite(weights).all()
        np.testing.assert_allclose(weights, expected_weights, rtol=0, atol=tolerance)
        assert (weights[expected_weights == 0] == 0).all()  # masked entries are exactly 0 (backward relies on it)
    return out


@st.composite
def problems(draw):
    """Shapes around the tile sizes (48 queries; key blocks of 48 portable, 64 AVX2, 128 AVX-512), odd
    widths, masks, causal with Lq != Lk."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    heads = draw(st.integers(1, 3))
    lq = draw(st.sampled_from([TILE_MIN_ROWS, 17, 47, 48, 49, 95, 97, 130]))
    lk = draw(st.sampled_from([1, 5, 47, 48, 49, 64, 65, 100, 128, 129, 150, 257]))
    d = draw(st.sampled_from([1, 3, 17, 64, 65, 130]))
    dv = draw(st.sampled_from([1, 3, 17, 64, 65, 130]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    q = rng.standard_normal((heads, lq, d)).astype(dtype)
    k = rng.standard_normal((heads, lk, d)).astype(dtype)
    v = rng.standard_normal((heads, lk, dv)).astype(dtype)
    mask_kind = draw(st.sampled_from(["none", "random", "broadcast_rows", "rows_off"]))
    mask = None
    if mask_kind == "random":
        mask = rng.random((heads, lq, lk)) < 0.6
    elif mask_kind == "broadcast_rows":  # [Lk] broadcast over heads and queries: zero strides
        mask = rng.random(lk) < 0.6
    elif mask_kind == "rows_off":  # some rows see nothing at all
        mask = np.ones((lq, 1), dtype=bool)
        mask[rng.random(lq) < 0.3] = False
    return q, k, v, draw(st.booleans()), mask, draw(st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(problem=problems())
def test_tile_paths_match_float64_reference(code_path, problem):
    q, k, v, causal, mask, return_weights = problem
    out = assert_close_to_reference(q, k, v, causal=causal, mask=mask, return_weights=return_weights)
    if mask is not None and mask.ndim == 2:  # rows with no allowed key give exact zeros
        assert (out[:, ~mask[:, 0]] == 0).all()


@pytest.mark.parametrize("return_weights", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scores_of_magnitude_1e4_on_the_tile_paths(code_path, dtype, return_weights):
    rng = np.random.default_rng(7)
    q = (rng.standard_normal((2, 100, 64)) * 50).astype(dtype)  # scores up to ~1e4
    k = (rng.standard_normal((2, 100, 64)) * 50).astype(dtype)
    v = rng.standard_normal((2, 100, 64)).astype(dtype)
    result = scaled_dot_product_attention(q, k, v, causal=True, backend="c", return_weights=return_weights)
    out = result[0] if return_weights else result
    expected, _ = reference(q, k, v, causal=True)
    assert np.abs(q @ np.swapaxes(k, -1, -2) / 8).max() > 5e3
    assert np.isfinite(out).all()
    # float32 scores of 1e4 carry absolute rounding errors of ~1e-3, which move the weights that much
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-3 if dtype == np.float32 else 1e-9)


@pytest.mark.parametrize("return_weights", [False, True])
def test_causal_with_more_queries_than_keys_gives_zero_rows(code_path, return_weights):
    rng = np.random.default_rng(8)
    q, k, v = (rng.standard_normal(shape) for shape in ((2, 70, 8), (2, 20, 8), (2, 20, 5)))
    out = assert_close_to_reference(q, k, v, causal=True, return_weights=return_weights)
    assert (out[:, :50] == 0).all()  # query i sees keys j <= i - 50


def test_row_path_and_tile_paths_agree(code_path):
    rng = np.random.default_rng(9)
    q, k, v = (rng.standard_normal((3, 40, 24)).astype(np.float32) for _ in range(3))
    tiled = scaled_dot_product_attention(q, k, v, causal=True, backend="c")  # online softmax
    tiled_with_weights, weights = scaled_dot_product_attention(q, k, v, causal=True, backend="c", return_weights=True)
    by_rows = [scaled_dot_product_attention(q[:, i:i + 1], k[:, :i + 1], v[:, :i + 1], backend="c", return_weights=True)
               for i in range(40)]  # one query at a time (decoding): the row path
    np.testing.assert_allclose(tiled, tiled_with_weights, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.concatenate([out for out, _ in by_rows], axis=1), tiled, rtol=0, atol=1e-6)
    for i, (_, row_weights) in enumerate(by_rows):
        np.testing.assert_allclose(row_weights[:, 0], weights[:, i, :i + 1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("return_weights", [False, True])
@pytest.mark.parametrize("lq", [1, 2, TILE_MIN_ROWS - 1])
def test_few_query_rows_decode_on_the_row_path(code_path, lq, return_weights):
    rng = np.random.default_rng(10)
    q, k, v = (rng.standard_normal(shape).astype(np.float32) for shape in ((4, lq, 65), (4, 300, 65), (4, 300, 3)))
    mask = rng.random((4, lq, 300)) < 0.8
    assert_close_to_reference(q, k, v, causal=True, mask=mask, return_weights=return_weights)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dv", [1, 8, 16, 40, 64, 65, 127, 128, 200])
def test_row_path_value_widths(code_path, dtype, dv):
    """Every pass of the row path's weighted sum: full chunks of 8 vectors, of 4, and masked tails."""
    rng = np.random.default_rng(dv)
    q, k, v = (rng.standard_normal(shape).astype(dtype) for shape in ((3, 1, 16), (3, 70, 16), (3, 70, dv)))
    assert_close_to_reference(q, k, v, causal=True)


def test_all_code_paths_agree(monkeypatch):
    rng = np.random.default_rng(11)
    q, k, v = (rng.standard_normal((2, 77, 33)) for _ in range(3))
    results = []
    for path in code_paths():
        monkeypatch.setenv("GLASSBOX_SIMD", SIMD_SETTINGS[path])
        results.append(scaled_dot_product_attention(q, k, v, causal=True, backend="c"))
    for result in results[1:]:
        np.testing.assert_allclose(result, results[0], rtol=0, atol=1e-13)


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the CPU's flags from /proc/cpuinfo")
def test_each_simd_path_runs_exactly_where_the_cpu_has_its_features():
    flags = cpu_flags()
    has_avx2 = {"avx2", "fma"} <= flags
    assert ("avx2+fma" in code_paths()) == has_avx2
    assert ("avx512" in code_paths()) == (has_avx2 and "avx512f" in flags)


@pytest.mark.parametrize("return_weights", [False, True])
def test_results_do_not_depend_on_the_thread_count(monkeypatch, return_weights):
    rng = np.random.default_rng(12)
    q, k, v = (rng.standard_normal((6, 200, 64)).astype(np.float32) for _ in range(3))
    results = []
    for threads in ("1", "2", "3", "7"):
        monkeypatch.setenv("GLASSBOX_NUM_THREADS", threads)
        results.append(scaled_dot_product_attention(q, k, v, causal=True, return_weights=return_weights,
                                                    backend="c"))
    for result in results[1:]:  # each row is computed by one task, the same way: bit for bit
        if return_weights:
            np.testing.assert_array_equal(result[0], results[0][0])
            np.testing.assert_array_equal(result[1], results[0][1])
        else:
            np.testing.assert_array_equal(result, results[0])


def test_thread_count_follows_the_environment(monkeypatch):
    monkeypatch.setenv("GLASSBOX_NUM_THREADS", "3")
    assert lib.gb_forward_thread_count() == 3
    monkeypatch.delenv("GLASSBOX_NUM_THREADS")
    cores = lib.gb_forward_thread_count()
    assert cores >= 1
    for unusable in ("0", "-2", "many", ""):
        monkeypatch.setenv("GLASSBOX_NUM_THREADS", unusable)
        assert lib.gb_forward_thread_count() == cores


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux's affinity calls and two cores to leave one out")
def test_default_thread_count_is_the_cores_the_process_may_run_on():
    """Under taskset or a cpuset the kernel counts the allowed cores, as core.native.parallel.cores() does
    (a fresh process: the count is taken once per process)."""
    one_core = min(os.sched_getaffinity(0))
    script = textwrap.dedent(f"""
        import os
        os.environ.pop("GLASSBOX_NUM_THREADS", None)
        os.sched_setaffinity(0, {{{one_core}}})
        from core.native import _kernel, parallel
        print(_kernel.lib.gb_forward_thread_count(), parallel.cores())
    """)
    printed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert printed.split() == ["1", "1"]


def kernel_exp2(x: np.ndarray) -> np.ndarray:
    """2^x through the kernel's own exp2 (the softmax's, on the current code path)."""
    out = np.empty_like(x)
    ctype = "float[]" if x.dtype == np.float32 else "double[]"
    function = lib.gb_exp2_f32 if x.dtype == np.float32 else lib.gb_exp2_f64
    assert function(ffi.from_buffer(ctype, out), ffi.from_buffer(ctype, x), x.size) == 0
    return out


@pytest.mark.parametrize("dtype, low, high", [(np.float32, -125.0, 127.4), (np.float64, -1021.0, 1023.4)])
def test_vectorised_exp2_error_is_below_the_stated_ulp_bound(code_path, dtype, low, high):
    rng = np.random.default_rng(14)
    x = np.concatenate([np.linspace(low, high, 1_000_001), rng.uniform(-30, 0, 500_000)]).astype(dtype)
    got = kernel_exp2(x)
    exact = np.exp2(x.astype(np.longdouble))  # 64-bit mantissa on x86: exact enough for float64's ULP
    ulps = np.abs(got.astype(np.longdouble) - exact) / np.spacing(exact.astype(dtype)).astype(np.longdouble)
    assert float(ulps.max()) <= EXP2_MAX_ULP


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vectorised_exp2_special_values(code_path, dtype):
    x = np.array([-np.inf, 0.0, -1e30, np.nan, -1100.0, 1.0, -3.0], dtype=dtype)
    got = kernel_exp2(x)
    assert got[0] == 0 and got[1] == 1 and got[2] == 0 and np.isnan(got[3]) and got[4] == 0
    assert got[5] == 2 and got[6] == 0.125  # exact at integers


def test_exp2_and_forward_validate_their_arguments():
    x = np.zeros(4, dtype=np.float32)
    assert lib.gb_exp2_f32(ffi.NULL, ffi.from_buffer("float[]", x), 4) == lib.GB_ERR_NULL
    assert lib.gb_exp2_f32(ffi.from_buffer("float[]", x), ffi.from_buffer("float[]", x), -1) == lib.GB_ERR_SIZE
    buffer = ffi.from_buffer("float[]", x)
    status = lib.gb_attention_forward_f32(buffer, ffi.NULL, buffer, buffer, buffer, ffi.NULL, 0, 0, 0, 0, 1.0,
                                          0, 1, 2, 2, 1, 1)
    assert status == lib.GB_ERR_SIZE
    assert (x == 0).all()


MEMORY_SCRIPT = textwrap.dedent("""
    import numpy as np
    from core.model.attention import scaled_dot_product_attention

    def status_kib(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])

    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 16384, 64), dtype=np.float32) for _ in range(3))
    scaled_dot_product_attention(q[:, :64], k[:, :64], v[:, :64], causal=True, backend="c")  # load everything
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets the peak (VmHWM) to the current resident size
    before = status_kib("VmRSS")
    out = scaled_dot_product_attention(q, k, v, causal=True, backend="c")
    assert np.isfinite(out).all()
    print((status_kib("VmHWM") - before) * 1024)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc")
def test_l16384_without_weights_needs_no_quadratic_memory():
    """Peak extra memory of one 1-head, L=16384, D=64 call: far below 64 MB (an L x L
    float32 buffer would be 1 GiB). Measured in a fresh process as the peak resident
    size (VmHWM, reset just before the call) minus the resident size before it."""
    run = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    extra_bytes = int(run.stdout.strip().splitlines()[-1])
    assert extra_bytes < 64 * 2**20
