"""Everything a running fake partner remembers, swapped atomically on change.

The server runs on its own thread and event loop while tests call
`set_scenario()` and `journal()` from theirs, so every change of scenario,
data set or budgets happens under one lock and replaces whole objects.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from partnerkit.simulator.backends import (
    JournalStore,
    ScenarioChanged,
    StateBackend,
    TokenCheck,
)
from partnerkit.simulator.backends.memory import Acknowledgement, MemoryBackend
from partnerkit.simulator.clock import SYSTEM_CLOCK, Clock
from partnerkit.simulator.dataset import OrderStore, build_store
from partnerkit.simulator.engine import Decision, FaultEngine, RequestInfo
from partnerkit.simulator.journal import MAX_JOURNAL_BYTES
from partnerkit.simulator.scenario import (
    Scenario,
    ScenarioError,
    empty_scenario,
    parse_scenario,
)
from partnerkit.simulator.scenario_source import Problem
from partnerkit.simulator.tokens import TokenStore

__all__ = ["Acknowledgement", "FaultWaits", "NominalRateLimit", "OverlayState", "PartnerState"]

NOMINAL_LIMIT = 600  # requests per minute advertised when no rate_limit rule applies
DEFAULT_CLIENT_ID = "orderops"
DEFAULT_CLIENT_SECRET = "orderops-secret"  # noqa: S105 - the fake partner's published default


class NominalRateLimit:
    """The advertised 600-per-minute allowance: counted, never enforced."""

    def __init__(self) -> None:
        self._window = 0
        self._count = 0

    def remaining(self, now: float) -> int:
        window = int(now // 60)
        if window != self._window:
            self._window, self._count = window, 0
        self._count += 1
        return max(0, NOMINAL_LIMIT - self._count)


class FaultWaits:
    """Every wait a fault makes (latency, dribble, hang), cut short at shutdown,
    so stopping the fake partner never waits for a scripted delay."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._waiters: set[asyncio.Future[None]] = set()
        self.closing = False

    async def sleep(self, seconds: float, also: asyncio.Future[Any] | None = None) -> None:
        """Sleep `seconds` (forever if inf), until shutdown, or until `also` is done."""
        if self.closing:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        waits: set[asyncio.Future[Any]] = {waiter} if also is None else {waiter, also}
        # An event loop may wake a timer up to its clock resolution early; a
        # scripted delay must never end before it is due, so wait out the rest.
        due = self._clock.monotonic() + seconds
        try:
            while True:
                left = None if seconds == float("inf") else due - self._clock.monotonic()
                if left is not None and left <= 0:
                    return
                done, _ = await asyncio.wait(waits, timeout=left,
                                             return_when=asyncio.FIRST_COMPLETED)
                if done:
                    return
        finally:
            self._waiters.discard(waiter)

    def release_all(self) -> None:
        """Call on the server's loop."""
        self.closing = True
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(None)


class PartnerState:
    def __init__(self, scenario: Scenario | None = None, *, journal_size: int = 10_000,
                 journal_bytes: int = MAX_JOURNAL_BYTES,
                 client_id: str = DEFAULT_CLIENT_ID,
                 client_secret: str = DEFAULT_CLIENT_SECRET,
                 clock: Clock = SYSTEM_CLOCK, backend: StateBackend | None = None) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.clock = clock  # the one clock of this fake partner (simulator.clock)
        # Where budgets, tokens, acknowledgements and the journal live: this process
        # (memory, the default) or a Redis shared by several workers (backends.redis).
        self.backend: StateBackend = backend or MemoryBackend(
            journal_size=journal_size, journal_bytes=journal_bytes, clock=clock)
        self.journal: JournalStore = self.backend.journal
        self.nominal = NominalRateLimit()
        self.waits = FaultWaits(clock)
        self.started = clock.time()
        self._lock = threading.RLock()
        self._install(scenario or empty_scenario())

    @property
    def tokens(self) -> TokenStore:
        """The memory backend's tokens (a shared backend keeps them elsewhere)."""
        if not isinstance(self.backend, MemoryBackend):
            raise AttributeError(f"tokens live in the {self.backend.name} state")
        return self.backend.tokens

    @property
    def acks(self) -> dict[str, Acknowledgement]:
        if not isinstance(self.backend, MemoryBackend):
            raise AttributeError(f"acknowledgements live in the {self.backend.name} state")
        return self.backend.acks

    def _install(self, scenario: Scenario) -> None:
        engine = FaultEngine(scenario, self.clock.monotonic)
        store = build_store(scenario.seed, scenario.dataset)
        with self._lock:
            self.scenario = scenario
            self.engine = engine
            self.store: OrderStore = store
            self.backend.install(scenario, engine, store)

    def set_scenario(self, scenario: Scenario) -> None:
        """Replace the scenario; budgets and the data set start afresh, the journal stays."""
        self._install(scenario)
        self.backend.publish(scenario, clear_journal=False)

    def reset(self) -> None:
        """Budgets, journal and data set back to the start of the scenario."""
        self._install(self.scenario)
        self.backend.publish(self.scenario, clear_journal=True)

    def refresh(self) -> None:
        """Adopt the scenario another worker installed since (shared state only)."""
        try:
            self.backend.refresh()
        except ScenarioChanged as changed:
            self._adopt(changed)

    def _adopt(self, changed: ScenarioChanged) -> None:
        self._install(parse_scenario(changed.source, source="shared state"))

    def admit(self, request: RequestInfo, token: str | None,
              check: TokenCheck) -> Decision | None:
        """Check the bearer token (TokenRefused), then ask the rules (spending budgets);
        StateUnavailable when the shared state does not answer."""
        for _ in range(8):
            try:
                return self.backend.admit(request, token, check)
            except ScenarioChanged as changed:
                self._adopt(changed)
        return self.backend.admit(request, token, check)

    async def admit_async(self, request: RequestInfo, token: str | None,
                          check: TokenCheck) -> Decision | None:
        """admit() on the server's event loop: a shared backend's round trip does not
        block it, so the loop serves other requests meanwhile."""
        for _ in range(8):
            try:
                return await self.backend.admit_async(request, token, check)
            except ScenarioChanged as changed:
                self._adopt(changed)
        return await self.backend.admit_async(request, token, check)

    async def aclose(self) -> None:
        """At the server's shutdown, on its loop: what the backend holds open there."""
        await self.backend.aclose()

    def spent(self) -> list[int]:
        self.refresh()
        return self.backend.spent()

    def describe(self) -> dict[str, Any]:
        self.refresh()
        return {
            "status": "ok",
            "state": self.backend.name,
            "scenario": self.scenario.name,
            "seed": self.scenario.seed,
            "orders": len(self.store),
            "orders_not_inserted": self.store.not_inserted,
            "rules": len(self.scenario.rules),
            **self.backend.stats(),
            "uptime_s": round(self.clock.time() - self.started, 3),
        }


def dataset_faults(scenario: Scenario, why: str) -> list[Problem]:
    """Faults that change the simulated data set, which an overlay does not have."""
    problems = []
    for rule in scenario.rules:
        for fault in rule.faults:
            if fault.changes_dataset:
                problems.append(Problem(
                    f"rules[{rule.index}].fault.cursor_drift",
                    f"insert/update/delete change the simulated data set; {why} "
                    "(use repeat or expire, or serve the scenario instead)"))
    return problems


class OverlayState(PartnerState):
    """The state of a fault overlay on answers that come from elsewhere (a cassette,
    a real upstream): the scenario's faults and the journal, but no data set to
    drift, so cursor_drift insert/update/delete are refused with where they are."""

    #: Where the answers come from, for the refusal ("replay serves recorded pages").
    answers_from = "the answers are not simulated"
    #: The name of the overlay in a refusal ("replay fault overlay").
    overlay = "fault overlay"

    def _install(self, scenario: Scenario) -> None:
        if problems := dataset_faults(scenario, self.answers_from):
            raise ScenarioError(problems, self.overlay)
        super()._install(scenario)

    def describe(self) -> dict[str, Any]:
        facts = super().describe()
        facts.pop("orders", None)
        facts.pop("orders_not_inserted", None)
        return facts
