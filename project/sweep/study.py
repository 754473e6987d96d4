"""The study on its storage, and the worker processes that share it.

Storage: a SQLite file under the sweep's folder by default (``sqlite:///<folder>/study.db``), a
real database: re-running the same command loads the study (``load_if_exists``) and runs only
the trials still missing from ``--trials``. Several workers on one machine open the same file
(tests/test_sweep.py runs two); on a cluster, give every machine the same ``--storage`` URL of a
PostgreSQL or MySQL server (``postgresql://user:password@host/db``, any SQLAlchemy URL Optuna
takes): each machine runs ``python -m project sweep`` with the same ``--study`` name (not tested
here: this project's tests reach no server beyond 127.0.0.1).

Each worker is its own process (``spawn``: torch and Lightning start clean) with its share of
the missing trials and of the CPU threads, and its own sampler seed.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import optuna
from optuna.trial import TrialState

from project.core.errors import InputError, one_line
from project.sweep.space import SweepSpec, load_sweep, make_pruner, make_sampler

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def open_storage(url: str):
    """The storage behind ``url``, or one line naming it when it cannot be opened."""
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_settings(url))
    except Exception as error:  # SQLAlchemy's and the driver's errors: any of them means "no"
        reason = one_line(error).splitlines()[0]  # SQLAlchemy adds a "Background" line
        raise InputError(f"--storage {url}: cannot be opened ({reason})") from None


def engine_settings(url: str) -> dict:
    # SQLite: wait up to 60 s for another worker's write lock instead of failing at once.
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}


def open_study(spec: SweepSpec, storage, name: str, seed: int | None = None) -> optuna.Study:
    """The study ``name`` on ``storage`` (a URL, or a storage already opened), made if new."""
    return optuna.create_study(
        storage=open_storage(storage) if isinstance(storage, str) else storage,
        study_name=name,
        direction=spec.direction,
        sampler=make_sampler(spec, seed),
        pruner=make_pruner(spec),
        load_if_exists=True,
    )


def missing_trials(study: optuna.Study, total: int) -> int:
    """How many trials to run for the study to hold ``total`` finished ones."""
    return max(0, total - len(study.get_trials(deepcopy=False, states=FINISHED)))


def shares(count: int, workers: int) -> list[int]:
    """``count`` trials split over ``workers`` as evenly as possible (no worker gets none)."""
    workers = max(1, min(workers, count))
    return [count // workers + (i < count % workers) for i in range(workers)]


def work(
    sweep_file: str,
    url: str,
    name: str,
    trials: int,
    config_args: list[str],
    folder: str,
    seed: int | None,
    threads: int,
) -> None:
    """One worker: load the study and run ``trials`` trials of it (a process of its own)."""
    import torch

    from project.sweep.trial import run_trial

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_sweep(sweep_file)
    study = open_study(spec, url, name, seed)
    study.optimize(
        lambda trial: run_trial(trial, spec, config_args, Path(folder)),
        n_trials=trials,
        catch=(Exception,),  # a failed trial is recorded with its reason; the study goes on
    )


def run_workers(
    sweep_file: str,
    url: str,
    name: str,
    count: int,
    workers: int,
    config_args: list[str],
    folder: Path,
    seed: int | None,
) -> None:
    """Run ``count`` trials over ``workers`` processes (in this one when there is one)."""
    plan = shares(count, workers)
    threads = max(1, (os.cpu_count() or 1) // len(plan))
    jobs = [
        (
            sweep_file,
            url,
            name,
            n,
            config_args,
            str(folder),
            None if seed is None else seed + i,
            threads,
        )
        for i, n in enumerate(plan)
    ]
    if len(jobs) == 1:
        work(*jobs[0])
        return
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=work, args=job, name=f"sweep-worker-{i}")
        for i, job in enumerate(jobs)
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:  # the workers got the same Ctrl-C: let them mark their trials
        for process in processes:
            process.join(timeout=120)
        raise
    failed = [p.name for p in processes if p.exitcode not in (0, None)]
    if failed:
        raise RuntimeError(f"worker(s) {', '.join(failed)} stopped with an error (see above)")
