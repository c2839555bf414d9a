"""The fake partner cannot be knocked over: load under a fault storm, junk input, huge heads.

Every load here is bounded in count and time; the long soak is `make soak`.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import tempfile
import time
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from partnerkit.simulator import FakePartner, create_app, parse_scenario
from partnerkit.simulator.cassette import CassetteError, parse_cassette
from partnerkit.simulator.cli import main as partnersim
from partnerkit.simulator.protocols import MAX_HEAD_BYTES
from partnerkit.simulator.scenario import ScenarioError

CONNECTIONS = 500
ROUNDS = 2
STORM: dict[str, Any] = {"seed": 11, "dataset": {"orders": 600}, "rules": [
    {"name": "budget-503", "match": {"path": "/v1/orders/*"}, "after": 100, "times": 25,
     "fault": {"status": 503}},
    {"name": "bucket", "match": {"path": "/v1/orders/ORD-0001*"},
     "fault": {"rate_limit": {"limit": 20, "per_s": 10}}},
    {"name": "mix", "match": {"path": "/v1/orders/*"}, "probability": 0.3, "fault": {"one_of": [
        {"weight": 3, "latency": {"fixed_ms": 50}},
        {"weight": 1, "disconnect": "reset"},
        {"weight": 1, "disconnect": "hang"},
        {"weight": 1, "status": 500},
    ]}},
]}


def test_500_connections_under_a_fault_storm() -> None:
    """The server stays up and answers health checks throughout; every request is
    journaled with its fault; no budget is spent twice."""
    with FakePartner(STORM, journal_size=20_000) as partner:
        outcomes, health = anyio.run(_storm, partner.url)
        journal = [entry for entry in partner.journal() if entry["path"].startswith("/v1/orders/")]
        spent = partner.state.engine.spent()

    assert len(outcomes) == CONNECTIONS * ROUNDS
    assert health and all(status == 200 for status, _ in health), health
    assert max(seconds for _, seconds in health) < 2.0
    assert len(journal) == CONNECTIONS * ROUNDS  # every request, answered or cut
    by_rule = Counter(entry["rule"] for entry in journal)
    assert by_rule["budget-503"] == 25 == spent[0]
    assert all(entry["fault"] is not None for entry in journal if entry["rule"] is not None)
    cut = [entry for entry in journal if entry["fault"] and "disconnect" in entry["fault"]]
    assert cut and all(entry["status"] is None for entry in cut)
    assert Counter(outcomes)["error"] >= len(cut) // 2  # resets and hangs reached the clients
    limited = [entry for entry in journal if entry["status"] == 429]
    assert limited and all(entry["fault"]["retry_after"] >= 1 for entry in limited)


async def _storm(url: str) -> tuple[list[str], list[tuple[int, float]]]:
    outcomes: list[str] = []
    health: list[tuple[int, float]] = []
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=2.0) as client:
        token = (await client.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": "orderops",
            "client_secret": "orderops-secret"})).json()["access_token"]
        headers = {"authorization": f"Bearer {token}"}
        done = anyio.Event()

        async def one(number: int) -> None:
            try:
                answer = await client.get(f"/v1/orders/ORD-{number % 600 + 1:06d}",
                                          headers=headers)
                outcomes.append(str(answer.status_code))
            except httpx.HTTPError:
                outcomes.append("error")

        async def watch() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=5.0) as probe:
                while not done.is_set():
                    started = time.monotonic()
                    answer = await probe.get("/__sim/health")
                    health.append((answer.status_code, time.monotonic() - started))
                    await anyio.sleep(0.2)

        with anyio.fail_after(90):
            async with anyio.create_task_group() as watchers:
                watchers.start_soon(watch)
                for round_number in range(ROUNDS):
                    async with anyio.create_task_group() as load:
                        for number in range(CONNECTIONS):
                            load.start_soon(one, round_number * CONNECTIONS + number)
                done.set()
    return outcomes, health


# --- junk input ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
keys = st.sampled_from(["rules", "seed", "name", "dataset", "match", "fault", "times",
                        "one_of", "status", "latency", "x"])
scenario_like = st.recursive(
    st.none() | st.integers(-(10**20), 10**20) | st.text(max_size=10) | st.booleans(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=25,
)
junk_bodies = st.one_of(
    json_values.map(lambda value: json.dumps(value).encode()),
    scenario_like.map(lambda value: json.dumps({"rules": value}).encode()),
    st.binary(max_size=300),  # invalid UTF-8 among it
    st.integers(10, 20_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(10, 5_000).map(lambda depth: b"a: " * depth + b"1"),
)
TEN_MB = b"rules: [" + b"x" * 10_000_001 + b"]"


@cache
def _admin() -> Any:
    return create_app(parse_scenario({"name": "kept", "rules": []}))


def _admin_exchange(body: bytes) -> tuple[int, str, Any, str]:
    """PUT `body` as the scenario in process: (status, content type, JSON, running name)."""
    async def main() -> tuple[int, str, Any, str]:
        transport = httpx.ASGITransport(app=_admin())
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as admin:
            answer = await admin.put("/__sim/scenario", content=body)
            if answer.status_code == 200:  # junk that happened to be a valid scenario
                parse_scenario(body)
                await admin.put("/__sim/scenario", content=b"name: kept\nrules: []\n")
            running = (await admin.get("/__sim/scenario")).json()["scenario"]["name"]
            return (answer.status_code, answer.headers.get("content-type", ""), answer.json(),
                    running)
    return anyio.run(main)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(body=TEN_MB)
@given(body=junk_bodies)
def test_junk_scenarios_get_a_4xx_json_error_and_change_nothing(body: bytes) -> None:
    status, content_type, payload, running = _admin_exchange(body)
    assert running == "kept"
    if status != 200:
        assert status in (400, 413, 422), payload
        assert content_type.startswith("application/json")
        assert payload["error"]


@settings(max_examples=40, deadline=None)
@given(body=junk_bodies.filter(lambda body: len(body) < 1_000_000))
def test_check_on_junk_exits_2_with_located_errors_and_no_traceback(body: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "junk.yaml"
        path.write_bytes(body)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = partnersim(["check", str(path)])
    if status == 0:
        parse_scenario(body)
        return
    assert status == 2
    lines = err.getvalue().splitlines()
    assert lines and all(re.match(rf"{re.escape(str(path))}(:\d+)?: ", line) for line in lines)
    assert "Traceback" not in err.getvalue()


cassette_like = st.one_of(
    junk_bodies.filter(lambda body: len(body) < 1_000_000),
    st.lists(json_values.map(json.dumps), max_size=4).map(
        lambda lines: ("version: 1\ninteractions:\n" + "".join(f"- {line}\n" for line in lines)
                       ).encode()),
    scenario_like.map(lambda value: json.dumps({"version": 1, "interactions": [value]}).encode()),
)


@settings(max_examples=80, deadline=None)
@given(text=cassette_like)
def test_a_junk_cassette_is_refused_with_a_cassette_error_only(text: bytes) -> None:
    try:
        interactions = parse_cassette(text, "junk.yaml")
    except CassetteError as error:
        assert str(error).startswith("junk.yaml: ")
    else:
        assert isinstance(interactions, list)


# --- limits --------------------------------------------------------------------------

@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_a_huge_request_head_is_refused_not_held(http: str) -> None:
    with FakePartner(http=http) as partner:  # type: ignore[arg-type]
        port = int(partner.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /v1/orders HTTP/1.1\r\nhost: x\r\n")
            sent = 0
            with contextlib.suppress(OSError):  # the server may close while we still send
                while sent < 4 * MAX_HEAD_BYTES:
                    sock.sendall(b"x-junk: " + b"a" * 1000 + b"\r\n")
                    sent += 1010
            answer = sock.recv(4096)
        assert int(answer.split(b" ", 2)[1]) == 431, answer[:200]
        assert httpx.get(f"{partner.url}/__sim/health", timeout=5).status_code == 200


def test_a_head_just_under_the_limit_is_served() -> None:
    with FakePartner() as partner:
        headers = {f"x-h{n}": "a" * 500 for n in range(MAX_HEAD_BYTES // 600)}
        answer = httpx.get(f"{partner.url}/openapi.json", headers=headers, timeout=5)
        assert answer.status_code == 200


def test_bad_scenario_errors_keep_the_scenario_in_process() -> None:
    with FakePartner({"name": "kept", "rules": []}) as partner:
        with pytest.raises(ScenarioError):
            partner.set_scenario("rules: [{fault: {status: 9000}}]")
        assert partner.state.scenario.name == "kept"
