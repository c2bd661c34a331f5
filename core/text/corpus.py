"""The bundled corpus: short English sentences generated from a small grammar of facts.

Each fact is a clause whose last word follows from the words before it ("the sky is" ->
"blue", "the cow lives on the" -> "farm", "the opposite of hot is" -> "cold"). Every fact is
said in several frames ("i know that the sky is blue .", "what colour is the sky ? it is
blue .", two facts joined by ", and"). For each fact one frame is held out of the training
text and becomes a held-out prompt ("did you know that the sky is" -> "blue"): the model has
seen the fact and the frame, never together, so it must compose them.

`generate_corpus(seed)` is deterministic; `python -m core.text.corpus` rewrites
core/data/corpus.txt (one sentence a line) and core/data/heldout.tsv (prompt<TAB>expected).
`load_corpus()`, `load_heldout()`, `split_corpus()` and `heldout_scores()` read and use them.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.data import CORPUS_PATH, HELDOUT_PATH

SEED = 0
MAX_EXP_ARGUMENT = 709.0  # math.exp overflows above about 709.78: the perplexity is then inf
JOINED_SENTENCES = 1500  # sentences of two facts joined by ", and"

COLOURS = {
    "sky": "blue", "sea": "blue", "ocean": "blue", "grass": "green", "leaf": "green", "lime": "green",
    "cucumber": "green", "lettuce": "green", "frog": "green", "sun": "yellow", "banana": "yellow",
    "lemon": "yellow", "corn": "yellow", "butter": "yellow", "snow": "white", "milk": "white", "salt": "white",
    "cloud": "white", "swan": "white", "pearl": "white", "coal": "black", "crow": "black", "ink": "black",
    "tomato": "red", "cherry": "red", "strawberry": "red", "rose": "red", "fire": "red", "blood": "red",
    "carrot": "orange", "pumpkin": "orange", "tiger": "orange", "pig": "pink", "flamingo": "pink",
    "chocolate": "brown", "bear": "brown", "mud": "brown", "plum": "purple", "grape": "purple", "violet": "purple",
}
SOUNDS = {
    "dog": "woof", "cat": "meow", "cow": "moo", "sheep": "baa", "duck": "quack", "pig": "oink", "horse": "neigh",
    "owl": "hoot", "lion": "roar", "mouse": "squeak", "frog": "ribbit", "bee": "buzz", "snake": "hiss",
    "crow": "caw", "hen": "cluck", "dove": "coo",
}
ABILITIES = {  # "the fish can swim"; no animal here is also taught (that would make "can" ambiguous)
    "fish": "swim", "bird": "fly", "frog": "jump", "kangaroo": "hop", "snake": "slither", "cheetah": "run",
    "mole": "dig", "spider": "climb", "bee": "sting", "duck": "waddle", "eagle": "soar", "cat": "purr",
    "penguin": "dive", "owl": "see",
}
TAUGHT = {
    "dog": "sit", "parrot": "talk", "horse": "jump", "seal": "clap", "dolphin": "spin", "elephant": "paint",
    "monkey": "dance", "pony": "bow",
}
HOMES = {  # animal -> (preposition, place)
    "cow": ("on", "farm"), "bee": ("in", "hive"), "bear": ("in", "forest"), "camel": ("in", "desert"),
    "penguin": ("on", "ice"), "monkey": ("in", "jungle"), "owl": ("in", "barn"), "rabbit": ("in", "burrow"),
    "spider": ("in", "web"), "mole": ("under", "ground"), "duck": ("on", "pond"), "whale": ("in", "ocean"),
    "squirrel": ("in", "tree"), "fox": ("in", "den"), "bat": ("in", "cave"), "horse": ("in", "stable"),
    "eagle": ("in", "mountains"), "crab": ("on", "beach"), "fish": ("in", "river"),
}
FOODS = {
    "cow": "grass", "rabbit": "carrots", "monkey": "bananas", "cat": "fish", "panda": "bamboo", "bird": "seeds",
    "bear": "honey", "mouse": "cheese", "dog": "bones", "horse": "hay", "squirrel": "nuts", "koala": "leaves",
    "frog": "flies", "hen": "corn",
}
OPPOSITE_PAIRS = [
    ("hot", "cold"), ("big", "small"), ("up", "down"), ("day", "night"), ("fast", "slow"), ("happy", "sad"),
    ("wet", "dry"), ("light", "dark"), ("open", "closed"), ("full", "empty"), ("loud", "quiet"),
    ("hard", "soft"), ("early", "late"), ("tall", "short"), ("left", "right"), ("old", "new"),
    ("black", "white"), ("good", "bad"), ("rich", "poor"), ("strong", "weak"), ("clean", "dirty"),
    ("near", "far"),
]

# frames around one clause; "{}" is the clause (without its full stop)
STATEMENT_FRAMES = [
    "{} .", "i know that {} .", "everyone knows that {} .", "my friend says that {} .", "did you know that {} ?",
    "it is true that {} .", "we learned that {} .", "the teacher said that {} .", "in the story , {} .",
    "yes , {} .", "i think that {} .", "my mother told me that {} .",
]
QUESTION_FRAME = "question"  # "what colour is the sky ? it is blue ."
FRAMES = STATEMENT_FRAMES + [QUESTION_FRAME]


@dataclass(frozen=True)
class Fact:
    """One fact in three shapes: a clause ("the sky is" + "blue"), and a question with its
    answer ("what colour is the sky ?", "it is" + "blue")."""

    clause: str
    question: str
    reply: str
    answer: str

    def statement(self) -> str:
        return f"{self.clause} {self.answer}"


def all_facts() -> list[Fact]:
    """Every fact of the grammar, in a fixed order."""
    facts = [Fact(f"the {thing} is", f"what colour is the {thing} ?", "it is", colour)
             for thing, colour in COLOURS.items()]
    facts += [Fact(f"the {animal} says", f"what does the {animal} say ?", "it says", sound)
              for animal, sound in SOUNDS.items()]
    facts += [Fact(f"the {animal} can", f"what can the {animal} do ?", "it can", verb)
              for animal, verb in ABILITIES.items()]
    facts += [Fact(f"the {animal} can be taught to", f"what can the {animal} be taught to do ?",
                   "it can be taught to", verb) for animal, verb in TAUGHT.items()]
    facts += [Fact(f"the {animal} lives {preposition} the", f"where does the {animal} live ?",
                   f"it lives {preposition} the", place) for animal, (preposition, place) in HOMES.items()]
    facts += [Fact(f"the {animal} eats", f"what does the {animal} eat ?", "it eats", food)
              for animal, food in FOODS.items()]
    opposites = OPPOSITE_PAIRS + [(second, first) for first, second in OPPOSITE_PAIRS]
    facts += [Fact(f"the opposite of {word} is", f"what is the opposite of {word} ?", "it is", other)
              for word, other in opposites]
    return facts


def prompt_in_frame(fact: Fact, frame: str) -> str:
    """The words of `fact` said in `frame`, up to (not including) the answer."""
    if frame == QUESTION_FRAME:
        return f"{fact.question} {fact.reply}"
    return frame.split("{}")[0] + fact.clause


def sentence_in_frame(fact: Fact, frame: str) -> str:
    """The whole sentence: `fact` said in `frame`, answer and punctuation included."""
    if frame == QUESTION_FRAME:
        return f"{fact.question} {fact.reply} {fact.answer} ."
    return frame.format(fact.statement())


def generate_corpus(seed: int = SEED) -> tuple[list[str], list[tuple[str, str]]]:
    """(training sentences, held-out (prompt, expected word) pairs), the same for the same seed.

    Every fact appears in the plain frame ("the sky is blue .") and in every other frame but
    one, which is held out; JOINED_SENTENCES more sentences join two random facts with ", and".
    """
    rng = random.Random(seed)
    sentences, heldout = [], []
    for fact in all_facts():
        held_frame = rng.choice(FRAMES[1:])  # never the plain frame: "the sky is blue ." stays in training
        heldout.append((prompt_in_frame(fact, held_frame), fact.answer))
        sentences += [sentence_in_frame(fact, frame) for frame in FRAMES if frame != held_frame]
    facts = all_facts()
    for _ in range(JOINED_SENTENCES):
        first, second = rng.sample(facts, 2)
        sentences.append(f"{first.statement()} , and {second.statement()} .")
    rng.shuffle(sentences)
    return sentences, heldout


def write_corpus(seed: int = SEED, corpus_path: Path = CORPUS_PATH, heldout_path: Path = HELDOUT_PATH) -> None:
    """Write the generated corpus.txt and heldout.tsv."""
    sentences, heldout = generate_corpus(seed)
    Path(corpus_path).write_text("\n".join(sentences) + "\n", encoding="utf-8")
    Path(heldout_path).write_text("".join(f"{prompt}\t{answer}\n" for prompt, answer in heldout), encoding="utf-8")


def load_corpus(path: Path = CORPUS_PATH) -> list[str]:
    """The training sentences, one a line (blank lines skipped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def load_heldout(path: Path = HELDOUT_PATH) -> list[tuple[str, str]]:
    """The held-out (prompt, expected next word) pairs; ValueError for a malformed line."""
    pairs = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise ValueError(f"{path} line {number}: expected 'prompt<TAB>expected word', got {line!r}")
        pairs.append((parts[0].strip(), parts[1].strip()))
    return pairs


def split_corpus(sentences, val_fraction: float = 0.1, seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, validation): a seeded random `val_fraction` of the sentences for validation."""
    sentences = list(sentences)
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    count = round(len(sentences) * val_fraction)
    if count < 1 or count >= len(sentences):
        raise ValueError(f"{len(sentences)} sentences are too few to split off a {val_fraction:.0%} validation set")
    order = np.random.default_rng(seed).permutation(len(sentences))
    validation = set(order[:count].tolist())
    return ([s for i, s in enumerate(sentences) if i not in validation],
            [s for i, s in enumerate(sentences) if i in validation])


def heldout_scores(model, pairs=None) -> dict:
    """Top-1 accuracy and perplexity of `model` on held-out (prompt, expected word) pairs.

    `model` needs `.forward(ids) -> logits [L, V]` and `.tokenizer`. Each prompt is fed as it is
    (no end-of-text token in front); its last position's prediction is compared with the
    expected word. Returns {"accuracy", "perplexity", "count", "correct": [bool per pair],
    "predicted": [the most likely next token's id per pair]}.
    The log-probabilities use Python's math (libm), not NumPy's float64 exp and log, whose
    AVX-512 and AVX2 kernels differ in the last bit: the scores are the same on both.
    """
    pairs = load_heldout() if pairs is None else list(pairs)
    if not pairs:
        raise ValueError("no held-out pairs to score")
    tokenizer = model.tokenizer
    correct, log_probs, predicted = [], [], []
    for prompt, expected in pairs:
        expected_ids = tokenizer.encode(expected)
        if len(expected_ids) != 1 or expected_ids[0] == tokenizer.unk_id:
            raise ValueError(f"the expected word {expected!r} is not one known token")
        logits = np.asarray(model.forward(np.array(tokenizer.encode(prompt))), dtype=np.float64)[-1]  # [V]
        shifted = (logits - logits.max()).tolist()
        log_probs.append(shifted[expected_ids[0]] - math.log(math.fsum(math.exp(value) for value in shifted)))
        predicted.append(int(np.argmax(logits)))
        correct.append(predicted[-1] == expected_ids[0])
    mean_loss = -math.fsum(log_probs) / len(log_probs)
    return {"accuracy": float(np.mean(correct)), "count": len(pairs), "correct": correct, "predicted": predicted,
            "perplexity": math.exp(mean_loss) if mean_loss < MAX_EXP_ARGUMENT else math.inf}


if __name__ == "__main__":
    write_corpus()
    print(f"wrote {CORPUS_PATH} and {HELDOUT_PATH}")
