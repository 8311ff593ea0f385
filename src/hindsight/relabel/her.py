"""Hindsight experience replay, future strategy, at trajectory level.

Each of the m copies keeps z but replaces its goal part by the goal reached at a step drawn uniformly
from the trajectory's valid steps. The buffer stores whole trajectories under one task, so unlike
per-transition HER the copy also holds the steps after that goal was reached (their rewards are
recomputed for the new goal like every other step). Needs a task distribution with a goal part
(``GoalTasks``).
"""

from __future__ import annotations

from typing import cast

import torch
from pydantic import Field

from hindsight import specs
from hindsight.batches import TrajectoryBatch
from hindsight.protocols import GoalTasks, RelabelContext
from hindsight.relabel.basic import TrajectoryRelabeler


class HER(TrajectoryRelabeler):
    """Replace only the goal part of z with a goal reached later in the same trajectory."""

    class Params(specs.Params):
        keep: int = Field(default=1, ge=1, description="m: relabeled copies stored per trajectory")

    params: HER.Params

    requires = {"tasks": GoalTasks}  # the goal slice of z and how features reach it

    def choose(self, batch: TrajectoryBatch, ctx: RelabelContext) -> torch.Tensor:
        goal_part = cast(GoalTasks, ctx.tasks).goal_part()  # ``requires`` makes the spec check it
        B, m = batch.num, self.params.keep
        draws = torch.rand(B, m, generator=ctx.generator, device=ctx.generator.device).to(batch.features.device)
        steps = (draws * batch.lengths[:, None]).long().clamp(max=batch.horizon - 1)  # [B, m]
        reached = batch.features.gather(1, steps[..., None].expand(B, m, batch.features.shape[-1]))  # [B, m, F]
        tasks = batch.tasks[:, None].repeat(1, m, 1)  # [B, m, Z]
        tasks[..., goal_part.task_slice] = goal_part.from_features(reached).to(tasks)
        return tasks
