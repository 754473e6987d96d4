"""Start-up: ``python -m project --help``'s wall time, the costliest imports, and the exit.

    python -m benchmarks.startup

4c times the interpreter's exit after ``import project.cli``: from the script's last line to the
process's end, as Python leaves it and after ``gc.freeze()``. 4d times ``import project.cli``
itself, from the interpreter's start to the line after the import, with the garbage collector
running as usual and paused as the entry points pause it (project/collector.py does both).

The first step's time after process start is in benchmarks/time_to_accuracy.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

from benchmarks.common import spread, table

REPEATS = 3


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True, timeout=120)
    return time.perf_counter() - start


def import_profile(top: int = 8) -> list[list[str]]:
    """The slowest packages by cumulative import time (python -X importtime): each package's
    outermost import, which includes everything it pulls in (so they overlap: lightning's time
    includes part of torch's when torch is first imported through it)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import project.cli"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    totals: dict[str, float] = {}
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| *(\S+)", line)
        if match:
            package = match.group(2).split(".")[0]
            totals[package] = max(totals.get(package, 0.0), int(match.group(1)) / 1e6)
    slowest = sorted(totals.items(), key=lambda item: -item[1])[:top]
    return [[name, f"{seconds:.2f} s"] for name, seconds in slowest]


EXIT_PROBE = "import project.cli, sys, time\n{freeze}\nsys.stdout.write(repr(time.time()))"


def exit_seconds(freeze: bool) -> float:
    """Seconds from the script's last line to the end of its process."""
    code = EXIT_PROBE.format(freeze="import gc; gc.freeze()" if freeze else "")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=120)  # fmt: skip
    return time.time() - float(result.stdout)


IMPORT_PROBES = {  # the time after the import, as the entry points import (or without the pause)
    False: "import sys, time\nimport project.cli\n",
    True: "import sys, time\nfrom project.collector import paused_for_imports\n"
    "with paused_for_imports():\n    import project.cli\n",
}


def import_seconds(paused: bool) -> float:
    """Seconds from before the interpreter starts to the line after ``import project.cli``."""
    code = IMPORT_PROBES[paused] + "sys.stdout.write(repr(time.time()))"
    started = time.time()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=120)  # fmt: skip
    return float(result.stdout) - started


def main() -> dict:
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "python -m project --help": [sys.executable, "-m", "project", "--help"],
        "python -m project check --help": [sys.executable, "-m", "project", "check", "--help"],
    }
    times = {name: [timed(command) for _ in range(REPEATS)] for name, command in commands.items()}
    table("4a. Start-up wall time (fresh processes)", ["command", "seconds median (min-max)"],
          [[name, spread(values, " s", 2)] for name, values in times.items()])  # fmt: skip
    title = "4b. Import time of project.cli by package (-X importtime, outermost import each)"
    table(title, ["package", "import time"], import_profile())
    exits: dict[str, list[float]] = {"as Python leaves it": [], "gc.freeze() first": []}
    for _ in range(REPEATS):  # interleaved
        exits["as Python leaves it"].append(exit_seconds(freeze=False))
        exits["gc.freeze() first"].append(exit_seconds(freeze=True))
    table("4c. The interpreter's exit after import project.cli",
          ["exit", "seconds median (min-max)"],
          [[name, spread(values, " s", 2)] for name, values in exits.items()])  # fmt: skip
    imports: dict[str, list[float]] = {"collector as usual": [], "paused_for_imports()": []}
    for round_ in range(2 * REPEATS - 1):  # interleaved, 5 each, each first in turn
        for paused in (False, True) if round_ % 2 == 0 else (True, False):
            name = "paused_for_imports()" if paused else "collector as usual"
            imports[name].append(import_seconds(paused))
    table("4d. import project.cli, from the interpreter's start",
          ["garbage collector", "seconds median (min-max)"],
          [[name, spread(values, " s", 2)] for name, values in imports.items()])  # fmt: skip
    return times


if __name__ == "__main__":
    main()
