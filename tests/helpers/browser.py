"""Running the real dashboard for the browser tests: `streamlit run dashboard/app.py` on a free local
port, and Debian's Chromium to drive it (never a browser download)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"


def require_chromium() -> None:
    """Skip the calling test module when Debian's Chromium is missing (call it at the module's top)."""
    if not CHROMIUM.exists():
        # CI installs it (.ci/run sets GLASSBOX_REQUIRE_BROWSER=1): there a missing browser is a failure.
        if os.environ.get("GLASSBOX_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)", pytrace=False)
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"the dashboard did not answer at {url} within {seconds} s")


@contextmanager
def running_dashboard(models_folder: Path | None = None, log_name: str = "server"):
    """`streamlit run dashboard/app.py` (the console script, as a user types it) on a free port: its
    URL. `models_folder` becomes the server's GLASSBOX_MODELS; the server's output goes to
    test-artifacts/<log_name>.log (a pipe nobody reads would stall the server once full)."""
    port = free_port()
    env = dict(os.environ, **({"GLASSBOX_MODELS": str(models_folder)} if models_folder else {}))
    command = [str(Path(sys.executable).parent / "streamlit"), "run", str(ROOT / "dashboard" / "app.py"),
               "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false"]
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / f"{log_name}.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
