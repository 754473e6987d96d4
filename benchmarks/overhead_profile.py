"""Where the Lightning loop's extra time goes: both loops' whole processes profiled, by package.

    python -m benchmarks.overhead_profile            # about a minute: one profiled run per loop

Each loop runs ``fit --config configs/cnn.yaml`` (25 epochs, fp32, no progress bar) in a fresh
process under ``python -m cProfile``; the table sums each function's own time (``tottime``) by the
package its file belongs to: ``project`` is this project's code, ``lightning`` and ``jsonargparse``
the framework and its config parser, ``stdlib`` and ``C/builtins`` the Python and C functions they
all call. The difference column says which package's code the Lightning run spends longer in.
Profiling slows Python-heavy code more than tensor code, so read the seconds as shares, not as
wall time (``python -m benchmarks.whole_process`` measures that).
"""

from __future__ import annotations

import collections
import pstats
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import table

LOOPS = {"Lightning": "project", "manual": "project.manual"}


def profile(loop: str, folder: Path) -> Path:
    output = folder / f"{loop}.prof"
    command = [
        sys.executable, "-m", "cProfile", "-o", str(output), "-m", LOOPS[loop], "fit",
        "--config", "configs/cnn.yaml", "--trainer.precision=32-true",
        f"--trainer.logger.init_args.save_dir={folder / 'logs'}",
    ]  # fmt: skip
    if loop == "Lightning":
        command += ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
    subprocess.run(command, check=True, capture_output=True, timeout=1800)
    return output


def package(filename: str) -> str:
    found = re.search(r"site-packages/([^/]+)/", filename)
    if found:
        return found.group(1)
    if "/project/" in filename or "/benchmarks/" in filename:
        return "project"
    return "C/builtins" if filename == "~" else "stdlib"


def self_time_by_package(path: Path) -> collections.Counter:
    totals: collections.Counter = collections.Counter()
    for (filename, _, _), (_, _, own, _, _) in pstats.Stats(str(path)).stats.items():
        totals[package(filename)] += own
    return totals


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_overhead_profile_") as folder:
        times = {loop: self_time_by_package(profile(loop, Path(folder))) for loop in LOOPS}
    packages = sorted(
        set(times["Lightning"]) | set(times["manual"]), key=lambda p: -times["Lightning"][p]
    )
    rows = []
    for name in [*packages[:10], "all"]:
        light = sum(times["Lightning"].values()) if name == "all" else times["Lightning"][name]
        manual = sum(times["manual"].values()) if name == "all" else times["manual"][name]
        rows.append([name, f"{light:.2f} s", f"{manual:.2f} s", f"{light - manual:+.2f} s"])
    table(
        "Self time by package under cProfile, whole process, configs/cnn.yaml fp32 (25 epochs)",
        ["package", "Lightning", "manual", "difference"],
        rows,
    )


if __name__ == "__main__":
    main()
