"""Text to token ids and back: the word-level tokenizer, GPT-2's byte-level BPE, the bundled corpus."""
