"""Reliability: kill-and-resume equality, clean stops on signals, safe checkpoints, early and clear errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import metrics_rows

from hindsight.specs import validate
from hindsight.train.checkpoint import CheckpointError, load_safe, read_checkpoint
from hindsight.train.run import RunDirError, execute
from hindsight.train.trainer import NonFiniteError, Trainer


def rows_of(run_dir: Path) -> list[dict]:
    return metrics_rows(run_dir / "metrics.jsonl")


def hindsight(*args, env_extra=None, timeout=300):
    env = {**os.environ, "MUJOCO_GL": "disable", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "hindsight", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    from conftest import TINY_SPEC

    spec = json.loads(json.dumps(TINY_SPEC))
    spec["train"]["epochs"] = 4
    path = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, spec_file):
    """Metrics of the uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    result = hindsight("run", str(spec_file), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return rows_of(out)


# updates: 10 per loop, 2 loops per epoch; collect: one pass per time step of each batch (20 per batch,
# 2 warmup batches then 2 per epoch); checkpoint: one per epoch
@pytest.mark.parametrize(
    "kill_at", ["collect:70", "collect:130", "update:25", "update:61", "checkpoint:2", "checkpoint:4"]
)
def test_sigkill_then_resume_gives_identical_metrics(tmp_path, spec_file, reference, kill_at):
    out = tmp_path / "killed"
    killed = hindsight("run", str(spec_file), "--out", str(out), env_extra={"HINDSIGHT_KILL_AT": kill_at})
    assert killed.returncode == -signal.SIGKILL
    resumed = hindsight("run", str(spec_file), "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert rows_of(out) == reference
    assert not list(out.glob("*.tmp"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_and_resumes(tmp_path, spec_file, reference, signum):
    out = tmp_path / "signalled"
    env = {**os.environ, "MUJOCO_GL": "disable"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hindsight",
            "run",
            str(spec_file),
            "--out",
            str(out),
            "--set",
            "train.updates_per_loop=200",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1) and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "checkpoint written" in stderr and "--resume" in stderr
    state = load_safe(out / "checkpoint.pt")
    assert state["members"][0]["epoch"] < 4
    # the stop may land mid-epoch; resuming with the same spec finishes the run
    resumed = hindsight("run", str(spec_file), "--out", str(out), "--resume", "--set", "train.updates_per_loop=200")
    assert resumed.returncode == 0, resumed.stderr
    assert [r["epoch"] for r in rows_of(out)] == [1, 2, 3, 4]


def test_resume_of_a_different_spec_is_refused(tmp_path, spec_file):
    out = tmp_path / "run"
    assert hindsight("run", str(spec_file), "--out", str(out), "--set", "train.epochs=1").returncode == 0
    again = hindsight("run", str(spec_file), "--out", str(out))
    assert again.returncode == 2 and "pass --resume" in again.stderr
    other = hindsight("run", str(spec_file), "--out", str(out), "--resume", "--set", "agent.lr=0.01")
    assert other.returncode == 2 and "agent.lr" in other.stderr
    longer = hindsight("run", str(spec_file), "--out", str(out), "--resume", "--set", "train.epochs=2")
    assert longer.returncode == 0, longer.stderr
    assert [r["epoch"] for r in rows_of(out)] == [1, 2]


class Payload:
    """Runs a shell command when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_tampered_checkpoint_is_refused_without_running_code(tmp_path, spec_file):
    out = tmp_path / "run"
    assert hindsight("run", str(spec_file), "--out", str(out), "--set", "train.epochs=1").returncode == 0
    marker = tmp_path / "pwned"
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["agent"]["extra"] = Payload(marker)
    torch.save(state, out / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="refused"):
        load_safe(out / "checkpoint.pt")
    result = hindsight("run", str(spec_file), "--out", str(out), "--resume", "--set", "train.epochs=2")
    assert result.returncode == 2 and "refused" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_non_finite_parameters_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path, tiny_spec):
    tiny_spec["train"]["epochs"] = 1
    Trainer(validate(tiny_spec), checkpoint_path=tmp_path / "checkpoint.pt").run()
    tiny_spec["train"]["epochs"] = 2
    trainer = Trainer(validate(tiny_spec), checkpoint_path=tmp_path / "checkpoint.pt")
    trainer.load_state_dict(read_checkpoint(tmp_path / "checkpoint.pt"))
    with torch.no_grad():
        trainer.agent.critic.weights[0][0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"agent: .*(non-finite|nan).* in epoch 2"):
        trainer.run()
    assert load_safe(tmp_path / "checkpoint.pt")["members"][0]["epoch"] == 1


def test_wandb_failure_never_stops_training(tmp_path, tiny_spec):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where W&B wants a directory")
    tiny_spec["logging"]["wandb"] = {"mode": "offline", "dir": str(blocker / "wandb")}
    with pytest.warns(RuntimeWarning, match="W&B logging disabled"):
        rows = execute(validate(tiny_spec), tmp_path / "run")
    assert len(rows) == 2 and len((tmp_path / "run/metrics.jsonl").read_text().splitlines()) == 2


def test_unwritable_or_full_output_reported_before_training(tmp_path, tiny_spec, monkeypatch, spec_file):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = hindsight("run", str(spec_file), "--out", str(blocker / "run"))
    assert result.returncode == 2 and "not writable" in result.stderr
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(RunDirError, match="MiB free, checkpoints need about"):
        execute(validate(tiny_spec), tmp_path / "full")
    assert not (tmp_path / "full" / "metrics.jsonl").exists()
