"""The admin API under /__sim/ and the journal it serves."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import httpx
import pytest

from partnerkit.simulator import FakePartner
from tests.conftest import authed_client, fetch_token


def test_health(partner: FakePartner) -> None:
    health = httpx.get(f"{partner.url}/__sim/health").json()
    assert health["status"] == "ok"
    assert health["orders"] == 250
    assert health["journal_size"] == 10_000


def test_put_and_get_scenario_in_yaml_and_json(partner: FakePartner, http: httpx.Client) -> None:
    yaml_text = "name: from-yaml\nrules:\n  - match: {path: /v1/orders}\n    fault: {status: 502}\n"
    put = httpx.put(f"{partner.url}/__sim/scenario", content=yaml_text,
                    headers={"content-type": "application/yaml"})
    assert put.status_code == 200
    assert put.json() == {"status": "ok", "scenario": "from-yaml", "rules": 1}
    assert http.get("/v1/orders").status_code == 502
    current = httpx.get(f"{partner.url}/__sim/scenario").json()
    assert current["scenario"]["name"] == "from-yaml"
    assert current["spent"] == [1]
    json_body = json.dumps({"name": "from-json", "rules": []})
    assert httpx.put(f"{partner.url}/__sim/scenario", content=json_body).status_code == 200
    assert http.get("/v1/orders").status_code == 200


def test_put_scenario_resets_budgets_and_data_but_keeps_the_journal(
        partner: FakePartner, http: httpx.Client) -> None:
    http.get("/v1/orders")
    scenario = {"rules": [{"times": 1, "match": {"path": "/v1/orders"}, "fault": {"status": 503}}]}
    for _ in range(2):
        httpx.put(f"{partner.url}/__sim/scenario", content=json.dumps(scenario))
        assert http.get("/v1/orders").status_code == 503
    assert len(partner.journal()) == 3


def test_reset_clears_budgets_journal_and_data_set(partner: FakePartner,
                                                   http: httpx.Client) -> None:
    partner.set_scenario({"rules": [{"times": 1, "match": {"path": "/v1/orders"},
                                     "fault": {"status": 503}}]})
    assert http.get("/v1/orders").status_code == 503
    http.post("/v1/orders/ORD-000001/acknowledgements")
    assert httpx.post(f"{partner.url}/__sim/reset").json() == {"status": "ok"}
    assert partner.journal() == []
    assert http.get("/v1/orders").status_code == 503
    assert http.post("/v1/orders/ORD-000001/acknowledgements").status_code == 201


def test_journal_get_and_delete(partner: FakePartner, http: httpx.Client) -> None:
    http.get("/v1/orders", params={"limit": "3"}, headers={"idempotency-key": "k",
                                                           "x-request-id": "r-1"})
    entries = httpx.get(f"{partner.url}/__sim/journal").json()["entries"]
    assert len(entries) == 1  # /__sim/ requests are not journaled
    entry = entries[0]
    assert set(entry) == {"seq", "at", "at_iso", "method", "path", "query", "headers", "status",
                          "rule", "fault", "duration_ms"}
    assert entry["method"] == "GET" and entry["path"] == "/v1/orders"
    assert entry["query"] == {"limit": "3"}
    assert entry["status"] == 200 and entry["rule"] is None and entry["fault"] is None
    assert entry["headers"]["idempotency-key"] == "k"
    assert entry["headers"]["x-request-id"] == "r-1"
    assert entry["headers"]["authorization"] == "Bearer <redacted>"
    assert isinstance(entry["at"], float) and entry["duration_ms"] >= 0
    arrived = datetime.fromisoformat(entry["at_iso"])
    assert entry["at_iso"].endswith("Z") and arrived.utcoffset() == timedelta(0)
    assert abs(arrived.timestamp() - entry["at"]) < 1e-5
    assert httpx.delete(f"{partner.url}/__sim/journal").status_code == 200
    assert httpx.get(f"{partner.url}/__sim/journal").json()["entries"] == []


def test_journal_never_holds_a_secret(partner: FakePartner) -> None:
    with httpx.Client(base_url=partner.url) as http:
        token = fetch_token(http)
        http.get("/v1/orders", headers={"authorization": f"Bearer {token}",
                                        "cookie": "session=s3cr3t"})
        http.get("/v1/orders", params={"client_secret": "orderops-secret",
                                       "access_token": token})
        http.post("/oauth/token", data={"grant_type": "client_credentials"},
                  auth=("orderops", "orderops-secret"))
    dump = json.dumps(partner.journal())
    assert "/oauth/token" in dump  # the token endpoint is journaled...
    for secret in (token, "orderops-secret", "s3cr3t"):
        assert secret not in dump  # ...without its secrets
    assert "Basic <redacted>" in dump


def test_journal_is_a_bounded_ring_buffer() -> None:
    with FakePartner(journal_size=5) as partner, authed_client(partner.url) as http:
        for number in range(1, 13):
            http.get(f"/v1/orders/ORD-{number:06d}")
        entries = partner.journal()
    assert len(entries) == 5
    assert [e["path"] for e in entries] == [f"/v1/orders/ORD-{n:06d}" for n in range(8, 13)]
    assert [e["seq"] for e in entries] == list(range(9, 14))  # the token request was seq 1


def test_admin_token_is_enforced_when_set() -> None:
    with FakePartner(admin_token="let-me-in") as partner:
        denied = httpx.get(f"{partner.url}/__sim/journal")
        assert denied.status_code == 401
        assert denied.json()["error"] == "admin_token_required"
        assert httpx.post(f"{partner.url}/__sim/reset").status_code == 401
        allowed = httpx.get(f"{partner.url}/__sim/journal",
                            headers={"x-admin-token": "let-me-in"})
        assert allowed.status_code == 200


def test_oversized_scenario_is_413_and_changes_nothing(partner: FakePartner) -> None:
    partner.set_scenario({"name": "kept", "rules": []})
    huge = b"rules: []\n#" + b"x" * 2_000_000
    response = httpx.put(f"{partner.url}/__sim/scenario", content=huge)
    assert response.status_code == 413
    assert response.json()["error"] == "scenario_too_large"
    assert partner.state.scenario.name == "kept"


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/__sim/nope", 404), ("POST", "/__sim/health", 405), ("PATCH", "/__sim/scenario", 405),
])
def test_admin_errors_are_json(partner: FakePartner, method: str, path: str,
                               status: int) -> None:
    response = httpx.request(method, f"{partner.url}{path}")
    assert response.status_code == status
    assert "error" in response.json()
