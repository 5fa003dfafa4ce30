"""A token bucket: at most ``rate`` sends per second, with a burst of ``capacity``.

The default capacity of 1 spaces sends evenly (one every ``1/rate`` seconds), which is
what carriers and Twilio's per-sender queues like best. Time and sleep are injectable.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    def __init__(
        self,
        rate: float,
        capacity: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(1.0, capacity)
        self.clock = clock
        self.sleep = sleep
        self.tokens = self.capacity
        self.updated = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def acquire(self) -> float:
        """Take one token, sleeping until there is one; returns the seconds waited."""
        waited = 0.0
        self._refill()
        if self.tokens < 1.0:
            waited = (1.0 - self.tokens) / self.rate
            self.sleep(waited)
            self._refill()
            # The sleep covered the deficit; a clock coarser than the wait (float epoch seconds, a
            # simulated clock) must not leave us spinning on a rounding error.
            self.tokens = max(self.tokens, 1.0)
        self.tokens -= 1.0
        return waited
