"""Start-up: ``python -m project --help``'s wall time, the costliest imports, and the exit.

    python -m benchmarks.startup

4c times the interpreter's exit after ``import project.lit.cli``: from the script's last line to the
process's end, as Python leaves it and after ``gc.freeze()``. 4d times ``import project.lit.cli``
itself, from the interpreter's start to the line after the import, with the garbage collector
running as usual and paused as the entry points pause it (project/core/gc_pause.py does both); 4e
counts the full collections of a one-epoch ``fit`` both ways, with the most objects one walked.

The first step's time after process start is in benchmarks/time_to_accuracy.py.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import time

from benchmarks.common import interleaved, spread, table

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
        [sys.executable, "-X", "importtime", "-c", "import project.lit.cli"],
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


def probe(code: str) -> tuple[float, float, float]:
    """Run ``code`` (which ends by printing ``time.time()``) in a fresh interpreter: the clock
    just before the process started, the time it printed, and the clock after it ended."""
    started = time.time()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=600)  # fmt: skip
    return started, float(result.stdout.split()[-1]), time.time()


PRINT_TIME = "\nsys.stdout.write(repr(time.time()))"
IMPORT = "import sys, time\nimport project.lit.cli\n"  # as a script imports it
IMPORT_PAUSED = (  # as the entry points import it (project/core/gc_pause.py)
    "import sys, time\nfrom project.core.gc_pause import paused_for_imports\n"
    "with paused_for_imports():\n    import project.lit.cli\n"
)


def exit_seconds(freeze: bool) -> float:
    """Seconds from the script's last line (after ``import project.lit.cli``) to its process's
    end."""
    _, printed, ended = probe(IMPORT + ("import gc; gc.freeze()" if freeze else "") + PRINT_TIME)
    return ended - printed


def import_seconds(paused: bool) -> float:
    """Seconds from before the interpreter starts to the line after ``import project.lit.cli``."""
    started, printed, _ = probe((IMPORT_PAUSED if paused else IMPORT) + PRINT_TIME)
    return printed - started


# Every full collection (generation 2) of a one-epoch default fit: how many, their seconds, and
# the most objects one of them walked (counted as it starts, outside its timing).
COLLECTIONS = """
import gc, tempfile
full, walked, began = [0, 0.0], [0], [0.0]
def record(phase, info):
    if info["generation"] != 2:
        return
    if phase == "start":
        walked[0] = max(walked[0], sum(len(gc.get_objects(g)) for g in range(3)))
        began[0] = time.perf_counter()
    else:
        full[0] += 1
        full[1] += time.perf_counter() - began[0]
gc.callbacks.append(record)
"""
FIT = """
project.lit.cli.main(["fit", "--config", "configs/cnn.yaml", "--trainer.max_epochs=1",
                  "--trainer.enable_progress_bar=false",
                  "--trainer.logger.init_args.save_dir=" + tempfile.mkdtemp()])
gc.callbacks.remove(record)
print(full[0], full[1], walked[0])
"""


def full_collections(paused: bool) -> tuple[int, float, int]:
    """(full collections, their seconds, the most objects one walked) in a one-epoch fit."""
    imports = IMPORT_PAUSED if paused else IMPORT
    code = imports.replace("import sys, time\n", "import sys, time\n" + COLLECTIONS) + FIT
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=600)  # fmt: skip
    count, seconds, walked = result.stdout.split()[-3:]
    return int(count), float(seconds), int(walked)


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
    title = "4b. Import time of project.lit.cli by package (-X importtime, outermost import each)"
    table(title, ["package", "import time"], import_profile())
    ways = {"as Python leaves it": False, "gc.freeze() first": True}
    exits = interleaved({name: functools.partial(exit_seconds, freeze)
                         for name, freeze in ways.items()}, REPEATS)  # fmt: skip
    table("4c. The interpreter's exit after import project.lit.cli",
          ["exit", "seconds median (min-max)"],
          [[name, spread(values, " s", 2)] for name, values in exits.items()])  # fmt: skip
    modes = {"collector as usual": False, "paused_for_imports()": True}
    imports = interleaved({name: functools.partial(import_seconds, paused)
                           for name, paused in modes.items()}, 5, alternate=True)  # fmt: skip
    table("4d. import project.lit.cli, from the interpreter's start (5 runs each)",
          ["garbage collector", "seconds median (min-max)"],
          [[name, spread(values, " s", 2)] for name, values in imports.items()])  # fmt: skip
    fits = interleaved({name: functools.partial(full_collections, paused)
                        for name, paused in modes.items()}, 2, alternate=True)  # fmt: skip
    table("4e. Full garbage collections in a 1-epoch python -m project fit (2 runs each)",
          ["garbage collector", "full collections", "their seconds", "most objects one walked"],
          [[name, " ".join(str(run[0]) for run in runs), spread([run[1] for run in runs], " s", 2),
            " ".join(f"{run[2]:,}" for run in runs)] for name, runs in fits.items()])  # fmt: skip
    return times


if __name__ == "__main__":
    main()
