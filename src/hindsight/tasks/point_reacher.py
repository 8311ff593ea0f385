"""PointReacher: reach a goal, avoid an imagined obstacle, save energy, in any mix of the three.

Task z (6) = (u, v, theta_g, r_g, theta_o, r_o); goal g = r_g (cos theta_g, sin theta_g), obstacle
o likewise; weights w = (cos a sin p, sin a sin p, cos p) with a = 2 pi u, p = arccos(2 v - 1).
Reward with p the position after the step: w_dist (0.2 - |p - g|) - w_energy |a| + w_safety log10(|p - o| + 0.01) / 5.
Reward features (2): the position after the step.
Objectives (3): distance, energy and safety, the three terms above (the reward family's ``objectives``).
"""

from __future__ import annotations

import math
from typing import Literal

import mujoco as mj
import numpy as np
import torch
from pydantic import Field

from hindsight.protocols import GoalPart, TaskField
from hindsight.render.views import VARIANT_COLORS, PointView, add_geom
from hindsight.resources import env_asset
from hindsight.specs import Params
from hindsight.tasks.base import EnvFamily, FamilyParams, MultiTaskTask, TaskSet, TimeLimit

CONTROL_DT = 0.1  # one Euler physics step per control step
MAX_STEP_SPEED = 0.25  # per-step velocity bound of the reference dynamics
ACCEL_PER_STEP = 1 / 20  # per-step velocity change for a unit action
DISTANCE_CHUNK = 1 << 17  # point-centre distances per chunk in weighted_returns (float32: 512 KiB, in cache)


def reacher_weights(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Objective weights (w_dist, w_energy, w_safety) [..., 3] from u, v [...]: a unit vector in the positive octant."""
    alpha = 2 * math.pi * u
    phi = torch.arccos((2 * v - 1).clamp(-1.0, 1.0))
    return torch.stack([torch.cos(alpha) * torch.sin(phi), torch.sin(alpha) * torch.sin(phi), torch.cos(phi)], -1)


def polar_to_xy(theta: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Cartesian points [..., 2] from polar coordinates [...]."""
    return torch.stack([radius * torch.cos(theta), radius * torch.sin(theta)], -1)


def xy_to_polar(points: torch.Tensor) -> torch.Tensor:
    """(angle, radius) [..., 2] of Cartesian points [..., 2] (``polar_to_xy``'s inverse)."""
    return torch.stack([torch.atan2(points[..., 1], points[..., 0]), torch.hypot(points[..., 0], points[..., 1])], -1)


def reacher_uv(weights: torch.Tensor) -> torch.Tensor:
    """(u, v) [..., 2] encoding the direction of non-negative weights [..., 3] (``reacher_weights``' inverse)."""
    w = weights / torch.linalg.vector_norm(weights, dim=-1, keepdim=True)
    u = torch.atan2(w[..., 1], w[..., 0]) / (2 * math.pi)
    return torch.stack([u, (w[..., 2] + 1) / 2], -1)


# the fields of a task in its own terms; weights in the order of the objectives
REACHER_WEIGHTS = TaskField(
    "weights", ("distance", "energy", "safety"), (0.0,) * 3, (1.0,) * 3, unit_length=True, doc="objective weights"
)


class PointReacherTasks(TaskSet):
    """u ~ U(0, 0.25), v ~ U(0.5, 1), theta_g, theta_o ~ U(-pi, pi), r_g, r_o ~ U(0.15, 0.30)."""

    task_dim = 6
    LOW = torch.tensor([0.0, 0.5, -math.pi, 0.15, -math.pi, 0.15])
    HIGH = torch.tensor([0.25, 1.0, math.pi, 0.30, math.pi, 0.30])

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """[n, 6] tasks drawn uniformly from the box above."""
        u = torch.rand(n, self.task_dim, generator=generator, device=generator.device)
        low, high = self.LOW.to(u.device), self.HIGH.to(u.device)
        return low + (high - low) * u

    def eval_tasks(self) -> None:
        """None: evaluation draws fresh tasks each episode."""
        return None

    fields = (
        REACHER_WEIGHTS,
        TaskField("goal", ("x", "y"), (-0.3, -0.3), (0.3, 0.3), length=(0.15, 0.3), doc="goal position (m)"),
        TaskField("obstacle", ("x", "y"), (-0.3, -0.3), (0.3, 0.3), length=(0.15, 0.3), doc="obstacle position (m)"),
    )
    z_labels = ("u", "v", "goal_angle", "goal_radius", "obstacle_angle", "obstacle_radius")

    def from_fields(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """[N, 6]: u = atan2(w_energy, w_distance) / 2 pi and v = (w_safety + 1) / 2 for the unit weights
        w; each of goal and obstacle (x, y) [N, 2] as its angle atan2(y, x) and radius |(x, y)|."""
        return torch.cat(
            [reacher_uv(values["weights"]), xy_to_polar(values["goal"]), xy_to_polar(values["obstacle"])], -1
        )

    def to_fields(self, tasks: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unit weights [N, 3], goal and obstacle (x, y) [N, 2] of tasks [N, 6]."""
        return {
            "weights": reacher_weights(tasks[:, 0], tasks[:, 1]),
            "goal": polar_to_xy(tasks[:, 2], tasks[:, 3]),
            "obstacle": polar_to_xy(tasks[:, 4], tasks[:, 5]),
        }

    def goal_part(self) -> GoalPart:
        """The goal is (theta_g, r_g): the polar coordinates of a reached position."""

        def from_features(features: torch.Tensor) -> torch.Tensor:
            x, y = features[..., 0], features[..., 1]
            return torch.stack([torch.atan2(y, x), torch.hypot(x, y)], -1)

        return GoalPart(task_slice=slice(2, 4), from_features=from_features)


class WeightedObjectives:
    """The ``Objectives`` of a reward that weights distance, energy and safety by the unit vector z's first
    two components (u, v) encode (PointReacher, Fetch); subclasses define ``terms``."""

    objective_names = ("distance", "energy", "safety")

    def terms(
        self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The unweighted distance [B, K, T], energy [B, 1, T] and safety [B, K, T] terms under tasks [B, K, Z]."""
        raise NotImplementedError

    def objectives(self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """[B, T, 3]: distance, energy and safety of every step (features [B, T, F], actions [B, T, A],
        tasks [B, Z])."""
        return torch.stack([term[:, 0] for term in self.terms(features, actions, tasks[:, None])], -1)

    def weights(self, tasks: torch.Tensor) -> torch.Tensor:
        """The unit weights [N, 3] of tasks [N, Z]."""
        return reacher_weights(tasks[:, 0], tasks[:, 1])

    def with_weights(self, tasks: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Tasks [N, Z] with (u, v) encoding the direction of ``weights`` [N, 3]."""
        return torch.cat([reacher_uv(weights).to(tasks.dtype), tasks[:, 2:]], -1)


class PointReacherReward(WeightedObjectives):
    """Goal distance, energy and obstacle safety weighted by the task's unit weight vector.

    Objectives: the three unweighted terms. Their per-step lower bounds (``reference_point``): distance
    0.2 - (sqrt(2) + 0.3) when dense (positions stay in [-1, 1]^2, goals within 0.3 of the origin), 0 when
    sparse; energy -sqrt(2) (an action in [-1, 1]^2); safety log10(0.01) / 5 = -0.4 (at the obstacle).
    The front: 15 weight vectors, each under the same 2 draws of goal and obstacle.
    """

    env_features = "point_position"
    feature_dim = 2
    task_dim = 6
    front_weights = 15
    front_situations = 2

    class Params(Params):
        distance: Literal["dense", "sparse"] = Field(
            default="dense", description="dense: 0.2 - |p - g|; sparse: scale * exp(-|p - g|^2 / 0.08^2)"
        )
        sparse_scale: float = Field(default=1.0, gt=0)

    def __init__(self, params: PointReacherReward.Params | None = None):
        self.params = params or self.Params()
        lowest_distance = 0.2 - (math.sqrt(2) + 0.3) if self.params.distance == "dense" else 0.0
        self.reference_point = (lowest_distance, -math.sqrt(2), math.log10(0.01) / 5)

    def terms(
        self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The unweighted terms for features [B, T, 2], actions [B, T, 2], tasks [B, K, 6]:
        distance [B, K, T], energy [B, 1, T] (task-independent), safety [B, K, T]."""
        px, py = features[:, None, :, 0], features[:, None, :, 1]  # [B, 1, T]
        goal_x = (tasks[..., 3] * torch.cos(tasks[..., 2]))[..., None]  # [B, K, 1]
        goal_y = (tasks[..., 3] * torch.sin(tasks[..., 2]))[..., None]
        obstacle_x = (tasks[..., 5] * torch.cos(tasks[..., 4]))[..., None]
        obstacle_y = (tasks[..., 5] * torch.sin(tasks[..., 4]))[..., None]
        goal_dist = torch.hypot(px - goal_x, py - goal_y)  # [B, K, T]
        if self.params.distance == "dense":
            distance = 0.2 - goal_dist
        else:
            distance = self.params.sparse_scale * torch.exp(goal_dist.square() / -(0.08**2))
        energy = -torch.hypot(actions[..., 0], actions[..., 1])[:, None]  # [B, 1, T]
        safety = torch.log10(torch.hypot(px - obstacle_x, py - obstacle_y) + 0.01) / 5
        return distance, energy, safety

    def reward(self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """[B, K, T] rewards for features [B, T, 2], actions [B, T, 2], tasks [B, K, 6]."""
        weights = reacher_weights(tasks[..., 0], tasks[..., 1])[..., None]  # [B, K, 3, 1]
        distance, energy, safety = self.terms(features, actions, tasks)
        return weights[:, :, 0] * distance + weights[:, :, 1] * energy + weights[:, :, 2] * safety

    def weighted_returns(
        self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """[B, K] sums over t of weights [B, T] times the rewards under tasks [K, 6] (features [B, T, 2],
        actions [B, T, 2]). The energy term does not depend on the task; the distance and safety terms are
        weighted sums of functions of the distances to the K goals and K obstacles, computed in chunks of
        trajectories small enough for the [n, T, 2K] distances to stay in cache."""
        B, T, K = features.shape[0], features.shape[1], tasks.shape[0]
        objective = reacher_weights(tasks[:, 0], tasks[:, 1])  # [K, 3]
        centres = polar_to_xy(torch.cat([tasks[:, 2], tasks[:, 4]]), torch.cat([tasks[:, 3], tasks[:, 5]]))
        centres_x, centres_y = centres.t().contiguous()  # [2K]: goals, obstacles
        rows = max(1, DISTANCE_CHUNK // max(2 * K * T, 1))
        sums = [
            self._distance_sums(features[start : start + rows], centres_x, centres_y, weights[start : start + rows])
            for start in range(0, B, rows)
        ]
        goal_sums, safety_sums = torch.cat(sums).split(K, dim=1) if sums else (weights.new_zeros(0, K),) * 2
        energy = -(weights * torch.hypot(actions[..., 0], actions[..., 1])).sum(1, keepdim=True)  # [B, 1]
        if self.params.distance == "dense":
            distance = 0.2 * weights.sum(1, keepdim=True) - goal_sums
        else:
            distance = self.params.sparse_scale * goal_sums
        safety = safety_sums / (5 * math.log(10))
        return objective[:, 0] * distance + objective[:, 1] * energy + objective[:, 2] * safety

    def _distance_sums(
        self, features: torch.Tensor, centres_x: torch.Tensor, centres_y: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """[n, 2K]: weighted sums over t (weights [n, T]) of the goal term (|p - g| dense, exp(-|p - g|^2 /
        0.08^2) sparse) for the K goals, then of ln(|p - o| + 0.01) for the K obstacles; features
        [n, T, 2], centre coordinates [2K] each (goals, then obstacles), contiguous."""
        n, T, K = features.shape[0], features.shape[1], centres_x.shape[0] // 2
        dx = centres_x - features[..., 0].reshape(n * T, 1)  # [nT, 2K]; twice as fast as p - c here
        dy = centres_y - features[..., 1].reshape(n * T, 1)
        field = dx.mul_(dx).addcmul_(dy, dy)  # squared distances
        if self.params.distance == "dense":
            field.sqrt_()
        else:
            field[:, :K].div_(-(0.08**2)).exp_()
            field[:, K:].sqrt_()
        field[:, K:].add_(0.01).log_()  # natural log: the caller scales the sums by 1 / ln 10
        return torch.bmm(weights[:, None, :], field.view(n, T, 2 * K))[:, 0]


class PointReacherTask(MultiTaskTask):
    """The dm_control task: reference point dynamics on MuJoCo, observation (x, y, vx, vy, t/H)."""

    def reset_physics(self, physics) -> None:
        physics.data.qpos[:] = 0.0
        physics.data.qvel[:] = 0.0
        z = self.task
        physics.model.site_pos[physics.model.name2id("goal", "site"), :2] = polar_to_xy(
            torch.tensor(z[2]), torch.tensor(z[3])
        ).numpy()
        physics.model.site_pos[physics.model.name2id("obstacle", "site"), :2] = polar_to_xy(
            torch.tensor(z[4]), torch.tensor(z[5])
        ).numpy()

    def apply_action(self, action: np.ndarray, physics) -> None:
        # Clip the control so the per-step velocity stays in [-0.25, 0.25] after this step, exactly as
        # the reference clips v after adding a / 20.
        step_velocity = physics.data.qvel * CONTROL_DT
        low = (-MAX_STEP_SPEED - step_velocity) / ACCEL_PER_STEP
        high = (MAX_STEP_SPEED - step_velocity) / ACCEL_PER_STEP
        physics.set_control(np.clip(np.clip(action, -1.0, 1.0), low, high))

    def after_step(self, physics):
        np.clip(physics.data.qpos, -1.0, 1.0, out=physics.data.qpos)
        super().after_step(physics)

    def observe(self, physics) -> np.ndarray:
        velocity = physics.data.qvel * CONTROL_DT
        return np.concatenate([physics.data.qpos, velocity, [self.steps / self.horizon]])

    def features(self, physics) -> np.ndarray:
        return physics.data.qpos.copy()


class PointReacherView(PointView):
    """PointReacher: goal (green) and obstacle (red) are model sites placed from z at reset."""

    bar_labels = ("w_dist", "w_energy", "w_safety")
    bar_title = "objective weights w"

    @staticmethod
    def weights(task: np.ndarray) -> np.ndarray:
        """(w_dist, w_energy, w_safety) from z's (u, v)."""
        alpha, phi = 2 * math.pi * task[0], math.acos(min(max(2 * task[1] - 1, -1.0), 1.0))
        return np.array([math.cos(alpha) * math.sin(phi), math.sin(alpha) * math.sin(phi), math.cos(phi)])

    @staticmethod
    def goal(task: np.ndarray) -> np.ndarray:
        return task[3] * np.array([math.cos(task[2]), math.sin(task[2])])

    @staticmethod
    def obstacle(task: np.ndarray) -> np.ndarray:
        return task[5] * np.array([math.cos(task[4]), math.sin(task[4])])

    def decorate_task(self, scene) -> None:
        import mujoco

        assert self.task is not None  # set by begin_episode
        # rings around the sites make the goal and the obstacle visible at small sizes
        for centre, rgba in (
            (self.goal(self.task), (0.1, 0.7, 0.1, 0.35)),
            (self.obstacle(self.task), (0.85, 0.1, 0.1, 0.35)),
        ):
            add_geom(scene, mujoco.mjtGeom.mjGEOM_CYLINDER, [0.07, 0.002, 0], [centre[0], centre[1], 0.003], rgba)

    def describe(self, task: np.ndarray) -> str:
        w = self.weights(task)
        return f"w = dist {w[0]:.2f}  energy {w[1]:.2f}  safety {w[2]:.2f}"

    def bars(self, task: np.ndarray) -> np.ndarray:
        return self.weights(np.asarray(task, np.float64))

    def draw_task(self, ax, task: np.ndarray, color: str, label: str, filled: bool = True) -> None:
        """Goal as a star and obstacle as a cross, in ``color``."""
        g, o = self.goal(task), self.obstacle(task)
        ax.plot(g[0], g[1], "*", ms=11 if filled else 9, color=color, mfc=color if filled else "none", label=label)
        ax.plot(o[0], o[1], "X", ms=8 if filled else 7, color=color, mfc=color if filled else "none")

    def draw_trajectory(self, ax, features, variants) -> None:
        positions = np.concatenate([np.zeros((1, 2)), features[:, :2]])  # features: position after each step
        self.draw_path(ax, positions, color="#7f7f7f")
        for name, task, ret in variants:
            self.draw_task(ax, task, VARIANT_COLORS.get(name, "k"), f"{name}  R={ret:.2f}", filled=name == "original")
        ax.legend(fontsize=6, loc="lower left", framealpha=0.7)
        self.square(
            ax, _extent(positions, [self.goal(t) for _, t, _ in variants] + [self.obstacle(t) for _, t, _ in variants])
        )
        ax.set_title("goal * / obstacle X", fontsize=7)

    def draw_top_down(self, ax, positions: np.ndarray, task: np.ndarray, ret: float) -> None:
        """Figure 4 style: one episode's path from the start (hollow circle) with its goal (green star) and
        obstacle (red cross)."""
        g, o = self.goal(task), self.obstacle(task)
        from matplotlib.patches import Circle

        ax.add_patch(Circle(tuple(o), 0.05, color="#d62728", alpha=0.15))  # a halo, for visibility only
        self.draw_path(ax, positions)
        ax.plot(g[0], g[1], "*", ms=12, color="#2ca02c")
        ax.plot(o[0], o[1], "X", ms=9, color="#d62728")
        w = self.weights(task)
        ax.set_title(f"w=({w[0]:.2f}, {w[1]:.2f}, {w[2]:.2f})  R={ret:.2f}", fontsize=7)
        self.square(ax, _extent(positions, [g, o]))


def _extent(positions: np.ndarray, points: list[np.ndarray], minimum: float = 0.45) -> float:
    """Half-width of a square view holding the path and the points, with a margin, at most 1.05."""
    values = [np.abs(positions).max()] + [np.abs(p).max() for p in points]
    return float(min(max(max(values) + 0.08, minimum), 1.05))


class PointReacher(EnvFamily):
    """2-D point mass: reach a goal, avoid an imagined obstacle, save energy (horizon 20)."""

    Tasks = PointReacherTasks
    Reward = PointReacherReward
    features_name = "point_position"
    observation_layout = "x, y (m), vx * 0.1, vy * 0.1 (m per step), t / H"
    view = PointReacherView

    class Params(FamilyParams):
        horizon: int = Field(default=20, ge=1)
        time_limit: TimeLimit = "terminal"  # t/H is observed: the task ends at the horizon (the reference code)

    feature_dim = 2

    control_dt = CONTROL_DT
    private_model = True  # goal and obstacle sites move per episode

    def load_model(self) -> mj.MjModel:
        return mj.MjModel.from_xml_path(str(env_asset("point_reacher", "point_reacher.xml")))

    def make_task(self, reward, seed: int, physics) -> PointReacherTask:
        return PointReacherTask(reward, self.feature_dim, self.horizon, random=seed)
