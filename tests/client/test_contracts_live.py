"""Every behaviour contract (T1 ... E1) against the fake partner on a real
loopback socket, for the sync and the async client alike. Each test asserts
on the client's outcome and on the fake partner's journal.

Timing bounds are one-sided with margin, and prefer the journal's arrival
times to wall-clock guesses.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from partnerkit.client import Order, OrderStatus, PartnerClient, RetryEvent, RetryPolicy
from partnerkit.client.errors import (
    AuthenticationError,
    CursorDriftError,
    OrderNotFound,
    PartnerContractError,
    PartnerError,
    PartnerTimeout,
    PartnerUnavailable,
    RateLimited,
)
from partnerkit.simulator import FakePartner
from tests.client.conftest import Driver, api_entries, token_entries
from tests.conftest import authed_client

DEADLINE_SLACK = 0.25  # T1's tolerance
MakeDriver = Callable[..., Driver]


def _rule(fault: dict[str, Any], path: str = "/v1/orders/*", **budget: Any) -> dict[str, Any]:
    return {"match": {"path": path}, "fault": fault, **budget}


def _gaps(entries: list[dict[str, Any]]) -> list[float]:
    return [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(entries)]


# --- T1, T2: time ---------------------------------------------------------------------


@pytest.mark.parametrize("fault", [
    {"disconnect": "hang"},
    {"latency": {"fixed_ms": 5000}},
    {"dribble": {"chunk_bytes": 8, "interval_ms": 250}},
], ids=["hang", "latency", "dribble"])
def test_t1_operation_returns_within_its_deadline(partner: FakePartner, make_driver: MakeDriver,
                                                  fault: dict[str, Any]) -> None:
    partner.set_scenario({"rules": [_rule(fault)]})
    result = make_driver(partner.url, timeout=0.6, deadline=1.5).one("get_order", "ORD-000001")
    assert isinstance(result.error, PartnerTimeout), result.error
    assert result.elapsed <= 1.5 + DEADLINE_SLACK
    assert result.error.operation == "get_order"


def test_t1_each_page_fetch_is_one_operation(partner: FakePartner,
                                             make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"disconnect": "hang"}, path="/v1/orders", after=1)]})
    result = make_driver(partner.url, timeout=0.5, deadline=1.0).one("sync")
    assert isinstance(result.error, PartnerTimeout)
    assert result.elapsed <= 1.0 + 1.0 + DEADLINE_SLACK  # page 1 is quick, page 2 runs out


def test_t2_a_slow_attempt_is_abandoned_and_retried(partner: FakePartner,
                                                    make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"disconnect": "hang"}, times=1)]})
    result = make_driver(partner.url, timeout=0.4, deadline=5.0).one("get_order", "ORD-000001")
    assert isinstance(result.value, Order)
    attempts = api_entries(partner.journal())
    assert len(attempts) == 2
    assert _gaps(attempts)[0] >= 0.4  # the first attempt was given its whole timeout...
    assert result.elapsed < 4.0  # ...and no more: the deadline was far


# --- R1: what is retried ------------------------------------------------------------------


@pytest.mark.parametrize("fault", [
    {"status": 429}, {"status": 500}, {"status": 502}, {"status": 503}, {"status": 504},
    {"disconnect": "reset"}, {"disconnect": "mid_body"},
    {"malformed": "content_length_mismatch"},
], ids=lambda f: str(next(iter(f.values()))))
def test_r1_transient_failures_are_retried(partner: FakePartner, make_driver: MakeDriver,
                                           fault: dict[str, Any]) -> None:
    partner.set_scenario({"rules": [_rule(fault, times=2)]})
    result = make_driver(partner.url).one("get_order", "ORD-000001")
    assert isinstance(result.value, Order), result.error
    statuses = [e["status"] for e in api_entries(partner.journal())]
    assert len(statuses) == 3 and statuses[-1] == 200


@pytest.mark.parametrize(("fault", "error"), [
    ({"status": 400}, PartnerContractError),
    ({"status": 403}, PartnerContractError),
    ({"status": 422}, PartnerContractError),
    *[({"malformed": kind}, PartnerContractError) for kind in (
        "truncated", "invalid_json", "html_error_page", "empty_body", "wrong_content_type",
        "invalid_utf8", "bom", "nan", "duplicate_keys", "deep_nesting")],
    ({"schema_drift": {"missing": ["currency"]}}, PartnerContractError),
    ({"schema_drift": {"unknown_enum": "state"}}, PartnerContractError),
], ids=lambda v: str(v) if not isinstance(v, dict) else str(next(iter(v.values()))))
def test_r1_permanent_failures_are_not_retried(partner: FakePartner, make_driver: MakeDriver,
                                               fault: dict[str, Any],
                                               error: type[PartnerError]) -> None:
    partner.set_scenario({"rules": [_rule(fault)]})
    result = make_driver(partner.url).one("get_order", "ORD-000001")
    assert isinstance(result.error, error), result.error
    assert result.error.attempts == 1
    assert len(api_entries(partner.journal())) == 1


def test_r1_not_found_is_not_retried(partner: FakePartner, make_driver: MakeDriver) -> None:
    result = make_driver(partner.url).one("get_order", "ORD-999999")
    assert isinstance(result.error, OrderNotFound)
    assert result.error.status == 404
    assert len(api_entries(partner.journal())) == 1


# --- R2: bounds ------------------------------------------------------------------------


def test_r2_attempts_never_exceed_max_attempts(partner: FakePartner,
                                               make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"status": 503})]})
    policy = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05)
    result = make_driver(partner.url, retry=policy).one("get_order", "ORD-000001")
    assert isinstance(result.error, PartnerUnavailable)
    assert result.error.attempts == 3 and result.error.status == 503
    assert len(api_entries(partner.journal())) == 3


def test_r2_backoff_never_sleeps_past_the_deadline(partner: FakePartner,
                                                   make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"status": 503})]})
    policy = RetryPolicy(max_attempts=50, backoff_base=0.4, backoff_max=3.0)
    result = make_driver(partner.url, retry=policy, deadline=1.2).one("get_order", "ORD-000001")
    assert isinstance(result.error, PartnerError)
    assert result.elapsed <= 1.2 + DEADLINE_SLACK
    assert len(api_entries(partner.journal())) < 50


# --- R3: Retry-After --------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [1, "http-date:2"])
def test_r3_retry_after_is_honoured(partner: FakePartner, make_driver: MakeDriver,
                                    retry_after: int | str) -> None:
    partner.set_scenario({"rules": [_rule({"status": 429, "retry_after": retry_after},
                                          times=1)]})
    result = make_driver(partner.url).one("get_order", "ORD-000001")
    assert isinstance(result.value, Order), result.error
    first, second = api_entries(partner.journal())
    # At least 1 s either way: an HTTP-date has whole-second resolution, so
    # "2 s from now" may honestly mean 1.x s.
    assert second["at"] - first["at"] >= 1.0


def test_r3_rate_limit_bucket_is_respected(partner: FakePartner,
                                           make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"rate_limit": {"limit": 2, "per_s": 1}})]})
    results = make_driver(partner.url).run(*[("get_order", (f"ORD-00000{n}",))
                                             for n in range(1, 5)])
    assert all(isinstance(r.value, Order) for r in results), [r.error for r in results]
    limited = [e for e in api_entries(partner.journal()) if e["status"] == 429]
    assert limited  # the bucket did run dry, and the client waited it out


@pytest.mark.parametrize(("status", "error"), [(429, RateLimited), (503, PartnerUnavailable)])
def test_r3_retry_after_beyond_the_deadline_fails_at_once(
        partner: FakePartner, make_driver: MakeDriver, status: int,
        error: type[PartnerError]) -> None:
    partner.set_scenario({"rules": [_rule({"status": status, "retry_after": 10})]})
    result = make_driver(partner.url, deadline=3.0).one("get_order", "ORD-000001")
    assert type(result.error) is error
    assert result.elapsed < 1.0  # no waiting, no sleeping into the deadline
    assert len(api_entries(partner.journal())) == 1
    if isinstance(result.error, RateLimited):
        assert result.error.retry_after == 10


# --- R4: backoff ------------------------------------------------------------------------


def test_r4_backoff_is_exponential_with_full_jitter(partner: FakePartner,
                                                    make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"status": 502}, times=3)]})
    events: list[RetryEvent] = []
    policy = RetryPolicy(max_attempts=4, backoff_base=0.1, backoff_max=1.0)
    result = make_driver(partner.url, retry=policy, on_retry=events.append,
                         random_source=lambda: 0.999).one("get_order", "ORD-000001")
    assert isinstance(result.value, Order)
    assert [round(e.wait, 2) for e in events] == [0.1, 0.2, 0.4]  # the jitter's upper bound
    assert [e.attempt for e in events] == [1, 2, 3]
    gaps = _gaps(api_entries(partner.journal()))
    assert all(gap >= wait for gap, wait in zip(gaps, [0.1, 0.2, 0.4], strict=True))


def test_r4_jitter_draws_below_the_ceiling(partner: FakePartner,
                                           make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"status": 502}, times=3)]})
    events: list[RetryEvent] = []
    draws = iter([0.5, 0.25, 0.0])
    policy = RetryPolicy(max_attempts=4, backoff_base=0.2, backoff_max=1.0)
    make_driver(partner.url, retry=policy, on_retry=events.append,
                random_source=lambda: next(draws)).one("get_order", "ORD-000001")
    assert [round(e.wait, 3) for e in events] == [0.1, 0.1, 0.0]


# --- R5: idempotency ---------------------------------------------------------------------


def test_r5_acknowledge_with_a_key_is_retried_with_the_same_key(
        partner: FakePartner, make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"status": 503}, path="/v1/orders/*/acknowledgements",
                                          times=2)]})
    result = make_driver(partner.url).one("acknowledge", "ORD-000001", "key-1")
    assert result.error is None
    attempts = api_entries(partner.journal())
    assert len(attempts) == 3
    assert {e["headers"]["idempotency-key"] for e in attempts} == {"key-1"}


def test_r5_a_lost_answer_is_replayed_by_the_key(partner: FakePartner,
                                                  make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"disconnect": "mid_body"},
                                          path="/v1/orders/*/acknowledgements", times=1)]})
    result = make_driver(partner.url).one("acknowledge", "ORD-000002", "key-2")
    assert result.error is None
    assert [e["status"] for e in api_entries(partner.journal())] == [None, 200]  # replayed


@pytest.mark.parametrize("fault", [{"status": 503}, {"disconnect": "reset"},
                                   {"disconnect": "mid_body"}], ids=str)
def test_r5_acknowledge_without_a_key_is_never_retried(
        partner: FakePartner, make_driver: MakeDriver, fault: dict[str, Any]) -> None:
    partner.set_scenario({"rules": [_rule(fault, path="/v1/orders/*/acknowledgements")]})
    result = make_driver(partner.url).one("acknowledge", "ORD-000001")
    assert isinstance(result.error, PartnerUnavailable)
    assert len(api_entries(partner.journal())) == 1
    assert "idempotency key" in str(result.error)


def test_acknowledging_twice_is_done_not_an_error(partner: FakePartner,
                                                  make_driver: MakeDriver) -> None:
    results = make_driver(partner.url).run(("acknowledge", ("ORD-000005",)),
                                           ("acknowledge", ("ORD-000005",)))
    assert [r.error for r in results] == [None, None]
    assert [e["status"] for e in api_entries(partner.journal())] == [201, 409]


# --- A1: auth --------------------------------------------------------------------------


def test_a1_one_token_is_fetched_and_reused(partner: FakePartner,
                                            make_driver: MakeDriver) -> None:
    results = make_driver(partner.url).run(("get_order", ("ORD-000001",)),
                                           ("get_order", ("ORD-000002",)),
                                           ("sync", ()),
                                           ("acknowledge", ("ORD-000003", "k")))
    assert all(r.error is None for r in results)
    assert len(token_entries(partner.journal())) == 1


def test_a1_an_expired_token_is_refreshed_once(partner: FakePartner,
                                               make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"auth": "expire_token"}, times=1)]})
    results = make_driver(partner.url).run(("get_order", ("ORD-000001",)),
                                           ("get_order", ("ORD-000002",)))
    assert all(isinstance(r.value, Order) for r in results), [r.error for r in results]
    journal = partner.journal()
    assert len(token_entries(journal)) == 2
    assert [e["status"] for e in api_entries(journal)] == [401, 200, 200]


def test_a1_a_second_401_raises_authentication_error(partner: FakePartner,
                                                     make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"auth": "expire_token"})]})
    result = make_driver(partner.url).one("get_order", "ORD-000001")
    assert isinstance(result.error, AuthenticationError)
    assert result.error.status == 401
    assert len(token_entries(partner.journal())) == 2
    assert len(api_entries(partner.journal())) == 2


def test_a1_wrong_credentials_fail_at_once(partner: FakePartner,
                                           make_driver: MakeDriver) -> None:
    result = make_driver(partner.url, client_secret="wrong").one("get_order", "ORD-000001")
    assert isinstance(result.error, AuthenticationError)
    assert "invalid_client" in str(result.error)
    assert len(token_entries(partner.journal())) == 1
    assert api_entries(partner.journal()) == []


def test_a1_token_endpoint_outages_are_retried(partner: FakePartner,
                                               make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"status": 503}, path="/oauth/token", times=2)]})
    result = make_driver(partner.url).one("get_order", "ORD-000001")
    assert isinstance(result.value, Order), result.error
    assert [e["status"] for e in token_entries(partner.journal())] == [503, 503, 200]


def test_a1_no_secret_in_logs_errors_repr_or_journal(
        partner: FakePartner, make_driver: MakeDriver, caplog: pytest.LogCaptureFixture) -> None:
    partner.set_scenario({"rules": [_rule({"auth": "expire_token"}, times=1),
                                    _rule({"status": 503}, path="/v1/orders/ORD-000002")]})
    caplog.set_level(logging.DEBUG)
    driver = make_driver(partner.url)
    results = driver.run(("get_order", ("ORD-000001",)), ("get_order", ("ORD-000002",)))
    issued = partner.state.backend.issued_tokens()  # every token this run handed out
    assert len(issued) >= 2  # the first one was revoked, a second fetched
    texts = [caplog.text, repr(results), str(results[1].error), repr(results[1].error),
             str(partner.journal())]
    for text in texts:
        assert "orderops-secret" not in text
        assert not any(token in text for token in issued)
    assert "Bearer <redacted>" in str(partner.journal())


# --- M1, M2: mapping ---------------------------------------------------------------------


def test_m1_orders_map_with_exact_values(partner: FakePartner, make_driver: MakeDriver) -> None:
    with authed_client(partner.url) as http:
        raw = http.get("/v1/orders/ORD-000017").json()
    order = make_driver(partner.url).one("get_order", "ORD-000017").value
    assert order.id == raw["order_id"]
    assert order.status is OrderStatus(raw["state"])
    assert order.subtotal == Decimal(raw["subtotal_cents"]) / 100
    assert order.currency == raw["currency"]
    assert order.customer_email == raw["customer"]["email"]
    assert [(line.sku, line.quantity, line.unit_price * 100) for line in order.lines] == [
        (line["sku"], line["qty"], line["unit_price_cents"]) for line in raw["lines"]]
    assert order.updated_at.isoformat().replace("+00:00", "Z") == raw["updated_at"]


def test_m1_compatible_drift_is_ignored(partner: FakePartner, make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"schema_drift": {"extra": True}}, path="/v1/orders")]})
    result = make_driver(partner.url).one("sync")
    assert result.error is None and len(result.value) == 250


@pytest.mark.parametrize(("drift", "field"), [
    ({"wrong_type": ["lines[0].qty"]}, "lines[0].qty"),
    ({"missing": ["updated_at"]}, "updated_at"),
    ({"null": ["customer"]}, "customer"),
    ({"unknown_enum": "state"}, "state"),
])
def test_m2_schema_breaks_name_the_field(partner: FakePartner, make_driver: MakeDriver,
                                         drift: dict[str, Any], field: str) -> None:
    partner.set_scenario({"rules": [_rule({"schema_drift": drift}, path="/v1/orders")]})
    result = make_driver(partner.url).one("sync")
    assert isinstance(result.error, PartnerContractError)
    assert result.error.field == field
    assert field in str(result.error)


# --- P1, P2, P3: pagination -------------------------------------------------------------------


def test_p1_a_repeated_cursor_ends_in_cursor_drift_error(partner: FakePartner,
                                                          make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"cursor_drift": {"repeat": True}}, path="/v1/orders",
                                          after=1)]})
    result = make_driver(partner.url).one("sync")
    assert isinstance(result.error, CursorDriftError)
    assert len(api_entries(partner.journal())) <= 4


def test_p1_the_page_cap_ends_in_cursor_drift_error(partner: FakePartner,
                                                     make_driver: MakeDriver) -> None:
    result = make_driver(partner.url, max_pages=3).one("sync")
    assert isinstance(result.error, CursorDriftError)
    assert len(api_entries(partner.journal())) == 3


def test_p2_orders_that_move_ahead_are_not_yielded_twice(partner: FakePartner,
                                                         make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"cursor_drift": {"update": 10}}, path="/v1/orders",
                                          times=2)]})
    orders = make_driver(partner.url).one("sync").value
    counts = Counter(order.id for order in orders)
    assert max(counts.values()) == 1
    assert len(orders) == 250
    assert sum(e["fault"] is not None for e in api_entries(partner.journal())) == 2


def test_p3_no_order_is_lost_under_delete_and_insert_drift(partner: FakePartner,
                                                           make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [
        _rule({"cursor_drift": {"delete": 7}}, path="/v1/orders", times=1),
        _rule({"cursor_drift": {"insert": 5}}, path="/v1/orders", times=1)]})
    before = {f"ORD-{n:06d}" for n in range(1, 251)}
    orders = make_driver(partner.url).one("sync").value
    deleted = {order_id for e in partner.journal() if e["fault"]
               for order_id in e["fault"].get("drifted", {}).get("deleted", [])}
    assert len(deleted) == 7
    assert before - deleted <= {order.id for order in orders}


def test_p3_an_expired_cursor_resumes_from_the_watermark(partner: FakePartner,
                                                         make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"cursor_drift": {"expire": True}}, path="/v1/orders",
                                          after=2, every=2)]})
    orders = make_driver(partner.url).one("sync").value
    assert sorted(order.id for order in orders) == [f"ORD-{n:06d}" for n in range(1, 251)]
    journal = api_entries(partner.journal())
    assert any(e["status"] == 410 for e in journal)
    assert any("updated_since" in e["query"] for e in journal)  # it resumed


def test_p3_a_sync_completes_when_every_cursor_expires(partner: FakePartner,
                                                       make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"cursor_drift": {"expire": True}},
                                          path="/v1/orders")]})
    # Only first pages (no cursor) get through: each resume must make progress.
    result = make_driver(partner.url, page_size=100).one("sync")
    assert result.error is None
    assert len({order.id for order in result.value}) == len(result.value) == 250


def test_p1_cursors_that_expire_without_progress_end_in_cursor_drift_error(
        partner: FakePartner, make_driver: MakeDriver) -> None:
    partner.set_scenario({"rules": [_rule({"cursor_drift": {"expire": True}},
                                          path="/v1/orders")]})
    # One order a page: every resumed first page is the order already seen.
    result = make_driver(partner.url, page_size=1).one("sync")
    assert isinstance(result.error, CursorDriftError)
    assert len(api_entries(partner.journal())) <= 4


def test_sync_from_updated_since(partner: FakePartner, make_driver: MakeDriver) -> None:
    everything = make_driver(partner.url).one("sync").value
    pivot = sorted(order.updated_at for order in everything)[150]
    since = make_driver(partner.url).one("sync", pivot).value
    assert {o.id for o in since} == {o.id for o in everything if o.updated_at >= pivot}


# --- E1: nothing but PartnerError escapes -------------------------------------------------


@pytest.mark.parametrize("fault", [
    {"malformed": "deep_nesting"}, {"malformed": "duplicate_keys"}, {"disconnect": "reset"},
    {"schema_drift": {"wrong_type": ["lines"]}}, {"status": 500, "body": "<html>"},
], ids=str)
def test_e1_only_partner_errors_escape(partner: FakePartner, make_driver: MakeDriver,
                                       fault: dict[str, Any]) -> None:
    partner.set_scenario({"rules": [{"fault": fault}]})
    results = make_driver(partner.url).run(("get_order", ("ORD-000001",)), ("sync", ()),
                                           ("acknowledge", ("ORD-000001", "k")))
    assert isinstance(results[0].error, PartnerError), results[0].error
    for result in results:
        assert result.error is None or isinstance(result.error, PartnerError), result.error


def test_e1_a_broken_transport_becomes_a_partner_error() -> None:
    def explode(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("the transport broke")

    http = httpx.Client(transport=httpx.MockTransport(explode), base_url="http://partner")
    with PartnerClient(http, client_id="a", client_secret="b") as client, \
            pytest.raises(PartnerError) as caught:
        client.get_order("ORD-1")
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert caught.value.operation == "get_order"


def test_e1_connection_refused_is_a_partner_error(make_driver: MakeDriver) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    result = make_driver(f"http://127.0.0.1:{port}", deadline=1.0).one("get_order", "ORD-1")
    assert isinstance(result.error, PartnerUnavailable | PartnerTimeout)
    assert result.elapsed <= 1.0 + DEADLINE_SLACK
