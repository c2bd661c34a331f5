"""core.native.parallel.matmul: large products split by the weight's columns across the cores, equal
to x @ w up to rounding."""
import threading

import numpy as np
import pytest

from core.native import parallel
from helpers.threads import run_in_threads


@pytest.mark.parametrize("shape, width", [((130, 768), 3072), ((2, 65, 768), 2304), ((3, 64), 16)])
def test_matmul_equals_the_plain_product(shape, width):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((shape[-1], width)).astype(np.float32)
    product = parallel.matmul(x, w)
    assert product.shape == (*shape[:-1], width)
    np.testing.assert_allclose(product, x @ w, rtol=1e-5, atol=1e-4)


def test_a_large_product_is_split_and_a_transposed_weight_works(monkeypatch):
    calls = []
    original = parallel._shared_pool

    def counting_pool():
        pool = original()

        class Counting:
            def submit(self, function, *args, **kwargs):
                calls.append(args[1].shape)  # the block of the weight
                return pool.submit(function, *args, **kwargs)
        return Counting()

    monkeypatch.setattr(parallel, "_shared_pool", counting_pool)
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((100, 768)).astype(np.float32)
    wte = rng.standard_normal((1000, 768)).astype(np.float32)  # [V, C], used as wte.T like lm_head
    np.testing.assert_allclose(parallel.matmul(x, wte.T), x @ wte.T, rtol=1e-5, atol=1e-4)
    assert calls == [(768, 496), (768, 504)]  # block edges on whole vectors of 16 floats
    calls.clear()
    toy_weight = rng.standard_normal((64, 256)).astype(np.float32)  # below LARGE_WEIGHT: training stays unsplit
    parallel.matmul(rng.standard_normal((1024, 64)).astype(np.float32), toy_weight)
    assert calls == []


def test_sessions_multiplying_at_once_each_get_their_own_product():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((768, 3072)).astype(np.float32)
    inputs = [rng.standard_normal((64, 768)).astype(np.float32) for _ in range(4)]
    results = [None] * len(inputs)

    def run(index):
        results[index] = parallel.matmul(inputs[index], w)

    run_in_threads(run, len(inputs))
    for x, result in zip(inputs, results):
        np.testing.assert_allclose(result, x @ w, rtol=1e-5, atol=1e-4)


def test_work_started_in_a_pool_thread_stays_in_that_thread(monkeypatch):
    # every pool thread waiting for more of the pool's work would wait forever
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 768)).astype(np.float32)
    w = rng.standard_normal((768, 3072)).astype(np.float32)  # large: split across the pool from outside it

    def nested():
        inner = parallel.beside(threading.current_thread)
        return inner.result(timeout=30) is threading.current_thread(), parallel.matmul(x, w)

    outer = [parallel.beside(nested) for _ in range(2)]  # both pool threads at once
    for future in outer:
        same_thread, product = future.result(timeout=60)
        assert same_thread
        np.testing.assert_allclose(product, x @ w, rtol=1e-5, atol=1e-4)
