"""The ``hindsight study`` and ``hindsight report`` commands (attached to the app in hindsight.cli)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

from hindsight.console import fail


class Backend(StrEnum):
    """Where a study's runs execute."""

    local = "local"
    ray = "ray"


def study(
    study_file: Path = typer.Argument(..., help="study spec (YAML): a base run spec plus a grid"),
    backend: Backend = typer.Option(Backend.local, help="local: worker processes here; ray: Ray Tune trials"),
    workers: int | None = typer.Option(
        None,
        min=1,
        help="jobs (runs or populations) at once "
        "(default: 2 locally; with ray, as many as the cluster's resources allow)",
    ),
    population: int | None = typer.Option(
        None,
        min=1,
        help="train up to N seeds of a configuration "
        "together as one population run (default: the study's "
        "`population`, else 1)",
    ),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="override: dotted.path=value for the base run spec, "
        "or grid.dotted.path=LIST (a YAML list) to replace a grid axis (repeatable)",
    ),
    out_dir: Path | None = typer.Option(None, "--out", help="study directory (default runs/studies/<name>)"),
    address: str | None = typer.Option(
        None,
        help="Ray cluster (ray backend): HOST:PORT of its head, ray://HOST:PORT (Ray Client) or auto; "
        "default: start Ray on this machine",
    ),
    storage: str | None = typer.Option(
        None,
        help="ray backend: where trials' checkpoints and run directories go, through Ray's storage layer: "
        "a path or URI every node and this machine reach (NFS, s3://bucket/path, gs://...); "
        "default: <study dir>/tune here, which suits a local Ray or nodes on this machine",
    ),
    max_failures: int = typer.Option(
        3, min=0, help="ray backend: retries of a failed trial, each from its last checkpoint"
    ),
    connect_timeout: float = typer.Option(
        30.0, min=0.1, help="ray backend: seconds to wait for --address to answer before giving up"
    ),
    cpus_per_job: int | None = typer.Option(
        None,
        min=1,
        help="CPUs each job uses, its torch threads too (default: locally the machine's cores / --workers, "
        "1 where other studies share the cores; with ray, runtime.threads, reserved from the cluster)",
    ),
    gpus_per_job: float | None = typer.Option(
        None, min=0.0, help="ray backend: GPUs each job reserves, a fraction to share one (default: 1 on cuda, else 0)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and list the runs without training"),
) -> None:
    """Train every run of a study's grid, skipping finished runs; a failed run does not stop the others."""
    from hindsight.registry import RegistryError
    from hindsight.specs import SpecError
    from hindsight.studies.layout import RUNS_DIR
    from hindsight.studies.runner import BackendError, RayOptions, initial_statuses, plan_jobs, run_study, status_table
    from hindsight.studies.spec import expand, load_study

    ray_only = {
        "--address": address,
        "--storage": storage,
        "--gpus-per-job": gpus_per_job,
    }
    for option, value in ray_only.items():
        if value is not None and backend is not Backend.ray:
            fail(f"{option} needs --backend ray")
    try:
        plan = load_study(study_file, set_)
        runs = expand(plan)
    except (SpecError, RegistryError) as exc:
        fail(str(exc))
    out = out_dir or Path("runs") / "studies" / plan.name
    size = plan.population if population is None else population
    console = Console(stderr=True)
    if dry_run:
        statuses = initial_statuses(runs, out)
        if console.is_terminal:
            console.print(status_table(statuses))
        else:
            for status in statuses:
                console.print(status.line(), highlight=False, markup=False, soft_wrap=True)
        jobs = plan_jobs(statuses, out, size)
        packed = sum(len(job.statuses) for job in jobs if job.members is not None)
        populations = sum(job.members is not None for job in jobs)
        console.print(
            f"{len(runs)} runs in {out / RUNS_DIR}"
            + (f"; {packed} of them to train in {populations} populations" if packed else ""),
            soft_wrap=True,
        )
        return
    try:
        ray = RayOptions(address, storage, max_failures, connect_timeout, cpus_per_job, gpus_per_job)
        statuses = run_study(plan, runs, out, backend.value, workers, console, population=size, ray=ray)
    except BackendError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{out}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        fail(f"interrupted; the running runs were stopped (see {out}/status.json); re-run to continue", 130)
    failed = [s for s in statuses if s.state == "failed"]
    console.print(f"study directory: {out}  ({len(statuses) - len(failed)} of {len(statuses)} runs finished)")
    if failed:
        console.print(f"[red]{len(failed)} failed[/]: see error.txt in each run directory and {out}/status.json")
        raise typer.Exit(1)


def report(
    study_dirs: list[Path] = typer.Argument(..., help="study directories written by `hindsight study`"),
    out_dir: Path | None = typer.Option(None, "--out", help="output folder (default: <first STUDY_DIR>/report)"),
    fraction: float = typer.Option(
        0.9,
        min=0.0,
        max=1.0,
        help="sample efficiency: env steps to reach this "
        "fraction of the way from the first evaluation to the best final return",
    ),
    resamples: int = typer.Option(1000, min=1, help="bootstrap resamples for the 95% intervals"),
) -> None:
    """Learning curves (PNG, SVG) and tables of final return and sample efficiency (Markdown, CSV)."""
    from hindsight.studies.report import ReportError, write_report

    out = out_dir or study_dirs[0] / "report"
    try:
        files = write_report(study_dirs, out, fraction, resamples)
    except ReportError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{out}: {exc.strerror or exc}")
    console = Console()
    console.print(files["markdown"].read_text(), highlight=False, markup=False, soft_wrap=True)
    console.print("wrote " + ", ".join(str(p) for p in files.values()))
