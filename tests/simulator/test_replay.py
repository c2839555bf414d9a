"""`partnersim replay`: matching, recorded order, near misses, fault overlay, admin API."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from partnerkit.simulator.cassette import Interaction, RecordedRequest, RecordedResponse
from partnerkit.simulator.replay import MISS_STATUS, RecordingIndex, RequestKey
from partnerkit.simulator.scenario import ScenarioError
from partnerkit.simulator.server import ReplayPartner


def recorded(method: str, path: str, status: int = 200, payload: object = None, *,
             body: bytes = b"", headers: dict[str, list[str]] | None = None) -> Interaction:
    answer = json.dumps(payload if payload is not None else {"n": status}).encode()
    return Interaction(
        RecordedRequest(method, f"https://partner.example.com{path}", body,
                        {"authorization": ["<redacted>"]}),
        RecordedResponse(status, "", {"content-type": ["application/json"],
                                      **(headers or {})}, answer),
    )


CASSETTE = [
    recorded("POST", "/oauth/token", 200, {"access_token": "<redacted>",
                                           "token_type": "Bearer", "expires_in": 3600}),
    recorded("GET", "/v1/orders?limit=2&updated_since=2026-01-01T00:00:00Z", 200, {"page": 1}),
    recorded("GET", "/v1/orders/ORD-1", 503, headers={"retry-after": ["1"]}),
    recorded("GET", "/v1/orders/ORD-1", 429),
    recorded("GET", "/v1/orders/ORD-1", 200, {"order_id": "ORD-1"}),
    recorded("POST", "/v1/orders/ORD-1/acknowledgements", 201, {"first": True}, body=b"a"),
    recorded("POST", "/v1/orders/ORD-1/acknowledgements", 201, {"first": False}, body=b"b"),
]


@pytest.fixture
def replay() -> Iterator[ReplayPartner]:
    with ReplayPartner(CASSETTE, allow_misses=True) as partner:  # some tests miss on purpose
        yield partner


@pytest.fixture
def http(replay: ReplayPartner) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=replay.url, timeout=5) as client:
        yield client


def test_query_order_host_and_headers_do_not_matter(http: httpx.Client) -> None:
    answer = http.get("/v1/orders?updated_since=2026-01-01T00:00:00Z&limit=2",
                      headers={"authorization": "Bearer whatever", "host": "elsewhere:1"})
    assert answer.status_code == 200
    assert answer.json() == {"page": 1}


def test_identical_requests_get_recordings_in_order_then_the_last_repeats(
        http: httpx.Client) -> None:
    statuses = [http.get("/v1/orders/ORD-1").status_code for _ in range(5)]
    assert statuses == [503, 429, 200, 200, 200]


def test_recorded_headers_are_served_and_transfer_headers_recomputed(http: httpx.Client) -> None:
    answer = http.get("/v1/orders/ORD-1")
    assert answer.headers["retry-after"] == "1"
    assert answer.headers["content-length"] == str(len(answer.content))
    assert "x-ratelimit-remaining" not in answer.headers  # nothing made up in replay


def test_the_token_flow_works_against_redacted_recordings(http: httpx.Client) -> None:
    token = http.post("/oauth/token", data={"grant_type": "client_credentials",
                                            "client_id": "x", "client_secret": "anything"})
    assert token.status_code == 200 and token.json()["access_token"] == "<redacted>"
    assert http.get("/v1/orders/ORD-1", headers={"authorization": "Bearer <redacted>"}
                    ).status_code == 503


def test_an_unmatched_request_names_the_closest_recordings(http: httpx.Client) -> None:
    answer = http.get("/v1/orders?limit=3&updated_since=2026-01-01T00:00:00Z")
    assert answer.status_code == MISS_STATUS
    body = answer.json()
    assert body["error"] == "no_recording"
    closest = body["closest"][0]
    assert (closest["method"], closest["path"]) == ("GET", "/v1/orders")
    assert closest["differences"] == ["query limit: recorded '2', got '3'"]


def test_a_wrong_method_is_named_as_the_difference(http: httpx.Client) -> None:
    answer = http.delete("/v1/orders/ORD-1")
    assert answer.status_code == MISS_STATUS
    assert answer.json()["closest"][0]["differences"] == ["method: recorded GET, got DELETE"]


def test_bodies_are_ignored_unless_asked_for(http: httpx.Client) -> None:
    first = http.post("/v1/orders/ORD-1/acknowledgements", content=b"b")
    assert first.json() == {"first": True}  # recorded order, whatever the body


def test_match_body_picks_the_recording_by_its_body() -> None:
    with ReplayPartner(CASSETTE, match_body=True, allow_misses=True) as partner:
        answer = httpx.post(f"{partner.url}/v1/orders/ORD-1/acknowledgements", content=b"b")
        assert answer.json() == {"first": False}
        miss = httpx.post(f"{partner.url}/v1/orders/ORD-1/acknowledgements", content=b"c")
        assert miss.status_code == MISS_STATUS
        assert "body: differs from the recorded body" in miss.json()["closest"][0]["differences"]


def test_a_request_answered_by_a_fault_uses_no_recording() -> None:
    faults = {"rules": [{"match": {"path": "/v1/orders/*"}, "times": 2,
                         "fault": {"status": 500}}]}
    with ReplayPartner(CASSETTE, faults=faults) as partner, \
            httpx.Client(base_url=partner.url, timeout=5) as http:
        statuses = [http.get("/v1/orders/ORD-1").status_code for _ in range(4)]
        assert statuses == [500, 500, 503, 429]
        replayed = [entry.get("replayed") for entry in partner.journal()]
        assert replayed == [None, None, 2, 3]
        assert [entry["rule"] for entry in partner.journal()] == [0, 0, None, None]


def test_latency_and_resets_overlay_recorded_answers() -> None:
    faults = {"rules": [
        {"match": {"path": "/v1/orders/ORD-1"}, "times": 1, "fault": {"disconnect": "reset"}},
        {"match": {"path": "/v1/orders/ORD-1"}, "fault": {"latency": {"fixed_ms": 200}}},
    ]}
    with ReplayPartner(CASSETTE, faults=faults) as partner, \
            httpx.Client(base_url=partner.url, timeout=5) as http:
        with pytest.raises(httpx.TransportError):
            http.get("/v1/orders/ORD-1")
        answer = http.get("/v1/orders/ORD-1")
        assert answer.status_code == 503  # the first recording: the reset used none
        assert partner.journal()[-1]["duration_ms"] >= 200


def test_the_admin_api_works_in_replay(replay: ReplayPartner, http: httpx.Client) -> None:
    health = http.get("/__sim/health").json()
    assert health["mode"] == "replay"
    assert health["interactions"] == len(CASSETTE)
    assert http.get("/v1/orders/ORD-1").status_code == 503
    put = http.put("/__sim/scenario", content=json.dumps(
        {"rules": [{"match": {"path": "/v1/orders/*"}, "fault": {"status": 502}}]}))
    assert put.status_code == 200
    assert http.get("/v1/orders/ORD-1").status_code == 502
    assert http.post("/__sim/reset").status_code == 200
    http.put("/__sim/scenario", content=b"rules: []")
    assert http.get("/v1/orders/ORD-1").status_code == 503  # reset rewound the recordings
    journal = http.get("/__sim/journal").json()["entries"]
    assert journal[-1]["replayed"] == 2


def test_dataset_faults_are_refused_in_replay(replay: ReplayPartner,
                                              http: httpx.Client) -> None:
    drift = {"rules": [{"fault": {"cursor_drift": {"insert": 2}}}]}
    put = http.put("/__sim/scenario", content=json.dumps(drift))
    assert put.status_code == 422
    problem = put.json()["problems"][0]
    assert problem["path"] == "rules[0].fault.cursor_drift"
    assert "replay" in problem["message"]
    assert http.get("/v1/orders/ORD-1").status_code == 503  # the overlay stayed as it was
    with pytest.raises(ScenarioError, match="cursor_drift"):
        ReplayPartner(CASSETTE, faults=drift)


def test_a_lookup_does_not_scan_the_cassette() -> None:
    """The index is keyed: a hit touches one bucket whatever the cassette's size."""
    big = [recorded("GET", f"/v1/orders/ORD-{n}") for n in range(20_000)]
    index = RecordingIndex(big)
    assert index.stats() == {"interactions": 20_000, "distinct_requests": 20_000, "answered": 0,
                             "misses": 0}
    found = index.next_for(RequestKey.of("GET", "/v1/orders/ORD-19999", "", None))
    assert found is not None and found[0] == 19_999
    nearest = index.closest(RequestKey.of("GET", "/v1/orders/ORD-x", "", None))
    assert len(nearest) == 3
    assert all(item["differences"][0].startswith("path: ") for item in nearest)


def test_match_body_sees_through_redaction_and_field_order() -> None:
    token = Interaction(
        RecordedRequest("POST", "http://p.test/oauth/token",
                        b"grant_type=client_credentials&client_id=orderops"
                        b"&client_secret=<redacted>",
                        {"content-type": ["application/x-www-form-urlencoded"]}),
        RecordedResponse(200, "OK", {"content-type": ["application/json"]},
                         b'{"access_token":"<redacted>"}'))
    note = Interaction(
        RecordedRequest("POST", "http://p.test/v1/notes", b'{"a":1,"b":[2,3]}',
                        {"content-type": ["application/json"]}),
        RecordedResponse(201, "Created", {}, b"noted"))
    with ReplayPartner([token, note], match_body=True) as partner:
        answer = httpx.post(f"{partner.url}/oauth/token", data={
            "client_secret": "the-real-one", "grant_type": "client_credentials",
            "client_id": "orderops"})
        assert answer.status_code == 200  # the live secret is redacted before matching
        again = httpx.post(f"{partner.url}/v1/notes", content=b'{"b": [2, 3], "a": 1}',
                           headers={"content-type": "application/json"})
        assert again.status_code == 201


def test_the_admin_token_is_enforced_in_replay() -> None:
    with ReplayPartner(CASSETTE, admin_token="s3cret-admin") as partner:
        assert httpx.get(f"{partner.url}/__sim/journal").status_code == 401
        allowed = httpx.get(f"{partner.url}/__sim/journal",
                            headers={"x-admin-token": "s3cret-admin"})
        assert allowed.status_code == 200


def test_an_oversized_request_body_is_413_not_held(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(11):
            yield b"x" * 1024 * 1024
    answer = http.post("/v1/orders/ORD-1/acknowledgements", content=chunks())
    assert answer.status_code == 413
    assert answer.json()["error"] == "request_too_large"
