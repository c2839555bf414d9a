"""The fault engine as ASGI middleware: where every injected fault is acted out.

For each partner request: journal it, check the bearer token (before any
rule, so a bad token spends no budget), ask the engine for a decision, then
delay, cut, replace or distort the answer the partner API would have given.
Connection-level faults use the hook that `simulator.protocols` puts into
the ASGI scope; without it (in-process transports) they raise instead.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Iterable
from email.utils import formatdate
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from partnerkit.simulator.answer import Answer, json_bytes
from partnerkit.simulator.backends import StateUnavailable, TokenCheck, TokenRefused
from partnerkit.simulator.bodies import drifted_body, malformed_body
from partnerkit.simulator.cursor import InvalidCursor, decode_cursor
from partnerkit.simulator.engine import Decision, RequestInfo, sample_latency_ms
from partnerkit.simulator.journal import first_values
from partnerkit.simulator.journal_entry import JournalEntry
from partnerkit.simulator.protocols import CONNECTION_CONTROL, ConnectionControl
from partnerkit.simulator.scenario import (
    CursorDrift,
    Disconnect,
    ExpireToken,
    Malformed,
    RateLimit,
    SchemaDrift,
    StatusFault,
)
from partnerkit.simulator.state import PartnerState

ADMIN_PREFIX = "/__sim"
#: Scope key of the request's journal entry, for an inner app that adds facts to it.
JOURNAL_ENTRY = "partnersim.journal_entry"
#: Scope key of the fault acting on the request (absent when none does).
ACTING_FAULT = "partnersim.fault"
OPEN_PATHS = frozenset({"/oauth/token", "/openapi.json"})
#: Statuses whose Retry-After the journal keeps.
RETRY_AFTER_STATUSES = frozenset({429, 503, 500, 502, 504})
#: The most of an answer a fault reads whole to rewrite it (a proxied answer can be large).
MAX_CAPTURE_BYTES = 10 * 1024 * 1024
STATUS_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    409: "conflict", 410: "gone", 422: "unprocessable", 429: "rate_limited",
    500: "internal_error", 502: "bad_gateway", 503: "unavailable", 504: "gateway_timeout",
}


class ConnectionFaultUnsupported(RuntimeError):
    """A connection-level fault was asked of a transport that has no socket."""


class AnswerTooLarge(Exception):
    """Raised into the inner app when an answer a fault must rewrite passes the limit."""


def _bearer(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization", "")
    if value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


def _unauthorized(message: str) -> Answer:
    return Answer.json(401, {"error": "invalid_token", "message": message},
                       [(b"www-authenticate", b'Bearer error="invalid_token"')])


def state_unavailable() -> Answer:
    """The answer when the shared state (Redis) does not answer."""
    return Answer.json(503, {"error": "state_backend_unavailable",
                             "message": "the fake partner's shared state does not answer"})


def _retry_after_value(retry_after: int | str, now: float) -> bytes:
    if isinstance(retry_after, int):
        return str(retry_after).encode()
    seconds = int(retry_after.split(":", 1)[1])
    return formatdate(now + seconds, usegmt=True).encode()


def status_answer(fault: StatusFault, now: float) -> Answer:
    """The answer of a `status` fault: the body as declared, or a partner error."""
    headers = [(name.encode(), value.encode()) for name, value in fault.headers]
    if fault.retry_after is not None:
        headers.append((b"retry-after", _retry_after_value(fault.retry_after, now)))
    if fault.body is None:
        code = STATUS_CODES.get(fault.status, "error")
        return Answer.json(fault.status, {"error": code, "message": f"injected {fault.status}"},
                           headers)
    if isinstance(fault.body, str):
        return Answer(fault.status, [(b"content-type", b"text/plain; charset=utf-8"), *headers],
                      fault.body.encode())
    return Answer.json(fault.status, fault.body, headers)


def note_retry_after(entry: JournalEntry, headers: list[tuple[bytes, bytes]]) -> None:
    """Keep an answer's Retry-After in its journal entry, so that whether the client
    waited can be judged from the journal alone, whoever made the answer."""
    if entry.status in RETRY_AFTER_STATUSES:
        for name, value in headers:
            if name == b"retry-after":
                entry.retry_after = value.decode("latin-1")
                return


class FaultMiddleware:
    """Wraps the partner API; admin requests under /__sim go to `admin` untouched."""

    def __init__(self, api: ASGIApp, admin: ASGIApp, state: PartnerState, *,
                 simulated: bool = True, keep_revoked: bool = False) -> None:
        self.api = api
        self.admin = admin
        self.state = state
        # False in replay and proxy: the answers come from elsewhere, so no token is
        # checked (a 401 comes only from there) and no rate-limit header is made up.
        self.simulated = simulated
        # True in the proxy: a token an `expire_token` fault revoked stays refused here,
        # as the upstream, which issued it, knows nothing of the fault.
        self.keep_revoked = keep_revoked

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(ADMIN_PREFIX):
            await self.admin(scope, receive, send)
            return
        clock = self.state.clock
        started = clock.monotonic()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query_string = scope["query_string"].decode("latin-1")
        query = first_values(query_string) if query_string else {}
        entry = self.state.journal.open(clock.time(), scope["method"], path, query, headers)
        scope[JOURNAL_ENTRY] = entry
        exchange = _Exchange(scope, receive, send, entry, headers, self.state, self.simulated)
        try:
            await self._handle(exchange, RequestInfo(scope["method"], path, query_string, query,
                                                     headers))
        except ClientDisconnect:
            entry.status = None  # the client left while we read its request: nobody to answer
        except StateUnavailable:
            # Never a fault-free pass: that would turn a fault test green.
            await exchange.emit(state_unavailable())
        except AnswerTooLarge:  # raised by capture() before anything was sent
            entry.add_fault_fact("skipped", "answer too large")
            await exchange.emit(Answer.json(502, {
                "error": "answer_too_large",
                "message": f"a fault rewrites answers of at most {MAX_CAPTURE_BYTES} bytes; "
                           "this one was larger"}))
        finally:
            entry.duration_ms = round((clock.monotonic() - started) * 1000, 3)
            self.state.journal.close(entry)

    async def _handle(self, exchange: _Exchange, request: RequestInfo) -> None:
        token: str | None = None
        check: TokenCheck = "none"
        if self.simulated and request.path not in OPEN_PATHS:
            token = _bearer(request.headers)
            if token is None:
                await exchange.emit(_unauthorized("missing bearer token"))
                return
            check = "valid"
        elif self.keep_revoked and request.path not in OPEN_PATHS:
            token = _bearer(request.headers)
            check = "revoked" if token is not None else "none"
        try:
            decision = await self.state.admit_async(request, token, check)
        except TokenRefused as refused:
            await exchange.emit(_unauthorized(str(refused)))
            return
        if decision is None:
            await exchange.forward(self.api)
            return
        entry = exchange.entry
        entry.rule = decision.rule.label
        entry.fault = dict(decision.fault.raw)
        exchange.scope[ACTING_FAULT] = decision.fault
        if decision.moment is not None:  # which window, flap or ramp the fault came from
            entry.fault["timing"] = dict(decision.moment.details)
        await self._act(exchange, decision, request)

    async def _act(self, exchange: _Exchange, decision: Decision, request: RequestInfo) -> None:
        fault = decision.fault
        delay_ms = sample_latency_ms(fault.latency, decision.rng) if fault.latency else 0.0
        if decision.moment is not None and decision.moment.latency_ms is not None:
            delay_ms += decision.moment.latency_ms  # a latency ramp adds to the fault's own
        if delay_ms > 0:
            await self.state.waits.sleep(delay_ms / 1000)
        exchange.dribble = fault.dribble
        action = fault.action
        if action is None:
            await exchange.forward(self.api)
        elif isinstance(action, StatusFault):
            await exchange.emit(status_answer(action, self.state.clock.time()))
        elif isinstance(action, RateLimit):
            await self._rate_limit(exchange, decision)
        elif isinstance(action, Malformed):
            await self._malformed(exchange, action)
        elif isinstance(action, SchemaDrift):
            answer = await exchange.capture(self.api)
            if 200 <= answer.status < 300:
                answer.body = drifted_body(answer.body, action, decision.rng)
            await exchange.emit(answer)
        elif isinstance(action, CursorDrift):
            await self._cursor_drift(exchange, action, decision, request)
        elif isinstance(action, Disconnect):
            await self._disconnect(exchange, action)
        elif isinstance(action, ExpireToken):
            token = _bearer(request.headers)
            if token is not None:  # off the loop: every worker acknowledges it first
                await asyncio.to_thread(self.state.backend.revoke_token, token)
            await exchange.emit(_unauthorized("token expired"))

    async def _rate_limit(self, exchange: _Exchange, decision: Decision) -> None:
        bucket = decision.bucket
        assert bucket is not None
        figures = [(b"x-ratelimit-limit", str(bucket.limit).encode()),
                   (b"x-ratelimit-remaining", str(bucket.remaining).encode())]
        if bucket.allowed:
            answer = await exchange.capture(self.api)
            for name, value in figures:
                answer.header(name, value)
            await exchange.emit(answer)
            return
        # The journal keeps what the client was told, so its wait can be judged.
        exchange.entry.add_fault_fact("retry_after", bucket.retry_after_s)
        await exchange.emit(Answer.json(
            429, {"error": "rate_limited", "message": "too many requests"},
            [*figures, (b"retry-after", str(bucket.retry_after_s).encode())],
        ))

    async def _malformed(self, exchange: _Exchange, action: Malformed) -> None:
        answer = await exchange.capture(self.api)
        if action.kind == "content_length_mismatch":
            await exchange.cut_short(answer)
            return
        body, content_type = malformed_body(action.kind, answer.body)
        await exchange.emit(Answer(200, [(b"content-type", content_type)], body))

    async def _cursor_drift(self, exchange: _Exchange, action: CursorDrift,
                            decision: Decision, request: RequestInfo) -> None:
        raw_cursor = request.query.get("cursor")
        try:
            position = decode_cursor(raw_cursor) if raw_cursor is not None else None
        except InvalidCursor:
            position = None  # the API answers 400 for it
        if raw_cursor is None:
            # No cursor, nothing to drift: say so in the journal (a one_of spent its budget).
            exchange.entry.add_fault_fact("skipped", "no cursor")
        if action.expire and (position is not None
                              or (raw_cursor is not None and not self.simulated)):
            # An upstream's cursor is opaque here: any cursor can be declared expired.
            await exchange.emit(Answer.json(
                410, {"error": "cursor_expired", "message": "the cursor has expired"}))
            return
        if position is not None and raw_cursor is not None and (
                action.insert or action.update or action.delete):
            drifted = self.state.backend.drift(action, decision.rng, raw_cursor)
            if drifted:
                exchange.entry.add_fault_fact("drifted", drifted)
        if not action.repeat or raw_cursor is None:
            await exchange.forward(self.api)
            return
        answer = await exchange.capture(self.api)
        if answer.status == 200:
            page = json.loads(answer.body)
            page["next_cursor"] = raw_cursor
            answer.body = json_bytes(page)
        await exchange.emit(answer)

    async def _disconnect(self, exchange: _Exchange, action: Disconnect) -> None:
        if action.kind == "reset":
            exchange.control().reset()
        elif action.kind == "mid_body":
            await exchange.cut_short(await exchange.capture(self.api), mid_body=True)
        else:
            await exchange.hang()
        exchange.entry.status = None


class _Exchange:
    """One request/response cycle: how an answer goes out, or fails to."""

    __slots__ = ("dribble", "entry", "extra", "receive", "request_id", "scope", "send",
                 "state")

    def __init__(self, scope: Scope, receive: Receive, send: Send, entry: JournalEntry,
                 headers: dict[str, str], state: PartnerState, simulated: bool = True) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.entry = entry
        self.state = state
        self.dribble: Any = None
        self.extra: list[tuple[bytes, bytes]] = []  # ours, unless the answer sets them
        request_id = headers.get("x-request-id")  # the client's, always
        self.request_id = request_id.encode("latin-1") if request_id is not None else None
        if simulated and scope["path"].startswith("/v1/"):
            remaining = state.nominal.remaining(entry.at)  # the arrival: the clock read once
            self.extra += [(b"x-ratelimit-limit", b"600"),
                           (b"x-ratelimit-remaining", str(remaining).encode())]

    def control(self) -> ConnectionControl:
        control = self.scope.get(CONNECTION_CONTROL)
        if control is None:
            raise ConnectionFaultUnsupported(
                "connection faults (disconnect, content_length_mismatch) need a real socket: "
                "run the fake partner with simulator.FakePartner or `partnersim serve`"
            )
        return control  # type: ignore[no-any-return]

    def _headers(self, headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """`headers`, then ours that the answer does not set itself; the client's own
        X-Request-Id always (a recorded answer carries the id of another request)."""
        headers = list(headers)
        if self.request_id is not None:
            headers = [(n, v) for n, v in headers if n != b"x-request-id"]
            headers.append((b"x-request-id", self.request_id))
        if self.extra:
            names = {name for name, _ in headers}
            headers += [(n, v) for n, v in self.extra if n not in names]
        return headers

    def forward(self, app: ASGIApp) -> Awaitable[None]:
        """The partner API's own answer, with our headers added on the way (to await:
        the app's own coroutine, one frame less on the hot path)."""
        if self.dribble is not None:
            return self._emit_captured(app)
        entry, send = self.entry, self.send

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message["headers"] = self._headers(message.get("headers", ()))
                entry.status = message["status"]
                note_retry_after(entry, headers)
            await send(message)

        return app(self.scope, self.receive, send_with_headers)

    async def _emit_captured(self, app: ASGIApp) -> None:
        await self.emit(await self.capture(app))

    async def capture(self, app: ASGIApp) -> Answer:
        """Run the partner API and keep its answer instead of sending it; an answer
        past MAX_CAPTURE_BYTES is given up (AnswerTooLarge) and becomes a 502."""
        start: Message = {}
        chunks: list[bytes] = []
        size = 0

        async def keep(message: Message) -> None:
            nonlocal size
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > MAX_CAPTURE_BYTES:
                    raise AnswerTooLarge
                chunks.append(chunk)

        await app(self.scope, self.receive, keep)  # AnswerTooLarge: see FaultMiddleware
        headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
        return Answer(start.get("status", 500), headers, b"".join(chunks))

    async def _start(self, answer: Answer, content_length: int) -> None:
        headers = [(k, v) for k, v in answer.headers if k != b"content-length"]
        headers.append((b"content-length", str(content_length).encode()))
        self.entry.status = answer.status
        note_retry_after(self.entry, headers)
        await self.send({"type": "http.response.start", "status": answer.status,
                         "headers": self._headers(headers)})

    async def emit(self, answer: Answer) -> None:
        """Send a complete answer, dribbling the body if the fault says so."""
        await self._start(answer, len(answer.body))
        dribble = self.dribble
        if dribble is None or not answer.body:
            await self.send({"type": "http.response.body", "body": answer.body})
            return
        body, step = answer.body, dribble.chunk_bytes
        control = self.scope.get(CONNECTION_CONTROL)
        for offset in range(0, len(body), step):
            await self.state.waits.sleep(dribble.interval_ms / 1000)
            if control is not None and not control.connected():
                return  # the client gave up: stop dribbling to nobody
            await self.send({"type": "http.response.body", "body": body[offset:offset + step],
                             "more_body": offset + step < len(body)})

    async def cut_short(self, answer: Answer, mid_body: bool = False) -> None:
        """Promise the whole body, send part (or all but the promise), then close."""
        control = self.control()
        body = answer.body
        if mid_body:
            await self._start(answer, len(body))
            sent = body[: max(1, len(body) // 2)]
        else:
            await self._start(answer, len(body) + max(16, len(body) // 4))
            sent = body
        await self.send({"type": "http.response.body", "body": sent, "more_body": True})
        control.close()
        self.entry.status = None

    async def hang(self) -> None:
        """Never answer: wait until the client gives up or the server stops."""
        control = self.control()

        async def until_disconnect() -> None:
            while (await self.receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.ensure_future(until_disconnect())
        try:
            await self.state.waits.sleep(float("inf"), also=watcher)
        finally:
            watcher.cancel()
        control.reset()
