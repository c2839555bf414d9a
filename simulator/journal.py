"""The request journal: a bounded ring buffer of what the fake partner saw.

Entries are opened when a request arrives (so a hung request is visible at
once) and completed when its answer is sent or its connection cut. Secrets
are redacted on the way in; nothing unredacted is ever stored.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from partnerkit.simulator.redaction import redact_headers, redact_query


def first_values(query_string: str) -> dict[str, str]:
    """The query as a {name: value} dict (the first value of a repeated name)."""
    query: dict[str, str] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        query.setdefault(name, value)
    return query


def iso_utc(at: float) -> str:
    """Unix seconds as ISO-8601 UTC with microseconds: 2026-12-01T22:46:11.123456Z."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _with_iso_time(entry: dict[str, Any]) -> dict[str, Any]:
    """A copy of `entry` with `at_iso` beside `at` (made when read, not on the hot path)."""
    snapshot: dict[str, Any] = {}
    for name, value in entry.items():
        snapshot[name] = value
        if name == "at":
            snapshot["at_iso"] = iso_utc(value)
    return snapshot


class Journal:
    """A thread-safe ring buffer of journal entries (plain dicts)."""

    def __init__(self, size: int = 10_000) -> None:
        if size < 1:
            raise ValueError("journal size must be at least 1")
        self.size = size
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def open(self, at: float, method: str, path: str, query: dict[str, str],
             headers: dict[str, str]) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "seq": 0,
            "at": at,
            "method": method,
            "path": path,
            "query": redact_query(query) if query else {},
            "headers": redact_headers(headers),
            "status": None,
            "rule": None,
            "fault": None,
            "duration_ms": None,
        }
        with self._lock:
            entry["seq"] = next(self._seq)
            self._entries.append(entry)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        """A snapshot, oldest first, each entry with its arrival as ISO-8601 UTC too."""
        with self._lock:
            entries = list(self._entries)
        return [_with_iso_time(entry) for entry in entries]

    def tail(self, after: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """For a live view: the oldest seq still held (0 when empty) and copies of
        the newest `limit` entries whose seq is above `after`, oldest first.

        Costs what it returns, not the journal's size: seqs in the buffer are
        consecutive, so the new entries are the last ones. Nothing on the
        request path calls it: with no one watching, the journal does no more."""
        with self._lock:
            entries = self._entries
            if not entries:
                return 0, []
            first, last = entries[0]["seq"], entries[-1]["seq"]
            count = max(0, min(last - max(after, first - 1), limit))
            return first, [dict(entries[i]) for i in range(len(entries) - count, len(entries))]

    def find(self, seqs: list[int]) -> list[dict[str, Any]]:
        """Copies of the entries with these seqs that the buffer still holds."""
        with self._lock:
            entries = self._entries
            if not entries:
                return []
            first = entries[0]["seq"]
            return [dict(entries[seq - first]) for seq in seqs
                    if 0 <= seq - first < len(entries)]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
