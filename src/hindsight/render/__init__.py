"""Seeing what was learnt: policy videos (``hindsight render``) and relabeling pictures
(``hindsight relabel-picture``), rendered headless by MuJoCo through dm_control.

Modules: ``views`` (the base view and shared drawing helpers; a family's own view, its ``view`` class
attribute, lives beside it in ``hindsight.tasks``), ``video`` (checkpoint loading, rollouts with frames,
MP4/GIF writers), ``pictures`` (matplotlib figures), ``cli`` (the two commands).
"""

from pathlib import Path

# Default file names the commands write into a run directory (no torch or dm_control needed to find them).
PICTURE_NAMES = ("render.mp4", "render.gif", "render-topdown.png", "relabel.png")


def find_pictures(run_dir: str | Path) -> list[Path]:
    """The pictures and videos ``hindsight render`` / ``relabel-picture`` left in ``run_dir`` under their
    default names, in the order above (for a study report to link)."""
    run_dir = Path(run_dir)
    return [run_dir / name for name in PICTURE_NAMES if (run_dir / name).is_file()]
