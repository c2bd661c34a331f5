"""core.native.memory: malloc keeps training's freed mid-sized arrays (glibc), unless the environment says otherwise."""
import ctypes.util
import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT

from core.native import memory

LIBC = ctypes.util.find_library("c") or ""
GLIBC = sys.platform.startswith("linux") and "libc" in LIBC
# Run in a fresh Python: where malloc puts a 7 MB array (below keep_freed_memory's 8 MB mmap threshold,
# far above glibc's default 128 kB) allocated right after `import core`, and what the heap keeps once it is freed.
PROBE = """
import ctypes, ctypes.util, json
import numpy as np
import core

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
before = libc.mallinfo2()
array = np.ones(7 << 20, dtype=np.uint8)
held = libc.mallinfo2()
del array
after = libc.mallinfo2()
print(json.dumps({"mapped": held.hblkhd - before.hblkhd, "heap_grew": held.arena - before.arena,
                  "heap_trimmed": held.arena - after.arena}))
"""


def malloc_probe(**env) -> dict:
    """PROBE's numbers in bytes, in an environment without malloc settings but `env`."""
    clean = {name: value for name, value in os.environ.items()
             if not name.startswith("MALLOC_") and name != "GLIBC_TUNABLES"}
    result = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, cwd=ROOT, capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout)


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_glibc_accepts_the_thresholds():
    assert memory.keep_freed_memory() is True


def test_an_explicit_malloc_setting_in_the_environment_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert memory.keep_freed_memory() is False


@pytest.mark.skipif(not (GLIBC and hasattr(ctypes.CDLL(LIBC), "mallinfo2")), reason="glibc 2.33+ (mallinfo2)")
def test_importing_core_sets_them_before_any_training():
    tuned = malloc_probe()
    assert tuned["mapped"] == 0 and tuned["heap_grew"] > 0  # served from the heap, not mapped from the kernel
    assert tuned["heap_trimmed"] == 0  # freed, and kept at the heap's top for the next array
    # The control: with malloc tuned by the environment, core leaves glibc's defaults, which map the array.
    assert malloc_probe(GLIBC_TUNABLES="glibc.malloc.perturb=0")["mapped"] >= 7 << 20
