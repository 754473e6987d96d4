"""Two processes on the CPU: Lightning's DDP preset and the manual loop under torchrun.

Both run as real subprocesses (DDP starts its own processes), one short run each, and must leave
one log folder with checkpoints and metrics reduced over both processes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from project.checkpoints import load_checkpoint
from project.plot import read_scalars

from .helpers import CONFIGS, quick_args
from .helpers import run_command as run  # to its exit, 600 s at most; fails with the output


def only_run_folder(runs: Path) -> Path:
    folders = [folder for folder in runs.iterdir() if folder.is_dir()]
    assert len(folders) == 1, folders  # process 0 alone logs: one folder, not one per process
    return folders[0]


@pytest.mark.slow
def test_lightning_ddp_on_two_cpu_processes(digits_root, tmp_path):
    preset = str(CONFIGS / "presets" / "ddp_cpu.yaml")
    run(
        [
            sys.executable,
            "-m",
            "project",
            "fit",
            *quick_args(digits_root, tmp_path),
            "--config",
            preset,
        ]
    )
    folder = only_run_folder(tmp_path / "cnn")
    checkpoint = load_checkpoint(folder / "checkpoints" / "last.ckpt")
    # Each process took half of every epoch: 1259 training images / 2 = 630, 9 full batches of 64
    # (one process alone takes 19): 2 epochs = 18 steps.
    assert checkpoint["global_step"] == 2 * 9
    val_acc = read_scalars(folder)["val/acc"][1]
    assert len(val_acc) == 2 and val_acc[-1] > 0.3  # well above chance (0.1) after 18 steps


@pytest.mark.slow
def test_manual_loop_under_torchrun_on_two_cpu_processes(digits_root, tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    result = run([*torchrun, "-m", "project.manual", "fit", *quick_args(digits_root, tmp_path)])
    assert result.stdout.count("epoch   1 ") == 1  # process 0 prints, process 1 stays quiet
    folder = only_run_folder(tmp_path / "cnn")
    checkpoint = load_checkpoint(folder / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 2 * 9
    val_acc = read_scalars(folder)["val/acc"][1]
    assert len(val_acc) == 2 and val_acc[-1] > 0.3
