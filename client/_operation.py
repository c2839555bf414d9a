"""The client's operations as sans-I/O generators, shared by the sync and async shells.

An operation yields commands — send this request, sleep this long, get me
a token — and receives their results; the shells (`client._sync`,
`client._async`) only carry commands out. So the attempt loop, the auth
refresh and the reading of every status exist once, and the two clients
cannot drift apart.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from partnerkit.client._transport import HttpReply, HttpRequest
from partnerkit.client.errors import (
    AuthenticationError,
    CursorDriftError,
    OrderNotFound,
    PartnerContractError,
    PartnerError,
    PartnerTimeout,
    ReplayMiss,
)
from partnerkit.client.mapping import (
    ORDERS_PATH,
    TOKEN_PATH,
    OrderPage,
    Token,
    acknowledgement_path,
    error_code,
    map_acknowledgement,
    map_order,
    map_page,
    map_token,
    order_path,
    parse_json,
    token_form,
)
from partnerkit.client.models import Order
from partnerkit.client.retry import Failure, FailureKind, GiveUp, RetryPolicy

T = TypeVar("T")
logger = logging.getLogger("partnerkit.client")
USER_AGENT = "partnerkit-client/0.1"


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class NeedToken:
    """Ask the shell for a bearer token (cached, or fetched under its lock)."""

    timeout: float


@dataclass(frozen=True)
class ForgetToken:
    """Tell the shell a token was refused, so the next NeedToken fetches anew."""

    value: str


Command = HttpRequest | Sleep | NeedToken | ForgetToken
Step = Generator[Command, Any, T]


@dataclass(frozen=True)
class RetryEvent:
    """What `on_retry` hooks receive: one decision to try again."""

    operation: str
    attempt: int  # the attempt that failed (1-based)
    wait: float  # seconds before the next one
    reason: str
    status: int | None
    request_id: str


@dataclass(frozen=True)
class Settings:
    client_id: str
    client_secret: str = field(repr=False)
    timeout: float
    deadline: float
    policy: RetryPolicy
    page_size: int | None
    max_pages: int
    on_retry: Callable[[RetryEvent], None] | None
    clock: Callable[[], float]  # monotonic seconds
    wall_clock: Callable[[], float]  # unix seconds, for HTTP-date Retry-After
    draw: Callable[[], float]  # uniform [0, 1), for jitter


def make_settings(*, client_id: str, client_secret: str, timeout: float, deadline: float,
                  max_attempts: int, retry: RetryPolicy | None, page_size: int | None,
                  max_pages: int, on_retry: Callable[[RetryEvent], None] | None,
                  clock: Callable[[], float], wall_clock: Callable[[], float],
                  random_source: Callable[[], float]) -> Settings:
    if timeout <= 0 or deadline <= 0:
        raise ValueError("timeout and deadline must be positive")
    if page_size is not None and not 1 <= page_size <= 200:
        raise ValueError("page_size must be between 1 and 200")
    policy = retry if retry is not None else RetryPolicy(max_attempts=max_attempts)
    return Settings(client_id, client_secret, timeout, deadline, policy, page_size, max_pages,
                    on_retry, clock, wall_clock, random_source)


def unexpected(error: Exception, operation: str) -> PartnerError:
    """E1: anything that is not a PartnerError becomes one at the boundary."""
    return PartnerError(f"unexpected {type(error).__name__} in the partner client",
                        operation=operation)


class TokenCache:
    """One bearer token, reused until shortly before it expires (A1)."""

    def __init__(self) -> None:
        self._value: str | None = None
        self._expires_at = 0.0

    def current(self, now: float) -> str | None:
        return self._value if self._value is not None and now < self._expires_at else None

    def store(self, token: Token, now: float) -> None:
        margin = min(30.0, token.lifetime_s * 0.1)
        self._value = token.value
        self._expires_at = now + token.lifetime_s - margin

    def invalidate(self, value: str) -> None:
        if self._value == value:
            self._value = None

    def __repr__(self) -> str:
        return "TokenCache(<redacted>)"


def _status_failure(reply: HttpReply) -> Failure:
    try:
        code = error_code(parse_json(reply.body, reply.headers.get("content-type")))
    except PartnerContractError:
        code = None
    return Failure(FailureKind.STATUS, code or "unexpected status", reply.status,
                   reply.headers.get("retry-after"))


def _json(reply: HttpReply) -> Any:
    return parse_json(reply.body, reply.headers.get("content-type"))


#: Set by `partnersim replay` on the answer to a request it has no recording for.
MISS_HEADER = "x-partnersim-miss"


def _refuse_miss(reply: HttpReply, method: str, path: str) -> None:
    """A replay miss raises ReplayMiss whatever its status: never a domain outcome."""
    if MISS_HEADER in reply.headers:
        try:
            message = str(parse_json(reply.body, reply.headers.get("content-type"))["message"])
        except (PartnerContractError, KeyError, TypeError):
            message = f"no recorded request matches {method} {path}"
        raise ReplayMiss(f"replay miss: {message}", status=reply.status)


def _is_token_rejection(reply: HttpReply) -> bool:
    return reply.status == 401


def fetch_token(settings: Settings, timeout: float) -> Step[Token | Failure]:
    """One token request; a Failure is for the operation's retry loop to judge."""
    reply = yield HttpRequest("POST", TOKEN_PATH, timeout, headers={
        "accept": "application/json", "user-agent": USER_AGENT},
        form=token_form(settings.client_id, settings.client_secret))
    if isinstance(reply, Failure):
        return reply
    _refuse_miss(reply, "POST", TOKEN_PATH)
    if reply.status == 200:
        return map_token(_json(reply))
    failure = _status_failure(reply)
    if reply.status in (400, 401) and failure.detail in ("invalid_client", "unauthorized_client",
                                                         "invalid_grant"):
        raise AuthenticationError(f"the partner refused our client credentials "
                                  f"({failure.detail})", status=reply.status)
    return failure


class _Refresh:
    """An attempt's token was refused (401): fetch another and try again (A1)."""


REFRESH = _Refresh()


@dataclass
class Attempts:
    """One operation's attempts so far: what its retry loop and its errors report."""

    settings: Settings
    operation: str
    method: str
    path: str
    deadline: float  # on settings.clock
    idempotent: bool = True  # R5: may it be sent again?
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # groups the journal
    count: int = 0
    last_status: int | None = None
    refreshed: bool = False

    def time_left(self) -> float:
        return self.deadline - self.settings.clock()

    def describe(self, reason: str) -> str:
        return f"{self.method} {self.path}: {reason}"


def attempt(attempts: Attempts, interpret: Callable[[HttpReply], T | Failure],
            params: Mapping[str, str], headers: Mapping[str, str]
            ) -> Step[T | Failure | _Refresh]:
    """One attempt: a token, the request, and what its reply means."""
    settings = attempts.settings
    token = yield NeedToken(min(settings.timeout, attempts.time_left()))
    if isinstance(token, Failure):
        return token  # a failed token fetch uses up this attempt
    reply = yield HttpRequest(
        attempts.method, attempts.path, min(settings.timeout, max(0.0, attempts.time_left())),
        params=params, headers={"authorization": f"Bearer {token}",
                                "x-request-id": attempts.request_id,
                                "accept": "application/json", "user-agent": USER_AGENT,
                                **headers})
    if isinstance(reply, Failure):
        return reply
    attempts.last_status = reply.status
    try:
        _refuse_miss(reply, attempts.method, attempts.path)
    except ReplayMiss as miss:
        miss.operation, miss.attempts = attempts.operation, attempts.count
        raise
    if _is_token_rejection(reply):
        yield ForgetToken(token)
        return REFRESH
    try:
        return interpret(reply)
    except PartnerError as refused:
        refused.operation, refused.attempts = attempts.operation, attempts.count
        refused.status = refused.status or reply.status
        raise


def refresh_once(attempts: Attempts) -> None:
    """A1: a refused token is refreshed once; a second refusal is final."""
    if attempts.refreshed or attempts.count >= attempts.settings.policy.max_attempts:
        raise AuthenticationError(
            "the partner refused a freshly fetched token" if attempts.refreshed
            else "the partner refused our token and no attempt is left",
            operation=attempts.operation, attempts=attempts.count, status=401)
    attempts.refreshed = True


def wait_or_give_up(attempts: Attempts, failure: Failure) -> Step[None]:
    """Ask the retry policy about a failure: sleep before the next attempt, or raise."""
    settings = attempts.settings
    attempts.last_status = failure.status or attempts.last_status
    decision = settings.policy.decide(failure=failure, attempt=attempts.count,
                                      time_left=attempts.time_left(),
                                      idempotent=attempts.idempotent,
                                      now=settings.wall_clock(), draw=settings.draw)
    if isinstance(decision, GiveUp):
        error = decision.error(attempts.describe(decision.reason), operation=attempts.operation,
                               attempts=attempts.count, status=attempts.last_status)
        if decision.retry_after is not None and hasattr(error, "retry_after"):
            error.retry_after = decision.retry_after
        raise error
    event = RetryEvent(attempts.operation, attempts.count, decision.wait, decision.reason,
                       failure.status, attempts.request_id)
    logger.info("retrying %s after attempt %d in %.3f s: %s", attempts.operation,
                attempts.count, decision.wait, decision.reason)
    if settings.on_retry is not None:
        settings.on_retry(event)
    yield Sleep(decision.wait)


def perform(settings: Settings, operation: str, method: str, path: str,
            interpret: Callable[[HttpReply], T | Failure], *, idempotent: bool = True,
            params: Mapping[str, str] | None = None,
            headers: Mapping[str, str] | None = None) -> Step[T]:
    """One operation: attempts under the deadline, each judged by the retry policy.

    `interpret` turns a reply into the result, raises a PartnerError, or
    returns a Failure for the retry policy to judge.
    """
    attempts = Attempts(settings, operation, method, path, settings.clock() + settings.deadline,
                        idempotent)
    while True:
        attempts.count += 1
        if attempts.time_left() <= 0:
            raise PartnerTimeout(attempts.describe(f"deadline of {settings.deadline} s reached"),
                                 operation=operation, attempts=attempts.count - 1,
                                 status=attempts.last_status)
        outcome = yield from attempt(attempts, interpret, params or {}, headers or {})
        if isinstance(outcome, _Refresh):
            refresh_once(attempts)
        elif isinstance(outcome, Failure):
            yield from wait_or_give_up(attempts, outcome)
        else:
            return outcome


# --- the three operations ----------------------------------------------------------------


def get_order(settings: Settings, order_id: str) -> Step[Order]:
    def interpret(reply: HttpReply) -> Order | Failure:
        if reply.status == 200:
            return map_order(_json(reply))
        if reply.status == 404:
            raise OrderNotFound(order_id)
        return _status_failure(reply)

    return perform(settings, "get_order", "GET", order_path(order_id), interpret)


def acknowledge(settings: Settings, order_id: str, idempotency_key: str | None) -> Step[None]:
    def interpret(reply: HttpReply) -> Failure | None:
        if reply.status in (200, 201):
            map_acknowledgement(_json(reply), order_id)
            return None
        if reply.status == 409 and _status_failure(reply).detail == "already_acknowledged":
            return None  # acknowledged before: done
        if reply.status == 404:
            raise OrderNotFound(order_id)
        return _status_failure(reply)

    headers = {"idempotency-key": idempotency_key} if idempotency_key is not None else {}
    return perform(settings, "acknowledge", "POST", acknowledgement_path(order_id), interpret,
                   idempotent=idempotency_key is not None, headers=headers)


class CursorExpired:
    """The partner said 410 cursor_expired: resume from the watermark."""


CURSOR_EXPIRED = CursorExpired()


def fetch_page(settings: Settings, params: Mapping[str, str]) -> Step[OrderPage | CursorExpired]:
    def interpret(reply: HttpReply) -> OrderPage | CursorExpired | Failure:
        if reply.status == 200:
            return map_page(_json(reply))
        failure = _status_failure(reply)
        if reply.status == 410 and failure.detail == "cursor_expired":
            return CURSOR_EXPIRED
        if reply.status == 400 and failure.detail == "invalid_cursor":
            raise CursorDriftError("the partner rejected the cursor it gave us")
        return failure

    return perform(settings, "iter_orders", "GET", ORDERS_PATH, interpret, params=params)
