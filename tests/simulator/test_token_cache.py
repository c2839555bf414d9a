"""Tokens cached by Redis workers (backends.lease): a request no rule can touch makes no
round trip, and a revocation, a reset or a scenario swap reaches every worker's cache
before it is answered, a stalled worker's too."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis

from partnerkit.simulator import FakePartner
from partnerkit.simulator.backends.redis import RedisBackend
from tests.partnersim_process import PARTNERSIM, REPO
from tests.redis_server import RedisServer
from tests.simulator.test_shared_state import CHAOS, get, token_of, workers

#: Bounds on waits for something asynchronous (a lease, a journal entry): never timed.
WAIT_S = 5.0
REVOKING = {"rules": [{"match": {"path": "/v1/orders/ORD-000002"}, "times": 1,
                       "fault": {"auth": "expire_token"}}]}
UNTOUCHED = "/v1/orders/ORD-000001"


def backend(partner: FakePartner) -> RedisBackend:
    found = partner.state.backend
    assert isinstance(found, RedisBackend)
    return found


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
        time.sleep(0.01)


def warm(partner: FakePartner, token: str, path: str = UNTOUCHED) -> None:
    """Requests on `partner` until it takes `token` from its cache."""
    def cached() -> bool:
        assert get(partner, path, token).status_code == 200
        return backend(partner).cache.trusts(token)
    until(cached, "the worker caches the token")


@contextmanager
def monitored(url: str) -> Iterator[list[dict[str, Any]]]:
    """Every command Redis runs while the block runs (MONITOR), between two markers."""
    client = redis.Redis.from_url(url)
    marker = uuid.uuid4().hex
    seen: list[dict[str, Any]] = []
    ready = threading.Event()

    def listen() -> None:
        with client.monitor() as monitor:
            ready.set()
            started = False
            for command in monitor.listen():
                if command["command"] == f"ECHO start-{marker}":
                    started = True
                elif command["command"] == f"ECHO end-{marker}":
                    return
                elif started:
                    seen.append(command)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(WAIT_S)
    client.echo(f"start-{marker}")
    try:
        yield seen
    finally:
        client.echo(f"end-{marker}")
        listener.join(WAIT_S)
        client.close()
    assert not listener.is_alive()


def scripts_called(commands: list[dict[str, Any]]) -> list[str]:
    """The sha of each script called by a worker (not the commands run inside one)."""
    return [command["command"].split()[1] for command in commands
            if command["command"].startswith("EVALSHA") and command.get("client_type") != "lua"]


def test_a_request_no_rule_touches_issues_only_the_journal_append(
        redis_server: RedisServer) -> None:
    scenario = {"rules": [{"match": {"path": "/v1/returns/*"}, "fault": {"status": 503}}]}
    with workers(redis_server.url, scenario) as (a, b):
        token = token_of(a)
        warm(b, token)
        shared = backend(b)
        admit, append = shared._admit.sha, shared.journal._append.sha
        renew = shared.cache._renew.sha  # the leases' heartbeat, not a request's
        journal = redis.Redis.from_url(redis_server.url)
        journal.ping()  # its connection's handshake before the watched block
        probe = uuid.uuid4().hex  # marks this block's requests (a query no rule looks at)

        def probed() -> int:
            return sum(json.loads(item)["query"].get("probe") == probe
                       for item in journal.lrange(shared.prefix + "j", 0, -1))

        with monitored(redis_server.url) as untouched:
            assert [get(b, f"{UNTOUCHED}?probe={probe}", token).status_code
                    for _ in range(20)] == [200] * 20
            until(lambda: probed() == 20, "the journal has the 20 entries")
        top = [command["command"].split()[0] for command in untouched
               if command.get("client_type") != "lua"]
        assert set(top) <= {"EVALSHA", "LRANGE"}, top  # LRANGE: this test's own
        called = scripts_called(untouched)
        assert append in called and admit not in called
        assert set(called) <= {append, renew}
        with monitored(redis_server.url) as touched:  # a rule can touch it: one call
            assert get(b, "/v1/returns/R-1", token).status_code == 503
        assert scripts_called(touched).count(admit) == 1
        journal.close()


def test_a_token_revoked_on_one_worker_is_refused_at_once_by_one_that_cached_it(
        redis_server: RedisServer) -> None:
    with workers(redis_server.url, REVOKING) as (a, b):
        token = token_of(a)
        warm(b, token)
        assert get(b, UNTOUCHED, token).status_code == 200  # from b's cache
        assert get(a, "/v1/orders/ORD-000002", token).status_code == 401  # revoked on a
        assert not backend(b).cache.trusts(token)
        assert get(b, UNTOUCHED, token).status_code == 401  # b's very next answer
        fresh = token_of(b)
        warm(a, fresh)
        assert get(a, UNTOUCHED, fresh).status_code == 200


def test_a_reset_or_a_scenario_swap_drops_every_cache_before_it_returns(
        redis_server: RedisServer) -> None:
    with workers(redis_server.url, {"rules": []}) as (a, b):
        token = token_of(a)
        warm(b, token)
        assert httpx.post(a.url + "/__sim/reset", timeout=5).status_code == 200
        assert not backend(b).cache.trusts(token)
        warm(b, token)
        swapped = httpx.put(a.url + "/__sim/scenario", timeout=5, content=(
            b'{"name": "swapped", "rules": [{"match": {"path": "/v1/orders/*"}, '
            b'"times": 1, "fault": {"status": 500}}]}'))
        assert swapped.status_code == 200, swapped.text
        assert not backend(b).cache.trusts(token)
        assert get(b, UNTOUCHED, token).status_code == 500  # the new rule, at once
        assert get(a, UNTOUCHED, token).status_code == 200  # times: 1, shared


def test_seeded_decisions_mixing_touched_and_untouched_requests_match_memory(
        redis_server: RedisServer) -> None:
    paths = [f"/v1/orders/ORD-{n % 7 + 1:06d}" if n % 3 else "/v1/orders?limit=2"
             for n in range(90)]
    with FakePartner(CHAOS) as alone:
        token = token_of(alone)
        expected = [get(alone, path, token).content for path in paths]
    with workers(redis_server.url, CHAOS) as pair:
        token = token_of(pair[0])
        for partner in pair:
            warm(partner, token, "/v1/orders?limit=2")  # the untouched ones skip Redis
        shared = [get(pair[n % 2], path, token).content for n, path in enumerate(paths)]
    assert shared == expected


def stall(partner: FakePartner) -> None:
    """The worker's lease keeper stops (as if stalled): no renewal, no acknowledgement."""
    cache = backend(partner).cache
    keeper = cache._keeper
    assert keeper is not None
    cache._closing.set()
    keeper.join(WAIT_S)
    assert not keeper.is_alive()


def test_a_revocation_waits_out_the_lease_of_a_worker_that_does_not_acknowledge(
        redis_server: RedisServer) -> None:
    with workers(redis_server.url, REVOKING) as (a, b):
        token = token_of(a)
        warm(b, token)
        stall(b)  # its lease still runs a while: a's revocation must outwait it
        assert get(a, "/v1/orders/ORD-000002", token).status_code == 401
        assert not backend(b).cache.trusts(token)
        assert get(b, UNTOUCHED, token).status_code == 401


def test_a_worker_whose_lease_lapsed_asks_redis_again(redis_server: RedisServer) -> None:
    with workers(redis_server.url, {"rules": []}) as (a, b):
        token = token_of(a)
        warm(b, token)
        cache = backend(b).cache
        stall(b)
        until(lambda: not cache.trusts(token), "b's lease lapses by its own clock")
        with monitored(redis_server.url) as commands:
            assert get(b, UNTOUCHED, token).status_code == 200
        assert backend(b)._admit.sha in scripts_called(commands)


def test_after_redis_restarts_empty_no_worker_takes_a_lost_token_from_its_cache(
        tmp_path: Path) -> None:
    """Redis keeps nothing: the tokens are gone. The worker that publishes the scenario
    again waits until no lease from before the restart is trusted, so the worker that
    cached the token refuses it too."""
    server = RedisServer(tmp_path).start()
    try:
        with workers(server.url, {"rules": []}) as (a, b):
            token = token_of(a)
            warm(b, token)
            server.stop()
            server.start()  # empty
            assert get(a, UNTOUCHED, token).status_code == 401
            assert get(b, UNTOUCHED, token).status_code == 401
            fresh = token_of(b)
            assert get(a, UNTOUCHED, fresh).status_code == 200
    finally:
        server.stop()


@contextmanager
def serve(url: str, prefix: str, scenario: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [*PARTNERSIM, "serve", "--port", "0", "--scenario", str(scenario), "--state", url,
         "--state-prefix", prefix], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        banner = ""
        while not (found := re.search(r"url:\s+(http://127\.0\.0\.1:\d+)", banner)):
            line = process.stdout.readline()
            assert line, banner
            banner += line
        yield process, found.group(1)
    finally:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_revocation_reaches_a_stalled_worker_before_its_next_answer(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """SIGSTOP a worker that cached the token: the revoking worker answers once the
    stalled one's lease has lapsed, and after SIGCONT it refuses the token at once."""
    scenario = tmp_path / "revoking.yaml"
    scenario.write_text('name: revoking\nrules:\n  - {match: {path: "/v1/orders/ORD-000002"}, '
                        'times: 1, fault: {auth: expire_token}}\n')
    prefix = f"test:{uuid.uuid4().hex}:"
    with serve(redis_server.url, prefix, scenario) as (_, a_url), \
            serve(redis_server.url, prefix, scenario) as (b, b_url), \
            httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        token = _token(http, a_url)
        headers = {"authorization": f"Bearer {token}"}

        def cached() -> bool:
            assert http.get(b_url + UNTOUCHED, headers=headers).status_code == 200
            return bool(http.get(b_url + "/__sim/health").json()["tokens_cached"])

        until(cached, "b caches the token")
        b.send_signal(signal.SIGSTOP)
        try:
            assert http.get(a_url + "/v1/orders/ORD-000002", headers=headers).status_code == 401
        finally:
            b.send_signal(signal.SIGCONT)
        assert http.get(b_url + UNTOUCHED, headers=headers).status_code == 401


def _token(http: httpx.Client, url: str) -> str:
    answer = http.post(url + "/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "orderops",
        "client_secret": "orderops-secret"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])
