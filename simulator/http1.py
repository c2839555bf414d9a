"""A lean HTTP/1.1 client for the proxy's hot path: keep-alive connections to one
upstream, httptools for parsing, asyncio protocols underneath.

Why not httpx here: through httpx and httpcore a proxied request cost about
1 ms of CPU (URL and header models, the pool's locks, h11 in pure Python),
several times what the whole fault proxy does around it. This client does
only what a reverse proxy to one origin needs: requests with a fixed body or
a streamed one (by its Content-Length, else chunked), answers streamed with
backpressure, one request at a time per connection, idle connections reused,
TLS through asyncio's ssl support. Timeouts are per phase, like httpx's:
connect, the status line and headers, and each body chunk.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator

import httptools

#: Chunks of an answer held before the connection stops reading (backpressure).
MAX_QUEUED_CHUNKS = 16
Headers = list[tuple[bytes, bytes]]


class UpstreamError(Exception):
    """The upstream could not be reached, or broke the exchange."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer (connect, headers or a body chunk) within the timeout."""


class _Connection(asyncio.Protocol):
    """One connection to the upstream; one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reusable = False
        self.received_any = False
        self._headers: Headers = []
        self._reason = b""
        self._head: asyncio.Future[tuple[int, bytes, Headers]] | None = None
        self._chunks: deque[bytes | BaseException | None] = deque()
        self._more: asyncio.Event = asyncio.Event()
        self._writable: asyncio.Event = asyncio.Event()
        self._writable.set()
        self._paused = False
        self._head_only = False
        self._complete = False
        self._close_delimited = False

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not one

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"the upstream's answer is not HTTP/1.1: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._head is not None and not self._head.done():
            self._head.set_exception(UpstreamError("the upstream closed the connection"))
        elif self._head is not None and not self._complete:
            if self._close_delimited:
                self._message_done()  # neither a length nor chunks: the close ends the body
                self.reusable = False
            else:
                self._chunks.append(UpstreamError("the upstream cut the answer short"))
        self._more.set()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # --- httptools callbacks ---
    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._headers, self._reason = [], b""  # an interim answer: wait for the real one
            return
        names = {name for name, _ in self._headers}
        self._close_delimited = b"content-length" not in names and \
            b"transfer-encoding" not in names and status not in (204, 304)
        if self._head is not None and not self._head.done():
            self._head.set_result((status, self._reason, self._headers))
        if self._head_only or status in (204, 304):
            self._message_done()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._more.set()
        if len(self._chunks) >= MAX_QUEUED_CHUNKS and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if not self._complete:
            self._message_done()

    def _message_done(self) -> None:
        self._complete = True
        self.reusable = self.parser.should_keep_alive() and not self._head_only
        self._chunks.append(None)
        self._more.set()

    def _fail(self, error: BaseException) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        else:
            self._chunks.append(error)
            self._more.set()
        self.abort()

    # --- used by the pool ---
    def abort(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    def start(self, head_only: bool) -> asyncio.Future[tuple[int, bytes, Headers]]:
        self.parser = httptools.HttpResponseParser(self)
        self._headers, self._reason = [], b""
        self._chunks.clear()
        self._more.clear()
        self._complete = False
        self._close_delimited = False
        self.reusable = False
        self.received_any = False
        self._head_only = head_only
        self._head = asyncio.get_running_loop().create_future()
        return self._head

    async def write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise UpstreamError("the upstream closed the connection")
        self.transport.write(data)
        if not self._writable.is_set():
            await self._writable.wait()

    async def next_chunk(self, wait_s: float) -> bytes | None:
        while not self._chunks:
            self._more.clear()
            if self.closed and not self._chunks:
                raise UpstreamError("the upstream cut the answer short")
            try:
                await asyncio.wait_for(self._more.wait(), wait_s)
            except TimeoutError:
                raise UpstreamTimeout("the upstream stopped sending the answer") from None
        item = self._chunks.popleft()
        if self._paused and len(self._chunks) < MAX_QUEUED_CHUNKS // 2 and self.transport:
            self._paused = False
            self.transport.resume_reading()
        if isinstance(item, BaseException):
            raise item
        return item


class UpstreamAnswer:
    """An upstream's answer: status and headers now, the body as it arrives."""

    def __init__(self, pool: ConnectionPool, connection: _Connection, status: int,
                 reason: bytes, headers: Headers) -> None:
        self._pool = pool
        self._connection: _Connection | None = connection
        self.status = status
        self.reason = reason.decode("latin-1")
        self.headers = headers

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)

    async def body(self) -> AsyncIterator[bytes]:
        connection = self._connection
        assert connection is not None
        while True:
            chunk = await connection.next_chunk(self._pool.timeout)
            if chunk is None:
                self._release()
                return
            yield chunk

    def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection)

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.abort()  # the answer was not read to its end: the connection is spent


class ConnectionPool:
    """Keep-alive connections to one upstream origin."""

    def __init__(self, scheme: str, host: str, port: int, *, timeout: float,
                 max_idle: int = 100) -> None:
        self.host, self.port, self.timeout, self.max_idle = host, port, timeout, max_idle
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() \
            if scheme == "https" else None
        self._idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(loop.create_connection(
                _Connection, self.host, self.port, ssl=self.ssl,
                server_hostname=self.host if self.ssl else None), self.timeout)
        except TimeoutError:
            raise UpstreamTimeout(f"no connection within {self.timeout} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError(f"cannot connect: {type(exc).__name__}") from None
        return connection

    def release(self, connection: _Connection) -> None:
        if connection.reusable and not connection.closed and len(self._idle) < self.max_idle:
            self._idle.append(connection)
        else:
            connection.abort()

    def _idle_connection(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return None

    async def request(self, method: str, target: bytes, headers: Headers,
                      body: bytes | AsyncIterator[bytes],
                      content_length: int | None) -> UpstreamAnswer:
        """Send a request; the answer once its status line and headers are in.
        A fixed body is sent again on a fresh connection when a reused one turns
        out to have been closed by the upstream before answering."""
        connection = self._idle_connection()
        reused = connection is not None
        if connection is None:
            connection = await self._connect()
        try:
            return await self._exchange(connection, method, target, headers, body,
                                        content_length)
        except UpstreamTimeout:
            connection.abort()
            raise
        except UpstreamError:
            connection.abort()
            if not (reused and isinstance(body, bytes) and not connection.received_any):
                raise
        return await self._exchange(await self._connect(), method, target, headers, body,
                                    content_length)

    async def _exchange(self, connection: _Connection, method: str, target: bytes,
                        headers: Headers, body: bytes | AsyncIterator[bytes],
                        content_length: int | None) -> UpstreamAnswer:
        head = connection.start(head_only=method == "HEAD")
        lines = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\nhost: ",
                 self._host_header(), b"\r\n"]
        for name, value in headers:
            lines += [name, b": ", value, b"\r\n"]
        chunked = False
        if isinstance(body, bytes):
            if body or method in ("POST", "PUT", "PATCH"):
                lines.append(b"content-length: %d\r\n" % len(body))
        elif content_length is not None:
            lines.append(b"content-length: %d\r\n" % content_length)
        else:
            chunked = True
            lines.append(b"transfer-encoding: chunked\r\n")
        lines.append(b"\r\n")
        if isinstance(body, bytes):
            lines.append(body)
            await connection.write(b"".join(lines))
        else:
            await connection.write(b"".join(lines))
            async for chunk in body:
                if chunk:
                    await connection.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked
                                           else chunk)
            if chunked:
                await connection.write(b"0\r\n\r\n")
        try:
            status, reason, answer_headers = await asyncio.wait_for(head, self.timeout)
        except TimeoutError:
            raise UpstreamTimeout(f"no answer within {self.timeout} s") from None
        return UpstreamAnswer(self, connection, status, reason, answer_headers)

    def _host_header(self) -> bytes:
        default = 443 if self.ssl else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (host if self.port == default else f"{host}:{self.port}").encode("idna")

    async def aclose(self) -> None:
        for connection in self._idle:
            connection.abort()
        self._idle.clear()

    def __repr__(self) -> str:
        return f"ConnectionPool({self.host}:{self.port}, idle={len(self._idle)})"

