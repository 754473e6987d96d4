"""``make bench``: every benchmark in turn, each printing its table (on 2 idle cores about 15
minutes before overhead_profile, time_to_99_events and feature_cache joined, which took 51, 51 and
9 s alone; big_photos and whole_process start fresh training processes, about 10 minutes;
streaming writes 3,000 photos and LitData shards and reads them in fresh processes, about 10
minutes at load 6).

python -m benchmarks.run_all              # all
python -m benchmarks.run_all precision    # the ones whose module name contains "precision"

Each benchmark's printed tables are also written to benchmarks/results/<module>.json (the
command, the machine, the date), the one source of the tables marked as generated in
benchmarks/README.md: ``make docs`` then rewrites them (benchmarks/doc_tables.py).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import machine
from benchmarks.doc_tables import write_result

BENCHMARKS = [
    "framework_overhead",
    "input_pipeline",
    "time_to_accuracy",
    "startup",
    "manual_import",
    "precision_step",
    "frozen_backbone",
    "scaling",
    "accelerator_options",
    "big_photos",
    "decode_speed",
    "whole_process",
    "overhead_profile",
    "time_to_99_events",
    "feature_cache",
    "sweep",
    "pruning",
    "inference",
    "serving",
    "busy_machine",
    "streaming",
    "workshop_steps",
]


class Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy: the tables show as they are measured."""

    def __init__(self, terminal):
        self.terminal, self.copy = terminal, io.StringIO()

    def write(self, text: str) -> int:
        self.terminal.write(text)
        self.copy.write(text)
        return len(text)

    def flush(self) -> None:
        self.terminal.flush()


def run_and_record(name: str, benchmark: Callable[[], object]) -> Path:
    """Run one benchmark's ``main()`` and write what it printed to benchmarks/results/NAME.json.
    A benchmark that fails writes nothing: the last good result stays the docs' source."""
    tee = Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        benchmark()
    return write_result(name, f"python -m benchmarks.{name}", tee.copy.getvalue())


def main(selection: list[str]) -> None:
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):  # tables, not chatter
        logging.getLogger(name).setLevel(logging.ERROR)
    chosen = [name for name in BENCHMARKS if not selection or any(s in name for s in selection)]
    print(f"machine: {machine()}")
    for name in chosen:
        started = time.perf_counter()
        path = run_and_record(name, importlib.import_module(f"benchmarks.{name}").main)
        print(f"(wrote benchmarks/results/{path.name})")
        print(f"({name}: {time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
