"""Contracts on virtual time: the fake partner and the async client share one
event loop whose clock jumps ahead, so production settings (timeout 5 s,
deadline 30 s, Retry-After up to 60 s, token TTL 3,600 s) cost milliseconds.
Connection faults act as on a socket; verdicts agree with a socket run; the
planted bugs are still caught."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import example, given, settings

from partnerkit.client import AsyncPartnerClient, RetryPolicy
from partnerkit.client.errors import PartnerTimeout
from partnerkit.contracts.harness import client_settings, observe_async
from partnerkit.contracts.strategies import fault_plans, production_fault_plans
from partnerkit.contracts.verdicts import Observation, judge
from partnerkit.contracts.virtual import VirtualPartner, VirtualTimeLoop
from partnerkit.simulator import FakePartner
from tests.contracts.properties import examples

PRODUCTION = {"timeout": 5.0, "deadline": 30.0,
              "retry": RetryPolicy(max_attempts=4, backoff_base=0.5, backoff_max=8.0,
                                   retry_after_max=60.0)}
RUNS: dict[str, tuple[Callable[[AsyncPartnerClient], Any], str | None]] = {
    "get_order": (lambda client: client.get_order("ORD-000003"), None),
    "acknowledge": (lambda client: client.acknowledge("ORD-000004", idempotency_key="k-1"),
                    "k-1"),
    "iter_orders": (lambda client: client.iter_orders(), None),
}


def _one_rule(fault: dict[str, Any], times: int = 1, **extra: Any) -> dict[str, Any]:
    return {"seed": 1, "dataset": {"orders": 12, "page_size": 5, **extra},
            "rules": [{"match": {"path": "/v1/orders/*"}, "times": times, "fault": fault}]}


@pytest.fixture(scope="module")
def virtual() -> Iterator[VirtualPartner]:
    with VirtualPartner({"dataset": {"orders": 12, "page_size": 5}, "rules": []}) as partner:
        yield partner


def _observe(partner: VirtualPartner, plan: dict[str, Any], operation: str,
             **options: Any) -> Observation:
    partner.set_scenario(plan)
    partner.reset()
    run, key = RUNS[operation]
    return partner.observe(operation, run, idempotency_key=key, **{**PRODUCTION, **options})


# --- the loop and the in-process transport --------------------------------------------------


def test_the_clock_jumps_to_the_next_timer() -> None:
    async def waits() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.sleep(3_600)
        with anyio.move_on_after(60):
            await asyncio.Event().wait()  # never set: only the timeout ends it
        return started, loop.time()

    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        started, ended = runner.run(waits())
    assert ended - started == pytest.approx(3_660, abs=1e-6)


@pytest.mark.parametrize(("fault", "error"), [
    ({"disconnect": "reset"}, httpx.ReadError),
    ({"disconnect": "mid_body"}, httpx.RemoteProtocolError),
    ({"malformed": "content_length_mismatch"}, httpx.RemoteProtocolError),
])
def test_connection_faults_raise_what_a_socket_raises(virtual: VirtualPartner,
                                                      fault: dict[str, Any],
                                                      error: type[Exception]) -> None:
    virtual.set_scenario(_one_rule(fault))
    virtual.reset()

    async def fetch() -> None:
        async with virtual.http() as http:
            response = await http.get("/v1/orders/ORD-000001")
            assert response.status_code == 200

    with pytest.raises(error):
        virtual.run(fetch())
    assert [e["status"] for e in virtual.journal()] == [None]


def test_a_hang_answers_nothing_until_the_clients_timeout(virtual: VirtualPartner) -> None:
    observation = _observe(virtual, _one_rule({"disconnect": "hang"}, times=9), "get_order",
                           timeout=5.0, deadline=12.0)
    assert isinstance(observation.outcome, PartnerTimeout)
    attempts = [e for e in observation.journal if e["path"] != "/oauth/token"]
    assert len(attempts) == 3 and all(e["status"] is None for e in attempts)
    assert observation.elapsed == pytest.approx(12.0, abs=0.01)  # the deadline, exactly
    assert judge(observation).passed, judge(observation)


def test_a_dribbled_body_takes_its_time_and_the_attempt_timeout_covers_it(
        virtual: VirtualPartner) -> None:
    slow = {"dribble": {"chunk_bytes": 16, "interval_ms": 1_000}}  # ~20 chunks: over 5 s
    observation = _observe(virtual, _one_rule(slow, times=1), "get_order")
    attempts = [e for e in observation.journal if e["path"] != "/oauth/token"]
    assert len(attempts) == 2  # the dribbled one was abandoned at 5 s, the retry got through
    assert attempts[1]["at"] - attempts[0]["at"] >= 5.0
    assert judge(observation).passed, judge(observation)


# --- production settings ---------------------------------------------------------------------


def test_a_60_s_retry_after_is_waited_out(virtual: VirtualPartner) -> None:
    observation = _observe(virtual, _one_rule({"status": 429, "retry_after": 60}), "get_order",
                           deadline=90.0)
    attempts = [e for e in observation.journal if e["path"] != "/oauth/token"]
    assert [e["status"] for e in attempts] == [429, 200]
    assert attempts[1]["at"] - attempts[0]["at"] >= 60.0
    assert judge(observation).passed


def test_an_outage_longer_than_the_deadline_ends_in_time(virtual: VirtualPartner) -> None:
    plan = _one_rule({"status": 503, "retry_after": 20}, times=100)
    observation = _observe(virtual, plan, "get_order")
    assert type(observation.outcome).__name__ == "PartnerUnavailable"
    assert observation.elapsed <= 30.0 + 0.25
    assert judge(observation).passed, judge(observation)


def test_a_token_lives_its_3600_s_and_is_fetched_again_after(virtual: VirtualPartner) -> None:
    virtual.set_scenario({"dataset": {"orders": 12, "page_size": 5, "token_ttl_s": 3600},
                          "rules": []})
    virtual.reset()

    async def two_lookups_an_hour_apart() -> None:
        async with virtual.client(**PRODUCTION) as client:
            await client.get_order("ORD-000001")
            await asyncio.sleep(1_800)
            await client.get_order("ORD-000001")  # the same token
            await asyncio.sleep(1_801)
            await client.get_order("ORD-000001")  # a new one: the first has expired

    virtual.run(two_lookups_an_hour_apart())
    paths = [e["path"] for e in virtual.journal()]
    assert paths.count("/oauth/token") == 2
    assert [e["status"] for e in virtual.journal()] == [200] * 5  # never a 401


TOKEN_RESET_THEN_429 = {
    "seed": 0, "dataset": {"orders": 12, "page_size": 5, "token_ttl_s": 3600},
    "rules": [{"match": {"path": "/v1/orders/*"}, "times": 1, "fault": {"status": 429}},
              {"match": {"path": "/oauth/token"}, "times": 1, "fault": {"disconnect": "reset"}}]}


@pytest.mark.parametrize("operation", list(RUNS))
def test_every_contract_holds_at_production_settings(virtual: VirtualPartner,
                                                     operation: str) -> None:
    @given(plan=production_fault_plans())
    @example(plan=_one_rule({"status": 429, "retry_after": 45}, times=2))
    @example(plan=_one_rule({"status": 503, "retry_after": "http-date:30"}, times=1))
    @example(plan=_one_rule({"latency": {"fixed_ms": 7_000}}, times=3))
    @example(plan=_one_rule({"auth": "expire_token"}, times=1))
    @example(plan=TOKEN_RESET_THEN_429)  # once a false R4 alarm (its backoff counted wrong)
    @settings(max_examples=examples(25), deadline=None)
    def holds(plan: dict[str, Any]) -> None:
        observation = _observe(virtual, plan, operation)
        report = judge(observation)
        assert report.passed, report

    holds()


# --- planted bugs are caught on virtual time -----------------------------------------------


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)  # the bug: every wait skipped, Retry-After included


def _oversleep(virtual: VirtualPartner) -> Callable[[float], Any]:
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds + 40)  # the bug: sleeps past the whole deadline

    return sleep


@pytest.mark.parametrize(("plan", "bug", "caught"), [
    (_one_rule({"status": 429, "retry_after": 10}), {"sleep": _no_sleep}, "R3"),
    (_one_rule({"status": 503}, times=2), {"sleep": "oversleep"}, "T1"),
])
def test_planted_bugs_are_still_caught(virtual: VirtualPartner, plan: dict[str, Any],
                                       bug: dict[str, Any], caught: str) -> None:
    options = {name: _oversleep(virtual) if value == "oversleep" else value
               for name, value in bug.items()}
    report = judge(_observe(virtual, plan, "get_order", **options))
    assert caught in {violation.contract for violation in report.violations}, report


# --- the same verdicts as over a real socket -------------------------------------------------

SHORT = {"timeout": 1.0, "deadline": 4.0,
         "retry": RetryPolicy(max_attempts=3, backoff_base=0.02, backoff_max=0.1,
                              retry_after_max=2.0)}


def _over_a_socket(partner: FakePartner, plan: dict[str, Any], sleep: Any) -> Observation:
    partner.set_scenario(plan)
    partner.reset()
    initial = frozenset(partner.state.store.ids())
    settings_ = client_settings(timeout=1.0, deadline=4.0, retry=SHORT["retry"])

    async def main() -> Observation:
        async with AsyncPartnerClient.from_url(
                partner.url, client_id="orderops", client_secret="orderops-secret",
                timeout=1.0, deadline=4.0, retry=SHORT["retry"], sleep=sleep) as client:
            return await observe_async(
                partner, "get_order", lambda: client.get_order("ORD-000003"), settings_,
                initial_order_ids=initial,
                partner_orders={i: partner.state.store.order(i) for i in initial},
                secrets=("orderops-secret",))

    return anyio.run(main)


def _violated(observation: Observation) -> set[str]:
    return {violation.contract for violation in judge(observation).violations}


@pytest.fixture(scope="module")
def socket_partner() -> Iterator[FakePartner]:
    with FakePartner({"rules": []}) as partner:
        yield partner


@pytest.mark.parametrize("client", ["real", "skips_every_wait"])
def test_virtual_time_and_a_socket_give_the_same_verdicts(
        virtual: VirtualPartner, socket_partner: FakePartner, client: str) -> None:
    """Short settings, so the socket run is quick; no rate_limit (its bucket refills
    with real time that the virtual run does not spend)."""
    sleep = _no_sleep if client == "skips_every_wait" else asyncio.sleep

    @given(plan=fault_plans(paths=["/v1/orders/*"], max_latency_ms=150,
                            kinds=["status", "malformed", "schema_drift", "disconnect",
                                   "auth"]))
    @example(plan=_one_rule({"status": 429, "retry_after": 1}, times=1))
    @settings(max_examples=examples(6), deadline=None)
    def same(plan: dict[str, Any]) -> None:
        on_socket = _violated(_over_a_socket(socket_partner, plan, sleep))
        on_virtual = _violated(_observe(virtual, plan, "get_order", sleep=sleep, **SHORT))
        assert on_virtual == on_socket, (plan, on_virtual, on_socket)

    same()
