"""pytest-benchmark suite for the attention backends: the C kernel and the
NumPy fallback, plus PyTorch's CPU scaled_dot_product_attention as a peer when
PyTorch is installed (skipped otherwise; its fused call on 4-D input, on the C kernel's
thread count: core.bench.attention._peer_call). One group per problem size, so each table
compares the backends on the same inputs. The cases are core.bench.attention.default_cases().

Out of the default test run (pyproject's addopts has --benchmark-skip); run with
    pytest tests/benchmarks --benchmark-only --benchmark-json bench.json
and load the JSON with core.bench.attention.load_benchmark_json."""
from __future__ import annotations

import time
from dataclasses import asdict
from functools import lru_cache

import pytest

from core.bench import attention as bench_attention
from core.bench import peers, timing

ROUND_SECONDS = 0.01   # each round loops the call about this long
BUDGET_SECONDS = 0.25  # rounds per benchmark: about this much in total, at least MIN_ROUNDS
MIN_ROUNDS = 3


@lru_cache(maxsize=1)
def case_inputs(case: bench_attention.BenchCase):
    """q, k, v for the case, made once and shared by its backends."""
    return bench_attention.make_inputs(case)


@pytest.mark.parametrize("backend", ["c", "numpy", bench_attention.PEER])
@pytest.mark.parametrize("case", bench_attention.default_cases(), ids=lambda case: case.name.replace(" ", "-"))
def test_attention(benchmark, case, backend):
    if backend == bench_attention.PEER and not peers.torch_available():
        pytest.skip("PyTorch (the peer) is not installed")
    if backend not in bench_attention.bench_backends():
        pytest.skip(f"backend {backend!r} is not available")
    call = bench_attention.attention_call(case, backend, *case_inputs(case))
    start = time.perf_counter()
    call()  # warm-up, and the cost of one call
    one_call = time.perf_counter() - start
    iterations = max(1, int(ROUND_SECONDS / max(one_call, 1e-7)))
    rounds = max(MIN_ROUNDS, int(BUDGET_SECONDS / (one_call * iterations)))
    benchmark.group = case.name
    benchmark.extra_info.update(asdict(case), backend=backend, flops=case.flops, bytes_moved=case.bytes_moved,
                                **bench_attention.kernel_info(), **(bench_attention.peer_info(case) if backend == bench_attention.PEER else {}))
    time.sleep(timing.SETTLE_SECONDS)  # let the previous backend's worker threads go idle
    benchmark.pedantic(call, rounds=rounds, iterations=iterations, warmup_rounds=0)
