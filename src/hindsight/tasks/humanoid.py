"""Humanoid direction: the Ant direction family on dm_control's humanoid.

The paper names this family but publishes no definition; these are our constants:

- Robot: dm_control's suite humanoid (``suite/humanoid.xml``, 21 actuators, physics step 0.005 s), control
  step 0.025 s (5 substeps, the suite's), horizon 1000 steps (25 s, the suite's episode length).
- Task z (1) = theta ~ U(-pi, pi); eval tasks theta_k = -pi + pi/25 + 2 pi k / 25, k = 0..24 (as Ant).
- Reward, with v the torso's xy velocity over the step:
  r = |v| 1[cos(angle(v, (cos theta, sin theta))) > cos 15 deg] - 0.1 |a|^2 + 5
  (control cost weight 0.1 and alive bonus 5 as in Gymnasium's Humanoid; no contact term).
- Terminal (discount 0): the state is not finite or the torso height leaves [1.0, 2.0] m (standing
  torso height is about 1.3 m, so this is a fall).
- Reset: the model's standing pose with joint positions + U(-0.01, 0.01) (torso quaternion renormalised)
  and velocities U(-0.01, 0.01) (Gymnasium's Humanoid reset noise).
- Observation (53): joint positions without the torso x, y (26) and all velocities (27).
- Reward features (2): v_x, v_y.
"""

from __future__ import annotations

import mujoco as mj
from dm_control.suite import humanoid as suite_humanoid
from pydantic import Field

from hindsight.tasks.ant import DirectionReward, DirectionTask, DirectionTasks, DirectionView
from hindsight.tasks.base import EnvFamily, FamilyParams

CONTROL_DT = 0.025
HEALTHY_Z = (1.0, 2.0)
RESET_NOISE = 0.01
CONTROL_COST = 0.1
ALIVE_BONUS = 5.0


class HumanoidDirectionReward(DirectionReward):
    """The humanoid's direction reward: speed in the 15-degree cone - 0.1 |a|^2 + 5."""

    env_features = "humanoid_motion"

    class Params(DirectionReward.Params):
        ctrl_cost: float = Field(default=CONTROL_COST, ge=0)
        alive_bonus: float = ALIVE_BONUS


class HumanoidView(DirectionView):
    """The direction view from farther away, with a longer arrow (the humanoid is taller than the ant)."""

    DISTANCE = 5.0
    ARROW = 1.5


class HumanoidDirection(EnvFamily):
    """dm_control's humanoid moving in a task direction theta; falls are terminal (horizon 1000)."""

    Tasks = DirectionTasks
    Reward = HumanoidDirectionReward
    features_name = "humanoid_motion"
    view = HumanoidView
    observation_layout = "joint positions without the torso x, y (26), joint velocities (27)"

    class Params(FamilyParams):
        horizon: int = Field(default=1000, ge=1)

    feature_dim = 2

    control_dt = CONTROL_DT

    def load_model(self) -> mj.MjModel:
        return mj.MjModel.from_xml_string(*suite_humanoid.get_model_and_assets())

    def make_task(self, reward, seed: int, physics) -> DirectionTask:
        return DirectionTask(
            reward,
            self.feature_dim,
            self.horizon,
            random=seed,
            healthy_z=HEALTHY_Z,
            position_noise=RESET_NOISE,
            velocity_noise=RESET_NOISE,
            uniform_velocity_noise=True,
            control_dt=CONTROL_DT,
        )
