"""Evaluation: the deterministic policy on the family's eval tasks (or fresh draws), undiscounted return."""

from __future__ import annotations

import torch

from hindsight.protocols import Agent, TaskDistribution
from hindsight.train.collector import Collector


class Evaluator:
    """Scores the deterministic policy tanh(mu(s, z)) over one episode per evaluation task.

    Args:
        collector: one environment per evaluation episode.
        tasks: the family's task distribution.
        generator: draws fresh evaluation tasks when the family ships no fixed set.
    """

    def __init__(self, collector: Collector, tasks: TaskDistribution, generator: torch.Generator):
        self.collector = collector
        self.tasks = tasks
        self.generator = generator
        self.fixed = tasks.eval_tasks()

    def evaluation_tasks(self) -> torch.Tensor:
        """[E, Z]: the fixed set, or E fresh draws."""
        if self.fixed is not None:
            return self.fixed
        return self.tasks.sample(len(self.collector.envs), self.generator)

    def evaluate(self, agent: Agent, member: int = 0) -> dict[str, float]:
        """Mean and std of the undiscounted return of agent member ``member``, each episode scored under
        its own task."""
        batch = self.collector.collect(
            lambda obs, z: agent.act(obs, z, deterministic=True, member=member), self.evaluation_tasks()
        )
        returns = (batch.rewards * batch.mask).sum(-1)
        return {
            "eval/return_mean": returns.mean().item(),
            "eval/return_std": returns.std(unbiased=False).item(),
            "eval/length_mean": batch.lengths.float().mean().item(),
        }
