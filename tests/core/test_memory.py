"""core.memory: malloc keeps training's freed mid-sized arrays (glibc), unless the environment says otherwise."""
import ctypes.util
import subprocess
import sys

import pytest

from core.native import memory


@pytest.mark.skipif(not sys.platform.startswith("linux") or "libc" not in (ctypes.util.find_library("c") or ""),
                    reason="glibc only")
def test_glibc_accepts_the_thresholds():
    assert memory.keep_freed_memory() is True


def test_an_explicit_malloc_setting_in_the_environment_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert memory.keep_freed_memory() is False


def test_importing_core_sets_them_before_any_training():
    code = "import core, core.native.memory, sys; sys.exit(0 if 'core.native.memory' in sys.modules else 1)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
