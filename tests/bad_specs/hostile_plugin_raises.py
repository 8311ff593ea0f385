"""A plugin that raises as it is imported."""

raise RuntimeError("boom at import\nsecond line of the message")
