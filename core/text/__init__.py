"""Text to token ids and back: the interface every tokenizer has (tokenizer.py), the word-level
tokenizer (words.py), GPT-2's byte-level BPE (bpe.py), any BPE tokenizer.json of today's open
models (hf.py: Llama, Qwen, Mistral), the bundled corpus (corpus.py), and
escaping such text for Markdown (markdown.py)."""
