"""Unit tests of the relabelers on constructed trajectories whose right answer is known."""

from __future__ import annotations

import io
import math

import attrs
import pytest
import torch

from hindsight.agents.sac import SAC
from hindsight.batches import TrajectoryBatch, TransitionBatch, discounted_returns
from hindsight.protocols import RelabelContext, Sizes
from hindsight.registry import REGISTRY
from hindsight.relabel.advantage import AdvantageRelabeling
from hindsight.relabel.air import AIR
from hindsight.relabel.candidates import batch_percentiles
from hindsight.relabel.her import HER
from hindsight.relabel.hipi import HIPI
from hindsight.relabel.random_tasks import ContinualRandom, RandomRelabeling
from hindsight.relabel.reward import RewardRelabeling
from hindsight.specs import RuntimeSpec
from hindsight.tasks.point_reacher import PointReacherReward, PointReacherTasks, polar_to_xy, reacher_weights

T, GAMMA = 20, 0.97
SIZES = Sizes(obs_dim=5, action_dim=2, feature_dim=2, task_dim=6, horizon=T)


def reference_rollouts(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions [n, T, 2] and uniform random actions [n, T, 2] under PointReacher's reference dynamics."""
    actions = torch.rand(n, T, 2, generator=generator) * 2 - 1
    velocity, position, positions = torch.zeros(n, 2), torch.zeros(n, 2), []
    for t in range(T):
        velocity = (velocity + actions[:, t] / 20).clamp(-0.25, 0.25)
        position = (position + velocity).clamp(-1, 1)
        positions.append(position)
    return torch.stack(positions, 1), actions


def make_batch(
    features: torch.Tensor,
    actions: torch.Tensor,
    tasks: torch.Tensor,
    lengths: torch.Tensor | None = None,
    obs: torch.Tensor | None = None,
) -> TrajectoryBatch:
    B, steps = features.shape[:2]
    return TrajectoryBatch(
        obs=obs if obs is not None else torch.zeros(B, steps + 1, 5),
        actions=actions,
        features=features,
        rewards=torch.zeros(B, steps),
        tasks=tasks,
        lengths=lengths if lengths is not None else torch.full((B,), steps),
        terminated=torch.zeros(B, dtype=torch.bool),
    )


class MeanReturnAgent:
    """A known critic: V(s0, v) = mean discounted return of reference random rollouts under v."""

    gamma = GAMMA

    def __init__(self, features: torch.Tensor, actions: torch.Tensor, reward: PointReacherReward):
        self.features, self.actions, self.reward = features, actions, reward

    def value(self, obs: torch.Tensor, tasks: torch.Tensor, member: int = 0) -> torch.Tensor:
        B, K, _ = tasks.shape
        n = self.features.shape[0]
        rewards = self.reward.reward(self.features, self.actions, tasks[:1].expand(n, K, -1))
        return discounted_returns(rewards, torch.ones(1, 1, T), self.gamma).mean(0)[None].expand(B, K)


class ZeroValueAgent:
    """V = 0, so advantage relabeling equals reward relabeling."""

    gamma = GAMMA

    def value(self, obs: torch.Tensor, tasks: torch.Tensor, member: int = 0) -> torch.Tensor:
        return torch.zeros(tasks.shape[:2])


def small_sac(seed: int = 0) -> SAC:
    return SAC(SAC.Params(hidden=[16], gamma=GAMMA), SIZES, RuntimeSpec(), [torch.Generator().manual_seed(seed)])


def reacher_ctx(agent, seed: int) -> RelabelContext:
    return RelabelContext(
        tasks=PointReacherTasks(),
        reward=PointReacherReward(),
        agent=agent,
        generator=torch.Generator().manual_seed(seed),
    )


def random_batch(B: int, seed: int, lengths: torch.Tensor | None = None) -> TrajectoryBatch:
    g = torch.Generator().manual_seed(seed)
    features, actions = reference_rollouts(B, g)
    obs = torch.rand(B, T + 1, 5, generator=g)
    return make_batch(features, actions, PointReacherTasks().sample(B, g), lengths, obs)


# ----- constructed trajectories with a known answer -----


@pytest.mark.parametrize("seed", range(4))
def test_frugal_path_to_p_gets_goal_near_p_and_high_energy_weight(seed):
    """A path that reaches p early and barely spends energy: AIR and advantage relabeling choose a goal
    near p and a high energy weight; reward relabeling (no baseline) prefers the distance weight."""
    g = torch.Generator().manual_seed(100 + seed)
    reward = PointReacherReward()
    ref_features, ref_actions = reference_rollouts(64, g)
    agent = MeanReturnAgent(ref_features, ref_actions, reward)
    theta = torch.rand((), generator=g) * 2 * math.pi - math.pi
    p = polar_to_xy(theta, torch.tensor(0.22))
    features = torch.cat([p * torch.linspace(0, 1, 8)[1:, None], p.expand(T - 7, 2)])[None]
    frugal = make_batch(features, torch.full((1, T, 2), 0.02), PointReacherTasks().sample(1, g))

    chosen = {}
    for name, relabeler in [
        ("reward", RewardRelabeling(RewardRelabeling.Params(candidates=1000))),
        ("advantage", AdvantageRelabeling(AdvantageRelabeling.Params(candidates=1000))),
        ("air", AIR(AIR.Params(candidates=1000, cache=10))),
    ]:
        ctx = reacher_ctx(agent, seed)
        if name == "air":  # fill the cache with 9 ordinary trajectories first
            relabeler.relabel(make_batch(ref_features[:9], ref_actions[:9], frugal.tasks.expand(9, -1)), ctx)
        chosen[name] = relabeler.relabel(frugal, ctx)[0, 0]
    for name in ("advantage", "air"):
        z = chosen[name]
        assert reacher_weights(z[0], z[1])[1] > 0.5, name
        assert torch.linalg.vector_norm(polar_to_xy(z[2], z[3]) - p) < 0.1, name
    z = chosen["reward"]
    assert reacher_weights(z[0], z[1])[0] > 0.8  # without a baseline, the distance term dominates
    assert torch.linalg.vector_norm(polar_to_xy(z[2], z[3]) - p) < 0.1


def test_reward_relabeling_keeps_the_highest_returns():
    batch = random_batch(3, seed=1, lengths=torch.tensor([20, 12, 3]))
    relabeler = RewardRelabeling(RewardRelabeling.Params(candidates=50, keep=4))
    ctx = reacher_ctx(ZeroValueAgent(), seed=2)
    kept = relabeler.relabel(batch, ctx)  # [3, 4, 6]
    candidates = torch.cat([batch.tasks, PointReacherTasks().sample(47, reacher_ctx(None, 2).generator)])
    rewards = PointReacherReward().reward(batch.features, batch.actions, candidates[None].expand(3, 50, -1))
    returns = discounted_returns(rewards, batch.mask[:, None], GAMMA)
    expected = candidates[returns.topk(4, dim=1).indices]
    torch.testing.assert_close(kept, expected)


def test_advantage_with_zero_value_equals_reward():
    batch = random_batch(4, seed=3)
    a = AdvantageRelabeling().relabel(batch, reacher_ctx(ZeroValueAgent(), 5))
    r = RewardRelabeling().relabel(batch, reacher_ctx(ZeroValueAgent(), 5))
    torch.testing.assert_close(a, r)


def test_candidates_include_originals_and_batch_larger_than_k():
    """With K < B the candidates are the B originals alone: each trajectory gets one of the batch's tasks."""
    batch = random_batch(6, seed=4)
    kept = RewardRelabeling(RewardRelabeling.Params(candidates=2)).relabel(batch, reacher_ctx(ZeroValueAgent(), 0))
    assert ((kept[:, 0, None] == batch.tasks[None]).all(-1)).any(1).all()


# ----- AIR -----


def test_air_with_only_the_current_trajectory_equals_advantage():
    agent = small_sac()
    for seed in range(3):
        batch = random_batch(1, seed=seed)
        air = AIR(AIR.Params(cache=1)).relabel(batch, reacher_ctx(agent, seed))
        adv = AdvantageRelabeling().relabel(batch, reacher_ctx(agent, seed))
        torch.testing.assert_close(air, adv)


def test_air_cache_keeps_the_n_most_recent_and_survives_a_checkpoint():
    agent = small_sac()
    air = AIR(AIR.Params(cache=5, candidates=20))
    ctx = reacher_ctx(agent, 0)
    batches = [random_batch(2, seed=s, lengths=torch.tensor([20, 7])) for s in range(4)]
    for b in batches:
        air.relabel(b, ctx)
    assert len(air) == 5
    expected = torch.cat([b.features for b in batches])[-5:]
    torch.testing.assert_close(air.state_dict()["cache"]["features"], expected)

    buffer = io.BytesIO()
    torch.save(air.state_dict(), buffer)
    buffer.seek(0)
    restored = AIR(AIR.Params(cache=5, candidates=20))
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    nxt = random_batch(2, seed=9)
    state = ctx.generator.get_state()
    first = air.relabel(nxt, ctx)
    ctx.generator.set_state(state)
    torch.testing.assert_close(restored.relabel(nxt, ctx), first)
    ours, theirs = air.diagnostics(), restored.diagnostics()  # the epoch's means survive the checkpoint
    for key in ("relabel/calls", "relabel/percentile", "relabel/original_won"):
        assert ours[key] == theirs[key]


def test_air_batch_larger_than_cache_and_longer_horizon():
    air = AIR(AIR.Params(cache=3, candidates=10))
    ctx = reacher_ctx(small_sac(), 0)
    assert air.relabel(random_batch(5, seed=0), ctx).shape == (5, 1, 6)
    g = torch.Generator().manual_seed(1)
    longer = make_batch(
        torch.rand(2, 30, 2, generator=g),
        torch.rand(2, 30, 2, generator=g),
        PointReacherTasks().sample(2, g),
        torch.tensor([30, 25]),
    )
    assert air.relabel(longer, ctx).shape == (2, 1, 6)
    assert air.state_dict()["cache"]["features"].shape == (3, 30, 2)


class ScaledReward:
    """A toy family: r_t = z * x_t, so every z > 0 ranks trajectories the same way and every z < 0 reverses it."""

    feature_dim, task_dim = 1, 1

    def reward(self, features, actions, tasks):
        return tasks[..., 0][:, :, None] * features[:, None, :, 0]


class SymmetricTasks:
    task_dim = 1

    def sample(self, n, generator):
        return torch.rand(n, 1, generator=generator, device=generator.device) * 2 - 1


def toy_ctx(seed: int) -> RelabelContext:
    return RelabelContext(
        tasks=SymmetricTasks(),
        reward=ScaledReward(),
        agent=ZeroValueAgent(),
        generator=torch.Generator().manual_seed(seed),
    )


def toy_batch(levels: list[float], tasks: list[float]) -> TrajectoryBatch:
    features = torch.tensor(levels)[:, None, None].expand(len(levels), 4, 1)
    return make_batch(features, torch.zeros(len(levels), 4, 1), torch.tensor(tasks)[:, None])


def test_air_ties_are_broken_by_advantage():
    """The best cached trajectory ranks first under every z > 0 (a tie at percentile 1): AIR keeps the
    largest z, the one with the highest advantage z * R. The worst ranks first under every z < 0 and keeps
    the z < 0 closest to 0. Kept tasks with m > 1 are in that order too."""
    ctx = toy_ctx(0)
    air = AIR(AIR.Params(cache=10, candidates=50, keep=3))
    air.relabel(toy_batch([2.0, 3.0, 4.0], [0.1, 0.2, 0.3]), ctx)
    air.diagnostics()
    state = ctx.generator.get_state()
    batch = toy_batch([5.0, 1.0], [0.5, -0.5])
    kept = air.relabel(batch, ctx)[..., 0]  # [2, 3]
    ctx.generator.set_state(state)
    candidates = torch.cat([batch.tasks, SymmetricTasks().sample(48, ctx.generator)])[:, 0]
    positive, negative = candidates[candidates > 0], candidates[candidates < 0]
    torch.testing.assert_close(kept[0], positive.sort(descending=True).values[:3])
    torch.testing.assert_close(kept[1], negative.sort(descending=True).values[:3])
    diagnostics = air.diagnostics()
    assert diagnostics["relabel/percentile"] == 1.0
    assert diagnostics["relabel/calls"] == 1


@pytest.mark.parametrize("score_chunk", [None, 2 * 20 * 20])
def test_air_matches_a_brute_force_ranking(monkeypatch, score_chunk):
    """Percentiles among the 6 most recent trajectories (3 older ones, then the batch's 3), computed one
    candidate and one trajectory at a time; keep the 3 best by (percentile, advantage). Also with the
    reward matrix scored two trajectories at a time."""
    if score_chunk is not None:
        monkeypatch.setattr("hindsight.relabel.candidates.SCORE_CHUNK", score_chunk)
    agent = small_sac()
    ctx = reacher_ctx(agent, 0)
    air = AIR(AIR.Params(cache=6, candidates=20, keep=3))
    older = random_batch(5, seed=1, lengths=torch.tensor([20, 20, 9, 20, 4]))
    air.relabel(older, ctx)
    batch = random_batch(3, seed=2, lengths=torch.tensor([20, 15, 20]))
    state = ctx.generator.get_state()
    kept = air.relabel(batch, ctx)
    ctx.generator.set_state(state)
    candidates = torch.cat([batch.tasks, PointReacherTasks().sample(17, ctx.generator)])
    reward = PointReacherReward()

    def ret(features, actions, length, task):
        r = reward.reward(features[None, :length], actions[None, :length], task[None, None])[0, 0]
        return float((r * GAMMA ** torch.arange(length)).sum())

    cache = [(older.features[i], older.actions[i], int(older.lengths[i])) for i in (2, 3, 4)]
    cache += [(batch.features[i], batch.actions[i], int(batch.lengths[i])) for i in range(3)]
    values = agent.value(batch.obs[:, 0], candidates[None].expand(3, 20, -1))
    for b in range(3):
        keys = []
        for k, task in enumerate(candidates):
            mine = ret(batch.features[b], batch.actions[b], int(batch.lengths[b]), task)
            percentile = sum(ret(f, a, n, task) <= mine + 1e-6 for f, a, n in cache) / len(cache)
            keys.append((percentile, mine - float(values[b, k]), k))
        best = [k for _, _, k in sorted(keys, reverse=True)[:3]]
        torch.testing.assert_close(kept[b], candidates[best])


def test_batch_percentiles():
    reference = torch.tensor([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [4.0, 0.0]])  # [N=4, K=2]
    scores = torch.tensor([[2.0, 2.0], [0.0, 5.0]])
    expected = torch.tensor([[0.5, 0.75], [0.0, 1.0]])
    torch.testing.assert_close(batch_percentiles(reference, scores), expected)


# ----- the other relabelers -----


def test_random_relabeling_draws_one_fresh_task_in_the_task_box():
    batch = random_batch(5, seed=0)
    tasks = RandomRelabeling().relabel(batch, reacher_ctx(None, 0))
    assert tasks.shape == (5, 1, 6)
    assert ((tasks >= PointReacherTasks.LOW) & (tasks <= PointReacherTasks.HIGH)).all()
    assert not (tasks[:, 0] == batch.tasks).all(-1).any()


def test_her_replaces_only_the_goal_with_a_reached_position():
    batch = random_batch(4, seed=2, lengths=torch.tensor([20, 10, 5, 1]))
    tasks = HER(HER.Params(keep=3)).relabel(batch, reacher_ctx(None, 0))  # [4, 3, 6]
    keep_rest = [0, 1, 4, 5]
    torch.testing.assert_close(tasks[..., keep_rest], batch.tasks[:, None, keep_rest].expand(4, 3, 4))
    goals = polar_to_xy(tasks[..., 2], tasks[..., 3])  # [4, 3, 2]
    distance = torch.cdist(goals, batch.features)  # [4, 3, T]
    distance = distance.masked_fill(~batch.mask[:, None], float("inf"))
    assert (distance.min(-1).values < 1e-5).all()


def rewards_of(batch: TransitionBatch) -> torch.Tensor:
    return PointReacherReward().reward(batch.features[:, None], batch.actions[:, None], batch.tasks[:, None])[:, 0, 0]


def transitions(n: int, seed: int) -> TransitionBatch:
    """n random PointReacher transitions, each rewarded under its own task."""
    g = torch.Generator().manual_seed(seed)
    batch = TransitionBatch(
        obs=torch.rand(n, 5, generator=g),
        actions=torch.rand(n, 2, generator=g) * 2 - 1,
        next_obs=torch.rand(n, 5, generator=g),
        features=torch.rand(n, 2, generator=g) * 2 - 1,
        tasks=PointReacherTasks().sample(n, g),
        rewards=torch.zeros(n),
        terminated=(torch.rand(n, generator=g) < 0.2).float(),
        truncated=torch.zeros(n),
    )
    return attrs.evolve(batch, rewards=rewards_of(batch))


def test_continual_random_replaces_the_fraction_and_recomputes_rewards():
    batch = transitions(50, seed=0)
    relabeler = ContinualRandom()
    assert relabeler.relabel(random_batch(2, 0), reacher_ctx(None, 0)).shape == (2, 0, 6)
    out = relabeler.relabel_batch(batch, reacher_ctx(None, 0))
    changed = (out.tasks != batch.tasks).any(-1)
    assert int(changed.sum()) == 40
    torch.testing.assert_close(out.rewards, rewards_of(out))
    torch.testing.assert_close(out.obs, batch.obs)


def test_hipi_draws_batch_tasks_with_consistent_rewards():
    batch = transitions(32, seed=1)
    ctx = reacher_ctx(small_sac(), 0)
    unchanged = HIPI(HIPI.Params(keep_original_prob=1.0)).relabel_batch(batch, ctx)
    torch.testing.assert_close(unchanged.tasks, batch.tasks)
    relabeler = HIPI(HIPI.Params(keep_original_prob=0.0))
    out = relabeler.relabel_batch(batch, ctx)
    assert ((out.tasks[:, None] == batch.tasks[None]).all(-1)).any(1).all()  # every task is one of the batch's
    torch.testing.assert_close(out.rewards, rewards_of(out))
    diagnostics = relabeler.diagnostics()
    assert 0.0 <= diagnostics["relabel/hipi_entropy"] <= math.log(32) + 1e-5
    assert diagnostics["relabel/original_won"] < 0.5

    capped = HIPI(HIPI.Params(keep_original_prob=0.0, candidates=4))
    out = capped.relabel_batch(batch, ctx)
    assert len({tuple(t) for t in out.tasks.tolist()}) <= 4
    torch.testing.assert_close(out.rewards, rewards_of(out))
    assert capped.diagnostics()["relabel/hipi_entropy"] <= math.log(4) + 1e-5


def test_hipi_prefers_the_task_a_transition_is_best_for():
    """Two tasks, each a goal at one transition's position with pure distance weight: with a zero
    critic and a flat policy, each transition draws the task whose goal it sits on almost always."""

    class FlatAgent:
        gamma = GAMMA

        def log_prob(self, obs, actions, tasks, member=0):
            return torch.zeros(obs.shape[0])

        def act(self, obs, tasks, deterministic, generator=None, member=0):
            return torch.zeros(obs.shape[0], 2)

        def q(self, obs, actions, tasks, member=0):
            return torch.zeros(obs.shape[0])

    goals = torch.tensor([[0.0, 0.3], [math.pi, 0.3]])  # (theta_g, r_g): (0.3, 0), (-0.3, 0)
    tasks = torch.cat([torch.tensor([[0.0, 0.5]]).expand(2, 2), goals, torch.tensor([[0.0, 0.15]]).expand(2, 2)], 1)
    features = polar_to_xy(goals[:, 0], goals[:, 1])
    batch = TransitionBatch(
        obs=torch.zeros(2, 5),
        actions=torch.zeros(2, 2),
        next_obs=torch.zeros(2, 5),
        features=features,
        tasks=tasks.flip(0),
        rewards=torch.zeros(2),
        terminated=torch.zeros(2),
        truncated=torch.zeros(2),
    )
    ctx = RelabelContext(
        tasks=PointReacherTasks(),
        reward=PointReacherReward(),
        agent=FlatAgent(),
        generator=torch.Generator().manual_seed(0),
    )
    out = HIPI(HIPI.Params(keep_original_prob=0.0)).relabel_batch(batch, ctx)
    torch.testing.assert_close(out.tasks, tasks)


def test_every_relabeler_state_round_trips_weights_only():
    ctx = reacher_ctx(small_sac(), 0)
    for name in REGISTRY.names("relabeler"):
        relabeler = REGISTRY.get("relabeler", name)()
        relabeler.relabel(random_batch(2, seed=0), ctx)
        buffer = io.BytesIO()
        torch.save(relabeler.state_dict(), buffer)
        buffer.seek(0)
        REGISTRY.get("relabeler", name)().load_state_dict(torch.load(buffer, weights_only=True))


def test_keep_larger_than_candidates_is_a_spec_error():
    with pytest.raises(ValueError, match="keep"):
        AIR.Params(candidates=3, keep=4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", REGISTRY.names("relabeler"))
def test_relabelers_run_on_cuda_tensors(name):
    agent = SAC(
        SAC.Params(hidden=[16], gamma=GAMMA), SIZES, RuntimeSpec(device="cuda"), [torch.Generator().manual_seed(0)]
    )
    ctx = RelabelContext(
        tasks=PointReacherTasks(),
        reward=PointReacherReward(),
        agent=agent,
        generator=torch.Generator(device="cuda").manual_seed(0),
    )
    relabeler = REGISTRY.get("relabeler", name)()
    for seed in range(2):
        assert relabeler.relabel(random_batch(3, seed=seed), ctx).device.type == "cuda"
    batch = transitions(16, seed=0)
    batch = TransitionBatch(**{f.name: getattr(batch, f.name).cuda() for f in attrs.fields(TransitionBatch)})
    assert relabeler.relabel_batch(batch, ctx).tasks.device.type == "cuda"
    relabeler.diagnostics()
