"""Run specs: the pydantic models a YAML spec is validated against, and their loading.

Validation runs in two steps: the RunSpec's shape, then each component's own ``Params`` model,
chosen by its ``kind``. Every error names its dotted path in the YAML file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hindsight.registry import REGISTRY, RegistryError, import_plugins


class SpecError(Exception):
    """An invalid spec; ``str()`` is one line per problem, each naming its field path."""


class Params(BaseModel):
    """Base of every component's parameter model: unknown fields and NaN/inf are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class ComponentSpec(BaseModel):
    """A component chosen by ``kind`` plus that component's own parameters."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
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


class PluginSpec(Params):
    """A user module imported before components are looked up; ``path`` is the folder it was found in."""

    module: str = Field(min_length=1)
    path: str | None = Field(default=None, description="searched before sys.path; recorded when resolved")


class RunSpec(BaseModel):
    """A whole training run."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

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
    relabeler: ComponentSpec = Field(default_factory=lambda: ComponentSpec(kind="none"))
    agent: ComponentSpec = Field(default_factory=lambda: ComponentSpec(kind="sac"))
    buffer: ComponentSpec = Field(default_factory=lambda: ComponentSpec(kind="replay"))
    train: TrainSpec
    eval: EvalSpec = Field(default_factory=EvalSpec)
    logging: LoggingSpec = Field(default_factory=LoggingSpec)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)

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


def _format_errors(exc: ValidationError, prefix: str = "") -> str:
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        msg = err["msg"]
        if err["type"] not in ("missing", "extra_forbidden") and "input" in err:
            got = err["input"]
            if not isinstance(got, (dict, list)):
                msg += f" (got {got!r})"
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{path or '<spec>'}: {msg}")
    return "\n".join(lines)


def _find_nonfinite(value: Any, path: str) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, dict):
        for k, v in value.items():
            found = _find_nonfinite(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _find_nonfinite(v, f"{path}.{i}")
            if found:
                return found
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
    agent = raw.get("agent")
    if not isinstance(agent, dict) or not any(key in agent for key in LEGACY_AGENT_RUNTIME):
        return raw
    runtime = dict(raw.get("runtime") or {})
    runtime.update({key: agent[key] for key in LEGACY_AGENT_RUNTIME if key in agent})
    return {**raw, "agent": {k: v for k, v in agent.items() if k not in LEGACY_AGENT_RUNTIME}, "runtime": runtime}


def validate(raw: Any, base_dir: str | Path | None = None) -> ResolvedSpec:
    """Validate a spec given as plain data (the parsed YAML); raises SpecError.

    ``base_dir`` (the spec file's folder) is where ``plugins`` modules are looked for besides sys.path;
    the resolved spec records the folder each was found in.
    """
    if not isinstance(raw, dict):
        raise SpecError(f"<spec>: expected a mapping of fields, got {type(raw).__name__}")
    bad = _find_nonfinite(raw, "")
    if bad:
        raise SpecError(f"{bad}: must be a finite number")
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
        REGISTRY.get("env", run.env.kind)
    except RegistryError as exc:
        raise SpecError(f"env.kind: {exc}") from None
    for name in ("tasks", "reward"):  # the env's own, with default parameters
        if getattr(run, name) is None:
            setattr(run, name, ComponentSpec(kind=run.env.kind))
    params = {name: component_params(name, getattr(run, name), name) for name in COMPONENT_FIELDS}
    resolved = ResolvedSpec(run, params)
    resolved.check_components()
    return resolved


def identity(resolved: dict[str, Any]) -> dict[str, Any]:
    """What a run learns, from its resolved spec as plain data: without its name, runtime settings and the
    folders plugins were found in. Equal identities train equal runs; a run resumes under any other."""
    data = {k: v for k, v in resolved.items() if k not in ("name", "runtime")}
    data["plugins"] = [p["module"] if isinstance(p, dict) else p for p in resolved.get("plugins", [])]
    return data


def as_today(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved resolved spec validated again, so that fields added since it was written are filled in as
    they would be today; unchanged when it no longer validates (the caller then sees the difference)."""
    try:
        return validate(saved).to_dict()
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
        from hindsight.build import env_sizes

        env_cls, reward_cls = self.component("env"), self.component("reward")
        reward, tasks = self.run.reward, self.run.tasks
        assert reward is not None and tasks is not None  # validate() fills in the env's own
        expected = getattr(reward_cls, "env_features", None)
        if expected is not None and expected != env_cls.features_name:
            raise SpecError(
                f"reward.kind: reward family {reward.kind!r} reads {expected!r} features, "
                f"but env {self.run.env.kind!r} records {env_cls.features_name!r}"
            )
        task_dim = self.component("tasks").task_dim
        if reward_cls.task_dim != task_dim:
            raise SpecError(
                f"reward.kind: reward family {reward.kind!r} reads tasks of size {reward_cls.task_dim}, "
                f"but tasks {tasks.kind!r} draws tasks of size {task_dim}"
            )
        feature_dim = env_sizes(self).feature_dim
        if reward_cls.feature_dim != feature_dim:
            raise SpecError(
                f"reward.kind: reward family {reward.kind!r} reads {reward_cls.feature_dim} features, "
                f"but env {self.run.env.kind!r} records {feature_dim}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec, every default filled in, as plain data."""
        data = self.run.model_dump(mode="json", exclude=set(COMPONENT_FIELDS))
        for name in COMPONENT_FIELDS:
            spec = getattr(self.run, name)
            data[name] = {"kind": spec.kind, **self.params[name].model_dump(mode="json")}
        order = ["name", "seed", "seeds", "plugins", *COMPONENT_FIELDS, "train", "eval", "logging", "runtime"]
        return {k: data[k] for k in order}


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``dotted.path=value`` (value read as YAML) into (path parts, value)."""
    path, sep, value = text.partition("=")
    if not sep or not path.strip():
        raise SpecError(f"--set {text!r}: expected dotted.path=value")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise SpecError(f"--set {path}: cannot parse value {value!r}: {exc}") from None
    return path.strip().split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to the raw spec data (creating intermediate mappings)."""
    for text in overrides:
        parts, value = parse_override(text)
        node = raw
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if isinstance(child, str) and part in COMPONENT_FIELDS:
                child = {"kind": child}
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise SpecError(f"--set {'.'.join(parts)}: {'.'.join(parts[: i + 1])} is not a mapping")
            node[part] = child
            node = child
        node[parts[-1]] = value
    return raw


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; a missing file or a syntax error is a SpecError."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{path}: YAML syntax error{where}: {problem}") from None


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> ResolvedSpec:
    """Read, override and validate a run spec file."""
    raw = read_yaml(path)
    if isinstance(raw, dict):
        raw = apply_overrides(raw, list(overrides))
    return validate(raw, Path(path).parent)
