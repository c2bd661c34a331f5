"""The model: config, parameters, the forward pass and its operations, attention, the trace, sampling, interventions."""
