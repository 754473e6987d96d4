"""CPU threads that do not spin against other work: the rule every entry point applies before
torch is imported.

torch runs its CPU kernels on an OpenMP thread pool (GNU libgomp in the pip wheels:
``python -c "import torch; print(torch.__config__.parallel_info())"``). Between two parallel
regions an idle pool thread *spins*, burning its core, for about 300,000 iterations before it
sleeps (libgomp's default ``GOMP_SPINCOUNT``). On idle cores that makes the next region start
sooner. On shared cores (a browser, a second training, DDP ranks, sweep workers, the test suite's
subprocess fits) every spinning thread takes the core from a thread that has work, and each
region waits for a thread that is not running: on the 2-core dev VM beside two other torch
processes a 3-epoch digits fit took 3-6x its idle time (docs/performance.md, "Threads on a busy
machine"; ``python -m benchmarks.busy_machine``).

The rule (``apply()``), unless the user chose:

- **wait policy**: idle pool threads spin for ``SPIN_COUNT`` iterations, then sleep
  (``GOMP_SPINCOUNT``; ``KMP_BLOCKTIME=0`` for Intel's OpenMP). Not ``OMP_WAIT_POLICY=PASSIVE``
  (no spinning at all), which cost 18% on an idle machine: a short spin keeps back-to-back
  regions fast and gives the core away when a wait is long, which is when someone else needs it.
- **threads**: the CPUs this process may use (``os.sched_getaffinity``, capped by a cgroup CPU
  quota such as ``docker --cpus 2``, which torch's default ignores), less the CPUs other work
  keeps busy when the command starts (``busy_cpus``: the kernel's count of runnable tasks), divided
  among the processes of one run on this machine (``LOCAL_WORLD_SIZE``, set by torchrun;
  Lightning's own DDP launcher divides by its process count itself when ``OMP_NUM_THREADS`` is
  unset, so the rule leaves the variable unset when its count equals torch's default). A thread
  that shares its core with another program runs half the time, and every parallel region waits
  for it: beside one pure-Python hog on the 2-core dev VM a 3-epoch digits fit took 6.3 s with 2
  threads and 3.5 s with 1 (3.5 s either way idle; docs/performance.md).

The user always wins: ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or ``KMP_BLOCKTIME`` set in the
environment keep the rule's wait policy away; ``OMP_NUM_THREADS`` keeps its thread count away
(and ``torch.set_num_threads`` in the user's own code runs later, so it wins too).
``IMAGE_CLASSIFIER_THREADS=off`` turns the whole rule off (torch's defaults, as before).

    from project.core import threads
    threads.apply()           # first thing in an entry point, before ``import torch``
    threads.describe()        # the one line saying what was chosen, or "" when nothing was

Child processes (DataLoader workers, DDP ranks, sweep workers, a test's subprocess) inherit the
environment the rule wrote, so the rule holds in every process of a run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

# Iterations an idle libgomp thread spins before it sleeps. libgomp's default is 300,000 (about
# a millisecond here); 10,000 is tens of microseconds: enough for the back-to-back regions of one
# training step, far less than the time slice another process would lose.
SPIN_COUNT = 10_000
OFF_SWITCH = "IMAGE_CLASSIFIER_THREADS"  # =off: the rule does nothing
MARK = "IMAGE_CLASSIFIER_THREADS_RULE"  # what the rule chose, for describe() and child processes
COUNT_MARK = "IMAGE_CLASSIFIER_THREADS_COUNT"  # OMP_NUM_THREADS is the rule's, not the user's
USER_WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (``cpu.max`` of cgroup v2, or v1's
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), or None where no quota is set."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup quota (rounded up)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity call
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, max(1, int(-(-limit // 1))))
    return max(1, cpus)


def busy_cpus(samples: int = 5, interval: float = 0.002, loadavg: Path = Path("/proc/loadavg")):
    """CPUs that other work keeps busy right now, of those this process may use: the tasks
    running or ready to run (``/proc/loadavg``'s 4th field, which counts this process too), the
    median of a few samples a few milliseconds apart, so a spinning program counts and a brief
    wake-up or an idle browser does not. Where the affinity mask holds part of the machine, the
    count is scaled to that part; under a cgroup CPU quota (a container's own share) and where
    /proc is absent (macOS, Windows) it is 0: no reduction."""
    if cgroup_cpu_limit() is not None:
        return 0
    counts = []
    for sample in range(samples):
        try:
            counts.append(int(loadavg.read_text().split()[3].split("/")[0]) - 1)
        except (OSError, ValueError, IndexError):
            return 0
        if sample < samples - 1:
            time.sleep(interval)
    others = sorted(counts)[len(counts) // 2]
    share = torch_default_threads() / (os.cpu_count() or torch_default_threads())
    return max(0, round(others * share))


def processes_on_this_machine(environ=os.environ) -> int:
    """Processes of one run sharing this machine's CPUs: torchrun's LOCAL_WORLD_SIZE, else 1."""
    try:
        return max(1, int(environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def torch_default_threads() -> int:
    """What torch would choose without the rule: libgomp's default, the affinity mask's CPUs."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def apply(processes: int | None = None, environ=os.environ) -> str:
    """Write the rule into ``environ`` (before torch is imported) and return what it chose,
    as the text ``describe()`` prints. ``processes``: this run's processes on this machine
    (default: ``LOCAL_WORLD_SIZE`` or 1)."""
    if environ.get(OFF_SWITCH, "").lower() in ("off", "0", "false", "no"):
        return ""
    if MARK in environ:  # a parent process applied it: its choice is in the environment
        return environ[MARK]
    chosen = []
    if not any(name in environ for name in USER_WAIT_SETTINGS):
        environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
        environ["KMP_BLOCKTIME"] = "0"
        chosen.append(f"idle OpenMP threads sleep after {SPIN_COUNT:,} spins, not 300,000")
    if "OMP_NUM_THREADS" not in environ:
        usable, busy = usable_cpus(), busy_cpus()
        free = max(1, usable - busy)
        count = max(1, free // (processes or processes_on_this_machine(environ)))
        if count != torch_default_threads():
            environ["OMP_NUM_THREADS"] = environ[COUNT_MARK] = str(count)
            why = f"; {min(busy, usable)} of {usable} CPUs busy with other work" if busy else ""
            default = torch_default_threads()
            chosen.append(f"{count} CPU thread(s) (torch would take {default}{why})")
    environ[MARK] = "; ".join(chosen)
    return environ[MARK]


# Every variable the rule writes or reads: a process started without them runs as torch would.
RULE_VARIABLES = ("GOMP_SPINCOUNT", "KMP_BLOCKTIME", MARK, COUNT_MARK, OFF_SWITCH)


def environment(rule: bool, environ=os.environ) -> dict[str, str]:
    """A copy of ``environ`` for a child process: under the rule (applied afresh there), or with
    torch's defaults (``rule=False``: the rule switched off), as a foreign torch program runs.
    The benchmarks and tests that compare both ways start their processes with it."""
    env = {key: value for key, value in environ.items() if key not in RULE_VARIABLES}
    if COUNT_MARK in environ:  # the thread count was the rule's (this process's load): not kept
        env.pop("OMP_NUM_THREADS", None)
    if not rule:
        env[OFF_SWITCH] = "off"
    return env


def thread_count(environ=os.environ) -> int:
    """The CPU threads a run in this process may use: the user's or the rule's
    ``OMP_NUM_THREADS`` where set, else the CPUs this process may use."""
    chosen = environ.get("OMP_NUM_THREADS", "").split(",")[0]
    return int(chosen) if chosen.isdigit() and int(chosen) > 0 else usable_cpus()


def describe(environ=os.environ) -> str:
    """One line saying what the rule chose in this process, or "" when it chose nothing."""
    chosen = environ.get(MARK, "")
    if not chosen:
        return ""
    return f"CPU threads: {chosen}, so other work keeps its cores (docs/performance.md)"
