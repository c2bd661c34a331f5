"""The C kernels' extension (core.native._kernel, built by build_kernels.py), which attention backend
runs, and the attention kernel's calls.

The extension is optional: built without a C compiler, every caller runs its NumPy reference
instead, after one warning saying what to install.
"""
from __future__ import annotations

import math
import os
import warnings

import numpy as np

try:
    from core.native import _kernel
except ImportError:  # built without a C compiler: the NumPy fallback serves
    _kernel = None
    warnings.warn(
        "Glassbox's C attention kernel is not built, so the slower NumPy fallback is used. "
        "Install a C compiler (Debian/Ubuntu: apt install build-essential; macOS: xcode-select --install) "
        "and reinstall with `pip install -e .` (or run `python build_kernels.py`).",
        RuntimeWarning,
        stacklevel=2,
    )


# the extension's two halves for the other wrappers (core.native.layers): cffi's `ffi` (buffers,
# pointers) and `lib` (the C functions); None when it is not built
ffi, lib = (None, None) if _kernel is None else (_kernel.ffi, _kernel.lib)

BACKENDS = ("c", "numpy")
_C_TYPES = {np.dtype(np.float32): "float[]", np.dtype(np.float64): "double[]"}  # cffi's view of each dtype
_FORWARD = {} if _kernel is None else {np.dtype(np.float32): _kernel.lib.gb_attention_forward_f32,
                                       np.dtype(np.float64): _kernel.lib.gb_attention_forward_f64}
# mirrors the C kernels' error codes (kernels/attention.h GB_ERR_*)
_ERROR_MESSAGES = {
    1: "a required pointer was NULL",
    2: "a size was not positive",
    3: "out of memory for a work buffer",
}


def available_backends() -> tuple[str, ...]:
    """The backends this install can run: ("c", "numpy") when the kernel is built."""
    return BACKENDS if _kernel is not None else ("numpy",)


def default_backend() -> str:
    """C when built, else NumPy; GLASSBOX_BACKEND=numpy (or c) in the environment overrides.
    Read on every call, so that a test or a benchmark can switch it while the process runs."""
    forced = os.environ.get("GLASSBOX_BACKEND", "").strip().lower()
    if forced:
        return check_backend(forced)
    return "c" if _kernel is not None else "numpy"


def check_backend(backend: str) -> str:
    """`backend` when it is one this install can run; ValueError (unknown) or RuntimeError (not built)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose one of {BACKENDS}")
    if backend == "c" and _kernel is None:
        raise RuntimeError(
            "the C attention kernel is not built: install a C compiler and run `pip install -e .` "
            "(or `python build_kernels.py` in the project root), or use backend='numpy'"
        )
    return backend


def _c_array(array: np.ndarray) -> np.ndarray:
    """`array` as the kernel reads it: C-contiguous and aligned for its dtype (a copy only when
    it is not, e.g. a float32 view at an odd byte offset)."""
    flags = array.flags
    return array if flags.c_contiguous and flags.aligned else np.require(array, requirements=["C", "A"])


def _pointer(array: np.ndarray | None):
    """A cffi pointer to a C-contiguous float array's data (NULL for None).

    ffi.from_buffer costs a fraction of a microsecond, several times less than
    going through array.ctypes.data: it matters for tiny calls."""
    ffi = _kernel.ffi
    if array is None:
        return ffi.NULL
    return ffi.from_buffer(_C_TYPES[array.dtype], array)


def kernel_info() -> dict:
    """The C kernel's code path (its SIMD flavour) and the threads a large call runs on
    (GLASSBOX_NUM_THREADS, default the cores this process may use); None for both when not built."""
    if _kernel is None:
        return {"code_path": None, "threads": None}
    return {"code_path": _kernel.ffi.string(_kernel.lib.gb_forward_code_path()).decode(),
            "threads": int(_kernel.lib.gb_forward_thread_count())}


def c_forward(q, k, v, mask, causal, scale, return_weights, sizes):
    """The C kernel's attention on checked inputs (see core.model.attention): (out, weights or None)."""
    lead, lq, lk, d, dv, kv_group = sizes
    batch = math.prod(lead)
    # the kernel sees flat aligned C-contiguous buffers: [B, Lq, D], [B / kv_group, Lk, D], [B / kv_group, Lk, Dv]
    # (no reshape needed; grouped heads are the kernel's index b / kv_group, never a repeat of k and v)
    q, k, v = _c_array(q), _c_array(k), _c_array(v)
    out = np.empty(lead + (lq, dv), q.dtype)
    weights = np.empty(lead + (lq, lk), q.dtype) if return_weights else None
    ffi = _kernel.ffi
    mask_ptr, mask_strides = ffi.NULL, (0, 0, 0)
    if mask is not None:
        mask3 = mask.reshape(batch, lq, lk)  # stays a strided view when the broadcast allows
        mask_ptr = ffi.cast("const uint8_t *", mask3.ctypes.data)
        mask_strides = mask3.strides  # bytes == elements for one-byte booleans
    c_type, from_buffer = _C_TYPES[q.dtype], ffi.from_buffer  # looked up once: this path runs for tiny calls too
    status = _FORWARD[q.dtype](
        from_buffer(c_type, out), ffi.NULL if weights is None else from_buffer(c_type, weights),
        from_buffer(c_type, q), from_buffer(c_type, k), from_buffer(c_type, v),
        mask_ptr, *mask_strides, causal, scale, batch, kv_group, lq, lk, d, dv,
    )
    _raise_for_status(status)
    return out, weights


def _raise_for_status(status: int) -> None:
    if status != 0:
        raise RuntimeError(f"C attention kernel failed: {_ERROR_MESSAGES.get(status, f'error code {status}')}")


def c_backward(d_out, q, k, v, weights, scale, sizes):
    """The C kernel's attention gradients (d_q, d_k, d_v) on checked inputs."""
    lead, lq, lk, d, dv, _ = sizes  # k and v have q's heads: attention_backward refuses grouped ones
    batch = math.prod(lead)
    inputs = [_c_array(array) for array in (d_out, q, k, v, weights)]
    d_q, d_k, d_v = (np.empty_like(array) for array in inputs[1:4])
    lib = _kernel.lib
    backward = lib.gb_attention_backward_f32 if q.dtype == np.float32 else lib.gb_attention_backward_f64
    status = backward(_pointer(d_q), _pointer(d_k), _pointer(d_v), *map(_pointer, inputs),
                      float(scale), batch, lq, lk, d, dv)
    _raise_for_status(status)
    return d_q, d_k, d_v
