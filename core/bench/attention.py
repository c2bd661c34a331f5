"""Benchmarks of the attention backends: the C kernel, the NumPy fallback and
PyTorch's CPU attention as a peer (only when PyTorch happens to be installed; it is
never a dependency), measured at its best: the fused scaled_dot_product_attention on
4-D input, on as many threads as the C kernel, warmed up (see _peer_call).

Pure functions returning plain dicts, shared by `python -m core bench`, the
pytest-benchmark suite in tests/benchmarks/ and the dashboard's benchmark page; the
samples are taken by core.bench.timing.time_calls:
    default_cases(quick=False) -> [BenchCase]       the grid of sizes, toy to GPT-2 and decoding
    run_case(case, backend, repeats) -> dict        one timing (+ accuracy)
    run_backends(case, backends, repeats) -> [dict] run_case for each, samples taken in turn
                                                    (yardstick=True: float32 rows also get
                                                    sgemm timed in the same rounds, and their
                                                    share of it)
    run_grid(cases, backends) -> [dict]             every case x backend, with ratios
    add_speedups(rows) -> rows                      ratios to NumPy and to the peer, per case
    torch_available() -> bool                       is PyTorch importable? (core.bench.peers)
    machine_info() -> dict                          CPU, versions, threads, sgemm rates now
    blas_kernel_note() -> str | None                a warning when OPENBLAS_CORETYPE is set
    load_benchmark_json(path) -> [dict]             pytest-benchmark's saved JSON, flattened
FLOP counts are of useful work only: 4 * heads * (visible query-key pairs) * D
(q k^T and weights v, two FLOPs per multiply-add), so a causal case counts about
half of the full square.
"""
from __future__ import annotations

import math
import os
import platform
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

from core import checks
from core.bench.peers import torch_available, version
from core.bench.timing import kernel_threads, time_call, time_calls
from core.checks import is_number, is_whole
from core.io.checkpoint import memory_available
from core.model.attention import causal_mask, default_scale, scaled_dot_product_attention
from core.native.kernel import available_backends, kernel_info
from core.native.parallel import cores

PEER = "torch"
SGEMM_SIZE = 1024  # the yardstick: float32 [n, n] @ [n, n] through NumPy's BLAS
SGEMM_FLOPS = 2.0 * SGEMM_SIZE**3
YARDSTICK = "sgemm"  # its name among the calls of time_calls


@dataclass(frozen=True)
class BenchCase:
    """One attention problem: `heads` independent [lq, d] x [lk, d] problems, v of width d."""

    group: str
    heads: int
    lq: int
    lk: int
    d: int = 64
    dtype: str = "float32"
    causal: bool = False
    return_weights: bool = False

    def __post_init__(self):
        if min(self.heads, self.lq, self.lk, self.d) < 1:
            raise ValueError(f"benchmark sizes must be positive, got {self}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"benchmark dtype must be float32 or float64, got {self.dtype!r}")

    @property
    def name(self) -> str:
        """A short unique label, e.g. 'gpt2 h12 L1024x1024 d64 f32 causal'."""
        flags = ("causal " if self.causal else "") + ("weights" if self.return_weights else "")
        return f"{self.group} h{self.heads} L{self.lq}x{self.lk} d{self.d} {self.dtype.replace('float', 'f')} {flags}".strip()

    @property
    def visible_pairs(self) -> int:
        """Query-key pairs that pass the causal test, per head."""
        if not self.causal:
            return self.lq * self.lk
        seen = np.clip(np.arange(self.lq) + self.lk - self.lq + 1, 0, self.lk)  # [lq] keys each query sees
        return int(seen.sum())

    @property
    def flops(self) -> float:
        return 4.0 * self.heads * self.visible_pairs * self.d

    @property
    def bytes_moved(self) -> int:
        """Bytes the call must read and write at least: q, k, v, out (and weights when returned)."""
        elements = self.heads * (2 * self.lq * self.d + 2 * self.lk * self.d)
        if self.return_weights:
            elements += self.heads * self.lq * self.lk
        return elements * np.dtype(self.dtype).itemsize


def _grid(group, heads, lengths, d, dtypes, causals, weights_options):
    return [BenchCase(group, heads, length, length, d, dtype, causal, weights)
            for length in lengths for dtype in dtypes for causal in causals for weights in weights_options]


def default_cases(quick: bool = False) -> list[BenchCase]:
    """The grid: toy, small, GPT-2-like (12 heads, D=64) and decoding sizes.

    Full: both dtypes, causal and not, with and without weights, except L=2048
    (float32 only, to keep the run to a few minutes). quick: a handful of cases.
    """
    if quick:
        return [
            BenchCase("toy", 1, 4, 4, 4, causal=True),
            BenchCase("small", 8, 64, 64, 64, causal=True),
            BenchCase("gpt2", 12, 256, 256, 64, causal=True),
            BenchCase("gpt2", 12, 1024, 1024, 64, causal=True),
            BenchCase("gpt2", 12, 1024, 1024, 64, "float64", causal=True),
            BenchCase("decode", 12, 1, 4096, 64, causal=True),
        ]
    both_dtypes, both, = ("float32", "float64"), (False, True)
    cases = []
    cases += _grid("toy", 1, [4], 4, both_dtypes, both, both)
    cases += _grid("toy", 4, [8], 16, both_dtypes, both, both)
    cases += _grid("small", 8, [64], 64, both_dtypes, both, both)
    cases += _grid("gpt2", 12, [256, 1024], 64, both_dtypes, both, both)
    cases += _grid("gpt2", 12, [2048], 64, ("float32",), both, both)
    cases += [BenchCase("decode", 12, 1, keys, 64, dtype, causal=True)
              for keys in (128, 1024, 4096) for dtype in both_dtypes]
    return cases


MAX_CASE_BYTES = 4_000_000_000  # a custom case's arrays, at most (and at most half the memory available)


def case_bytes(case: BenchCase) -> int:
    """Bytes a case's arrays take at once, about: q, k, v and out of its dtype, the float64 copies
    and reference of the accuracy check, and the [heads, lq, lk] scores and weights, twice."""
    vectors = case.heads * (2 * case.lq + 2 * case.lk) * case.d
    scores = case.heads * case.lq * case.lk
    return vectors * (np.dtype(case.dtype).itemsize + 8) + 2 * scores * 8


def parse_size(text: str) -> BenchCase:
    """'HEADSxLQxLKxD' (e.g. 12x1024x1024x64), optional ':f64', ':causal', ':weights' flags.
    A case whose arrays would exceed MAX_CASE_BYTES, or half the memory available, is refused."""
    if not isinstance(text, str) or len(text) > 200:
        raise ValueError(f"size {str(text)[:40]!r} is not HEADSxLQxLKxD (e.g. 12x1024x1024x64[:causal][:weights][:f64])")
    sizes, *flags = text.strip().split(":")
    try:
        heads, lq, lk, d = (int(part) for part in sizes.lower().split("x"))
    except ValueError:
        raise ValueError(f"size {text!r} is not HEADSxLQxLKxD (e.g. 12x1024x1024x64[:causal][:weights][:f64])") from None
    unknown = set(flags) - {"f32", "f64", "causal", "weights"}
    if unknown:
        raise ValueError(f"unknown flag(s) {sorted(unknown)} in size {text!r}; use causal, weights, f32 or f64")
    dtype = "float64" if "f64" in flags else "float32"
    case = BenchCase("custom", heads, lq, lk, d, dtype, "causal" in flags, "weights" in flags)
    cap = min(MAX_CASE_BYTES, memory_available() // 2)
    if case_bytes(case) > cap:
        raise ValueError(f"size {text!r} needs about {case_bytes(case) / 1e9:,.1f} GB of arrays; a benchmark case "
                         f"may use at most {cap / 1e9:.1f} GB here")
    return case


def bench_backends() -> tuple[str, ...]:
    """The project's backends, plus the PyTorch peer when installed."""
    return available_backends() + ((PEER,) if torch_available() else ())


def make_inputs(case: BenchCase, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random q [heads, lq, d], k [heads, lk, d], v [heads, lk, d] of the case's dtype."""
    rng = np.random.default_rng(seed)
    shapes = ((case.heads, case.lq, case.d), (case.heads, case.lk, case.d), (case.heads, case.lk, case.d))
    q, k, v = (rng.standard_normal(shape).astype(case.dtype) for shape in shapes)
    return q, k, v


def reference_output(case: BenchCase, q, k, v) -> np.ndarray:
    """The float64 result (NumPy backend on float64 copies), to measure each backend's error."""
    as64 = [np.asarray(array, dtype=np.float64) for array in (q, k, v)]
    return scaled_dot_product_attention(*as64, causal=case.causal, backend="numpy")


def attention_call(case: BenchCase, backend: str, q, k, v):
    """A no-argument function running the case once on `backend` and returning out as NumPy."""
    if backend == PEER:
        return _peer_call(case, q, k, v)
    if backend not in available_backends():
        raise ValueError(f"unknown or unavailable backend {backend!r}; choose from {bench_backends()}")

    def call():
        result = scaled_dot_product_attention(q, k, v, causal=case.causal, return_weights=case.return_weights,
                                              backend=backend)
        return result[0] if case.return_weights else result

    return call


PEER_WARMUP_CALLS = 3  # torch picks and caches its kernels on the first calls


def peer_path(case: BenchCase) -> str:
    """Which PyTorch call the peer row times for this case (named in every row's ratios)."""
    if case.return_weights:
        return "torch matmul+softmax+matmul 4-D"  # the fused call cannot return the weights
    if case.causal and case.lq != case.lk:
        return "torch sdpa 4-D, bool mask"
    return "torch sdpa 4-D, is_causal" if case.causal else "torch sdpa 4-D"


def peer_info(case: BenchCase) -> dict:
    """What a peer row records: `peer_path`, `peer_threads` (kernel_threads: as many as the C kernel,
    where core's OMP_NUM_THREADS=1 default would leave PyTorch on one) and `peer_version` (torch's)."""
    return {"peer_path": peer_path(case), "peer_threads": kernel_threads(), "peer_version": version("torch")}


def _peer_call(case: BenchCase, q, k, v):
    """PyTorch's CPU attention at its best: scaled_dot_product_attention on 4-D input
    [1, heads, L, d] (its fused flash kernel; 3-D input takes the unfused math path), its own
    is_causal flag when Lq == Lk (top-left and bottom-right alignment agree there), else our
    bottom-right mask; with weights, matmul-softmax-matmul. On kernel_threads() threads, warmed up."""
    if not torch_available():
        raise ValueError("the PyTorch peer is not installed (pip install torch to compare against it)")
    import torch

    torch.set_num_threads(kernel_threads())
    tq, tk, tv = (torch.from_numpy(array)[None] for array in (q, k, v))  # [1, h, L, d]: no copies, no autograd
    allowed = torch.from_numpy(causal_mask(case.lq, case.lk)) if case.causal else None  # [lq, lk]
    fused_causal = case.causal and case.lq == case.lk
    fused_mask = None if fused_causal else allowed
    scale = default_scale(case.d)

    def fused():
        out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=fused_mask, is_causal=fused_causal)
        return out[0].numpy()

    def with_weights():
        scores = torch.matmul(tq, tk.transpose(-1, -2)) * scale  # [1, h, lq, d] @ [1, h, d, lk] -> [1, h, lq, lk]
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.matmul(weights, tv)[0].numpy()  # [1, h, lq, lk] @ [1, h, lk, d] -> [h, lq, d]

    call = with_weights if case.return_weights else fused
    for _ in range(PEER_WARMUP_CALLS):
        call()
    return call


STATISTICS = {"median": np.median, "min": np.min}


def run_case(case: BenchCase, backend: str, repeats: int = 5, *, inputs=None, expected=None,
             statistic: str = "median") -> dict:
    """Times one case on one backend: a plain dict with the case's fields, `backend`,
    `seconds` (per call: the median of the samples, or their minimum with
    statistic="min", which is fairer on a machine busy with other work), `seconds_median`,
    `seconds_min`, `statistic`, `gflops` and `gbytes_per_s` (from `seconds`) and
    `max_abs_diff` (against the float64 reference; pass `inputs`/`expected` to reuse them)."""
    return run_backends(case, [backend], repeats, inputs=inputs, expected=expected, statistic=statistic)[0]


def run_backends(case: BenchCase, backends, repeats: int = 5, *, inputs=None, expected=None,
                 statistic: str = "median", yardstick: bool = False) -> list[dict]:
    """run_case's row for each backend, their samples taken in turn (time_calls). With
    `yardstick`, a float32 case's rounds also time sgemm on the C kernel's threads
    (sgemm_call), so that each row's `sgemm_gflops` and `share_of_sgemm` (its GFLOP/s over
    that) compare two rates measured side by side; both are None for float64 rows, without
    the yardstick, or without the kernel."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(STATISTICS)}, got {statistic!r}")
    q, k, v = inputs if inputs is not None else make_inputs(case)
    calls = {backend: attention_call(case, backend, q, k, v) for backend in backends}
    if expected is None:
        expected = reference_output(case, q, k, v)
    errors = {backend: float(np.abs(call() - expected).max()) for backend, call in calls.items()}
    threads = kernel_info()["threads"]
    if yardstick and threads and case.dtype == "float32":
        calls[YARDSTICK] = sgemm_call(threads)
    samples = time_calls(calls, repeats)
    sgemm = SGEMM_FLOPS / STATISTICS[statistic](samples[YARDSTICK]) / 1e9 if YARDSTICK in samples else None
    rows = [_row(case, backend, samples[backend], errors[backend], statistic) for backend in backends]
    for row in rows:
        row["sgemm_gflops"] = sgemm
        row["share_of_sgemm"] = row["gflops"] / sgemm if sgemm else None
    return rows


def _row(case: BenchCase, backend: str, samples: list[float], max_abs_diff: float, statistic: str) -> dict:
    seconds = float(STATISTICS[statistic](samples))
    return {
        **asdict(case), "name": case.name, "backend": backend, **(peer_info(case) if backend == PEER else {}),
        "statistic": statistic,
        "seconds": seconds, "seconds_median": float(np.median(samples)), "seconds_min": float(min(samples)),
        "seconds_max": float(max(samples)),
        "repeats": len(samples), "gflops": case.flops / seconds / 1e9, "gbytes_per_s": case.bytes_moved / seconds / 1e9,
        "max_abs_diff": max_abs_diff,
    }


def plain_per_head_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool) -> np.ndarray:
    """The plainest NumPy attention, one head at a time (the NumPy backend's yardstick):
    q [H, Lq, D], k [H, Lk, D], v [H, Lk, Dv] -> out [H, Lq, Dv]."""
    lq, lk = q.shape[-2], k.shape[-2]
    scale = default_scale(q.shape[-1])
    allowed = causal_mask(lq, lk) if causal else np.ones((lq, lk), dtype=bool)  # [Lq, Lk]
    out = np.empty(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)  # [H, Lq, Dv]
    for head in range(q.shape[0]):
        scores = np.where(allowed, q[head] @ k[head].T * scale, -np.inf)  # [Lq, Lk]
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))  # [Lq, Lk]
        out[head] = weights / weights.sum(axis=-1, keepdims=True) @ v[head]  # [Lq, Lk] @ [Lk, Dv]
    return out


def fallback_overhead(case: BenchCase, repeats: int = 15) -> dict:
    """The NumPy backend's fastest time for `case` against plain_per_head_attention's, the
    samples taken in the same rounds (time_calls); `ratio` is the backend's time over the plain
    loop's (the promise: at most 1.5)."""
    q, k, v = make_inputs(case)
    samples = time_calls({"backend": attention_call(case, "numpy", q, k, v),
                          "plain": lambda: plain_per_head_attention(q, k, v, case.causal)}, repeats)
    backend, plain = min(samples["backend"]), min(samples["plain"])
    return {"case": case.name, "samples": repeats, "backend_seconds": backend, "plain_seconds": plain,
            "ratio": backend / plain}


THREADS_VARIABLE = "GLASSBOX_NUM_THREADS"  # the C kernel reads it on every call
THREAD_SCALING_CASE = BenchCase("small", 8, 64, 64, 64)


def thread_scaling(case: BenchCase = THREAD_SCALING_CASE, repeats: int = 30) -> dict:
    """The C kernel's fastest time for `case` on one thread and on its own thread count, the
    samples taken in the same rounds (time_calls), and their ratio (`speedup`). Each call sets
    GLASSBOX_NUM_THREADS first (both sides pay that ~1 us); the variable is restored after."""
    threads = kernel_info()["threads"]
    if threads is None:
        raise ValueError("thread scaling times the C kernel, which is not built: run `python build_kernels.py`")
    call = attention_call(case, "c", *make_inputs(case))

    def on_threads(count: int):
        def timed():
            os.environ[THREADS_VARIABLE] = str(count)
            return call()
        return timed
    saved = os.environ.get(THREADS_VARIABLE)
    try:
        samples = time_calls({"one": on_threads(1), "all": on_threads(threads)}, repeats)
    finally:
        if saved is None:
            os.environ.pop(THREADS_VARIABLE, None)
        else:
            os.environ[THREADS_VARIABLE] = saved
    one, all_threads = min(samples["one"]), min(samples["all"])
    return {"case": case.name, "threads": threads, "samples": repeats, "one_thread_seconds": one,
            "threads_seconds": all_threads, "speedup": one / all_threads}


def run_grid(cases, backends=None, repeats: int = 5, progress=None, statistic: str = "median",
             yardstick: bool = False) -> list[dict]:
    """run_backends for every case (default backends: every available one, peer included).
    Each row gains `speedup_vs_numpy` and `speedup_vs_peer` (that backend's time over this
    one's: above 1 = faster), or None when that backend was not run. `progress(row)` is
    called after each row."""
    backends = tuple(backends) if backends else bench_backends()
    rows = []
    for case in cases:
        inputs = make_inputs(case)
        expected = reference_output(case, *inputs)
        case_rows = add_speedups(run_backends(case, backends, repeats, inputs=inputs, expected=expected,
                                              statistic=statistic, yardstick=yardstick))
        for row in case_rows:
            if progress:
                progress(row)
        rows += case_rows
    return rows


def add_speedups(rows: list[dict]) -> list[dict]:
    """Sets `speedup_vs_numpy` and `speedup_vs_peer` on every row (that backend's `seconds`
    over this row's, for the rows of the same case `name`; None where that backend is missing),
    and `speedup_vs_peer_path`: the PyTorch call the peer ratio compares against."""
    times = {(row["name"], row["backend"]): row["seconds"] for row in rows}
    peer_paths = {row["name"]: row.get("peer_path") for row in rows if row["backend"] == PEER}
    for row in rows:
        numpy_time, peer_time = times.get((row["name"], "numpy")), times.get((row["name"], PEER))
        row["speedup_vs_numpy"] = numpy_time / row["seconds"] if numpy_time else None
        row["speedup_vs_peer"] = peer_time / row["seconds"] if peer_time else None
        row["speedup_vs_peer_path"] = peer_paths.get(row["name"]) if peer_time else None
    return rows


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def sgemm_call(threads: int):
    """A no-argument call: one float32 SGEMM_SIZE^3 matmul through NumPy's BLAS on `threads`
    threads. This package pins BLAS to one thread (core/__init__.py); the call lifts that for
    its own matmul only (threadpoolctl), so it can be timed in turn with the kernel in one
    process. The switch costs about 6 us of a ~5 ms call."""
    a, b = (np.random.default_rng(seed).standard_normal((SGEMM_SIZE, SGEMM_SIZE), dtype=np.float32) for seed in (1, 2))

    def matmul():
        with _blas().limit(limits=threads, user_api="blas"):
            a @ b
    return matmul


def sgemm_gflops(threads: int = 1, repeats: int = 5) -> float:
    """The machine's float32 matmul speed on `threads` threads right now (best of `repeats`):
    a yardstick for the GFLOP/s above, and a check that the cores are not busy elsewhere."""
    return SGEMM_FLOPS / min(time_call(sgemm_call(threads), repeats)) / 1e9


def blas_kernel_note() -> str | None:
    """A warning when OPENBLAS_CORETYPE is set: NumPy's OpenBLAS then runs the kernels of that
    CPU type, not this CPU's best (Haswell's AVX2 ones on an AVX-512 CPU run at about half the
    rate), which slows the NumPy backend, the sgemm yardstick and Glassbox's training matrix
    products, but not PyTorch, whose BLAS is its own."""
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    if not coretype:
        return None
    return (f"OPENBLAS_CORETYPE={coretype} is set: NumPy's BLAS runs {coretype} kernels, maybe not this "
            "CPU's fastest (the NumPy backend, the sgemm yardstick and Glassbox's training products, "
            "not PyTorch); unset it to measure each at its best")


def machine_info() -> dict:
    """Where the figures come from: CPU, cores, kernel path and threads, library versions,
    NumPy's sgemm GFLOP/s measured now on one thread (`sgemm_gflops`) and on the C kernel's
    threads (`sgemm_gflops_kernel_threads`, None without the kernel)."""
    kernel = kernel_info()
    return {"cpu": _cpu_name(), "cores": cores(), "python": platform.python_version(),
            "numpy": np.__version__, **kernel, "torch": version("torch"),
            "torch_threads": kernel_threads() if torch_available() else None,
            "sgemm_gflops": round(sgemm_gflops(), 1),
            "sgemm_gflops_kernel_threads": round(sgemm_gflops(kernel["threads"]), 1) if kernel["threads"] else None}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


MAX_BENCHMARK_JSON_BYTES = 50_000_000
CASE_FIELDS = {"group": str, "backend": str, "dtype": str, "causal": bool, "return_weights": bool,
               "heads": int, "lq": int, "lk": int, "d": int}  # what tests/benchmarks stores in extra_info


def _benchmark_entry(path, number: int, bench) -> dict:
    """One benchmark of pytest-benchmark's JSON as a row, its structure checked; ValueError naming
    the file, the benchmark's place and what is wrong."""
    where = f"{path}: benchmarks[{number}]"
    if not isinstance(bench, dict):
        raise ValueError(f"{where} is not a JSON object")
    stats, extra = bench.get("stats", {}), bench.get("extra_info", {})
    if not isinstance(stats, dict) or not isinstance(extra, dict):
        raise ValueError(f"{where}: 'stats' and 'extra_info' must be JSON objects")
    for key in ("group", "name"):
        if not isinstance(bench.get(key), (str, type(None))):
            raise ValueError(f"{where}: {key!r} must be a string")
    for key in ("median", "min", "mean", "max"):
        value = stats.get(key)
        if value is not None and not (is_number(value) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{where}: stats.{key} must be a non-negative number, got {str(value)[:40]}")
    if stats.get("rounds") is not None and not (is_whole(stats["rounds"]) and stats["rounds"] >= 0):
        raise ValueError(f"{where}: stats.rounds must be a whole number")
    for key, kind in CASE_FIELDS.items():
        value = extra.get(key)
        wrong = not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < 0))
        if key in extra and wrong:
            raise ValueError(f"{where}: extra_info.{key} must be {kind.__name__}, got {str(value)[:40]}")
    for key in ("flops", "bytes_moved"):
        value = extra.get(key)
        if value is not None and not (is_number(value) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{where}: extra_info.{key} must be a non-negative number, got {str(value)[:40]}")
    row = {**extra, "name": bench.get("group"), "test": bench.get("name"),
           "seconds": stats.get("median"), "seconds_min": stats.get("min"),
           "seconds_mean": stats.get("mean"), "seconds_max": stats.get("max"), "rounds": stats.get("rounds")}
    if row.get("flops") and row["seconds"]:
        row["gflops"] = row["flops"] / row["seconds"] / 1e9
    if row.get("bytes_moved") and row["seconds"]:
        row["gbytes_per_s"] = row["bytes_moved"] / row["seconds"] / 1e9
    return row


def load_benchmark_json(path) -> list[dict]:
    """pytest-benchmark's saved JSON (`--benchmark-json PATH`) as plain dicts, one per
    benchmark, shaped like run_case's rows: the case fields and `backend` that
    tests/benchmarks stores in extra_info, `name` (the case's name, which is the
    benchmark group), `test` (the pytest id), `seconds` (median), `seconds_min`,
    `seconds_mean`, `rounds`, `gflops` and `gbytes_per_s` (when the counts were stored) and
    the speed-ups of add_speedups. The file is read under a size cap (core.checks.json_file)
    and its structure checked: anything else is one ValueError naming the file and the problem."""
    path = Path(path)
    data = checks.json_file(path, "a pytest-benchmark JSON file", MAX_BENCHMARK_JSON_BYTES)[0]
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError(f"{path} is not a pytest-benchmark JSON file (no 'benchmarks' list)")
    rows = [_benchmark_entry(path, number, bench) for number, bench in enumerate(data["benchmarks"])]
    if all("backend" in row for row in rows):
        if any(row["seconds"] is None for row in rows):
            raise ValueError(f"{path}: a benchmark has no stats.median")
        return add_speedups(rows)
    return rows
