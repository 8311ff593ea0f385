"""Typed batches of experience: frozen attrs classes holding torch tensors.

Shapes use B = trajectories, T = time steps (padded), N = transitions, O = observation size,
A = action size, F = reward-feature size, Z = task size.
"""

from __future__ import annotations

import attrs
import torch


@attrs.frozen
class TrajectoryBatch:
    """B trajectories collected in lockstep, padded to the longest length T.

    Attributes:
        obs: [B, T + 1, O] observations; ``obs[:, t]`` is seen before step t, ``obs[:, T]`` after the last.
        actions: [B, T, A] actions taken.
        features: [B, T, F] reward features recorded by the physics at each step.
        rewards: [B, T] rewards under ``tasks`` (zero past each trajectory's length).
        tasks: [B, Z] the task each trajectory was collected under.
        lengths: [B] int64 number of valid steps of each trajectory (1..T).
        terminated: [B] bool, True where the last valid step reached a true terminal state
            (no bootstrap); False where the trajectory was cut by the time limit.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    features: torch.Tensor
    rewards: torch.Tensor
    tasks: torch.Tensor
    lengths: torch.Tensor
    terminated: torch.Tensor

    @property
    def num(self) -> int:
        """B, the number of trajectories."""
        return self.actions.shape[0]

    @property
    def horizon(self) -> int:
        """T, the padded length."""
        return self.actions.shape[1]

    @property
    def mask(self) -> torch.Tensor:
        """[B, T] bool, True on valid steps."""
        steps = torch.arange(self.horizon, device=self.lengths.device)
        return steps[None, :] < self.lengths[:, None]

    def rows(self, index: torch.Tensor) -> TrajectoryBatch:
        """The trajectories ``index`` selects (a [B] bool mask or integer indices)."""
        return attrs.evolve(self, **{f.name: getattr(self, f.name)[index] for f in attrs.fields(type(self))})

    def to(self, device: torch.device | str) -> TrajectoryBatch:
        """The same batch with every tensor on ``device``."""
        return attrs.evolve(self, **{f.name: getattr(self, f.name).to(device) for f in attrs.fields(type(self))})


@attrs.frozen
class TransitionBatch:
    """N single-step transitions, as sampled from a buffer for one gradient update.

    Attributes:
        obs: [N, O] observation before the step.
        actions: [N, A] action taken.
        next_obs: [N, O] observation after the step.
        features: [N, F] reward features of the step (lets sample-time relabelers recompute rewards).
        tasks: [N, Z] the task the transition is scored under.
        rewards: [N] reward under ``tasks``.
        terminated: [N] float, 1.0 where the step reached a true terminal state (no bootstrap).
        truncated: [N] float, 1.0 where the step was the last before the time limit (bootstrap still applies).
    """

    obs: torch.Tensor
    actions: torch.Tensor
    next_obs: torch.Tensor
    features: torch.Tensor
    tasks: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor

    @property
    def num(self) -> int:
        """N, the number of transitions."""
        return self.actions.shape[0]


def concat_trajectories(batches: list[TrajectoryBatch]) -> TrajectoryBatch:
    """All trajectories of ``batches`` in one batch, the shorter ones padded with zeros to the longest T."""
    if len(batches) == 1:
        return batches[0]
    T = max(b.horizon for b in batches)

    def padded(x: torch.Tensor, length: int) -> torch.Tensor:  # [B, t, ...] -> [B, length, ...]
        return torch.nn.functional.pad(x, (0, 0) * (x.dim() - 2) + (0, length - x.shape[1]))

    return TrajectoryBatch(
        obs=torch.cat([padded(b.obs, T + 1) for b in batches]),
        actions=torch.cat([padded(b.actions, T) for b in batches]),
        features=torch.cat([padded(b.features, T) for b in batches]),
        rewards=torch.cat([padded(b.rewards, T) for b in batches]),
        tasks=torch.cat([b.tasks for b in batches]),
        lengths=torch.cat([b.lengths for b in batches]),
        terminated=torch.cat([b.terminated for b in batches]),
    )


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """Discounted return sum_t gamma^t r_t over each trajectory's valid steps, no bootstrap.

    Args:
        rewards: [..., T] rewards.
        mask: [B, T] or broadcastable to ``rewards``; invalid steps contribute nothing.
        gamma: discount.
    Returns:
        [...] returns.
    """
    T = rewards.shape[-1]
    powers = gamma ** torch.arange(T, dtype=rewards.dtype, device=rewards.device)
    return (rewards * mask.to(rewards.dtype) * powers).sum(-1)
