"""Property-based fuzzing of spec loading and ``--set`` (hypothesis): whatever the file's bytes or the
override, loading ends in a resolved spec or a SpecError naming the problem, within seconds; the command
exits 0 or 2 with one-line errors, never a traceback.

The default run is derandomized and small (a few seconds); ``-m slow`` runs the long profile.
"""

import copy
import time

import pytest
import yaml
from conftest import TINY_SPEC
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hindsight.cli import app
from hindsight.specs import SpecError, load_spec, read_yaml

SECONDS = 5.0  # the most one example may take (most take milliseconds)
QUICK = settings(
    max_examples=60,
    deadline=None,  # timed in the test itself, with room for a loaded machine
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
LONG = settings(QUICK, max_examples=2000, derandomize=False)

# names a spec uses, so that random documents and paths reach deep into validation (``plugins`` left
# out: a random plugin name could import some module of this machine)
NAMES = [
    "name", "seed", "seeds", "env", "tasks", "reward", "relabeler", "agent", "buffer", "train", "eval",
    "logging", "runtime", "kind", "horizon", "time_limit", "hidden", "lr", "gamma", "tau", "batch_size",
    "reward_scale", "target_entropy", "init_log_alpha", "init", "capacity", "epochs", "loops_per_epoch",
    "episodes_per_loop", "updates_per_loop", "warmup_steps", "checkpoint_every", "episodes", "every",
    "wandb", "mode", "project", "progress", "device", "threads", "precision", "compile", "candidates",
    "keep", "cache", "distance", "sparse_scale", "point_reacher", "point_trajectory", "cheetah_multi",
    "sac", "replay", "none", "air", "her", "random", "advantage", "cpu", "cuda", "disabled",
]  # fmt: skip
SNIPPETS = [
    "&a ", "*a", "[", "]", "{", "}", ": ", "- ", ", ", "? ", "<<: ", "!!python/object/apply:os.system ",
    "!!binary ", "!!int ", "!!float ", "!!timestamp ", "%YAML 1.1\n", "---\n", "...\n", "|\n", ">\n", "'", '"',
    "\t", "\n", "\n  ", "\x00", "\x07", "\ufeff", "\u2028", "2024-13-45", "1e999", "-.inf", ".nan",
    "9" * 400, "#", "@", "`", "~",
]  # fmt: skip

keys = st.sampled_from(NAMES) | st.text(max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(NAMES)
    | st.text(max_size=12)
)
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)


@st.composite
def spec_texts(draw) -> bytes:
    """A YAML file's bytes: a random document (sometimes grafted onto the tiny spec), dumped, then perhaps
    mutated with YAML's special characters, then encoded (mostly as UTF-8)."""
    document = draw(documents)
    if draw(st.booleans()) and isinstance(document, dict):
        document = {**copy.deepcopy(TINY_SPEC), **document}
    text = yaml.safe_dump(document, allow_unicode=True, default_flow_style=draw(st.sampled_from([None, True, False])))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(SNIPPETS)) + text[at:]
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "latin-1", "utf-16"]))
    return text.encode(encoding, errors="replace")


values = st.one_of(
    documents.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()),
    st.text(max_size=20),
    st.lists(st.sampled_from(SNIPPETS), max_size=5).map("".join),
)
paths = st.lists(keys, min_size=1, max_size=5).map(".".join)
overrides = st.lists(st.tuples(paths, values).map("=".join), max_size=4)


@pytest.fixture(scope="module")
def base_spec(tmp_path_factory):
    """The tiny spec's file, loaded once (the first load imports the physics and builds an environment)."""
    path = tmp_path_factory.mktemp("fuzz") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_SPEC))
    load_spec(path)
    return path


def loads_or_refuses(path, sets=()) -> None:
    """The property: a resolved spec or a SpecError, each of its lines naming a place, within SECONDS."""
    start = time.perf_counter()
    try:
        load_spec(path, list(sets))
    except SpecError as exc:
        assert all(line.strip() for line in str(exc).splitlines())
        assert all(c.isprintable() or c == "\n" for c in str(exc)), repr(str(exc))  # odd names are quoted
    assert time.perf_counter() - start < SECONDS


def spec_file_property(tmp_path, data: bytes) -> None:
    if b"plugins" in data:
        return
    path = tmp_path / "fuzzed.yaml"
    path.write_bytes(data)
    loads_or_refuses(path)


def set_property(base_spec, sets: list[str]) -> None:
    if any(text.startswith("plugins") for text in sets):
        return
    loads_or_refuses(base_spec, sets)
    start = time.perf_counter()
    args = ["validate", str(base_spec)] + [arg for text in sets for arg in ("--set", text)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.output.startswith("error: "), result.output
    assert time.perf_counter() - start < SECONDS


def raw_bytes_property(tmp_path, data: bytes) -> None:
    path = tmp_path / "raw.yaml"
    path.write_bytes(data)
    start = time.perf_counter()
    try:
        read_yaml(path)
    except SpecError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    assert time.perf_counter() - start < SECONDS


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, base_spec):
    return tmp_path_factory.mktemp("scratch")


@QUICK
@given(data=spec_texts())
def test_fuzzed_spec_files_load_or_refuse(scratch, data):
    spec_file_property(scratch, data)


@QUICK
@given(sets=overrides)
def test_fuzzed_set_overrides_load_or_refuse(base_spec, sets):
    set_property(base_spec, sets)


@QUICK
@given(data=st.binary(max_size=512))
def test_fuzzed_bytes_read_or_refuse(scratch, data):
    raw_bytes_property(scratch, data)


@pytest.mark.slow
@LONG
@given(data=spec_texts())
def test_fuzzed_spec_files_long(scratch, data):
    spec_file_property(scratch, data)


@pytest.mark.slow
@LONG
@given(sets=overrides)
def test_fuzzed_set_overrides_long(base_spec, sets):
    set_property(base_spec, sets)


@pytest.mark.slow
@LONG
@given(data=st.binary(max_size=4096))
def test_fuzzed_bytes_long(scratch, data):
    raw_bytes_property(scratch, data)
