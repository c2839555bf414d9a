"""The production-like cassette (cassettes/production/) replays into a complete sync.

Regenerate it with `make cassettes` (scripts/record_production_cassette.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from partnerkit.client import PartnerClient
from partnerkit.simulator.cassette import load_cassette
from partnerkit.simulator.dataset import DatasetSpec, build_store
from partnerkit.simulator.server import ReplayPartner

REPO = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    path = REPO / "scripts" / "record_production_cassette.py"
    spec = importlib.util.spec_from_file_location("record_production_cassette", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_production_cassette_replays_into_a_complete_sync() -> None:
    script = _script()
    interactions = load_cassette(script.CASSETTE)
    assert len(interactions) >= 1000
    sleeps: list[float] = []
    with ReplayPartner(script.CASSETTE) as replay, PartnerClient.from_url(
            replay.url, client_id="orderops", client_secret="whatever-replay-ignores-it",
            page_size=script.PAGE_SIZE, sleep=sleeps.append) as client:
        synced = script.sync_and_acknowledge(client)
        journal = replay.journal()
        stats = replay.index.stats()

    dataset = script.SCENARIO["dataset"]
    expected = build_store(script.SCENARIO["seed"],
                           DatasetSpec(dataset["orders"], dataset["page_size"])).ids()
    assert len(synced) == len(set(synced)) == len(expected)
    assert sorted(synced) == sorted(expected)
    # The client met the recorded day as it was: the same 429s, 503s and expired token,
    # and it made exactly the recorded requests, no more, no fewer.
    statuses = [entry["status"] for entry in journal]
    recorded = [interaction.response.status for interaction in interactions]
    assert statuses == recorded
    assert (statuses.count(429), statuses.count(503), statuses.count(401)) == (3, 4, 1)
    assert stats["answered"] == len(interactions)
    assert sleeps.count(1.0) >= 3  # Retry-After: 1 of each recorded 429, honoured
