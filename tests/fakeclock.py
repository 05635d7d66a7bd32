"""A clock whose time moves only when something sleeps on it, for tests that wait."""

from __future__ import annotations

import threading
from collections.abc import Callable

from batchtasks.clock import Clock


class FakeClock(Clock):
    """Time that advances by exactly what is slept, instantly; every sleep is recorded.

    Attributes
    ----------
    now
        The current reading of `monotonic()`.
    sleeps
        Every sleep asked for, in order.
    on_sleep
        Called after each sleep (outside the lock): what happens in the world meanwhile.
    """

    def __init__(self, start: float = 1000.0, on_sleep: Callable[[], None] | None = None) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep
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
        if self.on_sleep is not None:
            self.on_sleep()
