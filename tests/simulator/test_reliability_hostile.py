"""Hostile input (issue 11): each broken row of the adversarial pass, kept closed.

One test (or one parametrised test) per finding, named after its row in
HOSTILE-INPUT.md. Every attack runs on loopback, bounded in bytes and time:
the point is that each *would* hang, balloon or leak before its fix and now
answers at once.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from partnerkit.simulator.cassette import load_cassette
from partnerkit.simulator.server import FakePartner, RecordingProxy


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _raw(url: str, head: bytes, timeout: float = 5.0) -> bytes:
    """Send `head` as written on a fresh connection; the first bytes of the answer."""
    with socket.create_connection(("127.0.0.1", _port(url)), timeout=timeout) as sock:
        sock.sendall(head)
        return sock.recv(65536)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


# --- P1, P3: the recorder fetches the upstream only --------------------------------------

@pytest.mark.parametrize("http", ["httptools", "h11"])
@pytest.mark.parametrize("target", ["@127.0.0.1:{other}/__sim/health", ":{other}/__sim/health",
                                    ".localdomain/x", "*"])
def test_p1_p3_recorder_refuses_targets_that_would_change_the_host(
        tmp_path: Path, http: str, target: str) -> None:
    out = tmp_path / "ssrf.yaml"
    with FakePartner() as other, RecordingProxy("http://127.0.0.1:9", out, http=http) as proxy:
        target = target.format(other=_port(other.url))
        answer = _raw(proxy.url, f"GET {target} HTTP/1.1\r\nhost: x\r\n"
                                 "connection: close\r\n\r\n".encode())
        assert _status(answer) == 400, answer[:300]
        assert other.journal() == []  # the other service never saw a request
    assert load_cassette(out) == []


def test_p1_recorder_keeps_the_upstream_base_path(tmp_path: Path) -> None:
    with FakePartner() as partner, RecordingProxy(partner.url + "/v1", tmp_path / "c.yaml") as proxy:
        answer = httpx.get(proxy.url + "/orders", timeout=5)
        assert answer.status_code == 401  # reached /v1/orders of the partner
        assert partner.journal()[-1]["path"] == "/v1/orders"
