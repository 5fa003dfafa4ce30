"""The server clock: what a record shows (status, price, times) depends on it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime


class SimClock:
    """A clock for tests and demos: starts at ``start`` and moves only when told
    (``speed=0``) or at ``speed`` simulated seconds per real second."""

    def __init__(self, start: datetime, speed: float = 0.0):
        self._base = start.timestamp()
        self._real = time.monotonic()
        self.speed = speed
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._base + (time.monotonic() - self._real) * self.speed

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._base += seconds

    def set(self, when: datetime) -> None:
        with self._lock:
            self._base = when.timestamp()
            self._real = time.monotonic()

    def __call__(self) -> float:
        return self.now()


def clock_fn(clock) -> Callable[[], float]:
    """Epoch seconds from ``clock``: None (the wall clock), an object with ``now()`` or a
    callable, either returning a datetime or epoch seconds."""
    if clock is None:
        return time.time
    source = clock.now if hasattr(clock, "now") and not isinstance(clock, type) else clock

    def f() -> float:
        v = source()
        return v.timestamp() if isinstance(v, datetime) else float(v)

    return f
