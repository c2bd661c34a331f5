"""cffi builder (API, out-of-line mode) for the C kernels in kernels/ (attention and training layers).

It compiles every kernels/*.c into one extension; the public headers in HEADERS are what Python
sees (cffi's cdef). The rest of kernels/ is the C side's own: internal headers (threads.h, the
one thread pool; cpu.h, the one SIMD switch) and the template bodies (*.inc) that the .c files
include once per element type or code path.

`pip install .` / `pip install -e .` run it through setup.py's cffi_modules;
`python build_kernels.py` builds core/native/_kernel in place, for people changing the C code.
The extension is optional: without a C compiler the install still succeeds and
core.attention falls back to NumPy (with a warning saying what to install).
"""
import os
import shutil
import sys
import tempfile
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent
KERNELS = ROOT / "kernels"
HEADERS = [KERNELS / "attention.h", KERNELS / "layers.h", KERNELS / "matvec.h"]  # the exported API


def _cdef_from_header(text: str) -> str:
    """The header's declarations, minus the preprocessor lines cffi cannot parse."""
    skipped = ("#ifndef", "#endif", "#include", "#define GLASSBOX")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(skipped))


COMPILE_ARGS = ["-O3", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-fno-fast-math"]  # clock_gettime, sched_getaffinity


def make_builder(extra_compile_args=(), extra_link_args=()) -> FFI:
    """The kernel's cffi builder; the extra flags are for checked builds (tests/sanitized_kernel.py)."""
    builder = FFI()
    builder.cdef("\n".join(_cdef_from_header(header.read_text()) for header in HEADERS))
    builder.set_source(
        "core.native._kernel",
        "\n".join(f'#include "{header.name}"' for header in HEADERS),
        sources=[str(path.relative_to(ROOT)) for path in sorted(KERNELS.glob("*.c"))],
        include_dirs=[str(KERNELS.relative_to(ROOT))],
        extra_compile_args=COMPILE_ARGS + list(extra_compile_args),
        extra_link_args=["-lpthread", *extra_link_args],
        optional=True,
        # The same file name as `python build_kernels.py` writes (core/_kernel.cpython-3XX-*.so), so an
        # in-place build never shadows a newer one from pip (cffi defaults to an .abi3.so under pip).
        py_limited_api=False,
    )
    return builder


ffibuilder = make_builder()

def compile_in(folder: Path, builder: FFI, verbose: bool = False) -> Path:
    """Builds `builder`'s extension inside `folder` (beside a copy of kernels/, as the source paths
    are relative) and returns its path. Never in the project root: there cffi's build step reads
    pyproject.toml through the installed setuptools, which before 77 rejects its license string."""
    try:
        import setuptools  # noqa: F401  (cffi compiles through it; Python 3.12+ has no distutils)
    except ImportError:
        sys.exit("error: building the kernel needs setuptools (Python 3.12+ venvs have none): pip install setuptools")
    shutil.copytree(KERNELS, folder / "kernels")
    return Path(folder, builder.compile(tmpdir=str(folder), verbose=verbose))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="glassbox-build-") as temp:
        built = compile_in(Path(temp), ffibuilder, verbose=True)
        target = ROOT / "core" / "native" / built.name
        shutil.copy(built, target.with_name(built.name + ".partial"))
        # a rename, not a copy over: a process that has the old extension loaded keeps its file
        # (writing into it in place crashes every Python process using it)
        os.replace(target.with_name(built.name + ".partial"), target)
        print(f"built {Path('core', 'native', built.name)}")
