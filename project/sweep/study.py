"""The study on its storage, the worker processes that share it, and what survives a stop.

Storage: a SQLite file under the sweep's folder by default (``sqlite:///<folder>/study.db``), a
real database: re-running the same command loads the study (``load_if_exists``) and runs only
the trials still missing from ``--trials``. Several workers on one machine open the same file
(tests/test_sweep.py runs two); on a cluster, give every machine the same ``--storage`` URL of a
PostgreSQL or MySQL server (``postgresql://user:password@host/db``, any SQLAlchemy URL Optuna
takes): each machine runs ``python -m project sweep`` with the same ``--study`` name and its own
``--seed`` (not tested here: this project's tests reach no server beyond 127.0.0.1).

Each worker is its own process (forked from a ``forkserver`` that imported torch and Lightning
once and ran nothing, so it starts clean; ``spawn`` where there is no forkserver) with its share
of the missing trials and of the CPU threads, and its own sampler seed (``--seed`` + its index).

What a stop leaves, and what the next run of the same command does with it (Optuna's own
mechanisms where it has one):
  - Ctrl-C / SIGTERM (``Stop``): the running trials stop at their next batch and are marked
    failed with ``stopped_by``; the next run queues each again with its values (Optuna's
    ``RetryHeartbeatStaleTrialCallback``, which adds a WAITING copy that ``ask`` runs first);
  - a killed process (``kill -9``, the OOM killer, a lost machine): its trial stays RUNNING, but
    stops sending the heartbeat the storage asks for (``RDBStorage(heartbeat_interval=...)``);
    ``fail_stale_trials`` marks it failed once ``grace_period`` has passed without one (and
    ``fail_dead_trials`` one that died before its first heartbeat, which Optuna skips), and the
    same callback queues it again (at most ``STALE_RETRIES`` times: a trial that kills its
    process every time stays failed);
  - the sampler: each seed's sampler is pickled into ``<folder>/samplers/`` once a trial's values
    are drawn (the way Optuna's FAQ resumes a sampler) and restored by the next run, so a resumed
    study continues its random sequence instead of replaying it from ``--seed``.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import text

from project.core.errors import InputError, one_line
from project.core.signal_relay import SignalRelay
from project.sweep.space import SweepSpec, load_sweep, make_pruner, make_sampler

GRACE_HEARTBEATS = 3  # a trial is stale after this many heartbeat intervals without one
STALE_RETRIES = 3  # a trial whose process died is run again at most this many times


def quiet_optuna() -> None:
    """Optuna's heartbeat and retry callback are marked experimental; its per-trial log lines
    (a traceback for each failed trial) are replaced by ``announce``'s one line."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.ERROR)


# ---------------------------------------------------------------------------- signals


class Stop:
    """Ctrl-C and SIGTERM as a flag: the first sets ``signal`` (the running trial stops at its
    next batch, ``StopOnSignal``; no new trial starts), a repeat changes nothing. The parent
    forwards each to its workers (``pids``): SIGTERM reaches only the process it is sent to."""

    def __init__(self):
        self.signal: str | None = None
        self.pids: list[int] = []
        # ``handle`` on SIGINT and SIGTERM (in the main thread only, says Python). The parent
        # waits in Process.join(): without the relay, a signal the kernel hands to another of
        # its threads would wait for a worker to end (project/core/signal_relay.py).
        self.relay = SignalRelay(self.handle)

    def install(self) -> Stop:
        self.relay.start()
        return self

    def restore(self) -> None:
        self.relay.stop()

    def handle(self, number, frame) -> None:
        self.signal = self.signal or signal.Signals(number).name
        for pid in self.pids:
            try:
                os.kill(pid, number)
            except ProcessLookupError:
                pass

    @property
    def status(self) -> int:
        """128 + the signal's number: 130 for SIGINT, 143 for SIGTERM (project/core/errors.py)."""
        return 128 + int(getattr(signal, self.signal or "SIGINT"))

    def check(self) -> None:
        from project.sweep.trial import Interrupted

        if self.signal:
            raise Interrupted(self.signal)

    def between_trials(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.signal:
            study.stop()  # Optuna's way out of optimize(): after this trial, no new one


# ---------------------------------------------------------------------------- storage, study


class RetryStale:
    """The storage's ``heartbeat_stale_trial_callback``: Optuna's RetryHeartbeatStaleTrialCallback
    (a WAITING copy with the trial's values), and one line saying so."""

    def __init__(self, grace: int):
        self.grace = grace
        self.retry = RetryHeartbeatStaleTrialCallback(max_retry=STALE_RETRIES)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.retry(study, trial)
        deaths = len(RetryHeartbeatStaleTrialCallback.retry_history(trial)) + 1
        done = (
            "queued again with its values"
            if deaths <= STALE_RETRIES
            else f"not run again: its process died {deaths} times"
        )
        print(
            f"trial {trial.number} was RUNNING with no heartbeat for {self.grace} s (its process "
            f"died: kill -9, out of memory, a lost machine): marked failed, {done}",
            flush=True,
        )


def open_storage(url: str, heartbeat: int | None = None):
    """The storage behind ``url`` (with Optuna's heartbeat every ``heartbeat`` seconds), or one
    line naming it when it cannot be opened."""
    settings = {}
    if heartbeat:
        grace = GRACE_HEARTBEATS * heartbeat
        settings = {
            "heartbeat_interval": heartbeat,
            "grace_period": grace,
            "heartbeat_stale_trial_callback": RetryStale(grace),
        }
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_settings(url), **settings)
    except Exception as error:  # SQLAlchemy's and the driver's errors: any of them means "no"
        reason = one_line(error).splitlines()[0]  # SQLAlchemy adds a "Background" line
        raise InputError(f"--storage {url}: cannot be opened ({reason})") from None


def engine_settings(url: str) -> dict:
    # SQLite: wait up to 60 s for another worker's write lock instead of failing at once.
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}


def open_study(spec: SweepSpec, storage, name: str, sampler=None) -> optuna.Study:
    """The study ``name`` on ``storage`` (a storage already opened), made if new."""
    return optuna.create_study(
        storage=storage,
        study_name=name,
        direction=spec.direction,
        sampler=sampler,
        pruner=make_pruner(spec),
        load_if_exists=True,
    )


# ---------------------------------------------------------------------------- the sampler's state


def sampler_file(folder: Path, seed: int) -> Path:
    return Path(folder) / "samplers" / f"seed_{seed}.pkl"


def restore_sampler(spec: SweepSpec, folder: Path, seed: int, study: optuna.Study):
    """The sampler of ``seed`` as the last run left it, if it was saved for these sampler
    settings; otherwise a new one, seeded from ``seed`` and the trials the study already holds
    (so that a study resumed without its folder does not replay ``seed``'s sequence)."""
    path = sampler_file(folder, seed)
    if path.is_file():
        with open(path, "rb") as file:  # written by save_sampler, in the sweep's own folder
            settings, sampler = pickle.load(file)
        if settings == spec.sampler:
            return sampler
    if study.trials:
        seed = int(np.random.SeedSequence([seed, len(study.trials)]).generate_state(1)[0])
    return make_sampler(spec, seed)


def save_sampler(sampler, spec: SweepSpec, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    with open(partial, "wb") as file:
        pickle.dump((spec.sampler, sampler), file)
    os.replace(partial, path)  # whole or not at all, even if the process dies here


# ---------------------------------------------------------------------------- progress


@dataclass
class Progress:
    finished: list[FrozenTrial]  # complete, pruned, or failed by its values (not run again)
    running: list[FrozenTrial]
    waiting: list[FrozenTrial]  # queued: a stopped or dead trial's copy, run first
    stopped: list[FrozenTrial]  # failed by a signal, not yet queued again


def replaced(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the trials that have a copy queued or run (Optuna's retry history)."""
    return {n for t in trials for n in RetryHeartbeatStaleTrialCallback.retry_history(t)}


def progress(study: optuna.Study) -> Progress:
    trials = study.get_trials(deepcopy=False)
    copies = replaced(trials)
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    failed = [t for t in trials if t.state == TrialState.FAIL and t.number not in copies]
    return Progress(
        finished=[t for t in trials if t.state in done]
        + [t for t in failed if not t.user_attrs.get("stopped_by")],
        running=[t for t in trials if t.state == TrialState.RUNNING],
        waiting=[t for t in trials if t.state == TrialState.WAITING],
        stopped=[t for t in failed if t.user_attrs.get("stopped_by")],
    )


def recover(study: optuna.Study, heartbeat: int, stop: Stop) -> None:
    """Before a run: the trials a stop left behind, queued again with their values (one line
    each). RUNNING trials may belong to a live worker elsewhere or to a dead one: wait until
    Optuna's heartbeat check tells them apart (at most the grace period and one heartbeat)."""
    grace = GRACE_HEARTBEATS * heartbeat
    fail_dead_trials(study, grace)  # a dead process's trials: RetryStale says so
    running = {t.number for t in progress(study).running}
    if running:
        print(
            f"trial(s) {numbers(running)} RUNNING: waiting up to {grace + heartbeat} s for "
            "their heartbeat (a killed process's trials are then run again)",
            flush=True,
        )
        deadline = time.monotonic() + grace + heartbeat
        while running and time.monotonic() < deadline and not stop.signal:
            time.sleep(0.5)
            fail_dead_trials(study, grace)
            running &= {t.number for t in progress(study).running}
        if running and not stop.signal:
            print(f"trial(s) {numbers(running)} run elsewhere (heartbeat alive): left to it")
    retry = RetryHeartbeatStaleTrialCallback()  # no limit: a person stopped these
    for trial in progress(study).stopped:
        retry(study, trial)
        print(
            f"trial {trial.number} was stopped by {trial.user_attrs['stopped_by']}: queued "
            "again with its values",
            flush=True,
        )


def fail_dead_trials(study: optuna.Study, grace: int) -> None:
    """Optuna's check (RUNNING trials whose last heartbeat is older than ``grace`` seconds), and
    the one case it skips: a RUNNING trial with no heartbeat at all, started over ``grace``
    seconds ago. Its process died between Optuna's ``ask`` and the trial's first heartbeat
    (project/sweep/trial.py ``first_heartbeat``, a few milliseconds; every process of this sweep
    sends heartbeats), and Optuna would leave it RUNNING for ever."""
    optuna.storages.fail_stale_trials(study)
    storage = study._storage  # as optuna.storages.fail_stale_trials reaches it
    database = getattr(storage, "_backend", storage)  # Optuna wraps an RDBStorage in a cache
    now = datetime.now()  # Optuna stamps datetime_start with the local datetime.now() too
    old = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if t.datetime_start is not None and (now - t.datetime_start).total_seconds() > grace
    ]
    if not old or not isinstance(database, optuna.storages.RDBStorage):
        return
    with database.engine.connect() as connection:  # Optuna's own table of heartbeats
        beating = set(connection.execute(text("SELECT trial_id FROM trial_heartbeats")).scalars())
    for trial in old:
        if trial._trial_id in beating:
            continue  # Optuna's check above decides on it
        try:
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # it ended meanwhile, or another process failed it first
        callback = storage.get_heartbeat_stale_trial_callback()
        if callback is not None:
            callback(study, storage.get_trial(trial._trial_id))


def numbers(values) -> str:
    return ", ".join(str(n) for n in sorted(values))


def announce(study: optuna.Study, trial: FrozenTrial) -> None:
    """One line per trial as it ends (an Optuna callback)."""
    seconds = trial.user_attrs.get("seconds", "?")
    reason = trial.user_attrs.get("reason") or "no reason recorded"
    if trial.state == TrialState.COMPLETE:
        said = f"complete, {trial.value:.4f}"
    elif trial.state == TrialState.PRUNED:
        said = reason  # pruned after epoch N
    else:
        said = f"failed: {reason}"
    print(f"trial {trial.number}: {said} ({seconds} s)", flush=True)


def most_common_reason(trials: list[FrozenTrial]) -> tuple[str, int]:
    reasons = Counter(t.user_attrs.get("reason") or "no reason recorded" for t in trials)
    return reasons.most_common(1)[0] if reasons else ("", 0)


# ---------------------------------------------------------------------------- workers


def shares(count: int, workers: int) -> list[int]:
    """``count`` trials split over ``workers`` as evenly as possible (no worker gets none)."""
    workers = max(1, min(workers, count))
    return [count // workers + (i < count % workers) for i in range(workers)]


@dataclass(frozen=True)
class Job:
    """One worker's share of a run (picklable: a spawned worker gets it)."""

    sweep_file: str
    url: str
    name: str
    trials: int
    config_args: tuple[str, ...]
    folder: str
    seed: int
    threads: int
    heartbeat: int


def work(job: Job, stop: Stop) -> int:
    """One worker: run ``job.trials`` trials of the study; 0, or ``stop.status`` if stopped."""
    import torch

    from project.sweep.trial import Interrupted, TrialFailed, run_trial

    torch.set_num_threads(job.threads)
    quiet_optuna()
    spec = load_sweep(job.sweep_file)
    study = open_study(spec, open_storage(job.url, job.heartbeat), job.name)
    study.sampler = restore_sampler(spec, Path(job.folder), job.seed, study)
    path = sampler_file(Path(job.folder), job.seed)

    def objective(trial: optuna.Trial) -> float:
        keep_state = lambda: save_sampler(study.sampler, spec, path)  # noqa: E731
        return run_trial(trial, spec, list(job.config_args), Path(job.folder), stop, keep_state)

    try:
        study.optimize(
            objective,
            n_trials=job.trials,
            catch=(TrialFailed,),  # recorded with its reason; the study goes on
            callbacks=[announce, stop.between_trials],
        )
    except Interrupted:
        return stop.status
    return stop.status if stop.signal else 0


def worker_main(job: Job) -> None:
    """A spawned worker's entry: its own signal flag (the parent forwards what it receives)."""
    raise SystemExit(work(job, Stop().install()))


@dataclass
class WorkerEnd:
    name: str
    pid: int
    exitcode: int

    def describe(self) -> str:
        if self.exitcode < 0:
            return f"was killed by {signal.Signals(-self.exitcode).name}"
        if self.exitcode > 128 and self.exitcode - 128 in (signal.SIGINT, signal.SIGTERM):
            return f"was stopped by {signal.Signals(self.exitcode - 128).name}"
        return f"exited with status {self.exitcode} (its error is above)"


def worker_context():
    """How workers start: forked from a server process that has imported torch and Lightning
    once and run nothing (``forkserver``: each worker skips the ~4 s import, and starts clean,
    without the parent's threads); ``spawn`` (a fresh interpreter each) where there is none."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["project.sweep.trial"])
    return context


def run_workers(jobs: list[Job], stop: Stop) -> list[WorkerEnd]:
    """Run the jobs, in this process when there is one; the workers that did not end well."""
    if len(jobs) == 1:
        work(jobs[0], stop)
        return []
    context = worker_context()
    processes = [
        context.Process(target=worker_main, args=(job,), name=f"sweep-worker-{i}")
        for i, job in enumerate(jobs)
    ]
    for process in processes:
        process.start()
        stop.pids.append(process.pid)
    for process in processes:
        process.join()  # a signal meanwhile is forwarded (Stop.handle), and the workers stop
    stop.pids.clear()
    expected = (0, stop.status) if stop.signal else (0,)
    return [WorkerEnd(p.name, p.pid, p.exitcode) for p in processes if p.exitcode not in expected]
