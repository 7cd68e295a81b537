"""The OpenAI-compatible surface: online completions, models, Files and Batches."""
