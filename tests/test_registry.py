"""The registry: lazy built-ins, duplicates naming both sources, entry points, spec plugins."""

import sys
import textwrap

import pytest
from typer.testing import CliRunner

from hindsight.cli import app
from hindsight.registry import KINDS, REGISTRY, Registry, RegistryError, register
from hindsight.specs import validate


def test_builtins_listed_without_importing_torch_modules():
    registry = Registry()
    entries = registry.entries()
    assert {"env", "reward", "relabeler", "agent", "buffer"} <= {e.kind for e in entries}
    assert all(isinstance(e.target, str) for e in entries if e.source == "registry.yaml")
    assert all(e.summary for e in entries if e.source == "registry.yaml")


def test_every_builtin_target_loads():
    for entry in REGISTRY.entries():
        assert entry.load() is not None, entry


def test_duplicate_decorator_names_both_sources():
    with pytest.raises(RegistryError) as info:

        @register("relabeler", "none")
        class Again:
            """Clashes with the built-in."""

    message = str(info.value)
    assert "duplicate relabeler 'none'" in message
    assert "registry.yaml" in message and "Again" in message


def test_unknown_kind_and_name():
    with pytest.raises(RegistryError, match="unknown component kind 'planner'"):
        REGISTRY.get("planner", "x")
    with pytest.raises(RegistryError, match="did you mean 'sac'"):
        REGISTRY.get("agent", "sacc")


def make_plugin_package(root, module: str, entry_name: str, target: str, body: str) -> None:
    """A small installed-looking package: a module plus a dist-info declaring the entry point."""
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[hindsight.components]\n{entry_name} = {target}\n")


PLUGIN_REWARD = '''
    import torch

    class MirroredReward:
        """PointReacher reward with the goal mirrored through the origin."""

        env_features = "point_position"
        feature_dim = 2
        task_dim = 6

        def __init__(self, params=None):
            from hindsight.tasks.point_reacher import PointReacherReward
            self.base = PointReacherReward()

        def reward(self, features, actions, tasks):
            return self.base.reward(-features, actions, tasks)
'''


def test_entry_point_plugin(tmp_path, monkeypatch, tiny_spec):
    make_plugin_package(tmp_path, "mirror_plugin", "reward.mirrored", "mirror_plugin:MirroredReward", PLUGIN_REWARD)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry()
    entry = next(e for e in registry.entries("reward") if e.name == "mirrored")
    assert "mirror_plugin" in entry.source
    assert registry.summary(entry) == "PointReacher reward with the goal mirrored through the origin."
    assert registry.get("reward", "mirrored").__name__ == "MirroredReward"


def test_entry_point_clashing_with_builtin(tmp_path, monkeypatch):
    make_plugin_package(tmp_path, "clash_plugin", "reward.point_reacher", "clash_plugin:MirroredReward", PLUGIN_REWARD)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RegistryError) as info:
        Registry().entries()
    assert "registry.yaml" in str(info.value) and "clash_plugin" in str(info.value)


def test_spec_plugins_register_a_user_reward(tmp_path, tiny_spec):
    (tmp_path / "user_reward_plugin.py").write_text(
        textwrap.dedent('''
        from hindsight.registry import register
        from hindsight.tasks.point_reacher import PointReacherReward

        @register("reward", "user_reacher")
        class UserReacher(PointReacherReward):
            """Registered by a spec's plugins list."""
    ''')
    )
    tiny_spec["plugins"] = ["user_reward_plugin"]
    tiny_spec["reward"] = {"kind": "user_reacher"}
    spec = validate(tiny_spec, base_dir=tmp_path)
    assert spec.component("reward").__name__ == "UserReacher"
    tiny_spec["plugins"] = ["no_such_plugin_module"]
    with pytest.raises(Exception, match="plugins.0: cannot import 'no_such_plugin_module'"):
        validate(tiny_spec, base_dir=tmp_path)
    sys.modules.pop("user_reward_plugin", None)


def test_list_command():
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0
    for kind in KINDS:
        assert kind in result.output
    result = CliRunner().invoke(app, ["list", "relabeler"])
    assert "none" in result.output and "point_reacher" not in result.output
    assert CliRunner().invoke(app, ["list", "planners"]).exit_code == 2
