"""Where each epoch's metrics row goes. A failing optional sink warns and steps aside; training goes on."""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class Sink(Protocol):
    """Receives one metrics row per epoch."""

    def log(self, row: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Advancing(Protocol):
    """A sink that also follows progress within an epoch."""

    def advance(self, epochs_done: int, updates: int, updates_per_epoch: int, env_steps: int) -> None:
        """``updates`` of the next epoch's ``updates_per_epoch`` are done, ``env_steps`` in all."""
        ...


def is_table(value: Any) -> bool:
    """Whether a metrics value is a table: a mapping with ``columns`` and ``data`` (rows)."""
    return isinstance(value, dict) and set(value) == {"columns", "data"}


class JsonlSink:
    """Appends each row as one JSON object per line to ``path`` and flushes it to disk."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file = self.path.open("a")

    def log(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


class ProgressSink:
    """A rich progress bar over epochs that moves within an epoch with its updates (``advance``): epochs,
    the epoch's updates and their rate, env steps, eval return and steps/s."""

    def __init__(self, total_epochs: int, description: str, start_epoch: int = 0, console: Console | None = None):
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("updates {task.fields[updates]} ({task.fields[rate]}/s)"),
            TextColumn("steps {task.fields[steps]}"),
            TextColumn("eval {task.fields[ret]}"),
            TextColumn("{task.fields[sps]} steps/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task(
            description, total=total_epochs, completed=start_epoch, updates="-", rate="-", steps="-", ret="-", sps="-"
        )
        self._epoch_start: tuple[int, float, int] | None = None  # (epochs done, time, updates) at the first advance
        self._per_epoch = 0  # updates an epoch makes, once ``advance`` has said
        self._progress.start()

    def advance(self, epochs_done: int, updates: int, updates_per_epoch: int, env_steps: int) -> None:
        """Move the bar to ``updates / updates_per_epoch`` of the way through the next epoch; the rate is
        over the updates since the first call in this epoch."""
        now, self._per_epoch = time.perf_counter(), updates_per_epoch
        if self._epoch_start is None or self._epoch_start[0] != epochs_done:
            self._epoch_start = (epochs_done, now, updates)
        _, started, first = self._epoch_start
        rate = (updates - first) / (now - started) if now > started and updates > first else None
        self._progress.update(
            self._task,
            completed=epochs_done + updates / max(updates_per_epoch, 1),
            updates=f"{updates:,}/{updates_per_epoch:,}",
            rate="-" if rate is None else f"{rate:.3g}",
            steps=f"{env_steps:,}",
        )

    def log(self, row: dict[str, Any]) -> None:
        ret = row.get("eval/return_mean")
        self._progress.update(
            self._task,
            completed=row["epoch"],
            steps=f"{row['env_steps']:,}",
            ret="-" if ret is None else f"{ret:.2f}",
            sps=f"{row['train/steps_per_s']:.0f}",
        )
        rate = row.get("train/updates_per_s")
        if rate and self._per_epoch:  # the epoch's updates are all done
            self._progress.update(self._task, updates=f"{self._per_epoch:,}/{self._per_epoch:,}", rate=f"{rate:.3g}")

    def close(self) -> None:
        self._progress.stop()


class WandbSink:
    """Logs rows to a W&B run (offline by default) with the resolved spec as its config."""

    def __init__(
        self,
        mode: Literal["offline", "online", "disabled"],
        project: str,
        directory: Path,
        config: dict[str, Any],
        name: str,
        group: str | None = None,
        tags: list[str] | None = None,
        run_id: str | None = None,
    ):
        import wandb  # slow to import: only when the sink is used

        directory.mkdir(parents=True, exist_ok=True)
        self._run = wandb.init(
            mode=mode,
            project=project,
            dir=str(directory),
            config=config,
            name=name,
            group=group,
            tags=tags or None,
            id=run_id,
            resume="allow" if run_id else None,
            reinit="create_new",
            settings=wandb.Settings(console="off", silent=True),
        )

    def log(self, row: dict[str, Any]) -> None:
        import wandb

        values = {
            k: wandb.Table(columns=v["columns"], data=v["data"]) if is_table(v) else v
            for k, v in row.items()
            if v is not None
        }
        self._run.log(values, step=row["env_steps"])

    def close(self) -> None:
        self._run.finish()


class GuardedSink:
    """Wraps an optional sink: its first failure becomes a warning and the sink is dropped."""

    def __init__(self, sink: Sink | None, label: str):
        self._sink = sink
        self._label = label

    @classmethod
    def start(cls, label: str, factory: Callable[[], Sink]) -> GuardedSink:
        """Build a sink with ``factory()``; a failure warns and yields an inert sink."""
        try:
            return cls(factory(), label)
        except Exception as exc:  # noqa: BLE001 - an optional sink must never stop training
            warnings.warn(f"{label} disabled: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
            return cls(None, label)

    def log(self, row: dict[str, Any]) -> None:
        self._call("log", row)

    def close(self) -> None:
        self._call("close")

    def _call(self, method: str, *args: Any) -> None:
        if self._sink is None:
            return
        try:
            getattr(self._sink, method)(*args)
        except Exception as exc:  # noqa: BLE001
            warnings.warn(
                f"{self._label} disabled after an error: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2
            )
            self._sink = None
