"""Studies: grid expansion and validation, the scheduler, the local backend, the report (Ray: test_ray.py)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from hindsight.cli import app
from hindsight.rundir import RunDir
from hindsight.specs import SpecError
from hindsight.studies import runner
from hindsight.studies.report import bootstrap
from hindsight.studies.spec import expand, load_study

TINY = {
    "env": "point_reacher",
    "relabeler": "none",
    "agent": {"kind": "sac", "hidden": [16], "batch_size": 16},
    "buffer": {"kind": "replay", "capacity": 500},
    "train": {"epochs": 2, "loops_per_epoch": 1, "updates_per_loop": 2, "warmup_steps": 20},
    "eval": {"episodes": 2},
    "logging": {"wandb": {"mode": "disabled"}, "progress": False},
}
GRID = {"relabeler.kind": ["none", "random"], "seed": [0, 1]}


def write_study(tmp_path: Path, grid=None, base=None, name="tiny") -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(
        yaml.safe_dump({"name": name, "base": base or TINY, "grid": GRID if grid is None else grid}, sort_keys=False)
    )
    return path


# ----- study specs -----
def test_expand_grid_names_groups_and_tags(tmp_path):
    runs = expand(load_study(write_study(tmp_path)))
    assert [r.id for r in runs] == [
        "relabeler.kind=none,seed=0",
        "relabeler.kind=none,seed=1",
        "relabeler.kind=random,seed=0",
        "relabeler.kind=random,seed=1",
    ]
    assert [r.method for r in runs] == ["none", "none", "random", "random"]
    assert {r.family for r in runs} == {"point_reacher"}
    assert [r.seed for r in runs] == [0, 1, 0, 1]
    assert runs[0].group == runs[1].group != runs[2].group == runs[3].group  # hash ignores only the seed
    assert runs[0].group.startswith("tiny-")
    wandb = runs[2].spec.run.logging.wandb
    assert wandb.group == runs[2].group and wandb.tags == ["random", "study:tiny"] and wandb.mode == "disabled"
    assert runs[2].spec.run.name == "tiny-relabeler.kind=random,seed=0"
    assert runs[2].spec.to_dict()["relabeler"]["kind"] == "random"


def test_base_file_relative_to_study_and_overrides(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "base.yaml").write_text(yaml.safe_dump(TINY))
    path = write_study(tmp_path / "specs", base="base.yaml")
    study = load_study(path, ["train.epochs=3", "grid.seed=[5]", "grid.agent.lr=0.01"])
    runs = expand(study)
    assert [r.id for r in runs] == [
        "relabeler.kind=none,seed=5,agent.lr=0.01",
        "relabeler.kind=random,seed=5,agent.lr=0.01",
    ]
    assert [r.method for r in runs] == ["relabeler.kind=none, agent.lr=0.01", "relabeler.kind=random, agent.lr=0.01"]
    assert all(r.spec.run.train.epochs == 3 and r.spec.params["agent"].lr == 0.01 for r in runs)


def test_mapping_grid_values_get_safe_unique_ids(tmp_path):
    runs = expand(
        load_study(write_study(tmp_path, grid={"relabeler": ["none", {"kind": "advantage", "candidates": 4}]}))
    )
    assert runs[0].id == "relabeler=none" and runs[0].method == "none"
    assert runs[1].id.startswith("relabeler=kind-advantage") and "/" not in runs[1].id and " " not in runs[1].id
    assert runs[1].method == "{kind: advantage, candidates: 4}"
    assert runs[1].spec.params["relabeler"].candidates == 4


@pytest.mark.parametrize(
    "grid, message",
    [
        ({"relabeler.kind": ["none", "bogus"]}, "relabeler.kind=bogus: relabeler.kind: unknown relabeler 'bogus'"),
        ({"agent.lrr": [0.1]}, "agent.lrr=0.1: agent.lrr: unknown field"),
        ({"agent.lr": [0.1, -1]}, "agent.lr=-1: agent.lr: Input should be greater than 0"),
        ({"seed": []}, "grid.seed: must list at least one value"),
        ({"seed": [1, 1]}, "grid.seed: duplicate values"),
        ({"seed": 3}, "grid.seed: Input should be a valid list"),
    ],
)
def test_invalid_grids_name_the_path(tmp_path, grid, message):
    with pytest.raises(SpecError) as info:
        expand(load_study(write_study(tmp_path, grid=grid)))
    assert message in str(info.value)


def test_invalid_study_files(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": "missing.yaml", "grids": {}}))
    with pytest.raises(SpecError) as info:
        load_study(path)
    assert "name: Field required" in str(info.value) and "grids: unknown field" in str(info.value)
    path.write_text(yaml.safe_dump({"name": "x", "base": "missing.yaml"}))
    with pytest.raises(SpecError, match="missing.yaml: no such spec file"):
        load_study(path)


def test_cli_study_exit_codes_and_dry_run(tmp_path):
    cli = CliRunner()
    bad = cli.invoke(app, ["study", str(write_study(tmp_path, grid={"relabeler.kind": ["bogus"]}))])
    assert bad.exit_code == 2 and "unknown relabeler 'bogus'" in bad.output
    dry = cli.invoke(app, ["study", str(write_study(tmp_path)), "--dry-run", "--out", str(tmp_path / "out")])
    assert dry.exit_code == 0, dry.output
    assert dry.output.count("pending") == 4 and not (tmp_path / "out").exists()
    assert cli.invoke(app, ["study", str(write_study(tmp_path)), "--address", "x:1"]).exit_code == 2


# ----- the scheduler, with a backend that fakes training -----
def fake_finished_run(spec: dict, run_dir: Path, epochs: int | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    slope = 1.0 if spec["relabeler"]["kind"] == "none" else 2.0
    with (run_dir / "metrics.jsonl").open("w") as f:
        for epoch in range(1, (epochs or spec["train"]["epochs"]) + 1):
            f.write(
                json.dumps(
                    {"epoch": epoch, "env_steps": 100 * epoch, "eval/return_mean": slope * epoch + 0.1 * spec["seed"]}
                )
                + "\n"
            )
    (run_dir / "checkpoint.pt").write_bytes(b"fake")


class FakeBackend:
    """Runs end on their second poll; a run with agent.lr == 0.5 'crashes' without writing anything."""

    def __init__(self):
        self.started = []

    def start(self, spec, run_dir, members=None):
        self.started.append(run_dir.name)
        if spec["agent"]["lr"] == 0.5:
            return {"crash": True, "polls": 0}
        if members is None:
            fake_finished_run(spec, run_dir)
        else:  # a population: its checkpoint in run_dir, each member's files in its own run directory
            run_dir.mkdir(parents=True)
            (run_dir / "checkpoint.pt").write_bytes(b"fake")
            for seed, member in zip(spec["seeds"], members, strict=True):
                fake_finished_run({**spec, "seed": seed, "seeds": None}, member)
                (member / "checkpoint.pt").unlink()
                (member / "population.json").write_text(json.dumps({"population": f"../../populations/{run_dir.name}"}))
        return {"crash": False, "polls": 0}

    def poll(self, handle):
        handle["polls"] += 1
        if handle["polls"] < 2:
            return False, None
        return True, "worker process died (exit code -11)" if handle["crash"] else None

    def cancel(self, handle):
        pass

    def close(self):
        pass


def test_scheduler_records_failures_and_skips_finished_runs(tmp_path, monkeypatch, capsys):
    backend = FakeBackend()
    monkeypatch.setattr(runner, "make_backend", lambda *args: backend)
    study = load_study(write_study(tmp_path, grid={**GRID, "agent.lr": [0.003, 0.5]}))
    runs = expand(study)
    out = tmp_path / "out"
    statuses = runner.run_study(study, runs, out, workers=3, poll_s=0, report_s=0)
    lines = capsys.readouterr().err.splitlines()
    assert "running  relabeler.kind=none,seed=0,agent.lr=0.003  epoch 2/2  steps 200  eval return 2.000" in lines[3]
    assert backend.started[:4] == [
        "relabeler.kind=none,seed=0,agent.lr=0.003",
        "relabeler.kind=none,seed=0,agent.lr=0.5",
        "relabeler.kind=random,seed=0,agent.lr=0.003",
        "relabeler.kind=random,seed=0,agent.lr=0.5",
    ]
    states = {s.run.id: s.state for s in statuses}
    assert len(backend.started) == 8
    assert sorted(states.values()) == ["done"] * 4 + ["failed"] * 4
    crashed = out / "runs" / "relabeler.kind=none,seed=0,agent.lr=0.5"
    assert "exit code -11" in (crashed / "error.txt").read_text()
    status = json.loads((out / "status.json").read_text())
    failed = [r for r in status["runs"] if r["state"] == "failed"]
    assert len(failed) == 4 and all("exit code -11" in r["error"] for r in failed)
    done = next(r for r in status["runs"] if r["state"] == "done")
    assert done["epoch"] == 2 and done["env_steps"] == 200 and done["eval_return"] is not None

    backend.started.clear()
    statuses = runner.run_study(study, runs, out, workers=3, poll_s=0)
    assert sorted(backend.started) == sorted(s.run.id for s in statuses if s.run.spec.params["agent"].lr == 0.5)
    assert sum(s.state == "skipped" for s in statuses) == 4


def test_scheduler_packs_seeds_into_populations(tmp_path, monkeypatch):
    """--population 2: the seeds of each configuration in pairs, seed by seed; a lone seed runs plain."""
    backend = FakeBackend()
    monkeypatch.setattr(runner, "make_backend", lambda *args: backend)
    study = load_study(write_study(tmp_path, grid={**GRID, "seed": [0, 1, 2], "agent.lr": [0.003, 0.5]}))
    runs = expand(study)
    out = tmp_path / "out"
    statuses = runner.run_study(study, runs, out, workers=2, poll_s=0, population=2)
    assert backend.started == [
        "relabeler.kind=none,agent.lr=0.003,seed=0+1",
        "relabeler.kind=none,agent.lr=0.5,seed=0+1",
        "relabeler.kind=random,agent.lr=0.003,seed=0+1",
        "relabeler.kind=random,agent.lr=0.5,seed=0+1",
        "relabeler.kind=none,seed=2,agent.lr=0.003",
        "relabeler.kind=none,seed=2,agent.lr=0.5",
        "relabeler.kind=random,seed=2,agent.lr=0.003",
        "relabeler.kind=random,seed=2,agent.lr=0.5",
    ]
    status = {r["id"]: r for r in json.loads((out / "status.json").read_text())["runs"]}
    assert [r["state"] for r in status.values()].count("done") == 6
    # a crashed population fails each of its members with the crash
    crashed = status["relabeler.kind=none,seed=1,agent.lr=0.5"]
    assert crashed["state"] == "failed" and "exit code -11" in crashed["error"]
    assert crashed["population"] == "relabeler.kind=none,agent.lr=0.5,seed=0+1"
    assert "exit code -11" in (out / "runs" / "relabeler.kind=none,seed=0,agent.lr=0.5" / "error.txt").read_text()
    assert status["relabeler.kind=none,seed=2,agent.lr=0.003"]["population"] is None
    # members finish through their population's checkpoint; the unfinished ones are packed again
    backend.started.clear()
    statuses = runner.run_study(study, runs, out, workers=2, poll_s=0, population=2)
    assert sum(s.state == "skipped" for s in statuses) == 6
    assert backend.started == [
        "relabeler.kind=none,agent.lr=0.5,seed=0+1",
        "relabeler.kind=random,agent.lr=0.5,seed=0+1",
        "relabeler.kind=none,seed=2,agent.lr=0.5",
        "relabeler.kind=random,seed=2,agent.lr=0.5",
    ]


def test_changed_or_partial_runs_are_not_finished(tmp_path):
    run = expand(load_study(write_study(tmp_path)))[0]
    spec, run_dir = run.spec.to_dict(), tmp_path / "run"
    fake_finished_run(spec, run_dir)
    assert runner.is_finished(run_dir, spec)
    assert runner.unfinished_reason(run_dir, {**spec, "train": {**spec["train"], "epochs": 3}}) == (
        "stopped after epoch 2 of 3"
    )
    assert runner.unfinished_reason(run_dir, {**spec, "agent": {**spec["agent"], "lr": 0.1}}) == (
        "its spec.yaml differs from the study's spec at agent.lr"
    )
    # a worker running a newer hindsight may add defaulted parameters: still the same run
    fake_finished_run({**spec, "agent": {**spec["agent"], "new_param": 1}}, run_dir)
    assert runner.is_finished(run_dir, spec)
    fake_finished_run(spec, run_dir, epochs=1)
    assert not runner.is_finished(run_dir, spec)
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 2, "env_st')  # torn last line of a killed run
    assert len(RunDir(run_dir).read_metrics()) == 1


def test_train_run_records_a_runtime_error(tmp_path):
    spec = expand(load_study(write_study(tmp_path, grid={"seed": [0]})))[0].spec.to_dict()
    spec["runtime"]["device"] = "bogus"  # a study's plan refuses it; here the run itself meets it
    message = runner.train_run(spec, str(tmp_path / "run"), threads=1)
    assert message is not None and "bogus" in message
    assert "Traceback" in (tmp_path / "run" / "error.txt").read_text()


def test_the_workers_thread_budget_is_the_runs_runtime_threads(tmp_path):
    import torch

    run = expand(load_study(write_study(tmp_path, grid={"seed": [0]}), ["train.epochs=1"]))[0]
    before = torch.get_num_threads()
    try:
        assert runner.train_run(run.spec.to_dict(), str(tmp_path / "run"), threads=2) is None
        assert torch.get_num_threads() == 2  # the agent no longer resets it to its own default
    finally:
        torch.set_num_threads(before)
    assert RunDir(tmp_path / "run").read_spec()["runtime"]["threads"] == 2
    assert runner.is_finished(tmp_path / "run", run.spec.to_dict())  # runtime is not part of its identity


def test_train_run_resumes_or_restarts(tmp_path):
    """Raising train.epochs continues from the checkpoint; changing anything else starts over."""

    def spec(*overrides):
        return expand(load_study(write_study(tmp_path, grid={"seed": [0]}), list(overrides)))[0].spec.to_dict()

    run_dir = tmp_path / "run"
    assert runner.train_run(spec("train.epochs=1"), str(run_dir), threads=1) is None
    first = RunDir(run_dir).read_metrics()
    assert runner.train_run(spec("train.epochs=2"), str(run_dir), threads=1) is None
    resumed = RunDir(run_dir).read_metrics()
    assert [r["epoch"] for r in resumed] == [1, 2] and resumed[0] == first[0]
    assert runner.train_run(spec("train.epochs=2", "agent.lr=0.01"), str(run_dir), threads=1) is None
    restarted = RunDir(run_dir).read_metrics()
    assert [r["epoch"] for r in restarted] == [1, 2] and restarted[0] != first[0]
    assert runner.is_finished(run_dir, spec("train.epochs=2", "agent.lr=0.01"))


def test_train_run_population_resumes_into_member_dirs(tmp_path):
    """A population job writes each member's run directory and continues from its checkpoint."""

    def plan(*overrides):
        study = load_study(write_study(tmp_path, grid={"seed": [0, 1]}), list(overrides))
        statuses = [runner.RunStatus(run) for run in expand(study)]
        (job,) = runner.plan_jobs(statuses, tmp_path / "out", population=2)
        return job, [s.run for s in statuses]

    job, runs = plan("train.epochs=1")
    assert job.id == "seed=0+1" and job.spec["seeds"] == [0, 1] and job.members[1].name == "seed=1"
    members = [str(m) for m in job.members]
    assert runner.train_run(job.spec, str(job.directory), 1, members) is None
    first = RunDir(job.members[1]).read_metrics()
    job, runs = plan("train.epochs=2")
    assert not runner.is_finished(job.members[0], runs[0].spec.to_dict())
    assert runner.train_run(job.spec, str(job.directory), 1, members) is None
    for run, member in zip(runs, job.members, strict=True):
        rows = RunDir(member).read_metrics()
        assert [r["epoch"] for r in rows] == [1, 2]
        assert yaml.safe_load((member / "spec.yaml").read_text())["seed"] == run.seed
        assert runner.is_finished(member, run.spec.to_dict()) and not (member / "checkpoint.pt").exists()
    assert RunDir(job.members[1]).read_metrics()[0] == first[0]
    assert (job.directory / "checkpoint.pt").is_file() and (job.directory / "log.txt").is_file()


# ----- the report -----
def test_report_tables_and_figures(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "make_backend", lambda *args: FakeBackend())
    study = load_study(write_study(tmp_path, grid={**GRID, "seed": [0, 1, 2]}), ["train.epochs=4"])
    runs = expand(study)
    out = tmp_path / "out"
    runner.run_study(study, runs, out, poll_s=0)
    unfinished = out / "runs" / "relabeler.kind=random,seed=2"
    fake_finished_run(runs[-1].spec.to_dict(), unfinished, epochs=2)

    result = CliRunner().invoke(app, ["report", str(out), "--resamples", "200"])
    assert result.exit_code == 0, result.output
    files = {p.name for p in (out / "report").iterdir()}
    assert files == {
        "curves.png",
        "curves.svg",
        "report.md",
        "results.csv",
        "aggregates.csv",
        "improvement.csv",
        "rliable-point_reacher.png",
    }
    # rliable: finals normalised between the mean first evaluation over runs, (1.0 + 1.1 + 1.2 + 2.0 + 2.1) / 5
    # = 1.48, and the best method's mean final return 8.05; IQM of none's three runs is their mean
    aggregates = {(r["method"], r["metric"]): r for r in csv.DictReader((out / "report" / "aggregates.csv").open())}
    assert float(aggregates[("none", "IQM")]["value"]) == pytest.approx((4.1 - 1.48) / (8.05 - 1.48))
    assert float(aggregates[("random", "median")]["value"]) == pytest.approx((8.05 - 1.48) / (8.05 - 1.48))
    # over training: linear curves averaged over an even grid from 100 to 400 steps give their value at
    # epoch 2.5: none 2.5 + 0.1 seed (mean 2.6), random 5 + 0.1 seed (mean 5.05)
    assert float(aggregates[("none", "IQM over training")]["value"]) == pytest.approx((2.6 - 1.48) / (8.05 - 1.48))
    assert float(aggregates[("random", "mean over training")]["value"]) == pytest.approx((5.05 - 1.48) / 6.57)
    improvement = {r["pair"]: r for r in csv.DictReader((out / "report" / "improvement.csv").open())}
    assert float(improvement["random > none"]["probability"]) == 1.0
    assert float(improvement["none > random"]["probability"]) == 0.0
    assert float(improvement["random > none"]["area_probability"]) == 1.0
    assert float(improvement["none > random"]["area_probability"]) == 0.0
    assert (out / "report" / "curves.png").stat().st_size > 10_000
    rows = {r["method"]: r for r in csv.DictReader((out / "report" / "results.csv").open())}
    # none: returns epoch + 0.1 seed over seeds 0..2 -> final 4.1; random: 2 epoch + 0.1 seed, seeds 0..1 -> 8.05
    assert rows["none"]["seeds"] == "3" and float(rows["none"]["final_return_mean"]) == pytest.approx(4.1)
    assert rows["random"]["seeds"] == "2" and float(rows["random"]["final_return_mean"]) == pytest.approx(8.05)
    # first evaluations average (1.1 + 2.05) / 2 = 1.575; target 1.575 + 0.9 (8.05 - 1.575) = 7.4025
    assert float(rows["none"]["target_return"]) == pytest.approx(7.4025)
    assert rows["none"]["steps_to_target"] == "" and rows["random"]["steps_to_target"] == "400"
    # none's final return 4.1: none reaches it at its last evaluation, random (mean 2 epoch + 0.05) at epoch 3
    assert rows["none"]["steps_to_baseline"] == "400" and rows["random"]["steps_to_baseline"] == "300"
    markdown = (out / "report" / "report.md").read_text()
    assert "| random | 2 | 8.050 |" in markdown and "not reached" in markdown and "| 300 (75%) |" in markdown
    assert "## Aggregate metrics (rliable)" in markdown and "| random > none | 1.000 |" in markdown
    assert "relabeler.kind=random,seed=2 (2 of 4 epochs)" in markdown
    assert "## Pictures" not in markdown

    # pictures left by `hindsight render` / `relabel-picture` in a finished run are linked
    (out / "runs" / "relabeler.kind=none,seed=1" / "relabel.png").write_bytes(b"png")
    assert CliRunner().invoke(app, ["report", str(out), "--resamples", "200"]).exit_code == 0
    markdown = (out / "report" / "report.md").read_text()
    assert "- point_reacher / none / seed 1: [relabel.png](../runs/relabeler.kind=none,seed=1/relabel.png)" in markdown


def test_report_needs_a_study_dir(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not a study directory" in result.output


def test_bootstrap_interval():
    import numpy as np

    rng = np.random.default_rng(0)
    mean, low, high = bootstrap(np.array([[1.0, 2.0], [1.0, 4.0], [1.0, 6.0]]), 500, rng)
    assert mean.tolist() == [1.0, 4.0] and low[0] == high[0] == 1.0
    assert 2.0 <= low[1] < 4.0 < high[1] <= 6.0


# ----- real training in worker processes -----
def test_local_backend_trains_in_a_spawned_worker(tmp_path):
    study = load_study(write_study(tmp_path, grid={"seed": [3]}), ["train.epochs=1"])
    statuses = runner.run_study(study, expand(study), tmp_path / "out", workers=1)
    assert statuses[0].state == "done" and statuses[0].env_steps == 40, statuses[0].error
    assert (tmp_path / "out" / "runs" / "seed=3" / "log.txt").is_file()


def test_local_study_end_to_end(tmp_path):
    """2 methods x 2 seeds in spawned workers; one run fails at run time, the rest finish; a re-run skips them."""
    path = write_study(tmp_path)
    out = tmp_path / "out"
    blocked = out / "runs" / "relabeler.kind=random,seed=1"
    (blocked / "metrics.jsonl").mkdir(parents=True)  # training cannot write its metrics: fails in the worker
    cli = CliRunner()
    first = cli.invoke(app, ["study", str(path), "--out", str(out), "--workers", "2"])
    assert first.exit_code == 1, first.output
    status = {r["id"]: r for r in json.loads((out / "status.json").read_text())["runs"]}
    assert [r["state"] for r in status.values()] == ["done", "done", "done", "failed"]
    assert "IsADirectoryError" in status[blocked.name]["error"] and (blocked / "error.txt").is_file()
    assert all(r["env_steps"] == 60 and r["eval_return"] is not None for r in status.values() if r["state"] == "done")
    assert "failed   relabeler.kind=random,seed=1" in first.output

    shutil.rmtree(blocked / "metrics.jsonl")
    stamp = (out / "runs" / "relabeler.kind=none,seed=0" / "checkpoint.pt").stat().st_mtime_ns
    second = cli.invoke(app, ["study", str(path), "--out", str(out)])
    assert second.exit_code == 0, second.output
    states = [r["state"] for r in json.loads((out / "status.json").read_text())["runs"]]
    assert states == ["skipped", "skipped", "skipped", "done"]
    assert (out / "runs" / "relabeler.kind=none,seed=0" / "checkpoint.pt").stat().st_mtime_ns == stamp

    assert cli.invoke(app, ["report", str(out)]).exit_code == 0
    assert (out / "report" / "curves.svg").is_file() and (out / "report" / "results.csv").is_file()


def test_local_study_in_populations(tmp_path):
    """2 methods x 2 seeds as two populations of 2; a failing population fails both its runs; the runs'
    files are where a plain study puts them, so a re-run skips them and the report reads them."""
    path = write_study(tmp_path)
    out = tmp_path / "out"
    blocked = out / "runs" / "relabeler.kind=random,seed=1"
    (blocked / "metrics.jsonl").mkdir(parents=True)  # the second population cannot write a member's metrics
    cli = CliRunner()
    first = cli.invoke(app, ["study", str(path), "--out", str(out), "--population", "2"])
    assert first.exit_code == 1, first.output
    status = {r["id"]: r for r in json.loads((out / "status.json").read_text())["runs"]}
    assert [r["state"] for r in status.values()] == ["done", "done", "failed", "failed"]
    assert all("IsADirectoryError" in r["error"] for r in status.values() if r["state"] == "failed")
    assert (out / "runs" / "relabeler.kind=random,seed=0" / "error.txt").is_file()
    assert all(r["env_steps"] == 60 and r["eval_return"] is not None for r in status.values() if r["state"] == "done")
    assert {r["population"] for r in status.values()} == {
        "relabeler.kind=none,seed=0+1",
        "relabeler.kind=random,seed=0+1",
    }
    for seed in (0, 1):
        run_dir = out / "runs" / f"relabeler.kind=none,seed={seed}"
        assert {p.name for p in run_dir.iterdir()} == {"spec.yaml", "metrics.jsonl", "population.json"}
        saved = yaml.safe_load((run_dir / "spec.yaml").read_text())
        assert saved["seed"] == seed and saved["seeds"] is None and saved["relabeler"]["kind"] == "none"
    assert (out / "populations" / "relabeler.kind=none,seed=0+1" / "checkpoint.pt").is_file()

    shutil.rmtree(blocked / "metrics.jsonl")
    second = cli.invoke(app, ["study", str(path), "--out", str(out), "--population", "2"])
    assert second.exit_code == 0, second.output
    states = [r["state"] for r in json.loads((out / "status.json").read_text())["runs"]]
    assert states == ["skipped", "skipped", "done", "done"]
    assert cli.invoke(app, ["study", str(path), "--out", str(out)]).output.count("skipped") == 4
    assert cli.invoke(app, ["report", str(out)]).exit_code == 0
    rows = {r["method"]: r for r in csv.DictReader((out / "report" / "results.csv").open())}
    assert rows["none"]["seeds"] == rows["random"]["seeds"] == "2"


def test_population_from_the_study_file(tmp_path):
    path = write_study(tmp_path)
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "population": 2}))
    study = load_study(path)
    assert study.population == 2 and study.to_dict()["population"] == 2
    dry = CliRunner().invoke(app, ["study", str(path), "--dry-run", "--out", str(tmp_path / "out")])
    assert "4 runs in" in dry.output and "4 of them to train in 2 populations" in dry.output, dry.output
    dry = CliRunner().invoke(app, ["study", str(path), "--dry-run", "--population", "1", "--out", str(tmp_path / "o")])
    assert "populations" not in dry.output, dry.output


def test_diagnostics_table_averages_each_run_then_the_runs(tmp_path):
    from hindsight.studies.aggregate import diagnostics_table
    from hindsight.studies.report import Curve

    curves = []
    for seed, bias in ((0, 1.0), (1, 3.0)):
        run_dir = tmp_path / f"seed{seed}"
        run_dir.mkdir()
        rows = [{"epoch": 1, "env_steps": 100}]  # the warm-up epoch logged no relabeling
        rows += [
            {"epoch": e, "env_steps": 100 * e, "relabel/value_bias": bias * e, "relabel/original_won": e % 2}
            for e in range(2, 12)
        ]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        curves.append(Curve("point_reacher", "air", seed, np.arange(3.0), np.zeros(3), run_dir))
    # epochs 2..11: bias mean 6.5 x (1, 3) -> 13.0 over runs; last tenth (epoch 11) 11 x (1, 3) -> 22.0;
    # original won at epochs 3, 5, 7, 9, 11: 0.5 over all, 1.0 at epoch 11
    assert diagnostics_table(curves)[2] == "| point_reacher | air | 2 | 13.000 | 22.000 | 0.500 | 1.000 |"
    # a relabeler that logs no original_won (random, her) shows a dash there
    for curve in curves:
        rows = [json.loads(line) for line in (curve.run_dir / "metrics.jsonl").read_text().splitlines()]
        text = "".join(json.dumps({k: v for k, v in r.items() if k != "relabel/original_won"}) + "\n" for r in rows)
        (curve.run_dir / "metrics.jsonl").write_text(text)
    assert diagnostics_table(curves)[2] == "| point_reacher | air | 2 | 13.000 | 22.000 | - | - |"
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "env_steps": 100}) + "\n")
    plain = Curve("point_reacher", "none", 0, np.arange(3.0), np.zeros(3), tmp_path / "plain")
    assert diagnostics_table([plain]) == []


def test_an_env_setting_on_the_grid_is_a_method_and_env_kind_a_family(tmp_path):
    grid = {"env.time_limit": ["terminal", "truncation"], "relabeler.kind": ["none"], "seed": [0]}
    runs = expand(load_study(write_study(tmp_path, grid=grid)))
    assert [r.method for r in runs] == [
        "env.time_limit=terminal, relabeler.kind=none",
        "env.time_limit=truncation, relabeler.kind=none",
    ]
    assert {r.family for r in runs} == {"point_reacher"}
    runs = expand(load_study(write_study(tmp_path, grid={"env.kind": ["point_reacher", "point_trajectory"]})))
    assert [(r.family, r.method) for r in runs] == [("point_reacher", "none"), ("point_trajectory", "none")]


def test_a_study_file_in_the_study_directory_is_kept_and_the_resolved_study_written_beside_it(tmp_path):
    path = write_study(tmp_path)
    text = "# my notes\n" + path.read_text()
    path.write_text(text)
    study = load_study(path, ["train.epochs=3"])
    runner.prepare_study_dir(study, expand(study), tmp_path)
    assert path.read_text() == text
    resolved = yaml.safe_load((tmp_path / "study.resolved.yaml").read_text())
    assert resolved["base"]["train"]["epochs"] == 3 and resolved["grid"] == GRID


def test_sigterm_to_the_study_driver_stops_its_workers_instead_of_orphaning_them(tmp_path):
    """A killed driver used to leave its spawned workers training on; now SIGTERM stops them as Ctrl-C does."""
    import os
    import signal
    import subprocess
    import sys
    import time

    spec = {**TINY, "train": {**TINY["train"], "epochs": 100_000}}
    path = write_study(tmp_path, grid={"seed": [0]}, base=None)
    path.write_text(yaml.safe_dump({"name": "long", "base": spec, "grid": {"seed": [0]}}))
    out = tmp_path / "out"
    env = {**os.environ, "MUJOCO_GL": "disable"}
    driver = subprocess.Popen(
        [sys.executable, "-m", "hindsight", "study", str(path), "--workers", "1", "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = out / "runs" / "seed=0" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):
        assert time.monotonic() < deadline and driver.poll() is None, "the worker never logged an epoch"
        time.sleep(0.5)
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, stderr
    assert "interrupted" in stderr
    rows = len(metrics.read_text().splitlines())
    time.sleep(3)  # an orphaned worker would log an epoch every fraction of a second
    assert len(metrics.read_text().splitlines()) == rows
    status = json.loads((out / "status.json").read_text())["runs"][0]
    assert status["state"] == "interrupted"
    assert (out / "runs" / "seed=0" / "checkpoint.pt").is_file()


def test_cpus_per_job_sets_each_local_workers_threads(tmp_path, monkeypatch):
    import os

    assert runner.LocalBackend(2).threads == max(1, (os.cpu_count() or 1) // 2)
    assert runner.LocalBackend(1, threads=1).threads == 1
    made = []
    monkeypatch.setattr(runner, "make_backend", lambda *args: made.append(args) or FakeBackend())
    path = write_study(tmp_path, grid={"seed": [0]})
    result = CliRunner().invoke(app, ["study", str(path), "--out", str(tmp_path / "out"), "--cpus-per-job", "1"])
    assert result.exit_code == 0, result.output
    assert made == [(2, 1)]
