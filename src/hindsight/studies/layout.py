"""A study directory's files, readable without torch (the report needs nothing else).

``study.yaml`` (the study, base inlined), ``manifest.json`` (each run's id, method, family, seed, epochs),
``status.json`` (each run's state, rewritten as it changes) and ``runs/<id>/``: what ``hindsight run``
writes (spec.yaml, metrics.jsonl, checkpoint.pt) plus log.txt, and error.txt when the run failed.
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
