"""A preallocated tensor ring buffer of transitions, each stored under one task."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from hindsight import specs
from hindsight.batches import TrajectoryBatch, TransitionBatch
from hindsight.protocols import Sizes

_FIELDS = ("obs", "actions", "next_obs", "features", "tasks", "rewards", "terminated", "truncated")


class ReplayBuffer:
    """FIFO replay of transitions; terminations and time-limit truncations are kept apart."""

    class Params(specs.Params):
        capacity: int = Field(default=1_000_000, ge=1)

    def __init__(self, params: ReplayBuffer.Params, sizes: Sizes, device: str | torch.device = "cpu"):
        C = params.capacity
        self.capacity = C
        self.device = torch.device(device)
        widths = self._widths(sizes)
        # one row [W] per transition, every field a column slice: sampling is a single gather
        self._columns: dict[str, slice | int] = {}
        start = 0
        for name in _FIELDS:
            width = widths.get(name)
            self._columns[name] = start if width is None else slice(start, start + width)
            start += 1 if width is None else width
        self._rows = torch.zeros(C, start, device=self.device)  # [C, W]
        self._storage = self._fields(self._rows)  # per-field views [C, width] or [C]
        self._next = 0  # write position
        self._size = 0

    @staticmethod
    def _widths(sizes: Sizes) -> dict[str, int]:
        """The width of each field stored as several columns; the others are one column each."""
        return {
            "obs": sizes.obs_dim,
            "actions": sizes.action_dim,
            "next_obs": sizes.obs_dim,
            "features": sizes.feature_dim,
            "tasks": sizes.task_dim,
        }

    @classmethod
    def memory_bytes(cls, spec: specs.ResolvedSpec, sizes: Sizes) -> int:
        """The float32 rows [C, W] of every member's buffer (``MemoryEstimate``)."""
        widths, params = cls._widths(sizes), spec.params["buffer"]
        assert isinstance(params, ReplayBuffer.Params)
        width = sum(widths.get(name, 1) for name in _FIELDS)
        return 4 * len(spec.run.member_seeds) * params.capacity * width

    def __len__(self) -> int:
        return self._size

    def _fields(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of rows [n, W] as the named fields: [n, width] or [n]."""
        return {name: rows[:, column] for name, column in self._columns.items()}

    @property
    def nbytes(self) -> int:
        """Bytes of storage when full."""
        return sum(t.numel() * t.element_size() for t in self._storage.values())

    def add(self, batch: TrajectoryBatch, tasks: torch.Tensor, rewards: torch.Tensor) -> None:
        """Store every valid step of each trajectory under each task.

        Args:
            batch: B trajectories padded to T steps.
            tasks: [B, K, Z] tasks per trajectory (the original first).
            rewards: [B, K, T] rewards under those tasks.
        """
        batch = batch.to(self.device)
        B, K, _ = tasks.shape
        T = batch.horizon
        mask = batch.mask  # [B, T]
        last = torch.arange(T, device=self.device)[None] == (batch.lengths[:, None] - 1)
        terminated = (last & batch.terminated[:, None]).float()
        truncated = (last & ~batch.terminated[:, None]).float()

        def per_task(x: torch.Tensor) -> torch.Tensor:  # [B, T, ...] -> [K * n, ...]
            return x[mask].repeat(K, *([1] * (x.dim() - 2)))

        rows = {
            "obs": per_task(batch.obs[:, :-1]),
            "actions": per_task(batch.actions),
            "next_obs": per_task(batch.obs[:, 1:]),
            "features": per_task(batch.features),
            "terminated": per_task(terminated),
            "truncated": per_task(truncated),
            "tasks": tasks.to(self.device)
            .transpose(0, 1)[:, :, None]
            .expand(K, B, T, -1)[:, mask]
            .reshape(-1, tasks.shape[-1]),
            "rewards": rewards.to(self.device).transpose(0, 1)[:, mask].reshape(-1),
        }
        n = rows["obs"].shape[0]
        if n > self.capacity:  # only the newest rows survive
            rows = {k: v[-self.capacity :] for k, v in rows.items()}
            n = self.capacity
        index = (self._next + torch.arange(n, device=self.device)) % self.capacity
        self._rows[index] = torch.cat([rows[name].reshape(n, -1).to(self._rows.dtype) for name in _FIELDS], 1)
        self._next = (self._next + n) % self.capacity
        self._size = min(self._size + n, self.capacity)

    def sample(self, n: int, generator: torch.Generator) -> TransitionBatch:
        """n transitions drawn uniformly with replacement."""
        if self._size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        index = torch.randint(0, self._size, (n,), generator=generator, device=generator.device).to(self.device)
        return TransitionBatch(**self._fields(self._rows[index]))

    def recent(self, n: int) -> TransitionBatch:
        """The last min(n, len) transitions stored, oldest first."""
        count = min(n, self._size)
        index = (self._next - count + torch.arange(count, device=self.device)) % self.capacity
        return TransitionBatch(**self._fields(self._rows[index]))

    def state_dict(self) -> dict[str, Any]:
        """The stored rows (only the filled part) and the write position."""
        return {
            "storage": {k: v[: self._size].clone() for k, v in self._storage.items()},
            "next": self._next,
            "size": self._size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        size = state["size"]
        for name, values in state["storage"].items():
            self._storage[name][:size] = values.to(self.device)
        self._next, self._size = state["next"], size
