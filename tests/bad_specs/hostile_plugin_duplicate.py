"""A plugin registering a name a built-in already has."""

from hindsight.registry import register
from hindsight.tasks.point_reacher import PointReacher

register("env", "point_reacher")(PointReacher)
