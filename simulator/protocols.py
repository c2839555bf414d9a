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


class FaultableHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (the fast stack) with a ConnectionControl."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._control = ConnectionControl(self)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # The ASGI task was created but has not run yet: the scope is still ours to extend.
        self.scope[CONNECTION_CONTROL] = self._control  # type: ignore[literal-required]


class FaultableH11Protocol(H11Protocol):
    """uvicorn's h11 protocol (pure Python) with a ConnectionControl."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._control = ConnectionControl(self)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not None and self.cycle is not before:
            self.cycle.scope[CONNECTION_CONTROL] = self._control  # type: ignore[literal-required]


PROTOCOLS = {"httptools": FaultableHttpToolsProtocol, "h11": FaultableH11Protocol}
