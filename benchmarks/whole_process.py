"""Lightning against the manual loop as a user runs them: whole processes, interleaved pairs.

    python -m benchmarks.whole_process              # 5 pairs of the default config (25 epochs)
    python -m benchmarks.whole_process --pairs 3 --epochs 10

Each pair runs ``python -m project fit --config configs/cnn.yaml`` and then
``python -m project.manual fit --config configs/cnn.yaml`` in fresh processes (imports, data set-up,
every epoch, checkpoints: everything a user waits for), with the progress bar as configured. The
ratio of each pair is Lightning's wall time over the manual loop's; the table gives the median and
the range of those ratios, so a slow moment of a shared machine lands in one pair, not in one loop.
Goal (issue 15): median ratio <= 1.05.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import spread, table

LOOPS = {"Lightning": ["-m", "project"], "manual": ["-m", "project.manual"]}


def wall_seconds(loop: str, epochs: int, log_dir: str, cwd: Path | None = None) -> float:
    """One fresh process of ``loop`` on the default config; seconds from start to exit."""
    command = [sys.executable, *LOOPS[loop], "fit", "--config", "configs/cnn.yaml",
               f"--trainer.max_epochs={epochs}",
               f"--trainer.logger.init_args.save_dir={log_dir}"]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - started


def pairs(count: int, epochs: int, cwd: Path | None = None) -> dict[str, list[float]]:
    log_dir = tempfile.mkdtemp(prefix="bench_whole_process_")
    times: dict[str, list[float]] = {loop: [] for loop in LOOPS}
    for _ in range(count):
        for loop in LOOPS:
            times[loop].append(wall_seconds(loop, epochs, log_dir, cwd))
    return times


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=25)
    options = parser.parse_args(argv if argv is not None else [])
    times = pairs(options.pairs, options.epochs)
    ratios = [lit / man for lit, man in zip(times["Lightning"], times["manual"], strict=True)]
    table(
        f"11. Whole process, configs/cnn.yaml ({options.epochs} epochs, precision auto), "
        f"{options.pairs} interleaved pairs (goal: Lightning / manual <= 1.05)",
        ["loop", "wall time median (min-max)"],
        [[loop, spread(values, " s", 1)] for loop, values in times.items()]
        + [["ratio Lightning / manual, per pair", spread(ratios, "", 3)]],
    )
    return {"times": times, "ratio_median": statistics.median(ratios), "ratios": ratios}


if __name__ == "__main__":
    main(sys.argv[1:])
