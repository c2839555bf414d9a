"""The answers the fake partner makes itself, built in one place.

Every layer that answers on its own — the partner and admin APIs, the fault
middleware, the recorder and the proxy — makes the same `Answer`: a status,
raw headers and a body held whole, so that a fault can still rewrite it. It
is an ASGI app too, so a Starlette endpoint or exception handler returns it
as it would a `Response`, without the header parsing a `Response` does.

JSON is encoded here and nowhere else: compact, UTF-8, `application/json`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

#: The content type of every JSON answer (raw ASGI header value).
JSON_TYPE = b"application/json"

RawHeaders = list[tuple[bytes, bytes]]


def json_bytes(payload: Any) -> bytes:
    """`payload` as compact JSON bytes: no spaces after `,` and `:`. NaN and Infinity
    are refused (ValueError): they are not JSON, and no client parses them alike."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


class Answer:
    """A complete response held in memory (without its Content-Length, added when sent)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: RawHeaders, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @classmethod
    def json(cls, status: int, payload: Any, headers: Iterable[tuple[bytes, bytes]] = (), *,
             end: bytes = b"") -> Answer:
        """`payload` as JSON; `end` follows it (the admin API ends its answers in a newline)."""
        return cls(status, [(b"content-type", JSON_TYPE), *headers], json_bytes(payload) + end)

    @classmethod
    def json_body(cls, body: bytes, status: int = 200) -> Answer:
        """Bytes that are JSON already (a cached order, a page, a recorded answer)."""
        return cls(status, [(b"content-type", JSON_TYPE)], body)

    @classmethod
    def error(cls, status: int, code: str, message: str,
              headers: Iterable[tuple[bytes, bytes]] = (), *, end: bytes = b"") -> Answer:
        """The error shape of shared/DESIGN.md: {"error": code, "message": message}."""
        return cls.json(status, {"error": code, "message": message}, headers, end=end)

    def header(self, name: bytes, value: bytes) -> None:
        """Set header `name` (lower case) to `value`, replacing any earlier one."""
        self.headers = [(k, v) for k, v in self.headers if k != name] + [(name, value)]

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [*self.headers,
                                (b"content-length", str(len(self.body)).encode())]})
        await send({"type": "http.response.body", "body": self.body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.send(send)

    def as_response(self) -> Response:
        """The same answer as a Starlette `Response`, for hooks typed to want one
        (exception handlers); endpoints return the `Answer` itself."""
        response = Response(self.body, self.status)
        response.raw_headers = [*self.headers, *response.raw_headers]
        return response
