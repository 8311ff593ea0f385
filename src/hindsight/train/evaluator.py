"""Evaluation: the deterministic policy on the family's eval tasks (or fresh draws), undiscounted return;
for reward families with objectives, each objective's return and the front over weight vectors."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hindsight.batches import TrajectoryBatch
from hindsight.fronts import front_metrics, spread_weights
from hindsight.protocols import Agent, Objectives, RewardFamily, TaskDistribution
from hindsight.seeding import derive_seed, make_generator
from hindsight.train.collector import Collector

if TYPE_CHECKING:
    import dm_env

    from hindsight.build import Problem

FRONT_ENVS = 16  # environments a front's episodes run in, in rounds
FRONT_SEED = 0  # the front's tasks and physics noise: the same for every run of a family, whatever its seed


def objective_returns(objectives: Objectives, batch: TrajectoryBatch) -> torch.Tensor:
    """[B, J] undiscounted return of each objective in each of the batch's episodes."""
    values = objectives.objectives(batch.features, batch.actions, batch.tasks)  # [B, T, J]
    return (values * batch.mask[..., None].to(values.dtype)).sum(1)


class Evaluator:
    """Scores the deterministic policy tanh(mu(s, z)) over one episode per evaluation task.

    Args:
        collector: one environment per evaluation episode.
        tasks: the family's task distribution.
        generator: draws fresh evaluation tasks when the family ships no fixed set.
        front: also scores the front of a reward family with objectives (``front_evaluator``).
    """

    def __init__(
        self,
        collector: Collector,
        tasks: TaskDistribution,
        generator: torch.Generator,
        front: FrontEvaluator | None = None,
    ):
        self.collector = collector
        self.tasks = tasks
        self.generator = generator
        self.fixed = tasks.eval_tasks()
        self.front = front

    def evaluation_tasks(self) -> torch.Tensor:
        """[E, Z]: the fixed set, or E fresh draws."""
        if self.fixed is not None:
            return self.fixed
        return self.tasks.sample(len(self.collector.envs), self.generator)

    def evaluate(self, agent: Agent, member: int = 0) -> dict[str, Any]:
        """Mean and std of the undiscounted return of agent member ``member``, each episode scored under
        its own task; with objectives, each one's mean return (``eval/objective/<name>``) and the front's
        metrics (``eval/mo/...``)."""
        batch = self.collector.collect(
            lambda obs, z: agent.act(obs, z, deterministic=True, member=member), self.evaluation_tasks()
        )
        returns = (batch.rewards * batch.mask).sum(-1)
        metrics: dict[str, Any] = {
            "eval/return_mean": returns.mean().item(),
            "eval/return_std": returns.std(unbiased=False).item(),
            "eval/length_mean": batch.lengths.float().mean().item(),
        }
        reward = self.collector.reward
        if isinstance(reward, Objectives):
            means = objective_returns(reward, batch).mean(0).tolist()
            metrics.update({f"eval/objective/{n}": v for n, v in zip(reward.objective_names, means, strict=True)})
        if self.front is not None:
            metrics.update(self.front.evaluate(agent, member))
        return metrics


class FrontEvaluator:
    """Scores the deterministic policy on a fixed set of tasks: W weight vectors spread over the
    objectives' weights (``spread_weights``), each under the same S draws of the rest of the task. Each
    episode's physics noise is reseeded alike at every evaluation, so the front moves only with the policy.

    Args:
        envs: the environments the W x S episodes run in, in rounds (their own: evaluation draws from no
            stream that training uses).
        horizon: T.
        reward: the reward family, with the ``Objectives`` capability.
        tasks: [W, S, Z] the front's tasks.
        seeds: W x S physics-noise seeds, one per episode.
    """

    def __init__(
        self, envs: list[dm_env.Environment], horizon: int, reward: RewardFamily, tasks: torch.Tensor, seeds: list[int]
    ):
        if not isinstance(reward, Objectives):
            raise TypeError(f"{type(reward).__name__} declares no objectives")
        self.envs, self.horizon, self.reward, self.objectives = envs, horizon, reward, reward
        self.tasks, self.seeds = tasks, seeds
        self.weights = reward.weights(tasks[:, 0])  # [W, J] as the tasks encode them
        self.reference = horizon * np.asarray(reward.reference_point, dtype=np.float64)

    def evaluate(self, agent: Agent, member: int = 0) -> dict[str, Any]:
        """The front's metrics (``fronts.front_metrics``) for agent member ``member``."""
        W, S, Z = self.tasks.shape
        flat = self.tasks.reshape(W * S, Z)
        collected: list[tuple[torch.Tensor, torch.Tensor]] = []  # (returns [k], objective returns [k, J])
        for start in range(0, W * S, len(self.envs)):
            chunk = flat[start : start + len(self.envs)]
            envs = self.envs[: chunk.shape[0]]
            for env, seed in zip(envs, self.seeds[start : start + chunk.shape[0]], strict=True):
                env.task.random.seed(seed)
            batch = Collector(envs, self.horizon, self.reward).collect(
                lambda obs, z: agent.act(obs, z, deterministic=True, member=member), chunk
            )
            collected.append(((batch.rewards * batch.mask).sum(-1), objective_returns(self.objectives, batch)))
        returns = torch.cat([r for r, _ in collected])
        points = torch.cat([o for _, o in collected]).view(W, S, -1).mean(1)  # [W, J]
        return front_metrics(
            self.weights.double().numpy(),
            points.double().numpy(),
            self.reference,
            returns.double().numpy(),
            self.objectives.objective_names,
        )


def front_evaluator(
    problem: Problem, seed: int, make_envs: Callable[[Problem, int, str, int], list[dm_env.Environment]]
) -> FrontEvaluator | None:
    """The front evaluator of a run of ``seed`` (None when the reward family declares no objectives): its
    weight vectors, its task draws and physics seeds (from ``FRONT_SEED``: every run of the family is
    scored on the same episodes' tasks and noise, so fronts compare across seeds and methods), and its
    environments from ``make_envs(problem, seed, stream, count)``."""
    reward = problem.reward
    if not isinstance(reward, Objectives):
        return None
    W, S = reward.front_weights, reward.front_situations
    weights = torch.from_numpy(spread_weights(W, len(reward.objective_names))).float()  # [W, J]
    rest = problem.tasks.sample(S, make_generator(FRONT_SEED, "eval/front"))  # [S, Z]
    tasks = reward.with_weights(rest.repeat(W, 1), weights.repeat_interleave(S, 0)).view(W, S, -1)
    seeds = [derive_seed(FRONT_SEED, "env/front", "episode", k) % 2**32 for k in range(W * S)]
    envs = make_envs(problem, seed, "env/front", min(W * S, FRONT_ENVS))
    return FrontEvaluator(envs, problem.sizes.horizon, reward, tasks, seeds)
