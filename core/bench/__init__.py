"""Benchmarks: the attention kernel, training and GPT-2 against NumPy, PyTorch and transformers, timed in turn."""
