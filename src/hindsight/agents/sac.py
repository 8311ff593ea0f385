"""Soft actor-critic conditioned on the task: networks see concat(obs, z), critics concat(obs, a, z)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field

from hindsight.agents.networks import StackedMLP
from hindsight.agents.optim import FusedAdam
from hindsight.batches import TransitionBatch
from hindsight.specs import Params

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
    """Task-conditioned soft actor-critic with twin critics, Polyak targets and automatic temperature."""

    class Params(Params):
        hidden: list[int] = Field(default=[256, 256], min_length=1)
        lr: float = Field(default=3e-3, gt=0)
        gamma: float = Field(default=0.99, gt=0, le=1)
        tau: float = Field(default=5e-3, gt=0, le=1)
        batch_size: int = Field(default=256, ge=1)
        reward_scale: float = Field(default=1.0, gt=0)
        target_entropy: float | None = Field(default=None, description="default: -action_dim")
        init_log_alpha: float = 0.0
        device: str = Field(default="cpu", description="cpu, cuda or cuda:N")
        threads: int | None = Field(
            default=1, ge=1, description="torch intra-op threads on CPU (process-wide; None keeps torch's "
            "setting). One by default: updates of small networks gain little from more and lose much when "
            "the cores are shared")
        compile: bool = Field(default=False, description="torch.compile the critic and policy losses "
                              "(forward and backward); pays on CPU and GPU but takes minutes to start")

    def __init__(self, params: "SAC.Params", obs_dim: int, action_dim: int, task_dim: int,
                 generator: torch.Generator):
        """Build the networks with weights drawn from ``generator`` (a CPU generator)."""
        if any(h < 1 for h in params.hidden):
            raise ValueError("agent.hidden: every layer size must be >= 1")
        self.params = params
        self.device = torch.device(params.device)
        if self.device.type == "cpu" and params.threads is not None:
            torch.set_num_threads(params.threads)
        self.gamma = params.gamma
        self.batch_size = params.batch_size
        self.action_dim = action_dim
        self.policy = StackedMLP(1, obs_dim + task_dim, params.hidden, 2 * action_dim, generator).to(self.device)
        self.critic = StackedMLP(2, obs_dim + action_dim + task_dim, params.hidden, 1, generator).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(params.init_log_alpha, device=self.device, requires_grad=True)
        self.target_entropy = params.target_entropy if params.target_entropy is not None else -float(action_dim)
        self._policy_params = list(self.policy.parameters())
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())
        self.policy_opt = FusedAdam(self._policy_params, params.lr)
        self.critic_opt = FusedAdam(self._critic_params, params.lr)
        self.alpha_opt = FusedAdam([self.log_alpha], params.lr)
        self._critic_loss_fn, self._policy_loss_fn = self._critic_loss, self._policy_loss
        if params.compile:
            self._critic_loss_fn = torch.compile(self._critic_loss, dynamic=False)
            self._policy_loss_fn = torch.compile(self._policy_loss, dynamic=False)

    # ----- networks -----
    def _policy_dist(self, obs: torch.Tensor, tasks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and clamped log-std [N, A] for obs [N, O], tasks [N, Z]."""
        out = self.policy(torch.cat([obs, tasks], -1)[None])[0]
        mean, log_std = out.chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def _sample(self, obs, tasks, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Squashed actions tanh(mean + std * noise) [N, A] and their log-probabilities [N]."""
        mean, log_std = self._policy_dist(obs, tasks)
        pre_tanh = torch.addcmul(mean, log_std.exp(), noise)
        return torch.tanh(pre_tanh), squashed_log_prob(noise, log_std, pre_tanh)

    def _noise(self, shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=self.device)

    def _critic(self, obs, actions, tasks, target=False) -> torch.Tensor:
        """Both critics' Q [2, N] for obs [N, O], actions [N, A], tasks [N, Z]."""
        net = self.critic_target if target else self.critic
        return net(torch.cat([obs, actions, tasks], -1)[None])[..., 0]

    # ----- the Agent protocol -----
    @torch.no_grad()
    def act(self, obs: torch.Tensor, tasks: torch.Tensor, deterministic: bool,
            generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions [B, A] for obs [B, O] and tasks [B, Z]: tanh(mean) if deterministic, else a sample."""
        obs, tasks = obs.to(self.device), tasks.to(self.device)
        if deterministic:
            return torch.tanh(self._policy_dist(obs, tasks)[0])
        return self._sample(obs, tasks, self._noise((obs.shape[0], self.action_dim), generator))[0]

    @torch.no_grad()
    def q(self, obs: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """min(Q1, Q2) [N] for obs [N, O], actions [N, A], tasks [N, Z]."""
        return self._critic(obs, actions, tasks).min(0).values

    @torch.no_grad()
    def value(self, obs: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """V(s, z) = min Q(s, tanh(mu(s, z)), z): [B, K] for obs [B, O] and tasks [B, K, Z]."""
        B, K, _ = tasks.shape
        flat_obs = obs[:, None].expand(B, K, obs.shape[-1]).reshape(B * K, -1)
        flat_tasks = tasks.reshape(B * K, -1)
        actions = torch.tanh(self._policy_dist(flat_obs, flat_tasks)[0])
        return self.q(flat_obs, actions, flat_tasks).view(B, K)

    @torch.no_grad()
    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """log pi(a | s, z) [N] for actions [N, A] strictly inside (-1, 1)."""
        mean, log_std = self._policy_dist(obs, tasks)
        pre_tanh = torch.atanh(actions.clamp(-1 + 1e-6, 1 - 1e-6))
        return tanh_log_prob(pre_tanh, mean, log_std)

    def _critic_loss(self, obs, actions, tasks, next_obs, rewards, terminated, noise, alpha):
        """Sum over both critics of the mean squared TD error, and Q [2, N]; ``noise`` [N, A] draws a'."""
        with torch.no_grad():
            next_actions, next_logp = self._sample(next_obs, tasks, noise)
            next_q = self._critic(next_obs, next_actions, tasks, target=True).min(0).values
            target = self.params.reward_scale * rewards + self.gamma * (1.0 - terminated) * (next_q - alpha * next_logp)
        q = self._critic(obs, actions, tasks)
        return (q - target).square().mean(-1).sum(), q

    def _policy_loss(self, obs, tasks, noise, alpha):
        """mean(alpha log pi(a|s) - min Q(s, a)) for a = tanh(mean + std * noise), and log pi [N]."""
        new_actions, logp = self._sample(obs, tasks, noise)
        q_new = self._critic(obs, new_actions, tasks).min(0).values
        return (alpha * logp - q_new).mean(), logp

    def update(self, batch: TransitionBatch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """One SAC step on critics, policy and temperature, then the Polyak target update.

        The policy step uses the critics just updated; the temperature step uses the policy's entropy
        before its update (the order of the reference SAC). Gradients come from ``torch.autograd.grad``
        (only for the tensors each loss steps: no critic weight gradients for the policy loss).
        Returns scalar tensors (critic_loss, policy_loss, alpha, entropy, q_mean); nothing is
        synchronised to the host.
        """
        obs, tasks = batch.obs, batch.tasks
        noise = self._noise((2, obs.shape[0], self.action_dim), generator)  # next-state and current samples
        alpha = self.log_alpha.detach().exp()

        critic_loss, q = self._critic_loss_fn(obs, batch.actions, tasks, batch.next_obs, batch.rewards,
                                              batch.terminated, noise[0], alpha)
        self.critic_opt.step(torch.autograd.grad(critic_loss, self._critic_params))

        policy_loss, logp = self._policy_loss_fn(obs, tasks, noise[1], alpha)
        self.policy_opt.step(torch.autograd.grad(policy_loss, self._policy_params))

        logp = logp.detach()
        # alpha loss -(log_alpha (logp + H)).mean() has gradient -(mean logp + H) in log_alpha
        self.alpha_opt.step([-(logp.mean() + self.target_entropy)])

        with torch.no_grad():
            torch._foreach_lerp_(self._target_params, self._critic_params, self.params.tau)
        return {"critic_loss": critic_loss.detach(), "policy_loss": policy_loss.detach(), "alpha": alpha,
                "entropy": -logp.mean(), "q_mean": q.detach().mean()}

    # ----- checkpoints -----
    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, temperature and optimiser states (tensors and plain data only)."""
        return {"policy": self.policy.state_dict(), "critic": self.critic.state_dict(),
                "critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
                "policy_opt": self.policy_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "alpha_opt": self.alpha_opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.policy_opt.load_state_dict(state["policy_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
