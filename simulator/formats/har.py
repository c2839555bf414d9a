"""HAR 1.2 (browsers, mitmproxy, Charles, Postman) read as recorded interactions.

Each entry becomes one interaction, in the file's order (repeated requests
replay in recorded order). Content is taken as HAR keeps it, decoded: text,
or base64 when `encoding: base64`; an entry without content has an empty
body. HTTP/2 pseudo-headers (`:authority`, `:status`) are dropped; response
cookies listed only under `cookies` become Set-Cookie headers. The entry's
`time` (ms) is kept as the answer's recorded duration. An entry that cannot
be served is named by its index (`log.entries[3].request.url: ...`) and the
file refused; one that got no answer (status 0: blocked or aborted in the
browser) is skipped, and named as skipped.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import orjson

from partnerkit.simulator.cassette import (
    ABSOLUTE_URL,
    MAX_DURATION_MS,
    MAX_PROBLEMS,
    CassetteError,
    Headers,
    Interaction,
    RecordedRequest,
    RecordedResponse,
)
from partnerkit.simulator.http_fields import header_name_problem, header_value_problem


def is_har(text: bytes, name: str = "") -> bool:
    """A HAR file: named `.har`, or a JSON object whose first key is `log`."""
    if name.lower().endswith(".har"):
        return True
    head = text[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{") and head[1:].lstrip().startswith(b'"log"')


class _Problems:
    def __init__(self) -> None:
        self.found: list[str] = []
        self.skipped: list[str] = []

    def skip(self, message: str) -> None:
        self.skipped.append(message)

    def fail(self, where: str, message: str) -> None:
        if len(self.found) < MAX_PROBLEMS:
            self.found.append(f"{where}: {message}")


def _headers(value: Any, where: str, problems: _Problems) -> Headers:
    headers: Headers = {}
    if value is None:
        return headers
    if not isinstance(value, list):
        problems.fail(where, "expected a list of {name, value}")
        return headers
    for index, item in enumerate(value):
        here = f"{where}[{index}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) \
                or not isinstance(item.get("value"), str):
            problems.fail(here, "expected {name, value} strings")
            continue
        name, text = item["name"], item["value"]
        if name.startswith(":"):
            continue  # an HTTP/2 pseudo-header: the status line and URL say it
        problem = header_name_problem(name) or header_value_problem(text)
        if problem is not None:
            problems.fail(here, problem)
            continue
        headers.setdefault(name, []).append(text)
    return headers


def _set_cookies(cookies: Any) -> list[str]:
    """Set-Cookie values for response cookies HAR lists without their header."""
    found = []
    for cookie in cookies if isinstance(cookies, list) else []:
        if isinstance(cookie, Mapping) and isinstance(cookie.get("name"), str) \
                and isinstance(cookie.get("value"), str):
            parts = [f"{cookie['name']}={cookie['value']}"]
            parts += [f"{label}={cookie[key]}" for key, label in
                      (("path", "Path"), ("domain", "Domain"), ("expires", "Expires"))
                      if isinstance(cookie.get(key), str) and cookie[key]]
            parts += [label for key, label in (("httpOnly", "HttpOnly"), ("secure", "Secure"))
                      if cookie.get(key) is True]
            if all(header_value_problem(part) is None for part in parts):
                found.append("; ".join(parts))
    return found


def _content(content: Any, where: str, problems: _Problems) -> bytes:
    if content is None:
        return b""
    if not isinstance(content, Mapping):
        problems.fail(where, "expected a mapping")
        return b""
    text = content.get("text")
    if text is None:
        return b""  # HAR keeps no content for this entry (often: too large, or cached)
    if not isinstance(text, str):
        problems.fail(f"{where}.text", "expected a string")
        return b""
    if content.get("encoding") == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            problems.fail(f"{where}.text", "not valid base64 (encoding: base64)")
            return b""
    return text.encode("utf-8", "surrogateescape")


def _request_body(post: Any, where: str, problems: _Problems) -> bytes:
    if post is None:
        return b""
    if not isinstance(post, Mapping):
        problems.fail(where, "expected a mapping")
        return b""
    if isinstance(post.get("text"), str):
        return _content(post, where, problems)
    return b""


def _entry(entry: Any, where: str, problems: _Problems) -> Interaction | None:
    if not isinstance(entry, Mapping):
        problems.fail(where, "expected an entry (a mapping)")
        return None
    request, response = entry.get("request"), entry.get("response")
    if not isinstance(request, Mapping) or not isinstance(response, Mapping):
        problems.fail(where, "expected `request` and `response` mappings")
        return None
    method, url = request.get("method"), request.get("url")
    if not isinstance(method, str) or not method.isalpha():
        problems.fail(f"{where}.request.method", f"expected an HTTP method, found {method!r:.60}")
        return None
    if not isinstance(url, str) or not ABSOLUTE_URL.match(url):
        problems.fail(f"{where}.request.url", f"expected an absolute http(s) URL, "
                                              f"found {url!r:.60}")
        return None
    status = response.get("status")
    if status == 0 or (type(status) is int and 100 <= status < 200):
        problems.skip(f"{where}: skipped, no final answer was recorded (status {status}: "
                      f"blocked, aborted, or an interim answer)")
        return None
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        problems.fail(f"{where}.response.status",
                      f"expected an HTTP status 200-599, found {status!r:.40}")
        return None
    headers = _headers(response.get("headers"), f"{where}.response.headers", problems)
    cookies = _set_cookies(response.get("cookies"))
    if cookies and not any(name.lower() == "set-cookie" for name in headers):
        headers["Set-Cookie"] = cookies
    duration: Any = entry.get("time")
    duration_ms = float(duration) if type(duration) in (int, float) \
        and 0 <= duration <= MAX_DURATION_MS else None
    reason = response.get("statusText")
    return Interaction(
        RecordedRequest(method.upper(), url,
                        _request_body(request.get("postData"), f"{where}.request.postData",
                                      problems),
                        _headers(request.get("headers"), f"{where}.request.headers", problems)),
        RecordedResponse(status, reason if isinstance(reason, str) else "", headers,
                         _content(response.get("content"), f"{where}.response.content",
                                  problems), duration_ms))


def parse_har(text: bytes | str, source: str = "har") -> list[Interaction]:
    """The entries of a HAR file as interactions, or CassetteError naming each bad entry."""
    return read_har(text, source)[0]


def read_har(text: bytes | str, source: str = "har") -> tuple[list[Interaction], list[str]]:
    """(interactions, the entries skipped for having no answer, each named by index);
    CassetteError names every entry that is wrong."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise CassetteError(source, [f"not valid JSON (a HAR file is JSON): {exc}"]) from None
    log = data.get("log") if isinstance(data, Mapping) else None
    entries = log.get("entries") if isinstance(log, Mapping) else None
    if not isinstance(entries, list):
        raise CassetteError(source, ["not a HAR file: expected {\"log\": {\"entries\": [...]}}"])
    problems = _Problems()
    interactions = []
    for index, entry in enumerate(entries):
        interaction = _entry(entry, f"log.entries[{index}]", problems)
        if interaction is not None:
            interactions.append(interaction)
    if problems.found:
        raise CassetteError(source, problems.found)
    return interactions, problems.skipped
