"""How each env family is shown: camera, task markers drawn into the scene, task read-outs, drawings.

Markers are added to the rendered scene only (``scene_callback`` on the dm_control camera); the model and
its physics stay untouched. A family without a view here is not supported by the render commands.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

# Colours of the task variants in the relabeling picture (original, then each relabeler).
VARIANT_COLORS = {"original": "#222222", "stored": "#8c564b", "AIR": "#ff7f0e", "advantage": "#1f77b4",
                  "HER": "#2ca02c"}


def _add_geom(scene, geom_type: int, size, pos, rgba, mat=None) -> Any:
    """Append one decorative geom to ``scene`` (no-op when the scene is full); returns it or None."""
    import mujoco

    if scene.ngeom >= scene.maxgeom:
        return None
    scene.ngeom += 1                    # ``scene.geoms`` only exposes the first ngeom entries
    geom = scene.geoms[scene.ngeom - 1]
    mat = np.eye(3).flatten() if mat is None else np.asarray(mat, np.float64).flatten()
    mujoco.mjv_initGeom(geom, geom_type, np.asarray(size, np.float64), np.asarray(pos, np.float64), mat,
                        np.asarray(rgba, np.float32))
    geom.category = mujoco.mjtCatBit.mjCAT_DECOR
    return geom


def _add_arrow(scene, start, end, width: float, rgba) -> None:
    """Append an arrow from ``start`` to ``end`` (3-D points) to ``scene``."""
    import mujoco

    geom = _add_geom(scene, mujoco.mjtGeom.mjGEOM_ARROW, [width, width, 1.0], start, rgba)
    if geom is not None:
        mujoco.mjv_connector(geom, mujoco.mjtGeom.mjGEOM_ARROW, width, np.asarray(start, np.float64),
                             np.asarray(end, np.float64))


class View:
    """Base view: a named or free camera, no markers, the task vector as bars.

    Class attributes:
        top_down: the family has a 2-D top-down picture (the point families).
        bar_labels: names of the bar values that ``bars`` returns (default: the task components).
    """

    top_down: ClassVar[bool] = False
    bar_labels: ClassVar[tuple[str, ...]] = ()
    bar_title: ClassVar[str] = "task vector z"

    def __init__(self, control_dt: float = 0.05):
        self.control_dt = control_dt
        self.task: np.ndarray | None = None

    # ----- video -----
    def begin_episode(self, physics, task: np.ndarray) -> None:
        """Called after each reset with the episode's task [Z]."""
        self.task = np.asarray(task, np.float64)

    def camera(self, physics, height: int, width: int):
        """A dm_control camera for this family, decorating the scene through ``decorate``."""
        from dm_control.mujoco import engine

        camera = engine.MovableCamera(physics, height, width, scene_callback=self.decorate)
        camera.set_pose(physics.model.stat.center, 2.5 * physics.model.stat.extent, 90, -30)
        return camera

    def before_frame(self, physics, camera) -> None:
        """Called before each frame (e.g. to move a tracking camera)."""

    def decorate(self, physics, scene) -> None:
        """Add task markers to the scene of the frame being rendered."""

    def describe(self, task: np.ndarray) -> str:
        """One short line read from the task (written on the frame below the raw vector)."""
        return ""

    # ----- pictures -----
    def bars(self, task: np.ndarray) -> np.ndarray:
        """The values drawn as bars for a task (default: z itself)."""
        return np.asarray(task, np.float64)

    def labels(self, task_dim: int) -> list[str]:
        """Names of the bars."""
        return list(self.bar_labels) if self.bar_labels else [f"z{i}" for i in range(task_dim)]

    def draw_trajectory(self, ax, features: np.ndarray, variants: list[tuple[str, np.ndarray, float]]) -> None:
        """Draw one trajectory (features [T, F]) with each variant (name, task [Z], return)."""
        steps = np.arange(features.shape[0])
        for j in range(features.shape[1]):
            ax.plot(steps, features[:, j], label=f"feature {j}")
        ax.set_xlabel("step")
        ax.legend(fontsize=6)


# ---------------------------------------------------------------------------------------------------------
class _PointView(View):
    """Shared by the 2-D point families: top-down camera over the [-1, 1]^2 square, a trail of past positions."""

    top_down = True
    TRAIL_RGBA = (0.2, 0.4, 0.9, 0.5)

    def begin_episode(self, physics, task: np.ndarray) -> None:
        super().begin_episode(physics, task)
        self.trail: list[np.ndarray] = [self.position(physics)]

    def camera(self, physics, height: int, width: int):
        from dm_control.mujoco import engine

        camera = engine.MovableCamera(physics, height, width, scene_callback=self.decorate)
        camera.set_pose(np.zeros(3), 2.2, 90.0, -90.0)   # straight down, x to the right, y up
        return camera

    def before_frame(self, physics, camera) -> None:
        if len(self.trail) == 0 or not np.allclose(self.trail[-1], self.position(physics)):
            self.trail.append(self.position(physics))

    def position(self, physics) -> np.ndarray:
        """The point's (x, y)."""
        return np.asarray(physics.data.qpos[:2], np.float64).copy()

    def decorate(self, physics, scene) -> None:
        import mujoco

        for xy in self.trail[:-1]:
            _add_geom(scene, mujoco.mjtGeom.mjGEOM_SPHERE, [0.012, 0, 0], [xy[0], xy[1], 0.02], self.TRAIL_RGBA)
        self.decorate_task(scene)

    def decorate_task(self, scene) -> None:
        """Family-specific task markers."""

    @staticmethod
    def square(ax, extent: float = 1.0) -> None:
        """Frame an axis on the square [-extent, extent]^2 with equal scales."""
        ax.set_xlim(-extent, extent)
        ax.set_ylim(-extent, extent)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)

    def draw_path(self, ax, positions: np.ndarray, color: str = "#1f77b4") -> None:
        """The visited positions [T + 1, 2] from the start (a hollow circle)."""
        ax.plot(positions[:, 0], positions[:, 1], "-", color=color, lw=1.2, alpha=0.8)
        ax.plot(positions[:, 0], positions[:, 1], ".", color=color, ms=3)
        ax.plot(positions[0, 0], positions[0, 1], "o", mfc="none", mec=color, ms=7)


class PointReacherView(_PointView):
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

        # rings around the sites make the goal and the obstacle visible at small sizes
        for centre, rgba in ((self.goal(self.task), (0.1, 0.7, 0.1, 0.35)),
                             (self.obstacle(self.task), (0.85, 0.1, 0.1, 0.35))):
            _add_geom(scene, mujoco.mjtGeom.mjGEOM_CYLINDER, [0.07, 0.002, 0], [centre[0], centre[1], 0.003], rgba)

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
        positions = np.concatenate([np.zeros((1, 2)), features[:, :2]])   # features: position after each step
        self.draw_path(ax, positions, color="#7f7f7f")
        for name, task, ret in variants:
            self.draw_task(ax, task, VARIANT_COLORS.get(name, "k"), f"{name}  R={ret:.2f}", filled=name == "original")
        ax.legend(fontsize=6, loc="lower left", framealpha=0.7)
        self.square(ax, _extent(positions, [self.goal(t) for _, t, _ in variants] +
                                [self.obstacle(t) for _, t, _ in variants]))
        ax.set_title("goal * / obstacle X", fontsize=7)

    def draw_top_down(self, ax, positions: np.ndarray, task: np.ndarray, ret: float) -> None:
        """Figure 4 style: one episode's path from the start (hollow circle) with its goal (green star) and
        obstacle (red cross)."""
        g, o = self.goal(task), self.obstacle(task)
        from matplotlib.patches import Circle

        ax.add_patch(Circle(tuple(o), 0.05, color="#d62728", alpha=0.15))   # a halo, for visibility only
        self.draw_path(ax, positions)
        ax.plot(g[0], g[1], "*", ms=12, color="#2ca02c")
        ax.plot(o[0], o[1], "X", ms=9, color="#d62728")
        w = self.weights(task)
        ax.set_title(f"w=({w[0]:.2f}, {w[1]:.2f}, {w[2]:.2f})  R={ret:.2f}", fontsize=7)
        self.square(ax, _extent(positions, [g, o]))


def sinusoid(task: np.ndarray, length: float = 1.5, points: int = 60) -> np.ndarray:
    """PointTrajectory's reference curve [points, 2] in world coordinates: y' = A sin(pi x' / d), x' >= 0."""
    theta, d, amp = task[:3]
    xr = np.linspace(0.0, length, points)
    yr = amp * np.sin(math.pi * xr / d)
    # invert x' = x cos - y sin, y' = x sin + y cos
    x = xr * math.cos(theta) + yr * math.sin(theta)
    y = -xr * math.sin(theta) + yr * math.cos(theta)
    return np.stack([x, y], -1)


class PointTrajectoryView(_PointView):
    """PointTrajectory: the task's sinusoid drawn as a dotted curve on the floor."""

    bar_labels = ("theta", "d", "A")

    def decorate_task(self, scene) -> None:
        import mujoco

        for xy in sinusoid(self.task, points=40):
            if abs(xy[0]) <= 1.0 and abs(xy[1]) <= 1.0:
                _add_geom(scene, mujoco.mjtGeom.mjGEOM_SPHERE, [0.008, 0, 0], [xy[0], xy[1], 0.005],
                          (0.1, 0.6, 0.1, 0.8))

    def describe(self, task: np.ndarray) -> str:
        return f"theta {math.degrees(task[0]):.0f} deg  d {task[1]:.2f}  A {task[2]:.2f}"

    def draw_trajectory(self, ax, features, variants) -> None:
        # features: the position BEFORE each step; the path starts there
        positions = features[:, :2]
        self.draw_path(ax, positions, color="#7f7f7f")
        for name, task, ret in variants:
            curve = sinusoid(task)
            ax.plot(curve[:, 0], curve[:, 1], "-" if name == "original" else "--",
                    color=VARIANT_COLORS.get(name, "k"), lw=1.2, label=f"{name}  R={ret:.2f}")
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


def _extent(positions: np.ndarray, points: list[np.ndarray], minimum: float = 0.45) -> float:
    """Half-width of a square view holding the path and the points, with a margin, at most 1.05."""
    values = [np.abs(positions).max()] + [np.abs(p).max() for p in points]
    return float(min(max(max(values) + 0.08, minimum), 1.05))


# ---------------------------------------------------------------------------------------------------------
class CheetahView(View):
    """HalfCheetah: dm_control's tracking ``side`` camera; the task weighs objectives and has no place."""

    bar_labels = ("velocity", "energy", "height", "pitch rate")
    bar_title = "objective weights z"

    def camera(self, physics, height: int, width: int):
        from dm_control.mujoco import engine

        return engine.Camera(physics, height, width, camera_id="side")

    def describe(self, task: np.ndarray) -> str:
        return "  ".join(f"{n} {v:+.2f}" for n, v in zip(self.bar_labels, task))

    def draw_trajectory(self, ax, features, variants) -> None:
        """The trajectory's mean features beside which the tasks' weights read as preferences."""
        means = features.mean(0)
        ax.bar(np.arange(len(means)), means, color="#7f7f7f")
        ax.set_xticks(np.arange(len(means)), ["fwd vel", "ctrl cost", "height", "pitch rate"], fontsize=6)
        ax.axhline(0, color="k", lw=0.5)
        ax.tick_params(labelsize=6)
        ax.set_title("mean reward features; R: " + ", ".join(f"{n} {r:.1f}" for n, _, r in variants), fontsize=6)


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
        azimuth = math.degrees(float(self.task[0])) + 90.0
        camera.set_pose(self.torso(physics), self.DISTANCE, azimuth, -35.0)

    def decorate(self, physics, scene) -> None:
        x, y, _ = self.torso(physics)
        theta = float(self.task[0])
        heading = np.array([math.cos(theta), math.sin(theta), 0.0])
        start = np.array([x, y, 0.05]) + 0.5 * self.ARROW * heading
        _add_arrow(scene, start, start + self.ARROW * heading, 0.08, (1.0, 0.55, 0.0, 0.9))

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
            ax.annotate("", xy=(scale * math.cos(theta), scale * math.sin(theta)), xytext=(0, 0),
                        arrowprops=dict(arrowstyle="->", color=VARIANT_COLORS.get(name, "k"), lw=1.5))
            ax.plot([], [], color=VARIANT_COLORS.get(name, "k"), label=f"{name}  R={ret:.1f}")
        ax.set_xlim(-1.15 * scale, 1.15 * scale)
        ax.set_ylim(-1.15 * scale, 1.15 * scale)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6, loc="lower left", framealpha=0.7)
        ax.set_title("torso xy path and task directions", fontsize=7)


class HumanoidView(DirectionView):
    DISTANCE = 5.0
    ARROW = 1.5


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
        for offset, rgba in ((self.task[2:5], (0.1, 0.8, 0.1, 0.35)), (self.task[5:8], (0.2, 0.3, 1.0, 0.35))):
            _add_geom(scene, mujoco.mjtGeom.mjGEOM_SPHERE, [0.04, 0, 0], self.start + offset, rgba)

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
            ax.plot(task[2], task[3], "*", ms=10, color=color, mfc=color if filled else "none",
                    label=f"{name}  R={ret:.2f}")
            ax.plot(task[5], task[6], "X", ms=7, color=color, mfc=color if filled else "none")
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6, loc="lower left", framealpha=0.7)
        ax.set_title("gripper x-y from start; goal * / obstacle X", fontsize=7)


# family name -> (view class, control time step of one env step)
VIEWS: dict[str, type[View]] = {
    "point_reacher": PointReacherView,
    "point_trajectory": PointTrajectoryView,
    "cheetah_multi": CheetahView,
    "ant_direction": DirectionView,
    "humanoid_direction": HumanoidView,
    "fetch_reach": FetchView,
}


def view_for(kind: str, control_dt: float) -> View:
    """The view of a registered family (KeyError if the family has none)."""
    return VIEWS[kind](control_dt)
