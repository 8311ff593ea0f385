"""Reward relabeling: keep the candidate tasks under which the trajectory's discounted return is highest."""

from __future__ import annotations

import torch

from hindsight.batches import TrajectoryBatch
from hindsight.protocols import RelabelContext
from hindsight.relabel.candidates import CandidateRelabeler


class RewardRelabeling(CandidateRelabeler):
    """Keep the m of K candidates with the highest R(tau | v)."""

    def scores(
        self, batch: TrajectoryBatch, candidates: torch.Tensor, returns: torch.Tensor, ctx: RelabelContext
    ) -> torch.Tensor:
        return returns
