"""uvicorn protocols that let the fault engine cut a connection.

Plain ASGI cannot reset a connection before the status line: uvicorn turns
any exception there into a 500. These subclasses of uvicorn's HTTP
protocols (both the fast httptools one and the pure-Python h11 one) put a
`ConnectionControl` into every request's scope, with which the fault engine
resets (RST) or closes (FIN) the socket. They touch uvicorn internals, which
is why uvicorn is pinned exactly and both stacks are tested.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: The scope key under which the control sits.
CONNECTION_CONTROL = "partnersim.connection"
_LINGER_RESET = struct.pack("ii", 1, 0)
#: The most a request line plus headers may take (h11's own bound is set alike in server.py).
MAX_HEAD_BYTES = 64 * 1024
#: How long a connection may take to send a whole request head, from its first byte
#: (or from the connection, for the first request): silent and slowloris clients are
#: closed after it, so they cannot hold file descriptors or buffers.
HEAD_TIMEOUT_S = 10.0


class ConnectionControl:
    """Cuts the connection of the request being served."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def _mark_disconnected(self) -> None:
        # Tells uvicorn the app did not "forget" to answer: the peer is gone.
        cycle = self._protocol.cycle
        if cycle is not None:
            cycle.disconnected = True

    def connected(self) -> bool:
        return not self._protocol.transport.is_closing()

    def reset(self) -> None:
        """TCP RST now: the client sees a connection reset, not a response."""
        transport = self._protocol.transport
        self._mark_disconnected()
        if transport.is_closing():
            return  # the peer left first: nothing left to reset
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Closed under us: uvloop raises ValueError for a dead fd.
            with contextlib.suppress(OSError, ValueError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        transport.abort()

    def close(self) -> None:
        """FIN after what was written: a body that stops short."""
        self._mark_disconnected()
        writer = getattr(self._protocol, "_writer", None)
        if writer is not None:
            writer.flush()  # what the cycle wrote goes out before the FIN
        self._protocol.transport.close()


def _refuse_head(transport: Any, max_bytes: int = MAX_HEAD_BYTES) -> None:
    _refuse(transport, b"431 Request Header Fields Too Large",
            f"request line and headers are limited to {max_bytes} bytes")


def _refuse(transport: Any, status: bytes, text: str) -> None:
    if transport.is_closing():
        return
    message = text.encode()
    transport.write(
        b"HTTP/1.1 " + status + b"\r\n"
        b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        b"content-length: " + str(len(message)).encode() + b"\r\n\r\n" + message)
    transport.close()


class HeadGuard:
    """What both stacks share: a request head must arrive whole, within `head_timeout_s`
    and `max_head_bytes`, counted from the bytes the socket delivered (not from what the
    parser chose to report, which for httptools is nothing until a header line ends).

    A head starts when a connection opens and when the first byte after a finished
    exchange arrives; it ends when the parser reports the headers complete. The
    idle time between requests is uvicorn's keep-alive timeout.

    A head only notes its deadline: one sweep per server, every quarter of the
    timeout (at most a second), closes the connections past it. A timer per
    request (armed, then cancelled) had cost a tenth of the fast stack's throughput."""

    head_timeout_s = HEAD_TIMEOUT_S
    max_head_bytes = MAX_HEAD_BYTES
    transport: Any
    loop: Any
    server_state: Any

    def _head_start(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._head_deadline = self.loop.time() + self.head_timeout_s
        state = self.server_state
        if not getattr(state, "partnersim_sweeping", False):
            state.partnersim_sweeping = True
            self.loop.call_later(self._sweep_interval(), _sweep, self.loop, state,
                                 self._sweep_interval())

    def _sweep_interval(self) -> float:
        return max(0.02, min(1.0, self.head_timeout_s / 4))

    def _head_done(self) -> None:
        self._in_head = False
        self._head_bytes = 0

    def _head_timed_out(self) -> None:
        if not self._in_head:
            return
        self._in_head = False
        if self._head_bytes:
            _refuse(self.transport, b"408 Request Timeout",
                    f"the request head did not arrive within {self.head_timeout_s} s")
        else:
            self.transport.close()

    def _head_data(self, size: int, idle: bool) -> None:
        """Before the parser sees `size` new bytes; `idle` when no exchange is in flight."""
        if not getattr(self, "_in_head", False) and idle:
            self._head_start()
        if self._in_head:
            self._head_bytes += size

    def _head_overflowed(self) -> bool:
        """After the parser: still no complete head, and more than the limit already in."""
        if getattr(self, "_in_head", False) and self._head_bytes > self.max_head_bytes:
            self._head_done()
            _refuse_head(self.transport, self.max_head_bytes)
            return True
        return False


class HeadTooLarge(Exception):
    """The request line and headers passed MAX_HEAD_BYTES."""


def _sweep(loop: Any, state: Any, interval: float) -> None:
    """Close every connection of this server whose request head is past its deadline;
    run again while the server has connections."""
    now = loop.time()
    for protocol in list(state.connections):
        if getattr(protocol, "_in_head", False) and now >= protocol._head_deadline:
            protocol._head_timed_out()
    if state.connections:
        loop.call_later(interval, _sweep, loop, state, interval)
    else:
        state.partnersim_sweeping = False


class OneSendPerAnswer:
    """The transport as a response cycle sees it: a write is held until the next one
    (or the end of this turn of the event loop), so a head and the body that follows
    it leave in one send, not two. uvicorn writes them apart; on a loopback socket the
    second syscall was a tenth of a request's cost. Nothing waits longer than the
    current turn of the loop: a dribbled body still leaves chunk by chunk, on time."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: Any, loop: Any) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._held = None
            self._transport.write(held + data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():  # reset or gone: nobody to send it to
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return bool(self._transport.is_closing())


class FaultableHttpToolsProtocol(HeadGuard, HttpToolsProtocol):
    """uvicorn's httptools protocol (the fast stack) with a ConnectionControl,
    and a bound on the request head: llhttp has none, so a client could make
    uvicorn hold any number of header bytes; past MAX_HEAD_BYTES it gets 431,
    whether the head is complete or a header line never ends.

    Every method here runs per request on the hot path, so each is lean: the
    head is measured by the bytes the socket delivered (exactly, from the parsed
    URL and headers, only when those bytes pass the limit), not per header
    callback; the base class is called directly, not through super(). A
    wrapper per header callback had cost a tenth of a request."""

    def connection_made(self, transport: Any) -> None:
        self._in_head = False
        self._message_open = False
        self._head_too_large = False
        HttpToolsProtocol.connection_made(self, transport)
        self._control = ConnectionControl(self)
        self._writer = OneSendPerAnswer(transport, self.loop)
        self._head_start()

    def connection_lost(self, exc: Exception | None) -> None:
        self._in_head = False
        HttpToolsProtocol.connection_lost(self, exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_head:
            if self._message_open:
                HttpToolsProtocol.data_received(self, data)  # a body: not a head
                return
            self._head_start()
        self._head_bytes += len(data)
        HttpToolsProtocol.data_received(self, data)
        if self._in_head and self._head_bytes > self.max_head_bytes:
            # Still no complete head, and more than the limit already in.
            self._head_done()
            _refuse_head(self.transport, self.max_head_bytes)

    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)
        self._message_open = True

    def on_message_complete(self) -> None:
        self._message_open = False
        HttpToolsProtocol.on_message_complete(self)

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            _refuse_head(self.transport, self.max_head_bytes)
        else:
            HttpToolsProtocol.send_400_response(self, msg)

    def on_headers_complete(self) -> None:
        if self._head_bytes > self.max_head_bytes and self._head_size() > self.max_head_bytes:
            # A complete head over the limit, in one delivery: llhttp stops, and uvicorn
            # answers through send_400_response.
            self._head_too_large = True
            raise HeadTooLarge
        # The head is done; its byte count stays until the next head starts, so a head
        # pipelined behind this one in the same delivery is measured too.
        self._in_head = False
        HttpToolsProtocol.on_headers_complete(self)
        # The ASGI task was created but has not run yet: the scope is still ours to extend.
        self.scope[CONNECTION_CONTROL] = self._control  # type: ignore[literal-required]
        cycle = self.cycle
        if cycle is not None:
            cycle.transport = self._writer  # type: ignore[assignment]

    def _head_size(self) -> int:
        """The head as written, near enough: request line, and `name: value\\r\\n` each."""
        return len(self.url) + 16 + sum(len(name) + len(value) + 4
                                        for name, value in self.headers)


class FaultableH11Protocol(HeadGuard, H11Protocol):
    """uvicorn's h11 protocol (pure Python) with a ConnectionControl, and 431
    for a head past MAX_HEAD_BYTES: h11's own max_incomplete_event_size bounds
    only a head still arriving, so a complete one is measured here too."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._control = ConnectionControl(self)
        self._head_too_large = False
        self._head_start()
        next_event = self.conn.next_event

        def bounded_next_event() -> Any:
            event = next_event()
            if isinstance(event, h11.Request) and _head_size(event) > self.max_head_bytes:
                self._head_too_large = True
                raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
            return event

        self.conn.next_event = bounded_next_event  # type: ignore[method-assign]

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Between messages h11 is IDLE (or DONE, before uvicorn starts the next cycle).
        self._head_data(len(data), self.conn.their_state is not h11.SEND_BODY)
        super().data_received(data)
        self._head_overflowed()

    def send_400_response(self, msg: str) -> None:
        # h11 refuses a head longer than max_incomplete_event_size with a 431 hint
        # that uvicorn turns into a 400; the oversized buffer is still there to see.
        buffered = getattr(self.conn, "_receive_buffer", b"")
        if self._head_too_large or len(buffered) > self.max_head_bytes:
            self._head_done()
            _refuse_head(self.transport, self.max_head_bytes)
        else:
            super().send_400_response(msg)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not None and self.cycle is not before:
            self._head_done()
            self.cycle.scope[CONNECTION_CONTROL] = self._control  # type: ignore[literal-required]


def _head_size(request: h11.Request) -> int:
    """The head as written, near enough: method, target, and `name: value\\r\\n` each."""
    return len(request.method) + len(request.target) + 12 + sum(
        len(name) + len(value) + 4 for name, value in request.headers.raw_items())


def protocol_class(http: str, *, head_timeout_s: float = HEAD_TIMEOUT_S,
                   max_head_bytes: int = MAX_HEAD_BYTES) -> type[Any]:
    """The protocol class for `http` with these limits (uvicorn takes a class, not options)."""
    base = PROTOCOLS[http]
    if head_timeout_s == base.head_timeout_s and max_head_bytes == base.max_head_bytes:
        return base
    return type(base.__name__, (base,), {"head_timeout_s": head_timeout_s,
                                         "max_head_bytes": max_head_bytes})


PROTOCOLS: dict[str, type[FaultableHttpToolsProtocol] | type[FaultableH11Protocol]] = {
    "httptools": FaultableHttpToolsProtocol, "h11": FaultableH11Protocol}
