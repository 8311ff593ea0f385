"""``hindsight render`` and ``hindsight relabel-picture``: files written, frame counts and sizes, not blank,
clear one-line errors with exit code 2.

Rendering runs in subprocesses with ``MUJOCO_GL=egl``: the GL back-end is fixed when dm_control is first
imported, and the test session imports it with rendering disabled (conftest). The tests that render are
skipped when EGL does not work on the machine.
"""

import os

RENDER_ENV = {**os.environ, "MUJOCO_GL": "egl", "WANDB_MODE": "disabled"}  # for the rendering subprocesses

import copy  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

import attrs  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from hindsight.cli import app  # noqa: E402
from hindsight.registry import REGISTRY  # noqa: E402
from hindsight.render.video import frames_per_episode, load_run, mp4_available, pick_tasks, rollout  # noqa: E402
from hindsight.render.views import View  # noqa: E402
from hindsight.rundir import RunDir  # noqa: E402
from hindsight.specs import validate  # noqa: E402
from hindsight.train.run import execute  # noqa: E402

TINY = {
    "seed": 0,
    "env": {"kind": "point_reacher"},
    "relabeler": {"kind": "air", "candidates": 10, "cache": 20},
    "agent": {"kind": "sac", "hidden": [16], "batch_size": 32, "gamma": 0.97},
    "buffer": {"kind": "replay", "capacity": 2000},
    "train": {"epochs": 1, "loops_per_epoch": 1, "episodes_per_loop": 2, "updates_per_loop": 4, "warmup_steps": 40},
    "eval": {"episodes": 2},
    "logging": {"wandb": {"mode": "disabled"}, "progress": False},
}
HORIZON = 20


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A one-epoch PointReacher run: 2 warm-up and 2 trained episodes stored under AIR."""
    path = tmp_path_factory.mktemp("render") / "run"
    execute(validate(copy.deepcopy(TINY)), path)
    return path


@pytest.fixture(scope="module")
def egl():
    probe = (
        "from dm_control import mujoco; mujoco.Physics.from_xml_string("
        "\"<mujoco><worldbody><geom size='1'/></worldbody></mujoco>\").render(16, 16)"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=RENDER_ENV, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.skip(f"EGL rendering unavailable: {result.stderr.strip().splitlines()[-1:]}")


def hindsight(*args: str, gl: str = "egl") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hindsight", *args],
        env={**RENDER_ENV, "MUJOCO_GL": gl},
        capture_output=True,
        text=True,
        timeout=240,
    )


def gif_frames(path):
    with Image.open(path) as image:
        frames = []
        for index in range(image.n_frames):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGB"), dtype=np.float32))
    return frames


def assert_not_blank(first: np.ndarray, last: np.ndarray) -> None:
    assert first.std() > 5 and last.std() > 5  # not one flat colour
    assert np.abs(first - last).mean() > 0.5  # the scene and the text changed
    assert abs(float(first.mean()) - float(last.mean())) > 1e-3 or np.abs(first - last).max() > 50


def test_render_gif_and_top_down(run_dir, egl, tmp_path):
    out = tmp_path / "video.gif"
    result = hindsight("render", str(run_dir), "--tasks", "2", "--out", str(out), "--size", "96x80")
    assert result.returncode == 0, result.stderr
    frames = gif_frames(out)
    assert len(frames) == 2 * (HORIZON + 1)
    assert frames[0].shape == (80, 96, 3)
    assert_not_blank(frames[0], frames[-1])
    picture = tmp_path / "video-topdown.png"
    assert picture.is_file() and str(picture) in result.stdout
    with Image.open(picture) as image:
        assert np.asarray(image.convert("L")).std() > 5


@pytest.mark.skipif(not mp4_available(), reason="no MP4 encoder (pip install 'hindsight[render]')")
def test_render_mp4_frame_count(run_dir, egl, tmp_path):
    import imageio.v2 as imageio

    out = tmp_path / "video.mp4"
    result = hindsight(
        "render",
        str(run_dir),
        "--tasks",
        "3",
        "--out",
        str(out),
        "--size",
        "64x48",
        "--max-steps",
        "5",
        "--every",
        "2",
        "--no-top-down",
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "video-topdown.png").exists()
    with imageio.get_reader(str(out), format="FFMPEG") as reader:
        frames = [np.asarray(f, dtype=np.float32) for f in reader]
    assert len(frames) == 3 * frames_per_episode(5, 2) == 3 * 4
    assert frames[0].shape == (48, 64, 3)
    assert_not_blank(frames[0], frames[-1])


def test_frames_per_episode():
    assert frames_per_episode(20, 1) == 21
    assert frames_per_episode(5, 2) == 4  # reset, steps 2, 4 and the last
    assert frames_per_episode(6, 3) == 3


def test_top_down_without_video_needs_no_gl(run_dir, tmp_path):
    out = tmp_path / "only.gif"
    result = CliRunner().invoke(app, ["render", str(run_dir), "--tasks", "3", "--out", str(out), "--no-video"])
    assert result.exit_code == 0, result.output
    assert not out.exists() and (tmp_path / "only-topdown.png").is_file()


def test_relabel_picture_from_stored_trajectories(run_dir, tmp_path):
    out = tmp_path / "relabel.png"
    result = CliRunner().invoke(
        app, ["relabel-picture", str(run_dir), "--trajectories", "3", "--candidates", "8", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    for variant in ("original", "stored", "AIR", "advantage", "HER"):
        assert variant in result.output
    with Image.open(out) as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.shape[0] > pixels.shape[1] > 300 and pixels.std() > 5


def test_relabel_picture_fresh(run_dir, tmp_path):
    out = tmp_path / "fresh.pdf"
    result = CliRunner().invoke(
        app, ["relabel-picture", str(run_dir), "--trajectories", "2", "--fresh", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "freshly collected" in result.output and out.stat().st_size > 1000


def test_stored_trajectories_are_whole_episodes(run_dir):
    from hindsight.render.pictures import stored_trajectories, to_batch

    run = load_run(run_dir)
    assert run.member == 0 and run.seed == 0
    trajectories = stored_trajectories(run)
    assert len(trajectories) == 4  # 2 warm-up + 2 trained episodes
    batch = to_batch(trajectories)
    assert (batch.lengths == HORIZON).all()
    assert all(t["stored"] is not None for t in trajectories)  # AIR stored one relabeled copy of each
    recomputed = run.reward.reward(batch.features, batch.actions, batch.tasks[:, None])[:, 0]
    torch.testing.assert_close(recomputed, batch.rewards)
    assert torch.allclose(batch.obs[:, 0, :4], torch.zeros(4, 4))  # each starts at rest at the origin


@pytest.mark.parametrize("command", ["render", "relabel-picture"])
def test_missing_checkpoint_exits_2(run_dir, tmp_path, command):
    (tmp_path / "spec.yaml").write_text((run_dir / "spec.yaml").read_text())
    result = CliRunner().invoke(app, [command, str(tmp_path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no checkpoint file" in lines[0], result.output
    other = CliRunner().invoke(app, [command, str(tmp_path / "nowhere")])
    assert other.exit_code == 2 and "no such run directory" in other.output


@pytest.mark.parametrize("command", ["render", "relabel-picture"])
def test_checkpoint_of_an_unknown_family_exits_2(run_dir, tmp_path, command):
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    state["spec"]["env"] = {"kind": "my_plugin_env"}
    torch.save(state, tmp_path / "checkpoint.pt")
    (tmp_path / "spec.yaml").write_text((run_dir / "spec.yaml").read_text())
    result = CliRunner().invoke(app, [command, str(tmp_path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no longer validates" in lines[0], result.output
    assert "'my_plugin_env'" in lines[0]


def test_every_family_names_its_view():
    from hindsight.tasks.ant import DirectionView
    from hindsight.tasks.base import EnvFamily
    from hindsight.tasks.cheetah import CheetahView
    from hindsight.tasks.fetch import FetchView
    from hindsight.tasks.humanoid import HumanoidView
    from hindsight.tasks.point_reacher import PointReacherView
    from hindsight.tasks.point_trajectory import PointTrajectoryView

    expected = {
        "point_reacher": PointReacherView,
        "point_trajectory": PointTrajectoryView,
        "cheetah_multi": CheetahView,
        "ant_direction": DirectionView,
        "humanoid_direction": HumanoidView,
        "fetch_reach": FetchView,
    }
    views = {name: REGISTRY.get("env", name).view for name in REGISTRY.names("env")}
    assert {name: views[name] for name in expected} == expected
    assert all(issubclass(view, View) for view in views.values())
    assert all(view.top_down == (name in ("point_reacher", "point_trajectory")) for name, view in views.items())

    class Plain(EnvFamily):
        pass

    assert Plain.view is View


PLAIN_FAMILY = textwrap.dedent('''
    from hindsight.registry import register
    from hindsight.tasks.base import EnvFamily
    from hindsight.tasks.point_reacher import PointReacher

    @register("env", "plain_reacher")
    class PlainReacher(EnvFamily):
        """PointReacher's model and task under another name, without a view of its own."""

        Params, Tasks, Reward = PointReacher.Params, PointReacher.Tasks, PointReacher.Reward
        features_name, feature_dim, control_dt, private_model = "point_position", 2, 0.1, True
        load_model, make_task = PointReacher.load_model, PointReacher.make_task
''')


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """A one-epoch run of a plugin family without a view (trained in a subprocess: the plugin's family stays
    out of this session's registry)."""
    root = tmp_path_factory.mktemp("plain")
    (root / "plain_family.py").write_text(PLAIN_FAMILY)
    spec = copy.deepcopy(TINY)
    spec.update(plugins=["plain_family"], env={"kind": "plain_reacher"})
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    result = hindsight("run", str(root / "spec.yaml"), "--out", str(root / "run"), gl="disable")
    assert result.returncode == 0, result.stderr
    return root / "run"


def test_family_without_a_view_is_drawn_by_the_base_view(plain_run, tmp_path):
    out = tmp_path / "relabel.png"
    result = hindsight(
        "relabel-picture", str(plain_run), "--trajectories", "2", "--candidates", "4", "--out", str(out), gl="disable"
    )
    assert result.returncode == 0, result.stderr
    assert "stored" in result.stdout and "HER" in result.stdout
    with Image.open(out) as image:
        assert np.asarray(image.convert("L")).std() > 5
    refused = hindsight("render", str(plain_run), "--no-video", gl="disable")
    assert refused.returncode == 2 and "'plain_reacher' has no top-down picture" in refused.stderr + refused.stdout


def test_render_family_without_a_view(plain_run, egl, tmp_path):
    out = tmp_path / "plain.gif"
    result = hindsight(
        "render", str(plain_run), "--tasks", "2", "--max-steps", "4", "--out", str(out), "--size", "64x48"
    )
    assert result.returncode == 0, result.stderr
    frames = gif_frames(out)
    assert len(frames) == 2 * 5 and frames[0].shape == (48, 64, 3)
    assert_not_blank(frames[0], frames[-1])
    assert not (tmp_path / "plain-topdown.png").exists()


def test_bad_options_exit_2(run_dir, tmp_path):
    for args in (
        ["render", str(run_dir), "--size", "big"],
        ["render", str(run_dir), "--out", str(tmp_path / "v.avi")],
        ["relabel-picture", str(run_dir), "--out", str(tmp_path / "p.txt")],
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and result.output.startswith("error: "), (args, result.output)


def test_point_reacher_view_matches_the_family():
    from hindsight.tasks.point_reacher import PointReacherView, polar_to_xy, reacher_weights

    z = np.array([0.1, 0.7, 2.0, 0.2, -1.0, 0.25])
    t = torch.tensor(z)
    np.testing.assert_allclose(PointReacherView.goal(z), polar_to_xy(t[2], t[3]).numpy(), atol=1e-6)
    np.testing.assert_allclose(PointReacherView.obstacle(z), polar_to_xy(t[4], t[5]).numpy(), atol=1e-6)
    np.testing.assert_allclose(PointReacherView.weights(z), reacher_weights(t[0], t[1]).numpy(), atol=1e-6)


def test_find_pictures_lists_the_default_names(run_dir, tmp_path):
    from hindsight.render import find_pictures

    assert find_pictures(tmp_path) == []
    CliRunner().invoke(app, ["relabel-picture", str(run_dir), "--trajectories", "1", "--candidates", "4"])
    assert run_dir / "relabel.png" in find_pictures(run_dir)


def test_render_cheetah_named_camera_and_no_top_down(egl, tmp_path):
    spec = copy.deepcopy(TINY)
    spec.update(env={"kind": "cheetah_multi", "horizon": 10}, relabeler={"kind": "none"})
    spec["train"].update(warmup_steps=20)
    execute(validate(spec), tmp_path / "cheetah")
    out = tmp_path / "cheetah.gif"
    result = hindsight(
        "render", str(tmp_path / "cheetah"), "--tasks", "2", "--max-steps", "4", "--out", str(out), "--size", "64x48"
    )
    assert result.returncode == 0, result.stderr
    frames = gif_frames(out)
    assert len(frames) == 2 * 5 and frames[0].shape == (48, 64, 3)
    assert_not_blank(frames[0], frames[-1])
    assert not (tmp_path / "cheetah-topdown.png").exists()
    refused = CliRunner().invoke(app, ["render", str(tmp_path / "cheetah"), "--top-down", "--no-video"])
    assert refused.exit_code == 2 and "2-D point families only" in refused.output


def test_population_member_directories(tmp_path):
    spec = copy.deepcopy(TINY)
    spec["seeds"] = [0, 1]
    spec.pop("seed")
    execute(validate(spec), tmp_path / "pop")
    whole = CliRunner().invoke(app, ["render", str(tmp_path / "pop"), "--no-video"])
    assert whole.exit_code == 2 and "name one member's directory" in whole.output
    member = tmp_path / "pop" / "seed1"
    result = CliRunner().invoke(app, ["render", str(member), "--tasks", "2", "--no-video"])
    assert result.exit_code == 0, result.output
    assert (member / "render-topdown.png").is_file()
    result = CliRunner().invoke(app, ["relabel-picture", str(member), "--trajectories", "2", "--candidates", "4"])
    assert result.exit_code == 0 and "stored" in result.output, result.output
    run = load_run(member)
    assert run.seed == 1 and run.member == 1 and run.state["seed"] == 1 and run.state["epoch"] == 1
    assert run.checkpoint == tmp_path / "pop" / "checkpoint.pt" and run.agent.members == 2
    tasks = pick_tasks(run, 2)
    own = [episode.ret for episode in rollout(run, tasks)]
    assert own == [episode.ret for episode in rollout(run, tasks)]  # deterministic
    assert own != [episode.ret for episode in rollout(attrs.evolve(run, member=0), tasks)]  # member 1's policy


def test_study_member_directories(tmp_path):
    """A study's member writes its own run directory; population.json points at the population's checkpoint."""
    spec = copy.deepcopy(TINY)
    spec["seeds"] = [3, 5]
    spec.pop("seed")
    members = [tmp_path / "runs" / "a", tmp_path / "runs" / "b"]
    execute(validate(spec), tmp_path / "populations" / "job", members=members)
    for member in members:
        RunDir(member).point_to_population(RunDir(tmp_path / "populations" / "job"), [3, 5])
    for index, (member, seed) in enumerate(zip(members, (3, 5), strict=True)):
        run = load_run(member)
        assert (run.seed, run.member, run.state["seed"]) == (seed, index, seed)
        assert run.checkpoint == tmp_path / "populations" / "job" / "checkpoint.pt"
    result = CliRunner().invoke(app, ["render", str(members[1]), "--tasks", "2", "--no-video"])
    assert result.exit_code == 0, result.output
    assert (members[1] / "render-topdown.png").is_file()
    result = CliRunner().invoke(app, ["relabel-picture", str(members[1]), "--trajectories", "2", "--candidates", "4"])
    assert result.exit_code == 0 and "stored" in result.output, result.output
