"""A study's report from its local metrics files alone: learning curves and tables.

Only finished runs count (those whose metrics reach their last epoch); the others are listed as missing.
For each family and method: the mean eval-return curve over seeds with a 95% bootstrap band (seeds
resampled with replacement), the final return (each seed's last evaluation) with its 95% bootstrap
interval, and the sample efficiency: the env steps at which the mean curve first reaches
``first + fraction * (best - first)``, where ``best`` is the best method's mean final return and ``first``
the family's mean first-evaluation return (returns may be negative, so a plain fraction of ``best``
would not do).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from hindsight.render import find_pictures
from hindsight.rundir import RunDir
from hindsight.studies.aggregate import write_aggregates
from hindsight.studies.fronts import write_fronts
from hindsight.studies.layout import MANIFEST_FILE, RUNS_DIR

BASELINE = "none"  # the method whose final return the others' "steps to none's final" is measured against


class ReportError(Exception):
    """Nothing to report on; the message is meant for the user."""


@attrs.frozen(eq=False)
class Curve:
    """One finished run's evaluations: env steps [E] and eval returns [E]."""

    family: str
    method: str
    seed: int
    steps: np.ndarray
    returns: np.ndarray
    run_dir: Path


@attrs.frozen(eq=False)
class MethodResult:
    """One method in one family, over its seeds."""

    family: str
    method: str
    seeds: int
    steps: np.ndarray  # [P] common env-step grid
    mean: np.ndarray  # [P] mean eval return over seeds
    low: np.ndarray  # [P] 95% bootstrap band
    high: np.ndarray
    final: tuple[float, float, float]  # mean, low, high of the final return
    first: float  # mean first-evaluation return
    steps_to_target: int | None = None
    target: float | None = None
    steps_to_baseline: int | None = None  # env steps the mean curve takes to reach the baseline's final return


def load_curves(study_dirs: list[Path]) -> tuple[list[Curve], list[str]]:
    """Finished runs' curves, in manifest order, and a description of each run left out."""
    curves, missing = [], []
    for study_dir in study_dirs:
        manifest_file = study_dir / MANIFEST_FILE
        if not manifest_file.is_file():
            raise ReportError(f"{study_dir}: not a study directory (no {MANIFEST_FILE}; run `hindsight study` first)")
        for run in json.loads(manifest_file.read_text())["runs"]:
            rows = RunDir(study_dir / RUNS_DIR / run["id"]).read_metrics()
            evals = [(r["env_steps"], r["eval/return_mean"]) for r in rows if r.get("eval/return_mean") is not None]
            done = rows[-1]["epoch"] if rows else 0
            if done < run["epochs"] or not evals:
                missing.append(f"{study_dir.name}/{run['id']} ({done} of {run['epochs']} epochs)")
                continue
            steps, returns = (np.asarray(v, dtype=float) for v in zip(*evals, strict=True))
            curves.append(
                Curve(run["family"], run["method"], run["seed"], steps, returns, study_dir / RUNS_DIR / run["id"])
            )
    if not curves:
        raise ReportError("no finished runs to report on" + (f"; unfinished: {', '.join(missing)}" if missing else ""))
    return curves, missing


def bootstrap(
    values: np.ndarray, resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over axis 0 (seeds) and its 95% percentile-bootstrap interval."""
    index = rng.integers(0, values.shape[0], (resamples, values.shape[0]))
    means = values[index].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5], axis=0)
    return values.mean(axis=0), low, high


def summarize(curves: list[Curve], fraction: float, resamples: int, seed: int = 0) -> list[MethodResult]:
    """One result per (family, method), in first-appearance order, with its sample efficiency."""
    rng = np.random.default_rng(seed)
    keys = list(dict.fromkeys((c.family, c.method) for c in curves))
    results = []
    for family, method in keys:
        group = [c for c in curves if (c.family, c.method) == (family, method)]
        start = max(c.steps[0] for c in group)
        stop = min(c.steps[-1] for c in group)
        grid = np.unique(np.concatenate([c.steps for c in group]))
        grid = grid[(grid >= start) & (grid <= stop)]
        values = np.stack([np.interp(grid, c.steps, c.returns) for c in group])  # [seeds, P]
        mean, low, high = bootstrap(values, resamples, rng)
        final_mean, final_low, final_high = bootstrap(np.array([c.returns[-1] for c in group]), resamples, rng)
        final = (float(final_mean), float(final_low), float(final_high))
        first = float(np.mean([c.returns[0] for c in group]))
        results.append(MethodResult(family, method, len(group), grid, mean, low, high, final, first))
    out = []
    for family in dict.fromkeys(r.family for r in results):
        members = [r for r in results if r.family == family]
        first = float(np.mean([r.first for r in members]))
        best = max(r.final[0] for r in members)
        target = first + fraction * (best - first)
        baseline = next((r.final[0] for r in members if r.method == BASELINE), None)
        for r in members:
            out.append(
                attrs.evolve(
                    r,
                    steps_to_target=_first_reach(r, target),
                    target=target,
                    steps_to_baseline=None if baseline is None else _first_reach(r, baseline),
                )
            )
    return out


def _first_reach(result: MethodResult, level: float) -> int | None:
    """The first env step at which the method's mean curve reaches ``level``, or None."""
    reached = np.flatnonzero(result.mean >= level)
    return int(result.steps[reached[0]]) if reached.size else None


def plot(results: list[MethodResult], path_stem: Path) -> list[Path]:
    """Figure-3-style curves, one panel per family, saved as PNG and SVG."""
    from matplotlib.figure import Figure

    families = list(dict.fromkeys(r.family for r in results))
    methods = list(dict.fromkeys(r.method for r in results))
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    cols = min(len(families), 3)
    rows = -(-len(families) // cols)
    fig = Figure(figsize=(4.8 * cols, 3.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    handles = {}
    for ax, family in zip(axes, families, strict=False):
        members = [r for r in results if r.family == family]
        for r in members:
            (handles[r.method],) = ax.plot(r.steps, r.mean, color=colors[r.method], label=r.method, linewidth=1.8)
            ax.fill_between(r.steps, r.low, r.high, color=colors[r.method], alpha=0.2, linewidth=0)
        seeds = sorted({r.seeds for r in members})
        count = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
        ax.set_title(f"{family} ({count} seed{'' if count == '1' else 's'} per method)")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("eval return")
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
    for ax in axes[len(families) :]:
        ax.set_visible(False)
    widest = max(len(m) for m in handles) + 5  # characters, the line sample included
    ncol = max(1, min(len(handles), int(fig.get_figwidth() / (0.085 * widest))))
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=ncol, frameon=False)
    paths = [path_stem.with_suffix(".png"), path_stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    return paths


def _steps(value: int | None) -> str:
    return "not reached" if value is None else f"{value:,}"


def markdown(results: list[MethodResult], missing: list[str], fraction: float, figure: str) -> str:
    """The tables, one per family, with how they were computed."""
    lines = [
        "# Study report",
        "",
        f"Final return: mean over seeds of each seed's last evaluation, with a 95% bootstrap interval. "
        f"Steps to {fraction:.0%}: env steps at which the method's mean curve first reaches "
        f"first + {fraction:g} x (best - first), where best is the best method's final return and first "
        f"the family's mean first-evaluation return. Steps to none's final: env steps at which the mean "
        f"curve first reaches the {BASELINE} method's mean final return, and their share of the run's steps.",
        "",
        f"![learning curves]({figure})",
        "",
    ]
    for family in dict.fromkeys(r.family for r in results):
        members = [r for r in results if r.family == family]
        lines += [
            f"## {family} (target return {members[0].target:.3f})",
            "",
            f"| method | seeds | final return | 95% interval | steps to {fraction:.0%} | steps to {BASELINE}'s final |",
            "|---|---:|---:|---|---:|---:|",
        ]
        for r in members:
            mean, low, high = r.final
            share = "" if r.steps_to_baseline is None else f" ({r.steps_to_baseline / r.steps[-1]:.0%})"
            lines.append(
                f"| {r.method} | {r.seeds} | {mean:.3f} | [{low:.3f}, {high:.3f}] | {_steps(r.steps_to_target)} "
                f"| {_steps(r.steps_to_baseline)}{share} |"
            )
        lines.append("")
    if missing:
        lines += ["Left out (unfinished or failed): " + ", ".join(missing), ""]
    return "\n".join(lines)


def picture_links(curves: list[Curve], out: Path) -> str:
    """A Markdown list linking the videos and pictures `hindsight render` / `relabel-picture` left in
    finished runs' directories (empty when there are none)."""
    lines = []
    for curve in curves:
        pictures = find_pictures(curve.run_dir)
        if pictures:
            links = ", ".join(f"[{p.name}]({os.path.relpath(p, out)})" for p in pictures)
            lines.append(f"- {curve.family} / {curve.method} / seed {curve.seed}: {links}")
    return "\n".join(["## Pictures", "", *lines, ""]) if lines else ""


def write_csv(results: list[MethodResult], path: Path, fraction: float) -> None:
    """One row per (family, method)."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "family",
                "method",
                "seeds",
                "final_return_mean",
                "final_return_low",
                "final_return_high",
                "fraction",
                "target_return",
                "steps_to_target",
                "steps_to_baseline",
            ]
        )
        for r in results:
            writer.writerow(
                [
                    r.family,
                    r.method,
                    r.seeds,
                    *(f"{x:.6g}" for x in r.final),
                    fraction,
                    f"{r.target:.6g}",
                    "" if r.steps_to_target is None else r.steps_to_target,
                    "" if r.steps_to_baseline is None else r.steps_to_baseline,
                ]
            )


def write_report(study_dirs: list[Path], out: Path, fraction: float = 0.9, resamples: int = 1000) -> dict[str, Any]:
    """Write curves.png, curves.svg, report.md and results.csv into ``out``; returns their paths by kind."""
    curves, missing = load_curves(study_dirs)
    results = summarize(curves, fraction, resamples)
    out.mkdir(parents=True, exist_ok=True)
    png, svg = plot(results, out / "curves")
    md = out / "report.md"
    aggregates, aggregate_files = write_aggregates(curves, out, resamples)
    fronts, front_files = write_fronts(curves, out, resamples)
    md.write_text(
        "\n".join([markdown(results, missing, fraction, png.name), aggregates, fronts, picture_links(curves, out)])
    )
    write_csv(results, out / "results.csv", fraction)
    files = {"png": png, "svg": svg, "markdown": md, "csv": out / "results.csv"}
    return files | {path.stem: path for path in aggregate_files} | {path.name: path for path in front_files}
