"""PointTrajectory: a 2-D point mass asked to follow a sinusoid of any orientation, scale and amplitude.

Task z (3) = (theta, d, A): theta ~ U(-pi, pi), d ~ U(0.75, 1), A ~ U(-0.25, 0.25).
Reward on the position (x, y) BEFORE the step: rotate x' = x cos(theta) - y sin(theta),
y' = x sin(theta) + y cos(theta); r = 0 if x' < 0, else (x'/d + 1e-12) * N(y' - A sin(pi x'/d); 0, 0.05).
Reward features (2): the position before the step. Observation (3): x, y, t/H. Horizon 15.
"""

from __future__ import annotations

import math

import mujoco as mj
import numpy as np
import torch
from pydantic import Field

from hindsight.protocols import TaskField
from hindsight.render.views import VARIANT_COLORS, PointView, add_geom
from hindsight.resources import env_asset
from hindsight.specs import Params
from hindsight.tasks.base import EnvFamily, FamilyParams, FieldsSideBySide, MultiTaskTask, TaskSet, TimeLimit

CONTROL_DT = 0.1  # one Euler physics step from rest per control step: the point moves by a / 10
TRACK_STD = 0.05  # std of the Gaussian around the sinusoid


class PointTrajectoryTasks(FieldsSideBySide, TaskSet):
    """theta ~ U(-pi, pi), d ~ U(0.75, 1.0), A ~ U(-0.25, 0.25)."""

    task_dim = 3
    fields = (
        TaskField("orientation", ("orientation",), (-math.pi,), (math.pi,), doc="the curve's direction (rad)"),
        TaskField("length_scale", ("length_scale",), (0.75,), (1.0,), doc="half a period of the sinusoid (m)"),
        TaskField("amplitude", ("amplitude",), (-0.25,), (0.25,), doc="the sinusoid's amplitude (m)"),
    )
    z_labels = ("orientation", "length_scale", "amplitude")
    LOW = torch.tensor([-math.pi, 0.75, -0.25])
    HIGH = torch.tensor([math.pi, 1.0, 0.25])

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """[n, 3] tasks drawn uniformly from the box above."""
        u = torch.rand(n, self.task_dim, generator=generator, device=generator.device)
        low, high = self.LOW.to(u.device), self.HIGH.to(u.device)
        return low + (high - low) * u

    def eval_tasks(self) -> None:
        """None: evaluation draws fresh tasks each episode."""
        return None


class PointTrajectoryReward:
    """Progress along the rotated axis times a Gaussian density around the task's sinusoid."""

    env_features = "point_position_before"
    feature_dim = 2
    task_dim = 3

    class Params(Params):
        pass

    def __init__(self, params: PointTrajectoryReward.Params | None = None):
        self.params = params or self.Params()

    def reward(self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """[B, K, T] rewards for features [B, T, 2] (position before each step), actions [B, T, 2],
        tasks [B, K, 3]."""
        x, y = features[:, None, :, 0], features[:, None, :, 1]  # [B, 1, T]
        theta, d, amp = (tasks[..., i, None] for i in range(3))  # [B, K, 1]
        cos, sin = torch.cos(theta), torch.sin(theta)
        xr = x * cos - y * sin  # [B, K, T]
        yr = x * sin + y * cos
        offset = yr - amp * torch.sin(math.pi * xr / d)
        density = torch.exp(-0.5 * (offset / TRACK_STD).square()) / (TRACK_STD * math.sqrt(2 * math.pi))
        return torch.where(xr < 0, torch.zeros_like(xr), (xr / d + 1e-12) * density)


class PointTrajectoryTask(MultiTaskTask):
    """The dm_control task: the point moves by a/10 a step, clipped to [-1, 1]^2; observation (x, y, t/H)."""

    def reset_physics(self, physics) -> None:
        physics.data.qpos[:] = 0.0
        physics.data.qvel[:] = 0.0
        self._before = np.zeros(2)

    def record_before_step(self, physics) -> None:
        self._before = physics.data.qpos.copy()

    def apply_action(self, action: np.ndarray, physics) -> None:
        physics.data.qvel[:] = 0.0  # no momentum: each step starts from rest
        physics.set_control(np.clip(action, -1.0, 1.0))

    def after_step(self, physics):
        np.clip(physics.data.qpos, -1.0, 1.0, out=physics.data.qpos)
        super().after_step(physics)

    def observe(self, physics) -> np.ndarray:
        return np.concatenate([physics.data.qpos, [self.steps / self.horizon]])

    def features(self, physics) -> np.ndarray:
        return self._before


def sinusoid(task: np.ndarray, length: float = 1.5, points: int = 60) -> np.ndarray:
    """PointTrajectory's reference curve [points, 2] in world coordinates: y' = A sin(pi x' / d), x' >= 0."""
    theta, d, amp = task[:3]
    xr = np.linspace(0.0, length, points)
    yr = amp * np.sin(math.pi * xr / d)
    # invert x' = x cos - y sin, y' = x sin + y cos
    x = xr * math.cos(theta) + yr * math.sin(theta)
    y = -xr * math.sin(theta) + yr * math.cos(theta)
    return np.stack([x, y], -1)


class PointTrajectoryView(PointView):
    """PointTrajectory: the task's sinusoid drawn as a dotted curve on the floor."""

    bar_labels = ("theta", "d", "A")

    def decorate_task(self, scene) -> None:
        import mujoco

        assert self.task is not None  # set by begin_episode
        for xy in sinusoid(self.task, points=40):
            if abs(xy[0]) <= 1.0 and abs(xy[1]) <= 1.0:
                add_geom(
                    scene, mujoco.mjtGeom.mjGEOM_SPHERE, [0.008, 0, 0], [xy[0], xy[1], 0.005], (0.1, 0.6, 0.1, 0.8)
                )

    def describe(self, task: np.ndarray) -> str:
        return f"theta {math.degrees(task[0]):.0f} deg  d {task[1]:.2f}  A {task[2]:.2f}"

    def draw_trajectory(self, ax, features, variants) -> None:
        # features: the position BEFORE each step; the path starts there
        positions = features[:, :2]
        self.draw_path(ax, positions, color="#7f7f7f")
        for name, task, ret in variants:
            curve = sinusoid(task)
            ax.plot(
                curve[:, 0],
                curve[:, 1],
                "-" if name == "original" else "--",
                color=VARIANT_COLORS.get(name, "k"),
                lw=1.2,
                label=f"{name}  R={ret:.2f}",
            )
        ax.legend(fontsize=6, loc="lower left", framealpha=0.7)
        self.square(ax, 1.0)
        ax.set_title("path and each task's curve", fontsize=7)

    def draw_top_down(self, ax, positions: np.ndarray, task: np.ndarray, ret: float) -> None:
        """The path with the task's sinusoid."""
        curve = sinusoid(task)
        ax.plot(curve[:, 0], curve[:, 1], "-", color="#2ca02c", lw=1.5, alpha=0.8)
        self.draw_path(ax, positions)
        ax.set_title(f"theta={math.degrees(task[0]):.0f}  d={task[1]:.2f}  A={task[2]:.2f}  R={ret:.2f}", fontsize=7)
        self.square(ax, 1.0)


class PointTrajectory(EnvFamily):
    """2-D point mass following a sinusoid of any orientation, length scale and amplitude (horizon 15)."""

    Tasks = PointTrajectoryTasks
    Reward = PointTrajectoryReward
    features_name = "point_position_before"
    view = PointTrajectoryView
    observation_layout = "x, y (m), t / H"

    class Params(FamilyParams):
        horizon: int = Field(default=15, ge=1)
        time_limit: TimeLimit = "terminal"  # t/H is observed: the task ends at the horizon (the reference code)

    feature_dim = 2

    control_dt = CONTROL_DT

    def load_model(self) -> mj.MjModel:
        return mj.MjModel.from_xml_path(str(env_asset("point_trajectory", "point_trajectory.xml")))

    def make_task(self, reward, seed: int, physics) -> PointTrajectoryTask:
        return PointTrajectoryTask(reward, self.feature_dim, self.horizon, random=seed)
