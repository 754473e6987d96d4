"""One trial of a sweep: a real ``fit`` with the trial's values, reported to Optuna as it trains.

The trial's values become command-line overrides (``--model.init_args.optimizer.init_args.lr=..``)
after the user's ``--config`` files, and go through project/lit/cli.py's ``main`` exactly as
``python -m project fit`` parses and builds them (``run=False``, then ``trainer.fit``, as
LightningCLI's fit subcommand calls it). ``ReportToTrial`` hands the metric to Optuna at the end
of every validation; when the pruner says so, the trainer stops at once (at that epoch's end),
and the trial is recorded as pruned. A trial that fails (NaN loss, a crash, a value the config
refuses) is recorded as failed with its one-line reason, and the study goes on.
"""

from __future__ import annotations

import io
import math
import signal
import time
import warnings
from contextlib import redirect_stderr
from pathlib import Path

import optuna
from lightning.pytorch import Callback, LightningModule, Trainer

from project.core.errors import one_line
from project.sweep.cli import ARGS_WARNING
from project.sweep.space import SweepSpec

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


class ReportToTrial(Callback):
    """At every validation's end: report the metric to Optuna; stop the trainer if pruned."""

    def __init__(self, trial: optuna.Trial, metric: str, direction: str):
        self.trial, self.metric, self.direction = trial, metric, direction
        self.best: float | None = None
        self.pruned_at: int | None = None

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self.metric not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.metric])
        if not math.isfinite(value):
            return
        better = max if self.direction == "maximize" else min
        self.best = value if self.best is None else better(self.best, value)
        self.trial.report(value, step=trainer.current_epoch)
        if self.trial.should_prune():
            self.pruned_at = trainer.current_epoch
            trainer.should_stop = True  # the epoch has ended: no more steps


def trial_arguments(trial_number: int, values: dict, config_args: list[str], folder: Path) -> list:
    """The fit's arguments: the user's configs, the trial's values, its own TensorBoard run."""
    overrides = [f"--{key}={value}" for key, value in values.items()]
    return [
        *config_args,
        *overrides,
        f"--trainer.logger.init_args.save_dir={folder}",
        "--trainer.logger.init_args.name=trials",
        f"--trainer.logger.init_args.version=trial_{trial_number:03d}",
        *QUIET,
    ]


def run_trial(trial: optuna.Trial, spec: SweepSpec, config_args: list[str], folder: Path) -> float:
    """Optuna's objective: the best value of ``spec.metric`` over the trial's validations."""
    from project.lit.cli import main  # Lightning's CLI, as python -m project fit

    values = spec.suggest(trial)
    trial.set_user_attr("run", f"trials/trial_{trial.number:03d}")
    started = time.perf_counter()
    reporter = ReportToTrial(trial, spec.metric, spec.direction)
    errors = io.StringIO()
    try:
        try:
            with redirect_stderr(errors), warnings.catch_warnings():  # errors: the reason
                warnings.filterwarnings("ignore", message=ARGS_WARNING)
                cli = main(trial_arguments(trial.number, values, config_args, folder), run=False)
        except SystemExit as error:  # the config refused a value: one line, the trial fails
            lines = [line for line in errors.getvalue().splitlines() if line.strip()]
            reason = lines[-1] if lines else f"the config exited with status {error.code}"
            trial.set_user_attr("reason", reason[:300])
            raise RuntimeError(reason) from None
        cli.trainer.callbacks.append(reporter)
        try:
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        except SystemExit:
            # Lightning turns a Ctrl-C inside fit into sys.exit(1), after setting SIGINT to be
            # ignored: undo that, so the next Ctrl-C still stops the sweep, and stop it now.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            trial.set_user_attr("reason", "interrupted (Ctrl-C)")
            raise KeyboardInterrupt from None
    except (KeyboardInterrupt, RuntimeError):
        raise
    except Exception as error:  # NaN loss, out of memory, a crash: recorded, the study goes on
        trial.set_user_attr("reason", f"{type(error).__name__}: {one_line(error)}"[:300])
        raise
    finally:
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
    if reporter.pruned_at is not None:
        trial.set_user_attr("reason", f"pruned after epoch {reporter.pruned_at}")
        raise optuna.TrialPruned()
    if reporter.best is None:
        reason = f"{spec.metric} was never logged (a metric the run logs at validation?)"
        trial.set_user_attr("reason", reason)
        raise RuntimeError(reason)
    return reporter.best
