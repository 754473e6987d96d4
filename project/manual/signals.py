"""SIGTERM and Ctrl-C in the manual loop: finish the current step, save last.ckpt, then stop.

    python -m project.manual fit --config configs/cnn.yaml     # Ctrl-C: exit 130, last.ckpt saved
    kill -TERM <pid>                                            # exit 143, last.ckpt saved
    python -m project.manual fit --config configs/cnn.yaml --resume last   # continues exactly

Lightning: its signal connector does this for SIGTERM and catches KeyboardInterrupt (with our
``CheckpointOnInterrupt`` callback saving last.ckpt). Exit statuses: project/core/errors.py.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

from project.core.errors import Stopped


class StopRequest:
    """Set by a signal handler; the loop reads it after every step."""

    def __init__(self) -> None:
        self.signal: str | None = None  # "SIGTERM" or "SIGINT" once one arrived

    def __bool__(self) -> bool:
        return self.signal is not None


class TrainingInterrupted(Stopped):
    """A signal stopped training after a step; last.ckpt holds that step (exit 143 or 130)."""

    @classmethod
    def saved(cls, request: StopRequest | None, epoch: int, step: int, path) -> TrainingInterrupted:
        # No signal here but one in another process (torchrun passes SIGTERM on to all of them).
        name = (request and request.signal) or "SIGTERM"
        return cls(
            f"stopped by {name} at epoch {epoch}, step {step}; saved {path}: "
            "continue with --resume last",
            name,
        )


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """While inside, SIGTERM and Ctrl-C only set the returned ``StopRequest``.

    Handlers can only be installed from the main thread; elsewhere the default behaviour stays.
    """
    request = StopRequest()

    def ask_to_stop(signum, frame):
        request.signal = signal.Signals(signum).name

    signals = (signal.SIGTERM, signal.SIGINT)
    try:
        previous = {number: signal.signal(number, ask_to_stop) for number in signals}
    except ValueError:  # not the main thread
        previous = {}
    try:
        yield request
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
