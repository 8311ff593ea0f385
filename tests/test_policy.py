"""A trained policy in use: evaluation metrics with objectives and fronts, ``hindsight eval`` on chosen
tasks, ``hindsight export`` loaded without hindsight, progress within an epoch, cost warnings."""

import csv
import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SPEC
from typer.testing import CliRunner

from hindsight.cli import app
from hindsight.logging.sinks import ProgressSink
from hindsight.policy.choose import TaskChoiceError, grid_tasks
from hindsight.render.video import load_run
from hindsight.rundir import RunDir
from hindsight.specs import load_spec, validate
from hindsight.train import trainer as trainer_module
from hindsight.train.trainer import Trainer, warn_costly


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny trained PointReacher run."""
    import yaml

    path = tmp_path_factory.mktemp("policy")
    spec = path / "spec.yaml"
    spec.write_text(yaml.safe_dump(TINY_SPEC))
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(path / "run"), "--no-progress"])
    assert result.exit_code == 0, result.output
    return path / "run"


def test_evaluations_log_objective_returns_and_the_front(run_dir):
    rows = RunDir(run_dir).read_metrics()
    for row in rows:
        front = row["eval/mo/front"]
        assert front["columns"] == ["w_distance", "w_energy", "w_safety", "distance", "energy", "safety"]
        data = np.array(front["data"])
        assert data.shape == (15, 6)
        # the reward is linear in the weights: the mean scalarised return over the W x S episodes is the
        # mean over weight vectors of w . (mean objective returns under w)
        assert row["eval/mo/expected_utility"] == pytest.approx((data[:, :3] * data[:, 3:]).sum(1).mean(), abs=1e-5)
        assert row["eval/mo/hypervolume"] > 0 and row["eval/mo/sparsity"] >= 0
        assert {"eval/objective/distance", "eval/objective/energy", "eval/objective/safety"} <= set(row)


def test_the_front_is_the_same_at_every_evaluation_of_the_same_policy(run_dir):
    run = load_run(run_dir)
    spec = validate({**TINY_SPEC, "env": {"kind": "cheetah_multi", "horizon": 20}})  # reset noise to reseed
    trainer = Trainer(spec)
    front = trainer.members[0].evaluator.front
    first, second = front.evaluate(trainer.agent), front.evaluate(trainer.agent)
    assert first == second and len(first["eval/mo/front"]["data"]) == 10
    assert run.problem.reward.objective_names == ("distance", "energy", "safety")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_eval_chosen_tasks_prints_and_writes_the_table(run_dir, tmp_path):
    result = invoke(
        "eval", run_dir,
        "--task", "weights=1,0,0 goal=0.2,0.1 obstacle=-0.1,0.2",
        "--task", "weights=0,1,0; goal=0,-0.25",
        "--task", "z=0.1,0.75,1.0,0.2,-2.0,0.25",
        "--out", tmp_path / "table.csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "3 tasks, return mean" in result.output and "distance" in result.output
    rows = list(csv.DictReader((tmp_path / "table.csv").open()))
    assert len(rows) == 3
    first, second, third = rows
    assert [first[f"weights.{k}"] for k in ("distance", "energy", "safety")] == ["1", "0", "0"]
    assert (first["goal.x"], first["goal.y"], first["obstacle.x"]) == ("0.2", "0.1", "-0.1")
    # weights (1, 0, 0): the return is the distance objective's; (0, 1, 0): the energy objective's
    assert float(first["return"]) == pytest.approx(float(first["objective.distance"]), abs=1e-5)
    assert float(second["return"]) == pytest.approx(float(second["objective.energy"]), abs=1e-5)
    assert float(third["z.2"]) == pytest.approx(1.0) and float(third["z.5"]) == pytest.approx(0.25)
    # the left-out obstacle of task 2 was drawn from the distribution: inside its range
    assert 0.15 - 1e-6 <= np.hypot(float(second["obstacle.x"]), float(second["obstacle.y"])) <= 0.3 + 1e-6


def test_eval_task_files_and_grid(run_dir, tmp_path):
    (tmp_path / "tasks.yaml").write_text("- {weights: [0, 0, 1], goal: [0.2, 0.1], obstacle: [0.15, 0.1]}\n")
    (tmp_path / "tasks.csv").write_text("weights.distance,weights.energy,weights.safety,goal.x,goal.y\n1,1,0,0.2,0.1\n")
    (tmp_path / "tasks.json").write_text(json.dumps({"tasks": [{"z": [0.0, 1.0, 0.0, 0.2, 3.0, 0.2]}]}))
    for name in ("tasks.yaml", "tasks.csv", "tasks.json"):
        result = invoke("eval", run_dir, "--tasks", tmp_path / name, "--out", tmp_path / f"{name}.json")
        assert result.exit_code == 0, result.output
        assert len(json.loads((tmp_path / f"{name}.json").read_text())) == 1
    result = invoke("eval", run_dir, "--grid", 4, "--out", tmp_path / "grid.json")
    assert result.exit_code == 0, result.output
    grid = json.loads((tmp_path / "grid.json").read_text())
    assert [row["fields"]["weights"] for row in grid[:3]] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert len({tuple(row["fields"]["goal"]) for row in grid}) == 1  # one shared draw of the rest


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "weight=1,0,0"], "unknown field 'weight'"),
        (["--task", "weights=1,0"], "weights: expected 3 (distance, energy, safety), got 2"),
        (["--task", "goal=0.5,0"], "goal: x = 0.5 is outside [-0.3, 0.3]"),
        (["--task", "goal=0.05,0"], "goal: length 0.05 is outside [0.15, 0.3]"),
        (["--task", "z=1,2,3"], "z: expected 6 numbers, got 3"),
        (["--task", "z=0.5,0.75,0,0.2,0,0.2"], "z gives weights out of range"),
        (["--task", "weights"], "expected name=value[,value...] pairs"),
        (["--task", "weights=a,b,c"], "weights: expected numbers"),
    ],
)
def test_eval_bad_tasks_name_the_fields_and_their_ranges(run_dir, args, message):
    result = invoke("eval", run_dir, *args)
    assert result.exit_code == 2
    assert message in result.output and "task fields: weights (distance, energy, safety) in [0, 1]" in result.output
    assert "obstacle (x, y) in [-0.3, 0.3], length in [0.15, 0.3]" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3


def test_eval_file_errors_and_grid_without_objectives(run_dir, tmp_path):
    (tmp_path / "bad.csv").write_text("weights.distance,speed\n1,2\n")
    assert "unknown column 'speed'" in invoke("eval", run_dir, "--tasks", tmp_path / "bad.csv").output
    assert "no such file" in invoke("eval", run_dir, "--tasks", tmp_path / "missing.yaml").output
    assert invoke("eval", run_dir, "--out", tmp_path / "table.txt").exit_code == 2
    spec = validate({**TINY_SPEC, "env": {"kind": "point_trajectory"}})
    from hindsight.build import build_problem

    problem = build_problem(spec)
    with pytest.raises(TaskChoiceError, match="declares no objectives"):
        grid_tasks(problem.tasks, problem.reward, 3, torch.Generator())


EXPORT_CHECK = textwrap.dedent(
    """
    import sys
    import numpy as np
    fmt, path, data = sys.argv[1:4]
    batch = np.load(data)
    if fmt == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        action = session.run(None, {"obs": batch["obs"], "z": batch["z"]})[0]
    else:
        import torch
        policy = torch.jit.load(path)
        action = policy(torch.from_numpy(batch["obs"]), torch.from_numpy(batch["z"])).detach().numpy()
    assert not any(name == "hindsight" or name.startswith("hindsight.") for name in sys.modules)
    np.save(sys.argv[4], action)
    """
)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_loads_without_hindsight_and_acts_as_the_agent(run_dir, tmp_path, fmt):
    pytest.importorskip("onnxruntime" if fmt == "onnx" else "torch")
    policy = tmp_path / ("policy.pt" if fmt == "torchscript" else "policy.onnx")
    result = invoke("export", run_dir, "--format", fmt, "--out", policy)
    assert result.exit_code == 0, result.output
    layout = json.loads(policy.with_suffix(".json").read_text())
    assert layout["inputs"] == {
        "obs": {"shape": ["N", 5], "dtype": "float32"},
        "z": {"shape": ["N", 6], "dtype": "float32"},
    }
    assert layout["action"] == {"size": 2, "low": [-1.0, -1.0], "high": [1.0, 1.0]}
    assert [f["name"] for f in layout["task"]["fields"]] == ["weights", "goal", "obstacle"]
    assert layout["task"]["components"][0] == "u" and "atan2" in layout["task"]["encoding"]
    assert layout["observation"]["size"] == 5 and layout["objectives"] == ["distance", "energy", "safety"]

    run = load_run(run_dir)
    g = torch.Generator().manual_seed(3)
    obs = torch.rand(100, 5, generator=g) * 2 - 1
    z = run.problem.tasks.sample(100, g)
    expected = run.agent.act(obs, z, deterministic=True).numpy()
    np.savez(tmp_path / "batch.npz", obs=obs.numpy(), z=z.numpy())
    script = tmp_path / "check.py"
    script.write_text(EXPORT_CHECK)
    done = subprocess.run(
        [sys.executable, "-I", str(script), fmt, str(policy), str(tmp_path / "batch.npz"), str(tmp_path / "out.npy")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5, rtol=0)


def test_progress_moves_within_an_epoch(monkeypatch, tiny_spec):
    """The trainer reports updates within the epoch to sinks that follow them; the bar moves and shows a rate."""
    from io import StringIO

    from rich.console import Console

    monkeypatch.setattr(trainer_module, "PROGRESS_EVERY", 0.0)
    trainer = Trainer(validate(tiny_spec))
    bar = ProgressSink(2, "tiny", console=Console(file=StringIO(), width=200))
    reports = []

    class Recorder:
        def advance(self, epochs_done, updates, per_epoch, env_steps):
            reports.append((epochs_done, updates, per_epoch))
            bar.advance(epochs_done, updates, per_epoch, env_steps)

        def log(self, row):
            bar.log(row)

        def close(self):
            pass

    trainer.members[0].sinks = [Recorder()]
    trainer.run()
    bar.close()
    assert reports[0] == (0, 1, 20) and reports[19] == (0, 20, 20) and reports[20] == (1, 1, 20)
    assert len(reports) == 40
    task = bar._progress.tasks[0]
    assert task.completed == 2 and task.fields["updates"] == "20/20" and task.fields["rate"] != "-"


def test_exact_hipi_at_paper_scale_warns_with_the_candidate_cap():
    paper = Path(__file__).parents[1] / "envs" / "point_reacher" / "air.yaml"
    with pytest.warns(RuntimeWarning, match=r"exact HIPI scores all 256 x 256 .* relabeler.candidates=32"):
        warn_costly(load_spec(paper, ["relabeler.kind=hipi"]))
    on_gpu = load_spec(paper, ["relabeler.kind=hipi"])
    on_gpu.run.runtime = on_gpu.run.runtime.model_copy(update={"device": "cuda"})  # (no GPU needed to check)
    capped = [load_spec(paper, ["relabeler.kind=hipi", o]) for o in ("relabeler.candidates=32", "agent.batch_size=32")]
    for spec in (on_gpu, *capped):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warn_costly(spec)


def test_wandb_gets_the_front_as_a_table(tmp_path, monkeypatch):
    from hindsight.logging.sinks import WandbSink

    monkeypatch.delenv("WANDB_MODE", raising=False)
    sink = WandbSink("offline", "hindsight-test", tmp_path, {}, "front")
    front = {"columns": ["w_distance", "distance"], "data": [[1.0, 2.0], [0.0, 3.0]]}
    sink.log({"epoch": 1, "env_steps": 10, "eval/return_mean": 1.0, "eval/mo/front": front})
    sink.close()
    (table,) = tmp_path.glob("wandb/offline-run-*/files/media/table/eval/mo/front_*.table.json")
    assert json.loads(table.read_text()) == front
