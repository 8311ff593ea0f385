"""Check that committed results re-run from their specs: the first rows of every run must come back unchanged.

    MUJOCO_GL=disable python tools/verify_results.py results/point_reacher [STUDY_DIR ...] [--epochs 2]

For each job of a study directory (a population under ``populations/``, or a single run under ``runs/``),
its committed ``spec.yaml`` is trained for ``--epochs`` epochs in a temporary directory, W&B disabled. Every
column of the committed first rows must be produced with the same value; timings and the relabel call
counter are not compared. Prints one line per run and exits 1 if any differs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

IGNORED = {"train/steps_per_s", "train/updates_per_s", "time/epoch_s", "relabel/seconds", "relabel/calls"}


def read_rows(path: Path, count: int) -> list[dict]:
    """The first ``count`` rows of a metrics.jsonl, without timings."""
    rows = [json.loads(line) for line in path.read_text().splitlines()[:count]]
    return [{k: v for k, v in row.items() if k not in IGNORED} for row in rows]


def jobs(study_dir: Path) -> list[tuple[Path, dict[str, Path]]]:
    """(job directory, {metrics suffix of a re-run -> committed metrics.jsonl}) for every job of a study."""
    found: dict[Path, dict[str, Path]] = {}
    for run in sorted((study_dir / "runs").iterdir()):
        if not (run / "metrics.jsonl").is_file():
            continue
        link = run / "population.json"
        if link.is_file():
            population = (run / json.loads(link.read_text())["population"]).resolve()
            seed = yaml.safe_load((run / "spec.yaml").read_text())["seed"]
            found.setdefault(population, {})[f"seed{seed}/metrics.jsonl"] = run / "metrics.jsonl"
        else:
            found[run] = {"metrics.jsonl": run / "metrics.jsonl"}
    return sorted(found.items())


def first_difference(committed: list[dict], produced: list[dict]) -> str | None:
    """Where ``produced`` departs from ``committed``: 'row R: column C', or None."""
    if len(produced) < len(committed):
        return f"{len(produced)} rows re-run, {len(committed)} expected"
    for index, (want, got) in enumerate(zip(committed, produced, strict=False)):
        for key, value in want.items():
            if got.get(key) != value:
                return f"row {index}: {key} was {value!r}, now {got.get(key)!r}"
    return None


def verify(job: Path, members: dict[str, Path], epochs: int) -> list[tuple[Path, str | None]]:
    """Re-run ``job``'s spec for ``epochs`` epochs; (committed metrics, difference or None) for each member."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        command = [sys.executable, "-m", "hindsight", "run", str(job / "spec.yaml"), "--out", str(out)]
        command += ["--no-progress", "--set", f"train.epochs={epochs}", "--set", "logging.wandb.mode=disabled"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return [
            (committed, first_difference(read_rows(committed, epochs), read_rows(out / name, epochs)))
            for name, committed in sorted(members.items())
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dirs", nargs="+", type=Path, help="study directories (with runs/ and populations/)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs to re-run and compare (default 2)")
    args = parser.parse_args()
    failed = 0
    for study_dir in args.study_dirs:
        if not (study_dir / "runs").is_dir():
            parser.error(f"{study_dir} is not a study directory (no runs/)")
        for job, members in jobs(study_dir):
            for committed, difference in verify(job, members, args.epochs):
                failed += difference is not None
                print(f"{'DIFFERS' if difference else 'same   '}  {committed.parent}  {difference or ''}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
