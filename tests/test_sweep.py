"""python -m project sweep (project/sweep/): real fits on the digits as Optuna trials, on a real
SQLite database, with two worker processes, pruning, a failed trial, resume and best.yaml."""

from __future__ import annotations

import csv
from pathlib import Path

import optuna
import pytest
import yaml

from project.sweep.cli import main
from project.sweep.report import nested
from project.sweep.space import load_sweep
from project.sweep.study import shares

from .helpers import CNN_CONFIG, only_line

# Short trials: every batch is real, there are just few of them.
SHORT = [
    "--trainer.max_epochs=2",
    "--trainer.limit_train_batches=4",
    "--trainer.limit_val_batches=2",
    "--trainer.precision=32-true",
]


def sweep_file(folder: Path, parameters: dict, **settings) -> str:
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump({**settings, "parameters": parameters}), encoding="utf-8")
    return str(path)


def sweep_args(digits_root, folder: Path, sweep: str, trials: int, workers: int = 1) -> list:
    return [
        "--config", CNN_CONFIG, "--sweep", sweep, "--trials", str(trials),
        "--workers", str(workers), "--folder", str(folder), f"--data.root={digits_root}", *SHORT,
    ]  # fmt: skip


LR = "model.init_args.optimizer.init_args.lr"


@pytest.mark.slow
def test_two_workers_share_the_study_prune_resume_and_the_best_runs_as_a_config(
    digits_root, tmp_path
):
    folder = tmp_path / "sweep"
    # A learning rate of 1e-9 learns nothing: val/acc stays near chance (0.1) and the threshold
    # pruner stops that trial after its first validation; 5e-3 gets past 0.25 in two epochs.
    hard = {"name": "threshold", "lower": 0.25, "n_warmup_steps": 0}
    parameters = {LR: {"choices": [1e-9, 5e-3]}, "data.batch_size": {"choices": [32, 64]}}
    sweep = sweep_file(tmp_path, parameters, pruner=hard, sampler="random")
    assert main(sweep_args(digits_root, folder, sweep, trials=4, workers=2)) == 0

    study = optuna.load_study(study_name="sweep", storage=f"sqlite:///{folder / 'study.db'}")
    states = [trial.state for trial in study.trials]
    assert len(states) == 4 and all(state.is_finished() for state in states)
    assert optuna.trial.TrialState.PRUNED in states  # stopped at once, by the pruner
    assert {trial.params[LR] for trial in study.trials} == {1e-9, 5e-3}  # seeded: both drawn
    for trial in study.trials:
        expected = "PRUNED" if trial.params[LR] == 1e-9 else "COMPLETE"
        assert trial.state.name == expected, (trial.number, trial.params, trial.user_attrs)
    with open(folder / "trials.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["state"] for row in rows] == [state.name.lower() for state in states]
    pruned = [row for row in rows if row["state"] == "pruned"]
    assert all(row["reason"].startswith("pruned after epoch") for row in pruned)
    for trial in study.trials:  # every trial's TensorBoard run, in one folder
        assert list((folder / "trials" / f"trial_{trial.number:03d}").glob("events.out.tfevents.*"))
    assert (folder / "history.png").stat().st_size > 0

    # The same command with --trials 5 runs only the one trial missing.
    assert main(sweep_args(digits_root, folder, sweep, trials=5)) == 0
    assert len(optuna.load_study(study_name="sweep", storage=study._storage).trials) == 5

    # best.yaml runs as one more --config and sets the best trial's values.
    from project.lit.cli import main as lightning_main

    best = optuna.load_study(study_name="sweep", storage=study._storage).best_trial
    best_yaml = str(folder / "best.yaml")
    cli = lightning_main(
        ["--config", CNN_CONFIG, "--config", best_yaml, f"--data.root={digits_root}"], run=False
    )
    assert cli.config.model.init_args.optimizer.init_args.lr == pytest.approx(best.params[LR])
    assert cli.config.data.batch_size == best.params["data.batch_size"]


@pytest.mark.slow
def test_a_failing_trial_is_recorded_with_its_reason_and_the_study_goes_on(digits_root, tmp_path):
    folder = tmp_path / "sweep"
    sweep = sweep_file(tmp_path, {LR: {"choices": [1e30]}}, pruner="none")  # the loss goes NaN
    assert main(sweep_args(digits_root, folder, sweep, trials=2)) == 0
    with open(folder / "trials.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["state"] for row in rows] == ["fail", "fail"]
    assert all("LossNotFinite: loss is nan at epoch 0" in row["reason"] for row in rows)
    assert not (folder / "best.yaml").exists()


@pytest.mark.parametrize(
    "settings, parameters, expected",
    [
        ({}, {"model.init_args.no_such_key": {"low": 0, "high": 1}}, "is not a key of the config"),
        ({}, {LR: {"low": 0.1, "high": 0.01}}, "low (0.1) is above high (0.01)"),
        ({}, {LR: {"low": 0.0, "high": 0.1, "log": True}}, "a log range needs low > 0"),
        ({"sampler": "grid"}, {LR: {"low": 0.01, "high": 0.1}}, "sampler 'grid' is not one of"),
        ({"pruner": "hyperband"}, {LR: {"low": 0.01, "high": 0.1}}, "pruner 'hyperband' is not"),
    ],
)
def test_bad_sweep_files_are_one_line_before_any_trial(
    settings, parameters, expected, digits_root, tmp_path, capsys
):
    folder = tmp_path / "sweep"
    sweep = sweep_file(tmp_path, parameters, **settings)
    with pytest.raises(SystemExit) as stopped:
        main(sweep_args(digits_root, folder, sweep, trials=1))
    assert stopped.value.code == 2
    line = only_line(capsys.readouterr().err)
    assert expected in line and line.startswith("error: ")
    assert not (folder / "trials").exists()  # no trial ran


def test_a_storage_that_cannot_be_opened_is_one_line(digits_root, tmp_path, capsys):
    sweep = sweep_file(tmp_path, {LR: {"low": 0.01, "high": 0.1}})
    args = sweep_args(digits_root, tmp_path / "sweep", sweep, trials=1)
    with pytest.raises(SystemExit) as stopped:
        main([*args, "--storage", f"sqlite:///{tmp_path}/no/such/folder/study.db"])
    assert stopped.value.code == 2
    assert "--storage sqlite:///" in only_line(capsys.readouterr().err)


def test_the_example_sweep_file_reads_and_trials_split_over_workers():
    spec = load_sweep("configs/sweeps/cnn.yaml")
    assert spec.metric == "val/acc" and spec.direction == "maximize"
    assert {p.kind for p in spec.parameters} == {"float", "categorical"}
    assert shares(5, 2) == [3, 2] and shares(1, 4) == [1] and sum(shares(20, 3)) == 20
    assert nested({"a.b.c": 1, "a.d": 2, "e": 3}) == {"a": {"b": {"c": 1}, "d": 2}, "e": 3}
