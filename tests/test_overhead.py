"""Per-step overhead: a training step of either loop reads no device tensor back to the host,
except the NaN check (issue 15).

On a GPU every host read (``.item()``, ``bool(tensor)``, ``.cpu()``, ...) waits for the GPU to
finish all queued work, so a read per step serializes the CPU and the GPU. The test counts every
such call during a real fit (in this process, 3 epochs on 3 digit classes) and charges it to the
innermost function of this project on the stack:

- ``check_finite`` reads the loss once per step: the NaN guarantee (a non-finite loss stops
  training before the optimizer step, tests/test_reliability.py) needs the value then;
- the training step's own code (``training_step``, ``train_one_epoch``) reads nothing per step; the
  loss and the epoch's accuracy so far are read for the logger every ``log_every_n_steps``; the
  epoch's sums once per epoch.
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import pytest
import torch

from project.lit.cli import main as lightning_main
from project.manual.cli import run as manual_run

from .helpers import quick_args

PROJECT = str(Path(__file__).resolve().parents[1] / "project")
READS = ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy")
STEP_FUNCTIONS = {"training_step", "train_one_epoch"}  # Lightning's step, the manual epoch
EPOCHS, LOG_EVERY = 3, 4


def charged_function() -> str | None:
    """The project function that made the read, when a training step is on the stack.

    Only reads made directly by project code count: the libraries' own (torch's optimizer reads
    its CPU step counter; Lightning's bookkeeping) are theirs, and the same in both loops."""
    caller = sys._getframe(2)
    if not caller.f_code.co_filename.startswith(PROJECT):
        return None
    frame = caller
    while frame is not None:
        if frame.f_code.co_name in STEP_FUNCTIONS and frame.f_code.co_filename.startswith(PROJECT):
            return caller.f_code.co_name
        frame = frame.f_back
    return None  # validation, callbacks, checkpoints: once an epoch, not once a step


@pytest.fixture
def host_reads(monkeypatch) -> collections.Counter:
    """Host reads made by project code inside a training step, by the function that made them."""
    counts: collections.Counter = collections.Counter()
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            charged = charged_function()
            if charged is not None:
                counts[charged] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


def fit_args(digits_root: Path, log_dir: Path) -> list[str]:
    return [
        *quick_args(digits_root, log_dir),
        f"--trainer.max_epochs={EPOCHS}",
        f"--trainer.log_every_n_steps={LOG_EVERY}",
        '--data.classes=["0", "1", "2"]',
    ]


def check_counts(counts: collections.Counter, steps: int, logged_by: str, epoch_end: str = ""):
    log_points = steps // LOG_EVERY
    assert steps >= 3 * LOG_EVERY  # enough steps that a read per step would show
    assert counts.pop("check_finite") == steps, counts  # the NaN check: one read per step
    # The logger's loss and accuracy so far, every n steps: two reads at most per log point.
    assert counts.pop(logged_by, 0) <= 2 * log_points, counts
    assert counts.pop(epoch_end, 0) <= 3 * EPOCHS, counts  # the epoch's sums, once an epoch
    assert not counts, f"other reads inside the training step: {counts}"


@pytest.mark.slow
def test_lightning_training_step_reads_only_the_nan_check(digits_root, tmp_path, host_reads):
    cli = lightning_main(["fit", *fit_args(digits_root, tmp_path)])
    steps = cli.trainer.global_step
    check_counts(host_reads, steps, logged_by="training_step")


@pytest.mark.slow
def test_manual_training_epoch_reads_only_the_nan_check(digits_root, tmp_path, host_reads):
    result = manual_run(["fit", *fit_args(digits_root, tmp_path)])
    steps = len(result.history.step_losses)
    check_counts(host_reads, steps, logged_by="step", epoch_end="read_sums")
