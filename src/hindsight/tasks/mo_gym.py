"""MO-Gymnasium environments as reward families: Generalized Hindsight on the multi-objective RL benchmarks.

One family, ``mo_gymnasium``, configured by an MO-Gymnasium environment id (``env.id``, e.g.
``mo-halfcheetah-v5``) and the environment's own keyword arguments (``env.kwargs``), turns any MO-Gymnasium
environment with a Box observation space, a bounded Box (continuous) action space and a vector reward into
a family:

- its reward features (J) are the environment's per-step reward vector, as it returns it;
- its objectives are the vector's components, named as the environment documents them (``OBJECTIVE_NAMES``,
  from each environment class's "Reward Space" docstring; ``env.objectives`` renames them);
- its task z (J) is a weight vector on the simplex (non-negative, sums to 1), drawn uniformly (a flat
  Dirichlet); 25 fixed eval tasks, one seeded draw;
- its reward is linear in the weights: r = z . features (MO-Gymnasium's ``LinearReward`` with weight z).

Each environment is a ``dm_env.Environment``: observation ``observations`` [O] (the environment's observation,
flattened, float32) and ``features`` [J]; actions in [-1, 1]^A, mapped affinely onto the environment's action
bounds. The environment's ``terminated`` is a true terminal (discount 0), its time limit a truncation
(discount 1); the horizon defaults to the environment's registered time limit. Every reset reseeds the
environment (``reset(seed=...)``) with a seed drawn from the environment's own noise stream (``task.random``,
seeded by the run), so episodes reproduce row for row, after a resume too. Needs ``pip install -e '.[mo]'``.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import re
from typing import Any, ClassVar

import attrs
import dm_env
import mujoco as mj
import numpy as np
import torch
from dm_env import specs
from pydantic import Field, field_validator, model_validator

from hindsight.protocols import RewardFamily, TaskField
from hindsight.render.views import View
from hindsight.specs import Params
from hindsight.tasks.base import HoldsTask, LinearInTasks, TimeLimit

INSTALL = "pip install -e '.[mo]' (or pip install 'mo-gymnasium[mujoco]>=1.3')"
DEFAULT_ID = "mo-halfcheetah-v5"
FEATURES = "mo_gymnasium_reward_vector"
EVAL_SEED = 2020  # the eval set is ``SimplexTasks(...).sample(25, torch.Generator().manual_seed(EVAL_SEED))``
EVAL_COUNT = 25

# Each environment's reward components as its class docstring lists them ("Reward Space"), by id without
# its version (those with continuous, bounded actions). An environment whose keyword arguments drop its last
# component (``cost_objective=False`` of the hopper and the ant) keeps the first names.
OBJECTIVE_NAMES = {
    "mo-halfcheetah": ("velocity", "energy"),
    "mo-hopper": ("velocity", "height", "energy"),
    "mo-hopper-2obj": ("velocity", "height"),
    "mo-hopper-2d": ("velocity", "height"),
    "mo-walker2d": ("velocity", "energy"),
    "mo-ant": ("x_velocity", "y_velocity", "energy"),
    "mo-ant-2obj": ("x_velocity", "y_velocity"),
    "mo-ant-2d": ("x_velocity", "y_velocity"),
    "mo-swimmer": ("velocity", "energy"),
    "mo-humanoid": ("velocity", "energy"),
    "mo-lunar-lander-continuous": ("landing", "shaping", "main_fuel", "side_fuel"),
    "mo-mountaincarcontinuous": ("time", "fuel"),
}

# Per-step lower bounds of the objectives (the front's hypervolume is measured from the horizon times them),
# declared by us for the environments' default keyword arguments. morl-baselines' examples publish
# [-100, -100] (examples/morld_cheetah.py, examples/pgmorl_halfcheetah.py) and [-100, -100, -100]
# (examples/morld_hopper.py), but for the v4 environments and on gamma = 0.99 discounted returns; our fronts
# are undiscounted returns over the horizon, on which those points (about -1 per step) lie above what an
# untrained policy reaches (halfcheetah's energy is -2 per step in expectation under uniform actions).
LOWEST_VELOCITY = -10.0  # m/s: no physical bound; uniform, bang-bang and square-wave actions stay above -3.7
HOPPER_START_HEIGHT = 1.25  # m: the torso's initial height (gymnasium's hopper), its height objective's origin
HOPPER_CONTROL_COST = 1e-3 * 3  # ctrl_cost_weight times |a|^2 for three actions in [-1, 1]
HOPPER_2OBJ = (LOWEST_VELOCITY - HOPPER_CONTROL_COST, -10.0 * HOPPER_START_HEIGHT - HOPPER_CONTROL_COST)
REFERENCE_POINTS = {  # (id, J) -> J per-step lower bounds
    # velocity; energy -|a|^2 for six actions in [-1, 1]
    ("mo-halfcheetah-v5", 2): (LOWEST_VELOCITY, -6.0),
    # every component gets the healthy reward (1, or 0 on the last, unhealthy step): velocity; height
    # 10 (z - 1.25) with the torso above the floor (z >= 0); energy -|a|^2 for three actions in [-1, 1]
    ("mo-hopper-v5", 3): (LOWEST_VELOCITY, -10.0 * HOPPER_START_HEIGHT, -3.0),
    # cost_objective=False: the first two, each with the control cost added instead of a third objective
    ("mo-hopper-v5", 2): HOPPER_2OBJ,
    ("mo-hopper-2obj-v5", 2): HOPPER_2OBJ,
}
FRONT_WEIGHTS = 10


def mo_gymnasium() -> Any:
    """The ``mo_gymnasium`` module (registering its environments), or an ImportError saying how to install it."""
    try:
        import mo_gymnasium as module
    except ImportError as exc:
        raise ImportError(f"the mo_gymnasium family needs MO-Gymnasium: {INSTALL} ({exc})") from None
    return module


class _OncePerMessage(logging.Filter):
    """Lets each distinct message through once per process: MuJoCo's compiler warnings, which dm_control
    logs through absl, repeat at every compile of an environment's model (gymnasium's half_cheetah.xml
    warns that ``settotalmass`` is deprecated), and a run compiles one per environment."""

    seen: ClassVar[set[str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def make_gym_env(env_id: str, kwargs: dict[str, Any], max_episode_steps: int | None = None) -> Any:
    """``mo_gymnasium.make(env_id, **kwargs)``, its time limit ``max_episode_steps`` (None: as registered);
    each MuJoCo warning of its model's compile is logged once per process."""
    module, logger, once = mo_gymnasium(), logging.getLogger("absl"), _OncePerMessage()
    logger.addFilter(once)
    try:
        return module.make(env_id, max_episode_steps=max_episode_steps, **kwargs)
    finally:
        logger.removeFilter(once)


@attrs.frozen
class Description:
    """What the family needs to know of an MO-Gymnasium environment, read once from one instance.

    Attributes:
        obs_dim: O, the flattened observation's size.
        action_low, action_high: [A] the action space's bounds.
        reward_dim: J, the reward vector's size.
        reward_low: [J] the reward space's lower bounds (may be -inf).
        max_episode_steps: the registered time limit, or None.
        dt: seconds per step (MuJoCo environments), else None.
    """

    obs_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    reward_dim: int
    reward_low: tuple[float, ...]
    max_episode_steps: int | None
    dt: float | None


def check_spaces(env_id: str, env: Any) -> None:
    """Raise a ValueError naming what makes ``env`` unfit for the family: a non-Box observation space, a
    discrete or unbounded action space, or no vector reward."""
    from gymnasium import spaces

    unwrapped = env.unwrapped
    if not isinstance(env.observation_space, spaces.Box):
        raise ValueError(
            f"{env_id}: the mo_gymnasium family needs a Box observation space, not {env.observation_space}"
        )
    if isinstance(env.action_space, spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary):
        raise ValueError(
            f"{env_id} has a discrete action space ({env.action_space}); the mo_gymnasium family supports "
            "continuous (Box) action spaces only"
        )
    if not isinstance(env.action_space, spaces.Box) or len(env.action_space.shape) != 1:
        raise ValueError(f"{env_id}: the mo_gymnasium family needs a 1-D Box action space, not {env.action_space}")
    if not (np.isfinite(env.action_space.low).all() and np.isfinite(env.action_space.high).all()):
        raise ValueError(f"{env_id}: the action space {env.action_space} must be bounded (actions come in [-1, 1])")
    reward_space = getattr(unwrapped, "reward_space", None)
    if not isinstance(reward_space, spaces.Box) or len(reward_space.shape) != 1:
        raise ValueError(f"{env_id} declares no vector reward (a 1-D Box reward_space); is it an MO-Gymnasium id?")


@functools.lru_cache(maxsize=32)
def _describe(env_id: str, kwargs_json: str) -> Description:
    env = make_gym_env(env_id, json.loads(kwargs_json))
    try:
        check_spaces(env_id, env)
        unwrapped = env.unwrapped
        return Description(
            obs_dim=int(np.prod(env.observation_space.shape)),
            action_low=tuple(float(v) for v in env.action_space.low),
            action_high=tuple(float(v) for v in env.action_space.high),
            reward_dim=int(unwrapped.reward_space.shape[0]),
            reward_low=tuple(float(v) for v in unwrapped.reward_space.low),
            max_episode_steps=env.spec.max_episode_steps if env.spec is not None else None,
            dt=float(unwrapped.dt) if hasattr(unwrapped, "dt") else None,
        )
    finally:
        env.close()


def describe(env_id: str, kwargs: dict[str, Any]) -> Description:
    """The Description of environment ``env_id`` made with ``kwargs`` (one instance per setting, cached)."""
    return _describe(env_id, json.dumps(kwargs, sort_keys=True))


def documented_names(env_id: str, reward_dim: int) -> tuple[str, ...]:
    """The J objective names ``OBJECTIVE_NAMES`` documents for ``env_id`` (its first J), else ``r0, r1, ...``."""
    names = OBJECTIVE_NAMES.get(re.sub(r"-v\d+$", "", env_id), ())
    return names[:reward_dim] if len(names) >= reward_dim else tuple(f"r{j}" for j in range(reward_dim))


def reference_point(env_id: str, description: Description) -> tuple[float, ...] | None:
    """The declared per-step lower bounds of ``env_id``'s objectives (``REFERENCE_POINTS``), else its reward
    space's lower bounds where they are finite, else None."""
    declared = REFERENCE_POINTS.get((env_id, description.reward_dim))
    if declared is not None:
        return declared
    if all(np.isfinite(description.reward_low)):
        return description.reward_low
    return None


class SimplexTasks:
    """Objective weights z uniform on the simplex (non-negative, summing to 1: a flat Dirichlet); 25 fixed
    eval tasks, one seeded draw.

    Attributes:
        task_dim: Z = J, one weight per objective.
        fields: one field, ``weights``, labelled by the objectives' names.
    """

    class Params(Params):
        objectives: list[str] = Field(
            default_factory=lambda: list(OBJECTIVE_NAMES["mo-halfcheetah"]),
            min_length=1,
            description="the objectives' names, one weight each (a spec's own tasks take them from env)",
        )

    def __init__(self, params: SimplexTasks.Params | None = None):
        self.params = params or self.Params()
        names = tuple(self.params.objectives)
        self.task_dim = len(names)
        self.fields = (
            TaskField(
                "weights",
                names,
                (0.0,) * len(names),
                (1.0,) * len(names),
                unit_sum=True,
                doc="objective weights, scaled to sum to 1",
            ),
        )
        self.z_labels = tuple(f"w_{name}" for name in names)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """[n, J] weights on the simplex: normalised Exp(1) draws, -log(1 - U) with U ~ U[0, 1)."""
        u = torch.rand(n, self.task_dim, generator=generator, device=generator.device)
        e = -torch.log1p(-u)
        return e / e.sum(-1, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)

    def eval_tasks(self) -> torch.Tensor:
        """[25, J]: ``EVAL_COUNT`` draws from a generator seeded with ``EVAL_SEED``."""
        return self.sample(EVAL_COUNT, torch.Generator().manual_seed(EVAL_SEED))

    def from_fields(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """[N, J]: the weights [N, J] scaled to sum to 1."""
        weights = values["weights"]
        return weights / weights.sum(-1, keepdim=True)

    def to_fields(self, tasks: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weights [N, J]: the tasks [N, J] themselves."""
        return {"weights": tasks}


class LinearVectorReward(LinearInTasks):
    """r = z . (the environment's reward vector): linear in the weights z, as MO-Gymnasium's LinearReward.

    Objectives: the reward vector's J components (``objective_names``). Their per-step lower bounds
    (``reference_point``) are declared per environment in ``REFERENCE_POINTS`` (mo-halfcheetah-v5:
    velocity -10 m/s, energy -6; mo-hopper-v5: velocity -10 m/s, height -12.5, energy -3), else the reward
    space's finite lower bounds; a spec's own reward takes them from env, and ``reference_point`` sets them.
    The front: 10 weight vectors, one episode each.
    """

    env_features = FEATURES
    front_weights = FRONT_WEIGHTS
    front_situations = 1

    class Params(Params):
        objectives: list[str] = Field(
            default_factory=lambda: list(OBJECTIVE_NAMES["mo-halfcheetah"]),
            min_length=1,
            description="the objectives' names (a spec's own reward takes them from env)",
        )
        reference_point: list[float] | None = Field(
            default_factory=lambda: list(REFERENCE_POINTS[DEFAULT_ID, 2]),
            description="per-step lower bound of each objective; the front's hypervolume is measured from "
            "the horizon times it (a spec's own reward takes the environment's declared one from env)",
        )

        @field_validator("reference_point")
        @classmethod
        def _declared(cls, value: list[float] | None) -> list[float] | None:
            if value is None:
                raise ValueError(
                    "no reference point is declared for this environment and its reward space is unbounded: "
                    "give reward.reference_point, a per-step lower bound for each objective"
                )
            return value

        @model_validator(mode="after")
        def _one_bound_per_objective(self) -> LinearVectorReward.Params:
            if self.reference_point is not None and len(self.reference_point) != len(self.objectives):
                raise ValueError(
                    f"reference_point has {len(self.reference_point)} numbers for {len(self.objectives)} objectives"
                )
            return self

    def __init__(self, params: LinearVectorReward.Params | None = None):
        self.params = params or self.Params()
        self.objective_names = tuple(self.params.objectives)
        self.feature_dim = self.task_dim = len(self.objective_names)
        assert self.params.reference_point is not None  # the Params check
        self.reference_point = tuple(self.params.reference_point)

    def with_weights(self, tasks: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``weights`` [N, J] scaled to sum to 1: the weights are the whole task."""
        return (weights / weights.sum(-1, keepdim=True)).to(tasks.dtype)


class VectorRewardTask(HoldsTask):
    """The task side of one MO-Gymnasium environment (the engine's ``env.task``): z, the reward family that
    scores its steps, its noise stream and the episode's counters.

    Attributes:
        random: numpy RandomState drawing each episode's reset seed (checkpointed, reseeded by evaluators).
        defer_rewards: True: steps are scored 0, the caller scores the recorded features.
        steps: steps taken this episode.
        terminated: whether the episode's last step was a true terminal.
    """

    def __init__(self, reward: RewardFamily | None, horizon: int, time_limit: TimeLimit, seed: int):
        self._reward = reward
        self.defer_rewards = reward is None
        self.horizon = horizon
        self.time_limit = time_limit
        self.random = np.random.RandomState(seed)
        self.steps = 0
        self.terminated = False

    def is_terminal(self, physics: Any = None) -> bool:
        """Whether the last step was a true terminal (the environment's ``terminated``)."""
        return self.terminated

    def score(self, features: np.ndarray, action: np.ndarray) -> float:
        """The step's reward under z (0 while rewards are deferred), for features [J] and action [A]."""
        if self.defer_rewards or self._reward is None:
            return 0.0
        f = torch.from_numpy(features).view(1, 1, -1)
        a = torch.from_numpy(np.asarray(action, np.float32)).view(1, 1, -1)
        return float(self._reward.reward(f, a, torch.from_numpy(self.task).view(1, 1, -1))[0, 0, 0])


class MOGymnasiumEnvironment(dm_env.Environment):
    """One MO-Gymnasium environment as a ``dm_env.Environment`` (see the module docstring).

    Attributes:
        gym_env: the wrapped MO-Gymnasium environment (its time limit the family's horizon).
        task: its VectorRewardTask (``set_task`` sets z).
        episode_seed: the seed of the current episode's ``reset`` (None before the first).
    """

    def __init__(self, env_id: str, gym_env: Any, task: VectorRewardTask, description: Description):
        self.env_id = env_id
        self.gym_env = gym_env
        self.task = task
        self.episode_seed: int | None = None
        self._description = description
        low, high = np.asarray(description.action_low), np.asarray(description.action_high)
        self._bounds = None if (low == -1).all() and (high == 1).all() else (low, high)
        self._action_dtype = gym_env.action_space.dtype
        self._features = np.zeros(description.reward_dim, np.float32)
        self._physics: Any = None
        self._reset_next_step = True

    def reset(self) -> dm_env.TimeStep:
        self.episode_seed = int(self.task.random.randint(2**31 - 1))
        obs, _ = self.gym_env.reset(seed=self.episode_seed)
        self.task.steps, self.task.terminated = 0, False
        self._reset_next_step = False
        self._sync()
        return dm_env.restart(self._observation(obs, np.zeros_like(self._features)))

    def step(self, action) -> dm_env.TimeStep:
        if self._reset_next_step:
            return self.reset()
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        obs, vector, terminated, truncated, _ = self.gym_env.step(self.env_action(action))
        self._sync()
        features = np.asarray(vector, np.float32).reshape(-1)
        task = self.task
        task.steps += 1
        task.terminated = bool(terminated)
        reward = task.score(features, action)
        observation = self._observation(obs, features)
        if terminated or (task.time_limit == "terminal" and task.steps >= task.horizon):
            self._reset_next_step = True
            return dm_env.termination(reward, observation)
        if truncated or task.steps >= task.horizon:
            self._reset_next_step = True
            return dm_env.truncation(reward, observation)
        return dm_env.transition(reward, observation)

    def env_action(self, action: np.ndarray) -> np.ndarray:
        """The environment's action for ``action`` [A] in [-1, 1]: mapped affinely onto its bounds (as it is
        where they are [-1, 1]), in the action space's dtype."""
        if self._bounds is not None:
            low, high = self._bounds
            action = low + (action + 1.0) * (high - low) / 2.0
        return np.asarray(action, self._action_dtype)

    def _observation(self, obs: Any, features: np.ndarray) -> collections.OrderedDict[str, np.ndarray]:
        return collections.OrderedDict(
            observations=np.asarray(obs, np.float32).reshape(-1), features=np.asarray(features, np.float32)
        )

    def observation_spec(self) -> collections.OrderedDict[str, specs.Array]:
        return collections.OrderedDict(
            observations=specs.Array((self._description.obs_dim,), np.float32, name="observations"),
            features=specs.Array((self._description.reward_dim,), np.float32, name="features"),
        )

    def action_spec(self) -> specs.BoundedArray:
        shape = (len(self._description.action_low),)
        return specs.BoundedArray(shape, np.float64, -1.0, 1.0, name="action")

    def control_timestep(self) -> float:
        """Seconds per step (the environment's ``dt``; 1/30 s where it has none)."""
        return self._description.dt if self._description.dt is not None else 1.0 / 30.0

    @property
    def physics(self) -> Any:
        """A dm_control Physics mirroring the MuJoCo environment's state after every reset and step (created on
        first use: ``hindsight render`` draws it). An AttributeError for environments without MuJoCo."""
        if self._physics is None:
            model = getattr(self.gym_env.unwrapped, "model", None)
            if not isinstance(model, mj.MjModel):
                raise AttributeError(f"{self.env_id} is not a MuJoCo environment: it has no physics to draw")
            from dm_control import mujoco
            from dm_control.mujoco.wrapper import core

            self._physics = mujoco.Physics.from_model(core.MjModel(model))
            self._sync()
        return self._physics

    def _sync(self) -> None:
        if self._physics is not None:
            unwrapped = self.gym_env.unwrapped
            mj.mj_copyData(self._physics.data.ptr, unwrapped.model, unwrapped.data)

    def close(self) -> None:
        self.gym_env.close()


class MOView(View):
    """An MO-Gymnasium MuJoCo robot seen from the side, the camera following its first body; z as bars."""

    bar_title = "objective weights z"
    DISTANCE, AZIMUTH, ELEVATION = 3.0, 90.0, -15.0  # metres from the body, looking along +y

    def camera(self, physics, height: int, width: int):
        from dm_control.mujoco import engine

        camera = engine.MovableCamera(physics, height, width, scene_callback=self.decorate)
        self.before_frame(physics, camera)
        return camera

    def before_frame(self, physics, camera) -> None:
        camera.set_pose(physics.data.xpos[1], self.DISTANCE, self.AZIMUTH, self.ELEVATION)

    def describe(self, task: np.ndarray) -> str:
        return "w = " + " ".join(f"{w:.2f}" for w in task)


class MOGymnasium:
    """Any MO-Gymnasium environment (Box observations, continuous actions, vector reward), linear in simplex weights.

    Attributes:
        params, horizon (T), feature_dim (J), objective_names, description (the environment's spaces),
        observation_layout, control_dt.
    """

    Tasks = SimplexTasks
    Reward = LinearVectorReward
    features_name = FEATURES
    view = MOView

    class Params(Params):
        id: str = Field(default=DEFAULT_ID, min_length=1, description="the MO-Gymnasium environment id")
        kwargs: dict[str, Any] = Field(
            default_factory=dict, description="the environment's own keyword arguments (mo_gymnasium.make)"
        )
        horizon: int | None = Field(
            default=None, ge=1, description="episode length (default: the environment's registered time limit)"
        )
        time_limit: TimeLimit = Field(
            default="truncation",
            description="terminal: the step at the horizon is a true terminal (no bootstrap); "
            "truncation: the time limit cuts the task (bootstrap), as MO-Gymnasium's own time limit",
        )
        objectives: list[str] | None = Field(
            default=None, min_length=1, description="the reward vector's names (default: as the environment documents)"
        )

        @field_validator("kwargs")
        @classmethod
        def _no_time_limit(cls, value: dict[str, Any]) -> dict[str, Any]:
            for key in ("max_episode_steps", "render_mode", "disable_env_checker"):
                if key in value:
                    raise ValueError(f"{key} is not the environment's to set here (env.horizon sets the time limit)")
            return value

    def __init__(self, params: MOGymnasium.Params | None = None):
        self.params = params or self.Params()
        env_id = self.params.id
        self.description = describe(env_id, self.params.kwargs)
        horizon = self.params.horizon or self.description.max_episode_steps
        if horizon is None:
            raise ValueError(f"{env_id} registers no time limit: give env.horizon")
        self.horizon: int = horizon
        self.feature_dim = self.description.reward_dim
        self.objective_names = self.names(self.params, self.description)
        self.observation_layout = f"MO-Gymnasium {env_id}'s observation ({self.description.obs_dim}), flattened"
        self.control_dt = self.description.dt if self.description.dt is not None else 1.0 / 30.0

    @staticmethod
    def names(params: MOGymnasium.Params, description: Description) -> tuple[str, ...]:
        """The objectives' names: ``params.objectives`` (checked against J), else the documented ones."""
        if params.objectives is None:
            return documented_names(params.id, description.reward_dim)
        if len(params.objectives) != description.reward_dim:
            raise ValueError(
                f"env.objectives names {len(params.objectives)} objectives; {params.id}'s reward vector "
                f"has {description.reward_dim}"
            )
        return tuple(params.objectives)

    @classmethod
    def own_params(cls, params: MOGymnasium.Params) -> dict[str, dict[str, Any]]:
        """The objectives' names for its task distribution and reward family, and the declared reference
        point for its reward family (None where there is none: the spec must then give one)."""
        description = describe(params.id, params.kwargs)
        names = list(cls.names(params, description))
        point = reference_point(params.id, description)
        return {
            "tasks": {"objectives": names},
            "reward": {"objectives": names, "reference_point": None if point is None else list(point)},
        }

    @classmethod
    def family_label(cls, params: MOGymnasium.Params) -> str:
        """The environment id: studies and reports group runs by MO-Gymnasium environment."""
        return params.id

    def make_env(self, reward: RewardFamily | None, seed: int) -> MOGymnasiumEnvironment:
        """A new environment whose reset seeds are drawn from ``seed``; set z via ``env.task.set_task``.
        With ``reward`` None its steps' rewards are 0: the caller scores the recorded features."""
        gym_env = make_gym_env(self.params.id, self.params.kwargs, max_episode_steps=self.horizon)
        task = VectorRewardTask(reward, self.horizon, self.params.time_limit, seed)
        return MOGymnasiumEnvironment(self.params.id, gym_env, task, self.description)
