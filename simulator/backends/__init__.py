"""Where a fake partner keeps what it remembers: one protocol, two backends.

`memory` (the default) keeps everything in this process, as partnersim always
has. `redis` keeps what must be shared by several worker processes — tokens,
rule budgets and the occurrence counts of seeded decisions, rate-limit
buckets, acknowledgements, the scenario's version, the journal — in one
Redis, so N workers answer exactly as one process would. What is read-only
(compiled rules, the generated data set, body templates) stays per process.
"""

from __future__ import annotations

import random
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from partnerkit.simulator.cursor import CursorPosition
from partnerkit.simulator.dataset import OrderStore
from partnerkit.simulator.engine import Decision, FaultEngine, RequestInfo
from partnerkit.simulator.journal_entry import JournalEntry, JournalEntryJSON
from partnerkit.simulator.scenario import CursorDrift, Scenario

#: What to check of a request's bearer token before any rule: that it is live
#: (the simulated partner), only that it was not revoked (a proxy), or nothing.
TokenCheck = Literal["valid", "revoked", "none"]


def apply_drift(store: OrderStore, action: CursorDrift, rng: random.Random,
                position: CursorPosition) -> dict[str, list[str]]:
    """The data-set changes of a cursor_drift fault, drawn from `rng`."""
    drifted: dict[str, list[str]] = {}
    if action.insert:
        drifted["inserted"] = store.insert_behind(rng, position, action.insert)
    if action.update:
        drifted["updated"] = store.update_served(rng, position, action.update)
    if action.delete:
        drifted["deleted"] = store.delete_unserved(rng, position, action.delete)
    return drifted


class StateUnavailable(RuntimeError):
    """The shared state did not answer (Redis down or unreachable): the request
    cannot be answered exactly, and must not be answered as if no rule applied."""


class TokenRefused(Exception):
    """The request's bearer token is unknown, expired or revoked; `args[0]` says which."""


class ScenarioChanged(Exception):
    """Another worker installed a scenario (or reset): adopt `source` at `version`."""

    def __init__(self, source: dict[str, Any], version: int) -> None:
        super().__init__(version)
        self.source = source
        self.version = version


class JournalStore(Protocol):
    """The request journal (simulator.journal.Journal is the memory one)."""

    def open(self, at: float, method: str, path: str, query: dict[str, str],
             headers: dict[str, str]) -> JournalEntry: ...

    def close(self, entry: JournalEntry) -> None: ...

    def entries(self) -> list[JournalEntryJSON]: ...

    def tail(self, after: int, limit: int) -> tuple[int, list[JournalEntryJSON]]: ...

    def find(self, seqs: list[int]) -> list[JournalEntryJSON]: ...

    def clear(self) -> None: ...

    def stats(self) -> dict[str, int]: ...

    def __len__(self) -> int: ...


class StateBackend(Protocol):
    """What a PartnerState asks of the place its changing state lives."""

    @property
    def name(self) -> str: ...

    @property
    def journal(self) -> JournalStore: ...

    def install(self, scenario: Scenario, engine: FaultEngine, store: OrderStore) -> None:
        """This process now runs `scenario` with `engine` and `store` (built here)."""

    def publish(self, scenario: Scenario, *, clear_journal: bool) -> None:
        """Make `scenario` every worker's, with budgets, buckets and acknowledgements
        afresh (and the journal cleared if asked), before returning."""

    def refresh(self) -> None:
        """Raise ScenarioChanged if another worker installed a newer scenario."""

    def admit(self, request: RequestInfo, token: str | None,
              check: TokenCheck) -> Decision | None:
        """Check the token (TokenRefused), then spend the budgets of the rule that acts."""

    async def admit_async(self, request: RequestInfo, token: str | None,
                          check: TokenCheck) -> Decision | None:
        """admit() on the server's event loop, which it need not block."""

    def drift(self, action: CursorDrift, rng: random.Random,
              cursor: str) -> dict[str, list[str]]:
        """Change the data set as `action` says, behind `cursor`, for every worker;
        what changed (inserted/updated/deleted order ids)."""

    def next_use(self, key: str) -> int:
        """How many times replay's recording `key` was used before (then one more)."""

    def issue_token(self, seed: int, ttl_s: int) -> str: ...

    def revoke_token(self, token: str) -> None: ...

    def issued_tokens(self) -> set[str]:
        """Every token handed out that is still remembered, revoked ones too (what a
        test greps logs and journals for)."""

    def acknowledge(self, order_id: str, key: str | None, body: bytes) -> tuple[int, bytes]:
        """The first acknowledgement wins (201 with `body`); its key replays it (200);
        anything else is 409 (status, b"")."""

    def spent(self) -> list[int]:
        """How many requests each rule has acted on."""

    def stats(self) -> dict[str, Any]: ...

    def healthy(self) -> bool: ...

    async def aclose(self) -> None:
        """Close what this process holds open on the server's event loop (at shutdown)."""


def default_prefix(scenario_name: str) -> str:
    """The key prefix of a fake partner named `scenario_name` in a shared Redis."""
    return f"partnersim:{scenario_name}:"


def open_state(spec: str, prefix: str, *, journal_size: int,
               journal_bytes: int) -> StateBackend | None:
    """The backend `spec` names: None for "memory" (the PartnerState makes its own),
    or a Redis at redis://HOST:PORT/DB or unix:///PATH (StateUnavailable when it
    does not answer; ImportError without the partnerkit[redis] extra)."""
    if spec == "memory":
        return None
    if not spec.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"the state must be memory, redis://HOST:PORT/DB or unix:///PATH, "
                         f"not {spec!r}")
    database = urlsplit(spec).path.strip("/") if spec.startswith("redis") else ""
    if database and not (database.isascii() and database.isdigit()):
        raise ValueError(f"{spec!r}: the database after the port is a number (/0 to /15 "
                         f"on a default Redis), not {database!r}")
    from partnerkit.simulator.backends.redis import RedisBackend, connect

    return RedisBackend(connect(spec), prefix, journal_size=journal_size,
                        journal_bytes=journal_bytes)
