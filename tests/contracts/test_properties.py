"""Property tests: mapping over generated payloads (M1, M2), and every contract
under generated fault plans for every operation, sync and async."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings

from partnerkit.client.errors import PartnerContractError
from partnerkit.client.mapping import map_order
from partnerkit.contracts.schemas import is_valid, schema_errors
from partnerkit.contracts.strategies import broken_partner_orders, fault_plans, partner_orders
from partnerkit.contracts.verdicts import expected_order
from partnerkit.simulator import FakePartner, parse_scenario
from tests.contracts.properties import OPERATIONS, examples, holds_under, observe_real_client

VALID_ORDER = {"order_id": "ORD-1", "state": "paid", "subtotal_cents": 0, "currency": "EUR",
               "customer": {"id": "C", "email": None},
               "lines": [{"sku": "S", "qty": 1, "unit_price_cents": 0}],
               "updated_at": "2026-11-20T10:15:00.5+02:00"}


@given(partner_orders())
@example(VALID_ORDER)
@settings(max_examples=examples(200))
def test_m1_every_schema_valid_payload_maps_exactly(payload: dict[str, Any]) -> None:
    assert schema_errors("order", payload) == []  # the strategy is honest
    assert map_order(payload) == expected_order(payload)


@given(broken_partner_orders())
@example(({**VALID_ORDER, "lines": [{"sku": "S", "qty": "2", "unit_price_cents": 1}]},
          "lines[0].qty"))
@example(({**VALID_ORDER, "state": "on_hold"}, "state"))
@settings(max_examples=examples(200))
def test_m2_every_broken_payload_names_its_field(case: tuple[dict[str, Any], str]) -> None:
    payload, field = case
    assert not is_valid("order", payload)
    with pytest.raises(PartnerContractError) as caught:
        map_order(payload)
    assert caught.value.field == field


@given(fault_plans())
@settings(max_examples=examples(100))
def test_every_generated_fault_plan_is_a_valid_scenario(plan: dict[str, Any]) -> None:
    parse_scenario(plan)


def _pinned(fault: dict[str, Any], **budget: Any) -> dict[str, Any]:
    """A known edge case, pinned so the derandomized CI run always meets it
    (PITFALLS 15): one rule on every partner API path."""
    return {"name": "pinned", "seed": 0, "dataset": {"orders": 12, "page_size": 5},
            "rules": [{"match": {"path": "/v1/orders**"}, "fault": fault, **budget}]}


@pytest.fixture(scope="module")
def chaos_partner() -> Iterator[FakePartner]:
    with FakePartner({"dataset": {"orders": 12, "page_size": 5}, "rules": []}) as partner:
        yield partner


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_every_contract_holds_under_any_fault_plan(chaos_partner: FakePartner, operation: str,
                                                   kind: str) -> None:
    name = f"every_contract_{operation}_{kind}"

    @given(plan=fault_plans())
    @example(plan=_pinned({"status": 404}, times=1))
    @example(plan=_pinned({"status": 429, "retry_after": 1}, times=1))
    @example(plan=_pinned({"status": 503, "retry_after": "http-date:2"}))
    @example(plan=_pinned({"disconnect": "mid_body"}, times=2))
    @example(plan=_pinned({"cursor_drift": {"update": 3}}, times=2))
    @settings(max_examples=examples(12))
    def holds(plan: dict[str, Any]) -> None:
        holds_under(chaos_partner, plan, name,
                    lambda: observe_real_client(chaos_partner, operation, kind))

    holds()
