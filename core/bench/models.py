"""Glassbox against transformers on today's open models' shapes, SmolLM2-135M (llama) and
Qwen2.5-0.5B (qwen2), side by side in one process.

`python -m core bench --models` runs it (PyTorch and transformers must be installed; they are
never dependencies). No weights are downloaded: transformers writes each model with random
weights (float32) in Hugging Face's layout into a temporary folder, with a minimal byte-level
tokenizer.json (the loader requires one; the benchmark itself feeds token ids drawn by a seeded
RNG below the vocabulary size), and both sides load that. The comparisons are the GPT-2
benchmark's (core.bench.gpt2: `compare_traces`, `compare_generation`, `measure_loading`), per model:
- trace: `Model.run` (every intermediate kept) against transformers' forward with
  `output_attentions=True, output_hidden_states=True` (eager attention, the only one that returns
  the weights), 16 and 128 tokens;
- generation: greedy KV-cache decoding per token against `generate(do_sample=False,
  min_new_tokens=N)` with SDPA attention under `torch.inference_mode()` (its fastest path);
- loading: `core.load_checkpoint`'s peak resident memory in a fresh process over the weights' size.
Both sides run on the kernel's threads (`torch.set_num_threads(kernel_threads())`), warmed up,
timed in turn (core.bench.timing.time_calls). Where Glassbox misses a target (trace no slower,
generation 1.5x faster), the report adds the top functions of one call under cProfile.
"""
from __future__ import annotations

import cProfile
import gc
import pstats
import tempfile
from pathlib import Path

import numpy as np

from core.bench.gpt2 import PROMPT_LENGTHS, compare_generation, compare_traces, comparison_lines, measure_loading
from core.bench.peers import transformers_available
from core.bench.timing import kernel_threads

# The published config.json shapes of each model, as recalled (not fetched): to be checked against
# the real config.json when it is fetched (python -m core fetch). Qwen2's q/k/v biases are not a
# config key: transformers' Qwen2Attention always has them. No bos/eos ids: with random weights
# either side could stop at an end-of-text token, and both must produce every token asked for.
SMOLLM2_135M = {"model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9,
                "num_key_value_heads": 3, "intermediate_size": 1536, "vocab_size": 49152,
                "tie_word_embeddings": True, "rope_theta": 100000.0, "rms_norm_eps": 1e-5,
                "max_position_embeddings": 8192, "hidden_act": "silu"}
QWEN25_05B = {"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14,
              "num_key_value_heads": 2, "intermediate_size": 4864, "vocab_size": 151936,
              "tie_word_embeddings": True, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
              "max_position_embeddings": 32768, "hidden_act": "silu", "use_sliding_window": False}
MODELS = {"SmolLM2-135M": SMOLLM2_135M, "Qwen2.5-0.5B": QWEN25_05B}
TARGETS = {"trace": 1.0, "generate": 1.5, "load": 1.1}  # Glassbox faster by at least; memory at most
PROFILE_TOP = 5


def write_byte_tokenizer(folder: Path) -> int:
    """A minimal byte-level BPE tokenizer.json (the 256 byte characters, no merges) in `folder`;
    its size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Tokenizer(models.BPE(vocab={char: index for index, char in enumerate(alphabet)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.save(str(folder / "tokenizer.json"))
    return tokenizer.get_vocab_size()


def write_random_model(folder: Path, shapes: dict, seed: int = 0) -> Path:
    """The model of config `shapes` (config.json keys with model_type) with random float32 weights,
    saved by transformers in its own layout, and a byte-level tokenizer.json beside it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    options = {key: value for key, value in shapes.items() if key != "model_type"}
    config = AutoConfig.for_model(shapes["model_type"], bos_token_id=None, eos_token_id=None, pad_token_id=None,
                                  **options)
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(folder)
    write_byte_tokenizer(folder)
    return folder


def top_functions(call, count: int = PROFILE_TOP) -> list[dict]:
    """The `count` functions `call()` spent the most time in: own time (cProfile), where the time
    the calling thread spends waiting on other threads (a lock's acquire, and threading's and
    concurrent.futures' functions around it) is charged to the function that waited, e.g.
    core.native.parallel.matmul waiting for its blocks of a product on the matmul pool."""
    profile = cProfile.Profile()
    profile.runcall(call)
    stats = pstats.Stats(profile).stats  # {(file, line, name): (calls, primitive, own, cumulative, callers)}
    own = {key: value[2] for key, value in stats.items()}
    for _ in range(20):  # charge waiting to callers, up the chain acquire -> wait -> result -> caller
        waiting = [key for key in own if _waits(key) and own[key] > 0]
        if not waiting:
            break
        for key in waiting:
            callers = stats[key][4]  # {caller: (calls, primitive, own, cumulative)}
            total = sum(edge[3] for edge in callers.values())
            if not total:
                continue
            for caller, edge in callers.items():
                own[caller] = own.get(caller, 0.0) + own[key] * edge[3] / total
            own[key] = 0.0
    total = sum(own.values())
    rows = sorted(own.items(), key=lambda item: item[1], reverse=True)[:count]
    return [{"function": f"{Path(file).name}:{line}({name})", "calls": stats[(file, line, name)][0], "own_s": seconds,
             "share": seconds / total if total else 0.0} for (file, line, name), seconds in rows]


def _waits(key) -> bool:
    """Whether a profiled function only waits for other threads (its time belongs to its caller)."""
    file, _, name = key
    return ("acquire" in name and "lock" in name) or file.endswith(("threading.py", "futures/_base.py"))


def benchmark_model(folder: Path, repeats: int, new_tokens: int, seed: int = 0,
                    prompt_lengths=PROMPT_LENGTHS) -> dict:
    """One model folder's comparisons {"trace": {L: ...}, "generate": ..., "load": ..., "profile": ...};
    each side's models are deleted before the next phase."""
    import torch
    from transformers import AutoModelForCausalLM

    import core

    load = measure_loading(folder)
    rng = np.random.default_rng(seed)
    ours = core.load_checkpoint(folder)
    vocab, profile = ours.config.vocab_size, {}
    theirs = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32).eval()
    prompts = {length: rng.integers(0, vocab, length) for length in prompt_lengths}
    trace = {length: compare_traces(ours, theirs, torch, ids, repeats) for length, ids in prompts.items()}
    del theirs
    gc.collect()
    for length, ids in prompts.items():
        if trace[length]["transformers_s"] / trace[length]["glassbox_s"] < TARGETS["trace"]:
            profile[f"trace, {length} tokens"] = top_functions(lambda: ours.run(ids))
    theirs = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa", dtype=torch.float32).eval()
    prompt = rng.integers(0, vocab, 16)
    generate = compare_generation(ours, theirs, torch, prompt, new_tokens, repeats)
    if generate["transformers_s"] / generate["glassbox_s"] < TARGETS["generate"]:
        profile["greedy generation"] = top_functions(lambda: ours.generate(prompt, max_new_tokens=new_tokens))
    del theirs  # `ours` goes with this call's frame, before the next model is written
    gc.collect()
    return {"trace": trace, "generate": generate, "load": load, "profile": profile,
            "new_tokens": new_tokens, "parameters": load["weights_mb"] * 2**20 / 4}


def run_models_benchmark(repeats: int = 5, new_tokens: int = 16, models: dict | None = None) -> dict:
    """Every model's comparisons, as {"threads", "numpy", "torch", "transformers", "models": {name: ...}}."""
    if not transformers_available():
        raise ValueError("the models benchmark compares against transformers: pip install torch transformers")
    import torch
    import transformers

    threads = kernel_threads()
    torch.set_num_threads(threads)
    transformers.utils.logging.disable_progress_bar()
    results = {}
    for name, shapes in (MODELS if models is None else models).items():
        with tempfile.TemporaryDirectory() as temporary:
            folder = write_random_model(Path(temporary) / name, shapes)
            gc.collect()
            results[name] = {"shapes": shapes, **benchmark_model(folder, repeats, new_tokens)}
    return {"threads": threads, "numpy": np.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "models": results}


def format_report(report: dict) -> str:
    """Each model's table (core.bench.gpt2.comparison_lines), the targets, and where the time goes
    when one is missed."""
    lines = [f"random float32 weights on published shapes; {report['threads']} threads each; numpy "
             f"{report['numpy']}, torch {report['torch']}, transformers {report['transformers']}; targets: "
             f"trace >= {TARGETS['trace']:.1f}x, generation >= {TARGETS['generate']:.1f}x, "
             f"loading memory <= {TARGETS['load']:.1f}x"]
    for name, result in report["models"].items():
        shapes = result["shapes"]
        lines += ["", f"{name} ({shapes['model_type']}: {result['parameters'] / 1e6:.0f}M parameters, "
                      f"{shapes['num_hidden_layers']} layers, hidden {shapes['hidden_size']}, "
                      f"{shapes['num_attention_heads']}/{shapes['num_key_value_heads']} heads; "
                      f"generation: {result['new_tokens']} new tokens after 16)", *comparison_lines(result)]
        for label, rows in result["profile"].items():
            lines.append(f"where Glassbox's time goes, {label} (cProfile, own time):")
            lines += [f"  {row['own_s'] * 1e3:8.1f} ms {row['share']:4.0%}  {row['calls']:6d} calls  {row['function']}"
                      for row in rows]
    return "\n".join(lines)

