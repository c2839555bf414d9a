"""Cassettes VCR.py itself records, through each of its stubs installed here, replay
so that a client sees what VCR.py's own playback of the same file shows it.

Each stub runs one script three times: live against the fake partner and a small
partner-shaped upstream that compresses (recording with VCR.py), under VCR.py's
playback (record mode `none`), and against `ReplayPartner` serving that file.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import requests
import urllib3
import vcr
from tornado.httpclient import AsyncHTTPClient

from partnerkit.simulator.cassette import CassetteError, load_cassette, parse_cassette
from partnerkit.simulator.server import BackgroundServer, FakePartner, ReplayPartner

Seen = list[tuple[int, bytes, str]]  # (status, decoded body, content-type) per request
TOKEN_FORM = {"grant_type": "client_credentials", "client_id": "orderops",
              "client_secret": "orderops-secret"}


async def shapes_app(scope: Any, receive: Any, send: Any) -> None:
    """Gzip, deflate and plain answers, an echo of the request body, a redirect, a 503."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    payload = json.dumps({"path": path, "got": body.decode()}).encode()
    headers = [(b"content-type", b"application/json")]
    status = 200
    if path == "/shapes/gzip":
        payload = gzip.compress(payload, mtime=0)
        headers.append((b"content-encoding", b"gzip"))
    elif path == "/shapes/deflate":
        payload = zlib.compress(payload)
        headers.append((b"content-encoding", b"deflate"))
    elif path == "/shapes/redirect":
        status, payload = 302, b""
        headers.append((b"location", b"/shapes/plain"))
    elif path == "/shapes/error":
        status = 503
    headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def via_requests(shapes: str, partner: str) -> Seen:
    with requests.Session() as session:
        answers = [session.get(f"{shapes}/shapes/gzip"), session.get(f"{shapes}/shapes/deflate"),
                   session.post(f"{shapes}/shapes/plain", json={"a": 1}),
                   session.post(f"{shapes}/shapes/plain", data={"b": "2"}),
                   session.get(f"{shapes}/shapes/redirect"), session.get(f"{shapes}/shapes/error"),
                   session.get(f"{shapes}/shapes/error"),
                   session.post(f"{partner}/oauth/token", data=TOKEN_FORM),
                   session.get(f"{partner}/v1/orders")]
        return [(a.status_code, a.content, a.headers.get("content-type", "")) for a in answers]


def via_httpx(shapes: str, partner: str) -> Seen:
    with httpx.Client(follow_redirects=True) as client:
        answers = [client.get(f"{shapes}/shapes/gzip"), client.get(f"{shapes}/shapes/deflate"),
                   client.post(f"{shapes}/shapes/plain", json={"a": 1}),
                   client.post(f"{shapes}/shapes/plain", data={"b": "2"}),
                   client.get(f"{shapes}/shapes/redirect"), client.get(f"{shapes}/shapes/error"),
                   client.post(f"{partner}/oauth/token", data=TOKEN_FORM),
                   client.get(f"{partner}/v1/orders")]
        return [(a.status_code, a.content, a.headers.get("content-type", "")) for a in answers]


def via_urllib3(shapes: str, partner: str) -> Seen:
    pool = urllib3.PoolManager()
    answers = [pool.request("GET", f"{shapes}/shapes/gzip"),
               pool.request("GET", f"{shapes}/shapes/deflate"),
               pool.request("POST", f"{shapes}/shapes/plain", body=b"x=1"),
               pool.request("GET", f"{shapes}/shapes/error"),
               pool.request("POST", f"{partner}/oauth/token", fields=TOKEN_FORM,
                            encode_multipart=False)]
    pool.clear()
    return [(a.status, a.data, a.headers.get("content-type", "")) for a in answers]


def via_aiohttp(shapes: str, partner: str) -> Seen:
    async def run() -> Seen:
        seen: Seen = []
        async with aiohttp.ClientSession() as session:
            for call in (lambda: session.get(f"{shapes}/shapes/gzip"),
                         lambda: session.get(f"{shapes}/shapes/deflate"),
                         lambda: session.post(f"{shapes}/shapes/plain", json={"a": 1}),
                         lambda: session.get(f"{shapes}/shapes/redirect"),
                         lambda: session.get(f"{shapes}/shapes/error"),
                         lambda: session.post(f"{partner}/oauth/token", data=TOKEN_FORM)):
                async with call() as answer:
                    seen.append((answer.status, await answer.read(),
                                 answer.headers.get("content-type", "")))
        return seen
    return asyncio.run(run())


def via_tornado(shapes: str, partner: str) -> Seen:
    async def run() -> Seen:
        client = AsyncHTTPClient(force_instance=True)
        seen: Seen = []
        try:
            for url, method, body in ((f"{shapes}/shapes/gzip", "GET", None),
                                      (f"{shapes}/shapes/plain", "POST", '{"a": 1}'),
                                      (f"{shapes}/shapes/error", "GET", None),
                                      (f"{partner}/v1/orders", "GET", None)):
                answer = await client.fetch(url, method=method, body=body, raise_error=False)
                seen.append((answer.code, answer.body or b"",
                             answer.headers.get("content-type", "")))
        finally:
            client.close()
        return seen
    return asyncio.run(run())


STUBS: dict[str, Callable[[str, str], Seen]] = {
    "requests": via_requests, "httpx": via_httpx, "urllib3": via_urllib3,
    "aiohttp": via_aiohttp, "tornado": via_tornado,
}


@pytest.fixture(scope="module")
def upstreams() -> Any:
    with BackgroundServer(shapes_app) as shapes, FakePartner() as partner:
        yield shapes.url, partner.url


@pytest.mark.parametrize("stub", sorted(STUBS))
def test_vcrpy_recordings_replay_as_vcrpy_plays_them_back(
        stub: str, upstreams: tuple[str, str], tmp_path: Path) -> None:
    script, (shapes, partner) = STUBS[stub], upstreams
    cassette = tmp_path / f"{stub}.yaml"
    with vcr.use_cassette(str(cassette), record_mode="all"):
        live = script(shapes, partner)
    with vcr.use_cassette(str(cassette), record_mode="none", allow_playback_repeats=False):
        played = script(shapes, partner)
    assert played == live  # VCR.py's own playback is the reference
    with ReplayPartner(cassette) as replay:
        replayed = script(replay.url, replay.url)
    assert replayed == played


def test_a_decoded_body_under_a_stale_content_encoding_loses_the_header(tmp_path: Path) -> None:
    """What VCR.py's urllib3 ≥ 2 and aiohttp stubs write; a really gzipped body stays."""
    zipped = gzip.compress(b'{"a": 1}', mtime=0)
    text = (
        "version: 1\ninteractions:\n"
        "- request: {method: GET, uri: 'http://p.test/decoded', body: null, headers: {}}\n"
        "  response: {status: {code: 200, message: OK}, body: {string: '{\"a\": 1}'},\n"
        "             headers: {Content-Encoding: [gzip], Content-Length: ['28']}}\n"
        "- request: {method: GET, uri: 'http://p.test/encoded', body: null, headers: {}}\n"
        "  response: {status: {code: 200, message: OK}, body: {string: !!binary '"
        + base64.b64encode(zipped).decode() + "'},\n"
        "             headers: {Content-Encoding: [gzip]}}\n")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with ReplayPartner(path) as replay, httpx.Client(base_url=replay.url) as client:
        decoded = client.get("/decoded")
        assert (decoded.json(), "content-encoding" in decoded.headers) == ({"a": 1}, False)
        assert decoded.headers["content-length"] == "8"
        with client.stream("GET", "/encoded") as encoded:
            assert encoded.headers["content-encoding"] == "gzip"
            assert b"".join(encoded.iter_raw()) == zipped  # byte for byte
        assert client.get("/encoded").json() == {"a": 1}


def test_vcrpy_1_flow_style_with_python_unicode_tags_loads() -> None:
    text = """interactions:
- request: {body: !!python/unicode 'a=1',
    headers: {!!python/unicode 'Accept': [!!python/unicode '*/*']},
    method: !!python/unicode 'POST', uri: !!python/unicode 'http://p.test/v1/x?b=2'}
  response:
    body: {string: !!python/unicode '{"ok": true}'}
    headers:
      content-type: [application/json]
    status: {code: 201, message: !!python/unicode 'Created'}
version: 1
"""
    [interaction] = parse_cassette(text)
    assert (interaction.request.body, interaction.request.headers) == (b"a=1", {"Accept": ["*/*"]})
    assert (interaction.response.status, interaction.response.reason) == (201, "Created")


def test_the_tornado_stubs_header_pairs_load_as_plain_headers() -> None:
    text = """version: 1
interactions:
- request: {body: null, headers: {}, method: GET, uri: 'http://p.test/a'}
  response:
    body: {string: 'hi'}
    headers:
    - !!python/tuple [Set-Cookie, [a=1]]
    - !!python/tuple [Set-Cookie, [b=2]]
    - !!python/tuple [Content-Type, [text/plain]]
    status: {code: 200, message: OK}
    url: http://p.test/a
"""
    [interaction] = parse_cassette(text)
    assert interaction.response.headers == {"Set-Cookie": ["a=1", "b=2"],
                                            "Content-Type": ["text/plain"]}


def test_the_old_httpx_stub_and_the_json_serializer_load(tmp_path: Path,
                                                         upstreams: tuple[str, str]) -> None:
    old_httpx = """version: 1
interactions:
- request: {body: '', headers: {}, method: GET, uri: 'http://p.test/a'}
  response: {status_code: 404, content: '{"error": "not_found"}', headers: {},
             http_version: 'HTTP/1.1'}
"""
    [interaction] = parse_cassette(old_httpx)
    assert (interaction.response.status, interaction.response.body) == \
        (404, b'{"error": "not_found"}')
    cassette = tmp_path / "c.json"
    with vcr.use_cassette(str(cassette), serializer="json", record_mode="all"):
        live = via_requests(*upstreams)
    with ReplayPartner(load_cassette(cassette)) as replay:
        assert via_requests(replay.url, replay.url) == live


def test_request_bodies_as_mapping_null_binary_or_string_load() -> None:
    text = """version: 1
interactions:
- request: {body: {a: 1}, headers: {}, method: POST, uri: 'http://p.test/a'}
  response: {body: {string: ''}, headers: {}, status: {code: 200, message: OK}}
- request: {body: null, headers: {}, method: POST, uri: 'http://p.test/a'}
  response: {body: {string: ''}, headers: {}, status: {code: 200, message: OK}}
- request: {body: !!binary 'AAE=', headers: {}, method: POST, uri: 'http://p.test/a'}
  response: {body: {string: ''}, headers: {}, status: {code: 200, message: OK}}
- request: {body: 'x=1', headers: {}, method: POST, uri: 'http://p.test/a'}
  response: {body: {}, headers: {}, status: {code: 302, message: Found}}
"""
    bodies = [interaction.request.body for interaction in parse_cassette(text)]
    assert bodies == [b'{"a": 1}', b"", b"\x00\x01", b"x=1"]


@pytest.mark.parametrize(("snippet", "named"), [
    ("body: 12", "interactions[0].request.body: expected a string, !!binary or null or a "
                 "mapping (VCR.py's aiohttp stub"),
    ("headers: [[a, b, c]]", "interactions[0].request.headers[0]: expected a (name, values) "
                             "pair, as VCR.py's tornado stub writes"),
    ("headers: !!python/object:os.system {}", "constructor for the tag "
                                              "'tag:yaml.org,2002:python/object:os.system'"),
    ("headers: !!python/name:os.system ''", "tag:yaml.org,2002:python/name:os.system"),
])
def test_a_shape_that_cannot_be_served_is_refused_by_name(snippet: str, named: str) -> None:
    text = ("version: 1\ninteractions:\n- request: {method: POST, uri: 'http://p.test/a', "
            f"{snippet}}}\n  response: {{body: {{string: ''}}, status: {{code: 200}}}}\n")
    with pytest.raises(CassetteError, match=r"^cassette: ") as refused:
        parse_cassette(text)
    assert named in str(refused.value)


