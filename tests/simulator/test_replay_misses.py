"""A replay miss never passes for an answer: its status, its count, and the test it fails."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from partnerkit.client import PartnerClient
from partnerkit.client.errors import OrderNotFound, ReplayMiss
from partnerkit.simulator.cassette import (
    Interaction,
    RecordedRequest,
    RecordedResponse,
    dump_cassette,
)
from partnerkit.simulator.cli import main as partnersim
from partnerkit.simulator.replay import MISS_HEADER, MISS_STATUS, MissAnswer
from partnerkit.simulator.server import ReplayMissError, ReplayPartner

pytest_plugins = ["pytester"]

TOKEN = Interaction(
    RecordedRequest("POST", "https://partner.example.com/oauth/token", b"", {}),
    RecordedResponse(200, "OK", {"content-type": ["application/json"]},
                     b'{"access_token":"<redacted>","token_type":"Bearer","expires_in":3600}'))
ORDER = Interaction(
    RecordedRequest("GET", "https://partner.example.com/v1/orders/ORD-1", b"", {}),
    RecordedResponse(404, "Not Found", {"content-type": ["application/json"]},
                     b'{"error":"not_found","message":"no order ORD-1"}'))


def _client(url: str) -> PartnerClient:
    return PartnerClient.from_url(url, client_id="x", client_secret="y", timeout=2, deadline=4)


def test_a_miss_is_501_with_a_header_and_the_closest_recordings() -> None:
    with ReplayPartner([TOKEN, ORDER], allow_misses=True) as partner:
        answer = httpx.get(f"{partner.url}/v1/orders/ORD-2", timeout=5)
        assert answer.status_code == MISS_STATUS == 501
        assert answer.headers[MISS_HEADER] == "no_recording"
        assert answer.json()["closest"][0]["path"] == "/v1/orders/ORD-1"
        health = httpx.get(f"{partner.url}/__sim/health", timeout=5).json()
        assert (health["misses"], health["miss_status"]) == (1, 501)
        assert [entry.get("miss") for entry in partner.journal()] == [True]
        partner.reset()
        assert partner.misses == 0


def test_the_client_never_maps_a_miss_to_a_domain_outcome() -> None:
    """The recorded 404 is OrderNotFound; a miss (even one served as 404) is ReplayMiss."""
    with ReplayPartner([TOKEN, ORDER], miss=MissAnswer(404), allow_misses=True) as partner, \
            _client(partner.url) as client:
        with pytest.raises(OrderNotFound):
            client.get_order("ORD-1")
        with pytest.raises(ReplayMiss, match="no recorded request matches GET /v1/orders/ORD-2"):
            client.get_order("ORD-2")
        assert partner.misses == 1  # not retried


def test_a_missed_token_request_is_a_miss_too() -> None:
    with ReplayPartner([ORDER], allow_misses=True) as partner, _client(partner.url) as client, \
            pytest.raises(ReplayMiss, match="POST /oauth/token"):
        client.get_order("ORD-1")


def test_leaving_a_replay_partner_after_a_miss_fails_with_the_closest_recordings() -> None:
    with pytest.raises(ReplayMissError) as raised, ReplayPartner([TOKEN, ORDER]) as partner:
        httpx.get(f"{partner.url}/v1/orders/ORD-9?x=1", timeout=5)
    message = str(raised.value)
    assert "1 request(s) had no recording" in message
    assert "no recorded request matches GET /v1/orders/ORD-9?x=1" in message
    assert "closest: GET /v1/orders/ORD-1" in message


def test_a_miss_status_and_body_are_chosen_and_checked(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with ReplayPartner([ORDER], miss=MissAnswer(418, b"gap", "text/plain"),
                       allow_misses=True) as partner:
        answer = httpx.get(f"{partner.url}/nowhere", timeout=5)
        assert (answer.status_code, answer.text, answer.headers[MISS_HEADER]) == \
            (418, "gap", "no_recording")
    with pytest.raises(ValueError, match="400-599"):
        MissAnswer(200)
    cassette = tmp_path / "c.yaml"
    cassette.write_text(dump_cassette([ORDER]))
    assert partnersim(["replay", str(cassette), "--miss-status", "302"]) == 2
    assert "--miss-status: a miss status must be 400-599" in capsys.readouterr().err
    assert partnersim(["replay", str(cassette), "--miss-body", str(tmp_path / "none")]) == 2
    assert "--miss-body" in capsys.readouterr().err


def test_the_pytest_plugin_fails_a_test_that_caused_a_miss(pytester: pytest.Pytester) -> None:
    (pytester.path / "c.yaml").write_text(dump_cassette([TOKEN, ORDER]))
    pytester.makepyfile(test_user='''
import httpx, pytest

@pytest.mark.replay("c.yaml")
def test_hit(replay_partner):
    assert httpx.get(replay_partner.url + "/v1/orders/ORD-1").status_code == 404

@pytest.mark.replay("c.yaml")
def test_swallowed_miss(replay_partner):
    httpx.get(replay_partner.url + "/v1/orders/ORD-7")  # the test never looks
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*no recorded request matches GET /v1/orders/ORD-7*",
                                 "*closest: GET /v1/orders/ORD-1*"])
