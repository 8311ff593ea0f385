"""Studies on Ray Tune: each job (a run, or a population of seeds) is one trial of a function trainable.

A trial trains in its own working directory on whichever node Tune places it, in a private copy of the
study layout (``runs/<id>/``, ``populations/<job>/``). It reports each epoch's rows to Tune, and each
checkpoint the run writes, with the job's run directories (spec, metrics, log, W&B files), as a Tune
checkpoint that Ray's storage layer copies to ``RayOptions.storage`` (a local path, NFS or an object-store
URI): nodes share no folder. A failed trial is retried (``FailureConfig(max_failures)``) from its last
checkpoint, and resumes exactly (``execute(resume=True)``); a study whose driver died continues with
``Tuner.restore`` from the same storage. The driver copies each ended job's directories from storage into
the study folder, which ends with a local study's layout.

The driver learns of trials through a Tune callback that posts to an actor (the inbox) on the driver's
node; the callback finds it by name, so a restored experiment reaches the new driver, and a second driver
of the same experiment is refused while the first lives.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.logger import JsonLoggerCallback
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from hindsight.rundir import RunDir
from hindsight.studies.layout import RUNS_DIR, TUNE_DIR
from hindsight.studies.runner import (
    BackendError,
    Job,
    Progress,
    RayOptions,
    RunStatus,
    _settle,
    plan_jobs,
    train_job,
)
from hindsight.studies.spec import PlannedRun, Study

NAMESPACE = "hindsight"  # the inboxes' Ray namespace
POLL_S = 0.5  # how often a trial looks for new rows and checkpoints
INCOMING = ".incoming-"  # the study folder's temporary folders of trial files on their way from storage
# Tune without its own output: the legacy reporter (silent at verbose=0, the new one is not), of its loggers only
# the JSON one (run_on_ray adds it; the TensorBoard one refuses list-valued metrics), no traceback per trial
# failure (the study shows a line and writes error.txt) and no warning when checkpoints come seconds apart
QUIET_TUNE = {
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}
FORWARDED_ENV = ("MUJOCO_GL", "WANDB_MODE")  # passed on to every Ray worker of a study


# ----- reaching Ray -----
def connect(address: str | None, timeout_s: float) -> bool:
    """Initialize Ray: this process's Ray if it has one, else the cluster at ``address`` (within
    ``timeout_s``: a closed or silent address is a BackendError, never a hang), else a new local Ray.
    Returns whether this call initialized Ray (and so should shut it down)."""
    if ray.is_initialized():
        return False
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    options: dict[str, Any] = {
        "address": address,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        "runtime_env": {"env_vars": {**env, **QUIET_TUNE}},
    }
    if address is None:
        try:
            ray.init(**options, include_dashboard=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BackendError(f"cannot start Ray: {_last_line(str(exc))}") from None
        return True
    deadline = time.monotonic() + timeout_s
    if address != "auto":
        _probe(address, timeout_s)
    outcome: dict[str, BaseException] = {}

    for name in ("ray._private.worker", "ray.util.client.logsclient"):
        logging.getLogger(name).addFilter(_NO_SIGTERM)

    def start() -> None:
        try:
            ray.init(**options)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=start, name="ray-init", daemon=True)  # ray.init may wait on and on
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        raise BackendError(f"no answer from Ray at {address} within {timeout_s:g} s (is a Ray cluster running there?)")
    if "error" in outcome:
        raise BackendError(f"cannot connect to Ray at {address}: {_last_line(str(outcome['error']))}")
    return True


class _Without(logging.Filter):
    """Drops records whose message contains ``text`` (and that carry an ``error``, when given)."""

    def __init__(self, text: str, error: type[BaseException] | None = None):
        super().__init__()
        self.text, self.error = text, error

    def filter(self, record: logging.LogRecord) -> bool:
        if self.text not in str(record.msg):
            return True
        return self.error is not None and not (record.exc_info and isinstance(record.exc_info[1], self.error))


# Ray warns that ray.init in a thread sets no SIGTERM handler (here, and from Ray Client's server)
_NO_SIGTERM = _Without("SIGTERM handler is not set")
# What a restored Tune experiment logs that does no harm: its trials that never reported, and an old checkpoint
# it fails to delete again (the state it was restored from was saved before the deletion)
_TUNE_NOISE = {
    "ray.tune.execution.tune_controller": _Without("Trial %s: Error handling checkpoint", FileNotFoundError),
    "ray.tune.analysis.experiment_analysis": _Without("Failed to fetch metrics for"),
}


def _probe(address: str, timeout_s: float) -> None:
    """Open (and close) a TCP connection to ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise BackendError(f"--address {address}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except TimeoutError:
        raise BackendError(f"cannot reach Ray at {address}: no answer within {timeout_s:g} s") from None
    except OSError as exc:
        raise BackendError(f"cannot reach Ray at {address}: {exc.strerror or exc}") from None


# ----- the trial -----
def _job_config(job: Job, out: Path, options: RayOptions) -> dict[str, Any]:
    """A job as a trial's config (plain data; paths relative to the study folder)."""
    runtime = job.spec.get("runtime") or {}
    cpus = options.cpus_per_job or runtime.get("threads") or 1
    cuda = str(runtime.get("device", "cpu")).startswith("cuda")
    gpus = options.gpus_per_job if options.gpus_per_job is not None else (1.0 if cuda else 0.0)
    return {
        "id": job.id,
        "dir": job.directory.relative_to(out).as_posix(),
        "members": None if job.members is None else [m.relative_to(out).as_posix() for m in job.members],
        "spec": job.spec,
        "cpus": int(cpus),
        "gpus": float(gpus),
    }


def trial_resources(config: dict[str, Any]) -> tune.PlacementGroupFactory:
    """What a trial reserves: its job's CPUs and GPU share."""
    job = config["job"]
    bundle = {"CPU": job["cpus"], **({"GPU": job["gpus"]} if job["gpus"] else {})}
    return tune.PlacementGroupFactory([bundle])


def trial_dirname(trial: Any) -> str:
    """A trial's folder in the experiment: its job's id (shortened with a hash when long)."""
    job_id = str(trial.config["job"]["id"])
    return job_id if len(job_id) <= 100 else f"{job_id[:80]}-{_digest(job_id)}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _stamps(paths: tuple[Path, ...]) -> list[tuple[int, int, int] | None]:
    """(inode, size, mtime) of each file, None for a missing one: changes whenever a file is replaced."""
    stamps: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            info = path.stat()
        except FileNotFoundError:
            stamps.append(None)
            continue
        stamps.append((info.st_ino, info.st_size, info.st_mtime_ns))
    return stamps


def _copy_tree(source: Path, dest: Path, skip: set[Path]) -> None:
    """Copy the files under ``source`` to ``dest`` but ``skip`` and temporaries; files that vanish while
    copying (W&B's own temporaries) are left out."""
    for folder, _, names in os.walk(source):
        for name in names:
            path = Path(folder, name)
            if path in skip or name.endswith(".tmp"):
                continue
            target = dest / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                shutil.copy2(path, target)


def snapshot(root: Path, job_dir: RunDir, dest: Path) -> None:
    """Copy a trial's study tree ``root`` to ``dest`` as one consistent checkpoint while training goes on.

    The job directory's checkpoint files (``RunDir.checkpoint_files``) are copied first, again until none
    of them was replaced during the copy; then everything else but temporaries. Metrics files only grow, so
    each holds at least the rows the checkpoint has seen (a resume drops the rest).
    """
    state = job_dir.checkpoint_files
    target = dest / job_dir.path.relative_to(root)
    while True:
        before = _stamps(state)
        shutil.rmtree(dest, ignore_errors=True)
        target.mkdir(parents=True)
        for path in state:
            with contextlib.suppress(FileNotFoundError):
                shutil.copy2(path, target / path.name)
        if _stamps(state) == before:
            break
    _copy_tree(root, dest, set(state))


class _Reporter:
    """Reports a training job's new rows to Tune, and each new checkpoint with them."""

    def __init__(self, root: Path, job: dict[str, Any], work: Path):
        self.root, self.work = root, work
        self.job_dir = RunDir(root / job["dir"])
        self.members = [RunDir(root / m) for m in job["members"]] if job["members"] else [self.job_dir]
        self.ids = [m.path.name for m in self.members]
        self.reported = min(len(m.read_metrics()) for m in self.members)
        self.stamps = _stamps(self.job_dir.checkpoint_files)

    def poll(self, final: bool = False) -> None:
        """Report the rows every member has logged since the last call; with them a checkpoint when the
        job's checkpoint files changed (or ``final``: the job ended, everything is written)."""
        rows = [m.read_metrics() for m in self.members]
        ready = min(len(r) for r in rows)
        stamps = _stamps(self.job_dir.checkpoint_files)
        checkpoint = final or (stamps[0] is not None and stamps != self.stamps)
        for index in range(self.reported, ready - 1 if checkpoint else ready):
            tune.report(self._metrics(rows, index))
        self.reported = max(self.reported, ready)
        if not checkpoint:
            return
        self.stamps = stamps
        dest = self.work / "checkpoint"
        snapshot(self.root, self.job_dir, dest)
        tune.report(self._metrics(rows, ready - 1), checkpoint=tune.Checkpoint.from_directory(str(dest)))
        shutil.rmtree(dest, ignore_errors=True)

    def _metrics(self, rows: list[list[dict[str, Any]]], index: int) -> dict[str, Any]:
        if index < 0:
            return {"epoch": 0, "runs": {}}
        return {"epoch": rows[0][index]["epoch"], "runs": dict(zip(self.ids, (r[index] for r in rows), strict=True))}


def _note(job_dir: RunDir, text: str) -> None:
    job_dir.path.mkdir(parents=True, exist_ok=True)
    with job_dir.log.open("a") as log:
        log.write(f"[hindsight study] {text}\n")


def train_trial(config: dict[str, Any]) -> None:
    """The function trainable: continue the job ``config["job"]`` from the trial's last checkpoint (if
    any) in the trial's working directory, reporting rows and checkpoints as it trains."""
    job = config["job"]
    work = Path.cwd()  # the trial's own working directory on this node
    root = work / "study"
    shutil.rmtree(root, ignore_errors=True)  # what an earlier attempt left here is older than its checkpoint
    restored = tune.get_checkpoint()
    if restored is not None:
        restored.to_directory(str(root))
    job_dir = RunDir(root / job["dir"])
    members = None if job["members"] is None else [RunDir(root / m) for m in job["members"]]
    reporter = _Reporter(root, job, work)
    context = tune.get_context()
    resources = context.get_trial_resources().bundles[0]
    node = ray.get_runtime_context().get_node_id()[:8]
    start = f"resumed from its last checkpoint (metrics up to epoch {reporter.reported})" if restored else "started"
    _note(job_dir, f"{start} on node {node} in {work} with {resources}")
    failure: list[BaseException] = []

    def train() -> None:
        try:
            train_job(job["spec"], job_dir, job["cpus"], members)
        except BaseException as exc:  # noqa: BLE001 - raised again in the trial's thread
            failure.append(exc)

    thread = threading.Thread(target=train, name="hindsight-train", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(POLL_S)
        if thread.is_alive():
            reporter.poll()
    if failure:
        raise failure[0]
    reporter.poll(final=True)


# ----- the driver -----
@ray.remote(num_cpus=0)
class Inbox:
    """Events from the Tune callback, kept until the driver takes them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []

    def put(self, event: tuple[str, str, Any]) -> None:
        self.events.append(event)

    def take(self) -> list[tuple[str, str, Any]]:
        events, self.events = self.events, []
        return events


class Events(tune.Callback):
    """Posts (kind, job id, payload) to the inbox actor named ``inbox``: start, result (the rows), retry
    and failed (the error text), done (the last checkpoint). Kept in the experiment's state, so a
    restored experiment posts to the new driver's inbox of the same name."""

    def __init__(self, inbox: str):
        self.inbox = inbox
        self._actor: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"inbox": self.inbox, "_actor": None}

    def _post(self, kind: str, trial: Any, payload: Any = None) -> None:
        try:
            if self._actor is None:
                self._actor = ray.get_actor(self.inbox, namespace=NAMESPACE)
            self._actor.put.remote((kind, trial.config["job"]["id"], payload))
        except ValueError:  # no driver listens (it died): the experiment goes on, its progress is not shown
            self._actor = None

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._post("start", trial)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        self._post("result", trial, result.get("runs"))

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._post("retry", trial, (trial.num_failures, _error_text(trial)))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._post("done", trial, trial.checkpoint)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._post("failed", trial, (_error_text(trial), trial.checkpoint))


def _error_text(trial: Any) -> str:
    """The trial's latest error as Tune wrote it (its error file holds one entry per failure)."""
    try:
        text = Path(trial.error_file).read_text() if trial.error_file else ""
    except OSError:
        text = ""
    return text.rpartition("Failure # ")[2].partition("\n")[2].strip() or "the trial failed"


def experiment_name(study: Study, runs: list[PlannedRun], out: Path, population: int) -> str:
    """The Tune experiment of a study: its name and a hash of all its jobs (ids and specs), so that the
    same command finds it again and a changed study starts another."""
    jobs = plan_jobs([RunStatus(run) for run in runs], out, population)
    return f"{study.name}-{_digest(json.dumps([[job.id, job.spec] for job in jobs], sort_keys=True, default=str))}"


def _join(storage: str, name: str) -> str:
    return f"{storage.rstrip('/')}/{name}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "the trial failed"


class _Driver:
    """Turns the inbox's events into run statuses and the study folder's files."""

    def __init__(self, jobs: list[Job], out: Path, progress: Progress, max_failures: int):
        self.jobs = {job.id: job for job in jobs}
        self.out, self.progress, self.max_failures = out, progress, max_failures
        self.ended: set[str] = set()

    def handle(self, kind: str, job_id: str, payload: Any) -> None:
        job = self.jobs.get(job_id)
        if job is None or job_id in self.ended:
            return  # a job this study had finished before (a restored experiment has it too)
        if kind in ("start", "result"):
            for status in job.statuses:
                if status.state != "running":
                    status.state, status.started = "running", time.monotonic()
                    self.progress.changed(status)
        if kind == "result":
            for status in job.statuses:
                row = (payload or {}).get(status.run.id)
                if row:
                    status.observe(row)
        elif kind == "retry":
            failures, text = payload
            for status in job.statuses:
                status.error = f"retry {failures} of {self.max_failures}: {_last_line(text)}"
                self.progress.changed(status)
        elif kind == "done":
            self.finish(job, payload, None)
        elif kind == "failed":
            text, checkpoint = payload
            self.finish(job, checkpoint, text)

    def finish(self, job: Job, checkpoint: Any, error: str | None) -> None:
        """Copy the job's directories from its last checkpoint into the study folder and settle its runs."""
        self.ended.add(job.id)
        if checkpoint is not None:
            try:
                self.fetch(job, checkpoint)
            except OSError as exc:
                error = f"cannot copy the trial's files from storage: {exc}"
        for status in job.statuses:
            status.error = None
        if error is not None:
            for where in [job.directory, *(job.members or [])]:
                where.mkdir(parents=True, exist_ok=True)
                RunDir(where).error.write_text(error.rstrip() + "\n")
        for status in job.statuses:
            _settle(status, self.out / RUNS_DIR / status.run.id, None)
            status.tick()
            self.progress.changed(status)

    def fetch(self, job: Job, checkpoint: Any) -> None:
        """Replace the job's directories in the study folder with the checkpoint's."""
        incoming = Path(tempfile.mkdtemp(prefix=INCOMING, dir=self.out))
        try:
            checkpoint.to_directory(str(incoming))
            for directory in [job.directory, *(job.members or [])]:
                source = incoming / directory.relative_to(self.out)
                if source.is_dir():
                    shutil.rmtree(directory, ignore_errors=True)
                    directory.parent.mkdir(parents=True, exist_ok=True)
                    source.replace(directory)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)

    def unsettled(self) -> list[Job]:
        return [job for job_id, job in self.jobs.items() if job_id not in self.ended]


def run_on_ray(
    study: Study,
    runs: list[PlannedRun],
    jobs: list[Job],
    out: Path,
    progress: Progress,
    options: RayOptions,
    workers: int | None,
    population: int,
    poll_s: float,
) -> None:
    """Train ``jobs`` as the trials of the study's Tune experiment (restored when one is in storage),
    at most ``workers`` at once when given; each run's status and files end as a local study's."""
    owns = connect(options.address, options.connect_timeout_s)
    for leftover in out.glob(f"{INCOMING}*"):  # a download a killed driver left half done
        shutil.rmtree(leftover, ignore_errors=True)
    driver = _Driver(jobs, out, progress, options.max_failures)
    inbox = None
    try:
        storage = options.storage or str(out / TUNE_DIR)
        if "://" not in storage:  # a local path: Tune wants it absolute
            storage = str(Path(storage).expanduser().resolve())
        name = experiment_name(study, runs, out, population)
        path = _join(storage, name)
        try:
            inbox = Inbox.options(  # type: ignore[attr-defined]
                name=name,
                namespace=NAMESPACE,
                scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False),
            ).remote()
        except ValueError:
            raise BackendError(
                f"another `hindsight study` is driving the Tune experiment {path} (one whose Ray Client "
                "connection was lost holds it for about 30 s more)"
            ) from None
        for key, value in QUIET_TUNE.items():
            os.environ.setdefault(key, value)
        for logger, noise in _TUNE_NOISE.items():
            logging.getLogger(logger).addFilter(noise)
        trainable = tune.with_resources(train_trial, trial_resources)
        if tune.Tuner.can_restore(path):
            progress.note(f"continuing the Tune experiment {path}")
            tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
        else:
            progress.note(f"Tune experiment: {path}")
            tuner = tune.Tuner(
                trainable,
                param_space={"job": tune.grid_search([_job_config(job, out, options) for job in jobs])},
                tune_config=tune.TuneConfig(max_concurrent_trials=workers, trial_dirname_creator=trial_dirname),
                run_config=tune.RunConfig(
                    name=name,
                    storage_path=storage,
                    failure_config=tune.FailureConfig(max_failures=options.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                    callbacks=[Events(name), JsonLoggerCallback()],
                    verbose=0,
                ),
            )
        outcome: dict[str, Any] = {}

        def fit() -> None:
            try:
                outcome["results"] = tuner.fit()
            except BaseException as exc:  # noqa: BLE001 - handed to the driver's thread
                outcome["error"] = exc

        thread = threading.Thread(target=fit, name="tune-fit", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(poll_s)
            for event in ray.get(inbox.take.remote()):
                driver.handle(*event)
            for job in driver.unsettled():
                for status in job.statuses:
                    status.tick()
            progress.tick()
        for event in ray.get(inbox.take.remote()):
            driver.handle(*event)
        if "error" in outcome:
            text = f"Ray Tune stopped: {_last_line(str(outcome['error']))}"
            for job in driver.unsettled():
                driver.finish(job, None, text)
            raise BackendError(text)
        _sweep(driver, outcome["results"], path)
    except KeyboardInterrupt:
        for job in driver.unsettled():
            for status in job.statuses:
                if status.state == "running":
                    status.state, status.error = "interrupted", "interrupted by the user"
        progress.save()
        raise
    finally:
        if inbox is not None:
            ray.kill(inbox)  # its name is free for the next driver of this experiment
        if owns:
            ray.shutdown()


def _sweep(driver: _Driver, results: Any, path: str) -> None:
    """Settle the jobs the events left open from Tune's results: trials that ended before this driver
    (a restored experiment), or whose events were lost."""
    for result in results:
        job = driver.jobs.get(result.config["job"]["id"])
        if job is not None and job.id not in driver.ended:
            driver.finish(job, result.checkpoint, None if result.error is None else str(result.error))
    for job in driver.unsettled():
        driver.finish(job, None, f"not a trial of the Tune experiment {path} (finished before it started?)")
