"""How long idle OpenMP threads should spin: 60 SmallCNN training steps in fresh processes, for
each ``GOMP_SPINCOUNT`` (libgomp's default 300,000; the rule's value; passive), interleaved.

    python -m benchmarks.spin_count                     # 3 rounds, on this machine as it is now
    python -m benchmarks.spin_count --hogs 2 --rounds 3 # beside 2 torch hogs (tests/cpu_hog.py)

The evidence for project/core/threads.py's SPIN_COUNT: run it idle and beside hogs, and compare
each value's median with the default's. Batch 64 of 3x32x32 random images, AdamW, fp32.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.common import spread, table
from project.core import threads
from tests.cpu_hog import start_torch_hogs

ROOT = Path(__file__).resolve().parents[1]
STEPS = """
import time, torch
from project.models.cnn import SmallCNN
torch.manual_seed(0)
net = SmallCNN(10)
opt = torch.optim.AdamW(net.parameters(), 1e-3)
x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
def step():
    opt.zero_grad(); torch.nn.functional.cross_entropy(net(x), y).backward(); opt.step()
for _ in range(5):
    step()
started = time.perf_counter()
for _ in range(60):
    step()
print(time.perf_counter() - started)
"""
SETTINGS = {  # name: environment entries (besides the rule switched off)
    "default (300,000)": {},
    "10,000": {"GOMP_SPINCOUNT": "10000"},
    "1,000": {"GOMP_SPINCOUNT": "1000"},
    "passive (0)": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def one_run(extra: dict[str, str]) -> float:
    env = {**threads.environment(rule=False), **extra}
    out = subprocess.run(
        [sys.executable, "-c", STEPS],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    ).stdout
    return float(out.split()[-1])


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.spin_count",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hogs", type=int, default=0, help="torch hogs beside it (default 0)")
    options = parser.parse_args(args)
    load = os.getloadavg()[0]
    hogs = start_torch_hogs(options.hogs, 3600, rule=False) if options.hogs else []
    try:
        times: dict[str, list[float]] = {name: [] for name in SETTINGS}
        for round_ in range(options.rounds):
            order = list(SETTINGS.items())
            for name, extra in order[::-1] if round_ % 2 else order:
                times[name].append(one_run(extra))
    finally:
        for hog in hogs:
            hog.terminate()
            hog.wait()
    base = statistics.median(times["default (300,000)"])
    rows = [
        [name, spread(values, " s", 2), f"{statistics.median(values) / base:.2f}x"]
        for name, values in times.items()
    ]
    table(
        f"60 training steps, {options.rounds} interleaved rounds, {options.hogs} torch hogs; "
        f"load average {load:.1f} at the start",
        ["GOMP_SPINCOUNT", "seconds", "vs default"],
        rows,
    )


if __name__ == "__main__":
    main()
