"""hindsight: multi-task RL with Generalized Hindsight relabeling on dm_control physics."""

__version__ = "0.1.0"
