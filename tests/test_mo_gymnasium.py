"""The mo_gymnasium family: MO-Gymnasium environments as reward families (the registry-wide contract tests
cover it at its default id, mo-halfcheetah-v5; these check what is its own)."""

import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TIMING_AND_CALL_KEYS, without_timings

pytest.importorskip("mo_gymnasium")

from hindsight.adapters import GymnasiumAdapter  # noqa: E402
from hindsight.build import build_problem  # noqa: E402
from hindsight.policy.choose import TaskChoiceError, field_problem, to_tasks  # noqa: E402
from hindsight.registry import REGISTRY  # noqa: E402
from hindsight.specs import SpecError, load_spec, validate  # noqa: E402
from hindsight.studies.spec import expand, load_study  # noqa: E402
from hindsight.tasks import mo_gym  # noqa: E402
from hindsight.train.trainer import Trainer  # noqa: E402

IDS = ("mo-halfcheetah-v5", "mo-hopper-v5")


def problem(env_id, **env):
    """The family, task distribution and reward family a spec naming ``env_id`` builds."""
    return build_problem(validate({"env": {"kind": "mo_gymnasium", "id": env_id, **env}, "train": {"epochs": 1}}))


@pytest.mark.parametrize("env_id", IDS)
def test_linear_reward_equals_mo_gymnasiums_linear_reward_step_by_step(env_id):
    """Random actions, random weights: our reward of each step is MO-Gymnasium's LinearReward scalar reward,
    the features its reward vector, and its terminal (the hopper falls) and time limit ours."""
    import mo_gymnasium
    from mo_gymnasium.wrappers import LinearReward

    horizon = 40
    built = problem(env_id, horizon=horizon)
    rng, generator = np.random.default_rng(0), torch.Generator().manual_seed(0)
    endings = set()
    for episode in range(4):
        z = built.tasks.sample(1, generator)[0].numpy()
        ours = built.family.make_env(built.reward, seed=episode)
        ours.task.set_task(z)
        step = ours.reset()
        theirs = LinearReward(mo_gymnasium.make(env_id, max_episode_steps=horizon), weight=z.astype(np.float64))
        obs, _ = theirs.reset(seed=ours.episode_seed)
        np.testing.assert_array_equal(step.observation["observations"], obs.astype(np.float32))
        for t in range(horizon + 1):
            action = rng.uniform(-1, 1, ours.action_spec().shape).astype(np.float32)
            step = ours.step(action)
            obs, scalar, terminated, truncated, info = theirs.step(action)
            np.testing.assert_array_equal(step.observation["observations"], obs.astype(np.float32))
            np.testing.assert_array_equal(step.observation["features"], info["vector_reward"])
            assert step.reward == pytest.approx(scalar, rel=1e-5, abs=1e-5), (episode, t)
            assert step.last() == (terminated or truncated)
            if step.last():
                assert step.discount == (0.0 if terminated else 1.0) and ours.task.is_terminal() == terminated
                endings.add("terminated" if terminated else "truncated")
                break
    assert endings == {"truncated"} if env_id == "mo-halfcheetah-v5" else "terminated" in endings  # hopper falls


def test_the_time_limit_is_a_truncation_or_as_declared_a_terminal():
    for time_limit, discount in (("truncation", 1.0), ("terminal", 0.0)):
        built = problem("mo-halfcheetah-v5", horizon=5, time_limit=time_limit)
        env = built.family.make_env(None, 0)
        env.task.set_task(np.array([0.5, 0.5], np.float32))
        steps = [env.reset()] + [env.step(np.zeros(6)) for _ in range(5)]
        assert [s.last() for s in steps] == [False] * 5 + [True] and steps[-1].discount == discount
        assert steps[-1].reward == 0.0  # no reward family given: the caller scores the features
        assert env.step(np.zeros(6)).first()  # stepping after the last step starts a new episode


def test_the_default_horizon_is_the_environments_time_limit_and_sizes_come_from_its_spaces():
    built = problem("mo-hopper-v5")
    assert built.family.horizon == 1000 and built.sizes.horizon == 1000
    assert (built.sizes.obs_dim, built.sizes.action_dim, built.sizes.feature_dim, built.sizes.task_dim) == (11, 3, 3, 3)


def test_spec_gives_its_own_tasks_and_reward_the_environments_objectives_and_reference_point():
    spec = validate({"env": {"kind": "mo_gymnasium", "id": "mo-hopper-v5"}, "train": {"epochs": 1}}).to_dict()
    assert spec["tasks"] == {"kind": "mo_gymnasium", "objectives": ["velocity", "height", "energy"]}
    assert spec["reward"] == {
        "kind": "mo_gymnasium",
        "objectives": ["velocity", "height", "energy"],
        "reference_point": [-10.0, -12.5, -3.0],
    }
    assert validate(spec).to_dict() == spec  # the resolved spec is itself a valid spec
    given = validate(
        {
            "env": {"kind": "mo_gymnasium", "id": "mo-hopper-v5", "objectives": ["run", "jump", "save"]},
            "reward": {"reference_point": [-1, -2, -3]},
            "train": {"epochs": 1},
        }
    ).to_dict()
    assert given["tasks"]["objectives"] == ["run", "jump", "save"] == given["reward"]["objectives"]
    assert given["reward"]["reference_point"] == [-1.0, -2.0, -3.0]
    cost_free = problem("mo-hopper-v5", kwargs={"cost_objective": False})  # the environment's own kwargs
    assert cost_free.reward.objective_names == ("velocity", "height") and cost_free.sizes.feature_dim == 2


@pytest.mark.filterwarnings("ignore:.*precision lowered by casting")  # deep-sea-treasure's own observation space
@pytest.mark.parametrize(
    "env, extra, message",
    [
        ({"id": "deep-sea-treasure-v0"}, {}, "continuous (Box) action spaces only"),
        ({"id": "mo-halfchetah-v5"}, {}, "Did you mean: `mo-halfcheetah`"),
        ({"id": "mo-walker2d-v5"}, {}, "give reward.reference_point"),
        ({"id": "mo-hopper-v5"}, {"reward": {"reference_point": [0, 0]}}, "2 numbers for 3 objectives"),
        ({"id": "mo-hopper-v5", "objectives": ["a", "b"]}, {}, "reward vector has 3"),
        ({"id": "mo-hopper-v5"}, {"tasks": {"objectives": ["a", "b"]}}, "draws tasks of size 2"),
        ({"id": "mo-hopper-v5", "kwargs": {"max_episode_steps": 9}}, {}, "env.horizon sets the time limit"),
    ],
)
def test_bad_settings_are_one_line_spec_errors(env, extra, message):
    with pytest.raises(SpecError) as error:
        validate({"env": {"kind": "mo_gymnasium", **env}, **extra, "train": {"epochs": 1}})
    assert message in str(error.value) and len(str(error.value).splitlines()) == 1


def test_without_mo_gymnasium_the_error_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mo_gymnasium", None)  # importing it now raises ImportError
    mo_gym._describe.cache_clear()
    try:
        with pytest.raises(SpecError, match=r"pip install -e '\.\[mo\]'"):
            validate({"env": {"kind": "mo_gymnasium", "id": "mo-swimmer-v5"}, "train": {"epochs": 1}})
    finally:
        mo_gym._describe.cache_clear()


@pytest.mark.parametrize("env_id", IDS)
def test_the_declared_reference_point_bounds_every_step_of_random_and_bang_bang_episodes(env_id):
    built = problem(env_id, horizon=300)
    rng, worst = np.random.default_rng(1), np.full(built.sizes.feature_dim, np.inf)
    for episode in range(6):
        env = built.family.make_env(None, episode)
        env.task.set_task(built.tasks.sample(1, torch.Generator().manual_seed(episode))[0].numpy())
        step = env.reset()
        while not step.last():
            action = rng.uniform(-1, 1, env.action_spec().shape)
            step = env.step(np.sign(action) if episode % 2 else action)
            worst = np.minimum(worst, step.observation["features"])
    assert (worst >= np.asarray(built.reward.reference_point)).all(), (worst, built.reward.reference_point)


def test_simplex_tasks_cover_the_simplex_and_read_as_weights():
    tasks = REGISTRY.get("tasks", "mo_gymnasium")(mo_gym.SimplexTasks.Params(objectives=["a", "b", "c"]))
    z = tasks.sample(20000, torch.Generator().manual_seed(0))
    assert z.shape == (20000, 3) and (z >= 0).all()
    torch.testing.assert_close(z.sum(-1), torch.ones(20000))
    # a flat Dirichlet: each weight's marginal is Beta(1, 2), mean 1/3, P(w < 1/2) = 1 - (1/2)^2 = 3/4
    torch.testing.assert_close(z.mean(0), torch.full((3,), 1 / 3), atol=0.01, rtol=0)
    torch.testing.assert_close((z < 0.5).float().mean(0), torch.full((3,), 0.75), atol=0.01, rtol=0)
    fixed = tasks.eval_tasks()
    torch.testing.assert_close(fixed, tasks.sample(25, torch.Generator().manual_seed(mo_gym.EVAL_SEED)), rtol=0, atol=0)
    chosen = to_tasks(tasks, [{"weights": [1.0, 0.5, 0.5]}], torch.Generator(), "--task")
    torch.testing.assert_close(chosen, torch.tensor([[0.5, 0.25, 0.25]]))
    assert field_problem(tasks.fields[0], [0.0, 0.0, 0.0]) == "the values must not all be 0"
    with pytest.raises(TaskChoiceError, match=r"weights \(a, b, c\) in \[0, 1\], not all 0 \(scaled to sum to 1\)"):
        to_tasks(tasks, [{"weights": [2.0, 0.0, 0.0]}], torch.Generator(), "--task")


def test_actions_in_minus_one_one_map_onto_the_environments_bounds():
    spec = {"env": {"kind": "mo_gymnasium", "id": "mo-humanoid-v5"}, "reward": {"reference_point": [-10, -10]}}
    built = build_problem(validate({**spec, "train": {"epochs": 1}}))  # actions in [-0.4, 0.4]
    env = built.family.make_env(None, 0)
    low, high = env.gym_env.action_space.low, env.gym_env.action_space.high
    assert not np.allclose(low, -1)
    np.testing.assert_allclose(env.env_action(-np.ones(len(low))), low, rtol=1e-6)
    np.testing.assert_allclose(env.env_action(np.ones(len(low))), high, rtol=1e-6)
    np.testing.assert_allclose(env.env_action(np.zeros(len(low))), (low + high) / 2, atol=1e-7)
    assert env.env_action(np.full(len(low), 0.3)).dtype == env.gym_env.action_space.dtype


def test_physics_mirrors_the_mujoco_state_and_the_noise_stream_alone_sets_each_episode():
    built = problem("mo-hopper-v5", horizon=20)
    env = built.family.make_env(None, 7)
    env.task.set_task(np.full(3, 1 / 3, np.float32))
    first = env.reset()
    physics = env.physics
    for _ in range(3):
        env.step(np.full(3, 0.5))
        np.testing.assert_array_equal(physics.data.qpos, env.gym_env.unwrapped.data.qpos)
    # an evaluator reseeding the noise stream (and a resumed run restoring it) gets the same episode again
    env.task.random.seed(7)
    again = env.reset()
    np.testing.assert_array_equal(again.observation["observations"], first.observation["observations"])
    assert env.step(np.zeros(3)).observation["features"] is not None


def test_gymnasium_adapter_takes_the_familys_own_objectives():
    adapter = GymnasiumAdapter("mo_gymnasium", env_params={"id": "mo-hopper-v5", "horizon": 5}, seed=0)
    assert adapter.task_distribution.task_dim == 3 and adapter.reward_family.objective_names[1] == "height"
    obs, info = adapter.reset()
    assert obs.shape == (11 + 3,) and math.isclose(float(info["task"].sum()), 1.0, rel_tol=1e-5)


def tiny_air_spec(seed=0):
    return {
        "seed": seed,
        "env": {"kind": "mo_gymnasium", "id": "mo-halfcheetah-v5", "horizon": 50},
        "relabeler": {"kind": "air", "candidates": 8, "cache": 16},
        "agent": {"kind": "sac", "hidden": [16, 16], "batch_size": 32, "gamma": 0.99},
        "buffer": {"kind": "replay", "capacity": 5000},
        "train": {
            "epochs": 2,
            "loops_per_epoch": 2,
            "episodes_per_loop": 2,
            "updates_per_loop": 5,
            "warmup_steps": 100,
        },
        "logging": {"wandb": {"mode": "disabled"}, "progress": False},
    }


def test_tiny_air_run_on_mo_halfcheetah_ends_with_finite_hypervolume_and_expected_utility():
    rows = Trainer(validate(tiny_air_spec())).run()[0]
    assert rows[-1]["env_steps"] == 100 + 2 * 2 * 2 * 50
    last = rows[-1]
    assert math.isfinite(last["eval/mo/hypervolume"]) and last["eval/mo/hypervolume"] > 0
    assert math.isfinite(last["eval/mo/expected_utility"]) and {
        "eval/objective/velocity",
        "eval/objective/energy",
    } <= set(last)
    front = last["eval/mo/front"]
    assert front["columns"] == ["w_velocity", "w_energy", "velocity", "energy"]
    data = np.array(front["data"])
    assert data.shape == (mo_gym.FRONT_WEIGHTS, 4)
    # linear in the weights: the expected utility is the mean over the front of w . (objective returns)
    assert last["eval/mo/expected_utility"] == pytest.approx((data[:, :2] * data[:, 2:]).sum(1).mean(), abs=1e-3)
    again = Trainer(validate(tiny_air_spec())).run()[0]
    assert without_timings(again) == without_timings(rows)  # seeded from the run's seed: row for row


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("folder, env_id", [("mo_halfcheetah", "mo-halfcheetah-v5"), ("mo_hopper", "mo-hopper-v5")])
def test_ready_specs_and_studies(folder, env_id):
    for method in ("none", "random", "advantage", "air"):
        spec = load_spec(REPO / "envs" / folder / f"{method}.yaml")
        assert spec.run.env.kind == "mo_gymnasium" and spec.params["env"].id == env_id
        assert spec.run.relabeler.kind == method and spec.sizes().horizon == 1000
        assert tuple(spec.params["reward"].reference_point) == mo_gym.REFERENCE_POINTS[env_id, spec.sizes().feature_dim]
    runs = expand(load_study(REPO / "envs" / folder / "study.yaml"))
    assert len(runs) == 20 and {run.family for run in runs} == {env_id}  # grouped by environment, not by kind
    assert [run.method for run in runs[::5]] == ["none", "random", "advantage", "air"]


def test_the_small_study_compares_none_random_and_air():
    runs = expand(load_study(REPO / "envs" / "mo_halfcheetah" / "small_study.yaml", ["train.epochs=20"]))
    assert [run.method for run in runs[::3]] == ["none", "random", "air"] and len(runs) == 9
    assert {run.spec.run.train.epochs for run in runs} == {20}


def test_a_resumed_run_gives_the_rows_of_an_uninterrupted_one(tmp_path):
    """Between episodes the environments' state is their noise stream alone, which checkpoints keep."""
    import yaml
    from typer.testing import CliRunner

    from hindsight.cli import app
    from hindsight.rundir import RunDir

    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump({**tiny_air_spec(), "relabeler": {"kind": "random"}}))

    def run(out, *extra):
        result = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / out), "--no-progress", *extra])
        assert result.exit_code == 0, result.output
        return without_timings(RunDir(tmp_path / out).read_metrics(), TIMING_AND_CALL_KEYS)

    whole = run("whole")
    run("resumed", "--set", "train.epochs=1")
    assert run("resumed", "--resume") == whole and len(whole) == 2


def test_a_models_compiler_warning_is_logged_once_not_once_per_environment(caplog):
    mo_gym._OncePerMessage.seen.clear()
    family = mo_gym.MOGymnasium()
    with caplog.at_level("WARNING"):
        for seed in range(3):
            family.make_env(None, seed)
    assert sum("settotalmass" in record.getMessage() for record in caplog.records) == 1  # gymnasium's cheetah XML


@pytest.mark.filterwarnings("ignore:.*is out of date", "ignore:.*precision lowered by casting")  # gymnasium's own
def test_documented_names_fit_every_registered_version_of_their_environment():
    import gymnasium

    mo_gym.mo_gymnasium()  # registers MO-Gymnasium's environments
    checked = set()
    for env_id in gymnasium.registry:
        base = re.sub(r"-v\d+$", "", env_id)
        if base not in mo_gym.OBJECTIVE_NAMES:
            continue
        try:
            description = mo_gym.describe(env_id, {})
        except gymnasium.error.DependencyNotInstalled:  # Box2D for the lunar lander
            continue
        assert description.reward_dim == len(mo_gym.OBJECTIVE_NAMES[base]), env_id
        checked.add(base)
    assert {"mo-halfcheetah", "mo-hopper", "mo-hopper-2obj", "mo-ant", "mo-humanoid", "mo-swimmer"} <= checked
