"""HAR 1.2 replayed and imported; recorded pace kept by record and served by replay."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from partnerkit.simulator.cassette import CassetteError, load_cassette
from partnerkit.simulator.cli import main as partnersim
from partnerkit.simulator.formats import load_recordings, parse_har
from partnerkit.simulator.server import FakePartner, FaultProxy, RecordingProxy, ReplayPartner


def entry(method: str, url: str, status: int, content: dict[str, Any] | None, *,
          headers: list[dict[str, str]] | None = None, time_ms: float = 12.5,
          post: dict[str, Any] | None = None, cookies: list[dict[str, Any]] | None = None,
          request_headers: list[dict[str, str]] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"status": status, "statusText": "", "httpVersion": "h2",
                                "headers": headers or [], "cookies": cookies or []}
    if content is not None:
        response["content"] = content
    request: dict[str, Any] = {"method": method, "url": url, "httpVersion": "h2",
                               "headers": request_headers or [], "cookies": [],
                               "queryString": []}
    if post is not None:
        request["postData"] = post
    return {"startedDateTime": "2026-01-01T00:00:00Z", "time": time_ms, "request": request,
            "response": response, "timings": {"wait": time_ms}}


def har(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"log": {"version": "1.2", "creator": {"name": "t", "version": "1"},
                               "entries": list(entries)}}).encode()


PNG = bytes(range(256))
HAR = har(
    entry("POST", "https://p.example/oauth/token", 200,
          {"size": 50, "mimeType": "application/json",
           "text": '{"access_token":"live-secret-token","token_type":"Bearer","expires_in":60}'},
          post={"mimeType": "application/x-www-form-urlencoded",
                "text": "grant_type=client_credentials&client_id=a&client_secret=hunter2"},
          request_headers=[{"name": ":authority", "value": "p.example"},
                           {"name": "authorization", "value": "Basic c2VjcmV0"}]),
    entry("GET", "https://p.example/v1/orders/ORD-1", 503, {"size": 0, "mimeType": "x"},
          headers=[{"name": ":status", "value": "503"}, {"name": "retry-after", "value": "1"}]),
    entry("GET", "https://p.example/v1/orders/ORD-1", 200,
          {"size": 13, "mimeType": "application/json", "text": '{"id":"ORD-1"}'},
          headers=[{"name": "content-type", "value": "application/json"},
                   {"name": "content-encoding", "value": "br"}],
          cookies=[{"name": "sid", "value": "abc", "path": "/", "httpOnly": True}]),
    entry("GET", "https://p.example/logo.png", 200,
          {"size": 256, "mimeType": "image/png", "encoding": "base64",
           "text": base64.b64encode(PNG).decode()}),
    entry("GET", "https://p.example/blocked", 0, {"size": 0, "mimeType": ""}),
    entry("GET", "https://p.example/v1/no-content", 204, None),
)


def test_a_har_file_replays_in_recorded_order(tmp_path: Path) -> None:
    path = tmp_path / "traffic.har"
    path.write_bytes(HAR)
    with ReplayPartner(path) as replay, httpx.Client(base_url=replay.url) as client:
        token = client.post("/oauth/token", data={"grant_type": "client_credentials"})
        assert token.json()["access_token"] == "live-secret-token"  # replay keeps it as found
        first, second = client.get("/v1/orders/ORD-1"), client.get("/v1/orders/ORD-1")
        assert (first.status_code, first.headers["retry-after"]) == (503, "1")
        assert ":status" not in first.headers
        assert (second.json(), "content-encoding" in second.headers) == ({"id": "ORD-1"}, False)
        assert second.headers["set-cookie"] == "sid=abc; Path=/; HttpOnly"
        assert client.get("/logo.png").content == PNG
        assert client.get("/v1/no-content").status_code == 204
    [recorded] = [i for i in load_recordings(path) if i.request.uri.endswith("/token")]
    assert ":authority" not in recorded.request.headers
    assert recorded.response.duration_ms == 12.5


def test_import_har_writes_a_redacted_vcrpy_cassette(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    source, out = tmp_path / "t.har", tmp_path / "out" / "c.yaml"
    source.write_bytes(HAR)
    assert partnersim(["import-har", str(source), "--out", str(out)]) == 0
    text = out.read_text()
    for secret in ("live-secret-token", "hunter2", "c2VjcmV0"):
        assert secret not in text
    captured = capsys.readouterr()
    assert "wrote 5 interactions" in captured.out
    assert "log.entries[4]: skipped, no final answer was recorded (status 0" in captured.err
    interactions = load_cassette(out)
    assert [i.response.status for i in interactions] == [200, 503, 200, 200, 204]
    assert interactions[3].response.body == PNG
    assert all(i.response.duration_ms == 12.5 for i in interactions)
    assert partnersim(["import-har", str(source), "--out", str(out)]) == 2  # never overwrites


def test_a_har_entry_that_cannot_be_served_is_named_by_index() -> None:
    bad = har(entry("GET", "https://p.example/a", 200, None),
              entry("GET", "/relative", 200, None),
              entry("GET", "https://p.example/b", 200, {"text": "!!", "encoding": "base64"}),
              entry("GET", "https://p.example/c", 999, None))
    with pytest.raises(CassetteError) as refused:
        parse_har(bad, "t.har")
    assert refused.value.problems == [
        "log.entries[1].request.url: expected an absolute http(s) URL, found '/relative'",
        "log.entries[2].response.content.text: not valid base64 (encoding: base64)",
        "log.entries[3].response.status: expected an HTTP status 200-599, found 999",
    ]
    with pytest.raises(CassetteError, match="not a HAR file"):
        parse_har(b'{"log": {}}')
    with pytest.raises(CassetteError, match="not valid JSON"):
        parse_har(b'{"log": ')


def test_record_keeps_each_answers_duration_and_replay_serves_its_pace(tmp_path: Path) -> None:
    out = tmp_path / "c.yaml"
    slow = {"rules": [{"match": {"path": "/v1/orders"}, "fault": {"latency": {"fixed_ms": 300}}}]}
    with FakePartner(slow) as partner, RecordingProxy(partner.url, out) as proxy:
        client_id, secret = partner.credentials
        token = httpx.post(f"{proxy.url}/oauth/token", data={
            "grant_type": "client_credentials", "client_id": client_id,
            "client_secret": secret}, timeout=5).json()["access_token"]
        httpx.get(f"{proxy.url}/v1/orders", headers={"authorization": f"Bearer {token}"},
                  timeout=5)
    token_answer, orders = load_cassette(out)
    assert orders.response.duration_ms is not None and orders.response.duration_ms >= 300
    assert token_answer.response.duration_ms is not None
    assert token_answer.response.duration_ms < orders.response.duration_ms
    assert "duration_ms: " in out.read_text() or '"duration_ms": ' in out.read_text()

    with ReplayPartner(out, recorded_latency=0.5) as paced, \
            httpx.Client(base_url=paced.url, timeout=5) as client:
        started = time.monotonic()
        client.get("/v1/orders")
        assert time.monotonic() - started >= 0.15  # 300 ms x 0.5, one-sided
        [entry_] = paced.journal()
        assert entry_["recorded_latency_ms"] >= 150
    with ReplayPartner(out) as plain, httpx.Client(base_url=plain.url, timeout=5) as client:
        started = time.monotonic()
        client.get("/v1/orders")
        assert "recorded_latency_ms" not in plain.journal()[0]


def test_vcrpy_reads_a_cassette_with_durations(tmp_path: Path) -> None:
    """duration_ms is a key VCR.py ignores: its playback still serves the answer."""
    vcr = pytest.importorskip("vcr")
    out = tmp_path / "c.yaml"
    with FakePartner() as partner, RecordingProxy(partner.url, out,
                                                   uri_base="http://p.test") as proxy:
        httpx.get(f"{proxy.url}/v1/orders", timeout=5)
    with vcr.use_cassette(str(out), record_mode="none"):
        assert httpx.get("http://p.test/v1/orders").status_code == 401


def test_recorded_latency_is_refused_outside_its_range(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    path = tmp_path / "t.har"
    path.write_bytes(HAR)
    assert partnersim(["replay", str(path), "--recorded-latency=-1"]) == 2
    assert "--recorded-latency -1.0: a factor from 0 to 100" in capsys.readouterr().err


def test_the_fault_proxy_tee_keeps_durations_too(tmp_path: Path) -> None:
    out = tmp_path / "tee.yaml"
    slow = {"rules": [{"match": {"path": "/oauth/token"},
                       "fault": {"latency": {"fixed_ms": 200}}}]}
    with FakePartner(slow) as partner, FaultProxy(partner.url, out=out) as proxy:
        httpx.post(f"{proxy.url}/oauth/token", data={"grant_type": "client_credentials"},
                   timeout=5)  # refused (no credentials), and recorded with its pace
    [recorded] = load_cassette(out)
    assert recorded.response.duration_ms is not None and recorded.response.duration_ms >= 200
