"""cffi builder (API, out-of-line mode) for the C attention kernels in kernels/.

`pip install .` / `pip install -e .` run it through setup.py's cffi_modules;
`python build_kernels.py` builds core/_kernel in place, for people changing the C code.
The extension is optional: without a C compiler the install still succeeds and
core.attention falls back to NumPy (with a warning saying what to install).
"""
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent
KERNELS = ROOT / "kernels"
HEADER = KERNELS / "attention.h"


def _cdef_from_header(text: str) -> str:
    """The header's declarations, minus the preprocessor lines cffi cannot parse."""
    skipped = ("#ifndef", "#endif", "#include", "#define GLASSBOX")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(skipped))


ffibuilder = FFI()
ffibuilder.cdef(_cdef_from_header(HEADER.read_text()))
ffibuilder.set_source(
    "core._kernel",
    '#include "attention.h"',
    sources=[str(path.relative_to(ROOT)) for path in sorted(KERNELS.glob("*.c"))],
    include_dirs=[str(KERNELS.relative_to(ROOT))],
    extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-fno-fast-math"],
    extra_link_args=["-lpthread"],
    optional=True,
    # The same file name as `python build_kernels.py` writes (core/_kernel.cpython-3XX-*.so), so an
    # in-place build never shadows a newer one from pip (cffi defaults to an .abi3.so under pip).
    py_limited_api=False,
)

if __name__ == "__main__":
    import os

    os.chdir(ROOT)
    ffibuilder.compile(verbose=True)
