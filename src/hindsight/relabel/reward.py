"""Reward relabeling: keep the candidate tasks under which the trajectory's discounted return is highest."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from hindsight.batches import TrajectoryBatch
from hindsight.protocols import RelabelContext
from hindsight.relabel.candidates import CandidateRelabeler


class RewardRelabeling(CandidateRelabeler):
    """Keep the m of K candidates with the highest R(tau | v)."""

    class Params(CandidateRelabeler.Params):
        store_original: Literal["always", "unless_chosen"] = Field(
            default="always",
            description="always: store each trajectory under its own task too; unless_chosen: "
            "only when it was not among the kept (the paper's reference code for reward and advantage)",
        )

    params: RewardRelabeling.Params

    @property
    def store_original(self) -> Literal["always", "unless_chosen"]:
        """When the trajectory is stored under its own task besides the kept ones (``OriginalStorage``)."""
        return self.params.store_original

    def scores(
        self, batch: TrajectoryBatch, candidates: torch.Tensor, returns: torch.Tensor, ctx: RelabelContext
    ) -> torch.Tensor:
        return returns
