"""``python -m project sweep``: an Optuna study over the same configs as ``python -m project fit``.

    python -m project sweep --config configs/cnn.yaml --sweep configs/sweeps/cnn.yaml --trials 20
        [--workers 2] [--storage URL] [--study NAME] [--folder DIR] [--seed 0]

Everything is checked before the first trial (the sweep file, its keys against the parsed
config, the storage): a problem is one line and exit status 2. The folder (by default
lightning_logs/sweeps/<study>) then holds the study's database, every trial's TensorBoard run,
trials.csv, best.yaml and the plots (project/sweep/report.py). Ctrl-C stops the sweep after the
running trials are marked as failed; the same command resumes the study.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from project.core.errors import exit_on_error

# LightningCLI warns when it is given args while sys.argv holds some too: here both are ours.
ARGS_WARNING = "LightningCLI's args parameter is intended"


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
    return parser


def check_before_any_trial(options, rest: list[str]):
    """The sweep file, its keys in the parsed config, the storage: one InputError if not."""
    from project.core.errors import InputError
    from project.lit.cli import main as lightning_main
    from project.sweep.space import check_keys, load_sweep
    from project.sweep.study import open_storage

    if options.trials < 1 or options.workers < 1:
        raise InputError("--trials and --workers must be at least 1")
    spec = load_sweep(options.sweep)
    config_args = [arg for path in options.config for arg in ("--config", path)] + rest
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=ARGS_WARNING)
        config = lightning_main(config_args, run=False, build=False).config  # as fit parses it
    check_keys(spec, config)
    name = options.study or Path(options.sweep).stem
    folder = Path(options.folder or Path("lightning_logs") / "sweeps" / name)
    folder.mkdir(parents=True, exist_ok=True)
    url = options.storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    return spec, config_args, name, folder, url, open_storage(url)


def main(args: list[str] | None = None) -> int:
    import optuna

    from project.sweep import report
    from project.sweep.study import missing_trials, open_study, run_workers

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    options, rest = build_parser().parse_known_args(sys.argv[1:] if args is None else args)
    with exit_on_error():
        spec, config_args, name, folder, url, storage = check_before_any_trial(options, rest)
        study = open_study(spec, storage, name)  # the storage the check opened
        count = missing_trials(study, options.trials)
        print(
            f"study '{name}' in {url}: {options.trials - count} of {options.trials} trials "
            f"finished, running {count} on {options.workers} worker(s); runs in {folder}/trials"
        )
        interrupted = False
        try:
            if count:
                run_workers(
                    options.sweep,
                    url,
                    name,
                    count,
                    options.workers,
                    config_args,
                    folder,
                    options.seed,
                )
        except KeyboardInterrupt:
            interrupted = True
        study = open_study(spec, storage, name)  # again: the workers' trials, read afresh
        print(report.write_table(report.trial_rows(study, spec), folder / "trials.csv"))
        best = report.write_best(study, spec, folder / "best.yaml", config_args)
        for note in report.write_plots(study, folder):
            print(note)
        if best is not None:
            print(
                f"best: trial {best.number}, {spec.metric} {best.value:.4f}; "
                f"{folder / 'best.yaml'} (add it as one more --config)"
            )
        if interrupted:
            print(
                "interrupted: the running trials are marked failed; run the same command to resume",
                file=sys.stderr,
            )
            return 130
    return 0
