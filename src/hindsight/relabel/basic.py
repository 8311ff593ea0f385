"""The baseline relabelers and the two bases: trajectory-time and sample-time relabeling."""

from __future__ import annotations

import time
from typing import Any

import torch

from hindsight import specs
from hindsight.batches import TrajectoryBatch, TransitionBatch
from hindsight.protocols import RelabelContext, Sizes
from hindsight.specs import Params


def _sync(device: torch.device) -> None:
    """Wait for queued kernels so wall-clock timings are honest on accelerators."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Diagnostics:
    """Time spent relabeling plus running means of named figures, kept on the device until read."""

    def __init__(self) -> None:
        self._seconds = 0.0
        self._calls = 0
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def record(self, name: str, value: torch.Tensor) -> None:
        """Add a scalar tensor to the mean reported as ``relabel/<name>`` (no host synchronisation)."""
        value = value.detach().float()
        self._sums[name] = self._sums[name] + value if name in self._sums else value
        self._counts[name] = self._counts.get(name, 0) + 1

    def diagnostics(self) -> dict[str, float]:
        """Seconds spent relabeling, calls, and each recorded mean since the last call; then reset."""
        out = {"relabel/seconds": self._seconds, "relabel/calls": float(self._calls)}
        out.update({f"relabel/{k}": (v / self._counts[k]).item() for k, v in self._sums.items()})
        self._seconds, self._calls, self._sums, self._counts = 0.0, 0, {}, {}
        return out

    def state_dict(self) -> dict[str, Any]:
        """The figures gathered so far this epoch, so a run resumed mid-epoch reports the same means."""
        return {
            "diagnostics": {
                "seconds": self._seconds,
                "calls": self._calls,
                "sums": {k: v.clone() for k, v in self._sums.items()},
                "counts": dict(self._counts),
            }
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        d = state["diagnostics"]
        self._seconds, self._calls = d["seconds"], d["calls"]
        self._sums, self._counts = dict(d["sums"]), dict(d["counts"])


class TrajectoryRelabeler(_Diagnostics):
    """Base of trajectory-time relabelers: times each call, leaves sampled minibatches alone."""

    class Params(Params):
        pass

    def __init__(self, params: specs.Params | None = None, sizes: Sizes | None = None):
        super().__init__()
        self.params = params if params is not None else self.Params()
        self.sizes = sizes

    def relabel(self, batch: TrajectoryBatch, ctx: RelabelContext) -> torch.Tensor:
        """Tasks [B, m, Z] for the B trajectories, on the device of ``ctx.generator``; times ``choose``."""
        device = ctx.generator.device
        start = time.perf_counter()
        tasks = self.choose(batch.to(device), ctx)
        _sync(device)
        self._seconds += time.perf_counter() - start
        self._calls += 1
        return tasks

    def choose(self, batch: TrajectoryBatch, ctx: RelabelContext) -> torch.Tensor:
        """Subclasses: the relabeled tasks [B, m, Z] (``batch`` is already on the relabeling device)."""
        raise NotImplementedError

    def relabel_batch(self, batch: TransitionBatch, ctx: RelabelContext) -> TransitionBatch:
        """Unchanged: relabeling happened when the trajectories were stored."""
        return batch


class SampleTimeRelabeler(_Diagnostics):
    """Base of sample-time relabelers: trajectories are stored under their original task only and each
    sampled minibatch is rewritten by ``rewrite`` (timed)."""

    class Params(Params):
        pass

    def __init__(self, params: specs.Params | None = None, sizes: Sizes | None = None):
        super().__init__()
        self.params = params if params is not None else self.Params()
        self.sizes = sizes

    def relabel(self, batch: TrajectoryBatch, ctx: RelabelContext) -> torch.Tensor:
        """No extra copies: [B, 0, Z]."""
        return batch.tasks.new_zeros(batch.num, 0, batch.tasks.shape[-1]).to(ctx.generator.device)

    def relabel_batch(self, batch: TransitionBatch, ctx: RelabelContext) -> TransitionBatch:
        """The minibatch with some tasks replaced and their rewards recomputed; times ``rewrite``
        (on CUDA without synchronising, so the time counts kernel launches, not their completion)."""
        start = time.perf_counter()
        out = self.rewrite(batch, ctx)
        self._seconds += time.perf_counter() - start
        self._calls += 1
        return out

    def rewrite(self, batch: TransitionBatch, ctx: RelabelContext) -> TransitionBatch:
        """Subclasses: the rewritten minibatch."""
        raise NotImplementedError


def transition_rewards(
    ctx: RelabelContext, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor
) -> torch.Tensor:
    """Rewards [N, K] of N transitions (features [N, F], actions [N, A]) under each of their K tasks
    [N, K, Z]: one reward-family call."""
    return ctx.reward.reward(features[:, None], actions[:, None], tasks)[..., 0]


class NoRelabeling(TrajectoryRelabeler):
    """Store each trajectory under its original task only."""

    def choose(self, batch: TrajectoryBatch, ctx: RelabelContext) -> torch.Tensor:
        return batch.tasks.new_zeros(batch.num, 0, batch.tasks.shape[-1])
