"""Fixtures of the kernel tests."""
import pytest


@pytest.fixture(params=["default", "avx2", "portable"])
def simd(request, monkeypatch):
    """The C code paths: the CPU's best (AVX-512 when it has it), AVX2 at most, and plain C."""
    if request.param == "default":
        monkeypatch.delenv("GLASSBOX_SIMD", raising=False)
    else:
        monkeypatch.setenv("GLASSBOX_SIMD", request.param)
    return request.param
