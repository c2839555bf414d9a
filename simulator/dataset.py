"""The fake partner's orders: generated from a seed, paged by a keyset cursor.

Everything here is deterministic: the same seed gives the same orders and the
same bytes, in any process. Drift operations (insert, update, delete) mutate
the store the way a live partner database changes under an open cursor.
"""

from __future__ import annotations

import bisect
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from partnerkit.simulator.cursor import CursorPosition

#: Orders are spread over the three weeks before this instant.
EPOCH_END = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
SPREAD_SECONDS = 21 * 24 * 3600

STATES = ("new", "paid", "shipped", "cancelled", "refunded")
STATE_WEIGHTS = (15, 40, 30, 10, 5)
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "SEK", "PLN")
CURRENCY_WEIGHTS = (45, 25, 15, 5, 5, 5)
FIRST_NAMES = (
    "ada", "grace", "alan", "edsger", "barbara", "donald", "margaret", "ken", "radia",
    "tim", "frances", "john", "katherine", "linus", "guido", "hedy", "dennis", "sophie",
)
DOMAINS = ("example.com", "example.org", "mail.example.net", "shop.example")
PRODUCTS = (
    "MUG", "TEE", "CAP", "BAG", "PEN", "NOTE", "LAMP", "SOCK", "BOTTLE", "STICKER",
    "HOODIE", "POSTER",
)


def to_rfc3339(moment: datetime) -> str:
    """Format as the partner does: UTC, whole seconds, a trailing Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; naive ones are refused (ValueError)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("timestamp needs a timezone offset")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before the first representable UTC
        raise ValueError("timestamp out of range") from None


@dataclass(frozen=True)
class DatasetSpec:
    """How big the generated data set is and how it pages."""

    orders: int = 250
    page_size: int = 50
    token_ttl_s: int = 3600


def _order_id(number: int) -> str:
    return f"ORD-{number:06d}"


def generate_order(rng: random.Random, number: int, updated_at: datetime) -> dict[str, Any]:
    """One realistic partner ORDER, as the partner spells it."""
    line_count = rng.choices((1, 2, 3, 4, 5), weights=(30, 30, 20, 12, 8))[0]
    lines: list[dict[str, Any]] = []
    subtotal = 0
    for _ in range(line_count):
        product = rng.choice(PRODUCTS)
        qty = rng.choices((1, 2, 3, 5, 10), weights=(55, 25, 10, 6, 4))[0]
        unit_price = rng.randint(99, 25_000)
        subtotal += qty * unit_price
        lines.append({"sku": f"SKU-{product}-{rng.randint(1, 40):02d}", "qty": qty,
                      "unit_price_cents": unit_price})
    customer_number = rng.randint(1, max(10, number // 2))
    guest = rng.random() < 0.12
    email = None if guest else (
        f"{rng.choice(FIRST_NAMES)}.{customer_number}@{rng.choice(DOMAINS)}"
    )
    return {
        "order_id": _order_id(number),
        "state": rng.choices(STATES, weights=STATE_WEIGHTS)[0],
        "subtotal_cents": subtotal,
        "currency": rng.choices(CURRENCIES, weights=CURRENCY_WEIGHTS)[0],
        "customer": {"id": f"CUS-{customer_number}", "email": email},
        "lines": lines,
        "updated_at": to_rfc3339(updated_at),
    }


def generate_orders(seed: int, count: int) -> list[dict[str, Any]]:
    """The data set of a seed. About one order in ten shares its timestamp
    with another, so the keyset's tie-breaker on order_id matters."""
    rng = random.Random(f"partnersim-dataset-{seed}")
    start = EPOCH_END - timedelta(seconds=SPREAD_SECONDS)
    orders = []
    previous: datetime | None = None
    for number in range(1, count + 1):
        if previous is not None and rng.random() < 0.1:
            updated_at = previous
        else:
            updated_at = start + timedelta(seconds=rng.randrange(SPREAD_SECONDS))
        previous = updated_at
        orders.append(generate_order(rng, number, updated_at))
    return orders


def encode_order(order: dict[str, Any]) -> bytes:
    return json.dumps(order, separators=(",", ":"), ensure_ascii=False).encode()


def _sort_key(order: dict[str, Any]) -> tuple[str, str]:
    # RFC 3339 with a fixed Z suffix sorts correctly as text.
    return (order["updated_at"], order["order_id"])


@dataclass(frozen=True)
class Page:
    orders: tuple[dict[str, Any], ...]
    prefix: bytes  # '{"data":[...]' — the API appends next_cursor
    last: CursorPosition | None  # where the next page starts, None at the end


#: The most orders a data set holds, generated or inserted by drift.
MAX_ORDERS = 200_000


class OrderStore:
    """The partner's orders, kept sorted by (updated_at, order_id).

    Each order's JSON bytes are cached, so serving a page is a join; a
    mutation re-sorts (drift is rare, reads are hot).
    """

    def __init__(self, orders: Iterable[dict[str, Any]]) -> None:
        self._by_id: dict[str, dict[str, Any]] = {}
        self._encoded: dict[str, bytes] = {}
        for order in orders:
            self._put(order)
        self._next_number = len(self._by_id) + 1
        self.not_inserted = 0  # drift inserts refused at MAX_ORDERS (shown in health)
        self._resort()

    def _put(self, order: dict[str, Any]) -> None:
        self._by_id[order["order_id"]] = order
        self._encoded[order["order_id"]] = encode_order(order)

    def _resort(self) -> None:
        self._sorted = sorted(self._by_id.values(), key=_sort_key)
        self._keys = [_sort_key(order) for order in self._sorted]

    def __len__(self) -> int:
        return len(self._sorted)

    def get(self, order_id: str) -> bytes | None:
        return self._encoded.get(order_id)

    def order(self, order_id: str) -> dict[str, Any] | None:
        return self._by_id.get(order_id)

    def ids(self) -> list[str]:
        return [order["order_id"] for order in self._sorted]

    def _start_index(self, since: str | None, after: CursorPosition | None) -> int:
        if after is not None:
            return bisect.bisect_right(self._keys, (after.updated_at, after.order_id))
        if since is not None:
            return bisect.bisect_left(self._keys, (since, ""))
        return 0

    def page(self, since: str | None, after: CursorPosition | None, limit: int) -> Page:
        """One page of the keyset: orders after `after` (or from `since`)."""
        start = self._start_index(since, after)
        if after is not None and since is not None:
            start = max(start, bisect.bisect_left(self._keys, (since, "")))
        chosen = self._sorted[start : start + limit]
        more = start + limit < len(self._sorted)
        body = b'{"data":[' + b",".join(self._encoded[o["order_id"]] for o in chosen) + b"]"
        last = None
        if chosen and more:
            last = CursorPosition(chosen[-1]["updated_at"], chosen[-1]["order_id"], since)
        return Page(tuple(chosen), body, last)

    # --- drift -----------------------------------------------------------------
    def served_before(self, position: CursorPosition) -> list[dict[str, Any]]:
        """Orders a sync at `position` has already been given."""
        end = bisect.bisect_right(self._keys, (position.updated_at, position.order_id))
        start = self._start_index(position.since, None)
        return self._sorted[start:end]

    def not_yet_served(self, position: CursorPosition) -> list[dict[str, Any]]:
        end = bisect.bisect_right(self._keys, (position.updated_at, position.order_id))
        return self._sorted[end:]

    def insert_behind(self, rng: random.Random, position: CursorPosition, count: int) -> list[str]:
        """New orders whose keys fall among pages already served."""
        if count > MAX_ORDERS - len(self):  # drift never grows the set past its cap
            self.not_inserted += count - max(0, MAX_ORDERS - len(self))
            count = max(0, MAX_ORDERS - len(self))
        served = self.served_before(position)
        low = parse_rfc3339(served[0]["updated_at"] if served else position.updated_at)
        high = parse_rfc3339(position.updated_at)
        span = max(0, int((high - low).total_seconds()))
        created = []
        for _ in range(count):
            moment = low + timedelta(seconds=rng.randint(0, span))
            order = generate_order(rng, self._next_number, moment)
            self._next_number += 1
            order["order_id"] = f"ORD-9{self._next_number:05d}"
            self._put(order)
            created.append(order["order_id"])
        self._resort()
        return created

    def update_served(self, rng: random.Random, position: CursorPosition, count: int) -> list[str]:
        """Orders already served get an updated_at newer than every other one."""
        served = self.served_before(position)
        chosen = rng.sample(served, min(count, len(served)))
        newest = parse_rfc3339(self._sorted[-1]["updated_at"]) if self._sorted else EPOCH_END
        for offset, order in enumerate(chosen, start=1):
            changed = dict(order, updated_at=to_rfc3339(newest + timedelta(seconds=offset)))
            self._put(changed)
        self._resort()
        return [order["order_id"] for order in chosen]

    def delete_unserved(self, rng: random.Random, position: CursorPosition,
                        count: int) -> list[str]:
        """Orders a sync has not reached yet vanish."""
        pending = self.not_yet_served(position)
        chosen = rng.sample(pending, min(count, len(pending)))
        for order in chosen:
            del self._by_id[order["order_id"]]
            del self._encoded[order["order_id"]]
        self._resort()
        return [order["order_id"] for order in chosen]


def build_store(seed: int, spec: DatasetSpec) -> OrderStore:
    return OrderStore(generate_orders(seed, spec.orders))
