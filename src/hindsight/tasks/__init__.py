"""Environment families: dm_control tasks, their task distributions and reward families."""
