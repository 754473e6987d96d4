"""One trial of a sweep: a real ``fit`` with the trial's values, reported to Optuna as it trains.

The trial's values become command-line overrides (``--model.init_args.optimizer.init_args.lr=..``)
after the user's ``--config`` files, and go through project/lit/cli.py's ``main`` exactly as
``python -m project fit`` parses and builds them (``run=False``, then ``trainer.fit``, as
LightningCLI's fit subcommand calls it). ``ReportToTrial`` hands the metric to Optuna at the end
of every validation; when the pruner says so, the trainer stops at once (at that epoch's end),
and the trial is recorded as pruned.

How a trial can end besides complete or pruned:
  - ``TrialFailed``: its values failed it (the loss turned NaN, memory ran out, the config
    refused a value): recorded as failed with a one-line reason; it counts as run, is not run
    again, and the study goes on;
  - ``Interrupted``: Ctrl-C or SIGTERM (``Stop``, project/sweep/study.py) stopped it at its next
    batch: recorded as failed with ``stopped_by``; the same command runs it again with its
    values, first, and it does not count as run until then.
"""

from __future__ import annotations

import io
import math
import re
import time
import warnings
from contextlib import redirect_stderr
from pathlib import Path

import optuna
from lightning.pytorch import Callback, LightningModule, Trainer

from project.core.errors import one_line
from project.sweep.space import SweepSpec

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
# LightningCLI warns when it is given args while sys.argv holds some too: here both are ours.
ARGS_WARNING = "LightningCLI's args parameter is intended"
OUT_OF_MEMORY = re.compile(r"out of memory|not enough memory|can't allocate memory", re.I)


class TrialFailed(Exception):
    """The trial's values failed it (reason in the message): recorded, not run again."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped the trial (``signal_name``): run again by the next command."""

    def __init__(self, signal_name: str):
        super().__init__(f"stopped by {signal_name}")
        self.signal_name = signal_name


class ConfigRefused(Exception):
    """The config's parser refused the arguments; the message is the parser's own reason."""


# ---------------------------------------------------------------------------- the config


def lightning(args: list[str], build: bool = True):
    """project/lit/cli.py's ``main(args, run=False)``: the parsed (``build``: and built) CLI, as
    ``python -m project fit`` makes it. A refusal is ``ConfigRefused`` with the parser's reason
    (what it printed is captured, not shown)."""
    from project.lit.cli import main  # Lightning's CLI, as python -m project fit

    errors = io.StringIO()
    try:
        with redirect_stderr(errors), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=ARGS_WARNING)
            return main(args, run=False, build=build)
    except SystemExit as error:
        raise ConfigRefused(parser_reason(errors.getvalue(), error.code)) from None


def parser_reason(text: str, status) -> str:
    """The line that says why in what jsonargparse printed (after usage text and nested
    "Does not validate against any of the Union subtypes"): ``Expected a float``,
    ``Option 'momentum' is not accepted``; or our own one-line error."""
    body = text.rsplit("error: ", 1)[-1] if "error: " in text else text
    refused = re.search(r"(Option '[^']+' is not accepted|Key \"[^\"]+\" [^.\n]*)", body)
    if refused:
        return refused.group(1)
    # The first type it expected; a Union's "or None" alternative says nothing.
    kinds = [k.rsplit(".", 1)[-1] for k in re.findall(r"Expected an? <class '([\w.]+)'>", body)]
    kinds = [kind for kind in kinds if kind != "NoneType"]
    if kinds:
        return f"Expected {'an' if kinds[0][0] in 'aeiou' else 'a'} {kinds[0]}"
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    return " ".join(lines[:2])[:300] if lines else f"the config exited with status {status}"


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


# ---------------------------------------------------------------------------- callbacks


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


class StopOnSignal(Callback):
    """Ctrl-C / SIGTERM only set a flag (``Stop``): the trial stops here, at its next batch."""

    def __init__(self, stop):
        self.stop = stop

    def on_train_batch_end(self, *args) -> None:
        self.stop.check()

    def on_validation_batch_end(self, *args) -> None:
        self.stop.check()


class MetricNames(Callback):
    """The names in ``callback_metrics`` at a validation's end: what ReportToTrial can read."""

    def __init__(self):
        self.names: set[str] = set()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self.names |= set(trainer.callback_metrics)


# ---------------------------------------------------------------------------- one trial


def run_trial(
    trial: optuna.Trial,
    spec: SweepSpec,
    config_args: list[str],
    folder: Path,
    stop,
    after_sampling=None,
) -> float:
    """Optuna's objective: the best value of ``spec.metric`` over the trial's validations.
    ``after_sampling()``: called once the trial's values are drawn (the sampler's state is
    saved there); ``stop``: the signal flag (project/sweep/study.py ``Stop``)."""
    first_heartbeat(trial)
    values = spec.suggest(trial)
    if after_sampling is not None:
        after_sampling()
    # A trial run again (a copy of an interrupted one) carries its original's attributes.
    for key, value in (("reason", ""), ("stopped_by", ""), ("worker", worker_name())):
        trial.set_user_attr(key, value)
    trial.set_user_attr("run", f"trials/trial_{trial.number:03d}")
    started = time.perf_counter()
    reporter = ReportToTrial(trial, spec.metric, spec.direction)
    cli = None
    try:
        stop.check()
        cli = lightning(trial_arguments(trial.number, values, config_args, folder))
        cli.trainer.callbacks.extend([reporter, StopOnSignal(stop)])
        stop.check()
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    except BaseException as error:  # whatever stopped it, a signal received is the reason
        if stop.signal or isinstance(error, KeyboardInterrupt):
            name = stop.signal or "SIGINT"
            trial.set_user_attr("stopped_by", name)
            trial.set_user_attr("reason", f"stopped by {name}: run again by the same command")
            raise Interrupted(name) from None
        reason = failure_reason(error, cli)
        trial.set_user_attr("reason", reason)
        raise TrialFailed(reason) from None
    finally:
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
    if reporter.pruned_at is not None:
        trial.set_user_attr("reason", f"pruned after epoch {reporter.pruned_at}")
        raise optuna.TrialPruned()
    if reporter.best is None:
        reason = f"{spec.metric} was never logged (a metric the run logs at validation?)"
        trial.set_user_attr("reason", reason)
        raise TrialFailed(reason)
    return reporter.best


def first_heartbeat(trial: optuna.Trial) -> None:
    """Record the trial's first heartbeat now, before anything else it writes. Optuna's heartbeat
    thread starts with the trial but may write after it (seen under load: a trial killed in its
    first second had attributes and no heartbeat row), and Optuna never calls a RUNNING trial
    without any heartbeat stale: it would stay RUNNING after its process died."""
    storage = trial.study._storage  # the storage Optuna's own heartbeat thread writes to
    if getattr(storage, "get_heartbeat_interval", lambda: None)():
        storage.record_heartbeat(trial._trial_id)


def worker_name() -> str:
    """Which process runs a trial (a test kills it by this pid; a person reads it)."""
    import multiprocessing
    import os

    return f"{multiprocessing.current_process().name} pid {os.getpid()}"


def failure_reason(error: BaseException, cli) -> str:
    """One line: why the trial failed, and for memory, where and what to change."""
    if isinstance(error, ConfigRefused):
        return f"the config refused a value: {error}"[:300]
    if OUT_OF_MEMORY.search(str(error)) or type(error).__name__ == "OutOfMemoryError":
        trainer = getattr(cli, "trainer", None)
        if trainer is None:
            return "out of memory while building the trial: lower data.batch_size"
        if trainer.validating:
            place = "validation"
        else:
            place = f"batch {trainer.fit_loop.epoch_loop.batch_idx}"
        return f"out of memory at epoch {trainer.current_epoch}, {place}: lower data.batch_size"
    if isinstance(error, SystemExit):
        return f"the trainer exited with status {error.code}"
    return f"{type(error).__name__}: {one_line(error)}"[:300]
