"""Speed in the units the deploy goals are stated in: images/s (quantize) and batch latency
(prune), the candidates measured in turn (A, B, A, B, ...) so that a busy machine slows each alike.

    seconds = interleaved_seconds({"fp32": predict32, "int8": predict8}, batch, rounds=5)
    print(conditions(32, 5))                       # batch, rounds, threads, CPUs, load average
    print(rate_line(seconds, "fp32", batch=32))    # images/s: fp32 ... (1.00x), int8 ... (1.22x)

Each round times at least ``calls`` batches of every candidate (more for fast ones: a round lasts
about ``min_seconds``), after warm-up calls; the figure is the median over rounds. The threads
are torch's (``torch.get_num_threads()``, which project/core/threads.py sets); ONNX Runtime
sessions made by ``parity.onnx_predict`` with ``threads=torch.get_num_threads()`` use as many.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

Run = Callable[[np.ndarray], object]  # one batch in, anything out


def interleaved_seconds(
    candidates: dict[str, Run],
    batch: np.ndarray,
    rounds: int,
    calls: int = 3,
    min_seconds: float = 0.25,
) -> dict[str, list[float]]:
    """Seconds per batch of each candidate, one value per round; every other round runs the
    candidates in reverse order, so no candidate always runs first. A round times at least
    ``calls`` batches of each, and enough to last about ``min_seconds`` (a batch of a few
    milliseconds timed alone is mostly the machine's noise)."""
    slowest = 0.0
    for run in candidates.values():
        run(batch)  # warm-up: kernels chosen, memory allocated, compiled code built
        started = time.perf_counter()
        run(batch)
        slowest = max(slowest, time.perf_counter() - started)
    calls = max(calls, math.ceil(min_seconds / max(slowest, 1e-6)))
    seconds: dict[str, list[float]] = {name: [] for name in candidates}
    for round_ in range(rounds):
        order = list(candidates.items())
        for name, run in reversed(order) if round_ % 2 else order:
            started = time.perf_counter()
            for _ in range(calls):
                run(batch)
            seconds[name].append((time.perf_counter() - started) / calls)
    return seconds


def median(values: list[float]) -> float:
    return statistics.median(values)


def load_average() -> str:
    try:
        return f"load average {os.getloadavg()[0]:.1f}"
    except OSError:  # not on every platform
        return "load average n/a"


def conditions(batch: int, rounds: int) -> str:
    """Batch size, rounds, threads and the machine's load: what a figure was measured under."""
    return (
        f"batch {batch}, median of {rounds} interleaved rounds, {torch.get_num_threads()} "
        f"threads, {os.cpu_count()} CPUs, {load_average()}"
    )


def rate_line(seconds: dict[str, list[float]], baseline: str, batch: int) -> str:
    """'images/s: NAME X (1.00x), NAME Y (1.87x), ...' relative to ``baseline``."""
    base = median(seconds[baseline])
    parts = [
        f"{name} {batch / median(values):,.0f} ({base / median(values):.2f}x)"
        for name, values in seconds.items()
    ]
    return "images/s: " + ", ".join(parts)


def latency_line(seconds: dict[str, list[float]], baseline: str) -> str:
    """'latency: NAME X ms (1.00x), NAME Y ms (0.62x)' relative to ``baseline``."""
    base = median(seconds[baseline])
    parts = [
        f"{name} {median(values) * 1e3:.1f} ms ({median(values) / base:.2f}x)"
        for name, values in seconds.items()
    ]
    return "latency per batch: " + ", ".join(parts)


def example_batch(size: int, batch: int) -> np.ndarray:
    """A fixed random batch (speed does not depend on the pixels)."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, size, size, generator=generator).numpy()
