"""Accelerator options: channels_last, torch.compile and pinned memory, measured on this machine.

    python -m benchmarks.accelerator_options

channels_last against the default memory layout (interleaved repeats); torch.compile's compile
time (its first steps) and steady-state step time against eager mode; pin_memory + non_blocking
copies (only meaningful with a GPU: skipped without one). Correctness of each option is tested in
tests/test_accelerator.py.
"""

from __future__ import annotations

import time
from functools import partial

import torch
import torch._inductor.config

from benchmarks.common import interleaved, model_batches, ratio, spread, table, training_step_ms
from project.core.recipe import prepare_network

REPEATS, STEPS = 3, 8


def main() -> dict:
    rows, results = [], {}
    # A cold compile each time, as on a new machine (no inductor cache from an earlier run).
    torch._inductor.config.force_disable_caches = True
    for name, build, images, labels in model_batches():
        plain, last = build(), build()
        prepare_network(last, channels_last=True, compile=False)
        nhwc = images.contiguous(memory_format=torch.channels_last)
        times = interleaved(
            {
                "default": partial(training_step_ms, plain, images, labels, STEPS),
                "channels_last": partial(training_step_ms, last, nhwc, labels, STEPS),
            },
            REPEATS,
        )
        compiled = build()
        prepare_network(compiled, channels_last=False, compile=True)
        start = time.perf_counter()
        training_step_ms(compiled, images, labels, 1)  # the first steps compile
        compile_seconds = time.perf_counter() - start
        times["compiled"] = [
            training_step_ms(compiled, images, labels, STEPS) for _ in range(REPEATS)
        ]
        results[name] = times
        rows.append([name, spread(times["default"], " ms"), spread(times["channels_last"], " ms"),
                     f"{ratio(times['channels_last'], times['default']):.2f}",
                     f"{compile_seconds:.1f} s", spread(times["compiled"], " ms"),
                     f"{ratio(times['compiled'], times['default']):.2f}"])  # fmt: skip
    table(
        "8. Accelerator options (fp32 training steps; compile time: the first step, cold cache)",
        ["model", "default", "channels_last", "ratio", "compile time", "compiled", "ratio"],
        rows,
    )
    if torch.cuda.is_available():
        batch = torch.randn(256, 3, 64, 64)
        pinned = batch.pin_memory()
        copies = interleaved(
            {
                "pageable": lambda: _copy_ms(batch, non_blocking=False),
                "pinned, non_blocking": lambda: _copy_ms(pinned, non_blocking=True),
            },
            REPEATS,
        )
        table("8b. Host-to-GPU copy of a 256 x 3 x 64 x 64 batch", ["memory", "ms"],
              [[n, spread(v, " ms", 2)] for n, v in copies.items()])  # fmt: skip
    else:
        print("pin_memory + non_blocking: no GPU here, not measured (on by default with CUDA)")
    return results


def _copy_ms(batch: torch.Tensor, non_blocking: bool) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(20):
        batch.to("cuda", non_blocking=non_blocking)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / 20 * 1000


if __name__ == "__main__":
    main()
