"""Running a study: skip finished runs, train the rest in worker processes or Ray Tune trials, record every outcome."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import attrs
import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from hindsight.rundir import RunDir
from hindsight.specs import as_today, identity
from hindsight.studies.layout import MANIFEST_FILE, POPULATIONS_DIR, RUNS_DIR, STATUS_FILE, STUDY_FILE
from hindsight.studies.spec import PlannedRun, Study, spec_hash


def _first_difference(saved: Any, spec: Any, path: str = "") -> str | None:
    """The first dotted path where ``saved`` disagrees with ``spec``; fields only ``saved`` has are ignored
    (a newer hindsight in a worker may fill in parameters this process does not know)."""
    if not isinstance(spec, dict):
        return None if saved == spec else path or "<spec>"
    if not isinstance(saved, dict):
        return path or "<spec>"
    for key, value in spec.items():
        where = f"{path}.{key}" if path else str(key)
        found = _first_difference(saved[key], value, where) if key in saved else where
        if found:
            return found
    return None


def unfinished_reason(run_dir: Path, spec: dict[str, Any]) -> str | None:
    """Why ``run_dir`` does not hold a completed run of ``spec`` (None when it does)."""
    run = RunDir(run_dir)
    rows = run.read_metrics()
    epoch, epochs = (rows[-1].get("epoch", 0) if rows else 0), spec["train"]["epochs"]
    if epoch < epochs:
        return f"stopped after epoch {epoch} of {epochs}"
    if not run.checkpoint_owner().checkpoint.is_file():
        return f"no {run.checkpoint.name}"
    saved = run.read_spec()
    if saved is None:
        return f"no readable {run.spec.name}"
    where = _first_difference(identity(as_today(saved)), identity(spec))
    return None if where is None else f"its {run.spec.name} differs from the study's spec at {where}"


def is_finished(run_dir: Path, spec: dict[str, Any]) -> bool:
    """Whether ``run_dir`` holds a completed run of ``spec``: all epochs logged, a checkpoint (its own or its
    population's), the same spec but for the name."""
    return unfinished_reason(run_dir, spec) is None


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors included) to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _train(spec: Any, job: RunDir, members: list[RunDir] | None) -> None:
    """Continue the run (or, with its members' run directories, the population) from its checkpoint in
    ``job``; start over when its spec changed beyond resumable fields, or when a member's directory was
    trained since by something else (its population.json no longer names this job)."""
    from hindsight.train.run import execute, spec_mismatch

    saved = job.read_spec()
    if (
        saved is None
        or spec_mismatch(saved, spec.to_dict())
        or any(member.population() != RunDir(job.path.resolve()) for member in members or [])
    ):
        for path in job.checkpoint_files:
            path.unlink(missing_ok=True)
    # without a checkpoint every member starts afresh: rows logged before its first one are recomputed
    afresh = not any(path.exists() for path in job.checkpoint_files)
    for path in (job.metrics, *[m.metrics for m in members or []]) if afresh else ():
        path.unlink(missing_ok=True)
    job.error.unlink(missing_ok=True)
    if members is None:
        job.population_pointer.unlink(missing_ok=True)  # the run is its own now, not a population's member
    for member in members or []:
        member.path.mkdir(parents=True, exist_ok=True)
        for path in (*member.checkpoint_files, member.error):  # a plain run's checkpoint there is superseded
            path.unlink(missing_ok=True)
        member.point_to_population(job, spec.run.seeds)
    execute(spec, job, progress=False, resume=True, members=None if members is None else [m.path for m in members])


def train_job(spec: dict[str, Any], job: RunDir, threads: int, members: list[RunDir] | None = None) -> None:
    """Validate ``spec`` with ``threads`` torch threads (its ``runtime.threads``) and continue it in ``job``
    (see ``_train``), its output going to job/log.txt; errors are raised."""
    from hindsight.specs import validate

    job.path.mkdir(parents=True, exist_ok=True)
    with _output_to(job.log):
        runtime = {**spec.get("runtime", {}), "threads": threads}
        _train(validate({**spec, "runtime": runtime}), job, members)


def train_run(spec: dict[str, Any], run_dir: str, threads: int, members: list[str] | None = None) -> str | None:
    """Train one run (or, given its members' run directories, a population) in this process with
    ``threads`` torch threads (its ``runtime.threads``), its output going to run_dir/log.txt.

    Returns None on success, else the error's last line (its traceback is written to run_dir/error.txt and
    to each member's).
    """
    job = RunDir(run_dir)
    member_dirs = None if members is None else [RunDir(m) for m in members]
    try:
        train_job(spec, job, threads, member_dirs)
        return None
    except Exception as exc:  # noqa: BLE001 - a failing run is recorded, never raised into the study
        text = traceback.format_exc()
        for where in [job, *(member_dirs or [])]:
            with contextlib.suppress(OSError):
                where.path.mkdir(parents=True, exist_ok=True)
                where.error.write_text(text)
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _process_main(spec: dict[str, Any], run_dir: str, threads: int, members: list[str] | None) -> None:
    sys.exit(0 if train_run(spec, run_dir, threads, members) is None else 1)


class BackendError(Exception):
    """A backend cannot start; the message is meant for the user."""


class LocalBackend:
    """Each run in its own spawned process, so a crash (even a segfault) takes down only that run."""

    def __init__(self, workers: int, threads: int | None = None):
        self._context = multiprocessing.get_context("spawn")
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)  # torch threads of each job

    def start(self, spec: dict[str, Any], run_dir: Path, members: list[Path] | None = None) -> Any:
        """Train ``spec`` into ``run_dir``; a population's members write the run directories ``members``."""
        paths = None if members is None else [str(m) for m in members]
        process = self._context.Process(target=_process_main, args=(spec, str(run_dir), self.threads, paths))
        process.start()
        return process

    def poll(self, handle: Any) -> tuple[bool, str | None]:
        """(ended, why the worker died when it did not return normally)."""
        if handle.is_alive():
            return False, None
        handle.join()
        code = handle.exitcode
        return True, None if code in (0, 1) else f"worker process died (exit code {code})"

    def cancel(self, handle: Any) -> None:
        handle.terminate()
        handle.join()

    def close(self) -> None:
        pass


@attrs.frozen
class RayOptions:
    """How a study runs on Ray Tune (``hindsight.studies.tune``).

    Attributes:
        address: the cluster (``HOST:PORT`` of its GCS, ``ray://HOST:PORT`` for Ray Client, ``auto``); None
            starts Ray on this machine, or uses the Ray this process already initialized.
        storage: where trials' checkpoints and run directories go (a local path, NFS, or a URI such as
            ``s3://bucket/studies``); None: ``<study dir>/tune`` on this machine.
        max_failures: retries of a failed trial, each from its last checkpoint.
        connect_timeout_s: how long to wait for ``address`` to answer.
        cpus_per_job: CPUs a trial reserves (its torch threads too); None: the spec's ``runtime.threads``.
        gpus_per_job: GPUs (a fraction shares one) a trial reserves; None: 1 for a CUDA spec, else 0.
    """

    address: str | None = None
    storage: str | None = None
    max_failures: int = 3
    connect_timeout_s: float = 30.0
    cpus_per_job: int | None = None
    gpus_per_job: float | None = None


@attrs.define
class RunStatus:
    """What the study knows of one run while it goes on."""

    run: PlannedRun
    state: str = "pending"  # pending, running, done, skipped (finished before), failed, interrupted
    epoch: int = 0
    env_steps: int = 0
    eval_return: float | None = None
    started: float | None = None
    seconds: float = 0.0
    error: str | None = None
    population: str | None = None  # the population job that trains it, if any

    def refresh(self, run_dir: Path) -> None:
        """Read the latest epoch, env steps and eval return from the run's metrics file."""
        rows = RunDir(run_dir).read_metrics()
        if rows:
            self.epoch, self.env_steps = rows[-1]["epoch"], rows[-1]["env_steps"]
            returns = [r["eval/return_mean"] for r in rows if r.get("eval/return_mean") is not None]
            self.eval_return = returns[-1] if returns else None
        self.tick()

    def observe(self, row: dict[str, Any]) -> None:
        """Take the epoch, env steps and eval return (when it has one) of a newly reported metrics row."""
        self.epoch, self.env_steps = row["epoch"], row["env_steps"]
        if row.get("eval/return_mean") is not None:
            self.eval_return = row["eval/return_mean"]
        self.tick()

    def tick(self) -> None:
        """Bring the running time up to date."""
        if self.started is not None:
            self.seconds = time.monotonic() - self.started

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.run.manifest(),
            "state": self.state,
            "epoch": self.epoch,
            "env_steps": self.env_steps,
            "eval_return": self.eval_return,
            "seconds": round(self.seconds, 1),
            "error": self.error,
            "population": self.population,
        }

    def cells(self) -> list[str]:
        """The progress line: run, state, epoch, env steps, last eval return, time, error."""
        ret = "-" if self.eval_return is None else f"{self.eval_return:.3f}"
        return [
            self.run.id,
            self.state,
            f"{self.epoch}/{self.run.spec.run.train.epochs}",
            f"{self.env_steps:,}",
            ret,
            f"{self.seconds:.0f}s",
            self.error or "",
        ]

    def line(self) -> str:
        """The progress line as plain text, for logs."""
        run, state, epoch, steps, ret, seconds, error = self.cells()
        text = f"{state:<8} {run}  epoch {epoch}  steps {steps}  eval return {ret}  {seconds}"
        return f"{text}  {_shorten(error)}" if error else text


def _shorten(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


_STYLE = {"done": "green", "skipped": "dim", "failed": "red", "running": "yellow", "interrupted": "red"}


def status_table(statuses: list[RunStatus]) -> Table:
    """One line per run."""
    table = Table(show_header=True, header_style="bold", pad_edge=False)
    for column in ("run", "state", "epoch", "env steps", "eval return", "time"):
        table.add_column(column, no_wrap=True)
    table.add_column("error", no_wrap=True, overflow="ellipsis", max_width=60)
    for status in statuses:
        table.add_row(*status.cells(), style=_STYLE.get(status.state))
    return table


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def prepare_study_dir(study: Study, runs: list[PlannedRun], out: Path) -> None:
    """Write study.resolved.yaml and manifest.json (the report reads the manifest)."""
    (out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    (out / STUDY_FILE).write_text(yaml.safe_dump(study.to_dict(), sort_keys=False))
    _write_json(out / MANIFEST_FILE, {"study": study.name, "runs": [r.manifest() for r in runs]})


def initial_statuses(runs: list[PlannedRun], out: Path) -> list[RunStatus]:
    """``skipped`` for runs already finished under the same spec, ``pending`` for the rest."""
    statuses = []
    for run in runs:
        status = RunStatus(run)
        if is_finished(out / RUNS_DIR / run.id, run.spec.to_dict()):
            status.state = "skipped"
            status.refresh(out / RUNS_DIR / run.id)
        statuses.append(status)
    return statuses


@attrs.define
class Job:
    """What one worker trains: a plain run into its run directory, or a population of runs that differ only
    in their seed, into ``populations/<id>/`` with each member writing its run's directory."""

    id: str
    directory: Path
    spec: dict[str, Any]
    statuses: list[RunStatus]
    members: list[Path] | None = None  # the members' run directories, for a population

    def start(self, engine: Any) -> Any:
        return engine.start(self.spec, self.directory, self.members)


def _population_spec(runs: list[PlannedRun]) -> dict[str, Any]:
    """The spec training ``runs`` (differing only in seed) as one population; unnamed, so that each member
    is named after its run directory."""
    spec = runs[0].spec.to_dict()
    spec.update(name=None, seed=runs[0].seed, seeds=[run.seed for run in runs])
    return spec


def plan_jobs(statuses: list[RunStatus], out: Path, population: int = 1) -> list[Job]:
    """The pending runs as jobs, seed by seed (so that a study stopped early still covers every method).

    With ``population`` > 1, the pending runs of a configuration (same grid values but the seed, same
    spec) are packed, in seed order, up to ``population`` per job; a job of one run is a plain run.
    """
    pending = sorted((s for s in statuses if s.state == "pending"), key=lambda s: s.run.seed)
    groups: dict[tuple[str, str], list[RunStatus]] = {}
    for status in pending:
        packable = population > 1 and status.run.spec.run.seeds is None
        key = (status.run.config, spec_hash(status.run.spec.to_dict())) if packable else (status.run.id, "")
        groups.setdefault(key, []).append(status)
    jobs = []
    for group in groups.values():
        for start in range(0, len(group), population):
            chunk = group[start : start + population]
            if len(chunk) == 1:
                run = chunk[0].run
                jobs.append(Job(run.id, out / RUNS_DIR / run.id, run.spec.to_dict(), chunk))
                continue
            seeds = "+".join(str(s.run.seed) for s in chunk)
            job_id = f"{chunk[0].run.config},seed={seeds}" if chunk[0].run.config else f"seed={seeds}"
            for status in chunk:
                status.population = job_id
            jobs.append(
                Job(
                    job_id,
                    out / POPULATIONS_DIR / job_id,
                    _population_spec([s.run for s in chunk]),
                    chunk,
                    [out / RUNS_DIR / s.run.id for s in chunk],
                )
            )
    return sorted(jobs, key=lambda job: job.statuses[0].run.seed)


def make_backend(workers: int, threads: int | None = None) -> LocalBackend:
    """The local backend with ``workers`` processes of ``threads`` torch threads (None: an equal share of
    the machine's cores)."""
    return LocalBackend(workers, threads)


class Progress:
    """What a study shows while it runs: status.json (rewritten at each change), a printed line per state
    change (off a terminal; on one, a live table) and every ``report_s`` seconds a line per running run."""

    def __init__(
        self, study: str, backend: str, statuses: list[RunStatus], out: Path, console: Console, report_s: float
    ):
        self.study, self.backend, self.statuses, self.out = study, backend, statuses, out
        self.console, self.report_s = console, report_s
        self._live = Live(status_table(statuses), console=console, auto_refresh=False) if console.is_terminal else None
        self._reported = time.monotonic()

    def __enter__(self) -> Progress:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def save(self) -> None:
        """Rewrite status.json."""
        runs = [s.to_dict() for s in self.statuses]
        _write_json(
            self.out / STATUS_FILE,
            {"study": self.study, "backend": self.backend, "updated": time.time(), "runs": runs},
        )

    def changed(self, status: RunStatus) -> None:
        """A run's state changed: save, and print its line off a terminal."""
        self.save()
        if not self.console.is_terminal:
            self.console.print(status.line(), highlight=False, markup=False, soft_wrap=True)

    def note(self, text: str) -> None:
        """A line about the study as a whole."""
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def tick(self) -> None:
        """Redraw the live table; every ``report_s`` seconds, save and print each running run's line."""
        if self._live is not None:
            self._live.update(status_table(self.statuses), refresh=True)
        if time.monotonic() - self._reported >= self.report_s:
            self._reported = time.monotonic()
            for status in self.statuses:
                if status.state == "running":
                    self.changed(status)


def run_study(
    study: Study,
    runs: list[PlannedRun],
    out: Path,
    backend: str = "local",
    workers: int | None = None,
    console: Console | None = None,
    poll_s: float = 0.5,
    report_s: float = 60.0,
    population: int | None = None,
    ray: RayOptions | None = None,
) -> list[RunStatus]:
    """Run every unfinished run, seed by seed; returns each run's final status.

    ``local`` runs at most ``workers`` (default 2) jobs at once in spawned processes; ``ray`` runs each job
    as a Ray Tune trial (``ray`` options; at most ``workers`` at once when given, else as many as the
    cluster's resources allow, see ``hindsight.studies.tune``). ``population`` (default: the study's) packs
    up to that many seeds of a configuration into one population job (see ``plan_jobs``); a failing
    population fails each of its runs with its error.

    Progress is one line per run: a live table on a terminal, else a printed line at each state change and
    every ``report_s`` seconds for each running run (when status.json is rewritten too).
    A failed run is recorded (run_dir/error.txt, status.json) and the others go on.
    """
    console = console or Console(stderr=True)
    prepare_study_dir(study, runs, out)
    statuses = initial_statuses(runs, out)
    size = study.population if population is None else population
    jobs = plan_jobs(statuses, out, size)
    progress = Progress(study.name, backend, statuses, out, console, report_s)
    for status in statuses:
        if status.state == "skipped":
            progress.changed(status)
    progress.save()
    if jobs:
        with progress, _terminate_as_interrupt():
            if backend == "ray":
                from hindsight.studies.tune import run_on_ray

                run_on_ray(study, runs, jobs, out, progress, ray or RayOptions(), workers, size, poll_s)
            else:
                threads = ray.cpus_per_job if ray is not None else None
                _run_local(jobs, out, progress, workers or 2, poll_s, threads)
    progress.save()
    return statuses


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While active, SIGTERM stops the study as Ctrl-C does: its running jobs are stopped (each writes its
    checkpoint) and marked interrupted, instead of living on as orphans of a killed driver."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: signals stay with the caller
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_local(
    pending: list[Job], out: Path, progress: Progress, workers: int, poll_s: float, threads: int | None = None
) -> None:
    """Train ``pending`` in at most ``workers`` spawned processes at once, of ``threads`` torch threads each."""
    engine = make_backend(workers, threads)
    running: dict[str, tuple[Job, Any]] = {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                job = pending.pop(0)
                for status in job.statuses:
                    status.state, status.started = "running", time.monotonic()
                running[job.id] = (job, job.start(engine))
                for status in job.statuses:
                    progress.changed(status)
            time.sleep(poll_s)
            for job_id, (job, handle) in list(running.items()):
                ended, crash = engine.poll(handle)
                for status in job.statuses:
                    status.refresh(out / RUNS_DIR / status.run.id)
                if not ended:
                    continue
                del running[job_id]
                for status in job.statuses:
                    _settle(status, out / RUNS_DIR / status.run.id, crash)
                    progress.changed(status)
            progress.tick()
    except KeyboardInterrupt:
        for job, handle in running.values():
            engine.cancel(handle)
            for status in job.statuses:
                status.state, status.error = "interrupted", "interrupted by the user"
        progress.save()
        raise
    finally:
        engine.close()


def _settle(status: RunStatus, run_dir: Path, crash: str | None) -> None:
    """Mark an ended run done or failed; a run that died without writing error.txt gets one."""
    reason = unfinished_reason(run_dir, status.run.spec.to_dict())
    if reason is None:
        status.state = "done"
        return
    status.state = "failed"
    error_file = RunDir(run_dir).error
    if crash is not None or not error_file.is_file():
        message = crash or f"the run ended unfinished: {reason}"
        run_dir.mkdir(parents=True, exist_ok=True)
        error_file.write_text(message + "\n")
        status.error = message
    else:
        lines = [line for line in error_file.read_text().splitlines() if line.strip()]
        status.error = lines[-1] if lines else "failed"
