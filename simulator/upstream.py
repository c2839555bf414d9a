"""The one real partner behind `record` and `proxy`: where a request goes, with
which headers, what the client is told when the upstream fails, and how a
clean exchange is written to a cassette.

Only the configured upstream is ever contacted: the scheme, host and port of
every forwarded request are the upstream's own, whatever the request target or
its `Host` header say; a target that is not a plain path (absolute-form, `*`)
or that climbs out of the upstream's base path with `..` is refused.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

if importlib.util.find_spec("sniffio") is None:
    # httpcore tries `import sniffio` on every request; without sniffio installed (anyio
    # no longer needs it) each try searches sys.path again: ~0.2 ms of every proxied
    # request. A None in sys.modules makes the failing import fail at once, as before.
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

from partnerkit.simulator.cassette import (
    CassetteWriter,
    Headers,
    Interaction,
    RecordedRequest,
    RecordedResponse,
    redact_interaction,
    stabilise_interaction,
)

Scope = Mapping[str, Any]

#: Headers that belong to one hop, not to the exchange, plus those the proxy sets itself.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length", "accept-encoding",
    "content-encoding", "proxy-connection",
})
FORWARDED = frozenset({"forwarded", "x-forwarded-for", "x-forwarded-host",
                       "x-forwarded-proto", "x-forwarded-port"})


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


def header_lists(pairs: Iterable[tuple[str, str]]) -> Headers:
    headers: Headers = defaultdict(list)
    for name, value in pairs:
        headers[name].append(value)
    return dict(headers)


class Upstream:
    """The upstream partner: its URL, an HTTP client made on the server's own loop,
    and the rules for what is forwarded to it."""

    def __init__(self, url: str, *, timeout_s: float = 30.0, forwarded: bool = False,
                 max_connections: int = 100) -> None:
        self.url = check_upstream(url)
        self.base = httpx.URL(self.url)
        self.prefix = self.base.raw_path.split(b"?", 1)[0].rstrip(b"/")
        self.timeout_s = timeout_s
        self.forwarded = forwarded  # add X-Forwarded-* (the proxy does; the recorder not)
        self.max_connections = max_connections
        self.failed = 0
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # trust_env=False: no proxy or netrc from the environment decides where we go.
            self._client = httpx.AsyncClient(
                timeout=self.timeout_s, follow_redirects=False, trust_env=False,
                limits=httpx.Limits(max_connections=self.max_connections,
                                    max_keepalive_connections=self.max_connections))
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def target(self, scope: Scope) -> str:
        """The request's path and query as sent on (relative to the upstream's base).
        BadTarget for a target that is not a path or climbs out with `..`."""
        raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        if not raw.startswith(b"/") or raw.startswith(b"//"):
            raise BadTarget("the request target must be a path such as /v1/orders")
        segments = unquote(raw.decode("latin-1")).replace("\\", "/").split("/")
        if any(segment in ("..", ".") for segment in segments):
            raise BadTarget("the request path may not contain '.' or '..' segments")
        if scope["query_string"]:
            raw += b"?" + scope["query_string"]
        return raw.decode("latin-1")

    def url_for(self, target: str) -> httpx.URL:
        # The upstream's scheme, host and port, always; only the path and query are the
        # request's, so nothing in a request can point this proxy elsewhere.
        return self.base.copy_with(raw_path=self.prefix + target.encode("latin-1"))

    def request_headers(self, scope: Scope) -> list[tuple[str, str]]:
        """The client's headers less the hop-by-hop ones; Host becomes the upstream's
        (httpx sets it from the URL) and bodies are asked for uncompressed, so that
        faults can rewrite them and secrets in them can be redacted."""
        headers = []
        host = ""
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            if name == "host":
                host = value
            if name in HOP_BY_HOP or (self.forwarded and name in FORWARDED):
                continue
            headers.append((name, value))
        if self.forwarded:
            client = scope.get("client")
            if client:
                headers.append(("x-forwarded-for", str(client[0])))
            headers.append(("x-forwarded-proto", str(scope.get("scheme", "http"))))
            if host:
                headers.append(("x-forwarded-host", host))
        headers.append(("accept-encoding", "identity"))
        return headers

    def failure(self, exc: httpx.HTTPError) -> tuple[int, dict[str, str]]:
        """What the client is told when the upstream did not answer."""
        self.failed += 1
        if isinstance(exc, httpx.TimeoutException):
            return 504, {"error": "upstream_timeout",
                         "message": f"{self.url} did not answer in {self.timeout_s} s"}
        return 502, {"error": "upstream_unreachable",
                     "message": f"{self.url}: {type(exc).__name__}"}

    async def probe(self, timeout_s: float = 2.0) -> dict[str, Any]:
        """Whether the upstream answers at all (any HTTP answer counts)."""
        try:
            response = await self.client.get(self.url + "/", timeout=min(timeout_s,
                                                                          self.timeout_s))
        except httpx.HTTPError as exc:
            return {"url": self.url, "answers": False, "error": type(exc).__name__}
        return {"url": self.url, "answers": True, "status": response.status_code}


def answer_headers(response: httpx.Response) -> list[tuple[str, str]]:
    """An upstream answer's headers as sent on: hop-by-hop ones left out."""
    return [(name, value) for name, value in response.headers.multi_items()
            if name.lower() not in HOP_BY_HOP]


class CassetteTee:
    """Writes completed, clean exchanges to a cassette, redacted, one at a time."""

    def __init__(self, writer: CassetteWriter, uri_base: str, *, stable: bool = False) -> None:
        self.writer = writer
        self.uri_base = uri_base.rstrip("/")
        self.stable = stable

    @property
    def count(self) -> int:
        return self.writer.count

    def write(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes,
              status: int, reason: str, answer_headers: list[tuple[str, str]],
              answer: bytes) -> None:
        interaction = redact_interaction(Interaction(
            RecordedRequest(method, self.uri_base + target, body, header_lists(headers)),
            RecordedResponse(status, reason, header_lists(answer_headers), answer),
        ))
        self.writer.write(stabilise_interaction(interaction) if self.stable else interaction)
