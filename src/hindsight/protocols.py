"""The five protocols every component implements (see DESIGN.md).

Shapes: B batch, K candidate tasks per item, T time steps, N transitions, O observation size,
A action size, F reward-feature size, Z task size, m relabeled tasks kept per trajectory.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import attrs
import torch

from hindsight.batches import TrajectoryBatch, TransitionBatch


@attrs.frozen
class GoalPart:
    """Which slice of a task vector is a goal, for HER.

    Attributes:
        task_slice: the goal's positions within z, e.g. ``slice(2, 4)``.
        from_features: maps reward features [..., F] to the goal reached there [..., len(slice)],
            expressed exactly as the task encodes it.
    """

    task_slice: slice
    from_features: Any


@runtime_checkable
class TaskDistribution(Protocol):
    """The distribution T over task vectors z of one family."""

    task_dim: int

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draw n tasks: [n, Z] float32."""

    def eval_tasks(self) -> torch.Tensor | None:
        """A fixed evaluation set [E, Z], or None to evaluate on fresh draws."""

    def goal_part(self) -> GoalPart | None:
        """The goal slice for HER, or None if the family has no goal."""


@runtime_checkable
class RewardFamily(Protocol):
    """r(features, action | z) for any batch of candidate tasks, in one tensor operation."""

    feature_dim: int
    task_dim: int

    def reward(self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """Rewards of every step under every candidate task.

        Args:
            features: [B, T, F] reward features.
            actions: [B, T, A] actions.
            tasks: [B, K, Z] candidate tasks for each of the B items.
        Returns:
            [B, K, T] rewards.

        A family may also define ``weighted_returns(features [B, T, F], actions [B, T, A], tasks [K, Z],
        weights [B, T]) -> [B, K]``, the sums over t of weights[b, t] * r(step b, t | tasks[k]) (discounted
        returns when the weights are gamma^t on valid steps), computed without the [B, K, T] reward tensor
        (e.g. a reward linear in z). Relabelers that score many trajectories under many candidates use it.
        """


@runtime_checkable
class Agent(Protocol):
    """A task-conditioned policy with value estimates (SAC is the first)."""

    gamma: float

    def act(self, obs: torch.Tensor, tasks: torch.Tensor, deterministic: bool,
            generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions [B, A] in [-1, 1] for observations [B, O] under tasks [B, Z]."""

    def update(self, batch: TransitionBatch) -> dict[str, torch.Tensor]:
        """One gradient step; returns scalar tensors (not synchronised to the host)."""

    def value(self, obs: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """V(s, z) = min(Q1, Q2)(s, tanh(mu(s, z)), z) for obs [B, O] and tasks [B, K, Z]: [B, K]."""

    def q(self, obs: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """min(Q1, Q2) for obs [N, O], actions [N, A], tasks [N, Z]: [N]."""

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """log pi(a | s, z) for obs [N, O], actions [N, A] in (-1, 1), tasks [N, Z]: [N]."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@attrs.define
class RelabelContext:
    """What a relabeler may consult.

    Attributes:
        tasks: the family's task distribution (fresh candidates, goal part).
        reward: the reward family (scores any trajectory under any task).
        agent: the learning agent (value estimates for advantage, AIR and HIPI).
        generator: the relabeler's own random stream.
    """

    tasks: TaskDistribution
    reward: RewardFamily
    agent: Agent
    generator: torch.Generator


@runtime_checkable
class Relabeler(Protocol):
    """Chooses other tasks for collected experience."""

    def relabel(self, batch: TrajectoryBatch, ctx: RelabelContext) -> torch.Tensor:
        """Trajectory-time relabeling: tasks [B, m, Z] to store each trajectory under (m may be 0)."""

    def relabel_batch(self, batch: TransitionBatch, ctx: RelabelContext) -> TransitionBatch:
        """Sample-time relabeling of a minibatch (identity for trajectory-time relabelers)."""

    def diagnostics(self) -> dict[str, float]:
        """Figures gathered since the last call (e.g. relabel time), then reset."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class Buffer(Protocol):
    """Replay storage of transitions, each under one task."""

    def add(self, batch: TrajectoryBatch, tasks: torch.Tensor, rewards: torch.Tensor) -> None:
        """Store every valid step of each trajectory once per task.

        Args:
            batch: the trajectories.
            tasks: [B, K, Z] the tasks to store each trajectory under (its original first).
            rewards: [B, K, T] the rewards under those tasks, from the reward family.
        """

    def sample(self, n: int, generator: torch.Generator) -> TransitionBatch:
        """n transitions drawn uniformly with replacement."""

    def __len__(self) -> int: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
