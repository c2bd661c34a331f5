"""Training data: each sentence becomes its tokens plus `<|endoftext|>`; the sentences, in order,
form one stream (read cyclically). A training example is `seq_len + 1` tokens starting at a
sentence's first token (inputs = the first seq_len, targets = the next), so position 0 is always a
sentence start, as in a prompt typed into the model; later positions carry on into the following
sentences. Batches draw sentence starts without repetition within an epoch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_UNKNOWN_FRACTION = 0.25  # above this share of <unk> tokens the corpus does not fit the vocabulary


@dataclass
class TokenStream:
    """Sentences as one cyclic stream of ids, and where each sentence starts in it."""

    ids: np.ndarray  # [T + seq_len + 1]: the stream, then its beginning again (so every window fits)
    starts: np.ndarray  # [number of sentences]
    unknown_tokens: int  # how many tokens were mapped to <unk>
    unknown_words: list[str]  # those words, each once

    def windows(self, chosen: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets), both [len(chosen), seq_len], for the sentences chosen by index."""
        tokens = self.ids[self.starts[chosen][:, None] + np.arange(seq_len + 1)]  # [B, seq_len + 1]
        return tokens[:, :-1], tokens[:, 1:]


def corpus_sentences(corpus) -> list[str]:
    """The sentences of a corpus given as a list of strings or as one string with a sentence a
    line, stripped, blank ones left out; TypeError for anything but strings."""
    if isinstance(corpus, str):
        corpus = corpus.splitlines()
    sentences = list(corpus)
    bad = [sentence for sentence in sentences if not isinstance(sentence, str)]
    if bad:
        raise TypeError(f"the corpus must hold strings (one sentence each), got {type(bad[0]).__name__}")
    return [sentence.strip() for sentence in sentences if sentence.strip()]


def token_stream(tokenizer, sentences: list[str], seq_len: int, what: str = "corpus",
                 remedy: str = "add sentences or use a shorter seq_len") -> TokenStream:
    """The stream of `sentences` for windows of seq_len + 1 tokens; ValueError if too short."""
    encoded = [tokenizer.encode(sentence) + [tokenizer.eos_id] for sentence in sentences]
    lengths = np.array([len(ids) for ids in encoded])
    total = int(lengths.sum())
    if total < seq_len + 1:
        raise ValueError(f"the {what} has {total} tokens, fewer than the {seq_len + 1} one training window needs: "
                         f"{remedy}")
    stream = np.concatenate(encoded)  # [T]
    stream = np.concatenate([stream, stream[:seq_len + 1]])  # cyclic: the last windows wrap around
    unknown = [word for sentence in sentences for word in tokenizer.unknown_words(sentence)]
    return TokenStream(ids=stream, starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]),
                       unknown_tokens=int((stream[:total] == tokenizer.unk_id).sum()),
                       unknown_words=list(dict.fromkeys(unknown)))


class BatchSampler:
    """Sentence indices in batches: a fresh seeded permutation each epoch, none repeated within one."""

    def __init__(self, count: int, batch_size: int, rng: np.random.Generator):
        self.count, self.batch_size, self.rng = count, batch_size, rng
        self.order, self.position = rng.permutation(count), 0

    def next(self) -> np.ndarray:
        if self.position + self.batch_size > self.count:
            self.order, self.position = self.rng.permutation(self.count), 0
        chosen = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return chosen
