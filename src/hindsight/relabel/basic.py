"""The baseline relabelers."""

from __future__ import annotations

import time
from typing import Any

import torch

from hindsight.batches import TrajectoryBatch, TransitionBatch
from hindsight.protocols import RelabelContext
from hindsight.specs import Params


class TrajectoryRelabeler:
    """Base of trajectory-time relabelers: times each call, leaves sampled minibatches alone."""

    class Params(Params):
        pass

    def __init__(self, params: Params | None = None):
        self.params = params if params is not None else self.Params()
        self._seconds = 0.0
        self._calls = 0

    def relabel(self, batch: TrajectoryBatch, ctx: RelabelContext) -> torch.Tensor:
        """Tasks [B, m, Z] for the B trajectories; times ``choose``."""
        start = time.perf_counter()
        tasks = self.choose(batch, ctx)
        self._seconds += time.perf_counter() - start
        self._calls += 1
        return tasks

    def choose(self, batch: TrajectoryBatch, ctx: RelabelContext) -> torch.Tensor:
        """Subclasses: the relabeled tasks [B, m, Z]."""
        raise NotImplementedError

    def relabel_batch(self, batch: TransitionBatch, ctx: RelabelContext) -> TransitionBatch:
        """Unchanged: relabeling happened when the trajectories were stored."""
        return batch

    def diagnostics(self) -> dict[str, float]:
        """Seconds spent relabeling since the last call."""
        out = {"relabel/seconds": self._seconds, "relabel/calls": float(self._calls)}
        self._seconds, self._calls = 0.0, 0
        return out

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class NoRelabeling(TrajectoryRelabeler):
    """Store each trajectory under its original task only."""

    def choose(self, batch: TrajectoryBatch, ctx: RelabelContext) -> torch.Tensor:
        return batch.tasks.new_zeros(batch.num, 0, batch.tasks.shape[-1])
