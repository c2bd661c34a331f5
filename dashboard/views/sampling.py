"""Next token and sampling: logits -> probabilities, the sampling stages (temperature, top-k,
top-p) side by side, step-by-step generation with the new query against the growing KV
cache, and a lab comparing several settings over N seeded samples each. The settings are kept
for the session (across tabs and pages)."""
import math
from collections import Counter
from collections.abc import Mapping

import numpy as np
import pandas as pd
import streamlit as st

from core.explain import sampling_lab
from core.text.markdown import code, escaped
from core.model.sampling import Sampler, distribution_stages, ranking
from dashboard import charts, figures, frame, glossary, models, traces, widgets
from dashboard.navigation import SAMPLING
from dashboard.prompt import current_prompt
from dashboard.text import safe_message
from dashboard.wording import count

TOP = 12
LAB_COLUMNS = 2  # the lab's charts per row (two fit the page at 1280 px)
LAB_CHART_WIDTH = charts.PAGE_WIDTH // LAB_COLUMNS - 100  # pixels of bars: the rest for the axes and the gap
STAGE_NAMES = {"raw": "raw softmax", "tempered": "after temperature", "top_k": "after top-k",
               "top_p": "after top-p (renormalised)"}
KV_LABEL_ROOM = 160  # pixels beside a KV-cache heatmap's cells: "layer 11 head 11", axis title, paddings
MAX_KV_ROWS = 48  # heads the KV-cache view shows at once (all layers' when they fit, else one layer's)
CERTAIN = 0.999  # a top token this likely makes every sampling stage one token
UNSURE_EXAMPLE = "the dog"  # a prompt where the bundled model is unsure
MAX_LAB_SETTINGS = 8  # rows of the comparison lab's table run at once; the browser's extra rows are dropped
MAX_SETTING_NAME = 40  # characters of a lab setting's name shown
LAB_RANGES = {"temperature": (0.0, 3.0), "top_k": (0, 100_000), "top_p": (0.001, 1.0)}  # as the sliders allow
SETTING_DEFAULTS = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 0}
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
    ids = ranking(probs)[:TOP]
    figures.show_chart(charts.bars(words(model, ids), probs[ids],
                                   title=f"The {TOP} most likely next tokens of {probs.size:,} (softmax)"))
    st.caption("The model gives every word in its vocabulary a score (a logit); softmax turns the scores into "
               "probabilities that add up to 1.")


def settings() -> dict:
    """The sampling settings from the sliders (shared by the stages and the generation)."""
    st.subheader("Choosing one token")
    for key, default in SETTING_DEFAULTS.items():  # kept for the session: no default on the widgets
        widgets.keep(key, default)
    cols = st.columns(4)
    temperature = cols[0].slider("Temperature", 0.0, 3.0, step=0.05, **widgets.kept_widget("temperature"),
                                 help="0 = always the most likely token (greedy)")
    top_k = cols[1].number_input("Top-k (0 = off)", 0, 100_000, **widgets.kept_widget("top_k"))
    top_p = cols[2].slider("Top-p (1 = off)", 0.001, 1.0, step=0.001, format="%.3f", **widgets.kept_widget("top_p"))
    seed = cols[3].number_input("Seed", 0, 2**31 - 1, **widgets.kept_widget("seed"))
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
    ids = ranking(stage_probs["raw"])[:TOP]
    shown = {STAGE_NAMES[name]: probs[ids] for name, probs in stage_probs.items()}
    figures.show_chart(charts.stage_bars(shown, words(model, ids), title="The distribution at every stage",
                                         every_label=True))
    cols = st.columns(len(stage_probs))
    for col, (name, probs) in zip(cols, stage_probs.items()):
        col.metric(STAGE_NAMES[name], count(sampling_lab.kept_count(probs), "token"),
                   f"entropy {sampling_lab.entropy_bits(probs):.2f} bits", delta_color="off", delta_arrow="off")
    certainty_note(model, stage_probs["raw"])
    st.caption("Temperature divides the logits before softmax (below 1 sharpens, above 1 flattens); top-k keeps "
               "the k most likely tokens; top-p keeps the fewest most likely tokens whose total reaches p. After "
               "each cut the rest is renormalised to add up to 1.")


def certainty_note(model, raw) -> None:
    """When the model is (almost) sure, no setting can change the pick: say so, and where to look."""
    best = int(ranking(raw)[0])
    if raw[best] < CERTAIN:
        return
    example = f" such as '{UNSURE_EXAMPLE}'" if not model.tokenizer.unknown_words(UNSURE_EXAMPLE) else ""
    st.info(f"The model is sure of '{escaped(model.tokenizer.token(best))}' ({raw[best]:.1%}), so every stage is in effect "
            "that one token (entropy about 0 bits) and temperature, top-k and top-p cannot change the pick. Try a prompt where the model is unsure"
            f"{example} (the sidebar has examples): then the stages differ.")


def sampler(setting: dict, seed: int | None = None) -> Sampler:
    return Sampler(temperature=setting["temperature"], top_k=setting["top_k"], top_p=setting["top_p"],
                   seed=setting["seed"] if seed is None else seed)


def generation(model, prompt, setting: dict) -> None:
    widgets.keep("new_tokens", 5, range(1, 13))
    new_tokens = st.slider("New tokens", 1, 12, **widgets.kept_widget("new_tokens"))
    result = model.generate(list(prompt.ids), new_tokens, sampler(setting))
    decode = model.tokenizer.decode
    st.markdown(f"**{escaped(decode(list(prompt.ids)))}** {escaped(decode(result.new_ids))}  \n"
                f"_stopped: {result.stop_reason.replace('_', ' ')}_")
    table = {"step": list(range(1, len(result.steps) + 1)), "token": [step.token for step in result.steps],
             "probability": [step.probability for step in result.steps]}
    st.dataframe(table, hide_index=True)
    if len(result.steps) == 1:  # a slider needs two steps to choose from
        st.caption(f"One step ({result.stop_reason.replace('_', ' ')}): the KV cache below is that step's.")
        index = 0
    else:
        index = st.slider("Show step", 1, len(result.steps), len(result.steps), key="kv_step") - 1
    kv_cache_view(model, prompt, result, index)


def kv_layers(config) -> list[int]:
    """The layers whose heads the KV-cache view shows: all when they fit, else the one picked."""
    if config.n_layer * config.n_head <= MAX_KV_ROWS:
        return list(range(config.n_layer))
    return [widgets.choose_layer(config, "kv_layer",
                                 help=f"{config.n_layer} layers x {config.n_head} heads: one layer at a time")]


def kv_cache_view(model, prompt, result, index: int) -> None:
    """Step `index`'s newest query against every cached key, one heatmap row per head."""
    step = result.steps[index]
    tokens = list(prompt.tokens) + [earlier.token for earlier in result.steps[:index]]
    labels = charts.token_labels(tokens)
    layers = kv_layers(model.config)
    heads = [f"layer {layer} head {head}" for layer in layers for head in range(model.config.n_head)]
    weights = np.concatenate([step.weights[layer] for layer in layers])  # layers x [H, T] -> [rows, T]
    queries = np.concatenate([step.queries[layer] for layer in layers])  # layers x [H, D] -> [rows, D]
    dims = [f"d{i}" for i in range(queries.shape[1])]
    cells = charts.PAGE_WIDTH - KV_LABEL_ROOM  # pixels of cells of a heatmap alone in its row
    cell = max(3, min(charts.CELL, cells // len(labels)))
    query_cell = max(4, min(12, cells // len(dims)))
    in_a_row = cell * len(labels) + query_cell * len(dims) + 2 * KV_LABEL_ROOM + charts.CONCAT_GAP <= charts.PAGE_WIDTH
    figures.show_chart(charts.side_by_side([
        charts.heatmap(weights, heads, labels, title=f"Step {index + 1}: the new query over {len(labels)} cached keys",
                       row_title="query of the newest token (per head)", cell=cell, text=cell >= charts.CELL,
                       every_label=True, legend_below=True),
        charts.heatmap(queries, heads, dims, title="The new query vectors", value_title="value", row_title="head",
                       col_title="dimension", diverging=True, text=False, cell=query_cell, every_label=True,
                       legend_below=True),
    ], columns=None if in_a_row else 1))
    st.caption("While generating, only the newest token asks a question: its query is one vector per head, "
               "compared with the keys of every token so far, which are kept (cached) instead of recomputed. "
               f"It chose '{escaped(step.token)}' with probability {step.probability:.3f}.")


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
        "observed": sampling_lab.observed_frequencies(first, theoretical.size), "theoretical": theoretical,
        "entropy": sampling_lab.entropy_bits(theoretical), "kept": sampling_lab.kept_count(theoretical),
        "surprisal": sampling_lab.mean_surprisal(chosen),
        "repetition": float(np.mean([sampling_lab.repetition_rate(result.new_tokens) for result in results])),
    }


def drop_extra_rows(key: str, rows: int) -> int:
    """Cut the rows the browser added to the data editor `key` (which starts with `rows` rows) to
    MAX_LAB_SETTINGS in all, before Streamlit builds the table from them: the editor's state comes
    from the client, and each added row costs the server work. Returns how many were dropped."""
    state = st.session_state.get(key)
    added = state.get("added_rows") if isinstance(state, Mapping) else None
    deleted = state.get("deleted_rows") if isinstance(state, Mapping) else None
    deleted = {row for row in deleted if isinstance(row, int) and 0 <= row < rows} if isinstance(deleted, list) else set()
    room = max(0, MAX_LAB_SETTINGS - (rows - len(deleted)))
    if not isinstance(added, list) or len(added) <= room:
        return 0
    dropped = len(added) - room
    del added[room:]
    return dropped


def lab_settings(table: pd.DataFrame) -> list[tuple[str, dict]]:
    """The table's rows as (name, setting), each checked against LAB_RANGES before any sampling: a
    row with a missing, non-numeric or out-of-range value is skipped with a notice."""
    settings_list = []
    for number, row in enumerate(table.to_dict("records")):
        name = row.get("name")
        name = str(name)[:MAX_SETTING_NAME] if isinstance(name, str) and name.strip() else f"setting {number + 1}"
        try:
            setting = {"temperature": float(row["temperature"]), "top_k": float(row["top_k"]),
                       "top_p": float(row["top_p"]), "seed": 0}
        except (KeyError, TypeError, ValueError, OverflowError):
            st.warning(f"Setting '{escaped(name)}' skipped: temperature, top-k and top-p must all be numbers.")
            continue
        bad = [f"{field} must be between {low:g} and {high:g}" for field, (low, high) in LAB_RANGES.items()
               if not (math.isfinite(setting[field]) and low <= setting[field] <= high)]
        if not setting["top_k"].is_integer():
            bad.append("top_k must be a whole number")
        if bad:
            st.warning(f"Setting '{escaped(name)}' skipped: {'; '.join(bad)}.")
            continue
        setting["top_k"] = int(setting["top_k"])
        settings_list.append((name, setting))
    return settings_list


@st.fragment
def lab(model, prompt) -> None:
    """Several settings side by side (a fragment: editing the lab does not recompute the page)."""
    dropped = drop_extra_rows("lab_settings", len(LAB_DEFAULTS))
    table = st.data_editor(LAB_DEFAULTS, num_rows="dynamic", hide_index=True, key="lab_settings")
    dropped += max(0, len(table) - MAX_LAB_SETTINGS)
    table = table.head(MAX_LAB_SETTINGS)
    if dropped:
        st.warning(f"The lab compares at most {MAX_LAB_SETTINGS} settings at once: the first {MAX_LAB_SETTINGS} "
                   f"rows are used and {count(dropped, 'more row')} dropped.")
    settings_list = lab_settings(table)
    most, default = (20, 5) if model.parameter_count > models.LARGE_MODEL else (100, 10)  # bounded time per request
    cols = st.columns(3)
    samples = cols[0].slider("Samples per setting (N)", 5, most, default, key=f"lab_samples_{most}")
    new_tokens = cols[1].slider("Tokens per sample", 1, 8, 3, key="lab_tokens")
    seed = cols[2].number_input("First seed", 0, 2**31 - 1, 0, key="lab_seed")
    results = {}
    progress = st.progress(0.0, text="Sampling ...")
    for number, (name, setting) in enumerate(settings_list):
        try:
            key = (prompt.ids, tuple(setting.values()), samples, new_tokens, int(seed))
            results[name] = traces.remembered("lab", key, lambda: run_setting(model, prompt, setting, samples,
                                                                              new_tokens, int(seed)))
        except (TypeError, ValueError) as error:
            st.warning(f"Setting '{escaped(name)}' skipped: {safe_message(error)}")
        progress.progress((number + 1) / max(len(settings_list), 1), text=f"Sampled '{escaped(name)}'")
    progress.empty()
    if results:
        lab_results(model, results)


def lab_results(model, results: dict) -> None:
    summary = [{"setting": name, "entropy (bits)": result["entropy"], "tokens kept": result["kept"],
                "mean surprisal (bits)": result["surprisal"], "repetition": result["repetition"],
                "distinct continuations": len(result["continuations"])} for name, result in results.items()]
    st.dataframe(pd.DataFrame(summary), hide_index=True)
    st.caption(f"{glossary.link('entropy', 'Entropy')} and tokens kept: of the distribution the first token is drawn "
               f"from. Mean {glossary.link('surprisal')}: "
               "-log2 of each chosen token's probability, averaged (0 = no surprise). Repetition: the share of "
               "generated tokens that repeat an earlier one in the same continuation.")
    figures.show_chart(charts.side_by_side([frequency_chart(model, name, result) for name, result in results.items()],
                                           columns=LAB_COLUMNS))
    columns = st.columns(LAB_COLUMNS)
    for index, (name, result) in enumerate(results.items()):
        common = "\n".join(f"- {code(text)} × {times}" for text, times in result["continuations"].most_common(5))
        columns[index % LAB_COLUMNS].markdown(f"**{escaped(name)}**\n{common}")


def frequency_chart(model, name: str, result: dict):
    """The first sampled token's observed frequency against the distribution it was drawn from."""
    ids = ranking(np.maximum(result["observed"], result["theoretical"]))[:8]
    return charts.grouped_bars(words(model, ids), {"observed": result["observed"][ids],
                                                   "theoretical": result["theoretical"][ids]},
                               title=f"{name}: first token", width=LAB_CHART_WIDTH)


def main() -> None:
    prompt = current_prompt()
    model = models.current_model()
    trace = traces.trace(prompt.ids) if prompt is not None else None
    if trace is not None:
        probabilities(model, trace.next_token_probs)
    setting = settings()
    setting_notes(setting, model.config.vocab_size)
    if trace is None:
        return
    stages(model, trace.logits[-1], setting)
    widgets.lazy_tabs(SAMPLING, {SAMPLING.tabs.generation: lambda: generation(model, prompt, setting),
                                 SAMPLING.tabs.lab: lambda: lab(model, prompt)})


frame.render_page(SAMPLING, main,
                  "How one token is picked from the model's probabilities, and how the settings change what you get "
                  f"({glossary.link('logit')}, {glossary.link('softmax')}, {glossary.link('temperature')}, "
                  f"{glossary.link('top-k and top-p')}, {glossary.link('KV cache')}, {glossary.link('KL divergence')}, "
                  f"{glossary.link('total variation')}, {glossary.link('bits and nats')}).")
