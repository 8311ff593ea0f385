"""The field's aggregate statistics over a study's runs, from the rliable library (Agarwal et al., NeurIPS
2021), and the relabeling diagnostics over training.

Scores are each run's final evaluation return normalised per family: 0 is the family's mean
first-evaluation return over all its runs (the barely trained policy), 1 the best method's mean final return.
Per family and method: IQM, median, mean and optimality gap (to 1) with 95% stratified bootstrap intervals;
the same over training (each run's normalised return averaged over the common env-step grid: sample
efficiency); the probability of improvement of every method over every other, on both, with its interval;
performance profiles (the share of runs scoring above tau); and IQM sample-efficiency curves (the IQM of
the normalised return at each point of the common env-step grid). rliable's median is the median over
tasks of each task's mean over runs: with one family it equals the mean.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hindsight.rundir import RunDir

if TYPE_CHECKING:
    from hindsight.studies.report import Curve

AGGREGATES = ("IQM", "median", "mean", "optimality gap")
CURVE_POINTS = 20  # points of an IQM sample-efficiency curve
DIAGNOSTIC_KEYS = ("relabel/value_bias", "relabel/original_won")


def references(curves: list[Curve]) -> dict[str, tuple[float, float]]:
    """Per family: (the mean first-evaluation return over its runs, the best method's mean final return)."""
    out = {}
    for family in dict.fromkeys(c.family for c in curves):
        runs = [c for c in curves if c.family == family]
        methods = dict.fromkeys(c.method for c in runs)
        best = max(float(np.mean([c.returns[-1] for c in runs if c.method == m])) for m in methods)
        out[family] = (float(np.mean([c.returns[0] for c in runs])), best)
    return out


def _normalise(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return (values - low) / (high - low) if high != low else values - low


def _aggregate(scores: np.ndarray) -> np.ndarray:
    """IQM, median, mean and optimality gap of scores [runs, tasks]."""
    from rliable import metrics

    return np.array(
        [
            metrics.aggregate_iqm(scores),
            metrics.aggregate_median(scores),
            metrics.aggregate_mean(scores),
            metrics.aggregate_optimality_gap(scores),
        ]
    )


def _iqm_per_point(scores: np.ndarray) -> np.ndarray:
    """rliable's IQM (the 25% trimmed mean over runs and tasks) at each point of scores [runs, tasks, points]."""
    from scipy.stats import trim_mean

    return trim_mean(scores.reshape(-1, scores.shape[-1]), proportiontocut=0.25, axis=0)


def family_statistics(
    curves: list[Curve], family: str, low: float, high: float, resamples: int, seed: int
) -> dict[str, Any]:
    """rliable's estimates for one family: aggregates, pairwise probabilities of improvement, performance
    profiles and IQM curves, each with 95% stratified bootstrap intervals."""
    from rliable import library as rly
    from rliable import metrics

    runs = [c for c in curves if c.family == family]
    methods = list(dict.fromkeys(c.method for c in runs))
    finals = {m: _normalise(np.array([[c.returns[-1]] for c in runs if c.method == m]), low, high) for m in methods}

    def stream() -> np.random.RandomState:
        return np.random.RandomState(seed)

    point, interval = rly.get_interval_estimates(finals, _aggregate, reps=resamples, random_state=stream())
    pairs = {f"{a} > {b}": (finals[a], finals[b]) for a in methods for b in methods if a != b}
    improvement, improvement_ci = (
        rly.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=resamples, random_state=stream())
        if pairs
        else ({}, {})
    )
    taus = np.linspace(min(v.min() for v in finals.values()), max(v.max() for v in finals.values()), 41)
    profiles, profile_ci = rly.create_performance_profile(finals, taus, reps=resamples)
    start = max(c.steps[0] for c in runs)
    stop = min(c.steps[-1] for c in runs)
    grid = np.linspace(start, stop, CURVE_POINTS)
    curves_by_method = {
        m: _normalise(np.stack([np.interp(grid, c.steps, c.returns) for c in runs if c.method == m]), low, high)[
            :, None, :
        ]
        for m in methods
    }  # [runs, 1 task, points]
    iqm, iqm_ci = rly.get_interval_estimates(
        curves_by_method,
        _iqm_per_point,
        reps=resamples,
        random_state=stream(),
    )
    areas = {m: curves_by_method[m].mean(axis=-1) for m in methods}  # [runs, 1]: mean over the grid
    area_point, area_interval = rly.get_interval_estimates(areas, _aggregate, reps=resamples, random_state=stream())
    area_pairs = {f"{a} > {b}": (areas[a], areas[b]) for a in methods for b in methods if a != b}
    area_improvement, area_improvement_ci = (
        rly.get_interval_estimates(
            area_pairs, metrics.probability_of_improvement, reps=resamples, random_state=stream()
        )
        if area_pairs
        else ({}, {})
    )
    return {
        "methods": methods,
        "runs": {m: len(finals[m]) for m in methods},
        "point": point,
        "interval": interval,
        "improvement": improvement,
        "improvement_ci": improvement_ci,
        "taus": taus,
        "profiles": profiles,
        "profile_ci": profile_ci,
        "grid": grid,
        "iqm": iqm,
        "iqm_ci": iqm_ci,
        "area_point": area_point,
        "area_interval": area_interval,
        "area_improvement": area_improvement,
        "area_improvement_ci": area_improvement_ci,
    }


def plot_family(family: str, stats: dict[str, Any], path: Path) -> Path:
    """Performance profiles and IQM sample-efficiency curves of one family, side by side (PNG)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), layout="constrained")
    profile_ax, iqm_ax = fig.subplots(1, 2)
    for i, method in enumerate(stats["methods"]):
        color = f"C{i % 10}"
        low, high = stats["profile_ci"][method]
        profile_ax.plot(stats["taus"], stats["profiles"][method], color=color, label=method)
        profile_ax.fill_between(stats["taus"], low, high, color=color, alpha=0.2, linewidth=0)
        low, high = stats["iqm_ci"][method]
        iqm_ax.plot(stats["grid"], stats["iqm"][method], color=color, label=method)
        iqm_ax.fill_between(stats["grid"], low, high, color=color, alpha=0.2, linewidth=0)
    profile_ax.set(
        title=f"{family}: performance profile",
        xlabel="normalised final return tau",
        ylabel="fraction of runs with score > tau",
    )
    iqm_ax.set(title=f"{family}: IQM sample efficiency", xlabel="environment steps", ylabel="IQM normalised return")
    for ax in (profile_ax, iqm_ax):
        ax.grid(alpha=0.3)
    iqm_ax.legend(frameon=False, fontsize="small")
    fig.savefig(path, dpi=150)
    return path


def plot_diagnostics(curves: list[Curve], path: Path) -> Path | None:
    """Per family and method, the mean over seeds of the relabeling diagnostics over training: the value
    bias V(s0, z') - R(tau | z'), how often the original won, and each task component's mean for the
    relabeled copies (solid) and the originals (dashed). None when no run logged them."""
    from matplotlib.figure import Figure

    series: dict[tuple[str, str], dict[str, list[tuple[float, float]]]] = {}
    for curve in curves:
        for row in RunDir(curve.run_dir).read_metrics():
            for key, value in row.items():
                if (
                    key.startswith(
                        (
                            "relabel/value_bias",
                            "relabel/original_won",
                            "relabel/relabeled_task_mean",
                            "relabel/original_task_mean",
                        )
                    )
                    and value is not None
                ):
                    series.setdefault((curve.family, curve.method), {}).setdefault(key, []).append(
                        (row["env_steps"], value)
                    )
    if not series:
        return None
    keys = sorted({k.replace("original_task_mean", "relabeled_task_mean") for s in series.values() for k in s})
    fig = Figure(figsize=(3.6 * len(keys), 3.2 * len({f for f, _ in series})), layout="constrained")
    families = list(dict.fromkeys(f for f, _ in series))
    axes = fig.subplots(len(families), len(keys), squeeze=False)
    methods = list(dict.fromkeys(m for _, m in series))
    for row_axes, family in zip(axes, families, strict=True):
        for ax, key in zip(row_axes, keys, strict=True):
            for method in methods:
                data = series.get((family, method), {})
                color = f"C{methods.index(method) % 10}"
                for name, style in ((key, "-"), (key.replace("relabeled_task_mean", "original_task_mean"), "--")):
                    if name in data and (style == "-" or name != key):
                        steps, values = _mean_by_step(data[name])
                        ax.plot(steps, values, style, color=color, label=method if style == "-" else None)
            ax.set(title=f"{family}: {key.removeprefix('relabel/')}", xlabel="environment steps")
            ax.grid(alpha=0.3)
    axes[0, 0].legend(frameon=False, fontsize="small")
    fig.savefig(path, dpi=120)
    return path


def diagnostics_table(curves: list[Curve]) -> list[str]:
    """Markdown rows per family and method: the mean over runs of each run's mean value bias and share of
    originals that won, over all of training and over its last tenth of epochs (empty when none logged them)."""
    lines = []
    for family, method in dict.fromkeys((c.family, c.method) for c in curves):
        per_run = []
        for curve in (c for c in curves if (c.family, c.method) == (family, method)):
            rows = [r for r in RunDir(curve.run_dir).read_metrics() if r.get("relabel/value_bias") is not None]
            if rows:
                tail = rows[-max(1, len(rows) // 10) :]
                per_run.append([_mean_of(part, key) for key in DIAGNOSTIC_KEYS for part in (rows, tail)])
        if per_run:
            cells = " | ".join("-" if np.isnan(v) else f"{v:.3f}" for v in np.mean(per_run, axis=0))
            lines.append(f"| {family} | {method} | {len(per_run)} | {cells} |")
    if not lines:
        return []
    return [
        "| family | method | runs | value bias, all | value bias, last 10% | original won, all "
        "| original won, last 10% |",
        "|---|---|---:|---:|---:|---:|---:|",
        *lines,
        "",
    ]


def _mean_of(rows: list[dict[str, Any]], key: str) -> float:
    """The mean of ``key`` over the rows that logged it (NaN when none did)."""
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(values)) if values else float("nan")


def _mean_by_step(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    by_step: dict[float, list[float]] = {}
    for step, value in points:
        by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    return steps, [float(np.mean(by_step[s])) for s in steps]


def _ci(values: Any) -> str:
    low, high = np.asarray(values).ravel()[:2]
    return f"[{low:.3f}, {high:.3f}]"


def write_aggregates(curves: list[Curve], out: Path, resamples: int, seed: int = 0) -> tuple[str, list[Path]]:
    """The rliable section of the report (Markdown), its CSV tables and plots, and the diagnostics plot."""
    warnings.filterwarnings("ignore", "random_state is deprecated", FutureWarning)  # rliable 1.2 passes it to arch
    refs = references(curves)
    lines = [
        "## Aggregate metrics (rliable)",
        "",
        "Scores: each run's final return normalised per family, 0 = the family's mean first-evaluation "
        "return, 1 = the best method's mean final return. 95% stratified bootstrap intervals "
        f"({resamples} resamples). rliable's median is over tasks (of each task's mean over runs): with one "
        "family it equals the mean.",
        "",
    ]
    files: list[Path] = []
    aggregate_rows, improvement_rows = [], []
    for family, (low, high) in refs.items():
        stats = family_statistics(curves, family, low, high, resamples, seed)
        lines += [
            f"### {family} (0 = {low:.3f}, 1 = {high:.3f})",
            "",
            "| method | runs | " + " | ".join(AGGREGATES) + " |",
            "|---|---:|" + "---|" * len(AGGREGATES),
        ]
        for method in stats["methods"]:
            point, interval = stats["point"][method], stats["interval"][method]
            cells = [f"{point[i]:.3f} {_ci(interval[:, i])}" for i in range(len(AGGREGATES))]
            lines.append(f"| {method} | {stats['runs'][method]} | " + " | ".join(cells) + " |")
            aggregate_rows += [[family, method, name, point[i], *interval[:, i]] for i, name in enumerate(AGGREGATES)]
        lines += [
            "",
            "Sample efficiency: each run's normalised return averaged over training (the area under its curve "
            "on the common env-step grid, divided by its length).",
            "",
            "| method | IQM over training | mean over training |",
            "|---|---|---|",
        ]
        for method in stats["methods"]:
            point, interval = stats["area_point"][method], stats["area_interval"][method]
            lines.append(f"| {method} | {point[0]:.3f} {_ci(interval[:, 0])} | {point[2]:.3f} {_ci(interval[:, 2])} |")
            aggregate_rows += [
                [family, method, f"{name} over training", point[i], *interval[:, i]]
                for i, name in enumerate(AGGREGATES)
            ]
        if stats["improvement"]:
            lines += [
                "",
                "| probability of improvement | P(X > Y), final | 95% interval "
                "| P(X > Y), over training | 95% interval |",
                "|---|---:|---|---:|---|",
            ]
            for pair, value in stats["improvement"].items():
                area, area_ci = stats["area_improvement"][pair], stats["area_improvement_ci"][pair]
                lines.append(
                    f"| {pair} | {float(value):.3f} | {_ci(stats['improvement_ci'][pair])} "
                    f"| {float(area):.3f} | {_ci(area_ci)} |"
                )
                improvement_rows.append(
                    [
                        family,
                        pair,
                        float(value),
                        *np.asarray(stats["improvement_ci"][pair]).ravel(),
                        float(area),
                        *np.asarray(area_ci).ravel(),
                    ]
                )
        figure = plot_family(family, stats, out / f"rliable-{family}.png")
        files.append(figure)
        lines += ["", f"![{family} profiles and IQM curves]({figure.name})", ""]
    for name, header, rows in (
        ("aggregates.csv", ["family", "method", "metric", "value", "low", "high"], aggregate_rows),
        (
            "improvement.csv",
            ["family", "pair", "probability", "low", "high", "area_probability", "area_low", "area_high"],
            improvement_rows,
        ),
    ):
        with (out / name).open("w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
        files.append(out / name)
    diagnostics = plot_diagnostics(curves, out / "diagnostics.png")
    if diagnostics is not None:
        files.append(diagnostics)
        lines += [
            "## Relabeling diagnostics",
            "",
            "Mean over seeds per epoch: value bias V(s0, z') - R(tau | z') of the relabeled tasks, how often "
            "the original task won, and each task component's mean for the relabeled copies (solid) and the "
            "originals (dashed).",
            "",
            f"![relabeling diagnostics]({diagnostics.name})",
            "",
            *diagnostics_table(curves),
        ]
    return "\n".join(lines), files
