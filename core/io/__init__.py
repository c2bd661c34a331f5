"""Files: checkpoints in Hugging Face's layout (safetensors, validated before reading, saved atomically) and the models folder."""
