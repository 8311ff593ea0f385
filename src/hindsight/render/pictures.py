"""Matplotlib pictures: top-down trajectories of the point families (the paper's Figure 4) and the
relabeling picture (each trajectory with its original task and the tasks AIR, advantage and HER pick).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hindsight.batches import TrajectoryBatch, discounted_returns
from hindsight.build import build_buffer, build_relabeler
from hindsight.protocols import GoalTasks, RelabelContext, Relabeler
from hindsight.relabel.advantage import AdvantageRelabeling
from hindsight.relabel.air import AIR
from hindsight.relabel.her import HER
from hindsight.render.video import Episode, LoadedRun, RenderError
from hindsight.render.views import VARIANT_COLORS, View
from hindsight.seeding import derive_seed


def load_member_state(run: LoadedRun, component: Any, key: str, what: str) -> None:
    """Load the member's checkpointed ``state[key]`` into ``component``; a RenderError when it does not fit."""
    try:
        component.load_state_dict(run.state[key])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise RenderError(f"{run.checkpoint}: {what} does not fit its spec ({str(exc).splitlines()[0]})") from None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def top_down_picture(run: LoadedRun, episodes: list[Episode], path: Path) -> Path:
    """One panel per episode: the path from the start (hollow circle) with its goal and obstacle, or its
    sinusoid; each titled with the task read-out and the undiscounted return."""
    plt = _pyplot()
    view = run.view()
    if not view.top_down:
        raise RenderError(f"top-down pictures exist for the 2-D point families only, not {run.kind!r}")
    n = len(episodes)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.7 * cols, 2.8 * rows + 0.4), squeeze=False)
    for ax, episode in zip(axes.flat, episodes, strict=False):
        view.draw_top_down(ax, episode.positions, episode.task, episode.ret)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(
        f"{run.spec.run.name or run.kind}: deterministic policy, epoch {run.state.get('epoch', '?')}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----- trajectories for the relabeling picture -----
def stored_trajectories(run: LoadedRun) -> list[dict]:
    """Whole trajectories from the member's replay buffer, oldest first (empty when none is stored).

    Each trajectory (rows of one ``add`` call, its steps contiguous, ending in a terminated or truncated
    step) is stored once per task: the first copy is the original, a later copy with the same features
    is a relabeled copy (its task is kept as ``stored``). A trajectory cut by the ring's wrap is dropped.
    Returns dicts with obs [T + 1, O], actions [T, A], features [T, F], rewards [T], task [Z],
    terminated, stored (task [Z] or None).
    """
    buffer = build_buffer(run.spec, run.problem.sizes, "cpu")
    load_member_state(run, buffer, "buffer", "the replay buffer")
    stored = buffer.recent(len(buffer))  # fields [N, ...]
    capacity = getattr(run.spec.params["buffer"], "capacity", None)
    wrapped = capacity is not None and len(buffer) >= capacity
    ends = ((stored.terminated + stored.truncated) > 0).nonzero().flatten().tolist()
    trajectories: list[dict] = []
    seen: dict[tuple, int] = {}
    start = 0
    for k, end in enumerate(ends):
        rows = slice(start, end + 1)
        start = end + 1
        if wrapped and k == 0:
            continue  # its first steps may have been overwritten
        features = stored.features[rows]
        key = (end + 1 - rows.start, hash(features.numpy().tobytes()))
        if key in seen:
            original = trajectories[seen[key]]
            if original["stored"] is None and torch.equal(original["features"], features):
                original["stored"] = stored.tasks[rows.start]
            continue
        seen[key] = len(trajectories)
        trajectories.append(
            {
                "obs": torch.cat([stored.obs[rows], stored.next_obs[end : end + 1]]),
                "actions": stored.actions[rows],
                "features": features,
                "rewards": stored.rewards[rows],
                "task": stored.tasks[rows.start],
                "terminated": bool(stored.terminated[end] > 0),
                "stored": None,
            }
        )
    return trajectories


def to_batch(trajectories: list[dict]) -> TrajectoryBatch:
    """Pad a list of trajectory dicts (see ``stored_trajectories``) into a TrajectoryBatch."""
    B, T = len(trajectories), max(int(t["actions"].shape[0]) for t in trajectories)
    first = trajectories[0]

    def pad(name: str, steps: int) -> torch.Tensor:
        out = torch.zeros((B, steps) + tuple(first[name].shape[1:]), dtype=first[name].dtype)
        for i, t in enumerate(trajectories):
            out[i, : t[name].shape[0]] = t[name]
        return out

    return TrajectoryBatch(
        obs=pad("obs", T + 1),
        actions=pad("actions", T),
        features=pad("features", T),
        rewards=pad("rewards", T),
        tasks=torch.stack([t["task"] for t in trajectories]).float(),
        lengths=torch.tensor([t["actions"].shape[0] for t in trajectories]),
        terminated=torch.tensor([t["terminated"] for t in trajectories]),
    )


def fresh_trajectories(run: LoadedRun, count: int) -> TrajectoryBatch:
    """``count`` episodes of the member's stochastic policy (as in training) under fresh seeded task draws."""
    from hindsight.seeding import make_generator
    from hindsight.train.collector import Collector
    from hindsight.train.trainer import make_envs

    collector = Collector(
        make_envs(run.problem, run.seed, "render/relabel-env", count), run.problem.sizes.horizon, run.reward
    )
    tasks = run.problem.tasks.sample(count, make_generator(run.seed, "render/relabel-tasks"))
    policy_gen = make_generator(run.seed, "render/relabel-policy")
    with torch.no_grad():
        return collector.collect(
            lambda obs, z: run.agent.act(obs, z, deterministic=False, generator=policy_gen, member=run.member), tasks
        )


def run_air_cache(run: LoadedRun) -> dict | None:
    """The cache of the member's own AIR relabeler (features [n, T, F], actions [n, T, A], lengths [n]), or
    None when the run relabels otherwise or has cached nothing yet."""
    relabeler = build_relabeler(run.spec, run.problem.sizes)
    if not isinstance(relabeler, AIR):
        return None
    load_member_state(run, relabeler, "relabeler", "the relabeler's state")
    return relabeler.state_dict().get("cache")


def choose_tasks(
    run: LoadedRun, batch: TrajectoryBatch, cache: dict | None, candidates: int
) -> tuple[dict[str, torch.Tensor], int]:
    """The task each relabeler keeps (m = 1) for every trajectory: name -> [B, Z]; and AIR's cache size.

    AIR and advantage score the same K candidates (the batch's tasks plus the same fresh draws) with the
    member's value estimates; HER is included only when the task distribution has a goal part.
    """
    generator = torch.Generator()
    ctx = RelabelContext(
        tasks=run.problem.tasks, reward=run.reward, agent=run.agent, generator=generator, member=run.member
    )
    seed = derive_seed(run.seed, "render/relabel")
    sizes = run.problem.sizes
    cached = 0 if cache is None else int(cache["lengths"].shape[0])
    k = max(candidates, batch.num)
    air = AIR(AIR.Params(candidates=k, keep=1, cache=cached + batch.num), sizes)
    if cache is not None:
        air.load_state_dict({**air.state_dict(), "cache": cache})
    relabelers: dict[str, Relabeler] = {
        "AIR": air,
        "advantage": AdvantageRelabeling(AdvantageRelabeling.Params(candidates=k, keep=1), sizes),
    }
    if isinstance(run.problem.tasks, GoalTasks):
        relabelers["HER"] = HER(HER.Params(keep=1), sizes)
    chosen = {}
    with torch.no_grad():
        for name, relabeler in relabelers.items():
            generator.manual_seed(seed)
            chosen[name] = relabeler.relabel(batch, ctx)[:, 0].cpu()
    return chosen, cached + batch.num


def relabel_picture(run: LoadedRun, path: Path, count: int = 4, candidates: int = 100, fresh: bool = False) -> dict:
    """Draw ``count`` trajectories, each with its original task and the tasks the relabelers pick.

    Trajectories are the most recent originals stored in the checkpoint's replay buffer (their stored
    relabeled copy shown as ``stored``), or freshly collected ones with ``fresh`` or when none is stored.
    AIR ranks against the stored trajectories before them (fresh: the run's AIR cache, else all stored).
    Returns a summary: source, trajectories, cache size, variants.
    """
    trajectories = [] if fresh else stored_trajectories(run)
    if trajectories:
        source = "stored in the checkpoint's replay buffer"
        picked = trajectories[-count:]
        batch = to_batch(picked)
        before = trajectories[: len(trajectories) - len(picked)][-500:]
        cache = _cache_of(before) if before else None
        stored_tasks = [t["stored"] for t in picked]
    else:
        batch = fresh_trajectories(run, count)
        source = "freshly collected with the stochastic policy"
        cache = run_air_cache(run)
        if cache is None:
            everything = stored_trajectories(run)
            cache = _cache_of(everything[-500:]) if everything else None
        stored_tasks = [None] * batch.num
    chosen, cache_size = choose_tasks(run, batch, cache, candidates)

    names = ["original"]
    columns = [batch.tasks]
    if any(t is not None for t in stored_tasks):
        names.append("stored")
        columns.append(
            torch.stack([t if t is not None else torch.full_like(batch.tasks[0], float("nan")) for t in stored_tasks])
        )
    names += list(chosen)
    columns += list(chosen.values())
    variants = torch.stack(columns, 1).float()  # [B, V, Z]
    safe = torch.nan_to_num(variants)
    rewards = run.reward.reward(batch.features, batch.actions, safe)  # [B, V, T]
    returns = discounted_returns(rewards, batch.mask[:, None], run.agent.gamma)  # [B, V]

    _draw(
        run.view(),
        batch,
        names,
        variants,
        returns,
        path,
        f"{run.spec.run.name or run.kind}, epoch {run.state.get('epoch', '?')}: {batch.num} trajectories {source}; "
        f"K={max(candidates, batch.num)} candidates, AIR ranks among {cache_size}; R = discounted return"
        + (f"; stored = the run's {run.spec.run.relabeler.kind!r} relabeling" if "stored" in names else ""),
    )
    return {"source": source, "trajectories": batch.num, "cache": cache_size, "variants": names}


def _cache_of(trajectories: list[dict]) -> dict:
    steps = max(int(t["actions"].shape[0]) for t in trajectories)
    batch = to_batch(trajectories)
    return {"features": batch.features[:, :steps], "actions": batch.actions[:, :steps], "lengths": batch.lengths}


def _draw(
    view: View,
    batch: TrajectoryBatch,
    names: list[str],
    variants: torch.Tensor,
    returns: torch.Tensor,
    path: Path,
    title: str,
) -> None:
    plt = _pyplot()
    B, V, Z = variants.shape
    fig, axes = plt.subplots(B, 2, figsize=(8.0, 3.0 * B + 0.6), squeeze=False, gridspec_kw={"width_ratios": [1.15, 1]})
    labels = view.labels(Z)
    for b in range(B):
        length = int(batch.lengths[b])
        shown = [
            (names[v], variants[b, v].numpy().astype(np.float64), float(returns[b, v]))
            for v in range(V)
            if not torch.isnan(variants[b, v]).any()
        ]
        view.draw_trajectory(axes[b, 0], batch.features[b, :length].numpy().astype(np.float64), shown)
        ax = axes[b, 1]
        values = np.stack([view.bars(task) for _, task, _ in shown])  # [V', nbars]
        width = 0.8 / len(shown)
        x = np.arange(values.shape[1])
        for j, (name, _, _) in enumerate(shown):
            ax.bar(x - 0.4 + width * (j + 0.5), values[j], width, color=VARIANT_COLORS.get(name, "k"), label=name)
        ax.set_xticks(x, labels[: values.shape[1]], fontsize=7)
        ax.axhline(0, color="k", lw=0.5)
        ax.tick_params(labelsize=6)
        ax.set_title(f"trajectory {b + 1}: {view.bar_title}", fontsize=7)
        ax.legend(fontsize=6, framealpha=0.7)
    fig.suptitle(_wrap(title, 120), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
