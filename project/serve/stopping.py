"""How ``python -m project serve`` stops: SIGTERM or Ctrl-C, a deadline, and a second signal.

    python -m project serve --ckpt_path CKPT --shutdown_timeout 10   # kill -TERM <pid>: exit 0

The first SIGTERM or SIGINT raises KeyboardInterrupt in the main thread, which is how LitServe
starts its own shutdown (it stops its API servers and inference workers), and starts a deadline
of ``--shutdown_timeout`` seconds; the deadline, or a second signal, ends every process at once.
LitServe's main thread waits in a blocking read for the server's whole life, so a signal the
kernel hands to another thread needs project/core/signal_relay.py to reach the handler (without
it the server never stopped: tests/test_serve.py).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading

from project.core.signal_relay import SignalRelay


def stop_now() -> None:
    """End every process this server started, then this one: no waiting, nothing printed."""
    for child in multiprocessing.active_children():
        child.kill()
    os._exit(0)


def stop_on_signals(timeout: float) -> None:
    """SIGTERM and SIGINT: the first starts LitServe's shutdown (it runs on KeyboardInterrupt)
    with a deadline of ``timeout`` seconds; a second one, or the deadline, stops at once."""
    server_pid = os.getpid()
    stopping = threading.Event()

    def interrupt(signum, frame):
        if os.getpid() != server_pid:
            # A forked API server, before uvicorn installs its own handlers: the default.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if stopping.is_set():
            stop_now()
        stopping.set()
        deadline = threading.Timer(timeout, stop_now)
        deadline.daemon = True
        deadline.start()
        raise KeyboardInterrupt

    # On SIGTERM and SIGINT, for the life of the process (it ends with os._exit or LitServe's
    # return): the relay makes sure the handler runs, whichever thread the kernel picks.
    SignalRelay(interrupt).start()
