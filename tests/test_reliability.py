"""Bad checkpoints, crashes, signals, in both loops: clear errors, nothing lost, nothing executed.

The crash tests run the real entry points as subprocesses and kill them (SIGKILL, SIGTERM), then
resume from what is on disk. Every wait follows an event (a checkpoint appears, a line is printed,
the process exits) with one generous bound (tests/helpers.py), so they hold on a busy machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from project.lit.cli import main as lightning_main
from project.manual.cli import main as manual_main
from project.manual.cli import run as manual_run
from project.manual.signals import TrainingInterrupted
from project.models.cnn import SmallCNN
from project.models.resnet import ResNetTransfer, WeightsError
from project.runs.checkpoints import (
    load_checkpoint,
)

from .helpers import (
    CNN_CONFIG,
    REPO,
    CreatesMarker,
    assert_same_tensors,
    only_line,
    quick_args,
    run_command,
    sigterm_in_the_last_step_of_epoch,
    tail,
    transfer_target_args,
    wait_for,
    wait_for_exit,
)


def lightning_style_checkpoint(num_classes: int = 10) -> dict:
    state = {f"network.{k}": v for k, v in SmallCNN(num_classes).state_dict().items()}
    return {"state_dict": state, "pytorch-lightning_version": "2.6.6"}


@pytest.fixture
def malicious_checkpoint(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "code-ran"
    path = tmp_path / "malicious.ckpt"
    torch.save({**lightning_style_checkpoint(), "payload": CreatesMarker(marker)}, path)
    # The payload is live: a full unpickler runs it (this is what every load here must avoid).
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()
    return path, marker


# ---------------------------------------------------------------------------- bad checkpoints


def test_a_code_carrying_checkpoint_is_refused_everywhere(
    malicious_checkpoint, digits_root, tmp_path, capsys
):
    path, marker = malicious_checkpoint
    args = quick_args(digits_root, tmp_path / "logs")
    for entry_point, stage in (
        (lightning_main, ["test", *args, "--ckpt_path", str(path)]),
        (lightning_main, ["fit", *args, "--ckpt_path", str(path)]),
        (manual_main, ["test", *args, "--ckpt_path", str(path)]),
        (manual_main, ["fit", *args, "--resume", str(path)]),
    ):
        with pytest.raises(SystemExit) as stopped:
            entry_point(stage)
        assert stopped.value.code == 2
        error = capsys.readouterr().err
        assert f"{path}: refused, it holds objects other than tensors" in error
        assert "(weights_only=True): Unsupported global: GLOBAL exec was not" in error  # docs
    with pytest.raises(WeightsError):
        ResNetTransfer(num_classes=3, weights=str(path))
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "zero bytes", "not a checkpoint"])
def test_a_damaged_checkpoint_is_a_one_line_error_naming_it(damage, digits_root, tmp_path, capsys):
    path = tmp_path / "damaged.ckpt"
    torch.save(lightning_style_checkpoint(), path)
    content = path.read_bytes()
    path.write_bytes(
        {"truncated": content[: len(content) // 2], "zero bytes": b"", "not a checkpoint": b"hi"}[
            damage
        ]
    )
    args = quick_args(digits_root, tmp_path / "logs")
    for entry_point in (lightning_main, manual_main):
        with pytest.raises(SystemExit) as stopped:
            entry_point(["test", *args, "--ckpt_path", str(path)])
        assert stopped.value.code == 2
        error = only_line(capsys.readouterr().err)  # one line, no traceback
        assert error.startswith(f"error: {path}: not a readable checkpoint")


def test_a_checkpoint_of_another_class_count_lists_the_mismatched_shapes(
    digits_root, tmp_path, capsys
):
    path = tmp_path / "five_classes.ckpt"
    torch.save(lightning_style_checkpoint(num_classes=5), path)  # the data has 10 classes
    args = quick_args(digits_root, tmp_path / "logs")
    for entry_point in (lightning_main, manual_main):
        with pytest.raises(SystemExit) as stopped:
            entry_point(["test", *args, "--ckpt_path", str(path)])
        assert stopped.value.code == 2
        error = capsys.readouterr().err
        assert "does not fit this model" in error and "size mismatch for head.1.weight" in error


# Atomic writes, non-finite weights and stale temporary files: tests/test_checkpoints.py.


def test_lightning_stops_on_a_nan_loss_and_saves_nothing(digits_root, tmp_path, capsys):
    args = [*quick_args(digits_root, tmp_path), "--model.init_args.optimizer.init_args.lr=1e30"]
    with pytest.raises(SystemExit) as stopped:
        lightning_main(["fit", *args])
    assert stopped.value.code == 1
    assert "at epoch 0, step" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.ckpt"))


# ---------------------------------------------------------------------------- kill and resume


def default_ctrl_c() -> None:
    """In the child, before it runs Python: Ctrl-C acts as at a terminal. A test run started in
    the background by a non-interactive shell (``make test &``) inherits SIGINT *ignored*, and
    Python then installs no KeyboardInterrupt handler: the Ctrl-C tests would see a run ignore
    the signal and finish with status 0 (seen in a backgrounded CI run)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(module: str, args: list[str], log: Path) -> subprocess.Popen:
    """``python -m module fit args`` in the background, output to ``log``."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", module, "fit", *args],
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            preexec_fn=default_ctrl_c,
        )


_EPOCHS: dict[tuple[Path, int], int] = {}  # (file, mtime) -> its epoch: each version read once


def last_epoch(folder: Path) -> int:
    """The ``epoch`` of the newest last.ckpt under ``folder`` (-1 while there is none).

    Polled while the run trains beside it: a file is loaded only when it changed (written
    atomically, so it is never read half-written), to leave the CPU to the run."""
    epochs = [-1]
    for file in folder.rglob("last.ckpt"):
        key = (file, file.stat().st_mtime_ns)
        if key not in _EPOCHS:
            _EPOCHS[key] = load_checkpoint(file)["epoch"]
        epochs.append(_EPOCHS[key])
    return max(epochs)


@contextmanager
def running(module: str, args: list[str], log: Path) -> Iterator[subprocess.Popen]:
    """``start`` for a ``with`` block: a child still running when the block ends (an assertion
    failed before the test stopped it) is killed, not left training in the background."""
    process = start(module, args, log)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def lightning_args(digits_root: Path, folder: Path) -> list[str]:
    """4 deterministic epochs: the OneCycle schedule spans max_epochs, so the killed run, its
    resume and the uninterrupted run all need the same number."""
    return [*quick_args(digits_root, folder), "--trainer.max_epochs=4",
            "--trainer.deterministic=true"]  # fmt: skip


@pytest.mark.slow
def test_lightning_resumes_exactly_after_kill_9(digits_root, tmp_path):
    straight = lightning_main(["fit", *lightning_args(digits_root, tmp_path / "straight")])
    expected = load_checkpoint(Path(straight.trainer.log_dir) / "checkpoints" / "last.ckpt")
    folder = tmp_path / "killed"
    args = lightning_args(digits_root, folder)
    log = tmp_path / "run.log"
    with running("project", args, log) as process:
        wait_for(lambda: last_epoch(folder) >= 0, process, log)  # epoch 0 saved, 3 to go
        process.send_signal(signal.SIGKILL)
        assert wait_for_exit(process, log) == -signal.SIGKILL
    saved = last_epoch(folder)  # Lightning numbers the epoch a checkpoint was taken in
    assert saved < 3, "the run finished before it was killed"

    resumed = lightning_main(["fit", *args, "--ckpt_path", "last"])
    assert resumed.trainer.current_epoch == 4
    assert Path(resumed.trainer.log_dir).name == "version_1"  # a restart opens a new version
    final = load_checkpoint(Path(resumed.trainer.log_dir) / "checkpoints" / "last.ckpt")
    assert final["epoch"] == expected["epoch"] == 3
    assert final["global_step"] == expected["global_step"]
    # Bit-identical to the run that was never killed: weights, optimizer moments, schedule.
    assert_same_tensors(expected["state_dict"], final["state_dict"])
    moments, final_moments = (c["optimizer_states"][0]["state"] for c in (expected, final))
    assert moments.keys() == final_moments.keys()
    for index in moments:
        assert_same_tensors(moments[index], final_moments[index])
    assert final["lr_schedulers"] == expected["lr_schedulers"]


@pytest.mark.slow
def test_lightning_saves_last_on_sigterm_and_exits_non_zero(digits_root, tmp_path):
    args = [*quick_args(digits_root, tmp_path), "--trainer.max_epochs=8"]
    log = tmp_path / "run.log"
    # Far more epochs than it gets, so it is still training when signalled, however fast.
    with running("project", [*args, "--trainer.max_epochs=1000"], log) as process:
        wait_for(lambda: last_epoch(tmp_path) >= 0, process, log)
        last = next(tmp_path.rglob("last.ckpt"))
        written_at_epoch_end = last.stat().st_mtime_ns
        assert process.poll() is None, tail(log.read_text())
        process.send_signal(signal.SIGTERM)
        assert wait_for_exit(process, log) == 143
    assert "stopped by SIGTERM" in log.read_text()
    assert last.stat().st_mtime_ns > written_at_epoch_end  # written again, at the stop
    stopped = load_checkpoint(last)
    assert stopped["global_step"] > 0
    # The stopped epoch's sums so far travel with it: train/acc's counts and train/loss_epoch's sum.
    sums = stopped["train_counts"]
    assert sums["counts"][1] > 0 and sums["loss_sum"].dtype == torch.float64, sums
    assert sums["loss_sum"] > 0
    # The same stop saved by a version before train/loss_epoch existed (no loss sum in it).
    old = {**stopped, "train_counts": {"epoch": sums["epoch"], "counts": sums["counts"]}}
    torch.save(old, tmp_path / "old.ckpt")
    resumed = lightning_main(["fit", *args, "--ckpt_path", "last"])
    assert resumed.trainer.current_epoch == 8
    assert "train/loss_epoch" in resumed.trainer.logged_metrics
    # Resumed from the old file, the stopped epoch logs train/acc but no train/loss_epoch (a stop
    # between two epochs, rare, resumes at a new epoch whose sums start afresh: both are logged).
    epoch = stopped["epoch"]
    older = lightning_main(["fit", *args, f"--trainer.max_epochs={epoch + 1}",
                            "--ckpt_path", str(tmp_path / "old.ckpt")])  # fmt: skip
    assert older.trainer.current_epoch == epoch + 1
    assert "train/acc" in older.trainer.logged_metrics
    stopped_inside_the_epoch = sums["epoch"] == epoch
    assert ("train/loss_epoch" in older.trainer.logged_metrics) != stopped_inside_the_epoch


@pytest.fixture(scope="module")
def manual_straight(digits_root, tmp_path_factory):
    """The manual loop, 3 epochs uninterrupted, deterministic: what every resume must equal."""
    folder = tmp_path_factory.mktemp("manual_straight")
    args = [*quick_args(digits_root, folder), "--trainer.max_epochs=3"]
    args.append("--trainer.deterministic=true")
    result = manual_run(["fit", *args])
    return load_checkpoint(result.last_checkpoint)["model"]


def manual_args(digits_root: Path, folder: Path) -> list[str]:
    return [
        *quick_args(digits_root, folder),
        "--trainer.max_epochs=3",
        "--trainer.deterministic=true",
    ]


@pytest.mark.slow
def test_manual_loop_resumes_exactly_after_kill_9(manual_straight, digits_root, tmp_path):
    args = manual_args(digits_root, tmp_path)
    with running("project.manual", args, tmp_path / "run.log") as process:
        wait_for(lambda: last_epoch(tmp_path) >= 1, process, tmp_path / "run.log")  # 1 epoch done
        process.send_signal(signal.SIGKILL)
        assert wait_for_exit(process, tmp_path / "run.log") == -signal.SIGKILL
    assert last_epoch(tmp_path) < 3, "the run finished before it was killed"
    resumed = manual_run(["fit", *args, "--resume", "last"])
    assert_same_tensors(manual_straight, load_checkpoint(resumed.last_checkpoint)["model"])


@pytest.mark.slow
def test_manual_loop_stops_mid_epoch_on_sigterm_and_resumes_exactly(
    manual_straight, digits_root, tmp_path
):
    args = manual_args(digits_root, tmp_path)
    log = tmp_path / "run.log"
    with running("project.manual", args, log) as process:
        wait_for(lambda: "epoch   0 " in log.read_text(), process, log)
        # No sleep "into epoch 1": the loop reads a stop request only after a training step, so a
        # SIGTERM that lands during epoch 0's validation or save stops after epoch 1's first step.
        process.send_signal(signal.SIGTERM)
        assert wait_for_exit(process, log) == 143
    assert "stopped by SIGTERM at epoch" in log.read_text()
    stopped = load_checkpoint(next(tmp_path.rglob("last.ckpt")))
    assert stopped["mid_epoch"] is not None  # taken inside an epoch, not at its end
    resumed = manual_run(["fit", *args, "--resume", "last"])
    assert_same_tensors(manual_straight, load_checkpoint(resumed.last_checkpoint)["model"])


@pytest.mark.slow
def test_manual_loop_stopped_in_an_epochs_last_step_resumes_exactly(
    manual_straight, digits_root, tmp_path, monkeypatch
):
    """The stop lands after the epoch's last batch and before its validation: the resume
    validates that epoch and ends with the same weights (the streamed version of this test, in
    tests/test_streaming.py, also checks that no image is read again)."""
    args = manual_args(digits_root, tmp_path)
    sigterm_in_the_last_step_of_epoch(monkeypatch, 1)
    with pytest.raises(TrainingInterrupted):
        manual_run(["fit", *args])
    monkeypatch.undo()
    stopped = load_checkpoint(next(tmp_path.rglob("last.ckpt")))
    assert (
        stopped["epoch"] == 1
        and stopped["mid_epoch"]["batches_done"] == stopped["global_step"] // 2
    )
    resumed = manual_run(["fit", *args, "--resume", "last"])
    assert_same_tensors(manual_straight, load_checkpoint(resumed.last_checkpoint)["model"])


@pytest.mark.slow
@pytest.mark.parametrize("module, status", [("project", 1), ("project.manual", 130)])
def test_ctrl_c_saves_last_and_stops_cleanly(module, status, digits_root, tmp_path):
    # Far more epochs than the test waits for, so the run cannot end on its own before the
    # signal, however fast the machine (an epoch takes 0.3 s on the idle dev VM).
    args = [*quick_args(digits_root, tmp_path), "--trainer.max_epochs=1000"]
    log = tmp_path / "run.log"
    with running(module, args, log) as process:
        wait_for(lambda: last_epoch(tmp_path) >= (0 if module == "project" else 1), process, log)
        last = next(tmp_path.rglob("last.ckpt"))
        written_at_epoch_end = last.stat().st_mtime_ns
        assert process.poll() is None, tail(log.read_text())  # still training when interrupted
        process.send_signal(signal.SIGINT)
        assert wait_for_exit(process, log) == status
    assert last.stat().st_mtime_ns > written_at_epoch_end
    assert "Traceback" not in log.read_text()


def test_an_unknown_config_key_is_an_error_naming_it(tmp_path, capsys):
    typo = tmp_path / "typo.yaml"
    typo.write_text("trainer:\n  max_epoch: 3\n")
    with pytest.raises(SystemExit) as stopped:
        lightning_main(["fit", "--config", CNN_CONFIG, "--config", str(typo)])
    assert stopped.value.code == 2  # a usage error, as argparse reports one
    assert "trainer.max_epoch" in capsys.readouterr().err


# ---------------------------------------------------------------------------- last.ckpt every epoch

# The epoch a last.ckpt of a 3-epoch run records: Lightning numbers the epoch it was taken in, the
# manual loop counts the epochs done.
THIRD_EPOCH = {"project": 2, "project.manual": 3}


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["project", "project.manual"])
def test_the_transfer_target_saves_last_ckpt_every_epoch_though_it_validates_at_20(
    entry, glyph_target, tmp_path
):
    """configs/transfer/target.yaml validates once, at epoch 20; 3 epochs leave a last.ckpt
    (Lightning: save_on_train_epoch_end in configs/defaults.yaml; the manual loop likewise)."""
    args = transfer_target_args(glyph_target, tmp_path, "--trainer.max_epochs=3")
    run_command([sys.executable, "-m", entry, "fit", *args])
    assert last_epoch(tmp_path) == THIRD_EPOCH[entry]
    assert not list(tmp_path.rglob("best-*.ckpt"))  # no validation ran, so no best


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["project", "project.manual"])
def test_kill_9_before_the_first_validation_leaves_a_last_ckpt_to_resume(
    entry, glyph_target, tmp_path
):
    args = transfer_target_args(glyph_target, tmp_path, "--trainer.max_epochs=20")
    log = tmp_path / "run.log"
    with running(entry, args, log) as process:
        wait_for(lambda: last_epoch(tmp_path) >= 0, process, log)  # after epoch 0, of 20
        process.send_signal(signal.SIGKILL)
        assert wait_for_exit(process, log) == -signal.SIGKILL
    saved = last_epoch(tmp_path)
    assert 0 <= saved < 19, "the run reached its validation before it was killed"
    assert not list(tmp_path.rglob("best-*.ckpt"))
    checkpoint = load_checkpoint(next(tmp_path.rglob("last.ckpt")))  # whole: weights_only reads it
    assert checkpoint["inference"]["sample"]["images"].shape[1:] == (3, 16, 16)
