"""Contract tests run over every registered component: registering a component is how it gets tested."""

import io

import attrs
import pytest
import torch

from hindsight.batches import TrajectoryBatch
from hindsight.build import sizes_of
from hindsight.protocols import PROTOCOLS, Agent, Buffer, EnvFamily, Sizes, TaskDistribution, missing
from hindsight.registry import KINDS, REGISTRY
from hindsight.specs import Params, RuntimeSpec

SIZES = Sizes(obs_dim=5, action_dim=2, feature_dim=2, task_dim=3, horizon=4)

ENVS = REGISTRY.names("env")
REWARDS = REGISTRY.names("reward")
AGENTS = REGISTRY.names("agent")
BUFFERS = REGISTRY.names("buffer")


def roundtrip(state):
    """Save and reload a state dict the way checkpoints are loaded: no code executed."""
    data = io.BytesIO()
    torch.save(state, data)
    data.seek(0)
    return torch.load(data, weights_only=True)


def env_for(reward_cls):
    """A registered env whose features the reward family reads."""
    for name in ENVS:
        env_cls = REGISTRY.get("env", name)
        if env_cls.features_name == getattr(reward_cls, "env_features", env_cls.features_name):
            return env_cls
    pytest.skip(f"no registered env records {reward_cls.env_features!r}")


@pytest.mark.parametrize("kind", KINDS)
def test_every_component_has_params_and_summary(kind):
    for name in REGISTRY.names(kind):
        component = REGISTRY.get(kind, name)
        assert issubclass(getattr(component, "Params", Params), Params), (kind, name)
        assert REGISTRY.summary(next(e for e in REGISTRY.entries(kind) if e.name == name)), (kind, name)


@pytest.mark.parametrize("kind", KINDS)
def test_every_component_has_its_protocols_methods(kind):
    for name in REGISTRY.names(kind):
        assert missing(REGISTRY.get(kind, name), PROTOCOLS[kind]) == [], (kind, name)


@pytest.mark.parametrize("name", ENVS)
def test_env_family_defaults_are_registered_under_its_name_and_sizes_come_from_its_specs(name):
    env_cls = REGISTRY.get("env", name)
    assert REGISTRY.get("tasks", name) is env_cls.Tasks and REGISTRY.get("reward", name) is env_cls.Reward
    family = env_cls(env_cls.Params())
    tasks = env_cls.Tasks()
    assert missing(family, EnvFamily) == [] and missing(tasks, TaskDistribution) == []
    sizes = sizes_of(family, tasks.task_dim)
    env = family.make_env(None, seed=0)
    spec = env.observation_spec()
    assert spec["observations"].shape == (sizes.obs_dim,) and spec["features"].shape == (sizes.feature_dim,)
    assert env.action_spec().shape == (sizes.action_dim,) and sizes.horizon == family.horizon
    reward = env_cls.Reward(env_cls.Reward.Params())
    assert reward.feature_dim == sizes.feature_dim and reward.task_dim == tasks.task_dim
    drawn = tasks.sample(3, torch.Generator().manual_seed(0))
    assert drawn.shape == (3, tasks.task_dim) and drawn.dtype == torch.float32


def test_missing_names_what_a_component_lacks():
    class HalfAgent:
        members = 1

        def act(self, obs, tasks, deterministic, generator=None, member=0): ...

    lacking = missing(HalfAgent, Agent)
    assert "act()" not in lacking and {"update_members()", "value()", "state_dict()"} <= set(lacking)
    assert "gamma" in missing(HalfAgent(), Agent) and "members" not in missing(HalfAgent(), Agent)


@pytest.mark.parametrize("name", REWARDS)
def test_reward_family_is_batched_without_cross_talk(name):
    reward_cls = REGISTRY.get("reward", name)
    family = env_for(reward_cls)
    tasks_cls, action_dim = family.Tasks, sizes_of(family(family.Params()), family.Tasks().task_dim).action_dim
    reward = reward_cls(reward_cls.Params())
    gen = torch.Generator().manual_seed(1)
    B, K, T = 3, 4, 5
    features = torch.randn(B, T, reward.feature_dim, generator=gen) * 0.3
    actions = torch.rand(B, T, action_dim, generator=gen) * 2 - 1
    tasks = tasks_cls().sample(B * K, gen).view(B, K, -1)
    together = reward.reward(features, actions, tasks)
    assert together.shape == (B, K, T) and torch.isfinite(together).all()
    for b in range(B):  # each (trajectory, task) pair scored alone gives the same rewards
        for k in range(K):
            alone = reward.reward(features[b : b + 1], actions[b : b + 1], tasks[b : b + 1, k : k + 1])
            torch.testing.assert_close(alone[0, 0], together[b, k])


@pytest.mark.parametrize("name", REWARDS)
def test_weighted_returns_where_defined_equal_the_summed_rewards(name):
    reward_cls = REGISTRY.get("reward", name)
    reward = reward_cls(reward_cls.Params())
    if not hasattr(reward, "weighted_returns"):
        pytest.skip(f"{name} has no closed-form weighted_returns")
    family = env_for(reward_cls)
    action_dim = sizes_of(family(family.Params()), family.Tasks().task_dim).action_dim
    gen = torch.Generator().manual_seed(2)
    B, K, T = 3, 4, 6
    features = torch.randn(B, T, reward.feature_dim, generator=gen)
    actions = torch.rand(B, T, action_dim, generator=gen) * 2 - 1
    tasks = family.Tasks().sample(K, gen)
    weights = torch.rand(B, T, generator=gen) * (torch.arange(T) < torch.tensor([[6], [3], [1]]))
    expected = (reward.reward(features, actions, tasks[None].expand(B, K, -1)) * weights[:, None]).sum(-1)
    torch.testing.assert_close(reward.weighted_returns(features, actions, tasks, weights), expected)


@pytest.mark.parametrize("name", AGENTS)
def test_agent_contract(name):
    agent_cls = REGISTRY.get("agent", name)
    params = agent_cls.Params(hidden=[16, 16], batch_size=8)
    agent = agent_cls(params, SIZES, RuntimeSpec(), [torch.Generator().manual_seed(0)])
    assert missing(agent, Agent) == []
    gen = torch.Generator().manual_seed(0)
    obs, tasks = torch.randn(4, 5, generator=gen), torch.rand(4, 3, generator=gen)
    for deterministic in (True, False):
        actions = agent.act(obs, tasks, deterministic=deterministic, generator=gen)
        assert actions.shape == (4, 2) and (actions.abs() <= 1).all()
    assert agent.value(obs, torch.rand(4, 6, 3, generator=gen)).shape == (4, 6)
    assert agent.q(obs, actions, tasks).shape == (4,)
    assert agent.log_prob(obs, actions * 0.9, tasks).shape == (4,)
    from hindsight.batches import TransitionBatch

    batch = TransitionBatch(
        obs=obs,
        actions=actions,
        next_obs=obs + 0.1,
        features=torch.zeros(4, 2),
        tasks=tasks,
        rewards=torch.ones(4),
        terminated=torch.zeros(4),
        truncated=torch.zeros(4),
    )
    stacked = TransitionBatch(**{f: getattr(batch, f)[None] for f in attrs.fields_dict(TransitionBatch)})
    metrics = agent.update_members(stacked, [gen])
    assert all(torch.isfinite(v).all() and v.shape == (1,) for v in metrics.values())
    assert agent.act_members(obs[None], tasks[None], [gen]).shape == (1, 4, 2)
    assert {name for name, _ in agent.named_tensors()}
    clone = agent_cls(params, SIZES, RuntimeSpec(), [torch.Generator().manual_seed(9)])
    clone.load_state_dict(roundtrip(agent.state_dict()))
    torch.testing.assert_close(clone.act(obs, tasks, True), agent.act(obs, tasks, True))


def trajectories(B=3, T=4, O=5, A=2, F=2, Z=3, lengths=(4, 2, 3), terminated=(False, True, False)):
    gen = torch.Generator().manual_seed(0)
    return TrajectoryBatch(
        obs=torch.randn(B, T + 1, O, generator=gen),
        actions=torch.rand(B, T, A, generator=gen),
        features=torch.randn(B, T, F, generator=gen),
        rewards=torch.randn(B, T, generator=gen),
        tasks=torch.rand(B, Z, generator=gen),
        lengths=torch.tensor(lengths),
        terminated=torch.tensor(terminated),
    )


@pytest.mark.parametrize("name", BUFFERS)
def test_buffer_contract(name):
    buffer_cls = REGISTRY.get("buffer", name)
    buffer = buffer_cls(buffer_cls.Params(capacity=100), SIZES, "cpu")
    assert missing(buffer, Buffer) == []
    batch = trajectories()
    tasks = torch.stack([batch.tasks, batch.tasks + 1], 1)  # original and one relabeled copy
    rewards = torch.stack([batch.rewards, batch.rewards * 10], 1)
    buffer.add(batch, tasks, rewards)
    assert len(buffer) == 2 * (4 + 2 + 3)
    sample = buffer.sample(500, torch.Generator().manual_seed(0))
    assert sample.obs.shape == (500, 5) and sample.tasks.shape == (500, 3)
    # terminations and truncations are kept apart: trajectory 1 ended in a terminal, 0 and 2 were cut
    assert sample.terminated.sum() > 0 and sample.truncated.sum() > 0
    assert not (sample.terminated.bool() & sample.truncated.bool()).any()
    recent = buffer.recent(5)
    assert recent.obs.shape == (5, 5) and buffer.recent(10**6).num == len(buffer)
    # the last rows are the relabeled copy's: trajectory 1's two steps, then trajectory 2's three, in order
    torch.testing.assert_close(recent.rewards, torch.cat([rewards[1, 1, :2], rewards[2, 1, :3]]))
    restored = buffer_cls(buffer_cls.Params(capacity=100), SIZES, "cpu")
    restored.load_state_dict(roundtrip(buffer.state_dict()))
    again = restored.sample(500, torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.obs, sample.obs)


@pytest.mark.parametrize("name", ENVS)
def test_batched_scoring_equals_the_environments_step_rewards(name):
    """The collector's deferred, batched rewards equal what the dm_env returned step by step."""
    from hindsight.train.collector import Collector

    env_cls = REGISTRY.get("env", name)
    family = env_cls(env_cls.Params(horizon=12))
    reward = env_cls.Reward(env_cls.Reward.Params())
    tasks = env_cls.Tasks().sample(3, torch.Generator().manual_seed(0))
    action_dim = sizes_of(family, env_cls.Tasks().task_dim).action_dim

    def policy(obs, z):
        return torch.sin(obs.sum(-1, keepdim=True) + torch.arange(action_dim))  # deterministic, varied

    def envs():
        return [family.make_env(reward, seed) for seed in range(3)]

    per_step = Collector(envs(), family.horizon).collect(policy, tasks)
    batched = Collector(envs(), family.horizon, reward).collect(policy, tasks)
    torch.testing.assert_close(batched.features, per_step.features)
    torch.testing.assert_close(batched.rewards, per_step.rewards, atol=1e-5, rtol=1e-5)
