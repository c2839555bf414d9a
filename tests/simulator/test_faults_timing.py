"""latency and dribble, measured by the client over a real socket.

Timing bounds are one-sided with margin (shared, noisy CI cores), and the
journal's own figures are preferred to wall-clock guesses.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import uvloop

from partnerkit.simulator import FakePartner
from partnerkit.simulator.engine import FaultEngine, RequestInfo, sample_latency_ms
from partnerkit.simulator.scenario import parse_scenario
from partnerkit.simulator.state import FaultWaits


def _timed_get(http: httpx.Client, path: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = http.get(path)
    return response, time.monotonic() - started


def test_fixed_latency_delays_the_status_line(partner: FakePartner, http: httpx.Client) -> None:
    partner.set_scenario({"rules": [
        {"match": {"path": "/v1/orders/*"}, "fault": {"latency": {"fixed_ms": 300}}}]})
    response, elapsed = _timed_get(http, "/v1/orders/ORD-000001")
    assert response.status_code == 200
    assert elapsed >= 0.3
    entry = partner.journal()[-1]
    assert entry["fault"] == {"latency": {"fixed_ms": 300}}
    assert entry["duration_ms"] >= 300


def test_latency_is_before_the_status_line_so_a_read_timeout_fires(
        partner: FakePartner, http: httpx.Client) -> None:
    partner.set_scenario({"rules": [{"fault": {"latency": {"fixed_ms": 1500}}}]})
    with pytest.raises(httpx.ReadTimeout):
        http.get("/v1/orders", timeout=0.3)


def test_uniform_latency_stays_in_its_range(partner: FakePartner, http: httpx.Client) -> None:
    partner.set_scenario({"rules": [{"fault": {"latency": {"uniform_ms": [50, 150]}}}]})
    for number in range(1, 6):
        http.get(f"/v1/orders/ORD-00000{number}")
    durations = [entry["duration_ms"] for entry in partner.journal()]
    assert len(durations) == 5
    assert all(duration >= 50 for duration in durations)
    assert min(durations) < 150 + 200  # generous upper margin for a loaded machine


def test_lognormal_latency_is_seeded() -> None:
    scenario = {"seed": 3, "rules": [
        {"fault": {"latency": {"lognormal": {"median_ms": 20, "sigma": 1.0}}}}]}
    def delays() -> list[float]:
        engine = FaultEngine(parse_scenario(scenario))
        result = []
        for number in range(20):
            decision = engine.decide(RequestInfo("GET", f"/v1/orders/ORD-{number}", "", {}, {}))
            assert decision is not None and decision.fault.latency is not None
            result.append(sample_latency_ms(decision.fault.latency, decision.rng))
        return result

    first, second = delays(), delays()
    assert first == second
    assert len(set(first)) == 20  # really drawn, not fixed
    assert min(first) < 20 < max(first)  # spread around the median


def test_dribble_sends_the_body_slowly(partner: FakePartner, http: httpx.Client) -> None:
    dribble = {"chunk_bytes": 64, "interval_ms": 100}
    partner.set_scenario({"rules": [{"match": {"path": "/v1/orders/*"},
                                     "fault": {"dribble": dribble}}]})
    started = time.monotonic()
    chunk_times = []
    with http.stream("GET", "/v1/orders/ORD-000002") as response:
        assert response.status_code == 200
        headers_after = time.monotonic() - started
        body = b""
        for chunk in response.iter_raw():
            body += chunk
            chunk_times.append(time.monotonic() - started)
    assert headers_after < 1.0  # the status line is not delayed, the body is
    chunks = -(-len(body) // 64)
    assert chunk_times[-1] >= (chunks * 100 - 50) / 1000
    assert len(chunk_times) >= 2  # really arrived in pieces


def test_per_chunk_read_timeout_does_not_bound_a_dribbled_body(
        partner: FakePartner, http: httpx.Client) -> None:
    """PITFALLS 1: httpx's read timeout is per chunk, so a dribble beats it."""
    partner.set_scenario({"rules": [{"fault": {"dribble": {"chunk_bytes": 100,
                                                           "interval_ms": 150}}}]})
    response, elapsed = _timed_get(http, "/v1/orders/ORD-000005")
    assert response.status_code == 200
    assert elapsed > 0.5  # well over a 0.3 s read timeout...
    http.timeout = httpx.Timeout(0.3)
    assert http.get("/v1/orders/ORD-000005").status_code == 200  # ...and it still completes


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_scripted_wait_never_ends_early(loop: str) -> None:
    """uvloop's timers tick in whole milliseconds and may fire up to one early;
    a latency fault must wait out the rest (it once ended 0.13 ms short)."""
    waits = FaultWaits()

    async def short_waits() -> list[tuple[float, float]]:
        early = []
        for i in range(40):
            wanted = 0.0013 + (i % 7) * 0.0011
            started = time.perf_counter()
            await waits.sleep(wanted)
            if (took := time.perf_counter() - started) < wanted:
                early.append((wanted, took))
        return early

    runner = uvloop.run if loop == "uvloop" else asyncio.run
    assert runner(short_waits()) == []
