"""`partnersim serve --workers N --state ...`: refusals, and N real processes on one port."""

from __future__ import annotations

import re
import signal
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from partnerkit.simulator import FakePartner
from tests.conftest import fetch_token
from tests.partnersim_process import banner, partnersim, stop_cleanly
from tests.redis_server import RedisServer
from tests.simulator.test_cli import _run


def journal_seqs(http: httpx.Client, count: int) -> list[int]:
    """The journal's seqs once `count` entries are there (an entry reaches the shared
    journal just after its answer: give the other worker 2 s at most)."""
    deadline = time.monotonic() + 2
    while True:
        seqs = [entry["seq"] for entry in http.get("/__sim/journal").json()["entries"]]
        if len(seqs) >= count or time.monotonic() > deadline:
            return seqs
        time.sleep(0.01)


def test_workers_with_memory_state_are_refused_naming_state() -> None:
    result = _run("serve", "--port", "0", "--workers", "2")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--state" in lines[0], result.stderr


def test_a_redis_that_does_not_answer_at_start_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = _run("serve", "--port", "0", "--state", f"unix://{tmp_path}/nothing.sock")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("partnersim: --state:"), result.stderr
    assert "Traceback" not in result.stderr


def test_two_worker_processes_spend_one_budget(redis_server: RedisServer,
                                               tmp_path: Path) -> None:
    scenario = tmp_path / "five.yaml"
    scenario.write_text('name: five\nrules:\n  - {match: {path: "/v1/orders/*"}, times: 5, '
                        'fault: {status: 503}}\n')
    with partnersim("serve", "--port", "0", "--workers", "2", "--scenario", str(scenario),
                    "--state", redis_server.url,
                    "--state-prefix", f"test:{uuid.uuid4().hex}:") as process:
        text = banner(process, 7)
        found = re.search(r"url:\s+(http://127\.0\.0\.1:\d+)", text)
        assert found and "2 worker(s)" in text, text
        url = found.group(1)
        fresh = httpx.Client(base_url=url, timeout=5,
                             limits=httpx.Limits(max_keepalive_connections=0))
        with fresh:
            token = fetch_token(fresh)
            headers = {"authorization": f"Bearer {token}"}
            with ThreadPoolExecutor(max_workers=16) as pool:
                statuses = list(pool.map(
                    lambda n: fresh.get(f"/v1/orders/ORD-{n % 50 + 1:06d}",
                                        headers=headers).status_code, range(200)))
            assert Counter(statuses) == {503: 5, 200: 195}
            seqs = journal_seqs(fresh, 201)
            assert sorted(seqs) == list(range(1, 202))
        stop_cleanly(process)


def test_two_proxy_workers_spend_one_budget(redis_server: RedisServer, tmp_path: Path) -> None:
    faults = tmp_path / "three.yaml"
    faults.write_text('name: three\nrules:\n  - {match: {path: "/v1/orders/*"}, times: 3, '
                      'fault: {status: 502}}\n')
    with FakePartner() as upstream, partnersim(
            "proxy", "--upstream", upstream.url, "--port", "0", "--workers", "2",
            "--faults", str(faults), "--state", redis_server.url,
            "--state-prefix", f"test:{uuid.uuid4().hex}:") as process:
        text = banner(process, 2)
        found = re.search(r"url:\s+(http://127\.0\.0\.1:\d+)", text)
        assert found, text
        fresh = httpx.Client(base_url=found.group(1), timeout=5,
                             limits=httpx.Limits(max_keepalive_connections=0))
        with fresh:
            headers = {"authorization": f"Bearer {fetch_token(fresh)}"}
            with ThreadPoolExecutor(max_workers=8) as pool:
                statuses = list(pool.map(
                    lambda n: fresh.get(f"/v1/orders/ORD-{n % 50 + 1:06d}",
                                        headers=headers).status_code, range(40)))
        assert Counter(statuses) == {502: 3, 200: 37}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
