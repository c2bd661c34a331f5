"""Kernel benchmark page: the C kernel against the NumPy fallback (and PyTorch's attention as a
peer when it happens to be installed) over a grid of sizes chosen here, plus the results the
pytest-benchmark suite saved. Timing and FLOP counts come from core.bench."""
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from core import bench, explain
from dashboard import charts, state

LENGTHS = [16, 32, 64, 128, 256, 512, 1024, 2048]
DEFAULT_GRID = {"lengths": [16, 64, 256], "heads": 4, "d": 64, "dtype": "float32", "causal": True,
                "return_weights": False, "repeats": 3}
SAVED_RESULTS = Path(__file__).resolve().parents[2] / ".benchmarks"  # pytest-benchmark's --benchmark-autosave


def grid_form() -> dict | None:
    """The sizes and backends to run; a dict when the form was submitted, else None."""
    with st.form("bench_grid"):
        cols = st.columns(4)
        lengths = cols[0].multiselect("Sequence lengths L", LENGTHS, DEFAULT_GRID["lengths"])
        heads = cols[1].number_input("Heads", 1, 32, DEFAULT_GRID["heads"])
        d = cols[2].selectbox("d_head", [16, 32, 64, 128], index=2)
        dtype = cols[3].radio("dtype", ["float32", "float64"], horizontal=True)
        cols = st.columns(4)
        causal = cols[0].checkbox("causal", DEFAULT_GRID["causal"])
        weights = cols[1].checkbox("return the weights", DEFAULT_GRID["return_weights"])
        backends = cols[2].multiselect("Backends", bench.bench_backends(), bench.bench_backends())
        repeats = cols[3].number_input("Repeats (median of)", 1, 20, DEFAULT_GRID["repeats"])
        if not st.form_submit_button("Run benchmark", type="primary"):
            return None
    return {"lengths": lengths, "heads": int(heads), "d": int(d), "dtype": dtype, "causal": causal,
            "return_weights": weights, "backends": backends, "repeats": int(repeats)}


def run(grid: dict) -> list[dict]:
    """Time every length x backend, with a progress bar."""
    if not grid["lengths"] or not grid["backends"]:
        raise ValueError("pick at least one sequence length and one backend")
    cases = [bench.BenchCase("dashboard", grid["heads"], length, length, grid["d"], grid["dtype"], grid["causal"],
                             grid["return_weights"]) for length in sorted(grid["lengths"])]
    backends = list(dict.fromkeys(["numpy", *grid["backends"]]))  # NumPy always runs: it is the baseline
    total = len(cases) * len(backends)
    done = []
    with st.status(f"Timing {total} runs ...", expanded=True) as status:
        bar = st.progress(0.0)

        def progress(row):
            done.append(row)
            bar.progress(len(done) / total, text=f"{row['backend']}: L={row['lk']} took {row['seconds'] * 1e3:.3f} ms")

        rows = bench.run_grid(cases, backends, grid["repeats"], progress=progress)
        status.update(label=f"Timed {total} runs", state="complete")
    return rows


def series(rows: list[dict], value: str) -> tuple[list[int], dict[str, list]]:
    """x = sequence length (keys); one series per backend (and case group when several)."""
    groups = {row.get("group") for row in rows}
    label = (lambda row: row["backend"]) if len(groups) <= 1 else (lambda row: f"{row['backend']} · {row['group']}")
    lengths = sorted({row["lk"] for row in rows})
    table: dict[str, list] = {}
    for row in rows:
        table.setdefault(label(row), [None] * len(lengths))[lengths.index(row["lk"])] = row.get(value)
    return lengths, table


def results(rows: list[dict], title: str) -> None:
    """Time vs L (log-log), speed-up over NumPy, GFLOP/s, and the table with the max differences."""
    rows = [dict(row, speedup=speedup) for row, speedup in zip(rows, explain.speedups(rows))]
    cols = st.columns(3)
    lengths, times = series(rows, "seconds")
    state.show_chart(charts.lines(lengths, times, title=f"{title}: time per call", x_title="sequence length L",
                                  y_title="seconds (median)", log_x=True, log_y=True), cols[0])
    lengths, ratios = series(rows, "speedup")
    state.show_chart(charts.lines(lengths, ratios, title=f"{title}: speed-up over NumPy", x_title="sequence length L",
                                  y_title="× faster than NumPy", log_x=True), cols[1])
    lengths, rates = series(rows, "gflops")
    state.show_chart(charts.lines(lengths, rates, title=f"{title}: useful work", x_title="sequence length L",
                                  y_title="GFLOP/s", log_x=True), cols[2])
    shown = ["name", "backend", "seconds", "gflops", "speedup", "max_abs_diff"]
    st.dataframe(pd.DataFrame(rows)[[column for column in shown if column in rows[0]]], hide_index=True)


def live_grid() -> None:
    st.subheader("Run a grid")
    st.caption("Every case is attention over `heads` problems of L queries and L keys; times are medians. "
               "The machine may be shared: compare backends within one run. 'max_abs_diff' is the largest "
               "difference from a float64 reference.")
    grid = grid_form()
    if grid is not None:
        st.session_state["bench_rows"] = run(grid)
    elif "bench_rows" not in st.session_state:  # first visit: a small grid, so the page has something to show
        st.session_state["bench_rows"] = run({**DEFAULT_GRID, "backends": bench.bench_backends()})
    results(st.session_state["bench_rows"], "This run")


def saved_files() -> list[Path]:
    return sorted(SAVED_RESULTS.glob("**/*.json"), key=lambda path: path.stat().st_mtime, reverse=True)


def saved_results() -> None:
    st.subheader("Results saved by the benchmark suite")
    st.caption("`pytest tests/benchmarks --benchmark-only --benchmark-json results.json` (or `--benchmark-autosave`, "
               "which writes under .benchmarks/) saves them; load the file here.")
    upload = st.file_uploader("pytest-benchmark JSON", type="json", key="bench_upload")
    files = saved_files()
    choice = st.selectbox("... or a file under .benchmarks/", files, format_func=lambda path: path.name,
                          key="bench_file") if files else None
    if upload is None and choice is None:
        st.info("No saved results yet: run the suite with `--benchmark-autosave`, or upload a JSON file.")
        return
    try:
        rows = load_upload(upload) if upload is not None else bench.load_benchmark_json(choice)
    except (ValueError, OSError, UnicodeDecodeError) as error:
        st.error(f"Could not read that file: {error}")
        return
    rows = [row for row in rows if "backend" in row and "lk" in row]
    if not rows:
        st.warning("That file holds no Glassbox attention benchmarks (no backend and size in extra_info).")
        return
    filters(rows)


def load_upload(upload) -> list[dict]:
    """An uploaded pytest-benchmark JSON file, read by core.bench (which takes a path)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as handle:
        handle.write(upload.getvalue())
        handle.flush()
        return bench.load_benchmark_json(handle.name)


def filters(rows: list[dict]) -> None:
    cols = st.columns(3)
    dtype = cols[0].selectbox("dtype", sorted({row["dtype"] for row in rows}), key="saved_dtype")
    causal = cols[1].selectbox("causal", sorted({row["causal"] for row in rows}), key="saved_causal")
    weights = cols[2].selectbox("return the weights", sorted({row["return_weights"] for row in rows}),
                                key="saved_weights")
    chosen = [row for row in rows if (row["dtype"], row["causal"], row["return_weights"]) == (dtype, causal, weights)]
    results(chosen, "Saved suite")


def main() -> None:
    st.caption(f"Backend in use for the model: {state.backend_name()}. PyTorch peer: "
               f"{'installed' if bench.peer_available() else 'not installed (optional)'}.")
    live_grid()
    saved_results()


state.render_page("Kernel benchmark", main, "What the C kernel buys over NumPy, measured on this machine.")
