"""The reference code's details as options: the time limit as a terminal, the warm-up with the untrained
policy relabeled as one batch, storing the original only when not chosen, rlkit's initialisation."""

import math

import torch

from hindsight.agents.networks import StackedMLP
from hindsight.agents.sac import SAC
from hindsight.batches import TrajectoryBatch, TransitionBatch, concat_trajectories
from hindsight.protocols import Sizes
from hindsight.specs import RuntimeSpec, validate
from hindsight.train.trainer import Trainer


def trained(spec: dict) -> Trainer:
    trainer = Trainer(validate(spec))
    trainer.run()
    return trainer


def test_steps_at_the_horizon_are_stored_as_terminals_or_truncations_as_the_family_says(tiny_spec):
    for time_limit, terminal in (("terminal", 1.0), ("truncation", 0.0)):
        tiny_spec["env"] = {"kind": "point_reacher", "time_limit": time_limit}
        stored = trained(tiny_spec).members[0].buffer.recent(10**6)
        last = stored.obs[:, -1] == 19 / 20  # t/H before the last of 20 steps
        assert last.sum() == len(stored.obs) // 20
        assert (stored.terminated[last] == terminal).all() and (stored.truncated[last] == 1 - terminal).all()
        assert (stored.terminated[~last] == 0).all() and (stored.truncated[~last] == 0).all()


def test_the_critic_does_not_bootstrap_past_a_terminal():
    sizes = Sizes(obs_dim=3, action_dim=2, feature_dim=1, task_dim=2, horizon=5)
    agent = SAC(
        SAC.Params(hidden=[8], gamma=0.9, batch_size=4), sizes, RuntimeSpec(), [torch.Generator().manual_seed(0)]
    )
    g = torch.Generator().manual_seed(1)
    obs, actions, tasks = (
        torch.randn(4, 3, generator=g),
        torch.rand(4, 2, generator=g) - 0.5,
        torch.rand(4, 2, generator=g),
    )
    rewards = torch.tensor([1.0, -2.0, 0.5, 3.0])
    q = torch.stack([agent._critic(obs[None], actions[None], tasks[None])[0, i] for i in range(2)])  # [2, N]
    batch = TransitionBatch(
        obs=obs,
        actions=actions,
        next_obs=obs * 100,
        features=torch.zeros(4, 1),
        tasks=tasks,
        rewards=rewards,
        terminated=torch.ones(4),
        truncated=torch.zeros(4),
    )
    loss = agent.update(batch, torch.Generator().manual_seed(2))["critic_loss"]
    torch.testing.assert_close(loss, (q - rewards).square().mean(-1).sum().detach())  # target = r: no V(s')


def test_the_policy_warmup_stores_the_untrained_policys_actions(tiny_spec):
    tiny_spec["train"]["epochs"] = 1
    uniform = trained(tiny_spec).members[0]
    tiny_spec["train"]["warmup_actions"] = "policy"
    policy = trained(tiny_spec).members[0]
    assert uniform.env_steps == policy.env_steps == 80 + 2 * 2 * 20
    first = [m.buffer.recent(10**6).actions[:80] for m in (uniform, policy)]
    assert not torch.equal(first[0], first[1])
    # uniform draws on [-1, 1] have mean |a| = 0.5
    assert abs(first[0].abs().mean().item() - 0.5) < 0.1


def test_warmup_relabel_calls_are_one_for_the_batch_and_one_per_batch_of_episodes(tiny_spec):
    tiny_spec["relabeler"] = {"kind": "air", "candidates": 20, "cache": 30}
    tiny_spec["train"].update(epochs=1, loops_per_epoch=1)
    calls = []
    for mode in ("episode", "batch"):
        tiny_spec["train"]["warmup_relabel"] = mode
        trainer = Trainer(validate(tiny_spec))
        rows = trainer.run()[0]
        calls.append(rows[-1]["relabel/calls"])
    assert calls == [80 / 40 + 1, 1 + 1]


def test_the_original_is_stored_again_only_unless_chosen(tiny_spec):
    tiny_spec["train"].update(epochs=1, episodes_per_loop=1)
    sizes = []
    for store in ("always", "unless_chosen"):
        # one candidate: the trajectory's own task is always the one kept
        tiny_spec["relabeler"] = {"kind": "reward", "candidates": 1, "store_original": store}
        member = trained(tiny_spec).members[0]
        sizes.append((len(member.buffer), member.env_steps))
    assert sizes[0][0] == 2 * sizes[0][1] and sizes[1][0] == sizes[1][1]


def test_rlkit_initialisation():
    net = StackedMLP(2, 5, [16, 9], 3, torch.Generator().manual_seed(0), head_bound=1e-3)
    assert (net.biases[0] == 0.1).all() and (net.biases[1] == 0.1).all()
    assert net.weights[0].abs().max() <= 1 / math.sqrt(16) and net.weights[1].abs().max() <= 1 / math.sqrt(9)
    assert net.weights[0].abs().max() > 0.8 / math.sqrt(16)  # drawn over the whole range
    assert net.weights[2].abs().max() <= 1e-3 and net.biases[2].abs().max() <= 1e-3
    sizes = Sizes(obs_dim=3, action_dim=2, feature_dim=1, task_dim=2, horizon=5)
    agent = SAC(SAC.Params(hidden=[8], init="rlkit"), sizes, RuntimeSpec(), [torch.Generator().manual_seed(0)])
    assert agent.policy.weights[-1].abs().max() <= 1e-3 and agent.critic.weights[-1].abs().max() <= 3e-3
    mean = agent.act(torch.randn(50, 3), torch.rand(50, 2), deterministic=True)
    assert mean.abs().max() < 0.05  # the untrained policy's mean is near zero, as in the reference


def test_concat_trajectories_pads_to_the_longest():
    def batch(B, T):
        return TrajectoryBatch(
            obs=torch.ones(B, T + 1, 2),
            actions=torch.ones(B, T, 1),
            features=torch.ones(B, T, 1),
            rewards=torch.ones(B, T),
            tasks=torch.ones(B, 3),
            lengths=torch.full((B,), T),
            terminated=torch.zeros(B, dtype=torch.bool),
        )

    joined = concat_trajectories([batch(2, 3), batch(1, 5)])
    assert joined.obs.shape == (3, 6, 2) and joined.rewards.shape == (3, 5)
    assert joined.rewards[:2, 3:].abs().sum() == 0 and joined.lengths.tolist() == [3, 3, 5]
    assert joined.mask.sum() == 11
