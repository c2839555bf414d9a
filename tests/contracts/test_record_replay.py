"""End to end: record the client through the proxy, replay the cassette, overlay a storm.

The path a new user takes: `partnersim record` in front of a partner, the
client through it, `partnersim replay` of the result, the client against
the replay (same orders), then the replay through a fault storm (the
client's contracts still hold).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from partnerkit.client import PartnerClient
from partnerkit.client.errors import PartnerContractError
from partnerkit.contracts.harness import client_settings, observe
from partnerkit.contracts.verdicts import judge
from partnerkit.simulator.cassette import load_cassette
from partnerkit.simulator.dataset import DatasetSpec, build_store
from partnerkit.simulator.redaction import REDACTED
from partnerkit.simulator.server import FakePartner, RecordingProxy, ReplayPartner

REPO = Path(__file__).resolve().parents[2]
PARTNERSIM = [sys.executable, "-m", "partnerkit.simulator.cli"]
SEED, ORDERS, PAGE = 5, 90, 20
SCENARIO: dict[str, Any] = {
    "seed": SEED, "dataset": {"orders": ORDERS, "page_size": PAGE},
    "rules": [{"match": {"path": "/v1/orders"}, "after": 1, "times": 1, "fault": {"status": 503}}],
}
TIMEOUT, DEADLINE = 2.0, 8.0


def _client(url: str, secret: str = "orderops-secret") -> PartnerClient:
    return PartnerClient.from_url(url, client_id="orderops", client_secret=secret,
                                  timeout=TIMEOUT, deadline=DEADLINE, page_size=PAGE)


def _sync_and_acknowledge(client: PartnerClient) -> list[str]:
    synced = []
    for order in client.iter_orders():
        client.acknowledge(order.id, idempotency_key=f"ack-{order.id}")
        synced.append(order.id)
    return synced


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A cassette of a sync with acknowledgements, recorded through the proxy."""
    out = tmp_path_factory.mktemp("record") / "sync.yaml"
    with FakePartner(SCENARIO) as partner, RecordingProxy(partner.url, out) as proxy, \
            _client(proxy.url) as client:
        synced = _sync_and_acknowledge(client)
        assert proxy.recorded == len(load_cassette(out))
    return out, synced


def test_the_recorded_sync_is_complete_and_redacted(recorded: tuple[Path, list[str]]) -> None:
    cassette, synced = recorded
    assert sorted(synced) == sorted(build_store(SEED, DatasetSpec(ORDERS, PAGE)).ids())
    interactions = load_cassette(cassette)
    # one token, five pages, the 503 and its retry, one acknowledgement per order
    assert len(interactions) == 1 + 5 + 1 + ORDERS
    assert [i.response.status for i in interactions].count(503) == 1
    text = cassette.read_text()
    assert "orderops-secret" not in text and "sim-" not in text
    assert interactions[0].response.body.count(REDACTED.encode()) == 1
    assert all(i.request.header("authorization") == REDACTED for i in interactions[1:])


def test_the_client_against_the_replay_yields_the_same_orders(
        recorded: tuple[Path, list[str]]) -> None:
    cassette, synced = recorded
    with ReplayPartner(cassette) as replay, _client(replay.url, secret="not-the-secret") as client:
        assert _sync_and_acknowledge(client) == synced
        assert all(entry["replayed"] is not None for entry in replay.journal())


STORM: dict[str, Any] = {"seed": 7, "rules": [
    {"match": {"path": "/v1/orders"}, "times": 1, "fault": {"status": 429, "retry_after": 1}},
    {"match": {"path": "/v1/orders"}, "after": 2, "every": 2, "times": 2,
     "fault": {"disconnect": "reset"}},
    {"match": {"path": "/v1/orders"}, "probability": 0.25, "fault": {"one_of": [
        {"weight": 2, "status": 503},
        {"weight": 1, "latency": {"fixed_ms": 50}},
    ]}},
]}


def test_the_replay_through_a_storm_keeps_every_contract(
        recorded: tuple[Path, list[str]]) -> None:
    cassette, synced = recorded
    settings = client_settings(timeout=TIMEOUT, deadline=DEADLINE)
    with ReplayPartner(cassette, faults=STORM) as replay, _client(replay.url) as client:
        observation = observe(replay, "iter_orders", lambda: list(client.iter_orders()),
                              settings, initial_order_ids=frozenset(synced),
                              secrets=("orderops-secret",))
        faults = [entry for entry in replay.journal() if entry["rule"] is not None]
    report = judge(observation)
    assert not report.violations, report
    assert sorted(order.id for order in observation.outcome) == sorted(synced)
    assert {entry["rule"] for entry in faults} >= {0, 1}


def test_a_malformed_overlay_is_a_contract_error_not_a_crash(
        recorded: tuple[Path, list[str]]) -> None:
    faults = {"rules": [{"match": {"path": "/v1/orders"}, "fault": {"malformed": "truncated"}}]}
    settings = client_settings(timeout=TIMEOUT, deadline=DEADLINE)
    with ReplayPartner(recorded[0], faults=faults) as replay, _client(replay.url) as client:
        observation = observe(replay, "iter_orders", lambda: list(client.iter_orders()),
                              settings)
    assert isinstance(observation.raised, PartnerContractError)
    assert not judge(observation).violations


def test_an_unreachable_upstream_is_a_502_and_nothing_is_written(tmp_path: Path) -> None:
    out = tmp_path / "down.yaml"
    with RecordingProxy("http://127.0.0.1:9", out) as proxy:
        answer = httpx.get(f"{proxy.url}/v1/orders", timeout=5)
        assert answer.status_code == 502
        assert answer.json()["error"] == "upstream_unreachable"
        assert httpx.get(f"{proxy.url}/__sim/health", timeout=5).json()["upstream_failures"] == 1
    assert not out.exists()  # nothing answered, nothing written: not even an empty file


def _start(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([*PARTNERSIM, *args], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    banner = ""
    while "Ctrl-C" not in banner:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"no banner: {banner}{process.communicate(timeout=5)}")
        banner += line
    found = re.search(r"url:\s+(http://127\.0\.0\.1:\d+)", banner)
    assert found, banner
    return process, found.group(1)


@pytest.fixture
def upstream() -> Iterator[FakePartner]:
    with FakePartner({"seed": SEED, "rules": []}) as partner:
        yield partner


def test_a_killed_recorder_loses_nothing_it_answered(upstream: FakePartner,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "killed.yaml"
    process, url = _start(["record", "--upstream", upstream.url, "--out", str(out),
                           "--port", "0"])
    try:
        with _client(url) as client:
            client.get_order("ORD-000001")
            client.get_order("ORD-000002")
        process.kill()  # SIGKILL: no chance to flush or close anything
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    paths = [interaction.request.uri.split("/", 3)[3] for interaction in load_cassette(out)]
    assert paths == ["oauth/token", "v1/orders/ORD-000001", "v1/orders/ORD-000002"]


def test_record_and_replay_on_the_command_line(upstream: FakePartner, tmp_path: Path) -> None:
    out = tmp_path / "cli.yaml"
    process, url = _start(["record", "--upstream", upstream.url, "--out", str(out),
                           "--port", "0", "--uri-base", "http://partner.test"])
    with _client(url) as client:
        order = client.get_order("ORD-000003")
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert f"2 interactions in {out}" in stdout
    assert all(i.request.uri.startswith("http://partner.test/") for i in load_cassette(out))

    refused = subprocess.run([*PARTNERSIM, "record", "--upstream", upstream.url, "--out",
                              str(out)], capture_output=True, text=True, timeout=30, cwd=REPO)
    assert refused.returncode == 2 and "--append" in refused.stderr

    faults = tmp_path / "faults.yaml"
    faults.write_text("rules:\n  - {match: {path: /v1/orders/*}, times: 1, fault: {status: 503}}\n")
    process, url = _start(["replay", str(out), "--faults", str(faults), "--port", "0"])
    try:
        with _client(url) as client:
            assert client.get_order("ORD-000003") == order
        health = httpx.get(f"{url}/__sim/health", timeout=5).json()
        assert health["mode"] == "replay" and health["interactions"] == 2
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0 and "Traceback" not in stderr
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("damage", ["truncated", "hostile", "missing"])
def test_replay_refuses_a_broken_cassette_clearly(recorded: tuple[Path, list[str]],
                                                  tmp_path: Path, damage: str) -> None:
    broken = tmp_path / "broken.yaml"
    text = recorded[0].read_text()
    if damage == "truncated":
        broken.write_text(text[: len(text) // 2])  # cut mid-interaction
    elif damage == "hostile":
        broken.write_text("version: 1\ninteractions:\n- !!python/object/apply:os.system [id]\n")
    result = subprocess.run([*PARTNERSIM, "replay", str(broken), "--port", "0"],
                            capture_output=True, text=True, timeout=30, cwd=REPO)
    assert result.returncode == 2
    assert f"{broken}: " in result.stderr
    assert "Traceback" not in result.stderr
