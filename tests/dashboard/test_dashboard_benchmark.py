"""The benchmark page: nothing runs until asked, one benchmark per server, readable units and ticks,
the spread of repeats, small uploads parsed once and errors that name the uploaded file."""
from __future__ import annotations

import json

from helpers.dashboard import assert_clean, benchmark_json, open_page

from core.bench import attention
from core.text.markdown import escaped
from dashboard import server


def time_chart(at) -> dict:
    """The one 'time per call' chart's spec, with its datasets by name."""
    (chart,) = [chart for chart in at.get("vega_lite_chart")
                if "time per call" in json.loads(chart.proto.spec)["title"]]
    return json.loads(chart.proto.spec)


def run_grid(at, lengths) -> None:
    at.multiselect[0].set_value(lengths)
    at.button[[button.label for button in at.button].index("Run benchmark")].click().run()


def test_the_first_visit_runs_nothing(app, monkeypatch):
    calls = []
    monkeypatch.setattr(attention, "run_grid", lambda *args, **options: calls.append(args) or [])
    open_page(app, "benchmark")
    assert not calls and not app.dataframe
    assert any("Nothing timed yet" in element.value for element in app.info)


def test_one_benchmark_per_server(app):
    open_page(app, "benchmark")
    assert server.BENCHMARK_LOCK.acquire("another session")  # another session is running one
    try:
        run_grid(app, [16])
    finally:
        server.BENCHMARK_LOCK.release()
    assert_clean(app)
    assert any("busy" in element.value and "Try again" in element.value for element in app.warning)
    assert not app.dataframe
    run_grid(app, [16])  # free again
    assert_clean(app)
    assert app.dataframe and not server.BENCHMARK_LOCK.locked()


def test_times_have_units_ticks_at_the_measured_sizes_and_a_spread(app):
    open_page(app, "benchmark")
    run_grid(app, [16, 32])
    assert_clean(app)
    spec = time_chart(app)
    line, spread = spec["layer"][0], spec["layer"][1]
    unit = line["encoding"]["y"]["title"].split()[0]
    assert unit in ("µs", "ms")  # small cases: never "0.00001" seconds
    assert line["encoding"]["x"]["axis"]["values"] == [16, 32]
    assert spread["mark"]["type"] == "rule" and spread["encoding"]["y2"]["field"] == "high"
    table = app.dataframe[0].value
    assert {unit, f"{unit}_min", f"{unit}_max"} <= set(table.columns)
    assert (table[f"{unit}_min"] <= table[unit]).all() and (table[unit] <= table[f"{unit}_max"]).all()


def test_an_upload_is_parsed_once_per_distinct_file(app, monkeypatch):
    calls = []
    real = attention.load_benchmark_json
    monkeypatch.setattr(attention, "load_benchmark_json", lambda path: calls.append(path) or real(path))
    open_page(app, "benchmark")
    data = benchmark_json([("numpy", 256, 4e-3), ("c", 256, 5e-4)])
    app.get("file_uploader")[0].upload("results.json", data, "application/json")
    app.run()
    app.selectbox(key="saved_dtype").set_value("float32").run()
    app.run()
    assert_clean(app)
    assert len(calls) == 1


def test_upload_errors_name_the_uploaded_file_not_a_temporary_path(app):
    open_page(app, "benchmark")
    app.get("file_uploader")[0].upload("broken.json", b"{not json", "application/json")
    app.run()
    assert not app.exception
    messages = [element.value for element in app.error]
    name = escaped("broken.json")  # messages are Markdown: the file name escaped
    assert any(name in message for message in messages)
    assert not any("/tmp" in message or "tmp" in message.split(name)[0] for message in messages)


def test_a_large_upload_is_refused_before_parsing(app, monkeypatch):
    calls = []
    monkeypatch.setattr(attention, "load_benchmark_json", lambda path: calls.append(path) or [])
    open_page(app, "benchmark")
    app.get("file_uploader")[0].upload("huge.json", b" " * 1_500_000, "application/json")
    app.run()
    assert not app.exception and not calls
    assert any(escaped("huge.json") in element.value and "MB" in element.value for element in app.error)
