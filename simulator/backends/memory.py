"""The memory backend: everything in this process, guarded by locks (the default)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from partnerkit.simulator.backends import TokenCheck, TokenRefused, apply_drift
from partnerkit.simulator.clock import SYSTEM_CLOCK, Clock
from partnerkit.simulator.cursor import decode_cursor
from partnerkit.simulator.dataset import OrderStore
from partnerkit.simulator.engine import Decision, FaultEngine, RequestInfo
from partnerkit.simulator.journal import MAX_JOURNAL_BYTES, Journal
from partnerkit.simulator.scenario import CursorDrift, Scenario
from partnerkit.simulator.tokens import TokenStore


@dataclass
class Acknowledgement:
    """The first answer to an order's acknowledgement, replayed for its key."""

    body: bytes
    keys: set[str] = field(default_factory=set)


class MemoryBackend:
    """One process's state: its FaultEngine, TokenStore, Journal and acknowledgements."""

    name = "memory"

    def __init__(self, *, journal_size: int = 10_000, journal_bytes: int = MAX_JOURNAL_BYTES,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.journal = Journal(journal_size, journal_bytes)
        self.tokens = TokenStore(clock.monotonic)
        self.engine: FaultEngine | None = None
        self.store: OrderStore | None = None
        self.acks: dict[str, Acknowledgement] = {}

    def install(self, scenario: Scenario, engine: FaultEngine, store: OrderStore) -> None:
        self.engine = engine
        self.store = store
        self.acks = {}

    def publish(self, scenario: Scenario, *, clear_journal: bool) -> None:
        if clear_journal:
            self.journal.clear()

    def refresh(self) -> None:
        """One process: nobody else changes the scenario."""

    def admit(self, request: RequestInfo, token: str | None,
              check: TokenCheck) -> Decision | None:
        if check == "valid":
            if token is None or not self.tokens.is_valid(token):
                raise TokenRefused("unknown or expired token")
        elif check == "revoked" and token is not None and self.tokens.is_revoked(token):
            raise TokenRefused("token expired")
        assert self.engine is not None
        return self.engine.decide(request)

    async def admit_async(self, request: RequestInfo, token: str | None,
                          check: TokenCheck) -> Decision | None:
        return self.admit(request, token, check)

    def drift(self, action: CursorDrift, rng: random.Random,
              cursor: str) -> dict[str, list[str]]:
        assert self.store is not None
        return apply_drift(self.store, action, rng, decode_cursor(cursor))

    def next_use(self, key: str) -> int:
        raise NotImplementedError("one process: the recording index counts its own uses")

    def issue_token(self, seed: int, ttl_s: int) -> str:
        return self.tokens.issue(seed, ttl_s)

    def revoke_token(self, token: str) -> None:
        self.tokens.revoke(token)

    def issued_tokens(self) -> set[str]:
        return self.tokens.issued()

    def acknowledge(self, order_id: str, key: str | None, body: bytes) -> tuple[int, bytes]:
        previous = self.acks.get(order_id)
        if previous is not None:
            if key is not None and key in previous.keys:
                return 200, previous.body
            return 409, b""
        self.acks[order_id] = Acknowledgement(body, {key} if key else set())
        return 201, body

    def spent(self) -> list[int]:
        assert self.engine is not None
        return self.engine.spent()

    def stats(self) -> dict[str, Any]:
        assert self.engine is not None
        return {**self.journal.stats(), **self.engine.stats(),
                "tokens_live": len(self.tokens), "tokens_forgotten": self.tokens.forgotten}

    def healthy(self) -> bool:
        return True

    async def aclose(self) -> None:
        """Nothing is held open."""
