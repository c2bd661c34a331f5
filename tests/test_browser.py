"""The real dashboard in a real browser: `streamlit run dashboard/app.py` on a free local port,
driven by Playwright with Debian's Chromium (never a browser download).

Every page must show its title and its charts and no exception box; a screenshot of each is saved
to test-artifacts/screenshots/. The time a page takes to redraw after the prompt changes is
written to test-artifacts/redraw-times.json. With GLASSBOX_README_SCREENSHOTS=1 the test also
writes the README's small screenshots to dashboard/screenshots/.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    # CI installs it (.ci/run sets GLASSBOX_REQUIRE_BROWSER=1): there a missing browser is a failure.
    if os.environ.get("GLASSBOX_REQUIRE_BROWSER"):
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)", pytrace=False)
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"
README_SCREENSHOTS = ROOT / "dashboard" / "screenshots"
PAGES = {  # url path: (title, charts at least)
    "": ("Overview", 1),
    "attention_steps": ("Attention step by step", 1),
    "explorer": ("Attention explorer", 3),
    "sampling": ("Next token and sampling", 3),
    "training": ("Training", 3),
    "benchmark": ("Kernel benchmark", 3),
}
README_PAGES = {  # url path: (file name, tab opened first, heading scrolled to the top of the README screenshot)
    "": ("overview", None, None), "attention_steps": ("attention", "3. Scores", "3. Scores"),
    "sampling": ("sampling", None, "Choosing one token"),
}
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
TIMEOUT_MS = 90_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{process.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"the dashboard did not answer at {url} within {seconds} s")


@contextmanager
def running_dashboard():
    """`streamlit run dashboard/app.py` (the console script, as a user types it) on a free port: its URL."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "streamlit"), "run", str(ROOT / "dashboard" / "app.py"),
               "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def server():
    with running_dashboard() as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def redraw_times():
    times = {}
    yield times
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "redraw-times.json").write_text(json.dumps(times, indent=1) + "\n")
    print("\nredraw after a prompt change (ms):", json.dumps(times))


def wait_idle(page) -> None:
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
    page.wait_for_timeout(300)  # a rerun may follow (st.rerun after training)
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)


def open_page(browser, url: str, path: str):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{url}/{path}")
    page.wait_for_selector("h1")
    wait_idle(page)
    return page


def train_a_few_steps(page) -> None:
    steps = page.get_by_label("Steps", exact=True).and_(page.locator("input"))
    steps.fill("3")
    steps.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Start").click()
    page.wait_for_selector("text=Every run of this session", timeout=TIMEOUT_MS)
    wait_idle(page)


def change_prompt(page, text: str) -> float:
    """Type a new prompt; milliseconds from pressing Enter until the script has run again and the
    browser has drawn the result (script state back to idle, then two animation frames)."""
    field = page.get_by_label("Prompt", exact=True).and_(page.locator("input"))
    field.fill(text)
    page.evaluate("""(field) => {
        const app = document.querySelector('[data-testid="stApp"]');
        window.__redraw = undefined;
        let start = null, running = false;
        field.addEventListener('keydown', (event) => { if (event.key === 'Enter') start = performance.now(); },
                               {capture: true, once: true});
        const watcher = new MutationObserver(() => {
            const state = app.getAttribute('data-test-script-state');
            if (state === 'running') running = true;
            else if (running && state === 'notRunning') {
                watcher.disconnect();
                requestAnimationFrame(() => requestAnimationFrame(() => {
                    window.__redraw = performance.now() - start;
                }));
            }
        });
        watcher.observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
    }""", field.element_handle())
    field.press("Enter")
    page.wait_for_function("window.__redraw !== undefined", timeout=TIMEOUT_MS)
    assert field.input_value() == text
    return page.evaluate("window.__redraw")


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    wait_idle(page)


def readme_screenshot(page, name: str, tab: str | None, heading: str | None) -> None:
    """One window's worth of the page (after opening `tab`), starting at `heading`, for the README."""
    if tab:
        open_tab(page, tab)
    if heading:
        page.get_by_role("heading", name=heading).first.evaluate("(element) => element.scrollIntoView()")
        page.wait_for_timeout(500)
    README_SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(README_SCREENSHOTS / f"{name}.png"))


def whole_page_screenshot(page, path: Path) -> None:
    """The page from top to bottom (Streamlit scrolls inside its main area, so grow the window)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": min(max(height, viewport["height"]), 12_000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))
    page.set_viewport_size(viewport)


def check_page(page, title: str, charts: int) -> None:
    assert page.locator("h1").first.inner_text().strip() == title
    page.wait_for_function(f"document.querySelectorAll('.vega-embed').length >= {charts}", timeout=TIMEOUT_MS)
    assert page.locator('[data-testid="stException"]').count() == 0


@pytest.mark.parametrize("path", list(PAGES))
def test_page_renders_and_redraws(server, browser, redraw_times, path):
    title, charts = PAGES[path]
    page = open_page(browser, server, path)
    try:
        if path == "training":
            train_a_few_steps(page)
        check_page(page, title, charts)
        name = path or "overview"
        if os.environ.get("GLASSBOX_README_SCREENSHOTS") and path in README_PAGES:
            readme_screenshot(page, *README_PAGES[path])
        whole_page_screenshot(page, ARTIFACTS / "screenshots" / f"{name}.png")
        redraw_times[name] = round(change_prompt(page, "the dog can"), 1)
        check_page(page, title, 1)
    finally:
        page.close()


def test_a_step_tab_draws_its_step_and_stays_open_when_the_prompt_changes(server, browser):
    page = open_page(browser, server, "attention_steps")
    try:
        open_tab(page, "4. Softmax")
        heading = page.get_by_role("heading", name="4. Softmax, the stable way")
        heading.wait_for()
        check_page(page, "Attention step by step", 1)
        change_prompt(page, "the dog can")
        heading.wait_for()
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()


def test_a_deep_link_opened_first_gets_the_whole_app(browser):
    """The first page a fresh server is asked for is not the main one: it must still run through
    app.py (shared sidebar, every page in the navigation), which a pages/ folder beside app.py
    would break (see dashboard/app.py)."""
    with running_dashboard() as url:
        page = open_page(browser, url, "explorer")
        try:
            check_page(page, "Attention explorer", 3)
            navigation = page.get_by_test_id("stSidebarNav").inner_text()
            assert all(title in navigation for title, _ in PAGES.values())
            assert page.get_by_label("Prompt", exact=True).count() == 1
        finally:
            page.close()


def test_stop_keeps_what_training_learned_so_far(server, browser):
    page = open_page(browser, server, "training")
    try:
        steps = page.get_by_label("Steps", exact=True).and_(page.locator("input"))
        steps.fill("1000")
        steps.press("Enter")
        wait_idle(page)
        page.get_by_role("button", name="Start").click()
        page.get_by_text(re.compile(r"Step \d+ of 1000")).first.wait_for(timeout=TIMEOUT_MS)
        page.get_by_role("button", name="Stop").click()
        notice = page.get_by_text(re.compile(r"Training stopped after step \d+"))
        notice.wait_for(timeout=TIMEOUT_MS)
        stopped_at = int(re.search(r"after step (\d+)", notice.inner_text()).group(1))
        assert 0 < stopped_at < 1000
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()


def test_charts_offer_a_png_download(server, browser):
    page = open_page(browser, server, "")
    try:
        chart = page.locator(".vega-embed").first
        chart.hover()
        page.get_by_role("button", name="Download as PNG").wait_for(timeout=10_000)
    finally:
        page.close()


def test_charts_offer_an_svg_download(server, browser):
    """The button under a chart renders it to SVG when clicked, and the browser saves the file."""
    page = open_page(browser, server, "")
    try:
        with page.expect_download(timeout=30_000) as download:
            page.get_by_role("button", name="Save as SVG").first.click()
        assert download.value.suggested_filename == "the-10-most-likely-next-tokens.svg"
        svg = Path(download.value.path()).read_text(encoding="utf-8")
        assert svg.startswith("<svg") and "The 10 most likely next tokens" in svg
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()
