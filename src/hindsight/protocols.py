"""The contract: everything the engine calls on a component, with tensor shapes.

Shapes: P population members, B batch, K candidate tasks per item, T time steps, N transitions,
O observation size, A action size, F reward-feature size, Z task size, m relabeled tasks kept per trajectory.

The six kinds (``env``, ``tasks``, ``reward``, ``relabeler``, ``agent``, ``buffer``) each have a protocol
below. Optional capabilities are small protocols of their own (``GoalTasks``, ``TaskFields``,
``ClosedFormReturns``, ``Objectives``, ``ExportablePolicy``, ``OriginalStorage``, ``SpecCheck``,
``CostNotice``, ``MemoryEstimate``, ``OwnParams``, ``FamilyLabel``); a component that needs one of another
component says so in ``requires``.
``missing`` names what a component lacks; the spec checks every component with it once, when a spec is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

import attrs
import torch

from hindsight.batches import TrajectoryBatch, TransitionBatch

if TYPE_CHECKING:
    import dm_env

    from hindsight.specs import ResolvedSpec


@attrs.frozen
class Sizes:
    """The sizes every constructor is handed: derived once from the environment's dm_env specs and the
    task distribution, never written by hand.

    Attributes:
        obs_dim: O, the policy's observation (without z).
        action_dim: A.
        feature_dim: F, the reward features each step records.
        task_dim: Z.
        horizon: T, the episode length (an upper bound where terminals end episodes early).
    """

    obs_dim: int
    action_dim: int
    feature_dim: int
    task_dim: int
    horizon: int


@attrs.frozen
class GoalPart:
    """Which slice of a task vector is a goal, for HER.

    Attributes:
        task_slice: the goal's positions within z, e.g. ``slice(2, 4)``.
        from_features: maps reward features [..., F] to the goal reached there [..., len(slice)],
            expressed exactly as the task encodes it.
    """

    task_slice: slice
    from_features: Callable[[torch.Tensor], torch.Tensor]


@runtime_checkable
class EnvFamily(Protocol):
    """An environment family (kind ``env``): dm_control environments whose task vector is set per episode.

    Each step's observation dict carries ``observations`` [O] (the policy input, without z) and
    ``features`` [F] (the reward features of that step). ``Tasks`` and ``Reward`` are the family's own
    task distribution and reward family, used when a spec names none (registered under the env's name).
    """

    Tasks: ClassVar[type]
    Reward: ClassVar[type]
    features_name: ClassVar[str]
    horizon: int

    def make_env(self, reward: RewardFamily | None, seed: int) -> dm_env.Environment:
        """A new environment, its physics noise seeded by ``seed``; z is set with ``env.task.set_task``.
        With ``reward`` None the caller scores the recorded features itself (the step reward is 0)."""
        ...


@runtime_checkable
class OwnParams(Protocol):
    """Capability of an env family class whose own task distribution and reward family depend on its
    parameters (e.g. how many objectives its environment's reward vector has, and their names)."""

    @classmethod
    def own_params(cls, params: Any) -> dict[str, dict[str, Any]]:
        """The parameters its ``Tasks`` and ``Reward`` take from the family's validated ``params``, as
        ``{"tasks": {...}, "reward": {...}}``; a spec choosing them gets these where it sets none itself."""
        ...


@runtime_checkable
class FamilyLabel(Protocol):
    """Capability of an env family class whose parameters choose among environments: the name studies and
    reports group its runs under instead of its kind (mo_gymnasium: the MO-Gymnasium environment id)."""

    @classmethod
    def family_label(cls, params: Any) -> str:
        """The label of the family under its validated ``params``."""
        ...


@runtime_checkable
class TaskDistribution(Protocol):
    """The distribution T over task vectors z (kind ``tasks``)."""

    task_dim: int

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draw n tasks: [n, Z] float32, on the generator's device."""
        ...

    def eval_tasks(self) -> torch.Tensor | None:
        """A fixed evaluation set [E, Z], or None to evaluate on fresh draws."""
        ...


@runtime_checkable
class GoalTasks(Protocol):
    """Capability of a task distribution: part of z is a goal that features can reach (HER needs it)."""

    def goal_part(self) -> GoalPart:
        """The goal slice of z and how a reached goal is read from features."""
        ...


@attrs.frozen
class TaskField:
    """One named part of a task vector in the family's own terms (``hindsight eval --task``, export).

    Attributes:
        name: e.g. ``"goal"``.
        labels: one name per component, e.g. ``("x", "y")``; the field's size is their count.
        low, high: each component's range (inclusive), one number per label.
        unit_length: the values give a direction and are scaled to unit length (not all may be 0).
        unit_sum: the values are non-negative weights scaled to sum to 1 (not all may be 0).
        length: the range of the values' Euclidean length where the support is not a box, else None.
        doc: what the field means, with units.
    """

    name: str
    labels: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    unit_length: bool = False
    unit_sum: bool = False
    length: tuple[float, float] | None = None
    doc: str = ""

    @property
    def size(self) -> int:
        """The number of components."""
        return len(self.labels)


@runtime_checkable
class TaskFields(Protocol):
    """Capability of a task distribution: z read and written as named fields (weights, goal, obstacle)
    rather than its raw components. ``fields`` cover the whole task; ``z_labels`` name z's Z components."""

    fields: tuple[TaskField, ...]
    z_labels: tuple[str, ...]

    def from_fields(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """Tasks [N, Z] from every field's values [N, size] (in range; unit-length fields are scaled here)."""
        ...

    def to_fields(self, tasks: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every field's values [N, size] for tasks [N, Z]."""
        ...


@runtime_checkable
class RewardFamily(Protocol):
    """r(features, action | z) for any batch of candidate tasks, in one tensor operation (kind ``reward``).

    ``feature_dim`` and ``task_dim`` are what it reads; a spec pairing it with an env or task distribution
    of other sizes is refused. ``env_features`` (optional, None) names the feature layout it reads.
    """

    feature_dim: int
    task_dim: int

    def reward(self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """Rewards of every step under every candidate task.

        Args:
            features: [B, T, F] reward features.
            actions: [B, T, A] actions.
            tasks: [B, K, Z] candidate tasks for each of the B items.
        Returns:
            [B, K, T] rewards.
        """
        ...


@runtime_checkable
class ClosedFormReturns(Protocol):
    """Capability of a reward family: weighted returns without the [B, K, T] reward tensor."""

    def weighted_returns(
        self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """[B, K] sums over t of weights [B, T] times the rewards under tasks [K, Z] (features [B, T, F],
        actions [B, T, A]); discounted returns when the weights are gamma^t on valid steps."""
        ...


@runtime_checkable
class Objectives(Protocol):
    """Capability of a reward family that is a weighted sum of J objectives:
    r(f, a | z) = sum_j w_j(z) o_j(f, a | z). Each evaluation then scores every objective's return and a
    front of objective returns over weight vectors spread over the non-negative weights.

    Attributes:
        objective_names: [J] the objectives' names.
        reference_point: [J] per-step lower bounds of the objectives (each family documents where its
            numbers come from); the front's hypervolume is measured from the horizon times these.
        front_weights: W, the weight vectors each evaluation's front scores.
        front_situations: S, the draws of the rest of the task (goal, obstacle) each weight vector is
            scored under (1 where the weights are the whole task).
    """

    objective_names: tuple[str, ...]
    reference_point: tuple[float, ...]
    front_weights: int
    front_situations: int

    def objectives(self, features: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor) -> torch.Tensor:
        """Per-step objective values [B, T, J] for features [B, T, F], actions [B, T, A], tasks [B, Z]."""
        ...

    def weights(self, tasks: torch.Tensor) -> torch.Tensor:
        """The objective weights [N, J] of tasks [N, Z]."""
        ...

    def with_weights(self, tasks: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Tasks [N, Z] whose weights point along ``weights`` [N, J] (non-negative, not all 0; scaled as
        the tasks encode them), the rest of each of ``tasks`` [N, Z] kept."""
        ...


@runtime_checkable
class Agent(Protocol):
    """A task-conditioned policy with value estimates for P >= 1 members (kind ``agent``; SAC is the first).

    Constructed as ``Agent(params, sizes, runtime, generators)``: one member per initialisation generator.
    Members learn independently; the engine acts and updates all of them in one call.
    """

    members: int
    gamma: float
    batch_size: int
    device: torch.device

    def act(
        self,
        obs: torch.Tensor,
        tasks: torch.Tensor,
        deterministic: bool,
        generator: torch.Generator | None = None,
        member: int = 0,
    ) -> torch.Tensor:
        """One member's actions [B, A] in [-1, 1] for obs [B, O] under tasks [B, Z]."""
        ...

    def act_members(
        self, obs: torch.Tensor, tasks: torch.Tensor, generators: Sequence[torch.Generator | None]
    ) -> torch.Tensor:
        """Every member's sampled actions [P, B, A] for obs [P, B, O], tasks [P, B, Z]; member p's
        noise from ``generators[p]``."""
        ...

    def update_members(
        self, batch: TransitionBatch, generators: Sequence[torch.Generator | None]
    ) -> dict[str, torch.Tensor]:
        """One gradient step of every member on its own minibatch (fields [P, N, ...]); returns [P]
        tensors per metric, not synchronised to the host."""
        ...

    def value(self, obs: torch.Tensor, tasks: torch.Tensor, member: int = 0) -> torch.Tensor:
        """V(s, z) = min(Q1, Q2)(s, tanh(mu(s, z)), z) for obs [B, O] and tasks [B, K, Z]: [B, K]."""
        ...

    def q(self, obs: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor, member: int = 0) -> torch.Tensor:
        """min(Q1, Q2) for obs [N, O], actions [N, A], tasks [N, Z]: [N]."""
        ...

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor, tasks: torch.Tensor, member: int = 0) -> torch.Tensor:
        """log pi(a | s, z) for obs [N, O], actions [N, A] in (-1, 1), tasks [N, Z]: [N]."""
        ...

    def named_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """The learnable tensors by name (the divergence check reads them)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything learned, as tensors and plain data (weights_only-loadable)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``'s output."""
        ...


@runtime_checkable
class ExportablePolicy(Protocol):
    """Capability of an agent: a member's deterministic policy as a standalone module (``hindsight export``)."""

    def deterministic_policy(self, member: int = 0) -> torch.nn.Module:
        """A float32 CPU module mapping (obs [N, O], tasks [N, Z]) to the actions [N, A] that
        ``act(obs, tasks, deterministic=True, member=member)`` gives, holding copies of the weights."""
        ...


@attrs.define
class RelabelContext:
    """What a relabeler may consult, for one population member.

    Attributes:
        tasks: the task distribution (fresh candidates, goal part).
        reward: the reward family (scores any trajectory under any task).
        agent: the learning agent (value estimates for advantage, AIR and HIPI).
        generator: the relabeler's own random stream.
        member: which of the agent's members this experience belongs to.
    """

    tasks: TaskDistribution
    reward: RewardFamily
    agent: Agent
    generator: torch.Generator
    member: int = 0


@runtime_checkable
class Relabeler(Protocol):
    """Chooses other tasks for collected experience (kind ``relabeler``); constructed as
    ``Relabeler(params, sizes)``. ``requires`` (optional) maps a spec field to a capability protocol
    its component must have, e.g. ``{"tasks": GoalTasks}`` for HER."""

    def relabel(self, batch: TrajectoryBatch, ctx: RelabelContext) -> torch.Tensor:
        """Trajectory-time relabeling: tasks [B, m, Z] to store each trajectory under (m may be 0)."""
        ...

    def relabel_batch(self, batch: TransitionBatch, ctx: RelabelContext) -> TransitionBatch:
        """Sample-time relabeling of a minibatch (identity for trajectory-time relabelers)."""
        ...

    def diagnostics(self) -> dict[str, float]:
        """Figures gathered since the last call (e.g. relabel time), then reset."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The relabeler's state (caches, running figures)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``'s output."""
        ...


@runtime_checkable
class OriginalStorage(Protocol):
    """Capability of a trajectory-time relabeler: ``unless_chosen`` stores a trajectory under its own task
    only when that task is not among the relabeled ones (default, without it: always)."""

    @property
    def store_original(self) -> Literal["always", "unless_chosen"]: ...


@runtime_checkable
class Buffer(Protocol):
    """Replay storage of transitions, each under one task (kind ``buffer``); constructed as
    ``Buffer(params, sizes, device)``."""

    nbytes: int

    def add(self, batch: TrajectoryBatch, tasks: torch.Tensor, rewards: torch.Tensor) -> None:
        """Store every valid step of each trajectory once per task.

        Args:
            batch: the trajectories.
            tasks: [B, K, Z] the tasks to store each trajectory under (its original first).
            rewards: [B, K, T] the rewards under those tasks, from the reward family.
        """
        ...

    def sample(self, n: int, generator: torch.Generator) -> TransitionBatch:
        """n transitions drawn uniformly with replacement."""
        ...

    def recent(self, n: int) -> TransitionBatch:
        """The last min(n, len) transitions stored, oldest first."""
        ...

    def __len__(self) -> int: ...

    def state_dict(self) -> dict[str, Any]:
        """The stored transitions and write position."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``'s output."""
        ...


@runtime_checkable
class SpecCheck(Protocol):
    """Capability of any component class: a check of the whole spec, run when it is built."""

    @classmethod
    def check_spec(cls, spec: ResolvedSpec) -> str | None:
        """A one-line error message, or None when the spec suits the component."""
        ...


@runtime_checkable
class MemoryEstimate(Protocol):
    """Capability of an agent or buffer class: the memory its instance for a spec holds, known before it
    is built (``hindsight.machine`` refuses a spec whose estimate exceeds the machine)."""

    @classmethod
    def memory_bytes(cls, spec: ResolvedSpec, sizes: Sizes) -> int:
        """Bytes the component allocates and keeps for ``spec``, all members together, on the run's device."""
        ...


@runtime_checkable
class CostNotice(Protocol):
    """Capability of any component class: a warning, once when a run starts, that the spec's settings are
    known to be slow where it computes."""

    @classmethod
    def cost_notice(cls, spec: ResolvedSpec) -> str | None:
        """One line naming the cost and a cheaper option, or None."""
        ...


PROTOCOLS: dict[str, type] = {
    "env": EnvFamily,
    "tasks": TaskDistribution,
    "reward": RewardFamily,
    "relabeler": Relabeler,
    "agent": Agent,
    "buffer": Buffer,
}


def _members(protocol: type) -> tuple[list[str], list[str]]:
    """(methods, data attributes) a protocol declares."""
    methods = [name for name, value in vars(protocol).items() if callable(value) or isinstance(value, classmethod)]
    methods = [name for name in methods if not name.startswith("_") or name == "__len__"]
    data = [name for name in getattr(protocol, "__annotations__", {}) if not name.startswith("_")]
    return methods, data


def missing(component: Any, protocol: type) -> list[str]:
    """What ``component`` lacks of ``protocol``: its missing methods (``name()``) and, for an instance,
    its missing attributes (a class may set them in ``__init__``). Empty when it complies."""
    methods, data = _members(protocol)
    lacking = [f"{name}()" for name in methods if not callable(getattr(component, name, None))]
    if not inspect.isclass(component):
        lacking += [name for name in data if not hasattr(component, name)]
    return lacking
