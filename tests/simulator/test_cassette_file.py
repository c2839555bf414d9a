"""Reading and writing cassettes: VCR.py's format, located errors, incremental appends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vcr.serialize import deserialize as vcr_deserialize
from vcr.serializers import yamlserializer

from partnerkit.simulator.cassette import (
    CassetteError,
    CassetteWriter,
    Interaction,
    RecordedRequest,
    RecordedResponse,
    load_cassette,
    parse_cassette,
    redact_interaction,
)
from partnerkit.simulator.redaction import redact_body


def _interaction(number: int, body: bytes = b'{"ok":true}') -> Interaction:
    return Interaction(
        RecordedRequest("GET", f"http://partner.test/v1/orders/ORD-{number}", b"",
                        {"accept": ["application/json"]}),
        RecordedResponse(200, "OK", {"content-type": ["application/json"]}, body),
    )


def test_the_writer_keeps_a_valid_cassette_after_every_append(tmp_path: Path) -> None:
    path = tmp_path / "growing.yaml"
    writer = CassetteWriter(path)
    assert not path.exists()  # created by the first interaction, never left empty
    for number in range(3):
        writer.write(_interaction(number))
        # Readable by partnersim and by VCR.py at every step, before close().
        assert [item.request.uri for item in load_cassette(path)] == [
            f"http://partner.test/v1/orders/ORD-{n}" for n in range(number + 1)]
        assert len(vcr_deserialize(path.read_text(), yamlserializer)[0]) == number + 1
    writer.close()


def test_append_keeps_what_was_recorded(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    first = CassetteWriter(path)
    first.write(_interaction(1))
    first.close()
    again = CassetteWriter(path, append=True)
    again.write(_interaction(2))
    again.close()
    assert [item.request.uri[-5:] for item in load_cassette(path)] == ["ORD-1", "ORD-2"]


def test_binary_and_unicode_bodies_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    writer = CassetteWriter(path)
    writer.write(_interaction(1, b"\xff\xfe not utf-8"))
    writer.write(_interaction(2, "{\"name\":\"Zoë ✓\"}".encode()))
    writer.write(_interaction(3, "{\"mood\":\"😀\"}".encode()))  # JSON would escape a pair
    writer.write(_interaction(4, b'{"plain":"ascii \\u0000 \\" \\\\ /"}'))
    writer.close()
    bodies = [b"\xff\xfe not utf-8", "{\"name\":\"Zoë ✓\"}".encode(),
              "{\"mood\":\"😀\"}".encode(), b'{"plain":"ascii \\u0000 \\" \\\\ /"}']
    assert [item.response.body for item in load_cassette(path)] == bodies
    vcr_responses = vcr_deserialize(path.read_text(), yamlserializer)[1]
    assert [response["body"]["string"] for response in vcr_responses] == bodies


def test_partnersim_writes_one_json_line_per_interaction(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    writer = CassetteWriter(path)
    for number in range(3):
        writer.write(_interaction(number))
    writer.close()
    lines = path.read_text().splitlines()
    assert lines[:2] == ["version: 1", "interactions:"]
    assert len(lines) == 5 and all(line.startswith("- {") for line in lines[2:])
    assert [json.loads(line[2:])["request"]["uri"][-5:] for line in lines[2:]] == [
        "ORD-0", "ORD-1", "ORD-2"]


def test_redaction_keeps_json_types_and_forms() -> None:
    token = json.loads(redact_body(
        b'{"access_token":"abc","expires_in":3600,"scope":{"refresh_token":"r"}}',
        "application/json; charset=utf-8"))
    assert token == {"access_token": "<redacted>", "expires_in": 3600,
                     "scope": {"refresh_token": "<redacted>"}}
    form = redact_body(b"grant_type=client_credentials&client_secret=s%3Dcret",
                       "application/x-www-form-urlencoded")
    assert form == b"grant_type=client_credentials&client_secret=<redacted>"
    assert redact_body(b"client_secret=x", "") == b"client_secret=<redacted>"
    assert redact_body(b"not json {", "application/json") == b"not json {"


def test_redact_interaction_blanks_every_secret() -> None:
    interaction = Interaction(
        RecordedRequest("POST", "http://p.test/oauth/token?access_token=a&x=1",
                        b"client_secret=s",
                        {"Authorization": ["Basic dXNlcjpwYXNz"], "Cookie": ["session=1"],
                         "content-type": ["application/x-www-form-urlencoded"]}),
        RecordedResponse(200, "OK", {"Set-Cookie": ["a=b", "c=d"],
                                     "content-type": ["application/json"]},
                         b'{"access_token":"t"}'),
    )
    clean = redact_interaction(interaction)
    assert clean.request.uri == "http://p.test/oauth/token?access_token=<redacted>&x=1"
    assert clean.request.headers["Authorization"] == ["<redacted>"]
    assert clean.request.headers["Cookie"] == ["<redacted>"]
    assert clean.request.body == b"client_secret=<redacted>"
    assert clean.response.headers["Set-Cookie"] == ["<redacted>", "<redacted>"]
    assert clean.response.body == b'{"access_token":"<redacted>"}'


GOOD = """version: 1
interactions:
- request: {method: GET, uri: 'http://p.test/a', body: '', headers: {}}
  response: {status: {code: 200, message: OK}, headers: {}, body: {string: 'x'}}
"""


@pytest.mark.parametrize(("text", "expected"), [
    ("interactions: [\n  - {", "line "),
    ("just a string", "not a VCR.py cassette"),
    ("version: 2\ninteractions: []\n", "version: expected 1"),
    ("version: 1\ninteractions: {a: 1}\n", "interactions: expected a list"),
    (GOOD.replace("code: 200", "code: 99"), "interactions[0].response.status.code"),
    (GOOD.replace("code: 200", "code: '200'"), "interactions[0].response.status.code"),
    (GOOD.replace("method: GET", "method: [1]"), "interactions[0].request.method"),
    (GOOD.replace("uri: 'http://p.test/a'", "uri: /a"), "interactions[0].request.uri"),
    (GOOD.replace("headers: {}, body", "headers: {x: [{}]}, body"),
     "interactions[0].response.headers.x"),
    (GOOD.replace("{string: 'x'}", "{string: 5}"), "interactions[0].response.body.string"),
    (GOOD.replace("  response:", "  responze:"), "interactions[0].response: expected a mapping"),
    ("version: 1\ninteractions:\n- !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ("version: 1\ninteractions:\n- " + "[" * 5000 + "]" * 5000 + "\n", "line 3: "),
], ids=["truncated", "not-a-mapping", "version", "not-a-list", "status-range", "status-type",
        "method", "relative-uri", "header-values", "body-type", "missing-response",
        "python-tag", "deep-nesting"])
def test_a_bad_cassette_is_refused_saying_where(text: str, expected: str) -> None:
    with pytest.raises(CassetteError) as caught:
        parse_cassette(text, "bad.yaml")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("bad.yaml: ")


def test_vcr_cassettes_of_older_httpx_stubs_are_read() -> None:
    old = ("version: 1\ninteractions:\n- request: {method: GET, uri: 'http://p.test/a', "
           "body: null, headers: {}}\n  response: {status_code: 204, headers: {}, "
           "content: ''}\n")
    assert parse_cassette(old)[0].response.status == 204


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="cannot read it"):
        load_cassette(tmp_path / "nope.yaml")
