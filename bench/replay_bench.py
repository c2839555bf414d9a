"""Replay benchmark: how long `partnersim replay` takes to be ready on a cassette,
its memory, and what one lookup costs, for 1,000, 100,000 and 1,000,000
interactions (a day of production traffic; issue 14's targets: ready within
60 s, RSS at most 1 GB, lookup cost flat).

Cassettes are generated from the fake partner's own data set: one token
exchange, then GETs of single orders (real ~0.5 KB bodies; past 10,000 orders
the bodies of the first 10,000 are reused under each order's own id), written
in partnersim's line layout, as `record` writes. Run by `bench/run.py`
(`make bench`), or alone:

    .venv/bin/python bench/replay_bench.py [SIZE ...]
"""

from __future__ import annotations

import gc
import random
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from harness import PYTHON, free_port, process, rss_mb, wrk  # noqa: E402

from partnerkit.simulator.cassette import (  # noqa: E402
    HEADER,
    Interaction,
    RecordedRequest,
    RecordedResponse,
    _item,
)
from partnerkit.simulator.dataset import DatasetSpec, build_store  # noqa: E402
from partnerkit.simulator.replay import RecordingIndex, RequestKey  # noqa: E402

SIZES = (1_000, 100_000, 1_000_000)
DISTINCT_BODIES = 10_000
LOOKUPS = 200_000


def order_id(number: int) -> str:
    return f"ORD-{number:06d}"


def make_cassette(size: int, directory: Path) -> Path:
    store = build_store(1, DatasetSpec(orders=min(size - 1, DISTINCT_BODIES), page_size=50))
    headers = {"content-type": ["application/json"], "x-ratelimit-limit": ["600"]}
    path = directory / f"replay-{size}.yaml"
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        out.write(_item(Interaction(
            RecordedRequest("POST", "http://partner.test/oauth/token",
                            b"grant_type=client_credentials&client_id=orderops"
                            b"&client_secret=<redacted>", {}),
            RecordedResponse(200, "OK", headers, b'{"access_token":"<redacted>",'
                             b'"token_type":"Bearer","expires_in":3600}'))))
        for number in range(1, size):
            source = (number - 1) % DISTINCT_BODIES + 1
            body = (store.get(order_id(source)) or b"{}").replace(
                order_id(source).encode(), order_id(number).encode())
            out.write(_item(Interaction(
                RecordedRequest("GET", f"http://partner.test/v1/orders/{order_id(number)}",
                                b"", {"authorization": ["<redacted>"],
                                      "accept": ["application/json"]}),
                RecordedResponse(200, "OK", headers, body, 12.5))))
    return path


def lua_script(size: int, directory: Path) -> Path:
    """wrk asks for a random recorded order each time (the whole cassette, not one key)."""
    script = directory / f"random-{size}.lua"
    script.write_text(
        f"math.randomseed(42)\n"
        f"request = function()\n"
        f"  return wrk.format(nil, string.format('/v1/orders/ORD-%06d', "
        f"math.random(1, {size - 1})))\n"
        f"end\n")
    return script


def in_process(path: Path, size: int) -> tuple[float, float]:
    """(seconds to load and index, µs per lookup) in this process."""
    started = time.perf_counter()
    index, _ = RecordingIndex.from_file(path)
    loaded = time.perf_counter() - started
    gc.freeze()  # as `partnersim replay` does after loading: collections skip the index
    rng = random.Random(7)
    keys = [RequestKey.of("GET", f"/v1/orders/{order_id(rng.randrange(1, size))}", "", None)
            for _ in range(LOOKUPS)]
    started = time.perf_counter()
    for key in keys:
        index.next_for(key)
    lookup_us = (time.perf_counter() - started) / LOOKUPS * 1e6
    index.close()
    del index
    gc.unfreeze()
    gc.collect()
    return loaded, lookup_us


def over_http(path: Path, size: int, directory: Path, seconds: float) -> tuple[float, object,
                                                                              float]:
    """(seconds until `partnersim replay` answers, wrk load, RSS MB after)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [PYTHON, "-m", "partnerkit.simulator.cli", "replay", str(path), "--port", str(port)]
    started = time.perf_counter()
    with process(command, f"{base}/__sim/health") as proc:
        ready = time.perf_counter() - started
        script = lua_script(size, directory)
        wrk(base, connections=64, seconds=2, script=script)  # warm-up
        load = wrk(base, connections=64, seconds=seconds, script=script)
        return ready, load, rss_mb(proc.pid)


def replay_section(seconds: float, sizes: tuple[int, ...] = SIZES) -> list[str]:
    lines = ["| interactions | file MB | load + index s (in process) | `partnersim replay` "
             "ready s | lookup µs (in process) | req/s (wrk, random recorded order) | "
             "p99 ms | RSS MB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory(prefix="partnerkit-replay-") as name:
        directory = Path(name)
        for size in sizes:
            path = make_cassette(size, directory)
            loaded, lookup_us = in_process(path, size)
            ready, load, rss = over_http(path, size, directory, seconds)
            lines.append(
                f"| {size:,} | {path.stat().st_size / 1e6:.1f} | {loaded:.2f} | {ready:.2f} | "
                f"{lookup_us:.2f} | {load.requests_per_s:,.0f} | {load.p99_ms:.2f} | "  # type: ignore[attr-defined]
                f"{rss:.0f} |")
    return lines


if __name__ == "__main__":
    print("\n".join(replay_section(5.0, tuple(int(size) for size in sys.argv[1:]) or SIZES)))
