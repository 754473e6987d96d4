"""A CPU hog: N processes that keep the cores busy until stopped, to run things beside them.

    python -m tests.cpu_hog --workers 2                  # pure-Python spinners (Ctrl-C, SIGTERM)
    python -m tests.cpu_hog --workers 2 --kind torch     # torch training steps, torch's defaults
    python -m tests.cpu_hog --workers 2 --kind torch --rule   # the same under the project's rule
    python -m tests.cpu_hog --workers 2 --seconds 60

Two kinds of competition (benchmarks/busy_machine.py measures both):

- ``python``: busy arithmetic in the interpreter, one core each (a browser, a compiler).
- ``torch``: small CNN training steps with torch's own thread pool, as another training, a DDP
  rank or a sweep worker runs them. By default with torch's defaults (OpenMP threads that spin
  while they wait, as any torch program outside this project does); ``--rule`` applies the
  project's CPU thread rule first (project/core/threads.py), as the project's own processes do.

``make test-under-load`` starts ``--kind torch`` beside ``make test``: every wait in the suite must
follow an event with a generous bound, so the suite passes while the cores are taken. Processes,
not threads: Python threads share one interpreter lock and would load one core. Each worker
stops when its parent is gone or after ``--seconds``, so no hog outlives its run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import time

from project.core import threads

# What a torch hog runs: training steps of a small CNN on random 32x32 images, batch 64.
TORCH_STEPS = """
import os, sys, time
if {rule}:
    import project  # noqa: F401  the CPU thread rule, before torch loads
import torch
from torch import nn
parent, deadline = {parent}, time.monotonic() + {seconds}
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1),
                    nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
images, labels = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
while os.getppid() == parent and time.monotonic() < deadline:
    optimizer.zero_grad()
    nn.functional.cross_entropy(net(images), labels).backward()
    optimizer.step()
"""


def spin(parent: int, seconds: float) -> None:
    """Busy arithmetic until the parent exits or the time is up (checked every ~10 ms of work)."""
    deadline = time.monotonic() + seconds
    value = 0
    while os.getppid() == parent and time.monotonic() < deadline:
        for i in range(100_000):
            value = (value * 31 + i) % 1_000_003


def start_torch_hogs(workers: int, seconds: float, rule: bool) -> list[subprocess.Popen]:
    """``workers`` processes of torch training steps, children of this process."""
    code = TORCH_STEPS.format(rule=rule, parent=os.getpid(), seconds=seconds)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return [
        subprocess.Popen([sys.executable, "-c", code], env=threads.environment(rule), cwd=root)
        for _ in range(workers)
    ]


def stop(signum, frame) -> None:
    raise SystemExit(0)  # run the finally below: stop the workers too


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.cpu_hog",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workers", type=int, default=2, help="busy processes (default 2)")
    parser.add_argument("--seconds", type=float, default=3 * 3600, help="stop after (default 3 h)")
    parser.add_argument(
        "--kind",
        choices=("python", "torch"),
        default="python",
        help="pure-Python spinners, or torch training steps (default python)",
    )
    parser.add_argument(
        "--rule", action="store_true", help="torch hogs under the project's CPU thread rule"
    )
    options = parser.parse_args(args)
    signal.signal(signal.SIGTERM, stop)
    if options.kind == "torch":
        workers = start_torch_hogs(options.workers, options.seconds, options.rule)
    else:
        workers = [
            multiprocessing.Process(target=spin, args=(os.getpid(), options.seconds), daemon=True)
            for _ in range(options.workers)
        ]
        for worker in workers:
            worker.start()
    how = (
        f"torch{' under the rule' if options.rule else ''}" if options.kind == "torch" else "python"
    )
    print(f"cpu_hog: {options.workers} busy {how} processes, pid {os.getpid()}", flush=True)
    try:
        for worker in workers:
            worker.wait() if isinstance(worker, subprocess.Popen) else worker.join()
    except KeyboardInterrupt:
        pass
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait() if isinstance(worker, subprocess.Popen) else worker.join()


if __name__ == "__main__":
    main()
