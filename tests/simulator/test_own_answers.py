"""Answers the fake partner makes itself, and the CLI's refusals, as a new user meets them.

Each test is a finding of a fresh-clone review: a 405 that named one method of
two, NaN in a JSON answer, a replay echoing another request's id, an empty HAR
that "wrote" a cassette, a bad --state that crashed with a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from partnerkit.simulator import FakePartner
from partnerkit.simulator.cassette import Interaction, RecordedRequest, RecordedResponse
from partnerkit.simulator.cli import main as partnersim
from partnerkit.simulator.server import ReplayPartner
from tests.redis_server import RedisServer


@pytest.mark.parametrize(("path", "method", "allowed"), [
    ("/__sim/scenario", "PATCH", "GET, HEAD, PUT"),
    ("/__sim/journal", "POST", "DELETE, GET, HEAD"),
    ("/__sim/reset", "GET", "POST"),
])
def test_a_wrong_admin_method_names_every_method_of_the_path(
        partner: FakePartner, path: str, method: str, allowed: str) -> None:
    answer = httpx.request(method, partner.url + path)
    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed
    assert answer.json()["error"] == "method_not_allowed"
    assert answer.content.endswith(b"}\n")  # the admin API's answers end in a newline


def test_an_unknown_admin_path_is_json_ending_in_a_newline(partner: FakePartner) -> None:
    answer = httpx.get(partner.url + "/__sim/nothing")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert answer.content.endswith(b"}\n") and answer.json()["error"] == "not_found"


@pytest.mark.parametrize("query", ["min_backoff_ms=nan", "min_backoff_ms=inf",
                                   "window_s=nan", "max_attempts=abc"])
def test_verdict_settings_must_be_finite_numbers(partner: FakePartner, query: str) -> None:
    answer = httpx.get(f"{partner.url}/__sim/verdicts?{query}")
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_request"  # and the body is JSON: no bare NaN
    assert query.partition("=")[0] in answer.json()["message"]


def test_the_cli_refuses_a_backoff_of_nan(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps({"entries": []}))
    assert partnersim(["verdicts", str(journal), "--min-backoff-ms", "nan"]) == 2
    assert "min_backoff_ms must be a finite number" in capsys.readouterr().err


def test_replay_echoes_the_clients_request_id_not_the_recorded_one() -> None:
    recorded = Interaction(
        RecordedRequest("GET", "https://partner.example.com/v1/orders/ORD-1", b"", {}),
        RecordedResponse(200, "OK", {"content-type": ["application/json"],
                                     "x-request-id": ["<recorded-id>"]}, b'{"id":"ORD-1"}'))
    with ReplayPartner([recorded, recorded]) as partner:
        mine = httpx.get(partner.url + "/v1/orders/ORD-1", headers={"x-request-id": "abc-123"})
        none = httpx.get(partner.url + "/v1/orders/ORD-1")
    assert mine.headers.get_list("x-request-id") == ["abc-123"]
    assert none.headers.get_list("x-request-id") == ["<recorded-id>"]


def test_an_empty_har_writes_no_cassette(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    har = tmp_path / "empty.har"
    har.write_text(json.dumps({"log": {"version": "1.2", "entries": []}}))
    out = tmp_path / "out" / "cassette.yaml"
    assert partnersim(["import-har", str(har), "--out", str(out)]) == 2
    assert "no entry to import" in capsys.readouterr().err
    assert not out.parent.exists()


def test_import_har_does_not_suggest_an_append_it_lacks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    har = tmp_path / "one.har"
    har.write_text(json.dumps({"log": {"version": "1.2", "entries": [{
        "startedDateTime": "2026-12-01T00:00:00Z", "time": 1,
        "request": {"method": "GET", "url": "https://p.example/v1/orders", "headers": [],
                    "queryString": []},
        "response": {"status": 200, "statusText": "OK", "headers": [],
                     "content": {"mimeType": "application/json", "text": "{}"}}}]}}))
    out = tmp_path / "exists.yaml"
    out.write_text("")
    assert partnersim(["import-har", str(har), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "exists" in error and "--append" not in error


def test_a_cassette_under_a_file_is_refused_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert partnersim(["record", "--upstream", "http://127.0.0.1:9", "--port", "0",
                       "--out", str(a_file / "c.yaml")]) == 2
    assert "a folder on its path is a file" in capsys.readouterr().err


@pytest.mark.parametrize("state", ["redis://127.0.0.1:6390/x", "bogus"])
def test_a_malformed_state_is_refused_in_one_line(
        state: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert partnersim(["serve", "--port", "0", "--state", state]) == 2
    error = capsys.readouterr().err
    assert error.startswith("partnersim: --state: ") and error.count("\n") == 1


def test_a_bad_state_from_the_environment_names_the_variable(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PARTNERSIM_STATE", "bogus")
    assert partnersim(["serve", "--port", "0"]) == 2
    assert capsys.readouterr().err.startswith("partnersim: $PARTNERSIM_STATE: ")


def test_a_redis_database_it_lacks_is_refused_in_one_line(
        redis_server: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    tcp = redis_server.url  # a unix socket: the database goes in the query
    assert partnersim(["serve", "--port", "0", "--state", f"{tcp}?db=99"]) == 2
    error = capsys.readouterr().err
    assert "refused it" in error and "out of range" in error and error.count("\n") == 1
