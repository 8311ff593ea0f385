"""Objectives and task fields of every registered family, and the multi-objective metrics, by hand."""

import math

import numpy as np
import pytest
import torch

from hindsight.build import build_problem
from hindsight.fronts import front_metrics, hypervolume, non_dominated, sparsity, spread_weights
from hindsight.policy.choose import field_problem
from hindsight.protocols import Objectives, TaskFields, missing
from hindsight.registry import REGISTRY
from hindsight.specs import validate

REWARDS = [entry.name for entry in REGISTRY.entries("reward")]
TASKS = [entry.name for entry in REGISTRY.entries("tasks")]
WITH_OBJECTIVES = {"point_reacher", "fetch_reach", "cheetah_multi", "mo_gymnasium"}
SHORT = {  # horizons, for speed
    "cheetah_multi": 60,
    "fetch_reach": 12,
    "ant_direction": 30,
    "humanoid_direction": 30,
    "mo_gymnasium": 60,
}


def test_the_families_that_mix_objectives_declare_them():
    declared = {name for name in REWARDS if isinstance(REGISTRY.get("reward", name)(), Objectives)}
    assert declared == WITH_OBJECTIVES
    for name in ("point_trajectory", "ant_direction", "humanoid_direction"):
        assert "objectives()" in missing(REGISTRY.get("reward", name)(), Objectives)


@pytest.mark.parametrize("name", sorted(WITH_OBJECTIVES))
def test_reward_is_the_weighted_sum_of_the_objectives(name):
    reward = REGISTRY.get("reward", name)()
    tasks = REGISTRY.get("tasks", name)()
    g = torch.Generator().manual_seed(0)
    B, T = 5, 7
    features = torch.randn(B, T, reward.feature_dim, generator=g) * 0.3
    action_dim = {"point_reacher": 2, "fetch_reach": 4, "cheetah_multi": 6, "mo_gymnasium": 6}[name]
    actions = torch.rand(B, T, action_dim, generator=g) * 2 - 1
    z = tasks.sample(B, g)
    objectives = reward.objectives(features, actions, z)
    J = len(reward.objective_names)
    assert objectives.shape == (B, T, J) and len(reward.reference_point) == J
    weighted = (reward.weights(z)[:, None, :] * objectives).sum(-1)
    torch.testing.assert_close(reward.reward(features, actions, z[:, None])[:, 0], weighted, atol=1e-5, rtol=1e-5)
    # weights round-trip: a task's own weights give it back; any direction comes back along it, scaled as
    # the family's tasks scale weights (unit length, or a sum of 1 on the simplex)
    torch.testing.assert_close(reward.with_weights(z, reward.weights(z)), z, atol=1e-5, rtol=1e-5)
    w = torch.rand(B, J, generator=g) + 0.01
    back = reward.weights(reward.with_weights(z, w))
    unit = torch.nn.functional.normalize
    torch.testing.assert_close(unit(back, dim=-1), unit(w, dim=-1))
    torch.testing.assert_close(back.norm(dim=-1) if name != "mo_gymnasium" else back.sum(-1), torch.ones(B))


@pytest.mark.parametrize("name", sorted(WITH_OBJECTIVES))
def test_the_reference_point_bounds_every_step_of_random_episodes(name):
    """Per-step objectives of real episodes with uniform and bang-bang actions stay above the reference."""
    env = {"kind": name, **({"horizon": SHORT[name]} if name in SHORT else {})}
    problem = build_problem(validate({"env": env, "train": {"epochs": 1}}))
    reward, rng = problem.reward, np.random.default_rng(0)
    worst = np.full(len(reward.objective_names), np.inf)
    for bang in (False, True):
        batch_env = problem.family.make_env(None, 0)
        z = problem.tasks.sample(1, torch.Generator().manual_seed(int(bang)))
        batch_env.task.set_task(z[0].numpy())
        step, features, actions = batch_env.reset(), [], []
        while not step.last():
            a = rng.uniform(-1, 1, batch_env.action_spec().shape)
            a = np.sign(a) if bang else a
            step = batch_env.step(a)
            features.append(step.observation["features"])
            actions.append(a)
        values = reward.objectives(
            torch.tensor(np.array(features), dtype=torch.float32)[None],
            torch.tensor(np.array(actions), dtype=torch.float32)[None],
            z,
        )[0]
        worst = np.minimum(worst, values.min(0).values.numpy())
    assert (worst >= np.asarray(reward.reference_point) - 1e-6).all(), (worst, reward.reference_point)


@pytest.mark.parametrize("name", TASKS)
def test_task_fields_cover_the_task_and_hold_every_draw(name):
    tasks = REGISTRY.get("tasks", name)()
    assert not missing(tasks, TaskFields)
    assert len(tasks.z_labels) == tasks.task_dim
    z = tasks.sample(64, torch.Generator().manual_seed(1))
    fields = tasks.to_fields(z)
    assert list(fields) == [f.name for f in tasks.fields]
    torch.testing.assert_close(tasks.from_fields(fields), z, atol=1e-5, rtol=1e-5)
    fixed = tasks.eval_tasks()
    for draws in (z, fixed) if fixed is not None else (z,):
        parts = tasks.to_fields(draws)
        for field in tasks.fields:
            assert parts[field.name].shape == (draws.shape[0], field.size)
            for row in parts[field.name].tolist():
                assert field_problem(field, row) is None, (field.name, row)


def test_point_reacher_fields_in_its_own_terms():
    tasks = REGISTRY.get("tasks", "point_reacher")()
    z = tasks.from_fields(
        {
            "weights": torch.tensor([[0.0, 2.0, 0.0]]),
            "goal": torch.tensor([[0.0, 0.2]]),
            "obstacle": torch.tensor([[-0.3, 0.0]]),
        }
    )
    # w = (0, 1, 0): alpha = pi / 2 -> u = 0.25, phi = pi / 2 -> v = 0.5; goal at angle pi / 2, radius 0.2
    torch.testing.assert_close(z, torch.tensor([[0.25, 0.5, math.pi / 2, 0.2, math.pi, 0.3]]))
    goal = next(f for f in tasks.fields if f.name == "goal")
    assert field_problem(goal, [0.05, 0.0]) == "length 0.05 is outside [0.15, 0.3]"
    assert field_problem(goal, [0.2]) == "expected 2 (x, y), got 1"
    weights = next(f for f in tasks.fields if f.name == "weights")
    assert field_problem(weights, [0, 0, 0]) == "the values must not all be 0"
    assert field_problem(weights, [0, -0.5, 1]) == "energy = -0.5 is outside [0, 1]"


# ----- the metrics, by hand -----
def test_hypervolume_by_hand():
    # maximisation above (0, 0): boxes [0,1]x[0,1] and [1,2]x[0,0.5] -> 1.5; (0.5, 0.5) is dominated
    points = np.array([[1.0, 1.0], [2.0, 0.5], [0.5, 0.5]])
    assert hypervolume(points, np.zeros(2)) == pytest.approx(1.5)
    # one 3-D point: a box 1 x 2 x 3 above (0, 0, 0); from (-1, -1, -1): 2 x 3 x 4
    assert hypervolume(np.array([[1.0, 2.0, 3.0]]), np.zeros(3)) == pytest.approx(6.0)
    assert hypervolume(np.array([[1.0, 2.0, 3.0]]), -np.ones(3)) == pytest.approx(24.0)
    # a point below the reference in one objective adds nothing
    assert hypervolume(np.array([[3.0, -1.0]]), np.zeros(2)) == 0.0


def test_sparsity_and_dominance_by_hand():
    points = np.array([[1.0, 1.0], [2.0, 0.5], [0.5, 0.5], [3.0, -1.0]])
    assert non_dominated(points).tolist() == [True, True, False, True]
    # front (1, 1), (2, 0.5), (3, -1): gaps 1, 1 in the first objective, 1.5, 0.5 in the second -> 4.5 / 2
    assert sparsity(points) == pytest.approx(2.25)
    assert sparsity(points[:1]) == 0.0


def test_spread_weights_start_with_the_pure_objectives_and_spread():
    w = spread_weights(15, 3)
    assert w.shape == (15, 3) and (w >= 0).all() and np.allclose(w.sum(1), 1)
    assert w[:3].tolist() == np.eye(3).tolist()
    assert len({tuple(row) for row in w.round(9)}) == 15
    assert np.array_equal(w, spread_weights(15, 3))
    # the second point in two objectives is the middle direction, the next ones fill in between
    w2 = spread_weights(4, 2)
    assert w2[:2].tolist() == [[1, 0], [0, 1]] and abs(w2[2, 0] - 0.5) < 0.06
    assert spread_weights(2, 4).tolist() == [[1, 0, 0, 0], [0, 1, 0, 0]]


def test_front_metrics_row():
    weights = np.array([[1.0, 0.0], [0.0, 1.0]])
    points = np.array([[2.0, 0.0], [0.0, 2.0]])
    row = front_metrics(weights, points, np.array([-1.0, -1.0]), np.array([2.0, 2.0, 1.0]), ("a", "b"))
    assert row["eval/mo/expected_utility"] == pytest.approx(5 / 3)
    assert row["eval/mo/hypervolume"] == pytest.approx(3 * 1 + 1 * 2)  # [-1,2]x[-1,0] + [-1,0]x[0,2]
    assert row["eval/mo/sparsity"] == pytest.approx(8.0)
    assert row["eval/mo/front"] == {"columns": ["w_a", "w_b", "a", "b"], "data": [[1, 0, 2, 0], [0, 1, 0, 2]]}


def test_report_draws_each_methods_front_and_its_hypervolume(tmp_path):
    """Two methods x two seeds of recorded fronts: the figure and the table of final metrics."""
    import json

    from hindsight.studies.fronts import write_fronts
    from hindsight.studies.report import Curve

    curves = []
    for method, scale in (("none", 1.0), ("air", 2.0)):
        for seed in (0, 1):
            run_dir = tmp_path / f"{method}{seed}"
            run_dir.mkdir()
            rows = [
                {
                    "epoch": epoch,
                    "env_steps": 100 * epoch,
                    "eval/return_mean": float(epoch),
                    "eval/objective/a": scale * epoch,
                    "eval/objective/b": -1.0,
                    "eval/mo/expected_utility": scale + seed,
                    "eval/mo/hypervolume": scale * epoch + seed,
                    "eval/mo/sparsity": 0.5,
                    "eval/mo/front": {
                        "columns": ["w_a", "w_b", "a", "b"],
                        "data": [[1, 0, scale, 0], [0, 1, 0, scale]],
                    },
                }
                for epoch in (1, 2)
            ]
            (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            curves.append(Curve("point_reacher", method, seed, np.array([100.0, 200.0]), np.array([1.0, 2.0]), run_dir))
    section, paths = write_fronts(curves, tmp_path, resamples=100)
    assert [p.name for p in paths] == ["fronts-point_reacher.png", "fronts-point_reacher.svg"]
    assert paths[0].stat().st_size > 10_000
    # final hypervolumes: none 2 + seed -> mean 2.5; air 4 + seed -> 4.5; utility 1.5 and 2.5; a returns 2 and 4
    assert "| none | 2 | 2.5 |" in section and "| 1.500 | [1, 2] | 0.5 | 2.000 | -1.000 |" in section
    assert "| air | 2 | 4.5 |" in section and "| 2.500 | [2, 3] | 0.5 | 4.000 | -1.000 |" in section
    # the study's reference: worst (0, 0) less 0.1 of the range (2, 2) = (-0.2, -0.2); none's front (1, 0),
    # (0, 1) dominates 1.2 x 0.2 + 0.2 x 1.2 - 0.2 x 0.2 = 0.44 above it, air's (2, 0), (0, 2) 0.84
    assert "reference point (-0.2, -0.2)" in section
    assert "| 0.44 | [0.44, 0.44] |" in section and "| 0.84 | [0.84, 0.84] |" in section
    assert "![fronts](fronts-point_reacher.png)" in section
    assert write_fronts(curves[:0], tmp_path, resamples=10) == ("", [])
