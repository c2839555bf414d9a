"""The fake partner in this process, connection faults included.

`InProcessTransport` is an httpx transport that calls the ASGI app directly,
as `httpx.ASGITransport` does, but behaves like a socket where it matters to
the contracts: the body streams chunk by chunk as the app sends it (so a
dribble takes its time), a `reset` raises the `httpx.ReadError` a reset
socket gives, a body cut short (`mid_body`, `content_length_mismatch`)
raises `httpx.RemoteProtocolError`, and a `hang` answers nothing until the
client gives up — its cancellation is the app's `http.disconnect`. An app
that fails before answering is a 500, as uvicorn would send.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import httpx
from starlette.types import ASGIApp, Message

from partnerkit.simulator.protocols import CONNECTION_CONTROL

RESET_MESSAGE = "[Errno 104] Connection reset by peer"
CUT_MESSAGE = "peer closed connection without sending complete message body"


class InProcessConnection:
    """What `simulator.protocols.ConnectionControl` is on a socket: cuts it."""

    def __init__(self) -> None:
        self.was_reset = False
        self.cut = asyncio.Event()  # the server side closed or reset it
        self.gone = asyncio.Event()  # nobody listens any more (either side)

    def connected(self) -> bool:
        return not self.gone.is_set()

    def reset(self) -> None:
        self.was_reset = True
        self.close()

    def close(self) -> None:
        self.cut.set()
        self.gone.set()

    def leave(self) -> None:
        """The client closed its end."""
        self.gone.set()


class _Exchange:
    """One request to the app: its answer as it arrives."""

    def __init__(self, app: ASGIApp, scope: dict[str, Any], body: bytes) -> None:
        self.app = app
        self.scope = scope
        self.body = body
        self.connection: InProcessConnection = scope[CONNECTION_CONTROL]
        self.start: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._arrival = asyncio.Event()  # set whenever a chunk is queued
        self._request_sent = False
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        await self.app(self.scope, self._receive, self._send)

    async def _receive(self) -> Message:
        if not self._request_sent:
            self._request_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.connection.gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        if self.connection.cut.is_set():
            return  # a cut connection carries nothing more
        if message["type"] == "http.response.start" and not self.start.done():
            self.start.set_result(message)
        elif message["type"] == "http.response.body":
            self.chunks.put_nowait(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                self.chunks.put_nowait(None)
            self._arrival.set()

    async def response_start(self) -> Message | None:
        """The status line and headers; None when the app ended without them."""
        cut = asyncio.ensure_future(self.connection.cut.wait())
        waits: set[asyncio.Future[Any]] = {self.start, cut, self.task}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self.connection.leave()  # the client gave up (its timeout): the app sees a disconnect
            raise
        finally:
            cut.cancel()
        if self.start.done():
            return self.start.result()
        if self.connection.was_reset or self.connection.cut.is_set():
            raise httpx.ReadError(RESET_MESSAGE)
        return None

    async def stream(self) -> AsyncIterator[bytes]:
        while True:
            chunk = self.chunks.get_nowait() if not self.chunks.empty() else await self._next()
            if chunk is None:
                return
            if chunk:
                yield chunk

    async def _next(self) -> bytes | None:
        """The next chunk as it comes, or the error a cut connection gives."""
        while self.chunks.empty():
            if self.connection.cut.is_set() or self.task.done():
                raise httpx.RemoteProtocolError(CUT_MESSAGE)
            arrived = asyncio.ensure_future(self._arrival.wait())
            cut = asyncio.ensure_future(self.connection.cut.wait())
            waits: set[asyncio.Future[Any]] = {arrived, cut, self.task}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                arrived.cancel()
                cut.cancel()
            self._arrival.clear()
        return self.chunks.get_nowait()

    async def close(self) -> None:
        self.connection.leave()
        if not self.task.done():
            self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task


class _Body(httpx.AsyncByteStream):
    def __init__(self, exchange: _Exchange) -> None:
        self.exchange = exchange

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.exchange.stream():
            yield chunk

    async def aclose(self) -> None:
        await self.exchange.close()


class InProcessTransport(httpx.AsyncBaseTransport):
    """Call the fake partner's ASGI app in this process, faults and all."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        url = request.url
        scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": request.method, "scheme": url.scheme,
            "path": unquote(url.path), "raw_path": url.raw_path.split(b"?", 1)[0],
            "query_string": url.query, "root_path": "",
            "headers": [(name.lower(), value) for name, value in request.headers.raw],
            "client": ("127.0.0.1", 50_000), "server": (url.host, url.port or 80),
            CONNECTION_CONTROL: InProcessConnection(),
        }
        exchange = _Exchange(self.app, scope, body)
        start = await exchange.response_start()
        if start is None:  # the app failed or returned without answering: what uvicorn does
            await exchange.close()
            return httpx.Response(500, headers=[(b"content-type", b"text/plain")],
                                  content=b"Internal Server Error")
        return httpx.Response(start["status"], headers=list(start.get("headers", [])),
                              stream=_Body(exchange))
