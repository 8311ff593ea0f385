"""Relabeling strategies: which other tasks a trajectory (or a minibatch) is stored or scored under."""
