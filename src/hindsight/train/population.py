"""Population training: one independent member per seed, in lockstep in one process.

Each member is a Trainer with its own environments, buffer, relabeler state and generators, exactly as
if it ran alone; only the agent is shared: a SAC of P members whose gradient updates for all members
run as one batched computation (stacked parameters, batched matrix products, one optimiser step), and
whose actions for all members' environments come from one policy call per time step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import torch

from hindsight.batches import TransitionBatch
from hindsight.specs import ResolvedSpec
from hindsight.train import faults
from hindsight.train.checkpoint import save_atomic
from hindsight.train.collector import collect_together
from hindsight.train.trainer import Trainer, build_agent, finite_actions, run_lockstep


class PopulationTrainer:
    """Trains ``spec.run.seeds`` members; member p's runs and metrics are those of a run with seed p.

    Attributes:
        agent: the shared P-member agent.
        members: one Trainer per seed (its ``sinks`` receive that member's rows).
    """

    def __init__(self, spec: ResolvedSpec, checkpoint_path: Path | None = None):
        seeds = spec.run.seeds
        if not seeds:
            raise ValueError("a population spec needs seeds: [...]")
        self.spec = spec
        self.checkpoint_path = checkpoint_path
        member_specs = [spec.member(seed) for seed in seeds]
        family = member_specs[0].component("env")(member_specs[0].params["env"])
        self.agent = build_agent(spec, family, list(seeds))
        if not hasattr(self.agent, "update_members"):
            raise ValueError(f"agent {spec.run.agent.kind!r} cannot train a population (no update_members)")
        self.members = [Trainer(member_spec, agent=self.agent.member(p)) for p, member_spec in enumerate(member_specs)]
        self._stop_requested = False

    @property
    def epoch(self) -> int:
        """Epochs finished (the same for every member)."""
        return self.members[0].epoch

    def request_stop(self) -> None:
        """Checkpoint and stop at the next safe point (safe to call from a signal handler)."""
        self._stop_requested = True

    def _policy(self, obs: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """Every member's sampled actions [P, B, A] for obs [P, B, O], tasks [P, B, Z] in one call."""
        generators = [member.gen["policy"] for member in self.members]
        return finite_actions(self.agent.act_members(obs, tasks, generators), self.epoch)

    def collect_for_loop(self) -> None:
        """Every member collects, relabels and stores its batch of episodes, stepped together."""
        batches = collect_together([member.collector for member in self.members], self._policy,
                                   [member.next_tasks() for member in self.members])
        for member, batch in zip(self.members, batches):
            member.store(batch)
            member.count_episodes(batch)

    def update(self, count: int) -> None:
        """``count`` batched gradient steps: one minibatch per member, one update for all."""
        generators = [member.gen["update"] for member in self.members]
        for _ in range(count):
            batches = [member.sample_batch() for member in self.members]
            stacked = TransitionBatch(**{name: torch.stack([getattr(b, name) for b in batches])
                                         for name in attrs.fields_dict(TransitionBatch)})
            metrics = self.agent.update_members(stacked, generators)
            for p, member in enumerate(self.members):
                member.record_update({key: value[p] for key, value in metrics.items()})
            faults.reached("update")

    def run(self) -> list[list[dict[str, Any]]]:
        """Train every remaining epoch; returns each member's rows from this session."""
        return run_lockstep(self.members, self.collect_for_loop, self.update, self.save_checkpoint,
                            lambda: self._stop_requested)

    def state_dict(self) -> dict[str, Any]:
        """The shared agent and every member's own state (weights_only-loadable)."""
        return {"format": 1, "spec": self.spec.to_dict(), "agent": self.agent.state_dict(),
                "members": [member.state_dict() for member in self.members]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        for member, member_state in zip(self.members, state["members"], strict=True):
            member.load_state_dict(member_state)

    def save_checkpoint(self) -> None:
        """Write the population checkpoint atomically, if a path was given."""
        if self.checkpoint_path is not None:
            save_atomic(self.state_dict(), self.checkpoint_path)
