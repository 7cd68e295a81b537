"""The Anthropic-compatible surface: Messages."""
