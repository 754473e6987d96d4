"""Precision: training-step time in float32 against bfloat16 autocast, CNN and ResNet18, this CPU.

    python -m benchmarks.precision_step

Medians of interleaved repeats (fp32, bf16, fp32, ...), and what ``precision: auto``
(project/core/precision.py) picks here: it should be the faster one.
"""

from __future__ import annotations

from functools import partial

import torch

from benchmarks.common import interleaved, model_batches, ratio, spread, table, training_step_ms
from project.core.precision import cpu_has_native_bf16, resolve_precision

REPEATS, STEPS = 5, 10


def main() -> dict:
    rows, ratios = [], {}
    for name, build, images, labels in model_batches():
        network = build()
        times = interleaved(
            {
                "fp32": partial(training_step_ms, network, images, labels, STEPS),
                "bf16-mixed": partial(
                    training_step_ms, network, images, labels, STEPS, torch.bfloat16
                ),
            },
            REPEATS,
        )
        ratios[name] = ratio(times["bf16-mixed"], times["fp32"])
        rows.append([name, spread(times["fp32"], " ms"), spread(times["bf16-mixed"], " ms"),
                     f"{ratios[name]:.2f}"])  # fmt: skip
    auto = resolve_precision("auto", "cpu")
    table(
        f"5. Precision on this CPU (native bf16: {cpu_has_native_bf16()}; auto picks {auto})",
        ["model", "fp32 ms/step", "bf16-mixed ms/step", "bf16 / fp32"],
        rows,
    )
    faster = all(r < 1 for r in ratios.values()) == (auto == "bf16-mixed")
    print(f"auto picked the faster precision for both models: {faster}")
    return ratios


if __name__ == "__main__":
    main()
