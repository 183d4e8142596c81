"""Circuit breaker for a runner's Docker engine: after `threshold` consecutive failures the circuit opens
for `open_s` seconds (the runner takes no new work), then half-opens (it takes work again; the next failure
reopens it, the next success closes it)."""

import threading
import time
from collections.abc import Callable
from typing import Literal

CircuitState = Literal["closed", "open", "half-open"]


class Breaker:
    def __init__(self, threshold: int, open_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = threshold
        self._open_s = open_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> CircuitState:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "open" if self._clock() - self._opened_at < self._open_s else "half-open"

    def allows_work(self) -> bool:
        return self.state != "open"

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            half_open = self._opened_at is not None and self._clock() - self._opened_at >= self._open_s
            if half_open or self._failures >= self._threshold:
                self._opened_at = self._clock()

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
