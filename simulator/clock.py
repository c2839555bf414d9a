"""The fake partner's one clock: every wait, TTL, bucket, window and timestamp
reads it, so a run can be moved onto virtual time as a whole.

`SystemClock` is real time. `LoopClock` is the time of an asyncio event loop
— on a virtual-time loop (contracts.virtual) seconds pass in microseconds,
and a 60 s Retry-After or a 3,600 s token TTL costs nothing to wait out.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

#: Where a virtual run's wall clock starts: 2026-11-20T00:00:00Z.
VIRTUAL_EPOCH = 1_795_132_800.0


class Clock(Protocol):
    """Monotonic seconds for durations and deadlines, Unix seconds for timestamps."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    """Real time: `time.perf_counter` and `time.time`."""

    def monotonic(self) -> float:
        return time.perf_counter()

    def time(self) -> float:
        return time.time()


class LoopClock:
    """The time of one event loop, with the wall clock `epoch` seconds ahead of it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, epoch: float = VIRTUAL_EPOCH) -> None:
        self.loop = loop
        self.epoch = epoch

    def monotonic(self) -> float:
        return self.loop.time()

    def time(self) -> float:
        return self.epoch + self.loop.time()


SYSTEM_CLOCK = SystemClock()
