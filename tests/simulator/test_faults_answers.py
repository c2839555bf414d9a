"""status, rate_limit and auth faults: what a plain httpx client observes."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import httpx

from partnerkit.simulator import FakePartner
from tests.conftest import fetch_token


def test_status_with_retry_after_in_seconds(partner: FakePartner, http: httpx.Client) -> None:
    partner.set_scenario({"rules": [{"match": {"path": "/v1/orders"},
                                     "fault": {"status": 503, "retry_after": 2}}]})
    response = http.get("/v1/orders")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json() == {"error": "unavailable", "message": "injected 503"}


def test_status_with_retry_after_as_http_date(partner: FakePartner, http: httpx.Client) -> None:
    partner.set_scenario({"rules": [{"fault": {"status": 429, "retry_after": "http-date:30"}}]})
    before = time.time()
    response = http.get("/v1/orders")
    assert response.status_code == 429
    when = parsedate_to_datetime(response.headers["retry-after"]).timestamp()
    assert before + 28 <= when <= time.time() + 31


def test_status_with_custom_body_and_headers(partner: FakePartner, http: httpx.Client) -> None:
    partner.set_scenario({"rules": [{"fault": {
        "status": 500, "body": {"error": "boom", "trace": "x"}, "headers": {"X-Partner": "1"}}},
    ]})
    response = http.get("/v1/orders/ORD-000001")
    assert response.status_code == 500
    assert response.json() == {"error": "boom", "trace": "x"}
    assert response.headers["x-partner"] == "1"
    partner.set_scenario({"rules": [{"fault": {"status": 502, "body": "<html>bad gateway"}}]})
    text = http.get("/v1/orders")
    assert text.status_code == 502 and text.text == "<html>bad gateway"


def test_rate_limit_is_a_real_token_bucket(partner: FakePartner, http: httpx.Client) -> None:
    partner.set_scenario({"rules": [{"match": {"path": "/v1/orders"},
                                     "fault": {"rate_limit": {"limit": 3, "per_s": 2}}}]})
    answers = [http.get("/v1/orders") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert all(a.headers["x-ratelimit-limit"] == "3" for a in answers)
    limited = answers[-1]
    assert limited.json()["error"] == "rate_limited"
    # 3 tokens per 2 s: the next token is at most 0.67 s away, so "1" (rounded up).
    assert limited.headers["retry-after"] == "1"
    time.sleep(float(limited.headers["retry-after"]))
    assert http.get("/v1/orders").status_code == 200  # Retry-After told the truth


def test_rate_limit_retry_after_rounds_up_whole_seconds(partner: FakePartner,
                                                         http: httpx.Client) -> None:
    partner.set_scenario({"rules": [{"fault": {"rate_limit": {"limit": 1, "per_s": 5}}}]})
    assert http.get("/v1/orders").status_code == 200
    limited = http.get("/v1/orders")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] in ("5", "4")  # ~5 s minus time already passed


def test_expire_token_revokes_the_token_for_good(partner: FakePartner,
                                                 http: httpx.Client) -> None:
    partner.set_scenario({"rules": [{"match": {"path": "/v1/orders"}, "times": 1,
                                     "fault": {"auth": "expire_token"}}]})
    first = http.get("/v1/orders")
    assert first.status_code == 401
    assert first.json()["error"] == "invalid_token"
    assert first.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    # The rule is spent, but the token stays revoked everywhere...
    assert http.get("/v1/orders/ORD-000001").status_code == 401
    # ...until the client fetches a new one.
    http.headers["authorization"] = f"Bearer {fetch_token(http)}"
    assert http.get("/v1/orders").status_code == 200
