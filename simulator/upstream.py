"""The one real partner behind `record` and `proxy`: where a request goes, with
which headers, what the client is told when the upstream fails, and how a
clean exchange is written to a cassette.

Only the configured upstream is ever contacted: every forwarded request goes
down a connection to the upstream's own host and port (`http1.ConnectionPool`),
whatever the request target or its `Host` header say; a target that is not a
plain path (absolute-form, `*`) or that has `.`/`..` segments is refused.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.types import Scope

from partnerkit.simulator.cassette import (
    CassetteWriter,
    Headers,
    Interaction,
    RecordedRequest,
    RecordedResponse,
    redact_interaction,
    stabilise_interaction,
)
from partnerkit.simulator.http1 import (
    ConnectionPool,
    UpstreamAnswer,
    UpstreamError,
    UpstreamTimeout,
)

#: Headers that belong to one hop, not to the exchange.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
    b"trailer", b"transfer-encoding", b"upgrade", b"proxy-connection",
})
#: Request headers not sent on: hop-by-hop, and those the proxy sets itself.
NOT_FORWARDED = HOP_BY_HOP | {b"host", b"content-length", b"accept-encoding"}
#: Answer headers not sent on (the answer's Content-Length is, when it has one).
NOT_ANSWERED = HOP_BY_HOP
FORWARDED = frozenset({b"forwarded", b"x-forwarded-for", b"x-forwarded-host",
                       b"x-forwarded-proto", b"x-forwarded-port"})
RawHeaders = list[tuple[bytes, bytes]]


class BadUpstream(ValueError):
    """An --upstream that is not an http(s) URL with a host."""


class BadTarget(ValueError):
    """A request target that could leave the upstream: it is answered 400 here."""


def check_upstream(url: str) -> str:
    """The upstream URL without a trailing slash, or BadUpstream saying why."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise BadUpstream(f"--upstream {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadUpstream(f"--upstream {url!r}: expected an http(s) URL such as "
                          "https://partner.example.com")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise BadUpstream(f"--upstream {url!r}: give scheme, host, port and path only "
                          "(no credentials, query or fragment)")
    return url.rstrip("/")


def header_lists(pairs: Iterable[tuple[bytes, bytes]]) -> Headers:
    headers: Headers = defaultdict(list)
    for name, value in pairs:
        headers[name.decode("latin-1")].append(value.decode("latin-1"))
    return dict(headers)


class Upstream:
    """The upstream partner: its URL, a connection pool made on the server's own loop,
    and the rules for what is forwarded to it."""

    def __init__(self, url: str, *, timeout_s: float = 30.0, forwarded: bool = False,
                 max_idle: int = 100) -> None:
        self.url = check_upstream(url)
        parts = urlsplit(self.url)
        assert parts.hostname is not None
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/").encode("latin-1")
        self.timeout_s = timeout_s
        self.forwarded = forwarded  # add X-Forwarded-* (the proxy does; the recorder not)
        self.max_idle = max_idle
        self.failed = 0
        self._pool: ConnectionPool | None = None

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            self._pool = ConnectionPool(self.scheme, self.host, self.port,
                                        timeout=self.timeout_s, max_idle=self.max_idle)
        return self._pool

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    def target(self, scope: Scope) -> bytes:
        """The request's path and query as sent on (relative to the upstream's base).
        BadTarget for a target that is not a path or has `.`/`..` segments."""
        raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        if not raw.startswith(b"/") or raw.startswith(b"//"):
            raise BadTarget("the request target must be a path such as /v1/orders")
        if b"." in raw or b"%" in raw or b"\\" in raw:
            segments = unquote(raw.decode("latin-1")).replace("\\", "/").split("/")
            if any(segment in ("..", ".") for segment in segments):
                raise BadTarget("the request path may not contain '.' or '..' segments")
        if any(byte < 0x21 or byte == 0x7F for byte in raw):
            raise BadTarget("the request target has control characters or spaces")
        if scope["query_string"]:
            raw += b"?" + scope["query_string"]
        return raw

    def request_headers(self, scope: Scope) -> RawHeaders:
        """The client's headers less the hop-by-hop ones; Host is the upstream's (the
        pool sets it) and bodies are asked for uncompressed, so that faults can rewrite
        them and secrets in them can be redacted."""
        headers: RawHeaders = []
        host = b""
        for name, value in scope["headers"]:
            name = name.lower()
            if name == b"host":
                host = value
            if name in NOT_FORWARDED or (self.forwarded and name in FORWARDED):
                continue
            headers.append((name, value))
        if self.forwarded:
            client = scope.get("client")
            if client:
                headers.append((b"x-forwarded-for", str(client[0]).encode("latin-1")))
            headers.append((b"x-forwarded-proto", str(scope.get("scheme", "http")).encode()))
            if host:
                headers.append((b"x-forwarded-host", host))
        headers.append((b"accept-encoding", b"identity"))
        return headers

    async def send(self, method: str, target: bytes, headers: RawHeaders,
                   body: bytes | AsyncIterator[bytes],
                   content_length: int | None = None) -> UpstreamAnswer:
        """Send a request on; UpstreamError (or UpstreamTimeout) when it fails."""
        return await self.pool.request(method, self.prefix + target, headers, body,
                                       content_length)

    def failure(self, exc: UpstreamError) -> tuple[int, dict[str, str]]:
        """What the client is told when the upstream did not answer."""
        self.failed += 1
        if isinstance(exc, UpstreamTimeout):
            return 504, {"error": "upstream_timeout",
                         "message": f"{self.url} did not answer in {self.timeout_s} s"}
        return 502, {"error": "upstream_unreachable", "message": f"{self.url}: {exc}"}

    async def probe(self) -> dict[str, Any]:
        """Whether the upstream answers at all (any HTTP answer to `GET /` counts)."""
        try:
            answer = await self.send("GET", b"/", [(b"accept-encoding", b"identity")], b"")
            async for _ in answer.body():
                pass
        except UpstreamError as exc:
            return {"url": self.url, "answers": False, "error": str(exc)}
        return {"url": self.url, "answers": True, "status": answer.status}


def answer_headers(answer: UpstreamAnswer) -> RawHeaders:
    """An upstream answer's headers as sent on: hop-by-hop ones left out."""
    return [(name, value) for name, value in answer.headers if name not in NOT_ANSWERED]


class CassetteTee:
    """Writes completed, clean exchanges to a cassette, redacted, one at a time."""

    def __init__(self, writer: CassetteWriter, uri_base: str, *, stable: bool = False) -> None:
        self.writer = writer
        self.uri_base = uri_base.rstrip("/")
        self.stable = stable

    @property
    def count(self) -> int:
        return self.writer.count

    def write(self, method: str, target: bytes, headers: RawHeaders, body: bytes,
              status: int, reason: str, answer_headers: RawHeaders, answer: bytes,
              duration_ms: float | None = None) -> None:
        interaction = redact_interaction(Interaction(
            RecordedRequest(method, self.uri_base + target.decode("latin-1"), body,
                            header_lists(headers)),
            RecordedResponse(status, reason, header_lists(
                (name, value) for name, value in answer_headers if name != b"content-length"),
                answer, None if duration_ms is None or self.stable else round(duration_ms, 1)),
        ))
        self.writer.write(stabilise_interaction(interaction) if self.stable else interaction)

