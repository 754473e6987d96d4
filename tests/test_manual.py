"""The plain PyTorch loop (project/manual/) against the Lightning loop (project/lit/cli.py).

Proof of equality on CPU, fp32, deterministic algorithms, same config and seed:
  - both loops end with bit-identical weights and identical per-step losses and learning rates
    (CNN, and ResNet18 across the backbone unfreeze);
  - resuming is exact in both loops: 1 epoch + resume + 1 epoch == 2 epochs straight;
  - checkpoints cross over: a Lightning .ckpt tests in the manual loop and back, same accuracy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from jsonargparse import Namespace, dict_to_namespace
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from project import compare
from project.lit.classifier import CNNClassifier
from project.lit.cli import main as lightning_main
from project.manual.cli import main as manual_main
from project.manual.cli import run as manual_run
from project.manual.run_log import other_loggers_note
from project.manual.settings import logger_classes
from project.manual.trainer_options import plain_logger
from project.runs import curves as plot
from project.runs.checkpoints import load_checkpoint

from .helpers import (
    CNN_CONFIG,
    DEFAULTS_CONFIG,
    RESNET_CONFIG,
    assert_same_tensors,
    only_line,
    quick_args,
)


def every_epoch_config(folder: Path) -> Path:
    """A config whose callbacks are the real ones of configs/cnn.yaml (configs/defaults.yaml's
    list, then cnn.yaml's ``callbacks+``), the best-checkpoint rule keeping every epoch's file
    instead of the best one. A ``callbacks:`` list replaces the configured list as a whole."""
    callbacks = [
        *yaml.safe_load(DEFAULTS_CONFIG.read_text())["trainer"]["callbacks"],
        *yaml.safe_load(Path(CNN_CONFIG).read_text())["trainer"]["callbacks+"],
    ]
    best = [c for c in callbacks if c.get("init_args", {}).get("monitor") == "val/acc"]
    assert len(best) == 1, callbacks
    best[0]["init_args"].update(save_top_k=-1, filename="epoch{epoch}")
    path = folder / "every_epoch.yaml"
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": callbacks}}))
    return path


class StepRecorder(Callback):
    """Each optimizer step's loss and learning rates, as the manual loop's History keeps them."""

    def __init__(self):
        self.losses: list[float] = []
        self.lrs: list[dict[str, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        groups = trainer.optimizers[0].param_groups
        self.lrs.append({group["name"]: group["lr"] for group in groups})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].item())


def equality_args(digits_root: Path, log_dir: Path, *extra: str) -> list[str]:
    """quick_args (2 epochs, fp32) with deterministic algorithms, then ``extra``."""
    return [*quick_args(digits_root, log_dir), "--trainer.deterministic=true", *extra]


def lightning_fit(args: list[str]) -> tuple:
    """Fit through the real CLI, with a StepRecorder added to the configured callbacks."""
    cli = lightning_main(args, run=False)
    recorder = StepRecorder()
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli, recorder


def optimizer_tensors(state: dict) -> dict[str, torch.Tensor]:
    """An optimizer state_dict's per-parameter tensors, flattened to comparable keys."""
    return {
        f"{index}.{name}": value
        for index, values in state["state"].items()
        for name, value in values.items()
    }


@pytest.fixture(scope="module")
def straight(digits_root, tmp_path_factory):
    """Both loops, 2 epochs straight, every epoch's checkpoint kept."""
    folder = tmp_path_factory.mktemp("straight")
    every_epoch = every_epoch_config(folder)
    args = equality_args(digits_root, folder / "logs", "--config", str(every_epoch))
    cli, recorder = lightning_fit(args)
    manual = manual_run(["fit", *args])
    return {
        "args": args,
        "cli": cli,
        "recorder": recorder,
        "lightning_dir": Path(cli.trainer.log_dir),
        "manual": manual,
    }


# ---------------------------------------------------------------------------- equality


@pytest.mark.slow
def test_loops_end_with_bit_identical_weights_losses_and_lrs(straight):
    manual, recorder = straight["manual"], straight["recorder"]
    lightning_weights = straight["cli"].model.network.state_dict()
    manual_weights = load_checkpoint(manual.last_checkpoint)["model"]
    assert_same_tensors(lightning_weights, manual_weights)  # bit-identical, not just close
    assert len(recorder.losses) == len(manual.history.step_losses) > 20
    assert recorder.losses == manual.history.step_losses
    assert recorder.lrs == manual.history.step_lrs
    # The same epoch metrics too (Lightning's are logged; the manual loop returns them).
    metrics = straight["cli"].trainer.callback_metrics
    assert metrics["val/acc"].item() == pytest.approx(manual.history.epochs[-1]["val/acc"])
    assert metrics["val/loss"].item() == pytest.approx(manual.history.epochs[-1]["val/loss"])


@pytest.mark.slow
def test_resnet_loops_equal_across_the_backbone_unfreeze(digits_root, tmp_path):
    # Random init (nothing to download), 3 classes, 32 px, frozen for epoch 0, fine-tuned in 1.
    args = [
        "--config",
        RESNET_CONFIG,
        f"--data.root={digits_root}",
        '--data.classes=["0", "1", "2"]',
        "--data.image_size=32",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--trainer.max_epochs=2",
        "--trainer.precision=32-true",
        "--trainer.deterministic=true",
        "--trainer.enable_progress_bar=false",
        "--model.init_args.weights=null",
        "--model.init_args.freeze_backbone_epochs=1",
    ]
    cli, recorder = lightning_fit(args)
    manual = manual_run(["fit", *args])
    manual_weights = load_checkpoint(manual.last_checkpoint)["model"]
    assert_same_tensors(cli.model.network.state_dict(), manual_weights)
    assert recorder.losses == manual.history.step_losses
    assert recorder.lrs == manual.history.step_lrs
    assert set(manual.history.step_lrs[0]) == {"backbone", "head"}


# ---------------------------------------------------------------------------- resume


@pytest.mark.slow
def test_manual_resume_equals_the_straight_run(straight, tmp_path):
    straight_dir = straight["manual"].log_dir / "checkpoints"
    resumed = manual_run(["fit", *straight["args"], "--resume", str(straight_dir / "epoch0.ckpt")])
    assert resumed.log_dir != straight["manual"].log_dir  # a restart opens a new log version
    expected = load_checkpoint(straight_dir / "epoch1.ckpt")
    got = load_checkpoint(resumed.log_dir / "checkpoints" / "epoch1.ckpt")
    assert_same_tensors(expected["model"], got["model"])
    assert_same_tensors(
        optimizer_tensors(expected["optimizer"]), optimizer_tensors(got["optimizer"])
    )
    assert expected["scheduler"]["_last_lr"] == got["scheduler"]["_last_lr"]
    assert (expected["global_step"], expected["epoch"]) == (got["global_step"], got["epoch"])
    # The resumed half took exactly the straight run's second-epoch steps.
    assert (
        resumed.history.step_losses
        == straight["manual"].history.step_losses[-len(resumed.history.step_losses) :]
    )


@pytest.mark.slow
def test_manual_resume_last_finds_the_newest_last_checkpoint(straight, tmp_path, capsys):
    # An interrupted run: its last.ckpt is the straight run's first epoch.
    runs = tmp_path / "cnn"
    for version, source in ((0, "epoch1.ckpt"), (3, "epoch0.ckpt")):  # version 3 written last
        target = runs / f"manual_version_{version}" / "checkpoints" / "last.ckpt"
        target.parent.mkdir(parents=True)
        target.write_bytes((straight["manual"].log_dir / "checkpoints" / source).read_bytes())
    args = [*straight["args"], f"--trainer.logger.init_args.save_dir={tmp_path}"]
    resumed = manual_run(["fit", *args, "--resume", "last"])
    out = capsys.readouterr().out
    assert f"resumed from {runs}/manual_version_3" in out
    assert "not implemented by the manual loop" not in out  # the default logger is TensorBoard
    assert resumed.log_dir == runs / "manual_version_4"  # a restart opens a new version
    assert len(resumed.history.epochs) == 1  # only the missing second epoch ran
    expected = load_checkpoint(straight["manual"].log_dir / "checkpoints" / "epoch1.ckpt")
    assert_same_tensors(expected["model"], load_checkpoint(resumed.last_checkpoint)["model"])


@pytest.mark.slow
def test_lightning_resume_equals_the_straight_run(straight):
    straight_dir = straight["lightning_dir"] / "checkpoints"
    resumed = lightning_main(
        ["fit", *straight["args"], "--ckpt_path", str(straight_dir / "epoch0.ckpt")]
    )
    expected = load_checkpoint(straight_dir / "epoch1.ckpt")
    got = load_checkpoint(Path(resumed.trainer.log_dir) / "checkpoints" / "epoch1.ckpt")
    assert_same_tensors(expected["state_dict"], got["state_dict"])
    assert_same_tensors(
        optimizer_tensors(expected["optimizer_states"][0]),
        optimizer_tensors(got["optimizer_states"][0]),
    )
    assert expected["lr_schedulers"][0]["_last_lr"] == got["lr_schedulers"][0]["_last_lr"]
    assert expected["global_step"] == got["global_step"]


# ---------------------------------------------------------------------------- interop


def lightning_test_acc(args: list[str], checkpoint: Path) -> float:
    cli = lightning_main(["test", *args, "--ckpt_path", str(checkpoint)])
    return cli.trainer.callback_metrics["test/acc"].item()


@pytest.mark.slow
def test_a_lightning_checkpoint_tests_the_same_in_the_manual_loop(straight):
    checkpoint = straight["lightning_dir"] / "checkpoints" / "epoch1.ckpt"
    manual = manual_run(["test", *straight["args"], "--ckpt_path", str(checkpoint)])
    assert manual["test/acc"] == pytest.approx(lightning_test_acc(straight["args"], checkpoint))


@pytest.mark.slow
def test_a_manual_checkpoint_tests_the_same_in_lightning(straight):
    checkpoint = straight["manual"].log_dir / "checkpoints" / "epoch1.ckpt"
    manual = manual_run(["test", *straight["args"], "--ckpt_path", str(checkpoint)])
    assert lightning_test_acc(straight["args"], checkpoint) == pytest.approx(manual["test/acc"])
    # load_from_checkpoint maps the plain keys onto the LightningModule's network.* keys.
    model = CNNClassifier.load_from_checkpoint(checkpoint, weights_only=True)
    assert_same_tensors(model.network.state_dict(), load_checkpoint(checkpoint)["model"])


# ---------------------------------------------------------------------------- files and logs


@pytest.mark.slow
def test_manual_checkpoints_hold_the_whole_state_and_no_temporary_files(straight):
    folder = straight["manual"].log_dir / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch0.ckpt", "epoch1.ckpt", "last.ckpt"]
    checkpoint = load_checkpoint(folder / "last.ckpt")  # weights_only=True, no allow-listing
    for key in ("model", "optimizer", "scheduler", "rng_states", "config"):
        assert checkpoint[key], key
    assert checkpoint["scaler"] == {}  # fp32: the GradScaler is off and has no state
    steps = len(straight["manual"].history.step_losses)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (2, steps)
    assert checkpoint["hyper_parameters"]["num_classes"] == 10
    assert checkpoint["config"]["model"]["class_path"] == "project.lit.classifier.CNNClassifier"


@pytest.mark.slow
def test_both_loops_log_the_same_tensorboard_tags_at_the_same_steps(straight, tmp_path):
    lightning = plot.read_scalars(straight["lightning_dir"])
    manual = plot.read_scalars(straight["manual"].log_dir)
    assert set(lightning) == set(manual)
    assert {"hp/best_val_acc", "hp/final_val_loss"} <= set(manual)
    for run in (straight["lightning_dir"], straight["manual"].log_dir):
        events = EventAccumulator(str(run))
        events.Reload()
        images = {"val/confusion_matrix", "val/predictions", "val/top_losses"}
        assert set(events.Tags()["images"]) == images
        assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")
    tags = ("train/loss", "train/acc", "train/loss_epoch", "val/loss", "val/acc", "lr/model",
            "hp/best_val_acc")  # fmt: skip
    for tag in tags:
        assert lightning[tag][0] == manual[tag][0], tag  # steps
        assert lightning[tag][1] == pytest.approx(manual[tag][1], abs=1e-6), tag  # values
    # train/acc: the epoch's accuracy so far every log_every_n_steps (10, configs/defaults.yaml),
    # and each epoch's at its end, exactly those steps.
    epoch_ends = lightning["val/acc"][0]
    log_steps = [step for step in range(epoch_ends[-1] + 1) if (step + 1) % 10 == 0]
    assert sorted(set(lightning["train/acc"][0])) == sorted({*log_steps, *epoch_ends})
    # At an epoch's end, the epoch's accuracy: what the manual loop's history holds.
    epoch_values = dict(zip(*lightning["train/acc"], strict=True))
    history = straight["manual"].history.epochs
    for step, metrics in zip(epoch_ends, history, strict=True):
        assert epoch_values[step] == pytest.approx(metrics["train/acc"], abs=1e-6)
    png = plot.main([str(straight["manual"].log_dir), "--output", str(tmp_path / "curves.png")])
    assert png.stat().st_size > 10_000


# ---------------------------------------------------------------------------- errors


def test_a_missing_checkpoint_is_a_one_line_error(digits_root, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "best.ckpt"
    with pytest.raises(SystemExit) as stopped:
        manual_main(["test", *quick_args(digits_root, tmp_path), "--ckpt_path", str(missing)])
    assert stopped.value.code == 2
    assert only_line(capsys.readouterr().err).startswith(f"error: checkpoint not found: {missing}")


def test_resume_last_without_a_previous_run_is_an_error(digits_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        manual_main(["fit", *quick_args(digits_root, tmp_path), "--resume", "last"])
    assert stopped.value.code == 2
    assert "no last.ckpt under" in only_line(capsys.readouterr().err)


def test_a_trainer_option_the_manual_loop_lacks_is_refused(digits_root, tmp_path, capsys):
    args = [*quick_args(digits_root, tmp_path), "--trainer.val_check_interval=0.5"]
    with pytest.raises(SystemExit) as stopped:
        manual_main(["fit", *args])
    assert stopped.value.code == 2
    error = only_line(capsys.readouterr().err)
    assert "trainer.val_check_interval=0.5: not implemented" in error


@pytest.mark.parametrize("option", ["limit_train_batches=1.5", "limit_val_batches=-2",
                                    "overfit_batches=2.5"])  # fmt: skip
def test_a_batch_limit_lightning_refuses_is_refused_naming_it(
    option, digits_root, tmp_path, capsys
):
    with pytest.raises(SystemExit) as stopped:
        manual_main(["fit", *quick_args(digits_root, tmp_path), f"--trainer.{option}"])
    assert stopped.value.code == 2
    error = only_line(capsys.readouterr().err)
    assert f"trainer.{option}: give a share of the batches from 0.0 to 1.0" in error, error


def test_a_whole_float_above_1_is_a_number_of_batches_as_in_lightning():
    from project.manual.settings import batch_count_or_share

    assert batch_count_or_share(5.0, "limit_train_batches") == 5
    assert type(batch_count_or_share(5.0, "limit_train_batches")) is int
    assert batch_count_or_share(1.0, "limit_train_batches") == 1.0  # all of them
    assert batch_count_or_share(None, "limit_val_batches") == 1.0


def test_another_logger_is_named_and_tensorboard_is_written(digits_root, tmp_path, capsys):
    csv_logger = tmp_path / "csv.yaml"  # docs/own-images.md section 7's config
    csv_logger.write_text(
        "trainer:\n  logger:\n    class_path: lightning.pytorch.loggers.CSVLogger\n"
        f"    init_args: {{save_dir: {tmp_path / 'logs'}, name: cnn_csv}}\n"
    )
    args = [*quick_args(digits_root, tmp_path), "--config", str(csv_logger)]
    result = manual_run(["fit", *args, "--trainer.max_epochs=1"])
    out = capsys.readouterr().out
    assert "trainer.logger CSVLogger: not implemented by the manual loop" in out
    assert result.log_dir == tmp_path / "logs" / "cnn_csv" / "manual_version_0"
    assert plot.read_scalars(result.log_dir)["val/acc"][1]  # the TensorBoard files it does write


class MyTensorBoardLogger(TensorBoardLogger):
    """A user's own TensorBoard logger: the manual loop's TensorBoard files are what it writes
    (known by its name, which ends in TensorBoardLogger: the manual loop imports no logger)."""


@pytest.mark.parametrize(
    ("logger", "line"),
    [
        (None, None),  # Lightning's default logger
        (f"{__name__}.MyTensorBoardLogger", None),
        ("lightning.pytorch.loggers.CSVLogger", "trainer.logger CSVLogger: not implemented"),
        (
            ["lightning.pytorch.loggers.TensorBoardLogger", "lightning.pytorch.loggers.CSVLogger"],
            "trainer.logger CSVLogger: not implemented",
        ),
        (False, "trainer.logger false: python -m project writes no logs"),
    ],
)
def test_the_line_about_other_loggers(logger, line):
    # As the manual loop's parser reads them: by class name, no logger class imported.
    def parsed(path: str) -> Namespace:
        return dict_to_namespace(plain_logger({"class_path": path, "init_args": {}}))

    if isinstance(logger, str):
        logger = parsed(logger)
    elif isinstance(logger, list):
        logger = [parsed(path) for path in logger]
    note = other_loggers_note(logger_classes(logger))
    assert note is None if line is None else note.startswith(line), note


def test_a_diverging_loss_stops_with_epoch_and_step_and_saves_nothing(digits_root, tmp_path):
    args = [*quick_args(digits_root, tmp_path), "--model.init_args.optimizer.init_args.lr=1e30"]
    with pytest.raises(FloatingPointError, match=r"at epoch 0, step \d+"):
        manual_run(["fit", *args])
    assert not list(tmp_path.rglob("*.ckpt"))


# ---------------------------------------------------------------------------- make compare


@pytest.mark.slow
def test_compare_runs_both_loops_and_finds_identical_weights(digits_root, tmp_path, capsys):
    result = compare.main(
        [
            "--config",
            CNN_CONFIG,
            f"--data.root={digits_root}",
            "--trainer.max_steps=30",
            "--trainer.precision=32-true",
            "--output",
            str(tmp_path / "compare"),
        ]
    )
    assert result["max_weight_difference"] <= 1e-6
    assert result["identical"]
    table = capsys.readouterr().out
    for row in (
        "val/acc",
        "optimizer steps",
        "train images/s",
        "peak memory",
        "bit-identical",
        "label smoothing 0.1: a perfect model's loss is 0.500",
    ):
        assert row in table
    assert result["summaries"]["manual"]["optimizer steps"] == 30
    assert (tmp_path / "compare" / "curves.png").stat().st_size > 10_000


def test_batch_counts_stay_counts_whatever_unions_the_process_made_before():
    """typing caches unions, and finds ``float | int | None`` equal to ``int | float | None``:
    once Lightning's float-first hints were made, an option typed ``int | float | None`` with a
    None default (which jsonargparse wraps in typing.Optional) read "5" as the share 5.0, and the
    manual loop trained on every batch (seen after a Lightning fit in the same process)."""
    import typing

    from project.manual.settings import parse

    for clear in typing._cleanups:  # typing's caches, emptied as a fresh process has them
        clear()
    try:
        typing.Optional[float | int | None]  # noqa: UP045  the float-first union, made first
        trainer = parse(["fit", "--config", CNN_CONFIG, "--trainer.limit_train_batches=5",
                         "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=0.5",
                         "--trainer.overfit_batches=2"]).trainer  # fmt: skip
    finally:
        for clear in typing._cleanups:  # no float-first union left for later tests
            clear()
    limits = (trainer.limit_train_batches, trainer.limit_val_batches, trainer.overfit_batches)
    assert limits == (5, 1, 2) and all(type(limit) is int for limit in limits)
    assert type(trainer.limit_test_batches) is float and trainer.limit_predict_batches == 1.0
