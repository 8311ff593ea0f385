"""Fault injection for crash tests: ``HINDSIGHT_KILL_AT=POINT:N`` SIGKILLs this process the N-th time
the code reaches POINT (``collect``, ``update`` or ``checkpoint``). Unset, it costs one comparison."""

from __future__ import annotations

import os
import signal

_target = os.environ.get("HINDSIGHT_KILL_AT", "")
_point, _, _count = _target.partition(":")
_remaining = int(_count) if _count.isdigit() else 0


def reached(point: str) -> None:
    """Mark one pass through ``point``; dies with SIGKILL when the configured pass comes."""
    global _remaining
    if _remaining and point == _point:
        _remaining -= 1
        if _remaining == 0:
            os.kill(os.getpid(), signal.SIGKILL)
