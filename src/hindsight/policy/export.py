"""A trained policy out of the library: (obs [N, O], z [N, Z]) -> deterministic action tanh(mu) [N, A] as
a TorchScript or ONNX file, with a JSON file beside it that describes its inputs and outputs (the
observation and task layout, the task fields and their ranges, the action bounds). Loading either file
needs no hindsight: ``torch.jit.load(path)(obs, z)``, or onnxruntime's
``InferenceSession(path).run(None, {"obs": obs, "z": z})[0]``. ONNX goes through torch.onnx's
torch.export-based exporter (with onnxscript); torch 2.13 deprecates TorchScript's writers (torch.jit.script
warns), but its files load as before.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs
import numpy as np
import torch

from hindsight.protocols import ExportablePolicy, Objectives, TaskFields

if TYPE_CHECKING:
    from hindsight.render.video import LoadedRun

Format = Literal["torchscript", "onnx"]
SUFFIX: dict[str, str] = {"torchscript": ".pt", "onnx": ".onnx"}
LOADING = {
    "torchscript": "torch.jit.load(path)(obs, z)",
    "onnx": 'onnxruntime.InferenceSession(path).run(None, {"obs": obs, "z": z})[0]',
}
EXAMPLE_BATCH = 3  # rows of the example inputs (the batch size stays free in both formats)


class ExportError(Exception):
    """The policy cannot be exported; the message is one line meant for the user."""


def layout_path(policy: Path) -> Path:
    """The JSON file beside an exported policy: ``policy.onnx`` -> ``policy.json``."""
    return policy.with_suffix(".json")


def export_policy(run: LoadedRun, fmt: Format, path: Path) -> Path:
    """Write the run's deterministic policy to ``path`` in ``fmt`` and its layout beside it; returns the
    layout's path. Raises ExportError for an agent without the capability or a missing exporter."""
    agent = run.agent
    if not isinstance(agent, ExportablePolicy):
        raise ExportError(f"agent {run.spec.run.agent.kind!r} cannot hand out its policy (no deterministic_policy)")
    module = agent.deterministic_policy(run.member)
    sizes = run.problem.sizes
    example = (torch.zeros(EXAMPLE_BATCH, sizes.obs_dim), torch.zeros(EXAMPLE_BATCH, sizes.task_dim))
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        with _quiet("torch.jit"):  # torch 2.13 deprecates TorchScript's writers; its files still load
            torch.jit.script(module).save(str(path))
    else:
        _export_onnx(module, example, path)
    layout = layout_path(path)
    layout.write_text(json.dumps(describe(run, fmt, path), indent=1) + "\n")
    return layout


def _export_onnx(module: torch.nn.Module, example: tuple[torch.Tensor, torch.Tensor], path: Path) -> None:
    """torch.onnx's exporter (torch.export-based), the batch dimension dynamic."""
    try:
        import onnxscript  # noqa: F401 - the exporter needs it
    except ImportError:
        raise ExportError("--format onnx needs onnx and onnxscript: pip install 'hindsight[export]'") from None
    batch = torch.export.Dim("batch")
    with _quiet("torch.onnx"):
        program = torch.onnx.export(
            module,
            example,
            input_names=["obs", "z"],
            output_names=["action"],
            dynamic_shapes=({0: batch}, {0: batch}),
            dynamo=True,
            verbose=False,
        )
        if program is None:
            raise ExportError("torch.onnx.export returned no program")
        program.save(str(path))


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence a library's warnings and log messages below ERROR (the ONNX exporter reports every step
    and warns about its own internals)."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def describe(run: LoadedRun, fmt: Format, path: Path) -> dict[str, Any]:
    """The layout written beside an exported policy, as plain data."""
    sizes, tasks, family = run.problem.sizes, run.problem.tasks, run.family
    spec = family.make_env(None, 0).action_spec()
    bounds = [np.broadcast_to(b, spec.shape).astype(float).tolist() for b in (spec.minimum, spec.maximum)]
    task: dict[str, Any] = {"size": sizes.task_dim}
    if isinstance(tasks, TaskFields):
        task["components"] = list(tasks.z_labels)
        task["fields"] = [attrs.asdict(field) for field in tasks.fields]
        task["encoding"] = inspect.getdoc(type(tasks).from_fields)
    layout: dict[str, Any] = {
        "policy": path.name,
        "format": fmt,
        "computes": "action = tanh(mu(obs, z)): the trained policy's deterministic action",
        "load": LOADING[fmt],
        "inputs": {
            "obs": {"shape": ["N", sizes.obs_dim], "dtype": "float32"},
            "z": {"shape": ["N", sizes.task_dim], "dtype": "float32"},
        },
        "outputs": {"action": {"shape": ["N", sizes.action_dim], "dtype": "float32"}},
        "family": run.kind,
        "observation": {"size": sizes.obs_dim, "layout": getattr(family, "observation_layout", "")},
        "task": task,
        "action": {"size": sizes.action_dim, "low": bounds[0], "high": bounds[1]},
        "run": {
            "checkpoint": str(run.checkpoint),
            "seed": run.seed,
            "epoch": run.state.get("epoch"),
            "env_steps": run.state.get("env_steps"),
        },
    }
    if isinstance(run.reward, Objectives):
        layout["objectives"] = list(run.reward.objective_names)
    return layout
