"""Relabeling cost: time per relabel call of AIR and advantage relabeling, and its share of a training
iteration, on a registered family (default PointReacher) at horizons 20 and 1000 (the env's ``horizon``
parameter) with the family's own reward.

Per call: one new trajectory (B = 1), K candidates, AIR's cache already holding N trajectories (filled
with synthetic ones of the same horizon: uniform random features, actions and observations); median over
repeats, wall clock (synchronised on CUDA).
Share: a real training iteration of Algorithm 1 with the Trainer (collect one episode in dm_control,
relabel, store every copy, then 100 SAC updates with batch 256), the relabel time read from the
relabeler's diagnostics.

    python tools/bench_relabel.py [--env point_reacher] [--candidates 100] [--cache 500] [--horizons 20 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("MUJOCO_GL", "disable")

import torch  # noqa: E402

from hindsight.batches import TrajectoryBatch  # noqa: E402
from hindsight.protocols import Sizes, TaskDistribution  # noqa: E402
from hindsight.specs import validate  # noqa: E402
from hindsight.train.trainer import Trainer  # noqa: E402


def synthetic(
    n: int, horizon: int, sizes: Sizes, tasks: TaskDistribution, generator: torch.Generator
) -> TrajectoryBatch:
    """n trajectories of the run's sizes, with uniform random entries in [-1, 1] and tasks drawn from ``tasks``."""

    def uniform(*shape):
        return torch.rand(*shape, generator=generator) * 2 - 1

    return TrajectoryBatch(
        obs=uniform(n, horizon + 1, sizes.obs_dim),
        actions=uniform(n, horizon, sizes.action_dim),
        features=uniform(n, horizon, sizes.feature_dim),
        rewards=torch.zeros(n, horizon),
        tasks=tasks.sample(n, generator),
        lengths=torch.full((n,), horizon),
        terminated=torch.zeros(n, dtype=torch.bool),
    )


def spec_for(method: str, horizon: int, args) -> dict:
    """The paper's SAC settings: PointReacher's at horizon 20, the locomotion ones at longer horizons."""
    short = horizon <= 20
    relabeler = {"kind": method, "candidates": args.candidates}
    if method == "air":
        relabeler["cache"] = args.cache
    return {
        "seed": 0,
        "env": {"kind": args.env, "horizon": horizon},
        "relabeler": relabeler,
        "agent": {
            "kind": "sac",
            "hidden": [300, 300, 300] if short else [256, 256],
            "batch_size": 256,
            "gamma": 0.97 if short else 0.99,
        },
        "buffer": {"kind": "replay", "capacity": 1_000_000},
        "train": {
            "epochs": 1,
            "loops_per_epoch": 1,
            "episodes_per_loop": 1,
            "updates_per_loop": 100,
            "warmup_steps": max(horizon, 256),
        },
        "eval": {"episodes": 1},
        "logging": {"wandb": {"mode": "disabled"}, "progress": False},
        "runtime": {"device": args.device},
    }


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench(method: str, horizon: int, args) -> dict[str, float]:
    """Median seconds per relabel call, and the mean relabel share of a training iteration."""
    trainer = Trainer(validate(spec_for(method, horizon, args)))
    member = trainer.members[0]
    relabeler, ctx = member.relabeler, member.ctx
    sizes, tasks = trainer.problem.sizes, trainer.problem.tasks
    g = torch.Generator().manual_seed(0)
    while not member.warmup_done():
        member.collect_random()
    if method == "air":
        relabeler.relabel(synthetic(args.cache, horizon, sizes, tasks, g), ctx)
    calls = []
    for _ in range(args.repeats):
        batch = synthetic(1, horizon, sizes, tasks, g)
        sync(args.device)
        start = time.perf_counter()
        relabeler.relabel(batch, ctx)
        sync(args.device)
        calls.append(time.perf_counter() - start)
    relabeler.diagnostics()
    shares, iterations = [], []
    for _ in range(args.iterations):
        start = time.perf_counter()
        trainer.collect()
        trainer.update(100)
        sync(args.device)
        total = time.perf_counter() - start
        shares.append(relabeler.diagnostics()["relabel/seconds"] / total)
        iterations.append(total)
    return {
        "call_ms": 1e3 * statistics.median(calls),
        "iteration_s": statistics.mean(iterations),
        "share": statistics.mean(shares),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="point_reacher", help="a registered env family (its own reward)")
    parser.add_argument("--candidates", type=int, default=100, help="K")
    parser.add_argument("--cache", type=int, default=500, help="AIR's N")
    parser.add_argument("--horizons", type=int, nargs="+", default=[20, 1000])
    parser.add_argument("--methods", nargs="+", default=["advantage", "air"])
    parser.add_argument("--repeats", type=int, default=5, help="timed relabel calls per setting")
    parser.add_argument("--iterations", type=int, default=2, help="timed training iterations per setting")
    parser.add_argument("--device", default="cpu", help="runtime.device of the runs")
    args = parser.parse_args()

    print(
        f"{args.env}: K={args.candidates}, AIR N={args.cache}, B=1 per call, device {args.device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    print(f"{'method':<10}{'horizon':>8}{'ms / relabel call':>20}{'s / iteration':>16}{'relabel share':>15}")
    for horizon in args.horizons:
        for method in args.methods:
            r = bench(method, horizon, args)
            print(
                f"{method:<10}{horizon:>8}{r['call_ms']:>20.1f}{r['iteration_s']:>16.2f}{100 * r['share']:>14.1f}%",
                flush=True,
            )


if __name__ == "__main__":
    main()
