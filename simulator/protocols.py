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

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: The scope key under which the control sits.
CONNECTION_CONTROL = "partnersim.connection"
_LINGER_RESET = struct.pack("ii", 1, 0)
#: The most a request line plus headers may take (h11's own bound is set alike in server.py).
MAX_HEAD_BYTES = 64 * 1024


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
        self._protocol.transport.close()


def _refuse_head(transport: Any) -> None:
    message = f"request line and headers are limited to {MAX_HEAD_BYTES} bytes".encode()
    transport.write(
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        b"content-length: " + str(len(message)).encode() + b"\r\n\r\n" + message)
    transport.close()


class HeadTooLarge(Exception):
    """The request line and headers passed MAX_HEAD_BYTES."""


class FaultableHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (the fast stack) with a ConnectionControl,
    and a bound on the request head: llhttp has none, so a client could make
    uvicorn hold any number of header bytes; past MAX_HEAD_BYTES it gets 431."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._control = ConnectionControl(self)
        self._head_bytes = 0
        self._head_too_large = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._head_too_large = True
            raise HeadTooLarge  # llhttp stops; uvicorn answers through send_400_response

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            _refuse_head(self.transport)
        else:
            super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # The ASGI task was created but has not run yet: the scope is still ours to extend.
        self.scope[CONNECTION_CONTROL] = self._control  # type: ignore[literal-required]


class FaultableH11Protocol(H11Protocol):
    """uvicorn's h11 protocol (pure Python) with a ConnectionControl, and 431
    for a head past MAX_HEAD_BYTES (h11's max_incomplete_event_size)."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._control = ConnectionControl(self)

    def send_400_response(self, msg: str) -> None:
        # h11 refuses a head longer than max_incomplete_event_size with a 431 hint
        # that uvicorn turns into a 400; the oversized buffer is still there to see.
        buffered = getattr(self.conn, "_receive_buffer", b"")
        if len(buffered) > MAX_HEAD_BYTES:
            _refuse_head(self.transport)
        else:
            super().send_400_response(msg)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not None and self.cycle is not before:
            self.cycle.scope[CONNECTION_CONTROL] = self._control  # type: ignore[literal-required]


PROTOCOLS = {"httptools": FaultableHttpToolsProtocol, "h11": FaultableH11Protocol}
