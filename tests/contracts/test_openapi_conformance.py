"""Every answer the fake partner gives with an empty scenario matches the
contract: documented status, documented headers, body valid against the
schema. And the contract itself is what the fake partner serves."""

from __future__ import annotations

import json

import httpx
import pytest

from partnerkit.contracts.openapi import ResponseChecker, openapi_document
from partnerkit.contracts.schemas import SCHEMAS_DIR, schema_errors
from partnerkit.simulator import FakePartner
from tests.conftest import authed_client

CHECKER = ResponseChecker()


def _conforms(response: httpx.Response) -> None:
    problems = CHECKER.problems(response.request.method, response.request.url.path,
                                response.status_code, dict(response.headers),
                                response.content)
    assert problems == [], problems


def test_the_fake_partner_serves_the_bundled_contract(partner: FakePartner) -> None:
    served = httpx.get(f"{partner.url}/openapi.json").json()
    assert served == openapi_document()
    assert served["openapi"] == "3.1.0"
    assert set(served["components"]["schemas"]) == {
        "Order", "Page", "Token", "Error", "Acknowledgement"}
    text = json.dumps(served)
    assert ".schema.json" not in text  # every file reference was bundled


def test_every_status_the_partner_can_answer_is_documented() -> None:
    paths = openapi_document()["paths"]
    assert set(paths["/v1/orders"]["get"]["responses"]) >= {"200", "400", "401", "410", "429",
                                                            "503"}
    assert set(paths["/v1/orders/{order_id}"]["get"]["responses"]) >= {"200", "401", "404",
                                                                       "429", "503"}
    ack = paths["/v1/orders/{order_id}/acknowledgements"]["post"]["responses"]
    assert set(ack) >= {"200", "201", "401", "404", "409", "429", "503"}
    links = paths["/v1/orders"]["get"]["responses"]["200"]["links"]
    assert links["nextPage"]["parameters"] == {"cursor": "$response.body#/next_cursor"}


def test_all_answers_of_an_empty_scenario_conform(partner: FakePartner) -> None:
    with httpx.Client(base_url=partner.url) as anonymous:
        _conforms(anonymous.post("/oauth/token", data={"grant_type": "client_credentials",
                                                      "client_id": "orderops",
                                                      "client_secret": "orderops-secret"}))
        _conforms(anonymous.post("/oauth/token", data={"grant_type": "client_credentials",
                                                      "client_id": "x", "client_secret": "y"}))
        _conforms(anonymous.post("/oauth/token", data={"grant_type": "password"}))
        _conforms(anonymous.get("/v1/orders"))
        _conforms(anonymous.get("/v1/orders/ORD-000001", headers={"authorization": "Bearer x"}))
        _conforms(anonymous.post("/v1/orders/ORD-000001/acknowledgements"))
    with authed_client(partner.url) as http:
        cursor = None
        pages = 0
        while True:
            page = http.get("/v1/orders", params={"limit": "60", **(
                {"cursor": cursor} if cursor else {})}, headers={"x-request-id": "r"})
            _conforms(page)
            pages += 1
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert pages == 5
        _conforms(http.get("/v1/orders", params={"updated_since": "2026-11-10T00:00:00Z"}))
        for bad in ({"limit": "0"}, {"cursor": "garbage"}, {"updated_since": "soon"}):
            response = http.get("/v1/orders", params=bad)
            assert response.status_code == 400
            _conforms(response)
        for number in range(1, 251, 7):
            _conforms(http.get(f"/v1/orders/ORD-{number:06d}"))
        _conforms(http.get("/v1/orders/ORD-999999"))
        ack = "/v1/orders/ORD-000009/acknowledgements"
        statuses = []
        for headers in ({"idempotency-key": "k"}, {"idempotency-key": "k"}, {}):
            response = http.post(ack, headers=headers)
            statuses.append(response.status_code)
            _conforms(response)
        assert statuses == [201, 200, 409]
        _conforms(http.post("/v1/orders/ORD-999999/acknowledgements"))


def test_the_checker_catches_what_breaks_the_contract() -> None:
    order = {"order_id": "ORD-1", "state": "paid", "subtotal_cents": 1, "currency": "EUR",
             "customer": {"id": "C", "email": None},
             "lines": [{"sku": "S", "qty": 1, "unit_price_cents": 1}],
             "updated_at": "2026-11-20T10:15:00Z"}
    headers = {"content-type": "application/json", "x-ratelimit-limit": "600",
               "x-ratelimit-remaining": "5"}
    good = json.dumps(order).encode()
    assert CHECKER.problems("GET", "/v1/orders/ORD-1", 200, headers, good) == []
    broken = json.dumps({**order, "subtotal_cents": "1"}).encode()
    assert any("subtotal_cents" in p for p in
               CHECKER.problems("GET", "/v1/orders/ORD-1", 200, headers, broken))
    assert "not documented" in CHECKER.problems("GET", "/v1/orders/ORD-1", 418, headers,
                                                good)[0]
    assert any("X-RateLimit-Limit" in p for p in
               CHECKER.problems("GET", "/v1/orders/ORD-1", 200,
                                {"content-type": "application/json"}, good))
    unauthorized = CHECKER.problems("GET", "/v1/orders", 401, {
        "content-type": "application/json"}, b'{"error": "invalid_token", "message": ""}')
    assert any("WWW-Authenticate" in p for p in unauthorized)


@pytest.mark.parametrize("name", ["order", "page", "token", "error", "acknowledgement"])
def test_schema_files_are_valid_draft_2020_12(name: str) -> None:
    from jsonschema import Draft202012Validator

    schema = json.loads((SCHEMAS_DIR / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema_errors(name, None)  # null is never a valid payload
