"""The ``hindsight`` command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from hindsight.console import err, fail, out
from hindsight.policy.cli import evaluate, export, next_steps
from hindsight.registry import KINDS, REGISTRY, RegistryError
from hindsight.render.cli import relabel_picture, render
from hindsight.specs import SpecError, load_spec
from hindsight.studies.cli import report, study

app = typer.Typer(
    help="Multi-task RL with Generalized Hindsight relabeling on dm_control physics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _load(spec: Path, overrides: list[str]):
    try:
        return load_spec(spec, overrides)
    except (SpecError, RegistryError) as exc:
        fail(str(exc))


@app.command("list")
def list_components(kind: str | None = typer.Argument(None, help=f"one of: {', '.join(KINDS)}")) -> None:
    """List every registered component (or those of one KIND) with its summary."""
    if kind is not None and kind not in KINDS:
        fail(f"unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
    try:
        entries = REGISTRY.entries(kind)
    except RegistryError as exc:
        fail(str(exc))
    table = Table(show_header=True, header_style="bold")
    for column in ("kind", "name", "summary"):
        table.add_column(column)
    for entry in entries:
        table.add_row(entry.kind, entry.name, REGISTRY.summary(entry))
    out.print(table)


@app.command()
def validate(
    spec: Path = typer.Argument(..., help="run spec (YAML)"),
    set_: list[str] = typer.Option([], "--set", help="override: dotted.path=value (repeatable)"),
) -> None:
    """Check a run spec and print it resolved, with every default filled in."""
    import yaml

    resolved = _load(spec, set_)
    out.print(yaml.safe_dump(resolved.to_dict(), sort_keys=False), highlight=False, markup=False, end="")


@app.command()
def run(
    spec: Path = typer.Argument(..., help="run spec (YAML)"),
    set_: list[str] = typer.Option([], "--set", help="override: dotted.path=value (repeatable)"),
    out_dir: Path | None = typer.Option(None, "--out", help="run directory (default runs/<spec>-<time>)"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its last checkpoint"),
    progress: bool | None = typer.Option(None, "--progress/--no-progress", help="show the progress bar"),
) -> None:
    """Train the agent a run spec describes; write spec.yaml, metrics.jsonl and checkpoint.pt.

    SIGINT (Ctrl-C) or SIGTERM stops at the next safe point with a checkpoint written; --resume continues.
    """
    from hindsight.policy.evaluate import untrained_return
    from hindsight.rundir import RunDir
    from hindsight.train.checkpoint import CheckpointError, last_good
    from hindsight.train.run import RunDirError, default_run_dir, execute
    from hindsight.train.trainer import NonFiniteError, StopRequested

    resolved = _load(spec, set_)
    if resume and out_dir is None:
        fail("--resume needs --out DIR, the run directory to continue")
    run_dir = out_dir or default_run_dir(spec)
    try:
        rows = execute(resolved, run_dir, progress, resume=resume)
    except (RunDirError, CheckpointError) as exc:
        fail(str(exc))
    except StopRequested as exc:
        err.print(
            f"{exc}; checkpoint written. Continue with: hindsight run {spec} --out {run_dir} --resume", markup=False
        )
        raise typer.Exit(130) from None
    except NonFiniteError as exc:
        good = last_good(RunDir(run_dir))
        kept = f"the last good checkpoint is {good}" if good else f"no verified checkpoint in {run_dir}"
        fail(f"training diverged: {exc}; {kept}", code=1)
    except OSError as exc:
        fail(f"{run_dir}: {exc.strerror or exc}")
    last = rows[-1] if rows else {}
    out.print(f"run directory: {run_dir}")
    if resolved.run.seeds is not None:
        out.print(
            f"population of {len(resolved.run.seeds)} members, one directory each: "
            + ", ".join(f"seed{s}" for s in resolved.run.seeds)
            + "; first member:"
        )
    if last.get("eval/return_mean") is not None:
        out.print(
            f"final eval return {last['eval/return_mean']:.3f} after {last['env_steps']:,} env steps "
            f"({last['train/steps_per_s']:.0f} env steps/s); the untrained policy's: {untrained_return(resolved):.3f}",
            soft_wrap=True,
        )
        first = RunDir(run_dir).members(resolved.run.seeds)[0].path
        out.print(next_steps(first), highlight=False, markup=False, soft_wrap=True)
    elif not rows:
        out.print("nothing to do: the run had already finished")


app.command()(study)
app.command()(report)
app.command()(render)
app.command("relabel-picture")(relabel_picture)
app.command("eval")(evaluate)
app.command("export")(export)


def main() -> None:
    """Entry point for ``python -m hindsight``."""
    app()


if __name__ == "__main__":
    main()
