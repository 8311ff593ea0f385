"""A run directory: the resolved spec, metrics.jsonl, W&B, the progress bar and checkpoints.

``execute`` trains a spec into a directory, resuming from its checkpoint on request; SIGINT and SIGTERM
stop the run at the next safe point with a checkpoint written.
"""

from __future__ import annotations

import datetime
import shutil
import signal
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

from hindsight.logging.sinks import GuardedSink, JsonlSink, ProgressSink, Sink, WandbSink
from hindsight.rundir import RunDir
from hindsight.specs import ResolvedSpec, as_today, identity
from hindsight.train.checkpoint import read_checkpoint
from hindsight.train.trainer import Trainer

# keys that may change between a run and its resumption (besides what ``identity`` leaves out)
RESUMABLE_CHANGES = ("train.epochs", "train.checkpoint_every", "eval.every", "logging")


class RunDirError(Exception):
    """The run directory cannot be used (exists without --resume, unwritable, full, spec mismatch)."""


def default_run_dir(spec_path: str | Path) -> Path:
    """``runs/<spec stem>-<UTC timestamp>`` under the current directory."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{Path(spec_path).stem}-{stamp}"


def run_name(spec: ResolvedSpec, run_dir: Path) -> str:
    """The spec's name, or the run directory's name."""
    return spec.run.name or run_dir.name


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def spec_mismatch(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The first field (dotted path) where two resolved specs differ in what they learn (``identity``),
    ignoring resumable changes; a spec saved by an older hindsight is read as it is today."""
    a, b = _flatten(identity(as_today(saved))), _flatten(identity(current))
    for key in sorted(set(a) | set(b)):
        if key.startswith(RESUMABLE_CHANGES):
            continue
        if a.get(key) != b.get(key):
            return f"{key} ({a.get(key)!r} in the checkpoint, {b.get(key)!r} now)"
    return None


def check_writable(run_dir: Path, needed_bytes: int) -> None:
    """Fail early, before training, if the run directory is unwritable or lacks space for checkpoints."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"{run_dir}: not writable ({exc.strerror or exc})") from None
    free = shutil.disk_usage(run_dir).free
    if free < needed_bytes:
        raise RunDirError(
            f"{run_dir}: {free / 2**20:.0f} MiB free, checkpoints need about {needed_bytes / 2**20:.0f} MiB"
        )


def checkpoint_bytes(trainer: Trainer) -> int:
    """An upper estimate of the space checkpoints need: two copies (file and its temporary) of the state."""
    import torch

    def tensor_bytes(value: Any) -> int:
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, dict):
            return sum(tensor_bytes(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return sum(tensor_bytes(v) for v in value)
        return 0

    buffers = sum(member.buffer.nbytes for member in trainer.members)
    return 2 * (tensor_bytes(trainer.agent.state_dict()) + buffers) + 16 * 2**20


class _SignalStop:
    """While active, SIGINT/SIGTERM ask the trainer to stop at its next safe point; a second SIGINT aborts."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum
        self.trainer.request_stop()

    def __enter__(self) -> _SignalStop:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: signals stay with the caller
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _member_sinks(spec: ResolvedSpec, directory: RunDir, progress: bool, start_epoch: int) -> list[Sink]:
    """metrics.jsonl, W&B (unless disabled) and the progress bar (if asked) for one member's run directory."""
    resolved = spec.to_dict()
    directory.write_spec(resolved)
    sinks: list[Sink] = [JsonlSink(directory.metrics)]
    wandb = spec.run.logging.wandb
    if wandb.mode != "disabled":
        if not directory.wandb_id.exists():
            directory.wandb_id.write_text(uuid.uuid4().hex[:12])
        run_id = directory.wandb_id.read_text().strip()
        sinks.append(
            GuardedSink.start(
                "W&B logging",
                lambda: WandbSink(
                    wandb.mode,
                    wandb.project,
                    Path(wandb.dir) if wandb.dir else directory.path,
                    resolved,
                    run_name(spec, directory.path),
                    wandb.group,
                    wandb.tags,
                    run_id=run_id,
                ),
            )
        )
    if progress:
        sinks.append(ProgressSink(spec.run.train.epochs, run_name(spec, directory.path), start_epoch=start_epoch))
    return sinks


def execute(
    spec: ResolvedSpec,
    run_dir: Path | RunDir,
    progress: bool | None = None,
    resume: bool = False,
    members: list[Path] | None = None,
) -> list[dict[str, Any]]:
    """Train the spec into ``run_dir`` and return this session's metrics rows (a population's first member's).

    A spec with ``seeds`` trains a population: member S writes ``run_dir/seed<S>/`` as a run of seed S
    would (or ``members[i]`` for the i-th seed, when given), and ``run_dir`` holds the population's spec
    and checkpoint. With ``resume``, continue from ``run_dir``'s checkpoint (or start fresh if there is none).
    Raises RunDirError for an unusable directory, CheckpointError for a refused checkpoint,
    StopRequested after a signal (checkpoint written), NonFiniteError on divergence.
    """
    run_dir = RunDir(run_dir) if not isinstance(run_dir, RunDir) else run_dir
    default_dirs = run_dir.members(spec.run.seeds)
    directories = default_dirs if members is None else [RunDir(m) for m in members]
    if len(directories) != len(default_dirs):
        raise ValueError(f"{len(directories)} member directories for {len(default_dirs)} members")
    resolved = spec.to_dict()
    state = None
    if resume and run_dir.checkpoint.exists():
        state = read_checkpoint(run_dir.checkpoint)
        mismatch = spec_mismatch(state["spec"], resolved)
        if mismatch:
            raise RunDirError(f"--resume: the spec differs from the checkpoint's at {mismatch}")
    elif not resume and (run_dir.checkpoint.exists() or any(d.metrics.exists() for d in directories)):
        raise RunDirError(f"{run_dir.path}: already holds a run; pass --resume to continue it or choose another --out")

    trainer = Trainer(spec, checkpoint_path=run_dir.checkpoint)
    check_writable(run_dir.path, checkpoint_bytes(trainer))
    if state is not None:
        trainer.load_state_dict(state)
    if spec.run.seeds is not None:
        run_dir.write_spec(resolved)
    show = spec.run.logging.progress if progress is None else progress
    for i, (member, directory) in enumerate(zip(trainer.members, directories, strict=True)):
        directory.path.mkdir(parents=True, exist_ok=True)
        if state is not None:
            directory.keep_metrics(member.metrics_rows)
        else:
            directory.metrics.unlink(missing_ok=True)
        member.sinks = _member_sinks(member.spec, directory, show and i == 0, member.epoch)
    try:
        with _SignalStop(trainer):
            rows = trainer.run()
    finally:
        for member in trainer.members:
            for sink in member.sinks:
                sink.close()
    return rows[0]
