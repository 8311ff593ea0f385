"""A trained policy on tasks of the user's choosing: each task's return and each objective's return, as a
table printed and written (CSV or JSON). Episodes run through render's ``rollout`` (the deterministic
policy, one environment per task), so ``--render`` writes the very episodes the table scores."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import numpy as np
import torch

from hindsight.policy.choose import describe_task
from hindsight.protocols import Objectives

if TYPE_CHECKING:
    from rich.table import Table

    from hindsight.render.video import FrameSink, LoadedRun
    from hindsight.specs import ResolvedSpec


@attrs.frozen
class TaskResult:
    """One task's episode: the task z [Z], its fields, the undiscounted return and each objective's."""

    task: list[float]
    fields: dict[str, list[float]]
    ret: float
    objectives: dict[str, float]


def evaluate_tasks(run: LoadedRun, tasks: torch.Tensor, sink: FrameSink | None = None) -> list[TaskResult]:
    """One episode of the run's deterministic policy per task of ``tasks`` [N, Z]; frames go to ``sink``
    (a ``render.video.VideoWriter``) if given."""
    from hindsight.render.video import rollout

    reward = run.reward
    results = []
    for episode in rollout(run, tasks, sink=sink):
        objectives: dict[str, float] = {}
        if isinstance(reward, Objectives) and episode.length:
            values = reward.objectives(
                torch.from_numpy(episode.features).float()[None],
                torch.from_numpy(episode.actions).float()[None],
                torch.from_numpy(episode.task).float()[None],
            )  # [1, T, J]
            objectives = dict(zip(reward.objective_names, values[0].sum(0).tolist(), strict=True))
        task = torch.from_numpy(episode.task).float()
        results.append(TaskResult(task.tolist(), describe_task(run.problem.tasks, task), episode.ret, objectives))
    return results


def _values(values: list[float]) -> str:
    text = ", ".join(f"{v:.3g}" for v in values)
    return text if len(values) == 1 else f"({text})"


def results_table(results: list[TaskResult]) -> Table:
    """The results as a rich table: task number, its fields, the return and each objective's return."""
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("task")
    table.add_column("return", justify="right")
    names = list(results[0].objectives) if results else []
    for name in names:
        table.add_column(name, justify="right")
    for i, result in enumerate(results):
        task = " ".join(f"{name}={_values(values)}" for name, values in result.fields.items())
        table.add_row(str(i + 1), task, f"{result.ret:.3f}", *(f"{result.objectives[n]:.3f}" for n in names))
    return table


def write_results(results: list[TaskResult], path: Path, field_labels: dict[str, tuple[str, ...]]) -> None:
    """Write the results as CSV (a column per field component ``field.label``, per z component ``z.i``,
    ``return`` and ``objective.<name>``) or, for a ``.json`` path, as a list of objects."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        rows = [{"fields": r.fields, "z": r.task, "return": r.ret, "objectives": r.objectives} for r in results]
        path.write_text(json.dumps(rows, indent=1) + "\n")
        return
    first = results[0]
    columns = [f"{name}.{label}" for name in first.fields for label in field_labels.get(name, ())]
    columns += [f"z.{i}" for i in range(len(first.task))] + ["return"] + [f"objective.{n}" for n in first.objectives]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in results:
            parts = [v for name in r.fields if name in field_labels for v in r.fields[name]]
            writer.writerow([f"{v:.6g}" for v in [*parts, *r.task, r.ret, *r.objectives.values()]])


def summary(results: list[TaskResult]) -> str:
    """One line: the tasks' count and mean return."""
    returns = np.array([r.ret for r in results])
    return f"{len(results)} tasks, return mean {returns.mean():.3f} (min {returns.min():.3f}, max {returns.max():.3f})"


def untrained_return(spec: ResolvedSpec) -> float:
    """The mean eval return of the spec's untrained policy (its first member's initial weights, which come
    from the seed alone) on the tasks of the run's first evaluation."""
    from hindsight.build import build_agent, build_problem
    from hindsight.seeding import make_generator
    from hindsight.train.collector import Collector
    from hindsight.train.evaluator import Evaluator
    from hindsight.train.trainer import make_envs

    member = spec if spec.run.seeds is None else spec.member(spec.run.seeds[0])
    problem, seed = build_problem(member), member.run.seed
    fixed = problem.tasks.eval_tasks()
    count = member.run.eval.episodes if fixed is None else fixed.shape[0]
    collector = Collector(make_envs(problem, seed, "env/eval", count), problem.sizes.horizon, problem.reward)
    evaluator = Evaluator(collector, problem.tasks, make_generator(seed, "eval/tasks"))
    return float(evaluator.evaluate(build_agent(member, problem.sizes))["eval/return_mean"])
