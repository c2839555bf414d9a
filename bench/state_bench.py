"""What shared state costs: `partnersim serve` with memory state vs `--state redis://...`.

`GET /v1/orders/ORD-000001` with a rule that matches every such request (a
spent `times: 1` budget: the Redis script runs on every request, the fault
does not), wrk with 16 connections, rounds interleaved, medians; and Redis
with no rule that matches (the worker's cached token answers it without a
round trip: only the journal's batched appends go to Redis):

- saturated (as fast as wrk can): req/s and p99 of memory (1 worker), Redis
  (1 worker) and Redis (2 workers), and the CPU µs per request of the
  partnersim processes and of redis-server (from /proc and INFO);
- paced (each connection waits `--pace-ms` between requests: a steady load
  well below saturation, 2,000 req/s at the default): the p99 Redis adds;
- Redis's own time in the admit script per request (INFO commandstats: the
  admissions of one event-loop tick are one call), and the script calls per
  request when no rule matches (journal batches and lease renewals only).

Run: `.venv/bin/python bench/state_bench.py` (appends to results.md); needs
wrk and redis-server. On 2 shared cores wrk, redis-server and the workers
compete, so 1 vs 2 workers is read with the CPU figures, which project it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from harness import ORDER_PATH, PYTHON, Load, free_port, process, scenario_file, token_for, wrk  # noqa: E402
from results_file import heading, publish  # noqa: E402

CONNECTIONS = 16
TICKS = os.sysconf("SC_CLK_TCK")
RULES: list[dict[str, object]] = [{"name": "spent", "match": {"path": "/v1/orders/*"},
                                   "times": 1, "fault": {"status": 503}}]


@contextmanager
def redis_server() -> Iterator[str]:
    directory = Path(tempfile.mkdtemp(prefix="state-bench-"))
    sock = directory / "redis.sock"
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("state_bench: needs redis-server (apt-get install redis-server)")
    proc = subprocess.Popen([binary, "--port", "0", "--unixsocket", str(sock),
                             "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                             "--dir", str(directory)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        proc.wait(5)


def cpu_seconds(group: int) -> float:
    """user + system CPU of every process in the process group `group`."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _median(loads: list[tuple[Load, float, float]]) -> tuple[Load, float, float]:
    ordered = sorted(loads, key=lambda item: item[0].requests_per_s)
    return ordered[len(ordered) // 2]


def run(seconds: float, rounds: int, pace_ms: int) -> list[str]:
    scenario = scenario_file(RULES, "state-bench")
    untouched = scenario_file([], "state-bench-empty")
    pace = Path(tempfile.mkdtemp(prefix="state-bench-")) / "pace.lua"
    pace.write_text(f"function delay()\n  return {pace_ms}\nend\n")
    lines: list[str] = []
    with redis_server() as url:
        client = redis.Redis.from_url(url)
        modes = {"memory, 1 worker": ["--state", "memory"],
                 "redis, 1 worker": ["--state", url],
                 "redis, 2 workers": ["--state", url, "--workers", "2"],
                 "redis, 1 worker, no rule matches": ["--state", url]}
        scenarios = {name: untouched if "no rule" in name else scenario for name in modes}
        ports = {name: free_port() for name in modes}
        results: dict[str, list[tuple[Load, float, float]]] = {name: [] for name in modes}
        paced: dict[str, list[Load]] = {name: [] for name in modes}
        usec_per_request: list[float] = []
        untouched_calls: list[float] = []
        with contextlib.ExitStack() as stack:
            procs = {}
            for name, extra in modes.items():
                base = f"http://127.0.0.1:{ports[name]}"
                procs[name] = stack.enter_context(process(
                    [PYTHON, "-m", "partnerkit.simulator.cli", "serve", "--port",
                     str(ports[name]), "--scenario", str(scenarios[name]),
                     "--state-prefix", f"bench:{ports[name]}:", *extra],
                    f"{base}/__sim/health"))
            tokens = {name: token_for(f"http://127.0.0.1:{ports[name]}") for name in modes}
            for _ in range(rounds):
                for name in modes:
                    target = f"http://127.0.0.1:{ports[name]}{ORDER_PATH}"
                    wrk(target, connections=CONNECTIONS, seconds=1, token=tokens[name])
                    client.config_resetstat()
                    cpu, rcpu = cpu_seconds(procs[name].pid), redis_cpu(client)
                    load = wrk(target, connections=CONNECTIONS, seconds=seconds,
                               token=tokens[name])
                    used = cpu_seconds(procs[name].pid) - cpu
                    redis_used = redis_cpu(client) - rcpu
                    count = max(1, load.requests)
                    results[name].append((load, used / count * 1e6, redis_used / count * 1e6))
                    stats = client.info("commandstats")
                    if name == "redis, 1 worker" and "cmdstat_evalsha" in stats:
                        usec_per_request.append(float(stats["cmdstat_evalsha"]["usec"]) / count)
                    if "no rule" in name:
                        calls = stats.get("cmdstat_evalsha", {}).get("calls", 0)
                        untouched_calls.append(float(calls) / count)
                for name in ("memory, 1 worker", "redis, 1 worker",
                             "redis, 1 worker, no rule matches"):
                    target = f"http://127.0.0.1:{ports[name]}{ORDER_PATH}"
                    paced[name].append(wrk(target, connections=CONNECTIONS, seconds=seconds,
                                           token=tokens[name], script=pace))
    medians = {name: _median(rows) for name, rows in results.items()}
    memory = medians["memory, 1 worker"][0]
    lines += [f"\n#### saturated, {CONNECTIONS} connections, median of {rounds} rounds\n",
              "| mode | req/s | × memory | p50 ms | p99 ms | errors | partnersim CPU µs/req "
              "| redis CPU µs/req |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, (load, cpu, rcpu) in medians.items():
        lines.append(f"| {name} | {load.requests_per_s:,.0f} | "
                     f"{load.requests_per_s / memory.requests_per_s:.2f} | {load.p50_ms:.2f} | "
                     f"{load.p99_ms:.2f} | {load.errors} | {cpu:.0f} | {rcpu:.0f} |")
    slow = {name: sorted(loads, key=lambda load: load.p99_ms)[len(loads) // 2]
            for name, loads in paced.items() if loads}
    mem, red = slow["memory, 1 worker"], slow["redis, 1 worker"]
    none = slow["redis, 1 worker, no rule matches"]
    lines += [f"\n#### paced: {CONNECTIONS} connections × 1 request / {pace_ms} ms "
              f"(~{CONNECTIONS * 1000 // pace_ms:,} req/s offered), median of {rounds} rounds\n",
              "| mode | req/s | p50 ms | p99 ms |", "|---|---:|---:|---:|",
              f"| memory, 1 worker | {mem.requests_per_s:,.0f} | {mem.p50_ms:.2f} | "
              f"{mem.p99_ms:.2f} |",
              f"| redis, 1 worker | {red.requests_per_s:,.0f} | {red.p50_ms:.2f} | "
              f"{red.p99_ms:.2f} |",
              f"| **added by Redis** | | **{red.p50_ms - mem.p50_ms:+.2f}** | "
              f"**{red.p99_ms - mem.p99_ms:+.2f}** |",
              f"| redis, 1 worker, no rule matches | {none.requests_per_s:,.0f} | "
              f"{none.p50_ms:.2f} | {none.p99_ms:.2f} |",
              f"| **added by Redis, no rule matches** | | **{none.p50_ms - mem.p50_ms:+.2f}** | "
              f"**{none.p99_ms - mem.p99_ms:+.2f}** |"]
    if usec_per_request:
        ordered = sorted(usec_per_request)
        lines.append(f"\nRedis's time in scripts (EVALSHA `usec`, INFO commandstats) per "
                     f"request, redis 1 worker, median of {len(ordered)} runs: "
                     f"{ordered[len(ordered) // 2]:.2f} µs.")
    if untouched_calls:
        ordered = sorted(untouched_calls)
        lines.append(f"\nRedis script calls (EVALSHA `calls`) per request, redis 1 worker, no "
                     f"rule matches (journal batches and lease renewals; no admission), median "
                     f"of {len(ordered)} runs: {ordered[len(ordered) // 2]:.4f}.")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pace-ms", type=int, default=8)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    command = " ".join([".venv/bin/python bench/state_bench.py", *sys.argv[1:]])
    head = [heading("shared state (issue 19)", command),
            f"wrk -t1 -c{CONNECTIONS} -d{args.duration:g}s; redis-server on a unix socket, "
            "no persistence."]
    lines = head + run(args.duration, args.rounds, args.pace_ms)
    publish("\n".join(lines) + "\n", append=not args.no_append)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
