"""No secret reaches a log line, the journal, an exception or a cassette.

A full run through every part — the client through the recording proxy to
the fake partner, with a token that expires, 503s, a missing order and a
wrong secret — then a grep of everything each part kept or said.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from partnerkit.client import PartnerClient
from partnerkit.client.errors import PartnerError
from partnerkit.simulator.server import FakePartner, RecordingProxy, ReplayPartner

SECRET = "orderops-secret"
SCENARIO = {"seed": 9, "dataset": {"orders": 40, "page_size": 10}, "rules": [
    {"match": {"path": "/v1/orders"}, "after": 1, "times": 2, "fault": {"status": 503}},
    {"match": {"path": "/v1/orders/*/acknowledgements"}, "times": 1,
     "fault": {"auth": "expire_token"}},
]}


def test_a_full_run_leaves_no_secret_anywhere(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: partnerkit, uvicorn, httpx, httpcore
    cassette = tmp_path / "run.yaml"
    said: list[str] = []
    with FakePartner(SCENARIO) as partner, RecordingProxy(partner.url, cassette) as proxy:
        with PartnerClient.from_url(proxy.url, client_id="orderops", client_secret=SECRET,
                                    page_size=10, on_retry=lambda e: said.append(repr(e))
                                    ) as client:
            said.append(repr(client))
            for order in client.iter_orders():
                client.acknowledge(order.id, idempotency_key=f"k-{order.id}")
            for failing in (lambda: client.get_order("ORD-999999"),):
                with pytest.raises(PartnerError) as caught:
                    failing()
                said += [str(caught.value), repr(caught.value)]
        with PartnerClient.from_url(proxy.url, client_id="orderops", client_secret="wrong-one",
                                    max_attempts=1) as wrong:
            with pytest.raises(PartnerError) as caught:
                wrong.get_order("ORD-000001")
            said += [str(caught.value), repr(caught.value)]
        journal = httpx.get(f"{partner.url}/__sim/journal", timeout=5).text
        tokens = partner.state.backend.issued_tokens()  # revoked ones too
    with ReplayPartner(cassette) as replay:
        replay_journal = httpx.get(f"{replay.url}/__sim/journal", timeout=5).text

    assert len(tokens) >= 2  # the first token and the one fetched after it expired
    places = {"logs": caplog.text, "journal": journal, "replay journal": replay_journal,
              "cassette": cassette.read_text(), "errors and reprs": "\n".join(said)}
    assert "acknowledg" in places["cassette"] and places["logs"]  # the grep has material
    for place, text in places.items():
        for secret in (SECRET, "wrong-one", *tokens):
            assert secret not in text, f"{secret[:12]}… found in the {place}"
