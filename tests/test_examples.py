"""The examples: the two-objective HalfCheetah task distribution and reward (a plugin beside its spec)."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from hindsight.cli import app
from hindsight.registry import import_plugins
from hindsight.specs import SpecError, read_yaml, validate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SPEC = EXAMPLES / "cheetah_speed_energy.yaml"
# small enough for a 1-epoch run of a few seconds
TINY = [
    "env.horizon=20",
    "train.epochs=1",
    "train.warmup_steps=40",
    "train.updates_per_loop=5",
    "train.loops_per_epoch=1",
    "agent.hidden=[16, 16]",
    "agent.batch_size=16",
    "tasks.eval_count=2",
    "logging.wandb.mode=disabled",
]


@pytest.fixture(scope="module")
def example():
    """The example module, imported as a spec's plugins are (once: registering twice is an error)."""
    import_plugins([("cheetah_speed_energy", None)], str(EXAMPLES))
    return sys.modules["cheetah_speed_energy"]


def test_reward_matches_hand_computation(example):
    # two steps of (forward velocity, control cost, torso height, pitch rate); height and pitch are ignored
    features = torch.tensor([[[2.0, -0.5, 0.6, 1.0], [1.0, -0.1, 0.5, -3.0]]])  # [1, 2, 4]
    actions = torch.zeros(1, 2, 6)
    tasks = torch.tensor([[[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]])  # [1, 3, 2]
    rewards = example.SpeedEnergyReward().reward(features, actions, tasks)
    # (0.6, 0.8): 0.6 * 2 + 0.8 * -0.5 = 0.8 and 0.6 * 1 + 0.8 * -0.1 = 0.52
    expected = torch.tensor([[[2.0, 1.0], [0.8, 0.52], [-0.5, -0.1]]])
    assert rewards.shape == (1, 3, 2)
    torch.testing.assert_close(rewards, expected)


def test_weighted_returns_equal_summed_rewards(example):
    reward = example.SpeedEnergyReward()
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(3, 7, 4, generator=generator)
    actions = torch.randn(3, 7, 6, generator=generator)
    tasks = example.SpeedEnergyTasks().sample(5, generator)  # [5, 2]
    weights = torch.rand(3, 7, generator=generator)
    rewards = reward.reward(features, actions, tasks[None].expand(3, 5, 2))  # [3, 5, 7]
    torch.testing.assert_close(
        reward.weighted_returns(features, actions, tasks, weights), torch.einsum("bkt,bt->bk", rewards, weights)
    )


def test_tasks_lie_on_the_positive_quarter_circle(example):
    tasks = example.SpeedEnergyTasks()
    drawn = tasks.sample(100, torch.Generator().manual_seed(1))
    assert drawn.shape == (100, 2) and bool((drawn >= 0).all())
    torch.testing.assert_close(drawn.norm(dim=1), torch.ones(100))
    fixed = tasks.eval_tasks()
    angles = torch.linspace(0, math.pi / 2, 5)
    torch.testing.assert_close(fixed, torch.stack([angles.cos(), angles.sin()], 1))


def test_spec_validates_and_a_size_mismatch_is_refused(example):
    raw = read_yaml(SPEC)
    resolved = validate(raw, EXAMPLES)
    assert resolved.run.tasks.kind == "cheetah_speed_energy"
    assert resolved.run.plugins[0].path == str(EXAMPLES)
    raw.pop("tasks")  # the cheetah's own tasks: size 4
    with pytest.raises(SpecError) as caught:
        validate(raw, EXAMPLES)
    message = str(caught.value)
    assert "reward family 'cheetah_speed_energy' reads tasks of size 2" in message
    assert "tasks 'cheetah_multi' draws tasks of size 4" in message


def test_tiny_run_through_the_cli(example, tmp_path):
    args = ["run", str(SPEC), "--out", str(tmp_path / "run"), "--no-progress"]
    for override in TINY:
        args += ["--set", override]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and math.isfinite(rows[-1]["eval/return_mean"])
