"""A user's own task distribution and reward on an existing env: HalfCheetah trading speed against energy.

The ``cheetah_multi`` env family is used as it is; only the task vector changes. z = (w_speed, w_energy),
a unit weight vector on the positive quarter circle; the reward reads the features the env records
(forward velocity, control cost -0.1 |a|^2, torso height, pitch rate) and weighs the first two.
Registered without touching hindsight: a spec lists this module under ``plugins:``.
"""

import math

import torch
from pydantic import Field

from hindsight.registry import register
from hindsight.specs import Params


def weights_at(angles: torch.Tensor) -> torch.Tensor:
    """Unit weight vectors (cos a, sin a) [..., 2] at angles [...] in [0, pi/2]."""
    return torch.stack([torch.cos(angles), torch.sin(angles)], -1)


@register("tasks", "cheetah_speed_energy")
class SpeedEnergyTasks:
    """z = (cos a, sin a) with a ~ U(0, pi/2): forward speed against energy; evenly spaced eval angles."""

    task_dim = 2

    class Params(Params):
        eval_count: int = Field(default=5, ge=1, description="evaluation angles, evenly spaced over [0, pi/2]")

    def __init__(self, params=None):
        self.params = params or self.Params()

    def sample(self, n, generator):
        """[n, 2] unit weight vectors on the positive quarter circle."""
        angles = torch.rand(n, generator=generator, device=generator.device) * (math.pi / 2)
        return weights_at(angles)

    def eval_tasks(self):
        """[E, 2]: angles 0, ..., pi/2 evenly spaced (E = eval_count; one task, speed only, when E = 1)."""
        return weights_at(torch.linspace(0.0, math.pi / 2, self.params.eval_count))


@register("reward", "cheetah_speed_energy")
class SpeedEnergyReward:
    """r = w_speed * forward velocity + w_energy * control cost, on the cheetah_multi env's features."""

    env_features = "cheetah_objectives"  # reads the features the cheetah_multi env records
    feature_dim = 4  # forward velocity, control cost, torso height, pitch rate
    task_dim = 2

    class Params(Params):
        pass

    def __init__(self, params=None):
        self.params = params or self.Params()

    def reward(self, features, actions, tasks):
        """[B, K, T] rewards for features [B, T, 4], actions [B, T, 6] (unused: the control cost is a
        feature), tasks [B, K, 2]."""
        return torch.einsum("btf,bkf->bkt", features[..., :2], tasks)

    def weighted_returns(self, features, actions, tasks, weights):
        """[B, K] sums over t of weights [B, T] times the rewards under tasks [K, 2]: linear in z, so the
        weighted sums [B, 2] of the two features times the tasks."""
        return torch.einsum("btf,bt->bf", features[..., :2], weights) @ tasks.t()
