"""Broken and drifted bodies: pure functions from a good answer to a bad one.

Each `malformed` kind and each `schema_drift` change is here, so "what does
an invalid_utf8 body look like?" has one answer, testable without a server.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from typing import Any

from partnerkit.simulator.answer import JSON_TYPE
from partnerkit.simulator.scenario import SchemaDrift

HTML_ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n"
)
DEEP_NESTING_LEVELS = 100_000
UNKNOWN_STATES = ("on_hold", "partially_shipped", "disputed", "archived")
EXTRA_FIELDS = {"x_partner_note": "drift", "loyalty_tier": "gold", "_links": {"self": "#"}}

_TOKEN_END = re.compile(rb'[,:\[{]')
_FIRST_STRING_VALUE = re.compile(rb':"')
_FIRST_NUMBER_VALUE = re.compile(rb':(-?\d+(?:\.\d+)?)(?=[,}\]])')
_FIRST_KEY = re.compile(rb'^\s*\{\s*"((?:[^"\\]|\\.)*)"\s*:')

HTML = b"text/html; charset=utf-8"


def malformed_body(kind: str, body: bytes) -> tuple[bytes, bytes]:
    """(broken body, content type) for a `malformed` kind, from a good JSON body.

    `content_length_mismatch` is not here: its body is fine, its framing lies.
    """
    if kind == "truncated":
        return _truncate_at_token(body), JSON_TYPE
    if kind == "invalid_json":
        # A trailing comma, the classic hand-rolled serializer bug.
        broken = body.rstrip()[:-1] + b",}" if body.rstrip().endswith(b"}") else body + b","
        return broken, JSON_TYPE
    if kind == "html_error_page":
        return HTML_ERROR_PAGE, HTML
    if kind == "empty_body":
        return b"", JSON_TYPE
    if kind == "wrong_content_type":
        return body, HTML
    if kind == "invalid_utf8":
        found = _FIRST_STRING_VALUE.search(body)
        at = found.end() if found else 1
        return body[:at] + b"\xff\xfe" + body[at:], JSON_TYPE
    if kind == "bom":
        return b"\xef\xbb\xbf" + body, JSON_TYPE
    if kind == "nan":
        found = _FIRST_NUMBER_VALUE.search(body)
        if found is None:
            return b'{"value":NaN}', JSON_TYPE
        return body[: found.start(1)] + b"NaN" + body[found.end(1):], JSON_TYPE
    if kind == "duplicate_keys":
        found = _FIRST_KEY.match(body)
        if found is None:
            return b'{"error":"x","error":"y"}', JSON_TYPE
        # The key appears twice; a lenient parser silently keeps the later value.
        return b'{"' + found.group(1) + b'":null,' + body.lstrip()[1:], JSON_TYPE
    if kind == "deep_nesting":
        return b"[" * DEEP_NESTING_LEVELS + b"]" * DEEP_NESTING_LEVELS, JSON_TYPE
    raise ValueError(f"unknown malformed kind {kind!r}")


def _truncate_at_token(body: bytes) -> bytes:
    """Cut just after a structural token near the middle: parseable up to there."""
    middle = max(1, len(body) // 2)
    found = _TOKEN_END.search(body, middle) or _TOKEN_END.search(body)
    cut = found.end() if found else middle
    return body[: min(cut, len(body) - 1)] if len(body) > 1 else b""


# --- schema drift ---------------------------------------------------------------

_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[(?:\d+|\*)\])*)")


def _steps(path: str) -> list[str | int | None]:
    """"lines[0].qty" -> ["lines", 0, "qty"]; "[*]" becomes None (every item)."""
    steps: list[str | int | None] = []
    for segment in path.split("."):
        found = _SEGMENT.fullmatch(segment)
        if found is None:
            raise ValueError(f"bad field path {path!r}")
        steps.append(found.group(1))
        for index in re.findall(r"\[(\d+|\*)\]", found.group(2)):
            steps.append(None if index == "*" else int(index))
    return steps


def _parents(node: Any, steps: list[str | int | None]) -> Iterator[tuple[Any, str | int]]:
    """Every (container, key) the path reaches; missing branches are skipped."""
    if not steps:
        return
    head, rest = steps[0], steps[1:]
    keys: list[str | int]
    if head is None:
        keys = list(range(len(node))) if isinstance(node, list) else []
    elif isinstance(head, int):
        keys = [head] if isinstance(node, list) and head < len(node) else []
    else:
        keys = [head] if isinstance(node, dict) and head in node else []
    for key in keys:
        if rest:
            yield from _parents(node[key], rest)
        else:
            yield node, key


def _swap_type(value: Any) -> Any:
    """A different JSON type: a string for a number, an object for a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return {"value": value}
    if value is None:
        return 0
    return "[object]" if isinstance(value, dict) else "[array]"


def drift_record(record: dict[str, Any], drift: SchemaDrift, rng: random.Random) -> None:
    """Apply a schema drift to one JSON object, in place."""
    for path in drift.missing:
        for parent, key in list(_parents(record, _steps(path))):
            del parent[key]
    for path in drift.wrong_type:
        for parent, key in _parents(record, _steps(path)):
            parent[key] = _swap_type(parent[key])
    for path in drift.null:
        for parent, key in _parents(record, _steps(path)):
            parent[key] = None
    if drift.unknown_enum is not None:
        for parent, key in _parents(record, _steps(drift.unknown_enum)):
            parent[key] = rng.choice(UNKNOWN_STATES)
    if drift.extra:
        record.update(EXTRA_FIELDS)
        for line in record.get("lines", ()) if isinstance(record.get("lines"), list) else ():
            if isinstance(line, dict):
                line["warehouse"] = "DE-1"
        if isinstance(record.get("customer"), dict):
            record["customer"]["segment"] = "b2c"


def drifted_body(body: bytes, drift: SchemaDrift, rng: random.Random) -> bytes:
    """Drift every ORDER in a body: each item of a page's `data`, or the body itself."""
    try:
        document = json.loads(body)
    except ValueError:
        return body
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        for item in document["data"]:
            if isinstance(item, dict):
                drift_record(item, drift, rng)
    elif isinstance(document, dict):
        drift_record(document, drift, rng)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
