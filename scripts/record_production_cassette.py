"""Regenerate cassettes/production/orders-sync.yaml: a production-like recorded sync.

A fake partner with a production-like day — a few 429s with Retry-After
while paging, a few 503s on acknowledgements, one token that expires
mid-sync — sits behind the recording proxy (what `partnersim record` runs).
The real client syncs every order and acknowledges each one through the
proxy, the way OrderOps' sync job does, so the cassette holds what such a
run puts on the wire (over 1,000 interactions), secrets redacted.

    .venv/bin/python scripts/record_production_cassette.py [--out FILE]

The synced orders are those of `SCENARIO`'s seed and data set, which the
replay test (`tests/simulator/test_production_cassette.py`) checks.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from partnerkit.client import PartnerClient  # noqa: E402
from partnerkit.simulator.server import FakePartner, RecordingProxy  # noqa: E402

CASSETTE = ROOT / "cassettes" / "production" / "orders-sync.yaml"
URI_BASE = "http://partner.test"
PAGE_SIZE = 25
SCENARIO: dict[str, Any] = {
    "name": "production-like",
    "seed": 2026,
    "dataset": {"orders": 1000, "page_size": PAGE_SIZE},
    "rules": [
        {"name": "rate limited while paging", "match": {"method": "GET", "path": "/v1/orders"},
         "after": 4, "every": 13, "times": 3, "fault": {"status": 429, "retry_after": 1}},
        {"name": "acknowledgements flake",
         "match": {"method": "POST", "path": "/v1/orders/*/acknowledgements"},
         "after": 90, "every": 240, "times": 4, "fault": {"status": 503}},
        {"name": "token expires mid-sync", "match": {"path": "/v1/orders/*/acknowledgements"},
         "after": 500, "times": 1, "fault": {"auth": "expire_token"}},
    ],
}


def acknowledgement_key(order_id: str) -> str:
    return f"orderops-ack-{order_id}"


def sync_and_acknowledge(client: PartnerClient) -> list[str]:
    """What OrderOps' sync job does: take each order, then acknowledge it."""
    synced = []
    for order in client.iter_orders():
        client.acknowledge(order.id, idempotency_key=acknowledgement_key(order.id))
        synced.append(order.id)
    return synced


def record(out: Path) -> tuple[int, int]:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with FakePartner(SCENARIO) as partner, \
            RecordingProxy(partner.url, out, uri_base=URI_BASE, stable=True) as proxy:
        client_id, client_secret = partner.credentials
        with PartnerClient.from_url(proxy.url, client_id=client_id, client_secret=client_secret,
                                    page_size=PAGE_SIZE) as client:
            synced = sync_and_acknowledge(client)
        return len(synced), proxy.recorded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", type=Path, default=CASSETTE, help=f"default {CASSETTE}")
    args = parser.parse_args()
    started = time.perf_counter()
    orders, interactions = record(args.out)
    print(f"{args.out}: {interactions} interactions, {orders} orders synced and acknowledged, "
          f"{time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
