"""Contract runs on virtual time: production settings in milliseconds.

A 60 s Retry-After, a 30 s deadline or a 3,600 s token TTL would make a
property test take real minutes. Here the fake partner (its ASGI app, in
this process) and the async client share one event loop whose clock jumps
to the next timer whenever nothing else can run: every wait happens, in
order, to the microsecond, and none of it costs real time.

    with VirtualPartner(plan) as partner:
        observation = partner.observe("get_order",
                                      lambda client: client.get_order("ORD-000003"),
                                      timeout=5.0, deadline=30.0)
        judge(observation)

Connection faults are acted out by `simulator.inprocess.InProcessTransport`
(a reset is httpx's ReadError, a cut body its RemoteProtocolError, a hang
waits for the client's timeout). Timing over a real socket stays proven on
real time; the sync client cannot run here, as its timeouts are the
socket's and a watchdog thread's, which no event loop's clock can move.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from partnerkit.client import AsyncPartnerClient, RetryPolicy
from partnerkit.contracts.harness import client_settings, observe_async
from partnerkit.contracts.verdicts import Observation
from partnerkit.simulator.app import create_app
from partnerkit.simulator.clock import VIRTUAL_EPOCH, LoopClock
from partnerkit.simulator.inprocess import InProcessTransport
from partnerkit.simulator.journal_entry import JournalEntryJSON
from partnerkit.simulator.scenario import Scenario
from partnerkit.simulator.server import coerce_scenario
from partnerkit.simulator.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, PartnerState

T = TypeVar("T")
#: Real seconds the loop waits for outside I/O (another thread) before it calls a deadlock.
STALL_S = 10.0


class VirtualTimeDeadlock(RuntimeError):
    """Nothing can run and no timer is due: the run would wait forever."""


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer when nothing is ready.

    Hand-written rather than looptime's (0.9): its pytest plugin, loaded by
    the mere install, breaks every fixture of a suite without pytest-asyncio.
    """

    _selector: selectors.BaseSelector  # BaseEventLoop's, undeclared in typeshed

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        self._real_select = self._selector.select
        self._selector.select = self._select  # type: ignore[method-assign]

    def time(self) -> float:
        return self._now

    def _select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real_select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer at all: only another thread could wake us
            ready = self._real_select(STALL_S)
            if not ready:
                raise VirtualTimeDeadlock("virtual time: nothing to run and no timer due")
            return ready
        self._now += timeout
        return []


class VirtualPartner:
    """The fake partner and the async client on one virtual-time loop."""

    url = "http://partner.virtual"

    def __init__(self, scenario: Scenario | Mapping[str, Any] | str | Path | None = None, *,
                 seed: int | None = None, epoch: float = VIRTUAL_EPOCH,
                 credentials: tuple[str, str] = (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
                 ) -> None:
        self._runner = asyncio.Runner(loop_factory=VirtualTimeLoop)
        self.clock = LoopClock(self._runner.get_loop(), epoch)
        self.credentials = credentials
        self.state = PartnerState(coerce_scenario(scenario, seed), clock=self.clock,
                                  client_id=credentials[0], client_secret=credentials[1])
        self.app = create_app(state=self.state)

    def __enter__(self) -> VirtualPartner:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._runner.close()

    # --- the fake partner's side, as FakePartner has it ---------------------------------

    def set_scenario(self, scenario: Scenario | Mapping[str, Any] | str | Path) -> None:
        coerced = coerce_scenario(scenario)
        assert coerced is not None
        self.state.set_scenario(coerced)

    def reset(self) -> None:
        self.state.reset()

    def journal(self) -> list[JournalEntryJSON]:
        return self.state.journal.entries()

    # --- the client's side --------------------------------------------------------------

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the virtual-time loop (real time: only the CPU it takes)."""
        return self._runner.run(coroutine)

    def http(self, *, authorized: bool = True) -> httpx.AsyncClient:
        """A plain httpx client talking to the app in process (with a valid bearer
        token unless `authorized=False`), for traffic of your own on virtual time."""
        headers = {}
        if authorized:
            headers["authorization"] = f"Bearer {self.state.tokens.issue(0, 86_400 * 365)}"
        return httpx.AsyncClient(transport=InProcessTransport(self.app), base_url=self.url,
                                 headers=headers)

    def client(self, *, timeout: float = 5.0, deadline: float = 30.0,
               retry: RetryPolicy | None = None, **options: Any) -> AsyncPartnerClient:
        """An AsyncPartnerClient on this loop's clock, talking to the app in process."""
        http = httpx.AsyncClient(transport=InProcessTransport(self.app), base_url=self.url)
        options = {"clock": self.clock.monotonic, "wall_clock": self.clock.time,
                   "sleep": asyncio.sleep, **options}
        return AsyncPartnerClient(http, client_id=self.credentials[0],
                                  client_secret=self.credentials[1], timeout=timeout,
                                  deadline=deadline, retry=retry, owns_http=True, **options)

    def observe(self, operation: str, run: Callable[[AsyncPartnerClient], Awaitable[Any]], *,
                timeout: float = 5.0, deadline: float = 30.0, retry: RetryPolicy | None = None,
                max_pages: int = 10_000, idempotency_key: str | None = None,
                **client_options: Any) -> Observation:
        """Run one operation of a fresh client and capture it, timed on the virtual clock."""
        settings = client_settings(timeout=timeout, deadline=deadline, retry=retry,
                                   max_pages=max_pages)
        initial = frozenset(self.state.store.ids())
        details = {"initial_order_ids": initial,
                   "partner_orders": {i: self.state.store.order(i) for i in initial},
                   "idempotency_key": idempotency_key, "secrets": (self.credentials[1],)}

        async def main() -> Observation:
            async with self.client(timeout=timeout, deadline=deadline, retry=retry,
                                   max_pages=max_pages, **client_options) as client:
                async def operation_of_client() -> Any:
                    result = run(client)
                    if hasattr(result, "__aiter__"):
                        return [item async for item in result]
                    return await result

                return await observe_async(self, operation, operation_of_client, settings,
                                           clock=self.clock.monotonic, **details)

        return self.run(main())


__all__ = ["VirtualPartner", "VirtualTimeDeadlock", "VirtualTimeLoop"]
