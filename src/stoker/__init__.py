"""Stoker keeps GPUs warm and fed: a durable queue and a warm, batching runner pool for LLM work."""

__version__ = "0.1.0"
