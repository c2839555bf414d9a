"""The dashboard's server side: its page and assets, its event stream, its
token gate, and the ready-made scenarios it offers. The page itself is
tested in a real browser (test_ui_browser.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from partnerkit.simulator import FakePartner, parse_scenario
from partnerkit.simulator.journal import Journal
from partnerkit.simulator.server import FaultProxy, ReplayPartner
from partnerkit.simulator.ui import ASSETS, ready_made_scenarios
from tests.conftest import authed_client
from tests.simulator.test_replay import CASSETTE

ROOT = Path(__file__).resolve().parents[2]
Event = tuple[str, dict[str, Any]]


class EventReader:
    """The dashboard's server-sent events, parsed, with a deadline per wait."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.iter_lines()

    def events(self) -> Iterator[Event]:
        name, data = "message", []
        for line in self._lines:
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                yield name, json.loads("\n".join(data))
                name, data = "message", []

    def wait_for(self, wanted: Callable[[str, dict[str, Any]], bool],
                 timeout: float = 3.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for name, payload in self.events():
            if wanted(name, payload):
                return payload
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"no such event within {timeout} s")


@contextmanager
def events(url: str, token: str | None = None) -> Iterator[EventReader]:
    headers = {"x-admin-token": token} if token else {}
    with httpx.stream("GET", f"{url}/__sim/ui/events", headers=headers,
                      timeout=httpx.Timeout(5.0, read=3.0)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventReader(response)


def entries_with(path: str, done: bool = True) -> Callable[[str, dict[str, Any]], bool]:
    def wanted(name: str, payload: dict[str, Any]) -> bool:
        return name == "entries" and any(
            entry["path"] == path and (entry["duration_ms"] is not None or not done)
            for entry in payload["entries"])
    return wanted


def test_the_page_and_its_assets_come_from_the_fake_partner_itself(
        partner: FakePartner) -> None:
    page = httpx.get(f"{partner.url}/__sim/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "http" not in page.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for name, content_type in ASSETS.items():
        asset = httpx.get(f"{partner.url}/__sim/ui/assets/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["content-type"] == content_type
        assert b"https://" not in asset.content.replace(b"http://www.w3.org/2000/svg", b"")
    assert httpx.get(f"{partner.url}/__sim/ui/assets/../ui.py").status_code == 404
    assert httpx.get(f"{partner.url}/__sim/ui/assets/index.htm").status_code == 404


def test_a_request_reaches_an_open_stream_within_a_second(partner: FakePartner) -> None:
    with events(partner.url) as stream, authed_client(partner.url) as http:
        state = stream.wait_for(lambda name, _: name == "state")
        assert state["scenario"]["name"] == partner.state.scenario.name
        sent = time.monotonic()
        http.get("/v1/orders/ORD-000007")
        batch = stream.wait_for(entries_with("/v1/orders/ORD-000007"))
        assert time.monotonic() - sent < 1.0
        entry = next(e for e in batch["entries"] if e["path"] == "/v1/orders/ORD-000007")
        assert entry["status"] == 200
        assert entry["headers"]["authorization"] == "Bearer <redacted>"


def test_an_entry_in_flight_is_sent_again_when_it_completes(partner: FakePartner) -> None:
    partner.set_scenario({"rules": [{"name": "slow", "match": {"path": "/v1/orders/*"},
                                     "fault": {"latency": {"fixed_ms": 600}}}]})
    with events(partner.url) as stream, authed_client(partner.url) as http:
        stream.wait_for(lambda name, _: name == "state")
        worker = threading.Thread(target=http.get, args=("/v1/orders/ORD-000002",))
        worker.start()
        try:
            first = stream.wait_for(entries_with("/v1/orders/ORD-000002", done=False))
            assert [e["duration_ms"] for e in first["entries"]
                    if e["path"] == "/v1/orders/ORD-000002"] == [None]
            done = stream.wait_for(entries_with("/v1/orders/ORD-000002"))
        finally:
            worker.join(5)
        entry = next(e for e in done["entries"] if e["path"] == "/v1/orders/ORD-000002")
        assert entry["rule"] == "slow" and entry["status"] == 200
        assert entry["duration_ms"] >= 600


def test_the_stream_carries_rules_with_their_budgets_and_the_scenario(
        partner: FakePartner) -> None:
    partner.set_scenario({"name": "budgets", "rules": [
        {"name": "two-503s", "match": {"path": "/v1/orders"}, "times": 2,
         "fault": {"status": 503}},
        {"match": {"path": "/v1/orders/*"}, "fault": {"latency": {"fixed_ms": 1}}},
    ]})
    with events(partner.url) as stream, authed_client(partner.url) as http:
        state = stream.wait_for(lambda name, _: name == "state")
        assert [(r["label"], r["spent"], r["left"]) for r in state["rules"]] == [
            ("two-503s", 0, 2), (1, 0, None)]
        assert parse_scenario(state["scenario"]["yaml"]).name == "budgets"
        http.get("/v1/orders")
        state = stream.wait_for(lambda name, p: name == "state" and p["rules"][0]["spent"] == 1)
        assert state["rules"][0]["left"] == 1
        assert state["health"]["journal_entries"] >= 1


def test_clearing_the_journal_tells_the_page(partner: FakePartner) -> None:
    with events(partner.url) as stream, authed_client(partner.url) as http:
        http.get("/v1/orders")
        stream.wait_for(entries_with("/v1/orders"))
        partner.clear_journal()
        state = stream.wait_for(lambda name, p: name == "state" and p["journal_first"] == 0)
        assert state["health"]["journal_entries"] == 0


def test_the_dashboard_needs_the_admin_token_when_one_is_set() -> None:
    with FakePartner(admin_token="ui-secret") as partner:
        assert httpx.get(f"{partner.url}/__sim/ui").status_code == 200  # the page holds no data
        for path in ("/__sim/ui/events", "/__sim/ui/scenarios"):
            denied = httpx.get(f"{partner.url}{path}", headers={"x-admin-token": "wrong"})
            assert denied.status_code == 401, path
            assert denied.json()["error"] == "admin_token_required"
        allowed = httpx.get(f"{partner.url}/__sim/ui/scenarios",
                            headers={"x-admin-token": "ui-secret"})
        assert allowed.status_code == 200
        with events(partner.url, token="ui-secret") as stream:
            stream.wait_for(lambda name, _: name == "state")


def test_replay_serves_the_dashboard_too() -> None:
    with ReplayPartner(CASSETTE) as partner, events(partner.url) as stream:
        state = stream.wait_for(lambda name, _: name == "state")
        assert state["health"]["mode"] == "replay"
        httpx.get(f"{partner.url}/v1/orders/ORD-1")
        stream.wait_for(entries_with("/v1/orders/ORD-1"))


def test_an_open_page_does_not_hold_up_shutdown() -> None:
    partner = FakePartner().start()
    with httpx.stream("GET", f"{partner.url}/__sim/ui/events", timeout=5.0) as response:
        assert response.status_code == 200
        started = time.monotonic()
        partner.close()
        assert time.monotonic() - started < 2.0


def test_ready_made_scenarios_are_every_file_of_scenarios_and_all_valid(
        partner: FakePartner) -> None:
    shipped = {item["file"]: item for item in ready_made_scenarios()}
    assert set(shipped) == {path.name for path in (ROOT / "scenarios").glob("*.yaml")}
    for item in shipped.values():
        assert parse_scenario(item["text"]).name == item["name"]
        assert item["summary"].endswith(".")
    served = httpx.get(f"{partner.url}/__sim/ui/scenarios").json()["scenarios"]
    assert [item["file"] for item in served] == sorted(shipped)


def test_the_package_holds_the_assets_and_the_scenarios() -> None:
    """hatch packs `partnerkit/` (following its links): what the dashboard reads
    must be reachable from there, not only from the repository root."""
    package = ROOT / "partnerkit"
    for name in ("index.html", *ASSETS):
        assert (package / "simulator" / "ui_assets" / name).is_file(), name
    assert (package / "scenarios").resolve() == ROOT / "scenarios"


@pytest.mark.parametrize("size", [1, 5])
def test_journal_tail_returns_only_what_is_new(size: int) -> None:
    journal = Journal(size)
    assert journal.tail(0, 10) == (0, [])
    for n in range(8):
        journal.open(float(n), "GET", f"/p{n}", {}, {})
    first, new = journal.tail(0, 10)
    assert first == 9 - size and [e["seq"] for e in new] == list(range(9 - size, 9))
    assert [e["seq"] for e in journal.tail(6, 1)[1]] == [8]
    assert journal.tail(8, 10)[1] == []
    assert [e["seq"] for e in journal.find([1, 8, 9])] == [8]
    new[-1]["status"] = 999  # copies: the journal keeps its own
    assert journal.entries()[-1]["status"] is None


def test_a_page_opening_late_gets_the_recent_past_and_no_false_alarm(
        partner: FakePartner) -> None:
    with httpx.Client(base_url=partner.url) as http:
        for _ in range(150):
            http.get("/v1/orders")
    with events(partner.url) as stream:
        batch = stream.wait_for(lambda name, _: name == "entries")
    assert len(batch["entries"]) == 100  # the newest 100 of 150
    assert batch["entries"][-1]["seq"] == partner.journal()[-1]["seq"]
    assert batch["skipped"] == 0  # the past is not "too fast to show"


def test_the_stream_works_on_the_h11_stack_too() -> None:
    with FakePartner(http="h11") as partner, events(partner.url) as stream:
        stream.wait_for(lambda name, _: name == "state")
        httpx.get(f"{partner.url}/v1/orders")
        stream.wait_for(entries_with("/v1/orders"))


def test_the_fault_proxy_serves_the_dashboard_too(partner: FakePartner) -> None:
    with FaultProxy(partner.url, {"name": "in-front", "rules": [
            {"name": "one-503", "match": {"path": "/v1/orders"}, "times": 1,
             "fault": {"status": 503}}]}) as proxy, events(proxy.url) as stream:
        assert httpx.get(f"{proxy.url}/__sim/ui").status_code == 200
        state = stream.wait_for(lambda name, _: name == "state")
        assert [rule["label"] for rule in state["rules"]] == ["one-503"]
        assert httpx.get(f"{proxy.url}/v1/orders").status_code == 503
        batch = stream.wait_for(entries_with("/v1/orders"))
        assert batch["entries"][-1]["rule"] == "one-503"
