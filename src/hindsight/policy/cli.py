"""The ``eval`` and ``export`` commands (attached to the app in ``hindsight.cli``)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from hindsight.console import fail, out
from hindsight.render.video import RenderError


def next_steps(run_dir: Path) -> str:
    """What to do with a trained run: the commands that use it, for the end of ``hindsight run``."""
    return "\n".join(
        [
            "next:",
            f'  hindsight eval {run_dir} --grid 10      the policy on tasks you choose (or --task "weights=1,0,0")',
            f"  hindsight render {run_dir}              a video of it",
            f"  hindsight export {run_dir} --format onnx   the policy as a standalone file",
            "  hindsight study STUDY.yaml, then hindsight report STUDY_DIR   methods compared over seeds: "
            "curves and fronts (e.g. envs/point_reacher/quickstart_study.yaml)",
        ]
    )


class ExportFormat(StrEnum):
    """The file format of an exported policy."""

    torchscript = "torchscript"
    onnx = "onnx"


def evaluate(
    run_dir: Path = typer.Argument(..., help="run directory (from hindsight run --out DIR)"),
    task: list[str] = typer.Option(
        [],
        "--task",
        help='a task as field=values pairs, e.g. "weights=1,0,0 goal=0.2,0.1" (repeatable); fields left out '
        "are drawn from the task distribution; z=v1,v2,... gives the raw task vector",
    ),
    tasks_file: Path | None = typer.Option(
        None, "--tasks", help="a YAML or JSON list of such tasks (field: values), or a CSV with a column per component"
    ),
    grid: int | None = typer.Option(
        None,
        "--grid",
        min=1,
        help="N weight vectors spread over the objectives' weights, the rest of the task one shared draw",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="seed of the draws for the fields a task leaves out"),
    out_file: Path | None = typer.Option(None, "--out", help="table file, .csv or .json (default RUN_DIR/eval.csv)"),
    render: bool = typer.Option(False, "--render", help="also write a video of the episodes, as hindsight render"),
    video: Path | None = typer.Option(
        None, "--video", help="video file with --render, .mp4 or .gif (default RUN_DIR/eval.mp4, or .gif without MP4)"
    ),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="checkpoint to load (default RUN_DIR/checkpoint.pt)"
    ),
) -> None:
    """Evaluate the trained deterministic policy on tasks you choose, in the family's own terms.

    Prints a table of each task's return and each objective's return and writes it (CSV or JSON). Without
    --task, --tasks or --grid: five of the family's evaluation tasks. A value outside its field's range is
    an error that lists every field with its range.
    """
    import torch

    from hindsight.policy.choose import (
        TaskChoiceError,
        describe_fields,
        fields_of,
        grid_tasks,
        parse_task,
        read_task_file,
        to_tasks,
    )
    from hindsight.policy.evaluate import evaluate_tasks, results_table, summary, write_results
    from hindsight.render.video import VideoWriter, check_rendering, load_run, mp4_available, pick_tasks, use_egl
    from hindsight.seeding import make_generator

    if out_file is not None and out_file.suffix.lower() not in (".csv", ".json"):
        fail(f"--out: the table must end in .csv or .json (got {out_file.name!r})")
    if video is not None and not render:
        fail("--video needs --render")
    if video is not None and video.suffix.lower() not in (".mp4", ".gif"):
        fail(f"--video: the video must end in .mp4 or .gif (got {video.name!r})")
    if video is not None and video.suffix.lower() == ".mp4" and not mp4_available():
        fail("--video: no MP4 encoder installed; pip install 'hindsight[render]' (imageio-ffmpeg) or use a .gif")
    if render:
        use_egl()
    try:
        run = load_run(run_dir, checkpoint)
    except RenderError as exc:
        fail(str(exc))
    distribution, generator = run.problem.tasks, make_generator(seed, "eval/choose")
    try:
        choices = []
        for i, text in enumerate(task):
            try:
                choices.append(parse_task(text))
            except TaskChoiceError as exc:
                raise TaskChoiceError(f"--task {i + 1}: {exc}; {describe_fields(distribution)}") from None
        parts = [to_tasks(distribution, choices, generator, "--task")] if choices else []
        if tasks_file is not None:
            rows = read_task_file(tasks_file, fields_of(distribution))
            parts.append(to_tasks(distribution, rows, generator, str(tasks_file)))
        if grid is not None:
            parts.append(grid_tasks(distribution, run.reward, grid, generator))
    except TaskChoiceError as exc:
        fail(str(exc))
    chosen = torch.cat(parts) if parts else pick_tasks(run, 5)
    base = run_dir if checkpoint is None or run_dir.is_dir() else checkpoint.parent
    writer = None
    if render:
        try:
            check_rendering()
        except RenderError as exc:
            fail(str(exc))
        video = video or base / ("eval.mp4" if mp4_available() else "eval.gif")
        video.parent.mkdir(parents=True, exist_ok=True)
        writer = VideoWriter(video, fps=1.0 / run.control_dt)
    try:
        results = evaluate_tasks(run, chosen, sink=writer)
    finally:
        if writer is not None:
            writer.close()
    table_file = out_file or base / "eval.csv"
    write_results(results, table_file, {field.name: field.labels for field in fields_of(distribution)})
    out.print(results_table(results))
    out.print(f"{summary(results)}; table: {table_file}", highlight=False, soft_wrap=True)
    if writer is not None:
        out.print(f"video: {video} ({writer.count} frames)", highlight=False, soft_wrap=True)


def export(
    run_dir: Path = typer.Argument(..., help="run directory (from hindsight run --out DIR)"),
    fmt: ExportFormat = typer.Option(..., "--format", help="torchscript (torch.jit.load) or onnx (onnxruntime)"),
    out_file: Path | None = typer.Option(
        None, "--out", help="policy file (default RUN_DIR/policy.pt or RUN_DIR/policy.onnx); its layout goes beside it"
    ),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="checkpoint to load (default RUN_DIR/checkpoint.pt)"
    ),
) -> None:
    """Export the trained policy, (obs, z) -> deterministic action tanh(mu), as a standalone file.

    A JSON file beside it (same name, .json) gives the observation and task layout, the task fields and
    their ranges and the action bounds. Loading the file needs torch (TorchScript) or onnxruntime (ONNX),
    not hindsight.
    """
    from hindsight.policy.export import SUFFIX, ExportError, export_policy
    from hindsight.render.video import load_run

    try:
        run = load_run(run_dir, checkpoint)
    except RenderError as exc:
        fail(str(exc))
    base = run_dir if checkpoint is None or run_dir.is_dir() else checkpoint.parent
    path = out_file or base / f"policy{SUFFIX[fmt.value]}"
    try:
        layout = export_policy(run, "onnx" if fmt is ExportFormat.onnx else "torchscript", path)
    except ExportError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}")
    out.print(f"policy: {path} ({fmt.value}); layout: {layout}", highlight=False, soft_wrap=True)
