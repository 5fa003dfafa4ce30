"""A daemon thread that calls one function every 50 ms until stopped: the live traffic's clock ticks and
the Event Streams sink's posts both run on one, and tests call the function directly instead."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Pacer:
    def __init__(self, step: Callable[[], Any], name: str, interval: float = 0.05) -> None:
        self.step = step
        self.name = name
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.step()
