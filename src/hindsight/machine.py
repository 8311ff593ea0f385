"""Whether a resolved spec fits this machine: its device exists and its memory estimate fits.

The estimate adds up what a run allocates as it starts and keeps: each component declaring the
``MemoryEstimate`` capability (the agent's networks and optimiser state, the replay buffer), the episode
arrays the collectors fill (horizon x environments) and the environments themselves. The agent's and the
buffer's share is compared with the memory of their device (a GPU's own, or the host's), the rest with the
host's. An estimate is a lower bound: a spec that passes may still run short, one that fails cannot run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from hindsight.protocols import MemoryEstimate

if TYPE_CHECKING:
    from hindsight.specs import ResolvedSpec

ENV_BYTES = 1 << 20  # resident memory of one dm_control environment (measured 0.2-0.7 MiB for the families)
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def host_memory() -> int | None:
    """Bytes of memory this process may use: the physical memory, or a lower cgroup limit (a container);
    None where unknown."""
    total = None
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        pass
    for limit_file in CGROUP_LIMITS:
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = int(text) if total is None else min(total, int(text))
    return total


def device_problem(device: str) -> str | None:
    """Why ``device`` (cpu, cuda or cuda:N) does not exist on this machine, or None."""
    if device == "cpu":
        return None
    import torch

    index = int(device.partition(":")[2] or 0)
    if not torch.cuda.is_available():
        built = "" if torch.backends.cuda.is_built() else " (this torch is built without CUDA)"
        return f"runtime.device: {device!r}, but this machine has no CUDA device{built}"
    count = torch.cuda.device_count()
    if index >= count:
        return f"runtime.device: {device!r}, but this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
    return None


def device_memory(device: str) -> int | None:
    """Bytes of memory of ``device`` (an existing one); None where unknown."""
    if device == "cpu":
        return host_memory()
    import torch

    return int(torch.cuda.get_device_properties(int(device.partition(":")[2] or 0)).total_memory)


def estimate(spec: ResolvedSpec) -> dict[str, int]:
    """Bytes a run of ``spec`` holds, by part: ``agent`` and ``buffer`` (from components with the
    ``MemoryEstimate`` capability, on the run's device), ``episodes`` (the collectors' arrays [P, B, T + 1, ...])
    and ``environments`` (one per episode collected or evaluated at once), on the host."""
    sizes = spec.sizes()
    parts: dict[str, int] = {}
    for field in ("agent", "buffer"):
        component = spec.component(field)
        parts[field] = component.memory_bytes(spec, sizes) if isinstance(component, MemoryEstimate) else 0
    members = len(spec.run.member_seeds)
    envs = members * (spec.run.train.episodes_per_loop + spec.run.eval.episodes)
    step_floats = sizes.obs_dim + sizes.action_dim + sizes.feature_dim + 1  # observation, action, features, reward
    parts["episodes"] = 2 * 4 * envs * (sizes.horizon + 1) * step_floats  # the arrays and the batch made of them
    parts["environments"] = envs * ENV_BYTES
    return parts


def _size(count: int) -> str:
    """A byte count for people: 1.5 GiB."""
    value, unit = float(count), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024 or unit == "EiB":
            break
        value /= 1024
    return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"


def _blame(spec: ResolvedSpec, part: str) -> str:
    """The spec field a part's size mostly comes from, named first in the message."""
    train, evaluation = spec.run.train, spec.run.eval
    count = "eval.episodes" if evaluation.episodes >= train.episodes_per_loop else "train.episodes_per_loop"
    if part == "episodes" and spec.sizes().horizon > max(evaluation.episodes, train.episodes_per_loop):
        return "env.horizon"
    return {"agent": "agent", "buffer": "buffer"}.get(part, count)


def machine_problem(spec: ResolvedSpec) -> str | None:
    """A one-line reason why ``spec`` cannot run on this machine (a missing device, or a memory estimate
    beyond the device's or the host's memory, with the figures), or None."""
    device = spec.run.runtime.device
    problem = device_problem(device)
    if problem:
        return problem
    parts = estimate(spec)
    on_device = {"agent", "buffer"} if device != "cpu" else set(parts)
    checks = [(on_device, device_memory(device), device)]
    if device != "cpu":
        checks.append(({"episodes", "environments"}, host_memory(), "host"))
    for names, available, where in checks:
        need = sum(parts[name] for name in names)
        if available is not None and need > available:
            largest = max(names, key=lambda name: parts[name])
            detail = ", ".join(f"{name} {_size(parts[name])}" for name in sorted(names, key=lambda n: -parts[n]))
            return (
                f"{_blame(spec, largest)}: the run needs about {_size(need)} of {where} memory ({detail}), "
                f"more than the {_size(available)} this machine has"
            )
    return None
