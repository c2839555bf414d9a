"""Opaque keyset cursors: where a sync stands, signed so tampering is a 400."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

_KEY = b"partnersim-cursor-v1"


class InvalidCursor(ValueError):
    """The cursor was not issued by this fake partner."""


@dataclass(frozen=True)
class CursorPosition:
    """The last (updated_at, order_id) served, and the sync's updated_since."""

    updated_at: str
    order_id: str
    since: str | None


def encode_cursor(position: CursorPosition) -> str:
    payload = json.dumps(
        [position.updated_at, position.order_id, position.since], separators=(",", ":")
    ).encode()
    tag = hmac.new(_KEY, payload, hashlib.sha256).digest()[:8]
    return base64.urlsafe_b64encode(tag + payload).decode().rstrip("=")


def decode_cursor(text: str) -> CursorPosition:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("not base64") from exc
    tag, payload = raw[:8], raw[8:]
    if len(tag) < 8 or not hmac.compare_digest(
        tag, hmac.new(_KEY, payload, hashlib.sha256).digest()[:8]
    ):
        raise InvalidCursor("bad signature")
    try:
        updated_at, order_id, since = json.loads(payload)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor("bad payload") from exc
    if not isinstance(updated_at, str) or not isinstance(order_id, str):
        raise InvalidCursor("bad payload")
    if since is not None and not isinstance(since, str):
        raise InvalidCursor("bad payload")
    return CursorPosition(updated_at, order_id, since)
