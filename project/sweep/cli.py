"""``python -m project sweep``: an Optuna study over the same configs as ``python -m project fit``.

    python -m project sweep --config configs/cnn.yaml --sweep configs/sweeps/cnn.yaml --trials 20
        [--workers 2] [--storage URL] [--study NAME] [--folder DIR] [--seed 0] [--heartbeat 10]

Everything is checked before the first trial (the sweep file, its keys and every value it can
draw against the parsed config, its metric against a 1-batch run, the sampler's and pruner's
arguments, the storage): a problem is one line and exit status 2, and nothing is written. The
folder (by default lightning_logs/sweeps/<study>) then holds the study's database, every
trial's TensorBoard run, trials.csv, best.yaml and the plots (project/sweep/report.py).

``--trials N`` is the number of trials the study holds once done: complete, pruned, or failed by
their values. A trial stopped by Ctrl-C or SIGTERM, or whose process was killed, is run again
with the same values by the same command. Exit status: 0 once at least one trial has finished;
1 if every trial failed (the most common reason is printed) or a worker died; 130 after Ctrl-C,
143 after SIGTERM; 2 for a bad sweep file, config or storage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from project.core import threads as cpu_threads
from project.core.errors import InputError, exit_on_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m project sweep", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    parser.add_argument("--config", action="append", required=True, help="as for fit; repeatable")
    parser.add_argument("--sweep", required=True, help="the sweep file (configs/sweeps/cnn.yaml)")
    parser.add_argument("--trials", type=int, default=20, help="finished trials the study holds")
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the study")
    parser.add_argument("--storage", help="an Optuna storage URL (default: SQLite in the folder)")
    parser.add_argument("--study", help="the study's name (default: the sweep file's name)")
    parser.add_argument("--folder", help="default: lightning_logs/sweeps/<study>")
    parser.add_argument("--seed", type=int, default=0, help="the samplers' seed (worker i: +i)")
    parser.add_argument(
        "--heartbeat",
        type=int,
        default=10,
        help="seconds between a running trial's heartbeats; after 3 missed, its process is "
        "taken for dead and the trial is run again",
    )
    return parser


def check_before_any_trial(options, rest: list[str]):
    """The sweep file, its keys and values in the parsed config, its metric: one InputError if
    not. Writes nothing."""
    from project.sweep.checks import check_metric, check_values
    from project.sweep.space import check_keys, load_sweep
    from project.sweep.trial import ConfigRefused, lightning

    if options.trials < 1 or options.workers < 1 or options.heartbeat < 1:
        raise InputError("--trials, --workers and --heartbeat must be at least 1")
    spec = load_sweep(options.sweep)
    config_args = [arg for path in options.config for arg in ("--config", path)] + rest
    try:
        config = lightning(config_args, build=False).config  # as fit parses it
    except ConfigRefused as error:
        raise InputError(f"the config is refused: {error}") from None
    check_keys(spec, config)
    check_values(spec, config_args)
    name, folder, url = where(options)
    if not reported_before(spec, folder, url, name):  # a re-run skips the 1-batch run
        check_metric(spec, config_args)
    return spec, config_args


def where(options) -> tuple[str, Path, str]:
    """The study's name, the sweep's folder and the storage's URL."""
    name = options.study or Path(options.sweep).stem
    folder = Path(options.folder or Path("lightning_logs") / "sweeps" / name)
    url = options.storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    return name, folder, url


def reported_before(spec, folder: Path, url: str, name: str) -> bool:
    """Whether the study, on its SQLite file in the folder, already has a trial that reported
    ``spec.metric`` (the metric the study was made with): then it is logged, no need to check."""
    if url != f"sqlite:///{(folder / 'study.db').resolve()}" or not (folder / "study.db").is_file():
        return False  # only our own file: opening another storage may create its tables
    import optuna

    from project.sweep.study import open_storage

    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url))
    except KeyError:  # no study of that name in the file yet
        return False
    reported = any(t.intermediate_values for t in study.get_trials(deepcopy=False))
    return reported and study.user_attrs.get("metric") == spec.metric


def open_folder_and_storage(options, folder: Path, url: str):
    """The sweep's folder and its storage (made now, after every check passed)."""
    from project.sweep.study import open_storage

    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return open_storage(url, options.heartbeat)
    except InputError:
        if made and not any(folder.iterdir()):
            folder.rmdir()  # nothing written
        raise


def main(args: list[str] | None = None) -> int:
    from project.sweep import report
    from project.sweep.study import Job, Stop, open_study, progress, quiet_optuna, recover, shares

    quiet_optuna()
    options, rest = build_parser().parse_known_args(sys.argv[1:] if args is None else args)
    with exit_on_error():
        spec, config_args = check_before_any_trial(options, rest)
        name, folder, url = where(options)
        storage = open_folder_and_storage(options, folder, url)
        stop = Stop().install()
        try:
            study = open_study(spec, storage, name)
            study.set_user_attr("metric", spec.metric)  # a re-run's check reads it
            recover(study, options.heartbeat, stop)
            now = progress(study)
            count = max(0, options.trials - len(now.finished) - len(now.running))
            queued = f" ({len(now.waiting)} of them queued again)" if now.waiting else ""
            print(
                f"study '{name}' in {url}: {len(now.finished)} of {options.trials} trials "
                f"finished, running {count}{queued} on {options.workers} worker(s); runs in "
                f"{folder}/trials",
                flush=True,
            )
            ended = []
            if count and not stop.signal:
                plan = shares(count, options.workers)
                threads = max(1, cpu_threads.thread_count() // len(plan))  # user's or rule's
                jobs = [
                    Job(options.sweep, url, name, n, tuple(config_args), str(folder),
                        options.seed + i, threads, options.heartbeat)
                    for i, n in enumerate(plan)
                ]  # fmt: skip
                ended = run_workers_and_recover(jobs, stop, study, options.heartbeat)
            return report.finish(study, spec, folder, config_args, stop.signal, ended)
        finally:
            stop.restore()


def run_workers_and_recover(jobs, stop, study, heartbeat: int) -> list:
    """The workers; then, if one died (and no one pressed Ctrl-C), its RUNNING trial handed to
    Optuna's heartbeat check so that it is marked failed and queued again before the report."""
    from project.sweep.study import recover, run_workers

    ended = run_workers(jobs, stop)
    if ended and not stop.signal:
        recover(study, heartbeat, stop)
    return ended
