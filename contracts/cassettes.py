"""VCR.py settings for cassettes of the client against a fake partner.

Return `vcr_config()` from pytest-recording's `vcr_config` fixture and a
cassette is safe to commit and replays anywhere:

- every request is written against one origin (`http://partner.test`, in
  the URI and the Host header), and matching ignores host and port, so a
  cassette recorded on an ephemeral port replays (PITFALLS 10);
- secrets are `<redacted>` before anything is written: the Authorization
  header, `client_secret`, `access_token`/`refresh_token` (PITFALLS 12),
  with the same rules as `partnersim record` (simulator.redaction);
- volatile headers (`date`, `x-request-id`) are pinned, so re-recording an
  unchanged exchange gives an unchanged file and a diff shows real change.

It sets no `record_mode`: one set here would silently beat `--record-mode`
(PITFALLS 13).
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from partnerkit.simulator.cassette import VOLATILE_HEADERS, stable_headers
from partnerkit.simulator.redaction import (
    is_secret,
    redact_body,
    redact_header_lists,
    redact_query_string,
)

CASSETTE_ORIGIN = "http://partner.test"


def vcr_config(origin: str = CASSETTE_ORIGIN) -> dict[str, Any]:
    return {
        "before_record_request": partial(_scrub_request, origin.rstrip("/")),
        "before_record_response": _scrub_response,
        "match_on": ("method", "path", "query"),
        "decode_compressed_response": True,
    }


def _scrub_request(origin: str, request: Any) -> Any:
    parts = urlsplit(request.uri)
    base = urlsplit(origin)
    request.uri = urlunsplit((base.scheme, base.netloc, parts.path,
                              redact_query_string(parts.query), ""))
    for name in list(request.headers):
        lowered = name.lower()
        if is_secret(lowered):
            request.headers[name] = "<redacted>"
        elif (pinned := VOLATILE_HEADERS.get(lowered)) is not None:
            request.headers[name] = pinned
        elif lowered == "host":
            request.headers[name] = base.netloc
    body = request.body
    if isinstance(body, bytes) and body:
        request.body = redact_body(body, request.headers.get("content-type", ""))
    return request


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    headers = stable_headers(response.get("headers", {}))
    response["headers"] = redact_header_lists(headers)
    body = response.get("body", {}).get("string")
    if isinstance(body, bytes) and body:
        content_type = next((values[0] for name, values in headers.items()
                             if name.lower() == "content-type" and values), "")
        response["body"]["string"] = redact_body(body, content_type)
    return response
