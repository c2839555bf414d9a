"""cursor_drift: the data set really changes under an open cursor."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from partnerkit.simulator import FakePartner, parse_scenario


def _sync(http: httpx.Client, limit: int = 50, max_pages: int = 50) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = []
    cursor = None
    for _ in range(max_pages):
        params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        page = http.get("/v1/orders", params=params)
        assert page.status_code == 200, page.text
        orders += page.json()["data"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return orders
    raise AssertionError("sync did not end")


def _drift_rule(drift: dict[str, Any], times: int = 1) -> dict[str, Any]:
    return {"rules": [{"match": {"path": "/v1/orders"}, "times": times,
                       "fault": {"cursor_drift": drift}}]}


def _drifted_ids(partner: FakePartner, kind: str) -> list[str]:
    entries = [e for e in partner.journal() if e["fault"] and "drifted" in e["fault"]]
    assert len(entries) == 1
    ids: list[str] = entries[0]["fault"]["drifted"][kind]
    return ids


def test_insert_lands_behind_the_cursor_so_the_sync_misses_it(
        partner: FakePartner, http: httpx.Client) -> None:
    partner.set_scenario(_drift_rule({"insert": 5}))
    seen = _sync(http)
    inserted = _drifted_ids(partner, "inserted")
    assert len(inserted) == 5
    assert not set(inserted) & {order["order_id"] for order in seen}
    assert len(seen) == 250
    everything = _sync(http)  # a fresh sync sees them: they are really there
    assert set(inserted) <= {order["order_id"] for order in everything}
    assert len(everything) == 255


def test_update_moves_served_orders_ahead_so_they_come_twice(
        partner: FakePartner, http: httpx.Client) -> None:
    partner.set_scenario(_drift_rule({"update": 3}))
    seen = _sync(http)
    updated = _drifted_ids(partner, "updated")
    counts = Counter(order["order_id"] for order in seen)
    assert sorted(order_id for order_id, n in counts.items() if n == 2) == sorted(updated)
    assert len(seen) == 253


def test_delete_removes_orders_not_yet_served(partner: FakePartner, http: httpx.Client) -> None:
    before = {order["order_id"] for order in _sync(http)}
    partner.set_scenario(_drift_rule({"delete": 4}))
    seen = {order["order_id"] for order in _sync(http)}
    deleted = _drifted_ids(partner, "deleted")
    assert len(deleted) == 4
    assert before - seen == set(deleted)
    assert http.get(f"/v1/orders/{deleted[0]}").status_code == 404  # gone for good


def test_repeat_returns_the_requests_own_cursor(partner: FakePartner,
                                                http: httpx.Client) -> None:
    partner.set_scenario(_drift_rule({"repeat": True}, times=5))
    first = http.get("/v1/orders", params={"limit": "10"}).json()
    cursor = first["next_cursor"]
    assert cursor is not None  # no cursor in the request: the rule does nothing
    again = http.get("/v1/orders", params={"limit": "10", "cursor": cursor}).json()
    assert again["next_cursor"] == cursor


def test_expire_answers_410(partner: FakePartner, http: httpx.Client) -> None:
    partner.set_scenario(_drift_rule({"expire": True}))
    cursor = http.get("/v1/orders", params={"limit": "10"}).json()["next_cursor"]
    expired = http.get("/v1/orders", params={"cursor": cursor})
    assert expired.status_code == 410
    assert expired.json()["error"] == "cursor_expired"
    assert http.get("/v1/orders", params={"cursor": cursor}).status_code == 200  # times: 1


def test_drift_stays_until_reset(partner: FakePartner, http: httpx.Client) -> None:
    partner.set_scenario(_drift_rule({"delete": 10}))
    _sync(http)
    deleted = _drifted_ids(partner, "deleted")
    assert len(_sync(http)) == 240
    assert http.get(f"/v1/orders/{deleted[0]}").status_code == 404
    partner.reset()
    assert http.get(f"/v1/orders/{deleted[0]}").status_code == 200


def test_a_first_page_counts_for_after_but_spends_no_times(
        partner: FakePartner, http: httpx.Client) -> None:
    """`after: 1` skips the first page (it has no cursor, yet it matches), so the
    second page expires; the first page spent none of `times` either."""
    partner.set_scenario({"rules": [{"match": {"path": "/v1/orders"}, "after": 1, "times": 1,
                                     "fault": {"cursor_drift": {"expire": True}}}]})
    first = http.get("/v1/orders", params={"limit": "50"})
    assert first.status_code == 200
    second = http.get("/v1/orders", params={"limit": "50", "cursor": first.json()["next_cursor"]})
    assert second.status_code == 410
    assert [e["status"] for e in partner.journal()] == [200, 410]

    partner.set_scenario({"rules": [{"match": {"path": "/v1/orders"}, "times": 1,
                                     "fault": {"cursor_drift": {"expire": True}}}]})
    first = http.get("/v1/orders", params={"limit": "50"})  # no cursor: passes, budget kept
    second = http.get("/v1/orders", params={"limit": "50", "cursor": first.json()["next_cursor"]})
    assert (first.status_code, second.status_code) == (200, 410)


def test_a_one_of_of_cursor_drifts_passes_a_cursorless_page_by_as_a_single_drift_does(
        partner: FakePartner, http: httpx.Client) -> None:
    """The rule is asked whether it needs a cursor (every fault it may pick does), so a
    one_of of drifts spends no `times` on the first page, as a plain drift rule does."""
    partner.set_scenario({"rules": [{"match": {"path": "/v1/orders"}, "times": 1, "fault": {
        "one_of": [{"weight": 1, "cursor_drift": {"expire": True}},
                   {"weight": 1, "cursor_drift": {"repeat": True}}]}}]})
    first = http.get("/v1/orders", params={"limit": "50"})
    assert first.status_code == 200 and partner.journal()[-1]["rule"] is None
    second = http.get("/v1/orders", params={"limit": "50", "cursor": first.json()["next_cursor"]})
    assert partner.journal()[-1]["rule"] == 0  # the budget was still there for it
    assert second.status_code in (200, 410)


def test_faults_answer_questions_about_themselves() -> None:
    scenario = parse_scenario({"rules": [
        {"fault": {"latency": {"fixed_ms": 1}}},
        {"fault": {"cursor_drift": {"insert": 2}}},
        {"fault": {"one_of": [{"weight": 1, "cursor_drift": {"repeat": True}},
                              {"weight": 1, "status": 503}]}},
    ]})
    delay, insert, mixed = scenario.rules
    assert delay.fault is not None and delay.fault.keeps_answer
    assert not delay.needs_cursor
    assert insert.needs_cursor and insert.faults[0].changes_dataset
    assert not mixed.needs_cursor  # one branch answers any request
    assert [fault.needs_cursor for fault in mixed.faults] == [True, False]
