"""Study specs: a base run spec plus a grid of dotted paths to lists of values.

A study file (YAML)::

    name: point_reacher          # the study's name: W&B group prefix, default output folder
    base: none.yaml              # a run spec: a path relative to this file, or an inline mapping
    grid:                        # dotted path -> list of values; the runs are the cartesian product
      relabeler.kind: [none, random, advantage, air]
      seed: [0, 1, 2, 3, 4]
    population: 1                # optional: train up to this many seeds of a configuration in one
                                 # population run (``hindsight study --population N`` overrides it)

A grid value may be any YAML: ``relabeler: [{kind: air, candidates: 10}, none]`` sets a whole sub-tree,
exactly as ``--set relabeler={kind: air, candidates: 10}`` would. Every expanded run is validated before
any starts. A run's *method* is its grid values other than ``seed`` and the family's own (``env.kind``, ``env.id``
and whole ``env`` trees; its relabeler kind when there are none), so an ablation of an env setting such as
``env.time_limit`` is a method; its *family* is its ``env.kind`` (or the label the env family gives its parameters,
``FamilyLabel``: mo_gymnasium's environment id); its W&B group is the study name plus a hash of its resolved
spec without the seed.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hindsight.registry import RegistryError
from hindsight.specs import ResolvedSpec, SpecError, _format_errors, apply_overrides, identity, read_yaml, validate

GRID_PREFIX = "grid."


def family_of(spec: ResolvedSpec) -> str:
    """The family a run's curves and tables are grouped under: its ``env.kind``, or the label its env family
    gives its parameters (``FamilyLabel``, e.g. mo_gymnasium's environment id)."""
    label = getattr(spec.component("env"), "family_label", None)
    return str(label(spec.params["env"])) if label is not None else spec.run.env.kind


class StudySpec(BaseModel):
    """The study file's shape."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$", description="letters, digits, '.', '_', '-'")
    base: str | dict[str, Any] = Field(description="a run spec: path relative to the study file, or inline")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="dotted path -> values to sweep")
    population: int = Field(1, ge=1, description="seeds of a configuration trained together in one population run")


@attrs.frozen
class Study:
    """A loaded study: its name, the base run spec as plain data, the grid (overrides applied), how many
    seeds of a configuration train together in one population run, and the folder of its base spec."""

    name: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    population: int = 1
    base_dir: str | None = None  # where the base spec's plugins are looked for (its file's folder)

    def to_dict(self) -> dict[str, Any]:
        """The study as a self-contained study file (base inlined)."""
        return {"name": self.name, "base": self.base, "grid": self.grid, "population": self.population}


@attrs.frozen(eq=False)
class PlannedRun:
    """One run of a study.

    Attributes:
        id: the run's directory name, built from its grid values (``relabeler.kind=air,seed=0``).
        method: the label curves and tables group it under.
        family: its environment family (``env.kind``, or the family's ``FamilyLabel``).
        seed: its seed.
        group: its W&B group: the study name and the hash of its resolved spec without the seed.
        spec: the validated spec (name, W&B group and tags set).
        config: its grid values other than ``seed``, as in ``id`` (runs with the same config and
            ``spec_hash`` differ only in their seed, so they may train together as a population).
    """

    id: str
    method: str
    family: str
    seed: int
    group: str
    spec: ResolvedSpec
    config: str = ""

    def manifest(self) -> dict[str, Any]:
        """What the report needs to know about this run, as plain data."""
        return {
            "id": self.id,
            "method": self.method,
            "family": self.family,
            "seed": self.seed,
            "group": self.group,
            "epochs": self.spec.run.train.epochs,
        }


def _flow(value: Any) -> str:
    """A value as one line of YAML (``air``, ``0.001``, ``{kind: air, candidates: 10}``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"), sort_keys=False).strip()
    return text.removesuffix("...").strip()


def _digest(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _token(value: Any) -> str:
    """A value as a file-name-safe token; unsafe or long ones carry a short hash to stay unique."""
    text = _flow(value)
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-")
    if safe != text or len(safe) > 32:
        safe = f"{safe[:24]}-{_digest(text, 6)}".lstrip("-")
    return safe


def spec_hash(resolved: dict[str, Any]) -> str:
    """Hash of what a resolved spec learns (``identity``) ignoring its seed and logging: runs differing
    only by seed, or in runtime settings, share it."""
    core = {k: v for k, v in identity(resolved).items() if k not in ("seed", "logging")}
    return _digest(json.dumps(core, sort_keys=True))


FAMILY_AXES = ("env", "env.kind", "env.id")  # grid axes that choose the family rather than vary a method


def _is_method_axis(path: str) -> bool:
    return path != "seed" and path not in FAMILY_AXES


def load_study(path: str | Path, overrides: Sequence[str] = ()) -> Study:
    """Read a study file; ``grid.PATH=[...]`` overrides replace a grid axis, the others apply to the base."""
    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping with name, base and grid")
    grid_overrides = [o for o in overrides if o.startswith(GRID_PREFIX)]
    base_overrides = [o for o in overrides if not o.startswith(GRID_PREFIX)]
    for text in grid_overrides:
        axis, sep, value = text[len(GRID_PREFIX) :].partition("=")
        if not sep or not axis.strip():
            raise SpecError(f"--set {text!r}: expected grid.dotted.path=[values]")
        try:
            values = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            raise SpecError(f"--set {text!r}: cannot parse the values") from None
        if raw.get("grid") is None:
            raw["grid"] = {}
        if isinstance(raw["grid"], dict):  # anything else is reported by the StudySpec validation
            raw["grid"][axis.strip()] = values if isinstance(values, list) else [values]
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_errors(exc)) from None
    base_dir = path.parent
    if isinstance(spec.base, str):
        base_path = path.parent / spec.base
        base = read_yaml(base_path)
        if not isinstance(base, dict):
            raise SpecError(f"base: {base_path} is not a mapping of run spec fields")
        base_dir = base_path.parent
    else:
        base = copy.deepcopy(spec.base)
    base = apply_overrides(base, base_overrides)
    for axis, values in spec.grid.items():
        if not values:
            raise SpecError(f"grid.{axis}: must list at least one value")
        flows = [_flow(v) for v in values]
        if len(set(flows)) != len(flows):
            raise SpecError(f"grid.{axis}: duplicate values in {_flow(values)}")
    return Study(spec.name, base, dict(spec.grid), spec.population, str(base_dir.resolve()))


def _validate(raw: dict[str, Any], where: str, base_dir: str | None) -> ResolvedSpec:
    try:
        return validate(raw, base_dir)
    except (SpecError, RegistryError) as exc:
        raise SpecError("\n".join(f"{where}: {line}" for line in str(exc).splitlines())) from None


def expand(study: Study) -> list[PlannedRun]:
    """Every run of the grid, validated; a SpecError lists each distinct problem with the grid values at fault."""
    axes = list(study.grid)
    runs: list[PlannedRun] = []
    problems: list[str] = []
    for combo in itertools.product(*study.grid.values()):
        assignment = dict(zip(axes, combo, strict=True))
        run_id = ",".join(f"{axis}={_token(value)}" for axis, value in assignment.items()) or "base"
        config = ",".join(f"{axis}={_token(value)}" for axis, value in assignment.items() if axis != "seed")
        method_values = {a: v for a, v in assignment.items() if _is_method_axis(a)}
        where = ", ".join(f"{a}={_flow(v)}" for a, v in method_values.items()) or "base"
        raw = apply_overrides(copy.deepcopy(study.base), [f"{a}={_flow(v)}" for a, v in assignment.items()])
        try:
            first = _validate(raw, where, study.base_dir)
        except SpecError as exc:
            problems.extend(line for line in str(exc).splitlines() if line not in problems)
            continue
        group = f"{study.name}-{spec_hash(first.to_dict())}"
        tags = [*first.run.logging.wandb.tags, first.run.relabeler.kind, f"study:{study.name}"]
        raw = apply_overrides(
            raw,
            [
                f"name={study.name}-{run_id}",
                f"logging.wandb.group={group}",
                f"logging.wandb.tags={_flow(list(dict.fromkeys(tags)))}",
            ],
        )
        resolved = _validate(raw, where, study.base_dir)
        if len(method_values) == 1:
            method = _flow(next(iter(method_values.values())))
        elif method_values:
            method = where
        else:
            method = resolved.run.relabeler.kind
        runs.append(PlannedRun(run_id, method, family_of(resolved), resolved.run.seed, group, resolved, config))
    if problems:
        raise SpecError("\n".join(problems))
    return runs
