"""Checkpoint files: written atomically, read without ever executing code."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hindsight.train import faults


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
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: refused: not a plain tensor checkpoint ({reason})") from None


def rng_state(random: np.random.RandomState) -> dict[str, Any]:
    """A numpy RandomState's state as tensors and numbers (weights_only-loadable)."""
    _, keys, pos, has_gauss, cached = random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
            "cached": float(cached)}


def set_rng_state(random: np.random.RandomState, state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` saved."""
    random.set_state(("MT19937", state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"],
                      state["cached"]))
