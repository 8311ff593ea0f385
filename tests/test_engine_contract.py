"""The engine's contract: capability and size checks when a spec is built, runtime settings outside a run's
identity, recorded plugin folders, the run directory's layout, and old checkpoints that still resume."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from conftest import metrics_rows

from hindsight.registry import REGISTRY, register
from hindsight.rundir import RunDir
from hindsight.specs import SpecError, load_spec, validate
from hindsight.train.checkpoint import FORMAT, read_checkpoint
from hindsight.train.run import execute, spec_mismatch


class WideReward:
    """Reads five features: no registered env records that many."""

    feature_dim, task_dim = 5, 6

    def __init__(self, params=None):
        self.params = params

    def reward(self, features, actions, tasks):
        return tasks.new_zeros(tasks.shape[0], tasks.shape[1], features.shape[1])


class NoRewardMethod:
    """Declares its sizes but has no reward()."""

    feature_dim, task_dim = 2, 6


@pytest.fixture
def broken_rewards():
    """WideReward and NoRewardMethod registered for one test only (the contract tests over the registry
    must not see them)."""
    names = {"test_wide_reward": WideReward, "test_no_reward_method": NoRewardMethod}
    for name, cls in names.items():
        register("reward", name)(cls)
    yield
    for name in names:
        del REGISTRY._entries[("reward", name)]


def test_a_reward_family_whose_sizes_do_not_fit_is_refused_naming_both(tiny_spec, broken_rewards):
    tiny_spec["reward"] = {"kind": "test_wide_reward"}
    with pytest.raises(SpecError) as err:
        validate(tiny_spec)
    assert str(err.value) == (
        "reward.kind: reward family 'test_wide_reward' reads 5 features, but env 'point_reacher' records 2"
    )
    tiny_spec["reward"], tiny_spec["tasks"] = {"kind": "point_reacher"}, {"kind": "cheetah_multi"}
    with pytest.raises(SpecError, match="reads tasks of size 6, but tasks 'cheetah_multi' draws tasks of size 4"):
        validate(tiny_spec)


def test_a_component_lacking_its_protocol_or_a_required_capability_is_named(tiny_spec, broken_rewards):
    tiny_spec["reward"] = {"kind": "test_no_reward_method"}
    with pytest.raises(
        SpecError,
        match=r"^reward.kind: reward 'test_no_reward_method' lacks reward\(\) of the "
        r"RewardFamily protocol$",
    ):
        validate(tiny_spec)
    spec = {**tiny_spec, "env": {"kind": "cheetah_multi"}, "reward": None, "relabeler": {"kind": "her"}}
    with pytest.raises(
        SpecError,
        match=r"^relabeler.kind: relabeler 'her' needs a tasks with goal_part\(\) "
        r"\(GoalTasks\); tasks 'cheetah_multi' has none$",
    ):
        validate(spec)


def test_runtime_and_plugin_folders_are_not_part_of_a_runs_identity(tiny_spec):
    saved = validate(tiny_spec).to_dict()
    assert (
        spec_mismatch(saved, validate({**tiny_spec, "runtime": {"threads": 2, "precision": "bfloat16"}}).to_dict())
        is None
    )
    assert (
        spec_mismatch(
            {**saved, "plugins": [{"module": "m", "path": "/a"}]}, {**saved, "plugins": [{"module": "m", "path": "/b"}]}
        )
        is None
    )
    assert spec_mismatch(
        {**saved, "plugins": [{"module": "m", "path": "/a"}]}, {**saved, "plugins": [{"module": "n", "path": "/a"}]}
    ).startswith("plugins ")
    assert spec_mismatch(saved, validate({**tiny_spec, "seed": 3}).to_dict()).startswith("seed")


def test_a_plugin_beside_its_spec_is_recorded_and_found_from_anywhere(tmp_path):
    (tmp_path / "beside_plugin.py").write_text(
        textwrap.dedent('''
        from hindsight.registry import REGISTRY, register
        from hindsight.tasks.point_reacher import PointReacherReward

        @register("reward", "beside_reward")
        class BesideReward(PointReacherReward):
            """PointReacher's reward under another name."""
    ''')
    )
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(
        yaml.safe_dump(
            {"plugins": ["beside_plugin"], "env": "point_reacher", "reward": "beside_reward", "train": {"epochs": 1}}
        )
    )
    script = (
        "import sys, yaml; from hindsight.specs import load_spec, validate\n"
        "resolved = load_spec(sys.argv[1]).to_dict() if len(sys.argv) > 2 else None\n"
        "print(yaml.safe_dump(resolved) if resolved else validate(yaml.safe_load(open(sys.argv[1]))).run.reward)"
    )
    resolved = subprocess.run(
        [sys.executable, "-c", script, str(spec_file), "resolve"], capture_output=True, text=True, check=True, cwd="/"
    ).stdout
    assert yaml.safe_load(resolved)["plugins"] == [{"module": "beside_plugin", "path": str(tmp_path.resolve())}]
    (tmp_path / "elsewhere").mkdir()
    saved = tmp_path / "elsewhere" / "spec.yaml"
    saved.write_text(resolved)  # a run directory's spec.yaml, read by another process in another folder
    found = subprocess.run(
        [sys.executable, "-c", script, str(saved)],
        capture_output=True,
        text=True,
        cwd="/",
        env={**os.environ, "MUJOCO_GL": "disable"},
    )
    assert found.returncode == 0 and "beside_reward" in found.stdout, found.stderr


def test_run_directory_layout(tmp_path):
    population = RunDir(tmp_path / "pop")
    population.write_spec({"seeds": [3, 5]})
    member = population.member(5)
    assert member.path == tmp_path / "pop" / "seed5" and member.member_seed() == 5
    assert member.checkpoint_owner() == population and population.member(4).member_seed() is None
    assert population.members([3, 5])[0].path.name == "seed3" and population.members(None) == [population]
    study_member = RunDir(tmp_path / "runs" / "seed=5")
    study_member.path.mkdir(parents=True)
    study_member.point_to_population(population, [3, 5])
    assert study_member.population() == RunDir(population.path.resolve())
    assert RunDir(tmp_path / "alone").checkpoint_owner() == RunDir(tmp_path / "alone")


def as_format_1(state: dict) -> dict:
    """A single run's checkpoint as hindsight wrote it before format 2: its member state at the top level,
    the agent's runtime settings still in the agent's section of the spec."""
    spec = dict(state["spec"])
    runtime = spec.pop("runtime")
    spec.pop("tasks")
    spec["agent"] = {
        **spec["agent"],
        **{k: runtime[k] for k in ("device", "threads", "precision", "compile", "keep_freed_memory")},
    }
    member = {k: v for k, v in state["members"][0].items() if k != "seed"}
    return {"format": 1, "spec": spec, **member, "agent": state["agent"]}


def test_a_run_directory_of_the_previous_format_still_resumes(tmp_path, tiny_spec):
    tiny_spec["train"]["epochs"] = 3
    execute(validate(tiny_spec), tmp_path / "reference")
    short = {**tiny_spec, "train": {**tiny_spec["train"], "epochs": 1}}
    old = RunDir(tmp_path / "old")
    execute(validate(short), old.path)
    torch.save(as_format_1(torch.load(old.checkpoint, weights_only=True)), old.checkpoint)
    old.checkpoint_digests.unlink()  # hindsight wrote no digests then
    converted = read_checkpoint(old.checkpoint)
    assert converted["format"] == FORMAT and converted["members"][0]["epoch"] == 1
    old_spec = converted["spec"]
    old.spec.write_text(yaml.safe_dump(old_spec))
    execute(validate(tiny_spec), old.path, resume=True)
    assert metrics_rows(old.metrics) == metrics_rows(RunDir(tmp_path / "reference").metrics)


def test_a_run_resumes_with_another_thread_count(tmp_path, tiny_spec):
    short = {**tiny_spec, "train": {**tiny_spec["train"], "epochs": 1}}
    execute(validate(short), tmp_path / "run")
    before = torch.get_num_threads()
    try:
        rows = execute(validate({**tiny_spec, "runtime": {"threads": 2}}), tmp_path / "run", resume=True)
    finally:
        torch.set_num_threads(before)
    assert [row["epoch"] for row in rows] == [2]
    assert RunDir(tmp_path / "run").read_spec()["runtime"]["threads"] == 2


def test_spec_files_still_load_with_runtime_settings_under_agent(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "env": "point_reacher",
                "agent": {"kind": "sac", "device": "cpu", "threads": 2, "precision": "bfloat16"},
                "train": {"epochs": 1},
            }
        )
    )
    resolved = load_spec(path).to_dict()
    assert resolved["runtime"]["threads"] == 2 and resolved["runtime"]["precision"] == "bfloat16"
    assert "threads" not in resolved["agent"] and resolved["tasks"] == {"kind": "point_reacher"}
