"""Algorithm 1 of the paper: collect, relabel, store under every task, update; evaluate each epoch."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import attrs
import torch

from hindsight.batches import TrajectoryBatch
from hindsight.protocols import Agent, Buffer, RelabelContext, Relabeler, RewardFamily
from hindsight.seeding import derive_seed, make_generator
from hindsight.specs import ResolvedSpec
from hindsight.tasks.base import EnvFamily
from hindsight.train.collector import Collector
from hindsight.train.evaluator import Evaluator


@attrs.define
class Components:
    """Everything a run is made of, built from a resolved spec."""

    family: EnvFamily
    reward: RewardFamily
    relabeler: Relabeler
    agent: Agent
    buffer: Buffer


def build_components(spec: ResolvedSpec) -> Components:
    """Instantiate the registered components the spec names, seeded from its one seed."""
    seed = spec.run.seed
    family = spec.component("env")(spec.params["env"])
    reward = spec.component("reward")(spec.params["reward"])
    relabeler = spec.component("relabeler")(spec.params["relabeler"])
    agent = spec.component("agent")(spec.params["agent"], obs_dim=family.obs_dim, action_dim=family.action_dim,
                                    task_dim=family.task_distribution.task_dim,
                                    generator=make_generator(seed, "agent/init"))
    buffer = spec.component("buffer")(spec.params["buffer"], obs_dim=family.obs_dim, action_dim=family.action_dim,
                                      task_dim=family.task_distribution.task_dim, feature_dim=family.feature_dim,
                                      device=getattr(agent, "device", "cpu"))
    return Components(family, reward, relabeler, agent, buffer)


def make_envs(family: EnvFamily, reward: RewardFamily, seed: int, stream: str, count: int) -> list:
    """``count`` environments, each with its own physics-noise seed derived from the run's seed."""
    return [family.make_env(reward, derive_seed(seed, stream, i) % 2**32) for i in range(count)]


class Trainer:
    """Runs Algorithm 1 for ``spec.train.epochs`` epochs, handing one metrics row per epoch to ``sinks``."""

    def __init__(self, spec: ResolvedSpec, sinks: list | None = None):
        self.spec = spec
        self.sinks = sinks or []
        self.c = build_components(spec)
        train, seed = spec.run.train, spec.run.seed
        device = getattr(self.c.agent, "device", torch.device("cpu"))
        family = self.c.family
        self.collector = Collector(make_envs(family, self.c.reward, seed, "env/train", train.episodes_per_loop),
                                   family.horizon)
        self.evaluator = Evaluator(
            Collector(make_envs(family, self.c.reward, seed, "env/eval", self._eval_episodes()), family.horizon),
            family.task_distribution, make_generator(seed, "eval/tasks"))
        self.gen = {
            "tasks": make_generator(seed, "tasks/train"),
            "warmup": make_generator(seed, "collect/warmup"),
            "policy": make_generator(seed, "collect/policy", device=device),
            "update": make_generator(seed, "agent/update", device=device),
            "buffer": make_generator(seed, "buffer/sample", device=device),
            "relabel": make_generator(seed, "relabel", device=device),
        }
        self.ctx = RelabelContext(tasks=family.task_distribution, reward=self.c.reward, agent=self.c.agent,
                                  generator=self.gen["relabel"])
        self.epoch = 0
        self.env_steps = 0
        self.updates = 0

    def _eval_episodes(self) -> int:
        fixed = self.c.family.task_distribution.eval_tasks()
        return self.spec.run.eval.episodes if fixed is None else fixed.shape[0]

    # ----- one loop of Algorithm 1 -----
    def _random_policy(self, obs: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        return torch.rand(obs.shape[0], self.c.family.action_dim, generator=self.gen["warmup"]) * 2 - 1

    def _policy(self, obs: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        return self.c.agent.act(obs, tasks, deterministic=False, generator=self.gen["policy"])

    def collect_and_store(self, random_actions: bool = False) -> TrajectoryBatch:
        """Collect one batch of episodes, relabel it and store every copy in the buffer."""
        tasks = self.c.family.task_distribution.sample(len(self.collector.envs), self.gen["tasks"])
        batch = self.collector.collect(self._random_policy if random_actions else self._policy, tasks)
        self.env_steps += int(batch.lengths.sum())
        relabeled = self.c.relabeler.relabel(batch, self.ctx)                    # [B, m, Z]
        all_tasks = torch.cat([batch.tasks[:, None].to(relabeled.device), relabeled], 1)
        features, actions = batch.features.to(relabeled.device), batch.actions.to(relabeled.device)
        rewards = self.c.reward.reward(features, actions, all_tasks)             # [B, 1 + m, T]
        self.c.buffer.add(batch, all_tasks, rewards)
        return batch

    def update(self, count: int) -> list[dict[str, torch.Tensor]]:
        """``count`` gradient steps on minibatches from the buffer (rewritten by sample-time relabelers)."""
        out = []
        batch_size = self.c.agent.batch_size
        for _ in range(count):
            batch = self.c.buffer.sample(batch_size, self.gen["buffer"])
            batch = self.c.relabeler.relabel_batch(batch, self.ctx)
            out.append(self.c.agent.update(batch, generator=self.gen["update"]))
        self.updates += count
        return out

    def warmup(self) -> None:
        """Uniform random actions until ``train.warmup_steps`` env steps are stored."""
        while self.env_steps < self.spec.run.train.warmup_steps:
            self.collect_and_store(random_actions=True)

    def run_epoch(self) -> dict[str, Any]:
        """One epoch: the loops of collection and updates, then evaluation; returns the metrics row."""
        train = self.spec.run.train
        start, steps_before = time.perf_counter(), self.env_steps
        losses, returns = [], []
        for _ in range(train.loops_per_epoch):
            batch = self.collect_and_store()
            returns.append((batch.rewards * batch.mask).sum(-1))
            losses.extend(self.update(train.updates_per_loop))
        train_seconds = time.perf_counter() - start
        self.epoch += 1
        row: dict[str, Any] = {"epoch": self.epoch, "env_steps": self.env_steps, "updates": self.updates}
        if self.epoch % self.spec.run.eval.every == 0 or self.epoch == train.epochs:
            row.update(self.evaluator.evaluate(self.c.agent))
        else:
            row["eval/return_mean"] = None
        row["train/return_mean"] = torch.cat(returns).mean().item()
        if losses:
            stacked = {k: torch.stack([l[k] for l in losses]).mean().item() for k in losses[0]}
            row.update({f"train/{k}": v for k, v in stacked.items()})
        row.update(self.c.relabeler.diagnostics())
        row["train/steps_per_s"] = (self.env_steps - steps_before) / train_seconds
        row["train/updates_per_s"] = train.loops_per_epoch * train.updates_per_loop / train_seconds
        row["time/epoch_s"] = time.perf_counter() - start
        return row

    def run(self) -> list[dict[str, Any]]:
        """Warm up, then train every remaining epoch; each row goes to every sink."""
        rows = []
        self.warmup()
        while self.epoch < self.spec.run.train.epochs:
            row = self.run_epoch()
            rows.append(row)
            for sink in self.sinks:
                sink.log(row)
        return rows

    def checkpoint_state(self) -> dict[str, Any]:
        """The agent and counters, loadable with ``torch.load(..., weights_only=True)``."""
        return {"format": 1, "epoch": self.epoch, "env_steps": self.env_steps, "updates": self.updates,
                "spec": self.spec.to_dict(), "agent": self.c.agent.state_dict()}

    def save_checkpoint(self, path: Path) -> None:
        """Write the checkpoint atomically (temporary file, then rename)."""
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(self.checkpoint_state(), tmp)
        tmp.replace(path)
