"""Large matrix products on every core, without a multi-threaded BLAS.

`core/__init__.py` starts BLAS on one thread: the toy model's matrices are small, and on a busy
2-core machine multi-threaded OpenBLAS made such products 30-100x slower. A GPT-2-sized forward
pass is the opposite case: almost all of its time is large matrix products. `matmul(x, w)` cuts
a large product into one block of rows per core and runs the blocks at once on a small pool of
threads that lives as long as the process (NumPy releases the GIL inside BLAS), each block a
single-threaded BLAS call. Rows may differ from the whole product's in the last bit (BLAS blocks
other row counts differently); toy-model products stay below the threshold, so training is unchanged.

OpenBLAS's own thread count cannot serve here: it is one setting for the whole process, and
calls to change it from any thread but the main one are ignored (OpenBLAS 0.3.31), while
Streamlit runs every session's script in a thread of its own. A shared pool also means that
several sessions' products queue for the same cores instead of oversubscribing them.
"""
from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

LARGE_PRODUCT = 1 << 25  # multiply-adds: GPT-2 small's MLP on 16 tokens is above, any toy product below
_pool: ThreadPoolExecutor | None = None


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=cores(), thread_name_prefix="glassbox-matmul")
    return _pool


def beside(function, *args):
    """Start function(*args) on the shared pool, to run beside the caller's own work; returns a
    Future (already done, run here, on a single core). For independent products (training's backward)."""
    if cores() < 2:
        done = Future()
        done.set_result(function(*args))
        return done
    return _shared_pool().submit(function, *args)


def matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x @ w for x [.., N, K] and a 2-D w [K, M]; rows split across the cores when the product is large."""
    *lead, rows, inner = x.shape
    flat_rows = rows * int(np.prod(lead, dtype=np.int64))
    blocks = min(cores(), flat_rows)
    if flat_rows * inner * w.shape[1] < LARGE_PRODUCT or blocks < 2:
        return x @ w
    flat = x.reshape(flat_rows, inner)  # [N', K]
    out = np.empty((flat_rows, w.shape[1]), dtype=np.result_type(x, w))  # [N', M]
    bounds = np.linspace(0, flat_rows, blocks + 1).astype(int)
    work = [_shared_pool().submit(np.matmul, flat[a:b], w, out=out[a:b]) for a, b in zip(bounds, bounds[1:])]
    for future in work:
        future.result()
    return out.reshape(*lead, rows, w.shape[1])  # [.., N, M]
