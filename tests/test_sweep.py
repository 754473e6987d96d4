"""python -m project sweep (project/sweep/): real fits on the digits as Optuna trials, on a real
SQLite database: sweeps stopped by Ctrl-C, SIGTERM, kill -9 and a killed worker, each followed by
the same command; values refused before any trial; failed trials' reasons; the plots.

The interrupted runs are real processes (``python -u -m project sweep``), stopped while a trial
they run is RUNNING in the study: the test waits for that row, freezes the process (SIGSTOP) so
the trial cannot end meanwhile, checks the row again, then sends the signal and SIGCONT. The
runs that finish a study run in this process (``main``), or spawn their workers."""

from __future__ import annotations

import csv
import ctypes
import os
import re
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import torch
import yaml
from lightning.pytorch import Callback
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from project.runs.tensorboard_extras import hyperparameters
from project.sweep.checks import probe_rounds
from project.sweep.cli import main
from project.sweep.report import history_figure, nested, write_plots
from project.sweep.space import load_sweep, make_sampler
from project.sweep.study import Stop, fail_dead_trials, open_storage, quiet_optuna, shares
from project.sweep.trial import first_heartbeat

from .helpers import CNN_CONFIG, REPO, kill_group, only_line, tail, wait_for, wait_for_exit

# Short trials: every batch is real, there are just few of them.
SHORT = [
    "--trainer.max_epochs=2",
    "--trainer.limit_train_batches=4",
    "--trainer.limit_val_batches=2",
    "--trainer.precision=32-true",
]
LR = "model.init_args.optimizer.init_args.lr"
DROPOUT = "model.init_args.dropout"
FLOATS = {LR: {"low": 1.0e-3, "high": 1.0e-2, "log": True}, DROPOUT: {"low": 0.0, "high": 0.4}}


def sweep_file(folder: Path, parameters: dict, **settings) -> str:
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump({**settings, "parameters": parameters}), encoding="utf-8")
    return str(path)


def sweep_args(digits_root, folder: Path, sweep: str, trials: int, workers: int = 1) -> list:
    return [
        "--config", CNN_CONFIG, "--sweep", sweep, "--trials", str(trials),
        "--workers", str(workers), "--folder", str(folder), f"--data.root={digits_root}", *SHORT,
    ]  # fmt: skip


def study_trials(folder: Path, wait: float = 60) -> list[optuna.trial.FrozenTrial]:
    # SQLite waits up to ``wait`` seconds for a worker's write lock (60, as the sweep's own
    # open_storage does) instead of failing with "database is locked" after 5 s.
    url = f"sqlite:///{folder / 'study.db'}"
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": wait}})
    return optuna.load_study(study_name="sweep", storage=storage).get_trials(deepcopy=False)


def trials_while_frozen(folder: Path) -> list[optuna.trial.FrozenTrial] | None:
    """The study's trials, read while a process of the sweep is frozen (SIGSTOP). A process
    frozen in the middle of a commit holds the study's write lock (a read then waits for ever:
    "database is locked" in CI), so the read waits 2 s at most; None: no answer, and the caller
    lets the process go on and looks again."""
    try:
        return study_trials(folder, wait=2)
    except sqlalchemy.exc.OperationalError:
        return None


def rows(folder: Path) -> list[dict]:
    with open(folder / "trials.csv", newline="") as file:
        return list(csv.DictReader(file))


def copies(trials) -> dict[int, optuna.trial.FrozenTrial]:
    """{failed trial's number: the trial that ran it again} (Optuna's retry history)."""
    return {
        RetryHeartbeatStaleTrialCallback.retry_history(t)[-1]: t
        for t in trials
        if RetryHeartbeatStaleTrialCallback.retry_history(t)
    }


def final_copy(trials, number: int) -> optuna.trial.FrozenTrial:
    """The copy that finished the trial ``number`` (through copies of copies)."""
    again = copies(trials)
    trial = again[number]
    while trial.state == TrialState.FAIL:
        trial = again[trial.number]
    assert trial.state in (TrialState.COMPLETE, TrialState.PRUNED), trial
    return trial


def running(folder: Path, group: int, worker: str = "") -> list[optuna.trial.FrozenTrial]:
    return running_among(study_trials(folder), group, worker)


def running_among(trials, group: int, worker: str = "") -> list[optuna.trial.FrozenTrial]:
    """RUNNING trials whose values are drawn and saved (the "worker" attribute comes after), by a
    live process of the sweep's process group ``group`` (a copy of a stopped trial carries the
    attributes of the process that ran it before, until it starts)."""
    return [
        t
        for t in trials
        if t.state == TrialState.RUNNING
        and worker in t.user_attrs.get("worker", "")
        and in_group(t.user_attrs.get("worker"), group)
    ]


def in_group(worker: str | None, group: int) -> bool:
    if not worker:
        return False
    try:
        return os.getpgid(int(worker.rsplit(" ", 1)[-1])) == group
    except ProcessLookupError:
        return False


def pid_of(trial) -> int:
    return int(trial.user_attrs["worker"].rsplit(" ", 1)[-1])


def stop_during_a_trial(args, folder, logs: Path, signal_number, worker="", group=False):
    """Start the sweep, wait until a trial runs (of ``worker``), send it ``signal_number`` while
    that trial is RUNNING (frozen by SIGSTOP meanwhile); its exit status, stderr and the trial."""
    logs.mkdir()
    out, err = logs / "out.log", logs / "err.log"
    command = [sys.executable, "-u", "-m", "project", "sweep", *args, "--heartbeat", "1"]
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=stdout, stderr=stderr, start_new_session=True
        )
    try:
        wait_for(lambda: "study 'sweep'" in out.read_text(), process, err)
        while True:
            wait_for(lambda: running(folder, process.pid, worker), process, err)
            target = running(folder, process.pid, worker)[0]
            pid = process.pid if group else pid_of(target)
            send = os.killpg if group else os.kill
            send(pid, signal.SIGSTOP)  # now the trial cannot end before the signal lands
            if still_running(folder, process.pid, worker, target):
                break
            send(pid, signal.SIGCONT)  # it ended in between: wait for the next one
        send(pid, signal_number)
        send(pid, signal.SIGCONT)
        status = wait_for_exit(process, err)
    finally:
        if process.poll() is None:
            kill_group(process)
    return status, err.read_text(), out.read_text(), target


def still_running(folder: Path, group: int, worker: str, target) -> bool:
    """Whether ``target`` is RUNNING, asked while its process is frozen; no answer counts as no
    (trials_while_frozen)."""
    trials = trials_while_frozen(folder)
    return trials is not None and any(
        t.number == target.number for t in running_among(trials, group, worker)
    )


def uninterrupted_draws(sweep: str, trials: int, seed: int = 0) -> list[dict]:
    """The values an uninterrupted 1-worker run of a random-sampler sweep draws: the sampler's
    sequence does not depend on the trials' results."""
    spec = load_sweep(sweep)
    study = optuna.create_study(sampler=make_sampler(spec, seed), direction=spec.direction)
    study.optimize(lambda trial: (spec.suggest(trial), 0.0)[1], n_trials=trials)
    return [trial.params for trial in study.trials]


def by_values(params: list[dict]) -> list:
    return sorted(tuple(sorted(p.items())) for p in params)


# ---------------------------------------------------------------------------- interruptions


@pytest.mark.slow
def test_ctrl_c_sigterm_and_kill_9_then_the_same_command_end_as_one_uninterrupted_run(
    digits_root, tmp_path, capsys
):
    folder = tmp_path / "sweep"
    sweep = sweep_file(tmp_path, FLOATS, sampler="random", pruner="none")
    args = [*sweep_args(digits_root, folder, sweep, trials=4), "--trainer.max_epochs=10"]

    status, err, _, first = stop_during_a_trial(args, folder, tmp_path / "a", signal.SIGINT)
    assert status == 130 and "stopped by SIGINT" in err, tail(err)
    first_stopped = stopped_before_its_end(folder, first)
    status, err, out, second = stop_during_a_trial(args, folder, tmp_path / "b", signal.SIGTERM)
    assert status == 143 and "stopped by SIGTERM" in err, tail(err)
    second_stopped = stopped_before_its_end(folder, second)
    if first_stopped:
        assert f"trial {first.number} was stopped by SIGINT: queued again" in out
    status, _, out, third = stop_during_a_trial(args, folder, tmp_path / "c", signal.SIGKILL)
    assert status == -signal.SIGKILL
    if second_stopped:
        assert f"trial {second.number} was stopped by SIGTERM: queued again" in out

    assert main([*args, "--heartbeat", "1"]) == 0  # the same command, to its end
    out = capsys.readouterr().out
    assert f"trial {third.number} was RUNNING with no heartbeat" in out, out
    trials = study_trials(folder)
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(finished) == 4 and not [t for t in trials if not t.state.is_finished()]
    # Every trial drew what an uninterrupted run draws: no value twice, none skipped.
    assert by_values([t.params for t in finished]) == by_values(uninterrupted_draws(sweep, 4))
    # Each stopped trial was run again with its own values (its copy may have been stopped too).
    stops = [(first, first_stopped), (second, second_stopped), (third, True)]
    for stopped in [trial for trial, was_stopped in stops if was_stopped]:
        assert final_copy(trials, stopped.number).params == stopped.params
    reasons = {int(row["number"]): row["reason"] for row in rows(folder)}
    assert not first_stopped or reasons[first.number].startswith("stopped by SIGINT")
    assert not second_stopped or reasons[second.number].startswith("stopped by SIGTERM")
    assert reasons[third.number] == "its process died (no heartbeat)"
    assert first_stopped or second_stopped  # two late signals in one run: the test proved little


def stopped_before_its_end(folder: Path, trial) -> bool:
    """Whether the signal stopped ``trial`` (failed, to be run again). A signal that lands after
    the trial's last step lets it complete, as it should; on a busy machine the test cannot
    always send it earlier (seen in make test-under-load), and then there is nothing to run
    again."""
    [now] = [t for t in study_trials(folder) if t.number == trial.number]
    return now.state != TrialState.COMPLETE


@pytest.mark.slow
def test_a_killed_worker_then_ctrl_c_on_two_workers_then_the_same_command_finish_the_study(
    digits_root, tmp_path
):
    folder = tmp_path / "sweep"
    # A learning rate of 1e-9 learns nothing: val/acc stays near chance (0.1) and the threshold
    # pruner stops that trial after its first validation; 5e-3 gets past 0.25.
    hard = {"name": "threshold", "lower": 0.25, "n_warmup_steps": 0}
    parameters = {LR: {"choices": [1e-9, 5e-3]}, DROPOUT: {"low": 0.0, "high": 0.4}}
    sweep = sweep_file(tmp_path, parameters, pruner=hard, sampler="random")
    args = sweep_args(digits_root, folder, sweep, trials=4, workers=2)

    # kill -9 of one worker: the other finishes its trials, the outputs are written, exit 1.
    status, err, out, killed = stop_during_a_trial(
        args, folder, tmp_path / "a", signal.SIGKILL, worker="sweep-worker-1"
    )
    assert status == 1, tail(err)
    said = f"error: worker sweep-worker-1 (pid {pid_of(killed)}) was killed by SIGKILL"
    assert said in err, tail(err)
    assert f"trial {killed.number} was RUNNING with no heartbeat" in out
    survivor = [t for t in study_trials(folder) if "sweep-worker-0" in t.user_attrs["worker"]]
    assert len(survivor) == 2 and all(t.state.is_finished() for t in survivor)
    # Its trial: marked failed, and copied with its values (queued, or run by worker 0 if that
    # one started a trial after the heartbeat's grace period).
    states = {int(row["number"]): row["state"] for row in rows(folder)}
    assert states[killed.number] == "fail" and killed.number in copies(study_trials(folder))
    assert (folder / "history.png").is_file() and (folder / "best.yaml").is_file()

    # Ctrl-C: SIGINT to the sweep's process group, as a terminal sends it. What the second run
    # starts from is what the first left, read from the study: 2 trials finished, or 3 (seen
    # under make test-under-load, where the fixed "2 of 4" failed).
    ended = (TrialState.COMPLETE, TrialState.PRUNED)
    finished = len([t for t in study_trials(folder) if t.state in ended])
    status, err, out, _ = stop_during_a_trial(
        args, folder, tmp_path / "b", signal.SIGINT, group=True
    )
    assert status == 130 and "stopped by SIGINT" in err, tail(err)
    assert finished in (2, 3)
    assert f"{finished} of 4 trials finished, running {min(2, 4 - finished)}" in out, out

    assert main(args + ["--heartbeat", "1"]) == 0  # the same command, to its end
    trials = study_trials(folder)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == 4 and not [t for t in trials if not t.state.is_finished()]
    assert len({tuple(sorted(t.params.items())) for t in done}) == 4  # no values twice
    for failed in (t for t in trials if t.state == TrialState.FAIL):
        assert final_copy(trials, failed.number).params == failed.params
    for trial in done:  # pruned at once by the pruner, exactly the trials that learn nothing
        expected = TrialState.PRUNED if trial.params[LR] == 1e-9 else TrialState.COMPLETE
        assert trial.state == expected, (trial.number, trial.params, trial.user_attrs)
        assert list((folder / "trials" / f"trial_{trial.number:03d}").glob("events.out.*"))
    pruned = [row for row in rows(folder) if row["state"] == "pruned"]
    assert pruned and all(row["reason"].startswith("pruned after epoch 0") for row in pruned)

    # best.yaml runs as one more --config and sets the best trial's values.
    from project.lit.cli import main as lightning_main

    best = optuna.load_study(
        study_name="sweep", storage=open_storage(f"sqlite:///{folder / 'study.db'}")
    )
    best_yaml = str(folder / "best.yaml")
    cli = lightning_main(
        ["--config", CNN_CONFIG, "--config", best_yaml, f"--data.root={digits_root}"], run=False
    )
    assert cli.config.model.init_args.dropout == pytest.approx(best.best_params[DROPOUT])


def test_a_trial_whose_process_died_before_its_first_heartbeat_is_failed_and_queued_again(
    tmp_path, capsys
):
    """Optuna's stale check skips RUNNING trials with no heartbeat row; the sweep's does not."""
    quiet_optuna()  # as the sweep's workers: no experimental-feature warnings
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat=1)  # grace: 3 s
    study = optuna.create_study(storage=storage, study_name="sweep")
    minute_ago = datetime.now() - timedelta(seconds=60)

    def add_running(started: datetime) -> int:
        trial = optuna.trial.create_trial(state=TrialState.RUNNING, params={}, distributions={})
        trial.datetime_start = started
        return storage.create_new_trial(study._study_id, template_trial=trial)

    dead = add_running(minute_ago)  # no heartbeat, a minute old: its process died
    alive = add_running(minute_ago)  # a heartbeat just now: a live process's trial
    storage.record_heartbeat(alive)
    starting = add_running(datetime.now())  # no heartbeat yet, but started just now

    fail_dead_trials(study, grace=3)

    state = {t._trial_id: t.state for t in study.get_trials(deepcopy=False)}
    assert state[dead] == TrialState.FAIL
    assert state[alive] == state[starting] == TrialState.RUNNING
    [copy] = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.WAITING]
    number = storage.get_trial(dead).number
    assert RetryHeartbeatStaleTrialCallback.retry_history(copy) == [number]
    assert f"trial {number} was RUNNING with no heartbeat" in capsys.readouterr().out


def test_first_heartbeat_writes_the_trials_heartbeat_row_without_optunas_thread(tmp_path):
    quiet_optuna()  # as the sweep's workers: no experimental-feature warnings
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat=1)
    study = optuna.create_study(storage=storage, study_name="sweep")
    with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna: ask starts no heartbeat
        trial = study.ask()  # RUNNING, and no heartbeat row yet
    first_heartbeat(trial)
    with storage.engine.connect() as connection:
        beating = connection.execute(sqlalchemy.text("SELECT trial_id FROM trial_heartbeats"))
        assert list(beating.scalars()) == [trial._trial_id]


@pytest.mark.slow
def test_a_sigterm_the_kernel_hands_to_another_thread_of_the_sweep_stops_its_trials_at_once(
    digits_root, tmp_path
):
    """The sweep's parent waits in Process.join(); a SIGTERM the kernel hands to one of its other
    threads (torch's) ran the handler only once a worker ended, its trials done (seen: 18 s).
    Both workers are frozen (no trial can end), SIGTERM goes to the parent's oldest other thread
    with tgkill, and the parent must forward it to both workers while they are still frozen:
    their trials end stopped by SIGTERM, and no trial completes after the signal."""
    folder = tmp_path / "sweep"
    sweep = sweep_file(tmp_path, FLOATS, sampler="random", pruner="none")
    args = [*sweep_args(digits_root, folder, sweep, trials=4, workers=2), "--trainer.max_epochs=10"]
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    command = [sys.executable, "-u", "-m", "project", "sweep", *args]
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=stdout, stderr=stderr, start_new_session=True
        )
    try:
        wait_for(lambda: "study 'sweep'" in out.read_text(), process, err)  # the study exists
        workers, finished = frozen_with_two_trials_running(folder, process, err)
        others = [int(t) for t in os.listdir(f"/proc/{process.pid}/task") if int(t) != process.pid]
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.tgkill(process.pid, min(others), signal.SIGTERM) == 0, ctypes.get_errno()
        wait_for(lambda: all(sigterm_pending(pid) for pid in workers), process, err)
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
        assert wait_for_exit(process, err) == 143, tail(err.read_text())
    finally:
        if process.poll() is None:
            kill_group(process)
    trials = study_trials(folder)
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == finished
    stopped = [t for t in trials if t.user_attrs.get("stopped_by") == "SIGTERM"]
    assert len(stopped) == 2 and {pid_of(t) for t in stopped} == workers


def frozen_with_two_trials_running(folder: Path, process, log: Path) -> tuple[set[int], int]:
    """Wait until both workers run a trial, freeze both (SIGSTOP); their pids and how many
    trials had completed. No answer from the study (trials_while_frozen), or a trial ended
    meanwhile: both go on for a moment and the test looks again."""
    while True:
        wait_for(lambda: len(running(folder, process.pid)) == 2, process, log)
        workers = {pid_of(t) for t in running(folder, process.pid)}
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        trials = trials_while_frozen(folder)
        if trials is not None and len(running_among(trials, process.pid)) == 2:
            return workers, len([t for t in trials if t.state == TrialState.COMPLETE])
        for pid in workers:
            os.kill(pid, signal.SIGCONT)


def sigterm_pending(pid: int) -> bool:
    """Whether SIGTERM waits, undelivered, at the (frozen) process ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text()
    masks = [int(line.split()[1], 16) for line in status.splitlines()
             if line.startswith(("SigPnd:", "ShdPnd:"))]  # fmt: skip
    return any(mask & (1 << (signal.SIGTERM - 1)) for mask in masks)


def test_a_signal_to_the_sweep_is_forwarded_to_its_workers_once_and_repeats_change_nothing():
    child = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys, time\n"
         "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
         "print('ready', flush=True)\ntime.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout.readline() == "ready\n"
        stop = Stop()
        stop.pids.append(child.pid)
        stop.handle(signal.SIGTERM, None)
        assert child.wait(timeout=60) == 7
        stop.handle(signal.SIGINT, None)  # a second signal: the first one stays the reason
        assert stop.signal == "SIGTERM" and stop.status == 143
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# ---------------------------------------------------------------------------- failed trials


class OutOfMemoryAtSecondBatch(Callback):
    """Raises what torch raises when a batch does not fit in the GPU's memory."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.slow
def test_every_trial_failing_is_exit_1_with_the_most_common_reason(digits_root, tmp_path, capsys):
    folder = tmp_path / "sweep"
    sweep = sweep_file(tmp_path, {LR: {"choices": [1e30]}}, pruner="none")  # the loss goes NaN
    assert main(sweep_args(digits_root, folder, sweep, trials=2)) == 1
    captured = capsys.readouterr()
    said = "error: all 2 trials failed; the most common reason (2 of 2): LossNotFinite: loss is"
    assert said in captured.err
    assert [row["state"] for row in rows(folder)] == ["fail", "fail"]
    assert all("LossNotFinite: loss is nan at epoch 0" in row["reason"] for row in rows(folder))
    assert not (folder / "best.yaml").exists()
    assert "importance.png not drawn: it needs 2 completed trials, the study has 0" in captured.out


@pytest.mark.slow
def test_out_of_memory_is_a_reason_that_says_where_and_what_to_lower(digits_root, tmp_path):
    folder = tmp_path / "sweep"
    sweep = sweep_file(tmp_path, {DROPOUT: {"low": 0.0, "high": 0.4}}, pruner="none")
    callback = f"--trainer.callbacks+={__name__}.OutOfMemoryAtSecondBatch"
    assert main([*sweep_args(digits_root, folder, sweep, trials=1), callback]) == 1
    [row] = rows(folder)
    assert row["reason"] == "out of memory at epoch 0, batch 1: lower data.batch_size"


# ---------------------------------------------------------------------------- a space per class


def docs_example(name: str) -> str:
    """The YAML block of docs/sweeps.md whose first line is ``# NAME: python -m project ...``."""
    text = (REPO / "docs" / "sweeps.md").read_text(encoding="utf-8")
    [block] = re.findall(rf"^```yaml\n(# {re.escape(name)}: .*?)^```", text, re.M | re.S)
    return block


@pytest.mark.slow
def test_the_docs_example_searches_each_optimizer_class_with_its_own_arguments(
    digits_root, tmp_path
):
    path = tmp_path / "optimizers.yaml"
    path.write_text(docs_example("optimizers.yaml"), encoding="utf-8")
    folder = tmp_path / "sweep"
    args = sweep_args(digits_root, folder, str(path), trials=2)
    assert main([*args, "--study", "sweep", "--seed", "3"]) == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    classes = set()
    for trial in study_trials(folder):
        chosen = trial.params["model.init_args.optimizer.class_path"]
        classes.add(chosen)
        own = {"torch.optim.SGD": {"lr", "momentum"}, "torch.optim.AdamW": {"lr", "weight_decay"}}
        names = {n.split(".init_args.")[-1].split("[")[0] for n in trial.params if "[" in n}
        assert names == own[chosen] and all(f"[{chosen}]" in n for n in trial.params if "[" in n)
        # The trial trained with them: its HPARAMS record, one number per argument.
        events = EventAccumulator(str(folder / "trials" / f"trial_{trial.number:03d}"))
        events.Reload()
        content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        logged = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
        assert logged["model/optimizer"].string_value == chosen
        for name in own[chosen]:
            value = trial.params[f"model.init_args.optimizer.init_args.{name}[{chosen}]"]
            assert logged[f"model/optimizer/{name}"].number_value == pytest.approx(value)
    assert classes == {"torch.optim.SGD", "torch.optim.AdamW"}  # seed 3 draws both


# ---------------------------------------------------------------------------- refused before any


@pytest.mark.parametrize(
    "settings, parameters, expected",
    [
        ({}, {"model.init_args.no_such_key": {"low": 0, "high": 1}}, "is not a key of the config"),
        ({}, {LR: {"low": 0.1, "high": 0.01}}, "low (0.1) is above high (0.01)"),
        ({}, {LR: {"low": 0.0, "high": 0.1, "log": True}}, "a log range needs low > 0"),
        ({}, {LR: {"low": "fast", "high": 0.1}}, "low must be a number, got 'fast'"),
        ({"sampler": "grid"}, {LR: {"low": 0.01, "high": 0.1}}, "sampler 'grid' is not one of"),
        ({"pruner": "hyperband"}, {LR: {"low": 0.01, "high": 0.1}}, "pruner 'hyperband' is not"),
        (
            {},
            {LR: {"choices": ["fast", "slow"]}},
            f"parameters.{LR}: choice 'fast' is refused by the config: Expected a float",
        ),
        (
            {},
            {"data.batch_size": {"low": 16.0, "high": 64.0}},
            "parameters.data.batch_size: low 16.0 is refused by the config: Expected an int "
            "(an int key: write its range in integers",
        ),
        (
            {"pruner": {"name": "median", "n_warmup": 2}},
            {LR: {"low": 0.01, "high": 0.1}},
            "pruner median: unknown argument 'n_warmup' (MedianPruner takes: n_startup_trials, "
            "n_warmup_steps",
        ),
        (
            {"sampler": {"name": "tpe", "seed": 3}},
            {LR: {"low": 0.01, "high": 0.1}},
            "sampler tpe: seed is not set here (--seed sets it)",
        ),
        (
            {"pruner": {"name": "percentile", "percentile": 150}},
            {LR: {"low": 0.01, "high": 0.1}},
            "pruner percentile: Percentile must be between 0 and 100 inclusive, but got "
            "percentile=150",
        ),
        (
            {},
            {
                "model.init_args.optimizer.class_path": {
                    "choices": {"torch.optim.SGD": {"momentm": {"low": 0.8, "high": 0.9}}}
                }
            },
            "init_args.momentm[torch.optim.SGD]: low 0.8 is refused by the config: "
            "Option 'momentm' is not accepted",
        ),  # fmt: skip
    ],
)
def test_bad_sweep_files_are_one_line_before_any_trial_and_write_nothing(
    settings, parameters, expected, digits_root, tmp_path, capsys
):
    folder = tmp_path / "sweep"
    sweep = sweep_file(tmp_path, parameters, **settings)
    with pytest.raises(SystemExit) as stopped:
        main(sweep_args(digits_root, folder, sweep, trials=1))
    assert stopped.value.code == 2
    line = only_line(capsys.readouterr().err)
    assert expected in line and line.startswith("error: "), line
    assert not folder.exists()  # no trial ran, no study.db was made


@pytest.mark.slow
def test_a_metric_the_run_does_not_log_is_refused_after_one_batch(digits_root, tmp_path, capsys):
    folder = tmp_path / "sweep"
    sweep = sweep_file(tmp_path, {DROPOUT: {"low": 0.0, "high": 0.4}}, metric="val/accuracy")
    with pytest.raises(SystemExit) as stopped:
        main(sweep_args(digits_root, folder, sweep, trials=1))
    assert stopped.value.code == 2
    line = only_line(capsys.readouterr().err)
    assert "metric 'val/accuracy' is not logged at validation by this config" in line
    assert "val/acc, " in line  # the metrics it does log, to choose from
    assert not folder.exists()


@pytest.mark.slow
def test_a_storage_that_cannot_be_opened_is_one_line(digits_root, tmp_path, capsys):
    sweep = sweep_file(tmp_path, {LR: {"low": 0.01, "high": 0.1}})
    folder = tmp_path / "sweep"
    args = sweep_args(digits_root, folder, sweep, trials=1)
    with pytest.raises(SystemExit) as stopped:
        main([*args, "--storage", f"sqlite:///{tmp_path}/no/such/folder/study.db"])
    assert stopped.value.code == 2
    assert "--storage sqlite:///" in only_line(capsys.readouterr().err)
    assert not folder.exists()


def test_numbers_written_1e_4_are_numbers_and_each_value_is_probed(tmp_path):
    sweep = sweep_file(
        tmp_path,
        {LR: {"low": "1e-4", "high": "1e-2", "log": True},
         "data.batch_size": {"choices": [32, 64, 128]},
         "model.init_args.optimizer.class_path": {"choices": {
             "torch.optim.SGD": {"momentum": {"low": 0.8, "high": 0.9}},
             "torch.optim.AdamW": None}}},
    )  # fmt: skip
    spec = load_sweep(sweep)
    lr = spec.by_name()[LR]
    assert (lr.low, lr.high, lr.kind) == (1e-4, 1e-2, "float")
    probed = {(p.name, repr(v)) for assignment in probe_rounds(spec) for p, v in assignment}
    wanted = {(p.name, repr(v)) for p in spec.parameters for v in p.probe_values}
    assert wanted <= probed
    for assignment in probe_rounds(spec):  # momentum only with SGD
        chosen = dict((p.name, v) for p, v in assignment)
        if "model.init_args.optimizer.init_args.momentum[torch.optim.SGD]" in chosen:
            assert chosen["model.init_args.optimizer.class_path"] == "torch.optim.SGD"


# ---------------------------------------------------------------------------- reading the results


def test_plots_have_whole_trial_numbers_short_names_and_importance_from_two_completed(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    sweep = sweep_file(tmp_path, FLOATS, metric="val/acc")
    spec = load_sweep(sweep)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(spec, 0))
    study.optimize(lambda t: (spec.suggest(t), 0.1 + 0.5 * t.params[DROPOUT])[1], n_trials=1)
    assert write_plots(study, spec, tmp_path) == [
        "importance.png not drawn: it needs 2 completed trials, the study has 1"
    ]
    assert (tmp_path / "history.png").is_file() and not (tmp_path / "importance.png").exists()
    study.optimize(lambda t: (spec.suggest(t), 0.1 + 0.5 * t.params[DROPOUT])[1], n_trials=5)
    assert write_plots(study, spec, tmp_path) == []
    figure = history_figure(study, spec)
    ticks = [tick for tick in figure.axes[0].get_xticks() if 0 <= tick <= 5]
    assert ticks and all(float(tick).is_integer() for tick in ticks)
    with open(tmp_path / "importance.csv", newline="") as file:
        importance = {row["parameter"]: row["key"] for row in csv.DictReader(file)}
    assert importance == {"dropout": DROPOUT, "lr": LR}


def test_hparams_give_each_optimizer_argument_its_own_number():
    optimizer = {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1, "momentum": 0.9}}
    flat = hyperparameters({"optimizer": optimizer, "dropout": 0.2}, {"batch_size": 64}, "CNN")
    assert flat["model/optimizer"] == "torch.optim.SGD"
    assert flat["model/optimizer/lr"] == 0.1 and flat["model/optimizer/momentum"] == 0.9
    assert flat["model/dropout"] == 0.2 and flat["data/batch_size"] == 64


def test_the_example_sweep_file_reads_and_trials_split_over_workers():
    spec = load_sweep("configs/sweeps/cnn.yaml")
    assert spec.metric == "val/acc" and spec.direction == "maximize"
    assert {p.kind for p in spec.parameters} == {"float", "categorical"}
    assert shares(5, 2) == [3, 2] and shares(1, 4) == [1] and sum(shares(20, 3)) == 20
    assert nested({"a.b.c": 1, "a.d": 2, "e": 3}) == {"a": {"b": {"c": 1}, "d": 2}, "e": 3}
