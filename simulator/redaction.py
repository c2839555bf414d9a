"""What counts as a secret, and how it is blanked before anything is kept.

One rule set for the journal, the recording proxy and the test suite's VCR
hooks, so a secret that one of them hides is hidden by all. Every secret
becomes the string `<redacted>`: a JSON body stays valid JSON of the same
shape, a form stays a form, a multipart body keeps its parts, so a redacted
cassette still replays.

A name is a secret when, compared without case, `-` or `_` (so `clientSecret`,
`Client_Secret` and `client-secret` are one name), it is in `SECRET_NAMES` or
ends with one of `SECRET_SUFFIXES` (`x-auth-token`, `csrf_token`,
`db_password`). Bodies are searched by what they contain, not by their label:
JSON labelled `text/plain`, a form with a byte that is not UTF-8 and
`multipart/form-data` parts are all redacted. Text that is neither JSON nor a
form (XML, free text) has no named fields and is kept as it is. `add_secret_names`
extends the rules (`--redact NAME` on the command line).
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode

REDACTED = "<redacted>"
FORM = "application/x-www-form-urlencoded"

#: The defaults, as written in the README (normalised: lowercase, no `-` or `_`).
DEFAULT_SECRET_NAMES = frozenset({
    "authorization", "proxyauthorization", "cookie", "setcookie",
    "apikey", "xapikey", "apisecret", "clientsecret", "clientassertion",
    "accesstoken", "refreshtoken", "idtoken", "token", "password", "passwd", "secret",
    "xauthtoken", "authtoken", "sessionid", "privatekey", "accesskey", "secretkey",
})
DEFAULT_SECRET_SUFFIXES = ("token", "secret", "password", "apikey")

#: Header names of the defaults as clients write them (kept for callers that test with `in`).
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
    "x-auth-token", "x-access-token",
})
#: Field names of the defaults as clients write them (for `in` tests: the rule is wider).
SECRET_FIELDS = frozenset({
    "client_secret", "access_token", "refresh_token", "id_token", "token", "password",
    "api_key", "apikey", "client_assertion",
})

_lock = threading.Lock()
_extra_names: frozenset[str] = frozenset()
_SEPARATORS = re.compile(r"[-_\s]")


def normalise(name: str) -> str:
    """`Client_Secret`, `clientSecret`, `client-secret` -> `clientsecret`."""
    return _SEPARATORS.sub("", name).lower()


def add_secret_names(names: list[str] | tuple[str, ...]) -> None:
    """Treat these names as secrets too, everywhere, from now on (process-wide)."""
    global _extra_names
    with _lock:
        _extra_names = _extra_names | {normalise(name) for name in names if name.strip()}
        _forget_known()


def _is_secret(name: str) -> bool:
    key = normalise(name)
    return (key in DEFAULT_SECRET_NAMES or key in _extra_names
            or key.endswith(DEFAULT_SECRET_SUFFIXES))


_known: dict[str, bool] = {}  # a bounded memo: the same few names come every request
_KNOWN_MAX = 4096


def is_secret(name: str) -> bool:
    """Whether a header, query, form or JSON field of this name holds a secret."""
    known = _known.get(name)
    if known is None:
        known = _is_secret(name)
        if len(_known) < _KNOWN_MAX and len(name) <= 256:
            _known[name] = known
    return known


def _forget_known() -> None:
    _known.clear()


def redact_header(name: str, value: str) -> str:
    """For the journal: keep the scheme so a reader sees *how* a client authenticated."""
    return _redacted_value(value) if is_secret(name) else value


def _redacted_value(value: str) -> str:
    scheme, _, credentials = value.partition(" ")
    if credentials and scheme.lower() in ("bearer", "basic"):
        return f"{scheme} {REDACTED}"
    return REDACTED


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    redacted = dict(headers)
    known = _known
    for name, value in headers.items():
        secret = known.get(name)
        if secret is None:
            secret = is_secret(name)
        if secret:
            redacted[name] = _redacted_value(value)
    return redacted


def redact_header_lists(headers: dict[str, list[str]]) -> dict[str, list[str]]:
    """For cassettes (VCR.py's {name: [values]}): a secret header is `<redacted>` whole."""
    return {name: [REDACTED] * len(values) if is_secret(name) else values
            for name, values in headers.items()}


def redact_query(query: dict[str, str]) -> dict[str, str]:
    return {name: REDACTED if is_secret(name) else value for name, value in query.items()}


def redact_query_string(query_string: str) -> str:
    """A query string (or form) with secret values blanked; unchanged when it has none.
    Bytes that are not UTF-8 survive the round trip (surrogateescape)."""
    if "=" not in query_string:
        return query_string
    pairs = parse_qsl(query_string, keep_blank_values=True, errors="surrogateescape")
    if not any(is_secret(name) for name, _ in pairs):
        return query_string
    return urlencode([(name, REDACTED if is_secret(name) else value) for name, value in pairs],
                     safe="<>", errors="surrogateescape")


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: REDACTED if is_secret(key) else _redact_json(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_json(item) for item in value]
    return value


def _redact_json_text(text: str) -> str | None:
    """The JSON text redacted, or None when it is not JSON or holds no secret."""
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        return None
    redacted = _redact_json(payload)
    if redacted == payload:
        return None
    return json.dumps(redacted, separators=(",", ":"), ensure_ascii=False)


_BOUNDARY = re.compile(r'boundary="?([^";,]+)"?', re.IGNORECASE)
_PART_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)
_PART_TYPE = re.compile(rb"^content-type:\s*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


def _redact_multipart(body: bytes, content_type: str) -> bytes:
    found = _BOUNDARY.search(content_type)
    if found is None:
        return body
    delimiter = b"--" + found.group(1).encode("latin-1")
    pieces = body.split(delimiter)
    changed = False
    for index in range(1, len(pieces)):
        head, separator, content = pieces[index].partition(b"\r\n\r\n")
        if not separator:
            continue
        trailer = b"\r\n" if content.endswith(b"\r\n") else b""
        value = content[:len(content) - len(trailer)]
        name = _PART_NAME.search(head)
        if name is not None and is_secret(name.group(1).decode("latin-1")):
            new = REDACTED.encode()
        else:
            part_type = _PART_TYPE.search(head)
            new = redact_body(value, part_type.group(1).decode("latin-1") if part_type else "")
        if new != value:
            pieces[index] = head + separator + new + trailer
            changed = True
    return delimiter.join(pieces) if changed else body


def redact_body(body: bytes, content_type: str) -> bytes:
    """A body with its secret fields blanked: JSON at any depth, a form, multipart parts.

    Found by content as well as by label: JSON or a form labelled `text/plain`
    (or not labelled at all) is redacted like one labelled as such. A body that
    is none of these is kept as it is: it has no named fields to blank."""
    if not body:
        return body
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type.startswith("multipart/"):
        return _redact_multipart(body, content_type)
    if media_type.startswith(("image/", "audio/", "video/", "font/")) or \
            media_type in ("application/octet-stream", "application/zip", "application/gzip",
                           "application/pdf"):
        return body
    text = body.decode("utf-8", "surrogateescape")
    if text.lstrip()[:1] in ("{", "["):  # JSON parses as nothing else: safe whatever the label
        redacted = _redact_json_text(text)
        if redacted is not None:
            return redacted.encode("utf-8", "surrogateescape")
    if media_type in ("", FORM, "text/plain") and "=" in text:
        form = redact_query_string(text.strip())
        if form != text.strip():
            return form.encode("utf-8", "surrogateescape")
    return body
