"""Two workers sharing one real Redis answer exactly as one process would.

Each "worker" is a FakePartner on its own socket and event loop with its own
Redis connection, under one state prefix; every request goes on a fresh
connection, alternating between them, so both really serve.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from partnerkit.simulator import FakePartner
from partnerkit.simulator.server import FaultProxy, ReplayPartner
from tests.conftest import fetch_token
from tests.redis_server import RedisServer

TOKEN_FORM = {"grant_type": "client_credentials", "client_id": "orderops",
              "client_secret": "orderops-secret"}


@contextmanager
def workers(url: str, scenario: dict[str, Any], count: int = 2) -> Iterator[list[FakePartner]]:
    prefix = f"test:{uuid.uuid4().hex}:"
    partners = [FakePartner(scenario, state=url, state_prefix=prefix) for _ in range(count)]
    try:
        for partner in partners:
            partner.start()
        partners[0].reset()  # budgets and journal afresh for all
        yield partners
    finally:
        for partner in partners:
            partner.close()


def token_of(partner: FakePartner) -> str:
    with httpx.Client(base_url=partner.url, timeout=5) as http:
        return fetch_token(http)


#: Every request on a fresh connection, so each worker serves its share.
FRESH = httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0))


def _until_healthy(partner: FakePartner, within_s: float = 20.0) -> None:
    """Wait (bounded) until the worker says its shared state answers again."""
    deadline = time.monotonic() + within_s
    while True:
        health = httpx.get(partner.url + "/__sim/health", timeout=5)
        if health.status_code == 200 and health.json()["status"] == "ok":
            return
        assert time.monotonic() < deadline, f"not recovered within {within_s} s: {health.text}"
        time.sleep(0.05)


def get(partner: FakePartner, path: str, token: str) -> httpx.Response:
    return FRESH.get(partner.url + path, headers={"authorization": f"Bearer {token}"})


def fan_out(partners: list[FakePartner], paths: list[str], token: str) -> list[int]:
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda item: get(partners[item[0] % len(partners)], item[1],
                                              token).status_code, enumerate(paths)))


def test_times_fires_exactly_its_budget_under_200_concurrent_requests(
        redis_server: RedisServer) -> None:
    scenario = {"rules": [{"name": "five", "match": {"path": "/v1/orders/*"}, "times": 5,
                           "fault": {"status": 503}}]}
    with workers(redis_server.url, scenario) as (a, b):
        token = token_of(a)
        statuses = fan_out([a, b], [f"/v1/orders/ORD-{n % 50 + 1:06d}" for n in range(200)],
                           token)
        assert Counter(statuses) == {503: 5, 200: 195}
        assert a.state.spent() == b.state.spent() == [5]
        deadline = time.monotonic() + 2  # an entry reaches Redis just after its answer
        while len(entries := b.journal()) < 201 and time.monotonic() < deadline:
            time.sleep(0.01)
        seqs = [entry["seq"] for entry in entries]
        assert sorted(seqs) == list(range(1, 202))  # the token request, then the 200
        assert sum(entry["rule"] == "five" for entry in entries) == 5


def test_a_bucket_admits_exactly_its_limit_across_workers(redis_server: RedisServer) -> None:
    scenario = {"rules": [{"match": {"path": "/v1/orders/*"},
                           "fault": {"rate_limit": {"limit": 10, "per_s": 3600}}}]}
    with workers(redis_server.url, scenario) as (a, b):
        token = token_of(b)
        statuses = fan_out([a, b], ["/v1/orders/ORD-000001"] * 60, token)
        assert Counter(statuses) == {200: 10, 429: 50}
        late = get(a, "/v1/orders/ORD-000002", token)
        assert late.status_code == 429
        assert 350 <= int(late.headers["retry-after"]) <= 360  # 360 s a token, less elapsed


def test_a_token_works_on_every_worker_and_its_revocation_reaches_all(
        redis_server: RedisServer) -> None:
    scenario = {"rules": [{"match": {"path": "/v1/orders/ORD-000002"}, "times": 1,
                           "fault": {"auth": "expire_token"}}]}
    with workers(redis_server.url, scenario) as (a, b):
        token = token_of(a)
        assert get(b, "/v1/orders/ORD-000001", token).status_code == 200
        assert get(b, "/v1/orders/ORD-000002", token).status_code == 401  # revoked on b
        assert get(a, "/v1/orders/ORD-000001", token).status_code == 401  # and on a
        assert get(a, "/v1/orders/ORD-000001", token_of(b)).status_code == 200
        assert get(a, "/v1/orders/ORD-000001", "sim-unknown").status_code == 401


def test_a_scenario_swap_reaches_every_worker_before_put_returns(
        redis_server: RedisServer) -> None:
    with workers(redis_server.url, {"rules": []}) as (a, b):
        token = token_of(a)
        assert get(b, "/v1/orders/ORD-000001", token).status_code == 200
        swapped = httpx.put(a.url + "/__sim/scenario", timeout=5, content=(
            b'{"name": "swapped", "rules": [{"match": {"path": "/v1/orders/*"}, '
            b'"times": 1, "fault": {"status": 500}}]}'))
        assert swapped.status_code == 200, swapped.text
        assert get(b, "/v1/orders/ORD-000001", token).status_code == 500
        assert get(a, "/v1/orders/ORD-000001", token).status_code == 200  # times: 1, shared
        assert httpx.get(b.url + "/__sim/scenario").json()["spent"] == [1]
        assert httpx.post(b.url + "/__sim/reset").status_code == 200
        assert get(a, "/v1/orders/ORD-000001", token).status_code == 500  # budgets afresh
        assert len(a.journal()) == 1  # the journal too, for every worker


CHAOS = {"seed": 7, "rules": [
    {"name": "chaos", "match": {"path": "/v1/orders/*"}, "probability": 0.3,
     "fault": {"one_of": [{"weight": 2, "status": 503}, {"weight": 1, "status": 500}]}},
    {"name": "every-third", "match": {"path": "/v1/orders/*"}, "after": 2, "every": 3,
     "fault": {"status": 502}},
]}


def test_seeded_decisions_are_the_same_with_one_memory_worker_and_two_on_redis(
        redis_server: RedisServer) -> None:
    paths = [f"/v1/orders/ORD-{n % 7 + 1:06d}" for n in range(80)]
    with FakePartner(CHAOS) as alone:
        token = token_of(alone)
        expected = [get(alone, path, token).status_code for path in paths]
    assert set(expected) == {200, 500, 502, 503}  # every kind of decision is compared
    with workers(redis_server.url, CHAOS) as pair:
        token = token_of(pair[0])
        shared = [get(pair[n % 2], path, token).status_code for n, path in enumerate(paths)]
    assert shared == expected


def test_acknowledgements_first_writer_wins_and_keys_replay_everywhere(
        redis_server: RedisServer) -> None:
    with workers(redis_server.url, {"rules": []}) as (a, b):
        token = token_of(a)
        path = "/v1/orders/ORD-000003/acknowledgements"

        def ack(partner: FakePartner, key: str | None) -> httpx.Response:
            headers = {"authorization": f"Bearer {token}"}
            if key is not None:
                headers["idempotency-key"] = key
            return FRESH.post(partner.url + path, headers=headers)

        first = ack(a, "k-1")
        assert first.status_code == 201
        again = ack(b, "k-1")
        assert (again.status_code, again.content) == (200, first.content)
        assert ack(b, None).status_code == 409
        assert ack(a, "k-2").status_code == 409


DRIFT = {"seed": 3, "dataset": {"orders": 60, "page_size": 10}, "rules": [
    {"name": "drift", "match": {"path": "/v1/orders"}, "after": 1, "times": 3,
     "fault": {"cursor_drift": {"insert": 2, "update": 1, "delete": 2}}},
]}


def sync_pages(partners: list[FakePartner], token: str) -> list[bytes]:
    """A whole sync, page after page, each page on the next worker, and each page
    fetched again on every other worker: all must see the same drifted data set."""
    pages: list[bytes] = []
    cursor: str | None = None
    for n in range(20):
        path = "/v1/orders" + (f"?cursor={cursor}" if cursor else "")
        answer = get(partners[n % len(partners)], path, token)
        assert answer.status_code == 200, answer.text
        pages.append(answer.content)
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("the sync did not end")


def test_pages_after_cursor_drift_are_the_same_on_every_worker_and_as_in_memory(
        redis_server: RedisServer) -> None:
    with FakePartner(DRIFT) as alone:
        expected = sync_pages([alone], token_of(alone))
        drifted = [entry["fault"]["drifted"] for entry in alone.journal()
                   if entry["rule"] == "drift"]
    assert len(drifted) == 3
    with workers(redis_server.url, DRIFT) as (a, b):
        token = token_of(a)
        assert sync_pages([a, b], token) == expected
        assert [entry["fault"]["drifted"] for entry in a.journal()
                if entry["rule"] == "drift"] == drifted
        everything = "/v1/orders?limit=200"
        assert get(a, everything, token).content == get(b, everything, token).content


def test_redis_lost_mid_run_is_503_never_a_pass_and_workers_recover(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    try:
        scenario = {"rules": [{"match": {"path": "/v1/orders/*"}, "times": 1,
                               "fault": {"status": 503}}]}
        with workers(server.url, scenario) as (a, b):
            token = token_of(a)
            server.stop()
            lost = get(b, "/v1/orders/ORD-000001", token)
            assert lost.status_code == 503
            assert lost.json()["error"] == "state_backend_unavailable"
            health = httpx.get(a.url + "/__sim/health", timeout=5)
            assert (health.status_code, health.json()["error"]) == (
                503, "state_backend_unavailable")
            server.start()  # empty: no persistence, so tokens are gone and budgets afresh
            for worker in (a, b):  # back by themselves, within a bounded while
                _until_healthy(worker)
            assert get(a, "/v1/orders/ORD-000001", token).status_code == 401
            token = token_of(b)
            assert get(a, "/v1/orders/ORD-000001", token).status_code == 503  # times: 1 again
            assert get(b, "/v1/orders/ORD-000001", token).status_code == 200
            assert httpx.get(b.url + "/__sim/health", timeout=5).json()["status"] == "ok"
    finally:
        server.stop()


def test_a_request_in_flight_at_a_reset_stays_out_of_the_new_journal(
        redis_server: RedisServer) -> None:
    scenario = {"rules": [{"match": {"path": "/v1/orders/*"}, "times": 1,
                           "fault": {"disconnect": "hang"}}]}
    with workers(redis_server.url, scenario) as (a, b):
        token = token_of(a)
        with ThreadPoolExecutor(max_workers=1) as pool:
            hung = pool.submit(lambda: FRESH.get(a.url + "/v1/orders/ORD-000001", timeout=0.5,
                                                 headers={"authorization": f"Bearer {token}"}))
            time.sleep(0.2)
            b.clear_journal()  # as DELETE /__sim/journal would, on the other worker
            with pytest.raises(httpx.ReadTimeout):
                hung.result(timeout=5)
        assert get(b, "/v1/orders/ORD-000002", token).status_code == 200
        time.sleep(0.2)  # the hung entry's completion has been sent by now
        assert [entry["path"] for entry in a.journal()] == ["/v1/orders/ORD-000002"]


def test_replay_hands_each_recording_out_once_across_workers(
        redis_server: RedisServer) -> None:
    from tests.simulator.test_replay import CASSETTE  # three recordings of GET ORD-1

    prefix = f"test:{uuid.uuid4().hex}:"
    with ReplayPartner(CASSETTE, state=redis_server.url, state_prefix=prefix) as a, \
            ReplayPartner(CASSETTE, state=redis_server.url, state_prefix=prefix) as b:
        a.reset()
        statuses = [FRESH.get(partner.url + "/v1/orders/ORD-1").status_code
                    for partner in (a, b, b, a)]
        assert statuses == [503, 429, 200, 200]  # in recorded order, then the last repeats
        b.reset()  # rewinds for every worker
        assert FRESH.get(a.url + "/v1/orders/ORD-1").status_code == 503


TIMED = {"seed": 3, "rules": [
    {"name": "outage", "match": {"path": "/v1/orders/*"}, "window": {"from_s": 10, "for_s": 5},
     "fault": {"status": 503}},
    {"name": "flapping", "match": {"path": "/v1/returns/*"},
     "flap": {"up_s": 2, "down_s": 1}, "fault": {"status": 502}},
    {"name": "ramp", "match": {"path": "/v1/invoices/*"},
     "ramp": {"over_s": 20, "latency_ms": [0, 1000]}, "fault": {"status": 500}},
]}


def test_timed_rules_agree_across_workers_on_the_shared_start(
        redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seconds into the scenario count from its start on Redis's clock, which every
    worker reads from Redis (the one that published it and the one that adopted it),
    so at any instant two workers are in the same window, flap cycle and ramp step."""
    from partnerkit.simulator.backends import open_state
    from partnerkit.simulator.backends import redis as redis_backend
    from partnerkit.simulator.engine import RequestInfo
    from partnerkit.simulator.scenario import parse_scenario
    from partnerkit.simulator.state import PartnerState

    prefix = f"test:{uuid.uuid4().hex}:"

    def worker() -> PartnerState:
        backend = open_state(redis_server.url, prefix, journal_size=100,
                             journal_bytes=1 << 20)
        return PartnerState(parse_scenario(TIMED, source="test"), backend=backend)

    a = worker()
    a.reset()
    b = worker()  # started later: adopts a's start before its first answer
    now = [a.backend.started + 30]
    monkeypatch.setattr(redis_backend.time, "time", lambda: now[0])
    start = a.backend.started

    def decided(state: PartnerState, path: str) -> tuple[str, float | None] | None:
        decision = state.admit(RequestInfo("GET", path, "", {}, {}), None, "none")
        if decision is None:
            return None
        return decision.rule.label, decision.moment and decision.moment.latency_ms

    seen = []
    for at in [0, 9.999, 10, 12.5, 14.999, 15, 1.999, 2, 2.999, 3, 5.5, 19.9]:
        now[0] = start + at
        for path in ("/v1/orders/ORD-000001", "/v1/returns/R-1", "/v1/invoices/I-1"):
            pair = [decided(a, path), decided(b, path)]
            seen.append((at, path, pair))
            assert pair[0] == pair[1], (at, path, pair)
    outage = {at for at, path, pair in seen if path.startswith("/v1/orders") and pair[0]}
    assert outage == {10, 12.5, 14.999}
    flapping = {at for at, path, pair in seen if path.startswith("/v1/returns") and pair[0]}
    assert flapping == {2, 2.999, 5.5, 14.999}
    assert [pair[0] for at, path, pair in seen if at == 5.5 and "invoices" in path] == [
        ("ramp", 275.0)]
    now[0] = start + 100
    monkeypatch.undo()
    b.reset()  # on either worker, restarts the clock of both (on Redis's, again)
    monkeypatch.setattr(redis_backend.time, "time", lambda: now[0])
    now[0] = b.backend.started + 10.5
    assert decided(a, "/v1/orders/ORD-1") == decided(b, "/v1/orders/ORD-2") == ("outage", None)


def test_a_request_encoded_once_per_rule_is_the_plain_encoding(
        redis_server: RedisServer) -> None:
    from partnerkit.simulator.backends import open_state
    from partnerkit.simulator.backends.redis import RedisBackend, _Admission, _bulk
    from partnerkit.simulator.engine import RequestInfo
    from partnerkit.simulator.scenario import parse_scenario
    from partnerkit.simulator.state import PartnerState

    backend = open_state(redis_server.url, f"test:{uuid.uuid4().hex}:", journal_size=100,
                         journal_bytes=1 << 20)
    assert isinstance(backend, RedisBackend)
    PartnerState(parse_scenario({**CHAOS, "rules": [
        *CHAOS["rules"], {"match": {"path": "/v1/orders/*"},
                          "fault": {"rate_limit": {"limit": 3, "per_s": 1.5}}}]},
        source="test"), backend=backend)
    for token in (None, "sim-é"):
        request = RequestInfo("GET", "/v1/orders/ORD-000001", "a=1", {"a": "1"}, {})
        admission = _Admission(backend, request, token, "valid")
        assert len(admission.candidates) == 3
        plain = [len(admission.args), *admission.args]
        assert admission.packed() == (b"".join(_bulk(part) for part in plain), len(plain))


def test_two_fault_proxies_on_one_redis_share_budgets_revocations_and_journal(
        redis_server: RedisServer) -> None:
    faults = {"rules": [{"match": {"path": "/v1/orders/ORD-000002"}, "times": 1,
                         "fault": {"auth": "expire_token"}},
                        {"match": {"path": "/v1/orders/ORD-000003"}, "times": 1,
                         "fault": {"status": 503}}]}
    prefix = f"test:{uuid.uuid4().hex}:"
    with FakePartner() as upstream, \
            FaultProxy(upstream.url, faults, state=redis_server.url, state_prefix=prefix) as a, \
            FaultProxy(upstream.url, faults, state=redis_server.url, state_prefix=prefix) as b:
        a.reset()
        assert a.state.backend.name == b.state.backend.name == "redis"
        token = token_of(a)  # the upstream's
        assert get(b, "/v1/orders/ORD-000003", token).status_code == 503
        assert get(a, "/v1/orders/ORD-000003", token).status_code == 200  # times: 1, shared
        assert get(a, "/v1/orders/ORD-000002", token).status_code == 401  # revoked on a
        assert get(b, "/v1/orders/ORD-000001", token).status_code == 401  # refused on b
        assert get(b, "/v1/orders/ORD-000001", token_of(b)).status_code == 200
        deadline = time.monotonic() + 2  # a's last entry reaches Redis just after its answer
        while len(entries := b.journal()) < 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        paths = [entry["path"] for entry in entries]
        assert paths.count("/v1/orders/ORD-000003") == 2 and len(paths) == 7


def test_after_redis_restarts_empty_every_worker_starts_the_data_set_afresh(
        tmp_path: Path) -> None:
    """The worker that publishes its scenario into the empty Redis rebuilds its data
    set as the others do: none keeps the changes of the lost change log."""
    server = RedisServer(tmp_path).start()
    try:
        with workers(server.url, DRIFT) as (a, b):
            sync_pages([a, b], token_of(a))  # the data set drifts on both
            everything = "/v1/orders?limit=200"
            server.stop()
            server.start()  # empty
            for first, second in ((a, b), (b, a)):
                token = token_of(first)  # first publishes: Redis had no scenario
                pages = [get(worker, everything, token).content for worker in (first, second)]
                assert pages[0] == pages[1]
            with FakePartner(DRIFT) as alone:  # as at the start, no drift
                assert get(a, everything, token).content == get(
                    alone, everything, token_of(alone)).content
    finally:
        server.stop()


def test_a_redis_that_stops_answering_is_503_within_the_timeout_then_recovers(
        tmp_path: Path) -> None:
    """A stalled Redis (SIGSTOP: connected, silent) is no pass either: the pipelined
    connection gives up after SOCKET_TIMEOUT_S without a reply, and reconnects."""
    import signal

    from partnerkit.simulator.backends.redis import SOCKET_TIMEOUT_S

    server = RedisServer(tmp_path).start()
    assert server.process is not None
    try:
        scenario = {"rules": [{"match": {"path": "/v1/orders/*"}, "times": 1,
                               "fault": {"status": 503}}]}
        with workers(server.url, scenario, count=1) as (a,):
            token = token_of(a)
            assert get(a, "/v1/orders/ORD-000001", token).status_code == 503  # the rule
            server.process.send_signal(signal.SIGSTOP)
            try:
                stalled = FRESH.get(a.url + "/v1/orders/ORD-000001",
                                    timeout=3 * SOCKET_TIMEOUT_S + 2,
                                    headers={"authorization": f"Bearer {token}"})
            finally:
                server.process.send_signal(signal.SIGCONT)
            assert stalled.status_code == 503
            assert stalled.json()["error"] == "state_backend_unavailable"
            assert get(a, "/v1/orders/ORD-000001", token).status_code == 200  # spent, shared
    finally:
        server.stop()
