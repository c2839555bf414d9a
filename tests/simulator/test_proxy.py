"""`partnersim proxy` / FaultProxy: a scenario's faults in front of a real upstream.

The upstream here is the fake partner itself (`FakePartner`, an empty
scenario): its journal is the upstream's own record of what reached it, so
"this fault spent none of the upstream's quota" is a plain assertion on it.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from partnerkit.simulator import FakePartner, FaultProxy, ScenarioError
from partnerkit.simulator.cassette import load_cassette
from partnerkit.simulator.fault_middleware import MAX_CAPTURE_BYTES
from partnerkit.simulator.server import BackgroundServer, ReplayPartner
from tests.conftest import fetch_token

PARTNERSIM = [sys.executable, "-m", "partnerkit.simulator.cli"]
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakePartner]:
    with FakePartner() as partner:
        yield partner


@pytest.fixture(scope="module")
def proxy_server(upstream: FakePartner) -> Iterator[FaultProxy]:
    with FaultProxy(upstream.url, timeout_s=5.0) as proxy:
        yield proxy


@pytest.fixture
def proxy(proxy_server: FaultProxy, upstream: FakePartner) -> FaultProxy:
    proxy_server.set_scenario({"rules": []})
    proxy_server.reset()
    upstream.reset()
    return proxy_server


@pytest.fixture
def http(proxy: FaultProxy) -> Iterator[httpx.Client]:
    """A client of the proxy holding a token the upstream issued."""
    with httpx.Client(base_url=proxy.url, timeout=5.0) as client:
        client.headers["authorization"] = f"Bearer {fetch_token(client)}"
        yield client


def _rule(fault: dict[str, Any], path: str = "/v1/orders/*", **budget: Any) -> dict[str, Any]:
    return {"match": {"path": path}, "fault": fault, **budget}


def _api_paths(partner: FakePartner | FaultProxy) -> list[str]:
    return [e["path"] for e in partner.journal() if e["path"] != "/oauth/token"]


# --- forwarding ----------------------------------------------------------------------------


def test_a_clean_request_reaches_the_upstream_with_its_host_and_forwarded_headers(
        proxy: FaultProxy, upstream: FakePartner, http: httpx.Client) -> None:
    answer = http.get("/v1/orders/ORD-000001", headers={"x-request-id": "req-1",
                                                        "host": "evil.example"})
    assert answer.status_code == 200
    assert answer.json()["order_id"] == "ORD-000001"
    assert answer.headers["x-request-id"] == "req-1"
    assert answer.headers.get_list("date") and len(answer.headers.get_list("date")) == 1
    seen = upstream.journal()[-1]
    assert seen["path"] == "/v1/orders/ORD-000001"
    assert seen["headers"]["host"] == upstream.url.removeprefix("http://")
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["x-forwarded-host"] == "evil.example"
    assert seen["headers"]["authorization"] == "Bearer <redacted>"
    assert proxy.journal()[-1]["status"] == 200


# --- faults that answer by themselves spend none of the upstream's quota ---------------------


@pytest.mark.parametrize("fault", [
    {"status": 503, "retry_after": 1},
    {"status": 404},
    {"auth": "expire_token"},
], ids=str)
def test_faults_that_answer_alone_never_reach_the_upstream(
        proxy: FaultProxy, upstream: FakePartner, http: httpx.Client,
        fault: dict[str, Any]) -> None:
    proxy.set_scenario({"rules": [_rule(fault)]})
    answer = http.get("/v1/orders/ORD-000001")
    assert answer.status_code == fault.get("status", 401)
    assert _api_paths(upstream) == []
    assert proxy.journal()[-1]["fault"] == fault


def test_an_empty_rate_limit_bucket_spares_the_upstream(
        proxy: FaultProxy, upstream: FakePartner, http: httpx.Client) -> None:
    proxy.set_scenario({"rules": [_rule({"rate_limit": {"limit": 2, "per_s": 60}})]})
    statuses = [http.get(f"/v1/orders/ORD-00000{n}").status_code for n in range(1, 6)]
    assert statuses == [200, 200, 429, 429, 429]
    assert len(_api_paths(upstream)) == 2  # only the requests the bucket let through
    limited = proxy.journal()[-1]
    assert limited["status"] == 429 and limited["retry_after"] == "30"


@pytest.mark.parametrize("kind", ["reset", "hang"])
def test_connection_faults_never_reach_the_upstream(
        proxy: FaultProxy, upstream: FakePartner, http: httpx.Client, kind: str) -> None:
    proxy.set_scenario({"rules": [_rule({"disconnect": kind})]})
    with pytest.raises(httpx.TransportError):
        http.get("/v1/orders/ORD-000001", timeout=0.5)
    assert _api_paths(upstream) == []


def test_an_expired_token_stays_refused_at_the_proxy(
        proxy: FaultProxy, upstream: FakePartner, http: httpx.Client) -> None:
    proxy.set_scenario({"rules": [_rule({"auth": "expire_token"}, times=1)]})
    assert http.get("/v1/orders/ORD-000001").status_code == 401
    again = http.get("/v1/orders/ORD-000002")
    assert again.status_code == 401  # the upstream would have taken it: the proxy did not
    assert again.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert _api_paths(upstream) == []
    http.headers["authorization"] = f"Bearer {fetch_token(http)}"
    assert http.get("/v1/orders/ORD-000002").status_code == 200


# --- faults that change an answer act on the upstream's real one -------------------------------


def test_schema_drift_changes_the_upstream_answer(
        proxy: FaultProxy, upstream: FakePartner, http: httpx.Client) -> None:
    direct = httpx.get(upstream.url + "/v1/orders/ORD-000007",
                       headers={"authorization": http.headers["authorization"]}).json()
    proxy.set_scenario({"rules": [_rule({"schema_drift": {"missing": ["state"]}})]})
    drifted = http.get("/v1/orders/ORD-000007").json()
    assert "state" not in drifted
    assert drifted == {k: v for k, v in direct.items() if k != "state"}


@pytest.mark.parametrize("kind", ["truncated", "invalid_json", "invalid_utf8"])
def test_malformed_bodies_are_made_from_the_upstream_answer(
        proxy: FaultProxy, upstream: FakePartner, http: httpx.Client, kind: str) -> None:
    proxy.set_scenario({"rules": [_rule({"malformed": kind})]})
    answer = http.get("/v1/orders/ORD-000003")
    assert answer.status_code == 200
    assert b"ORD-000003" in answer.content
    with pytest.raises(ValueError):
        json.loads(answer.content)
    assert _api_paths(upstream) == ["/v1/orders/ORD-000003"]


def test_latency_and_dribble_act_on_the_upstream_answer(
        proxy: FaultProxy, upstream: FakePartner, http: httpx.Client) -> None:
    proxy.set_scenario({"rules": [_rule({"latency": {"fixed_ms": 200},
                                         "dribble": {"chunk_bytes": 100, "interval_ms": 20}})]})
    answer = http.get("/v1/orders/ORD-000004")
    assert answer.json()["order_id"] == "ORD-000004"
    # journal time, one-sided: 200 ms of latency plus at least 3 dribble intervals
    assert proxy.journal()[-1]["duration_ms"] >= 200 + 3 * 20
    assert _api_paths(upstream) == ["/v1/orders/ORD-000004"]


def test_a_body_cut_mid_way_is_the_upstream_answer_cut(
        proxy: FaultProxy, upstream: FakePartner, http: httpx.Client) -> None:
    proxy.set_scenario({"rules": [_rule({"disconnect": "mid_body"})]})
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/v1/orders/ORD-000005")
    assert _api_paths(upstream) == ["/v1/orders/ORD-000005"]
    assert proxy.journal()[-1]["status"] is None


def test_cursor_drift_repeat_and_expire_work_on_the_upstream_cursor(
        proxy: FaultProxy, http: httpx.Client) -> None:
    first = http.get("/v1/orders", params={"limit": 5}).json()
    cursor = first["next_cursor"]
    proxy.set_scenario({"rules": [_rule({"cursor_drift": {"repeat": True}}, path="/v1/orders",
                                        times=1),
                                  _rule({"cursor_drift": {"expire": True}}, path="/v1/orders")]})
    repeated = http.get("/v1/orders", params={"limit": 5, "cursor": cursor}).json()
    assert repeated["next_cursor"] == cursor
    expired = http.get("/v1/orders", params={"limit": 5, "cursor": cursor})
    assert expired.status_code == 410 and expired.json()["error"] == "cursor_expired"


@pytest.mark.parametrize("drift", ["insert", "update", "delete"])
def test_data_set_drift_is_refused_with_where_it_is(proxy: FaultProxy, http: httpx.Client,
                                                    upstream: FakePartner, drift: str) -> None:
    scenario = {"rules": [_rule({"status": 503}),
                          _rule({"cursor_drift": {drift: 2}}, path="/v1/orders")]}
    put = http.put("/__sim/scenario", content=json.dumps(scenario))
    assert put.status_code == 422
    problem = put.json()["problems"][0]
    assert problem["path"] == "rules[1].fault.cursor_drift"
    assert "proxy" in problem["message"]
    with pytest.raises(ScenarioError, match=r"rules\[1\]\.fault\.cursor_drift"):
        FaultProxy(upstream.url, scenario)


# --- the upstream failing --------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_upstream_is_a_502_per_request_and_the_proxy_stays_up() -> None:
    with FaultProxy(f"http://127.0.0.1:{_closed_port()}") as proxy, \
            httpx.Client(base_url=proxy.url, timeout=5.0) as http:
        for _ in range(3):
            answer = http.get("/v1/orders/ORD-000001")
            assert answer.status_code == 502
            assert answer.json()["error"] == "upstream_unreachable"
        health = http.get("/__sim/health").json()
        assert health["upstream"]["answers"] is False and health["upstream_failures"] == 3
        assert [e["status"] for e in proxy.journal()] == [502, 502, 502]
        assert proxy.journal()[0]["upstream"] == "upstream_unreachable"


def test_a_slow_upstream_is_a_504(upstream: FakePartner) -> None:
    upstream.set_scenario({"rules": [_rule({"latency": {"fixed_ms": 3000}})]})
    try:
        with FaultProxy(upstream.url, timeout_s=0.3) as proxy, \
                httpx.Client(base_url=proxy.url, timeout=5.0) as http:
            http.headers["authorization"] = f"Bearer {fetch_token(http)}"
            answer = http.get("/v1/orders/ORD-000001")
            assert answer.status_code == 504
            assert answer.json()["error"] == "upstream_timeout"
            assert proxy.journal()[-1]["status"] == 504
            assert proxy.journal()[-1]["duration_ms"] < 2500  # it did not wait for the upstream
    finally:
        upstream.set_scenario({"rules": []})


def test_health_says_the_upstream_answers(proxy: FaultProxy, http: httpx.Client) -> None:
    health = http.get("/__sim/health").json()
    assert health["mode"] == "proxy"
    assert health["upstream"]["answers"] is True
    assert "orders" not in health


# --- only the upstream is ever contacted ---------------------------------------------------------


def _raw_request(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


@pytest.fixture
def elsewhere() -> Iterator[FakePartner]:
    """A server the proxy must never reach."""
    with FakePartner() as partner:
        yield partner


@pytest.mark.parametrize("http_stack", ["httptools", "h11"])
def test_absolute_form_targets_and_odd_hosts_stay_on_the_upstream(
        upstream: FakePartner, elsewhere: FakePartner, http_stack: str) -> None:
    other = elsewhere.url.removeprefix("http://")
    upstream.reset()
    with FaultProxy(upstream.url, http=http_stack) as proxy:  # type: ignore[arg-type]
        for target, host in [(f"http://{other}/v1/orders", other),
                             ("/v1/orders", other),
                             (f"//{other}/v1/orders", "x"),
                             ("/v1/orders", f"{other}@evil"),
                             ("/v1/orders/%2e%2e/%2e%2e/__sim/journal", "x"),
                             ("/v1/../__sim/journal", "x")]:
            answer = _raw_request(proxy.url, f"GET {target} HTTP/1.1\r\nHost: {host}\r\n"
                                             "Connection: close\r\n\r\n".encode())
            assert answer.startswith((b"HTTP/1.1 401", b"HTTP/1.1 400")), (target, answer)
    assert elsewhere.journal() == []
    # httptools reads an absolute-form target as its path; h11 keeps it whole, and it is refused
    forwarded = {"httptools": 3, "h11": 2}[http_stack]
    assert [e["path"] for e in upstream.journal()] == ["/v1/orders"] * forwarded


def test_dot_segments_are_refused(proxy: FaultProxy, upstream: FakePartner) -> None:
    answer = _raw_request(proxy.url, b"GET /v1/orders/..%2f..%2f__sim/journal HTTP/1.1\r\n"
                                     b"Host: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"bad_target" in answer or b"\r\n\r\n" in answer
    assert upstream.journal() == []


# --- bodies stream both ways -------------------------------------------------------------------


class BulkApp:
    """An upstream of large bodies: GET /bulk?bytes=N streams N bytes; POST /echo
    answers the size and digest of what it received."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/echo":
            digest, size = hashlib.sha256(), 0
            while True:
                message = await receive()
                digest.update(message.get("body", b""))
                size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = json.dumps({"size": size, "sha256": digest.hexdigest()}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        total = int(scope["query_string"].decode().split("=")[1])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"content-length", str(total).encode())]})
        block = b"x" * CHUNK
        for offset in range(0, total, CHUNK):
            await send({"type": "http.response.body", "body": block[:total - offset],
                        "more_body": offset + CHUNK < total})


@pytest.fixture(scope="module")
def bulk() -> Iterator[BackgroundServer]:
    with BackgroundServer(BulkApp()) as server:
        yield server


def test_a_large_answer_streams_through_unread(bulk: BackgroundServer) -> None:
    size = MAX_CAPTURE_BYTES + 5 * CHUNK  # larger than any fault may hold
    with FaultProxy(bulk.url, {"rules": [_rule({"latency": {"fixed_ms": 1}}, path="/bulk")]}) \
            as proxy, httpx.Client(base_url=proxy.url, timeout=10.0) as http, \
            http.stream("GET", f"/bulk?bytes={size}") as answer:
        assert answer.headers["content-length"] == str(size)
        assert sum(len(chunk) for chunk in answer.iter_raw()) == size


def test_a_large_answer_a_fault_must_rewrite_is_a_502(bulk: BackgroundServer) -> None:
    size = MAX_CAPTURE_BYTES + CHUNK
    with FaultProxy(bulk.url, {"rules": [_rule({"malformed": "truncated"}, path="/bulk")]}) \
            as proxy, httpx.Client(base_url=proxy.url, timeout=10.0) as http:
        answer = http.get(f"/bulk?bytes={size}")
        assert answer.status_code == 502
        assert answer.json()["error"] == "answer_too_large"


def test_a_large_request_body_streams_to_the_upstream(bulk: BackgroundServer) -> None:
    body = b"0123456789abcdef" * (MAX_CAPTURE_BYTES // 16 + 1000)
    with FaultProxy(bulk.url) as proxy, httpx.Client(base_url=proxy.url, timeout=10.0) as http:
        echoed = http.post("/echo", content=body).json()
        chunked = http.post("/echo", content=iter([body[:100], body[100:]])).json()
    want = {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    assert echoed == want and chunked == want


class EdgeApp:
    """Answers framed every way HTTP/1.1 allows: chunked, empty (204), to HEAD."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/chunked":  # no Content-Length: uvicorn sends it chunked
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for part in (b"one,", b"two,", b"three"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        status = 204 if scope["path"] == "/empty" else 200
        body = b"" if status == 204 else b"0123456789"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(body)).encode())] if body else []})
        await send({"type": "http.response.body", "body": body})


def test_every_framing_of_an_answer_comes_through() -> None:
    with BackgroundServer(EdgeApp()) as edge, FaultProxy(edge.url) as proxy, \
            httpx.Client(base_url=proxy.url, timeout=5.0) as http:
        for _ in range(3):  # and again on the kept-alive connections
            assert http.get("/chunked").content == b"one,two,three"
            empty = http.get("/empty")
            assert empty.status_code == 204 and empty.content == b""
            head = http.head("/sized")
            assert head.status_code == 200 and head.headers["content-length"] == "10"
            assert http.get("/sized").content == b"0123456789"


def _one_shot_server(answers: list[bytes]) -> tuple[socket.socket, threading.Thread]:
    """A raw HTTP server that answers each connection once, then closes it."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        for answer in answers:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(5)
                received = b""
                while b"\r\n\r\n" not in received:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    received += chunk
                connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_an_upstream_that_closes_after_each_answer() -> None:
    """A length-framed answer, then the close; and an answer framed by the close alone."""
    sized = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    close_framed = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close"
    listener, thread = _one_shot_server([sized, sized, sized, close_framed])
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with FaultProxy(url, timeout_s=5.0) as proxy, \
                httpx.Client(base_url=proxy.url, timeout=5.0) as http:
            assert [http.get("/x").content for _ in range(3)] == [b"ok"] * 3
            assert http.get("/x").content == b"until the close"
    finally:
        listener.close()
        thread.join(5)


def test_an_upstream_that_cuts_an_answer_cuts_the_clients() -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"
    listener, thread = _one_shot_server([cut])
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with FaultProxy(url, timeout_s=5.0) as proxy, \
                httpx.Client(base_url=proxy.url, timeout=5.0) as http:
            with pytest.raises(httpx.RemoteProtocolError):
                http.get("/x")
            assert proxy.journal()[-1]["upstream"].startswith("cut mid-body")
    finally:
        listener.close()
        thread.join(5)


# --- --out: the clean answers into a cassette ----------------------------------------------------


def test_out_records_the_clean_answers_redacted(upstream: FakePartner, tmp_path: Path) -> None:
    out = tmp_path / "through-proxy.yaml"
    faults = {"rules": [_rule({"status": 503}, path="/v1/orders/ORD-000002"),
                        _rule({"schema_drift": {"null": ["state"]}},
                              path="/v1/orders/ORD-000003")]}
    with FaultProxy(upstream.url, faults, out=out) as proxy, \
            httpx.Client(base_url=proxy.url, timeout=5.0) as http:
        token = fetch_token(http)
        http.headers["authorization"] = f"Bearer {token}"
        statuses = [http.get(f"/v1/orders/ORD-00000{n}").status_code for n in (1, 2, 3)]
        assert statuses == [200, 503, 200]
        assert proxy.recorded == 2  # the token and ORD-000001: faulted answers are not kept
    interactions = load_cassette(out)
    assert [i.request.uri for i in interactions] == [upstream.url + "/oauth/token",
                                                     upstream.url + "/v1/orders/ORD-000001"]
    text = out.read_text()
    assert token not in text and "orderops-secret" not in text
    with ReplayPartner(out) as replay, httpx.Client(base_url=replay.url) as http:
        assert http.get("/v1/orders/ORD-000001").json()["order_id"] == "ORD-000001"


# --- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize("upstream_url", ["ftp://partner.example", "partner.example",
                                          "http://partner.example:port", "http://"])
def test_an_invalid_upstream_is_one_line_and_exit_2(upstream_url: str) -> None:
    done = subprocess.run([*PARTNERSIM, "proxy", "--upstream", upstream_url, "--port", "0"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--upstream" in done.stderr
    assert "Traceback" not in done.stderr


def test_data_set_drift_in_faults_file_is_located(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("rules:\n  - match: {path: /v1/orders}\n"
                      "    fault: {cursor_drift: {insert: 3}}\n")
    done = subprocess.run([*PARTNERSIM, "proxy", "--upstream", "http://127.0.0.1:9",
                           "--faults", str(faults), "--port", "0"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith(f"{faults}:")
    assert "rules[0].fault.cursor_drift" in done.stderr and "Traceback" not in done.stderr
