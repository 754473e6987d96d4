"""The manual loop's import cost against torch + torchvision alone (issue 21's goal: at most 0.5 s
more), whole processes, interleaved and alternating so that neither always runs first.

    python -m benchmarks.manual_import          # 7 rounds; prints medians, ranges and the gap

Before the plain core (commit 65ef423) ``import project.manual.loop`` loaded Lightning; now
tests/test_boundary.py checks that it loads no Lightning module, and this measures what that buys.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from benchmarks.common import interleaved, spread, table

ROUNDS = 7
COMMANDS = {
    "import torch, torchvision": "import torch, torchvision",
    "import project.manual.loop": "import project.manual.loop",
}


def whole_process(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
    return time.perf_counter() - start


def main() -> dict:
    runs = interleaved(
        {name: (lambda code=code: whole_process(code)) for name, code in COMMANDS.items()},
        ROUNDS,
        alternate=True,
    )
    base, manual = runs["import torch, torchvision"], runs["import project.manual.loop"]
    gaps = [m - b for m, b in zip(manual, base, strict=True)]
    rows = [[name, spread(values, " s", 2)] for name, values in runs.items()]
    rows.append(["gap per round (manual - torch)", spread(gaps, " s", 2)])
    table(
        f"Import cost, whole process ({ROUNDS} interleaved rounds)",
        ["command", "seconds median (min-max)"],
        rows,
    )
    ratio = statistics.median(manual) / statistics.median(base)
    print(f"ratio of medians: {ratio:.2f}x; goal: gap <= 0.5 s")
    return runs


if __name__ == "__main__":
    main()
