"""Large matrix products on every core, without a multi-threaded BLAS.

`core/__init__.py` starts BLAS on one thread: the toy model's matrices are small, and on a busy
2-core machine multi-threaded OpenBLAS made such products 30-100x slower. A GPT-2-sized forward
pass is the opposite case: almost all of its time is large matrix products. `matmul(x, w)` cuts
a large product with a large weight into one block of the weight's columns per core and runs the
blocks at once on a small pool of threads that lives as long as the process (NumPy releases the
GIL inside BLAS), each block a single-threaded BLAS call that reads only its share of the weight
(cutting rows instead made each core read the whole weight: GPT-2's output head on 128 tokens took
60 ms that way, 35 ms by columns). Columns may differ from the whole product's in the last bit
(BLAS picks kernels by size); the toy model's weights are below LARGE_WEIGHT, so training is unchanged.

Decoding with the KV cache multiplies one row at a time: such a product reads every weight once
and is bound by memory bandwidth, which one core does not exhaust. Products of at most FEW_ROWS
rows and FEW_ROWS_PRODUCT multiply-adds or more go to a C kernel (core.native.layers.few_rows_matmul)
that splits the weight across the kernel's own persistent threads, cheaper to wake than this
pool (measured on GPT-2 small: about 19 -> 13-15 ms a generated token on 2 cores).

OpenBLAS's own thread count cannot serve here: it is one setting for the whole process, and
calls to change it from any thread but the main one are ignored (OpenBLAS 0.3.31), while
Streamlit runs every session's script in a thread of its own. A shared pool also means that
several sessions' products queue for the same cores instead of oversubscribing them.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from core.native import layers

LARGE_PRODUCT = 1 << 22  # multiply-adds: GPT-2 small's smallest product on 8 tokens (768 x 768) is above
LARGE_WEIGHT = 1 << 18  # weight elements: GPT-2 small's smallest (768 x 768) is above, the toy's (64 x 256) below
FEW_ROWS = 1  # rows of a product that goes to the few-row kernel: decoding's one new token (more rows re-read the weights)
FEW_ROWS_PRODUCT = 1 << 18  # multiply-adds: GPT-2 small's smallest decoding product (768 x 768) is above
POOL_NAME = "glassbox-matmul"  # its threads' names start with this
_pool: ThreadPoolExecutor | None = None


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=cores(), thread_name_prefix=POOL_NAME)
    return _pool


def _on_one_core() -> bool:
    """Whether work must stay on the calling thread: a single core, or a caller that is itself one
    of the pool's threads (waiting there for more of the pool's work could leave no thread to do it)."""
    return cores() < 2 or threading.current_thread().name.startswith(POOL_NAME)


def beside(function, *args):
    """Start function(*args) on the shared pool, to run beside the caller's own work; returns a
    Future (already done, run here, on one core or in a pool thread). For independent work
    (training's backward products, head-mode training's shares of the batch)."""
    if _on_one_core():
        done = Future()
        done.set_result(function(*args))
        return done
    return _shared_pool().submit(function, *args)


def matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x @ w for x [.., N, K] and a 2-D w [K, M]; the weight's columns split across the cores
    when the product and the weight are large, one-row products on the few-row kernel."""
    *lead, rows, inner = x.shape
    flat_rows, columns = rows * int(np.prod(lead, dtype=np.int64)), w.shape[1]
    flat = x.reshape(flat_rows, inner)  # [N', K]
    products = flat_rows * inner * columns
    if flat_rows <= FEW_ROWS and products >= FEW_ROWS_PRODUCT and layers.fits(x, w):
        out = layers.few_rows_matmul(flat, w)
        if out is not None:
            return out.reshape(*lead, rows, columns)  # [.., N, M]
    if products < LARGE_PRODUCT or w.size < LARGE_WEIGHT or _on_one_core():
        return x @ w
    out = np.empty((flat_rows, columns), dtype=np.result_type(x, w))  # [N', M]
    bounds = np.linspace(0, columns // 16, cores() + 1).astype(int) * 16  # whole vectors of 16 floats per block
    bounds[-1] = columns
    work = [_shared_pool().submit(np.matmul, flat, w[:, a:b], out=out[:, a:b]) for a, b in zip(bounds, bounds[1:])]
    for future in work:
        future.result()
    return out.reshape(*lead, rows, columns)  # [.., N, M]
