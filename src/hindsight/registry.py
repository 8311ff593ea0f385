"""The component registry: built-ins from registry.yaml, decorators, entry points and spec plugins.

Names are looked up per kind. Built-ins are imported only when used, so listing is cheap.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import yaml

from hindsight.resources import resource_path

KINDS = ("env", "tasks", "reward", "relabeler", "agent", "buffer")
# an env family's own task distribution and reward family, found under the env's name unless registered
ENV_DEFAULTS = {"tasks": "Tasks", "reward": "Reward"}
ENTRY_POINT_GROUP = "hindsight.components"


class RegistryError(Exception):
    """A registration conflict or a failed lookup; the message is meant for the user."""


@attrs.define
class Entry:
    """One registered component.

    Attributes:
        kind: one of KINDS.
        name: the name specs use after ``kind:``.
        target: ``"module:attr"`` not yet imported, or the object itself.
        summary: one line for ``hindsight list``.
        source: where the registration came from, for error messages.
    """

    kind: str
    name: str
    target: str | Any
    summary: str
    source: str

    def load(self) -> Any:
        """The registered object, importing its module on first use."""
        if isinstance(self.target, str):
            module_name, _, attr = self.target.partition(":")
            try:
                obj = importlib.import_module(module_name)
                for part in attr.split("."):
                    obj = getattr(obj, part)
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever a third-party module raises
                raise RegistryError(
                    f"{self.kind} {self.name!r} from {self.source}: cannot load {self.target!r}: {first_line(exc)}"
                ) from exc
            self.target = obj
        return self.target


def first_line(exc: BaseException) -> str:
    """An exception in one line: its type (unless an ImportError's own message says enough) and the first
    line of its message."""
    lines = str(exc).strip().splitlines()
    message = lines[0] if lines else ""
    if isinstance(exc, ImportError) and message:
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _summary_of(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


class Registry:
    """All registered components, keyed by (kind, name)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Entry] = {}
        self._loaded = False

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        path = resource_path("registry.yaml")
        table = yaml.safe_load(path.read_text()) or {}
        for kind, items in table.items():
            for name, item in (items or {}).items():
                self._add(Entry(kind, name, item["target"], item.get("summary", ""), "registry.yaml"))
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            kind, sep, name = ep.name.partition(".")
            dist = ep.dist.name if ep.dist is not None else "?"
            if not sep:
                raise RegistryError(
                    f"entry point {ep.name!r} of package {dist!r} in group {ENTRY_POINT_GROUP!r} "
                    "must be named KIND.NAME, e.g. reward.my_reward"
                )
            self._add(Entry(kind, name, ep.value, "", f"entry point {ep.name!r} of package {dist!r}"))

    def _add(self, entry: Entry) -> None:
        if entry.kind not in KINDS:
            raise RegistryError(f"{entry.source}: unknown component kind {entry.kind!r} (kinds: {', '.join(KINDS)})")
        key = (entry.kind, entry.name)
        if key in self._entries:
            old = self._entries[key]
            raise RegistryError(
                f"duplicate {entry.kind} {entry.name!r}: registered by {old.source} and by {entry.source}"
            )
        self._entries[key] = entry

    def register(self, kind: str, name: str, obj: Any, summary: str | None = None) -> None:
        """Register ``obj`` (a component class) under ``kind``/``name``."""
        self._ensure_loaded()
        source = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"
        self._add(Entry(kind, name, obj, summary if summary is not None else _summary_of(obj), source))

    def get(self, kind: str, name: str) -> Any:
        """The component registered as ``kind``/``name``; unknown names suggest close matches."""
        self._ensure_loaded()
        if kind not in KINDS:
            raise RegistryError(f"unknown component kind {kind!r} (kinds: {', '.join(KINDS)})")
        entry = self._entries.get((kind, name))
        if entry is None and kind in ENV_DEFAULTS and ("env", name) in self._entries:
            return getattr(self._entries[("env", name)].load(), ENV_DEFAULTS[kind])
        if entry is None:
            names = self.names(kind)
            close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise RegistryError(f"unknown {kind} {name!r}{hint} (registered: {', '.join(names) or 'none'})")
        return entry.load()

    def names(self, kind: str) -> list[str]:
        """Registered names of one kind, sorted."""
        self._ensure_loaded()
        return sorted(n for k, n in self._entries if k == kind)

    def entries(self, kind: str | None = None) -> list[Entry]:
        """Registered entries, optionally of one kind, sorted by kind then name."""
        self._ensure_loaded()
        return sorted(
            (e for e in self._entries.values() if kind is None or e.kind == kind),
            key=lambda e: (KINDS.index(e.kind), e.name),
        )

    def summary(self, entry: Entry) -> str:
        """The entry's summary; for entry points, read from the object's docstring."""
        if entry.summary:
            return entry.summary
        try:
            return _summary_of(entry.load())
        except RegistryError as exc:
            return f"(cannot load: {exc})"


REGISTRY = Registry()


def register(kind: str, name: str, summary: str | None = None) -> Callable[[Any], Any]:
    """Class decorator registering a component, e.g. ``@register("reward", "my_reward")``.

    The summary defaults to the first line of the docstring. A name already taken is an error
    naming both sources.
    """

    def decorate(obj: Any) -> Any:
        REGISTRY.register(kind, name, obj, summary)
        return obj

    return decorate


def import_plugins(modules: list[tuple[str, str | None]], search_dir: str | None = None) -> list[str | None]:
    """Import user modules named in a spec's ``plugins:`` so their decorators run; returns the folder
    each was found in (None for a built-in module without a file).

    Each module's recorded folder and ``search_dir`` (the spec file's folder) are searched too, after
    ``sys.path``. An error names the plugin's position and its cause in one line.
    """
    found: list[str | None] = []
    for i, (module, path) in enumerate(modules):
        for folder in (path, search_dir):
            if folder is not None and folder not in sys.path:
                sys.path.append(folder)
        try:
            imported = importlib.import_module(module)
        except ImportError as exc:
            raise RegistryError(f"plugins.{i}: cannot import {module!r}: {first_line(exc)}") from exc
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plugin failing at import is the user's, in one line
            raise RegistryError(f"plugins.{i}: importing {module!r} raised {first_line(exc)}") from exc
        file = getattr(imported, "__file__", None)
        if file is None:
            found.append(None)
            continue
        top = Path(file).resolve().parent
        for _ in range(module.count(".") + (Path(file).name == "__init__.py")):
            top = top.parent
        found.append(str(top))
    return found
