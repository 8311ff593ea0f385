"""Run specs: the pydantic models a YAML spec is validated against, and their loading.

Validation runs in two steps: the RunSpec's shape, then each component's own ``Params`` model,
chosen by its ``kind``. Every error names its dotted path in the YAML file.
"""

from __future__ import annotations

import math
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hindsight.registry import ENV_DEFAULTS, REGISTRY, RegistryError, import_plugins

if TYPE_CHECKING:
    from hindsight.protocols import Sizes


class SpecError(Exception):
    """An invalid spec; ``str()`` is one line per problem, each naming its field path."""


class Params(BaseModel):
    """Base of every component's parameter model: unknown fields and NaN/inf are errors, and types are
    strict (``true`` is not an integer, ``"3"`` not a number; an integer is a valid float)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)


class ComponentSpec(BaseModel):
    """A component chosen by ``kind`` plus that component's own parameters."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)
    kind: str

    def params_dict(self) -> dict[str, Any]:
        """The parameters given beside ``kind``."""
        return dict(self.model_extra or {})


class TrainSpec(Params):
    """Algorithm 1's loop sizes."""

    epochs: int = Field(ge=1)
    loops_per_epoch: int = Field(default=5, ge=1)
    episodes_per_loop: int = Field(default=1, ge=1, description="episodes collected (in lockstep) per loop")
    updates_per_loop: int = Field(default=100, ge=0)
    warmup_steps: int = Field(default=1000, ge=0, description="env steps collected before training")
    warmup_actions: Literal["uniform", "policy"] = Field(
        default="uniform",
        description="uniform: random actions in [-1, 1]; policy: the untrained stochastic "
        "policy (the paper's reference code)",
    )
    warmup_relabel: Literal["episode", "batch"] = Field(
        default="episode",
        description="episode: relabel each warm-up batch of episodes as it is collected; "
        "batch: relabel the whole warm-up as one batch (the reference code: AIR ranks all warm-up paths together)",
    )
    checkpoint_every: int = Field(default=1, ge=1, description="epochs between checkpoints")


class EvalSpec(Params):
    """Evaluation of the deterministic policy after every ``every`` epochs."""

    episodes: int = Field(
        default=10, ge=1, description="episodes on fresh task draws (families without a fixed eval set)"
    )
    every: int = Field(default=1, ge=1)


class WandbSpec(Params):
    """The Weights & Biases sink."""

    mode: Literal["offline", "online", "disabled"] = "offline"
    project: str = "hindsight"
    group: str | None = None
    tags: list[str] = Field(default_factory=list)
    dir: str | None = Field(default=None, description="defaults to the run directory")


class LoggingSpec(Params):
    """Where metrics go besides metrics.jsonl (always written)."""

    wandb: WandbSpec = Field(default_factory=WandbSpec)
    progress: bool = True


class RuntimeSpec(Params):
    """Where and how fast a run computes; not part of what it learns (left out of its identity, so a run
    resumes on another device or thread count). Applied once per process by ``hindsight.runtime``."""

    device: str = Field(default="cpu", description="cpu, cuda or cuda:N")
    threads: int | None = Field(
        default=1,
        ge=1,
        le=1024,
        description="torch intra-op threads on CPU (process-wide; None keeps torch's "
        "setting). One by default: on a 2-core machine shared with other processes, 2 threads made "
        "updates 10-20x slower (OpenMP spin-waiting); with the machine to itself, 2 threads trained "
        "about 1.35x faster. A study sets each worker's share of the cores here",
    )
    precision: Literal["float32", "bfloat16"] = Field(
        default="float32",
        description="dtype of the products between hidden layers (the bulk of the "
        "arithmetic); bfloat16 keeps weights, biases, activations, gradients, the first and last layers and "
        "the losses float32. On CPUs with AMX and on GPUs, bfloat16 products are several times faster",
    )
    compile: bool = Field(
        default=False,
        description="torch.compile the critic and policy losses "
        "(forward and backward). Off by default: on a 2-core CPU it saved under 10% of CPU "
        "time and its first compile takes 30-110 s (later runs hit the cache)",
    )
    keep_freed_memory: bool = Field(
        default=True,
        description="on CPU: ask glibc to keep freed memory in the heap (process-wide, see "
        "hindsight.runtime); saved 10-25% of the CPU time of a 256x256 update on a 2-core Xeon",
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"cpu|cuda(:\d+)?", value):
            raise ValueError("expected cpu, cuda or cuda:N")
        return value


class PluginSpec(Params):
    """A user module imported before components are looked up; ``path`` is the folder it was found in."""

    module: str = Field(min_length=1, description="a dotted Python module name, e.g. my_rewards or pkg.rewards")
    path: str | None = Field(default=None, description="searched before sys.path; recorded when resolved")

    @field_validator("module")
    @classmethod
    def _module_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", value, flags=re.ASCII):
            raise ValueError("not a module name (a dotted Python name such as my_rewards)")
        return value


# the kind of a component the spec leaves out (tasks and reward: the env's own)
DEFAULT_KINDS = {"relabeler": "none", "agent": "sac", "buffer": "replay"}


class RunSpec(BaseModel):
    """A whole training run."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    name: str | None = None
    seed: int = Field(default=0, ge=0)
    seeds: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        min_length=1,
        description="train one member per seed in lockstep in one process (a population); replaces seed",
    )
    plugins: list[PluginSpec] = Field(default_factory=list)
    env: ComponentSpec
    tasks: ComponentSpec | None = Field(default=None, description="defaults to the env's own task distribution")
    reward: ComponentSpec | None = Field(default=None, description="defaults to the env's own reward family")
    relabeler: ComponentSpec = Field(default_factory=lambda: ComponentSpec(kind=DEFAULT_KINDS["relabeler"]))
    agent: ComponentSpec = Field(default_factory=lambda: ComponentSpec(kind=DEFAULT_KINDS["agent"]))
    buffer: ComponentSpec = Field(default_factory=lambda: ComponentSpec(kind=DEFAULT_KINDS["buffer"]))
    train: TrainSpec
    eval: EvalSpec = Field(default_factory=EvalSpec)
    logging: LoggingSpec = Field(default_factory=LoggingSpec)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)

    @model_validator(mode="before")
    @classmethod
    def _default_kinds(cls, data: Any) -> Any:
        """A component given as parameters without ``kind`` is of its default kind (tasks and reward:
        the env's), so that ``--set agent.hidden=[16]`` works on a spec that leaves the agent out."""
        if not isinstance(data, dict):
            return data
        env = data.get("env")
        env_kind = env.get("kind") if isinstance(env, dict) else env
        defaults = {**DEFAULT_KINDS, "tasks": env_kind, "reward": env_kind}
        filled = dict(data)
        for name, kind in defaults.items():
            value = data.get(name)
            if isinstance(value, dict) and "kind" not in value and isinstance(kind, str):
                filled[name] = {"kind": kind, **value}
        return filled

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"seeds must be distinct (got {value})")
        return value

    @field_validator("plugins", mode="before")
    @classmethod
    def _module_shorthand(cls, value: Any) -> Any:
        """Allow ``plugins: [my_module]`` as shorthand for ``[{module: my_module}]``."""
        if isinstance(value, list):
            return [{"module": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("env", "tasks", "reward", "relabeler", "agent", "buffer", mode="before")
    @classmethod
    def _kind_shorthand(cls, value: Any) -> Any:
        """Allow ``relabeler: air`` as shorthand for ``relabeler: {kind: air}``."""
        return {"kind": value} if isinstance(value, str) else value

    @property
    def member_seeds(self) -> list[int]:
        """The seed of each member: ``seeds`` for a population, else ``[seed]``."""
        return list(self.seeds) if self.seeds is not None else [self.seed]


COMPONENT_FIELDS = ("env", "tasks", "reward", "relabeler", "agent", "buffer")
# runtime settings from before the runtime section, moved there when an old spec is read
LEGACY_AGENT_RUNTIME = ("device", "threads", "precision", "compile", "keep_freed_memory")


MAX_ERROR_LINES = 8  # problems listed one per line; more are counted
MAX_NAMED_FIELDS = 5  # unknown fields named per mapping; more are counted
FLOAT32_MAX = 3.4028234663852886e38  # every float a component computes with is a float32


def _format_errors(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming its dotted path; a mapping's unknown fields on one line (the first
    few named, the rest counted), and at most MAX_ERROR_LINES lines."""
    lines: list[str | list[str]] = []  # a message, or the unknown fields of one mapping (its path first)
    unknown: dict[str, list[str]] = {}
    for err in exc.errors():
        parts = [prefix] * bool(prefix) + [_field_name(p) for p in err["loc"]]
        if err["type"] == "extra_forbidden":
            parent = ".".join(parts[:-1])
            if parent not in unknown:
                unknown[parent] = [parent]
                lines.append(unknown[parent])
            unknown[parent].append(parts[-1])
            continue
        msg = err["msg"]
        if err["type"] != "missing" and "input" in err and not isinstance(err["input"], (dict, list)):
            msg += f" (got {_short(err['input'])})"
        lines.append(f"{'.'.join(parts) or '<spec>'}: {msg}")
    text = [line if isinstance(line, str) else _unknown_fields(line[0], line[1:]) for line in lines]
    if len(text) > MAX_ERROR_LINES:
        text = [*text[: MAX_ERROR_LINES - 1], f"... and {len(text) - MAX_ERROR_LINES + 1} more problems"]
    return "\n".join(text)


def _field_name(key: Any) -> str:
    """A key as a path part: itself when it reads plainly, else its repr (an empty or odd key), clipped."""
    text = str(key)
    return _clip(text if re.fullmatch(r"[\w-]+", text) else repr(key))


def _unknown_fields(parent: str, names: list[str]) -> str:
    if len(names) == 1:
        return f"{parent + '.' if parent else ''}{names[0]}: unknown field"
    shown = ", ".join(names[:MAX_NAMED_FIELDS])
    more = f" and {len(names) - MAX_NAMED_FIELDS} more" if len(names) > MAX_NAMED_FIELDS else ""
    return f"{parent or '<spec>'}: unknown fields {shown}{more}"


def _bad_number(data: Any) -> str | None:
    """The first number in plain data that no component can compute with, as ``path: problem``: NaN or
    infinity, a float beyond float32, an integer beyond 64 bits."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float):
            if not math.isfinite(value):
                return f"{path or '<spec>'}: must be a finite number"
            if abs(value) > FLOAT32_MAX:
                return f"{path or '<spec>'}: {value!r} does not fit a float32 (at most 3.4e38 in size)"
        elif isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            return f"{path or '<spec>'}: {_short(value)} does not fit a 64-bit integer"
        elif isinstance(value, dict):
            stack.extend(
                (f"{path}.{_field_name(k)}" if path else _field_name(k), v) for k, v in reversed(value.items())
            )
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}", v) for i, v in reversed(list(enumerate(value))))
    return None


def component_params(kind: str, spec: ComponentSpec, path: str) -> Params:
    """Validate ``spec``'s parameters against the registered component's ``Params`` model."""
    try:
        component = REGISTRY.get(kind, spec.kind)
    except RegistryError as exc:
        raise SpecError(f"{path}.kind: {exc}") from None
    params_model = getattr(component, "Params", Params)
    try:
        return params_model.model_validate(spec.params_dict())
    except ValidationError as exc:
        raise SpecError(_format_errors(exc, path)) from None


def upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """A spec written before the ``runtime`` section, with its agent's runtime settings moved there."""
    agent, runtime_given = raw.get("agent"), raw.get("runtime")
    if not isinstance(agent, dict) or not any(key in agent for key in LEGACY_AGENT_RUNTIME):
        return raw
    if runtime_given is not None and not isinstance(runtime_given, dict):
        return raw  # validation names the runtime section's type
    runtime = dict(raw.get("runtime") or {})
    runtime.update({key: agent[key] for key in LEGACY_AGENT_RUNTIME if key in agent})
    return {**raw, "agent": {k: v for k, v in agent.items() if k not in LEGACY_AGENT_RUNTIME}, "runtime": runtime}


def validate(raw: Any, base_dir: str | Path | None = None, machine: bool = True) -> ResolvedSpec:
    """Validate a spec given as plain data (the parsed YAML); raises SpecError, whatever the data.

    ``base_dir`` (the spec file's folder) is where ``plugins`` modules are looked for besides sys.path;
    the resolved spec records the folder each was found in. With ``machine``, the spec must also fit this
    machine (``ResolvedSpec.check_machine``): what validates is what ``run`` can build here.
    """
    if not isinstance(raw, dict):
        raise SpecError(f"<spec>: expected a mapping of fields, got {type(raw).__name__}")
    bad = _bad_number(raw)
    if bad:
        raise SpecError(bad)
    try:
        run = RunSpec.model_validate(upgrade(raw))
    except ValidationError as exc:
        raise SpecError(_format_errors(exc)) from None
    try:
        found = import_plugins(
            [(p.module, p.path) for p in run.plugins], None if base_dir is None else str(Path(base_dir).resolve())
        )
    except RegistryError as exc:
        raise SpecError(str(exc)) from None
    run.plugins = [PluginSpec(module=p.module, path=where) for p, where in zip(run.plugins, found, strict=True)]
    try:
        env_cls = REGISTRY.get("env", run.env.kind)
    except RegistryError as exc:
        raise SpecError(f"env.kind: {exc}") from None
    params = {"env": component_params("env", run.env, "env")}
    for name in ("tasks", "reward"):  # the env's own by default, with the parameters it gives them
        chosen = getattr(run, name) or ComponentSpec(kind=run.env.kind)
        if _is_own(env_cls, name, chosen.kind):
            given = own_params(env_cls, params["env"], name, run.env.kind)
            chosen = ComponentSpec(kind=chosen.kind, **{**given, **chosen.params_dict()})
        setattr(run, name, chosen)
    params.update({name: component_params(name, getattr(run, name), name) for name in COMPONENT_FIELDS[1:]})
    resolved = ResolvedSpec(run, params)
    resolved.check_components()
    if machine:
        resolved.check_machine()
    return resolved


def _is_own(env_cls: Any, field: str, kind: str) -> bool:
    """Whether ``kind`` names the env family's own ``field`` component (tasks or reward)."""
    try:
        return REGISTRY.get(field, kind) is getattr(env_cls, ENV_DEFAULTS[field], None)
    except RegistryError:
        return False  # unknown: component_params names it


def own_params(env_cls: Any, env_params: Params, field: str, env_kind: str) -> dict[str, Any]:
    """The parameters an env family gives its own ``field`` component (the ``OwnParams`` capability; none
    for most families). A family that cannot say is a SpecError, as an env that cannot be built."""
    derive = getattr(env_cls, "own_params", None)
    if derive is None:
        return {}
    try:
        return dict(derive(env_params).get(field, {}))
    except Exception as exc:  # noqa: BLE001 - any failure to describe the env is the spec's problem
        raise SpecError(cannot_build("env", env_kind, exc)) from None


def cannot_build(field: str, kind: str, exc: BaseException) -> str:
    """The one-line error of a component that cannot be built from the spec's parameters."""
    message = (str(exc).strip().splitlines() or [""])[0]
    return f"{field}: {kind!r} cannot be built from these parameters: {type(exc).__name__}: {message}"


def identity(resolved: dict[str, Any]) -> dict[str, Any]:
    """What a run learns, from its resolved spec as plain data: without its name, runtime settings and the
    folders plugins were found in. Equal identities train equal runs; a run resumes under any other."""
    data = {k: v for k, v in resolved.items() if k not in ("name", "runtime")}
    plugins = resolved.get("plugins", [])
    if isinstance(plugins, list):
        data["plugins"] = [p.get("module") if isinstance(p, dict) else p for p in plugins]
    return data


def as_today(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved resolved spec validated again, so that fields added since it was written are filled in as
    they would be today; unchanged when it no longer validates (the caller then sees the difference).
    Whether it fits this machine does not matter here."""
    try:
        return validate(saved, machine=False).to_dict()
    except (SpecError, RegistryError):
        return saved


class ResolvedSpec:
    """A validated RunSpec with each component's parameters validated by its own model.

    Attributes:
        run: the RunSpec.
        params: component field name -> that component's validated Params.
    """

    def __init__(self, run: RunSpec, params: dict[str, Params]):
        self.run = run
        self.params = params

    def member(self, seed: int) -> ResolvedSpec:
        """The single-seed spec of one population member."""
        data = self.to_dict()
        data.update(seed=seed, seeds=None)
        return validate(data)

    def component(self, field: str) -> Any:
        """The registered class chosen for ``field`` (env, tasks, reward, relabeler, agent, buffer)."""
        return REGISTRY.get(field, getattr(self.run, field).kind)

    def check_components(self) -> None:
        """The checks of the contract, once per spec: every component has its protocol's methods and the
        capabilities others require of it, passes its own ``check_spec``, and the sizes fit together."""
        from hindsight.protocols import PROTOCOLS, missing

        for field in COMPONENT_FIELDS:
            lacking = missing(self.component(field), PROTOCOLS[field])
            if lacking:
                raise SpecError(
                    f"{field}.kind: {field} {getattr(self.run, field).kind!r} lacks "
                    f"{', '.join(lacking)} of the {PROTOCOLS[field].__name__} protocol"
                )
        for field in COMPONENT_FIELDS:
            component = self.component(field)
            for needed_field, capability in getattr(component, "requires", {}).items():
                lacking = missing(self.component(needed_field), capability)
                if lacking:
                    raise SpecError(
                        f"{field}.kind: {field} {getattr(self.run, field).kind!r} needs a "
                        f"{needed_field} with {', '.join(lacking)} ({capability.__name__}); "
                        f"{needed_field} {getattr(self.run, needed_field).kind!r} has none"
                    )
            check = getattr(component, "check_spec", None)
            message = check(self) if check is not None else None
            if message:
                raise SpecError(message)
        self.check_sizes()

    def check_sizes(self) -> None:
        """The reward family reads the features the env records and the task vectors the tasks draw."""
        env_cls, reward_cls = self.component("env"), self.component("reward")
        reward, tasks = self.run.reward, self.run.tasks
        assert reward is not None and tasks is not None  # validate() fills in the env's own
        expected = getattr(reward_cls, "env_features", None)
        if expected is not None and expected != env_cls.features_name:
            raise SpecError(
                f"reward.kind: reward family {reward.kind!r} reads {expected!r} features, "
                f"but env {self.run.env.kind!r} records {env_cls.features_name!r}"
            )
        reward_family = self.build("reward")  # sizes may depend on parameters: read from the instances
        task_dim = self.build("tasks").task_dim
        if reward_family.task_dim != task_dim:
            raise SpecError(
                f"reward.kind: reward family {reward.kind!r} reads tasks of size {reward_family.task_dim}, "
                f"but tasks {tasks.kind!r} draws tasks of size {task_dim}"
            )
        feature_dim = self.sizes().feature_dim
        if reward_family.feature_dim != feature_dim:
            raise SpecError(
                f"reward.kind: reward family {reward.kind!r} reads {reward_family.feature_dim} features, "
                f"but env {self.run.env.kind!r} records {feature_dim}"
            )

    def build(self, field: str) -> Any:
        """The spec's task distribution or reward family (``field``) built from its parameters; one that
        cannot be built is a SpecError."""
        try:
            return self.component(field)(self.params[field])
        except Exception as exc:  # noqa: BLE001 - any component's failure to build is the spec's problem
            raise SpecError(cannot_build(field, getattr(self.run, field).kind, exc)) from None

    def sizes(self) -> Sizes:
        """The sizes of the env family and task distribution (one environment built per env setting);
        an env that cannot be built with the spec's parameters is a SpecError."""
        from hindsight.build import env_sizes

        try:
            return env_sizes(self)
        except Exception as exc:  # noqa: BLE001 - any component's failure to build is the spec's problem
            raise SpecError(cannot_build("env", self.run.env.kind, exc)) from None

    def check_machine(self) -> None:
        """The spec fits this machine: its device exists and its memory estimate fits (``hindsight.machine``)."""
        from hindsight.machine import machine_problem

        problem = machine_problem(self)
        if problem:
            raise SpecError(problem)

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec, every default filled in, as plain data."""
        data = self.run.model_dump(mode="json", exclude=set(COMPONENT_FIELDS))
        for name in COMPONENT_FIELDS:
            spec = getattr(self.run, name)
            data[name] = {"kind": spec.kind, **self.params[name].model_dump(mode="json")}
        order = ["name", "seed", "seeds", "plugins", *COMPONENT_FIELDS, "train", "eval", "logging", "runtime"]
        return {k: data[k] for k in order}


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``dotted.path=value`` (value read as YAML, bounded as spec files are) into (path parts, value)."""
    path, sep, value = text.partition("=")
    parts = path.strip().split(".")
    if not sep or not path.strip():
        raise SpecError(f"--set {_short(text)}: expected dotted.path=value")
    if "" in parts or len(parts) > MAX_DEPTH:
        raise SpecError(f"--set {_short(path)}: expected a dotted path of at most {MAX_DEPTH} non-empty names")
    label = f"--set {'.'.join(_field_name(part) for part in parts)}"
    return parts, parse_yaml(value, label) if value.strip() else None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to the raw spec data (creating intermediate mappings)."""
    for text in overrides:
        parts, value = parse_override(text)
        node = raw
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if isinstance(child, str) and part in COMPONENT_FIELDS and node is raw:
                child = {"kind": child}
            if child is None:
                child = {}
            if not isinstance(child, dict):
                shown = [_field_name(p) for p in parts]
                raise SpecError(f"--set {'.'.join(shown)}: {'.'.join(shown[: i + 1])} is not a mapping")
            node[part] = child
            node = child
        node[parts[-1]] = value
    return raw


MAX_SPEC_BYTES = 1 << 20  # 1 MiB; the largest shipped spec is under 2 KB
MAX_DEPTH = 32  # levels of nested mappings and lists; a spec needs about 5
MAX_NODES = 10_000  # values, mappings and lists; a spec holds about 100 (parsing 10,000 takes ~20 ms)
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's C parser where it is installed


class _Refused(yaml.MarkedYAMLError):
    """YAML that parses but that a spec may not hold (an alias, deep nesting, a duplicate key)."""


class _SpecLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader, refusing a mapping that repeats a key and reading ``3e-4`` as a float (YAML 1.2;
    YAML 1.1 wants ``3.0e-4`` and reads ``3e-4`` as a string)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue  # a collection as key: the constructor refuses it as unhashable
                key = self.construct_object(key_node)
                if key in first:
                    raise _Refused(
                        problem=f"duplicate key {_short(key)}",
                        problem_mark=key_node.start_mark,
                        note=f"first at line {first[key].line + 1}",
                    )
                first[key] = key_node.start_mark
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _clip(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(value: Any) -> str:
    """``repr(value)`` cut to 60 characters, for messages."""
    return _clip(repr(value))


def _check_events(text: str) -> None:
    """Refuse aliases (their expansion is unbounded), nesting deeper than MAX_DEPTH (the composer recurses
    once per level) and more than MAX_NODES nodes, from the parser's events, before anything is built."""
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_SpecLoader):
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(problem="a YAML alias (*name); specs may not use aliases", problem_mark=event.start_mark)
        if isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            nodes += 1
            if nodes > MAX_NODES:
                raise _Refused(problem=f"more than {MAX_NODES:,} values", problem_mark=event.start_mark)
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused(problem=f"nesting deeper than {MAX_DEPTH} levels", problem_mark=event.start_mark)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def parse_yaml(text: str, label: str) -> Any:
    """Parse one YAML document bounded in time and memory: no aliases, at most MAX_DEPTH levels, no
    duplicate keys. Any problem is a one-line SpecError starting with ``label`` (the file or option)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SpecError(f"{label}: not UTF-8 text (at character {exc.start})") from None
    try:
        _check_events(text)
        return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a safe loader
    except _Refused as exc:
        mark, note = exc.problem_mark, f" ({exc.note})" if exc.note else ""
        raise SpecError(f"{label}: {exc.problem} at line {mark.line + 1}, column {mark.column + 1}{note}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        raise SpecError(f"{label}: YAML syntax error{where}: {problem}") from None
    except Exception as exc:  # noqa: BLE001 - whatever PyYAML's constructors raise on a malformed tagged scalar
        raise SpecError(f"{label}: a value YAML cannot read: {(str(exc).splitlines() or [''])[0]}") from None


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _file_kind(mode: int) -> str:
    """What a file that is not a regular file is, for messages."""
    return next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")


def _read_text(path: Path) -> str:
    """A small UTF-8 text file's content: anything else (missing, a directory, FIFO or device, over
    MAX_SPEC_BYTES, binary or not UTF-8) is a one-line SpecError naming the file."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise SpecError(f"{path}: a directory, not a spec file")
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(f"{path}: {_file_kind(info.st_mode)}, not a spec file")
        with path.open("rb") as file:  # the size as read: stat may not tell (/proc) or the file may grow
            data = file.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except (OSError, ValueError) as exc:
        raise SpecError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    if len(data) > MAX_SPEC_BYTES:
        size = max(info.st_size, len(data))
        raise SpecError(f"{path}: {size / 2**20:.1f} MiB or more, too large for a spec (at most 1 MiB)")
    nul = data.find(b"\0")
    if nul >= 0:
        raise SpecError(f"{path}: binary data (a NUL byte at offset {nul}), not a YAML spec")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML spec file (UTF-8 text, a regular file of at most MAX_SPEC_BYTES) with ``parse_yaml``;
    every problem is a one-line SpecError naming the file."""
    return parse_yaml(_read_text(Path(path)), str(path))


class _PlainDumper(yaml.SafeDumper):
    """The safe dumper writing each repeated object out in full: specs are read without aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Any) -> str:
    """Plain data as YAML that ``parse_yaml`` reads back (no anchors or aliases), keys in their order."""
    text: str = yaml.dump(data, Dumper=_PlainDumper, sort_keys=False)
    return text


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> ResolvedSpec:
    """Read, override and validate a run spec file."""
    raw = read_yaml(path)
    if isinstance(raw, dict):
        raw = apply_overrides(raw, list(overrides))
    return validate(raw, Path(path).parent)
