"""Benchmarks: the attention kernel, training and GPT-2 against NumPy, PyTorch and transformers."""
