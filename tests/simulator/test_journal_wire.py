"""The wire shape of `GET /__sim/journal`, pinned: keys, their order, and which
optional keys appear when. Clients in other languages parse this JSON, and
a cassette of it may be diffed byte for byte: a change here is a breaking one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from partnerkit.contracts.virtual import VirtualPartner
from partnerkit.simulator import FakePartner
from partnerkit.simulator.cassette import Interaction, RecordedRequest, RecordedResponse
from partnerkit.simulator.server import FaultProxy, ReplayPartner
from tests.conftest import authed_client
from tests.redis_server import RedisServer

BASE_KEYS = ["seq", "at", "at_iso", "method", "path", "query", "headers", "status", "rule",
             "fault", "duration_ms"]
VARYING = {"seq", "at", "at_iso", "duration_ms"}


def _wire(base_url: str) -> list[dict[str, Any]]:
    """The entries as the admin API sends them, in the key order of the JSON text."""
    text = httpx.get(f"{base_url}/__sim/journal").text
    entries: list[dict[str, Any]] = json.loads(text)["entries"]
    return entries


def _fixed(entry: dict[str, Any]) -> list[tuple[str, Any]]:
    """The entry's items in order, with what changes from run to run left out."""
    return [(name, value) for name, value in entry.items()
            if name not in VARYING and name != "headers"]


def _check_varying(entry: dict[str, Any]) -> None:
    assert isinstance(entry["seq"], int)
    assert isinstance(entry["at"], float)
    assert isinstance(entry["at_iso"], str) and entry["at_iso"].endswith("Z")
    assert entry["duration_ms"] is None or isinstance(entry["duration_ms"], int | float)


def _scenario_partner(partner: FakePartner) -> list[dict[str, Any]]:
    partner.set_scenario({"seed": 3, "rules": [
        {"name": "down", "match": {"path": "/v1/orders/ORD-000002"},
         "fault": {"status": 503, "retry_after": 2}},
        {"name": "bucket", "match": {"path": "/v1/orders/ORD-000003"},
         "fault": {"rate_limit": {"limit": 1, "per_s": 60}}},
    ]})
    with authed_client(partner.url) as http:
        partner.clear_journal()
        http.get("/v1/orders/ORD-000001", params={"x": "1"}, headers={"x-request-id": "r-1"})
        http.get("/v1/orders/ORD-000002")
        http.get("/v1/orders/ORD-000003")
        http.get("/v1/orders/ORD-000003")
        http.get("/v1/orders/ORD-000001", headers={"authorization": "Bearer nope"})
    return _wire(partner.url)


PARTNER_ENTRIES = [
    [("method", "GET"), ("path", "/v1/orders/ORD-000001"), ("query", {"x": "1"}),
     ("status", 200), ("rule", None), ("fault", None)],
    [("method", "GET"), ("path", "/v1/orders/ORD-000002"), ("query", {}), ("status", 503),
     ("rule", "down"), ("fault", {"status": 503, "retry_after": 2}), ("retry_after", "2")],
    [("method", "GET"), ("path", "/v1/orders/ORD-000003"), ("query", {}), ("status", 200),
     ("rule", "bucket"), ("fault", {"rate_limit": {"limit": 1, "per_s": 60}})],
    [("method", "GET"), ("path", "/v1/orders/ORD-000003"), ("query", {}), ("status", 429),
     ("rule", "bucket"), ("fault", {"rate_limit": {"limit": 1, "per_s": 60},
                                    "retry_after": 60}), ("retry_after", "60")],
    [("method", "GET"), ("path", "/v1/orders/ORD-000001"), ("query", {}), ("status", 401),
     ("rule", None), ("fault", None)],
]


def _check_partner(entries: list[dict[str, Any]]) -> None:
    assert [_fixed(entry) for entry in entries] == PARTNER_ENTRIES
    for entry in entries:
        assert list(entry)[:len(BASE_KEYS)] == BASE_KEYS
        _check_varying(entry)
    assert entries[0]["headers"]["x-request-id"] == "r-1"
    assert entries[0]["headers"]["authorization"] == "Bearer <redacted>"
    assert list(entries[0]["headers"])[-1] == "x-request-id"  # arrival order kept


def test_the_fake_partner_journal_on_the_wire(partner: FakePartner) -> None:
    _check_partner(_scenario_partner(partner))


def test_the_shared_journal_on_the_wire_is_the_same(redis_server: RedisServer) -> None:
    with FakePartner(state=redis_server.url, state_prefix="wire:") as partner:
        _check_partner(_scenario_partner(partner))


def test_a_timed_fault_says_which_moment_made_it() -> None:
    with VirtualPartner({"rules": [{"match": {"path": "/v1/orders/*"},
                                    "window": {"from_s": 0, "for_s": 300},
                                    "fault": {"status": 500}}]}) as partner:
        async def one() -> None:
            async with partner.http() as http:
                await http.get("/v1/orders/ORD-000001")

        partner.run(one())
        entry = json.loads(json.dumps(partner.journal()[-1]))
    assert list(entry) == BASE_KEYS
    assert entry["fault"] == {"status": 500, "timing": {"at_s": 0.0,
                                                        "window": {"from_s": 0.0, "for_s": 300.0}}}


def _recorded(path: str, status: int, headers: dict[str, list[str]]) -> Interaction:
    return Interaction(RecordedRequest("GET", f"https://partner.example.com{path}", b"", {}),
                       RecordedResponse(status, "", {"content-type": ["application/json"],
                                                     **headers}, b"{}", duration_ms=4.0))


@pytest.fixture
def replay() -> Iterator[ReplayPartner]:
    cassette = [_recorded("/v1/orders/ORD-1", 200, {}),
                _recorded("/v1/orders/ORD-2", 503, {"retry-after": ["5"]})]
    with ReplayPartner(cassette, allow_misses=True, recorded_latency=0.5) as partner:
        yield partner


def test_the_replay_journal_on_the_wire(replay: ReplayPartner) -> None:
    for path in ("/v1/orders/ORD-1", "/v1/orders/ORD-2", "/v1/orders/ORD-3"):
        httpx.get(replay.url + path)
    entries = _wire(replay.url)
    assert [list(entry)[len(BASE_KEYS):] for entry in entries] == [
        ["replayed", "recorded_latency_ms"],
        ["replayed", "recorded_latency_ms", "retry_after"],
        ["replayed", "miss"],
    ]
    assert [(e["replayed"], e["recorded_latency_ms"]) for e in entries[:2]] == [(0, 2.0),
                                                                                (1, 2.0)]
    assert entries[1]["retry_after"] == "5"
    assert entries[2]["replayed"] is None and entries[2]["miss"] is True


def test_the_proxy_journal_names_an_upstream_failure() -> None:
    with FaultProxy("http://127.0.0.1:9", timeout_s=2.0) as proxy:
        assert httpx.get(proxy.url + "/v1/orders/ORD-1").status_code == 502
        entries = _wire(proxy.url)
    assert list(entries[0]) == [*BASE_KEYS, "upstream"]
    assert entries[0]["upstream"] == "upstream_unreachable"
    assert entries[0]["status"] == 502
