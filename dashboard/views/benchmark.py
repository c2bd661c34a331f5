"""Kernel benchmark page: the C kernel against the NumPy fallback (and PyTorch's attention as a
peer when it happens to be installed) over a grid of sizes chosen here, plus the results the
pytest-benchmark suite saved. Timing and FLOP counts come from core.bench.

Nothing runs until asked; the grid is bounded (sizes, repeats, and a time budget checked between
cases); a run can be stopped; one benchmark runs per server at a time (dashboard.server.BENCHMARK_LOCK).
Uploaded result files are small (MAX_UPLOAD_BYTES) and parsed once per distinct file.
"""
import hashlib
import os
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import pandas as pd
import streamlit as st

from core.bench import attention as bench_attention
from core.bench import peers
from dashboard import charts, figures, frame, glossary, models, server, text
from dashboard.navigation import BENCHMARK

LENGTHS = [16, 32, 64, 128, 256, 512]
MAX_HEADS = 16
MAX_REPEATS = 7
MAX_SECONDS = 60  # a run stops after the case that passes this budget
DEFAULT_GRID = {"lengths": [16, 64, 256], "heads": 4, "d": 64, "dtype": "float32", "causal": True,
                "return_weights": False, "repeats": 3}
SAVED_RESULTS = Path(os.environ.get("GLASSBOX_BENCHMARKS")  # pytest-benchmark's --benchmark-autosave folder
                     or Path(__file__).resolve().parents[2] / ".benchmarks")
MAX_UPLOAD_BYTES = 1_000_000  # also server.maxUploadSize (1 MB) in .streamlit/config.toml
MAX_ROWS = 2000  # benchmarks read from one file
PARSED_KEY = "bench_parsed"  # session_state: sha256 of an uploaded file -> its rows (a few files kept)
PARSED_KEPT = 3
ROWS_KEY = "bench_rows"
UNITS = ((1e-3, "µs", 1e6), (1.0, "ms", 1e3), (float("inf"), "s", 1.0))  # (below this many seconds, unit, factor)


def grid_form() -> dict | None:
    """The sizes and backends to run; a dict when the form was submitted, else None."""
    with st.form("bench_grid"):
        cols = st.columns(4)
        lengths = cols[0].multiselect("Sequence lengths L", LENGTHS, DEFAULT_GRID["lengths"])
        heads = cols[1].number_input("Heads", 1, MAX_HEADS, DEFAULT_GRID["heads"])
        d = cols[2].selectbox("d_head", [16, 32, 64, 128], index=2)
        dtype = cols[3].radio("dtype", ["float32", "float64"], horizontal=True)
        cols = st.columns(4)
        causal = cols[0].checkbox("causal", DEFAULT_GRID["causal"])
        weights = cols[1].checkbox("return the weights", DEFAULT_GRID["return_weights"])
        backends = cols[2].multiselect("Backends", bench_attention.bench_backends(), bench_attention.bench_backends())
        repeats = cols[3].number_input("Repeats", 1, MAX_REPEATS, DEFAULT_GRID["repeats"])
        if not st.form_submit_button("Run benchmark", type="primary"):
            return None
    return {"lengths": lengths, "heads": int(heads), "d": int(d), "dtype": dtype, "causal": causal,
            "return_weights": weights, "backends": backends, "repeats": int(repeats)}


class OverBudget(Exception):
    """The run passed MAX_SECONDS: the remaining cases are skipped."""


def run(grid: dict) -> None:
    """Time every length x backend with a progress bar and a Stop button, one benchmark per server.
    The rows so far are kept in session_state[ROWS_KEY], so a stopped run still shows them."""
    if not grid["lengths"] or not grid["backends"]:
        raise ValueError("pick at least one sequence length and one backend")
    session = server.session_id()
    if not server.BENCHMARK_LOCK.acquire(session):
        if server.BENCHMARK_LOCK.holder == session:
            st.warning("Your stopped benchmark is still finishing the case it was timing. Try again in a few seconds.")
        else:
            st.warning("The benchmark is busy: someone else on this server is running one. Try again in a minute.")
        return
    try:
        timed(grid)
    finally:
        server.BENCHMARK_LOCK.release()


def timed(grid: dict) -> None:
    cases = [bench_attention.BenchCase("dashboard", grid["heads"], length, length, grid["d"], grid["dtype"], grid["causal"],
                             grid["return_weights"]) for length in sorted(grid["lengths"])]
    backends = list(dict.fromkeys(["numpy", *grid["backends"]]))  # NumPy always runs: it is the baseline
    total, began = len(cases) * len(backends), time.monotonic()
    done = st.session_state[ROWS_KEY] = []
    st.button("Stop the benchmark", key="bench_stop", help="Stops after the case being timed; the rows so far stay.")
    with st.status(f"Timing {total} runs ...", expanded=True) as status:
        bar = st.progress(0.0)

        def progress(row):
            done.append(row)
            bar.progress(len(done) / total, text=f"{row['backend']}: L={row['lk']} took {row['seconds'] * 1e3:.3f} ms")
            if time.monotonic() - began > MAX_SECONDS and len(done) < total:
                raise OverBudget

        try:
            bench_attention.run_grid(cases, backends, grid["repeats"], progress=progress)
        except OverBudget:
            status.update(label=f"Stopped after {len(done)} of {total} runs: the time budget is {MAX_SECONDS} s "
                                "per benchmark. Pick fewer or smaller sizes.", state="error")
            return
        status.update(label=f"Timed {total} runs", state="complete")


def unit_for(rows: list[dict]) -> tuple[str, float]:
    """(unit, factor from seconds) that suits the slowest median in `rows`."""
    slowest = max(row["seconds"] for row in rows)
    return next((unit, factor) for limit, unit, factor in UNITS if slowest < limit)


def series(rows: list[dict], value: str, factor: float = 1.0) -> tuple[list[int], dict[str, list]]:
    """x = sequence length (keys); one series per backend (and case group when several)."""
    groups = {row.get("group") for row in rows}
    label = (lambda row: row["backend"]) if len(groups) <= 1 else (lambda row: f"{row['backend']} · {row['group']}")
    lengths = sorted({row["lk"] for row in rows})
    table: dict[str, list] = {}
    for row in rows:
        found = row.get(value)
        table.setdefault(label(row), [None] * len(lengths))[lengths.index(row["lk"])] = \
            None if found is None else found * factor
    return lengths, table


def readable(chart):
    """Legends under the plot, so that they never squeeze it."""
    return chart.configure_legend(orient="bottom")


def results(rows: list[dict], title: str) -> None:
    """Time vs L (log-log, with the spread of repeats), speed-up over NumPy, GFLOP/s, and the table."""
    rows = [row for row in rows if row.get("seconds")]
    if not rows:
        st.info("No timings to show.")
        return
    unit, factor = unit_for(rows)
    lengths, times = series(rows, "seconds", factor)
    _, lows = series(rows, "seconds_min", factor)
    _, highs = series(rows, "seconds_max", factor)
    spread = {name: (lows[name], highs[name]) for name in times if name in lows and name in highs}
    top = st.columns(2)
    figures.show_chart(readable(charts.lines(
        lengths, times, title=f"{title}: time per call", x_title="sequence length L",
        y_title=f"{unit} per call (median; bar: fastest to slowest repeat)", log_x=True, log_y=True,
        x_ticks=lengths, spread=spread)), top[0])
    _, ratios = series(rows, "speedup_vs_numpy")
    figures.show_chart(readable(charts.lines(lengths, ratios, title=f"{title}: speed-up over NumPy",
                                             x_title="sequence length L", y_title="× faster than NumPy", log_x=True,
                                             x_ticks=lengths)), top[1])
    bottom = st.columns(2)
    _, rates = series(rows, "gflops")
    figures.show_chart(readable(charts.lines(lengths, rates, title=f"{title}: useful work", x_title="sequence length L",
                                             y_title="GFLOP/s", log_x=True, x_ticks=lengths)), bottom[0])
    table = pd.DataFrame(rows)
    for column in ("seconds", "seconds_min", "seconds_max"):
        if column in table:
            table[f"{column.replace('seconds', unit)}"] = table[column] * factor
    shown = ["name", "backend", unit, f"{unit}_min", f"{unit}_max", "gflops", "speedup_vs_numpy", "max_abs_diff"]
    bottom[1].dataframe(table[[column for column in shown if column in table]], hide_index=True)


def live_grid() -> None:
    st.subheader("Run a grid")
    st.caption(f"Every case is attention over `heads` problems of L queries and L keys (one per "
               f"{glossary.link('head')}, each {glossary.link('d_head')} wide: scores, the "
               f"{glossary.link('causal mask')} if causal, {glossary.link('softmax')}, weighted sum); times are medians of the "
               f"repeats, with the fastest and slowest repeat shown. The machine may be shared: compare backends "
               f"within one run. 'max_abs_diff' is the largest difference from a float64 reference. One benchmark "
               f"runs on this server at a time, for at most about {MAX_SECONDS} s.")
    grid = grid_form()
    if grid is not None:
        run(grid)
    elif st.session_state.get("bench_stop"):
        st.info("Benchmark stopped; the rows timed before are shown.")
    if st.session_state.get(ROWS_KEY):
        results(st.session_state[ROWS_KEY], "This run")
    elif grid is None:
        st.info("Nothing timed yet: choose the sizes and press 'Run benchmark'.")


def saved_files() -> list[Path]:
    return sorted(SAVED_RESULTS.glob("**/*.json"), key=lambda path: path.stat().st_mtime, reverse=True)


def saved_results() -> None:
    st.subheader("Results saved by the benchmark suite")
    st.caption("`pytest tests/benchmarks --benchmark-only --benchmark-json results.json` (or `--benchmark-autosave`, "
               "which writes under .benchmarks/) saves them; load the file here "
               f"(at most {MAX_UPLOAD_BYTES // 1_000_000} MB).")
    upload = st.file_uploader("pytest-benchmark JSON", type="json", key="bench_upload")
    files = saved_files()
    choice = st.selectbox("... or a file under .benchmarks/", files, format_func=saved_name,
                          key="bench_file") if files else None
    if upload is None and choice is None:
        st.info("No saved results yet: run the suite with `--benchmark-autosave`, or upload a JSON file.")
        return
    try:
        rows = uploaded_rows(upload) if upload is not None else saved_rows(choice)
    except (ValueError, OSError, UnicodeDecodeError) as error:
        st.error(f"Could not read that file: {text.safe_message(error)}")
        return
    rows = [row for row in rows if "backend" in row and "lk" in row]
    if not rows:
        st.warning("That file holds no Glassbox attention benchmarks (no backend and size in extra_info).")
        return
    filters(rows)


def saved_name(path: Path) -> str:
    """A saved file's name as visitors see it: relative to .benchmarks/, never the server's path."""
    try:
        return path.relative_to(SAVED_RESULTS).as_posix()
    except ValueError:
        return path.name


def saved_rows(path: Path) -> list[dict]:
    """The rows of a file under .benchmarks/ (core.bench's reader); errors name it relative to .benchmarks/."""
    try:
        return bench_attention.load_benchmark_json(path)
    except (ValueError, OSError, UnicodeDecodeError) as error:
        raise ValueError(text.public(str(error).replace(str(path), saved_name(path)))) from None


def uploaded_rows(upload) -> list[dict]:
    """The rows of an uploaded file, parsed once per distinct content (the last few kept)."""
    if upload.size > MAX_UPLOAD_BYTES:
        raise ValueError(f"{upload.name} is {upload.size / 1e6:.1f} MB; at most {MAX_UPLOAD_BYTES / 1e6:.0f} MB "
                         "is read here")
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    parsed = st.session_state.setdefault(PARSED_KEY, OrderedDict())
    if digest not in parsed:
        parsed[digest] = parse_upload(upload.name, data)
        while len(parsed) > PARSED_KEPT:
            parsed.popitem(last=False)
    parsed.move_to_end(digest)
    return parsed[digest]


def parse_upload(name: str, data: bytes) -> list[dict]:
    """Uploaded pytest-benchmark JSON read by core.bench (which takes a path); errors name the upload."""
    with tempfile.NamedTemporaryFile(suffix=".json") as handle:
        handle.write(data)
        handle.flush()
        try:
            rows = bench_attention.load_benchmark_json(handle.name)
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(str(error).replace(handle.name, name)) from None
    if len(rows) > MAX_ROWS:
        raise ValueError(f"{name} holds {len(rows)} benchmarks; at most {MAX_ROWS} are shown here")
    return rows


def filters(rows: list[dict]) -> None:
    cols = st.columns(3)
    dtype = cols[0].selectbox("dtype", sorted({row["dtype"] for row in rows}), key="saved_dtype")
    causal = cols[1].selectbox("causal", sorted({row["causal"] for row in rows}), key="saved_causal")
    weights = cols[2].selectbox("return the weights", sorted({row["return_weights"] for row in rows}),
                                key="saved_weights")
    chosen = [row for row in rows if (row["dtype"], row["causal"], row["return_weights"]) == (dtype, causal, weights)]
    results(chosen, "Saved suite")


def main() -> None:
    st.caption(f"Backend in use for the model: {models.backend_name()}. PyTorch peer: "
               f"{'installed' if peers.torch_available() else 'not installed (optional)'}.")
    live_grid()
    saved_results()


frame.render_page(BENCHMARK, main, "What the C kernel buys over NumPy, measured on this machine.")
