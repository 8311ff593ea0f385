"""Fetch reach with an obstacle: the real Fetch arm reaching a goal while avoiding a point and saving energy.

The robot is the Fetch MJCF of gymnasium-robotics (``envs/assets/fetch/reach.xml``, read from the installed
package) plus one site marking the obstacle. The gripper is blocked (finger joints held at 0) and the arm
is driven through the mocap body: the first three action components move the mocap target by 0.05 a
metres from the gripper's current position; the fourth (gripper) component is ignored. One control step is
100 physics substeps of 0.002 s. Horizon 50. Every episode starts from the same saved initial pose,
computed once per environment as gymnasium-robotics does it (arm slides (0.4049, 0.48, 0), mocap welds
reset, gripper moved to its start above the table over 10 x 20 substeps).

Positions are expressed RELATIVE to the initial gripper position p0: in the observation, the features and
the task. Observation (10): gripper position - p0 (3), finger joint positions (2), gripper linear velocity
* dt (3), finger velocities * dt (2), with dt = 0.2 s. Reward features (3): gripper position - p0 after
the step.

Task z (8) = (u, v, goal xyz, obstacle xyz): u ~ U(0, 0.25), v ~ U(0.5, 1), goal and obstacle
~ U(-0.15, 0.15)^3 (relative to p0). Weights w as in PointReacher; with d = |p - goal|, d_o = |p - obstacle|:
r = w_dist D(d) - w_energy |a[:3]| + w_safety log10(d_o + 0.01) / 5, D one of s exp(-d^2 / 0.08^2)
(default, s = 1), 1[d < 0.04], or 0.2 - d.
Optional ``action_noise``: std of Gaussian noise added to the xyz action before it moves the arm.
Objectives (3): distance D(d), energy -|a[:3]| and safety log10(d_o + 0.01) / 5.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from typing import Literal

import mujoco as mj
import numpy as np
import torch
from dm_env import specs
from pydantic import Field

from hindsight.protocols import GoalPart, TaskField
from hindsight.render.views import VARIANT_COLORS, View, add_geom
from hindsight.resources import env_asset
from hindsight.specs import Params
from hindsight.tasks.base import EnvFamily, FamilyParams, MultiTaskTask, TaskSet, TimeLimit
from hindsight.tasks.point_reacher import (
    REACHER_WEIGHTS,
    PointReacherView,
    WeightedObjectives,
    reacher_uv,
    reacher_weights,
)

SUBSTEPS = 100
ACTION_SCALE = 0.05  # metres of mocap motion for a unit action
GRIPPER_ROTATION = np.array([1.0, 0.0, 1.0, 0.0]) / np.sqrt(2.0)  # gripper pointing down
INITIAL_ARM = {"robot0:slide0": 0.4049, "robot0:slide1": 0.48, "robot0:slide2": 0.0}
GRIPPER_START_OFFSET = np.array([-0.498, 0.005, -0.431 + 0.2])  # from gymnasium-robotics' FetchReach setup
SETUP_STEPS = 10 * 20
FINGERS = ("robot0:r_gripper_finger_joint", "robot0:l_gripper_finger_joint")
TASK_RANGE = 0.15
EVAL_SEED = 2020  # the shipped eval set is ``FetchTasks().sample(25, torch.Generator().manual_seed(EVAL_SEED))``
EVAL_COUNT = 25
# the gripper stayed within 1.51 m of its start when pushed along each of the 26 axis and diagonal
# directions for 100 steps (twice the horizon); goals lie within 0.15 sqrt(3) = 0.26 m of it
FARTHEST_GOAL = 1.9


def fetch_xml_path() -> str:
    """Path of gymnasium-robotics' FetchReach MJCF in the installed package (the package is not imported)."""
    found = importlib.util.find_spec("gymnasium_robotics")
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError("fetch_reach needs the gymnasium-robotics package (it ships the Fetch MJCF)")
    return os.path.join(found.submodule_search_locations[0], "envs", "assets", "fetch", "reach.xml")


class FetchTasks(TaskSet):
    """u ~ U(0, 0.25), v ~ U(0.5, 1), goal and obstacle ~ U(-0.15, 0.15)^3 relative to the initial gripper."""

    task_dim = 8
    LOW = torch.tensor([0.0, 0.5] + [-TASK_RANGE] * 6)
    HIGH = torch.tensor([0.25, 1.0] + [TASK_RANGE] * 6)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """[n, 8] tasks drawn uniformly from the box above."""
        u = torch.rand(n, self.task_dim, generator=generator, device=generator.device)
        low, high = self.LOW.to(u.device), self.HIGH.to(u.device)
        return low + (high - low) * u

    def eval_tasks(self) -> torch.Tensor:
        """[25, 8]: the fixed evaluation set shipped in ``envs/fetch_reach/eval_tasks.json``."""
        data = json.loads(env_asset("fetch_reach", "eval_tasks.json").read_text())
        return torch.tensor(data["tasks"], dtype=torch.float32)

    fields = (
        REACHER_WEIGHTS,
        TaskField(
            "goal", ("x", "y", "z"), (-TASK_RANGE,) * 3, (TASK_RANGE,) * 3, doc="goal, relative to the start (m)"
        ),
        TaskField(
            "obstacle",
            ("x", "y", "z"),
            (-TASK_RANGE,) * 3,
            (TASK_RANGE,) * 3,
            doc="obstacle, relative to the start (m)",
        ),
    )
    z_labels = ("u", "v", "goal_x", "goal_y", "goal_z", "obstacle_x", "obstacle_y", "obstacle_z")

    def from_fields(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """[N, 8]: u = atan2(w_energy, w_distance) / 2 pi and v = (w_safety + 1) / 2 for the unit weights
        w, then the goal and obstacle [N, 3] as they are."""
        return torch.cat([reacher_uv(values["weights"]), values["goal"], values["obstacle"]], -1)

    def to_fields(self, tasks: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unit weights [N, 3], goal and obstacle [N, 3] of tasks [N, 8]."""
        return {"weights": reacher_weights(tasks[:, 0], tasks[:, 1]), "goal": tasks[:, 2:5], "obstacle": tasks[:, 5:8]}

    def goal_part(self) -> GoalPart:
        """The goal is z[2:5], the reached gripper position (relative to its start) read from the features."""
        return GoalPart(task_slice=slice(2, 5), from_features=lambda features: features[..., :3])


class FetchReward(WeightedObjectives):
    """Goal distance, energy and obstacle safety in 3-D, weighted by the PointReacher unit weights.

    Objectives: the three unweighted terms. Their per-step lower bounds (``reference_point``): distance 0
    (gaussian, indicator) or 0.2 - 1.9 (dense: ``FARTHEST_GOAL``); energy -sqrt(3) (|a[:3]| of a clipped
    action); safety log10(0.01) / 5 = -0.4 (at the obstacle). The front: 10 weight vectors under one draw
    of goal and obstacle (an episode costs about 0.2 s).
    """

    env_features = "fetch_gripper"
    feature_dim = 3
    task_dim = 8
    front_weights = 10
    front_situations = 1

    class Params(Params):
        distance: Literal["gaussian", "indicator", "dense"] = Field(
            default="gaussian",
            description="gaussian: scale * exp(-d^2 / 0.08^2); indicator: 1[d < 0.04]; dense: 0.2 - d",
        )
        scale: float = Field(default=1.0, gt=0, description="s of the gaussian distance term")

    def __init__(self, params: FetchReward.Params | None = None):
        self.params = params or self.Params()
        lowest_distance = 0.2 - FARTHEST_GOAL if self.params.distance == "dense" else 0.0
        self.reference_point = (lowest_distance, -math.sqrt(3), math.log10(0.01) / 5)

    def reward(self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """[B, K, T] rewards for features [B, T, 3] (gripper position after the step), actions [B, T, 4],
        tasks [B, K, 8]."""
        distance, energy, safety = self.terms(features, actions, tasks)
        w = reacher_weights(tasks[..., 0], tasks[..., 1])[:, :, None]  # [B, K, 1, 3]
        return w[..., 0] * distance + w[..., 1] * energy + w[..., 2] * safety

    def terms(
        self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The unweighted terms for features [B, T, 3], actions [B, T, 4], tasks [B, K, 8]: distance
        [B, K, T], energy [B, 1, T] (task-independent), safety [B, K, T]."""
        p = features[:, None, :, :3]  # [B, 1, T, 3]
        d = torch.linalg.vector_norm(p - tasks[:, :, None, 2:5], dim=-1)  # [B, K, T]
        d_obstacle = torch.linalg.vector_norm(p - tasks[:, :, None, 5:8], dim=-1)
        if self.params.distance == "gaussian":
            distance = self.params.scale * torch.exp(-d.square() / 0.08**2)
        elif self.params.distance == "indicator":
            distance = (d < 0.04).to(d.dtype)
        else:
            distance = 0.2 - d
        energy = -torch.linalg.vector_norm(actions[..., :3].clamp(-1.0, 1.0), dim=-1)[:, None]  # [B, 1, T]
        safety = torch.log10(d_obstacle + 0.01) / 5
        return distance, energy, safety


class FetchTask(MultiTaskTask):
    """The dm_control task: mocap end-effector control, blocked gripper, deterministic reset.

    Args (beyond MultiTaskTask's): action_noise, the std of Gaussian noise added to the xyz action.
    """

    def __init__(self, reward, feature_dim, horizon, random, *, action_noise: float, physics):
        super().__init__(reward, feature_dim, horizon, random=random)
        self.action_noise = action_noise
        model = physics.model
        weld = int(np.flatnonzero(model.eq_type == mj.mjtEq.mjEQ_WELD)[0])
        obj1, obj2 = model.eq_obj1id[weld], model.eq_obj2id[weld]
        self._hand = obj2 if model.body_mocapid[obj1] != -1 else obj1  # the body welded to the mocap
        self._grip = model.name2id("robot0:grip", "site")
        self._fingers = [model.jnt_qposadr[model.name2id(name, "joint")] for name in FINGERS]
        self._finger_dofs = [model.jnt_dofadr[model.name2id(name, "joint")] for name in FINGERS]
        self._goal_site = model.name2id("target0", "site")
        self._obstacle_site = model.name2id("obstacle0", "site")
        self._dt = SUBSTEPS * model.opt.timestep
        self._initial = self._settle(physics)
        self.initial_grip = self._initial["grip"]

    def _settle(self, physics) -> dict[str, np.ndarray]:
        """gymnasium-robotics' FetchReach setup; returns the initial state to restore every episode."""
        model, data = physics.model, physics.data
        with physics.reset_context():
            for name, value in INITIAL_ARM.items():
                data.qpos[model.jnt_qposadr[model.name2id(name, "joint")]] = value
            model.eq_data[:, :7] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]  # weld the hand onto the mocap itself
        data.mocap_pos[0] = GRIPPER_START_OFFSET + data.site_xpos[self._grip]
        data.mocap_quat[0] = GRIPPER_ROTATION
        physics.step(SETUP_STEPS)
        data.qpos[self._fingers] = 0.0  # the blocked gripper, from the first observation on
        physics.forward()
        return {
            "qpos": data.qpos.copy(),
            "qvel": data.qvel.copy(),
            "mocap_pos": data.mocap_pos.copy(),
            "grip": data.site_xpos[self._grip].copy(),
        }

    def action_spec(self, physics):
        # The model has no actuators: the action moves the mocap body (xyz) plus an ignored gripper command.
        return specs.BoundedArray((4,), np.float64, -1.0, 1.0, name="mocap_xyz_gripper")

    def reset_physics(self, physics) -> None:
        model, data = physics.model, physics.data
        data.qpos[:] = self._initial["qpos"]
        data.qvel[:] = self._initial["qvel"]
        data.mocap_pos[:] = self._initial["mocap_pos"]
        data.mocap_quat[0] = GRIPPER_ROTATION
        z = self.task
        model.site_pos[self._goal_site] = (
            self.initial_grip + z[2:5] - model.body_pos[model.site_bodyid[self._goal_site]]
        )
        model.site_pos[self._obstacle_site] = self.initial_grip + z[5:8]

    def apply_action(self, action: np.ndarray, physics) -> None:
        move = action[:3]
        if self.action_noise > 0:
            move = move + self.action_noise * self.random.standard_normal(3)
        data = physics.data
        data.mocap_pos[0] = data.xpos[self._hand] + ACTION_SCALE * np.clip(move, -1.0, 1.0)
        data.mocap_quat[0] = GRIPPER_ROTATION
        physics.forward()

    def after_step(self, physics):
        physics.data.qpos[self._fingers] = 0.0  # the blocked gripper
        physics.forward()
        super().after_step(physics)

    def observe(self, physics) -> np.ndarray:
        data = physics.data
        velocity = np.zeros(6)
        mj.mj_objectVelocity(physics.model.ptr, data.ptr, mj.mjtObj.mjOBJ_SITE, self._grip, velocity, 0)
        return np.concatenate(
            [
                data.site_xpos[self._grip] - self.initial_grip,
                data.qpos[self._fingers],
                velocity[3:] * self._dt,
                data.qvel[self._finger_dofs] * self._dt,
            ]
        )

    def features(self, physics) -> np.ndarray:
        return physics.data.site_xpos[self._grip] - self.initial_grip


def fetch_model() -> mj.MjModel:
    """gymnasium-robotics' FetchReach model plus an ``obstacle0`` site."""
    spec = mj.MjSpec.from_file(fetch_xml_path())
    spec.worldbody.add_site(
        name="obstacle0", size=[0.02, 0.02, 0.02], rgba=[0.2, 0.2, 1.0, 1.0], type=mj.mjtGeom.mjGEOM_SPHERE
    )
    return spec.compile()


class FetchView(View):
    """Fetch reach: goal and obstacle are model sites placed from z at reset; a fixed camera on the arm."""

    bar_labels = ("w_dist", "w_energy", "w_safety")
    bar_title = "objective weights w"

    def begin_episode(self, physics, task: np.ndarray) -> None:
        super().begin_episode(physics, task)
        self.start = np.asarray(physics.named.data.site_xpos["robot0:grip"], np.float64).copy()

    def camera(self, physics, height: int, width: int):
        from dm_control.mujoco import engine

        camera = engine.MovableCamera(physics, height, width, scene_callback=self.decorate)
        camera.set_pose(self.start, self.DISTANCE, self.AZIMUTH, self.ELEVATION)
        return camera

    DISTANCE, AZIMUTH, ELEVATION = 1.1, 180.0, -30.0

    def decorate(self, physics, scene) -> None:
        import mujoco

        # translucent halos around the goal (green) and obstacle (blue) sites, placed from z (relative to start)
        assert self.task is not None  # set by begin_episode
        for offset, rgba in ((self.task[2:5], (0.1, 0.8, 0.1, 0.35)), (self.task[5:8], (0.2, 0.3, 1.0, 0.35))):
            add_geom(scene, mujoco.mjtGeom.mjGEOM_SPHERE, [0.04, 0, 0], self.start + offset, rgba)

    def describe(self, task: np.ndarray) -> str:
        w = PointReacherView.weights(task)
        return f"w = dist {w[0]:.2f}  energy {w[1]:.2f}  safety {w[2]:.2f}"

    def bars(self, task: np.ndarray) -> np.ndarray:
        return PointReacherView.weights(np.asarray(task, np.float64))

    def draw_trajectory(self, ax, features, variants) -> None:
        """Top-down (x, y) view of the gripper path relative to its start, each variant's goal and obstacle."""
        path = np.concatenate([np.zeros((1, 3)), features[:, :3]])
        ax.plot(path[:, 0], path[:, 1], "-", color="#7f7f7f", lw=1.2)
        ax.plot(0, 0, "o", mfc="none", mec="#7f7f7f")
        for name, task, ret in variants:
            color = VARIANT_COLORS.get(name, "k")
            filled = name == "original"
            ax.plot(
                task[2], task[3], "*", ms=10, color=color, mfc=color if filled else "none", label=f"{name}  R={ret:.2f}"
            )
            ax.plot(task[5], task[6], "X", ms=7, color=color, mfc=color if filled else "none")
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6, loc="lower left", framealpha=0.7)
        ax.set_title("gripper x-y from start; goal * / obstacle X", fontsize=7)


class FetchReach(EnvFamily):
    """The Fetch arm reaching a goal, avoiding an obstacle and saving energy, in any mix (horizon 50)."""

    Tasks = FetchTasks
    Reward = FetchReward
    features_name = "fetch_gripper"
    view = FetchView
    observation_layout = (
        "gripper position - p0 (3, m), finger positions (2), gripper velocity * 0.2 s (3), "
        "finger velocities * 0.2 s (2)"
    )

    class Params(FamilyParams):
        horizon: int = Field(default=50, ge=1)
        time_limit: TimeLimit = "terminal"  # the task ends at the horizon, as in the reference code
        action_noise: float = Field(default=0.0, ge=0, description="std of Gaussian noise on the xyz action")

    feature_dim = 3

    private_model = True  # the task moves marker sites per episode

    @property
    def control_dt(self) -> float:
        """SUBSTEPS physics steps of the model's own timestep."""
        return self.model.opt.timestep * SUBSTEPS

    def load_model(self) -> mj.MjModel:
        return fetch_model()

    def make_task(self, reward, seed: int, physics) -> FetchTask:
        return FetchTask(
            reward, self.feature_dim, self.horizon, random=seed, action_noise=self.params.action_noise, physics=physics
        )
