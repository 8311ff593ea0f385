"""Spec validation: every bad input exits 2 with a one-line message naming the field path."""

import pytest
import yaml
from typer.testing import CliRunner

from hindsight.cli import app
from hindsight.specs import SpecError, apply_overrides, load_spec, validate

runner = CliRunner()


def write(tmp_path, data, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def cli_error(tmp_path, data) -> str:
    result = runner.invoke(app, ["validate", str(write(tmp_path, data))])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output


def test_valid_spec_resolves_defaults(tiny_spec):
    resolved = validate(tiny_spec).to_dict()
    assert resolved["reward"] == {"kind": "point_reacher", "distance": "dense", "sparse_scale": 1.0}
    assert resolved["agent"]["lr"] == 3e-3 and resolved["agent"]["hidden"] == [32, 32]
    assert validate(resolved).to_dict() == resolved  # the resolved spec is itself a valid spec


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.epochs=0", "train.epochs: Input should be greater than or equal to 1 (got 0)"),
        ("train.epochs=many", "train.epochs: Input should be a valid integer"),
        ("agent.lr=-1.0", "agent.lr: Input should be greater than 0 (got -1.0)"),
        ("agent.hidden=[]", "agent.hidden: List should have at least 1 item"),
        ("buffer.capacity=0", "buffer.capacity: Input should be greater than or equal to 1"),
        ("agent.gamma=.nan", "agent.gamma: must be a finite number"),
        ("agent.colour=red", "agent.colour: unknown field"),
        ("relabeler.kind=nonee", "relabeler.kind: unknown relabeler 'nonee'; did you mean 'none'?"),
        ("env.kind=point_reacherr", "env.kind: unknown env 'point_reacherr'; did you mean 'point_reacher'"),
        ("logging.wandb.mode=sometimes", "logging.wandb.mode: Input should be 'offline', 'online' or 'disabled'"),
        ("seed=-3", "seed: Input should be greater than or equal to 0"),
    ],
)
def test_bad_field_names_its_path(tmp_path, tiny_spec, override, expected):
    apply_overrides(tiny_spec, [override])
    with pytest.raises(SpecError) as info:
        validate(tiny_spec)
    assert str(info.value).startswith(expected)
    assert expected.split(":")[0] in cli_error(tmp_path, tiny_spec)


def test_missing_file_and_yaml_syntax(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "no such spec file" in result.output
    out = cli_error(tmp_path, "env: {kind: point_reacher\ntrain: [")
    assert "YAML syntax error at line" in out


def test_set_overrides(tmp_path, tiny_spec):
    path = write(tmp_path, tiny_spec)
    spec = load_spec(path, ["train.epochs=7", "agent.hidden=[8, 8]", "relabeler.kind=none"])
    assert spec.run.train.epochs == 7 and spec.params["agent"].hidden == [8, 8]
    with pytest.raises(SpecError, match="expected dotted.path=value"):
        load_spec(path, ["train.epochs"])


def test_shorthand_kind(tiny_spec):
    tiny_spec["relabeler"] = "none"
    assert validate(tiny_spec).run.relabeler.kind == "none"


def test_reward_must_read_the_env_features(tiny_spec, monkeypatch):
    from hindsight.registry import REGISTRY
    from hindsight.tasks.point_reacher import PointReacherReward

    class OtherFeatures(PointReacherReward):
        """Reads features no env records."""

        env_features = "something_else"

    REGISTRY.register("reward", "test_other_features", OtherFeatures)
    tiny_spec["reward"] = {"kind": "test_other_features"}
    with pytest.raises(SpecError, match="reward.kind: reward family 'test_other_features' reads 'something_else'"):
        validate(tiny_spec)
