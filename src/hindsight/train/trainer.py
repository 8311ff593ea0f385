"""Algorithm 1 of the paper for P >= 1 members: collect, relabel, store under every task, update; evaluate
each epoch. A single run is a population of one.

Each member is what one seed's run is made of: its environments, buffer, relabeler state, random streams,
progress and sinks. Members share the env family, task distribution, reward family and the agent, whose
P members learn independently: one policy call per time step acts for every member's environments and one
batched update steps every member on its own minibatch.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch

from hindsight.batches import TrajectoryBatch, TransitionBatch, concat_trajectories, discounted_returns
from hindsight.build import Problem, build_agent, build_buffer, build_problem, build_relabeler
from hindsight.logging.sinks import Advancing
from hindsight.protocols import Agent, CostNotice, OriginalStorage, RelabelContext, RewardFamily
from hindsight.runtime import apply_runtime
from hindsight.seeding import derive_seed, make_generator
from hindsight.specs import COMPONENT_FIELDS, ResolvedSpec
from hindsight.train import faults
from hindsight.train.checkpoint import FORMAT, rng_state, save_atomic, set_rng_state
from hindsight.train.collector import Collector, collect_together
from hindsight.train.evaluator import Evaluator, front_evaluator

if TYPE_CHECKING:
    import dm_env

    from hindsight.logging.sinks import Sink


class NonFiniteError(Exception):
    """Training produced a non-finite loss, parameter or reward; the message names the component and epoch."""


class StopRequested(Exception):
    """The run stopped early on request (SIGINT/SIGTERM) after writing a checkpoint."""


def finite_actions(actions: torch.Tensor, epoch: int) -> torch.Tensor:
    """The policy's actions on the CPU, or NonFiniteError naming epoch ``epoch + 1`` if any is not finite."""
    actions = actions.cpu()
    if not torch.isfinite(actions).all():
        raise NonFiniteError(f"agent: the policy produced non-finite actions in epoch {epoch + 1}")
    return actions


PROGRESS_EVERY = 0.2  # seconds between reports of progress within an epoch


def warn_costly(spec: ResolvedSpec) -> None:
    """Warn, once as a run starts, of settings a component knows to be slow where it computes (``CostNotice``)."""
    for field in COMPONENT_FIELDS:
        component = spec.component(field)
        notice = component.cost_notice(spec) if isinstance(component, CostNotice) else None
        if notice:
            warnings.warn(notice, RuntimeWarning, stacklevel=3)


def make_envs(problem: Problem, seed: int, stream: str, count: int) -> list[dm_env.Environment]:
    """``count`` environments, each with its own physics-noise seed derived from the run's seed."""
    return [problem.family.make_env(None, derive_seed(seed, stream, i) % 2**32) for i in range(count)]


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
        relabel_sums, relabel_count: sums and count of ``Member.record_relabeling``'s figures.
    """

    loop: int = 0
    steps_at_start: int = 0
    seconds: float = 0.0
    return_sum: float = 0.0
    episodes: int = 0
    loss_sums: dict[str, torch.Tensor] = attrs.Factory(dict)
    update_count: int = 0
    relabel_sums: dict[str, torch.Tensor] = attrs.Factory(dict)
    relabel_count: int = 0

    def state_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EpochProgress:
        return cls(**state)


class Member:
    """One seed's share of a run: environments, buffer, relabeler, random streams, counters and sinks.

    Attributes:
        spec: the member's single-seed spec (what its run directory records).
        index: its member index p in the agent.
        sinks: receive its metrics rows (set by the caller).
    """

    def __init__(self, spec: ResolvedSpec, problem: Problem, agent: Agent, index: int):
        self.spec, self.index = spec, index
        train, seed, device = spec.run.train, spec.run.seed, agent.device
        self.problem = problem
        self.reward: RewardFamily = problem.reward
        self.buffer = build_buffer(spec, problem.sizes, device)
        self.relabeler = build_relabeler(spec, problem.sizes)
        horizon = problem.sizes.horizon
        self.collector = Collector(
            make_envs(problem, seed, "env/train", train.episodes_per_loop), horizon, problem.reward
        )
        fixed = problem.tasks.eval_tasks()
        eval_count = spec.run.eval.episodes if fixed is None else fixed.shape[0]
        self.evaluator = Evaluator(
            Collector(make_envs(problem, seed, "env/eval", eval_count), horizon, problem.reward),
            problem.tasks,
            make_generator(seed, "eval/tasks"),
            front=front_evaluator(problem, seed, make_envs),  # own envs and streams: learning is unchanged
        )
        self.gen = {
            "tasks": make_generator(seed, "tasks/train"),
            "warmup": make_generator(seed, "collect/warmup"),
            "eval": self.evaluator.generator,
            "policy": make_generator(seed, "collect/policy", device=device),
            "update": make_generator(seed, "agent/update", device=device),
            "buffer": make_generator(seed, "buffer/sample", device=device),
            "relabel": make_generator(seed, "relabel", device=device),
        }
        self.ctx = RelabelContext(
            tasks=problem.tasks, reward=problem.reward, agent=agent, generator=self.gen["relabel"], member=index
        )
        self.epoch = 0
        self.env_steps = 0
        self.updates = 0
        self.metrics_rows = 0
        self.progress = EpochProgress()
        self.sinks: list[Sink] = []

    def next_tasks(self) -> torch.Tensor:
        """Tasks [B, Z] for the next batch of episodes, one per training environment."""
        return self.problem.tasks.sample(len(self.collector.envs), self.gen["tasks"])

    def warmup_done(self) -> bool:
        """Whether ``train.warmup_steps`` env steps are stored."""
        return self.env_steps >= self.spec.run.train.warmup_steps

    def warm_up(self, agent: Agent) -> None:
        """One batch of warm-up episodes (``train.warmup_actions``), relabeled and stored; with
        ``train.warmup_relabel: batch``, the whole warm-up, relabeled together as one batch."""
        train = self.spec.run.train
        batches = [self.collect_warmup(agent)]
        if train.warmup_relabel == "batch":
            while self.env_steps + sum(int(b.lengths.sum()) for b in batches) < train.warmup_steps:
                batches.append(self.collect_warmup(agent))
        self.store(concat_trajectories(batches))

    def collect_warmup(self, agent: Agent) -> TrajectoryBatch:
        """One batch of episodes with uniform random actions or the (untrained) stochastic policy."""
        action_dim = self.problem.sizes.action_dim

        def uniform(obs: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
            return torch.rand(obs.shape[0], action_dim, generator=self.gen["warmup"]) * 2 - 1

        def policy(obs: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
            actions = agent.act(obs, tasks, deterministic=False, generator=self.gen["policy"], member=self.index)
            return finite_actions(actions, self.epoch)

        act = policy if self.spec.run.train.warmup_actions == "policy" else uniform
        return self.collector.collect(act, self.next_tasks())

    def store(self, batch: TrajectoryBatch) -> None:
        """Count a collected batch's steps, relabel it and store every copy in the buffer: each trajectory
        under its original task and each relabeled one (only the relabeled ones where the relabeler keeps
        the original ``unless_chosen`` and chose it)."""
        self.env_steps += int(batch.lengths.sum())
        relabeled = self.relabeler.relabel(batch, self.ctx)  # [B, m, Z]
        originals = batch.tasks[:, None].to(relabeled.device)  # [B, 1, Z]
        all_tasks = torch.cat([originals, relabeled], 1)
        features, actions = batch.features.to(relabeled.device), batch.actions.to(relabeled.device)
        rewards = self.reward.reward(features, actions, all_tasks)  # [B, 1 + m, T]
        if not torch.isfinite(rewards).all():
            reward = self.spec.run.reward
            assert reward is not None  # validate() fills in the env's own reward family
            raise NonFiniteError(f"reward family {reward.kind!r} returned non-finite rewards in epoch {self.epoch + 1}")
        if relabeled.shape[1]:
            self.record_relabeling(batch, relabeled, rewards[:, 1:])
        if isinstance(self.relabeler, OriginalStorage) and self.relabeler.store_original == "unless_chosen":
            chosen = (relabeled == originals).all(-1).any(1).cpu()  # [B] the original is among the kept tasks
            for rows, tasks, scored in ((~chosen, all_tasks, rewards), (chosen, relabeled, rewards[:, 1:])):
                if rows.any():
                    self.buffer.add(batch.rows(rows), tasks[rows.to(tasks.device)], scored[rows.to(scored.device)])
        else:
            self.buffer.add(batch, all_tasks, rewards)

    def record_relabeling(self, batch: TrajectoryBatch, relabeled: torch.Tensor, rewards: torch.Tensor) -> None:
        """Add the epoch's relabeling diagnostics: the mean task components of relabeled copies and of the
        originals, and the bias V(s0, z') - R(tau | z') of the relabeled tasks (relabeled [B, m, Z],
        their rewards [B, m, T])."""
        agent = self.ctx.agent
        returns = discounted_returns(rewards, batch.mask[:, None].to(rewards.device), agent.gamma)  # [B, m]
        values = agent.value(batch.obs[:, 0].to(agent.device), relabeled.to(agent.device), member=self.index)
        figures = {
            "relabeled_task_mean": relabeled.mean((0, 1)),
            "original_task_mean": batch.tasks.mean(0),
            "value_bias": (values - returns.to(values.device)).mean(),
        }
        sums = self.progress.relabel_sums
        for key, value in figures.items():
            value = value.detach().float().cpu()
            sums[key] = sums[key] + value if key in sums else value
        self.progress.relabel_count += 1

    def count_episodes(self, batch: TrajectoryBatch) -> None:
        """Add a loop's collected episodes to the epoch's training return."""
        self.progress.return_sum += float((batch.rewards * batch.mask).sum())
        self.progress.episodes += batch.num

    def sample_batch(self, batch_size: int) -> TransitionBatch:
        """A minibatch from the buffer, rewritten by sample-time relabelers."""
        return self.relabeler.relabel_batch(self.buffer.sample(batch_size, self.gen["buffer"]), self.ctx)

    def record_update(self, metrics: dict[str, torch.Tensor]) -> None:
        """Add one update's metrics (scalar tensors, never synchronised) to the epoch's sums."""
        sums = self.progress.loss_sums
        for key, value in metrics.items():
            sums[key] = sums[key] + value if key in sums else value.clone()
        self.updates += 1
        self.progress.update_count += 1

    def finish_epoch(self, agent: Agent) -> dict[str, Any]:
        """Evaluate, check for divergence and build the epoch's metrics row."""
        run, progress = self.spec.run, self.progress
        self.epoch += 1
        row: dict[str, Any] = {"epoch": self.epoch, "env_steps": self.env_steps, "updates": self.updates}
        eval_start = time.perf_counter()
        if self.epoch % run.eval.every == 0 or self.epoch == run.train.epochs:
            row.update(self.evaluator.evaluate(agent, self.index))
        else:
            row["eval/return_mean"] = None
        row["train/return_mean"] = progress.return_sum / max(progress.episodes, 1)
        if progress.update_count:
            row.update({f"train/{k}": (v / progress.update_count).item() for k, v in progress.loss_sums.items()})
        row.update(self.relabeler.diagnostics())
        if progress.relabel_count:
            means = {k: v / progress.relabel_count for k, v in progress.relabel_sums.items()}
            row["relabel/value_bias"] = means.pop("value_bias").item()
            for key, components in means.items():
                row.update({f"relabel/{key}/{i}": value for i, value in enumerate(components.tolist())})
        self.check_finite(row, agent)
        row["train/steps_per_s"] = (self.env_steps - progress.steps_at_start) / max(progress.seconds, 1e-9)
        row["train/updates_per_s"] = progress.update_count / max(progress.seconds, 1e-9)
        row["time/epoch_s"] = progress.seconds + time.perf_counter() - eval_start
        self.progress = EpochProgress(steps_at_start=self.env_steps)
        return row

    def check_finite(self, row: dict[str, Any], agent: Agent) -> None:
        """Raise NonFiniteError naming the component if a metric or a learnable tensor is not finite."""
        for key, value in row.items():
            if isinstance(value, float) and not math.isfinite(value):
                component = "agent" if key.startswith("train/") else key.split("/")[0]
                raise NonFiniteError(f"{component}: {key} became {value} in epoch {self.epoch}")
        for name, tensor in agent.named_tensors():
            if not torch.isfinite(tensor).all():
                raise NonFiniteError(f"agent: parameter {name} became non-finite in epoch {self.epoch}")

    def state_dict(self) -> dict[str, Any]:
        """The member's own state (the agent's is the run's): weights_only-loadable."""
        return {
            "seed": self.spec.run.seed,
            "epoch": self.epoch,
            "env_steps": self.env_steps,
            "updates": self.updates,
            "metrics_rows": self.metrics_rows,
            "progress": self.progress.state_dict(),
            "buffer": self.buffer.state_dict(),
            "relabeler": self.relabeler.state_dict(),
            "generators": {name: gen.get_state() for name, gen in self.gen.items()},
            "env_rngs": {
                "train": [rng_state(env.task.random) for env in self.collector.envs],
                "eval": [rng_state(env.task.random) for env in self.evaluator.collector.envs],
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``'s output."""
        self.epoch, self.env_steps, self.updates = state["epoch"], state["env_steps"], state["updates"]
        self.metrics_rows = state["metrics_rows"]
        self.progress = EpochProgress.from_state(state["progress"])
        self.buffer.load_state_dict(state["buffer"])
        self.relabeler.load_state_dict(state["relabeler"])
        for name, gen in self.gen.items():
            gen.set_state(state["generators"][name])
        for envs, key in ((self.collector.envs, "train"), (self.evaluator.collector.envs, "eval")):
            for env, rng in zip(envs, state["env_rngs"][key], strict=True):
                set_rng_state(env.task.random, rng)


class Trainer:
    """Runs Algorithm 1 for ``spec.train.epochs`` epochs for every member of the spec (its ``seeds``, or its
    one ``seed``); member p's rows are those of a run with seed p.

    With a ``checkpoint_path``, state is saved every ``train.checkpoint_every`` epochs and when a stop is
    requested (``request_stop``, e.g. from a signal handler), so that ``load_state_dict`` continues exactly.

    Attributes:
        problem: the env family, task distribution, reward family and sizes every member shares.
        agent: the P-member agent.
        members: one Member per seed, in the order of the spec's seeds.
    """

    def __init__(self, spec: ResolvedSpec, checkpoint_path: Path | None = None):
        self.spec = spec
        self.checkpoint_path = checkpoint_path
        apply_runtime(spec.run.runtime)
        warn_costly(spec)
        self.problem = build_problem(spec)
        self.agent = build_agent(spec, self.problem.sizes)
        member_specs = [spec.member(seed) for seed in spec.run.seeds] if spec.run.seeds is not None else [spec]
        self.members = [Member(member_spec, self.problem, self.agent, p) for p, member_spec in enumerate(member_specs)]
        self._stop_requested = False
        self._progress_at = 0.0

    @property
    def epoch(self) -> int:
        """Epochs finished (the same for every member)."""
        return self.members[0].epoch

    def request_stop(self) -> None:
        """Ask the run to checkpoint and stop at the next safe point (safe to call from a signal handler)."""
        self._stop_requested = True

    def _stop_if_requested(self) -> None:
        if self._stop_requested:
            self.save_checkpoint()
            raise StopRequested(f"stopped in epoch {self.epoch + 1} after loop {self.members[0].progress.loop}")

    def collect(self) -> None:
        """Every member collects, relabels and stores one batch of episodes, stepped together."""
        generators = [member.gen["policy"] for member in self.members]

        def policy(obs: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:  # [P, B, O], [P, B, Z] -> [P, B, A]
            return finite_actions(self.agent.act_members(obs, tasks, generators), self.epoch)

        batches = collect_together(
            [member.collector for member in self.members], policy, [member.next_tasks() for member in self.members]
        )
        for member, batch in zip(self.members, batches, strict=True):
            member.store(batch)
            member.count_episodes(batch)

    def update(self, count: int) -> None:
        """``count`` gradient steps: one minibatch per member, one update for all."""
        generators = [member.gen["update"] for member in self.members]
        for _ in range(count):
            batches = [member.sample_batch(self.agent.batch_size) for member in self.members]
            stacked = TransitionBatch(
                **{
                    name: torch.stack([getattr(b, name) for b in batches])
                    for name in attrs.fields_dict(TransitionBatch)
                }
            )
            metrics = self.agent.update_members(stacked, generators)
            for p, member in enumerate(self.members):
                member.record_update({key: value[p] for key, value in metrics.items()})
            faults.reached("update")
            self._advance_progress()

    def _advance_progress(self) -> None:
        """Tell the first member's sinks that follow progress within an epoch how far it has got (at most
        every PROGRESS_EVERY seconds)."""
        now = time.perf_counter()
        if now - self._progress_at < PROGRESS_EVERY:
            return
        self._progress_at = now
        member, train = self.members[0], self.spec.run.train
        per_epoch = train.loops_per_epoch * train.updates_per_loop
        for sink in member.sinks:
            if isinstance(sink, Advancing):
                sink.advance(member.epoch, member.progress.update_count, per_epoch, member.env_steps)

    def run(self) -> list[list[dict[str, Any]]]:
        """Warm up, then train every remaining epoch; each member's rows go to its sinks.

        Returns each member's metrics rows from this session. Raises StopRequested (after checkpointing) if
        ``request_stop`` was called, NonFiniteError on divergence.
        """
        train, members = self.spec.run.train, self.members
        rows: list[list[dict[str, Any]]] = [[] for _ in members]
        while not all(member.warmup_done() for member in members):
            for member in members:
                if not member.warmup_done():
                    member.warm_up(self.agent)
            self._stop_if_requested()
        if self.epoch == 0 and members[0].progress.loop == 0:
            for member in members:
                member.progress.steps_at_start = member.env_steps
        while self.epoch < train.epochs:
            while members[0].progress.loop < train.loops_per_epoch:
                start = time.perf_counter()
                self.collect()
                self.update(train.updates_per_loop)
                for member in members:
                    member.progress.loop += 1
                    member.progress.seconds += time.perf_counter() - start
                if members[0].progress.loop < train.loops_per_epoch:
                    self._stop_if_requested()
            for member, member_rows in zip(members, rows, strict=True):
                row = member.finish_epoch(self.agent)
                member_rows.append(row)
                for sink in member.sinks:
                    sink.log(row)
                member.metrics_rows += 1
            if self.epoch % train.checkpoint_every == 0 or self.epoch == train.epochs:
                self.save_checkpoint()
            if self.epoch < train.epochs:
                self._stop_if_requested()
        return rows

    # ----- checkpoints -----
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: loadable with ``torch.load(..., weights_only=True)``."""
        return {
            "format": FORMAT,
            "spec": self.spec.to_dict(),
            "agent": self.agent.state_dict(),
            "members": [member.state_dict() for member in self.members],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``'s output (as ``read_checkpoint`` returns it)."""
        self.agent.load_state_dict(state["agent"])
        for member, member_state in zip(self.members, state["members"], strict=True):
            member.load_state_dict(member_state)

    def save_checkpoint(self) -> None:
        """Write the checkpoint atomically, if this trainer has a checkpoint path."""
        if self.checkpoint_path is not None:
            save_atomic(self.state_dict(), self.checkpoint_path)
