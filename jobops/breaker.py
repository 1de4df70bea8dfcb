"""A small per-process circuit breaker: after a shared service failed, stop trying it for a while (issue 19).

Used where a service has a fallback: the read replica (``jobops.replica``: reports read the primary) and the login
throttles' Redis (``jobops.throttles``: counters in this process). Without it every request would pay the failed
connect (up to a connect timeout) while the service is down.

Closed (the normal state), every caller uses the service. ``trip(retry_seconds)`` opens it: ``allow()`` answers
``False`` until the pause is over. Then exactly one caller is let through to probe (the others keep using the
fallback meanwhile, so a recovering service is not hit by every thread at once); its ``succeeded()`` closes the
breaker, its failure trips it again. A probe that ends in neither (another error) holds the breaker for one more
pause, then the next caller probes. Thread-safe; the clock is injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._open = False
        self._until = 0.0
        self._retry_seconds = 0.0

    def allow(self) -> bool:
        """Whether to use the service now (``True`` once the pause is over makes the caller the one probe)."""
        if not self._open:  # the common case, without the lock (a bool read is atomic)
            return True
        with self._lock:
            if not self._open:
                return True
            now = self._clock()
            if now < self._until:
                return False
            self._until = now + self._retry_seconds  # the others wait for this probe
            return True

    def available(self) -> bool:
        """Whether ``allow()`` would let a caller through now, without claiming the probe."""
        with self._lock:
            return not self._open or self._clock() >= self._until

    def trip(self, retry_seconds: float) -> None:
        """The service failed: do not try it for ``retry_seconds``."""
        with self._lock:
            self._open = True
            self._retry_seconds = retry_seconds
            self._until = self._clock() + retry_seconds

    def succeeded(self) -> None:
        """The service answered: close the breaker (cheap when it is closed already)."""
        if self._open:
            self.reset()

    def reset(self) -> None:
        with self._lock:
            self._open = False
            self._until = 0.0
