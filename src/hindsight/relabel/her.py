"""Hindsight experience replay, future strategy, at trajectory level.

Each of the m copies keeps z but replaces its goal part by the goal reached at a step drawn uniformly
from the trajectory's valid steps. The buffer stores whole trajectories under one task, so unlike
per-transition HER the copy also holds the steps after that goal was reached (their rewards are
recomputed for the new goal like every other step). Needs a family whose task distribution declares a
goal part.
"""

from __future__ import annotations

import torch
from pydantic import Field

from hindsight.batches import TrajectoryBatch
from hindsight.protocols import RelabelContext
from hindsight.relabel.basic import TrajectoryRelabeler
from hindsight.specs import Params


class HER(TrajectoryRelabeler):
    """Replace only the goal part of z with a goal reached later in the same trajectory."""

    class Params(Params):
        keep: int = Field(default=1, ge=1, description="m: relabeled copies stored per trajectory")

    @classmethod
    def check_spec(cls, spec) -> str | None:
        """An error message when the spec's env family declares no goal part, else None."""
        family = spec.component("env")(spec.params["env"])
        goal_part = getattr(family.task_distribution, "goal_part", None)
        if goal_part is None or goal_part() is None:
            return (f"relabeler.kind: {spec.run.relabeler.kind!r} (HER) replaces the goal part of z, but env "
                    f"{spec.run.env.kind!r} declares no goal part; choose another relabeler or env")
        return None

    def choose(self, batch: TrajectoryBatch, ctx: RelabelContext) -> torch.Tensor:
        goal_part = ctx.tasks.goal_part()
        B, m = batch.num, self.params.keep
        draws = torch.rand(B, m, generator=ctx.generator, device=ctx.generator.device).to(batch.features.device)
        steps = (draws * batch.lengths[:, None]).long().clamp(max=batch.horizon - 1)    # [B, m]
        reached = batch.features.gather(1, steps[..., None].expand(B, m, batch.features.shape[-1]))  # [B, m, F]
        tasks = batch.tasks[:, None].repeat(1, m, 1)                                     # [B, m, Z]
        tasks[..., goal_part.task_slice] = goal_part.from_features(reached).to(tasks)
        return tasks
