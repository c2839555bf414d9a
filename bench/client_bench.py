"""Client benchmark: a full sync of 10,000 orders over loopback (sync and async
client against `partnersim serve` in its own process), the mapping module alone
(partner JSON → DTOs, no I/O), and the wall time of the live contract suite.

Run by `bench/run.py` (`make bench`), or alone:

    .venv/bin/python bench/client_bench.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import anyio

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from harness import PYTHON, free_port, process, scenario_file  # noqa: E402

from partnerkit.client import AsyncPartnerClient, PartnerClient  # noqa: E402
from partnerkit.client.mapping import map_page, parse_json  # noqa: E402
from partnerkit.simulator.dataset import DatasetSpec, build_store  # noqa: E402
from partnerkit.simulator.state import DEFAULT_CLIENT_SECRET  # noqa: E402

ORDERS = 10_000
PAGE_SIZES = (50, 200)
MAPPING_ROUNDS = 5


def _sync(url: str, page_size: int) -> int:
    with PartnerClient.from_url(url, client_id="orderops", client_secret=DEFAULT_CLIENT_SECRET,
                                page_size=page_size) as client:
        return sum(1 for _ in client.iter_orders())


def _async(url: str, page_size: int) -> int:
    async def main() -> int:
        async with AsyncPartnerClient.from_url(url, client_id="orderops",
                                               client_secret=DEFAULT_CLIENT_SECRET,
                                               page_size=page_size) as client:
            return len([order async for order in client.iter_orders()])
    return anyio.run(main)


def full_sync() -> list[tuple[str, int, float]]:
    """(client and page size, orders, seconds) for a sync of every order."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    scenario = scenario_file([], "client-bench")
    data = json.loads(scenario.read_text())
    scenario.write_text(json.dumps({**data, "dataset": {"orders": ORDERS, "page_size": 50}}))
    results = []
    command = [PYTHON, "-m", "partnerkit.simulator.cli", "serve", "--port", str(port),
               "--scenario", str(scenario)]
    with process(command, f"{base}/__sim/health"):
        _sync(base, 200)  # warm-up
        for page_size in PAGE_SIZES:
            for name, run in (("sync", _sync), ("async", _async)):
                started = time.perf_counter()
                count = run(base, page_size)
                results.append((f"{name} client, pages of {page_size}", count,
                                time.perf_counter() - started))
    return results


def mapping_only() -> tuple[int, float]:
    """(orders, seconds) for parse_json + map_page over every page of the data set."""
    store = build_store(0, DatasetSpec(orders=ORDERS, page_size=200))
    bodies, position = [], None
    while True:
        page = store.page(None, position, 200)
        bodies.append(page.prefix + b',"next_cursor":null}')
        if page.last is None:
            break
        position = page.last
    count = 0
    started = time.perf_counter()
    for _ in range(MAPPING_ROUNDS):
        for body in bodies:
            count += len(map_page(parse_json(body, "application/json")).orders)
    return count, time.perf_counter() - started


def contract_suite() -> float:
    started = time.perf_counter()
    subprocess.run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "tests/client/test_contracts_live.py"], cwd=ROOT, check=True,
                   capture_output=True, timeout=900)
    return time.perf_counter() - started


def client_section() -> list[str]:
    lines = ["| what | orders | seconds | orders/s |", "|---|---:|---:|---:|"]
    for name, count, seconds in full_sync():
        lines.append(f"| full sync over loopback, {name} | {count:,} | {seconds:.2f} | "
                     f"{count / seconds:,.0f} |")
    count, seconds = mapping_only()
    lines.append(f"| mapping module alone (parse_json + map_page, pages of 200) | {count:,} | "
                 f"{seconds:.2f} | {count / seconds:,.0f} |")
    lines.append(f"\nLive contract suite (`tests/client/test_contracts_live.py`, sync + async): "
                 f"{contract_suite():.1f} s wall time.")
    return lines


if __name__ == "__main__":
    print("\n".join(client_section()))
