"""How ``python -m project serve`` stops: SIGTERM or Ctrl-C, a deadline, and a second signal.

    python -m project serve --ckpt_path CKPT --shutdown_timeout 10   # kill -TERM <pid>: exit 0

The first SIGTERM or SIGINT raises KeyboardInterrupt in the main thread, which is how LitServe
starts its own shutdown (it stops its API servers and inference workers), and starts a deadline
of ``--shutdown_timeout`` seconds; the deadline, or a second signal, ends every process at once.

Python runs a signal's handler in the main thread only, and only when that thread next runs
Python code. LitServe's main thread spends the server's life in a blocking read (waiting for its
shutdown event through a multiprocessing manager), and the kernel may hand a signal to another
thread of the process (LitServe's worker-monitoring thread): the read is then never interrupted,
the handler never runs, and the server never stops (seen in CI; tests/test_serve.py sends SIGTERM
to that thread). So the handler's C half also writes each signal's number to a socket
(``signal.set_wakeup_fd``), and a relay thread that reads it interrupts the main thread's read
with a signal of its own (``POKE``, whose handler does nothing) until the handler has run.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
POKE = signal.SIGUSR2  # sent by the relay to the main thread only; its handler does nothing
POKE_EVERY_S = 0.1
POKES = 50  # at most 5 s of pokes per signal: the handler has run long before


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
    handled: list[int] = []  # the signals the handler has run for (the relay reads its length)

    def interrupt(signum, frame):
        if os.getpid() != server_pid:
            # A forked API server, before uvicorn installs its own handlers: the default.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        handled.append(signum)
        if stopping.is_set():
            stop_now()
        stopping.set()
        deadline = threading.Timer(timeout, stop_now)
        deadline.daemon = True
        deadline.start()
        raise KeyboardInterrupt

    for number in STOP_SIGNALS:
        signal.signal(number, interrupt)
    relay_signals_to_the_main_thread(handled)


def relay_signals_to_the_main_thread(handled: list[int]) -> None:
    """Start the relay thread (see the module's docstring): while fewer signals are ``handled``
    than have arrived, poke the main thread (a bounded number of times: two signals that arrive
    together may run the handler once)."""
    reader, writer = socket.socketpair()
    writer.setblocking(False)  # set_wakeup_fd needs it: the C handler must never block
    signal.signal(POKE, lambda signum, frame: None)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    os.register_at_fork(after_in_child=forget_the_wakeup_socket)
    main_thread = threading.main_thread().ident

    def relay(reader: socket.socket, writer: socket.socket) -> None:
        # The thread holds both ends: a writer closed by the garbage collector would end it.
        arrived = 0
        while numbers := reader.recv(64):
            arrived += sum(number in STOP_SIGNALS for number in numbers)  # not the pokes
            for _ in range(POKES):
                if len(handled) >= arrived:
                    break
                signal.pthread_kill(main_thread, POKE)
                time.sleep(POKE_EVERY_S)

    threading.Thread(target=relay, args=(reader, writer), name="signal-relay", daemon=True).start()


def forget_the_wakeup_socket() -> None:
    """In a forked child (LitServe's API servers, its manager): its signals are its own, and must
    not wake the parent's relay through the socket it inherited."""
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:  # forked from a thread other than the main one: nothing was inherited
        pass
