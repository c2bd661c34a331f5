"""Driving the dashboard in the tests: AppTest sessions of dashboard/app.py, reached as a user reaches
its pages (the app runs, then AppTest.switch_page), and reading what a page shows."""
from __future__ import annotations

import json
import re

import pyarrow.ipc
from streamlit.testing.v1 import AppTest

from helpers import ROOT
from helpers.chart_widths import too_wide
from helpers.gpt2 import GPT2_NAME

APP = ROOT / "dashboard" / "app.py"
TIMEOUT = 60
FULL_CONTEXT = " ".join(["the sky is blue ."] * 7)  # 35 words: the toy model keeps its 32 positions
LONG_WORDS = "Internationalization of extraordinary telecommunications infrastructure notwithstanding"


def new_session(timeout: float = TIMEOUT) -> AppTest:
    """A new session of the dashboard, run once (on the Overview page), clean."""
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    at.run()
    assert_clean(at)
    return at


def open_page(at: AppTest, name: str) -> AppTest:
    at.switch_page(f"views/{name}.py").run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    """No exception box and no error message anywhere on the page."""
    assert not at.exception, [element.value for element in at.exception]
    assert not at.error, [element.value for element in at.error]


def _views(spec: dict, datasets: dict, data=None):
    """Every titled view of a spec (concatenated charts hold several), with its data rows."""
    data = spec.get("data", {}).get("name", data)
    if "title" in spec:
        yield dict(spec, rows=datasets.get(data, []))
    for key in ("hconcat", "vconcat", "concat"):
        for part in spec.get(key, []):
            yield from _views(part, datasets, data)


def specs(at: AppTest) -> list[dict]:
    """Every (sub)chart on the page as its Vega-Lite spec, with its data rows under "rows"."""
    found = []
    for chart in at.get("vega_lite_chart"):
        datasets = {dataset.name: pyarrow.ipc.open_stream(dataset.data.data).read_all().to_pylist()
                    for dataset in chart.proto.datasets}
        found += _views(json.loads(chart.proto.spec), datasets)
    return found


def titled(at: AppTest, pattern: str) -> dict:
    """The one chart whose title matches `pattern`."""
    found = [spec for spec in specs(at) if re.search(pattern, str(spec.get("title", "")))]
    assert len(found) == 1, [spec.get("title") for spec in specs(at)]
    return found[0]


def rows(spec: dict) -> list[dict]:
    return spec["rows"]


def open_tab(at: AppTest, key: str, label: str) -> AppTest:
    """Select the tab `label` of the lazy tabs `key`, as a click on it does, and run the page."""
    at.session_state[key] = label
    at.run()
    assert_clean(at)
    return at


def set_prompt(at: AppTest, text: str) -> AppTest:
    at.text_input(key="prompt").set_value(text).run()
    return at


def markdown(at: AppTest) -> str:
    return "\n".join(element.value for element in at.markdown)


def infos(at) -> str:
    return "\n".join(element.value for element in at.info)


def use_gpt2(at):
    """Pick the GPT-2-shaped checkpoint, as the sidebar's model picker does."""
    at.session_state["model_choice"] = GPT2_NAME
    at.run()
    assert_clean(at)
    return at


def assert_every_tab_fits(at, key: str, tabs) -> None:
    """Every fixed-width chart of every tab within its place at a 1280 px window (chart_widths)."""
    found = []
    for tab in tabs:
        open_tab(at, key, tab)
        found += [f"{tab}: {problem}" for problem in too_wide(at)]
    assert not found, found


def train_and_wait(at: AppTest, steps: int = 3) -> AppTest:
    """Start a training of `steps` steps on the training page, wait for its worker, run the page."""
    at.number_input(key="train_steps").set_value(steps)
    at.button(key="train_start").click().run()
    assert_clean(at)
    job = at.session_state["train_job"]
    assert job.ended.wait(TIMEOUT)
    at.run()
    assert_clean(at)
    return at


def benchmark_json(rows: list[tuple[str, int, float]]) -> bytes:
    """A pytest-benchmark JSON file shaped like tests/benchmarks' output: (backend, L, median seconds)."""
    case = {"group": "gpt2", "heads": 12, "d": 64, "dtype": "float32", "causal": True, "return_weights": False}
    return json.dumps({"benchmarks": [
        {"group": f"gpt2 L{length}", "name": f"test_attention[{backend}-{length}]",
         "stats": {"median": seconds, "min": seconds, "mean": seconds, "rounds": 5},
         "extra_info": {**case, "lq": length, "lk": length, "backend": backend, "flops": 4.0 * 12 * length**2 * 64}}
        for backend, length, seconds in rows]}).encode()


def pick_model(at: AppTest, name: str) -> AppTest:
    """Picks the model `name` in the sidebar and runs the page; asserts it ran clean."""
    at.selectbox(key="model_picker").set_value(name).run()
    assert_clean(at)
    return at
