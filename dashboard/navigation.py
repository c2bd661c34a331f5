"""The dashboard's pages and their tabs, each named once: a page's script, url path, title, icon and
section of the sidebar's navigation, and the labels of its tabs.

app.py builds `st.navigation` from SECTIONS. Whatever links to a page or opens one of its tabs (the
overview's pipeline, Start here's stops, the glossary's links, the `tab` query parameter) and the
tests name it through these constants, so that a title or a tab's wording lives in one place.
A page's tabs are a NamedTuple: a tuple in the order the tabs are drawn, each label also by name
(`ATTENTION_STEPS.tabs.softmax`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

TAB_PARAMETER = "tab"  # query parameter naming the tab a link opens (read by widgets.lazy_tabs)


class AttentionStepsTabs(NamedTuple):
    embeddings: str = "1. Embeddings"
    qkv: str = "2. Q, K, V"
    scores: str = "3. Scores"
    softmax: str = "4. Softmax"
    weighted_sum: str = "5. Weighted sum"
    influence: str = "6. Who influenced whom"
    vector_map: str = "7. Map of the vectors"
    one_weight: str = "8. One weight"
    rope: str = "9. RoPE"


class BlockStepsTabs(NamedTuple):
    projections: str = "1. Q, K, V projections"
    joined: str = "2. Heads joined, c_proj"
    layer_norm: str = "3. LayerNorm"
    mlp: str = "4. MLP"
    residual: str = "5. Residual stream and logit"


class SamplingTabs(NamedTuple):
    generation: str = "Step by step, with a KV cache"
    lab: str = "Comparison lab"


class PracticeTabs(NamedTuple):
    predict: str = "Predict, then reveal"
    compute: str = "Compute it yourself"


class ExplorerTabs(NamedTuple):
    every_head: str = "Every head"
    lens: str = "Residual stream and logit lens"
    mlp: str = "MLP activations"
    what_if: str = "What if"


class ExperimentsTabs(NamedTuple):
    softmax: str = "Why the softmax must be stable"
    pairs: str = "Minimal pairs"
    ablation: str = "Attention is not explanation"
    learning: str = "Watch learning happen"


@dataclass(frozen=True)
class Page:
    """One page of the dashboard."""

    script: str  # its view, relative to app.py: what st.Page, st.page_link and AppTest.switch_page take
    url_path: str  # its address, http://host/<url_path> (the default page also answers at /)
    title: str
    icon: str
    tabs: tuple[str, ...] = ()  # its tabs' labels, in order (a NamedTuple above)
    tabs_key: str = ""  # session_state key holding the label of its open tab


OVERVIEW = Page("views/overview.py", "overview", "Overview", ":material/map:")
START_HERE = Page("views/start_here.py", "start_here", "Start here", ":material/flag:")
ATTENTION_STEPS = Page("views/attention_steps.py", "attention_steps", "Attention step by step",
                       ":material/calculate:", AttentionStepsTabs(), "steps_tab")
BLOCK_STEPS = Page("views/block_steps.py", "block_steps", "The block step by step", ":material/view_agenda:",
                   BlockStepsTabs(), "block_tab")
SAMPLING = Page("views/sampling.py", "sampling", "Next token and sampling", ":material/casino:", SamplingTabs(),
                "sampling_tab")
PRACTICE = Page("views/practice.py", "practice", "Practice", ":material/quiz:", PracticeTabs(), "practice_tab")
GLOSSARY = Page("views/glossary.py", "glossary", "Glossary", ":material/menu_book:")
EXPLORER = Page("views/explorer.py", "explorer", "Attention explorer", ":material/grid_view:", ExplorerTabs(),
                "explorer_tab")
EXPERIMENTS = Page("views/experiments.py", "experiments", "Experiments", ":material/science:", ExperimentsTabs(),
                   "experiments_tab")
TRAINING = Page("views/training.py", "training", "Training", ":material/model_training:")
BENCHMARK = Page("views/benchmark.py", "benchmark", "Kernel benchmark", ":material/speed:")

DEFAULT = OVERVIEW  # the page at the app's root URL
SECTIONS = {  # the sidebar's navigation: section title -> its pages, in order
    "Learn": (OVERVIEW, START_HERE, ATTENTION_STEPS, BLOCK_STEPS, SAMPLING, PRACTICE, GLOSSARY),
    "Explore": (EXPLORER, EXPERIMENTS),
    "Train and measure": (TRAINING, BENCHMARK),
}
PAGES = tuple(page for pages in SECTIONS.values() for page in pages)


def tab_query(tab: str | None) -> dict[str, str] | None:
    """The query parameters of a link that opens `tab` on its page (None: the page's kept tab)."""
    return {TAB_PARAMETER: tab} if tab else None
