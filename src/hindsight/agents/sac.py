"""Soft actor-critic conditioned on the task: networks see concat(obs, z), critics concat(obs, a, z)."""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal

import attrs
import torch
import torch.nn.functional as F
from pydantic import Field

from hindsight.agents.networks import StackedMLP, TanhMeanPolicy
from hindsight.agents.optim import FusedAdam
from hindsight.batches import TransitionBatch
from hindsight.protocols import Sizes
from hindsight.specs import Params, ResolvedSpec, RuntimeSpec

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def tanh_log_prob(pre_tanh: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log pi(tanh(u)) for u ~ N(mean, exp(log_std)), summed over the last dim: [...]."""
    gauss = -0.5 * ((pre_tanh - mean) / log_std.exp()).square() - log_std - 0.5 * math.log(2 * math.pi)
    # log |d tanh(u) / du| = log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), numerically stable
    correction = 2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))
    return (gauss - correction).sum(-1)


def squashed_log_prob(noise: torch.Tensor, log_std: torch.Tensor, pre_tanh: torch.Tensor) -> torch.Tensor:
    """``tanh_log_prob`` for u = mean + exp(log_std) * noise, written with the noise itself: [...].

    (u - mean) / std is the noise, and log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)); fewer ops.
    """
    per_dim_const = -0.5 * math.log(2 * math.pi) - 2 * math.log(2)
    terms = 2 * (pre_tanh + F.softplus(-2 * pre_tanh)) - log_std - 0.5 * noise.square()
    return terms.sum(-1) + noise.shape[-1] * per_dim_const


class SAC:
    """Task-conditioned soft actor-critic with twin critics, Polyak targets and automatic temperature.

    One instance trains P independent members (a population of seeds) with stacked parameters: the policy
    is a StackedMLP of P members, the critics one of 2P (member p's twins at 2p and 2p + 1), the
    temperature a vector [P]; one batched update steps them all. Member p's initial weights and update
    noise come only from its own generators, so members do not influence each other. The Agent protocol
    methods act, value, q and log_prob act for one member (``member``, 0 by default); ``act_members`` and
    ``update_members`` for all; ``update`` steps a single-member agent (a convenience for tools and tests).
    """

    class Params(Params):
        hidden: list[Annotated[int, Field(ge=1)]] = Field(default=[256, 256], min_length=1)
        lr: float = Field(default=3e-3, gt=0)
        gamma: float = Field(default=0.99, gt=0, le=1)
        tau: float = Field(default=5e-3, gt=0, le=1)
        batch_size: int = Field(default=256, ge=1)
        reward_scale: float = Field(default=1.0, gt=0)
        target_entropy: float | None = Field(default=None, description="default: -action_dim")
        init_log_alpha: float = Field(
            default=0.0, ge=-87, le=88, description="log of the initial temperature (its exp must fit a float32)"
        )
        init: Literal["torch", "rlkit"] = Field(
            default="torch",
            description="torch: torch.nn.Linear's initialisation; rlkit: the paper's reference "
            "code's (hidden weights U(+-1/sqrt(out_features)), hidden biases 0.1, the critics' last layer "
            "U(+-3e-3), the policy's mean and log-std heads U(+-1e-3))",
        )
        update_order: Literal["critic_first", "rlkit"] = Field(
            default="critic_first",
            description="critic_first: the critics step, the policy steps on the stepped critics, then the "
            "temperature (softlearning's order); rlkit: the temperature steps first and its new value enters "
            "both losses, which are taken from the networks before the update (the paper's reference code, "
            "rlkit's SACTrainer.train_from_torch)",
        )

    @classmethod
    def memory_bytes(cls, spec: ResolvedSpec, sizes: Sizes) -> int:
        """Float32 bytes of every member's networks, gradients, Adam moments and target critics, and of
        one update's activations (``MemoryEstimate``)."""
        params = spec.params["agent"]
        assert isinstance(params, SAC.Params)
        members = len(spec.run.member_seeds)

        def weights(count: int, in_dim: int, out_dim: int) -> int:
            dims = [in_dim, *params.hidden, out_dim]
            return count * sum(fan_in * fan_out + fan_out for fan_in, fan_out in itertools.pairwise(dims))

        policy = weights(members, sizes.obs_dim + sizes.task_dim, 2 * sizes.action_dim)
        critic = weights(2 * members, sizes.obs_dim + sizes.action_dim + sizes.task_dim, 1)
        # weights, gradients and two moments each; the critics' targets besides
        tensors = 4 * policy + 5 * critic
        # every layer's output for the minibatch, forward and backward, through policy, critics and targets
        activations = 16 * members * params.batch_size * sum(params.hidden)
        return 4 * (tensors + activations)

    def __init__(self, params: SAC.Params, sizes: Sizes, runtime: RuntimeSpec, generators: list[torch.Generator]):
        """P = len(generators) members on ``runtime.device``; member p's weights come from ``generators[p]``
        (CPU generators). ``runtime.precision`` and ``runtime.compile`` choose how updates compute."""
        if any(h < 1 for h in params.hidden):
            raise ValueError("agent.hidden: every layer size must be >= 1")
        self.params = params
        self.members = len(generators)
        self.device = torch.device(runtime.device)
        obs_dim, action_dim, task_dim = sizes.obs_dim, sizes.action_dim, sizes.task_dim
        self.gamma = params.gamma
        self.batch_size = params.batch_size
        self.action_dim = action_dim
        policy_head, critic_head = (1e-3, 3e-3) if params.init == "rlkit" else (None, None)
        hidden_dtype = getattr(torch, runtime.precision)
        self.policy = StackedMLP.concat(
            [
                StackedMLP(1, obs_dim + task_dim, params.hidden, 2 * action_dim, g, hidden_dtype, policy_head)
                for g in generators
            ]
        ).to(self.device)
        self.critic = StackedMLP.concat(
            [
                StackedMLP(2, obs_dim + action_dim + task_dim, params.hidden, 1, g, hidden_dtype, critic_head)
                for g in generators
            ]
        ).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.full((self.members,), params.init_log_alpha, device=self.device, requires_grad=True)
        self.target_entropy = params.target_entropy if params.target_entropy is not None else -float(action_dim)
        self._policy_params: list[torch.Tensor] = list(self.policy.parameters())
        self._critic_params: list[torch.Tensor] = list(self.critic.parameters())
        self._target_params: list[torch.Tensor] = list(self.critic_target.parameters())
        self.policy_opt = FusedAdam(self._policy_params, params.lr)
        self.critic_opt = FusedAdam(self._critic_params, params.lr)
        self.alpha_opt = FusedAdam([self.log_alpha], params.lr)
        self._critic_loss_fn, self._policy_loss_fn = self._critic_loss, self._policy_loss
        if runtime.compile:
            self._critic_loss_fn = torch.compile(self._critic_loss, dynamic=False)
            self._policy_loss_fn = torch.compile(self._policy_loss, dynamic=False)

    # ----- networks (inputs carry a leading member dimension) -----
    def _policy_dist(
        self, obs: torch.Tensor, tasks: torch.Tensor, member: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and clamped log-std [P', N, A] for obs [P', N, O], tasks [P', N, Z] (P' = 1 for one member)."""
        select = None if member is None else slice(member, member + 1)
        out = self.policy(torch.cat([obs, tasks], -1), select)
        mean, log_std = out.chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def _actions(self, obs, tasks, noise: torch.Tensor, member: int | None = None) -> torch.Tensor:
        """Squashed actions tanh(mean + std * noise) [P', N, A], without their log-probabilities."""
        mean, log_std = self._policy_dist(obs, tasks, member)
        return torch.tanh(torch.addcmul(mean, log_std.exp(), noise))

    def _sample(self, obs, tasks, noise: torch.Tensor, member: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Squashed actions tanh(mean + std * noise) [P', N, A] and their log-probabilities [P', N]."""
        mean, log_std = self._policy_dist(obs, tasks, member)
        pre_tanh = torch.addcmul(mean, log_std.exp(), noise)
        return torch.tanh(pre_tanh), squashed_log_prob(noise, log_std, pre_tanh)

    def _noise(self, shape: tuple[int, ...], generators: Sequence[torch.Generator | None]) -> torch.Tensor:
        """Standard normal noise [len(generators), *shape], member p's drawn from ``generators[p]``."""
        if len(generators) == 1:  # the same draws as below, without the stack
            return torch.randn((1, *shape), generator=generators[0], device=self.device)
        return torch.stack([torch.randn(shape, generator=g, device=self.device) for g in generators])

    def _critic(self, obs, actions, tasks, target=False, member: int | None = None) -> torch.Tensor:
        """Both critics' Q [P', 2, N] for obs [P', N, O], actions [P', N, A], tasks [P', N, Z]."""
        net = self.critic_target if target else self.critic
        x = torch.cat([obs, actions, tasks], -1)
        P, N, D = x.shape
        x = x[:, None].expand(P, 2, N, D).reshape(2 * P, N, D)
        select = None if member is None else slice(2 * member, 2 * member + 2)
        return net(x, select)[..., 0].view(P, 2, N)

    # ----- the Agent protocol, for one member -----
    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        tasks: torch.Tensor,
        deterministic: bool,
        generator: torch.Generator | None = None,
        member: int = 0,
    ) -> torch.Tensor:
        """Actions [B, A] for obs [B, O] and tasks [B, Z]: tanh(mean) if deterministic, else a sample."""
        obs, tasks = obs.to(self.device)[None], tasks.to(self.device)[None]
        if deterministic:
            return torch.tanh(self._policy_dist(obs, tasks, member)[0])[0]
        noise = self._noise((obs.shape[1], self.action_dim), [generator])
        return self._actions(obs, tasks, noise, member)[0]

    @torch.no_grad()
    def act_members(
        self, obs: torch.Tensor, tasks: torch.Tensor, generators: Sequence[torch.Generator | None]
    ) -> torch.Tensor:
        """Every member's sampled actions [P, B, A] for obs [P, B, O] and tasks [P, B, Z], member p's noise
        drawn from ``generators[p]`` (the draws of ``act(..., member=p)`` with that generator)."""
        obs, tasks = obs.to(self.device), tasks.to(self.device)
        return self._actions(obs, tasks, self._noise((obs.shape[1], self.action_dim), generators))

    @torch.no_grad()
    def q(self, obs: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor, member: int = 0) -> torch.Tensor:
        """min(Q1, Q2) [N] for obs [N, O], actions [N, A], tasks [N, Z]."""
        return self._critic(obs[None], actions[None], tasks[None], member=member)[0].min(0).values

    @torch.no_grad()
    def value(self, obs: torch.Tensor, tasks: torch.Tensor, member: int = 0) -> torch.Tensor:
        """V(s, z) = min Q(s, tanh(mu(s, z)), z): [B, K] for obs [B, O] and tasks [B, K, Z]."""
        B, K, _ = tasks.shape
        flat_obs = obs[:, None].expand(B, K, obs.shape[-1]).reshape(1, B * K, -1)
        flat_tasks = tasks.reshape(1, B * K, -1)
        actions = torch.tanh(self._policy_dist(flat_obs, flat_tasks, member)[0])
        return self._critic(flat_obs, actions, flat_tasks, member=member)[0].min(0).values.view(B, K)

    @torch.no_grad()
    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor, member: int = 0) -> torch.Tensor:
        """log pi(a | s, z) [N] for actions [N, A] strictly inside (-1, 1)."""
        mean, log_std = self._policy_dist(obs[None], tasks[None], member)
        pre_tanh = torch.atanh(actions.clamp(-1 + 1e-6, 1 - 1e-6))
        return tanh_log_prob(pre_tanh, mean[0], log_std[0])

    def deterministic_policy(self, member: int = 0) -> torch.nn.Module:
        """Member ``member``'s tanh(mu(s, z)) as a standalone float32 CPU module (obs [N, O], tasks [N, Z])
        -> actions [N, A], holding copies of its weights (``hindsight export``). Its products are float32
        whatever ``runtime.precision`` says."""
        return TanhMeanPolicy(self.policy.member_layers(member), self.action_dim).eval()

    def named_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """The learnable tensors by name: policy and critic weights and biases, and log alpha."""
        for name, net in (("policy", self.policy), ("critic", self.critic)):
            for pname, param in net.named_parameters():
                yield f"{name}.{pname}", param
        yield "log_alpha", self.log_alpha

    # ----- updates -----
    def _critic_loss(self, obs, actions, tasks, next_obs, rewards, terminated, noise, alpha):
        """Per-member sums over both critics of the mean squared TD error [P], and Q [P, 2, N];
        inputs [P, N, ...], ``noise`` [P, N, A] draws a', ``alpha`` [P, 1]."""
        with torch.no_grad():
            next_actions, next_logp = self._sample(next_obs, tasks, noise)
            next_q = self._critic(next_obs, next_actions, tasks, target=True).min(1).values
            target = self.params.reward_scale * rewards + self.gamma * (1.0 - terminated) * (next_q - alpha * next_logp)
        q = self._critic(obs, actions, tasks)
        return (q - target[:, None]).square().mean(-1).sum(1), q

    def _policy_loss(self, obs, tasks, noise, alpha):
        """Per-member mean(alpha log pi(a|s) - min Q(s, a)) [P] for a = tanh(mean + std * noise), and log pi [P, N]."""
        new_actions, logp = self._sample(obs, tasks, noise)
        q_new = self._critic(obs, new_actions, tasks).min(1).values
        return (alpha * logp - q_new).mean(-1), logp

    def update_members(
        self, batch: TransitionBatch, generators: Sequence[torch.Generator | None]
    ) -> dict[str, torch.Tensor]:
        """One SAC step of every member on its own minibatch, then the Polyak target update.

        Args:
            batch: fields with a leading member dimension, e.g. obs [P, N, O], rewards [P, N].
            generators: member p's update noise comes from ``generators[p]``.
        Returns:
            [P] tensors per metric (critic_loss, policy_loss, alpha, entropy, q_mean), not synchronised.

        ``agent.update_order`` sets the order. critic_first: the policy step uses the critics just
        updated, and the temperature step the policy's entropy before its update. rlkit: the temperature
        steps first on the policy's entropy, and both losses use its new value and the networks before the
        update. Gradients come from ``torch.autograd.grad``
        (only for the tensors each loss steps: no critic weight gradients for the policy loss). Members'
        losses are summed, so each member's gradient is that of its own loss.
        """
        obs, tasks = batch.obs, batch.tasks
        noise = self._noise((2, obs.shape[1], self.action_dim), generators)  # [P, 2, N, A]: a' and a
        critic_inputs = (obs, batch.actions, tasks, batch.next_obs, batch.rewards, batch.terminated, noise[:, 0])
        if self.params.update_order == "rlkit":
            with torch.no_grad():
                logp = self._sample(obs, tasks, noise[:, 1])[1]
            self._step_temperature(logp)
            alpha = self.log_alpha.detach().exp()[:, None]
            critic_loss, q = self._critic_loss_fn(*critic_inputs, alpha)
            policy_loss, _ = self._policy_loss_fn(obs, tasks, noise[:, 1], alpha)
            critic_grads = torch.autograd.grad(critic_loss.sum(), self._critic_params)
            policy_grads = torch.autograd.grad(policy_loss.sum(), self._policy_params)
            self.critic_opt.step(critic_grads)
            self.policy_opt.step(policy_grads)
        else:
            alpha = self.log_alpha.detach().exp()[:, None]
            critic_loss, q = self._critic_loss_fn(*critic_inputs, alpha)
            self.critic_opt.step(torch.autograd.grad(critic_loss.sum(), self._critic_params))
            policy_loss, logp = self._policy_loss_fn(obs, tasks, noise[:, 1], alpha)
            self.policy_opt.step(torch.autograd.grad(policy_loss.sum(), self._policy_params))
            logp = logp.detach()
            self._step_temperature(logp)

        with torch.no_grad():
            torch._foreach_lerp_(self._target_params, self._critic_params, self.params.tau)
        return {
            "critic_loss": critic_loss.detach(),
            "policy_loss": policy_loss.detach(),
            "alpha": alpha[:, 0],
            "entropy": -logp.mean(-1),
            "q_mean": q.detach().mean((1, 2)),
        }

    def _step_temperature(self, logp: torch.Tensor) -> None:
        """One Adam step of log alpha [P] on the loss -(log_alpha (logp + H)).mean(), from log pi [P, N]."""
        # its gradient in log_alpha is -(mean logp + H)
        self.alpha_opt.step([-(logp.mean(-1) + self.target_entropy)])

    def update(self, batch: TransitionBatch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """One step of a single-member agent on batch fields [N, ...]; scalar metric tensors."""
        if self.members != 1:
            raise ValueError("update() steps a single-member agent; use update_members for a population")
        stacked = TransitionBatch(**{name: value[None] for name, value in attrs.asdict(batch, recurse=False).items()})
        return {k: v[0] for k, v in self.update_members(stacked, [generator]).items()}

    # ----- checkpoints -----
    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, temperature and optimiser states (tensors and plain data only)."""
        return {
            "policy": self.policy.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "policy_opt": self.policy_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.policy_opt.load_state_dict(state["policy_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
