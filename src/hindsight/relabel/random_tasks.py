"""Relabeling with tasks drawn at random from the task distribution."""

from __future__ import annotations

import attrs
import torch
from pydantic import Field

from hindsight.batches import TrajectoryBatch, TransitionBatch
from hindsight.protocols import RelabelContext
from hindsight.relabel.basic import SampleTimeRelabeler, TrajectoryRelabeler, transition_rewards


class RandomRelabeling(TrajectoryRelabeler):
    """One fresh task z' ~ T per trajectory, stored beside the original (the Intentional-Unintentional agent)."""

    def choose(self, batch: TrajectoryBatch, ctx: RelabelContext) -> torch.Tensor:
        return ctx.tasks.sample(batch.num, ctx.generator).to(batch.tasks)[:, None]


class ContinualRandom(SampleTimeRelabeler):
    """Replace a fixed share of each sampled minibatch's tasks with fresh draws, rewards recomputed."""

    class Params(SampleTimeRelabeler.Params):
        fraction: float = Field(default=0.8, ge=0, le=1, description="share of each minibatch's tasks replaced")

    params: ContinualRandom.Params

    def rewrite(self, batch: TransitionBatch, ctx: RelabelContext) -> TransitionBatch:
        """The minibatch with round(fraction * N) rows, chosen uniformly, under fresh tasks."""
        n = batch.num
        count = round(self.params.fraction * n)
        rows = torch.randperm(n, generator=ctx.generator, device=ctx.generator.device)[:count].to(batch.tasks.device)
        fresh = ctx.tasks.sample(count, ctx.generator).to(batch.tasks)  # [c, Z]
        tasks = batch.tasks.index_copy(0, rows, fresh)
        new_rewards = transition_rewards(ctx, batch.features[rows], batch.actions[rows], fresh[:, None])[:, 0]
        rewards = batch.rewards.index_copy(0, rows, new_rewards)
        return attrs.evolve(batch, tasks=tasks, rewards=rewards)
