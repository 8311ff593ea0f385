"""A run directory: the resolved spec, metrics.jsonl, W&B, the progress bar and checkpoints.

``execute`` trains a spec into a directory, resuming from its checkpoint on request; SIGINT and SIGTERM
stop the run at the next safe point with a checkpoint written.
"""

from __future__ import annotations

import datetime
import json
import shutil
import signal
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

import attrs

from hindsight.console import err
from hindsight.logging.sinks import GuardedSink, JsonlSink, ProgressSink, Sink, WandbSink
from hindsight.registry import first_line
from hindsight.rundir import RunDir, write_atomic
from hindsight.specs import ResolvedSpec, as_today, identity
from hindsight.train.checkpoint import CheckpointError, check_fits, open_checkpoint
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
    ignoring resumable changes; a spec saved by an older hindsight is read as it is today. Plugins are
    compared first: a saved spec's own plugins are never imported."""
    saved_plugins, plugins = identity(saved).get("plugins"), identity(current).get("plugins")
    if saved_plugins != plugins:
        return f"plugins ({saved_plugins!r} in the checkpoint, {plugins!r} now)"
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
    """An upper estimate of the space checkpoints need: three copies (latest, previous and the temporary)."""
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
    return 3 * (tensor_bytes(trainer.agent.state_dict()) + buffers) + 16 * 2**20


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


def note(message: str) -> None:
    """Tell the user, on stderr in one line, what a resume decided for them."""
    err.print(f"note: {message}", markup=False, highlight=False, soft_wrap=True)


@attrs.frozen
class _Readable:
    """A checkpoint that read: its path, state (``read_checkpoint``'s) and whether its digest was verified."""

    path: Path
    state: dict[str, Any]
    verified: bool


def _readable_checkpoints(run_dir: RunDir) -> tuple[list[_Readable], list[str]]:
    """The run directory's checkpoints that read, newest first, and why each other one was refused."""
    readable, refused = [], []
    for path in (run_dir.checkpoint, run_dir.previous_checkpoint):
        if not path.exists():
            continue
        try:
            state, verified = open_checkpoint(path)
        except CheckpointError as exc:
            refused.append(str(exc))
            continue
        readable.append(_Readable(path, state, verified))
    return readable, refused


def _choose_checkpoint(trainer: Trainer, readable: list[_Readable], refused: list[str]) -> _Readable:
    """The newest readable checkpoint that fits the trainer's components (``check_fits``), saying so when
    it is not the latest or not verified; CheckpointError naming every refusal when none fits."""
    reference = trainer.state_dict()
    latest = RunDir(trainer.checkpoint_path.parent).checkpoint if trainer.checkpoint_path else None
    for candidate in readable:
        try:
            check_fits(candidate.state, reference, candidate.path)
        except CheckpointError as exc:
            refused.append(str(exc))
            continue
        if candidate.path != latest:
            epoch = candidate.state["members"][0]["epoch"]
            why = "; ".join(refused) or f"{latest}: missing"
            note(f"{why}; resuming from {candidate.path} (epoch {epoch}) instead")
        if not candidate.verified:
            note(f"{candidate.path}: loaded unverified (no digests beside it: written by an older hindsight)")
        return candidate
    raise CheckpointError("; ".join(refused))


def _epoch_of(line: bytes) -> Any:
    """The ``epoch`` of a metrics row, or None when the line is no row."""
    try:
        row = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    epoch = row.get("epoch") if isinstance(row, dict) else None
    return epoch if type(epoch) is int else None


def _kept_metrics(directory: RunDir, rows: int) -> tuple[bytes | None, str | None]:
    """``metrics.jsonl`` as resuming from a checkpoint that recorded ``rows`` rows (epochs 1 to ``rows``)
    keeps it: its new content (None: it stays as it is) and a note of what is dropped (rows written after the
    checkpoint, which the run recomputes, or a torn last row). RunDirError when a row the checkpoint recorded
    is missing or damaged: the checkpoint cannot recompute epochs before its own."""
    path = directory.metrics
    *complete, torn = (path.read_bytes() if path.exists() else b"").split(b"\n")
    for i, line in enumerate(complete[:rows]):
        if _epoch_of(line) != i + 1:
            raise RunDirError(
                f"{path}: line {i + 1} is not the row of epoch {i + 1}; the checkpoint recorded {rows} rows and cannot "
                f"recompute epoch {i + 1}: restore the file, or start afresh with another --out"
            )
    if len(complete) < rows:
        missing = f"epoch {rows}" if len(complete) + 1 == rows else f"epochs {len(complete) + 1}-{rows}"
        raise RunDirError(
            f"{path}: {len(complete)} complete rows, but the checkpoint recorded {rows}: {missing} missing, which it "
            "cannot recompute; restore the file, or start afresh with another --out"
        )
    dropped = []
    if len(complete) > rows:
        extra = len(complete) - rows
        epochs = f"epoch {rows + 1}" if extra == 1 else f"epochs {rows + 1}-{len(complete)}"
        dropped.append(f"{extra} row{'s' * (extra > 1)} after the checkpoint ({epochs}) recomputed")
    if torn:
        dropped.append("a partial last row (from a run killed while writing it) dropped")
    if not dropped:
        return None, None
    return b"".join(line + b"\n" for line in complete[:rows]), f"{path}: " + "; ".join(dropped)


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
    and checkpoint. With ``resume``, continue from ``run_dir``'s newest checkpoint that is verified and fits
    the spec (falling back to the previous one, saying so), or start fresh where there is no checkpoint and
    no metrics row. Rows are never lost silently: a resume whose checkpoint recorded rows that are missing is
    refused, as is one with rows but no checkpoint; a resume of a finished run changes no file.
    Raises RunDirError for an unusable directory, CheckpointError for a refused checkpoint,
    StopRequested after a signal (checkpoint written), NonFiniteError on divergence.
    """
    run_dir = RunDir(run_dir) if not isinstance(run_dir, RunDir) else run_dir
    default_dirs = run_dir.members(spec.run.seeds)
    directories = default_dirs if members is None else [RunDir(m) for m in members]
    if len(directories) != len(default_dirs):
        raise ValueError(f"{len(directories)} member directories for {len(default_dirs)} members")
    resolved = spec.to_dict()
    with_rows = [d.metrics for d in directories if d.metrics.is_file() and d.metrics.stat().st_size > 0]
    readable: list[_Readable] = []
    refused: list[str] = []
    used = any(d.metrics.exists() for d in directories) or any(path.exists() for path in run_dir.checkpoint_files)
    if not resume and used:
        raise RunDirError(f"{run_dir.path}: already holds a run; pass --resume to continue it or choose another --out")
    if resume:
        readable, refused = _readable_checkpoints(run_dir)
        if not readable and refused:
            raise CheckpointError("; ".join(refused))
        if not readable and with_rows:
            raise RunDirError(
                f"{with_rows[0]}: --resume: metrics rows but no checkpoint in {run_dir.path} to continue from; "
                "nothing changed (move the rows away to start afresh, or choose another --out)"
            )
        if readable:
            mismatch = spec_mismatch(readable[0].state["spec"], resolved)
            if mismatch:
                raise RunDirError(f"--resume: the spec differs from the checkpoint's at {mismatch}")

    trainer = Trainer(spec, checkpoint_path=run_dir.checkpoint)
    kept: list[tuple[bytes | None, str | None]] = [(None, None)] * len(directories)
    if readable:
        chosen = _choose_checkpoint(trainer, readable, refused)
        try:
            trainer.load_state_dict(chosen.state)
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise CheckpointError(
                f"{chosen.path}: refused: does not fit the spec's components ({first_line(exc)})"
            ) from None
        kept = [_kept_metrics(d, member.metrics_rows) for member, d in zip(trainer.members, directories, strict=True)]
        if trainer.epoch >= spec.run.train.epochs:
            return []  # a finished run: nothing to train, and no file is touched
    check_writable(run_dir.path, checkpoint_bytes(trainer))
    if spec.run.seeds is not None:
        run_dir.write_spec(resolved)
    show = spec.run.logging.progress if progress is None else progress
    for i, (member, directory, (content, dropped)) in enumerate(zip(trainer.members, directories, kept, strict=True)):
        directory.path.mkdir(parents=True, exist_ok=True)
        if content is not None:
            write_atomic(directory.metrics, content)
        if dropped:
            note(dropped)
        member.sinks = _member_sinks(member.spec, directory, show and i == 0, member.epoch)
    try:
        with _SignalStop(trainer):
            rows = trainer.run()
    finally:
        for member in trainer.members:
            for sink in member.sinks:
                sink.close()
    return rows[0]
