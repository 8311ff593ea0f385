"""The replay buffer: what goes in comes out, row by row; ring order; terminals apart; checkpoints."""

import torch

from hindsight.batches import TrajectoryBatch
from hindsight.buffers.replay import ReplayBuffer
from hindsight.protocols import Sizes

O, A, F, Z = 3, 2, 2, 4


def trajectories(B: int, T: int, lengths: list[int], terminated: list[bool], offset: float = 0.0) -> TrajectoryBatch:
    """Observations whose first entry encodes (trajectory, step) so rows can be traced back."""
    obs = torch.zeros(B, T + 1, O)
    obs[..., 0] = offset + 100 * torch.arange(B)[:, None] + torch.arange(T + 1)[None]
    return TrajectoryBatch(
        obs=obs,
        actions=obs[:, :T, :A] + 0.5,
        features=obs[:, :T, :F] - 0.5,
        rewards=torch.zeros(B, T),
        tasks=torch.randn(B, Z),
        lengths=torch.tensor(lengths),
        terminated=torch.tensor(terminated),
    )


def buffer(capacity: int = 100) -> ReplayBuffer:
    return ReplayBuffer(ReplayBuffer.Params(capacity=capacity), Sizes(O, A, F, Z, horizon=10))


def test_rows_are_consistent_under_every_task():
    batch = trajectories(2, 4, lengths=[4, 2], terminated=[False, True])
    tasks = torch.randn(2, 3, Z)
    rewards = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    buf = buffer()
    buf.add(batch, tasks, rewards)
    assert len(buf) == 3 * (4 + 2)
    sample = buf.sample(500, torch.Generator().manual_seed(0))
    b = (sample.obs[:, 0] // 100).long()
    t = (sample.obs[:, 0] % 100).long()
    assert torch.equal(sample.next_obs[:, 0], sample.obs[:, 0] + 1)
    assert torch.equal(sample.actions, sample.obs[:, :A] + 0.5)
    assert torch.equal(sample.features, sample.obs[:, :F] - 0.5)
    # each row's task is one of its trajectory's tasks, and its reward is the reward under that task
    k = (tasks[b] == sample.tasks[:, None]).all(-1).float().argmax(1)
    assert (tasks[b, k] == sample.tasks).all()
    assert torch.equal(sample.rewards, rewards[b, k, t])
    last = t == batch.lengths[b] - 1
    assert torch.equal(sample.terminated, (last & batch.terminated[b]).float())
    assert torch.equal(sample.truncated, (last & ~batch.terminated[b]).float())
    assert sample.obs.shape == (500, O) and sample.rewards.shape == (500,)


def test_ring_keeps_the_newest_rows():
    buf = buffer(capacity=10)
    for i in range(3):
        buf.add(trajectories(1, 4, [4], [False], offset=1000 * i), torch.zeros(1, 1, Z), torch.zeros(1, 1, 4))
    assert len(buf) == 10
    kept = set(buf.sample(2000, torch.Generator().manual_seed(1)).obs[:, 0].tolist())
    assert kept == {1000 * i + t for i, t in [(0, 2), (0, 3)] + [(i, t) for i in (1, 2) for t in range(4)]}
    too_many = buffer(capacity=3)
    too_many.add(trajectories(1, 5, [5], [False]), torch.zeros(1, 1, Z), torch.zeros(1, 1, 5))
    assert set(too_many.sample(200, torch.Generator().manual_seed(2)).obs[:, 0].tolist()) == {2.0, 3.0, 4.0}


def test_sampling_is_deterministic_and_checkpoints_restore():
    buf = buffer()
    buf.add(trajectories(3, 5, [5, 3, 4], [False, True, False]), torch.randn(3, 2, Z), torch.randn(3, 2, 5))
    first = buf.sample(64, torch.Generator().manual_seed(3))
    again = buf.sample(64, torch.Generator().manual_seed(3))
    restored = buffer()
    restored.load_state_dict(buf.state_dict())
    third = restored.sample(64, torch.Generator().manual_seed(3))
    for name in ("obs", "actions", "next_obs", "features", "tasks", "rewards", "terminated", "truncated"):
        assert torch.equal(getattr(first, name), getattr(again, name))
        assert torch.equal(getattr(first, name), getattr(third, name))
    assert buf.nbytes == 100 * (2 * O + A + F + Z + 3) * 4
