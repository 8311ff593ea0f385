"""Golden runs: fixed tiny specs must reproduce their recorded metrics row for row (timings excluded).

Every recorded column must be produced with its recorded value; columns added since (e.g. the
multi-objective evaluation's, which learning does not read) are not compared.

A change meant to alter what is learned re-records them (tools/record_golden.py) in the same commit.
"""

import json
import sys
from pathlib import Path

import pytest
from conftest import TIMING_KEYS, without_timings
from typer.testing import CliRunner

from hindsight.cli import app

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN.parent.parent / "tools"))
from record_golden import metrics_files  # noqa: E402


def read_rows(path: Path) -> list[dict]:
    return without_timings([json.loads(line) for line in path.read_text().splitlines()], TIMING_KEYS)


@pytest.mark.parametrize("spec", sorted(GOLDEN.glob("*.yaml")), ids=lambda p: p.stem)
def test_golden_run_reproduces_its_metrics(spec, tmp_path):
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(run_dir), "--no-progress"])
    assert result.exit_code == 0, result.output
    produced = metrics_files(run_dir)
    expected = {path.name[len(spec.stem) : -len(".jsonl")]: path for path in GOLDEN.glob(f"{spec.stem}*.jsonl")}
    assert sorted(produced) == sorted(expected)
    for suffix, path in produced.items():
        got, want = read_rows(path), read_rows(expected[suffix])
        assert len(got) == len(want)
        for row, (got_row, want_row) in enumerate(zip(got, want, strict=True)):
            assert not set(want_row) - set(got_row), f"{spec.stem}{suffix}: row {row} lacks recorded columns"
            assert {k: got_row[k] for k in want_row} == want_row, f"{spec.stem}{suffix}: row {row} differs"
