"""The pure retry decision: every R1 class, Retry-After, backoff bounds, R2, R5."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from partnerkit.client.errors import (
    PartnerContractError,
    PartnerTimeout,
    PartnerUnavailable,
    RateLimited,
)
from partnerkit.client.retry import (
    Failure,
    FailureKind,
    GiveUp,
    Retry,
    RetryPolicy,
    is_transient,
    parse_retry_after,
)

NOW = 1_800_000_000.0
POLICY = RetryPolicy(max_attempts=4, backoff_base=0.5, backoff_max=4.0, retry_after_max=30.0)


def decide(failure: Failure, *, attempt: int = 1, time_left: float = 60.0,
           idempotent: bool = True, draw: float = 0.5,
           policy: RetryPolicy = POLICY) -> Retry | GiveUp:
    return policy.decide(failure=failure, attempt=attempt, time_left=time_left,
                         idempotent=idempotent, now=NOW, draw=lambda: draw)


def status(code: int, retry_after: str | None = None) -> Failure:
    return Failure(FailureKind.STATUS, "x", code, retry_after)


TRANSIENT = [status(429), status(500), status(502), status(503), status(504),
             Failure(FailureKind.CONNECT, "refused"), Failure(FailureKind.CONNECTION, "reset"),
             Failure(FailureKind.TIMEOUT, "slow"), Failure(FailureKind.BODY_CUT, "mid_body")]
PERMANENT = [status(400), status(401), status(403), status(404), status(405), status(409),
             status(410), status(422), status(501), Failure(FailureKind.INVALID_BODY, "bad")]


@pytest.mark.parametrize("failure", TRANSIENT, ids=lambda f: f"{f.kind.value}-{f.status}")
def test_r1_transient_failures_are_retried(failure: Failure) -> None:
    assert is_transient(failure)
    assert isinstance(decide(failure), Retry)


@pytest.mark.parametrize("failure", PERMANENT, ids=lambda f: f"{f.kind.value}-{f.status}")
def test_r1_other_failures_are_never_retried(failure: Failure) -> None:
    decision = decide(failure)
    assert isinstance(decision, GiveUp)
    assert decision.error in (PartnerContractError, PartnerUnavailable)
    assert "not retried" in decision.reason


def test_give_up_errors_name_the_failure() -> None:
    assert decide(status(404)).error is PartnerContractError
    assert decide(Failure(FailureKind.INVALID_BODY, "x")).error is PartnerContractError
    assert decide(status(429), attempt=4).error is RateLimited
    assert decide(status(503), attempt=4).error is PartnerUnavailable
    assert decide(Failure(FailureKind.TIMEOUT, "t"), attempt=4).error is PartnerTimeout
    assert decide(Failure(FailureKind.CONNECTION, "c"), attempt=4).error is PartnerUnavailable


def test_r2_attempts_never_exceed_max_attempts() -> None:
    for attempt in range(1, 4):
        assert isinstance(decide(status(503), attempt=attempt), Retry)
    final = decide(status(503), attempt=4)
    assert isinstance(final, GiveUp) and "after 4 attempts" in final.reason
    single = RetryPolicy(max_attempts=1)
    assert isinstance(decide(status(503), policy=single), GiveUp)


def test_r2_sleep_never_runs_past_the_deadline() -> None:
    # The backoff draw would wait 0.5 * 0.99 = 0.495 s; only 0.4 s is left.
    decision = decide(status(503), time_left=0.4, draw=0.99)
    assert isinstance(decision, GiveUp) and decision.error is PartnerTimeout
    assert isinstance(decide(status(503), time_left=0.0), GiveUp)
    assert isinstance(decide(status(503), time_left=-1.0), GiveUp)
    for draw in (0.0, 0.3, 0.999):
        for left in (0.05, 0.3, 1.0, 10.0):
            decision = decide(Failure(FailureKind.TIMEOUT, "t"), time_left=left, draw=draw)
            assert isinstance(decision, GiveUp) or decision.wait < left


def test_r3_retry_after_seconds_is_honoured() -> None:
    decision = decide(status(429, "3"))
    assert isinstance(decision, Retry) and decision.wait == 3.0
    assert isinstance(decide(status(503, "0")), Retry)
    assert decide(status(503, "0")).wait == 0.0


def test_r3_retry_after_http_date_is_honoured() -> None:
    decision = decide(status(503, formatdate(NOW + 7, usegmt=True)))
    assert isinstance(decision, Retry) and decision.wait == pytest.approx(7.0)
    past = decide(status(503, formatdate(NOW - 100, usegmt=True)))
    assert isinstance(past, Retry) and past.wait == 0.0


def test_r3_retry_after_longer_than_time_left_fails_at_once() -> None:
    limited = decide(status(429, "10"), time_left=5.0)
    assert isinstance(limited, GiveUp) and limited.error is RateLimited
    assert limited.retry_after == 10.0
    unavailable = decide(status(503, "10"), time_left=5.0)
    assert isinstance(unavailable, GiveUp) and unavailable.error is PartnerUnavailable


def test_r3_retry_after_is_capped() -> None:
    capped = decide(status(429, "31"), time_left=1000.0)
    assert isinstance(capped, GiveUp) and capped.error is RateLimited
    assert "more than we wait" in capped.reason
    huge = decide(status(429, "99999999999999999999"), time_left=1000.0)
    assert isinstance(huge, GiveUp) and huge.error is RateLimited


@pytest.mark.parametrize("garbage", ["soon", "-5", "1.5", "", "NaN", "Mon, 99 Foo 2026 00:00:00",
                                     "Wed, 21 Oct 2015 07:28:00"])
def test_r3_unusable_retry_after_falls_back_to_backoff(garbage: str) -> None:
    assert parse_retry_after(garbage, NOW) is None
    decision = decide(status(503, garbage), draw=0.5)
    assert isinstance(decision, Retry) and decision.wait == pytest.approx(0.25)


def test_parse_retry_after() -> None:
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(" 2 ", NOW) == 2.0
    assert parse_retry_after(formatdate(NOW + 60, usegmt=True), NOW) == pytest.approx(60.0)


def test_r4_backoff_is_exponential_with_full_jitter() -> None:
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]  # base * 2**(n-1), capped at backoff_max
    for attempt, ceiling in enumerate(ceilings, start=1):
        assert POLICY.backoff(attempt, 0.0) == 0.0
        assert POLICY.backoff(attempt, 0.999999) == pytest.approx(ceiling, rel=1e-5)
        assert POLICY.backoff(attempt, 0.5) == pytest.approx(ceiling / 2)
    assert POLICY.backoff(10_000, 0.5) == 2.0  # no overflow for absurd attempts


def test_r4_backoff_uses_the_injected_random_source() -> None:
    draws = iter([0.1, 0.9])
    first = POLICY.decide(failure=status(503), attempt=1, time_left=60, idempotent=True,
                          now=NOW, draw=lambda: next(draws))
    second = POLICY.decide(failure=status(503), attempt=2, time_left=60, idempotent=True,
                           now=NOW, draw=lambda: next(draws))
    assert first.wait == pytest.approx(0.05)
    assert second.wait == pytest.approx(0.9)


def test_r5_a_request_without_idempotency_is_only_retried_if_it_never_left() -> None:
    assert isinstance(decide(Failure(FailureKind.CONNECT, "refused"), idempotent=False), Retry)
    for failure in [status(503), status(429), Failure(FailureKind.CONNECTION, "reset"),
                    Failure(FailureKind.TIMEOUT, "slow"), Failure(FailureKind.BODY_CUT, "cut")]:
        decision = decide(failure, idempotent=False)
        assert isinstance(decision, GiveUp) and "idempotency key" in decision.reason


def test_policy_validates_its_limits() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(backoff_base=-1)
