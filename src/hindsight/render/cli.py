"""The ``render`` and ``relabel-picture`` commands (attached to the app in ``hindsight.cli``)."""

from __future__ import annotations

from pathlib import Path

import typer

from hindsight.console import fail
from hindsight.render.video import RenderError


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        fail(f"--size: expected WIDTHxHEIGHT, e.g. 320x240 (got {text!r})")
    if not (16 <= width <= 4096 and 16 <= height <= 4096):
        fail(f"--size: width and height must be in [16, 4096] (got {text!r})")
    return width, height


def render(
    run_dir: Path = typer.Argument(..., help="run directory (from hindsight run --out DIR)"),
    tasks: int = typer.Option(4, "--tasks", min=1, help="number of evaluation tasks, one episode each"),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="checkpoint to load (default RUN_DIR/checkpoint.pt)"
    ),
    out: Path | None = typer.Option(
        None, "--out", help="video file, .mp4 or .gif (default RUN_DIR/render.mp4, or .gif without an MP4 encoder)"
    ),
    size: str = typer.Option("320x240", "--size", help="frame size WIDTHxHEIGHT in pixels"),
    max_steps: int | None = typer.Option(
        None, "--max-steps", min=1, help="stop each episode after this many steps (default: horizon)"
    ),
    every: int = typer.Option(1, "--every", min=1, help="keep a frame every N steps"),
    video: bool = typer.Option(True, "--video/--no-video", help="write the video"),
    top_down: bool | None = typer.Option(
        None,
        "--top-down/--no-top-down",
        help="also write a top-down picture of the trajectories (default: on for the 2-D point families)",
    ),
    shadows: bool = typer.Option(
        False, "--shadows/--no-shadows", help="render shadows and reflections (about 2x slower)"
    ),
) -> None:
    """Roll out the run's deterministic policy on N evaluation tasks and write a video, headless.

    The task is drawn into the scene where it has a place (goal and obstacle, the sinusoid, a direction
    arrow); the task vector and the return are written on every frame. For the 2-D point families a
    top-down picture (the paper's Figure 4) is written beside the video as <name>-topdown.png.
    """
    from hindsight.render.video import (
        VideoWriter,
        check_rendering,
        load_run,
        mp4_available,
        pick_tasks,
        rollout,
        use_egl,
    )

    frame_size = _size(size)
    if not video and top_down is False:
        fail("nothing to write: --no-video with --no-top-down")
    if out is not None and video and out.suffix.lower() not in (".mp4", ".gif"):
        fail(f"--out: the video must end in .mp4 or .gif (got {out.name!r})")
    if out is not None and video and out.suffix.lower() == ".mp4" and not mp4_available():
        fail("--out: no MP4 encoder installed; pip install 'hindsight[render]' (imageio-ffmpeg) or use a .gif")
    if video:
        use_egl()
    try:
        run = load_run(run_dir, checkpoint)
    except RenderError as exc:
        fail(str(exc))
    view = run.view()
    if top_down and not view.top_down:
        fail(f"--top-down: top-down pictures exist for the 2-D point families only, not {run.kind!r}")
    draw_top_down = view.top_down if top_down is None else top_down
    if not video and not draw_top_down:
        fail(f"nothing to write: --no-video, and {run.kind!r} has no top-down picture")
    base = run_dir if checkpoint is None or run_dir.is_dir() else checkpoint.parent
    if out is None:
        out = base / ("render.mp4" if mp4_available() else "render.gif")
    out.parent.mkdir(parents=True, exist_ok=True)
    task_rows = pick_tasks(run, tasks)
    writer = None
    if video:
        try:
            check_rendering()
        except RenderError as exc:
            fail(str(exc))
        writer = VideoWriter(out, fps=1.0 / (run.control_dt * every))
    try:
        episodes = rollout(
            run, task_rows, size=frame_size, max_steps=max_steps, every=every, sink=writer, shadows=shadows
        )
    finally:
        if writer is not None:
            writer.close()
    from rich.console import Console

    console = Console()
    returns = [e.ret for e in episodes]
    console.print(
        f"{len(episodes)} episodes, return mean {sum(returns) / len(returns):.3f} "
        f"(min {min(returns):.3f}, max {max(returns):.3f})",
        highlight=False,
    )
    if writer is not None:
        console.print(
            f"video: {out} ({writer.count} frames, {frame_size[0]}x{frame_size[1]}, {writer.fps:.1f} fps)",
            highlight=False,
        )
    if draw_top_down:
        from hindsight.render.pictures import top_down_picture

        picture = out.with_name(out.stem + "-topdown.png")
        top_down_picture(run, episodes, picture)
        console.print(f"top-down picture: {picture}", highlight=False)


def relabel_picture(
    run_dir: Path = typer.Argument(..., help="run directory (from hindsight run --out DIR)"),
    trajectories: int = typer.Option(4, "--trajectories", min=1, max=12, help="number of trajectories drawn"),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="checkpoint to load (default RUN_DIR/checkpoint.pt)"
    ),
    out: Path | None = typer.Option(
        None, "--out", help="picture file (.png, .pdf or .svg; default RUN_DIR/relabel.png)"
    ),
    candidates: int = typer.Option(100, "--candidates", min=1, help="K: candidate tasks scored by AIR and advantage"),
    fresh: bool = typer.Option(
        False,
        "--fresh",
        help="collect new trajectories with the stochastic policy instead of taking the most recent stored ones",
    ),
) -> None:
    """Draw a few trajectories, each with its original task and the tasks AIR, advantage and HER pick.

    Goal and obstacle positions (or curve, or direction) are drawn over the trajectory; the weights (or
    the task vector) are drawn as bars. HER only where the family has a goal part. Trajectories come from
    the checkpoint's replay buffer (with the run's own stored relabeling) unless --fresh.
    """
    from hindsight.render.pictures import relabel_picture as draw
    from hindsight.render.video import load_run

    if out is not None and out.suffix.lower() not in (".png", ".pdf", ".svg"):
        fail(f"--out: the picture must end in .png, .pdf or .svg (got {out.name!r})")
    try:
        run = load_run(run_dir, checkpoint)
    except RenderError as exc:
        fail(str(exc))
    base = run_dir if checkpoint is None or run_dir.is_dir() else checkpoint.parent
    out = out or base / "relabel.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        summary = draw(run, out, trajectories, candidates, fresh)
    except RenderError as exc:
        fail(str(exc))
    from rich.console import Console

    Console().print(
        f"relabeling picture: {out} ({summary['trajectories']} trajectories "
        f"{summary['source']}; {', '.join(summary['variants'])})",
        highlight=False,
    )
