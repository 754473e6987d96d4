"""A CPU hog: N processes that spin until stopped, to run the tests beside a busy machine.

    python -m tests.cpu_hog --workers 2            # until Ctrl-C or SIGTERM (make test-under-load)
    python -m tests.cpu_hog --workers 2 --seconds 60

``make test-under-load`` starts it beside ``make test`` and stops it when the tests end: every wait
in the suite must follow an event with a generous bound, so the suite passes while two cores are
taken. Processes, not threads: Python threads share one interpreter lock and would load one core.
Each worker also stops when its parent is gone or after ``--seconds``, so no hog outlives its run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import time


def spin(parent: int, seconds: float) -> None:
    """Busy arithmetic until the parent exits or the time is up (checked every ~10 ms of work)."""
    deadline = time.monotonic() + seconds
    value = 0
    while os.getppid() == parent and time.monotonic() < deadline:
        for i in range(100_000):
            value = (value * 31 + i) % 1_000_003


def stop(signum, frame) -> None:
    raise SystemExit(0)  # run the finally below: stop the workers too


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.cpu_hog", description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="busy processes (default 2)")
    parser.add_argument("--seconds", type=float, default=3 * 3600, help="stop after (default 3 h)")
    options = parser.parse_args(args)
    signal.signal(signal.SIGTERM, stop)
    workers = [
        multiprocessing.Process(target=spin, args=(os.getpid(), options.seconds), daemon=True)
        for _ in range(options.workers)
    ]
    for worker in workers:
        worker.start()
    print(f"cpu_hog: {options.workers} busy processes, pid {os.getpid()}", flush=True)
    try:
        for worker in workers:
            worker.join()
    except KeyboardInterrupt:
        pass
    finally:
        for worker in workers:
            worker.terminate()
            worker.join()


if __name__ == "__main__":
    main()
