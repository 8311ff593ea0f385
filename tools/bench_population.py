"""Population throughput: P seeds trained in one process (batched updates) beside P separate runs.

    MUJOCO_GL=disable python tools/bench_population.py [--sizes 1 4 16] [--families point_reacher cheetah_multi]
        [--loops 2] [--repeats 1] [--device cpu] [--precision float32] [--population-threads N]
        [--separate-at-once N] [--skip-separate]

Each configuration runs one short epoch at the family's reference settings (its envs/<family>/none.yaml:
networks, batch, env steps and gradient steps per loop) after a short warm-up. Aggregate rates are summed
over members from each run's metrics (epoch wall time: collection plus updates, evaluation excluded).
The separate runs are P processes with one torch thread each, started together (or in waves of
``--separate-at-once``, as a study with that many workers runs them: on 2 cores, 2 at a time avoids
time-slicing 4 processes over 2 cores); the population is one process and may use every core
(``--population-threads``, its runtime.threads, default all). ``--device`` and ``--precision`` set every
run's runtime.device and runtime.precision. The last column is the population's aggregate updates/s over
that of the population of one (with size 1 first in --sizes): the GPU target's "P members vs one run".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from hindsight.resources import env_asset


def overrides(family: str, loops: int, device: str, precision: str) -> list[str]:
    warmup = {"point_reacher": 256, "cheetah_multi": 1000}.get(family, 500)
    return [
        "logging.wandb.mode=disabled",
        "logging.progress=false",
        "train.epochs=1",
        f"train.loops_per_epoch={loops}",
        f"train.warmup_steps={warmup}",
        "eval.episodes=1",
        f"runtime.device={device}",
        f"runtime.precision={precision}",
        "buffer.capacity=100000",
    ]


def launch(family: str, out: Path, extra: list[str]) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "hindsight",
        "run",
        str(env_asset(family, "none.yaml")),
        "--out",
        str(out),
        "--no-progress",
    ]
    for item in extra:
        command += ["--set", item]
    return subprocess.Popen(
        command,
        env={**os.environ, "MUJOCO_GL": "disable"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def rates(metrics_files: list[Path]) -> tuple[float, float]:
    """Aggregate (env steps/s, updates/s) summed over the runs' single epoch rows."""
    rows = [json.loads(path.read_text().splitlines()[-1]) for path in metrics_files]
    return sum(r["train/steps_per_s"] for r in rows), sum(r["train/updates_per_s"] for r in rows)


def wait(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        _, stderr = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"a benchmark run failed:\n{stderr[-2000:]}")


def measure(
    family: str, size: int, loops: int, device: str, precision: str, root: Path, population_threads: int, at_once: int
) -> dict[str, tuple[float, float]]:
    """Aggregate (env steps/s, updates/s) of the population of ``size`` and, unless ``at_once`` is 0, of
    ``size`` separate runs started ``at_once`` at a time."""
    base = overrides(family, loops, device, precision)
    seeds = list(range(size))
    population_dir = root / f"{family}-pop{size}"
    wait([launch(family, population_dir, base + [f"seeds={seeds}", f"runtime.threads={population_threads}"])])
    population = rates([population_dir / f"seed{s}" / "metrics.jsonl" for s in seeds])
    if at_once == 0:
        return {"population": population, "separate": (math.nan, math.nan)}
    separate_dirs = [root / f"{family}-sep{size}-{seed}" for seed in seeds]
    waves = [list(zip(seeds, separate_dirs, strict=True))[start : start + at_once] for start in range(0, size, at_once)]
    for wave in waves:
        wait([launch(family, d, base + [f"seed={seed}", "runtime.threads=1"]) for seed, d in wave])
    # every run does the same work W, and a wave of n runs at summed rate R takes n W / R: the sustained
    # aggregate over all waves is P / sum(n / R)
    wave_rates = [rates([d / "metrics.jsonl" for _, d in wave]) for wave in waves]
    return {
        "population": population,
        "separate": tuple(size / sum(len(w) / r[i] for r, w in zip(wave_rates, waves, strict=True)) for i in range(2)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--families", nargs="+", default=["point_reacher", "cheetah_multi"])
    parser.add_argument("--loops", type=int, default=2, help="loops in the measured epoch")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--precision",
        default="float32",
        choices=["float32", "bfloat16"],
        help="runtime.precision of every run (bfloat16: hidden products in bfloat16)",
    )
    parser.add_argument(
        "--population-threads",
        type=int,
        default=os.cpu_count() or 1,
        help="torch threads of the population process (the separate runs use one each)",
    )
    parser.add_argument(
        "--separate-at-once",
        type=int,
        default=0,
        help="separate runs started together, in waves (default 0: all P at once)",
    )
    parser.add_argument(
        "--skip-separate",
        action="store_true",
        help="populations only (on a GPU, 64 separate processes cost more than the figure)",
    )
    args = parser.parse_args()
    for family in args.families:
        try:
            env_asset(family, "none.yaml")
        except FileNotFoundError as exc:
            parser.error(str(exc))
    print(
        f"{'family':<15} {'P':>3} {'pop steps/s':>12} {'sep steps/s':>12} {'pop upd/s':>10} "
        f"{'sep upd/s':>10} {'ratio':>6} {'pop / pop P=1':>14}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families:
            single = math.nan  # the population of one's updates/s, once measured
            for size in args.sizes:
                at_once = 0 if args.skip_separate else args.separate_at_once or size
                results = [
                    measure(
                        family,
                        size,
                        args.loops,
                        args.device,
                        args.precision,
                        Path(tmp) / f"r{r}",
                        args.population_threads,
                        at_once,
                    )
                    for r in range(args.repeats)
                ]
                pop_steps = statistics.median(r["population"][0] for r in results)
                sep_steps = statistics.median(r["separate"][0] for r in results)
                pop_updates = statistics.median(r["population"][1] for r in results)
                sep_updates = statistics.median(r["separate"][1] for r in results)
                single = pop_updates if size == 1 else single
                print(
                    f"{family:<15} {size:>3} {pop_steps:>12.1f} {sep_steps:>12.1f} {pop_updates:>10.1f} "
                    f"{sep_updates:>10.1f} {pop_updates / sep_updates:>6.2f} {pop_updates / single:>14.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
