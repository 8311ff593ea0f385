"""Shared machinery of the environment families.

A family is a registered ``env`` component: it knows its sizes and its task distribution and builds
``dm_env.Environment`` instances (dm_control ``control.Environment`` on MuJoCo physics) whose task
vector is set per episode. Each step's observation dict carries ``observations`` (the policy input,
without z) and ``features`` (the reward features recorded by that step); the step reward is the
reward family evaluated on those features.
"""

from __future__ import annotations

import abc
import collections
import copy
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import mujoco as mj
import numpy as np
import torch
from dm_control import mujoco
from dm_control.mujoco.wrapper import core
from dm_control.rl import control
from dm_control.suite import base
from pydantic import Field

from hindsight.protocols import RewardFamily, TaskField
from hindsight.render.views import View
from hindsight.specs import Params

# How an episode's last step, at the horizon, is stored: a true terminal (the task ends there: the
# observation carries t/H, as in the reference code's point and Fetch envs) or a truncation of an
# infinite-horizon task (bootstrapped).
TimeLimit = Literal["terminal", "truncation"]


class FamilyParams(Params):
    """Base of the env families' parameters: the horizon and how it ends an episode."""

    horizon: int = Field(ge=1)
    time_limit: TimeLimit = Field(
        default="truncation",
        description="terminal: the step at the horizon is a true terminal (no bootstrap); "
        "truncation: the time limit cuts an infinite-horizon task (bootstrap)",
    )


class TaskSet:
    """Base of the built-in task distributions (kind ``tasks``): parameters, none by default."""

    class Params(Params):
        pass

    def __init__(self, params: Any = None):
        self.params = params if params is not None else self.Params()


class FieldsSideBySide:
    """The ``TaskFields`` capability of a task vector made of its ``fields`` side by side, in order."""

    fields: ClassVar[tuple[TaskField, ...]]

    def from_fields(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """Tasks [N, Z]: the fields' values [N, size] concatenated in order."""
        return torch.cat([values[field.name] for field in self.fields], -1)

    def to_fields(self, tasks: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each field's slice [N, size] of tasks [N, Z]."""
        parts = tasks.split([field.size for field in self.fields], -1)
        return {field.name: part for field, part in zip(self.fields, parts, strict=True)}


class LinearInTasks:
    """A reward family whose task is the weight vector over its features: r = z . features, so the
    objectives are the features and the weights are the task. Its ``with_weights`` says how weights are
    normalised into a task."""

    def reward(self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """[B, K, T] rewards for features [B, T, J], actions [B, T, A] (unused), tasks [B, K, J]."""
        return torch.einsum("btj,bkj->bkt", features, tasks)

    def weighted_returns(
        self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """[B, K] sums of weights [B, T] times the rewards under tasks [K, J]: linear in z, so the weighted
        feature sums [B, J] times the tasks."""
        return torch.einsum("btj,bt->bj", features, weights) @ tasks.t()

    def objectives(self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """[B, T, J]: the features [B, T, J] themselves (actions and tasks unused)."""
        return features

    def weights(self, tasks: torch.Tensor) -> torch.Tensor:
        """The weights [N, J]: the tasks [N, J] themselves."""
        return tasks


class HoldsTask:
    """The task vector z an environment's episodes are scored under, set before the first episode."""

    _task: np.ndarray | None = None

    def set_task(self, task: np.ndarray) -> None:
        """Set z (shape [Z]) for the episodes that follow."""
        self._task = np.asarray(task, dtype=np.float32)

    @property
    def task(self) -> np.ndarray:
        """The current task vector z, [Z]."""
        if self._task is None:
            raise RuntimeError("set_task(z) must be called before the first episode")
        return self._task


class MultiTaskTask(HoldsTask, base.Task):
    """A dm_control Task whose reward is a RewardFamily evaluated on recorded features under z.

    Subclasses implement ``observe``, ``features`` and ``reset_physics`` and may override
    ``apply_action``, ``record_before_step`` (to keep pre-step quantities) and ``is_terminal``.
    """

    def __init__(self, reward: RewardFamily | None, feature_dim: int, horizon: int, random: Any = None):
        super().__init__(random=random)
        self._reward = reward
        self.defer_rewards = reward is None  # True: get_reward returns 0.0, the caller scores the features
        self._feature_dim = feature_dim
        self.horizon = horizon
        self._action: np.ndarray | None = None
        self._features = np.zeros(feature_dim)
        self.steps = 0
        self.time_limit: TimeLimit = "truncation"  # the family's ``time_limit`` (set by ``make_env``)

    def before_step(self, action, physics):
        self.steps += 1
        self._action = np.asarray(action, dtype=np.float32)
        self.record_before_step(physics)
        self.apply_action(self._action, physics)

    def apply_action(self, action: np.ndarray, physics) -> None:
        """Send the action to the physics (default: the actuators' controls)."""
        physics.set_control(action)

    def record_before_step(self, physics) -> None:
        """Hook: keep pre-step quantities that the features need."""

    def after_step(self, physics):
        self._features = self.features(physics)

    def get_observation(self, physics):
        return collections.OrderedDict(
            observations=np.asarray(self.observe(physics), dtype=np.float32),
            features=np.asarray(self._features, dtype=np.float32),
        )

    def get_reward(self, physics):
        if self.defer_rewards:
            return 0.0
        features = torch.from_numpy(np.asarray(self._features, dtype=np.float32)).view(1, 1, -1)
        action = torch.from_numpy(self._action).view(1, 1, -1)
        task = torch.from_numpy(self.task).view(1, 1, -1)
        return float(self._reward.reward(features, action, task)[0, 0, 0])

    def get_termination(self, physics):
        if self.is_terminal(physics) or (self.time_limit == "terminal" and self.steps >= self.horizon):
            return 0.0
        return None

    def is_terminal(self, physics) -> bool:
        """True when the state is a true terminal (e.g. a fall)."""
        return False

    def initialize_episode(self, physics):
        self.steps = 0
        self._action = None
        self._features = np.zeros(self._feature_dim)
        self.reset_physics(physics)

    @abc.abstractmethod
    def reset_physics(self, physics) -> None:
        """Put the physics in the episode's initial state (use ``self.random`` for noise)."""

    @abc.abstractmethod
    def observe(self, physics) -> np.ndarray:
        """The policy's observation [O] (without z)."""

    @abc.abstractmethod
    def features(self, physics) -> np.ndarray:
        """The reward features [F] of the step just taken."""


class EnvFamily(abc.ABC):
    """Base of the registered environment families (kind ``env``; the ``EnvFamily`` protocol), one file each.

    Class attributes:
        Params: the pydantic parameter model of the family (with at least ``horizon``).
        Tasks, Reward: the family's own task distribution and reward family, used when a spec names none.
        features_name: the name of the feature layout the family records; a reward family
            declaring ``env_features`` must match it.
        feature_dim: F, the size of the feature vector its Task records.
        control_dt: seconds per control step.
        private_model: True when the family's task writes to the model (e.g. moves marker sites per
            episode), so each environment needs its own copy of the compiled model.
        view: how ``hindsight render`` shows the family (camera, task markers, drawings).
        observation_layout: what the observation's components are, in words (exported with a policy).
    Instance attributes:
        params, horizon (T), model (compiled once, shared by the environments).

    Observation and action sizes are read from the environments' dm_env specs (``hindsight.build``).
    Subclasses implement ``load_model`` and ``make_task``.
    """

    Params: ClassVar[type]
    Tasks: ClassVar[type]
    Reward: ClassVar[type]
    features_name: ClassVar[str]
    feature_dim: ClassVar[int]
    if TYPE_CHECKING:  # read only: a class attribute, or a property where the model sets it (Fetch)

        @property
        def control_dt(self) -> float: ...

    private_model: ClassVar[bool] = False
    view: ClassVar[type] = View
    observation_layout: ClassVar[str] = ""

    def __init__(self, params: Any = None):
        self.params = params if params is not None else self.Params()
        self.horizon: int = self.params.horizon
        self.model = self.load_model()

    @abc.abstractmethod
    def load_model(self) -> mj.MjModel:
        """The compiled MuJoCo model (called once per family instance)."""

    @abc.abstractmethod
    def make_task(self, reward: RewardFamily | None, seed: int, physics: mujoco.Physics) -> MultiTaskTask:
        """The dm_control task of one environment, its noise seeded by ``seed``."""

    def make_env(self, reward: RewardFamily | None, seed: int) -> control.Environment:
        """A new environment whose physics noise is seeded by ``seed``; set z via ``env.task.set_task``.
        With ``reward`` None its steps' rewards are 0: the caller scores the recorded features."""
        physics = physics_from_model(self.model, private=self.private_model)
        task = self.make_task(reward, seed, physics)
        task.time_limit = self.params.time_limit
        return make_control_env(physics, task, self.control_dt)


def make_control_env(physics, task: MultiTaskTask, control_timestep: float) -> control.Environment:
    """Wrap physics and task in ``control.Environment`` ending episodes after exactly ``task.horizon`` steps:
    as a truncation (discount 1, the time limit) or, for ``task.time_limit == "terminal"``, as a true
    terminal (discount 0, from the task's termination)."""
    env = control.Environment(physics, task, time_limit=float("inf"), control_timestep=control_timestep)
    if task.time_limit == "truncation":
        env._step_limit = float(task.horizon)  # exact step count; avoids float rounding of time_limit / dt
    return env


def physics_from_model(model: mj.MjModel, private: bool = False) -> mujoco.Physics:
    """A Physics (its own MjData) on a model compiled once per family.

    The model is shared by the family's environments unless ``private`` asks for a copy, which a task
    needs when it writes to the model (e.g. moves marker sites per episode). Copying costs tens of ms.
    """
    return mujoco.Physics.from_model(core.MjModel(copy.copy(model) if private else model))
