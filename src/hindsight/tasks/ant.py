"""Ant direction: move in the direction theta of the task.

The robot is dm_control's ant (``dm_control/third_party/ant/ant.xml``, the walker of dm_control.locomotion)
with a free joint on its torso, a floor, motor gear 150 (the paper's ant; the file ships 75), physics step
0.01 s and control step 0.05 s (5 substeps). Horizon 1000. Reset noise: joint positions U(-0.1, 0.1) (the
torso quaternion renormalised), velocities 0.1 N(0, 1). The episode ends as a true terminal (discount 0)
when the state is not finite or the torso height leaves [0.2, 1.0].

Task z (1) = theta ~ U(-pi, pi). Reward, with v the torso's xy velocity over the step:
r = |v| 1[cos(angle(v, (cos theta, sin theta))) > cos 15 deg] - 0.5 |a|^2 - 0.5e-3 sum(clip(cfrc_ext, -1, 1)^2) + 1.
Reward features (3): v_x, v_y and the contact sum sum(clip(cfrc_ext, -1, 1)^2).
Observation (27): joint positions without the torso x, y (13) and all velocities (14).
Eval tasks: theta_k = -pi + pi/25 + 2 pi k / 25, k = 0..24.
"""

from __future__ import annotations

import functools
import math
import os

import dm_control
import mujoco as mj
import numpy as np
import torch
from dm_control import mjcf
from pydantic import Field

from hindsight.protocols import TaskField
from hindsight.render.views import VARIANT_COLORS, View, add_arrow
from hindsight.specs import Params
from hindsight.tasks.base import EnvFamily, FamilyParams, FieldsSideBySide, MultiTaskTask, TaskSet

ANT_XML = os.path.join(os.path.dirname(dm_control.__file__), "third_party", "ant", "ant.xml")
PHYSICS_DT = 0.01
CONTROL_DT = 0.05
GEAR = 150.0
HEALTHY_Z = (0.2, 1.0)
RESET_POSITION_NOISE = 0.1
RESET_VELOCITY_NOISE = 0.1
EVAL_COUNT = 25


class DirectionTasks(FieldsSideBySide, TaskSet):
    """theta ~ U(-pi, pi): the direction to move in; eval set theta_k = -pi + pi/25 + 2 pi k / 25."""

    task_dim = 1
    fields = (TaskField("direction", ("direction",), (-math.pi,), (math.pi,), doc="direction to move in (rad)"),)
    z_labels = ("direction",)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """[n, 1] directions drawn uniformly from [-pi, pi)."""
        u = torch.rand(n, 1, generator=generator, device=generator.device)
        return (2 * u - 1) * math.pi

    def eval_tasks(self) -> torch.Tensor:
        """[25, 1] evenly spaced directions."""
        k = torch.arange(EVAL_COUNT, dtype=torch.float32)
        return (-math.pi + math.pi / EVAL_COUNT + 2 * math.pi * k / EVAL_COUNT)[:, None]


class DirectionReward:
    """Speed inside a 15-degree cone around the task direction, minus a control cost, plus an alive bonus.

    r = |v| 1[cos(angle(v, (cos theta, sin theta))) > cos(cone)] - ctrl_cost |clip(a, -1, 1)|^2 + alive_bonus,
    with v = features[..., :2] the body's xy velocity.
    """

    feature_dim = 2
    task_dim = 1

    class Params(Params):
        ctrl_cost: float = Field(default=0.5, ge=0)
        alive_bonus: float = 1.0
        cone_deg: float = Field(default=15.0, gt=0, le=180)

    def __init__(self, params=None):
        self.params = params or self.Params()

    def reward(self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """[B, K, T] rewards for features [B, T, F >= 2], actions [B, T, A], tasks [B, K, 1]."""
        v = features[:, None, :, :2]  # [B, 1, T, 2]
        speed = torch.linalg.vector_norm(v, dim=-1)  # [B, 1, T]
        theta = tasks[..., 0, None]  # [B, K, 1]
        along = v[..., 0] * torch.cos(theta) + v[..., 1] * torch.sin(theta)  # [B, K, T]
        inside = along > math.cos(math.radians(self.params.cone_deg)) * speed
        control = actions.clamp(-1.0, 1.0).square().sum(-1)[:, None]  # [B, 1, T]
        return speed * inside - self.params.ctrl_cost * control + self.params.alive_bonus


class AntDirectionReward(DirectionReward):
    """The ant's direction reward: speed in the 15-degree cone - 0.5 |a|^2 - 0.5e-3 contact sum + 1."""

    env_features = "ant_motion"
    feature_dim = 3

    class Params(DirectionReward.Params):
        contact_cost: float = Field(default=0.5e-3, ge=0)

    def reward(self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """[B, K, T] rewards for features [B, T, 3] (v_x, v_y, contact sum), actions [B, T, 8], tasks [B, K, 1]."""
        return super().reward(features, actions, tasks) - self.params.contact_cost * features[:, None, :, 2]


class DirectionTask(MultiTaskTask):
    """A free-floating body moving on a floor: xy velocity features, fall terminals, noisy reset.

    Args (beyond MultiTaskTask's): healthy_z, the torso heights (low, high) outside of which the episode
    ends as a true terminal; position_noise, velocity_noise: the reset noise scales; uniform_velocity_noise:
    velocities U(-s, s) instead of s N(0, 1).
    """

    def __init__(
        self,
        reward,
        feature_dim,
        horizon,
        random,
        *,
        healthy_z,
        position_noise,
        velocity_noise,
        uniform_velocity_noise=False,
        control_dt,
    ):
        super().__init__(reward, feature_dim, horizon, random=random)
        self.healthy_z = healthy_z
        self.position_noise = position_noise
        self.velocity_noise = velocity_noise
        self.uniform_velocity_noise = uniform_velocity_noise
        self.control_dt = control_dt

    def reset_physics(self, physics) -> None:
        model, data = physics.model, physics.data
        data.qpos[:] = model.qpos0 + self.random.uniform(-self.position_noise, self.position_noise, model.nq)
        data.qpos[3:7] /= np.linalg.norm(data.qpos[3:7])
        if self.uniform_velocity_noise:
            data.qvel[:] = self.random.uniform(-self.velocity_noise, self.velocity_noise, model.nv)
        else:
            data.qvel[:] = self.velocity_noise * self.random.standard_normal(model.nv)
        self._xy_before = data.qpos[:2].copy()

    def record_before_step(self, physics) -> None:
        self._xy_before = physics.data.qpos[:2].copy()

    def observe(self, physics) -> np.ndarray:
        return np.concatenate([physics.data.qpos[2:], physics.data.qvel])

    def velocity(self, physics) -> np.ndarray:
        """The torso's xy velocity over the step just taken, [2]."""
        return (physics.data.qpos[:2] - self._xy_before) / self.control_dt

    def features(self, physics) -> np.ndarray:
        return self.velocity(physics)

    def is_terminal(self, physics) -> bool:
        data = physics.data
        if not (np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all()):
            return True
        low, high = self.healthy_z
        return not low <= data.qpos[2] <= high


class AntTask(DirectionTask):
    """The ant: features add the clipped contact-force sum."""

    def features(self, physics) -> np.ndarray:
        contact = float(np.square(np.clip(physics.data.cfrc_ext, -1.0, 1.0)).sum())
        return np.append(self.velocity(physics), contact)


@functools.cache
def ant_model() -> mj.MjModel:
    """dm_control's ant compiled as a standalone model: free torso, floor, gear 150, physics step 0.01 s."""
    root = mjcf.from_path(ANT_XML)
    root.option.timestep = PHYSICS_DT
    root.default.motor.gear = [GEAR]
    root.find("body", "torso").add("freejoint", name="root")
    root.asset.add(
        "texture",
        name="grid",
        type="2d",
        builtin="checker",
        width=256,
        height=256,
        rgb1=[0.2, 0.3, 0.4],
        rgb2=[0.1, 0.15, 0.2],
    )
    root.asset.add("material", name="grid", texture="grid", texrepeat=[20, 20], reflectance=0.1)
    root.worldbody.add(
        "geom", name="floor", type="plane", size=[100, 100, 0.5], material="grid", friction=[1, 0.5, 0.5]
    )
    root.worldbody.add("light", name="light", pos=[0, 0, 4], dir=[0, 0, -1], directional=True)
    return mj.MjModel.from_xml_string(root.to_xml_string(), root.get_assets())


class DirectionView(View):
    """Ant and humanoid: a camera following the torso and an arrow pointing in the task direction."""

    bar_labels = ("theta (deg)",)
    bar_title = "direction"
    DISTANCE = 4.0
    ARROW = 1.2

    def camera(self, physics, height: int, width: int):
        from dm_control.mujoco import engine

        camera = engine.MovableCamera(physics, height, width, scene_callback=self.decorate)
        self.before_frame(physics, camera)
        return camera

    def torso(self, physics) -> np.ndarray:
        return np.asarray(physics.named.data.xpos["torso"], np.float64)

    def before_frame(self, physics, camera) -> None:
        # look across the task direction, from above, so that the arrow runs left to right on screen
        assert self.task is not None  # set by begin_episode
        azimuth = math.degrees(float(self.task[0])) + 90.0
        camera.set_pose(self.torso(physics), self.DISTANCE, azimuth, -35.0)

    def decorate(self, physics, scene) -> None:
        x, y, _ = self.torso(physics)
        assert self.task is not None  # set by begin_episode
        theta = float(self.task[0])
        heading = np.array([math.cos(theta), math.sin(theta), 0.0])
        start = np.array([x, y, 0.05]) + 0.5 * self.ARROW * heading
        add_arrow(scene, start, start + self.ARROW * heading, 0.08, (1.0, 0.55, 0.0, 0.9))

    def describe(self, task: np.ndarray) -> str:
        return f"direction {math.degrees(task[0]):.0f} deg"

    def bars(self, task: np.ndarray) -> np.ndarray:
        return np.degrees(np.asarray(task[:1], np.float64))

    def draw_trajectory(self, ax, features, variants) -> None:
        """The torso's xy path (velocity features integrated) with each variant's direction as an arrow."""
        path = np.concatenate([np.zeros((1, 2)), np.cumsum(features[:, :2] * self.control_dt, 0)])
        ax.plot(path[:, 0], path[:, 1], "-", color="#7f7f7f", lw=1.2)
        ax.plot(0, 0, "o", mfc="none", mec="#7f7f7f")
        scale = max(float(np.abs(path).max()), 0.5)
        for name, task, ret in variants:
            theta = float(task[0])
            ax.annotate(
                "",
                xy=(scale * math.cos(theta), scale * math.sin(theta)),
                xytext=(0, 0),
                arrowprops=dict(arrowstyle="->", color=VARIANT_COLORS.get(name, "k"), lw=1.5),
            )
            ax.plot([], [], color=VARIANT_COLORS.get(name, "k"), label=f"{name}  R={ret:.1f}")
        ax.set_xlim(-1.15 * scale, 1.15 * scale)
        ax.set_ylim(-1.15 * scale, 1.15 * scale)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6, loc="lower left", framealpha=0.7)
        ax.set_title("torso xy path and task directions", fontsize=7)


class AntDirection(EnvFamily):
    """dm_control's ant (gear 150) moving in a task direction theta; falls are terminal (horizon 1000)."""

    Tasks = DirectionTasks
    Reward = AntDirectionReward
    features_name = "ant_motion"
    view = DirectionView
    observation_layout = "joint positions without the torso x, y (13), joint velocities (14)"

    class Params(FamilyParams):
        horizon: int = Field(default=1000, ge=1)

    feature_dim = 3

    control_dt = CONTROL_DT

    def load_model(self) -> mj.MjModel:
        return ant_model()

    def make_task(self, reward, seed: int, physics) -> AntTask:
        return AntTask(
            reward,
            self.feature_dim,
            self.horizon,
            random=seed,
            healthy_z=HEALTHY_Z,
            position_noise=RESET_POSITION_NOISE,
            velocity_noise=RESET_VELOCITY_NOISE,
            control_dt=CONTROL_DT,
        )
