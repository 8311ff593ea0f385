"""Multi-objective metrics of a conditioned policy's front, in the terms of the MORL literature.

A front is W points [W, J]: the mean objective returns the policy reaches under each of W weight vectors
(every objective is maximised). From it: the hypervolume of the region it dominates above a reference
point (pymoo's indicator, on the non-dominated points) and its sparsity, the mean squared gap between
neighbouring non-dominated points along each objective (PGMORL, Xu et al. 2020, as morl-baselines
computes it). The expected utility is the mean scalarised return: each episode's return under its own
task's weights (morl-baselines' ``expected_utility`` takes the best point of a set of policies for each
weight vector instead; a conditioned policy has one point per weight vector).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

POOL_PER_WEIGHT = 4  # lattice points per chosen weight vector that ``spread_weights`` picks among


def simplex_lattice(dim: int, partitions: int) -> np.ndarray:
    """Every point [M, dim] of the simplex whose coordinates are multiples of 1 / partitions (Das and
    Dennis' lattice), M = C(partitions + dim - 1, dim - 1)."""
    points = []
    for bars in itertools.combinations(range(partitions + dim - 1), dim - 1):
        edges = (-1, *bars, partitions + dim - 1)
        points.append([edges[i + 1] - edges[i] - 1 for i in range(dim)])
    return np.asarray(points, dtype=np.float64) / partitions


def spread_weights(n: int, dim: int) -> np.ndarray:
    """n non-negative weight vectors [n, dim] spread over every direction of the positive orthant
    (deterministic): the dim pure objectives first, then each time the point of a simplex lattice whose
    direction lies farthest from those chosen. Each row sums to 1."""
    if n < 1 or dim < 1:
        raise ValueError(f"spread_weights needs n >= 1 and dim >= 1 (got n={n}, dim={dim})")
    if dim == 1:
        return np.ones((1, 1))
    partitions = 1
    while len(simplex_lattice(dim, partitions)) < POOL_PER_WEIGHT * n:
        partitions += 1
    pool = simplex_lattice(dim, partitions)
    directions = pool / np.linalg.norm(pool, axis=1, keepdims=True)
    corners = [int(np.flatnonzero(pool[:, j] == 1.0)[0]) for j in range(dim)]
    chosen = corners[:n]
    distance = np.min(np.linalg.norm(directions[:, None] - directions[chosen][None], axis=-1), axis=1)
    while len(chosen) < n:
        pick = int(np.argmax(distance))
        chosen.append(pick)
        distance = np.minimum(distance, np.linalg.norm(directions - directions[pick], axis=1))
    return pool[chosen]


def non_dominated(points: np.ndarray) -> np.ndarray:
    """[N] True for the points [N, J] no other point dominates (at least as good in every objective and
    better in one; maximisation). Equal points are all kept."""
    at_least = np.all(points[None, :, :] >= points[:, None, :], axis=-1)  # [i, k]: k at least as good as i
    better = np.any(points[None, :, :] > points[:, None, :], axis=-1)
    return np.logical_not(np.any(at_least & better, axis=1))


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """The volume dominated by points [N, J] and bounded below by ``reference`` [J] (maximisation; points
    not above the reference in every objective add nothing), by pymoo's indicator."""
    from pymoo.indicators.hv import HV

    above = points[(points > reference).all(1)]
    if above.shape[0] == 0:
        return 0.0
    return float(HV(ref_point=-np.asarray(reference, dtype=np.float64))(-above.astype(np.float64)))


def sparsity(points: np.ndarray) -> float:
    """Sum over objectives of the squared gaps between consecutive values of the non-dominated points
    [N, J], divided by (their count - 1); 0 for fewer than two. Lower is a denser front."""
    front = points[non_dominated(points)]
    if front.shape[0] < 2:
        return 0.0
    gaps = np.diff(np.sort(front, axis=0), axis=0)
    return float(np.square(gaps).sum() / (front.shape[0] - 1))


def front_metrics(
    weights: np.ndarray, points: np.ndarray, reference: np.ndarray, returns: np.ndarray, names: tuple[str, ...]
) -> dict[str, Any]:
    """The metrics row entries of one front.

    Args:
        weights: [W, J] the weight vectors as the tasks encode them.
        points: [W, J] the mean objective returns under each.
        reference: [J] the hypervolume's reference point.
        returns: [E] the scalarised return of every episode behind the front.
        names: the J objectives.
    Returns:
        ``eval/mo/expected_utility``, ``eval/mo/hypervolume``, ``eval/mo/sparsity`` and ``eval/mo/front``,
        a table {"columns": [w_<name>..., <name>...], "data": W rows} (W&B logs it as a wandb.Table).
    """
    columns = [f"w_{name}" for name in names] + list(names)
    return {
        "eval/mo/expected_utility": float(np.mean(returns)),
        "eval/mo/hypervolume": hypervolume(points, reference),
        "eval/mo/sparsity": sparsity(points),
        "eval/mo/front": {"columns": columns, "data": np.concatenate([weights.round(6), points], 1).tolist()},
    }
