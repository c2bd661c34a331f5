"""`python -m core bench`: time the attention backends (C, NumPy, and PyTorch as a
peer when installed) on the benchmark grid and print one table row per case and
backend: time, GFLOP/s, GB/s, speed-up over NumPy and over the peer, max abs
difference from a float64 reference. `--json PATH` saves the rows and the machine;
`--load PATH` prints the same table from the pytest-benchmark suite's saved JSON;
`--threads` times the C kernel on one thread against all of its own; `--fallback` the NumPy
backend against the plainest per-head NumPy loop."""
from __future__ import annotations

import json
from pathlib import Path

from core.bench import attention as bench_attention
from core.bench import gpt2 as bench_gpt2
from core.bench import models as bench_models
from core.bench import training as bench_training

COLUMNS = ("case", "backend", "time", "GFLOP/s", "sgemm", "% sgemm", "GB/s", "vs numpy", "vs torch", "max diff")
WIDTHS = (43, 7, 10, 8, 6, 7, 7, 8, 8, 9)


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="a handful of cases instead of the whole grid")
    parser.add_argument("--sizes", nargs="+", metavar="SIZE",
                        help="custom cases HEADSxLQxLKxD[:causal][:weights][:f64], e.g. 12x1024x1024x64:causal")
    parser.add_argument("--backends", nargs="+", metavar="NAME",
                        help=f"backends to run (default: all available, peer included: {', '.join(bench_attention.bench_backends())})")
    parser.add_argument("--repeats", type=int, default=5, help="timing samples per case and backend")
    parser.add_argument("--best", action="store_true",
                        help="report each backend's fastest sample instead of the median "
                             "(fairer when other programs share the machine)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also save the rows and machine info as JSON")
    parser.add_argument("--training", action="store_true",
                        help="time training steps instead: Glassbox against transformers' GPT2LMHeadModel in "
                             "PyTorch eager when installed (core.bench.training; --repeats rounds)")
    parser.add_argument("--gpt2", action="store_true",
                        help="GPT-2 small (random weights) against transformers' GPT2LMHeadModel: the trace, greedy "
                             "generation per token, loading (core.bench.gpt2; needs torch and transformers)")
    parser.add_argument("--models", action="store_true",
                        help="SmolLM2-135M's and Qwen2.5-0.5B's shapes (random weights) against transformers: the "
                             "trace, greedy generation per token, loading memory (core.bench.models; needs torch "
                             "and transformers)")
    parser.add_argument("--threads", action="store_true",
                        help="time the C kernel on one thread and on all of its own, in the same rounds "
                             f"(the --sizes cases, default {bench_attention.THREAD_SCALING_CASE.name}; fastest of --repeats)")
    parser.add_argument("--fallback", action="store_true",
                        help="time the NumPy backend against the plainest per-head NumPy loop, in the same rounds "
                             "(the --sizes cases, default the grid or --quick's; fastest of --repeats)")
    parser.add_argument("--load", type=Path, metavar="PATH",
                        help="run nothing: print the table of a saved pytest-benchmark JSON "
                             "(pytest tests/benchmarks --benchmark-only --benchmark-json PATH)")


def format_seconds(seconds: float) -> str:
    for unit, factor in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= factor:
            return f"{seconds / factor:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _number(value, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def format_row(row: dict) -> str:
    cells = (row["name"], row["backend"], format_seconds(row["seconds"]), _number(row.get("gflops"), ".1f"),
             _number(row.get("sgemm_gflops"), ".0f"), _number(row.get("share_of_sgemm"), ".0%"),
             _number(row.get("gbytes_per_s"), ".1f"), _number(row["speedup_vs_numpy"], ".2f", "x"),
             _number(row["speedup_vs_peer"], ".2f", "x"), _number(row.get("max_abs_diff"), ".1e"))
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, WIDTHS))


def format_scaling(result: dict) -> str:
    return (f"{result['case']}: one thread {format_seconds(result['one_thread_seconds'])}, "
            f"{result['threads']} threads {format_seconds(result['threads_seconds'])}: {result['speedup']:.2f}x "
            f"(fastest of {result['samples']} samples each, taken in the same rounds)")


def format_fallback(result: dict) -> str:
    return (f"{result['case']}: NumPy backend {format_seconds(result['backend_seconds'])}, plain per-head NumPy "
            f"{format_seconds(result['plain_seconds'])}: {result['ratio']:.2f}x its time "
            f"(fastest of {result['samples']} samples each, taken in the same rounds)")


def print_header(statistic: str = "median") -> None:
    print(f"# time: {statistic} per call; vs numpy / vs torch: that backend's time over this one's (above 1 = faster); "
          "torch: its fused scaled_dot_product_attention on 4-D input (is_causal when Lq == Lk), "
          "matmul+softmax+matmul for the cases with weights; sgemm: GFLOP/s of NumPy's float32 matmul on "
          "the kernel's threads, timed in the same rounds as the case (same statistic); % sgemm: "
          "the row's GFLOP/s of useful work over that")
    print("  ".join(column.ljust(width) for column, width in zip(COLUMNS, WIDTHS)))


def chosen_cases(args, default: list) -> list:
    """The --sizes cases, or `default` when none were given."""
    return [bench_attention.parse_size(text) for text in args.sizes] if args.sizes else default


def run(args) -> int:
    note = bench_attention.blas_kernel_note()
    if note and not args.load:
        print(f"# {note}")
    if args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    if args.training:
        for line in bench_training.table(bench_training.run(rounds=args.repeats)):
            print(line)
        return 0
    if args.gpt2:
        print(bench_gpt2.format_report(bench_gpt2.run_gpt2_benchmark(repeats=args.repeats)))
        return 0
    if args.models:
        print(bench_models.format_report(bench_models.run_models_benchmark(repeats=args.repeats)))
        return 0
    if args.threads:
        for case in chosen_cases(args, [bench_attention.THREAD_SCALING_CASE]):
            print(format_scaling(bench_attention.thread_scaling(case, args.repeats)))
        return 0
    if args.fallback:
        for case in chosen_cases(args, bench_attention.default_cases(quick=args.quick)):
            print(format_fallback(bench_attention.fallback_overhead(case, args.repeats)))
        return 0
    if args.load:
        rows = bench_attention.load_benchmark_json(args.load)  # a bad file is one line of error, no table
        print_header()
        for row in rows:
            print(format_row(row))
        return 0
    cases = chosen_cases(args, bench_attention.default_cases(quick=args.quick))
    backends = args.backends or bench_attention.bench_backends()
    unknown = set(backends) - set(bench_attention.bench_backends())
    if unknown:
        raise ValueError(f"backend(s) {sorted(unknown)} not available; choose from {bench_attention.bench_backends()}")
    machine = bench_attention.machine_info()
    print(f"# {machine['cpu']}, {machine['cores']} cores; C kernel: {machine['code_path']}, "
          f"{machine['threads']} threads; numpy {machine['numpy']}; "
          f"torch {machine['torch'] + ' on ' + str(machine['torch_threads']) + ' threads' if machine['torch'] else 'not installed'}; "
          f"NumPy sgemm now: {machine['sgemm_gflops']} GFLOP/s on 1 thread, "
          f"{machine['sgemm_gflops_kernel_threads']} on the kernel's {machine['threads']}")
    statistic = "min" if args.best else "median"
    print_header(statistic)
    rows = bench_attention.run_grid(cases, backends, repeats=args.repeats, statistic=statistic, yardstick=True,
                          progress=lambda row: print(format_row(row), flush=True))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
        print(f"saved {len(rows)} rows to {args.json}")
    return 0
