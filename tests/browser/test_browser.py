"""The real dashboard in a real browser: `streamlit run dashboard/app.py` on a free local port,
driven by Playwright with Debian's Chromium (never a browser download).

Every page and every tab, with the default prompt, must show its title and its charts, no exception
box and no error message, and no chart or drawing wider than the page at 1280 px. All problems of a
page are collected and reported together, each naming the page, the tab and its screenshot in
test-artifacts/screenshots/ (<page>.png for the first tab, <page>--<tab>.png for the others, the
whole page at 1280 px wide). Every page is opened again on a GPT-2-small-shaped checkpoint (random
weights, GPT-2's vocabulary, picked in the sidebar from a temporary models folder): gpt2-<page>*.png.
The time the first tab takes to redraw after the prompt changes (toy model as "<page>", GPT-2-shaped
as "gpt2/<page>") is written to test-artifacts/redraw-times.json: recorded, never asserted. The
servers' output goes to test-artifacts/server*.log. With GLASSBOX_README_SCREENSHOTS=1 the test also
writes the README's small screenshots to dashboard/screenshots/.
"""
from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from helpers import ROOT
from helpers.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_chromium, running_dashboard
from helpers.gpt2 import GPT2_NAME as GPT2

from dashboard.navigation import ATTENTION_STEPS

pytestmark = pytest.mark.browser
require_chromium()
playwright_api = pytest.importorskip("playwright.sync_api")

SCREENSHOTS = ARTIFACTS / "screenshots"
README_SCREENSHOTS = ROOT / "dashboard" / "screenshots"
PAGES = {  # url path: (title, charts at least on its first tab)
    "": ("Overview", 1),
    "start_here": ("Start here", 0),
    "attention_steps": ("Attention step by step", 1),
    "block_steps": ("The block step by step", 1),
    "explorer": ("Attention explorer", 3),
    "sampling": ("Next token and sampling", 3),
    "practice": ("Practice", 0),
    "experiments": ("Experiments", 0),
    "training": ("Training", 3),
    "benchmark": ("Kernel benchmark", 0),  # its charts come with "Run benchmark" (pressed on the toy model)
    "glossary": ("Glossary", 0),
}
PAGE_IDS = [path or "overview" for path in PAGES]
README_PAGES = {  # url path: (file name, tab opened first, heading scrolled to the top of the README screenshot)
    "": ("overview", None, None), "attention_steps": ("attention", ATTENTION_STEPS.tabs.scores, "3. Scores"),
    "sampling": ("sampling", None, "Choosing one token"),
}
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
TIMEOUT_MS = 90_000
CHARTS_TIMEOUT_MS = 30_000  # for a page's charts to appear and draw
VIEWPORT = {"width": 1280, "height": 900}  # the narrowest window every figure must fit
# A prompt per page that no page has traced before on the GPT-2 server, so that each redraw
# includes the new trace, as when a learner types a prompt (the traces are shared between sessions).
GPT2_PROMPTS = {path: f"The dog can {verb}" for path, verb in zip(PAGES, (
    "run", "jump", "swim", "sing", "fly", "read", "cook", "dance", "climb", "write", "sleep"))}
# Every chart (Vega-Lite) wider than the page's content box, or than its column, or whose drawing
# overflows its own box; every other drawing (canvas, svg) wider than the page; a main area that
# scrolls sideways.
TOO_WIDE = """() => {
    const main = document.querySelector('[data-testid="stMain"]');
    const block = document.querySelector('[data-testid="stMainBlockContainer"]');
    const right = block.getBoundingClientRect().right - parseFloat(getComputedStyle(block).paddingRight) + 1;
    const headings = [...block.querySelectorAll('h1, h2, h3, h4, h5')];
    const under = (element) => headings.filter((heading) =>
        heading.compareDocumentPosition(element) & Node.DOCUMENT_POSITION_FOLLOWING).pop()?.textContent.trim() || "?";
    const charts = [...block.querySelectorAll('.vega-embed')].flatMap((chart, index) => {
        const drawing = chart.querySelector('canvas, svg');
        const edge = Math.max(chart.getBoundingClientRect().right, drawing ? drawing.getBoundingClientRect().right : 0);
        const overflow = chart.scrollWidth > chart.clientWidth + 1;
        const column = chart.closest('[data-testid="stColumn"]');
        const columnRight = column ? column.getBoundingClientRect().right + 8 : Infinity;  // within the gap between columns
        const top = Math.round(chart.getBoundingClientRect().top + main.scrollTop);
        const where = `chart ${index} (y=${top} px in the screenshot) under "${under(chart)}": right edge ${Math.round(edge)} px`;
        return edge > right || overflow ? [`${where} > ${Math.round(right)} px`
            + (overflow ? `, drawing ${chart.scrollWidth} px in a ${chart.clientWidth} px box` : "")]
            : edge > columnRight ? [`${where} past its column's ${Math.round(columnRight)} px (cut off or over the next column)`] : [];
    });
    const drawings = [...block.querySelectorAll('canvas, svg')].filter((drawing) =>
        !drawing.closest('.vega-embed') && drawing.getBoundingClientRect().width > 40
        && drawing.getBoundingClientRect().right > right).map((drawing) =>
        `${drawing.tagName.toLowerCase()} under "${under(drawing)}": right edge ${Math.round(drawing.getBoundingClientRect().right)} px > ${Math.round(right)} px`);
    const sideways = main.scrollWidth > main.clientWidth + 1 ? [`the page scrolls sideways (${main.scrollWidth} px > ${main.clientWidth} px)`] : [];
    return [...charts, ...drawings, ...sideways];
}"""
# True when every Vega-Lite chart on the page has drawn its canvas or svg.
CHARTS_DRAWN = "[...document.querySelectorAll('.vega-embed')].every((chart) => chart.querySelector('canvas, svg'))"


@pytest.fixture(scope="module")
def server():
    with running_dashboard() as url:
        yield url


@pytest.fixture(scope="module")
def gpt2_server(gpt2_models_dir):
    with running_dashboard(gpt2_models_dir, "server-gpt2") as url:
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
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{url}/{path}")
    page.wait_for_selector("h1")
    wait_idle(page)
    return page


@contextmanager
def opened(browser, url: str, path: str, name: str):
    """The page at `url`/`path` in a fresh tab (a session of its own), closed after; when the
    test fails on it, a screenshot test-artifacts/screenshots/failed-<name>.png first."""
    page = open_page(browser, url, path)
    try:
        yield page
    except Exception:
        with suppress(Exception):
            whole_page_screenshot(page, SCREENSHOTS / f"failed-{name}.png")
        raise
    finally:
        page.close()


def train_a_few_steps(page) -> None:
    steps = page.get_by_label("Steps", exact=True).and_(page.locator("input"))
    steps.fill("3")
    steps.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Start", exact=True).click()
    page.wait_for_selector("text=Every run of this session", timeout=TIMEOUT_MS)
    wait_idle(page)


def run_the_benchmark(page) -> int:
    """Press "Run benchmark" (the default grid, a few seconds): the charts the page then shows at least."""
    page.get_by_role("button", name="Run benchmark").click()
    page.get_by_text("Timed ").first.wait_for(timeout=TIMEOUT_MS)
    wait_idle(page)
    return 3


# [finished, state]: how many script runs the app has seen end, and the state of the current one, from
# the state of Streamlit's App component (read through React's fiber of the stApp element; the count
# is in no attribute). Watching the page's state attribute go to "running" and back can miss a run (CI
# once waited 90 s so on the Experiments page), and a new run's id comes before its "running" state.
SCRIPT_RUNS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    let fiber = app[Object.keys(app).find((key) => key.startsWith('__reactFiber'))];
    while (fiber && !(fiber.stateNode?.state && 'scriptRunFinishedSequence' in fiber.stateNode.state)) fiber = fiber.return;
    return fiber ? [fiber.stateNode.state.scriptRunFinishedSequence, fiber.stateNode.state.scriptRunState] : null;
}"""

# From the next Enter until more than `before` runs have ended and none runs, then one more animation
# frame: window.__redraw, in milliseconds.
WATCH_REDRAW = """(before) => {
    const scriptRuns = """ + SCRIPT_RUNS + """;
    window.__redraw = undefined;
    window.__enter = undefined;
    document.addEventListener('keydown', (event) => {
        if (event.key === 'Enter') window.__enter = performance.now(); }, {capture: true, once: true});
    const watch = () => {
        const [finished, state] = scriptRuns();
        if (window.__enter !== undefined && finished > before && state === 'notRunning')
            requestAnimationFrame(() => { window.__redraw = performance.now() - window.__enter; });
        else requestAnimationFrame(watch);
    };
    requestAnimationFrame(watch);
}"""


def change_prompt(page, text: str) -> float:
    """Type a new prompt; milliseconds from pressing Enter until the script has run again and the
    browser has drawn the result (checked at every animation frame, then one more frame)."""
    field = page.get_by_label("Prompt", exact=True).and_(page.locator("input"))
    field.fill(text)
    before = page.evaluate(SCRIPT_RUNS)
    assert before is not None, "Streamlit's App component (its scriptRunFinishedSequence) was not found: see SCRIPT_RUNS"
    page.evaluate(WATCH_REDRAW, before[0])
    field.press("Enter")
    try:
        page.wait_for_function("window.__redraw !== undefined", timeout=TIMEOUT_MS)
    except playwright_api.TimeoutError:
        enter = page.evaluate("window.__enter")
        raise AssertionError(f"no redraw within {TIMEOUT_MS} ms of Enter: runs ended and state {before} before, "
                             f"{page.evaluate(SCRIPT_RUNS)} now; Enter seen: {enter is not None}; "
                             f"prompt field {field.input_value()!r}") from None
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


def problems(page, title: str, charts: int) -> list[str]:
    """What is wrong with the page as drawn (after waiting for its charts): another title, fewer than
    `charts` charts, an exception box, an error message, a chart or drawing wider than the page."""
    found = []
    heading = page.locator("h1").first.inner_text().strip()
    if heading != title:
        found.append(f"title {heading!r} instead of {title!r}")
    try:
        page.wait_for_function(f"document.querySelectorAll('.vega-embed').length >= {charts} && {CHARTS_DRAWN}",
                               timeout=CHARTS_TIMEOUT_MS)
    except playwright_api.TimeoutError:
        found.append(f"{page.locator('.vega-embed').count()} charts on the page, drawn or not; at least {charts} expected")
    found += [f"exception box: {text[:400]}" for text in page.get_by_test_id("stException").all_inner_texts()]
    found += [f"error message: {text[:400]}" for text in page.get_by_test_id("stAlertContentError").all_inner_texts()]
    found += [f"too wide at {VIEWPORT['width']} px: {text}" for text in page.evaluate(TOO_WIDE)]
    return found


def check_page(page, title: str, charts: int) -> None:
    found = problems(page, title, charts)
    assert not found, "\n".join(found)


def tab_names(page) -> list[str]:
    return [tab.inner_text().strip() for tab in page.get_by_role("tab").all()]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def visit_every_tab(page, name: str, title: str, charts: int) -> list[str]:
    """Each tab of the page in turn, the first as it opened (with at least `charts` charts): a
    screenshot of each (<name>.png, <name>--<tab>.png) and its problems, each line naming the page,
    the tab and the screenshot. Ends on the first tab again."""
    tabs = tab_names(page)
    found = []
    for index, tab in enumerate(tabs or [None]):
        if index:
            open_tab(page, tab)
        shot = f"{name}--{slug(tab)}.png" if index else f"{name}.png"
        tab_problems = problems(page, title, 0 if index else charts)
        whole_page_screenshot(page, SCREENSHOTS / shot)
        found += [f"{name}, tab {tab or '(none)'!r} ({shot}): {problem}" for problem in tab_problems]
    if len(tabs) > 1:
        open_tab(page, tabs[0])
    return found


def redraw(page, name: str, title: str, charts: int, prompt: str) -> tuple[float, list[str]]:
    """Change the prompt on the open tab: the redraw's milliseconds, and the problems after it."""
    milliseconds = change_prompt(page, prompt)
    return round(milliseconds, 1), [f"{name}, after the prompt changed to {prompt!r}: {problem}"
                                    for problem in problems(page, title, charts)]


def pick_model(page, name: str) -> None:
    """Choose `name` in the sidebar's model picker (the select box labelled "Model")."""
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stSelectbox").filter(has=page.get_by_text("Model", exact=True)).click()
    page.get_by_role("option", name=name, exact=True).click()
    wait_idle(page)
    assert f"Model: {name}" in page.get_by_test_id("stSidebar").inner_text()


@pytest.mark.parametrize("path", list(PAGES), ids=PAGE_IDS)
def test_every_tab_is_clean_and_the_first_redraws(server, browser, redraw_times, path):
    """Every tab of the page with the default prompt: no exception box or error message, charts
    within the page at 1280 px, a screenshot; then the first tab's redraw after a prompt change."""
    title, charts = PAGES[path]
    name = path or "overview"
    with opened(browser, server, path, name) as page:
        if path == "training":
            train_a_few_steps(page)
        if path == "benchmark":
            charts = run_the_benchmark(page)
        found = visit_every_tab(page, name, title, charts)
        if os.environ.get("GLASSBOX_README_SCREENSHOTS") and path in README_PAGES:
            readme_screenshot(page, *README_PAGES[path])
            if tab_names(page):
                open_tab(page, tab_names(page)[0])
        redraw_times[name], after = redraw(page, name, title, charts, "the dog can")
        assert not found + after, "\n".join(found + after)


@pytest.mark.parametrize("path", list(PAGES), ids=PAGE_IDS)
def test_every_tab_on_a_gpt2_shaped_checkpoint(gpt2_server, browser, redraw_times, path):
    """The same on GPT-2 small's shapes (picked in the sidebar), and the first tab's redraw after a
    prompt change measured with a prompt no page has traced yet (the target is under 1 s; recorded, not asserted).
    The training page says why it does not train this model."""
    title, charts = PAGES[path]
    name = f"gpt2-{path or 'overview'}"
    with opened(browser, gpt2_server, path, name) as page:
        pick_model(page, GPT2)
        if path == "training":
            charts = 0
            assert page.get_by_text("Training is not offered for this model").count() == 1
        found = visit_every_tab(page, name, title, charts)
        redraw_times[f"gpt2/{path or 'overview'}"], after = redraw(page, name, title, charts, GPT2_PROMPTS[path])
        assert not found + after, "\n".join(found + after)


def test_a_step_tab_draws_its_step_and_stays_open_when_the_prompt_changes(server, browser):
    page = open_page(browser, server, "attention_steps")
    try:
        open_tab(page, ATTENTION_STEPS.tabs.softmax)
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
    with running_dashboard(log_name="server-deep-link") as url:
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
        page.get_by_role("button", name="Start", exact=True).click()
        sidebar = page.get_by_test_id("stSidebar")  # the training runs in the background; its progress is here
        sidebar.get_by_text(re.compile(r"step [1-9]\d* of 1000")).first.wait_for(timeout=TIMEOUT_MS)
        sidebar.get_by_role("button", name="Stop", exact=True).click()
        notice = page.get_by_text(re.compile(r"stopped after step \d+: you pressed Stop"))
        notice.first.wait_for(timeout=TIMEOUT_MS)
        wait_idle(page)
        stopped_at = int(re.search(r"after step (\d+)", notice.first.inner_text()).group(1))
        assert 0 < stopped_at < 1000
        assert "Model: your trained model" in sidebar.inner_text()
        assert page.get_by_test_id("stException").count() == 0
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


def test_a_32_token_prompt_s_figures_fit_the_page(server, browser):
    """Issue 14: step 3's masked heatmap and step 7's PCA pair with a context-filling prompt stay
    within the page at 1280 px, in every tab of the step-by-step page."""
    page = open_page(browser, server, "attention_steps")
    try:
        change_prompt(page, " ".join(["the sky is blue ."] * 7))
        found = visit_every_tab(page, "attention_steps-32-tokens", "Attention step by step", 1)
        assert not found, "\n".join(found)
    finally:
        page.close()
