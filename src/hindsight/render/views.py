"""How an env family is shown: camera, task markers drawn into the scene, task read-outs, drawings.

A family names its view in its ``view`` class attribute (its own subclass of ``View``, defined beside it in
``hindsight.tasks``); a family without one is shown by the base ``View``. Markers are added to the rendered
scene only (``scene_callback`` on the dm_control camera); the model and its physics stay untouched.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

# Colours of the task variants in the relabeling picture (original, then each relabeler).
VARIANT_COLORS = {
    "original": "#222222",
    "stored": "#8c564b",
    "AIR": "#ff7f0e",
    "advantage": "#1f77b4",
    "HER": "#2ca02c",
}


def add_geom(scene, geom_type: int, size, pos, rgba, mat=None) -> Any:
    """Append one decorative geom to ``scene`` (no-op when the scene is full); returns it or None."""
    import mujoco

    if scene.ngeom >= scene.maxgeom:
        return None
    scene.ngeom += 1  # ``scene.geoms`` only exposes the first ngeom entries
    geom = scene.geoms[scene.ngeom - 1]
    mat = np.eye(3).flatten() if mat is None else np.asarray(mat, np.float64).flatten()
    mujoco.mjv_initGeom(
        geom, geom_type, np.asarray(size, np.float64), np.asarray(pos, np.float64), mat, np.asarray(rgba, np.float32)
    )
    geom.category = mujoco.mjtCatBit.mjCAT_DECOR
    return geom


def add_arrow(scene, start, end, width: float, rgba) -> None:
    """Append an arrow from ``start`` to ``end`` (3-D points) to ``scene``."""
    import mujoco

    geom = add_geom(scene, mujoco.mjtGeom.mjGEOM_ARROW, [width, width, 1.0], start, rgba)
    if geom is not None:
        mujoco.mjv_connector(
            geom, mujoco.mjtGeom.mjGEOM_ARROW, width, np.asarray(start, np.float64), np.asarray(end, np.float64)
        )


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

    def draw_top_down(self, ax: Any, positions: np.ndarray, task: np.ndarray, ret: float) -> None:
        """Views with ``top_down``: one episode's panel of its path (positions [T + 1, 2]) under its task."""
        raise NotImplementedError(f"{type(self).__name__} draws no top-down picture")

    def draw_trajectory(self, ax, features: np.ndarray, variants: list[tuple[str, np.ndarray, float]]) -> None:
        """Draw one trajectory (features [T, F]) with each variant (name, task [Z], return)."""
        steps = np.arange(features.shape[0])
        for j in range(features.shape[1]):
            ax.plot(steps, features[:, j], label=f"feature {j}")
        ax.set_xlabel("step")
        ax.legend(fontsize=6)


class PointView(View):
    """Shared by the 2-D point families: top-down camera over the [-1, 1]^2 square, a trail of past positions."""

    top_down = True
    TRAIL_RGBA = (0.2, 0.4, 0.9, 0.5)

    def begin_episode(self, physics, task: np.ndarray) -> None:
        super().begin_episode(physics, task)
        self.trail: list[np.ndarray] = [self.position(physics)]

    def camera(self, physics, height: int, width: int):
        from dm_control.mujoco import engine

        camera = engine.MovableCamera(physics, height, width, scene_callback=self.decorate)
        camera.set_pose(np.zeros(3), 2.2, 90.0, -90.0)  # straight down, x to the right, y up
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
            add_geom(scene, mujoco.mjtGeom.mjGEOM_SPHERE, [0.012, 0, 0], [xy[0], xy[1], 0.02], self.TRAIL_RGBA)
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
