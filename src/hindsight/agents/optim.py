"""Adam on a fixed list of tensors with one fused kernel call per step and no per-step Python bookkeeping."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class FusedAdam:
    """The update of ``torch.optim.Adam(fused=True)`` (no weight decay, no amsgrad), given the gradients.

    ``torch.optim`` spends a few hundred microseconds per ``step`` in hooks, grouping and checks; in a
    SAC update of small networks that is a sizeable share. Here the state lives in flat lists and a step
    is a step-counter increment plus one ``_fused_adam_`` call. Gradients are passed in (from
    ``torch.autograd.grad``), so nothing accumulates in ``.grad`` and no zeroing is needed.

    Args:
        params: the tensors to update in place (leaf tensors, all on one device, float32).
        lr, betas, eps: as in ``torch.optim.Adam``.
    """

    def __init__(
        self, params: Sequence[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ):
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        # one float32 step counter per tensor, on its device: what the fused kernel reads (no host sync)
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> None:
        """Apply one Adam step with ``grads`` (same order and shapes as ``params``)."""
        torch._foreach_add_(self.steps, 1.0)
        torch._fused_adam_(
            self.params,
            list(grads),
            self.exp_avg,
            self.exp_avg_sq,
            [],
            self.steps,
            lr=self.lr,
            beta1=self.betas[0],
            beta2=self.betas[1],
            weight_decay=0.0,
            eps=self.eps,
            amsgrad=False,
            maximize=False,
        )

    def state_dict(self) -> dict[str, Any]:
        """Moments and step counters (cloned tensors)."""
        return {
            "exp_avg": [t.clone() for t in self.exp_avg],
            "exp_avg_sq": [t.clone() for t in self.exp_avg_sq],
            "steps": [t.clone() for t in self.steps],
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("exp_avg", "exp_avg_sq", "steps"):
            mine, theirs = getattr(self, name), state[name]
            if len(mine) != len(theirs):
                raise ValueError(f"optimiser state {name}: expected {len(mine)} tensors, got {len(theirs)}")
            torch._foreach_copy_(mine, [t.to(m.device, m.dtype) for m, t in zip(mine, theirs, strict=True)])
