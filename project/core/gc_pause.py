"""The garbage collector at the command-line entry points: paused while the libraries load,
and skipped at exit. Both save time that users wait for and that training does not need.

Python's cyclic garbage collector runs every so many new objects, and a full collection walks
every object alive. Importing torch, torchvision and Lightning leaves about 430,000 objects: a gc
callback in a one-epoch ``fit`` counted 7 full collections while they loaded, each walking more
objects than the last, the largest 429,634; 0.70 s in all (``python -m benchmarks.startup``,
table 4e, which also shows none when paused).

- ``paused_for_imports()``: no collections while its block imports the libraries; then
  ``gc.freeze()`` moves every object alive into a permanent generation that later collections
  leave alone, and the collector runs again as usual for what training creates (its cycles are
  still freed). On the development VM ``import project.lit.cli``, from the interpreter's start, took
  3.96 s instead of 4.87 s (medians of 5 interleaved runs; ``python -m benchmarks.startup``,
  table 4d); a default ``fit`` reached the end of its first epoch 1.3-1.8 s sooner with
  Lightning, 0.3-1.1 s with the manual loop (``python -m benchmarks.whole_process --trees``,
  two interleaved runs against the commit before).
- ``skip_collection_at_exit()``: when Python exits it walks the objects still alive once more and
  runs their finalizers; ``gc.freeze()`` as the last step skips that walk. A script that only
  imports ``project.lit.cli`` spent 1.69-1.87 s after its last line, 0.31-0.37 s with the freeze
  (table 4c); a training run's exit (saving and closing included) had medians of 0.29-0.43 s
  (``python -m benchmarks.whole_process``'s exit column).

What still happens at exit: the files are closed by the code that wrote them before this runs
(checkpoints are written whole; Lightning's logger ``finalize`` and the manual loop's ``RunLog``,
on leaving its ``with`` block, flush and close the event files); ``atexit`` handlers still run
(multiprocessing's among them, which ends DataLoader worker processes still alive); objects freed
by reference counting are still freed. What no longer happens: the finalizers (``__del__``) of
objects caught in reference cycles, which Python never promised to run at exit anyway.

Only the entry points (``python -m project`` and its ``image-classifier`` script, ``python -m
project.manual``, ``make train``) call these: a test that calls ``main()`` in its own process
collects as usual.

    python -m benchmarks.startup         # tables 4c (the exit) and 4d (the imports), both ways
    python -m benchmarks.whole_process   # "exit" column: last event to the process's end
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused_for_imports() -> Iterator[None]:
    """No collections inside the block; then what is alive is frozen and collection resumes."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()  # the libraries' objects: later collections do not walk them again
        if was_enabled:
            gc.enable()


def skip_collection_at_exit() -> None:
    """Freeze everything alive now: the interpreter's collections at exit will not walk it."""
    gc.freeze()
