"""project/core/gc_pause.py: the command-line entry points load the libraries without garbage
collections, collect again afterwards, and freeze what is alive before Python exits.

Each entry point is started in a fresh process with ``--help`` (which ends in SystemExit): the
three modules as ``__main__`` (as ``python -m`` runs them) and the ``image-classifier`` console
script's function (pyproject.toml). The process records every collection the interpreter starts.
"""

from __future__ import annotations

import gc
import sys

import pytest

from project.core.gc_pause import paused_for_imports

from .helpers import run_command

LAUNCH = {  # how each entry point starts its code
    "python -m project": "runpy.run_module('project', run_name='__main__', alter_sys=True)",
    "python -m project.manual": (
        "runpy.run_module('project.manual', run_name='__main__', alter_sys=True)"
    ),
    "python -m project.quickstart": (
        "runpy.run_module('project.quickstart', run_name='__main__', alter_sys=True)"
    ),
    "image-classifier": "from project.__main__ import run; run()",
}

PROBE = """
import gc, runpy, sys
walked = []  # objects in the generations each collection walks, counted as it starts
def record(phase, info):
    if phase == "start":
        walked.append(sum(len(gc.get_objects(g)) for g in range(info["generation"] + 1)))
gc.callbacks.append(record)
sys.argv = ["entry", "--help"]
try:
    {launch}
    code = None
except SystemExit as stop:
    code = stop.code
gc.callbacks.remove(record)
print("walked", max(walked, default=0), "unfrozen", len(gc.get_objects()),
      "enabled", gc.isenabled(), "exit", code, file=sys.stderr)
"""


def probe(entry_point: str) -> dict[str, str]:
    code = PROBE.replace("{launch}", LAUNCH[entry_point])
    result = run_command([sys.executable, "-c", code], check=False)
    assert result.returncode == 0, result.stderr[-2000:]  # the probe itself ran to its end
    last = result.stderr.strip().splitlines()[-1:] or [""]
    words = last[0].split()
    assert words[:1] == ["walked"], result.stderr[-2000:]
    return dict(zip(words[::2], words[1::2], strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("entry_point", LAUNCH)
def test_the_libraries_load_uncollected_and_the_exit_freezes(entry_point):
    seen = probe(entry_point)
    assert seen["exit"] == "0", seen  # --help printed and ended normally
    # Loading torch, torchvision and Lightning leaves about 430,000 objects; with collections
    # running as usual, the ones during the imports walk up to that many (429,634 in
    # benchmarks.startup's table 4e). Paused, then frozen: no collection walks them.
    assert int(seen["walked"]) < 50_000, seen
    assert seen["enabled"] == "True", seen  # collecting again after the imports
    # At exit what the command made since is frozen too: the probe's own last lines leave a
    # handful unfrozen (5 measured); without the exit's freeze the parsers' 4,000-7,300 stay.
    assert int(seen["unfrozen"]) < 1_000, seen


def test_the_pause_freezes_what_it_loaded_and_restores_the_collector():
    gc.collect()  # nothing pending, so the counts below are the block's
    try:
        for enabled_before in (True, False):
            (gc.enable if enabled_before else gc.disable)()
            frozen_before = gc.get_freeze_count()
            with paused_for_imports():
                assert not gc.isenabled()
                loaded = [[index] for index in range(1000)]  # objects the block creates
            assert gc.isenabled() is enabled_before
            assert gc.get_freeze_count() >= frozen_before + len(loaded)
            gc.unfreeze()
    finally:
        gc.enable()
