"""The C kernels' threads: attention forward, attention backward and the few-row products share one
persistent pool (kernels/threads.c), so a process running all three keeps threads - 1 helpers,
not one set per kernel."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.native import kernel

pytestmark = pytest.mark.skipif(kernel.lib is None, reason="the C kernel is not built")

THREADS = 3  # forced through GLASSBOX_NUM_THREADS: the check does not depend on this machine's cores

# Runs in a fresh process (no kernel call has started the pool yet) and prints the threads that
# the kernel calls added, after a first and after a second round of calls.
CHILD = """
import os
import numpy as np
from core.model.attention import attention_backward, scaled_dot_product_attention
from core.native.layers import few_rows_matmul

def threads():
    return len(os.listdir("/proc/self/task"))

rng = np.random.default_rng(0)
q, k, v, d_out = (rng.standard_normal((4, 256, 64)).astype(np.float32) for _ in range(4))
x, w = rng.standard_normal((1, 768)).astype(np.float32), rng.standard_normal((768, 2304)).astype(np.float32)
before = threads()
counts = []
for _ in range(2):
    out, weights = scaled_dot_product_attention(q, k, v, return_weights=True, backend="c")
    attention_backward(d_out, q, k, v, weights, backend="c")
    few_rows_matmul(x, w)  # 0 threads: the configured count
    few_rows_matmul(x, np.ascontiguousarray(w.T).T)  # the transposed product
    counts.append(threads() - before)
print(*counts)
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through Linux's /proc")
def test_every_kernel_shares_one_thread_pool():
    package_root = str(Path(kernel.__file__).resolve().parents[2])  # this checkout, above core/
    env = {**os.environ, "GLASSBOX_NUM_THREADS": str(THREADS), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    env.pop("GLASSBOX_BACKEND", None)
    result = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120,
                            check=True)
    first, second = map(int, result.stdout.split())
    # one pool: at most THREADS - 1 helpers (the caller's thread is the other); one pool per kernel
    # would add THREADS - 1 for each of the three kernel files
    assert 0 < first <= THREADS - 1, f"the kernels added {first} threads"
    assert second == first  # the pool's threads are reused, never started again
