"""Each verdict catches a client that breaks its contract, and passes the real
client (and the throwaway client without bugs) on the same traffic."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from partnerkit.client import PartnerClient, RetryPolicy
from partnerkit.contracts.harness import client_settings, observe
from partnerkit.contracts.verdicts import (
    VERDICTS,
    ClientSettings,
    Observation,
    Violation,
    judge,
)
from partnerkit.simulator import FakePartner
from tests.contracts.throwaway_client import Bugs, ThrowawayClient

TIMEOUT, DEADLINE, ATTEMPTS, BASE, CAP = 0.5, 3.0, 3, 0.05, 0.2


@dataclass(frozen=True)
class Case:
    contract: str
    bugs: Bugs
    rules: list[dict[str, Any]]
    operation: str
    args: tuple[Any, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)  # client settings overrides


def _rule(fault: dict[str, Any], path: str = "/v1/orders/*", **budget: Any) -> dict[str, Any]:
    return {"match": {"path": path}, "fault": fault, **budget}


ACK = "/v1/orders/*/acknowledgements"
CASES = [
    Case("R1", Bugs(retry_404=True), [], "get_order", ("ORD-999999",)),
    Case("R1", Bugs(retry_invalid_body=True), [_rule({"malformed": "invalid_json"}, times=1)],
         "get_order", ("ORD-000001",)),
    Case("R1", Bugs(give_up_at_once=True), [_rule({"status": 503}, times=1)], "get_order",
         ("ORD-000001",)),
    Case("R2", Bugs(no_attempt_cap=True), [_rule({"status": 503})], "get_order",
         ("ORD-000001",)),
    Case("R3", Bugs(ignore_retry_after=True), [_rule({"status": 429, "retry_after": 1},
                                                     times=1)], "get_order", ("ORD-000001",)),
    Case("R3", Bugs(wait_out_long_retry_after=True),
         [_rule({"status": 503, "retry_after": 2}, times=1)], "get_order", ("ORD-000001",),
         {"deadline": 1.5}),
    Case("R4", Bugs(fixed_backoff_s=0.6), [_rule({"status": 502}, times=2)], "get_order",
         ("ORD-000001",)),
    Case("R5", Bugs(new_key_per_attempt=True), [_rule({"status": 503}, path=ACK, times=1)],
         "acknowledge", ("ORD-000001", "k-1")),
    Case("R5", Bugs(retry_ack_without_key=True), [_rule({"status": 503}, path=ACK, times=1)],
         "acknowledge", ("ORD-000001",)),
    Case("T1", Bugs(sleep_past_deadline=True), [_rule({"status": 503, "retry_after": 1})],
         "get_order", ("ORD-000001",), {"deadline": 0.5}),
    Case("T2", Bugs(no_attempt_timeout=True),
         [_rule({"latency": {"fixed_ms": 1200}}, times=1)], "get_order", ("ORD-000001",),
         {"timeout": 0.3}),
    Case("A1", Bugs(token_per_request=True), [], "iter_orders"),
    Case("A1", Bugs(no_refresh=True), [_rule({"auth": "expire_token"}, times=1)], "get_order",
         ("ORD-000001",)),
    Case("A1", Bugs(secret_in_errors=True, no_refresh=True), [_rule({"auth": "expire_token"})],
         "get_order", ("ORD-000001",)),
    Case("M1", Bugs(float_money=True), [], "get_order", ("ORD-000001",)),
    Case("M2", Bugs(raw_key_error=True), [_rule({"schema_drift": {"missing": ["state"]}})],
         "get_order", ("ORD-000001",)),
    Case("E1", Bugs(raw_key_error=True), [_rule({"schema_drift": {"missing": ["state"]}})],
         "get_order", ("ORD-000001",)),
    Case("P1", Bugs(follow_repeated_cursor=True),
         [_rule({"cursor_drift": {"repeat": True}}, path="/v1/orders")], "iter_orders",
         options={"max_pages": 10}),
    Case("P2", Bugs(no_dedupe=True),
         [_rule({"cursor_drift": {"update": 5}}, path="/v1/orders", times=1)], "iter_orders"),
    Case("P3", Bugs(stop_on_expired_cursor=True),
         [_rule({"cursor_drift": {"expire": True}}, path="/v1/orders", after=1, times=1)],
         "iter_orders"),
]


@pytest.fixture(scope="module")
def small_partner() -> Iterator[FakePartner]:
    with FakePartner({"dataset": {"orders": 60, "page_size": 10}, "rules": []}) as partner:
        yield partner


def _settings(options: dict[str, Any]) -> ClientSettings:
    return ClientSettings(timeout=options.get("timeout", TIMEOUT),
                          deadline=options.get("deadline", DEADLINE), max_attempts=ATTEMPTS,
                          backoff_base=BASE, backoff_max=CAP,
                          max_pages=options.get("max_pages", 50))


def _observe(partner: FakePartner, case: Case, make_client: Callable[[], Any],
             settings: ClientSettings) -> Observation:
    partner.set_scenario({"dataset": {"orders": 60, "page_size": 10}, "rules": case.rules})
    partner.reset()
    initial = frozenset(partner.state.store.ids())
    payloads = {order_id: partner.state.store.order(order_id) for order_id in initial}
    client = make_client()
    try:
        def run() -> Any:
            result = getattr(client, case.operation)(*case.args)
            return list(result) if case.operation == "iter_orders" else result

        key = case.args[1] if case.operation == "acknowledge" and len(case.args) > 1 else None
        return observe(partner, case.operation, run, settings, idempotency_key=key,
                       initial_order_ids=initial, partner_orders=payloads,
                       secrets=("orderops-secret",))
    finally:
        client.close()


def _throwaway(partner: FakePartner, case: Case, bugs: Bugs) -> Observation:
    settings = _settings(case.options)
    return _observe(partner, case, lambda: ThrowawayClient(
        partner.url, bugs, timeout=settings.timeout, deadline=settings.deadline,
        max_attempts=ATTEMPTS, backoff_base=BASE, backoff_max=CAP,
        max_pages=50), settings)


def _ids(case: Case) -> str:
    bug = next(name for name, value in vars(case.bugs).items() if value)
    return f"{case.contract}-{bug}"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_the_verdict_catches_a_client_that_breaks_it(small_partner: FakePartner,
                                                     case: Case) -> None:
    report = judge(_throwaway(small_partner, case, case.bugs), [case.contract])
    assert not report.passed, f"{case.contract} missed {case.bugs}"
    assert all(v.contract == case.contract for v in report.violations)
    assert str(report.violations[0]).startswith(f"{case.contract}: ")


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_the_same_traffic_without_the_bug_passes(small_partner: FakePartner,
                                                 case: Case) -> None:
    report = judge(_throwaway(small_partner, case, Bugs()), [case.contract])
    assert report.passed, str(report)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_the_real_client_keeps_every_contract_on_the_same_traffic(
        small_partner: FakePartner, case: Case) -> None:
    settings = _settings(case.options)
    retry = RetryPolicy(max_attempts=ATTEMPTS, backoff_base=BASE, backoff_max=CAP)
    harness_settings = client_settings(timeout=settings.timeout, deadline=settings.deadline,
                                       retry=retry, max_pages=settings.max_pages)

    def make() -> PartnerClient:
        return PartnerClient.from_url(small_partner.url, client_id="orderops",
                                      client_secret="orderops-secret",
                                      timeout=settings.timeout, deadline=settings.deadline,
                                      retry=retry, max_pages=settings.max_pages, page_size=10)

    report = judge(_observe(small_partner, case, make, harness_settings))
    assert report.passed, str(report)


def test_violations_say_which_request_and_why(small_partner: FakePartner) -> None:
    case = next(c for c in CASES if c.bugs.ignore_retry_after)
    report = judge(_throwaway(small_partner, case, case.bugs), ["R3"])
    violation = report.violations[0]
    assert isinstance(violation, Violation) and violation.seq is not None
    assert "after a 429 with Retry-After: 1" in violation.message
    assert f"[journal seq {violation.seq}]" in str(violation)


def test_every_contract_has_a_verdict_and_a_wrong_client() -> None:
    ids = ["T1", "T2", "R1", "R2", "R3", "R4", "R5", "A1", "M1", "M2", "P1", "P2", "P3", "E1"]
    assert list(VERDICTS) == ids
    assert {case.contract for case in CASES} == set(ids)


def _entry(seq: int, status: int | None, at: float) -> dict[str, Any]:
    return {"seq": seq, "at": at, "method": "GET", "path": "/v1/orders/ORD-1", "query": {},
            "headers": {"x-request-id": "op"}, "status": status, "rule": None, "fault": None,
            "duration_ms": 1.0}


def test_a1_a_second_401_must_end_in_authentication_error() -> None:
    from partnerkit.client.errors import AuthenticationError, PartnerUnavailable

    journal = [_entry(1, 401, 0.0), _entry(2, 401, 0.01)]
    settings = _settings({})
    wrong = Observation("get_order", PartnerUnavailable("gave up"), 0.02, journal, settings)
    report = judge(wrong, ["A1"])
    assert [v.seq for v in report.violations] == [2]
    assert "should raise AuthenticationError" in report.violations[0].message
    right = Observation("get_order", AuthenticationError("refused"), 0.02, journal, settings)
    assert judge(right, ["A1"]).passed


def _token(seq: int, status: int | None, duration_ms: float = 1.0) -> dict[str, Any]:
    return {**_entry(seq, status, seq / 100), "method": "POST", "path": "/oauth/token",
            "headers": {}, "duration_ms": duration_ms}


def test_a1_failed_token_fetches_use_up_attempts() -> None:
    """Found by `make soak` (seed 1573107406): two token fetches cut by resets, then a
    401 on the last of 3 attempts; AuthenticationError is then right, not a violation."""
    from partnerkit.client.errors import AuthenticationError

    journal = [_token(1, None), _token(2, None), _token(3, 200), _entry(4, 401, 0.04)]
    observation = Observation("get_order", AuthenticationError("refused"), 0.05, journal,
                              _settings({}))
    assert judge(observation, ["A1"]).passed
    early = Observation("get_order", AuthenticationError("refused"), 0.05,
                        [_token(3, 200), _entry(4, 401, 0.04)], _settings({}))
    assert "without refreshing" in judge(early, ["A1"]).violations[0].message


def test_a1_a_token_the_client_never_got_may_be_fetched_again() -> None:
    """Found by `make soak` on a loaded machine: the first token answer came too late
    for the client, which rightly asked again before any API request."""
    journal = [_token(1, 200, duration_ms=150.0), _token(2, 200), _entry(3, 200, 0.03)]
    assert judge(Observation("get_order", None, 0.05, journal, _settings({})), ["A1"]).passed
    reused_wrongly = [_token(1, 200), _entry(2, 200, 0.02), _token(3, 200), _entry(4, 200, 0.04)]
    report = judge(Observation("get_order", None, 0.05, reused_wrongly, _settings({})), ["A1"])
    assert [v.seq for v in report.violations] == [3]
