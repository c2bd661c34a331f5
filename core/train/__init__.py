"""Training: the backward pass, the optimiser, the data, the settings, the history and the loop."""
