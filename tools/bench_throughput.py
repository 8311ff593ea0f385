"""Training throughput: our SAC against Stable-Baselines3's SAC, the update's FLOP rate, relabel overhead.

1. Env steps/s while training, ours (the Trainer: collector, buffer, updates) and SB3's SAC on the same
   family through ``hindsight.adapters.GymnasiumAdapter``, with identical settings: 256x256 networks,
   batch 256, one gradient step per env step, the same learning rate and discount, after the same
   warm-up of uniform random actions. Each repeat trains ours then SB3 (order swapped every other
   repeat) for the same number of env steps; the table shows medians over repeats and the median of
   the paired ratios. Both run in this one process, so with the same torch thread count (``--threads``)
   and the same heap policy (our Trainer applies ``runtime.keep_freed_memory`` when built, before SB3 runs).
2. Achieved GFLOP/s of our update (matmul FLOPs counted by torch's FlopCounterMode, over the measured
   update time) beside the best of square float32 matmuls measured on this machine, alternating.
3. With AIR (K = 100, N = 500, the cache filled first): the share of training wall time spent relabeling, at the bench's
   settings and under each family's shipped ``envs/<family>/air.yaml``; HIPI-RL's training time per
   loop against AIR's at the bench's settings.

    python tools/bench_throughput.py [--families point_reacher cheetah_multi] [--repeats 5]
        [--steps 200] [--threads 1] [--device cpu] [--cheetah-horizon 100] [--compile] [--bf16] [--skip-sb3]
        [--skip-relabel] [--relabel-loops 5] [--hipi-loops 1] [--hipi-candidates C ...]
        [--relabel-precision float32]

On a GPU (updates/s at batch 256: eager, compiled and bfloat16; no SB3 or relabeling):

    python tools/bench_throughput.py --device cuda --compile --bf16 --families point_reacher --skip-sb3 --skip-relabel
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "disable")

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from hindsight.registry import REGISTRY  # noqa: E402
from hindsight.specs import load_spec, validate  # noqa: E402
from hindsight.train.trainer import Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = [256, 256]
BATCH = 256
LR = 3e-4
GAMMA = 0.99
# our variants: runtime settings (the spec's runtime section) on top of the shared ones
VARIANTS = {"ours": {}, "ours+compile": {"compile": True}, "ours+bf16": {"precision": "bfloat16"}}


def our_variants(args) -> list[str]:
    """The names of our variants the arguments ask for (keys of VARIANTS)."""
    return ["ours"] + (["ours+compile"] if args.compile else []) + (["ours+bf16"] if args.bf16 else [])


def env_params(family: str, args) -> dict:
    """The family's parameters for the bench (cheetah episodes shortened so a repeat stays short)."""
    return {"horizon": args.cheetah_horizon} if family == "cheetah_multi" else {}


def horizon_of(family: str, args) -> int:
    env_cls = REGISTRY.get("env", family)
    return env_cls(env_cls.Params.model_validate(env_params(family, args))).horizon


def our_trainer(family: str, args, relabeler: dict | None = None, runtime: dict | None = None) -> Trainer:
    """A single-seed Trainer (P = 1) with one episode per loop and one update per env step
    (updates_per_loop = horizon); ``runtime`` adds to the spec's runtime section (device, threads)."""
    horizon = horizon_of(family, args)
    spec = validate(
        {
            "name": f"bench-{family}",
            "seed": 0,
            "env": {"kind": family, **env_params(family, args)},
            "relabeler": relabeler or {"kind": "none"},
            "agent": {"kind": "sac", "hidden": HIDDEN, "batch_size": BATCH, "lr": LR, "gamma": GAMMA},
            "buffer": {"kind": "replay", "capacity": 200_000},
            "train": {"epochs": 1, "episodes_per_loop": 1, "updates_per_loop": horizon, "warmup_steps": args.warmup},
            "logging": {"wandb": {"mode": "disabled"}, "progress": False},
            "runtime": {"device": args.device, "threads": args.threads, **(runtime or {})},
        }
    )
    trainer = Trainer(spec)
    torch.set_num_threads(args.threads)  # runtime.threads applies on CPU only; the bench runs both at one count
    return trainer


def warmup(trainer: Trainer) -> None:
    """Uniform random actions until ``train.warmup_steps`` env steps are stored (the Trainer's warm-up)."""
    member = trainer.members[0]
    while not member.warmup_done():
        member.collect_random()


def train_ours(trainer: Trainer, steps: int) -> tuple[float, float]:
    """Train for at least ``steps`` env steps (whole loops); env steps per wall second and per CPU second."""
    updates, member = trainer.spec.run.train.updates_per_loop, trainer.members[0]
    start, cpu, before = time.perf_counter(), time.process_time(), member.env_steps
    while member.env_steps - before < steps:
        trainer.collect()
        trainer.update(updates)
    done = member.env_steps - before
    return done / (time.perf_counter() - start), done / (time.process_time() - cpu)


def sb3_model(family: str, args):
    """SB3's SAC on the adapter: same networks, batch, lr, discount; one gradient step per env step."""
    from stable_baselines3 import SAC as SB3SAC

    from hindsight.adapters import GymnasiumAdapter

    env = GymnasiumAdapter(family, env_params=env_params(family, args), seed=0)
    model = SB3SAC(
        "MlpPolicy",
        env,
        learning_rate=LR,
        buffer_size=200_000,
        learning_starts=args.warmup,
        batch_size=BATCH,
        tau=5e-3,
        gamma=GAMMA,
        train_freq=1,
        gradient_steps=1,
        policy_kwargs={"net_arch": HIDDEN},
        seed=0,
        device=args.device,
        verbose=0,
    )
    model.learn(args.warmup)  # uniform random actions until learning_starts, as our warm-up
    return model


def train_sb3(model, steps: int) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - start), steps / (time.process_time() - cpu)


def throughput(args) -> None:
    print(
        f"== training throughput (env steps/s), {args.repeats} repeats of {args.steps} env steps; one process, "
        f"so both run with torch threads {args.threads} and the heap policy runtime.keep_freed_memory sets =="
    )
    names = our_variants(args) + ([] if args.skip_sb3 else ["sb3"])
    rows = []
    for family in args.families:
        if family not in REGISTRY.names("env"):
            print(f"{family}: not registered, skipped")
            continue
        runners = {}
        for name in names:
            start = time.perf_counter()
            if name == "sb3":
                model = sb3_model(family, args)
                runners[name] = lambda model=model: train_sb3(model, args.steps)
            else:
                trainer = our_trainer(family, args, runtime=VARIANTS[name])
                warmup(trainer)
                trainer.update(1)  # compiles, when asked to
                runners[name] = lambda trainer=trainer: train_ours(trainer, args.steps)
            torch.set_num_threads(args.threads)
            print(f"  {family} {name}: set up and warmed up in {time.perf_counter() - start:.1f} s", flush=True)
        rates: dict[str, list[float]] = {name: [] for name in names}
        cpu_rates: dict[str, list[float]] = {name: [] for name in names}
        for r in range(args.repeats):
            for name in names if r % 2 == 0 else names[::-1]:
                wall, cpu = runners[name]()
                rates[name].append(wall)
                cpu_rates[name].append(cpu)
            print(
                f"  {family} repeat {r}: "
                + ", ".join(f"{n} {rates[n][-1]:.1f} ({cpu_rates[n][-1]:.1f} per CPU s)" for n in names),
                flush=True,
            )
        rows.append((family, *(summarise(v, names) for v in (rates, cpu_rates))))
    others = [name for name in names if name != "sb3" and "sb3" in names]
    header = (
        f"{'family':<16}{'clock':<6}"
        + "".join(f"{name:>14}" for name in names)
        + "".join(f"{name + ' / sb3':>20}" for name in others)
    )
    print(header)
    for family, *clocks in rows:
        for clock, (medians, ratios) in zip(("wall", "cpu"), clocks, strict=True):
            print(
                f"{family:<16}{clock:<6}"
                + "".join(f"{medians[name]:>14.1f}" for name in names)
                + "".join(f"{ratios[name]:>20.2f}" for name in others)
            )
    print(
        "wall: env steps per second of wall time; cpu: per second of this process's CPU time (robust to "
        "other processes sharing the cores); ratios are medians of the per-repeat ratios"
    )


def summarise(rates: dict[str, list[float]], names: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """Median rate of each name, and the median per-repeat ratio of each to sb3."""
    medians = {name: statistics.median(v) for name, v in rates.items()}
    ratios = {
        name: statistics.median(a / b for a, b in zip(rates[name], rates["sb3"], strict=True))
        for name in names
        if name != "sb3" and "sb3" in rates
    }
    return medians, ratios


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, n: int, device: str) -> tuple[float, float]:
    """Wall and process-CPU seconds per call of fn over n calls (queued GPU work included)."""
    _sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / n, (time.process_time() - cpu) / n


def matmul_gflops(size: int, n: int, device: str, dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """GFLOP/s of a square matmul (float32 by default) per wall second and per CPU second."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    a @ b
    return tuple(2 * size**3 / t / 1e9 for t in _timed(lambda: a @ b, n, device))


def flop_rate(args) -> None:
    flops = None
    for name in our_variants(args):
        flops = update_flop_rate(args, name, flops)


def update_flop_rate(args, name: str, flops: int | None) -> int:
    """Print updates/s and GFLOP/s of our update beside the matmul ceiling (float32, and bfloat16 for the
    bf16 variant); return the update's FLOPs (counted once, eagerly: the variants keep the math)."""
    family = args.families[0]
    trainer = our_trainer(family, args, runtime=VARIANTS[name])
    warmup(trainer)
    member = trainer.members[0]
    agent, buffer = trainer.agent, member.buffer
    gen, update_gen = member.gen["buffer"], member.gen["update"]
    batch = buffer.sample(BATCH, gen)
    for _ in range(5):
        agent.update(batch, update_gen)
    if flops is None:
        with FlopCounterMode(display=False) as counter:
            agent.update(batch, update_gen)
        flops = counter.get_total_flops()
    walls, cpus, ceilings = [], [], []
    sizes = ((256, 400), (512, 60), (1024, 10)) if args.device == "cpu" else ((1024, 100), (4096, 20), (8192, 5))
    dtype = torch.bfloat16 if VARIANTS[name].get("precision") == "bfloat16" else torch.float32
    for _ in range(args.repeats):
        walls_cpus = _timed(lambda: agent.update(buffer.sample(BATCH, gen), update_gen), 50, args.device)
        walls.append(walls_cpus[0])
        cpus.append(walls_cpus[1])
        ceilings.append(
            [max(rates) for rates in zip(*(matmul_gflops(s, m, args.device, dtype) for s, m in sizes), strict=True)]
        )
    print(
        f"== update FLOP rate ({family}, batch {BATCH}, {HIDDEN} nets, {args.device}, threads {args.threads}, "
        f"{name}; ceiling: {dtype} matmuls) =="
    )
    print(f"update: {flops / 1e6:.0f} MFLOP (matmuls)")
    for clock, seconds, ceiling in (("wall", walls, [c[0] for c in ceilings]), ("cpu", cpus, [c[1] for c in ceilings])):
        per_update, top = statistics.median(seconds), statistics.median(ceiling)
        print(
            f"  per {clock} second: {1 / per_update:.1f} updates/s, {flops / per_update / 1e9:.1f} GFLOP/s; "
            f"matmul ceiling {top:.1f} GFLOP/s; {flops / per_update / 1e9 / top:.0%} of ceiling",
            flush=True,
        )
    return flops


def fill_relabel_cache(trainer: Trainer) -> None:
    """Warm up, then collect random episodes until an AIR relabeler's cache is full (AIR's cost grows with
    the cached trajectories, so a half-empty cache would flatter it)."""
    warmup(trainer)
    member = trainer.members[0]
    relabeler = member.relabeler
    cache = getattr(getattr(relabeler, "params", None), "cache", None)
    while cache is not None and len(relabeler) < cache:
        member.collect_random()


def relabel_overhead(args) -> None:
    print(f"== relabel overhead: AIR (K=100, N=500) over {args.relabel_loops} loops, HIPI over {args.hipi_loops} ==")
    for family in args.families:
        if family not in REGISTRY.names("env"):
            continue
        per_loop = {}
        runs = [
            ("air", {"kind": "air", "candidates": 100, "cache": 500}, args.relabel_loops),
            ("hipi", {"kind": "hipi"}, args.hipi_loops),
        ]
        runs += [(f"hipi-C{c}", {"kind": "hipi", "candidates": c}, args.hipi_loops) for c in args.hipi_candidates]
        for name, spec, loops in runs:
            if spec["kind"] not in REGISTRY.names("relabeler") or loops < 1:
                continue
            trainer = our_trainer(family, args, relabeler=spec, runtime={"precision": args.relabel_precision})
            relabeler = trainer.members[0].relabeler
            fill_relabel_cache(trainer)
            relabeler.diagnostics()  # drop the warm-up's figures
            start = time.perf_counter()
            for _ in range(loops):
                trainer.collect()
                trainer.update(trainer.spec.run.train.updates_per_loop)
            wall = time.perf_counter() - start
            spent = relabeler.diagnostics()["relabel/seconds"]
            per_loop[name] = wall / loops
            print(
                f"{family:<16}{name:<9} {wall / loops:7.2f} s per loop (one episode + one update per step), "
                f"relabeling {spent / wall:.2%} of it",
                flush=True,
            )
        for name in [n for n in per_loop if n.startswith("hipi") and "air" in per_loop]:
            print(f"{family:<16}{name} / AIR training time per loop: {per_loop[name] / per_loop['air']:.2f}x")


def reference_relabel(args) -> None:
    """AIR's share of training time under each family's shipped AIR spec (envs/<family>/air.yaml)."""
    print(f"== relabel overhead under the shipped AIR specs, {args.relabel_loops} loops ==")
    for family in args.families:
        path = ROOT / "envs" / family / "air.yaml"
        if not path.exists():
            continue
        spec = load_spec(
            path,
            ["logging.wandb.mode=disabled", "logging.progress=false", f"runtime.precision={args.relabel_precision}"],
        )
        trainer = Trainer(spec)
        torch.set_num_threads(args.threads)
        relabeler = trainer.members[0].relabeler
        fill_relabel_cache(trainer)
        relabeler.diagnostics()
        train = spec.run.train
        start = time.perf_counter()
        for _ in range(args.relabel_loops):
            trainer.collect()
            trainer.update(train.updates_per_loop)
        wall = time.perf_counter() - start
        spent = relabeler.diagnostics()["relabel/seconds"]
        params = spec.params["relabeler"]
        print(
            f"{family:<16}air (K={params.candidates}, N={params.cache}), {train.episodes_per_loop} episode(s) of "
            f"{trainer.problem.sizes.horizon} steps + {train.updates_per_loop} updates per loop: "
            f"{wall / args.relabel_loops:.2f} s per loop, relabeling {spent / wall:.2%} of it",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["point_reacher", "cheetah_multi"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200, help="env steps per repeat and library")
    parser.add_argument("--warmup", type=int, default=1000, help="env steps of random actions before training")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads, both libraries")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N], both libraries")
    parser.add_argument("--cheetah-horizon", type=int, default=100)
    parser.add_argument("--relabel-loops", type=int, default=5, help="loops timed with AIR")
    parser.add_argument("--hipi-loops", type=int, default=1, help="loops timed with HIPI (slow)")
    parser.add_argument(
        "--hipi-candidates",
        type=int,
        nargs="*",
        default=[],
        help="also HIPI with these candidate caps (relabeler.candidates)",
    )
    parser.add_argument(
        "--relabel-precision",
        default="float32",
        choices=["float32", "bfloat16"],
        help="runtime.precision of the relabeling runs",
    )
    parser.add_argument("--compile", action="store_true", help="also ours with runtime.compile (slow to start)")
    parser.add_argument("--bf16", action="store_true", help="also ours with runtime.precision=bfloat16")
    parser.add_argument("--skip-sb3", action="store_true")
    parser.add_argument("--skip-relabel", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    throughput(args)
    flop_rate(args)
    if not args.skip_relabel:
        relabel_overhead(args)
        reference_relabel(args)


if __name__ == "__main__":
    main()
