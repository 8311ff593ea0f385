"""Committed results re-run from their committed specs to the same first rows (tools/verify_results.py).

The default run re-trains the first epoch of one committed point_reacher job; the slow run re-trains two
epochs of every job of every study under results/.
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from verify_results import first_difference, jobs, verify  # noqa: E402

STUDIES = sorted(path.parent for path in (ROOT / "results").glob("*/runs"))
ALL_JOBS = [job for study in STUDIES for job in jobs(study)]


def job_id(job: tuple[Path, dict]) -> str:
    return str(job[0].relative_to(ROOT / "results"))


def test_first_difference_names_the_row_and_column():
    committed = [{"epoch": 1, "eval/return_mean": -2.0}, {"epoch": 2, "eval/return_mean": -1.5}]
    assert first_difference(committed, [dict(row) for row in committed]) is None
    changed = [committed[0], {"epoch": 2, "eval/return_mean": -1.25}]
    assert first_difference(committed, changed) == "row 1: eval/return_mean was -1.5, now -1.25"
    assert first_difference(committed, committed[:1]) == "1 rows re-run, 2 expected"


def test_every_committed_run_belongs_to_a_job():
    runs = [run for study in STUDIES for run in (study / "runs").glob("*/metrics.jsonl")]
    assert runs, "results/ holds no committed run"
    assert sorted(runs) == sorted(path for _, members in ALL_JOBS for path in members.values())


def test_one_committed_job_reproduces_its_first_epoch():
    job, members = next(job for job in ALL_JOBS if job[0].parent.parent.name == "point_reacher")
    assert [difference for _, difference in verify(job, members, epochs=1)] == [None] * len(members)


@pytest.mark.slow
@pytest.mark.parametrize("job", ALL_JOBS, ids=job_id)
def test_committed_job_reproduces_its_first_rows(job):
    differences = [f"{path.parent.name}: {d}" for path, d in verify(*job, epochs=2) if d is not None]
    assert not differences, differences
