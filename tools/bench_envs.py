"""Environment throughput: steps/s of each registered family beside a raw counterpart of the same robot.

Counterparts: the dm_control suite task of the same robot where one exists (cheetah-run, humanoid-walk,
point_mass-easy for the point families); for the ant and the Fetch arm, which have no suite task, the bare
MuJoCo stepping of the very same model with the same substeps (random controls, or random mocap moves for
Fetch) and no Task layer; for mo_gymnasium, the MO-Gymnasium environment itself (its default id, stepped
through gymnasium's API). Each repeat measures the family and its counterpart back to back for the same
wall time with uniform random actions (resetting at episode ends); the table shows medians over repeats
and the ratio family / counterpart.

    python tools/bench_envs.py [--seconds 0.5] [--repeats 5] [--family NAME ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("MUJOCO_GL", "disable")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from dm_control import suite  # noqa: E402

from hindsight.registry import REGISTRY  # noqa: E402

SUITE_COUNTERPARTS = {
    "point_reacher": ("point_mass", "easy"),
    "point_trajectory": ("point_mass", "easy"),
    "cheetah_multi": ("cheetah", "run"),
    "humanoid_direction": ("humanoid", "walk"),
}


def family_env(name: str):
    """A family at its default parameters, one of its environments (scored by the family's own reward,
    at its default parameters), and a reset that draws a task from the family's own task distribution."""
    env_cls = REGISTRY.get("env", name)
    family = env_cls(env_cls.Params())
    env = family.make_env(env_cls.Reward(env_cls.Reward.Params()), seed=0)
    tasks = env_cls.Tasks()
    generator = torch.Generator().manual_seed(0)

    def reset():
        env.task.set_task(tasks.sample(1, generator)[0].numpy())
        return env.reset()

    return family, env, reset


def suite_env(domain: str, task: str):
    """A dm_control suite task and its reset."""
    env = suite.load(domain, task, task_kwargs={"random": 0})
    return env, env.reset


class BarePhysics:
    """The family's own model stepped with the same substeps and no Task: MuJoCo plus dm_control's Physics."""

    def __init__(self, name: str):
        family, env, reset = family_env(name)
        reset()
        self.physics = env.physics
        self.substeps = env._n_sub_steps
        self.horizon = family.horizon
        self.mocap = self.physics.model.nmocap > 0
        self.initial = self.physics.get_state().copy()
        self.count = 0

    def reset(self):
        """Back to the state after the family's reset."""
        self.physics.set_state(self.initial)
        self.physics.forward()
        self.count = 0

    def step(self, action: np.ndarray) -> bool:
        """One control step; True at the family's horizon."""
        if self.mocap:
            self.physics.data.mocap_pos[0] += 0.05 * action[:3]
        else:
            self.physics.set_control(action)
        self.physics.step(self.substeps)
        self.count += 1
        return self.count >= self.horizon


def steps_per_second(step, reset, action_dim: int, seconds: float, is_last) -> float:
    """Steps/s of ``step`` with uniform random actions for ``seconds`` of wall time."""
    actions = np.random.default_rng(0).uniform(-1, 1, (4096, action_dim))
    reset()
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(64):
            if is_last(step(actions[n % len(actions)])):
                reset()
            n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def mo_gymnasium_env(family):
    """The family's MO-Gymnasium environment, raw, with its step and reset, and its substeps."""
    from hindsight.tasks.mo_gym import make_gym_env

    raw = make_gym_env(family.params.id, family.params.kwargs, max_episode_steps=family.horizon)
    seeds = iter(range(10**9))
    return raw, raw.step, lambda: raw.reset(seed=next(seeds)), raw.unwrapped.frame_skip


def substeps(env) -> int:
    """Physics steps per control step of a family's environment."""
    return env._n_sub_steps if hasattr(env, "_n_sub_steps") else env.gym_env.unwrapped.frame_skip


def bench(name: str, seconds: float, repeats: int) -> dict:
    family, env, reset = family_env(name)
    action_dim = env.action_spec().shape[0]
    if name == "mo_gymnasium":
        raw, raw_step, raw_reset, raw_substeps = mo_gymnasium_env(family)
        raw_name = f"raw {family.params.id}"
        raw_last, raw_dim = (lambda out: out[2] or out[3]), action_dim
    elif name in SUITE_COUNTERPARTS:
        domain, task = SUITE_COUNTERPARTS[name]
        raw, raw_reset = suite_env(domain, task)
        raw_name = f"{domain}-{task}"
        raw_step, raw_last = raw.step, lambda timestep: timestep.last()
        raw_dim = raw.action_spec().shape[0]
        raw_substeps = raw._n_sub_steps
    else:
        bare = BarePhysics(name)
        raw_name = f"bare {name} physics"
        raw_step, raw_reset, raw_last = bare.step, bare.reset, lambda done: done
        raw_dim, raw_substeps = action_dim, bare.substeps
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(steps_per_second(env.step, reset, action_dim, seconds, lambda timestep: timestep.last()))
        theirs.append(steps_per_second(raw_step, raw_reset, raw_dim, seconds, raw_last))
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    return {
        "family": name,
        "substeps": substeps(env),
        "steps_per_s": ours_median,
        "raw": raw_name,
        "raw_substeps": raw_substeps,
        "raw_steps_per_s": theirs_median,
        "ratio": ours_median / theirs_median,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="wall time of each measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--family", action="append", help="registered env name (repeatable; default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.family or REGISTRY.names("env")
    print(f"{'family':<20} {'sub':>3} {'steps/s':>9}   {'raw counterpart':<30} {'sub':>3} {'steps/s':>9} {'ratio':>6}")
    for name in names:
        row = bench(name, args.seconds, args.repeats)
        print(
            f"{row['family']:<20} {row['substeps']:>3} {row['steps_per_s']:>9.0f}   {row['raw']:<30} "
            f"{row['raw_substeps']:>3} {row['raw_steps_per_s']:>9.0f} {row['ratio']:>6.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
