"""Record the golden runs: train every spec in tests/golden/ and keep its metrics beside it.

    MUJOCO_GL=disable python tools/record_golden.py [NAME ...]

Each ``tests/golden/NAME.yaml`` is trained with ``hindsight run`` into a temporary directory; its
``metrics.jsonl`` becomes ``tests/golden/NAME.jsonl`` (a population's members: ``NAME.seed<S>.jsonl``).
Re-record only in a commit that means to change what is learned, and say why in its message.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden"


def metrics_files(run_dir: Path) -> dict[str, Path]:
    """Suffix ('' or '.seed<S>') -> metrics.jsonl of a run directory or of each population member."""
    members = sorted(run_dir.glob("seed*/metrics.jsonl"))
    if members:
        return {f".{path.parent.name}": path for path in members}
    return {"": run_dir / "metrics.jsonl"}


def record(spec: Path) -> list[Path]:
    """Train ``spec`` and copy its metrics into tests/golden/; returns the files written."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        subprocess.run(
            [sys.executable, "-m", "hindsight", "run", str(spec), "--out", str(run_dir), "--no-progress"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        written = []
        for suffix, path in metrics_files(run_dir).items():
            target = GOLDEN / f"{spec.stem}{suffix}.jsonl"
            shutil.copyfile(path, target)
            written.append(target)
        return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="golden spec names (default: every tests/golden/*.yaml)")
    args = parser.parse_args()
    specs = [GOLDEN / f"{name}.yaml" for name in args.names] or sorted(GOLDEN.glob("*.yaml"))
    for spec in specs:
        if not spec.is_file():
            parser.error(f"no golden spec {spec}")
        for path in record(spec):
            print(f"{path.relative_to(GOLDEN.parent.parent)}: {len(path.read_text().splitlines())} rows")


if __name__ == "__main__":
    main()
