"""Roll out a task-conditioned policy in several dm_control environments in lockstep."""

from __future__ import annotations

from typing import Callable

import attrs
import numpy as np
import torch

from hindsight.batches import TrajectoryBatch
from hindsight.protocols import RewardFamily
from hindsight.train import faults

# actions [B, A] from observations [B, O] and tasks [B, Z]
Policy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Collector:
    """Steps B environments together, one policy call per time step for all of them.

    Args:
        envs: B dm_env environments of one family (their ``task.set_task`` sets z).
        horizon: the family's episode length T (an upper bound: terminals end episodes early).
        reward: if given, steps are scored by this reward family in one call per batch after the
            episodes (the environments' per-step reward is switched off); else the envs' rewards are kept.
    """

    def __init__(self, envs: list, horizon: int, reward: RewardFamily | None = None):
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
            policy: maps (obs [B', O], tasks [B', Z]) to actions [B', A] for the still-running envs.
            tasks: [B, Z] with B = number of environments.
        Returns:
            The B trajectories, padded to the longest.
        """
        B, T = len(self.envs), self.horizon
        if tasks.shape[0] != B:
            raise ValueError(f"expected {B} tasks (one per environment), got {tasks.shape[0]}")
        obs = np.zeros((B, T + 1, self.obs_dim), np.float32)
        actions = np.zeros((B, T, self.action_dim), np.float32)
        features = np.zeros((B, T, self.feature_dim), np.float32)
        rewards = np.zeros((B, T), np.float32)
        lengths = np.zeros(B, np.int64)
        terminated = np.zeros(B, bool)
        task_rows = tasks.detach().cpu().numpy()
        for i, env in enumerate(self.envs):
            env.task.set_task(task_rows[i])
            obs[i, 0] = env.reset().observation["observations"]
        running = np.arange(B)
        tasks_cpu = tasks.detach().cpu()
        for t in range(T):
            faults.reached("collect")
            chosen = policy(torch.from_numpy(obs[running, t]), tasks_cpu[running])
            chosen = chosen.detach().cpu().numpy()
            still = []
            for j, i in enumerate(running):
                step = self.envs[i].step(chosen[j])
                actions[i, t] = chosen[j]
                obs[i, t + 1] = step.observation["observations"]
                features[i, t] = step.observation["features"]
                rewards[i, t] = step.reward
                if step.last():
                    lengths[i] = t + 1
                    terminated[i] = step.discount == 0.0
                else:
                    still.append(i)
            running = np.asarray(still, dtype=np.int64)
            if running.size == 0:
                break
        lengths[running] = T  # cut by our horizon without the env ending (only if T < the env's limit)
        T_used = int(lengths.max())
        batch = TrajectoryBatch(
            obs=torch.from_numpy(obs[:, : T_used + 1]), actions=torch.from_numpy(actions[:, :T_used]),
            features=torch.from_numpy(features[:, :T_used]), rewards=torch.from_numpy(rewards[:, :T_used]),
            tasks=tasks_cpu.float(), lengths=torch.from_numpy(lengths), terminated=torch.from_numpy(terminated),
        )
        if self.reward is None:
            return batch
        scored = self.reward.reward(batch.features, batch.actions, batch.tasks[:, None])[:, 0]
        return attrs.evolve(batch, rewards=scored * batch.mask)
