"""Checkpoint files: written atomically with their digests, verified and read without ever executing code.

A run directory (``RunDir``) keeps its latest checkpoint ``checkpoint.pt``, the one before it
``checkpoint.prev.pt``, and ``checkpoint.sha256``: the SHA-256 digest of each (``sha256sum -c`` reads it),
written atomically after the data. A checkpoint is *verified* when its digest is listed there (under either
name: a save interrupted between its renames leaves the previous file's digest listed under the latest's
name). A directory without digests is from before they were written: its checkpoints load unverified.
Loading refuses, in one line each, a file that is not listed, does not unpickle as plain tensors, is not a
hindsight checkpoint, or does not fit the spec's components (``check_fits``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hindsight.registry import first_line
from hindsight.rundir import RunDir, write_atomic
from hindsight.train import faults

# 2: {"format", "spec", "agent", "members": [each member's own state]} for every run, single or population.
# 1 (before): a single run's state at the top level, its agent included; a population's as format 2.
FORMAT = 2
FORMAT_1_MEMBER_KEYS = (
    "epoch",
    "env_steps",
    "updates",
    "metrics_rows",
    "progress",
    "buffer",
    "relabeler",
    "generators",
    "env_rngs",
)
MAX_DIGESTS_BYTES = 1 << 16  # a digest file holds two lines
# parts of a member's state whose keys and sizes follow what was collected (checked as they load), and
# tensors whose first dimension counts the transitions stored
FREE_PARTS = ("relabeler", "progress")
ROW_TENSORS = ("buffer.storage.",)


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message (one line) is meant for the user."""


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's content, in hex."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def read_digests(directory: RunDir) -> dict[str, str] | None:
    """File name -> SHA-256 from ``checkpoint.sha256``; None when there is none (a directory from before
    digests). A damaged digest file lists nothing."""
    path = directory.checkpoint_digests
    if not path.exists():
        return None
    try:
        with path.open("rb") as file:
            text = file.read(MAX_DIGESTS_BYTES).decode("utf-8", errors="replace")
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from None
    digests = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest) and name:
            digests[name] = digest
    return digests


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` as the run directory's ``checkpoint.pt`` (``path``): the data written and synced
    beside it, the old checkpoint kept as ``checkpoint.prev.pt``, the new one renamed into place, then both
    digests written to ``checkpoint.sha256``. Killed at any point, the directory holds a verified checkpoint
    (the new, the old, or the one before)."""
    directory = RunDir(path.parent)
    if path != directory.checkpoint:
        raise ValueError(f"{path}: a checkpoint is written as {directory.checkpoint.name} of its run directory")
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as file:
        torch.save(state, file)
        file.flush()
        os.fsync(file.fileno())
    faults.reached("checkpoint")
    digest = file_digest(tmp)
    previous = directory.previous_checkpoint
    listed = read_digests(directory) or {}
    old = listed.get(path.name if path.exists() else previous.name)  # the digest the previous file will have
    if path.exists():
        path.replace(previous)
    tmp.replace(path)
    lines = [f"{digest}  {path.name}\n"] + ([f"{old}  {previous.name}\n"] if old and previous.exists() else [])
    write_atomic(directory.checkpoint_digests, "".join(lines).encode())
    _sync_directory(directory.path)


def _sync_directory(path: Path) -> None:
    """Make the renames in a directory durable (where the system allows opening a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def verify(path: Path) -> bool:
    """Whether ``path`` is verified: True when its digest is in its directory's ``checkpoint.sha256``,
    False when the directory has no digests (written before them); CheckpointError when it is not listed."""
    digests = read_digests(RunDir(path.parent))
    if digests is None:
        return False
    try:
        digest = file_digest(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: refused: cannot read it ({exc.strerror or exc})") from None
    if digest not in digests.values():
        raise CheckpointError(
            f"{path}: refused: its SHA-256 is not in {RunDir(path.parent).checkpoint_digests.name} "
            "(damaged, changed, or written by a save that was cut short)"
        )
    return True


def load_safe(path: Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``: tensors and plain data only, never code."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint file" if not path.exists() else f"{path}: not a regular file")
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        return state
    except Exception as exc:  # noqa: BLE001 - whatever a damaged or foreign file makes the unpickler raise
        raise CheckpointError(f"{path}: refused: not a plain tensor checkpoint ({first_line(exc)})") from None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint in today's format (``FORMAT``): verified (``verify``) when its directory has digests,
    read with ``load_safe``, its layout checked; older formats are converted."""
    return open_checkpoint(path)[0]


def open_checkpoint(path: Path) -> tuple[dict[str, Any], bool]:
    """``read_checkpoint``'s state and whether it was verified (False: its directory has no digests)."""
    verified = verify(path)
    return _read(path), verified


def _read(path: Path) -> dict[str, Any]:
    state = load_safe(path)
    if not isinstance(state, dict) or not isinstance(state.get("spec"), dict) or "agent" not in state:
        raise CheckpointError(f"{path}: refused: not a hindsight checkpoint")
    version = state.get("format")
    if version not in (1, FORMAT):
        raise CheckpointError(f"{path}: refused: unknown checkpoint format {version!r}")
    members = state.get("members", [state] if version == 1 else None)
    if not isinstance(members, list) or not all(isinstance(member, dict) for member in members):
        raise CheckpointError(f"{path}: refused: its members are not a list of states")
    if version == FORMAT:
        return state
    spec = state["spec"]
    seeds = spec["seeds"] if isinstance(spec.get("seeds"), list) else [spec.get("seed", 0)] * len(members)
    converted = []
    for i, (member, seed) in enumerate(zip(members, seeds, strict=False)):
        lacking = [key for key in FORMAT_1_MEMBER_KEYS if key not in member]
        if lacking:
            raise CheckpointError(f"{path}: refused: member {i} lacks {', '.join(lacking)}")
        converted.append({"seed": member.get("seed", seed), **{key: member[key] for key in FORMAT_1_MEMBER_KEYS}})
    return {"format": FORMAT, "spec": spec, "agent": state["agent"], "members": converted}


def _kind(value: Any) -> str:
    return "a tensor" if isinstance(value, torch.Tensor) else type(value).__name__


def _mismatch(value: Any, reference: Any, where: str, within: str) -> str | None:
    """Where ``value`` departs from ``reference`` in structure (keys, lengths, types, tensor dtypes and
    shapes), or None. ``within`` is the path inside a member's state, for FREE_PARTS and ROW_TENSORS."""
    if within in FREE_PARTS or within.startswith(tuple(part + "." for part in FREE_PARTS)):
        return None if isinstance(value, dict) else f"{where} is {_kind(value)}, not a mapping"
    if isinstance(reference, torch.Tensor):
        if not isinstance(value, torch.Tensor):
            return f"{where} is {_kind(value)}, not a tensor"
        rows = within.startswith(ROW_TENSORS)
        if value.dtype != reference.dtype or value.dim() != reference.dim():
            return f"{where} is a {value.dtype} tensor of shape {list(value.shape)}, the spec's {list(reference.shape)}"
        if (value.shape[1:] if rows else value.shape) != (reference.shape[1:] if rows else reference.shape):
            what = "rows of " if rows else ""
            return f"{where} has {what}shape {list(value.shape)}, the spec's components {list(reference.shape)}"
        return None
    if isinstance(reference, dict):
        if not isinstance(value, dict):
            return f"{where} is {_kind(value)}, not a mapping"
        lacking, extra = set(reference) - set(value), set(value) - set(reference)
        if lacking or extra:
            names = ", ".join(sorted(map(str, lacking)))[:80] or ", ".join(sorted(map(str, extra)))[:80]
            return f"{where} {'lacks' if lacking else 'has unknown'} {names}"
        for key in reference:
            sub = f"{within}.{key}" if within else str(key)
            found = _mismatch(value[key], reference[key], f"{where}.{key}", sub)
            if found:
                return found
        return None
    if isinstance(reference, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(reference):
            size = f" of {len(value)}" if isinstance(value, (list, tuple)) else ""
            return f"{where} is {_kind(value)}{size}, the spec's components have {len(reference)} entries"
        for i, (item, ref) in enumerate(zip(value, reference, strict=True)):
            found = _mismatch(item, ref, f"{where}.{i}", f"{within}.{i}")
            if found:
                return found
        return None
    numeric = (int, float) if isinstance(reference, float) else type(reference)
    if reference is None or (isinstance(value, numeric) and isinstance(value, bool) == isinstance(reference, bool)):
        return None
    return f"{where} is {_kind(value)}, not {_kind(reference)}"


def check_fits(state: dict[str, Any], reference: dict[str, Any], path: Path) -> None:
    """CheckpointError unless ``state`` (as ``read_checkpoint`` returns it) has the structure of
    ``reference``, the state of freshly built components for the spec: the agent's tensors of the same
    shapes, one member state per member with the same keys, buffer columns, generator and environment
    states, and counters that can be true."""
    found = _mismatch(state["agent"], reference["agent"], "agent", "")
    if found is None and len(state["members"]) != len(reference["members"]):
        found = f"members: {len(state['members'])}, the spec has {len(reference['members'])}"
    for i, (member, ref) in enumerate(zip(state["members"], reference["members"], strict=False)):
        found = found or _mismatch(member, ref, f"members.{i}", "")
        if found is None:
            counters = [member[key] for key in ("epoch", "env_steps", "updates", "metrics_rows")]
            if min(counters) < 0 or member["metrics_rows"] > member["epoch"]:
                found = f"members.{i}: impossible counters (epoch, env steps, updates, rows: {counters})"
    if found:
        raise CheckpointError(f"{path}: refused: does not fit the spec's components: {found}")


def last_good(directory: RunDir) -> Path | None:
    """The newest of the directory's checkpoints whose digest is verified, or None (none is)."""
    for path in (directory.checkpoint, directory.previous_checkpoint):
        try:
            if path.is_file() and verify(path):
                return path
        except CheckpointError:
            continue
    return None


def rng_state(random: np.random.RandomState) -> dict[str, Any]:
    """A numpy RandomState's state as tensors and numbers (weights_only-loadable)."""
    state = random.get_state(legacy=True)
    assert isinstance(state, tuple)  # a RandomState (MT19937) gives the legacy tuple
    _, keys, pos, has_gauss, cached = state
    return {
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def set_rng_state(random: np.random.RandomState, state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` saved."""
    random.set_state(
        ("MT19937", state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"], state["cached"])
    )
