"""What several test files share: the repository's configs, a short run's arguments, image files,
tensor equality, and waits that follow events (a file appears, a line is printed, a process exits).

    from .helpers import CNN_CONFIG, quick_args, run_command, wait_for_exit

Every wait here has one generous bound, ``BOUND_SECONDS`` (600 s): a step that takes 10 s on an
idle laptop still passes on a machine five times slower that is also running something else. A wait
that runs out fails with the process's own output, never a bare timeout. Fixtures live in
conftest.py; importing from another test file is avoided (pytest may import it twice).
"""

from __future__ import annotations

import csv
import os
import signal
import struct
import subprocess
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
CNN_CONFIG = str(CONFIGS / "cnn.yaml")
RESNET_CONFIG = str(CONFIGS / "resnet18.yaml")
TARGET_CONFIG = str(CONFIGS / "transfer" / "target.yaml")
DEFAULTS_CONFIG = CONFIGS / "defaults.yaml"

BOUND_SECONDS = 600.0  # the one bound of every wait: generous on a busy machine 5x slower than idle


# ---------------------------------------------------------------------------- runs and files


def quick_args(digits_root: Path, log_dir: Path) -> list[str]:
    """The default config, shortened to a 2-epoch fp32 run whose files all go to ``log_dir``."""
    return [
        "--config",
        CNN_CONFIG,
        f"--data.root={digits_root}",
        f"--trainer.logger.init_args.save_dir={log_dir}",
        "--trainer.max_epochs=2",
        "--trainer.precision=32-true",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]


def save_image(
    path: Path, mode: str = "RGB", size: tuple[int, int] = (12, 10), seed: int = 0
) -> Path:
    """Write a small random image in ``mode`` to ``path`` (format from the extension)."""
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def make_class_folders(root: Path, counts: dict[str, int], size=(12, 10)) -> Path:
    """root/<class>/<i>.png with counts[class] random images each."""
    for name, count in counts.items():
        for i in range(count):
            save_image(root / name / f"{i}.png", size=size, seed=hash((name, i)) % 2**32)
    return root


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header says width x height pixels, with no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


# What Lightning's Trainer logs on stderr when it starts (its INFO lines), before any error.
# The CPU thread rule's line (project/core/threads.py) is printed where precision auto's is.
LIGHTNING_START_LINES = ("Seed set to ", "GPU available: ", "TPU available: ", "HPU available: ",
                         "CPU threads: ")  # fmt: skip


def only_line(stderr: str) -> str:
    """The one line a failed run printed on stderr: one line and nothing else (no traceback, no
    usage text, no warning), as the project's errors promise (project/core/errors.py). Lightning's
    own start-up lines (LIGHTNING_START_LINES, exact prefixes) are all a run may print before it."""
    lines = [line for line in stderr.splitlines() if not line.startswith(LIGHTNING_START_LINES)]
    assert len(lines) == 1, f"{len(lines)} lines on stderr, not one:\n{tail(stderr)}"
    return lines[0]


def assert_same_tensors(first: dict, second: dict) -> None:
    """Bit-identical state dicts: the same keys, every tensor ``torch.equal``."""
    assert first.keys() == second.keys()
    different = [key for key in first if not torch.equal(first[key], second[key])]
    assert not different, f"differ: {different[:5]}"


def assert_same_predictions(batched: Path, one_by_one: Path) -> None:
    """Two prediction CSVs (PredictionWriter) give every path the same classes and, within float
    noise, the same probabilities. Predicted one image per batch, a row cannot hold another
    image's prediction: compared with it, a batched run that pairs paths and images wrongly
    (a batch's paths reversed, shuffled, shifted) fails."""

    def by_path(path: Path) -> dict[str, list[str]]:
        with open(path, newline="") as file:
            rows = list(csv.reader(file))
        return {row[0]: row[1:] for row in rows[1:]}

    expected, got = by_path(one_by_one), by_path(batched)
    assert got.keys() == expected.keys()
    assert len({tuple(row) for row in expected.values()}) > 1  # images told apart: a real check
    for path, row in got.items():
        classes, probabilities = row[::2], [float(p) for p in row[1::2]]
        assert classes == expected[path][::2], (path, row, expected[path])
        assert probabilities == pytest.approx([float(p) for p in expected[path][1::2]], abs=1e-5)


# ---------------------------------------------------------------------------- processes and waits


def sigterm_in_the_last_step_of_epoch(monkeypatch, epoch: int) -> None:
    """The manual loop (in this process) gets SIGTERM during ``epoch``'s last training step: its
    handler sets the stop flag, and the loop stops after that step, before the epoch's
    validation (a real signal, sent at a moment a subprocess test cannot aim at). The steps of
    an epoch are counted from epoch 0's end, so ``epoch`` must be 1 or later."""
    from project.manual import run_log

    step, epoch_end = run_log.RunLog.step, run_log.RunLog.epoch
    per_epoch = []

    def counted_epoch_end(self, ended: int, last_step: int, *rest) -> None:
        if ended == 0:
            per_epoch.append(last_step + 1)
        epoch_end(self, ended, last_step, *rest)

    def step_then_sigterm(self, global_step: int, *rest) -> None:
        step(self, global_step, *rest)
        if per_epoch and global_step == (epoch + 1) * per_epoch[0] - 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(run_log.RunLog, "epoch", counted_epoch_end)
    monkeypatch.setattr(run_log.RunLog, "step", step_then_sigterm)


def tail(text: str, characters: int = 4000) -> str:
    return text[-characters:]


def run_command(
    command: list[str],
    cwd: Path = REPO,
    timeout: float = BOUND_SECONDS,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run ``command`` to its exit (at most ``timeout`` s) and return its output.

    It runs in a session of its own, so that a run that outlives the bound is killed with every
    process it started (DDP and torchrun start more). ``check``: a non-zero exit fails the test
    with the end of the output. ``env``: the child's environment (default: this one's)."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        stdout, stderr = process.communicate()
        pytest.fail(f"still running after {timeout:.0f} s: {command}\n{tail(stdout + stderr)}")
    except BaseException:  # Ctrl-C on pytest, or any error: leave no process behind
        kill_group(process)
        raise
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if check:
        assert result.returncode == 0, tail(stdout + stderr)
    return result


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL ``process`` and the processes it started (it must lead its own session)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def wait_for(
    condition: Callable[[], bool],
    process: subprocess.Popen,
    log: Path,
    timeout: float = BOUND_SECONDS,
    poll: float = 0.05,
) -> None:
    """Return once ``condition()`` holds; fail with the log if ``process`` ends first or the bound
    passes (the process is then killed)."""
    deadline = time.monotonic() + timeout
    while not condition():
        ended = process.poll() is not None
        if ended or time.monotonic() > deadline:
            if not ended:
                process.kill()
                process.wait()
            why = f"ended with status {process.returncode}" if ended else f"after {timeout:.0f} s"
            pytest.fail(f"the condition never held ({why}):\n{tail(log.read_text())}")
        time.sleep(poll)


def wait_for_exit(process: subprocess.Popen, log: Path, timeout: float = BOUND_SECONDS) -> int:
    """The process's exit status once it exits; fail with its log if it outlives the bound."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(
            f"still running {timeout:.0f} s after it was told to stop:\n{tail(log.read_text())}"
        )


def small_resnet_args(root: Path, log_dir: Path, *extra: str) -> list[str]:
    """configs/resnet18.yaml on ``root`` at 32 px, fp32, quiet, logging under ``log_dir``."""
    return [
        "--config",
        RESNET_CONFIG,
        f"--data.root={root}",
        "--data.image_size=32",
        "--data.batch_size=8",
        f"--trainer.logger.init_args.save_dir={log_dir}",
        "--trainer.precision=32-true",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *extra,
    ]


def write_glyph_target(root: Path, train: int = 3, val: int = 1) -> Path:
    """A small glyph target as ``make challenge-data`` lays it out: ``train/`` and ``val/`` only
    (no test split), the 10 digits drawn in 2 of the target fonts (project/transfer/glyphs.py),
    ``train`` and ``val`` images per font and digit."""
    from project.transfer import glyphs

    fonts = glyphs.usable_fonts(glyphs.TARGET_FONTS, glyphs.DIGITS)[:2]
    glyphs.write_set(root / "train", glyphs.DIGITS, fonts, train, seed=0)
    glyphs.write_set(root / "val", glyphs.DIGITS, fonts, val, seed=1)
    return root


def transfer_target_args(root: Path, log_dir: Path, *extra: str) -> list[str]:
    """The workshop's transfer target (configs/resnet18.yaml + configs/transfer/target.yaml:
    feature cache on, backbone frozen, one validation at epoch 20) on ``root``, small: random
    backbone weights (no data/glyphs needed), 16 px, 2 epochs (so no validation), quiet."""
    return [
        "--config", RESNET_CONFIG, "--config", TARGET_CONFIG,
        f"--data.root={root}", "--data.image_size=16", "--data.batch_size=8",
        "--model.init_args.weights=null", "--trainer.max_epochs=2",
        f"--trainer.logger.init_args.save_dir={log_dir}",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        *extra,
    ]  # fmt: skip


def data_moved_away(checkpoint: Path, folder: Path) -> Path:
    """A copy of ``checkpoint`` in ``folder`` whose recorded data folder does not exist: what
    every command sees after the training images were moved, or on another machine."""
    contents = torch.load(checkpoint, map_location="cpu", weights_only=True)
    contents["datamodule_hyper_parameters"]["root"] = str(folder / "moved-away")
    path = folder / checkpoint.name
    torch.save(contents, path)
    return path


class CreatesMarker:
    """Unpickling this runs code: it creates ``marker``. weights_only=True must refuse it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"import pathlib; pathlib.Path({str(self.marker)!r}).touch()",))
