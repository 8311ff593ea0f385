"""Environment families: the dm_env contract for every registered env, reward recomputation from stored
features, task distributions, and each family's own physics facts. Short horizons keep this fast."""

import json
import math

import numpy as np
import pytest
import torch

from hindsight.registry import REGISTRY
from hindsight.resources import env_asset

ENVS = REGISTRY.names("env")
SHORT = 12
# (obs, action, feature, task) sizes of each family, as ENVIRONMENTS.md and the README document them
DOCUMENTED_SIZES = {
    "point_reacher": (5, 2, 2, 6),
    "point_trajectory": (3, 2, 2, 3),
    "cheetah_multi": (17, 6, 4, 4),
    "ant_direction": (27, 8, 3, 1),
    "humanoid_direction": (53, 21, 2, 1),
    "fetch_reach": (10, 4, 3, 8),
    "mo_gymnasium": (17, 6, 2, 2),  # its default id, mo-halfcheetah-v5
}


def make(name, horizon=SHORT, seed=0, **params):
    """(family, reward family, environment) for a registered env with a short horizon."""
    env_cls = REGISTRY.get("env", name)
    family = env_cls(env_cls.Params(horizon=horizon, **params))
    reward_cls = env_cls.Reward
    reward = reward_cls(reward_cls.Params())
    return family, reward, family.make_env(reward, seed)


def rollout(env, task, actions):
    """Run ``actions`` [T, A] under ``task`` from a reset; returns the list of timesteps (reset first)."""
    env.task.set_task(task)
    steps = [env.reset()]
    for action in actions:
        steps.append(env.step(action))
        if steps[-1].last():
            break
    return steps


def random_actions(family, n, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (n, family.make_env(None, 0).action_spec().shape[0]))


def sample_tasks(family, n, seed):
    return family.Tasks().sample(n, torch.Generator().manual_seed(seed)).numpy()


@pytest.mark.parametrize("name", ENVS)
def test_every_env_family_has_a_horizon_param(name):
    env_cls = REGISTRY.get("env", name)
    assert "horizon" in env_cls.Params.model_fields
    assert env_cls(env_cls.Params(horizon=7)).horizon == 7


@pytest.mark.parametrize("name", ENVS)
def test_dm_env_contract(name):
    family, _, env = make(name)
    obs_spec, action_spec = env.observation_spec(), env.action_spec()
    assert set(obs_spec) == {"observations", "features"}
    obs_dim, action_dim, feature_dim, _ = DOCUMENTED_SIZES[name]
    assert obs_spec["observations"].shape == (obs_dim,) and obs_spec["observations"].dtype == np.float32
    assert obs_spec["features"].shape == (feature_dim,) == (family.feature_dim,)
    assert obs_spec["features"].dtype == np.float32
    assert action_spec.shape == (action_dim,)
    np.testing.assert_array_equal(action_spec.minimum, -1.0)
    np.testing.assert_array_equal(action_spec.maximum, 1.0)
    assert env.reward_spec().shape == () and env.discount_spec().shape == ()

    steps = rollout(env, sample_tasks(family, 1, 0)[0], random_actions(family, family.horizon, 0))
    assert steps[0].first() and steps[0].reward is None and steps[0].discount is None
    for step in steps:
        for key, spec in obs_spec.items():
            spec.validate(step.observation[key])
            assert np.isfinite(step.observation[key]).all()
    for step in steps[1:-1]:
        assert step.mid() and step.discount == 1.0 and np.isfinite(step.reward)
    last = steps[-1]
    assert last.last()
    if family.params.time_limit == "terminal" and len(steps) - 1 == family.horizon:  # the task ends at H
        assert last.discount == 0.0
    elif last.discount == 0.0:  # a true terminal before the time limit
        assert env.task.is_terminal(env.physics)
    else:  # the time limit: exactly `horizon` steps, bootstrap still applies
        assert last.discount == 1.0 and len(steps) - 1 == family.horizon
    assert env.step(np.zeros(env.action_spec().shape)).first()  # dm_env: stepping after LAST starts a new episode


@pytest.mark.parametrize("name", ENVS)
def test_the_time_limit_is_a_terminal_or_a_truncation_as_the_family_declares(name):
    family, _, env = make(name, horizon=4)
    expected = {"point_reacher": "terminal", "point_trajectory": "terminal", "fetch_reach": "terminal"}
    assert family.params.time_limit == expected.get(name, "truncation")
    for time_limit, discount in (("terminal", 0.0), ("truncation", 1.0)):
        family, _, env = make(name, horizon=4, time_limit=time_limit)
        task = np.zeros(DOCUMENTED_SIZES[name][3], np.float32)
        steps = rollout(env, task, np.zeros((10, *env.action_spec().shape)))
        if not env.task.is_terminal(env.physics):  # no fall before the horizon
            assert len(steps) - 1 == 4 and steps[-1].last() and steps[-1].discount == discount


@pytest.mark.parametrize("name", ENVS)
def test_same_seed_same_episode(name):
    family, _, env_a = make(name, seed=3)
    env_b = make(name, seed=3)[2]
    task, actions = sample_tasks(family, 1, 1)[0], random_actions(family, SHORT, 1)
    for a, b in zip(rollout(env_a, task, actions), rollout(env_b, task, actions), strict=True):
        np.testing.assert_array_equal(a.observation["observations"], b.observation["observations"])
        assert a.reward == b.reward


@pytest.mark.parametrize("name", ENVS)
def test_rewards_recomputed_from_features_for_any_task(name):
    """The env's reward under z equals the reward family on the stored features, for z and for other tasks:
    the same actions from the same seed give the same features whatever the task."""
    family, reward, _ = make(name)
    tasks = sample_tasks(family, 4, 2)
    actions = random_actions(family, SHORT, 2)
    episodes = [rollout(make(name, seed=5)[2], task, actions)[1:] for task in tasks]
    lengths = {len(steps) for steps in episodes}
    assert len(lengths) == 1, "the task changed the dynamics"
    features = torch.tensor(np.stack([s.observation["features"] for s in episodes[0]]))[None]  # [1, T, F]
    used = torch.tensor(actions[: features.shape[1]], dtype=torch.float32)[None]  # [1, T, A]
    recomputed = reward.reward(features, used, torch.tensor(tasks)[None])[0]  # [K, T]
    for k, steps in enumerate(episodes):
        np.testing.assert_array_equal(np.stack([s.observation["features"] for s in steps]), features[0].numpy())
        observed = torch.tensor([s.reward for s in steps], dtype=torch.float32)
        torch.testing.assert_close(recomputed[k], observed, rtol=1e-5, atol=1e-5)
    assert recomputed.std() > 0, "the rewards do not depend on the task or the step"


# ----- task distributions and eval sets -----


def draw(name, n=4000):
    env_cls = REGISTRY.get("env", name)
    return env_cls.Tasks().sample(n, torch.Generator().manual_seed(0))


def reacher_weights(tasks):
    from hindsight.tasks.point_reacher import reacher_weights as weights

    return weights(tasks[:, 0], tasks[:, 1])


def test_point_reacher_weights_are_unit_vectors_in_the_positive_octant():
    w = reacher_weights(draw("point_reacher"))
    torch.testing.assert_close(w.norm(dim=-1), torch.ones(len(w)))
    assert (w >= -1e-6).all()


def test_point_trajectory_task_ranges():
    z = draw("point_trajectory")
    assert (z[:, 0].abs() <= math.pi).all()
    assert ((z[:, 1] >= 0.75) & (z[:, 1] <= 1.0)).all() and (z[:, 2].abs() <= 0.25).all()
    assert z[:, 0].min() < -3 and z[:, 0].max() > 3 and z[:, 2].min() < -0.24 and z[:, 2].max() > 0.24


def test_cheetah_task_is_a_unit_vector_with_non_negative_energy_and_height_weights():
    z = draw("cheetah_multi")
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(len(z)))
    assert (z[:, 1:3] >= 0).all()
    assert (z[:, 0] < 0).any() and (z[:, 0] > 0).any() and (z[:, 3] < 0).any() and (z[:, 3] > 0).any()


@pytest.mark.parametrize("name", ["ant_direction", "humanoid_direction"])
def test_direction_tasks_and_eval_formula(name):
    z = draw(name)
    assert z.shape[1] == 1 and (z.abs() <= math.pi).all() and z.min() < -3 and z.max() > 3
    env_cls = REGISTRY.get("env", name)
    evals = env_cls.Tasks().eval_tasks()
    k = torch.arange(25, dtype=torch.float32)
    torch.testing.assert_close(evals[:, 0], -math.pi + math.pi / 25 + 2 * math.pi * k / 25)


def test_fetch_task_ranges():
    z = draw("fetch_reach")
    assert ((z[:, 0] >= 0) & (z[:, 0] <= 0.25) & (z[:, 1] >= 0.5) & (z[:, 1] <= 1)).all()
    assert (z[:, 2:].abs() <= 0.15).all() and z[:, 2:].abs().max() > 0.149
    w = reacher_weights(z)
    torch.testing.assert_close(w.norm(dim=-1), torch.ones(len(w)))
    assert (w >= -1e-6).all()


@pytest.mark.parametrize("name, module", [("cheetah_multi", "cheetah"), ("fetch_reach", "fetch")])
def test_shipped_eval_tasks_are_the_documented_fixed_seed_draw(name, module):
    import importlib

    mod = importlib.import_module(f"hindsight.tasks.{module}")
    env_cls = REGISTRY.get("env", name)
    tasks = env_cls.Tasks()
    shipped = tasks.eval_tasks()
    assert shipped.shape == (mod.EVAL_COUNT, tasks.task_dim) and shipped.dtype == torch.float32
    torch.testing.assert_close(
        shipped, tasks.sample(mod.EVAL_COUNT, torch.Generator().manual_seed(mod.EVAL_SEED)), rtol=0, atol=0
    )
    assert json.loads(env_asset(name, "eval_tasks.json").read_text())["seed"] == mod.EVAL_SEED


# ----- each family's own facts -----


def test_point_trajectory_reference_dynamics_and_reward():
    family, reward, env = make("point_trajectory", horizon=15)
    steps = rollout(env, np.array([0.0, 1.0, 0.0]), [np.array([1.0, 0.5])] * 12 + [np.array([2.0, -3.0])])
    positions = np.stack([s.observation["observations"][:2] for s in steps])
    np.testing.assert_allclose(positions[1], [0.1, 0.05], atol=1e-6)
    np.testing.assert_allclose(positions[12], [1.0, 0.6], atol=1e-6)  # x clipped at the wall
    np.testing.assert_allclose(positions[13], [1.0, 0.5], atol=1e-6)  # action clipped to [-1, 1]
    assert steps[13].observation["observations"][2] == pytest.approx(13 / 15)
    # the reward reads the position BEFORE the step
    np.testing.assert_allclose(steps[2].observation["features"], positions[1], atol=1e-6)
    x, y, theta, d, amp = 0.3, 0.1, 0.5, 0.8, 0.2
    xr, yr = x * math.cos(theta) - y * math.sin(theta), x * math.sin(theta) + y * math.cos(theta)
    density = math.exp(-0.5 * ((yr - amp * math.sin(math.pi * xr / d)) / 0.05) ** 2) / (0.05 * math.sqrt(2 * math.pi))
    got = reward.reward(torch.tensor([[[x, y]]]), torch.zeros(1, 1, 2), torch.tensor([[[theta, d, amp]]]))
    assert got.item() == pytest.approx((xr / d + 1e-12) * density, rel=1e-5)
    behind = reward.reward(torch.tensor([[[-0.3, 0.0]]]), torch.zeros(1, 1, 2), torch.tensor([[[0.0, d, amp]]]))
    assert behind.item() == 0.0


def test_cheetah_features():
    family, reward, env = make("cheetah_multi")
    assert env.physics.named.model.actuator_gear["fthigh", 0] == 120.0
    env.task.set_task(np.array([1.0, 0.0, 0.0, 0.0], np.float32))
    env.reset()
    x0 = env.physics.data.qpos[0]
    action = np.full(6, 0.5)
    step = env.step(action)
    forward, control, height, pitch_rate = step.observation["features"]
    assert forward == pytest.approx((env.physics.data.qpos[0] - x0) / 0.05, rel=1e-4, abs=1e-5)
    assert control == pytest.approx(-0.1 * 6 * 0.25, rel=1e-6)
    assert height == pytest.approx(env.physics.data.qpos[1], abs=1e-6)
    assert pitch_rate == pytest.approx(env.physics.data.qvel[2], rel=1e-5, abs=1e-6)
    assert step.reward == pytest.approx(forward, rel=1e-5)


def test_direction_reward_cone_control_and_alive_bonus():
    from hindsight.tasks.ant import AntDirectionReward

    reward = AntDirectionReward()
    speed = 2.0
    angles = torch.tensor([0.0, math.radians(14), math.radians(16), math.pi])
    features = torch.stack([speed * torch.cos(angles), speed * torch.sin(angles), torch.full_like(angles, 10.0)], -1)
    actions = torch.full((4, 8), 0.5)
    got = reward.reward(features[None], actions[None], torch.zeros(1, 1, 1))[0, 0]
    base = -0.5 * 8 * 0.25 - 0.5e-3 * 10.0 + 1.0
    torch.testing.assert_close(got, torch.tensor([speed + base, speed + base, base, base]))


@pytest.mark.parametrize("name, height", [("ant_direction", 1.5), ("humanoid_direction", 0.5)])
def test_falls_are_true_terminals(name, height):
    family, _, env = make(name, horizon=50)
    env.task.set_task(np.zeros(1, np.float32))
    env.reset()
    env.physics.data.qpos[2] = height
    step = env.step(np.zeros(env.action_spec().shape))
    assert step.last() and step.discount == 0.0


@pytest.mark.parametrize("name, low, high", [("ant_direction", 0.2, 1.0), ("humanoid_direction", 1.0, 2.0)])
def test_terminal_when_torso_height_leaves_the_healthy_range_or_state_is_not_finite(name, low, high):
    _, _, env = make(name)
    env.task.set_task(np.zeros(1, np.float32))
    env.reset()
    qpos, qvel = env.physics.data.qpos, env.physics.data.qvel
    for height, expected in [(low - 0.01, True), (low + 0.01, False), (high - 0.01, False), (high + 0.01, True)]:
        qpos[2] = height
        assert env.task.is_terminal(env.physics) == expected, height
    qvel[0] = np.nan
    assert env.task.is_terminal(env.physics)


@pytest.mark.parametrize("name", ["ant_direction", "humanoid_direction"])
def test_standing_still_is_truncated_not_terminated(name):
    family, _, env = make(name, horizon=5)
    steps = rollout(env, np.zeros(1, np.float32), np.zeros((5, *env.action_spec().shape)))
    assert len(steps) == 6 and steps[-1].last() and steps[-1].discount == 1.0


def test_ant_contact_feature_is_a_bounded_sum_of_squares():
    family, _, env = make("ant_direction", horizon=30)
    steps = rollout(env, np.zeros(1, np.float32), random_actions(family, 30, 0))
    contact = np.array([s.observation["features"][2] for s in steps[1:]])
    nbody = env.physics.model.nbody
    assert (contact >= 0).all() and (contact <= 6 * nbody).all() and contact.max() > 0


def test_fetch_mocap_control_blocked_gripper_and_relative_frame():
    family, reward, env = make("fetch_reach", horizon=10)
    task = np.zeros(8, np.float32)
    task[:2] = [0.0, 0.5]  # w = (1, 0, 0): all weight on the distance term; goal at the start
    first = rollout(env, task, [np.array([1.0, 0.0, 0.0, 1.0])] * 3)
    again = rollout(env, task, [])
    np.testing.assert_array_equal(first[0].observation["observations"], again[0].observation["observations"])
    np.testing.assert_allclose(first[0].observation["observations"][:3], 0.0, atol=1e-9)
    grip = np.stack([s.observation["features"] for s in first[1:]])
    np.testing.assert_allclose(grip[:, 0], [0.05, 0.10, 0.15], atol=5e-3)  # 0.05 m per unit action
    np.testing.assert_allclose(grip[:, 1:], 0.0, atol=5e-3)
    for step in first:  # fingers blocked
        np.testing.assert_array_equal(step.observation["observations"][3:5], 0.0)
    assert first[1].reward == pytest.approx(math.exp(-np.sum(grip[0] ** 2) / 0.08**2), rel=1e-5)


def test_fetch_action_noise_changes_the_motion():
    family, _, env = make("fetch_reach", horizon=3, action_noise=0.5)
    still = rollout(env, np.zeros(8, np.float32), np.zeros((3, 4)))
    assert np.abs(still[-1].observation["features"]).max() > 1e-3
