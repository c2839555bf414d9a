"""A single background thread that fires callbacks at deadlines.

The sync client needs it because httpx's read timeout is per chunk: a body
dribbled slowly never trips it. At an attempt's deadline the watchdog shuts
the socket down, which wakes the blocked read at once.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Alarm:
    """Once `cancel()` has returned, the callback will not run."""

    __slots__ = ("_callback", "_lock", "cancelled", "deadline", "fired")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self._callback = callback
        self._lock = threading.Lock()
        self.cancelled = False
        self.fired = False

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True

    def fire(self) -> None:
        with self._lock:
            if self.cancelled:
                return
            self.fired = True
            # A failed cut leaves the per-chunk deadline check to catch the overrun.
            with contextlib.suppress(Exception):
                self._callback()


class Watchdog:
    """Arms alarms on `time.monotonic()` deadlines; one daemon thread for all."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Alarm]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, callback: Callable[[], None]) -> Alarm:
        alarm = Alarm(deadline, callback)
        with self._wake:
            heapq.heappush(self._heap, (deadline, next(self._order), alarm))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="partnerkit-watchdog",
                                                daemon=True)
                self._thread.start()
            self._wake.notify()
        return alarm

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                alarm = heapq.heappop(self._heap)[2]
            alarm.fire()


WATCHDOG = Watchdog()
