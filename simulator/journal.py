"""The request journal: a bounded ring buffer of what the fake partner saw.

Entries are opened when a request arrives (so a hung request is visible at
once) and completed when its answer is sent or its connection cut. Secrets
are redacted on the way in; nothing unredacted is ever stored.

Bounded in bytes as well as in entries: a count alone let 10,000 requests
with 60 KB heads hold 625 MB. Each entry keeps at most MAX_ITEMS headers and
as many query parameters, each value cut at MAX_VALUE_CHARS, all of it at
most MAX_ENTRY_CHARS; the whole ring at most `max_bytes` (estimated), the
oldest entries leaving first. What was cut or dropped is counted in health.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from urllib.parse import parse_qsl

from partnerkit.simulator.journal_entry import JournalEntry, JournalEntryJSON
from partnerkit.simulator.redaction import redact_headers, redact_query


def first_values(query_string: str) -> dict[str, str]:
    """The query as a {name: value} dict (the first value of a repeated name)."""
    query: dict[str, str] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        query.setdefault(name, value)
    return query


#: Headers, and query parameters, kept per entry (the first ones, in arrival order).
MAX_ITEMS = 100
#: A longer header or query value is cut to this many characters, plus a marker.
MAX_VALUE_CHARS = 2048
#: Names and values of one entry's headers and query together.
MAX_ENTRY_CHARS = 16 * 1024
#: The whole journal, estimated (default of --journal-bytes).
MAX_JOURNAL_BYTES = 32 * 1024 * 1024
#: Estimated bytes of an entry's fixed fields, and of each header or query item,
#: beyond their characters (CPython str and dict overhead, measured roughly).
_ENTRY_OVERHEAD = 1000
_ITEM_OVERHEAD = 160


def _bounded(items: dict[str, str], budget: int) -> tuple[dict[str, str], int, bool]:
    """(kept items, characters kept, whether anything was cut)."""
    if not items:
        return items, 0, False
    # The usual request: nothing to cut (counted at C speed, this runs per request).
    chars = sum(map(len, items)) + sum(map(len, items.values()))
    if chars <= budget and len(items) <= MAX_ITEMS and (
            chars <= MAX_VALUE_CHARS or max(map(len, items.values())) <= MAX_VALUE_CHARS):
        return items, chars, False
    kept: dict[str, str] = {}
    chars = 0
    cut = len(items) > MAX_ITEMS
    for name, value in itertools.islice(items.items(), MAX_ITEMS):
        if len(value) > MAX_VALUE_CHARS:
            value = f"{value[:MAX_VALUE_CHARS]}...<{len(value) - MAX_VALUE_CHARS} more>"
            cut = True
        size = len(name) + len(value)
        if chars + size > budget:
            cut = True
            break
        kept[name] = value
        chars += size
    return kept, chars, cut


def build_entry(at: float, method: str, path: str, query: dict[str, str],
                headers: dict[str, str]) -> tuple[JournalEntry, int, bool]:
    """A new journal entry (seq 0), its estimated size in bytes, and whether anything
    was cut to keep it bounded: the one place an entry is made, redacted and bounded."""
    # Redact first: a cut value must never leave the prefix of a secret in clear.
    kept_headers, header_chars, cut_headers = _bounded(redact_headers(headers),
                                                       MAX_ENTRY_CHARS)
    kept_query, query_chars, cut_query = _bounded(
        redact_query(query) if query else {}, MAX_ENTRY_CHARS - header_chars)
    if len(path) > MAX_VALUE_CHARS:
        path = f"{path[:MAX_VALUE_CHARS]}...<{len(path) - MAX_VALUE_CHARS} more>"
        cut_query = True
    entry = JournalEntry(at, method[:64], path, kept_query, kept_headers)
    size = (_ENTRY_OVERHEAD + len(path) + header_chars + query_chars
            + _ITEM_OVERHEAD * (len(kept_headers) + len(kept_query)))
    return entry, size, cut_headers or cut_query


def check_bounds(size: int, max_bytes: int) -> None:
    """A journal's bounds, as every journal (memory or shared) refuses them."""
    if size < 1:
        raise ValueError("journal size must be at least 1")
    if max_bytes < 64 * 1024:
        raise ValueError("journal bytes must be at least 65536")


class Journal:
    """A thread-safe ring buffer of journal entries, bounded in entries (`size`) and
    in estimated bytes (`max_bytes`); read as their wire shape (`JournalEntry.to_json`)."""

    def __init__(self, size: int = 10_000, max_bytes: int = MAX_JOURNAL_BYTES) -> None:
        check_bounds(size, max_bytes)
        self.size = size
        self.max_bytes = max_bytes
        self._entries: deque[tuple[JournalEntry, int]] = deque()
        self._bytes = 0
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.dropped_for_bytes = 0  # entries that left early to keep under max_bytes
        self.truncated = 0  # entries whose headers or query were cut

    def open(self, at: float, method: str, path: str, query: dict[str, str],
             headers: dict[str, str]) -> JournalEntry:
        entry, size, cut = build_entry(at, method, path, query, headers)
        with self._lock:
            entry.seq = next(self._seq)
            self._entries.append((entry, size))
            self._bytes += size
            if cut:
                self.truncated += 1
            while len(self._entries) > self.size:
                self._bytes -= self._entries.popleft()[1]
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                self._bytes -= self._entries.popleft()[1]
                self.dropped_for_bytes += 1
        return entry

    def close(self, entry: JournalEntry) -> None:
        """`entry` is complete. Held here already; a shared journal sends it on now."""

    def entries(self) -> list[JournalEntryJSON]:
        """A snapshot, oldest first."""
        with self._lock:
            entries = [entry for entry, _ in self._entries]
        return [entry.to_json() for entry in entries]

    def tail(self, after: int, limit: int) -> tuple[int, list[JournalEntryJSON]]:
        """For a live view: the oldest seq still held (0 when empty) and copies of
        the newest `limit` entries whose seq is above `after`, oldest first.

        Costs what it returns, not the journal's size: seqs in the buffer are
        consecutive, so the new entries are the last ones. Nothing on the
        request path calls it: with no one watching, the journal does no more."""
        with self._lock:
            entries = self._entries
            if not entries:
                return 0, []
            first, last = entries[0][0].seq, entries[-1][0].seq
            count = max(0, min(last - max(after, first - 1), limit))
            return first, [entries[i][0].to_json()
                           for i in range(len(entries) - count, len(entries))]

    def find(self, seqs: list[int]) -> list[JournalEntryJSON]:
        """Copies of the entries with these seqs that the buffer still holds."""
        with self._lock:
            entries = self._entries
            if not entries:
                return []
            first = entries[0][0].seq
            return [entries[seq - first][0].to_json() for seq in seqs
                    if 0 <= seq - first < len(entries)]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def stats(self) -> dict[str, int]:
        """For health: how full the journal is, and what it cut or dropped to stay bounded."""
        with self._lock:
            return {"journal_entries": len(self._entries), "journal_size": self.size,
                    "journal_bytes": self._bytes, "journal_max_bytes": self.max_bytes,
                    "journal_dropped_for_bytes": self.dropped_for_bytes,
                    "journal_truncated_entries": self.truncated}

    def __len__(self) -> int:
        return len(self._entries)
