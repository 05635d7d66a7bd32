"""The one clock every wait and deadline reads.

Retries, polls and time budgets all go through a `Clock` carried by the retry policy, so a test
gives a fake one and waits no real time, and nothing sleeps behind the policy's back.
"""

from __future__ import annotations

import time


class Clock:
    """The system's monotonic time and sleep; subclass it to fake time in tests."""

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes back (only differences mean anything)."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait this many seconds.

        Parameters
        ----------
        seconds
            How long; zero or less returns at once.
        """
        if seconds > 0:
            time.sleep(seconds)


# Stateless, so one instance serves every policy.
SYSTEM_CLOCK = Clock()
