"""The gymnasium adapter: gymnasium's own checker on every registered family, tasks, terminals, seeding."""

import warnings

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from hindsight.adapters import GymnasiumAdapter
from hindsight.registry import REGISTRY

ENVS = REGISTRY.names("env")


@pytest.mark.parametrize("name", ENVS)
def test_gymnasium_check_env(name):
    env = GymnasiumAdapter(name, env_params={"horizon": 10})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # check_env reports most problems as warnings
        # unbounded observations are what gymnasium's own MuJoCo environments declare too
        warnings.filterwarnings("ignore", message=".*observation space (minimum|maximum) value is .?infinity")
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("name", ENVS)
def test_task_is_appended_drawn_at_reset_or_fixed(name):
    env = GymnasiumAdapter(name, env_params={"horizon": 5}, seed=1)
    obs_dim, task_dim = env.sizes.obs_dim, env.task_distribution.task_dim
    assert env.observation_space.shape == (obs_dim + task_dim,)
    obs, info = env.reset()
    np.testing.assert_array_equal(obs[obs_dim:], info["task"])
    obs_next, _ = env.reset()
    assert not np.array_equal(obs[obs_dim:], obs_next[obs_dim:]), "a fresh task each reset"

    fixed = env.task_distribution.sample(1, torch.Generator().manual_seed(9))[0].numpy()
    pinned = GymnasiumAdapter(name, env_params={"horizon": 5}, task=fixed)
    for _ in range(2):
        obs, _ = pinned.reset()
        np.testing.assert_array_equal(obs[obs_dim:], fixed)
    obs, _ = env.reset(options={"task": fixed})
    np.testing.assert_array_equal(obs[obs_dim:], fixed)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    np.testing.assert_array_equal(obs[obs_dim:], fixed)
    assert info["features"].shape == (env.family.feature_dim,)


def test_time_limit_is_truncation_and_fall_is_termination():
    env = GymnasiumAdapter("cheetah_multi", env_params={"horizon": 3})
    env.reset(seed=0)
    flags = [env.step(np.zeros(6))[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]

    env = GymnasiumAdapter("humanoid_direction", env_params={"horizon": 1000})
    env.reset(seed=0)
    for _ in range(1000):  # a humanoid without control falls within a few dozen steps
        _, _, terminated, truncated, _ = env.step(np.zeros(21))
        if terminated or truncated:
            break
    assert terminated and not truncated


def test_reset_seed_makes_episodes_repeat():
    env = GymnasiumAdapter("ant_direction", env_params={"horizon": 5})
    actions = [env.action_space.sample() for _ in range(5)]

    def episode(seed):
        observations = [env.reset(seed=seed)[0]]
        observations += [env.step(a)[0] for a in actions]
        return np.stack(observations)

    np.testing.assert_array_equal(episode(4), episode(4))
    assert not np.array_equal(episode(4), episode(5))


def test_bad_task_shape_is_an_error():
    with pytest.raises(ValueError, match="task must have shape"):
        GymnasiumAdapter("point_trajectory", task=np.zeros(5))
