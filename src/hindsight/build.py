"""Components from a resolved spec, built in one place: the env family, its sizes, the task distribution,
the reward family, the agent (one member per seed), and each member's relabeler and buffer."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

import attrs

from hindsight.protocols import Agent, Buffer, EnvFamily, Relabeler, RewardFamily, Sizes, TaskDistribution
from hindsight.seeding import make_generator

if TYPE_CHECKING:
    from hindsight.specs import ResolvedSpec


@attrs.define
class Problem:
    """What every member of a run shares: the env family, its task distribution and reward family, and
    the sizes they fix."""

    family: EnvFamily
    tasks: TaskDistribution
    reward: RewardFamily
    sizes: Sizes


@functools.lru_cache(maxsize=64)
def _sizes(env_kind: str, env_params: str, task_dim: int) -> Sizes:
    from hindsight.registry import REGISTRY

    env_cls = REGISTRY.get("env", env_kind)
    family = env_cls(env_cls.Params.model_validate(json.loads(env_params)))
    return sizes_of(family, task_dim)


def sizes_of(family: EnvFamily, task_dim: int) -> Sizes:
    """The sizes read from one of the family's environments (its dm_env specs) and ``task_dim``."""
    env = family.make_env(None, seed=0)
    observation = env.observation_spec()
    return Sizes(
        obs_dim=int(observation["observations"].shape[0]),
        action_dim=int(env.action_spec().shape[0]),
        feature_dim=int(observation["features"].shape[0]),
        task_dim=task_dim,
        horizon=family.horizon,
    )


def env_sizes(spec: ResolvedSpec) -> Sizes:
    """The sizes of the spec's env family and task distribution (one environment built per env setting)."""
    params = json.dumps(spec.params["env"].model_dump(mode="json"), sort_keys=True)
    return _sizes(spec.run.env.kind, params, spec.component("tasks")(spec.params["tasks"]).task_dim)


def build_problem(spec: ResolvedSpec) -> Problem:
    """The env family, task distribution and reward family the spec names, and their sizes."""
    family = spec.component("env")(spec.params["env"])
    tasks = spec.component("tasks")(spec.params["tasks"])
    reward = spec.component("reward")(spec.params["reward"])
    return Problem(family, tasks, reward, sizes_of(family, tasks.task_dim))


def build_agent(spec: ResolvedSpec, sizes: Sizes) -> Agent:
    """The spec's agent with one member per seed, member p initialised from seed p's ``agent/init`` stream."""
    generators = [make_generator(seed, "agent/init") for seed in spec.run.member_seeds]
    agent: Agent = spec.component("agent")(spec.params["agent"], sizes, spec.run.runtime, generators)
    return agent


def build_relabeler(spec: ResolvedSpec, sizes: Sizes) -> Relabeler:
    """One member's relabeler."""
    relabeler: Relabeler = spec.component("relabeler")(spec.params["relabeler"], sizes)
    return relabeler


def build_buffer(spec: ResolvedSpec, sizes: Sizes, device: Any) -> Buffer:
    """One member's replay buffer on ``device``."""
    buffer: Buffer = spec.component("buffer")(spec.params["buffer"], sizes, device)
    return buffer
