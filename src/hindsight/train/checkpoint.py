"""Checkpoint files: written atomically, read without ever executing code."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hindsight.train import faults

# 2: {"format", "spec", "agent", "members": [each member's own state]} for every run, single or population.
# 1 (before): a single run's state at the top level, its agent included; a population's as format 2.
FORMAT = 2


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message is meant for the user."""


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to a temporary file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    faults.reached("checkpoint")
    tmp.replace(path)


def load_safe(path: Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``: tensors and plain data only, never code."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint file")
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        return state
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: refused: not a plain tensor checkpoint ({reason})") from None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint in today's format (``FORMAT``), read with ``load_safe``; older formats are converted."""
    state = load_safe(path)
    if not isinstance(state, dict) or "spec" not in state or "agent" not in state:
        raise CheckpointError(f"{path}: refused: not a hindsight checkpoint")
    if state.get("format") == FORMAT:
        return state
    if state.get("format") != 1:
        raise CheckpointError(f"{path}: refused: unknown checkpoint format {state.get('format')!r}")
    member_keys = (
        "epoch",
        "env_steps",
        "updates",
        "metrics_rows",
        "progress",
        "buffer",
        "relabeler",
        "generators",
        "env_rngs",
    )
    members = state["members"] if "members" in state else [state]
    return {
        "format": FORMAT,
        "spec": state["spec"],
        "agent": state["agent"],
        "members": [{key: member[key] for key in member_keys} for member in members],
    }


def rng_state(random: np.random.RandomState) -> dict[str, Any]:
    """A numpy RandomState's state as tensors and numbers (weights_only-loadable)."""
    state = random.get_state(legacy=True)
    assert isinstance(state, tuple)  # a RandomState (MT19937) gives the legacy tuple
    _, keys, pos, has_gauss, cached = state
    return {
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def set_rng_state(random: np.random.RandomState, state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` saved."""
    random.set_state(
        ("MT19937", state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"], state["cached"])
    )
