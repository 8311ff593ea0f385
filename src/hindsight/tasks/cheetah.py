"""HalfCheetah multi-objective: run forward or backward, flip, jump and save energy, in any mix.

The robot is dm_control's planar cheetah (suite ``cheetah.xml``), with the front-thigh gear set to 120 as in
the paper's HalfCheetah (dm_control ships 90; every other gear already matches). Physics step 0.01 s,
control step 0.05 s (5 substeps), horizon 1000, no terminal. Reset noise: joint positions U(-0.1, 0.1),
velocities 0.1 N(0, 1).

Reward features (4) after each step: forward velocity (x_after - x_before) / dt, control cost -0.1 |a|^2,
torso height (the rootz joint), pitch rate (the rooty joint velocity).
Task z (4): g ~ N(0, I_4) (redrawn if |g| < 1e-4), z = (g1, |g2|, |g3|, g4) / |g|. Reward r = z . features.
Observation (17): joint positions without rootx (8) and all velocities (9).
Objectives (4): the four features; z is their weight vector.
"""

from __future__ import annotations

import json

import mujoco as mj
import numpy as np
import torch
from dm_control.suite import cheetah as suite_cheetah
from pydantic import Field

from hindsight.protocols import TaskField
from hindsight.render.views import View
from hindsight.resources import env_asset
from hindsight.specs import Params
from hindsight.tasks.base import EnvFamily, FamilyParams, LinearInTasks, MultiTaskTask, TaskSet

CONTROL_DT = 0.05
CONTROL_COST = 0.1
RESET_POSITION_NOISE = 0.1
RESET_VELOCITY_NOISE = 0.1
TOTAL_MASS = 14.0  # kg, the suite model's settotalmass
FRONT_THIGH_GEAR = 120.0
ROOTX, ROOTZ, ROOTY = 0, 1, 2  # the torso's joints, first in qpos and qvel
EVAL_SEED = 2020  # the shipped eval set is ``CheetahTasks().sample(25, torch.Generator().manual_seed(EVAL_SEED))``
EVAL_COUNT = 25
# per-step lower bounds of the objectives (see CheetahReward)
LOWEST_VELOCITY = -10.0  # m/s
LOWEST_HEIGHT = -0.7  # m: the torso starts 0.7 m above the floor
LOWEST_PITCH_RATE = -10.0  # rad/s


class CheetahTasks(TaskSet):
    """Unit vectors z = (g1, |g2|, |g3|, g4) / |g| with g ~ N(0, I_4): non-negative energy and height weights."""

    task_dim = 4
    fields = (
        TaskField(
            "weights",
            ("velocity", "energy", "height", "pitch_rate"),
            (-1.0, 0.0, 0.0, -1.0),
            (1.0, 1.0, 1.0, 1.0),
            unit_length=True,
            doc="objective weights (negative velocity: run backward; negative pitch rate: flip backward)",
        ),
    )
    z_labels = ("w_velocity", "w_energy", "w_height", "w_pitch_rate")

    def from_fields(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """[N, 4]: the weights [N, 4] scaled to unit length."""
        weights = values["weights"]
        return weights / torch.linalg.vector_norm(weights, dim=-1, keepdim=True)

    def to_fields(self, tasks: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weights [N, 4]: the tasks [N, 4] themselves."""
        return {"weights": tasks}

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """[n, 4] unit task vectors; draws with |g| < 1e-4 are redrawn."""
        g = torch.randn(n, self.task_dim, generator=generator, device=generator.device)
        small = torch.linalg.vector_norm(g, dim=-1) < 1e-4
        while bool(small.any()):
            g[small] = torch.randn(int(small.sum()), self.task_dim, generator=generator, device=generator.device)
            small = torch.linalg.vector_norm(g, dim=-1) < 1e-4
        g[:, 1:3] = g[:, 1:3].abs()
        return g / torch.linalg.vector_norm(g, dim=-1, keepdim=True)

    def eval_tasks(self) -> torch.Tensor:
        """[25, 4]: the fixed evaluation set shipped in ``envs/cheetah_multi/eval_tasks.json``."""
        data = json.loads(env_asset("cheetah_multi", "eval_tasks.json").read_text())
        return torch.tensor(data["tasks"], dtype=torch.float32)


class CheetahReward(LinearInTasks):
    """r = z . (forward velocity, control cost, torso height, pitch rate).

    Objectives: the four features. Their per-step lower bounds (``reference_point``): control cost -0.6
    (0.1 |a|^2 for six actions in [-1, 1]); height -0.7 m (the torso starts 0.7 m above the floor);
    velocity -10 m/s and pitch rate -10 rad/s, which have no physical bound: beyond any single step of
    uniform random, bang-bang or sinusoidal actions (at most 2.8 m/s and 8 rad/s, either way). The front:
    10 non-negative weight vectors (forward running, saving energy, height, forward pitch), one episode each.
    """

    env_features = "cheetah_objectives"
    feature_dim = 4
    task_dim = 4
    objective_names = ("velocity", "energy", "height", "pitch_rate")
    reference_point = (LOWEST_VELOCITY, -CONTROL_COST * 6, LOWEST_HEIGHT, LOWEST_PITCH_RATE)
    front_weights = 10
    front_situations = 1

    class Params(Params):
        pass

    def __init__(self, params: CheetahReward.Params | None = None):
        self.params = params or self.Params()

    def with_weights(self, tasks: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``weights`` [N, 4] scaled to unit length: the weights are the whole task."""
        return (weights / torch.linalg.vector_norm(weights, dim=-1, keepdim=True)).to(tasks.dtype)


class CheetahTask(MultiTaskTask):
    """The dm_control task: noisy reset, four objective features, never terminates."""

    def reset_physics(self, physics) -> None:
        model, data = physics.model, physics.data
        data.qpos[:] = model.qpos0 + self.random.uniform(-RESET_POSITION_NOISE, RESET_POSITION_NOISE, model.nq)
        data.qvel[:] = RESET_VELOCITY_NOISE * self.random.standard_normal(model.nv)
        self._x_before = 0.0

    def record_before_step(self, physics) -> None:
        self._x_before = float(physics.data.qpos[ROOTX])

    def observe(self, physics) -> np.ndarray:
        return np.concatenate([physics.data.qpos[1:], physics.data.qvel])

    def features(self, physics) -> np.ndarray:
        qpos, qvel = physics.data.qpos, physics.data.qvel
        forward = (qpos[ROOTX] - self._x_before) / CONTROL_DT
        assert self._action is not None  # set by before_step
        control = -CONTROL_COST * float(np.square(np.clip(self._action, -1.0, 1.0)).sum())
        return np.array([forward, control, qpos[ROOTZ], qvel[ROOTY]])


def cheetah_model() -> mj.MjModel:
    """dm_control's cheetah with the paper's front-thigh gear.

    The suite XML sets the total mass with the compiler attribute ``settotalmass``, which MuJoCo 3.17
    deprecates (with a warning at every compile); the same total mass is applied after compiling instead,
    giving identical masses, inertias and dynamics.
    """
    xml, assets = suite_cheetah.get_model_and_assets()
    xml = xml.replace(b'<compiler settotalmass="14"/>', b"")
    model = mj.MjModel.from_xml_string(xml, assets)
    mj.mj_setTotalmass(model, TOTAL_MASS)
    mj.mj_setConst(model, mj.MjData(model))
    model.actuator("fthigh").gear[0] = FRONT_THIGH_GEAR
    return model


class CheetahView(View):
    """HalfCheetah: dm_control's tracking ``side`` camera; the task weighs objectives and has no place."""

    bar_labels = ("velocity", "energy", "height", "pitch rate")
    bar_title = "objective weights z"

    def camera(self, physics, height: int, width: int):
        from dm_control.mujoco import engine

        return engine.Camera(physics, height, width, camera_id="side")

    def describe(self, task: np.ndarray) -> str:
        return "  ".join(f"{n} {v:+.2f}" for n, v in zip(self.bar_labels, task, strict=False))

    def draw_trajectory(self, ax, features, variants) -> None:
        """The trajectory's mean features beside which the tasks' weights read as preferences."""
        means = features.mean(0)
        ax.bar(np.arange(len(means)), means, color="#7f7f7f")
        ax.set_xticks(np.arange(len(means)), ["fwd vel", "ctrl cost", "height", "pitch rate"], fontsize=6)
        ax.axhline(0, color="k", lw=0.5)
        ax.tick_params(labelsize=6)
        ax.set_title("mean reward features; R: " + ", ".join(f"{n} {r:.1f}" for n, _, r in variants), fontsize=6)


class CheetahMulti(EnvFamily):
    """dm_control's planar cheetah with a 4-objective task: velocity, energy, height, pitch rate (horizon 1000)."""

    Tasks = CheetahTasks
    Reward = CheetahReward
    features_name = "cheetah_objectives"
    view = CheetahView
    observation_layout = (
        "joint positions without rootx (8: rootz, rooty, bthigh, bshin, bfoot, fthigh, fshin, ffoot), "
        "joint velocities (9: rootx, then the same)"
    )

    class Params(FamilyParams):
        horizon: int = Field(default=1000, ge=1)

    feature_dim = 4

    control_dt = CONTROL_DT

    def load_model(self) -> mj.MjModel:
        return cheetah_model()

    def make_task(self, reward, seed: int, physics) -> CheetahTask:
        return CheetahTask(reward, self.feature_dim, self.horizon, random=seed)
