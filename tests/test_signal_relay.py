"""project/core/signal_relay.py in this process: a stop signal that the kernel hands to another
thread still runs the handler while the main thread waits in a system call; stop() gives every
handler back; a forked child does not keep the parent's wakeup socket. The servers and sweeps that
use it are tested end to end in tests/test_serve.py and tests/test_sweep.py (tgkill)."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from project.core.signal_relay import POKE, SignalRelay

from .helpers import BOUND_SECONDS


class Stopped(Exception):
    pass


def raise_stopped(signum, frame):
    raise Stopped(signal.Signals(signum).name)


def test_a_sigterm_delivered_to_another_thread_interrupts_the_main_threads_blocking_read():
    previous = signal.getsignal(signal.SIGTERM)
    relay = SignalRelay(raise_stopped).start()
    reader, writer = socket.socketpair()  # nothing is ever written: recv blocks
    reader.settimeout(BOUND_SECONDS)  # without the relay: socket.timeout after the bound
    reading = threading.Event()
    other = threading.Thread(target=signal_itself_once_the_main_thread_sleeps, args=(reading,))
    try:
        other.start()
        with pytest.raises(Stopped, match="SIGTERM"):
            reading.set()
            reader.recv(1)
        assert relay.count == 1
    finally:
        other.join()
        relay.stop()
        reader.close()
        writer.close()
    assert signal.getsignal(signal.SIGTERM) is previous


def signal_itself_once_the_main_thread_sleeps(reading: threading.Event) -> None:
    """SIGTERM to this thread (the C handler runs here, never in the main thread) once the main
    thread sleeps in its read (Linux's /proc: state S)."""
    reading.wait()
    stat = f"/proc/self/task/{threading.main_thread().native_id}/stat"
    while open(stat).read().rsplit(")", 1)[1].split()[0] != "S":
        time.sleep(0.01)
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)


def test_stop_gives_back_the_handlers_and_the_wakeup_fd():
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM, POKE)}
    relay = SignalRelay(raise_stopped).start()
    assert signal.getsignal(signal.SIGINT) == relay._counted
    relay.stop()
    assert {number: signal.getsignal(number) for number in before} == before
    assert signal.set_wakeup_fd(-1) == -1  # no socket left set (and none set by this check)


def test_a_forked_child_does_not_write_its_signals_into_the_parents_socket():
    relay = SignalRelay(raise_stopped).start()
    try:
        child = os.fork()
        if child == 0:  # the child: exit 0 when it holds no wakeup fd any more
            os._exit(0 if signal.set_wakeup_fd(-1) == -1 else 1)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        relay.stop()
