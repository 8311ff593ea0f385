"""Relabeling fidelity on PointReacher (the paper's Figure 6): does relabeling recover the task a
near-optimal trajectory was collected for?

A policy acts on fresh tasks z; each trajectory is relabeled by reward, advantage and AIR relabeling
(K candidates, AIR cache N) and the chosen z' is compared with z: Pearson correlation (circular for the
two angles) and mean absolute error (wrapped for the angles) per task component and per objective weight.
The scatter of original vs relabeled energy weight is saved as a PNG.

The policy is either a trained checkpoint (SAC: deterministic action, V from its critics) or, by default,
a scripted controller: a batched trajectory optimiser through PointReacher's reference dynamics (which the
dm_control environment reproduces exactly) that maximises the discounted return of each task; its V(s0, v)
is the discounted return of its own plan for v.

    python tools/fidelity.py [--tasks 1000] [--candidates 100] [--cache 10] [--checkpoint PATH] [--out fidelity.png]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "disable")

import attrs  # noqa: E402
import torch  # noqa: E402

from hindsight.batches import TrajectoryBatch, discounted_returns  # noqa: E402
from hindsight.build import build_agent, build_problem, sizes_of  # noqa: E402
from hindsight.protocols import RelabelContext, Sizes  # noqa: E402
from hindsight.relabel.advantage import AdvantageRelabeling  # noqa: E402
from hindsight.relabel.air import AIR  # noqa: E402
from hindsight.relabel.reward import RewardRelabeling  # noqa: E402
from hindsight.specs import upgrade, validate  # noqa: E402
from hindsight.tasks.point_reacher import (  # noqa: E402
    ACCEL_PER_STEP,
    MAX_STEP_SPEED,
    PointReacher,
    PointReacherReward,
    PointReacherTasks,
    reacher_weights,
)
from hindsight.train.checkpoint import read_checkpoint  # noqa: E402
from hindsight.train.collector import Collector  # noqa: E402

COMPONENTS = ["u", "v", "theta_g", "r_g", "theta_o", "r_o"]
ANGLES = {"theta_g", "theta_o"}
WEIGHTS = ["w_dist", "w_energy", "w_safety"]


def reference_rollout(start: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Positions after each step [n, T, 2] from start states (x, y, vx, vy) [n, 4] and actions [n, T, 2]."""
    position, velocity = start[:, :2], start[:, 2:4]
    positions = []
    for t in range(actions.shape[1]):
        velocity = (velocity + actions[:, t] * ACCEL_PER_STEP).clamp(-MAX_STEP_SPEED, MAX_STEP_SPEED)
        position = (position + velocity).clamp(-1.0, 1.0)
        positions.append(position)
    return torch.stack(positions, 1)


class ScriptedReacher:
    """Open-loop plans optimised by Adam (cosine-annealed learning rate) through the reference dynamics,
    memoised per (start, task).

    Implements the parts of the Agent protocol the relabelers and the collector use: ``gamma``,
    ``value`` and ``act``.
    """

    def __init__(self, reward: PointReacherReward, horizon: int, gamma: float, iterations: int, seed: int):
        self.reward, self.horizon, self.gamma = reward, horizon, gamma
        self.iterations = iterations
        self.generator = torch.Generator().manual_seed(seed)
        self._plans: dict[bytes, tuple[torch.Tensor, float]] = {}  # key -> (actions [T, 2], return)

    @staticmethod
    def _keys(starts: torch.Tensor, tasks: torch.Tensor) -> list[bytes]:
        rows = torch.cat([starts, tasks], -1).contiguous().numpy()
        return [row.tobytes() for row in rows]

    def optimise(self, starts: torch.Tensor, tasks: torch.Tensor) -> None:
        """Plan for every (start [n, 4], task [n, 6]) pair not planned yet, all in one batch."""
        keys = self._keys(starts, tasks)
        todo = [i for i, k in enumerate(keys) if k not in self._plans]
        todo = list({keys[i]: i for i in todo}.values())
        if not todo:
            return
        starts, tasks = starts[todo], tasks[todo]
        n, T = len(todo), self.horizon
        pre_tanh = (0.01 * torch.randn(n, T, 2, generator=self.generator)).requires_grad_(True)
        optimiser = torch.optim.Adam([pre_tanh], lr=0.1)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, self.iterations)
        mask = torch.ones(1, 1, T)
        for _ in range(self.iterations):
            actions = torch.tanh(pre_tanh)
            returns = self._returns(starts, actions, tasks, mask)
            optimiser.zero_grad(set_to_none=True)
            (-returns.sum()).backward()
            optimiser.step()
            schedule.step()
        with torch.no_grad():
            actions = torch.tanh(pre_tanh)
            returns = self._returns(starts, actions, tasks, mask)
        for j, i in enumerate(todo):
            self._plans[keys[i]] = (actions[j], float(returns[j]))

    def _returns(self, starts, actions, tasks, mask) -> torch.Tensor:
        positions = reference_rollout(starts, actions)
        rewards = self.reward.reward(positions, actions, tasks[:, None])  # [n, 1, T]
        return discounted_returns(rewards, mask, self.gamma)[:, 0]

    def value(self, obs: torch.Tensor, tasks: torch.Tensor, member: int = 0) -> torch.Tensor:
        """Discounted return [B, K] of the plan from each obs [B, O] for each task [B, K, Z] (one member)."""
        B, K, Z = tasks.shape
        starts = obs[:, None, :4].expand(B, K, 4).reshape(B * K, 4)
        flat = tasks.reshape(B * K, Z)
        self.optimise(starts, flat)
        return torch.tensor([self._plans[k][1] for k in self._keys(starts, flat)]).view(B, K)

    def act(
        self, obs: torch.Tensor, tasks: torch.Tensor, deterministic: bool = True, generator=None, member: int = 0
    ) -> torch.Tensor:
        """The planned action of the current step for each episode (planned at its first step)."""
        steps = torch.round(obs[:, 4] * self.horizon).long()
        starts = torch.zeros(len(steps), 4)  # plans are keyed by the episode's start state: the origin at rest
        self.optimise(starts, tasks)
        plans = torch.stack([self._plans[k][0] for k in self._keys(starts, tasks)])  # [B, T, 2]
        return plans[torch.arange(len(steps)), steps]


def load_policy(args) -> tuple[object, int]:
    """The agent (a trained checkpoint's, its first member, on the CPU; or the scripted controller) and the
    horizon."""
    if args.checkpoint:
        state = read_checkpoint(Path(args.checkpoint))
        spec = upgrade(state["spec"])  # a spec from before the runtime section: its agent's device moved there
        spec["runtime"] = {**(spec.get("runtime") or {}), "device": "cpu"}
        resolved = validate(spec)
        problem = build_problem(resolved)
        agent = build_agent(resolved, problem.sizes)
        agent.load_state_dict(state["agent"])
        return agent, problem.sizes.horizon
    return ScriptedReacher(
        PointReacherReward(), PointReacher().horizon, args.gamma, args.plan_iterations, args.seed
    ), PointReacher().horizon


def circular_corr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Jammalamadaka's circular correlation of two angle samples [n]."""

    def centred(x):
        return torch.sin(x - torch.atan2(torch.sin(x).mean(), torch.cos(x).mean()))

    sa, sb = centred(a), centred(b)
    return float((sa * sb).sum() / torch.sqrt((sa**2).sum() * (sb**2).sum()))


def fidelity(original: torch.Tensor, relabeled: torch.Tensor) -> dict[str, tuple[float, float]]:
    """Per component and weight: (correlation, mean absolute error) between z [n, 6] and z' [n, 6]."""
    out = {}
    for i, name in enumerate(COMPONENTS):
        a, b = original[:, i], relabeled[:, i]
        if name in ANGLES:
            diff = torch.remainder(b - a + math.pi, 2 * math.pi) - math.pi
            out[name] = (circular_corr(a, b), float(diff.abs().mean()))
        else:
            out[name] = (float(torch.corrcoef(torch.stack([a, b]))[0, 1]), float((b - a).abs().mean()))
    wa, wb = reacher_weights(original[:, 0], original[:, 1]), reacher_weights(relabeled[:, 0], relabeled[:, 1])
    for i, name in enumerate(WEIGHTS):
        out[name] = (
            float(torch.corrcoef(torch.stack([wa[:, i], wb[:, i]]))[0, 1]),
            float((wb[:, i] - wa[:, i]).abs().mean()),
        )
    return out


FIELDS = ("obs", "actions", "features", "rewards", "tasks", "lengths", "terminated")


def relabel_all(batch: TrajectoryBatch, agent, sizes: Sizes, args) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """Relabel every trajectory with each method, ``args.batch`` per call: z' [n, 6] and diagnostics."""
    methods = {
        "reward": RewardRelabeling(RewardRelabeling.Params(candidates=args.candidates), sizes),
        "advantage": AdvantageRelabeling(AdvantageRelabeling.Params(candidates=args.candidates), sizes),
        "air": AIR(AIR.Params(candidates=args.candidates, cache=args.cache), sizes),
    }
    relabeled, diagnostics = {}, {}
    for name, relabeler in methods.items():
        ctx = RelabelContext(
            tasks=PointReacherTasks(),
            reward=PointReacherReward(),
            agent=agent,
            generator=torch.Generator().manual_seed(args.seed + 1),
        )
        chunks = [
            relabeler.relabel(TrajectoryBatch(**{f: getattr(batch, f)[i : i + args.batch] for f in FIELDS}), ctx)
            for i in range(0, batch.num, args.batch)
        ]
        relabeled[name] = torch.cat(chunks)[:, 0]
        diagnostics[name] = relabeler.diagnostics()
    return relabeled, diagnostics


def report(title: str, tasks: torch.Tensor, relabeled: dict[str, torch.Tensor], diagnostics: dict[str, dict]) -> dict:
    """Print the fidelity table and the relabelers' diagnostics; return the table."""
    print(f"\n== {title} ==")
    print(f"{'component':<10}" + "".join(f"{m + ' corr':>16}{m + ' MAE':>15}" for m in relabeled))
    table = {m: fidelity(tasks, relabeled[m]) for m in relabeled}
    for comp in COMPONENTS + WEIGHTS:
        print(f"{comp:<10}" + "".join(f"{table[m][comp][0]:>16.3f}{table[m][comp][1]:>15.3f}" for m in relabeled))
    for m, d in diagnostics.items():
        print(
            f"{m:<10} relabel {1e3 * d['relabel/seconds'] / d['relabel/calls']:.2f} ms/call, mean percentile "
            f"of chosen {d['relabel/percentile']:.3f}, original won {d['relabel/original_won']:.3f}"
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="episodes, each on a fresh task")
    parser.add_argument("--candidates", type=int, default=100, help="K")
    parser.add_argument("--cache", type=int, default=10, help="AIR's N")
    parser.add_argument("--batch", type=int, default=10, help="trajectories per relabel call")
    parser.add_argument("--envs", type=int, default=20, help="environments stepped in lockstep")
    parser.add_argument("--checkpoint", help="a trained PointReacher checkpoint instead of the scripted controller")
    parser.add_argument("--gamma", type=float, default=0.97, help="discount of the scripted controller")
    parser.add_argument("--plan-iterations", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (small tensors: 1 is fastest)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="fidelity.png")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    agent, horizon = load_policy(args)
    family = PointReacher(PointReacher.Params(horizon=horizon))
    reward, task_dist = PointReacherReward(), PointReacherTasks()
    sizes = sizes_of(family, task_dist.task_dim)
    tasks = task_dist.sample(args.tasks, torch.Generator().manual_seed(args.seed))
    decoys = task_dist.sample(args.tasks, torch.Generator().manual_seed(args.seed + 2))
    if isinstance(agent, ScriptedReacher):  # plan the rollouts and every candidate the relabelers will draw at once
        replica = torch.Generator().manual_seed(args.seed + 1)
        fresh = [
            task_dist.sample(max(args.candidates - min(args.batch, args.tasks - i), 0), replica)
            for i in range(0, args.tasks, args.batch)
        ]
        every = torch.cat([tasks, decoys, *fresh])
        agent.optimise(torch.zeros(every.shape[0], 4), every)
    planned = time.perf_counter()

    envs = [family.make_env(reward, args.seed + i) for i in range(args.envs)]
    parts = [
        Collector(envs[: len(chunk)], horizon).collect(lambda obs, z: agent.act(obs, z, deterministic=True), chunk)
        for chunk in tasks.split(args.envs)
    ]
    batch = TrajectoryBatch(**{f: torch.cat([getattr(p, f) for p in parts]) for f in FIELDS})
    rolled = time.perf_counter()

    returns = (batch.rewards * batch.mask).sum(-1)
    source = args.checkpoint or f"scripted controller (Adam, {args.plan_iterations} iterations, gamma {args.gamma})"
    print(
        f"policy: {source}; {args.tasks} tasks, K={args.candidates}, AIR N={args.cache}, "
        f"{args.batch} trajectories per relabel call"
    )
    print(f"mean undiscounted return of the rollouts: {returns.mean():.3f}")
    print(f"time: plan {planned - start:.1f} s, rollout {rolled - planned:.1f} s")
    settings = {
        "original among the candidates (the paper's protocol)": relabel_all(batch, agent, sizes, args),
        # the relabelers take their B 'original' candidates from batch.tasks: swap in unrelated draws
        "original hidden (the batch's tasks replaced by unrelated draws)": relabel_all(
            attrs.evolve(batch, tasks=decoys), agent, sizes, args
        ),
    }
    tables = {title: report(title, tasks, *result) for title, result in settings.items()}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    original_energy = reacher_weights(tasks[:, 0], tasks[:, 1])[:, 1]
    fig, axes = plt.subplots(2, 3, figsize=(12, 8), sharex=True, sharey=True)
    for row, (title, (relabeled, _)) in zip(axes, settings.items(), strict=True):
        for ax, m in zip(row, relabeled, strict=True):
            energy = reacher_weights(relabeled[m][:, 0], relabeled[m][:, 1])[:, 1]
            ax.scatter(original_energy, energy, s=4, alpha=0.5)
            ax.plot([0, 1], [0, 1], "k--", lw=0.8)
            corr, mae = tables[title][m]["w_energy"]
            ax.set_title(f"{m} ({title.split(' (')[0]})\nr = {corr:.2f}, MAE = {mae:.3f}", fontsize=9)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
        row[0].set_ylabel("relabeled energy weight")
    for ax in axes[-1]:
        ax.set_xlabel("original energy weight")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"\nsaved {Path(args.out).resolve()}")


if __name__ == "__main__":
    main()
