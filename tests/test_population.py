"""Population runs: members equal to their single runs, independent of each other, resumable."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import metrics_rows

from hindsight.specs import SpecError, validate
from hindsight.train.run import execute

rows_of = metrics_rows


def assert_rows_close(a, b, rel=1e-4):
    assert [r.keys() for r in a] == [r.keys() for r in b]
    for x, y in zip(a, b, strict=True):
        for key in x:
            if isinstance(x[key], float):
                assert y[key] == pytest.approx(x[key], rel=rel, abs=1e-5), key
            elif isinstance(x[key], dict):  # a table (the front): its numbers compare as the floats do
                assert x[key]["columns"] == y[key]["columns"], key
                np.testing.assert_allclose(y[key]["data"], x[key]["data"], rtol=rel, atol=1e-5, err_msg=key)
            else:
                assert x[key] == y[key], key


def test_population_of_one_equals_the_plain_run(tmp_path, tiny_spec):
    execute(validate(tiny_spec), tmp_path / "plain")
    tiny_spec["seeds"] = [0]
    execute(validate(tiny_spec), tmp_path / "population")
    assert rows_of(tmp_path / "population/seed0/metrics.jsonl") == rows_of(tmp_path / "plain/metrics.jsonl")


def test_members_are_independent_and_match_their_single_runs(tmp_path, tiny_spec):
    tiny_spec["seeds"] = [0, 1]
    execute(validate(tiny_spec), tmp_path / "a")
    tiny_spec["seeds"] = [0, 7]
    execute(validate(tiny_spec), tmp_path / "b")
    # changing the second member's seed leaves the first member's metrics unchanged
    assert rows_of(tmp_path / "a/seed0/metrics.jsonl") == rows_of(tmp_path / "b/seed0/metrics.jsonl")
    assert rows_of(tmp_path / "a/seed1/metrics.jsonl") != rows_of(tmp_path / "b/seed7/metrics.jsonl")
    # each member is the run of its seed (batched kernels may differ in the last float bits)
    single = dict(tiny_spec, seeds=None, seed=7)
    execute(validate(single), tmp_path / "single7")
    assert_rows_close(rows_of(tmp_path / "single7/metrics.jsonl"), rows_of(tmp_path / "b/seed7/metrics.jsonl"))
    spec = yaml.safe_load((tmp_path / "b/seed7/spec.yaml").read_text())
    assert spec["seed"] == 7 and spec["seeds"] is None


def test_population_sigkill_and_resume(tmp_path, tiny_spec):
    tiny_spec["seeds"] = [0, 1]
    tiny_spec["train"]["epochs"] = 3
    path = tmp_path / "population.yaml"
    path.write_text(yaml.safe_dump(tiny_spec))
    env = {**os.environ, "MUJOCO_GL": "disable"}
    command = [sys.executable, "-m", "hindsight", "run", str(path), "--out"]
    assert subprocess.run(command + [str(tmp_path / "reference")], env=env, capture_output=True).returncode == 0
    killed = subprocess.run(
        command + [str(tmp_path / "killed")], capture_output=True, env={**env, "HINDSIGHT_KILL_AT": "update:45"}
    )
    assert killed.returncode == -signal.SIGKILL
    resumed = subprocess.run(command + [str(tmp_path / "killed"), "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    for seed in (0, 1):
        assert rows_of(tmp_path / f"killed/seed{seed}/metrics.jsonl") == rows_of(
            tmp_path / f"reference/seed{seed}/metrics.jsonl"
        )


def test_seeds_must_be_distinct(tiny_spec):
    tiny_spec["seeds"] = [1, 1]
    with pytest.raises(SpecError, match="seeds: Value error, seeds must be distinct"):
        validate(tiny_spec)


def test_collecting_members_together_equals_collecting_each_alone(tiny_spec):
    """One policy call per time step for all members' environments gives each member the episodes it
    would collect alone."""
    import torch

    from hindsight.build import build_problem
    from hindsight.specs import validate
    from hindsight.train.collector import Collector, collect_together
    from hindsight.train.trainer import make_envs

    problem = build_problem(validate(tiny_spec))

    def collectors():
        return [
            Collector(make_envs(problem, seed, "env/train", 2), problem.sizes.horizon, problem.reward)
            for seed in (3, 4)
        ]

    def policy(obs, tasks):  # any deterministic function of the rows; [..., O], [..., Z] -> [..., A]
        return torch.tanh(obs[..., :2] * 3 - tasks[..., 2:4] + obs[..., 4:5])

    tasks = [problem.tasks.sample(2, torch.Generator().manual_seed(s)) for s in (5, 6)]
    together = collect_together(collectors(), policy, tasks)
    alone = [c.collect(policy, z) for c, z in zip(collectors(), tasks, strict=True)]
    assert not torch.equal(together[0].actions, together[1].actions)
    for a, b in zip(together, alone, strict=True):
        for field in ("obs", "actions", "features", "rewards", "tasks", "lengths", "terminated"):
            assert torch.equal(getattr(a, field), getattr(b, field)), field
