"""Studies on Ray Tune: reaching a cluster, consistent checkpoints of a training job, and (slow) real Ray:
a local Ray, a two-node cluster on this machine whose nodes share no folder, a worker node killed during a
run, the study's driver killed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import metrics_rows

from hindsight.rundir import RunDir
from hindsight.studies import runner
from hindsight.studies.spec import expand, load_study

TINY = {
    "env": "point_reacher",
    "relabeler": "none",
    "agent": {"kind": "sac", "hidden": [16], "batch_size": 16},
    "buffer": {"kind": "replay", "capacity": 2000},
    "train": {"epochs": 3, "loops_per_epoch": 1, "updates_per_loop": 2, "warmup_steps": 20},
    "eval": {"episodes": 2},
    "logging": {"wandb": {"mode": "disabled"}, "progress": False},
}
LONGER = {"train.epochs": 14, "train.loops_per_epoch": 2, "train.updates_per_loop": 20}  # ~0.4 s an epoch here
GRID = {"relabeler.kind": ["none", "random"], "seed": [0, 1]}
# the clusters' and drivers' environment: no token (a local ray.init may have left one in ~/.ray), physics
# only, and a node that stops answering is declared dead within ~3 s instead of ~30 s
CLUSTER_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "MUJOCO_GL": "disable",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def write_study(folder: Path, overrides: dict | None = None, grid: dict | None = None) -> Path:
    base = json.loads(json.dumps(TINY))
    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".")
        base[section][key] = value
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "base": base, "grid": grid or GRID}, sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def hindsight(*args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    """``python -m hindsight ARGS`` in its own process group, its lines unwrapped."""
    return subprocess.Popen(
        [sys.executable, "-m", "hindsight", *args],
        env={**(os.environ if env is None else env), **CLUSTER_ENV, "COLUMNS": "250"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **popen,
    )


# ----- fast: reaching Ray, consistent snapshots, trial resources -----
def test_an_unreachable_address_is_a_one_line_error_in_bounded_time(tmp_path):
    """A closed port is refused at once; a port that accepts but never speaks Ray ends at --connect-timeout."""
    from hindsight.studies import tune

    closed = f"127.0.0.1:{free_port()}"
    with pytest.raises(runner.BackendError, match=f"cannot reach Ray at {closed}: .*refused"):
        tune.connect(closed, 30)
    with pytest.raises(runner.BackendError, match="expected HOST:PORT"):
        tune.connect("nowhere", 30)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    address = f"ray://127.0.0.1:{silent.getsockname()[1]}"
    args = ["study", str(write_study(tmp_path)), "--backend", "ray", "--address", address, "--connect-timeout", "2"]
    try:
        start = time.monotonic()
        process = hindsight(*args, "--out", str(tmp_path / "out"))
        output, _ = process.communicate(timeout=60)
    finally:
        silent.close()
    assert process.returncode == 2, output
    assert output.strip().splitlines() == [
        f"error: no answer from Ray at {address} within 2 s (is a Ray cluster running there?)"
    ]
    assert time.monotonic() - start < 20  # the interpreter and its imports included


def test_snapshot_copies_the_checkpoint_consistently(tmp_path, monkeypatch):
    """Checkpoint files replaced while they are copied are copied again; metrics follow them; temporaries
    stay out."""
    from hindsight.studies import tune

    root = tmp_path / "study"
    job = RunDir(root / "populations" / "p")
    member = RunDir(root / "runs" / "seed=0")
    for directory in (job, member):
        directory.path.mkdir(parents=True)
    job.checkpoint.write_text("epoch 1")
    job.checkpoint_digests.write_text("digest of epoch 1")
    (job.path / "checkpoint.pt.tmp").write_text("half written")
    member.metrics.write_text('{"epoch": 1}\n')
    copy, saves = shutil.copy2, []

    def copy_while_training(source, target):
        copy(source, target)
        if not saves:  # the trainer writes its next checkpoint (and row) while the first is copied
            saves.append(source)
            member.metrics.write_text('{"epoch": 1}\n{"epoch": 2}\n')
            job.checkpoint.replace(job.previous_checkpoint)
            job.path.joinpath("next").write_text("epoch 2")
            job.path.joinpath("next").replace(job.checkpoint)
            job.path.joinpath("next").write_text("digests of epochs 2, 1")
            job.path.joinpath("next").replace(job.checkpoint_digests)

    monkeypatch.setattr(tune.shutil, "copy2", copy_while_training)
    tune.snapshot(root, job, tmp_path / "snap")
    snap = RunDir(tmp_path / "snap" / "populations" / "p")
    assert [p.read_text() for p in snap.checkpoint_files] == ["epoch 2", "epoch 1", "digests of epochs 2, 1"]
    assert len(RunDir(tmp_path / "snap" / "runs" / "seed=0").read_metrics()) == 2
    assert sorted(p.name for p in snap.path.iterdir()) == sorted(p.name for p in snap.checkpoint_files)


def test_a_jobs_trial_asks_for_its_cpus_or_gpu_share(tmp_path):
    from hindsight.studies import tune

    statuses = [runner.RunStatus(run) for run in expand(load_study(write_study(tmp_path)))]
    cpu, cuda = runner.plan_jobs(statuses, tmp_path / "out", population=2)
    cuda.spec["runtime"]["device"] = "cuda"
    cpu_trial, cuda_trial = (tune._job_config(job, tmp_path / "out", runner.RayOptions()) for job in (cpu, cuda))
    assert cpu_trial["dir"] == "populations/relabeler.kind=none,seed=0+1"
    assert cpu_trial["members"] == ["runs/relabeler.kind=none,seed=0", "runs/relabeler.kind=none,seed=1"]
    assert tune.trial_resources({"job": cpu_trial}).bundles == [{"CPU": 1}]
    assert tune.trial_resources({"job": cuda_trial}).bundles == [{"CPU": 1, "GPU": 1.0}]
    shared = tune._job_config(cuda, tmp_path / "out", runner.RayOptions(cpus_per_job=2, gpus_per_job=0.25))
    assert shared["cpus"] == 2 and tune.trial_resources({"job": shared}).bundles == [{"CPU": 2, "GPU": 0.25}]


# ----- slow: real Ray -----
@pytest.mark.slow
def test_local_ray_study_in_populations(tmp_path):
    """2 methods x 2 seeds as two population trials on a local Ray, each with half a (logical) GPU: both
    run at once; the study folder has a local study's layout, the report reads it, a re-run skips it."""
    ray = pytest.importorskip("ray")
    study = load_study(write_study(tmp_path))
    runs = expand(study)
    out = tmp_path / "out"
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        options = runner.RayOptions(gpus_per_job=0.5)
        statuses = runner.run_study(study, runs, out, backend="ray", population=2, ray=options)
    finally:
        ray.shutdown()
    assert [s.state for s in statuses] == ["done"] * 4, [s.error for s in statuses]
    assert {s.population for s in statuses} == {"relabeler.kind=none,seed=0+1", "relabeler.kind=random,seed=0+1"}
    for population in ("relabeler.kind=none,seed=0+1", "relabeler.kind=random,seed=0+1"):
        log = (out / "populations" / population / "log.txt").read_text()
        assert "'GPU': 0.5" in log and (out / "populations" / population / "checkpoint.pt").is_file()
    for run in runs:
        assert {p.name for p in (out / "runs" / run.id).iterdir()} == {"spec.yaml", "metrics.jsonl", "population.json"}
        assert runner.is_finished(out / "runs" / run.id, run.spec.to_dict())
    from hindsight.studies.report import write_report

    assert all(p.is_file() for p in write_report([out], tmp_path / "report").values())
    again = runner.run_study(study, runs, out, backend="ray", population=2)
    assert [s.state for s in again] == ["skipped"] * 4


class Cluster:
    """Ray nodes on this machine, each started by ``ray start`` in its own session and temp folder."""

    def __init__(self, base: Path):
        self.base, self.nodes = base, {}
        self.port, self.client_port = free_port(), free_port()

    def start(self, name: str, cpus: int = 1) -> None:
        temp = self.base / name
        temp.mkdir(parents=True)
        where = (
            ["--head", "--port", str(self.port), "--ray-client-server-port", str(self.client_port)]
            + ["--include-dashboard", "false"]
            if not self.nodes
            else ["--address", f"127.0.0.1:{self.port}"]
        )
        command = ["ray", "start", *where, "--num-cpus", str(cpus), "--temp-dir", str(temp), "--disable-usage-stats"]
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("ray")), *command[1:]],
            env={**os.environ, **CLUSTER_ENV},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.nodes[name] = (process.pid, temp)  # the node's processes stay in this session
        output, _ = process.communicate(timeout=240)
        assert process.returncode == 0, output

    def kill(self, name: str) -> None:
        """SIGKILL every process of the node: its session (the raylet's process group, and its workers,
        which run in process groups of their own)."""
        session = self.nodes[name][0]
        for pid in (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getsid(pid) == session:
                    os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        for name in reversed(list(self.nodes)):
            self.kill(name)

    def working_dirs(self, name: str) -> list[Path]:
        """The trial working directories on node ``name`` (under its own temp folder)."""
        return sorted({p.resolve() for p in self.nodes[name][1].glob("session_*/artifacts/*/*/working_dirs/*")})


@pytest.fixture
def cluster():
    """A head and a worker node of one CPU each, the worker with its own temp folder; both killed after."""
    base = Path(tempfile.mkdtemp(prefix="hs-ray-", dir="/tmp"))  # short: Ray's socket paths must stay < 108
    nodes = Cluster(base)
    try:
        nodes.start("head")
        nodes.start("worker")
        yield nodes
    finally:
        nodes.stop()
        time.sleep(1)
        shutil.rmtree(base, ignore_errors=True)


def finish(process: subprocess.Popen, timeout: float = 420) -> str:
    output, _ = process.communicate(timeout=timeout)
    print(output)
    assert process.returncode == 0, output
    return output


def uninterrupted(study: Path, run_id: str, folder: Path) -> list[dict]:
    """The rows of ``run_id`` trained here in one go (as a study worker trains it)."""
    run = next(r for r in expand(load_study(study)) if r.id == run_id)
    assert runner.train_run(run.spec.to_dict(), str(folder), threads=1) is None
    return metrics_rows(folder / "metrics.jsonl")


def compare(name: str, resumed: list[dict], reference: list[dict]) -> None:
    columns = ("epoch", "env_steps", "eval/return_mean", "train/critic_loss")
    print(f"{name}, resumed | uninterrupted ({', '.join(columns)}; all {len(reference[0])} columns compared):")
    for a, b in zip(resumed, reference, strict=True):
        print(
            "  " + "  ".join(f"{a.get(c)!s:>8.8}" for c in columns),
            "|",
            "  ".join(f"{b.get(c)!s:>8.8}" for c in columns),
        )
    assert resumed == reference


@pytest.mark.slow
def test_two_node_study_through_ray_client(cluster, tmp_path):
    """2 methods x 2 seeds through Ray Client on a head and a worker node that share no folder: every
    run's files (W&B offline ones too) reach the storage path and the study folder."""
    study = write_study(tmp_path, {"logging.wandb": {"mode": "offline"}})
    out, storage = tmp_path / "out", tmp_path / "storage"
    env = {key: value for key, value in os.environ.items() if key != "WANDB_MODE"}
    address = f"ray://127.0.0.1:{cluster.client_port}"
    command = [
        "study",
        str(study),
        "--backend",
        "ray",
        "--address",
        address,
        "--storage",
        str(storage),
        "--connect-timeout",
        "120",
    ]
    print("hindsight", *command, "--out", str(out))
    process = hindsight(*command, "--out", str(out), env=env)
    output = finish(process)
    assert "4 of 4 runs finished" in output
    status = json.loads((out / "status.json").read_text())
    assert [r["state"] for r in status["runs"]] == ["done"] * 4 and status["backend"] == "ray"
    on_worker, on_head = ({d.name for d in cluster.working_dirs(node)} for node in ("worker", "head"))
    assert (
        on_worker and on_worker.isdisjoint(on_head) and on_worker | on_head == {r.id for r in expand(load_study(study))}
    )
    (experiment,) = storage.iterdir()
    for run in expand(load_study(study)):
        local = RunDir(out / "runs" / run.id)
        (stored,) = sorted((experiment / run.id).glob("checkpoint_*"))[-1:]
        stored_run = RunDir(stored / "runs" / run.id)
        assert stored_run.read_metrics() == local.read_metrics() and len(local.read_metrics()) == 3
        assert stored_run.checkpoint.read_bytes() == local.checkpoint.read_bytes()
        assert list((stored_run.path / "wandb").glob("offline-run-*")) and list(
            (local.path / "wandb").glob("offline-run-*")
        )
        assert runner.is_finished(local.path, run.spec.to_dict())
        node = "worker" if run.id in on_worker else "head"
        assert f"/{cluster.nodes[node][1].name}/session_" in local.log.read_text()  # trained in that node's folder
        print(f"{run.id}: trained on the {node} node; in storage: {stored.relative_to(storage)}/runs/{run.id}/")
        print("   ", sorted(p.name + "/" * p.is_dir() for p in stored_run.path.iterdir()))
    # the worker's runs wrote only under the worker's own folder (and the head's storage, through Ray)
    for run_id in on_worker:
        (trial,) = [d for d in cluster.working_dirs("worker") if d.name == run_id]
        assert RunDir(trial / "study" / "runs" / run_id).read_metrics() == RunDir(out / "runs" / run_id).read_metrics()


def _rows_on_node(cluster: Cluster, run_id: str) -> int:
    """How many rows the trial of ``run_id`` has logged in its working directory (on either node)."""
    trials = [d for node in ("head", "worker") for d in cluster.working_dirs(node) if d.name == run_id]
    return max((len(RunDir(d / "study" / "runs" / run_id).read_metrics()) for d in trials), default=0)


def notes(run_dir: Path) -> list[str]:
    """What the study wrote in a run's log: where and how each attempt started."""
    return [line for line in (run_dir / "log.txt").read_text().splitlines() if line.startswith("[hindsight study]")]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_run_on_a_killed_worker_node_resumes_on_the_head_row_for_row(cluster, tmp_path, request):
    """The worker node dies (every process of it killed) during a run that has reported
    checkpoints; Tune retries the trial on the head, it resumes from its last checkpoint, and its
    metrics.jsonl equals an uninterrupted run's row for row."""
    study = write_study(tmp_path, LONGER, grid={"seed": [0, 1]})
    out, storage = tmp_path / "out", tmp_path / "storage"
    address = f"127.0.0.1:{cluster.port}"
    # storage as a URI, through the same layer of Ray's (pyarrow's filesystems) as s3:// or gs://
    args = ["study", str(study), "--backend", "ray", "--address", address, "--storage", f"file://{storage}"]
    args += ["--out", str(out)]
    print("hindsight", *args, "--max-failures", "2")
    driver = hindsight(*args, "--max-failures", "2")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(driver.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    request.addfinalizer(lambda: driver.poll() is None and os.killpg(driver.pid, signal.SIGKILL))

    def victim() -> str | None:
        for trial in cluster.working_dirs("worker"):
            rows = RunDir(trial / "study" / "runs" / trial.name).read_metrics()
            if len(rows) >= 4 and list(storage.glob(f"*/{trial.name}/checkpoint_*")):
                return trial.name
        return None

    wait_for(lambda: victim() is not None, 240, "a run on the worker node with reported checkpoints")
    killed = victim()
    assert killed is not None
    trial = next(d for d in cluster.working_dirs("worker") if d.name == killed)
    rows_at_kill = len(RunDir(trial / "study" / "runs" / killed).read_metrics())
    cluster.kill("worker")
    print(f"killed the worker node during {killed} after epoch {rows_at_kill}")
    driver.wait(timeout=420)
    reader.join(timeout=10)
    output = "".join(lines)
    print(output)
    assert driver.returncode == 0, output
    assert "retry 1 of 2" in output and "2 of 2 runs finished" in output
    log = (out / "runs" / killed / "log.txt").read_text()
    head = cluster.nodes["head"][1].name
    assert "resumed from its last checkpoint" in log and f"/{head}/session_" in log.split("resumed from")[1]
    print(*notes(out / "runs" / killed), sep="\n")
    resumed_epoch = int(log.split("metrics up to epoch ")[1].split(")")[0])
    assert 1 <= resumed_epoch <= rows_at_kill < 14  # it went on from a checkpoint, not from the start
    compare(killed, metrics_rows(out / "runs" / killed / "metrics.jsonl"), uninterrupted(study, killed, tmp_path / "u"))


@pytest.mark.slow
def test_a_killed_driver_is_resumed_by_the_same_command_without_retraining(cluster, tmp_path):
    """The study's driver is SIGKILLed with runs finished and runs half-way; the same command restores
    the Tune experiment: finished runs are not trained again, the interrupted ones resume row for row."""
    study = write_study(tmp_path, {**LONGER, "train.epochs": 30})
    out, storage = tmp_path / "out", tmp_path / "storage"
    address = f"127.0.0.1:{cluster.port}"
    args = ["study", str(study), "--backend", "ray", "--address", address, "--storage", str(storage), "--out", str(out)]
    print("hindsight", *args)
    # Tune saves the experiment's state (what a restore reads) every second instead of every 10 s (its
    # default): the run to kill need not outlast 10 s of checkpoints to be resumable
    driver = hindsight(*args, env={**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1"})

    def states() -> dict:
        try:
            return {r["id"]: r for r in json.loads((out / "status.json").read_text())["runs"]}
        except (OSError, ValueError):
            return {}

    checkpointed: dict[str, float] = {}  # run -> when its trial's first checkpoint reached storage

    def half_way() -> bool:
        """A run is done (in the study folder), and one has had a checkpoint in storage for 3 s (the
        experiment's state has it too) with 10 epochs still to go."""
        for trial in [d for node in ("head", "worker") for d in cluster.working_dirs(node)]:
            if list(storage.glob(f"*/{trial.name}/checkpoint_*")):
                checkpointed.setdefault(trial.name, time.monotonic())
        now = states()
        return any(r["state"] == "done" for r in now.values()) and any(
            now[run_id]["state"] == "running" and time.monotonic() - since > 3 and _rows_on_node(cluster, run_id) <= 20
            for run_id, since in checkpointed.items()
        )

    try:
        wait_for(half_way, 300, "a finished run and one half-way")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before = states()
    finished = {run_id for run_id, r in before.items() if r["state"] == "done"}
    stamps = {run_id: (out / "runs" / run_id / "checkpoint.pt").stat().st_mtime_ns for run_id in finished}
    at_kill = {run_id: (r["state"], f"{_rows_on_node(cluster, run_id)} rows") for run_id, r in before.items()}
    print("killed the driver with the runs at:", at_kill)

    output = finish(hindsight(*args), timeout=420)
    assert "continuing the Tune experiment" in output and "4 of 4 runs finished" in output
    after = states()
    assert all(after[run_id]["state"] == "skipped" for run_id in finished)
    assert all((out / "runs" / run_id / "checkpoint.pt").stat().st_mtime_ns == stamps[run_id] for run_id in finished)
    assert all(r["state"] in ("done", "skipped") for r in after.values())
    resumed = []
    for run_id in after:
        log = (out / "runs" / run_id / "log.txt").read_text()
        assert log.count("] started on node") == 1, log  # trained once from the start, never again
        if "resumed from its last checkpoint" in log:
            resumed.append(run_id)
    assert resumed, "no run was resumed after the driver died"
    for run_id in resumed:
        print(*notes(out / "runs" / run_id), sep="\n")
        compare(
            run_id,
            metrics_rows(out / "runs" / run_id / "metrics.jsonl"),
            uninterrupted(study, run_id, tmp_path / run_id),
        )
