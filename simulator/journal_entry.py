"""One journal entry: what the fake partner saw of a request, and what it answered.

`JournalEntry` is the entry while the fake partner holds it: opened when the
request arrives (`simulator.journal.build_entry` is the one place that makes
one: redacted and bounded), filled in by whoever acts on the request (the
fault middleware, the replay and proxy apps), and sent out in exactly one
shape by `to_json`. `JournalEntryJSON` is that shape, for readers of
`GET /__sim/journal` (the journal verdicts, the contract report), which may
be reading another process's journal, or another tool's.

Unlike h11's events, an entry is not frozen: in the memory journal a hung
request is there at once, and its status and duration arrive later (the Redis
journal takes an entry when it completes). Don't subclass it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict


def iso_utc(at: float) -> str:
    """Unix seconds as ISO-8601 UTC with microseconds: 2026-12-01T22:46:11.123456Z."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


class JournalEntryJSON(TypedDict):
    """A journal entry as `GET /__sim/journal` sends it, keys in this order; the
    `NotRequired` keys are there only when they say something."""

    seq: int
    at: float
    at_iso: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int | None
    rule: str | int | None
    fault: dict[str, Any] | None
    duration_ms: float | None
    replayed: NotRequired[int | None]
    recorded_latency_ms: NotRequired[float]
    miss: NotRequired[bool]
    retry_after: NotRequired[str]
    upstream: NotRequired[str]


@dataclass(slots=True, eq=False)
class JournalEntry:
    """One request and its answer. Identity, not equality: two requests alike are
    still two entries."""

    #: Arrival, Unix seconds (the fake partner's clock).
    at: float
    #: The request method, cut at 64 characters.
    method: str
    #: The request path, cut at MAX_VALUE_CHARS (simulator.journal).
    path: str
    #: The first value of each query parameter, secrets redacted, bounded.
    query: dict[str, str]
    #: {lowercase name: value} in arrival order, `authorization` and `cookie` redacted, bounded.
    headers: dict[str, str]
    #: The journal's number for it, rising by one per entry (0 until the journal numbers it).
    seq: int = 0
    #: The status sent; None while in flight and when the connection was cut.
    status: int | None = None
    #: The acting rule's name (or index), None when no rule acted.
    rule: str | int | None = None
    #: The acting fault as declared, plus what happened (`timing`, `skipped`, `retry_after`,
    #: `drifted`); None when no fault acted.
    fault: dict[str, Any] | None = None
    #: From arrival to the last byte (or the cut); None while in flight.
    duration_ms: float | None = None
    #: Replay: the number of the recording that answered.
    replayed: int | None = None
    #: Replay with `recorded_latency`: the delay the recording asked for.
    recorded_latency_ms: float | None = None
    #: Replay: no recording matched (`replayed` is then null on the wire).
    miss: bool = False
    #: The Retry-After header of a 429 or 5xx answer, whoever made it.
    retry_after: str | None = None
    #: Proxy: what went wrong with the upstream.
    upstream: str | None = None

    def add_fault_fact(self, name: str, value: Any) -> None:
        """Say what happened to the acting fault (a copy: the declared fault is shared)."""
        self.fault = {**(self.fault or {}), name: value}

    def to_json(self) -> JournalEntryJSON:
        """The entry as `GET /__sim/journal` sends it: the one place its shape is made."""
        wire: JournalEntryJSON = {
            "seq": self.seq, "at": self.at, "at_iso": iso_utc(self.at),
            "method": self.method, "path": self.path, "query": self.query,
            "headers": self.headers, "status": self.status, "rule": self.rule,
            "fault": self.fault, "duration_ms": self.duration_ms,
        }
        if self.replayed is not None or self.miss:
            wire["replayed"] = self.replayed
        if self.recorded_latency_ms is not None:
            wire["recorded_latency_ms"] = self.recorded_latency_ms
        if self.miss:
            wire["miss"] = True
        if self.retry_after is not None:
            wire["retry_after"] = self.retry_after
        if self.upstream is not None:
            wire["upstream"] = self.upstream
        return wire
