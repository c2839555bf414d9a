"""Run one client operation against a fake partner and capture an Observation.

The journal slice is taken by sequence number, so observations of
consecutive operations on one partner do not overlap.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from partnerkit.client import RetryPolicy
from partnerkit.contracts.verdicts import ClientSettings, Observation
from partnerkit.simulator.journal_entry import JournalEntryJSON


class JournaledPartner(Protocol):
    """What a harness needs of a fake partner (FakePartner or a remote one)."""

    url: str

    def journal(self) -> list[JournalEntryJSON]: ...


def client_settings(*, timeout: float, deadline: float, retry: RetryPolicy | None = None,
                    max_pages: int = 10_000) -> ClientSettings:
    policy = retry or RetryPolicy()
    return ClientSettings(timeout, deadline, policy.max_attempts, policy.backoff_base,
                          policy.backoff_max, policy.retry_after_max, max_pages)


def _last_seq(partner: JournaledPartner) -> int:
    entries = partner.journal()
    return int(entries[-1]["seq"]) if entries else 0


def _slice(partner: JournaledPartner, after: int) -> list[JournalEntryJSON]:
    return [entry for entry in partner.journal() if entry["seq"] > after]


def observe(partner: JournaledPartner, operation: str, run: Callable[[], Any],
            settings: ClientSettings, **details: Any) -> Observation:
    """Run `run()` (one operation of a sync client) and capture what happened."""
    before = _last_seq(partner)
    started = time.monotonic()
    try:
        outcome: Any = run()
    except Exception as error:
        outcome = error
    elapsed = time.monotonic() - started
    return Observation(operation, outcome, elapsed, _slice(partner, before), settings,
                       **details)


async def observe_async(partner: JournaledPartner, operation: str,
                        run: Callable[[], Awaitable[Any]], settings: ClientSettings, *,
                        clock: Callable[[], float] = time.monotonic,
                        **details: Any) -> Observation:
    """`observe` for a coroutine (one operation of the async client); `clock`
    times it (the loop's, for a run on virtual time)."""
    before = _last_seq(partner)
    started = clock()
    try:
        outcome: Any = await run()
    except Exception as error:
        outcome = error
    elapsed = clock() - started
    return Observation(operation, outcome, elapsed, _slice(partner, before), settings,
                       **details)
