"""Tasks a user chooses for a trained policy, in the family's own terms: named fields (``--task
"weights=1,0,0 goal=0.2,0.1"``), a file of them (YAML, JSON or CSV), or weight vectors spread over the
objectives (``--grid N``). Every value is checked against its field's range; the raw task vector is field
``z``. Fields a task leaves out are drawn from the task distribution.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

import torch
import yaml

from hindsight.fronts import spread_weights
from hindsight.protocols import Objectives, RewardFamily, TaskDistribution, TaskField, TaskFields

RAW = "z"  # the field name of the raw task vector
TOLERANCE = 1e-6  # slack on range bounds, for values printed and read back

# a task's values by field name: one number per component
Choice = dict[str, list[float]]


class TaskChoiceError(Exception):
    """A chosen task that does not fit the family; the message is one line meant for the user."""


def fields_of(tasks: TaskDistribution) -> tuple[TaskField, ...]:
    """The task distribution's fields; none where it lacks the ``TaskFields`` capability (only raw z)."""
    return tasks.fields if isinstance(tasks, TaskFields) else ()


def _number(value: float) -> str:
    """A bound as written in messages: ``pi`` and ``-pi`` by name."""
    if abs(abs(value) - math.pi) < 1e-9:
        return "pi" if value > 0 else "-pi"
    return f"{value:.4g}"


def describe_field(field: TaskField) -> str:
    """One field with its components and ranges, e.g. ``goal (x, y) in [-0.3, 0.3], length in [0.15, 0.3]``."""
    labels = f" ({', '.join(field.labels)})" if field.labels != (field.name,) else ""
    if len(set(field.low)) == 1 and len(set(field.high)) == 1:
        ranges = f"in [{_number(field.low[0])}, {_number(field.high[0])}]"
    else:
        ranges = "in " + ", ".join(f"[{_number(a)}, {_number(b)}]" for a, b in zip(field.low, field.high, strict=True))
    if field.length is not None:
        ranges += f", length in [{_number(field.length[0])}, {_number(field.length[1])}]"
    if field.unit_length:
        ranges += ", not all 0 (scaled to unit length)"
    if field.unit_sum:
        ranges += ", not all 0 (scaled to sum to 1)"
    return f"{field.name}{labels} {ranges}"


def describe_fields(tasks: TaskDistribution) -> str:
    """Every field of the task distribution with its ranges, and the raw task vector, in one line."""
    raw = f"{RAW} (the raw task vector, {tasks.task_dim} number{'s' if tasks.task_dim != 1 else ''}"
    raw += f": {', '.join(tasks.z_labels)})" if isinstance(tasks, TaskFields) else ")"
    parts = [describe_field(field) for field in fields_of(tasks)]
    return "task fields: " + "; ".join([*parts, f"or {raw}"]) if parts else f"task fields: {raw}"


def parse_task(text: str) -> Choice:
    """``name=v1,v2,... name=...`` (pairs separated by spaces or semicolons) as values by field name."""
    choice: Choice = {}
    for pair in (p for p in re.split(r"[;\s]+", text.strip()) if p):
        name, sep, values = pair.partition("=")
        if not sep or not name:
            raise TaskChoiceError(f"expected name=value[,value...] pairs, got {pair!r}")
        choice[name] = _numbers(name, values.split(","))
    if not choice:
        raise TaskChoiceError("empty task: give name=value pairs")
    return choice


def _numbers(name: str, values: Any) -> list[float]:
    items = values if isinstance(values, (list, tuple)) else [values]
    try:
        numbers = [float(v) for v in items]
    except (TypeError, ValueError):
        raise TaskChoiceError(f"{name}: expected numbers, got {values!r}") from None
    if not all(math.isfinite(v) for v in numbers):
        raise TaskChoiceError(f"{name}: values must be finite (got {values!r})")
    return numbers


def read_task_file(path: Path, fields: tuple[TaskField, ...]) -> list[Choice]:
    """The tasks of a YAML or JSON file (a list of mappings field -> number or list, or ``{tasks: [...]}``)
    or a CSV file (one task per row; a column per component, named ``field.label``, or ``field`` for a
    one-component field, ``z.i`` for the raw vector)."""
    if not path.is_file():
        raise TaskChoiceError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, fields)
    if suffix not in (".yaml", ".yml", ".json"):
        raise TaskChoiceError(f"{path}: expected a .yaml, .yml, .json or .csv file")
    try:
        data = json.loads(path.read_text()) if suffix == ".json" else yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise TaskChoiceError(f"{path}: cannot read: {str(exc).strip().splitlines()[0]}") from None
    if isinstance(data, dict) and "tasks" in data:
        data = data["tasks"]
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data) or not data:
        raise TaskChoiceError(f"{path}: expected a list of tasks, each a mapping of field names to values")
    return [{str(k): _numbers(f"{path} task {i + 1}: {k}", v) for k, v in row.items()} for i, row in enumerate(data)]


def _read_csv(path: Path, fields: tuple[TaskField, ...]) -> list[Choice]:
    columns: dict[str, tuple[str, int]] = {}  # column -> (field, component)
    for field in fields:
        for i, label in enumerate(field.labels):
            columns[f"{field.name}.{label}"] = (field.name, i)
        if field.size == 1:
            columns[field.name] = (field.name, 0)
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = reader.fieldnames or []
    except (OSError, ValueError, csv.Error) as exc:
        raise TaskChoiceError(f"{path}: cannot read: {str(exc).strip().splitlines()[0]}") from None
    if not rows:
        raise TaskChoiceError(f"{path}: no task rows")
    choices = []
    for number, row in enumerate(rows, start=2):
        parts: dict[str, dict[int, float]] = {}
        for column in header:
            if row.get(column) in (None, ""):
                continue
            match = re.fullmatch(rf"{RAW}\.(\d+)", column)
            name, index = (RAW, int(match.group(1))) if match else columns.get(column, (column, -1))
            if index < 0:
                raise TaskChoiceError(f"{path} line {number}: unknown column {column!r}")
            parts.setdefault(name, {})[index] = _numbers(f"{path} line {number}: {column}", row[column])[0]
        for name, values in parts.items():
            if sorted(values) != list(range(len(values))):
                raise TaskChoiceError(f"{path} line {number}: {name} misses components (columns {sorted(values)})")
        choices.append({name: [values[i] for i in range(len(values))] for name, values in parts.items()})
    return choices


def field_problem(field: TaskField, values: list[float]) -> str | None:
    """Why ``values`` do not fit ``field``, or None."""
    if len(values) != field.size:
        return f"expected {field.size} ({', '.join(field.labels)}), got {len(values)}"
    for label, value, low, high in zip(field.labels, values, field.low, field.high, strict=True):
        if not low - TOLERANCE <= value <= high + TOLERANCE:
            return f"{label} = {value:g} is outside [{_number(low)}, {_number(high)}]"
    norm = math.sqrt(sum(v * v for v in values))
    if (field.unit_length or field.unit_sum) and norm == 0:
        return "the values must not all be 0"
    if field.length is not None and not field.length[0] - TOLERANCE <= norm <= field.length[1] + TOLERANCE:
        return f"length {norm:.4g} is outside [{_number(field.length[0])}, {_number(field.length[1])}]"
    return None


def to_tasks(tasks: TaskDistribution, choices: list[Choice], generator: torch.Generator, where: str) -> torch.Tensor:
    """Tasks [N, Z] from the chosen values (checked; missing fields drawn from ``tasks`` with
    ``generator``, one draw per task). ``where`` names the source in errors (``--task``, a file).
    Raises TaskChoiceError naming the task, the field and every field's range."""
    fields = {field.name: field for field in fields_of(tasks)}
    rows = []
    for i, choice in enumerate(choices):
        label = f"{where} {i + 1}" if len(choices) > 1 else where
        try:
            rows.append(_one_task(tasks, fields, choice, generator))
        except TaskChoiceError as exc:
            raise TaskChoiceError(f"{label}: {exc}; {describe_fields(tasks)}") from None
    return torch.cat(rows) if rows else torch.zeros(0, tasks.task_dim)


def _one_task(
    tasks: TaskDistribution, fields: dict[str, TaskField], choice: Choice, generator: torch.Generator
) -> torch.Tensor:
    unknown = [name for name in choice if name not in fields and name != RAW]
    if unknown:
        raise TaskChoiceError(f"unknown field {unknown[0]!r}")
    if RAW in choice:
        if len(choice) > 1:
            raise TaskChoiceError(f"{RAW} is the whole task: give it alone, or fields without it")
        if len(choice[RAW]) != tasks.task_dim:
            raise TaskChoiceError(f"{RAW}: expected {tasks.task_dim} numbers, got {len(choice[RAW])}")
        z = torch.tensor([choice[RAW]], dtype=torch.float32)
        if isinstance(tasks, TaskFields):  # its fields must be in range too
            for name, parts in tasks.to_fields(z).items():
                problem = field_problem(fields[name], parts[0].tolist())
                if problem:
                    raise TaskChoiceError(f"{RAW} gives {name} out of range: {problem}")
        return z
    for name, given in choice.items():
        problem = field_problem(fields[name], given)
        if problem:
            raise TaskChoiceError(f"{name}: {problem}")
    assert isinstance(tasks, TaskFields)  # fields exist
    values = tasks.to_fields(tasks.sample(1, generator))  # the fields left out: drawn
    values.update({name: torch.tensor([given], dtype=torch.float32) for name, given in choice.items()})
    return tasks.from_fields(values).float()


def grid_tasks(tasks: TaskDistribution, reward: RewardFamily, n: int, generator: torch.Generator) -> torch.Tensor:
    """[n, Z]: n weight vectors spread over the objectives' weights (``fronts.spread_weights``), the rest
    of the task one draw from ``tasks`` shared by all (so they differ only in their weights)."""
    if not isinstance(reward, Objectives):
        raise TaskChoiceError(f"--grid: reward family {type(reward).__name__} declares no objectives to weigh")
    weights = torch.from_numpy(spread_weights(n, len(reward.objective_names))).float()
    rest = tasks.sample(1, generator).repeat(weights.shape[0], 1)
    return reward.with_weights(rest, weights).float()


def describe_task(tasks: TaskDistribution, task: torch.Tensor) -> dict[str, list[float]]:
    """A task [Z]'s values by field (the raw ``z`` where the distribution has no fields), to 6 decimals."""
    values = tasks.to_fields(task[None]) if isinstance(tasks, TaskFields) else {RAW: task[None]}
    return {name: [round(v, 6) + 0.0 for v in part[0].tolist()] for name, part in values.items()}  # no -0.0
