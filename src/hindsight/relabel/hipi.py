"""HIPI-RL (Eysenbach et al. 2020): soft relabeling of each sampled minibatch by approximate inverse RL.

For a minibatch of N transitions whose N tasks are the candidates,
logits[i, j] = r(s_i, a_i | z_j) - log pi(a_i | s_i, z_j) + gamma (1 - done_i) Q(s'_i, a'_ij, z_j)
with a'_ij ~ pi(. | s'_i, z_j). Each task's column is normalised over the batch by its log partition
function (a logsumexp over i); each row then draws its task from the categorical over j. With
probability ``relabel_prob`` a row takes that draw, otherwise it keeps its own task.
"""

from __future__ import annotations

import attrs
import torch
from pydantic import Field

from hindsight.batches import TransitionBatch
from hindsight.protocols import RelabelContext
from hindsight.relabel.basic import SampleTimeRelabeler, transition_rewards


def hipi_logits(batch: TransitionBatch, ctx: RelabelContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised logits [N, N] (row i: transition, column j: task z_j) and the rewards [N, N]."""
    N = batch.num
    tasks = batch.tasks[None].expand(N, N, -1)                                     # [i, j, Z]
    rewards = transition_rewards(ctx, batch.features, batch.actions, tasks)        # [N, N]
    flat_tasks = tasks.reshape(N * N, -1)

    def pairs(x: torch.Tensor) -> torch.Tensor:  # [N, D] -> [N * N, D], row i repeated for every j
        return x[:, None].expand(N, N, x.shape[-1]).reshape(N * N, -1)

    agent = ctx.agent
    log_pi = agent.log_prob(pairs(batch.obs), pairs(batch.actions), flat_tasks).view(N, N)
    next_obs = pairs(batch.next_obs)
    next_actions = agent.act(next_obs, flat_tasks, deterministic=False, generator=ctx.generator)
    next_q = agent.q(next_obs, next_actions, flat_tasks).view(N, N)
    logits = rewards - log_pi + agent.gamma * (1.0 - batch.terminated)[:, None] * next_q
    return logits, rewards


class HIPI(SampleTimeRelabeler):
    """Sample-time soft relabeling with the minibatch's own tasks as candidates."""

    class Params(SampleTimeRelabeler.Params):
        relabel_prob: float = Field(default=0.5, ge=0, le=1,
                                    description="chance a row takes its drawn task instead of keeping its own")

    def rewrite(self, batch: TransitionBatch, ctx: RelabelContext) -> TransitionBatch:
        N, device = batch.num, batch.tasks.device
        logits, rewards = hipi_logits(batch, ctx)
        normalised = logits - logits.logsumexp(0, keepdim=True)                     # per task over the batch
        log_q = normalised.log_softmax(1)                                          # relabel distribution per row
        drawn = torch.multinomial(log_q.exp(), 1, generator=ctx.generator).to(device)[:, 0]   # [N]
        take = torch.rand(N, generator=ctx.generator, device=ctx.generator.device).to(device) < self.params.relabel_prob
        own = torch.arange(N, device=device)
        chosen = torch.where(take, drawn, own)
        self.record("hipi_entropy", -(log_q.exp() * log_q).sum(1).mean())
        self.record("original_won", (chosen == own).float().mean())
        return attrs.evolve(batch, tasks=batch.tasks[chosen], rewards=rewards[own, chosen])
