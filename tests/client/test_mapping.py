"""M1 and M2 on hand-picked payloads (the property tests generate many more)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerkit.client import Order, OrderLine, OrderStatus
from partnerkit.client.errors import PartnerContractError
from partnerkit.client.mapping import (
    _Invalid,
    _order,
    _valid_order,
    map_order,
    map_page,
    map_token,
    parse_json,
)
from partnerkit.contracts.strategies import broken_partner_orders, partner_orders

ORDER: dict[str, Any] = {
    "order_id": "ORD-000123", "state": "paid", "subtotal_cents": 8801, "currency": "EUR",
    "customer": {"id": "CUS-42", "email": "ada@example.com"},
    "lines": [{"sku": "SKU-1", "qty": 2, "unit_price_cents": 4400},
              {"sku": "SKU-2", "qty": 1, "unit_price_cents": 1}],
    "updated_at": "2026-11-20T10:15:00Z",
}


def test_m1_a_valid_order_maps_to_our_shape_with_exact_values() -> None:
    assert map_order(ORDER) == Order(
        id="ORD-000123", status=OrderStatus.PAID, subtotal=Decimal("88.01"), currency="EUR",
        customer_email="ada@example.com",
        lines=(OrderLine("SKU-1", 2, Decimal("44.00")), OrderLine("SKU-2", 1, Decimal("0.01"))),
        updated_at=datetime(2026, 11, 20, 10, 15, tzinfo=UTC),
    )


def test_m1_guest_checkout_offsets_and_extra_fields() -> None:
    order = copy.deepcopy(ORDER)
    order["customer"]["email"] = None
    order["updated_at"] = "2026-11-20T12:15:00.250+02:00"
    order["loyalty_tier"] = "gold"
    order["lines"][0]["warehouse"] = "DE-1"
    mapped = map_order(order)
    assert mapped.customer_email is None
    assert mapped.updated_at == datetime(2026, 11, 20, 10, 15, 0, 250_000, tzinfo=UTC)
    assert mapped.updated_at.tzinfo is UTC


def test_m1_money_is_exact_for_large_amounts() -> None:
    order = copy.deepcopy(ORDER)
    order["subtotal_cents"] = 10**18 + 1
    assert map_order(order).subtotal == Decimal("10000000000000000.01")


def _broken(path: str, value: Any = ...) -> dict[str, Any]:
    order = copy.deepcopy(ORDER)
    parts = path.replace("[", ".").replace("]", "").split(".")
    parent: Any = order
    for part in parts[:-1]:
        parent = parent[int(part)] if part.isdigit() else parent[part]
    last: Any = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
    if value is ...:
        del parent[last]
    else:
        parent[last] = value
    return order


@pytest.mark.parametrize(("path", "value", "fragment"), [
    ("order_id", ..., "missing"),
    ("order_id", 123, "expected a string"),
    ("order_id", "", "must not be empty"),
    ("state", "on_hold", "unknown state"),
    ("state", None, "expected a string"),
    ("subtotal_cents", "8801", "expected an integer"),
    ("subtotal_cents", 88.01, "expected an integer"),
    ("subtotal_cents", True, "expected an integer"),
    ("subtotal_cents", -1, "at least 0"),
    ("currency", "eur", "ISO 4217"),
    ("customer", "CUS-42", "expected an object"),
    ("customer.id", ..., "missing"),
    ("customer.email", ..., "missing"),
    ("customer.email", 42, "expected a string"),
    ("lines", [], "at least one line"),
    ("lines", {"sku": "x"}, "expected an array"),
    ("lines[1]", "line", "expected an object"),
    ("lines[1].qty", "2", "expected an integer"),
    ("lines[1].qty", 0, "at least 1"),
    ("lines[0].sku", None, "expected a string"),
    ("lines[1].unit_price_cents", ..., "missing"),
    ("updated_at", "2026-11-20T10:15:00", "RFC 3339"),
    ("updated_at", "2026-13-45T10:15:00Z", "not a real date-time"),
    ("updated_at", 1795727403, "expected a string"),
])
def test_m2_every_break_names_its_field_path(path: str, value: Any, fragment: str) -> None:
    with pytest.raises(PartnerContractError) as caught:
        map_order(_broken(path, value))
    assert caught.value.field == path
    assert path in str(caught.value) and fragment in str(caught.value)


def test_m2_not_an_object_at_all() -> None:
    for payload in ([], "order", None, 3):
        with pytest.raises(PartnerContractError):
            map_order(payload)


def test_page_errors_say_which_item() -> None:
    page = {"data": [ORDER, _broken("lines[1].qty", "x")], "next_cursor": None}
    with pytest.raises(PartnerContractError) as caught:
        map_page(page)
    assert caught.value.field == "lines[1].qty"
    assert "data[1]" in str(caught.value)
    with pytest.raises(PartnerContractError, match="next_cursor"):
        map_page({"data": []})
    with pytest.raises(PartnerContractError, match="data"):
        map_page({"data": {}, "next_cursor": None})
    assert map_page({"data": [ORDER], "next_cursor": "c"}).cursor == "c"


@pytest.mark.parametrize(("body", "content_type", "fragment"), [
    (b'{"a": 1}', "text/html", "content type"),
    (b"", "application/json", "empty body"),
    (b'{"a": NaN}', "application/json", "NaN"),
    (b'{"a": Infinity}', "application/json", "Infinity"),
    (b'{"a": 1, "a": 2}', "application/json", "duplicate key"),
    (b"\xef\xbb\xbf{}", "application/json", "byte order mark"),
    (b'{"a": "\xff"}', "application/json", "not UTF-8"),
    (b'{"a": [1,', "application/json", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", "nested too deeply"),
])
def test_strict_parsing_refuses_what_lenient_json_accepts(body: bytes, content_type: str,
                                                          fragment: str) -> None:
    with pytest.raises(PartnerContractError, match=fragment):
        parse_json(body, content_type)


def test_parse_json_accepts_json_media_types() -> None:
    assert parse_json(b'{"a": 1}', "application/json; charset=utf-8") == {"a": 1}
    assert parse_json(b'{"a": 1}', "application/problem+json") == {"a": 1}


def test_token_mapping_and_its_repr_hides_the_token() -> None:
    token = map_token({"access_token": "s3cr3t-token", "token_type": "bearer", "expires_in": 60})
    assert token.value == "s3cr3t-token" and token.lifetime_s == 60
    assert "s3cr3t" not in repr(token)
    with pytest.raises(PartnerContractError, match="token_type"):
        map_token({"access_token": "x", "token_type": "mac", "expires_in": 60})
    with pytest.raises(PartnerContractError, match="expires_in"):
        map_token({"access_token": "x", "token_type": "Bearer"})


def test_no_partner_field_name_leaks_past_the_mapping_module() -> None:
    from pathlib import Path

    partner_names = ('"order_id"', "subtotal_cents", "unit_price_cents", "next_cursor",
                     "access_token", "expires_in", '"qty"', '"state"', '"customer"', '"lines"',
                     '"updated_at"', '"updated_since"', '"cursor"')
    client_dir = Path(__file__).resolve().parents[2] / "client"
    for module in client_dir.glob("*.py"):
        if module.name == "mapping.py":
            continue
        text = module.read_text()
        for name in partner_names:
            assert name not in text, f"{name} appears in client/{module.name}"
    assert json.dumps  # keep the json import honest


@settings(max_examples=300, deadline=None)
@given(payload=st.one_of(partner_orders(), broken_partner_orders().map(lambda pair: pair[0])))
def test_the_fast_path_agrees_with_the_located_reader(payload: dict[str, Any]) -> None:
    """`_valid_order` (the fast path) accepts only what `_order` accepts, and maps it
    the same; anything else goes to `_order` for the located error."""
    fast = _valid_order(copy.deepcopy(payload))
    try:
        slow = _order(copy.deepcopy(payload), "")
    except _Invalid:
        assert fast is None
    else:
        assert fast is None or fast == slow


@settings(max_examples=200, deadline=None)
@given(payload=partner_orders())
def test_the_fast_path_takes_every_valid_order(payload: dict[str, Any]) -> None:
    assert _valid_order(payload) == _order(payload, "")
