"""Matplotlib pictures: top-down trajectories of the point families (the paper's Figure 4) and the
relabeling picture (each trajectory with its original task and the tasks AIR, advantage and HER pick).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from hindsight.batches import TrajectoryBatch, discounted_returns
from hindsight.render.video import Episode, LoadedRun, RenderError
from hindsight.render.views import VARIANT_COLORS, View, view_for


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def top_down_picture(run: LoadedRun, episodes: list[Episode], path: Path) -> Path:
    """One panel per episode: the path from the start (hollow circle) with its goal and obstacle, or its
    sinusoid; each titled with the task read-out and the undiscounted return."""
    plt = _pyplot()
    view = view_for(run.kind, 0.05)
    if not view.top_down:
        raise RenderError(f"top-down pictures exist for the 2-D point families only, not {run.kind!r}")
    n = len(episodes)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.7 * cols, 2.8 * rows + 0.4), squeeze=False)
    for ax, episode in zip(axes.flat, episodes):
        view.draw_top_down(ax, episode.positions, episode.task, episode.ret)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"{run.spec.run.name or run.kind}: deterministic policy, epoch {run.state.get('epoch', '?')}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----- trajectories for the relabeling picture -----
def stored_trajectories(run: LoadedRun) -> tuple[list[dict], str] | None:
    """Whole trajectories rebuilt from the checkpoint's replay storage, oldest first, or None.

    Each trajectory (rows of one ``add`` call, its steps contiguous, ending in a terminated or truncated
    step) is stored once per task: the first copy is the original, a later copy with the same features
    is a relabeled copy (its task is kept as ``stored``). A trajectory cut by the ring's wrap is dropped.
    Returns dicts with obs [T + 1, O], actions [T, A], features [T, F], rewards [T], task [Z],
    terminated, stored (task [Z] or None).
    """
    buffer = run.state.get("buffer")
    fields = ("obs", "next_obs", "actions", "features", "tasks", "rewards", "terminated", "truncated")
    if not isinstance(buffer, dict) or not all(k in buffer.get("storage", {}) for k in fields):
        return None
    storage, size, write = buffer["storage"], int(buffer.get("size", 0)), int(buffer.get("next", 0))
    if size == 0:
        return None
    capacity = getattr(run.spec.params["buffer"], "capacity", None)
    full = capacity is not None and size >= capacity
    order = (write + torch.arange(size)) % size if full else torch.arange(size)
    ends = ((storage["terminated"][order] + storage["truncated"][order]) > 0).nonzero().flatten().tolist()
    trajectories: list[dict] = []
    seen: dict[tuple, int] = {}
    start = 0
    for k, end in enumerate(ends):
        rows = order[start:end + 1]
        start = end + 1
        if full and k == 0:
            continue
        features = storage["features"][rows]
        key = (int(rows.numel()), hash(features.numpy().tobytes()))
        if key in seen:
            original = trajectories[seen[key]]
            if original["stored"] is None and torch.equal(original["features"], features):
                original["stored"] = storage["tasks"][rows[0]].clone()
            continue
        seen[key] = len(trajectories)
        trajectories.append({
            "obs": torch.cat([storage["obs"][rows], storage["next_obs"][rows[-1:]]]),
            "actions": storage["actions"][rows], "features": features, "rewards": storage["rewards"][rows],
            "task": storage["tasks"][rows[0]].clone(), "terminated": bool(storage["terminated"][rows[-1]] > 0),
            "stored": None,
        })
    return (trajectories, "stored in the checkpoint's replay buffer") if trajectories else None


def to_batch(trajectories: list[dict]) -> TrajectoryBatch:
    """Pad a list of trajectory dicts (see ``stored_trajectories``) into a TrajectoryBatch."""
    B, T = len(trajectories), max(int(t["actions"].shape[0]) for t in trajectories)
    first = trajectories[0]

    def pad(name: str, steps: int) -> torch.Tensor:
        out = torch.zeros((B, steps) + tuple(first[name].shape[1:]), dtype=first[name].dtype)
        for i, t in enumerate(trajectories):
            out[i, : t[name].shape[0]] = t[name]
        return out

    return TrajectoryBatch(obs=pad("obs", T + 1), actions=pad("actions", T), features=pad("features", T),
                           rewards=pad("rewards", T), tasks=torch.stack([t["task"] for t in trajectories]).float(),
                           lengths=torch.tensor([t["actions"].shape[0] for t in trajectories]),
                           terminated=torch.tensor([t["terminated"] for t in trajectories]))


def fresh_trajectories(run: LoadedRun, count: int) -> TrajectoryBatch:
    """``count`` episodes of the stochastic policy (as in training) under fresh seeded task draws."""
    from hindsight.seeding import make_generator
    from hindsight.train.collector import Collector
    from hindsight.train.trainer import make_envs

    collector = Collector(make_envs(run.family, run.reward, run.seed, "render/relabel-env", count),
                          run.family.horizon)
    tasks = run.family.task_distribution.sample(count, make_generator(run.seed, "render/relabel-tasks"))
    policy_gen = make_generator(run.seed, "render/relabel-policy")
    with torch.no_grad():
        return collector.collect(lambda obs, z: run.agent.act(obs, z, deterministic=False, generator=policy_gen),
                                 tasks)


def _air_cache_from_checkpoint(run: LoadedRun) -> dict | None:
    """The run's AIR cache (features, actions, lengths) from its checkpoint, or None."""
    state = run.state.get("relabeler")
    if run.spec.run.relabeler.kind != "air" or not isinstance(state, dict):
        return None
    cache = state.get("cache", state)   # {"cache": {...}, "diagnostics": ...} or the cache itself
    return cache if isinstance(cache, dict) and "features" in cache else None


def _load_air_cache(air, cache: dict) -> None:
    """Fill a fresh AIR's cache, whichever of the two state layouts its ``state_dict`` uses."""
    state = air.state_dict()
    cache = {name: cache[name] for name in ("features", "actions", "lengths")}
    if state:                      # {"diagnostics": ...} beside an optional "cache"
        state["cache"] = cache
    else:                          # the cache's tensors at the top level
        state = cache
    air.load_state_dict(state)


def choose_tasks(run: LoadedRun, batch: TrajectoryBatch, cache: dict | None, candidates: int
                 ) -> tuple[dict[str, torch.Tensor], int]:
    """The task each relabeler keeps (m = 1) for every trajectory: name -> [B, Z]; and AIR's cache size.

    AIR and advantage score the same K candidates (the batch's tasks plus the same fresh draws); HER is
    included only when the family declares a goal part.
    """
    from hindsight.protocols import RelabelContext
    from hindsight.relabel.advantage import AdvantageRelabeling
    from hindsight.relabel.air import AIR
    from hindsight.relabel.her import HER
    from hindsight.seeding import derive_seed

    generator = torch.Generator()
    ctx = RelabelContext(tasks=run.family.task_distribution, reward=run.reward, agent=run.agent, generator=generator)
    seed = derive_seed(run.seed, "render/relabel")
    cached = 0 if cache is None else int(cache["lengths"].shape[0])
    k = max(candidates, batch.num)
    air = AIR(AIR.Params(candidates=k, keep=1, cache=cached + batch.num))
    if cache is not None:
        _load_air_cache(air, cache)
    chosen = {}
    with torch.no_grad():
        for name, relabeler in (("AIR", air), ("advantage", AdvantageRelabeling(
                AdvantageRelabeling.Params(candidates=k, keep=1)))):
            generator.manual_seed(seed)
            chosen[name] = relabeler.relabel(batch, ctx)[:, 0].cpu()
        goal_part = getattr(run.family.task_distribution, "goal_part", lambda: None)()
        if goal_part is not None:
            generator.manual_seed(seed)
            chosen["HER"] = HER(HER.Params(keep=1)).relabel(batch, ctx)[:, 0].cpu()
    return chosen, cached + batch.num


def relabel_picture(run: LoadedRun, path: Path, count: int = 4, candidates: int = 100, fresh: bool = False) -> dict:
    """Draw ``count`` trajectories, each with its original task and the tasks the relabelers pick.

    Trajectories are the most recent originals stored in the checkpoint's replay buffer (their stored
    relabeled copy shown as ``stored``), or freshly collected ones with ``fresh`` or when none is stored.
    AIR ranks against the stored trajectories before them (fresh: the run's AIR cache, else all stored).
    Returns a summary: source, trajectories, cache size, variants.
    """
    stored = None if fresh else stored_trajectories(run)
    if stored is not None:
        trajectories, source = stored
        picked = trajectories[-count:]
        batch = to_batch(picked)
        before = trajectories[: len(trajectories) - len(picked)][-500:]
        cache = _cache_of(before) if before else None
        stored_tasks = [t["stored"] for t in picked]
    else:
        batch = fresh_trajectories(run, count)
        source = "freshly collected with the stochastic policy"
        cache = _air_cache_from_checkpoint(run)
        if cache is None:
            everything = stored_trajectories(run)
            cache = _cache_of(everything[0][-500:]) if everything else None
        stored_tasks = [None] * batch.num
    chosen, cache_size = choose_tasks(run, batch, cache, candidates)

    names = ["original"]
    columns = [batch.tasks]
    if any(t is not None for t in stored_tasks):
        names.append("stored")
        columns.append(torch.stack([t if t is not None else torch.full_like(batch.tasks[0], float("nan"))
                                    for t in stored_tasks]))
    names += list(chosen)
    columns += list(chosen.values())
    variants = torch.stack(columns, 1).float()                                   # [B, V, Z]
    safe = torch.nan_to_num(variants)
    rewards = run.reward.reward(batch.features, batch.actions, safe)             # [B, V, T]
    returns = discounted_returns(rewards, batch.mask[:, None], run.agent.gamma)  # [B, V]

    view = view_for(run.kind, _control_dt(run))
    _draw(run, view, batch, names, variants, returns, path,
          f"{run.spec.run.name or run.kind}, epoch {run.state.get('epoch', '?')}: {batch.num} trajectories {source}; "
          f"K={max(candidates, batch.num)} candidates, AIR ranks among {cache_size}; R = discounted return"
          + (f"; stored = the run's {run.spec.run.relabeler.kind!r} relabeling" if "stored" in names else ""))
    return {"source": source, "trajectories": batch.num, "cache": cache_size, "variants": names}


def _cache_of(trajectories: list[dict]) -> dict:
    steps = max(int(t["actions"].shape[0]) for t in trajectories)
    batch = to_batch(trajectories)
    return {"features": batch.features[:, :steps], "actions": batch.actions[:, :steps], "lengths": batch.lengths}


def _control_dt(run: LoadedRun) -> float:
    env = run.family.make_env(run.reward, 0)
    return float(env.control_timestep())


def _draw(run: LoadedRun, view: View, batch: TrajectoryBatch, names: list[str], variants: torch.Tensor,
          returns: torch.Tensor, path: Path, title: str) -> None:
    plt = _pyplot()
    B, V, Z = variants.shape
    fig, axes = plt.subplots(B, 2, figsize=(8.0, 3.0 * B + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": [1.15, 1]})
    labels = view.labels(Z)
    for b in range(B):
        length = int(batch.lengths[b])
        shown = [(names[v], variants[b, v].numpy().astype(np.float64), float(returns[b, v]))
                 for v in range(V) if not torch.isnan(variants[b, v]).any()]
        view.draw_trajectory(axes[b, 0], batch.features[b, :length].numpy().astype(np.float64), shown)
        ax = axes[b, 1]
        values = np.stack([view.bars(task) for _, task, _ in shown])           # [V', nbars]
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
