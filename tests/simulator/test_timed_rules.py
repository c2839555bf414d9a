"""Rules in time — outage windows, flapping, ramps — checked on virtual time,
where a five-minute outage takes milliseconds and every instant is exact."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings

from partnerkit.contracts.strategies import production_fault_plans, timings
from partnerkit.contracts.virtual import VirtualPartner
from partnerkit.simulator import parse_scenario
from partnerkit.simulator.scenario import ScenarioError


@pytest.fixture
def virtual() -> Iterator[VirtualPartner]:
    with VirtualPartner({"rules": []}) as partner:
        yield partner


def _statuses_at(partner: VirtualPartner, rule: dict[str, Any],
                 moments: list[float]) -> list[tuple[int, dict[str, Any] | None]]:
    """GET an order at each moment (seconds after the scenario starts)."""
    partner.set_scenario({"seed": 5, "rules": [{"match": {"path": "/v1/orders/*"}, **rule}]})

    async def requests() -> list[tuple[int, dict[str, Any] | None]]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        seen = []
        async with partner.http() as http:
            for moment in moments:
                await asyncio.sleep(max(0.0, started + moment - loop.time()))
                answer = await http.get("/v1/orders/ORD-000001")
                seen.append((answer.status_code, partner.journal()[-1]["fault"]))
        return seen

    return partner.run(requests())


def test_an_outage_window_acts_only_inside_it(virtual: VirtualPartner) -> None:
    seen = _statuses_at(virtual, {"window": {"from_s": 60, "for_s": 300},
                                  "fault": {"status": 503}}, [0, 59.9, 60, 200, 359.9, 360])
    assert [status for status, _ in seen] == [200, 200, 503, 503, 503, 200]
    assert seen[3][1] is not None
    assert seen[3][1]["timing"] == {"at_s": 200.0, "window": {"from_s": 60.0, "for_s": 300.0}}


def test_a_flapping_service_is_down_for_down_s_of_every_cycle(virtual: VirtualPartner) -> None:
    seen = _statuses_at(virtual, {"flap": {"up_s": 20, "down_s": 10},
                                  "fault": {"status": 503}}, [5, 21, 29.5, 31, 55])
    assert [status for status, _ in seen] == [200, 503, 503, 200, 503]
    assert seen[4][1] is not None and seen[4][1]["timing"]["flap"] == {"cycle": 1,
                                                                        "down_for_s": 5.0}


def test_a_probability_ramp_rises_from_never_to_always(virtual: VirtualPartner) -> None:
    moments = [0, 1, 2, 3, 4, 100, 101, 102, 150]
    seen = _statuses_at(virtual, {"ramp": {"over_s": 100, "probability": [0, 1]},
                                  "fault": {"status": 500}}, moments)
    assert [status for status, _ in seen[:5]] == [200] * 5  # p < 0.05
    assert [status for status, _ in seen[5:]] == [500] * 4  # p = 1 from 100 s on
    again = _statuses_at(virtual, {"ramp": {"over_s": 100, "probability": [0, 1]},
                                   "fault": {"status": 500}}, moments)
    assert again == seen  # deterministic given the clock and the seed


def test_a_latency_ramp_adds_its_delay(virtual: VirtualPartner) -> None:
    _statuses_at(virtual, {"ramp": {"over_s": 100, "latency_ms": [0, 2000]},
                           "fault": {"latency": {"fixed_ms": 100}}}, [50, 200])
    durations = [entry["duration_ms"] for entry in virtual.journal()]
    assert durations == [pytest.approx(1_100, abs=0.01), pytest.approx(2_100, abs=0.01)]


def test_reset_starts_the_clock_of_timed_rules_again(virtual: VirtualPartner) -> None:
    _statuses_at(virtual, {"window": {"from_s": 0, "for_s": 10}, "fault": {"status": 503}}, [20])
    virtual.reset()

    async def once() -> int:
        async with virtual.http() as http:
            return (await http.get("/v1/orders/ORD-000001")).status_code

    assert virtual.run(once()) == 503  # at 0 s again: inside the window


@pytest.mark.parametrize(("rule", "problem"), [
    ({"window": {"from_s": 5}}, "rules[0].window: missing required key 'for_s'"),
    ({"window": {"from_s": -1, "for_s": 5}}, "rules[0].window.from_s: must be at least 0"),
    ({"flap": {"up_s": 0, "down_s": 5}}, "rules[0].flap.up_s: must be greater than 0"),
    ({"flap": {"up_s": 1, "down_s": 5, "every_s": 3}}, "rules[0].flap.every_s: unknown key"),
    ({"ramp": {"over_s": 10}}, "rules[0].ramp: a ramp needs exactly one of"),
    ({"ramp": {"over_s": 10, "probability": [0, 1.5]}},
     "rules[0].ramp.probability[1]: must be at least 0 and at most 1.0"),
    ({"ramp": {"over_s": 10, "latency_ms": [0]}}, "rules[0].ramp.latency_ms: expected [from, to]"),
    ({"probability": 0.5, "ramp": {"over_s": 10, "probability": [0, 1]}},
     "rules[0].ramp.probability: the rule has a 'probability' already"),
])
def test_a_bad_timed_rule_is_refused_with_where(rule: dict[str, Any], problem: str) -> None:
    with pytest.raises(ScenarioError) as refused:
        parse_scenario({"rules": [{"fault": {"status": 503}, **rule}]})
    described = [f"{p.as_json()['path']}: {p.as_json()['message']}"
                 for p in refused.value.problems]
    assert any(text.startswith(problem) for text in described), described


@given(timings())
@settings(max_examples=50)
def test_every_generated_timing_is_valid(timing: dict[str, Any]) -> None:
    parse_scenario({"rules": [{"fault": {"status": 503}, **timing}]})


@given(production_fault_plans())
@settings(max_examples=50)
def test_every_production_fault_plan_is_a_valid_scenario(plan: dict[str, Any]) -> None:
    parse_scenario(plan)
