"""Every committed cassette is readable by VCR.py and partnersim, and holds no secret."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from vcr.serialize import deserialize as vcr_deserialize
from vcr.serializers import yamlserializer

from partnerkit.simulator.cassette import (
    Interaction,
    RecordedRequest,
    RecordedResponse,
    dump_cassette,
    load_cassette,
    parse_cassette,
)
from partnerkit.simulator.redaction import REDACTED, SECRET_FIELDS, SECRET_HEADERS
from partnerkit.simulator.state import DEFAULT_CLIENT_SECRET

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = sorted((ROOT / "cassettes").rglob("*.yaml"))
# A bearer credential (token68), not an auth-param such as `Bearer error="invalid_token"`.
BEARER = re.compile(r"(?i)bearer\s+(?!<redacted>)(?![a-z_]+=\\?\")[A-Za-z0-9._~+/-]{4,}")
ISSUED_TOKEN = re.compile(r"sim-[0-9a-f]{36}")  # what the fake partner hands out
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def _ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


def test_the_suite_has_cassettes_to_check() -> None:
    assert len(CASSETTES) >= 9
    assert any("production" in path.parts for path in CASSETTES)


@pytest.mark.parametrize("path", CASSETTES, ids=_ids(CASSETTES))
def test_no_secret_in_the_raw_text(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert DEFAULT_CLIENT_SECRET not in text
    assert not BEARER.search(text), BEARER.search(text)
    assert not ISSUED_TOKEN.search(text), ISSUED_TOKEN.search(text)
    assert not JWT.search(text)


@pytest.mark.parametrize("path", CASSETTES, ids=_ids(CASSETTES))
def test_every_secret_field_is_the_placeholder(path: Path) -> None:
    interactions = load_cassette(path)
    assert interactions, f"{path.relative_to(ROOT)} is an empty cassette: record or delete it"
    for number, interaction in enumerate(interactions):
        for where, value in _secrets(interaction):
            assert value == REDACTED, f"{path.name} interaction {number}: {where} = {value!r}"


@pytest.mark.parametrize("path", CASSETTES, ids=_ids(CASSETTES))
def test_vcr_reads_what_partnersim_reads(path: Path) -> None:
    requests, responses = vcr_deserialize(path.read_text(encoding="utf-8"), yamlserializer)[:2]
    ours = load_cassette(path)
    assert len(requests) == len(responses) == len(ours)
    for request, response, interaction in zip(requests, responses, ours, strict=True):
        assert (request.method, request.uri) == (interaction.request.method,
                                                 interaction.request.uri)
        assert response["status"]["code"] == interaction.response.status
        assert response["body"]["string"] == interaction.response.body


@pytest.mark.parametrize("path", CASSETTES, ids=_ids(CASSETTES))
def test_host_and_port_are_normalised(path: Path) -> None:
    for interaction in load_cassette(path):
        assert urlsplit(interaction.request.uri).netloc == "partner.test"
        assert interaction.request.header("host") in ("", "partner.test")


def _secrets(interaction: Interaction) -> list[tuple[str, str]]:
    """Every place a secret could sit, and what is there."""
    found: list[tuple[str, str]] = []
    request, response = interaction.request, interaction.response
    for side, headers in (("request", request.headers), ("response", response.headers)):
        for name, values in headers.items():
            if name.lower() in SECRET_HEADERS:
                found += [(f"{side} header {name}", value) for value in values]
    found += [(f"query {name}", value)
              for name, value in parse_qsl(urlsplit(request.uri).query)
              if name in SECRET_FIELDS]
    for side, body in (("request", request.body), ("response", response.body)):
        found += [(f"{side} body {name}", value) for name, value in _body_fields(body)]
    return found


def _body_fields(body: bytes) -> list[tuple[str, str]]:
    try:
        payload = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace")
        return [(name, value) for name, value in parse_qsl(text) if name in SECRET_FIELDS]
    found: list[tuple[str, str]] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in SECRET_FIELDS:
                    found.append((key, item if isinstance(item, str) else repr(item)))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(payload)
    return found


def test_the_scan_catches_what_it_looks_for() -> None:
    """A planted secret in each place is found (so the scans above are not vacuous)."""

    leaky = Interaction(
        RecordedRequest("POST", "http://partner.test/oauth/token?token=abc",
                        b"grant_type=client_credentials&client_secret=s3cret",
                        {"Authorization": ["Bearer sim-" + "0" * 36],
                         "content-type": ["application/x-www-form-urlencoded"]}),
        RecordedResponse(200, "OK", {"content-type": ["application/json"]},
                         b'{"access_token":"tok-123","nested":{"refresh_token":"r-1"}}'),
    )
    text = dump_cassette([leaky])
    assert BEARER.search(text) and ISSUED_TOKEN.search(text)
    found = {where: value for where, value in _secrets(parse_cassette(text)[0])}
    assert found == {
        "request header Authorization": "Bearer sim-" + "0" * 36,
        "query token": "abc",
        "request body client_secret": "s3cret",
        "response body access_token": "tok-123",
        "response body refresh_token": "r-1",
    }
