"""Helpers every benchmark shares: interleaved repeats, medians with their spread, the machine.

Timings on a shared 2-core VM are noisy. So every comparison here runs its candidates in turn
(A, B, A, B, ...) several times and reports the median and the min-max, and ratios are taken
between medians measured in the same run.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from project.models.cnn import SmallCNN
from project.models.resnet import ResNetTransfer

# The two models at their configs' sizes: (build, batch size, image size).
MODELS = {
    "SmallCNN, batch 64 at 16 px": (lambda: SmallCNN(10), 64, 16),
    "ResNet18, batch 32 at 64 px": (lambda: ResNetTransfer(10, weights=None), 32, 64),
}


def model_batches() -> Iterator[tuple[str, Callable, torch.Tensor, torch.Tensor]]:
    """(name, build, images, labels) for each of MODELS, with a random batch of its size."""
    for name, (build, batch, size) in MODELS.items():
        torch.manual_seed(0)
        yield name, build, torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))


@dataclass
class FreshFit:
    """One ``fit`` of the default config in a fresh process, as a user runs it: wall times (the
    clock before the process started, after it ended) and its ``val/acc`` events."""

    started: float
    ended: float
    val_acc: list  # TensorBoard ScalarEvents: .wall_time, .step, .value


def fresh_fit(module: str, args: list[str] = (), cwd: Path | None = None) -> FreshFit:
    """``python -m <module> fit --config configs/cnn.yaml <args>`` with its logs in a temporary
    folder; ``cwd``: the checkout whose project runs (python -m finds it first)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with tempfile.TemporaryDirectory(prefix="bench_fresh_fit_") as log_dir:
        command = [sys.executable, "-m", module, "fit", "--config", "configs/cnn.yaml", *args,
                   f"--trainer.logger.init_args.save_dir={log_dir}"]  # fmt: skip
        started = time.time()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, timeout=1800)
        ended = time.time()
        events = EventAccumulator(str(next(Path(log_dir).rglob("events.out.tfevents.*")).parent))
        events.Reload()
        return FreshFit(started, ended, events.Scalars("val/acc"))


@contextlib.contextmanager
def quiet():
    """Hide what a training run prints (epoch lines), keeping the benchmark's own tables."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, {gpu}; "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def interleaved(
    candidates: dict[Any, Callable[[], Any]], repeats: int, alternate: bool = False
) -> dict[Any, list]:
    """Call each candidate in turn, ``repeats`` rounds; each result list holds what it returned.
    ``alternate``: every other round in reverse order, so no candidate always runs first."""
    results: dict[Any, list] = {name: [] for name in candidates}
    for round_ in range(repeats):
        order = list(candidates.items())
        for name, measure in reversed(order) if alternate and round_ % 2 else order:
            results[name].append(measure())
    return results


def spread(values: list[float], unit: str = "", digits: int = 1) -> str:
    """'median (min-max)' of the values."""
    median = statistics.median(values)
    return f"{median:.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def ratio(numerator: list[float], denominator: list[float]) -> float:
    return statistics.median(numerator) / statistics.median(denominator)


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """Print a small aligned table under a title."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(f"\n### {title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def training_step_ms(
    network: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """Milliseconds per training step (forward, loss, backward, AdamW), after one warm-up step."""
    parameters = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    network.train()

    def step():
        with torch.autocast(images.device.type, dtype=autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):  # fmt: skip
            loss = F.cross_entropy(network(images).float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    if images.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if images.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * 1000
