"""Metric sinks: metrics.jsonl (always), a rich progress bar, Weights & Biases."""
