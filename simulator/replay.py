"""Replaying a cassette: which recording answers a request, and the ASGI app that sends it.

Requests match on method, path and query (any order), and on the body only
when asked; never on headers or host, so a client's token flow works
against a redacted cassette. Identical requests get their recordings in
recorded order, then the last one repeats. The index is a dict, so a
lookup costs the same for 1,000 interactions as for 100,000; only a miss
looks further, to name the closest recorded requests.
"""

from __future__ import annotations

import gc
import heapq
import json
import sys
import threading
import zlib
from collections import OrderedDict, defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlencode

from starlette.types import Receive, Scope, Send

from partnerkit.simulator.answer import Answer
from partnerkit.simulator.backends import StateBackend
from partnerkit.simulator.cassette import Interaction, LineCassette, RecordedResponse
from partnerkit.simulator.fault_middleware import JOURNAL_ENTRY
from partnerkit.simulator.formats import read_recordings
from partnerkit.simulator.journal import MAX_JOURNAL_BYTES
from partnerkit.simulator.journal_entry import JournalEntry
from partnerkit.simulator.redaction import FORM, redact_body
from partnerkit.simulator.scenario import Scenario
from partnerkit.simulator.state import OverlayState

#: Recorded headers that describe the recorded transfer, not the answer.
TRANSFER_HEADERS = frozenset({
    "content-length", "transfer-encoding", "connection", "keep-alive", "date", "server",
})
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_INFLATED_BYTES = 64 * 1024 * 1024  # decoded to check a recorded Content-Encoding
CLOSEST = 3
MAX_CANDIDATES = 10_000  # how many recorded requests a miss compares itself with
MAX_DIFFERENCES = 20  # lines of differences, and query items, a 404 names per recording
MAX_SHOWN_CHARS = 300  # of the request target in a miss's message
#: A miss is answered 501 by default: no client maps it to a domain outcome (a 404 read
#: as "order not found" let a test pass for the wrong reason), and no retry policy
#: retries it. The header says "miss" whatever status and body are chosen.
MISS_STATUS = 501
MISS_HEADER = "x-partnersim-miss"
CACHED_RECORDINGS = 4096  # answers read from a file kept at hand
MAX_HEADS = 100_000  # answer heads kept built
MAX_PACE = 100.0  # the largest --recorded-latency factor
MAX_MISSES_KEPT = 50  # the latest misses kept whole, for the test that caused them


@dataclass(frozen=True, slots=True)
class MissAnswer:
    """What a request with no recording gets: `status`, and `body` (sent as given with
    `content_type`) instead of the JSON naming the closest recordings when set."""

    status: int = MISS_STATUS
    body: bytes | None = None
    content_type: str = "application/json"

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"a miss status must be 400-599 (an error), not {self.status}")


class RequestKey(NamedTuple):
    """What a request is matched on (a tuple: hashing it is the whole lookup)."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: bytes | None

    @classmethod
    def of(cls, method: str, path: str, query_string: str, body: bytes | None, *,
           decoded: bool = False) -> RequestKey:
        """`path` as written in a URI (percent-encoded), or already `decoded` once, as
        the server's scope gives it: decoding it again made `/a%2541` the path `/aA`."""
        query = tuple(sorted(parse_qsl(query_string, keep_blank_values=True))) \
            if query_string else ()
        if not decoded and "%" in path:
            path = unquote(path)
        return cls(sys.intern(method.upper()), path or "/", query, body)

    def describe(self) -> dict[str, Any]:
        shown = self.query[:MAX_DIFFERENCES]
        described: dict[str, Any] = {"method": self.method, "path": self.path[:MAX_SHOWN_CHARS],
                                     "query": {name: value for name, value in shown}}
        if len(self.query) > len(shown):
            described["query_items_not_shown"] = len(self.query) - len(shown)
        return described


def comparable_body(body: bytes, content_type: str) -> bytes:
    """A body as `--match-body` compares it: redacted by the rules the cassette was
    written with (a live client sends the real secret), JSON keys and form fields
    in a fixed order (their order carries no meaning)."""
    body = redact_body(body, content_type)
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
        except (ValueError, RecursionError):
            return body
    if media_type == FORM:
        try:
            return urlencode(sorted(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
                             ).encode()
        except UnicodeDecodeError:
            return body
    return body


def recorded_key(interaction: Interaction, match_body: bool) -> RequestKey:
    # The URI's scheme and host never matter; this split is urlsplit's, for the hot loop.
    target = interaction.request.uri.partition("://")[2]
    slash = target.find("/")
    target = target[slash:] if slash >= 0 else "/"
    path, _, query = target.partition("#")[0].partition("?")
    request = interaction.request
    body = comparable_body(request.body, request.header("content-type")) if match_body else None
    return RequestKey.of(request.method, path, query, body)


def differences(recorded: RequestKey, got: RequestKey) -> list[str]:
    """How a request differs from a recorded one, in words."""
    found = []
    if recorded.method != got.method:
        found.append(f"method: recorded {recorded.method}, got {got.method}")
    if recorded.path != got.path:
        found.append(f"path: recorded {recorded.path}, got {got.path}")
    mine, theirs = dict(got.query), dict(recorded.query)
    for name in sorted(theirs.keys() | mine.keys()):
        if name not in mine:
            found.append(f"query {name}: recorded {theirs[name]!r}, missing")
        elif name not in theirs:
            found.append(f"query {name}: not recorded (got {mine[name]!r})")
        elif mine[name] != theirs[name]:
            found.append(f"query {name}: recorded {theirs[name]!r}, got {mine[name]!r}")
    if recorded.body != got.body:
        found.append("body: differs from the recorded body")
    if len(found) > MAX_DIFFERENCES:
        found[MAX_DIFFERENCES:] = [f"... and {len(found) - MAX_DIFFERENCES} more"]
    return found


def _distance(recorded: RequestKey, got: RequestKey, got_query: frozenset[tuple[str, str]],
              got_segments: list[str]) -> tuple[int, int]:
    """Smaller is nearer. The request's own query set and segments come precomputed,
    and only the recorded side is iterated: a 10,000-item query compared with
    10,000 recordings was 4 s of frozen server per miss."""
    segments = recorded.path.split("/")
    path_cost = abs(len(segments) - len(got_segments)) + sum(
        a != b for a, b in zip(segments, got_segments, strict=False))
    shared = sum(pair in got_query for pair in recorded.query)
    query_cost = len(recorded.query) + len(got_query) - 2 * shared
    return (3 * (recorded.method != got.method) + 2 * path_cost + query_cost
            + (recorded.body != got.body), path_cost)


class RecordingIndex:
    """The recordings of a cassette by request key, each key with its own place.

    Held in memory when given interactions; built `from_file` over a cassette in
    partnersim's line layout, it keeps only each line's offset and its request key,
    and reads an answer's line when it is asked for (a few recent ones cached):
    a million interactions fit in a few hundred MB and a lookup costs the same."""

    def __init__(self, interactions: Iterable[Interaction], *, match_body: bool = False) -> None:
        self.match_body = match_body
        self._recordings: dict[RequestKey, int | list[int]] = {}
        self._by_path: dict[str, list[RequestKey]] | None = None  # built on the first miss
        self._memory: list[Interaction] | None = []
        self._file: LineCassette | None = None
        self._cache: OrderedDict[int, Interaction] = OrderedDict()
        self.size = 0
        for interaction in interactions:
            self._memory.append(interaction)
            self._add(interaction)
        self._used: dict[RequestKey, int] = {}
        self._answered = 0
        self._lock = threading.Lock()
        #: How many times `key` was used before, counted across workers (shared state).
        self.shared_use: Callable[[RequestKey], int] | None = None
        self.misses = 0
        self.recent_misses: deque[dict[str, Any]] = deque(maxlen=MAX_MISSES_KEPT)

    @classmethod
    def from_file(cls, path: Path, *, match_body: bool = False
                  ) -> tuple[RecordingIndex, list[str]]:
        """(the index of a cassette or HAR file, notes on HAR entries skipped);
        CassetteError names what is wrong. A cassette in partnersim's line layout is
        indexed over the file; any other is read whole."""
        index = cls((), match_body=match_body)
        index._memory = None
        collecting = gc.isenabled()
        gc.disable()  # a million small keys: a collection pass every few thousand
        try:
            index._file = LineCassette.scan(path, index._add)
        finally:
            if collecting:
                gc.enable()
        if index._file is not None:
            return index, []
        interactions, skipped = read_recordings(path)
        return cls(interactions, match_body=match_body), skipped

    def _add(self, interaction: Interaction) -> None:
        key = recorded_key(interaction, self.match_body)
        number, found = self.size, self._recordings.get(key)
        if found is None:
            self._recordings[key] = number
        elif isinstance(found, int):
            self._recordings[key] = [found, number]
        else:
            found.append(number)
        self.size += 1

    def __len__(self) -> int:
        return self.size

    def interaction(self, number: int) -> Interaction:
        """The recording numbered `number` (from memory, or read from its line)."""
        if self._memory is not None:
            return self._memory[number]
        assert self._file is not None
        with self._lock:
            cached = self._cache.get(number)
            if cached is not None:
                self._cache.move_to_end(number)
                return cached
        interaction = self._file.read(number)
        with self._lock:
            self._cache[number] = interaction
            if len(self._cache) > CACHED_RECORDINGS:
                self._cache.popitem(last=False)
        return interaction

    def next_for(self, key: RequestKey) -> tuple[int, Interaction] | None:
        """The next recording for `key` (the last one once all are used), or None."""
        recordings = self._recordings.get(key)
        if recordings is None:
            return None
        with self._lock:
            self._answered += 1
            if isinstance(recordings, int):
                number = recordings
            else:  # only keys recorded more than once have a place to keep
                used = self._used.get(key, 0)
                self._used[key] = used + 1
                if self.shared_use is not None:  # several workers: the place is shared
                    used = self.shared_use(key)
                number = recordings[min(used, len(recordings) - 1)]
        return number, self.interaction(number)

    def rewind(self) -> None:
        """Every recording back to its first answer; the miss count starts again."""
        with self._lock:
            self._used.clear()
            self._answered = 0
            self.misses = 0
            self.recent_misses.clear()

    def note_miss(self, miss: dict[str, Any]) -> None:
        with self._lock:
            self.misses += 1
            self.recent_misses.append(miss)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def _paths(self) -> dict[str, list[RequestKey]]:
        if self._by_path is None:
            by_path: dict[str, list[RequestKey]] = defaultdict(list)
            for key in self._recordings:
                by_path[key.path].append(key)
            self._by_path = dict(by_path)
        return self._by_path

    def closest(self, key: RequestKey, count: int = CLOSEST) -> list[dict[str, Any]]:
        """The recorded requests nearest to `key`, and how each differs from it."""
        candidates = self._paths().get(key.path, [])[:MAX_CANDIDATES]
        if len(candidates) < count:
            candidates = candidates + self._candidates_elsewhere(key)
        got_query, got_segments = frozenset(key.query), key.path.split("/")
        nearest = heapq.nsmallest(count, candidates, key=lambda recorded: _distance(
            recorded, key, got_query, got_segments))
        return [{**recorded.describe(), "differences": differences(recorded, key)}
                for recorded in nearest]

    def _candidates_elsewhere(self, key: RequestKey) -> list[RequestKey]:
        found: list[RequestKey] = []
        for path, keys in self._paths().items():
            if path != key.path:
                found.extend(keys[: MAX_CANDIDATES - len(found)])
                if len(found) >= MAX_CANDIDATES:
                    break
        return found

    def stats(self) -> dict[str, int]:
        return {"interactions": self.size, "distinct_requests": len(self._recordings),
                "answered": self._answered, "misses": self.misses}


class ReplayAPI:
    """An ASGI app answering every request from a RecordingIndex."""

    def __init__(self, index: RecordingIndex, miss: MissAnswer | None = None, *,
                 pace: float | None = None,
                 sleep: Callable[[float], Awaitable[Any]] | None = None) -> None:
        """`pace` (a factor, with `sleep`): serve each answer after its recorded
        duration times `pace`, by the sleep scenario latency uses."""
        self.index = index
        self.miss = miss or MissAnswer()
        self.pace = pace if sleep is not None else None
        self.sleep = sleep
        self._heads: dict[int, tuple[tuple[bytes, bytes], ...]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive, MAX_BODY_BYTES)
        if body is None:
            await Answer.error(413, "request_too_large",
                               f"at most {MAX_BODY_BYTES} bytes").send(send)
            return
        if self.index.match_body:
            content_type = next((value.decode("latin-1") for name, value in scope["headers"]
                                 if name.lower() == b"content-type"), "")
            body = comparable_body(body, content_type)
        key = RequestKey.of(scope["method"], scope["path"],
                            scope["query_string"].decode("latin-1"),
                            body if self.index.match_body else None, decoded=True)
        found = self.index.next_for(key)
        entry: JournalEntry | None = scope.get(JOURNAL_ENTRY)
        if found is None:
            await self._miss(key, scope, send)
            return
        number, interaction = found
        recorded = interaction.response
        if entry is not None:
            entry.replayed = number
        if self.pace is not None and recorded.duration_ms and self.sleep is not None:
            delay_ms = recorded.duration_ms * self.pace
            if entry is not None:
                entry.recorded_latency_ms = round(delay_ms, 3)
            await self.sleep(delay_ms / 1000)
        head = self._heads.get(number)
        if head is None:  # built once per recording, on its first use
            if len(self._heads) >= MAX_HEADS:
                self._heads.clear()
            head = self._heads[number] = _raw_head(recorded)
        await send({"type": "http.response.start", "status": recorded.status,
                    "headers": list(head)})
        await send({"type": "http.response.body",
                    "body": b"" if _bodiless(recorded.status) else recorded.body})


    async def _miss(self, key: RequestKey, scope: Scope, send: Send) -> None:
        target = key.path + (f"?{scope['query_string'].decode('latin-1')}"
                             if scope["query_string"] else "")
        if len(target) > MAX_SHOWN_CHARS:
            target = f"{target[:MAX_SHOWN_CHARS]}...<{len(target) - MAX_SHOWN_CHARS} more>"
        miss = {"error": "no_recording",
                "message": f"no recorded request matches {key.method} {target}",
                "request": key.describe(), "closest": self.index.closest(key)}
        self.index.note_miss(miss)
        entry: JournalEntry | None = scope.get(JOURNAL_ENTRY)
        if entry is not None:
            entry.miss = True
        miss_header = (MISS_HEADER.encode(), b"no_recording")
        if self.miss.body is None:
            answer = Answer.json(self.miss.status, miss, [miss_header])
        else:
            answer = Answer(self.miss.status, [
                (b"content-type", self.miss.content_type.encode("latin-1")), miss_header],
                self.miss.body)
        await answer.send(send)


def describe_misses(misses: Iterable[dict[str, Any]], total: int) -> str:
    """Misses in words, each with its closest recordings (for a failing test)."""
    shown = list(misses)
    lines = [f"{total} request(s) had no recording (a miss never passes for an answer):"]
    for miss in shown:
        lines.append(f"  {miss['message']}")
        for recorded in miss.get("closest", []):
            lines.append(f"    closest: {recorded['method']} {recorded['path']}"
                         + "".join(f"\n      - {difference}"
                                   for difference in recorded["differences"]))
    if total > len(shown):
        lines.append(f"  ... and {total - len(shown)} earlier miss(es) not kept")
    return "\n".join(lines)


def _raw_head(recorded: RecordedResponse) -> tuple[tuple[bytes, bytes], ...]:
    """The recorded headers as ASGI wants them, with a content-length for the body.

    A Content-Encoding the body does not carry is dropped: VCR.py's urllib3 ≥ 2 and
    aiohttp stubs store the body decoded beside the header that said `gzip`, and
    sending those bytes under that header breaks every client. A body really encoded
    (httpx's stub keeps it so) goes out byte for byte, header and all."""
    skip = TRANSFER_HEADERS
    encoding = recorded.header("content-encoding")
    if encoding and not _carries_encoding(recorded.body, encoding):
        skip = TRANSFER_HEADERS | {"content-encoding"}
    headers = [(name.lower().encode("latin-1", "replace"), value.encode("latin-1", "replace"))
               for name, values in recorded.headers.items()
               if name.lower() not in skip for value in values]
    if not _bodiless(recorded.status):
        headers.append((b"content-length", str(len(recorded.body)).encode()))
    return tuple(headers)


def _carries_encoding(body: bytes, header: str) -> bool:
    """Whether `body` really is encoded as the Content-Encoding `header` says (its
    outermost coding is checked; an unknown coding is trusted as recorded)."""
    if not body:
        return False
    coding = header.split(",")[-1].strip().lower()
    if coding in ("gzip", "x-gzip"):
        return body[:2] == b"\x1f\x8b" and _inflates(body, 16 + zlib.MAX_WBITS)
    if coding == "deflate":  # zlib-wrapped, as the RFC says, or raw, as some servers send
        return _inflates(body, zlib.MAX_WBITS) or _inflates(body, -zlib.MAX_WBITS)
    if coding == "br":
        return _carries_brotli(body)
    return coding not in ("identity", "")


def _inflates(body: bytes, wbits: int) -> bool:
    """Whether `body` is one whole stream of this zlib format (decoded up to a bound)."""
    decoder = zlib.decompressobj(wbits)
    try:
        decoder.decompress(body, MAX_INFLATED_BYTES)
    except zlib.error:
        return False
    return decoder.eof or bool(decoder.unconsumed_tail)  # past the bound: trusted


def _carries_brotli(body: bytes) -> bool:
    try:
        import brotli  # type: ignore[import-not-found]
    except ImportError:
        # No decoder here: a body that is readable text was stored decoded (a
        # brotli stream is almost never valid UTF-8 text).
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False
    try:
        brotli.Decompressor().process(body)
    except brotli.error:
        return False
    return True


def _bodiless(status: int) -> bool:
    """204 and 304 answers have no body (RFC 9110 6.4.1), whatever was recorded."""
    return status in (204, 304)


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None once it exceeds `limit` (not held in memory)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class ReplayState(OverlayState):
    """The fake partner's state for replay: the fault overlay, the journal, and the
    cassette's recordings, which `reset` rewinds."""

    answers_from = "replay serves recorded pages"
    overlay = "replay fault overlay"

    def __init__(self, index: RecordingIndex, scenario: Scenario | None = None, *,
                 cassette: str = "cassette", journal_size: int = 10_000,
                 journal_bytes: int = MAX_JOURNAL_BYTES, miss: MissAnswer | None = None,
                 recorded_latency: float | None = None,
                 backend: StateBackend | None = None) -> None:
        if recorded_latency is not None and not 0 <= recorded_latency <= MAX_PACE:
            raise ValueError(f"a recorded-latency factor must be 0 to {MAX_PACE}, "
                             f"not {recorded_latency}")
        self.index = index
        self.cassette = cassette
        self.miss = miss or MissAnswer()
        self.recorded_latency = recorded_latency
        super().__init__(scenario, journal_size=journal_size, journal_bytes=journal_bytes,
                         backend=backend)
        if self.backend.name != "memory":
            index.shared_use = lambda key: self.backend.next_use(repr(key))

    def reset(self) -> None:
        super().reset()
        self.index.rewind()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "mode": "replay", "cassette": self.cassette,
                "miss_status": self.miss.status, "recorded_latency": self.recorded_latency,
                **self.index.stats()}
