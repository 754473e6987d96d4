"""Ctrl-C and SIGTERM handled at once, whichever thread the kernel hands them to.

    relay = SignalRelay(handler).start()   # handler on SIGTERM and SIGINT, in the main thread
    ...
    relay.stop()                           # the previous handlers back

Python runs a signal's Python handler in the main thread only, and only when that thread next
runs Python code. The kernel may deliver a signal sent to a process to any of its threads (the
native threads of torch or a library, LitServe's monitoring thread): when the main thread is then
blocked in a system call (LitServe's server waiting on its shutdown event; the sweep's parent in
``Process.join()``), nothing interrupts it, and the handler waits until that call returns, which
may be never. Seen: a server that never stopped (CI), a sweep whose SIGTERM was handled 18 s
later, when a worker ended (tests/test_serve.py and tests/test_sweep.py hand SIGTERM to another
thread with tgkill; tests/test_signal_relay.py tests the relay in one process).

The fix: the C half of every Python handler also writes the signal's number to a socket
(``signal.set_wakeup_fd``); a relay thread reads it and, while fewer signals have been handled
than have arrived, interrupts the main thread's system call with ``POKE`` (a signal sent to the
main thread alone, whose handler does nothing), which makes the main thread run the pending
handlers.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
POKE = signal.SIGUSR2  # sent by the relay to the main thread only; its handler does nothing
POKE_EVERY_S = 0.1
POKES = 50  # at most 5 s of pokes per signal: two signals at once may run a handler once

_relaying = False  # a relay runs in this process (a forked child inherits the flag, not the thread)


class SignalRelay:
    """``handler`` on SIGTERM and SIGINT, the relay thread that makes sure it runs, and what both
    changed (the handlers, the wakeup fd, POKE's handler), to give back."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.count = 0  # how many times the handler has run
        self.reader: socket.socket | None = None
        self.writer: socket.socket | None = None
        self.previous: dict = {}  # signal number: the handler before ours
        self.previous_fd = -1

    def _counted(self, signum, frame):
        self.count += 1  # before the handler: it may raise (KeyboardInterrupt) or exit
        return self.handler(signum, frame)

    def start(self) -> SignalRelay:
        """In the main thread (the only one that may set handlers); elsewhere, nothing."""
        global _relaying
        if threading.current_thread() is not threading.main_thread():
            return self
        for number in STOP_SIGNALS:
            self.previous[number] = signal.signal(number, self._counted)
        self.reader, self.writer = socket.socketpair()
        self.writer.setblocking(False)  # set_wakeup_fd needs it: the C handler must never block
        self.previous[POKE] = signal.signal(POKE, lambda signum, frame: None)
        self.previous_fd = signal.set_wakeup_fd(self.writer.fileno(), warn_on_full_buffer=False)
        _relaying = True
        main_thread = threading.main_thread().ident
        threading.Thread(
            target=self._relay, args=(main_thread,), name="signal-relay", daemon=True
        ).start()
        return self

    def _relay(self, main_thread: int) -> None:
        arrived = 0
        while numbers := self.reader.recv(64):  # b"" once stop() closed the writer
            arrived += sum(number in STOP_SIGNALS for number in numbers)  # not the pokes
            for _ in range(POKES):
                if self.count >= arrived:
                    break
                signal.pthread_kill(main_thread, POKE)
                time.sleep(POKE_EVERY_S)
        self.reader.close()

    def stop(self) -> None:
        """Give back the handlers and the wakeup fd; the relay thread ends."""
        global _relaying
        if self.writer is None:
            return
        signal.set_wakeup_fd(self.previous_fd)
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        _relaying = False
        self.writer.close()
        self.writer = None


def _forget_the_wakeup_socket() -> None:
    """In a forked child (LitServe's API servers and manager): its signals are its own, and must
    not wake the parent's relay through the socket it inherited."""
    if _relaying:
        try:
            signal.set_wakeup_fd(-1)
        except ValueError:  # forked from a thread other than the main one: nothing to undo
            pass


os.register_at_fork(after_in_child=_forget_the_wakeup_socket)
