"""PointReacher: the reward against hand-computed values, the task distribution, the dynamics."""

import math

import numpy as np
import pytest
import torch

from hindsight.tasks.point_reacher import PointReacher, PointReacherReward, PointReacherTasks, reacher_weights

# u = 1/8 -> alpha = pi/4; v = 3/4 -> phi = pi/3: w = (0.612372, 0.612372, 0.5).
# p = (0.3, 0.4); goal (theta 0, r 0.2) = (0.2, 0); obstacle (theta pi/2, r 0.3) = (0, 0.3); a = (0.6, 0.8).
TASK = torch.tensor([[[0.125, 0.75, 0.0, 0.2, math.pi / 2, 0.3]]])
FEATURES = torch.tensor([[[0.3, 0.4]]])
ACTION = torch.tensor([[[0.6, 0.8]]])


def test_dense_reward_matches_hand_computation():
    # 0.612372 * (0.2 - 0.412311) + 0.612372 * (-1) + 0.5 * log10(0.316228 + 0.01) / 5
    r = PointReacherReward().reward(FEATURES, ACTION, TASK)
    assert r.shape == (1, 1, 1)
    assert r.item() == pytest.approx(-0.7910334798, abs=1e-5)


def test_sparse_reward_matches_hand_computation():
    reward = PointReacherReward(PointReacherReward.Params(distance="sparse"))
    # distance term exp(-0.412311^2 / 0.08^2) is ~ 3e-12
    assert reward.reward(FEATURES, ACTION, TASK).item() == pytest.approx(-0.6610203435, abs=1e-5)


def test_pure_objectives():
    # u = 0, v = 1/2 -> w = (1, 0, 0): only the distance term
    only_distance = torch.tensor([[[0.0, 0.5, 0.0, 0.2, 0.0, 0.2]]])
    assert PointReacherReward().reward(FEATURES, ACTION, only_distance).item() == pytest.approx(
        0.2 - math.hypot(0.1, 0.4), abs=1e-6
    )
    # v = 1 -> w = (0, 0, 1): only safety
    only_safety = torch.tensor([[[0.0, 1.0, 0.0, 0.2, math.pi / 2, 0.3]]])
    expected = math.log10(math.hypot(0.3, 0.1) + 0.01) / 5
    assert PointReacherReward().reward(FEATURES, ACTION, only_safety).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("distance", ["dense", "sparse"])
def test_weighted_returns_across_chunks_equal_the_summed_rewards(distance):
    # 70 trajectories x 2 x 50 centres x 20 steps span two chunks of DISTANCE_CHUNK entries
    reward = PointReacherReward(PointReacherReward.Params(distance=distance, sparse_scale=2.0))
    gen = torch.Generator().manual_seed(3)
    B, K, T = 70, 50, 20
    features = torch.rand(B, T, 2, generator=gen) * 0.8 - 0.4  # around the goals and obstacles
    actions = torch.rand(B, T, 2, generator=gen) * 2 - 1
    tasks = PointReacherTasks().sample(K, gen)
    weights = 0.97 ** torch.arange(T).float() * (torch.arange(T) < torch.randint(1, T + 1, (B, 1), generator=gen))
    expected = (reward.reward(features, actions, tasks[None].expand(B, K, -1)) * weights[:, None]).sum(-1)
    torch.testing.assert_close(
        reward.weighted_returns(features, actions, tasks, weights), expected, rtol=1e-5, atol=1e-5
    )


def test_weights_are_unit_vectors_in_positive_octant():
    tasks = PointReacherTasks().sample(4096, torch.Generator().manual_seed(0))
    w = reacher_weights(tasks[:, 0], tasks[:, 1])
    assert torch.allclose(w.norm(dim=-1), torch.ones(4096), atol=1e-5)
    assert (w >= -1e-6).all()
    low, high = PointReacherTasks.LOW, PointReacherTasks.HIGH
    assert ((tasks >= low) & (tasks <= high)).all()


def test_reference_dynamics_and_time_limit():
    """v += a/20 clipped to 0.25 per step; p += v clipped to [-1, 1]; exactly H steps, the last a terminal
    (discount 0: the task ends at the horizon, as in the reference code)."""
    family = PointReacher()
    env = family.make_env(PointReacherReward(), seed=0)
    env.task.set_task(np.array([0.1, 0.7, 0.0, 0.2, 1.0, 0.2], np.float32))
    env.reset()
    p, v, steps = np.zeros(2), np.zeros(2), 0
    action = np.array([1.0, -0.4])
    while True:
        step = env.step(action)
        steps += 1
        v = np.clip(v + action / 20, -0.25, 0.25)
        p = np.clip(p + v, -1, 1)
        obs = step.observation["observations"]
        np.testing.assert_allclose(obs[:2], p, atol=1e-6)
        np.testing.assert_allclose(obs[2:4], v, atol=1e-6)
        assert obs[4] == pytest.approx(steps / 20)
        np.testing.assert_allclose(step.observation["features"], p, atol=1e-6)
        if step.last():
            break
    assert steps == 20
    assert step.discount == 0.0  # the time limit is a true terminal for this family
