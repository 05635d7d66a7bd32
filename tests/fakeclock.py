"""A clock whose time moves only when something sleeps on it, for tests that wait."""

from __future__ import annotations

import threading

from batchtasks.clock import Clock


class FakeClock(Clock):
    """Time that advances by exactly what is slept, instantly; every sleep is recorded.

    Attributes
    ----------
    now
        The current reading of `monotonic()`.
    sleeps
        Every sleep asked for, in order.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        # Bulk adds and deletes sleep from worker threads.
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        """Return the fake time."""
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        """Record the wait and move time on by it, without waiting."""
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(seconds, 0.0)
