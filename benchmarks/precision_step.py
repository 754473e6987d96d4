"""Training-step time of SmallCNN in float32 against bfloat16 autocast on this machine's CPU.

    python benchmarks/precision_step.py      (or: make bench)

Prints the median (and min-max) milliseconds per step of each precision, measured interleaved
(fp32, bf16, fp32, ...) so both see the same machine load, and their ratio. This is the figure
behind ``precision: auto`` (project/precision.py) choosing bf16-mixed on CPUs with native bf16.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from project.models.cnn import SmallCNN
from project.precision import cpu_has_native_bf16

BATCH, SIZE, STEPS, REPEATS = 64, 16, 20, 5


def time_steps(model, optimizer, images, labels, bf16: bool) -> float:
    """Milliseconds per training step, averaged over STEPS steps after one warm-up step."""

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(images).float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    start = time.perf_counter()
    for _ in range(STEPS):
        step()
    return (time.perf_counter() - start) / STEPS * 1000


def main() -> None:
    torch.manual_seed(0)
    model = SmallCNN(num_classes=10)
    optimizer = torch.optim.AdamW(model.parameters())
    images, labels = torch.randn(BATCH, 3, SIZE, SIZE), torch.randint(0, 10, (BATCH,))
    times = {"fp32": [], "bf16-mixed": []}
    for _ in range(REPEATS):
        times["fp32"].append(time_steps(model, optimizer, images, labels, bf16=False))
        times["bf16-mixed"].append(time_steps(model, optimizer, images, labels, bf16=True))
    print(f"SmallCNN, batch {BATCH} at {SIZE} px, {torch.get_num_threads()} threads, "
          f"native bf16: {cpu_has_native_bf16()}")  # fmt: skip
    for name, values in times.items():
        print(f"{name:>10}: {statistics.median(values):6.1f} ms/step "
              f"(min {min(values):.1f}, max {max(values):.1f}, {REPEATS} repeats)")  # fmt: skip
    ratio = statistics.median(times["bf16-mixed"]) / statistics.median(times["fp32"])
    print(f"bf16-mixed / fp32 = {ratio:.2f}")


if __name__ == "__main__":
    main()
