"""The multi-objective part of a study's report: each method's front and its hypervolume over training.

For families whose reward declares objectives, every evaluation logs the front (``eval/mo/front``: the
mean objective returns under fixed weight vectors) and its metrics. Per family: one figure with each
method's final front (the mean over seeds of each weight vector's point, every seed's points faint),
drawn in 2-D projections when there are three or more objectives, and the hypervolume over training (mean
over seeds, 95% bootstrap band); and a table of the final hypervolume (from the family's reference point,
and from the study's own, ``study_reference``) and expected utility, each with a 95% bootstrap interval,
sparsity and objective returns.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from hindsight.rundir import RunDir

STUDY_MARGIN = 0.1  # the study's reference point lies this share of each objective's range below its worst


@attrs.frozen(eq=False)
class FrontRun:
    """One finished run's multi-objective evaluations.

    Attributes:
        family, method, seed: the run.
        objectives: the J objective names.
        front: [W, J] the last evaluation's front (mean objective returns per weight vector).
        steps: [E] env steps of the evaluations; hypervolume: [E] their hypervolumes.
        final: the last evaluation's ``eval/mo/*`` and ``eval/objective/*`` scalars.
    """

    family: str
    method: str
    seed: int
    objectives: tuple[str, ...]
    front: np.ndarray
    steps: np.ndarray
    hypervolume: np.ndarray
    final: dict[str, float]


def load_fronts(curves: list[Any]) -> list[FrontRun]:
    """The multi-objective evaluations of the finished runs (``report.Curve``s) that logged a front."""
    runs = []
    for curve in curves:
        rows = [r for r in RunDir(curve.run_dir).read_metrics() if r.get("eval/mo/front")]
        if not rows:
            continue
        table = rows[-1]["eval/mo/front"]
        names = tuple(c for c in table["columns"] if not c.startswith("w_"))
        final = {
            k: float(v)
            for k, v in rows[-1].items()
            if k.startswith(("eval/mo/", "eval/objective/")) and isinstance(v, (int, float))
        }
        runs.append(
            FrontRun(
                curve.family,
                curve.method,
                curve.seed,
                names,
                np.asarray(table["data"], dtype=float)[:, len(names) :],
                np.asarray([r["env_steps"] for r in rows], dtype=float),
                np.asarray([r["eval/mo/hypervolume"] for r in rows], dtype=float),
                final,
            )
        )
    return runs


def plot_family(runs: list[FrontRun], path_stem: Path, resamples: int, rng: np.random.Generator) -> list[Path]:
    """One family's figure: the fronts in every 2-D projection of the objectives, then the hypervolume
    over training; saved as PNG and SVG."""
    from matplotlib.figure import Figure

    from hindsight.studies.report import bootstrap

    names = runs[0].objectives
    pairs = list(itertools.combinations(range(len(names)), 2))
    methods = list(dict.fromkeys(r.method for r in runs))
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    cols = min(len(pairs) + 1, 4)
    rows = -(-(len(pairs) + 1) // cols)
    fig = Figure(figsize=(3.6 * cols, 3.3 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (i, j) in zip(axes, pairs, strict=False):
        for method in methods:
            fronts = np.stack([r.front for r in runs if r.method == method])  # [seeds, W, J]
            ax.scatter(fronts[..., i].ravel(), fronts[..., j].ravel(), s=6, color=colors[method], alpha=0.2, lw=0)
            mean = fronts.mean(0)
            ax.scatter(mean[:, i], mean[:, j], s=18, color=colors[method], label=method, edgecolors="k", lw=0.3)
        ax.set_xlabel(f"{names[i]} return")
        ax.set_ylabel(f"{names[j]} return")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, frameon=False)
    ax = axes[len(pairs)]
    for method in methods:
        group = [r for r in runs if r.method == method]
        start, stop = max(r.steps[0] for r in group), min(r.steps[-1] for r in group)
        grid = np.unique(np.concatenate([r.steps for r in group]))
        grid = grid[(grid >= start) & (grid <= stop)]
        values = np.stack([np.interp(grid, r.steps, r.hypervolume) for r in group])  # [seeds, P]
        mean, low, high = bootstrap(values, resamples, rng)
        ax.plot(grid, mean, color=colors[method], label=f"{method} ({len(group)} seeds)", lw=1.6)
        ax.fill_between(grid, low, high, color=colors[method], alpha=0.2, lw=0)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("hypervolume")
    ax.ticklabel_format(style="sci", scilimits=(-3, 4))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    for extra in axes[len(pairs) + 1 :]:
        extra.set_visible(False)
    fig.suptitle(f"{runs[0].family}: final fronts (mean over seeds; seeds faint) and hypervolume (95% band)")
    paths = [path_stem.with_suffix(".png"), path_stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    return paths


def markdown(runs: list[FrontRun], figure: str, resamples: int, rng: np.random.Generator) -> str:
    """One family's section: the figure and a table of the final multi-objective metrics per method."""
    from hindsight.fronts import hypervolume
    from hindsight.studies.report import bootstrap

    names = runs[0].objectives
    reference = study_reference(runs)
    lines = [
        f"## {runs[0].family}: multi-objective evaluation",
        "",
        "Each evaluation scores the policy under fixed weight vectors spread over the objectives' weights. "
        "Hypervolume of the front of mean objective returns above the family's reference point, expected "
        "utility (mean scalarised return), sparsity of the front; means over seeds of the last evaluation, "
        "the hypervolume and the expected utility with 95% bootstrap intervals. The study's hypervolume is "
        f"measured instead from the study's own reference point ({', '.join(f'{v:.4g}' for v in reference)}): "
        f"the worst final value of each objective over every run, less {STUDY_MARGIN:g} of its range over "
        "them, which separates methods where the family's declared point lies far below every front.",
        "",
        f"![fronts]({figure})",
        "",
        "| method | seeds | hypervolume | 95% interval | study's hypervolume | 95% interval | expected utility "
        "| 95% interval | sparsity | " + " | ".join(f"{n} return" for n in names) + " |",
        "|---|---:|---:|---|---:|---|---:|---|---:|" + "---:|" * len(names),
    ]
    for method in dict.fromkeys(r.method for r in runs):
        group = [r for r in runs if r.method == method]

        def mean(key: str, group: list[FrontRun] = group) -> float:
            return float(np.mean([r.final.get(key, np.nan) for r in group]))

        hv, low, high = bootstrap(np.array([r.final["eval/mo/hypervolume"] for r in group]), resamples, rng)
        study_hv = np.array([hypervolume(r.front, reference) for r in group])
        shv, shv_low, shv_high = bootstrap(study_hv, resamples, rng)
        eu, eu_low, eu_high = bootstrap(np.array([r.final["eval/mo/expected_utility"] for r in group]), resamples, rng)
        objectives = " | ".join(f"{mean(f'eval/objective/{n}'):.3f}" for n in names)
        lines.append(
            f"| {method} | {len(group)} | {float(hv):.4g} | [{float(low):.4g}, {float(high):.4g}] | "
            f"{float(shv):.4g} | [{float(shv_low):.4g}, {float(shv_high):.4g}] | "
            f"{float(eu):.3f} | [{float(eu_low):.4g}, {float(eu_high):.4g}] | {mean('eval/mo/sparsity'):.4g} | "
            f"{objectives} |"
        )
    return "\n".join([*lines, ""])


def study_reference(runs: list[FrontRun]) -> np.ndarray:
    """[J] below every run's final front: per objective, the worst value over the runs' fronts less
    ``STUDY_MARGIN`` of the range between it and the best."""
    points = np.concatenate([r.front for r in runs])
    worst, best = points.min(axis=0), points.max(axis=0)
    return worst - STUDY_MARGIN * (best - worst)


def write_fronts(curves: list[Any], out: Path, resamples: int, seed: int = 0) -> tuple[str, list[Path]]:
    """``fronts-<family>.png`` and ``.svg`` in ``out`` for every family with objectives; returns the
    report's Markdown section (empty without such families) and the files written."""
    runs = load_fronts(curves)
    rng = np.random.default_rng(seed)
    sections, paths = [], []
    for family in dict.fromkeys(r.family for r in runs):
        members = [r for r in runs if r.family == family]
        written = plot_family(members, out / f"fronts-{family}", resamples, rng)
        paths += written
        sections.append(markdown(members, os.path.relpath(written[0], out), resamples, rng))
    return "\n".join(sections), paths
