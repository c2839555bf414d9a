"""Partner API v1 with an empty scenario: the wire shapes of DESIGN.md."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx

from partnerkit.contracts.virtual import VirtualPartner
from partnerkit.simulator import FakePartner
from partnerkit.simulator.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from tests.conftest import fetch_token


def test_token_endpoint_issues_expiring_bearer_tokens(partner: FakePartner) -> None:
    with httpx.Client(base_url=partner.url) as http:
        response = http.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID,
            "client_secret": "orderops-secret"})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert isinstance(body["access_token"], str) and body["access_token"]


def test_token_endpoint_accepts_http_basic_client_credentials(partner: FakePartner) -> None:
    with httpx.Client(base_url=partner.url) as http:
        response = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                             auth=("orderops", "orderops-secret"))
    assert response.status_code == 200


def test_wrong_credentials_get_invalid_client(partner: FakePartner) -> None:
    with httpx.Client(base_url=partner.url) as http:
        response = http.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID,
            "client_secret": "nope"})
        wrong_grant = http.post("/oauth/token", data={"grant_type": "password"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert wrong_grant.status_code == 400
    assert wrong_grant.json()["error"] == "unsupported_grant_type"


def test_token_expires_after_its_ttl() -> None:
    # On virtual time: the TTL passes without a sleep and without touching the store.
    with VirtualPartner({"dataset": {"orders": 5, "token_ttl_s": 60}, "rules": []}) as partner:
        async def around_the_ttl() -> tuple[int, int, int]:
            async with partner.http(authorized=False) as http:
                issued = await http.post("/oauth/token", data={
                    "grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID,
                    "client_secret": DEFAULT_CLIENT_SECRET})
                http.headers["authorization"] = f"Bearer {issued.json()['access_token']}"
                fresh = await http.get("/v1/orders")
                await asyncio.sleep(59.5)
                nearly = await http.get("/v1/orders")
                await asyncio.sleep(1)
                expired = await http.get("/v1/orders")
            assert expired.json()["error"] == "invalid_token"
            return fresh.status_code, nearly.status_code, expired.status_code

        assert partner.run(around_the_ttl()) == (200, 200, 401)


def test_every_endpoint_but_token_needs_a_valid_bearer(partner: FakePartner) -> None:
    with httpx.Client(base_url=partner.url) as http:
        for method, path in [("GET", "/v1/orders"), ("GET", "/v1/orders/ORD-000001"),
                             ("POST", "/v1/orders/ORD-000001/acknowledgements")]:
            missing = http.request(method, path)
            unknown = http.request(method, path, headers={"authorization": "Bearer nope"})
            for response in (missing, unknown):
                assert response.status_code == 401
                assert response.json()["error"] == "invalid_token"
                assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_unauthorized_requests_spend_no_rule_budget(partner: FakePartner) -> None:
    partner.set_scenario({"rules": [
        {"match": {"path": "/v1/orders"}, "times": 1, "fault": {"status": 503}}]})
    with httpx.Client(base_url=partner.url) as http:
        assert http.get("/v1/orders").status_code == 401
        http.headers["authorization"] = f"Bearer {fetch_token(http)}"
        assert http.get("/v1/orders").status_code == 503  # the budget was still there
        assert http.get("/v1/orders").status_code == 200
    seen = [(e["path"], e["status"], e["rule"]) for e in partner.journal()]
    assert seen[0] == ("/v1/orders", 401, None)
    assert seen[2] == ("/v1/orders", 503, 0)


def test_request_id_is_echoed_and_rate_limit_headers_are_present(http: httpx.Client) -> None:
    response = http.get("/v1/orders", headers={"x-request-id": "req-123"})
    assert response.headers["x-request-id"] == "req-123"
    assert response.headers["x-ratelimit-limit"] == "600"
    assert 0 <= int(response.headers["x-ratelimit-remaining"]) < 600
    not_found = http.get("/v1/orders/ORD-999999", headers={"x-request-id": "req-404"})
    assert not_found.headers["x-request-id"] == "req-404"


def test_get_order_and_not_found(http: httpx.Client) -> None:
    order = http.get("/v1/orders/ORD-000007")
    assert order.status_code == 200
    assert order.headers["content-type"] == "application/json"
    assert order.json()["order_id"] == "ORD-000007"
    missing = http.get("/v1/orders/ORD-999999")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"


def test_acknowledgement_is_idempotent_with_a_key(http: httpx.Client) -> None:
    path = "/v1/orders/ORD-000003/acknowledgements"
    first = http.post(path, headers={"idempotency-key": "k-1"})
    again = http.post(path, headers={"idempotency-key": "k-1"})
    assert first.status_code == 201
    assert first.json()["order_id"] == "ORD-000003"
    assert again.status_code == 200
    assert again.content == first.content  # the first response, replayed
    assert http.post(path).status_code == 409
    assert http.post(path).json()["error"] == "already_acknowledged"
    assert http.post(path, headers={"idempotency-key": "k-2"}).status_code == 409


def test_acknowledgement_without_key_then_conflict(http: httpx.Client) -> None:
    path = "/v1/orders/ORD-000004/acknowledgements"
    assert http.post(path).status_code == 201
    assert http.post(path).status_code == 409
    assert http.post("/v1/orders/ORD-999999/acknowledgements").status_code == 404


def test_unknown_paths_and_methods_answer_json(http: httpx.Client) -> None:
    missing = http.get("/v2/orders")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong_method = http.delete("/v1/orders")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"


def test_an_oversized_token_request_is_413_without_being_read_whole(
        partner: FakePartner) -> None:
    with httpx.Client(base_url=partner.url) as http:
        declared = http.post("/oauth/token", content=b"a=" + b"x" * 20_000,
                             headers={"content-type": "application/x-www-form-urlencoded"})

        def chunks() -> Iterator[bytes]:  # no Content-Length: refused while streaming
            yield b"grant_type=client_credentials&client_id=orderops&pad="
            for _ in range(100):
                yield b"x" * 10_000

        streamed = http.post("/oauth/token", content=chunks(),
                             headers={"content-type": "application/x-www-form-urlencoded"})
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["error"] == "request_too_large"
