"""A run directory: the resolved spec, metrics.jsonl, W&B, the progress bar and the final checkpoint."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import yaml

from hindsight.logging.sinks import GuardedSink, JsonlSink, ProgressSink, WandbSink
from hindsight.specs import ResolvedSpec
from hindsight.train.trainer import Trainer

SPEC_FILE = "spec.yaml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"


def default_run_dir(spec_path: str | Path) -> Path:
    """``runs/<spec stem>-<UTC timestamp>`` under the current directory."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{Path(spec_path).stem}-{stamp}"


def prepare_run_dir(run_dir: Path) -> None:
    """Create the run directory and prove it is writable before any training starts."""
    run_dir.mkdir(parents=True, exist_ok=True)
    probe = run_dir / ".write-test"
    probe.write_text("ok")
    probe.unlink()


def run_name(spec: ResolvedSpec, run_dir: Path) -> str:
    """The spec's name, or the run directory's name."""
    return spec.run.name or run_dir.name


def execute(spec: ResolvedSpec, run_dir: Path, progress: bool | None = None) -> list[dict[str, Any]]:
    """Train the spec, writing everything into ``run_dir``; returns the metrics rows."""
    prepare_run_dir(run_dir)
    resolved = spec.to_dict()
    (run_dir / SPEC_FILE).write_text(yaml.safe_dump(resolved, sort_keys=False))
    sinks: list = [JsonlSink(run_dir / METRICS_FILE)]
    wandb = spec.run.logging.wandb
    if wandb.mode != "disabled":
        sinks.append(GuardedSink.start("W&B logging", lambda: WandbSink(
            wandb.mode, wandb.project, Path(wandb.dir) if wandb.dir else run_dir, resolved,
            run_name(spec, run_dir), wandb.group, wandb.tags)))
    show = spec.run.logging.progress if progress is None else progress
    if show:
        sinks.append(ProgressSink(spec.run.train.epochs, run_name(spec, run_dir)))
    trainer = Trainer(spec, sinks)
    try:
        rows = trainer.run()
    finally:
        for sink in sinks:
            sink.close()
    trainer.save_checkpoint(run_dir / CHECKPOINT_FILE)
    return rows
