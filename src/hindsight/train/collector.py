"""Roll out a task-conditioned policy in several dm_control environments in lockstep."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import numpy as np
import torch

from hindsight.batches import TrajectoryBatch
from hindsight.protocols import RewardFamily
from hindsight.train import faults

if TYPE_CHECKING:
    import dm_env

# actions [B, A] from observations [B, O] and tasks [B, Z]
Policy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Collector:
    """Steps B environments together, one policy call per time step for all of them (``collect_together``
    steps several collectors' environments with one call).

    Args:
        envs: B dm_env environments of one family (their ``task.set_task`` sets z).
        horizon: the family's episode length T (an upper bound: terminals end episodes early).
        reward: if given, steps are scored by this reward family in one call per batch after the
            episodes (the environments' per-step reward is switched off); else the envs' rewards are kept.
    """

    def __init__(self, envs: list[dm_env.Environment], horizon: int, reward: RewardFamily | None = None):
        self.envs = envs
        self.horizon = horizon
        self.reward = reward
        if reward is not None:
            for env in envs:
                env.task.defer_rewards = True  # scored in one batched call instead of once per step
        first = envs[0].observation_spec()
        self.obs_dim = first["observations"].shape[0]
        self.feature_dim = first["features"].shape[0]
        self.action_dim = envs[0].action_spec().shape[0]

    def collect(self, policy: Policy, tasks: torch.Tensor) -> TrajectoryBatch:
        """One episode per environment, the i-th under ``tasks[i]``.

        Args:
            policy: maps (obs [B, O], tasks [B, Z]) to actions [B, A], called for all B environments at
                every time step (the actions of environments whose episode ended are not used).
            tasks: [B, Z] with B = number of environments.
        Returns:
            The B trajectories, padded to the longest.
        """
        return collect_together([self], lambda obs, z: policy(obs[0], z[0])[None], [tasks])[0]

    def finish(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        features: np.ndarray,
        rewards: np.ndarray,
        lengths: np.ndarray,
        terminated: np.ndarray,
        tasks: torch.Tensor,
    ) -> TrajectoryBatch:
        """The batch from filled step arrays ([B, T + 1, O], [B, T, ...], [B]), cut to the longest episode
        and, with a reward family, scored in one call."""
        T_used = int(lengths.max())
        batch = TrajectoryBatch(
            obs=torch.from_numpy(obs[:, : T_used + 1]),
            actions=torch.from_numpy(actions[:, :T_used]),
            features=torch.from_numpy(features[:, :T_used]),
            rewards=torch.from_numpy(rewards[:, :T_used]),
            tasks=tasks.float(),
            lengths=torch.from_numpy(lengths),
            terminated=torch.from_numpy(terminated),
        )
        if self.reward is None:
            return batch
        scored = self.reward.reward(batch.features, batch.actions, batch.tasks[:, None])[:, 0]
        return attrs.evolve(batch, rewards=scored * batch.mask)


# actions [P, B, A] from observations [P, B, O] and tasks [P, B, Z]: P groups of B environments
GroupPolicy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def collect_together(
    collectors: list[Collector], policy: GroupPolicy, tasks: list[torch.Tensor]
) -> list[TrajectoryBatch]:
    """One episode per environment of every collector (a population's members), all stepped in lockstep
    with one policy call per time step for all of them.

    Args:
        collectors: P collectors of one family with B environments each.
        policy: maps (obs [P, B, O], tasks [P, B, Z]) to actions [P, B, A] (rows of ended episodes unused).
        tasks: P tensors [B, Z], one task per environment.
    Returns:
        Each collector's B trajectories, padded to its own longest.
    """
    first = collectors[0]
    P, B, T = len(collectors), len(first.envs), first.horizon
    if any(len(c.envs) != B or c.horizon != T for c in collectors):
        raise ValueError("collectors stepped together need the same number of environments and horizon")
    if any(z.shape[0] != B for z in tasks):
        raise ValueError(f"expected {B} tasks per collector (one per environment), got {[z.shape[0] for z in tasks]}")
    obs = np.zeros((P, B, T + 1, first.obs_dim), np.float32)
    actions = np.zeros((P, B, T, first.action_dim), np.float32)
    features = np.zeros((P, B, T, first.feature_dim), np.float32)
    rewards = np.zeros((P, B, T), np.float32)
    lengths = np.zeros((P, B), np.int64)
    terminated = np.zeros((P, B), bool)
    tasks_cpu = torch.stack([z.detach().cpu() for z in tasks])  # [P, B, Z]
    task_rows = tasks_cpu.numpy()
    for p, collector in enumerate(collectors):
        for i, env in enumerate(collector.envs):
            env.task.set_task(task_rows[p, i])
            obs[p, i, 0] = env.reset().observation["observations"]
    running = np.ones((P, B), bool)
    for t in range(T):
        faults.reached("collect")
        chosen = policy(torch.from_numpy(obs[:, :, t]), tasks_cpu).detach().cpu().numpy()
        for p, i in zip(*np.nonzero(running), strict=True):
            step = collectors[p].envs[i].step(chosen[p, i])
            actions[p, i, t] = chosen[p, i]
            obs[p, i, t + 1] = step.observation["observations"]
            features[p, i, t] = step.observation["features"]
            rewards[p, i, t] = step.reward
            if step.last():
                lengths[p, i] = t + 1
                terminated[p, i] = step.discount == 0.0
                running[p, i] = False
        if not running.any():
            break
    lengths[running] = T  # cut by our horizon without the env ending (only if T < the env's limit)
    return [
        c.finish(obs[p], actions[p], features[p], rewards[p], lengths[p], terminated[p], tasks_cpu[p])
        for p, c in enumerate(collectors)
    ]
