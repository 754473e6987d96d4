"""project/fast_exit.py: the command-line entry points freeze what is alive before Python exits.

Each entry module is run as ``__main__`` (as ``python -m`` does) with ``--help``, which ends in
SystemExit; the freeze must happen on that path too, since it sits in a ``finally``.
"""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc, runpy, sys
for module in ("project", "project.manual", "project.quickstart"):
    gc.unfreeze()
    sys.argv = [module, "--help"]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    print(module, gc.get_freeze_count(), file=sys.stderr)
"""


def test_every_entry_point_freezes_the_objects_alive_on_its_way_out():
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=600
    )
    counts = dict(line.split() for line in result.stderr.splitlines() if line.startswith("project"))
    assert set(counts) == {"project", "project.manual", "project.quickstart"}, result.stderr[-2000:]
    # Hundreds of thousands of objects after torch and Lightning are imported; 0 if not frozen.
    assert all(int(count) > 100_000 for count in counts.values()), counts
