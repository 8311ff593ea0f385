"""Run specs: the pydantic models a YAML spec is validated against, and their loading.

Validation runs in two steps: the RunSpec's shape, then each component's own ``Params`` model,
chosen by its ``kind``. Every error names its dotted path in the YAML file.
"""

from __future__ import annotations

import math
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
    warmup_steps: int = Field(default=1000, ge=0, description="env steps of uniform random actions before training")
    checkpoint_every: int = Field(default=1, ge=1, description="epochs between checkpoints")


class EvalSpec(Params):
    """Evaluation of the deterministic policy after every ``every`` epochs."""

    episodes: int = Field(default=10, ge=1, description="episodes on fresh task draws (families without a fixed eval set)")
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


class RunSpec(BaseModel):
    """A whole training run."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str | None = None
    seed: int = Field(default=0, ge=0)
    seeds: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None, min_length=1, description="train one member per seed in lockstep in one process "
        "(a population); replaces seed")
    plugins: list[str] = Field(default_factory=list)
    env: ComponentSpec
    reward: ComponentSpec | None = Field(default=None, description="defaults to the env's own reward family")
    relabeler: ComponentSpec = Field(default_factory=lambda: ComponentSpec(kind="none"))
    agent: ComponentSpec = Field(default_factory=lambda: ComponentSpec(kind="sac"))
    buffer: ComponentSpec = Field(default_factory=lambda: ComponentSpec(kind="replay"))
    train: TrainSpec
    eval: EvalSpec = Field(default_factory=EvalSpec)
    logging: LoggingSpec = Field(default_factory=LoggingSpec)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"seeds must be distinct (got {value})")
        return value

    @field_validator("env", "reward", "relabeler", "agent", "buffer", mode="before")
    @classmethod
    def _kind_shorthand(cls, value: Any) -> Any:
        """Allow ``relabeler: air`` as shorthand for ``relabeler: {kind: air}``."""
        return {"kind": value} if isinstance(value, str) else value


COMPONENT_FIELDS = ("env", "reward", "relabeler", "agent", "buffer")


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


def validate(raw: Any, base_dir: str | Path | None = None) -> "ResolvedSpec":
    """Validate a spec given as plain data (the parsed YAML); raises SpecError.

    ``base_dir`` (the spec file's folder) is where ``plugins`` modules are looked for besides sys.path.
    """
    if not isinstance(raw, dict):
        raise SpecError(f"<spec>: expected a mapping of fields, got {type(raw).__name__}")
    bad = _find_nonfinite(raw, "")
    if bad:
        raise SpecError(f"{bad}: must be a finite number")
    try:
        run = RunSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_errors(exc)) from None
    try:
        import_plugins(run.plugins, None if base_dir is None else str(Path(base_dir).resolve()))
    except RegistryError as exc:
        raise SpecError(str(exc)) from None
    if run.reward is None:  # the env's own reward family, with its default parameters
        try:
            env_cls = REGISTRY.get("env", run.env.kind)
        except RegistryError as exc:
            raise SpecError(f"env.kind: {exc}") from None
        run.reward = ComponentSpec(kind=env_cls.default_reward)
    params = {name: component_params(name, getattr(run, name), name) for name in COMPONENT_FIELDS}
    resolved = ResolvedSpec(run, params)
    resolved.check_compatibility()
    return resolved


class ResolvedSpec:
    """A validated RunSpec with each component's parameters validated by its own model.

    Attributes:
        run: the RunSpec.
        params: component field name -> that component's validated Params.
    """

    def __init__(self, run: RunSpec, params: dict[str, Params]):
        self.run = run
        self.params = params

    def member(self, seed: int) -> "ResolvedSpec":
        """The single-seed spec of one population member."""
        data = self.to_dict()
        data.update(seed=seed, seeds=None)
        return validate(data)

    def component(self, field: str) -> Any:
        """The registered class chosen for ``field`` (env, reward, relabeler, agent, buffer)."""
        return REGISTRY.get(field, getattr(self.run, field).kind)

    def check_compatibility(self) -> None:
        """Cross-component checks (reward features vs env, HER needs a goal part)."""
        env_cls = self.component("env")
        checks = getattr(self.component("relabeler"), "check_spec", None)
        if checks is not None:
            message = checks(self)
            if message:
                raise SpecError(message)
        expected = getattr(self.component("reward"), "env_features", None)
        if expected is not None and expected != env_cls.features_name:
            raise SpecError(f"reward.kind: reward family {self.run.reward.kind!r} reads {expected!r} features, "
                            f"but env {self.run.env.kind!r} records {env_cls.features_name!r}")

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec, every default filled in, as plain data."""
        data = self.run.model_dump(mode="json", exclude=set(COMPONENT_FIELDS))
        for name in COMPONENT_FIELDS:
            spec = getattr(self.run, name)
            data[name] = {"kind": spec.kind, **self.params[name].model_dump(mode="json")}
        order = ["name", "seed", "seeds", "plugins", *COMPONENT_FIELDS, "train", "eval", "logging"]
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
                raise SpecError(f"--set {'.'.join(parts)}: {'.'.join(parts[:i + 1])} is not a mapping")
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


def load_spec(path: str | Path, overrides: list[str] = ()) -> ResolvedSpec:
    """Read, override and validate a run spec file."""
    raw = read_yaml(path)
    if isinstance(raw, dict):
        raw = apply_overrides(raw, list(overrides))
    return validate(raw, Path(path).parent)
