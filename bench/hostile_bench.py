"""Issue 11's measures: memory under the largest allowed journal entries, and what the
hardening costs in throughput (same run, this tree against a reference tree).

    .venv/bin/python bench/hostile_bench.py [--reference DIR] [--requests 12000]

- **Journal memory**: `partnersim serve` with the defaults (10,000 entries, 32 MiB),
  sent `--requests` requests whose heads are the largest the journal keeps per entry
  (100 headers and 100 query parameters, 16 KiB of text: each entry costs the most
  bookkeeping the caps allow), from 4 keep-alive connections. Reported: RSS before,
  after, and the peak (VmHWM) after `GET /__sim/journal`, with health's counters.
- **Throughput**: wrk on `GET /v1/orders/ORD-000001` (token, 64 connections), an
  empty scenario and 30 path-glob rules none of which match, alternating this tree
  and `--reference` (e.g. a `git archive main` snapshot) round by round; the ratio
  is this tree's req/s over the reference's, per round.

Loopback only; every load is bounded in count or time. Appends to bench/results.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # bench/ is not a package: harness.py is found through sys.path

GLOB_30 = [{"match": {"path": f"/v1/never/*/{n}/**"}, "fault": {"status": 503}}
           for n in range(30)]


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _largest_entry_request(number: int) -> tuple[str, dict[str, str]]:
    query = "&".join(f"q{item:02d}=v{number}" for item in range(100))
    headers = {f"x-h{item:02d}": f"{number:06d}" + "v" * 150 for item in range(100)}
    return f"/v1/orders?{query}", headers


def journal_memory(requests: int) -> dict[str, float | int]:
    port = harness.free_port()
    base = f"http://127.0.0.1:{port}"
    command = [harness.PYTHON, "-m", "partnerkit.simulator.cli", "serve", "--port", str(port)]
    with harness.process(command, f"{base}/__sim/health") as proc:
        before = harness.rss_mb(proc.pid)

        def send(worker: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for number in range(worker, requests, 4):
                path, headers = _largest_entry_request(number)
                connection.request("GET", path, headers=headers)
                connection.getresponse().read()
            connection.close()

        threads = [threading.Thread(target=send, args=(worker,)) for worker in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        after = harness.rss_mb(proc.pid)
        health = json.loads(_get(port, "/__sim/health"))
        journal_bytes = len(_get(port, "/__sim/journal"))
        return {"requests": requests, "rss_before_mb": before, "rss_after_mb": after,
                "rss_peak_mb": _hwm_mb(proc.pid), "journal_body_bytes": journal_bytes,
                **{key: value for key, value in health.items()
                   if key.startswith(("journal_", "engine_"))}}


def _get(port: int, path: str) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", path)
    body = connection.getresponse().read()
    connection.close()
    return body


def _serve(tree: Path, port: int, scenario: Path | None) -> list[str]:
    command = [harness.PYTHON, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
               "from partnerkit.simulator.cli import main; raise SystemExit(main())",
               str(tree), "serve", "--port", str(port)]
    return command + (["--scenario", str(scenario)] if scenario else [])


def throughput(reference: Path, seconds: float, rounds: int) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    for label, rules in (("empty scenario", None), ("30 glob rules, none match", GLOB_30),
                         ("30 path rules, none match", harness.NO_MATCH_30)):
        scenario = harness.scenario_file(rules, "bench") if rules else None
        for round_number in range(rounds):
            figures = {}
            for tree_name, tree in (("this tree", harness.ROOT), ("reference", reference)):
                port = harness.free_port()
                base = f"http://127.0.0.1:{port}"
                with harness.process(_serve(tree, port, scenario), f"{base}/__sim/health"):
                    token = harness.token_for(base)
                    url = f"{base}{harness.ORDER_PATH}"
                    harness.wrk(url, connections=64, seconds=2, token=token)  # warm-up
                    figures[tree_name] = harness.wrk(url, connections=64, seconds=seconds,
                                                     token=token)
            results.append({"target": label, "round": round_number + 1,
                            "this": figures["this tree"].requests_per_s,
                            "reference": figures["reference"].requests_per_s,
                            "ratio": figures["this tree"].requests_per_s
                            / figures["reference"].requests_per_s,
                            "p99_this": figures["this tree"].p99_ms,
                            "p99_reference": figures["reference"].p99_ms})
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, help="a tree to compare throughput with")
    parser.add_argument("--requests", type=int, default=12_000)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=harness.ROOT,
                            capture_output=True, text=True).stdout.strip()
    lines = [f"\n## {dt.date.today()} — issue 11 (hostile input), commit {commit}\n",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPython "
             f"{platform.python_version()}; `.venv/bin/python bench/hostile_bench.py "
             f"--requests {args.requests}"
             + (f" --reference {args.reference}" if args.reference else "") + "`.\n"]
    memory = journal_memory(args.requests)
    lines += ["### Journal full of the largest allowed entries (defaults: 10,000 entries, "
              "32 MiB)\n", "| figure | value |", "|---|---:|"]
    lines += [f"| {key} | {value:,.1f} |" if isinstance(value, float) else
              f"| {key} | {value:,} |" for key, value in memory.items()]
    print("\n".join(lines), flush=True)
    if args.reference is not None:
        rows = throughput(args.reference, args.duration, args.rounds)
        table = ["\n### Throughput, this tree ÷ reference (same run, alternating)\n",
                 "| target | round | this req/s | reference req/s | ratio | p99 ms this / ref |",
                 "|---|---:|---:|---:|---:|---:|"]
        table += [f"| {row['target']} | {row['round']} | {row['this']:,.0f} | "
                  f"{row['reference']:,.0f} | {row['ratio']:.2f} | "
                  f"{row['p99_this']:.1f} / {row['p99_reference']:.1f} |" for row in rows]
        print("\n".join(table), flush=True)
        lines += table
    with (Path(__file__).resolve().parent / "results.md").open("a") as results:
        results.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
