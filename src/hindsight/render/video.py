"""Load a run's checkpoint, roll out the deterministic policy with frames, write MP4 or GIF.

Frames carry the family, the task number, the step, the raw task vector, a read-out of it and the
return so far (Pillow ImageDraw). MP4 needs ``imageio`` and ``imageio-ffmpeg`` (``pip install 'hindsight[render]'``);
without it the video is a GIF.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

import attrs
import numpy as np

from hindsight.render.views import VIEWS, View, view_for


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
        raise RenderError(f"headless rendering does not work here (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}: "
                          f"{reason}); use MUJOCO_GL=egl or osmesa on a machine with that library") from None


def supported() -> str:
    return ", ".join(VIEWS)


@attrs.define
class LoadedRun:
    """A run's resolved spec, its components rebuilt on the CPU and the checkpoint they were loaded from."""

    kind: str
    spec: Any
    family: Any
    reward: Any
    agent: Any
    state: dict
    checkpoint: Path

    @property
    def seed(self) -> int:
        return self.spec.run.seed


def _family_kind(raw: Any) -> str | None:
    try:
        return str(raw["env"]["kind"])
    except (TypeError, KeyError):
        return None


def _check_family(kind: str | None, source: Path) -> None:
    if kind is None:
        raise RenderError(f"{source}: names no env family")
    if kind not in VIEWS:
        raise RenderError(f"env family {kind!r} cannot be rendered (supported: {supported()})")


def _member_seed(run_dir: Path) -> int | None:
    """S for a population member's directory ``seed<S>``, else None."""
    name = run_dir.name
    return int(name[4:]) if name.startswith("seed") and name[4:].isdigit() else None


def load_run(run_dir: Path, checkpoint: Path | None = None) -> LoadedRun:
    """Rebuild a run's env family, reward family and agent from its checkpoint (weights loaded, CPU).

    A population member's directory ``RUN_DIR/seed<S>`` is read from the population checkpoint
    ``RUN_DIR/checkpoint.pt`` (the member's agent, buffer and relabeler state).
    Raises RenderError for a missing run directory or checkpoint, an unsupported family or an unreadable
    checkpoint.
    """
    import yaml

    if checkpoint is None and not run_dir.is_dir():
        raise RenderError(f"{run_dir}: no such run directory")
    spec_file = run_dir / "spec.yaml"
    if spec_file.is_file():
        try:
            raw = yaml.safe_load(spec_file.read_text())
        except yaml.YAMLError as exc:
            raise RenderError(f"{spec_file}: not YAML ({str(exc).splitlines()[0]})") from None
        _check_family(_family_kind(raw), spec_file)
    path = checkpoint if checkpoint is not None else run_dir / "checkpoint.pt"
    member_seed = _member_seed(run_dir)
    if checkpoint is None and not path.is_file() and member_seed is not None \
            and (run_dir.parent / "checkpoint.pt").is_file():
        path = run_dir.parent / "checkpoint.pt"   # a population member: the population's checkpoint
    if not path.is_file():
        raise RenderError(f"{path}: no checkpoint file (train the run first, or name one with --checkpoint)")

    from hindsight.registry import RegistryError
    from hindsight.specs import SpecError, validate
    from hindsight.train.checkpoint import CheckpointError, load_safe
    from hindsight.train.trainer import build_agent

    try:
        state = load_safe(path)
    except CheckpointError as exc:
        raise RenderError(str(exc)) from None
    if not isinstance(state, dict) or "spec" not in state or "agent" not in state:
        raise RenderError(f"{path}: not a hindsight run checkpoint (no spec or agent)")
    raw = state["spec"]
    kind = _family_kind(raw)
    _check_family(kind, path)
    if isinstance(raw.get("agent"), dict) and "device" in raw["agent"]:
        raw = {**raw, "agent": {**raw["agent"], "device": "cpu"}}
    try:
        spec = validate(raw)
    except (SpecError, RegistryError) as exc:
        raise RenderError(f"{path}: its spec no longer validates: {exc}") from None
    seeds = getattr(spec.run, "seeds", None)
    population = bool(seeds) and "members" in state
    if population and (member_seed is None or member_seed not in seeds):
        raise RenderError(f"{path}: a population of seeds {list(seeds)}; name one member's directory, "
                          f"e.g. {path.parent / f'seed{seeds[0]}'}")
    family = spec.component("env")(spec.params["env"])
    reward = spec.component("reward")(spec.params["reward"])
    try:
        agent = build_agent(spec, family, list(seeds) if population else [spec.run.seed])
        agent.load_state_dict(state["agent"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise RenderError(f"{path}: the agent's weights do not fit its spec ({str(exc).splitlines()[0]})") from None
    if population:
        index = list(seeds).index(member_seed)
        agent, spec = agent.member(index), spec.member(member_seed)
        state = {**state["members"][index], "spec": spec.to_dict()}
    return LoadedRun(kind, spec, family, reward, agent, state, path)


def pick_tasks(run: LoadedRun, count: int):
    """[n, Z] evaluation tasks: ``count`` spread evenly over the family's fixed set, or fresh seeded draws."""
    import torch

    from hindsight.seeding import make_generator

    fixed = run.family.task_distribution.eval_tasks()
    if fixed is not None:
        index = np.unique(np.linspace(0, fixed.shape[0] - 1, min(count, fixed.shape[0])).round().astype(int))
        return fixed[torch.from_numpy(index)]
    return run.family.task_distribution.sample(count, make_generator(run.seed, "render/tasks"))


@attrs.define
class Episode:
    """One rendered episode: task [Z], positions [n + 1, 2] (x, y of the body at each frame, 2-D
    families), features [n, F], rewards [n], undiscounted return."""

    task: np.ndarray
    positions: np.ndarray
    features: np.ndarray
    rewards: np.ndarray

    @property
    def length(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def ret(self) -> float:
        return float(self.rewards.sum())


FrameSink = Callable[[np.ndarray], None]


def rollout(run: LoadedRun, tasks, *, size: tuple[int, int] = (320, 240), max_steps: int | None = None,
            every: int = 1, sink: FrameSink | None = None, shadows: bool = False) -> list[Episode]:
    """The deterministic policy tanh(mu(s, z)) for one episode per task; frames go to ``sink`` if given.

    Each episode gives a frame at reset and after every ``every``-th step (and after its last step).
    """
    import torch

    from hindsight.seeding import derive_seed

    width, height = size
    view = view_for(run.kind, 0.05)
    episodes = []
    flags = None if shadows else {"shadow": False, "reflection": False}
    for i, task in enumerate(tasks):
        env = run.family.make_env(run.reward, derive_seed(run.seed, "render/env", i) % 2**32)
        view.control_dt = float(env.control_timestep())
        z = task.detach().cpu().numpy().astype(np.float32)
        env.task.set_task(z)
        step = env.reset()
        physics = env.physics
        view.begin_episode(physics, z)
        camera = view.camera(physics, height, width) if sink is not None else None
        limit = run.family.horizon if max_steps is None else min(max_steps, run.family.horizon)
        positions, features, rewards = [np.asarray(physics.data.qpos[:2], np.float64).copy()], [], []
        text = _Overlay(run.kind, i, len(tasks), limit, z, view)

        def frame(t: int) -> None:
            view.before_frame(physics, camera)
            image = camera.render(render_flag_overrides=flags)
            sink(text.draw(image, t, float(np.sum(rewards))))

        if sink is not None:
            frame(0)
        t = 0
        while not step.last() and t < limit:
            obs = torch.from_numpy(np.asarray(step.observation["observations"], np.float32))[None]
            with torch.no_grad():
                action = run.agent.act(obs, torch.from_numpy(z)[None], deterministic=True)
            step = env.step(action[0].cpu().numpy())
            t += 1
            rewards.append(float(step.reward))
            features.append(np.asarray(step.observation["features"], np.float64))
            positions.append(np.asarray(physics.data.qpos[:2], np.float64).copy())
            if sink is not None and (t % every == 0 or step.last() or t == limit):
                frame(t)
        episodes.append(Episode(z, np.stack(positions), np.stack(features) if features else np.zeros((0, 0)),
                                np.asarray(rewards)))
    return episodes


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
        self.font_size = None
        self._font = None
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

            self._mp4 = imageio.get_writer(str(path), format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                           quality=7, macro_block_size=2, ffmpeg_log_level="error")

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
            self._gif[0].save(self.path, save_all=True, append_images=self._gif[1:], loop=0, optimize=False,
                              duration=max(20, int(round(1000 / self.fps))), disposal=1)
