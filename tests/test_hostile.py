"""Hostile and unlucky input: bad specs, damaged checkpoints and metrics files. Every case ends within
seconds with exit 2 and a one-line error (or, where a good checkpoint remains, resumes and says so), never
a traceback, and deletes or changes no file it should not."""

import copy
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_SPEC, metrics_rows
from typer.testing import CliRunner

from hindsight.cli import app
from hindsight.rundir import RunDir
from hindsight.specs import SpecError, load_spec, read_yaml, validate
from hindsight.train.checkpoint import CheckpointError, last_good, read_checkpoint
from hindsight.train.run import execute

HERE = Path(__file__).parent
BAD_SPECS = sorted((HERE / "bad_specs").glob("*.yaml"))
BAD_CHECKPOINTS = HERE / "bad_checkpoints"
SECONDS = 5.0  # the most one refusal may take (most take milliseconds)


def expectation(path: Path) -> str:
    """A corpus file's expected message, from its first line ``# expect: ...`` (read as bytes: the rest of
    the file may be anything)."""
    return path.read_bytes().split(b"\n")[0].decode().removeprefix("# expect:").strip()


def invoke(*args: str):
    """``hindsight ARGS`` in this process: (result, seconds)."""
    start = time.perf_counter()
    result = CliRunner().invoke(app, list(args))
    return result, time.perf_counter() - start


def assert_refused(result, seconds: float, expected: str) -> str:
    """Exit 2, one line ``error: ...`` holding ``expected``, no traceback, within SECONDS."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert expected in lines[0] and "Traceback" not in result.output
    assert seconds < SECONDS, f"took {seconds:.1f} s"
    return lines[0]


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its content's digest (``dir`` for directories)."""
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


# ----- spec files -----
@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", BAD_SPECS, ids=[p.stem for p in BAD_SPECS])
def test_bad_spec_corpus(path, tmp_path):
    expected = expectation(path)
    assert_refused(*invoke("validate", str(path)), expected)
    out = tmp_path / "run"
    assert_refused(*invoke("run", str(path), "--out", str(out)), expected)
    assert not out.exists()  # refused before any run directory exists


def test_corpus_covers_every_class():
    classes = {}
    for path in BAD_SPECS:
        classes.setdefault(path.stem.split("_")[0], []).append(path)
    assert {"load", "value", "plugin", "type", "keys"} <= set(classes)
    assert len(BAD_SPECS) >= 90


def not_a_spec(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A path that is no spec file of the given kind, and the message it must give."""
    path = tmp_path / f"{kind}.yaml"
    if kind == "directory":
        path.mkdir()
        return path, "a directory, not a spec file"
    if kind == "fifo":
        os.mkfifo(path)
        return path, "a FIFO, not a spec file"
    if kind == "device":
        path.symlink_to("/dev/zero")
        return path, "a character device, not a spec file"
    if kind == "missing":
        return path, "no such spec file"
    if kind == "symlink_loop":
        path.symlink_to(path)
        return path, "cannot read"
    if kind == "huge_sparse":  # 50 MB: refused by its size, never read
        with path.open("wb") as file:
            file.truncate(50 * 2**20)
        return path, "50.0 MiB or more, too large for a spec (at most 1 MiB)"
    assert kind == "just_too_big"
    path.write_text("env: point_reacher\ntrain: {epochs: 1}\nname: " + "x" * 2**20 + "\n")
    return path, "too large for a spec"


NOT_SPECS = ["directory", "fifo", "device", "missing", "symlink_loop", "huge_sparse", "just_too_big"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", NOT_SPECS)
def test_a_path_that_is_no_spec_file(tmp_path, kind):
    path, expected = not_a_spec(tmp_path, kind)
    line = assert_refused(*invoke("validate", str(path)), expected)
    assert str(path) in line
    out = tmp_path / "run"
    assert_refused(*invoke("run", str(path), "--out", str(out)), expected)
    assert not out.exists()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["load_alias_bomb.yaml", "fifo"])
def test_the_real_command_refuses_within_seconds(tmp_path, name):
    path = HERE / "bad_specs" / name if name.endswith(".yaml") else not_a_spec(tmp_path, name)[0]
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "hindsight", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MUJOCO_GL": "disable"},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert time.perf_counter() - start < 30  # the interpreter's start included


# ----- --set -----
def write_spec(tmp_path: Path, data) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


BAD_OVERRIDES = [
    ("train..epochs=3", "expected a dotted path of at most 32 non-empty names"),
    (".".join(["a"] * 40) + "=1", "expected a dotted path of at most 32 non-empty names"),
    ("train.epochs", "expected dotted.path=value"),
    ("=3", "expected dotted.path=value"),
    ("train.epochs=&a [*a]", "--set train.epochs: a YAML alias (*name); specs may not use aliases"),
    ("train.epochs=" + "[" * 50 + "]" * 50, "--set train.epochs: nesting deeper than 32 levels"),
    ("train.epochs=true", "train.epochs: Input should be a valid integer (got True)"),
    ("train.epochs.many=1", "--set train.epochs.many: train.epochs is not a mapping"),
    ("seed=1e999", "seed: must be a finite number"),
    ("agent.init_log_alpha=1e308", "agent.init_log_alpha: 1e+308 does not fit a float32"),
    ("name=caf\udce9", "--set name: not UTF-8 text"),
    ("env=[/bold]", "env: Input should be a valid dictionary"),
    ('env="[/bold] [red]x"', "env.kind: unknown env '[/bold] [red]x'"),
    ("agent.hidden=[16, 0]", "agent.hidden.1: Input should be greater than or equal to 1"),
]


@pytest.mark.parametrize("override, expected", BAD_OVERRIDES, ids=[o[:30] for o, _ in BAD_OVERRIDES])
def test_bad_set_is_one_line(tmp_path, override, expected):
    path = write_spec(tmp_path, {"env": "point_reacher", "train": {"epochs": 1}})
    assert_refused(*invoke("validate", str(path), "--set", override), expected)


def test_set_on_a_component_left_at_its_default_uses_its_default_kind(tmp_path):
    path = write_spec(tmp_path, {"env": "point_reacher", "train": {"epochs": 1}})
    spec = load_spec(path, ["agent.hidden=[16]", "reward.sparse_scale=2.0", "buffer.capacity=500"])
    assert spec.run.agent.kind == "sac" and spec.params["agent"].hidden == [16]
    assert spec.run.reward.kind == "point_reacher" and spec.params["reward"].sparse_scale == 2.0
    assert spec.run.buffer.kind == "replay" and spec.params["buffer"].capacity == 500
    result, _ = invoke("validate", str(path), "--set", "name='[/x] [bold]y'")  # printed as it is, not as markup
    assert result.exit_code == 0 and "[/x] [bold]y" in result.output


def test_yaml_1_2_floats_and_strict_types(tmp_path):
    path = write_spec(tmp_path, {"env": "point_reacher", "train": {"epochs": 1}})
    path.write_text(path.read_text() + "agent: {lr: 3e-4, tau: 5e-3}\n")
    spec = load_spec(path)
    assert spec.params["agent"].lr == 3e-4 and spec.params["agent"].tau == 5e-3
    with pytest.raises(SpecError, match=r"^train.epochs: Input should be a valid integer \(got True\)$"):
        validate({"env": "point_reacher", "train": {"epochs": True}})


def test_validation_only_raises_spec_errors_on_odd_data():
    odd = [
        {"env": "point_reacher", "train": {"epochs": 1}, "runtime": "fast", "agent": {"device": "cpu"}},
        {"env": {"kind": ["x"]}, "train": {"epochs": 1}},
        {"env": "point_reacher", "train": {"epochs": 1}, "plugins": 3},
        {"env": "point_reacher", "train": {"epochs": 1}, 3: 4, None: 5},
        {"env": "point_reacher", "train": {"epochs": 1}, "agent": {"hidden": [2**70]}},
    ]
    for data in odd:
        with pytest.raises(SpecError) as info:
            validate(copy.deepcopy(data))
        assert all(": " in line for line in str(info.value).splitlines())  # each problem names its path


def test_read_yaml_refuses_before_building_anything(tmp_path):
    bomb = HERE / "bad_specs" / "load_alias_bomb.yaml"
    start = time.perf_counter()
    with pytest.raises(SpecError, match="a YAML alias"):
        read_yaml(bomb)
    assert time.perf_counter() - start < 1.0


# ----- checkpoints and metrics -----
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-epoch run (checkpoint.pt at epoch 2, checkpoint.prev.pt at epoch 1), its spec file
    and rows; on point_trajectory, whose trainer builds fastest (no front to evaluate)."""
    root = tmp_path_factory.mktemp("finished")
    spec = {**copy.deepcopy(TINY_SPEC), "env": {"kind": "point_trajectory"}}
    spec_path = root / "tiny.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    run = RunDir(root / "run")
    execute(validate(spec), run.path)
    return spec_path, run, metrics_rows(run.metrics)


def rewrite_digests(run: RunDir) -> None:
    """Digests that match whatever the checkpoint files now hold (a case past the digest check)."""
    lines = [
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n"
        for path in (run.checkpoint, run.previous_checkpoint)
        if path.is_file()
    ]
    run.checkpoint_digests.write_text("".join(lines))


def edit_state(edit):
    """A case: the latest checkpoint's state changed by ``edit(state)`` and saved, digests rewritten,
    the previous checkpoint gone (so nothing to fall back to)."""

    def prepare(run: RunDir) -> None:
        state = torch.load(run.checkpoint, weights_only=True)
        state = edit(state) or state
        torch.save(state, run.checkpoint)
        run.previous_checkpoint.unlink()
        rewrite_digests(run)

    return prepare


def only_latest(change):
    """A case: ``change(run)`` applied with the previous checkpoint removed first."""

    def prepare(run: RunDir) -> None:
        run.previous_checkpoint.unlink()
        rewrite_digests(run)
        change(run)

    return prepare


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def foreign(name: str, digests: bool = True):
    def change(run: RunDir) -> None:
        run.checkpoint.write_bytes((BAD_CHECKPOINTS / name).read_bytes())
        if digests:
            rewrite_digests(run)

    return only_latest(change)


def metrics_file(name: str):
    return lambda run: run.metrics.write_bytes((BAD_CHECKPOINTS / name).read_bytes())


class Payload:
    """Runs a shell command when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


MARKER = Path("/tmp/hindsight-hostile-checkpoint-ran-code")


def carry_code(state):
    state["agent"]["extra"] = Payload(MARKER)


def set_path(keys, value):
    def edit(state):
        node = state
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value(node[keys[-1]]) if callable(value) else value

    return edit


def delete(keys):
    def edit(state):
        node = state
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return edit


STORAGE = ["members", 0, "buffer", "storage"]
REFUSED_CHECKPOINTS = {
    # damaged or truncated, with nothing to fall back to
    "damaged_flipped_byte": ("damaged", only_latest(lambda run: flip_byte(run.checkpoint)), "its SHA-256 is not in"),
    "damaged_both": (
        "damaged",
        lambda run: (flip_byte(run.checkpoint), flip_byte(run.previous_checkpoint)),
        "checkpoint.prev.pt: refused: its SHA-256 is not in",
    ),
    "damaged_digest_file": (
        "damaged",
        lambda run: run.checkpoint_digests.write_text("garbage\n"),
        "its SHA-256 is not in checkpoint.sha256",
    ),
    "truncated_half": (
        "truncated",
        only_latest(lambda run: run.checkpoint.write_bytes(run.checkpoint.read_bytes()[:-4000])),
        "its SHA-256 is not in",
    ),
    "truncated_digests_rewritten": (
        "truncated",
        only_latest(lambda run: (run.checkpoint.write_bytes(run.checkpoint.read_bytes()[:5000]), rewrite_digests(run))),
        "refused: not a plain tensor checkpoint",
    ),
    "checkpoint_is_a_directory": (
        "damaged",
        only_latest(lambda run: (run.checkpoint.unlink(), run.checkpoint.mkdir())),
        "refused: cannot read it",
    ),
    # foreign files in checkpoint.pt
    **{
        f"foreign_{name}": ("foreign", foreign(f"foreign_{name}.pt"), "refused: not a plain tensor checkpoint")
        for name in ("text", "empty", "random", "zip", "pickle", "numpy", "json")
    },
    "foreign_undigested": ("foreign", foreign("foreign_zip.pt", digests=False), "its SHA-256 is not in"),
    "code_carrying": ("code", edit_state(carry_code), "refused: not a plain tensor checkpoint"),
    # loads as plain tensors, but is not what the spec's components hold
    "structure_not_a_dict": ("structure", edit_state(lambda s: [s]), "not a hindsight checkpoint"),
    "structure_spec_not_a_mapping": ("structure", edit_state(set_path(["spec"], "x")), "not a hindsight checkpoint"),
    "structure_unknown_format": ("structure", edit_state(set_path(["format"], 99)), "unknown checkpoint format 99"),
    "structure_members_not_a_list": (
        "structure",
        edit_state(set_path(["members"], {"0": 1})),
        "its members are not a list",
    ),
    "structure_no_members": ("structure", edit_state(set_path(["members"], [])), "members: 0, the spec has 1"),
    "structure_agent_lacks_critic": ("structure", edit_state(delete(["agent", "critic"])), "agent lacks critic"),
    "structure_weight_shape": (
        "structure",
        edit_state(set_path(["agent", "policy", "weights.0"], lambda w: w[:, :, :16].clone())),
        "agent.policy.weights.0 has shape [1, 6, 16], the spec's components [1, 6, 32]",
    ),
    "structure_weight_dtype": (
        "structure",
        edit_state(set_path(["agent", "critic", "biases.0"], lambda b: b.double())),
        "agent.critic.biases.0 is a torch.float64 tensor",
    ),
    "structure_alpha_not_a_tensor": (
        "structure",
        edit_state(set_path(["agent", "log_alpha"], 0.5)),
        "agent.log_alpha is float, not a tensor",
    ),
    "structure_optimizer_short": (
        "structure",
        edit_state(set_path(["agent", "policy_opt", "exp_avg"], lambda moments: moments[:1])),
        "agent.policy_opt.exp_avg is list of 1",
    ),
    "structure_member_lacks_buffer": (
        "structure",
        edit_state(delete(["members", 0, "buffer"])),
        "members.0 lacks buffer",
    ),
    "structure_buffer_columns": (
        "structure",
        edit_state(set_path([*STORAGE, "obs"], lambda obs: obs[:, :2].clone())),
        "members.0.buffer.storage.obs has rows of shape",
    ),
    "structure_generator_state": (
        "structure",
        edit_state(set_path(["members", 0, "generators", "policy"], lambda g: g[:100].clone())),
        "members.0.generators.policy has shape [100]",
    ),
    "structure_env_rngs_short": (
        "structure",
        edit_state(set_path(["members", 0, "env_rngs", "eval"], lambda rngs: rngs[:1])),
        "members.0.env_rngs.eval is list of 1, the spec's components have 4 entries",
    ),
    "structure_counter_type": (
        "structure",
        edit_state(set_path(["members", 0, "epoch"], "two")),
        "members.0.epoch is str, not int",
    ),
    "structure_impossible_counters": (
        "structure",
        edit_state(set_path(["members", 0, "metrics_rows"], 7)),
        "members.0: impossible counters",
    ),
    "structure_progress": (
        "structure",
        edit_state(set_path(["members", 0, "progress"], {"loops": 1})),
        "does not fit the spec's components (TypeError",
    ),
    "structure_relabeler_not_a_mapping": (
        "structure",
        edit_state(set_path(["members", 0, "relabeler"], [1])),
        "members.0.relabeler is list, not a mapping",
    ),
    "structure_buffer_size": (
        "structure",
        edit_state(set_path(["members", 0, "buffer", "size"], 10**6)),
        "does not fit the spec's components",
    ),
    # metrics.jsonl that lacks rows the checkpoint recorded
    "metrics_fewer_rows": (
        "metrics",
        lambda run: run.metrics.write_text(run.metrics.read_text().splitlines(keepends=True)[0]),
        "1 complete rows, but the checkpoint recorded 2: epoch 2 missing",
    ),
    "metrics_empty": ("metrics", lambda run: run.metrics.write_text(""), "epochs 1-2 missing"),
    "metrics_deleted": ("metrics", lambda run: run.metrics.unlink(), "0 complete rows"),
    "metrics_torn_recorded_row": (
        "metrics",
        lambda run: run.metrics.write_bytes(run.metrics.read_bytes()[:-30]),
        "epoch 2 missing",
    ),
    "metrics_is_a_directory": ("metrics", lambda run: (run.metrics.unlink(), run.metrics.mkdir()), "Is a directory"),
    "metrics_no_checkpoint": (
        "metrics",
        lambda run: [path.unlink() for path in run.checkpoint_files],
        "--resume: metrics rows but no checkpoint",
    ),
    **{
        name.removesuffix(".jsonl"): ("metrics", metrics_file(name), "line 1 is not the row of epoch 1")
        for name in (
            "metrics_garbage.jsonl",
            "metrics_not_utf8.jsonl",
            "metrics_deep_json.jsonl",
            "metrics_wrong_epochs.jsonl",
            "metrics_not_rows.jsonl",
        )
    },
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(REFUSED_CHECKPOINTS))
def test_bad_checkpoint_or_metrics_is_refused_changing_nothing(tmp_path, finished, case):
    spec_path, run, _ = finished
    _, prepare, expected = REFUSED_CHECKPOINTS[case]
    copy_dir = RunDir(tmp_path / "run")
    shutil.copytree(run.path, copy_dir.path, symlinks=True)
    prepare(copy_dir)
    before = snapshot(copy_dir.path)
    MARKER.unlink(missing_ok=True)
    result, seconds = invoke("run", str(spec_path), "--out", str(copy_dir.path), "--resume", "--set", "train.epochs=3")
    assert_refused(result, seconds, expected)
    assert snapshot(copy_dir.path) == before  # nothing deleted, nothing changed
    assert not MARKER.exists()


def test_bad_checkpoint_classes_are_covered():
    classes = {kind for kind, _, _ in REFUSED_CHECKPOINTS.values()}
    assert classes == {"damaged", "truncated", "foreign", "code", "structure", "metrics"}


def resumed(tmp_path, finished, prepare, epochs=2):
    """The finished run copied, ``prepare``d and resumed to ``epochs``: (result, run dir)."""
    spec_path, run, _ = finished
    copy_dir = RunDir(tmp_path / "run")
    shutil.copytree(run.path, copy_dir.path, symlinks=True)
    prepare(copy_dir)
    result, _ = invoke(
        "run", str(spec_path), "--out", str(copy_dir.path), "--resume", "--set", f"train.epochs={epochs}"
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result, copy_dir


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "damage",
    [
        lambda run: flip_byte(run.checkpoint),
        lambda run: run.checkpoint.write_bytes(run.checkpoint.read_bytes()[:1000]),
        lambda run: run.checkpoint.unlink(),
        lambda run: run.checkpoint.write_bytes((BAD_CHECKPOINTS / "foreign_pickle.pt").read_bytes()),
    ],
    ids=["flipped", "truncated", "missing", "foreign"],
)
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_and_says_so(tmp_path, finished, damage):
    result, run = resumed(tmp_path, finished, damage)
    assert (
        "note: " in result.output
        and "resuming from" in result.output
        and "checkpoint.prev.pt (epoch 1)" in result.output
    )
    assert "1 row after the checkpoint (epoch 2) recomputed" in result.output
    assert metrics_rows(run.metrics) == finished[2]  # epoch 2 trained again, to the same row
    assert last_good(run) == run.checkpoint and read_checkpoint(run.checkpoint)["members"][0]["epoch"] == 2


def test_a_partial_last_row_is_dropped_with_a_note(tmp_path, finished):
    def torn(run):
        run.previous_checkpoint.unlink()
        rewrite_digests(run)
        with run.metrics.open("a") as file:
            file.write('{"epoch": 3, "env_st')

    result, run = resumed(tmp_path, finished, torn, epochs=3)
    assert "a partial last row (from a run killed while writing it) dropped" in result.output
    assert [row["epoch"] for row in metrics_rows(run.metrics)] == [1, 2, 3]


def test_a_no_op_resume_of_a_finished_run_changes_no_file(tmp_path, finished):
    def torn(run):
        with run.metrics.open("a") as file:
            file.write('{"epoch": 3, "env_st')

    spec_path, run, _ = finished
    copy_dir = tmp_path / "run"
    shutil.copytree(run.path, copy_dir, symlinks=True)
    torn(RunDir(copy_dir))
    before = snapshot(copy_dir)
    result, _ = invoke("run", str(spec_path), "--out", str(copy_dir), "--resume")
    assert result.exit_code == 0 and "nothing to do" in result.output, result.output
    assert snapshot(copy_dir) == before


def test_a_run_directory_from_before_digests_loads_unverified_with_a_note(tmp_path, finished):
    result, run = resumed(tmp_path, finished, lambda run: run.checkpoint_digests.unlink(), epochs=3)
    assert "loaded unverified" in result.output
    assert run.checkpoint_digests.is_file() and last_good(run) == run.checkpoint  # digests from now on


def test_divergence_names_only_a_verified_checkpoint(tmp_path, finished):
    _, run, _ = finished
    assert last_good(run) == run.checkpoint
    copy_dir = RunDir(tmp_path / "run")
    shutil.copytree(run.path, copy_dir.path, symlinks=True)
    flip_byte(copy_dir.checkpoint)
    assert last_good(copy_dir) == copy_dir.previous_checkpoint
    flip_byte(copy_dir.previous_checkpoint)
    assert last_good(copy_dir) is None
    with pytest.raises(CheckpointError, match="not in checkpoint.sha256"):
        read_checkpoint(copy_dir.checkpoint)


def test_every_save_keeps_the_previous_checkpoint_and_both_digests(finished):
    _, run, _ = finished
    digests = dict(
        reversed(line.split("  ")) for line in run.checkpoint_digests.read_text().splitlines()
    )  # name -> digest, as sha256sum -c reads it
    for path in (run.checkpoint, run.previous_checkpoint):
        assert digests[path.name] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [read_checkpoint(p)["members"][0]["epoch"] for p in (run.previous_checkpoint, run.checkpoint)] == [1, 2]
    assert not list(run.path.glob("*.tmp"))
