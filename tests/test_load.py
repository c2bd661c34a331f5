"""Load test: the real server (`streamlit run dashboard/app.py`, loopback, headless) with 8 concurrent
sessions for about a minute: 6 learners changing prompts and pages, 2 training (one runs, the other
waits in the queue: GLASSBOX_MAX_TRAININGS=1, what a 2-core server gets by default).

Driven by Playwright with Debian's Chromium (one browser, a context per session, the async API so
that the sessions act at the same time). Measures the redraw after a prompt change (Enter until the
script has run and the browser has drawn it) for the browsing sessions without and with the
trainings, checks the queue (place shown, cancel, stop from the sidebar) and that no session sees
another's model or prompt. Figures go to test-artifacts/load.json and the test output; nothing is
asserted about them (the machine may be busy), only that every redraw finished.
"""
from __future__ import annotations

import asyncio
import json
import os
import time

import numpy as np
import pytest
from test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, IDLE, running_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.slow]
async_api = pytest.importorskip("playwright.async_api")

BROWSING, TRAINING = 6, 2
PHASE_SECONDS = 22  # browsing without, then with the trainings
TIMEOUT_MS = 60_000
PAGES = ["Overview", "Next token and sampling", "Attention explorer"]
PROMPTS = ["the sky is", "the dog can", "the cat is", "the sun is", "the bird can", "the fish is"]

REDRAW_JS = """(field) => {
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
            // two animation frames = drawn; a page the browser does not paint gets no frames, so a
            // timer ends the wait there (window.__unpainted counts those redraws)
            const done = (painted) => {
                if (window.__redraw !== undefined) return;
                window.__redraw = performance.now() - start;
                if (!painted) window.__unpainted = (window.__unpainted || 0) + 1;
            };
            requestAnimationFrame(() => requestAnimationFrame(() => done(true)));
            setTimeout(() => done(false), 2000);
        }
    });
    watcher.observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


async def wait_idle(page) -> None:
    await page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
    await page.wait_for_timeout(300)
    await page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)


async def open_session(browser, url: str, path: str = ""):
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{url}/{path}")
    await page.wait_for_selector("h1")
    await wait_idle(page)
    return page


def prompt_field(page):
    return page.get_by_label("Prompt", exact=True).and_(page.locator("input"))


async def change_prompt(page, text: str) -> float:
    """Milliseconds from Enter in the prompt box until the page has run and been drawn."""
    field = prompt_field(page)
    await field.fill(text)
    await page.evaluate(REDRAW_JS, await field.element_handle())
    await field.press("Enter")
    try:
        await page.wait_for_function("window.__redraw !== undefined", timeout=TIMEOUT_MS)
    except async_api.TimeoutError:
        state = await page.get_attribute('[data-testid="stApp"]', "data-test-script-state")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "load-timeout.png"))
        raise AssertionError(f"no redraw within {TIMEOUT_MS} ms after the prompt {text!r} (script state {state}; "
                             "screenshot test-artifacts/load-timeout.png)") from None
    assert await field.input_value() == text  # this session's prompt, nobody else's
    return await page.evaluate("window.__redraw")


async def browse(page, number: int, seconds: float, times: list[float]) -> None:
    """Change the prompt again and again; every third change, go to another page (sidebar link)."""
    deadline, turn = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        turn += 1
        text = PROMPTS[(number + turn) % len(PROMPTS)]
        if text == await prompt_field(page).input_value():  # an unchanged prompt does not rerun the page
            continue
        times.append(await change_prompt(page, text))
        if turn % 3 == 0:
            await page.get_by_role("link", name=PAGES[(number + turn // 3) % len(PAGES)]).first.click()
            await wait_idle(page)


async def sidebar_text(page) -> str:
    return await page.locator('[data-testid="stSidebar"]').inner_text()


async def start_training(page) -> None:
    for label, value in (("Steps", "1000"), ("Batch size", "64")):
        field = page.get_by_label(label, exact=True).and_(page.locator("input"))
        await field.fill(value)
        await field.press("Enter")
        await wait_idle(page)
    await page.get_by_role("button", name="Start", exact=True).click()
    await page.wait_for_function("document.querySelector('[data-testid=\"stSidebar\"]').innerText"
                                 ".match(/Training run 1|run 1 is waiting/)", timeout=TIMEOUT_MS)


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


async def scenario(url: str) -> dict:
    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        learners = [await open_session(browser, url) for _ in range(BROWSING)]
        trainers = [await open_session(browser, url, "training") for _ in range(TRAINING)]
        quiet, busy = [], []
        await asyncio.gather(*(browse(page, n, PHASE_SECONDS, quiet) for n, page in enumerate(learners)))

        await start_training(trainers[0])
        await start_training(trainers[1])
        first, second = await sidebar_text(trainers[0]), await sidebar_text(trainers[1])
        assert "Training run 1" in first, first
        assert "waiting" in second and "place 1 of 1" in second, second  # queued behind the first

        await asyncio.gather(*(browse(page, n, PHASE_SECONDS, busy) for n, page in enumerate(learners)))
        progress = await sidebar_text(trainers[0])
        still_waiting = "place 1 of 1" in await sidebar_text(trainers[1])

        await trainers[1].get_by_role("button", name="Cancel", exact=True).click()
        await trainers[1].wait_for_selector("text=taken out of the queue", timeout=TIMEOUT_MS)
        await trainers[0].get_by_role("button", name="Stop", exact=True).click()
        await trainers[0].wait_for_selector("text=Every run of this session", timeout=TIMEOUT_MS)
        await wait_idle(trainers[0])
        await wait_idle(trainers[1])

        trained = await sidebar_text(trainers[0])
        others = [await sidebar_text(page) for page in [*learners, trainers[1]]]
        await browser.close()
    return {"quiet": quiet, "busy": busy, "progress": progress, "still_waiting": still_waiting,
            "trained": trained, "others": others}


def test_eight_sessions_two_training(monkeypatch):
    monkeypatch.setenv("GLASSBOX_MAX_TRAININGS", "1")
    began = time.monotonic()
    with running_dashboard() as url:
        found = asyncio.run(scenario(url))
    assert found["quiet"] and found["busy"]
    assert found["still_waiting"], "the second training should wait while the first runs"
    assert "run 1" in found["trained"]  # the stopped training's model is that session's model now
    for text in found["others"]:  # nobody else has it
        assert "run 1" not in text and "your trained model" not in text
    figures = {
        "sessions": BROWSING + TRAINING, "phase_seconds": PHASE_SECONDS, "cores": os.cpu_count(),
        "redraws_without_training": len(found["quiet"]), "p95_ms_without_training": p95(found["quiet"]),
        "median_ms_without_training": float(np.median(found["quiet"])),
        "redraws_with_training": len(found["busy"]), "p95_ms_with_training": p95(found["busy"]),
        "median_ms_with_training": float(np.median(found["busy"])),
        "training_progress_seen": found["progress"].split("\n")[:4], "total_seconds": time.monotonic() - began,
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "load.json").write_text(json.dumps(figures, indent=1) + "\n")
    print("\nload test:", json.dumps(figures, indent=1))
