"""The recording proxy: forwards to the upstream partner, writes each exchange to a cassette.

Each interaction is redacted, appended and flushed *before* its answer goes
back to the client, so whatever a client has seen is on disk even if the
proxy dies next. Bodies are asked for uncompressed so secrets in them can
be found and blanked. An upstream that cannot be reached or does not answer
whole within the timeout gets the client a 502/504 and writes nothing: like VCR.py, a
cassette keeps completed answers only.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import Receive, Scope, Send

from partnerkit.simulator.answer import Answer
from partnerkit.simulator.cassette import CassetteWriter
from partnerkit.simulator.http1 import UpstreamError, UpstreamTimeout
from partnerkit.simulator.replay import MAX_BODY_BYTES, read_body
from partnerkit.simulator.upstream import (
    BadTarget,
    CassetteTee,
    RawHeaders,
    Upstream,
    answer_headers,
)

HEALTH_PATH = "/__sim/health"


class RecorderApp:
    """An ASGI app: a reverse proxy to `upstream` that records into `writer`."""

    def __init__(self, upstream: str, writer: CassetteWriter, *, uri_base: str | None = None,
                 timeout_s: float = 30.0, stable: bool = False) -> None:
        self.upstream = Upstream(upstream, timeout_s=timeout_s)
        self.writer = writer
        self.tee = CassetteTee(writer, uri_base or self.upstream.url, stable=stable)

    @property
    def failed(self) -> int:
        return self.upstream.failed

    async def aclose(self) -> None:
        await self.upstream.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == HEALTH_PATH:
            if scope["method"] not in ("GET", "HEAD"):
                await Answer.error(405, "method_not_allowed", "Method Not Allowed",
                                   [(b"allow", b"GET, HEAD")], end=b"\n").send(send)
                return
            await Answer.json(200, {"status": "ok", "mode": "record",
                                    "upstream": self.upstream.url,
                                    "cassette": str(self.writer.path),
                                    "interactions": self.writer.count,
                                    "upstream_failures": self.failed}, end=b"\n").send(send)
            return
        body = await read_body(receive, MAX_BODY_BYTES)
        if body is None:
            await Answer.error(413, "request_too_large",
                               f"at most {MAX_BODY_BYTES} bytes").send(send)
            return
        try:
            target = self.upstream.target(scope)
        except BadTarget as exc:
            await Answer.error(400, "bad_target", str(exc)).send(send)
            return
        headers = self.upstream.request_headers(scope)
        started = time.perf_counter()
        try:
            # One deadline for the whole answer: the pool's timeout is per read, so an
            # upstream dribbling a byte a second would hold the client for days (P8).
            async with asyncio.timeout(self.upstream.timeout_s):
                status, reason, kept, answer = await self._forward(
                    scope["method"], target, headers, body)
        except TimeoutError:
            await Answer.json(*self.upstream.failure(UpstreamTimeout(
                f"no whole answer within {self.upstream.timeout_s} s"))).send(send)
            return
        except UpstreamError as exc:
            await Answer.json(*self.upstream.failure(exc)).send(send)
            return
        duration_ms = (time.perf_counter() - started) * 1000  # the upstream's whole answer
        self.tee.write(scope["method"], target, headers, body, status, reason, kept, answer,
                       duration_ms)
        # The server adds its own Date; the upstream's goes only into the cassette.
        raw_headers = [(name, value) for name, value in kept
                       if name not in (b"date", b"content-length")]
        raw_headers.append((b"content-length", str(len(answer)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": answer})

    async def _forward(self, method: str, target: bytes, headers: RawHeaders,
                       body: bytes) -> tuple[int, str, RawHeaders, bytes]:
        answer = await self.upstream.send(method, target, headers, body)
        try:
            chunks, size = [], 0
            async for chunk in answer.body():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise UpstreamError(f"answer larger than {MAX_BODY_BYTES} bytes")
                chunks.append(chunk)
        finally:
            await answer.aclose()
        return answer.status, answer.reason, answer_headers(answer), b"".join(chunks)
