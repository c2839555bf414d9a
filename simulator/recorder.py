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
import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import httpx

from partnerkit.simulator.cassette import (
    CassetteWriter,
    Headers,
    Interaction,
    RecordedRequest,
    RecordedResponse,
    redact_interaction,
    stabilise_interaction,
)
from partnerkit.simulator.fault_middleware import Receive, Scope, Send
from partnerkit.simulator.replay import MAX_BODY_BYTES, read_body

#: Headers that belong to one hop, not to the exchange, plus those the proxy sets itself.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length", "accept-encoding",
    "content-encoding",
})
HEALTH_PATH = "/__sim/health"


def _header_lists(pairs: Iterable[tuple[str, str]]) -> Headers:
    headers: Headers = defaultdict(list)
    for name, value in pairs:
        headers[name].append(value)
    return dict(headers)


class RecorderApp:
    """An ASGI app: a reverse proxy to `upstream` that records into `writer`."""

    def __init__(self, upstream: str, writer: CassetteWriter, *, uri_base: str | None = None,
                 timeout_s: float = 30.0, stable: bool = False) -> None:
        self.stable = stable
        self.upstream = upstream.rstrip("/")
        self.uri_base = (uri_base or upstream).rstrip("/")
        self.writer = writer
        self.timeout_s = timeout_s
        self.failed = 0
        self._client: httpx.AsyncClient | None = None  # made on the server's own loop

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == HEALTH_PATH:
            await _send_json(send, 200, {"status": "ok", "mode": "record",
                                         "upstream": self.upstream,
                                         "cassette": str(self.writer.path),
                                         "interactions": self.writer.count,
                                         "upstream_failures": self.failed})
            return
        body = await read_body(receive, MAX_BODY_BYTES)
        if body is None:
            await _send_json(send, 413, {"error": "request_too_large",
                                         "message": f"at most {MAX_BODY_BYTES} bytes"})
            return
        target = scope.get("raw_path") or scope["path"].encode()
        if not target.startswith(b"/"):
            # Only origin-form targets name a resource *of the upstream*; anything
            # else (`@host:port/`, `:port/`, `*`) would change whom we connect to.
            await _send_json(send, 400, {"error": "invalid_request_target", "message":
                                         "the request target must start with '/'"})
            return
        if scope["query_string"]:
            target += b"?" + scope["query_string"]
        path = target.decode("latin-1")
        headers = [(name.decode("latin-1"), value.decode("latin-1"))
                   for name, value in scope["headers"]
                   if name.decode("latin-1").lower() not in HOP_BY_HOP]
        headers.append(("accept-encoding", "identity"))
        try:
            # One deadline for the whole answer: httpx's timeout is per read, so an
            # upstream dribbling a byte a second would never time out (PITFALLS 1).
            async with asyncio.timeout(self.timeout_s):
                status, reason, answer_headers, answer = await self._forward(
                    scope["method"], path, headers, body)
        except (httpx.TimeoutException, TimeoutError):
            self.failed += 1
            await _send_json(send, 504, {"error": "upstream_timeout", "message":
                                         f"{self.upstream} did not answer in {self.timeout_s} s"})
            return
        except httpx.HTTPError as exc:
            self.failed += 1
            await _send_json(send, 502, {"error": "upstream_unavailable",
                                         "message": f"{self.upstream}: {type(exc).__name__}"})
            return
        interaction = redact_interaction(Interaction(
            RecordedRequest(scope["method"], self.uri_base + path, body, _header_lists(headers)),
            RecordedResponse(status, reason, _header_lists(answer_headers), answer),
        ))
        self.writer.write(stabilise_interaction(interaction) if self.stable else interaction)
        raw_headers = [(name.encode("latin-1"), value.encode("latin-1"))
                       for name, value in answer_headers]
        raw_headers.append((b"content-length", str(len(answer)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": answer})

    async def _forward(self, method: str, path: str, headers: list[tuple[str, str]],
                       body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False)
        # The target replaces only the path and query: scheme, host and port are the
        # upstream's whatever the client wrote (string concatenation let `@host/` win).
        upstream = httpx.URL(self.upstream)
        url = upstream.copy_with(raw_path=upstream.raw_path.rstrip(b"/") + path.encode("latin-1"))
        request = self._client.build_request(method, url, headers=headers, content=body)
        response = await self._client.send(request, stream=True)
        try:
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():  # decoded, should the upstream compress
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise httpx.DecodingError(f"answer larger than {MAX_BODY_BYTES} bytes")
                chunks.append(chunk)
        finally:
            await response.aclose()
        kept = [(name, value) for name, value in response.headers.multi_items()
                if name.lower() not in HOP_BY_HOP]
        return response.status_code, response.reason_phrase, kept, b"".join(chunks)


async def _send_json(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
