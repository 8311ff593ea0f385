"""HIPI-RL (Eysenbach et al. 2020): soft relabeling of each sampled minibatch by approximate inverse RL.

For a minibatch of N transitions and C candidate tasks z_j taken from the minibatch's own tasks (all N
by default), logits[i, j] = r(s_i, a_i | z_j) - log pi(a_i | s_i, z_j) + gamma (1 - done_i) Q(s'_i, a'_ij, z_j)
with a'_ij ~ pi(. | s'_i, z_j). Each task's column is normalised over the batch by its log partition
function (a logsumexp over i); each row then draws its task from the categorical over j. With
probability ``keep_original_prob`` a row keeps its own task, otherwise it takes that draw. The cost is
N x C policy and critic evaluations per minibatch.

The official HIPI code (google-research/hipi, relabelling_replay_buffer.py) names this mixing
probability ``relabel_prob``, but for 0 < p < 1 its mask keeps the ORIGINAL task with probability p
(at p = 0 it keeps every original, at p = 1 none); ``keep_original_prob`` says which way it goes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import torch
from pydantic import Field

from hindsight.batches import TransitionBatch
from hindsight.protocols import RelabelContext
from hindsight.relabel.basic import SampleTimeRelabeler, transition_rewards

if TYPE_CHECKING:
    from hindsight.specs import ResolvedSpec

# multiply-adds of a gradient step's pair evaluations above which exact HIPI warns on CPU: the paper's
# settings (256 x 256 pairs, 300-unit layers: ~3.5e10) made an epoch take about 25 minutes on a 2-core Xeon
SLOW_PAIR_MACS = 1e9


def hipi_logits(
    batch: TransitionBatch, candidates: torch.Tensor, ctx: RelabelContext
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised logits [N, C] (row i: transition, column j: candidate z_j of [C, Z]) and rewards [N, C]."""
    N, C = batch.num, candidates.shape[0]
    tasks = candidates[None].expand(N, C, -1)  # [i, j, Z]
    rewards = transition_rewards(ctx, batch.features, batch.actions, tasks)  # [N, C]
    flat_tasks = tasks.reshape(N * C, -1)

    def pairs(x: torch.Tensor) -> torch.Tensor:  # [N, D] -> [N * C, D], row i repeated for every j
        return x[:, None].expand(N, C, x.shape[-1]).reshape(N * C, -1)

    agent = ctx.agent
    log_pi = agent.log_prob(pairs(batch.obs), pairs(batch.actions), flat_tasks, member=ctx.member).view(N, C)
    next_obs = pairs(batch.next_obs)
    next_actions = agent.act(next_obs, flat_tasks, deterministic=False, generator=ctx.generator, member=ctx.member)
    next_q = agent.q(next_obs, next_actions, flat_tasks, member=ctx.member).view(N, C)
    logits = rewards - log_pi + agent.gamma * (1.0 - batch.terminated)[:, None] * next_q
    return logits, rewards


class HIPI(SampleTimeRelabeler):
    """Sample-time soft relabeling with the minibatch's own tasks as candidates."""

    class Params(SampleTimeRelabeler.Params):
        keep_original_prob: float = Field(
            default=0.5,
            ge=0,
            le=1,
            description="chance a row keeps its own task instead of taking its drawn "
            "one (the official HIPI code's relabel_prob for 0 < p < 1)",
        )
        candidates: int | None = Field(
            default=None,
            ge=1,
            description="C: the minibatch's tasks used as candidates, drawn at random "
            "without replacement (default: all of them)",
        )

    params: HIPI.Params

    @classmethod
    def cost_notice(cls, spec: ResolvedSpec) -> str | None:
        """A warning for exact HIPI (every minibatch task a candidate) when its N x N pairs of policy and
        critic evaluations are slow on the CPU, naming the candidate cap."""
        params, agent = spec.params["relabeler"], spec.params["agent"]
        hidden, n = getattr(agent, "hidden", None), getattr(agent, "batch_size", None)
        if getattr(params, "candidates", 0) is not None or spec.run.runtime.device != "cpu" or not hidden or not n:
            return None
        macs = n * n * 3 * sum(a * b for a, b in zip(hidden, hidden[1:], strict=False))  # policy and twin critics
        if macs < SLOW_PAIR_MACS:
            return None
        cap = max(1, n // 8)
        return (
            f"relabeler hipi: exact HIPI scores all {n} x {n} = {n * n:,} transition-task pairs of every minibatch "
            f"(about {macs:.1e} multiply-adds a gradient step), slow on the CPU: an epoch at the paper's settings "
            f"takes about 25 minutes; --set relabeler.candidates={cap} caps the candidates at {cap} ({n // cap}x fewer)"
        )

    def rewrite(self, batch: TransitionBatch, ctx: RelabelContext) -> TransitionBatch:
        N, device, gen = batch.num, batch.tasks.device, ctx.generator
        own = torch.arange(N, device=device)
        if self.params.candidates is None or self.params.candidates >= N:
            picked = own
        else:
            picked = torch.randperm(N, generator=gen, device=gen.device)[: self.params.candidates].to(device)
        logits, rewards = hipi_logits(batch, batch.tasks[picked], ctx)  # [N, C]
        log_q = (logits - logits.logsumexp(0, keepdim=True)).log_softmax(1)  # relabel distribution per row
        drawn = torch.multinomial(log_q.exp(), 1, generator=gen).to(device)[:, 0]  # [N] candidate column
        take = torch.rand(N, generator=gen, device=gen.device).to(device) < 1 - self.params.keep_original_prob
        self.record("hipi_entropy", -(log_q.exp() * log_q).sum(1).mean())
        self.record("original_won", (~take | (picked[drawn] == own)).float().mean())
        return attrs.evolve(
            batch,
            tasks=torch.where(take[:, None], batch.tasks[picked[drawn]], batch.tasks),
            rewards=torch.where(take, rewards[own, drawn], batch.rewards),
        )
