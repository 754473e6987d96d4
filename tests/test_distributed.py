"""Two processes on the CPU: Lightning's DDP preset and the manual loop under torchrun.

Both run as real subprocesses (DDP starts its own processes), one short run each, and must leave
one log folder with checkpoints and metrics reduced over both processes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from project.lit.cli import main as lightning_main
from project.runs.checkpoints import load_checkpoint
from project.runs.curves import read_scalars

from .helpers import CONFIGS, quick_args
from .helpers import run_command as run  # to its exit, 600 s at most; fails with the output


def only_run_folder(runs: Path) -> Path:
    folders = [folder for folder in runs.iterdir() if folder.is_dir()]
    assert len(folders) == 1, folders  # process 0 alone logs: one folder, not one per process
    return folders[0]


def assert_reduced_over_both_processes(folder: Path, digits_root: Path, log_dir: Path) -> None:
    """The run's last val/acc and val/loss are those of the whole validation split: one process
    validating the final weights (last.ckpt) on all 160 images gets the same numbers. Either
    process's own half (80 images) gives others. 160 is even, so DistributedSampler pads no
    duplicate image into the halves: the two figures must agree to the float rounding."""
    scalars = read_scalars(folder)
    val_acc, val_loss = scalars["val/acc"][1], scalars["val/loss"][1]
    assert len(val_acc) == 2 and len(val_loss) == 2  # one value per epoch, from process 0 only
    alone = lightning_main(["validate", *quick_args(digits_root, log_dir), *VAL_SPLIT,
                            f"--ckpt_path={folder / 'checkpoints' / 'last.ckpt'}"])  # fmt: skip
    whole = alone.trainer.callback_metrics
    assert val_acc[-1] == pytest.approx(float(whole["val/acc"]), abs=1e-6)
    assert val_loss[-1] == pytest.approx(float(whole["val/loss"]), rel=1e-5)


# 10 images of each class less in training: a validation split of 160 images (even: no padding),
# 1278 training images, 639 per process, still 9 full batches of 64 (drop_last).
VAL_SPLIT = ["--data.val_fraction=0.09"]


@pytest.mark.slow
def test_lightning_ddp_on_two_cpu_processes(digits_root, tmp_path):
    preset = str(CONFIGS / "presets" / "ddp_cpu.yaml")
    run(
        [
            sys.executable,
            "-m",
            "project",
            "fit",
            *quick_args(digits_root, tmp_path / "logs"),
            *VAL_SPLIT,
            "--config",
            preset,
        ]
    )
    folder = only_run_folder(tmp_path / "logs" / "cnn")
    checkpoint = load_checkpoint(folder / "checkpoints" / "last.ckpt")
    # Each process took half of every epoch: 639 training images, 9 full batches of 64
    # (one process alone takes 19): 2 epochs = 18 steps.
    assert checkpoint["global_step"] == 2 * 9
    assert_reduced_over_both_processes(folder, digits_root, tmp_path / "alone")


@pytest.mark.slow
def test_manual_loop_under_torchrun_on_two_cpu_processes(digits_root, tmp_path):
    # --standalone: a free port of its own, not the default 29500 (tests run side by side)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    args = [*quick_args(digits_root, tmp_path / "logs"), *VAL_SPLIT]
    result = run([*torchrun, "-m", "project.manual", "fit", *args])
    assert result.stdout.count("epoch   1 ") == 1  # process 0 prints, process 1 stays quiet
    folder = only_run_folder(tmp_path / "logs" / "cnn")
    checkpoint = load_checkpoint(folder / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 2 * 9
    assert_reduced_over_both_processes(folder, digits_root, tmp_path / "alone")
