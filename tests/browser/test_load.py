"""Load test: the real server (`streamlit run dashboard/app.py`, loopback, headless) with 8 concurrent
sessions: 6 learners changing prompts and pages, 2 training (one runs, the other waits in the
queue: GLASSBOX_MAX_TRAININGS=1, what a 2-core server gets by default).

Driven by Playwright with Debian's Chromium: one browser, one context per session (separate cookies
and websockets, so separate Streamlit sessions), the async API so that the sessions act at once.

1. The 6 learners browse for PHASE_SECONDS without trainings: each changes its prompt again and
   again and, every third change, goes to another page (sidebar links).
2. Two sessions start a whole-model training (1000 steps; batch 64 and 48): the first runs, the
   second shows its place in the queue. The learners browse for PHASE_SECONDS again.
3. Stop the first training from its sidebar: the second starts by itself (the hand-over time is
   measured); then stop it too. Each trained model is its session's model.

A redraw is the time from Enter in the prompt box until the page is done: the script has run (no
status widget, script state "notRunning", no stale element left), the page shows this prompt's
marker word, and every chart has drawn. Every prompt holds a word of its own (`zq<session>v<turn>`,
unknown to the toy model, so the page lists it in its notice): a page showing another session's
marker, a sidebar naming a trained model in a session that trained none, or a training page
showing the other trainer's settings fails the test.

Figures (p95 and median redraw with and without the trainings, page changes, training speed, queue
hand-over, machine load) go to test-artifacts/load.json and the test output; nothing is asserted
about them (the machine may be busy), only that every redraw finished within TIMEOUT_MS and that
the queue and the sessions behaved. Every loop has a count and a deadline.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_chromium, running_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.slow]
require_chromium()
async_api = pytest.importorskip("playwright.async_api")

BROWSING, TRAINING = 6, 2
PHASE_SECONDS = 20  # browsing without, then with the trainings
MAX_TURNS = 40  # prompt changes per session and phase, at most
TIMEOUT_MS = 90_000  # for one redraw, one page change, one click's effect (a busy machine)
SCENARIO_SECONDS = 420  # the whole scenario, at most
POLL_MS = 100
PAGES = ["Overview", "Next token and sampling", "Attention explorer"]  # pages with a prompt (and its notice)
PROMPTS = ["the sky is", "the dog can", "the cat is", "the sun is", "the bird can", "the fish is"]
BATCHES = (64, 48)  # one per trainer, so that each can tell its own run from the other's
MARKER = re.compile(r"zq(\d+)v\d+")
SIDEBAR = '[data-testid="stSidebar"]'

# True once the page is done after a prompt change or a page change: the milliseconds since Enter
# (or since the click) then. `marker` must be on the page, `title` in its heading.
DONE_JS = """([marker, title]) => {
    const app = document.querySelector('[data-testid="stApp"]');
    const main = document.querySelector('[data-testid="stMain"]');
    if (!app || !main || window.__since === undefined) return false;
    const heading = main.querySelector('h1');
    const done = app.getAttribute('data-test-script-state') === 'notRunning'
        && !document.querySelector('[data-testid="stStatusWidget"]')
        && !document.querySelector('[data-stale="true"]')
        && main.textContent.includes(marker)
        && (!title || (heading && heading.textContent.includes(title)))
        && [...main.querySelectorAll('.vega-embed')].every((chart) => chart.querySelector('canvas, svg'));
    return done ? Math.max(1, performance.now() - window.__since) : false;
}"""
# Stamp the moment of the next Enter key (prompt change) or click (page change).
STAMP_JS = """(event) => {
    window.__since = undefined;
    document.addEventListener(event, (e) => { if (event !== 'keydown' || e.key === 'Enter') window.__since = performance.now(); },
                              {capture: true, once: event !== 'keydown'});
}"""


def process_tree(root: int) -> list[int]:
    """`root` and every process below it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds of the server process and of everything else this test started (the browser)."""

    def __init__(self, url: str):
        port = url.rsplit(":", 1)[1]
        self.server = next(int(cmdline.parent.name) for cmdline in Path("/proc").glob("[0-9]*/cmdline")
                           if f"--server.port\0{port}\0" in cmdline.read_bytes().decode(errors="replace"))

    def read(self) -> tuple[float, float]:
        """(server, browser and driver)."""
        others = [pid for pid in process_tree(os.getpid()) if pid not in (os.getpid(), self.server)]
        return cpu_seconds([self.server]), cpu_seconds(others)


def marker(session: int, turn: int) -> str:
    return f"zq{session}v{turn}"


def prompt_text(session: int, turn: int) -> str:
    return f"{PROMPTS[(session + turn) % len(PROMPTS)]} {marker(session, turn)}"


def prompt_field(page):
    return page.get_by_label("Prompt", exact=True).and_(page.locator("input"))


async def text_of(page, selector: str = SIDEBAR) -> str:
    return await page.locator(selector).first.text_content() or ""


async def wait_done(page, mark: str, title: str = "", what: str = "redraw") -> float:
    """Milliseconds from the stamped event until the page is done (see DONE_JS)."""
    try:
        handle = await page.wait_for_function(DONE_JS, arg=[mark, title], polling=POLL_MS, timeout=TIMEOUT_MS)
    except async_api.TimeoutError:
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "load-timeout.png"))
        state = await page.evaluate("() => [document.querySelector('[data-testid=\"stApp\"]')?.getAttribute("
                                    "'data-test-script-state'), !!document.querySelector('[data-testid=\"stStatusWidget\"]'),"
                                    " document.querySelectorAll('[data-stale=\"true\"]').length]")
        raise AssertionError(f"{what} not done within {TIMEOUT_MS} ms (waiting for {mark!r} {title!r}; script state, "
                             f"status widget, stale elements: {state}; test-artifacts/load-timeout.png)") from None
    return float(await handle.json_value())


async def change_prompt(page, session: int, turn: int) -> float:
    """Type this session's next prompt and press Enter: the redraw in milliseconds."""
    field = prompt_field(page)
    await field.fill(prompt_text(session, turn))
    await page.evaluate(STAMP_JS, "keydown")
    await field.press("Enter")
    return await wait_done(page, marker(session, turn))


async def change_page(page, title: str, mark: str) -> float:
    """Go to the page `title` by its sidebar link: milliseconds until it is done."""
    await page.evaluate(STAMP_JS, "click")
    await page.locator(SIDEBAR).get_by_role("link", name=title).first.click()
    return await wait_done(page, mark, title, what=f"page change to {title}")


async def check_own_state(page, session: int, trained: bool = False) -> None:
    """The page shows only this session's marker, and its sidebar only its own model."""
    seen = {int(found) for found in MARKER.findall(await text_of(page, '[data-testid="stMain"]'))}
    assert seen <= {session}, f"session {session} sees the prompts of sessions {sorted(seen - {session})}"
    sidebar = await text_of(page)
    if not trained:
        assert "your trained model" not in sidebar and "Training run" not in sidebar, sidebar
    assert await page.locator('[data-testid="stException"]').count() == 0


async def browse(page, session: int, seconds: float, redraws: list[float], page_changes: list[float],
                 first_turn: int) -> int:
    """Change the prompt again and again (every third change, go to another page) for `seconds`,
    at most MAX_TURNS times: the next turn number."""
    deadline, turn = time.monotonic() + seconds, first_turn
    while time.monotonic() < deadline and turn < first_turn + MAX_TURNS:
        redraws.append(await change_prompt(page, session, turn))
        await check_own_state(page, session)
        if turn % 3 == 2:
            title = PAGES[(session + turn // 3) % len(PAGES)]
            if title not in await text_of(page, '[data-testid="stMain"] h1'):
                page_changes.append(await change_page(page, title, marker(session, turn)))
                await check_own_state(page, session)
        turn += 1
    return turn


async def open_session(browser, url: str, path: str, title: str):
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{url}/{path}")
    await page.evaluate("() => { window.__since = performance.now(); }")
    await wait_done(page, "", title, what=f"first drawing of {title}")
    return page


async def wait_text(page, pattern: str, what: str, selector: str = SIDEBAR) -> str:
    """Wait until the text of `selector` (the sidebar, by default) matches `pattern`: that text."""
    try:
        await page.wait_for_function("([pattern, selector]) => new RegExp(pattern).test("
                                     "document.querySelector(selector)?.textContent || '')", arg=[pattern, selector],
                                     polling=POLL_MS, timeout=TIMEOUT_MS)
    except async_api.TimeoutError:
        raise AssertionError(f"{what}: {selector} never matched {pattern!r}:\n{await text_of(page, selector)}") from None
    return await text_of(page, selector)


async def set_number(page, label: str, value: int) -> None:
    field = page.get_by_label(label, exact=True).and_(page.locator("input"))
    await field.fill(str(value))
    await page.evaluate(STAMP_JS, "keydown")
    await field.press("Enter")
    await wait_done(page, "", "Training", what=f"setting {label}")


async def start_training(page, batch: int, expected: str) -> str:
    await set_number(page, "Steps", 1000)
    await set_number(page, "Batch size", batch)
    await page.get_by_role("button", name="Start", exact=True).click()
    return await wait_text(page, expected, "starting a training")


async def press_in_sidebar(page, name: str) -> None:
    await page.locator(SIDEBAR).get_by_role("button", name=name, exact=True).click()


def phase_cpu(meter: CpuMeter, before: tuple[float, float], began: float) -> dict:
    """Cores used by the server and by the browser since `before` was read at `began`."""
    (server, browser), seconds = meter.read(), time.monotonic() - began
    return {"seconds": round(seconds, 1), "server_cores": round((server - before[0]) / seconds, 2),
            "browser_cores": round((browser - before[1]) / seconds, 2),
            "server_cpu_s": round(server - before[0], 1)}


def progress_figures(text: str) -> dict:
    step = re.search(r"step (\d+) of (\d+)", text)
    speed = re.search(r"([\d,]+) tokens/s", text)
    return {"step": int(step.group(1)) if step else None,
            "tokens_per_s": int(speed.group(1).replace(",", "")) if speed else None}


async def scenario(url: str) -> dict:
    found: dict = {"quiet": [], "busy": [], "pages_quiet": [], "pages_busy": []}
    meter = CpuMeter(url)
    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        learners = await asyncio.gather(*(open_session(browser, url, "", "Overview") for _ in range(BROWSING)))
        trainers = await asyncio.gather(*(open_session(browser, url, "training", "Training") for _ in range(TRAINING)))

        cpu, began = meter.read(), time.monotonic()
        turns = await asyncio.gather(*(browse(page, n, PHASE_SECONDS, found["quiet"], found["pages_quiet"], 0)
                                       for n, page in enumerate(learners)))
        found["cpu_quiet"] = phase_cpu(meter, cpu, began)

        first, second = trainers
        running = await start_training(first, BATCHES[0], r"Training run 1: step \d+")
        queued = await start_training(second, BATCHES[1], r"run 1 is waiting")
        found["queued_text"] = re.sub(r"\s+", " ", queued)
        assert "place 1 of 1 in the queue (1 of 1 trainings running" in found["queued_text"], found["queued_text"]
        found["progress_before"] = progress_figures(running)
        cpu, began = meter.read(), time.monotonic()
        await asyncio.gather(*(browse(page, n, PHASE_SECONDS, found["busy"], found["pages_busy"], turn)
                               for (n, page), turn in zip(enumerate(learners), turns)))
        found["cpu_busy"] = phase_cpu(meter, cpu, began)
        found["busy_seconds"] = time.monotonic() - began
        found["progress_after"] = progress_figures(await text_of(first))
        still_waiting = await text_of(second)
        assert "place 1 of 1" in still_waiting, f"the second training should still wait:\n{still_waiting}"
        main = await text_of(first, '[data-testid="stMain"]')  # its own run's settings, not the other's
        assert f"batch {BATCHES[0]}," in main and f"batch {BATCHES[1]}," not in main, main[:800]

        stopped = time.monotonic()
        await press_in_sidebar(first, "Stop")
        await wait_text(second, r"Training run 1: step \d+", "the queued training starting after the first stopped")
        found["handover_seconds"] = time.monotonic() - stopped
        main = await wait_text(second, r"Training run 1 \(", "the training page of the started run", '[data-testid="stMain"]')
        assert f"batch {BATCHES[1]}," in main and f"batch {BATCHES[0]}," not in main, main[:800]
        await second.wait_for_timeout(2000)
        await press_in_sidebar(second, "Stop")

        for number, page in zip((BROWSING, BROWSING + 1), trainers):
            sidebar = await wait_text(page, r"Model: your trained model \(run 1\)", "the stopped run becoming the model")
            assert "Training run" not in sidebar and "is waiting" not in sidebar, sidebar
            note = re.search(r"run 1: stopped after step (\d+): you pressed Stop", await wait_text(
                page, r"run 1: stopped after step \d+: you pressed Stop", "the stop note", '[data-testid="stMain"]'))
            found.setdefault("trained_steps", []).append(int(note.group(1)))
            # its own model draws its own prompt
            await page.get_by_role("link", name="Overview").first.click()
            await wait_done(page, "", "Overview", what="the trained model's overview")
            await change_prompt(page, number, 0)
            await check_own_state(page, number, trained=True)
        for number, page in enumerate(learners):  # nobody else has a trained model
            await check_own_state(page, number)
            assert "Model: default toy model (bundled)" in await text_of(page)
        await browser.close()
    return found


def summary(values: list[float]) -> dict:
    return {"count": len(values), "p95_ms": round(float(np.percentile(values, 95))) if values else None,
            "median_ms": round(float(np.median(values))) if values else None}


def test_eight_sessions_two_training(monkeypatch):
    monkeypatch.setenv("GLASSBOX_MAX_TRAININGS", "1")
    began, load_before = time.monotonic(), os.getloadavg()
    with running_dashboard() as url:
        found = asyncio.run(asyncio.wait_for(scenario(url), SCENARIO_SECONDS))
    assert found["quiet"] and found["busy"]
    before, after = found["progress_before"], found["progress_after"]
    figures = {
        "client": "Playwright, Debian's Chromium: one browser, one context per session",
        "sessions": BROWSING + TRAINING, "browsing": BROWSING, "training_sessions": TRAINING, "cores": os.cpu_count(),
        "max_trainings": 1, "phase_seconds": PHASE_SECONDS,
        "redraw_without_training": summary(found["quiet"]), "redraw_with_training": summary(found["busy"]),
        "page_change_without_training": summary(found["pages_quiet"]),
        "page_change_with_training": summary(found["pages_busy"]),
        "training": {"steps_during_busy_phase": (after["step"] or 0) - (before["step"] or 0),
                     "busy_phase_seconds": round(found["busy_seconds"], 1),
                     "tokens_per_s_last_shown": after["tokens_per_s"], "batch_size": BATCHES[0]},
        "server_cpu_s_per_interaction_without_training": round(
            found["cpu_quiet"]["server_cpu_s"] / (len(found["quiet"]) + len(found["pages_quiet"])), 3),
        "cpu_without_training": found["cpu_quiet"], "cpu_with_training": found["cpu_busy"],
        "queue": {"second_training_shown": re.search(r"run 1 is waiting.*?server\)\.", found["queued_text"]).group(0),
                  "handover_seconds": round(found["handover_seconds"], 1),
                  "trained_steps_when_stopped": found["trained_steps"]},
        "isolation": "every page showed only its own session's prompt marker; only the two trainers' sidebars "
                     "named a trained model, each its own run",
        "load_average_before": [round(value, 1) for value in load_before],
        "load_average_after": [round(value, 1) for value in os.getloadavg()],
        "total_seconds": round(time.monotonic() - began, 1),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "load.json").write_text(json.dumps(figures, indent=1) + "\n")
    print("\nload test:", json.dumps(figures, indent=1))
