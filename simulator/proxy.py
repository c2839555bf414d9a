"""The fault proxy: a scenario's faults in front of one real upstream partner.

The fault middleware is the same as `serve`'s; what it wraps is `ProxyAPI`,
which forwards to the upstream. So faults that answer by themselves (status,
an empty rate-limit bucket, reset, hang, expire_token) never reach the
upstream and spend none of its quota, while faults that change an answer
(latency, dribble, malformed, schema_drift, mid_body) act on the upstream's
real one. Bodies stream both ways; only an answer a fault rewrites is read
whole, and that is bounded (`fault_middleware.MAX_CAPTURE_BYTES`).

With a cassette (`--out`) the clean answers are tee'd into it as they stream,
redacted, and written before the last byte goes to the client; an answer a
fault changed, or one too large to hold, is not recorded.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from partnerkit.simulator.admin_api import AdminAPI
from partnerkit.simulator.answer import Answer
from partnerkit.simulator.backends import StateBackend
from partnerkit.simulator.fault_middleware import ACTING_FAULT, JOURNAL_ENTRY
from partnerkit.simulator.http1 import UpstreamAnswer, UpstreamError
from partnerkit.simulator.journal import MAX_JOURNAL_BYTES
from partnerkit.simulator.journal_entry import JournalEntry
from partnerkit.simulator.protocols import CONNECTION_CONTROL
from partnerkit.simulator.replay import MAX_BODY_BYTES
from partnerkit.simulator.scenario import Fault, Scenario
from partnerkit.simulator.state import OverlayState
from partnerkit.simulator.upstream import (
    BadTarget,
    CassetteTee,
    RawHeaders,
    Upstream,
    answer_headers,
)

#: Request headers that mean the request has a body to stream on.
BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})


class ProxyState(OverlayState):
    """The proxy's state: the fault overlay and the journal; the data set is the upstream's."""

    answers_from = "the proxy serves the upstream's pages"
    overlay = "proxy fault overlay"

    def __init__(self, upstream: Upstream, scenario: Scenario | None = None, *,
                 tee: CassetteTee | None = None, journal_size: int = 10_000,
                 journal_bytes: int = MAX_JOURNAL_BYTES,
                 backend: StateBackend | None = None) -> None:
        self.upstream = upstream
        self.tee = tee
        super().__init__(scenario, journal_size=journal_size, journal_bytes=journal_bytes,
                         backend=backend)

    def describe(self) -> dict[str, Any]:
        facts = {**super().describe(), "mode": "proxy", "upstream": self.upstream.url,
                 "upstream_failures": self.upstream.failed}
        if self.tee is not None:
            facts["cassette"] = str(self.tee.writer.path)
            facts["recorded"] = self.tee.count
        return facts


class ProxyAdminAPI(AdminAPI):
    """`serve`'s admin API; health also says whether the upstream answers."""

    def __init__(self, state: ProxyState, admin_token: str | None = None) -> None:
        super().__init__(state, admin_token)
        self.proxy_state = state

    def routes(self) -> list[Route]:
        return [self.route("/__sim/health", GET=self.proxy_health),
                *(route for route in super().routes() if route.path != "/__sim/health")]

    async def proxy_health(self, request: Request) -> Answer:
        upstream = await self.proxy_state.upstream.probe()
        return Answer.json(200, {**self.proxy_state.describe(), "upstream": upstream})


def _clean(scope: Scope) -> bool:
    """The answer will be the upstream's own (no fault, or one that only delays it)."""
    fault: Fault | None = scope.get(ACTING_FAULT)
    return fault is None or fault.keeps_answer


class ProxyAPI:
    """An ASGI app forwarding every request to the upstream, streaming both ways."""

    def __init__(self, upstream: Upstream, tee: CassetteTee | None = None) -> None:
        self.upstream = upstream
        self.tee = tee

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            target = self.upstream.target(scope)
        except BadTarget as exc:
            await Answer.error(400, "bad_target", str(exc)).send(send)
            return
        entry: JournalEntry | None = scope.get(JOURNAL_ENTRY)
        kept = _Kept() if self.tee is not None and _clean(scope) else None
        headers = self.upstream.request_headers(scope)
        length: int | None = None
        has_body = False
        for name, value in scope["headers"]:
            if name.lower() in BODY_HEADERS:
                has_body = True
                if name.lower() == b"content-length" and value.isdigit():
                    length = int(value)
        body = _request_body(receive, kept) if has_body and length != 0 else b""
        started = time.perf_counter()
        try:
            answer = await self.upstream.send(scope["method"], target, headers, body, length)
        except UpstreamError as exc:
            status, payload = self.upstream.failure(exc)
            if entry is not None:
                entry.upstream = payload["error"]
            await Answer.json(status, payload).send(send)
            return
        try:
            recording = (scope["method"], target, headers, kept) if kept is not None else None
            await self._answer(scope, send, answer, entry, recording, started)
        finally:
            await answer.aclose()

    async def _answer(self, scope: Scope, send: Send, answer: UpstreamAnswer,
                      entry: JournalEntry | None,
                      recording: tuple[str, bytes, RawHeaders, _Kept] | None,
                      started: float) -> None:
        kept = answer_headers(answer)
        # The server adds its own Date; the upstream's goes only into the cassette.
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": [(name, value) for name, value in kept if name != b"date"]})
        body = _Kept() if recording is not None else None
        try:
            async for chunk in answer.body():
                if body is not None:
                    body.add(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamError as exc:
            # The status line is gone: all that is left is to cut the connection short.
            self.upstream.failed += 1
            if entry is not None:
                entry.upstream = f"cut mid-body ({exc})"
            control = scope.get(CONNECTION_CONTROL)
            if control is not None:
                control.close()
            return
        if recording is not None and body is not None and self.tee is not None:
            method, target, headers, request = recording
            # Written before the last byte goes out: what the client saw is on disk.
            if request.chunks is not None and body.chunks is not None:  # None: too large
                self.tee.write(method, target, headers, b"".join(request.chunks),
                               answer.status, answer.reason, kept, b"".join(body.chunks),
                               (time.perf_counter() - started) * 1000)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


@dataclass
class _Kept:
    """What of a streamed body is kept for the cassette (nothing once past the bound)."""

    chunks: list[bytes] | None = field(default_factory=list)
    size: int = 0

    def add(self, chunk: bytes) -> None:
        if self.chunks is not None:
            self.size += len(chunk)
            if self.size > MAX_BODY_BYTES:
                self.chunks = None
            else:
                self.chunks.append(chunk)


async def _request_body(receive: Receive, kept: _Kept | None) -> AsyncIterator[bytes]:
    """The client's body as it arrives, kept (up to a bound) for the cassette."""
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        if kept is not None:
            kept.add(chunk)
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
