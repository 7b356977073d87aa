# SPDX-License-Identifier: MIT
"""The run's time bound, shared by the lookup and the VirusTotal client.

integratord waits for the script with no timeout of its own, so the script bounds itself:
timeout x (retries + 1) from the start, whatever VirusTotal or a lock does.
"""
from __future__ import annotations

import time


class DeadlineExceeded(BaseException):
    """Raised by the watchdog timer. A BaseException so that no library swallows it."""


class Deadline:
    """The run's time bound: timeout x (retries + 1) from the start, whatever VirusTotal does."""

    def __init__(self, start: float, seconds: float) -> None:
        self.at = start + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def watch(self) -> Watchdog:
        return Watchdog(self)


class Watchdog:
    """A one-shot timer that interrupts blocking I/O (slow bodies, locks) at the deadline.

    Socket timeouts bound each read, not a body dribbled one byte at a time; this bounds all.
    """

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def __enter__(self) -> Watchdog:
        import signal

        def fire(signum, frame):
            raise DeadlineExceeded()
        self._signal = signal
        self._old = signal.signal(signal.SIGALRM, fire)
        signal.setitimer(signal.ITIMER_REAL, max(0.01, self.deadline.remaining()))
        return self

    def __exit__(self, *exc) -> None:
        self._signal.setitimer(self._signal.ITIMER_REAL, 0)
        self._signal.signal(self._signal.SIGALRM, self._old)
