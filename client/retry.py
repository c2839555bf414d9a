"""When to try again: the retry policy and its pure decision function.

`RetryPolicy.decide` looks at one failed attempt (what went wrong, which
attempt it was, how much time is left, the partner's Retry-After) and says
"retry after N seconds" or "give up with this error". It reads no clock and
does no I/O — the time and the random draw are passed in — so every branch
of contracts R1 to R5 is tested directly (tests/client/test_retry_policy.py).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from partnerkit.client.errors import (
    PartnerContractError,
    PartnerError,
    PartnerTimeout,
    PartnerUnavailable,
    RateLimited,
)

#: Statuses worth another attempt (R1).
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class FailureKind(enum.Enum):
    """What went wrong with one attempt."""

    STATUS = "status"  # a complete response with a non-success status
    CONNECT = "connect"  # the request never left: connect error, connect or pool timeout
    CONNECTION = "connection"  # the connection died before a response (reset, closed)
    TIMEOUT = "timeout"  # the attempt ran out of time
    BODY_CUT = "body_cut"  # the body stopped short (mid-body close, Content-Length lie)
    INVALID_BODY = "invalid_body"  # a complete response whose body breaks the contract


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    detail: str
    status: int | None = None
    retry_after: str | None = None  # the raw Retry-After header


@dataclass(frozen=True)
class Retry:
    wait: float
    reason: str


@dataclass(frozen=True)
class GiveUp:
    error: type[PartnerError]
    reason: str
    retry_after: float | None = None


RetryDecision = Retry | GiveUp  # what RetryPolicy.decide answers


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date).

    None for a missing or unusable value (garbage, negative, NaN): the caller
    then backs off on its own. An HTTP-date in the past means "now" (0).
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now)


def _give_up_error(failure: Failure) -> type[PartnerError]:
    if failure.kind is FailureKind.TIMEOUT:
        return PartnerTimeout
    if failure.status == 429:
        return RateLimited
    if failure.kind is FailureKind.INVALID_BODY:
        return PartnerContractError
    if failure.status is not None and failure.status < 500:
        return PartnerContractError  # a 4xx the contract does not allow here
    return PartnerUnavailable


def is_transient(failure: Failure) -> bool:
    """R1: what is worth another attempt at all."""
    if failure.kind is FailureKind.STATUS:
        return failure.status in RETRYABLE_STATUSES
    return failure.kind is not FailureKind.INVALID_BODY


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. All times in seconds.

    - `max_attempts`: attempts per operation, the first included (R2).
    - `backoff_base`, `backoff_max`: exponential backoff with full jitter —
      attempt n waits uniform(0, min(backoff_max, backoff_base * 2**(n-1))) (R4).
    - `retry_after_max`: the longest Retry-After we honour; a longer one (or
      one longer than the time left) fails at once instead of waiting (R3).
    """

    max_attempts: int = 4
    backoff_base: float = 0.2
    backoff_max: float = 5.0
    retry_after_max: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not (self.backoff_base >= 0 and self.backoff_max >= 0 and self.retry_after_max >= 0):
            raise ValueError("backoff and retry_after limits must not be negative")

    def backoff(self, attempt: int, draw: float) -> float:
        """Full jitter: a uniform draw in [0, the exponential ceiling of this attempt)."""
        ceiling = min(self.backoff_max, self.backoff_base * float(2 ** min(attempt - 1, 62)))
        return ceiling * draw

    def decide(self, *, failure: Failure, attempt: int, time_left: float, idempotent: bool,
               now: float, draw: Callable[[], float]) -> RetryDecision:
        """Retry or give up after `failure` on attempt number `attempt` (1-based).

        `idempotent` is False for a request that must not run twice (an
        acknowledgement without an Idempotency-Key): it is only retried when
        it never left (R5). `now` is the wall clock (for HTTP-date
        Retry-After), `draw` returns a uniform float in [0, 1).
        """
        error = _give_up_error(failure)
        status = f" {failure.status}" if failure.status is not None else ""
        what = f"{failure.kind.value}{status}: {failure.detail}"
        if not is_transient(failure):
            return GiveUp(error, f"not retried ({what})")
        if not idempotent and failure.kind is not FailureKind.CONNECT:
            return GiveUp(error, f"not retried: the request may have been processed and has "
                                 f"no idempotency key ({what})")
        if attempt >= self.max_attempts:
            return GiveUp(error, f"gave up after {attempt} attempts ({what})")
        # Out of time: a timeout, unless the partner is rate limiting us (then say so).
        out_of_time = error if error is RateLimited else PartnerTimeout
        asked = None
        if failure.kind is FailureKind.STATUS:
            asked = parse_retry_after(failure.retry_after, now)
        if asked is not None:
            if asked > self.retry_after_max:
                return GiveUp(error, f"Retry-After {_seconds(asked)} is more than we wait "
                                     f"({_seconds(self.retry_after_max)}; {what})", asked)
            if asked >= time_left:
                return GiveUp(error, f"Retry-After {_seconds(asked)} is more than the time "
                                     f"left ({_seconds(max(0.0, time_left))}; {what})", asked)
            return Retry(asked, f"{what}; Retry-After {_seconds(asked)}")
        if time_left <= 0:
            return GiveUp(out_of_time, f"deadline reached ({what})")
        wait = self.backoff(attempt, draw())
        if wait >= time_left:
            return GiveUp(out_of_time, f"no time left to back off {_seconds(wait)} ({what})")
        return Retry(wait, f"{what}; backoff {_seconds(wait)}")


def _seconds(value: float) -> str:
    if math.isinf(value):
        return "inf s"
    return f"{value:.2f} s"
