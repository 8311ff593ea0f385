"""Algorithm 1 of the paper: collect, relabel, store under every task, update; evaluate each epoch."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import attrs
import torch

from hindsight.batches import TrajectoryBatch, TransitionBatch
from hindsight.protocols import Agent, Buffer, RelabelContext, Relabeler, RewardFamily
from hindsight.seeding import derive_seed, make_generator
from hindsight.specs import ResolvedSpec
from hindsight.tasks.base import EnvFamily
from hindsight.train import faults
from hindsight.train.checkpoint import rng_state, save_atomic, set_rng_state
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


def build_agent(spec: ResolvedSpec, family: EnvFamily, seeds: list[int]) -> Agent:
    """The spec's agent with one member per seed, member p initialised from seed p's ``agent/init`` stream."""
    generators = [make_generator(seed, "agent/init") for seed in seeds]
    kwargs = {} if len(seeds) == 1 else {"members": len(seeds)}
    return spec.component("agent")(spec.params["agent"], obs_dim=family.obs_dim, action_dim=family.action_dim,
                                   task_dim=family.task_distribution.task_dim,
                                   generator=generators[0] if len(seeds) == 1 else generators, **kwargs)


def build_components(spec: ResolvedSpec, agent: Agent | None = None) -> Components:
    """Instantiate the registered components the spec names, seeded from its one seed.

    ``agent`` replaces the spec's own (a population member's view of a shared agent).
    """
    seed = spec.run.seed
    family = spec.component("env")(spec.params["env"])
    reward = spec.component("reward")(spec.params["reward"])
    relabeler = spec.component("relabeler")(spec.params["relabeler"])
    if agent is None:
        agent = build_agent(spec, family, [seed])
    buffer = spec.component("buffer")(spec.params["buffer"], obs_dim=family.obs_dim, action_dim=family.action_dim,
                                      task_dim=family.task_distribution.task_dim, feature_dim=family.feature_dim,
                                      device=getattr(agent, "device", "cpu"))
    return Components(family, reward, relabeler, agent, buffer)


def make_envs(family: EnvFamily, reward: RewardFamily, seed: int, stream: str, count: int) -> list:
    """``count`` environments, each with its own physics-noise seed derived from the run's seed."""
    return [family.make_env(reward, derive_seed(seed, stream, i) % 2**32) for i in range(count)]


class NonFiniteError(Exception):
    """Training produced a non-finite loss, parameter or reward; the message names the component and epoch."""


def finite_actions(actions: torch.Tensor, epoch: int) -> torch.Tensor:
    """The policy's actions on the CPU, or NonFiniteError naming epoch ``epoch + 1`` if any is not finite."""
    actions = actions.cpu()
    if not torch.isfinite(actions).all():
        raise NonFiniteError(f"agent: the policy produced non-finite actions in epoch {epoch + 1}")
    return actions


class StopRequested(Exception):
    """The run stopped early on request (SIGINT/SIGTERM) after writing a checkpoint."""


@attrs.define
class EpochProgress:
    """What an unfinished epoch has gathered so far (kept in checkpoints taken mid-epoch).

    Attributes:
        loop: loops of collection and updates done this epoch.
        steps_at_start: env steps when the epoch began.
        seconds: wall time spent on this epoch's loops so far.
        return_sum, episodes: sum and count of collected episodes' undiscounted returns.
        loss_sums: sum of each update metric over this epoch's updates (scalar tensors, never synced).
        update_count: updates this epoch.
    """

    loop: int = 0
    steps_at_start: int = 0
    seconds: float = 0.0
    return_sum: float = 0.0
    episodes: int = 0
    loss_sums: dict[str, torch.Tensor] = attrs.Factory(dict)
    update_count: int = 0

    def state_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "EpochProgress":
        return cls(**state)


class Trainer:
    """Runs Algorithm 1 for ``spec.train.epochs`` epochs, handing one metrics row per epoch to ``sinks``.

    With a ``checkpoint_path``, state is saved every ``train.checkpoint_every`` epochs and when a stop is
    requested (``request_stop``, e.g. from a signal handler), so that ``restore`` continues exactly.
    """

    def __init__(self, spec: ResolvedSpec, sinks: list | None = None, checkpoint_path: Path | None = None,
                 agent: Agent | None = None):
        self.spec = spec
        self.sinks = sinks or []
        self.checkpoint_path = checkpoint_path
        self.c = build_components(spec, agent)
        train, seed = spec.run.train, spec.run.seed
        device = getattr(self.c.agent, "device", torch.device("cpu"))
        family = self.c.family
        self.collector = Collector(make_envs(family, self.c.reward, seed, "env/train", train.episodes_per_loop),
                                   family.horizon, self.c.reward)
        self.evaluator = Evaluator(
            Collector(make_envs(family, self.c.reward, seed, "env/eval", self._eval_episodes()), family.horizon,
                      self.c.reward),
            family.task_distribution, make_generator(seed, "eval/tasks"))
        self.gen = {
            "tasks": make_generator(seed, "tasks/train"),
            "warmup": make_generator(seed, "collect/warmup"),
            "eval": self.evaluator.generator,
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
        self.metrics_rows = 0
        self.progress = EpochProgress()
        self._stop_requested = False

    def _eval_episodes(self) -> int:
        fixed = self.c.family.task_distribution.eval_tasks()
        return self.spec.run.eval.episodes if fixed is None else fixed.shape[0]

    def request_stop(self) -> None:
        """Ask the run to checkpoint and stop at the next safe point (safe to call from a signal handler)."""
        self._stop_requested = True

    # ----- one loop of Algorithm 1 -----
    def _random_policy(self, obs: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        return torch.rand(obs.shape[0], self.c.family.action_dim, generator=self.gen["warmup"]) * 2 - 1

    def _policy(self, obs: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        return finite_actions(self.c.agent.act(obs, tasks, deterministic=False, generator=self.gen["policy"]),
                              self.epoch)

    def next_tasks(self) -> torch.Tensor:
        """Tasks [B, Z] for the next batch of episodes, one per training environment."""
        return self.c.family.task_distribution.sample(len(self.collector.envs), self.gen["tasks"])

    def collect_and_store(self, random_actions: bool = False) -> TrajectoryBatch:
        """Collect one batch of episodes, relabel it and store every copy in the buffer."""
        batch = self.collector.collect(self._random_policy if random_actions else self._policy, self.next_tasks())
        self.store(batch)
        return batch

    def store(self, batch: TrajectoryBatch) -> None:
        """Count a collected batch's steps, relabel it and store every copy in the buffer."""
        self.env_steps += int(batch.lengths.sum())
        relabeled = self.c.relabeler.relabel(batch, self.ctx)                    # [B, m, Z]
        all_tasks = torch.cat([batch.tasks[:, None].to(relabeled.device), relabeled], 1)
        features, actions = batch.features.to(relabeled.device), batch.actions.to(relabeled.device)
        rewards = self.c.reward.reward(features, actions, all_tasks)             # [B, 1 + m, T]
        if not torch.isfinite(rewards).all():
            raise NonFiniteError(f"reward family {self.spec.run.reward.kind!r} returned non-finite rewards "
                                 f"in epoch {self.epoch + 1}")
        self.c.buffer.add(batch, all_tasks, rewards)

    def sample_batch(self) -> TransitionBatch:
        """A minibatch from the buffer, rewritten by sample-time relabelers."""
        batch = self.c.buffer.sample(self.c.agent.batch_size, self.gen["buffer"])
        return self.c.relabeler.relabel_batch(batch, self.ctx)

    def record_update(self, metrics: dict[str, torch.Tensor]) -> None:
        """Add one update's metrics (scalar tensors, never synchronised) to the epoch's sums."""
        sums = self.progress.loss_sums
        for key, value in metrics.items():
            sums[key] = sums[key] + value if key in sums else value.clone()
        self.updates += 1
        self.progress.update_count += 1

    def update(self, count: int) -> None:
        """``count`` gradient steps of this trainer's own agent."""
        for _ in range(count):
            self.record_update(self.c.agent.update(self.sample_batch(), generator=self.gen["update"]))
            faults.reached("update")

    def warmup_done(self) -> bool:
        """Whether ``train.warmup_steps`` env steps of uniform random actions are stored."""
        return self.env_steps >= self.spec.run.train.warmup_steps

    def warmup(self) -> None:
        """Uniform random actions until ``train.warmup_steps`` env steps are stored."""
        while not self.warmup_done():
            self.collect_and_store(random_actions=True)

    def collect_for_loop(self) -> None:
        """The collection half of a loop: one batch of episodes collected, relabeled and stored."""
        self.count_episodes(self.collect_and_store())

    def count_episodes(self, batch: TrajectoryBatch) -> None:
        """Add a loop's collected episodes to the epoch's training return."""
        self.progress.return_sum += float((batch.rewards * batch.mask).sum())
        self.progress.episodes += batch.num

    def end_loop(self, seconds: float) -> None:
        """Count a finished loop that took ``seconds``."""
        self.progress.loop += 1
        self.progress.seconds += seconds

    def finish_epoch(self) -> dict[str, Any]:
        """Evaluate, check for divergence and build the epoch's metrics row."""
        train, progress = self.spec.run.train, self.progress
        self.epoch += 1
        row: dict[str, Any] = {"epoch": self.epoch, "env_steps": self.env_steps, "updates": self.updates}
        eval_start = time.perf_counter()
        if self.epoch % self.spec.run.eval.every == 0 or self.epoch == train.epochs:
            row.update(self.evaluator.evaluate(self.c.agent))
        else:
            row["eval/return_mean"] = None
        row["train/return_mean"] = progress.return_sum / max(progress.episodes, 1)
        if progress.update_count:
            row.update({f"train/{k}": (v / progress.update_count).item() for k, v in progress.loss_sums.items()})
        row.update(self.c.relabeler.diagnostics())
        self.check_finite(row)
        row["train/steps_per_s"] = (self.env_steps - progress.steps_at_start) / max(progress.seconds, 1e-9)
        row["train/updates_per_s"] = progress.update_count / max(progress.seconds, 1e-9)
        row["time/epoch_s"] = progress.seconds + time.perf_counter() - eval_start
        self.progress = EpochProgress(steps_at_start=self.env_steps)
        return row

    def check_finite(self, row: dict[str, Any]) -> None:
        """Raise NonFiniteError naming the component if a metric or an agent parameter is not finite."""
        for key, value in row.items():
            if isinstance(value, float) and not math.isfinite(value):
                component = "agent" if key.startswith("train/") else key.split("/")[0]
                raise NonFiniteError(f"{component}: {key} became {value} in epoch {self.epoch}")
        owner = getattr(self.c.agent, "agent", self.c.agent)  # a population member checks the shared agent
        networks = {name: module for name, module in vars(owner).items() if isinstance(module, torch.nn.Module)}
        for name, module in networks.items():
            for pname, param in module.named_parameters():
                if not torch.isfinite(param).all():
                    raise NonFiniteError(f"agent: parameter {name}.{pname} became non-finite in epoch {self.epoch}")

    def run(self) -> list[dict[str, Any]]:
        """Warm up, then train every remaining epoch; each row goes to every sink.

        Raises StopRequested (after checkpointing) if ``request_stop`` was called, NonFiniteError on divergence.
        """
        return run_lockstep([self], self.collect_for_loop, self.update, self.save_checkpoint,
                            lambda: self._stop_requested)[0]

    # ----- checkpoints -----
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: loadable with ``torch.load(..., weights_only=True)``.

        A population member's agent entry is empty: the population checkpoint holds the shared agent.
        """
        return {
            "format": 1, "spec": self.spec.to_dict(), "epoch": self.epoch, "env_steps": self.env_steps,
            "updates": self.updates, "metrics_rows": self.metrics_rows, "progress": self.progress.state_dict(),
            "agent": self.c.agent.state_dict(), "buffer": self.c.buffer.state_dict(),
            "relabeler": self.c.relabeler.state_dict(),
            "generators": {name: gen.get_state() for name, gen in self.gen.items()},
            "env_rngs": {"train": [rng_state(env.task.random) for env in self.collector.envs],
                         "eval": [rng_state(env.task.random) for env in self.evaluator.collector.envs]},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``'s output."""
        self.epoch, self.env_steps, self.updates = state["epoch"], state["env_steps"], state["updates"]
        self.metrics_rows = state["metrics_rows"]
        self.progress = EpochProgress.from_state(state["progress"])
        self.c.agent.load_state_dict(state["agent"])
        self.c.buffer.load_state_dict(state["buffer"])
        self.c.relabeler.load_state_dict(state["relabeler"])
        for name, gen in self.gen.items():
            gen.set_state(state["generators"][name])
        for envs, key in ((self.collector.envs, "train"), (self.evaluator.collector.envs, "eval")):
            for env, rng in zip(envs, state["env_rngs"][key]):
                set_rng_state(env.task.random, rng)

    def save_checkpoint(self) -> None:
        """Write the checkpoint atomically, if this trainer has a checkpoint path."""
        if self.checkpoint_path is not None:
            save_atomic(self.state_dict(), self.checkpoint_path)


def run_lockstep(members: list[Trainer], collect: Callable[[], None], update: Callable[[int], None],
                 checkpoint: Callable[[], None], stop_requested: Callable[[], bool]) -> list[list[dict[str, Any]]]:
    """Algorithm 1 for one or more members in lockstep (they share the spec's loop sizes).

    Each loop, ``collect()`` has every member collect and store a batch of episodes (one policy call per
    time step for all members of a population), then ``update(n)`` runs the loop's gradient steps
    (batched across members for a population). After each epoch every member's row goes
    to its sinks and ``checkpoint()`` runs every ``train.checkpoint_every`` epochs and at the end. When
    ``stop_requested()`` turns true, the loop checkpoints at the next safe point and raises StopRequested.

    Returns:
        Each member's metrics rows from this session.
    """
    lead = members[0]
    train = lead.spec.run.train
    rows: list[list[dict[str, Any]]] = [[] for _ in members]

    def stop_if_requested() -> None:
        if stop_requested():
            checkpoint()
            raise StopRequested(f"stopped in epoch {lead.epoch + 1} after loop {lead.progress.loop}")

    while not all(m.warmup_done() for m in members):
        for member in members:
            if not member.warmup_done():
                member.collect_and_store(random_actions=True)
        stop_if_requested()
    if lead.epoch == 0 and lead.progress.loop == 0:
        for member in members:
            member.progress.steps_at_start = member.env_steps
    while lead.epoch < train.epochs:
        while lead.progress.loop < train.loops_per_epoch:
            start = time.perf_counter()
            collect()
            update(train.updates_per_loop)
            for member in members:
                member.end_loop(time.perf_counter() - start)
            if lead.progress.loop < train.loops_per_epoch:
                stop_if_requested()
        for member, member_rows in zip(members, rows):
            row = member.finish_epoch()
            member_rows.append(row)
            for sink in member.sinks:
                sink.log(row)
            member.metrics_rows += 1
        if lead.epoch % train.checkpoint_every == 0 or lead.epoch == train.epochs:
            checkpoint()
        if lead.epoch < train.epochs:
            stop_if_requested()
    return rows
