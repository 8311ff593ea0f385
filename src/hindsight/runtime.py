"""A spec's ``runtime`` section applied to this process: torch threads, the malloc policy, a warning where
bfloat16 would be emulated. Process-wide host settings that pay for CPU updates of small networks."""

from __future__ import annotations

import ctypes
import ctypes.util
import warnings
from pathlib import Path
from typing import Any

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory in the heap instead of returning it to the OS.

    An update allocates and frees tensors of a few hundred KB many times; by default glibc trims the
    heap top (brk) or unmaps such blocks on free, so every step pays system calls and page faults to
    get them back (about 15% of a 256x256 SAC update's CPU time on a 2-core Xeon). Freed memory stays
    with the process: up to 1 GiB at the heap top, blocks below 32 MiB from the heap. Returns False
    where glibc's ``mallopt`` is unavailable (other C libraries, other systems), changing nothing.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    settings = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20))
    return all(mallopt(option, value) == 1 for option, value in settings)


def cpu_has_native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether this CPU multiplies bfloat16 natively (AMX or AVX-512 BF16 flags); None where unknown
    (no readable ``/proc/cpuinfo``, e.g. not Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def apply_runtime(runtime: Any) -> None:
    """Apply a ``RuntimeSpec`` once, before a run builds its agent: threads and the malloc policy on CPU,
    and a warning when bfloat16 products would be emulated."""
    import torch

    if torch.device(runtime.device).type != "cpu":
        return
    if runtime.threads is not None:
        torch.set_num_threads(runtime.threads)
    if runtime.keep_freed_memory:
        keep_freed_memory()
    if runtime.precision == "bfloat16" and cpu_has_native_bfloat16() is False:
        warnings.warn(
            "runtime.precision=bfloat16 on a CPU without native bfloat16 (no amx_bf16 or avx512_bf16 "
            "flag): its products are emulated and slower than float32",
            stacklevel=2,
        )
