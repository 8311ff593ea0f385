"""One seed per spec; every stochastic component draws from its own stream derived from it."""

from __future__ import annotations

import hashlib

import torch


def derive_seed(root: int, *names: object) -> int:
    """A 63-bit seed for the stream ``names`` under ``root`` (stable across runs and machines)."""
    text = "/".join([str(root), *map(str, names)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def make_generator(root: int, *names: object, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded by ``derive_seed(root, *names)``."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(root, *names))
    return generator
