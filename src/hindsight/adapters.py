"""Gymnasium adapter: any registered environment family as a ``gymnasium.Env``, for other libraries' agents.

The task vector z is appended to the observation (obs [O] -> concat(obs, z) [O + Z]); it is drawn from the
family's task distribution at every reset, or fixed by the caller (constructor ``task=`` or
``reset(options={"task": z})``). True terminals (falls) come back as ``terminated``, the time limit as
``truncated``. ``info`` carries the step's reward features and the task.

Example::

    env = GymnasiumAdapter("cheetah_multi", env_params={"horizon": 200})
    obs, info = env.reset(seed=0)           # obs: [17 + 4] float32
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import torch

from hindsight.build import sizes_of
from hindsight.protocols import EnvFamily, RewardFamily, TaskDistribution
from hindsight.registry import REGISTRY


class GymnasiumAdapter(gymnasium.Env):
    """A registered family as a ``gymnasium.Env`` whose observation is concat(obs, z).

    Args:
        family: a registered env name or an EnvFamily instance.
        env_params: the family's parameters (e.g. ``{"horizon": 100}``) when ``family`` is a name.
        reward: a RewardFamily instance or a registered reward name (default: the family's own).
        reward_params: that reward family's parameters when ``reward`` is a name or the default.
        tasks: a TaskDistribution instance or a registered ``tasks`` name (default: the family's own).
        task: a fixed task z [Z] for every episode (default: a fresh draw at each reset).
        seed: seeds the physics noise and the task draws until ``reset(seed=...)`` reseeds them.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        family: str | EnvFamily,
        *,
        env_params: dict[str, Any] | None = None,
        reward: str | RewardFamily | None = None,
        reward_params: dict[str, Any] | None = None,
        tasks: str | TaskDistribution | None = None,
        task: np.ndarray | None = None,
        seed: int = 0,
    ):
        self.family: EnvFamily
        self.reward_family: RewardFamily
        self.task_distribution: TaskDistribution
        if isinstance(family, str):
            env_cls = REGISTRY.get("env", family)
            self.family = env_cls(env_cls.Params.model_validate(env_params or {}))
        else:
            self.family = family
        own = getattr(type(self.family), "own_params", None)  # OwnParams: what the family gives its own
        given = own(getattr(self.family, "params", None)) if own is not None else {}
        if reward is None or isinstance(reward, str):
            reward_cls: Any = REGISTRY.get("reward", reward) if reward else self.family.Reward
            defaults = given.get("reward", {}) if reward_cls is self.family.Reward else {}
            self.reward_family = reward_cls(reward_cls.Params.model_validate({**defaults, **(reward_params or {})}))
        else:
            self.reward_family = reward
        if tasks is None or isinstance(tasks, str):
            tasks_cls: Any = REGISTRY.get("tasks", tasks) if tasks else self.family.Tasks
            own_tasks = given.get("tasks", {}) if tasks_cls is self.family.Tasks else {}
            self.task_distribution = tasks_cls(tasks_cls.Params.model_validate(own_tasks)) if own_tasks else tasks_cls()
        else:
            self.task_distribution = tasks
        self.sizes = sizes_of(self.family, self.task_distribution.task_dim)
        self.fixed_task = None if task is None else self._check_task(task)
        self.observation_space = gymnasium.spaces.Box(
            -np.inf, np.inf, (self.sizes.obs_dim + self.sizes.task_dim,), np.float32
        )
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self.sizes.action_dim,), np.float32)
        self.task: np.ndarray | None = None
        self._seed(seed)

    def _check_task(self, task: np.ndarray) -> np.ndarray:
        task = np.asarray(task, dtype=np.float32)
        if task.shape != (self.task_distribution.task_dim,):
            raise ValueError(f"task must have shape ({self.task_distribution.task_dim},), got {task.shape}")
        return task

    def _seed(self, seed: int) -> None:
        self._env = self.family.make_env(self.reward_family, seed)
        self._tasks_generator = torch.Generator().manual_seed(seed)

    def _observe(self, timestep) -> np.ndarray:
        return np.concatenate([timestep.observation["observations"], self.task]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode: (obs [O + Z], info). ``options={"task": z}`` fixes z for this episode."""
        super().reset(seed=seed)
        if seed is not None:
            self._seed(seed)
        if options and options.get("task") is not None:
            self.task = self._check_task(options["task"])
        elif self.fixed_task is not None:
            self.task = self.fixed_task
        else:
            self.task = self.task_distribution.sample(1, self._tasks_generator)[0].numpy()
        self._env.task.set_task(self.task)
        timestep = self._env.reset()
        return self._observe(timestep), {"task": self.task.copy()}

    def step(self, action):
        """One step: (obs [O + Z], reward, terminated, truncated, info with ``features`` [F] and ``task``)."""
        timestep = self._env.step(np.asarray(action, dtype=np.float64))
        terminated = bool(timestep.last() and timestep.discount == 0.0)
        truncated = bool(timestep.last() and not terminated)
        info = {"features": timestep.observation["features"], "task": self.task.copy()}
        return self._observe(timestep), float(timestep.reward), terminated, truncated, info
