"""How long the workshop's long steps take a learner: idle, and beside one CPU hog.

    python -m benchmarks.workshop_steps              # about 12 min on 2 idle cores
    python -m benchmarks.workshop_steps --situations idle

WORKSHOP.md's timing table ("How long each step took here") is generated from this benchmark's
result file. Each step is the command a learner types, run as a fresh process from a fresh copy
of the repository's tracked files (so ``make challenge-data`` draws and trains from nothing, as on
a learner's first day), in the order the workshop takes them:

- ``python -m project.transfer.source``: what ``make challenge-data`` runs (the glyphs, the
  letters backbone, the challenge split);
- ``python lessons/06_debugging.py`` and ``python lessons/07_optimize.py`` (Reflection);
- ``python -m exercises.check 4 --solution``: exercise 4's checker on the solution (its real
  fine-tune on the challenge data included);
- ``python exercises/solutions/04_challenge_transfer.py``: the challenge's reference run.

Situations: idle, and beside one CPU hog (tests/cpu_hog.py: one pure-Python spinner, a core
taken as a browser or a compiler takes it). The project's CPU thread rule applies in both, as it
does for a learner (project/core/threads.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import table
from project.core import threads

ROOT = Path(__file__).resolve().parents[1]
STEPS = {
    "make challenge-data": ["-m", "project.transfer.source"],
    "python lessons/06_debugging.py": ["lessons/06_debugging.py"],
    "python lessons/07_optimize.py": ["lessons/07_optimize.py"],
    "python -m exercises.check 4 --solution": ["-m", "exercises.check", "4", "--solution"],
    "python exercises/solutions/04_challenge_transfer.py": [
        "exercises/solutions/04_challenge_transfer.py"
    ],
}
SITUATIONS = ("idle", "beside 1 CPU hog")


def fresh_copy(folder: Path) -> Path:
    """The repository's tracked files (what a clone has) copied into ``folder``."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source, target = ROOT / name.decode(), folder / name.decode()
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    return folder


def run_step(step: str, copy: Path) -> float:
    """Wall seconds of one fresh process of ``step`` in ``copy``; fails loudly with its output."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *STEPS[step]], cwd=copy, capture_output=True, text=True, timeout=7200,
        env=threads.environment(rule=True),  # the rule chosen afresh, as a learner's command does
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{step} failed (exit {result.returncode}):\n{result.stdout[-3000:]}"
                         f"\n{result.stderr[-3000:]}")  # fmt: skip
    return seconds


def measure(situation: str) -> dict[str, float]:
    """Every step once, in the workshop's order, in a fresh copy of the repository."""
    hog = None
    if situation != "idle":
        hog = subprocess.Popen(
            [sys.executable, "-m", "tests.cpu_hog", "--workers", "1", "--seconds", "7200"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        time.sleep(2)  # the spinner is running
    try:
        with tempfile.TemporaryDirectory(prefix="bench_workshop_") as folder:
            copy = fresh_copy(Path(folder))
            times = {}
            for step in STEPS:
                times[step] = run_step(step, copy)
                print(f"  {situation}: {step}: {times[step]:.1f} s", file=sys.stderr, flush=True)
            return times
    finally:
        if hog is not None:
            hog.terminate()
            hog.wait()


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.workshop_steps",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--situations", nargs="*", choices=SITUATIONS, default=list(SITUATIONS),
        help="idle, beside one CPU hog, or both (default)",
    )  # fmt: skip
    options = parser.parse_args(args)
    load = os.getloadavg()[0]
    results = {situation: measure(situation) for situation in options.situations}
    rows = [[step, *(f"{results[s][step]:.1f} s" for s in options.situations)] for step in STEPS]
    table(
        f"The workshop's long steps: wall time of a fresh process, one run each, in a fresh copy "
        f"of the repository (load average {load:.1f} at the start)",
        ["step", *options.situations],
        rows,
    )


if __name__ == "__main__":
    main()
