"""Approximate inverse reinforcement relabeling (AIR).

A cache holds the N most recent trajectories (the current batch included). For each candidate task v
every cached trajectory is scored by R(. | v); a new trajectory is placed by its percentile among them,
and it keeps the m candidates where that percentile is highest, ties broken by the advantage
R(tau | v) - V(s0, v).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field

from hindsight.batches import TrajectoryBatch
from hindsight.protocols import RelabelContext, Sizes
from hindsight.relabel.candidates import CandidateRelabeler, advantages, batch_percentiles, returns_under


def _pad_time(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Zero-pad [n, T, D] along T to ``steps``."""
    return F.pad(x, (0, 0, 0, steps - x.shape[1]))


class AIR(CandidateRelabeler):
    """Keep the m of K candidates where the trajectory ranks highest among the N cached ones."""

    class Params(CandidateRelabeler.Params):
        cache: int = Field(default=500, ge=1, description="N: most recent trajectories ranked against")

    params: AIR.Params

    def __init__(self, params: AIR.Params | None = None, sizes: Sizes | None = None):
        super().__init__(params, sizes)
        self._features: torch.Tensor | None = None  # [n, T, F]
        self._actions: torch.Tensor | None = None  # [n, T, A]
        self._lengths: torch.Tensor | None = None  # [n]

    def __len__(self) -> int:
        """Trajectories in the cache."""
        return 0 if self._lengths is None else self._lengths.shape[0]

    def _insert(self, batch: TrajectoryBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Add the batch to the cache; return the scored set (kept old entries, then the batch):
        features [S, T, F], actions [S, T, A], lengths [S], the cache being its last min(S, N) rows."""
        N, B = self.params.cache, batch.num
        if self._lengths is None:
            features, actions, lengths = batch.features, batch.actions, batch.lengths
        else:
            assert self._features is not None and self._actions is not None  # set together with _lengths
            device = batch.features.device
            old = max(min(len(self), N - B), 0)
            steps = max(self._features.shape[1], batch.horizon)
            features = torch.cat(
                [_pad_time(self._features[len(self) - old :].to(device), steps), _pad_time(batch.features, steps)]
            )
            actions = torch.cat(
                [_pad_time(self._actions[len(self) - old :].to(device), steps), _pad_time(batch.actions, steps)]
            )
            lengths = torch.cat([self._lengths[len(self) - old :].to(device), batch.lengths])
        self._features, self._actions, self._lengths = features[-N:], actions[-N:], lengths[-N:]
        return features, actions, lengths

    def ranked(
        self, batch: TrajectoryBatch, candidates: torch.Tensor, ctx: RelabelContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features, actions, lengths = self._insert(batch)
        mask = torch.arange(features.shape[1], device=lengths.device)[None] < lengths[:, None]
        returns = returns_under(features, actions, mask, candidates, ctx)  # [S, K]
        percentiles = batch_percentiles(returns[-self.params.cache :], returns[-batch.num :])  # [B, K]
        by_advantage = advantages(batch, candidates, returns[-batch.num :], ctx).argsort(
            dim=1, descending=True, stable=True
        )
        by_percentile = percentiles.gather(1, by_advantage).argsort(dim=1, descending=True, stable=True)
        return by_advantage.gather(1, by_percentile), percentiles

    def state_dict(self) -> dict[str, Any]:
        """The diagnostics so far and the cache (tensors only; no cache before the first call)."""
        state = super().state_dict()
        if self._lengths is not None:
            assert self._features is not None and self._actions is not None  # set together with _lengths
            state["cache"] = {
                "features": self._features.clone(),
                "actions": self._actions.clone(),
                "lengths": self._lengths.clone(),
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        cache = state.get("cache")
        self._features, self._actions, self._lengths = (
            (cache["features"], cache["actions"], cache["lengths"]) if cache else (None, None, None)
        )
