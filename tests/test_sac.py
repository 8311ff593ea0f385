"""SAC: the stacked networks, the squashed log-probability, the fused Adam and the update's math."""

import copy
import math

import pytest
import torch
from torch import nn

from hindsight.agents import networks
from hindsight.agents.networks import StackedMLP
from hindsight.agents.optim import FusedAdam
from hindsight.agents.sac import SAC, squashed_log_prob, tanh_log_prob
from hindsight.batches import TransitionBatch
from hindsight.protocols import Sizes
from hindsight.runtime import apply_runtime
from hindsight.specs import RuntimeSpec

O, A, Z, N = 3, 2, 2, 16


SIZES = Sizes(obs_dim=O, action_dim=A, feature_dim=2, task_dim=Z, horizon=10)


def make_agent(members: int = 1, **overrides) -> SAC:
    """A small SAC; overrides name its params or runtime settings (device, precision, compile)."""
    runtime = RuntimeSpec(**{k: v for k, v in overrides.items() if k in RuntimeSpec.model_fields})
    settings = {k: v for k, v in overrides.items() if k not in RuntimeSpec.model_fields}
    params = SAC.Params(**{"hidden": [8, 8], "lr": 1e-2, "gamma": 0.9, "tau": 0.1, "batch_size": N, **settings})
    return SAC(params, SIZES, runtime, [torch.Generator().manual_seed(s) for s in range(members)])


def make_batch(seed: int = 0, device: str = "cpu", n: int = N) -> TransitionBatch:
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    batch = TransitionBatch(
        obs=rand(n, O),
        actions=torch.rand(n, A, generator=g) * 1.8 - 0.9,
        next_obs=rand(n, O),
        features=rand(n, 2),
        tasks=rand(n, Z),
        rewards=rand(n),
        terminated=(torch.rand(n, generator=g) < 0.3).float(),
        truncated=torch.zeros(n),
    )
    return TransitionBatch(
        **{
            k: getattr(batch, k).to(device)
            for k in ("obs", "actions", "next_obs", "features", "tasks", "rewards", "terminated", "truncated")
        }
    )


def test_stacked_mlp_equals_separate_linear_layers():
    net = StackedMLP(3, 5, [7, 6], 2, torch.Generator().manual_seed(1))
    x = torch.randn(3, 4, 5)
    out = net(x)
    assert out.shape == (3, 4, 2)
    for m in range(3):
        layers = []
        for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
            linear = nn.Linear(w.shape[1], w.shape[2])
            with torch.no_grad():
                linear.weight.copy_(w[m].T)
                linear.bias.copy_(b[m, 0])
            layers += [linear, nn.ReLU()] if i < len(net.weights) - 1 else [linear]
        torch.testing.assert_close(out[m], nn.Sequential(*layers)(x[m]))
    torch.testing.assert_close(net(x[:1]), torch.stack([net(x[:1].expand(3, 4, 5))[m] for m in range(3)]))


def test_bfloat16_hidden_products_stay_close_to_float32():
    exact = StackedMLP(2, 5, [64, 64, 64], 3, torch.Generator().manual_seed(1))
    narrow = StackedMLP(2, 5, [64, 64, 64], 3, torch.Generator().manual_seed(1), hidden_dtype=torch.bfloat16)
    x = torch.randn(2, networks.NARROW_MIN_ROWS, 5)
    out_exact, out_narrow = exact(x), narrow(x)
    assert out_narrow.dtype == torch.float32 and not torch.equal(out_exact, out_narrow)  # bf16 was used
    few = x[:, : networks.NARROW_MIN_ROWS - 1]
    assert torch.equal(narrow(few), exact(few))  # too few rows to pay for the casts: float32
    torch.testing.assert_close(out_narrow, out_exact, rtol=0.05, atol=0.02)
    grads = [torch.autograd.grad(net(x).square().sum(), list(net.parameters())) for net in (exact, narrow)]
    for g_exact, g_narrow in zip(*grads, strict=True):
        assert g_narrow.dtype == torch.float32
        assert torch.linalg.norm(g_narrow - g_exact) <= 0.05 * torch.linalg.norm(g_exact)


def test_bfloat16_agent_updates_float32_weights_like_the_float32_agent():
    n = 2 * networks.NARROW_MIN_ROWS
    exact = make_agent(hidden=[32, 32], batch_size=n)
    narrow = make_agent(hidden=[32, 32], batch_size=n, precision="bfloat16")
    initial = [p.detach().clone() for p in exact.policy.parameters()]
    for step in range(3):
        m_exact = exact.update(make_batch(step, n=n), torch.Generator().manual_seed(step))
        m_narrow = narrow.update(make_batch(step, n=n), torch.Generator().manual_seed(step))
    assert not torch.equal(m_narrow["critic_loss"], m_exact["critic_loss"])  # bf16 was used
    assert all(p.dtype == torch.float32 for p in narrow.critic.parameters())
    torch.testing.assert_close(m_narrow["critic_loss"], m_exact["critic_loss"], rtol=0.05, atol=0.01)
    # the policy moved the same way: Adam turns tiny gradient differences into lr-sized steps, so compare
    # the whole move, not single entries
    moved_exact = torch.cat([(p - p0).flatten() for p, p0 in zip(exact.policy.parameters(), initial, strict=True)])
    moved_narrow = torch.cat([(p - p0).flatten() for p, p0 in zip(narrow.policy.parameters(), initial, strict=True)])
    assert torch.linalg.norm(moved_narrow - moved_exact) <= 0.2 * torch.linalg.norm(moved_exact)


def test_gradient_free_evaluation_in_chunks_matches_one_pass(monkeypatch):

    net = StackedMLP(2, 5, [16, 16], 3, torch.Generator().manual_seed(1))
    x = torch.randn(2, 100, 5)
    whole, broadcast = net(x).detach(), net(x[:1]).detach()  # with gradients: always one pass
    monkeypatch.setattr(networks, "CHUNK_ELEMENTS", 2 * 16 * 7)  # 7 rows per chunk: 15 chunks, the last short
    with torch.no_grad():
        torch.testing.assert_close(net(x), whole)
        torch.testing.assert_close(net(x[:1]), broadcast)


def test_act_members_draws_what_each_member_draws_alone():
    agent = SAC(SAC.Params(hidden=[8, 8]), SIZES, RuntimeSpec(), [torch.Generator().manual_seed(s) for s in range(3)])
    obs, tasks = torch.randn(3, 5, O), torch.randn(3, 5, Z)
    together = agent.act_members(obs, tasks, [torch.Generator().manual_seed(10 + p) for p in range(3)])
    assert together.shape == (3, 5, A)
    for p in range(3):
        alone = agent.act(
            obs[p], tasks[p], deterministic=False, generator=torch.Generator().manual_seed(10 + p), member=p
        )
        torch.testing.assert_close(together[p], alone)


def test_tanh_log_prob_matches_torch_distributions():
    mean, log_std = torch.randn(64, 3), torch.randn(64, 3).clamp(-2, 1)
    noise = torch.randn(64, 3)
    pre_tanh = mean + log_std.exp() * noise
    tanh = torch.distributions.TanhTransform(cache_size=1)  # the cache hands log_prob the exact u
    dist = torch.distributions.TransformedDistribution(torch.distributions.Normal(mean, log_std.exp()), [tanh])
    expected = dist.log_prob(tanh(pre_tanh)).sum(-1)
    torch.testing.assert_close(tanh_log_prob(pre_tanh, mean, log_std), expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(squashed_log_prob(noise, log_std, pre_tanh), expected, rtol=1e-4, atol=1e-4)


def test_fused_adam_matches_torch_adam():
    params = [torch.randn(4, 3), torch.randn(3), torch.randn(())]
    mine = [p.clone() for p in params]
    theirs = [p.clone().requires_grad_() for p in params]
    opt, reference = FusedAdam(mine, lr=3e-2), torch.optim.Adam(theirs, lr=3e-2, foreach=False)
    for _ in range(5):
        grads = [torch.randn_like(p) for p in params]
        opt.step(grads)
        for p, g in zip(theirs, grads, strict=True):
            p.grad = g.clone()
        reference.step()
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b.detach())
    restored = FusedAdam([p.clone() for p in mine], lr=3e-2)
    restored.load_state_dict(opt.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(restored.steps, opt.steps, strict=True))


def reference_update(agent: SAC, batch: TransitionBatch, noise: torch.Tensor) -> dict[str, nn.Module]:
    """The SAC step written plainly (separate networks, torch.optim.Adam, an explicit alpha loss), in the
    agent's update order: critic_first, or rlkit's (temperature first, both losses from the old networks)."""
    rlkit = agent.params.update_order == "rlkit"
    policy, critic, target = (copy.deepcopy(m) for m in (agent.policy, agent.critic, agent.critic_target))
    log_alpha = agent.log_alpha.detach().clone().requires_grad_()
    p_opt = torch.optim.Adam(policy.parameters(), lr=agent.params.lr, foreach=False)
    q_opt = torch.optim.Adam(critic.parameters(), lr=agent.params.lr, foreach=False)
    a_opt = torch.optim.Adam([log_alpha], lr=agent.params.lr, foreach=False)
    alpha = log_alpha.detach().exp()

    def sample(obs, noise):
        mean, log_std = policy(torch.cat([obs, batch.tasks], -1)[None])[0].chunk(2, -1)
        log_std = log_std.clamp(-20, 2)
        u = mean + log_std.exp() * noise
        gauss = torch.distributions.Normal(mean, log_std.exp()).log_prob(u)
        return torch.tanh(u), (gauss - torch.log(1 - torch.tanh(u) ** 2)).sum(-1)

    def qs(net, obs, actions):
        return net(torch.cat([obs, actions, batch.tasks], -1)[None])[..., 0]

    def step_temperature(logp):
        alpha_loss = -(log_alpha * (logp.detach() + agent.target_entropy)).mean()
        a_opt.zero_grad()
        alpha_loss.backward()
        a_opt.step()
        return log_alpha.detach().exp()

    if rlkit:
        a, logp = sample(batch.obs, noise[1])
        alpha = step_temperature(logp)
        pi_loss = (alpha * logp - qs(critic, batch.obs, a).min(0).values).mean()
        p_opt.zero_grad()
        pi_loss.backward()
    with torch.no_grad():
        a2, logp2 = sample(batch.next_obs, noise[0])
        y = batch.rewards + agent.gamma * (1 - batch.terminated) * (
            qs(target, batch.next_obs, a2).min(0).values - alpha * logp2
        )
    q = qs(critic, batch.obs, batch.actions)
    q_loss = ((q[0] - y) ** 2).mean() + ((q[1] - y) ** 2).mean()
    q_opt.zero_grad()
    q_loss.backward()
    if rlkit:  # the policy's gradient was taken through the critics before their step
        q_opt.step()
        p_opt.step()
    else:
        q_opt.step()
        a, logp = sample(batch.obs, noise[1])
        pi_loss = (alpha * logp - qs(critic, batch.obs, a).min(0).values).mean()
        p_opt.zero_grad()
        pi_loss.backward()
        p_opt.step()
        step_temperature(logp)
    with torch.no_grad():
        for t, c in zip(target.parameters(), critic.parameters(), strict=True):
            t.mul_(1 - agent.params.tau).add_(agent.params.tau * c)
    return {
        "policy": policy,
        "critic": critic,
        "target": target,
        "log_alpha": log_alpha,
        "q_loss": q_loss,
        "pi_loss": pi_loss,
    }


@pytest.mark.parametrize("order", ["critic_first", "rlkit"])
def test_update_matches_plain_sac_step(order):
    agent, batch = make_agent(update_order=order), make_batch()
    for _ in range(2):  # away from the initial state, so optimiser moments matter
        agent.update(make_batch(seed=9), torch.Generator().manual_seed(5))
    expected_noise = torch.randn((2, N, A), generator=torch.Generator().manual_seed(3))
    ref = reference_update(agent, batch, expected_noise)
    # the reference's fresh Adam starts at step 0: give the agent fresh optimiser state too
    for opt in (agent.policy_opt, agent.critic_opt, agent.alpha_opt):
        opt.load_state_dict({k: [torch.zeros_like(t) for t in v] for k, v in opt.state_dict().items()})
    metrics = agent.update(batch, torch.Generator().manual_seed(3))
    for name, net in (("policy", agent.policy), ("critic", agent.critic), ("target", agent.critic_target)):
        for mine, theirs in zip(net.parameters(), ref[name].parameters(), strict=True):
            torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6, msg=name)
    torch.testing.assert_close(agent.log_alpha.detach(), ref["log_alpha"].detach())
    torch.testing.assert_close(metrics["critic_loss"], ref["q_loss"].detach())
    torch.testing.assert_close(metrics["policy_loss"], ref["pi_loss"].detach())


def test_rlkit_order_uses_the_stepped_temperature_and_the_critics_before_their_step():
    rlkit, critic_first = make_agent(update_order="rlkit"), make_agent()
    batch = make_batch()
    m_rlkit = rlkit.update(batch, torch.Generator().manual_seed(3))
    m_first = critic_first.update(batch, torch.Generator().manual_seed(3))
    assert m_rlkit["alpha"] == rlkit.log_alpha.detach().exp()[0]  # the temperature after its step
    assert m_first["alpha"] == 1.0  # exp(init_log_alpha = 0): the temperature before its step
    assert not torch.equal(m_rlkit["critic_loss"], m_first["critic_loss"])  # alpha enters the target
    # the orders' policies differ: one stepped on the old critics, the other on the stepped ones
    assert not torch.equal(rlkit.policy.weights[0], critic_first.policy.weights[0])
    frozen = make_agent(update_order="rlkit")
    frozen.critic_opt.lr = 0.0  # the critics do not move: the rlkit policy step must not notice
    frozen.update(batch, torch.Generator().manual_seed(3))
    for mine, theirs in zip(frozen.policy.parameters(), rlkit.policy.parameters(), strict=True):
        assert torch.equal(mine, theirs)


def test_updates_are_deterministic_and_checkpoints_resume_exactly():
    first, second = make_agent(), make_agent()
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for step in range(3):
        first.update(make_batch(step), g1)
        second.update(make_batch(step), g2)
    for a, b in zip(first.state_dict()["critic"].values(), second.state_dict()["critic"].values(), strict=True):
        assert torch.equal(a, b)
    resumed = make_agent()
    resumed.load_state_dict(first.state_dict())
    g3 = torch.Generator().manual_seed(11)
    g1.manual_seed(11)
    first.update(make_batch(5), g1)
    resumed.update(make_batch(5), g3)
    for key in ("policy", "critic", "critic_target"):
        for a, b in zip(first.state_dict()[key].values(), resumed.state_dict()[key].values(), strict=True):
            assert torch.equal(a, b)
    assert torch.equal(first.log_alpha, resumed.log_alpha)


def test_update_metrics_are_finite_scalar_tensors():
    agent = make_agent()
    metrics = agent.update(make_batch(), torch.Generator().manual_seed(0))
    assert set(metrics) == {"critic_loss", "policy_loss", "alpha", "entropy", "q_mean"}
    for value in metrics.values():
        assert isinstance(value, torch.Tensor) and value.dim() == 0 and math.isfinite(value.item())


def test_runtime_sets_threads_once_and_none_keeps_them():
    before = torch.get_num_threads()
    try:
        apply_runtime(RuntimeSpec(threads=2))
        assert torch.get_num_threads() == 2
        make_agent()  # the agent leaves the thread count alone
        assert torch.get_num_threads() == 2
        apply_runtime(RuntimeSpec(threads=None))
        assert torch.get_num_threads() == 2
        apply_runtime(RuntimeSpec(threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_update_runs_on_the_device():
    agent = make_agent(device="cuda")
    batch = make_batch(device="cuda")
    generator = torch.Generator(device="cuda").manual_seed(0)
    metrics = agent.update(batch, generator)
    assert all(v.device.type == "cuda" for v in metrics.values())
    assert agent.act(batch.obs, batch.tasks, deterministic=False, generator=generator).device.type == "cuda"


@pytest.mark.slow
def test_compiled_update_matches_eager():
    eager, compiled = make_agent(), make_agent(compile=True)
    for step in range(3):
        m1 = eager.update(make_batch(step), torch.Generator().manual_seed(step))
        m2 = compiled.update(make_batch(step), torch.Generator().manual_seed(step))
    torch.testing.assert_close(m1["critic_loss"], m2["critic_loss"], rtol=1e-4, atol=1e-5)
    for a, b in zip(eager.critic.parameters(), compiled.critic.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_keep_freed_memory_is_harmless_to_call_again():
    from hindsight.runtime import keep_freed_memory

    assert keep_freed_memory() in (True, False)
    apply_runtime(RuntimeSpec(keep_freed_memory=True))
    make_agent().update(make_batch(), torch.Generator().manual_seed(0))


def test_cpu_bfloat16_support_is_read_from_the_cpu_flags(tmp_path):
    from hindsight.runtime import cpu_has_native_bfloat16

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n\nprocessor\t: 1\nflags\t\t: fpu avx2\n")
    assert cpu_has_native_bfloat16(info) is False
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n")
    assert cpu_has_native_bfloat16(info) is True
    assert cpu_has_native_bfloat16(tmp_path / "missing") is None


def test_bfloat16_on_a_cpu_without_it_warns(monkeypatch):
    monkeypatch.setattr("hindsight.runtime.cpu_has_native_bfloat16", lambda: False)
    with pytest.warns(UserWarning, match="emulated"):
        apply_runtime(RuntimeSpec(precision="bfloat16", threads=None))
