"""The client's only contact with httpx: send one request, get a reply or a failure.

Every httpx exception is turned into a `Failure` here, at one boundary, and
each attempt is bounded as a whole — not per chunk, as httpx's own read
timeout is (PITFALLS 1): the async transport cancels the attempt at its
deadline, the sync one has the watchdog shut the socket down. Moving off
httpx means rewriting this module only.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import anyio
import httpx

from partnerkit.client._watchdog import WATCHDOG, Alarm
from partnerkit.client.retry import Failure, FailureKind

# Re-exported so the shells name the types without importing httpx themselves.
SyncHttp = httpx.Client
AsyncHttp = httpx.AsyncClient


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    timeout: float  # the whole attempt, connect to last byte
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, str] | None = None


@dataclass(frozen=True)
class HttpReply:
    """A complete response."""

    status: int
    headers: Mapping[str, str]  # lowercase names
    body: bytes


def _failure(exc: httpx.HTTPError, after_headers: bool) -> Failure:
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return Failure(FailureKind.CONNECT, detail)
    if isinstance(exc, httpx.TimeoutException):
        return Failure(FailureKind.TIMEOUT, detail)
    if isinstance(exc, httpx.DecodingError):
        return Failure(FailureKind.INVALID_BODY, detail)
    if after_headers and isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return Failure(FailureKind.BODY_CUT, detail)
    return Failure(FailureKind.CONNECTION, detail)


def _timed_out(seconds: float) -> Failure:
    return Failure(FailureKind.TIMEOUT, f"attempt timed out after {seconds:.2f} s")


def _build(http: httpx.Client | httpx.AsyncClient, request: HttpRequest) -> httpx.Request:
    timeout = httpx.Timeout(max(request.timeout, 0.001))
    return http.build_request(request.method, request.path, params=dict(request.params),
                              headers=dict(request.headers),
                              data=dict(request.form) if request.form is not None else None,
                              timeout=timeout)


def _reply(response: httpx.Response, body: bytes) -> HttpReply:
    headers = {name.lower(): value for name, value in response.headers.items()}
    return HttpReply(response.status_code, headers, body)


def _shut_down_socket(response: httpx.Response) -> None:
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        sock.shutdown(socket.SHUT_RDWR)


class SyncTransport:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def send(self, request: HttpRequest) -> HttpReply | Failure:
        started = time.monotonic()
        deadline = started + request.timeout
        try:
            response = self.http.send(_build(self.http, request), stream=True)
        except httpx.HTTPError as exc:
            return _failure(exc, after_headers=False)
        alarm: Alarm | None = None
        try:
            if time.monotonic() >= deadline:
                return _timed_out(request.timeout)
            alarm = WATCHDOG.arm(deadline, lambda: _shut_down_socket(response))
            chunks = []
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                if time.monotonic() >= deadline:
                    return _timed_out(request.timeout)
            alarm.cancel()
            if alarm.fired:
                return _timed_out(request.timeout)
            return _reply(response, b"".join(chunks))
        except httpx.HTTPError as exc:
            if alarm is not None:
                alarm.cancel()
                if alarm.fired:
                    return _timed_out(request.timeout)
            return _failure(exc, after_headers=True)
        finally:
            if alarm is not None:
                alarm.cancel()
            response.close()


class AsyncTransport:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def send(self, request: HttpRequest) -> HttpReply | Failure:
        after_headers = False
        try:
            with anyio.fail_after(max(request.timeout, 0.0)):
                response = await self.http.send(_build(self.http, request), stream=True)
                after_headers = True
                try:
                    body = b"".join([chunk async for chunk in response.aiter_bytes()])
                finally:
                    with anyio.CancelScope(shield=True):
                        await response.aclose()
        except TimeoutError:
            return _timed_out(request.timeout)
        except httpx.HTTPError as exc:
            return _failure(exc, after_headers)
        return _reply(response, body)
