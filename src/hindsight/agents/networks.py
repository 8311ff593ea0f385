"""Stacked-parameter MLPs: M independent networks evaluated with batched matrix products."""

from __future__ import annotations

import itertools
import math
from typing import cast

import torch
from torch import nn

# activations per chunk of a gradient-free evaluation (float32: 1 MiB, half a core's L2 on a recent Xeon)
CHUNK_ELEMENTS = 1 << 18
# fewer rows multiply in float32 whatever hidden_dtype says: casting the weights would cost more than the
# products save (acting on one observation was 3x slower in bfloat16)
NARROW_MIN_ROWS = 64


class StackedMLP(nn.Module):
    """M independent MLPs with weights [M, in, out], ReLU between layers, no output activation.

    The twin critics are one StackedMLP of two members; a population of P seeds is P (or 2P) members.

    Args:
        members, in_dim, hidden, out_dim: M and the layer sizes.
        generator: draws the initial weights.
        head_bound: None for torch.nn.Linear's initialisation (weights and biases U(+-1/sqrt(fan_in)));
            a number for rlkit's, as the paper's reference code uses: hidden weights U(+-1/sqrt(fan_out)),
            hidden biases 0.1, the last layer's weights and biases U(+-head_bound).
        hidden_dtype: the dtype the products between hidden layers are computed in for inputs of at
            least NARROW_MIN_ROWS rows (float32 or bfloat16; products are cast back to float32). The first
            and last layer, the weights, biases, activations and gradients stay float32.
    """

    def __init__(
        self,
        members: int,
        in_dim: int,
        hidden: list[int],
        out_dim: int,
        generator: torch.Generator,
        hidden_dtype: torch.dtype = torch.float32,
        head_bound: float | None = None,
    ):
        super().__init__()
        dims = [in_dim, *hidden, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(dims)):
            last = layer == len(dims) - 2
            if head_bound is None:
                bound = 1.0 / math.sqrt(fan_in)  # torch.nn.Linear's default initialisation range
            else:
                bound = head_bound if last else 1.0 / math.sqrt(fan_out)  # rlkit's fanin_init reads out_features
            w = (torch.rand(members, fan_in, fan_out, generator=generator) * 2 - 1) * bound
            if head_bound is None or last:
                b = (torch.rand(members, 1, fan_out, generator=generator) * 2 - 1) * bound
            else:
                b = torch.full((members, 1, fan_out), 0.1)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        self.hidden_dtype = hidden_dtype

    @classmethod
    def concat(cls, nets: list[StackedMLP]) -> StackedMLP:
        """One StackedMLP holding the members of ``nets`` (same layer sizes and dtype) in order."""
        merged = nets[0]
        if len(nets) > 1:
            with torch.no_grad():
                for i in range(len(merged.weights)):
                    merged.weights[i] = nn.Parameter(torch.cat([n.weights[i] for n in nets]))
                    merged.biases[i] = nn.Parameter(torch.cat([n.biases[i] for n in nets]))
        return merged

    @property
    def members(self) -> int:
        """M, the number of stacked networks."""
        return self.weights[0].shape[0]

    def forward(self, x: torch.Tensor, select: slice | None = None) -> torch.Tensor:
        """Evaluate every member (or the members ``select`` picks) on its own input.

        Without gradients on CPU, large inputs run in chunks of rows so that each layer's activations stay
        in cache (an evaluation of N x C candidate pairs would otherwise stream hundreds of MB per layer
        through memory); each row's result is the same either way.

        Args:
            x: [M', N, in] with M' the number of evaluated members (or [1, N, in], broadcast to them).
            select: a slice of the members to evaluate; all of them by default.
        Returns:
            [M', N, out].
        """
        # the lists' own dicts: iterating a ParameterList costs ~10 us, a sizeable share of a small update
        # (their values are typed Parameter | None; a ParameterList holds only Parameters)
        weights = cast("list[torch.Tensor]", list(self.weights._parameters.values()))
        biases = cast("list[torch.Tensor]", list(self.biases._parameters.values()))
        if select is not None:
            weights, biases = [w[select] for w in weights], [b[select] for b in biases]
        count = weights[0].shape[0]
        if x.shape[0] != count:
            x = x.expand(count, *x.shape[1:])
        last = len(weights) - 1
        if x.shape[1] >= NARROW_MIN_ROWS:  # the hidden-to-hidden products (the bulk of the arithmetic)
            weights = [w.to(self.hidden_dtype) if 0 < i < last else w for i, w in enumerate(weights)]
        rows = max(1, CHUNK_ELEMENTS // (count * max(w.shape[-1] for w in weights)))
        if torch.is_grad_enabled() or x.device.type != "cpu" or x.shape[1] <= rows:
            return self._layers(x, weights, biases)
        return torch.cat([self._layers(part, weights, biases) for part in x.split(rows, dim=1)], 1)

    @staticmethod
    def _layers(x: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> torch.Tensor:
        """The layers on x [M, n, in] -> [M, n, out]; a layer multiplies in its weight's dtype."""
        last = len(weights) - 1
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            if w.dtype != x.dtype:
                x = torch.bmm(x.to(w.dtype), w).float().add_(b)
            else:
                x = torch.baddbmm(b, x, w)
            if i < last:
                x = x.relu_()  # in place: neither product's backward needs its output
        return x

    def member_layers(self, member: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Member ``member``'s (weight [in, out], bias [out]) of each layer: float32 CPU copies."""
        return [
            (w[member].detach().float().cpu().clone(), b[member, 0].detach().float().cpu().clone())
            for w, b in zip(self.weights, self.biases, strict=True)
        ]


class TanhMeanPolicy(nn.Module):
    """A standalone deterministic policy: tanh of the first ``action_dim`` outputs (the mean) of an MLP with
    ReLU between its layers, on inputs (obs [N, O], tasks [N, Z]) -> actions [N, A]. Plain float32 layers
    that TorchScript and ONNX export as they are.

    Args:
        layers: (weight [in, out], bias [out]) of each layer, the first taking O + Z inputs.
        action_dim: A.
    """

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]], action_dim: int):
        super().__init__()
        self.layers = nn.ModuleList()
        for weight, bias in layers:
            linear = nn.Linear(weight.shape[0], weight.shape[1])
            with torch.no_grad():
                linear.weight.copy_(weight.t())
                linear.bias.copy_(bias)
            self.layers.append(linear)
        self.action_dim = action_dim

    def forward(self, obs: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, tasks], -1)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = torch.relu(x)
        return torch.tanh(x[:, : self.action_dim])
