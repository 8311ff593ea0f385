"""A study directory's files, readable without torch (the report needs nothing else).

``study.yaml`` (the study, base inlined), ``manifest.json`` (each run's id, method, family, seed, epochs),
``status.json`` (each run's state, rewritten as it changes) and ``runs/<id>/``: what ``hindsight run``
writes (spec.yaml, metrics.jsonl, checkpoint.pt) plus log.txt, and error.txt when the run failed.

With ``--population N`` the seeds of a configuration train together: ``populations/<job>/`` holds the
population's spec.yaml, checkpoint.pt, log.txt (and error.txt), and each member writes its planned run's
``runs/<id>/`` (spec.yaml, metrics.jsonl, error.txt) with ``population.json`` naming the job directory
in place of its own checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RUNS_DIR = "runs"
STUDY_FILE = "study.yaml"
MANIFEST_FILE = "manifest.json"
STATUS_FILE = "status.json"
ERROR_FILE = "error.txt"
LOG_FILE = "log.txt"
POPULATIONS_DIR = "populations"
POPULATION_FILE = "population.json"
# written by hindsight.train.run (which imports torch); tests check the names agree
SPEC_FILE = "spec.yaml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl file; a missing file or a torn last line (a killed run) is skipped."""
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def population_dir(run_dir: Path) -> Path | None:
    """The population job directory a run directory's member was last trained in (None for a plain run)."""
    try:
        pointer = json.loads((run_dir / POPULATION_FILE).read_text())
        return (run_dir / pointer["population"]).resolve()
    except (OSError, ValueError, KeyError, TypeError):
        return None
