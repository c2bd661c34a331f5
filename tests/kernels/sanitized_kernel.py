"""Runs the attention tests (forward and backward), the layer-kernel tests and the shared thread
pool's test against a copy of the C kernel built with AddressSanitizer and
UndefinedBehaviorSanitizer; exits non-zero on any sanitizer report.

    python tests/kernels/sanitized_kernel.py [extra pytest arguments]

Called by .ci/run before the main test run. The checked kernel is built into a temporary
folder beside a copy of the `core` package, which is put first on the import path, so the
project's own core/native/_kernel is untouched. ASan must be the first library loaded, hence the
LD_PRELOAD of GCC's libasan; leaks are not checked (CPython keeps objects alive until exit).
"""
from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# build_kernels.py is a script at the project's root, not an installed module: run from its file
_build_kernels = runpy.run_path(str(ROOT / "build_kernels.py"))
compile_in, make_builder = _build_kernels["compile_in"], _build_kernels["make_builder"]

SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"]
TESTS = ["tests/kernels/test_attention.py", "tests/kernels/test_grouped_attention.py",
         "tests/kernels/test_attention_backward.py", "tests/kernels/test_layer_kernels.py",
         "tests/kernels/test_kernel_perf_accuracy.py", "tests/kernels/test_threads.py"]
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
}


def build(folder: Path) -> None:
    """folder/core: the package's Python files and a sanitized _kernel extension."""
    shutil.copytree(ROOT / "core", folder / "core", ignore=shutil.ignore_patterns("_kernel*", "__pycache__"))
    built = compile_in(folder / "build", make_builder(SANITIZE, SANITIZE))
    shutil.copy(built, folder / "core" / "native" / built.name)


def libasan() -> str:
    """GCC's ASan runtime (the compiler that cffi uses: $CC, else cc)."""
    compiler = os.environ.get("CC", "cc")
    path = subprocess.run([compiler, "-print-file-name=libasan.so"], capture_output=True, text=True,
                          check=True).stdout.strip()
    if not os.path.isabs(path):
        sys.exit(f"error: {compiler} has no libasan (install GCC's sanitizer runtime)")
    return path


def main(pytest_args: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="glassbox-sanitized-") as temp:
        folder = Path(temp)
        build(folder)
        env = {**os.environ, **SANITIZER_ENV, "LD_PRELOAD": libasan(),
               "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        env.pop("GLASSBOX_BACKEND", None)
        check = "import core.native.kernel as a, sys; sys.exit(0 if a._kernel and a._kernel.__file__.startswith(sys.argv[1]) else 1)"
        if subprocess.run([sys.executable, "-c", check, temp], env=env, cwd=temp).returncode != 0:
            print("error: the sanitized kernel did not load in place of core/native/_kernel", file=sys.stderr)
            return 1
        # cwd = the temporary folder: `python -m pytest` imports its `core` first. The project's root
        # is left off the import path (pythonpath = tests only, for tests/helpers): its core is not the copy.
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
                   "-c", str(ROOT / "pyproject.toml"), "-o", "pythonpath=tests", *[str(ROOT / test) for test in TESTS],
                   *pytest_args]
        return subprocess.run(command, env=env, cwd=temp).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
