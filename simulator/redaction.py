"""What counts as a secret, and how it is blanked before anything is kept.

One list for the journal, the recording proxy and the test suite's VCR
hooks, so a secret that one of them hides is hidden by all. Every secret
becomes the string `<redacted>`: a JSON body stays valid JSON of the same
shape, a form stays a form, so a redacted cassette still replays.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

REDACTED = "<redacted>"
FORM = "application/x-www-form-urlencoded"
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
})
#: Names of secret form fields, query parameters and JSON body fields.
SECRET_FIELDS = frozenset({
    "client_secret", "access_token", "refresh_token", "id_token", "token", "password",
})


def redact_header(name: str, value: str) -> str:
    """For the journal: keep the scheme so a reader sees *how* a client authenticated."""
    if name.lower() not in SECRET_HEADERS:
        return value
    scheme, _, credentials = value.partition(" ")
    if credentials and scheme.lower() in ("bearer", "basic"):
        return f"{scheme} {REDACTED}"
    return REDACTED


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    redacted = dict(headers)
    for name in SECRET_HEADERS.intersection(headers):
        redacted[name] = redact_header(name, headers[name])
    return redacted


def redact_header_lists(headers: dict[str, list[str]]) -> dict[str, list[str]]:
    """For cassettes (VCR.py's {name: [values]}): a secret header is `<redacted>` whole."""
    return {name: [REDACTED] * len(values) if name.lower() in SECRET_HEADERS else values
            for name, values in headers.items()}


def redact_query(query: dict[str, str]) -> dict[str, str]:
    return {name: REDACTED if name in SECRET_FIELDS else value for name, value in query.items()}


def redact_query_string(query_string: str) -> str:
    pairs = parse_qsl(query_string, keep_blank_values=True)
    if not any(name in SECRET_FIELDS for name, _ in pairs):
        return query_string
    return urlencode([(name, REDACTED if name in SECRET_FIELDS else value)
                      for name, value in pairs], safe="<>")


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: REDACTED if key in SECRET_FIELDS else _redact_json(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_json(item) for item in value]
    return value


def redact_body(body: bytes, content_type: str) -> bytes:
    """A body with its secret fields blanked: JSON at any depth, or a form.

    A body that is neither (or does not parse as what it claims) is kept
    as it is: it has no named fields to blank.
    """
    if not body:
        return body
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not media_type:  # unlabelled: whichever of the two it parses as
        as_json = redact_body(body, "application/json")
        return as_json if as_json != body else redact_body(body, FORM)
    if media_type == FORM:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return body
        return redact_query_string(text).encode()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return body
        redacted = _redact_json(payload)
        if redacted == payload:
            return body
        return json.dumps(redacted, separators=(",", ":"), ensure_ascii=False).encode()
    return body
