"""A small, naive partner client with bugs you can switch on.

It exists to be judged: with no bug switched on it keeps every contract on
simple traffic; each bug breaks one contract the way real integration code
does (retrying a 404, ignoring Retry-After, a fresh Idempotency-Key per
attempt, ...). The verdict tests and the reproduction test plant them.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from partnerkit.client import Order
from partnerkit.client.errors import (
    AuthenticationError,
    CursorDriftError,
    OrderNotFound,
    PartnerError,
    PartnerTimeout,
    PartnerUnavailable,
    RateLimited,
)
from partnerkit.client.mapping import map_order, parse_json


@dataclass(frozen=True)
class Bugs:
    retry_404: bool = False  # R1
    retry_invalid_body: bool = False  # R1
    give_up_at_once: bool = False  # R1
    no_attempt_cap: bool = False  # R2
    ignore_retry_after: bool = False  # R3
    wait_out_long_retry_after: bool = False  # R3
    fixed_backoff_s: float | None = None  # R4
    new_key_per_attempt: bool = False  # R5
    retry_ack_without_key: bool = False  # R5
    no_attempt_timeout: bool = False  # T2 (and T1)
    sleep_past_deadline: bool = False  # T1, R2
    token_per_request: bool = False  # A1
    no_refresh: bool = False  # A1
    secret_in_errors: bool = False  # A1
    float_money: bool = False  # M1
    raw_key_error: bool = False  # M2, E1
    no_dedupe: bool = False  # P2
    follow_repeated_cursor: bool = False  # P1
    stop_on_expired_cursor: bool = False  # P3


class ThrowawayClient:
    def __init__(self, url: str, bugs: Bugs = Bugs(), *, timeout: float = 0.5,
                 deadline: float = 3.0, max_attempts: int = 3, backoff_base: float = 0.05,
                 backoff_max: float = 0.2, max_pages: int = 50) -> None:
        self.http = httpx.Client(base_url=url)
        self.bugs = bugs
        self.timeout, self.deadline = timeout, deadline
        self.max_attempts, self.backoff_base, self.backoff_max = max_attempts, backoff_base, \
            backoff_max
        self.max_pages = max_pages
        self.secret = "orderops-secret"
        self._token: str | None = None

    def close(self) -> None:
        self.http.close()

    def _fetch_token(self) -> str:
        try:
            response = self.http.post("/oauth/token", data={
                "grant_type": "client_credentials", "client_id": "orderops",
                "client_secret": self.secret}, timeout=self.timeout)
        except httpx.HTTPError as error:
            raise PartnerUnavailable(f"token endpoint: {type(error).__name__}") from None
        if response.status_code != 200:
            raise PartnerUnavailable(f"token endpoint answered {response.status_code}")
        token: str = response.json()["access_token"]
        return token

    def _auth(self) -> str:
        if self._token is None or self.bugs.token_per_request:
            self._token = self._fetch_token()
        return self._token

    def _send(self, method: str, path: str, *, params: dict[str, str] | None = None,
              key: str | None = None, idempotent: bool = True) -> httpx.Response:
        bugs = self.bugs
        started = time.monotonic()
        refreshed = False
        attempt = 0
        request_id = uuid.uuid4().hex
        while True:
            attempt += 1
            left = self.deadline - (time.monotonic() - started)
            if left <= 0 and not bugs.sleep_past_deadline:
                raise PartnerTimeout("deadline reached")
            headers = {"authorization": f"Bearer {self._auth()}", "x-request-id": request_id}
            if key is not None:
                headers["idempotency-key"] = f"{key}-{attempt}" if bugs.new_key_per_attempt \
                    else key
            timeout = 30.0 if bugs.no_attempt_timeout else max(0.01, min(self.timeout, left))
            wait = None
            try:
                response = self.http.request(method, path, params=params, headers=headers,
                                             timeout=timeout)
            except httpx.HTTPError as error:
                if not idempotent and not bugs.retry_ack_without_key:
                    raise PartnerUnavailable(f"{type(error).__name__}") from None
                failure: Any = error
            else:
                if response.status_code == 401 and not refreshed and not bugs.no_refresh:
                    self._token, refreshed = None, True
                    continue
                if response.status_code == 401:
                    raise AuthenticationError("refused" + (
                        f" with secret {self.secret}" if bugs.secret_in_errors else ""))
                if response.status_code == 404 and not bugs.retry_404:
                    return response
                transient = response.status_code in (404, 429, 500, 502, 503, 504)
                if not transient:
                    return response
                if not idempotent and not bugs.retry_ack_without_key:
                    raise PartnerUnavailable(f"status {response.status_code}")
                failure = response
                header = response.headers.get("retry-after", "")
                if header.isdigit() and not bugs.ignore_retry_after:
                    wait = float(header)
                    if wait > self.deadline - (time.monotonic() - started) and not (
                            bugs.wait_out_long_retry_after or bugs.sleep_past_deadline):
                        raise (RateLimited if response.status_code == 429 else
                               PartnerUnavailable)("Retry-After beyond the deadline")
            if bugs.give_up_at_once or (attempt >= self.max_attempts and not bugs.no_attempt_cap):
                if isinstance(failure, httpx.Response):
                    raise PartnerUnavailable(f"status {failure.status_code}")
                raise PartnerUnavailable(type(failure).__name__)
            if attempt >= 12:
                raise PartnerUnavailable("gave up")
            if wait is None:
                wait = bugs.fixed_backoff_s if bugs.fixed_backoff_s is not None else min(
                    self.backoff_max, self.backoff_base * 2 ** (attempt - 1)) * 0.5
            left = self.deadline - (time.monotonic() - started)
            if wait >= left and not bugs.sleep_past_deadline:
                raise PartnerTimeout("no time left")
            time.sleep(wait)

    def _order(self, payload: Any) -> Order:
        if self.bugs.raw_key_error:
            return Order(id=payload["order_id"], status=payload["state"],
                         subtotal=Decimal(payload["subtotal_cents"]) / 100,
                         currency=payload["currency"], customer_email=None, lines=(),
                         updated_at=payload["updated_at"])
        order = map_order(payload)
        if self.bugs.float_money:
            return Order(order.id, order.status, order.subtotal * Decimal("1.0001"),
                         order.currency, order.customer_email, order.lines, order.updated_at)
        return order

    def _json(self, response: httpx.Response) -> Any:
        if self.bugs.retry_invalid_body or self.bugs.raw_key_error:
            return response.json()
        return parse_json(response.content, response.headers.get("content-type"))

    def get_order(self, order_id: str) -> Order:
        for _ in range(3 if self.bugs.retry_invalid_body else 1):
            response = self._send("GET", f"/v1/orders/{order_id}")
            if response.status_code == 404:
                raise OrderNotFound(order_id)
            try:
                return self._order(self._json(response))
            except (ValueError, PartnerError):
                if not self.bugs.retry_invalid_body:
                    raise
        raise PartnerUnavailable("invalid bodies")

    def acknowledge(self, order_id: str, idempotency_key: str | None = None) -> None:
        response = self._send("POST", f"/v1/orders/{order_id}/acknowledgements",
                              key=idempotency_key, idempotent=idempotency_key is not None)
        if response.status_code == 404:
            raise OrderNotFound(order_id)

    def iter_orders(self) -> list[Order]:
        orders: list[Order] = []
        seen: set[str] = set()
        cursor: str | None = None
        since: str | None = None
        used: set[str] = set()
        for _ in range(self.max_pages):
            params = {"limit": "10"}
            if cursor is not None:
                params["cursor"] = cursor
            elif since is not None:
                params["updated_since"] = since
            response = self._send("GET", "/v1/orders", params=params)
            if response.status_code == 410:
                if self.bugs.stop_on_expired_cursor:
                    return orders
                cursor, since = None, orders[-1].updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
                continue
            page = self._json(response)
            for payload in page["data"]:
                order = self._order(payload)
                if order.id in seen and not self.bugs.no_dedupe:
                    continue
                seen.add(order.id)
                orders.append(order)
            cursor = page["next_cursor"]
            if cursor is None:
                return orders
            if cursor in used and not self.bugs.follow_repeated_cursor:
                raise CursorDriftError("repeated cursor")
            used.add(cursor)
        raise CursorDriftError("page cap")
