"""How a failed run ends, the same in both loops: one line on stderr and a known exit status.

    python -m project fit ...          (project/lit/cli.py)      } both wrap their run in
    python -m project.manual fit ...   (project/manual/)     } ``exit_on_error()``

    status  when
    2       the user's input is unusable: data, image, config, checkpoint or weights file
            (any ``InputError``); the line names the file, row or option
    1       the loss became NaN or infinite (``LossNotFinite``), or a save met non-finite weights
            (``FloatingPointError``); nothing non-finite was saved
    143     SIGTERM stopped training (128 + 15, what a shell reports); last.ckpt was saved
    130     Ctrl-C stopped training (128 + 2); last.ckpt was saved

Plain Python, no Lightning import. The loops' own stop exceptions (Lightning's SIGTERMException,
the manual loop's TrainingInterrupted) are translated by each entry point into ``Stopped``.
"""

from __future__ import annotations

import contextlib
import signal
import sys

USER_INPUT_STATUS = 2
DIVERGED_STATUS = 1


class InputError(Exception):
    """A problem with the user's data, files or config, not a bug: one line, exit status 2."""


class LossNotFinite(FloatingPointError):
    """The training loss became NaN or infinite; training stops before the optimizer step."""


class Stopped(Exception):
    """A signal stopped training after a step; ``last.ckpt`` holds that step."""

    def __init__(self, message: str, signal_name: str):
        super().__init__(message)
        self.signal_name = signal_name

    @property
    def status(self) -> int:
        return 128 + int(getattr(signal, self.signal_name, signal.SIGTERM))


def one_line(error: BaseException) -> str:
    """The error's own message. A DataLoader worker's error arrives wrapped in the worker's
    traceback ("Caught ImageLoadError in DataLoader worker process 0 ..."): keep its last line."""
    message = str(error).strip()
    if "Original Traceback" in message:
        last = message.splitlines()[-1]
        message = last.split(f"{type(error).__name__}: ", 1)[-1]
    return message


@contextlib.contextmanager
def exit_on_error():
    """Turn our errors into one line on stderr and the exit status in the table above."""
    try:
        yield
    except InputError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        raise SystemExit(USER_INPUT_STATUS) from None
    except FloatingPointError as error:  # LossNotFinite, or non-finite weights refused at save
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(DIVERGED_STATUS) from None
    except Stopped as stopped:
        print(str(stopped), file=sys.stderr)
        raise SystemExit(stopped.status) from None
