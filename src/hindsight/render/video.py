"""Load a run's checkpoint, roll out the deterministic policy with frames, write MP4 or GIF.

Frames carry the family, the task number, the step, the raw task vector, a read-out of it and the
return so far (Pillow ImageDraw). MP4 needs ``imageio`` and ``imageio-ffmpeg`` (``pip install 'hindsight[render]'``);
without it the video is a GIF.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from hindsight.render.views import View
from hindsight.rundir import RunDir

if TYPE_CHECKING:
    from PIL import ImageFont

    from hindsight.build import Problem
    from hindsight.protocols import Agent, EnvFamily, RewardFamily
    from hindsight.specs import ResolvedSpec


class RenderError(Exception):
    """A run that cannot be rendered; the message is meant for the user (one line)."""


def use_egl() -> None:
    """Pick headless EGL rendering unless the user chose a backend, before dm_control is imported."""
    if "dm_control._render" not in sys.modules:
        os.environ.setdefault("MUJOCO_GL", "egl")


def check_rendering() -> None:
    """Render one tiny frame; RenderError (one line, naming MUJOCO_GL) if the GL back-end does not work."""
    try:
        from dm_control import mujoco

        mujoco.Physics.from_xml_string("<mujoco><worldbody><geom size='1'/></worldbody></mujoco>").render(16, 16)
    except Exception as exc:  # noqa: BLE001  (GL back-ends fail with many exception types)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RenderError(
            f"headless rendering does not work here (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}: "
            f"{reason}); use MUJOCO_GL=egl or osmesa on a machine with that library"
        ) from None


@attrs.define
class LoadedRun:
    """One run rebuilt on the CPU from its checkpoint: the checkpoint's agent (every member loaded) and the
    index of the member this run is.

    Attributes:
        spec: the run's single-seed spec (a population's member spec for a member).
        problem: the env family, task distribution, reward family and sizes.
        agent: the checkpoint's agent, on the CPU.
        member: this run's member index p in the agent and in the checkpoint's ``members``.
        state: the member's own checkpoint state (epoch, buffer, relabeler, ...).
        checkpoint: the file it was loaded from.
        control_dt: seconds per env step.
    """

    spec: ResolvedSpec
    problem: Problem
    agent: Agent
    member: int
    state: dict
    checkpoint: Path
    control_dt: float

    @property
    def kind(self) -> str:
        """The env family's registered name."""
        return self.spec.run.env.kind

    @property
    def seed(self) -> int:
        return self.spec.run.seed

    @property
    def family(self) -> EnvFamily:
        return self.problem.family

    @property
    def reward(self) -> RewardFamily:
        return self.problem.reward

    def view(self) -> View:
        """A fresh view of the family: its own ``view`` class, else the base View."""
        return getattr(type(self.family), "view", View)(self.control_dt)


def _directory_seed(run_dir: RunDir) -> int | None:
    """The seed of the run a directory holds: S for a population's ``seed<S>/``, else its spec's seed (a
    single run or a study member); None without a spec, or for a population's own directory."""
    seed = run_dir.member_seed()
    if seed is not None:
        return seed
    saved = run_dir.read_spec() or {}
    seed = saved.get("seed") if saved.get("seeds") is None else None
    return seed if isinstance(seed, int) else None


def load_run(run_dir: Path, checkpoint: Path | None = None) -> LoadedRun:
    """Rebuild a run from its checkpoint on the CPU: the env family, tasks, reward family and agent.

    The checkpoint is ``checkpoint``, else the one of the directory that trains the run (the run directory
    itself, or the population's for a member ``seed<S>/`` or a study member with ``population.json``).
    The run is the checkpoint's only member, or the member of the directory's seed. Raises RenderError for
    a missing run directory or checkpoint, a population's own directory, or a checkpoint that cannot be read
    or no longer fits its spec.
    """
    from hindsight.build import build_agent, build_problem
    from hindsight.registry import RegistryError
    from hindsight.specs import SpecError, upgrade, validate
    from hindsight.train.checkpoint import CheckpointError, read_checkpoint

    if checkpoint is None and not run_dir.is_dir():
        raise RenderError(f"{run_dir}: no such run directory")
    directory = RunDir(run_dir)
    path = checkpoint if checkpoint is not None else directory.checkpoint_owner().checkpoint
    if not path.is_file():
        raise RenderError(f"{path}: no checkpoint file (train the run first, or name one with --checkpoint)")
    try:
        state = read_checkpoint(path)
    except CheckpointError as exc:
        raise RenderError(str(exc)) from None
    raw = upgrade(state["spec"])
    try:
        spec = validate({**raw, "runtime": {**(raw.get("runtime") or {}), "device": "cpu"}})
    except (SpecError, RegistryError) as exc:
        raise RenderError(f"{path}: its spec no longer validates: {exc}") from None
    seeds = spec.run.member_seeds
    seed = seeds[0] if len(seeds) == 1 else _directory_seed(directory)
    if seed is None:
        raise RenderError(
            f"{path}: a population of seeds {seeds}; name one member's directory, "
            f"e.g. {path.parent / f'seed{seeds[0]}'}"
        )
    if seed not in seeds:
        raise RenderError(f"{path}: trains seeds {seeds}, not the seed {seed} of {run_dir}")
    index = seeds.index(seed)
    problem = build_problem(spec)
    try:
        agent = build_agent(spec, problem.sizes)
        agent.load_state_dict(state["agent"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise RenderError(f"{path}: the agent's weights do not fit its spec ({str(exc).splitlines()[0]})") from None
    member_spec = spec if spec.run.seeds is None else spec.member(seed)
    control_dt = float(problem.family.make_env(None, 0).control_timestep())
    return LoadedRun(member_spec, problem, agent, index, state["members"][index], path, control_dt)


def pick_tasks(run: LoadedRun, count: int):
    """[n, Z] evaluation tasks: ``count`` spread evenly over the fixed set of the run's task distribution,
    or fresh seeded draws."""
    import torch

    from hindsight.seeding import make_generator

    fixed = run.problem.tasks.eval_tasks()
    if fixed is not None:
        index = np.unique(np.linspace(0, fixed.shape[0] - 1, min(count, fixed.shape[0])).round().astype(int))
        return fixed[torch.from_numpy(index)]
    return run.problem.tasks.sample(count, make_generator(run.seed, "render/tasks"))


@attrs.define
class Episode:
    """One rendered episode: task [Z], positions [n + 1, 2] (x, y of the body at each frame, 2-D
    families), features [n, F], rewards [n], actions [n, A], undiscounted return."""

    task: np.ndarray
    positions: np.ndarray
    features: np.ndarray
    rewards: np.ndarray
    actions: np.ndarray

    @property
    def length(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def ret(self) -> float:
        return float(self.rewards.sum())


FrameSink = Callable[[np.ndarray], None]


def rollout(
    run: LoadedRun,
    tasks,
    *,
    size: tuple[int, int] = (320, 240),
    max_steps: int | None = None,
    every: int = 1,
    sink: FrameSink | None = None,
    shadows: bool = False,
) -> list[Episode]:
    """The deterministic policy tanh(mu(s, z)) for one episode per task; frames go to ``sink`` if given.

    Each episode gives a frame at reset and after every ``every``-th step (and after its last step).
    """
    import torch

    from hindsight.seeding import derive_seed

    width, height = size
    view = run.view()
    episodes = []
    flags = None if shadows else {"shadow": False, "reflection": False}
    for i, task in enumerate(tasks):
        env = run.family.make_env(run.reward, derive_seed(run.seed, "render/env", i) % 2**32)
        z = task.detach().cpu().numpy().astype(np.float32)
        env.task.set_task(z)
        step = env.reset()
        physics = env.physics
        view.begin_episode(physics, z)
        camera = view.camera(physics, height, width) if sink is not None else None
        limit = run.family.horizon if max_steps is None else min(max_steps, run.family.horizon)
        positions = [np.asarray(physics.data.qpos[:2], np.float64).copy()]
        features: list[np.ndarray] = []
        rewards: list[float] = []
        actions: list[np.ndarray] = []
        text = _Overlay(run.kind, i, len(tasks), limit, z, view)
        if sink is not None:
            _frame(sink, view, physics, camera, flags, text, 0, rewards)
        t = 0
        while not step.last() and t < limit:
            obs = torch.from_numpy(np.asarray(step.observation["observations"], np.float32))[None]
            with torch.no_grad():
                action = run.agent.act(obs, torch.from_numpy(z)[None], deterministic=True, member=run.member)
            actions.append(action[0].cpu().numpy())
            step = env.step(actions[-1])
            t += 1
            rewards.append(float(step.reward))
            features.append(np.asarray(step.observation["features"], np.float64))
            positions.append(np.asarray(physics.data.qpos[:2], np.float64).copy())
            if sink is not None and (t % every == 0 or step.last() or t == limit):
                _frame(sink, view, physics, camera, flags, text, t, rewards)
        episodes.append(
            Episode(
                z,
                np.stack(positions),
                np.stack(features) if features else np.zeros((0, 0)),
                np.asarray(rewards),
                np.stack(actions) if actions else np.zeros((0, 0)),
            )
        )
    return episodes


def _frame(
    sink: FrameSink,
    view: View,
    physics: Any,
    camera: Any,
    flags: dict[str, bool] | None,
    text: _Overlay,
    t: int,
    rewards: list[float],
) -> None:
    """The frame at step t of an episode: the camera's image under the overlay, to ``sink``."""
    view.before_frame(physics, camera)
    image = camera.render(render_flag_overrides=flags)
    sink(text.draw(image, t, float(np.sum(rewards))))


def frames_per_episode(length: int, every: int) -> int:
    """Frames ``rollout`` writes for an episode of ``length`` steps: the reset frame, every ``every``-th
    step, and the last step."""
    return 1 + len(set(range(every, length + 1, every)) | {length}) if length else 1


class _Overlay:
    """Writes the family, task number, step, task vector, its read-out and the return on a frame."""

    def __init__(self, kind: str, index: int, count: int, limit: int, task: np.ndarray, view: View):
        from PIL import ImageFont

        self.head = f"{kind}  task {index + 1}/{count}"
        self.limit = limit
        self.z = "z = [" + ", ".join(f"{v:.2f}" for v in task) + "]"
        self.readout = view.describe(task)
        self.font_size: int | None = None
        self._font: ImageFont.FreeTypeFont | ImageFont.ImageFont | None = None
        self._fonts = ImageFont

    def font(self, height: int):
        size = max(8, min(16, height // 22))
        if self.font_size != size:
            try:
                self._font = self._fonts.load_default(size=size)
            except TypeError:  # Pillow without FreeType sizes
                self._font = self._fonts.load_default()
            self.font_size = size
        return self._font

    def draw(self, image: np.ndarray, step: int, ret: float) -> np.ndarray:
        from PIL import Image, ImageDraw

        picture = Image.fromarray(image).convert("RGBA")
        layer = Image.new("RGBA", picture.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        font = self.font(picture.height)
        lines = [f"{self.head}  step {step}/{self.limit}", self.z]
        if self.readout:
            lines.append(self.readout)
        lines.append(f"return {ret:.2f}")
        pad, spacing = 3, (self.font_size or 10) + 2
        draw.rectangle([0, 0, picture.width, pad * 2 + spacing * len(lines)], fill=(0, 0, 0, 140))
        for j, line in enumerate(lines):
            draw.text((pad, pad + j * spacing), line, fill=(255, 255, 255, 255), font=font)
        return np.asarray(Image.alpha_composite(picture, layer).convert("RGB"))


def mp4_available() -> bool:
    """True when imageio can encode MP4 (``imageio`` and ``imageio-ffmpeg`` installed)."""
    try:
        import imageio.v2  # noqa: F401
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
        return True
    except (ImportError, RuntimeError, OSError):
        return False


class VideoWriter:
    """Streams frames to an MP4 (imageio-ffmpeg) or collects them for a GIF (Pillow); ``close`` writes."""

    def __init__(self, path: Path, fps: float):
        self.path = path
        self.fps = fps
        self.count = 0
        self._gif: list = []
        self._mp4 = None
        if path.suffix.lower() == ".mp4":
            import imageio.v2 as imageio

            self._mp4 = imageio.get_writer(
                str(path),
                format="FFMPEG",
                mode="I",
                fps=fps,
                codec="libx264",
                quality=7,
                macro_block_size=2,
                ffmpeg_log_level="error",
            )

    def __call__(self, frame: np.ndarray) -> None:
        self.count += 1
        if self._mp4 is not None:
            self._mp4.append_data(frame)
        else:
            from PIL import Image

            self._gif.append(Image.fromarray(frame).quantize(colors=255, method=Image.Quantize.MEDIANCUT))

    def close(self) -> None:
        if self._mp4 is not None:
            self._mp4.close()
        elif self._gif:
            self._gif[0].save(
                self.path,
                save_all=True,
                append_images=self._gif[1:],
                loop=0,
                optimize=False,
                duration=max(20, int(round(1000 / self.fps))),
                disposal=1,
            )
