"""Advantage relabeling: keep the candidates with the highest R(tau | v) - V(s0, v)."""

from __future__ import annotations

import torch

from hindsight.batches import TrajectoryBatch
from hindsight.protocols import RelabelContext
from hindsight.relabel.candidates import advantages
from hindsight.relabel.reward import RewardRelabeling


class AdvantageRelabeling(RewardRelabeling):
    """Keep the m of K candidates with the highest R(tau | v) - V(s0, v); V from the agent's critics."""

    def scores(
        self, batch: TrajectoryBatch, candidates: torch.Tensor, returns: torch.Tensor, ctx: RelabelContext
    ) -> torch.Tensor:
        return advantages(batch, candidates, returns, ctx)
