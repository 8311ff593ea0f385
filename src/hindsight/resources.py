"""Locate files shipped with hindsight (registry.yaml, envs/), installed or from a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_SOURCE_ROOT = _PACKAGE_DIR.parent.parent  # src/hindsight -> repository root


def resource_path(name: str) -> Path:
    """Path of a shipped top-level resource (``registry.yaml`` or ``envs``).

    A wheel carries them inside the package; an editable install reads them from the repository root.
    """
    for candidate in (_PACKAGE_DIR / name, _SOURCE_ROOT / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"hindsight resource {name!r} not found beside {_PACKAGE_DIR} nor in {_SOURCE_ROOT}")


def env_asset(family: str, filename: str) -> Path:
    """Path of a file in ``envs/<family>/`` (an MJCF model, a spec, an eval-task set)."""
    path = resource_path("envs") / family / filename
    if not path.exists():
        raise FileNotFoundError(f"no {filename!r} for family {family!r} at {path}")
    return path
