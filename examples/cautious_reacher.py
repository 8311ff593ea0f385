"""A user's own reward family: PointReacher whose safety term is a hard penalty inside a radius.

Registered without touching hindsight: a spec lists this module under ``plugins:``.
"""

import torch
from pydantic import Field

from hindsight.registry import register
from hindsight.specs import Params
from hindsight.tasks.point_reacher import PointReacherReward, reacher_weights


@register("reward", "cautious_reacher")
class CautiousReacherReward:
    """PointReacher with safety = -penalty while within `radius` of the obstacle."""

    env_features = "point_position"  # reads the features the point_reacher env records
    feature_dim = 2
    task_dim = 6

    class Params(Params):
        radius: float = Field(default=0.1, gt=0)
        penalty: float = Field(default=1.0, ge=0)

    def __init__(self, params=None):
        self.params = params or self.Params()
        self.reacher = PointReacherReward()

    def reward(self, features, actions, tasks):
        """[B, K, T] rewards for features [B, T, 2], actions [B, T, 2], tasks [B, K, 6]."""
        distance, energy, _ = self.reacher.terms(features, actions, tasks)
        obstacle = torch.stack(
            [tasks[..., 5] * torch.cos(tasks[..., 4]), tasks[..., 5] * torch.sin(tasks[..., 4])], -1
        )[:, :, None]
        inside = torch.linalg.vector_norm(features[:, None] - obstacle, dim=-1) < self.params.radius
        safety = -self.params.penalty * inside.float()
        w = reacher_weights(tasks[..., 0], tasks[..., 1])[:, :, None]
        return w[..., 0] * distance + w[..., 1] * energy + w[..., 2] * safety
