"""Next token and sampling: logits -> probabilities, the sampling stages (temperature, top-k,
top-p) side by side, step-by-step generation with the new query against the growing KV
cache, and a lab comparing several settings over N seeded samples each."""
from collections import Counter

import numpy as np
import pandas as pd
import streamlit as st

from core import explain
from core.sampling import Sampler, distribution_stages
from dashboard import charts, state

TOP = 12
LAB_COLUMNS = 3
STAGE_NAMES = {"raw": "raw softmax", "tempered": "after temperature", "top_k": "after top-k",
               "top_p": "after top-p (renormalised)"}
LAB_DEFAULTS = pd.DataFrame({
    "name": ["greedy", "T=0.7", "T=1.5", "top-k 5", "top-p 0.9"],
    "temperature": [0.0, 0.7, 1.5, 1.0, 1.0],
    "top_k": [0, 0, 0, 5, 0],
    "top_p": [1.0, 1.0, 1.0, 1.0, 0.9],
})


def words(model, ids) -> list[str]:
    return [model.tokenizer.token(int(i)) for i in ids]


def probabilities(model, probs) -> None:
    st.subheader("From logits to probabilities")
    ids = np.argsort(-probs, kind="stable")[:TOP]
    state.show_chart(charts.bars(words(model, ids), probs[ids], title=f"The {TOP} most likely next tokens (softmax)"))
    st.caption("The model gives every word in its vocabulary a score (a logit); softmax turns the scores into "
               "probabilities that add up to 1.")


def settings() -> dict:
    """The sampling settings from the sliders (shared by the stages and the generation)."""
    st.subheader("Choosing one token")
    cols = st.columns(4)
    temperature = cols[0].slider("Temperature", 0.0, 3.0, 1.0, 0.05, key="temperature",
                                 help="0 = always the most likely token (greedy)")
    top_k = cols[1].number_input("Top-k (0 = off)", 0, 100_000, 0, key="top_k")
    top_p = cols[2].slider("Top-p (1 = off)", 0.001, 1.0, 1.0, 0.001, format="%.3f", key="top_p")
    seed = cols[3].number_input("Seed", 0, 2**31 - 1, 0, key="seed")
    return {"temperature": float(temperature), "top_k": int(top_k), "top_p": float(top_p), "seed": int(seed)}


def setting_notes(setting: dict, vocab_size: int) -> None:
    if setting["temperature"] == 0:
        st.info("Temperature 0 is greedy: all the probability goes to the most likely token.")
    if setting["top_k"] >= vocab_size:
        st.info(f"Top-k {setting['top_k']} is at least the vocabulary ({vocab_size} tokens): it keeps every token.")
    if setting["top_p"] < 0.05:
        st.info("A tiny top-p keeps only the most likely token (top-p always keeps at least one).")


def stages(model, logits, setting: dict) -> None:
    stage_probs = distribution_stages(logits, temperature=setting["temperature"], top_k=setting["top_k"],
                                      top_p=setting["top_p"])
    ids = np.argsort(-stage_probs["raw"], kind="stable")[:TOP]
    shown = {STAGE_NAMES[name]: probs[ids] for name, probs in stage_probs.items()}
    state.show_chart(charts.stage_bars(shown, words(model, ids), title="The distribution at every stage"))
    cols = st.columns(len(stage_probs))
    for col, (name, probs) in zip(cols, stage_probs.items()):
        col.metric(STAGE_NAMES[name], f"{explain.kept_count(probs)} tokens",
                   f"entropy {explain.entropy_bits(probs):.2f} bits", delta_color="off", delta_arrow="off")
    st.caption("Temperature divides the logits before softmax (below 1 sharpens, above 1 flattens); top-k keeps "
               "the k most likely tokens; top-p keeps the fewest most likely tokens whose total reaches p. After "
               "each cut the rest is renormalised to add up to 1.")


def sampler(setting: dict, seed: int | None = None) -> Sampler:
    return Sampler(temperature=setting["temperature"], top_k=setting["top_k"], top_p=setting["top_p"],
                   seed=setting["seed"] if seed is None else seed)


def generation(model, prompt, setting: dict) -> None:
    count = st.slider("New tokens", 1, 12, 5, key="new_tokens")
    result = model.generate(list(prompt.ids), count, sampler(setting))
    st.markdown(f"**{' '.join(prompt.tokens)}** {' '.join(result.new_tokens)}  \n"
                f"_stopped: {result.stop_reason.replace('_', ' ')}_")
    table = {"step": list(range(1, len(result.steps) + 1)), "token": [step.token for step in result.steps],
             "probability": [step.probability for step in result.steps]}
    st.dataframe(table, hide_index=True)
    index = st.slider("Show step", 1, len(result.steps), len(result.steps), key="kv_step") - 1
    kv_cache_view(model, prompt, result, index)


def kv_cache_view(model, prompt, result, index: int) -> None:
    """Step `index`'s newest query against every cached key, one heatmap row per head and layer."""
    step = result.steps[index]
    tokens = list(prompt.tokens) + [earlier.token for earlier in result.steps[:index]]
    labels = charts.token_labels(tokens)
    config = model.config
    heads = [f"layer {layer} head {head}" for layer in range(config.n_layer) for head in range(config.n_head)]
    weights = np.concatenate(step.weights)  # n_layer x [H, T] -> [n_layer * H, T]
    queries = np.concatenate(step.queries)  # n_layer x [H, D] -> [n_layer * H, D]
    dims = [f"d{i}" for i in range(queries.shape[1])]
    state.show_chart(charts.side_by_side([
        charts.heatmap(weights, heads, labels, title=f"Step {index + 1}: the new query over {len(labels)} cached keys",
                       row_title="query of the newest token (per head)"),
        charts.heatmap(queries, heads, dims, title="The new query vectors", value_title="value", row_title="head",
                       col_title="dimension", diverging=True, text=False, cell=12),
    ]))
    st.caption("While generating, only the newest token asks a question: its query is one vector per head, "
               "compared with the keys of every token so far, which are kept (cached) instead of recomputed. "
               f"It chose '{step.token}' with probability {step.probability:.3f}.")


def run_setting(model, prompt, setting: dict, samples: int, new_tokens: int, seed: int) -> dict:
    """N seeded generations with one setting, and the statistics the lab shows."""
    if setting["temperature"] == 0:  # greedy: every seed gives the same continuation
        results = [model.generate(list(prompt.ids), new_tokens, sampler(setting, seed))] * samples
    else:
        results = [model.generate(list(prompt.ids), new_tokens, sampler(setting, seed + n)) for n in range(samples)]
    first = np.array([result.steps[0].token_id for result in results])
    chosen = [step.probability for result in results for step in result.steps]
    theoretical = results[0].steps[0].distribution
    return {
        "continuations": Counter(" ".join(result.new_tokens) or "(end)" for result in results),
        "observed": explain.observed_frequencies(first, theoretical.size), "theoretical": theoretical,
        "entropy": explain.entropy_bits(theoretical), "kept": explain.kept_count(theoretical),
        "surprisal": explain.mean_surprisal(chosen),
        "repetition": float(np.mean([explain.repetition_rate(result.new_tokens) for result in results])),
    }


@st.fragment
def lab(model, prompt) -> None:
    """Several settings side by side (a fragment: editing the lab does not recompute the page)."""
    table = st.data_editor(LAB_DEFAULTS, num_rows="dynamic", hide_index=True, key="lab_settings")
    cols = st.columns(3)
    samples = cols[0].slider("Samples per setting (N)", 5, 100, 10, key="lab_samples")
    new_tokens = cols[1].slider("Tokens per sample", 1, 8, 3, key="lab_tokens")
    seed = cols[2].number_input("First seed", 0, 2**31 - 1, 0, key="lab_seed")
    results = {}
    progress = st.progress(0.0, text="Sampling ...")
    for number, row in enumerate(table.to_dict("records")):
        name = str(row.get("name") or f"setting {number + 1}")
        try:
            setting = {"temperature": float(row["temperature"]), "top_k": int(row["top_k"]),
                       "top_p": float(row["top_p"]), "seed": 0}
            key = (prompt.ids, tuple(setting.values()), samples, new_tokens, int(seed))
            results[name] = state.remembered("lab", key, lambda: run_setting(model, prompt, setting, samples,
                                                                              new_tokens, int(seed)))
        except (TypeError, ValueError) as error:
            st.warning(f"Setting '{name}' skipped: {error}")
        progress.progress((number + 1) / max(len(table), 1), text=f"Sampled '{name}'")
    progress.empty()
    if results:
        lab_results(model, results)


def lab_results(model, results: dict) -> None:
    summary = [{"setting": name, "entropy (bits)": result["entropy"], "tokens kept": result["kept"],
                "mean surprisal (bits)": result["surprisal"], "repetition": result["repetition"],
                "distinct continuations": len(result["continuations"])} for name, result in results.items()]
    st.dataframe(pd.DataFrame(summary), hide_index=True)
    st.caption("Entropy and tokens kept: of the distribution the first token is drawn from. Mean surprisal: "
               "-log2 of each chosen token's probability, averaged (0 = no surprise). Repetition: the share of "
               "generated tokens that repeat an earlier one in the same continuation.")
    state.show_chart(charts.side_by_side([frequency_chart(model, name, result) for name, result in results.items()],
                                         columns=LAB_COLUMNS))
    columns = st.columns(LAB_COLUMNS)
    for index, (name, result) in enumerate(results.items()):
        common = "\n".join(f"- `{text}` × {count}" for text, count in result["continuations"].most_common(5))
        columns[index % LAB_COLUMNS].markdown(f"**{name}**\n{common}")


def frequency_chart(model, name: str, result: dict):
    """The first sampled token's observed frequency against the distribution it was drawn from."""
    ids = np.argsort(-np.maximum(result["observed"], result["theoretical"]), kind="stable")[:8]
    return charts.grouped_bars(words(model, ids), {"observed": result["observed"][ids],
                                                   "theoretical": result["theoretical"][ids]},
                               title=f"{name}: first token", width=220)


def main() -> None:
    prompt = state.current_prompt()
    model = state.current_model()
    trace = state.trace(prompt.ids) if prompt is not None else None
    if trace is not None:
        probabilities(model, trace.next_token_probs)
    setting = settings()
    setting_notes(setting, model.config.vocab_size)
    if trace is None:
        return
    stages(model, trace.logits[-1], setting)
    state.lazy_tabs("sampling_tab", {"Step by step, with a KV cache": lambda: generation(model, prompt, setting),
                                     "Comparison lab": lambda: lab(model, prompt)})


state.render_page("Next token and sampling", main,
                  "How one token is picked from the model's probabilities, and how the settings change what you get.")
