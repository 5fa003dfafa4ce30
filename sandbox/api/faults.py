"""Injected faults: seeded 429/500/503 answers, slow answers and dropped connections."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from switchboard.sandbox.api.errors import ApiError


@dataclass(frozen=True)
class FaultConfig:
    """Probabilities (0..1) per request of an injected fault; seeded, so a run is repeatable."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 2.0
    drop_rate: float = 0.0  # close the connection without a response
    retry_after: int = 1  # seconds, sent with 429 and 503
    seed: int = 0


class FaultInjector:
    """Rolls the seeded dice once per request."""

    def __init__(self, config: FaultConfig):
        self.config = config
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self._released = threading.Event()  # set when the server stops: slow answers go out at once

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def roll(self) -> str | None:
        """'drop', or raise the injected error, or None. The dice are rolled under a lock
        (repeatable order); a slow response sleeps outside it."""
        f = self.config
        if not (f.drop_rate or f.slow_rate or f.rate_429 or f.rate_500 or f.rate_503):
            return None
        with self._lock:
            r = self._rng.random
            drop = bool(f.drop_rate) and r() < f.drop_rate
            slow = bool(f.slow_rate) and r() < f.slow_rate
            error = self._error(r)
        if drop:
            return "drop"
        if slow:
            self._released.wait(f.slow_seconds)
        if error is not None:
            raise error
        return None

    def _error(self, r) -> ApiError | None:
        # The order of the rolls is part of the seeded sequence: keep it.
        f = self.config
        if f.rate_429 and r() < f.rate_429:
            return ApiError(429, 20429, "Too Many Requests", {"Retry-After": str(f.retry_after)})
        if f.rate_500 and r() < f.rate_500:
            return ApiError(500, 20500, "Internal Server Error")
        if f.rate_503 and r() < f.rate_503:
            return ApiError(503, 20503, "Service Unavailable", {"Retry-After": str(f.retry_after)})
        return None
