"""Contract: every registered relabeler runs a short training loop with every registered reward family
(on an env recording that family's features, horizon shortened), and HER on a family without a goal part
is a spec error naming both."""

from __future__ import annotations

import math

import pytest

from hindsight.registry import REGISTRY
from hindsight.specs import SpecError, validate
from hindsight.train.trainer import Trainer

# copies of each trajectory stored besides the original, per relabeler (default parameters)
EXTRA_COPIES = {"none": 0, "continual_random": 0, "hipi": 0}


def env_for(reward_name: str) -> str:
    """A registered env recording the features the reward family reads."""
    reward = REGISTRY.get("reward", reward_name)
    wanted = getattr(reward, "env_features", None)
    for env_name in REGISTRY.names("env"):
        env = REGISTRY.get("env", env_name)
        if (wanted is not None and env.features_name == wanted) or env.Reward is reward:
            return env_name
    raise AssertionError(f"no registered env records the features of reward family {reward_name!r}")


def has_goal(env_name: str) -> bool:
    return callable(getattr(REGISTRY.get("tasks", env_name), "goal_part", None))


def tiny_spec(env: str, reward: str, relabeler: str) -> dict:
    return {
        "seed": 1,
        "env": {"kind": env, "horizon": 3},
        "reward": {"kind": reward},
        "relabeler": {"kind": relabeler},
        "agent": {"kind": "sac", "hidden": [8], "batch_size": 8},
        "buffer": {"kind": "replay", "capacity": 10_000},
        "train": {"epochs": 1, "loops_per_epoch": 2, "episodes_per_loop": 2, "updates_per_loop": 2, "warmup_steps": 6},
        "eval": {"episodes": 1},
        "logging": {"wandb": {"mode": "disabled"}, "progress": False},
    }


@pytest.mark.parametrize("reward", REGISTRY.names("reward"))
@pytest.mark.parametrize("relabeler", REGISTRY.names("relabeler"))
def test_relabeler_trains_with_reward_family(relabeler, reward):
    env = env_for(reward)
    spec = tiny_spec(env, reward, relabeler)
    if relabeler in ("reward", "advantage"):  # every trajectory stored under its own task too
        spec["relabeler"]["store_original"] = "always"
    if relabeler == "her" and not has_goal(env):
        with pytest.raises(SpecError) as err:
            validate(spec)
        assert "relabeler.kind" in str(err.value) and repr(env) in str(err.value) and "'her'" in str(err.value)
        return
    trainer = Trainer(validate(spec))
    rows = trainer.run()[0]
    row = rows[-1]
    assert row["relabel/calls"] >= 1 and row["relabel/seconds"] >= 0
    copies = 1 + EXTRA_COPIES.get(relabeler, 1)
    member = trainer.members[0]
    assert len(member.buffer) == copies * member.env_steps
    assert all(math.isfinite(v) for k, v in row.items() if k.startswith("train/") and isinstance(v, float))
    if relabeler in ("reward", "advantage", "air"):
        assert 0.0 <= row["relabel/percentile"] <= 1.0 and 0.0 <= row["relabel/original_won"] <= 1.0
    if relabeler == "hipi":
        assert row["relabel/hipi_entropy"] >= 0.0
