"""Shared test settings: physics only, no W&B network or files, small specs."""

import os

os.environ.setdefault("MUJOCO_GL", "disable")
os.environ.setdefault("WANDB_MODE", "disabled")

import copy  # noqa: E402
import json  # noqa: E402

import pytest  # noqa: E402

TINY_SPEC = {
    "seed": 0,
    "env": {"kind": "point_reacher"},
    "relabeler": {"kind": "none"},
    "agent": {"kind": "sac", "hidden": [32, 32], "batch_size": 64, "gamma": 0.97},
    "buffer": {"kind": "replay", "capacity": 2000},
    "train": {"epochs": 2, "loops_per_epoch": 2, "episodes_per_loop": 2, "updates_per_loop": 10, "warmup_steps": 80},
    "eval": {"episodes": 4},
    "logging": {"wandb": {"mode": "disabled"}, "progress": False},
}


@pytest.fixture
def tiny_spec() -> dict:
    """A PointReacher run spec small enough to train in about a second."""
    return copy.deepcopy(TINY_SPEC)


# Metrics that measure wall time, not training: equal runs differ in them.
TIMING_KEYS = ("train/steps_per_s", "train/updates_per_s", "time/epoch_s", "relabel/seconds")
# ... plus the relabel call counter, which a resumed or population run may count differently.
TIMING_AND_CALL_KEYS = (*TIMING_KEYS, "relabel/calls")


def without_timings(rows: list[dict], keys: tuple[str, ...] = TIMING_KEYS) -> list[dict]:
    """The metrics rows without the ``keys`` columns."""
    return [{k: v for k, v in row.items() if k not in keys} for row in rows]


def metrics_rows(path, keys: tuple[str, ...] = TIMING_AND_CALL_KEYS) -> list[dict]:
    """A metrics.jsonl file's rows without the ``keys`` columns."""
    return without_timings([json.loads(line) for line in path.read_text().splitlines()], keys)
