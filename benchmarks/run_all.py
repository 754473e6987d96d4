"""``make bench``: every benchmark in turn, each printing its table (on 2 idle cores about 15
minutes before overhead_profile, time_to_99_events and feature_cache joined, which took 51, 51 and
9 s alone; big_photos and whole_process start fresh training processes, about 10 minutes).

python -m benchmarks.run_all              # all
python -m benchmarks.run_all precision    # the ones whose module name contains "precision"
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
import warnings

from benchmarks.common import machine

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
    "inference",
]


def main(selection: list[str]) -> None:
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):  # tables, not chatter
        logging.getLogger(name).setLevel(logging.ERROR)
    chosen = [name for name in BENCHMARKS if not selection or any(s in name for s in selection)]
    print(f"machine: {machine()}")
    for name in chosen:
        started = time.perf_counter()
        importlib.import_module(f"benchmarks.{name}").main()
        print(f"({name}: {time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
