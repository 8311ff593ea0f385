"""Whole runs: determinism under one seed, and the `hindsight run` command in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from conftest import without_timings

from hindsight.specs import validate
from hindsight.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


def test_same_seed_same_metrics_other_seed_differs(tiny_spec):
    first = Trainer(validate(tiny_spec)).run()[0]
    second = Trainer(validate(tiny_spec)).run()[0]
    assert without_timings(first) == without_timings(second)
    assert first[-1]["env_steps"] == 80 + 2 * 2 * 2 * 20
    tiny_spec["seed"] = 1
    other = Trainer(validate(tiny_spec)).run()[0]
    assert without_timings(other) != without_timings(first)


def test_hindsight_run_subprocess(tmp_path, tiny_spec):
    spec_path = tmp_path / "tiny.yaml"
    spec_path.write_text(yaml.safe_dump(tiny_spec))
    out = tmp_path / "run"
    env = {**os.environ, "MUJOCO_GL": "disable"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hindsight",
            "run",
            str(spec_path),
            "--out",
            str(out),
            "--set",
            "train.epochs=3",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "final eval return" in result.stdout
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for key in ("epoch", "env_steps", "eval/return_mean", "train/steps_per_s"):
        assert all(r[key] is not None for r in rows), key
    resolved = yaml.safe_load((out / "spec.yaml").read_text())
    assert resolved["train"]["epochs"] == 3 and resolved["reward"]["kind"] == "point_reacher"
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["format"] == 2 and checkpoint["members"][0]["epoch"] == 3 and "policy" in checkpoint["agent"]


def test_bad_spec_subprocess_exits_2_without_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hindsight",
            "run",
            str(REPO / "envs/point_reacher/none.yaml"),
            "--set",
            "train.epochs=0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "train.epochs" in result.stderr and "Traceback" not in result.stderr


def test_readme_plugin_example_runs(tmp_path):
    """The README's user reward family, registered through the spec's plugins list."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hindsight",
            "run",
            str(REPO / "examples/cautious_reacher.yaml"),
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
            "--set",
            "train.epochs=1",
            "--set",
            "logging.wandb.mode=disabled",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MUJOCO_GL": "disable"},
    )
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load((tmp_path / "run/spec.yaml").read_text())["reward"]["kind"] == "cautious_reacher"
