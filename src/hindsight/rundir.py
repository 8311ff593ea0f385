"""A run directory's layout, in one place (no torch needed: studies and reports read it too).

A run directory holds ``spec.yaml`` (the resolved spec), ``metrics.jsonl`` (one row per epoch),
``checkpoint.pt``, the previous one ``checkpoint.prev.pt``, their digests ``checkpoint.sha256``,
``wandb_id.txt`` and, under W&B, ``wandb/``. A population run's directory holds the
population's ``spec.yaml`` and ``checkpoint.pt`` and one member directory ``seed<S>/`` per seed, laid out
like a run directory of seed S. A study may have a member write elsewhere (its planned run's directory);
that directory's ``population.json`` then points at the population's directory, which holds its checkpoint.
Studies add ``log.txt`` and ``error.txt``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import attrs


@attrs.frozen
class RunDir:
    """The files of one run directory.

    Attributes:
        path: the directory.
    """

    path: Path = attrs.field(converter=Path)

    @property
    def spec(self) -> Path:
        """The resolved spec, ``spec.yaml``."""
        return self.path / "spec.yaml"

    @property
    def metrics(self) -> Path:
        """One JSON row per epoch, ``metrics.jsonl``."""
        return self.path / "metrics.jsonl"

    @property
    def checkpoint(self) -> Path:
        """``checkpoint.pt`` (a population's lives in its population directory)."""
        return self.path / "checkpoint.pt"

    @property
    def previous_checkpoint(self) -> Path:
        """``checkpoint.prev.pt``: the checkpoint before the last, kept to fall back to."""
        return self.path / "checkpoint.prev.pt"

    @property
    def checkpoint_digests(self) -> Path:
        """``checkpoint.sha256``: the SHA-256 digests of both checkpoints (``sha256sum -c`` format)."""
        return self.path / "checkpoint.sha256"

    @property
    def checkpoint_files(self) -> tuple[Path, Path, Path]:
        """Every file of the checkpoint state: latest, previous, digests."""
        return self.checkpoint, self.previous_checkpoint, self.checkpoint_digests

    @property
    def wandb_id(self) -> Path:
        """The W&B run id, kept so a resumed run logs to the same W&B run."""
        return self.path / "wandb_id.txt"

    @property
    def log(self) -> Path:
        """A study worker's stdout and stderr."""
        return self.path / "log.txt"

    @property
    def error(self) -> Path:
        """The traceback of a failed study run."""
        return self.path / "error.txt"

    @property
    def population_pointer(self) -> Path:
        """``population.json``: a study member's pointer to the population directory that trains it."""
        return self.path / "population.json"

    def member(self, seed: int) -> RunDir:
        """The directory ``seed<S>/`` of a population member."""
        return RunDir(self.path / f"seed{seed}")

    def members(self, seeds: list[int] | None) -> list[RunDir]:
        """Where each member writes: this directory for a single run (``seeds`` None), else ``seed<S>/``."""
        return [self] if seeds is None else [self.member(seed) for seed in seeds]

    def member_seed(self) -> int | None:
        """S when this is the member directory ``seed<S>/`` of a population directory, else None."""
        match = re.fullmatch(r"seed(\d+)", self.path.name)
        if match is None or not RunDir(self.path.parent).spec.is_file():
            return None
        saved = RunDir(self.path.parent).read_spec()
        seeds = saved.get("seeds") if saved else None
        return int(match.group(1)) if isinstance(seeds, list) and int(match.group(1)) in seeds else None

    def population(self) -> RunDir | None:
        """The population directory that trains this member: its parent for ``seed<S>/``, or the one
        ``population.json`` names (a study member); None for a run of its own."""
        if self.member_seed() is not None:
            return RunDir(self.path.parent)
        try:
            pointer = json.loads(self.population_pointer.read_text())
            return RunDir((self.path / pointer["population"]).resolve())
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def checkpoint_owner(self) -> RunDir:
        """The directory whose ``checkpoint.pt`` holds this run's state (itself or its population's)."""
        return self.population() or self

    def point_to_population(self, population: RunDir, seeds: list[int]) -> None:
        """Write ``population.json`` naming ``population`` as the directory that trains this member."""
        pointer = {"population": os.path.relpath(population.path, self.path), "seeds": seeds}
        self.population_pointer.write_text(json.dumps(pointer, indent=1))

    def read_metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl``; a missing file, a torn last line (a killed run) or a damaged line
        is skipped."""
        rows = []
        if self.metrics.is_file():
            for line in self.metrics.read_text(errors="replace").splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return rows

    def read_spec(self) -> dict[str, Any] | None:
        """The saved resolved spec as plain data, or None when it is missing or unreadable (read as spec
        files are: ``hindsight.specs.read_yaml``)."""
        from hindsight.specs import SpecError, read_yaml

        try:
            saved = read_yaml(self.spec)
        except SpecError:
            return None
        return saved if isinstance(saved, dict) else None

    def write_spec(self, resolved: dict[str, Any]) -> None:
        """Write the resolved spec (creating the directory)."""
        from hindsight.specs import dump_yaml

        self.path.mkdir(parents=True, exist_ok=True)
        self.spec.write_text(dump_yaml(resolved))


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` all at once: written and synced beside it, then renamed over it."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    tmp.replace(path)
