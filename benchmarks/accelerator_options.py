"""Accelerator options: precision x memory layout, torch.compile and pinned memory, measured here.

    python -m benchmarks.accelerator_options

8a. Every combination of precision (fp32; bf16 autocast where the device has native bf16) and
    memory layout (NCHW; channels_last, NHWC) for one training step, interleaved repeats, as
    ratios to fp32 NCHW: the options interact (oneDNN's and cuDNN's reduced-precision convolution
    kernels are NHWC), so each is measured with the other, not alone. Below the table, the rule
    of ``channels_last: auto`` (project/core/precision.py resolve_channels_last) at the precision
    ``precision: auto`` picks, and whether it chose the faster layout of that precision.
8 (as before). torch.compile's compile time (its first steps) and steady-state step time against
    eager mode. 8b. pin_memory + non_blocking copies (only meaningful with a GPU: skipped without
    one). Correctness of each option is tested in tests/test_accelerator.py.
"""

from __future__ import annotations

import time
from functools import partial

import torch
import torch._inductor.config

from benchmarks.common import interleaved, model_batches, ratio, spread, table, training_step_ms
from project.core.precision import resolve_channels_last, resolve_precision
from project.core.recipe import prepare_network
from project.models.resnet import ResNetTransfer

REPEATS, STEPS = 3, 8
# The photo size, where the Xeon measured the largest gain (both options: 0.30 x fp32).
LARGE = ("ResNet18, batch 8 at 224 px", lambda: ResNetTransfer(10, weights=None), 8, 224, 3)


def combination_batches():
    """(name, build, images, labels, steps): the two models of every benchmark, then LARGE."""
    for name, build, images, labels in model_batches():
        yield name, build, images, labels, STEPS
    name, build, batch, size, steps = LARGE
    torch.manual_seed(0)
    yield name, build, torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,)), steps


def precision_layouts(device: str) -> dict:
    """The combinations measured: {(precision, channels_last): autocast dtype}."""
    dtypes = {"32-true": None}
    if resolve_precision("auto", device) == "bf16-mixed":  # native bf16 here (or a CUDA GPU)
        dtypes["bf16-mixed"] = torch.bfloat16
    return {(p, last): dtype for p, dtype in dtypes.items() for last in (False, True)}


def combinations() -> dict:
    """8a: every precision x layout per model, and whether channels_last: auto chose well."""
    rows, verdicts, results = [], [], {}
    device = "cpu"  # the training-step helper runs where the batch is
    combos = precision_layouts(device)
    for name, build, images, labels, steps in combination_batches():
        candidates = {}
        for (precision, last), dtype in combos.items():
            network = build()
            prepare_network(network, channels_last=last, compile=False)
            batch = images.contiguous(memory_format=torch.channels_last) if last else images
            candidates[(precision, last)] = partial(
                training_step_ms, network, batch, labels, steps, dtype
            )
        times = interleaved(candidates, REPEATS, alternate=True)
        results[name] = times
        base = times[("32-true", False)]
        rows.append([name, *(f"{spread(t, ' ms')} = {ratio(t, base):.2f}" for t in times.values())])
        precision = resolve_precision("auto", device)
        chosen = resolve_channels_last("auto", device, precision)
        faster = ratio(times[(precision, True)], times[(precision, False)]) < 1
        verdict = "auto chose it" if chosen == faster else "auto did NOT choose it"
        verdicts.append(f"{name}: precision auto -> {precision}, channels_last auto -> {chosen}; "
                        f"the faster layout at {precision}: {'NHWC' if faster else 'NCHW'} "
                        f"({verdict})")  # fmt: skip
    header = [f"{p}{', channels_last' if last else ''}" for p, last in combos]
    table(
        f"8a. Precision x memory layout, one training step, ms median (min-max) = x fp32 NCHW; "
        f"{REPEATS} interleaved rounds",
        ["model", *header],
        rows,
    )
    print("\n".join(verdicts))
    return results


def main() -> dict:
    results = {"combinations": combinations()}
    rows = []
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
