"""Learning check for the foundation: SAC with no relabeling on PointReacher over several seeds, beside a
uniformly random policy scored on the same kind of evaluation episodes.

    MUJOCO_GL=disable python tools/baseline_point_reacher.py [--seeds 0 1 2] [--epochs 40] [--out runs/baseline]
        [--set runtime.precision=bfloat16 ...]

Prints each seed's final eval return, the mean of its last five evaluations and its training speed, their
means, and the random policy's return. ``--set`` overrides the spec (e.g. to compare agent or runtime settings).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from hindsight.build import build_problem
from hindsight.resources import env_asset
from hindsight.seeding import make_generator
from hindsight.specs import load_spec
from hindsight.train.collector import Collector
from hindsight.train.run import execute
from hindsight.train.trainer import make_envs


def random_policy_return(spec, episodes: int, seed: int = 12345) -> float:
    """Mean undiscounted return of uniform random actions on ``episodes`` fresh tasks."""
    problem = build_problem(spec)
    collector = Collector(make_envs(problem, seed, "env/random", episodes), problem.sizes.horizon, problem.reward)
    gen = make_generator(seed, "random-policy")
    tasks = problem.tasks.sample(episodes, gen)
    action_dim = problem.sizes.action_dim
    batch = collector.collect(lambda obs, z: torch.rand(obs.shape[0], action_dim, generator=gen) * 2 - 1, tasks)
    return float(((batch.rewards * batch.mask).sum(-1)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("runs/baseline"))
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE", help="spec override, repeatable"
    )
    args = parser.parse_args()
    spec_path = env_asset("point_reacher", "none.yaml")
    finals, last_fives, speeds = [], [], []
    for seed in args.seeds:
        spec = load_spec(
            spec_path,
            [
                f"seed={seed}",
                f"train.epochs={args.epochs}",
                "logging.wandb.mode=disabled",
                "logging.progress=false",
                *args.overrides,
            ],
        )
        run_dir = args.out / f"seed{seed}"
        rows = execute(spec, run_dir, resume=True) or []
        if not rows:  # already finished earlier: read its metrics
            import json

            rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        last = rows[-1]
        finals.append(last["eval/return_mean"])
        evaluations = [r["eval/return_mean"] for r in rows if r["eval/return_mean"] is not None]
        last_fives.append(statistics.mean(evaluations[-5:]))
        speeds.append(statistics.median(r["train/steps_per_s"] for r in rows))
        print(
            f"seed {seed}: eval return {last['eval/return_mean']:.3f} after {last['env_steps']} env steps "
            f"(last five evaluations {last_fives[-1]:.3f}), "
            f"median {speeds[-1]:.1f} env steps/s "
            f"({statistics.median(r['train/updates_per_s'] for r in rows):.0f} updates/s)"
        )
    spec = load_spec(spec_path, ["logging.wandb.mode=disabled"])
    random_return = random_policy_return(spec, episodes=200)
    print(
        f"SAC (none), {len(args.seeds)} seeds: mean final eval return {statistics.mean(finals):.3f} "
        f"(min {min(finals):.3f}, max {max(finals):.3f}); mean of the last five evaluations "
        f"{statistics.mean(last_fives):.3f}"
    )
    print(f"uniform random policy, 200 episodes: mean return {random_return:.3f}")
    print(f"training speed: median {statistics.median(speeds):.1f} env steps/s")


if __name__ == "__main__":
    main()
