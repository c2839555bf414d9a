"""partnerkit benchmarks: the fake partner side by side with a bare Starlette
app (same bytes, same server stack) and WireMock, in one run, as ratios.

    make bench                  # or: .venv/bin/python bench/run.py [--duration 10]

Needs wrk (Debian: `apt-get install wrk`); WireMock runs when java and npm are
there (the jar comes from the npm package `wiremock`, cached in bench/.cache/),
and is skipped cleanly otherwise. Every load is bounded in time, on loopback.
Results are printed as a Markdown table and appended to bench/results.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness import (
    BENCH,
    NO_MATCH_30,
    ORDER_PATH,
    PYTHON,
    ROOT,
    Load,
    free_port,
    process,
    rss_mb,
    scenario_file,
    token_for,
    wrk,
)

WIREMOCK_VERSION = "3.13.2"


@dataclass
class Row:
    target: str
    load: Load
    rss_mb: float


FAULT_MIX_10 = [{"match": {"path": "/v1/orders/*"}, "probability": 0.1, "fault": {"one_of": [
    {"weight": 2, "status": 503, "retry_after": 1},
    {"weight": 1, "status": 429, "retry_after": 1},
    {"weight": 1, "latency": {"fixed_ms": 5}},
]}}]


def measure(target: str, command: list[str], base: str, *, seconds: float,
            connections: int = 64, needs_token: bool = False, warm_up: float = 3.0) -> Row:
    with process(command, f"{base}{ORDER_PATH}") as proc:
        token = token_for(base) if needs_token else None
        wrk(f"{base}{ORDER_PATH}", connections=connections, seconds=warm_up,
            token=token)  # warm-up (JIT for WireMock, caches for all)
        load = wrk(f"{base}{ORDER_PATH}", connections=connections, seconds=seconds,
                   token=token)
        return Row(target, load, rss_mb(proc.pid))


def partnersim(port: int, scenario: Path | None = None) -> list[str]:
    command = [PYTHON, "-m", "partnerkit.simulator.cli", "serve", "--port", str(port)]
    return command + (["--scenario", str(scenario)] if scenario else [])


def wiremock_jar() -> Path | None:
    if shutil.which("java") is None or shutil.which("npm") is None:
        return None
    cache = BENCH / ".cache"
    jar = cache / "node_modules" / "wiremock" / "build" / \
        f"wiremock-standalone-{WIREMOCK_VERSION}.jar"
    if not jar.exists():
        cache.mkdir(exist_ok=True)
        result = subprocess.run(["npm", "install", "--silent", "--prefix", str(cache),
                                 f"wiremock@{WIREMOCK_VERSION}"], capture_output=True, timeout=600)
        if result.returncode != 0 or not jar.exists():
            return None
    return jar


def wiremock_command(jar: Path, port: int, body: bytes) -> list[str]:
    root = Path(tempfile.mkdtemp(prefix="partnerkit-wiremock-"))
    (root / "mappings").mkdir()
    (root / "mappings" / "order.json").write_text(json.dumps({
        "request": {"method": "GET", "url": ORDER_PATH},
        "response": {"status": 200, "body": body.decode(),
                     "headers": {"Content-Type": "application/json"}}}))
    return ["java", "-jar", str(jar), "--port", str(port), "--root-dir", str(root),
            "--disable-banner", "--async-response-enabled", "true"]


def _python_targets(seconds: float, baseline: Path | None = None) -> list[Row]:
    rows = []
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rows.append(measure("bare Starlette (same bytes, same stack)",
                        [PYTHON, str(BENCH / "bare_app.py"), str(port)], base, seconds=seconds))
    targets: list[tuple[str, list[dict[str, object]], Path | None]] = [
        ("fake partner, empty scenario", [], None)]
    if baseline is not None:
        targets.append((f"fake partner, empty scenario ({baseline})", [], baseline))
    targets += [("fake partner, 30 rules, none match", NO_MATCH_30, None),
                ("fake partner, 10% fault mix", FAULT_MIX_10, None)]
    for name, rules, checkout in targets:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        scenario = scenario_file(rules, name.split(",")[-1].split("(")[0].strip()
                                 .replace(" ", "-"))
        command = partnersim(port, scenario)
        if checkout is not None:  # that checkout's partnerkit, first on the path
            command = ["env", "-C", str(checkout), f"PYTHONPATH={checkout}", *command]
        rows.append(measure(name, command, base, seconds=seconds, needs_token=True))
    return rows


def throughput(seconds: float, rounds: int, baseline: Path | None = None) -> list[Row]:
    """Each target `rounds` times, interleaved; the best round of each is kept
    (wrk and the server share the cores, so single runs are noisy). `baseline`: a
    checkout (of main, say) whose fake partner runs beside this one's, in each round."""
    runs = [_python_targets(seconds, baseline) for _ in range(rounds)]
    rows = [max(attempts, key=lambda row: row.load.requests_per_s)
            for attempts in zip(*runs, strict=True)]
    jar = wiremock_jar()
    if jar is None:
        print("WireMock skipped: needs java and npm", file=sys.stderr)
    else:
        from partnerkit.simulator.dataset import DatasetSpec, build_store

        body = build_store(0, DatasetSpec()).get("ORD-000001") or b"{}"
        port = free_port()
        rows.append(measure(f"WireMock {WIREMOCK_VERSION} (journal on)",
                            wiremock_command(jar, port, body), f"http://127.0.0.1:{port}",
                            seconds=seconds, warm_up=15.0))  # the JIT needs its time
    return rows


def delay_accuracy(seconds: float) -> list[tuple[str, Load]]:
    results = []
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    scenario = scenario_file([{"match": {"path": "/v1/orders/*"},
                               "fault": {"latency": {"fixed_ms": 100}}}], "delay-100ms")
    with process(partnersim(port, scenario), f"{base}/__health_probe"):
        token = token_for(base)
        for connections in (1, 16):
            # 1 connection for ~20 s is ~200 sequential requests of 100 ms.
            load = wrk(f"{base}{ORDER_PATH}", connections=connections,
                       seconds=max(seconds, 20.0), token=token)
            results.append((f"{connections} connection(s)", load))
    return results


def memory(seconds: float) -> tuple[float, float, int]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with process(partnersim(port), f"{base}/__health_probe") as proc:
        token = token_for(base)
        before = rss_mb(proc.pid)
        done = 0
        deadline = time.monotonic() + max(120.0, seconds * 12)
        while done < 200_000 and time.monotonic() < deadline:
            done += wrk(f"{base}{ORDER_PATH}", connections=64, seconds=5, token=token).requests
        return before, rss_mb(proc.pid), done


def table(rows: list[Row]) -> str:
    base = rows[0].load.requests_per_s
    lines = ["| target | req/s | × bare | p50 ms | p99 ms | errors | RSS MB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        load = row.load
        lines.append(f"| {row.target} | {load.requests_per_s:,.0f} | "
                     f"{load.requests_per_s / base:.2f} | {load.p50_ms:.2f} | {load.p99_ms:.2f} | "
                     f"{load.errors} | {row.rss_mb:.0f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the Python targets")
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="also run this checkout's fake partner (empty scenario) in each "
                             "round: before and after in one run (e.g. `git worktree add` or "
                             "`git archive main` into /tmp)")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["throughput", "delay", "memory", "replay", "client"],
                        help="parts to leave out")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench: wrk is missing (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip() or "unknown"
    header = (f"## {dt.date.today().isoformat()} — commit {commit}\n\n"
              f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
              f"{platform.python_implementation()} {platform.python_version()}; "
              f"`wrk -t1 -c64 -d{args.duration:g}s --latency` on loopback, "
              f"`GET {ORDER_PATH}`, journal on.\n")
    sections = [header]
    if "throughput" not in args.skip:
        sections += [f"### Throughput (best of {args.rounds} interleaved rounds)\n",
                     table(throughput(args.duration, args.rounds,
                                      args.baseline.resolve() if args.baseline else None))]
    if "delay" not in args.skip:
        sections.append("\n### Delay accuracy (fixed_ms: 100; error = observed − 100 ms)\n")
        sections.append("| clients | requests | p50 error ms | p99 error ms | max error ms |")
        sections.append("|---|---:|---:|---:|---:|")
        for name, load in delay_accuracy(args.duration):
            sections.append(f"| {name} | {load.requests} | {load.p50_ms - 100:.2f} | "
                            f"{load.p99_ms - 100:.2f} | {load.max_ms - 100:.2f} |")
    if "memory" not in args.skip:
        before, after, done = memory(args.duration)
        sections.append(f"\n### Memory\n\nRSS {before:.0f} MB before, {after:.0f} MB after "
                        f"{done:,} requests with the journal on (ring buffer of 10,000).")
    if "replay" not in args.skip:
        from replay_bench import replay_section

        sections.append("\n### Replay (`partnersim replay`, wrk -c64 asking for random "
                        "recorded orders)\n")
        sections += replay_section(args.duration)
    if "client" not in args.skip:
        from client_bench import client_section

        sections.append("\n### Client\n")
        sections += client_section()
    report = "\n".join(sections) + "\n"
    print(report)
    with (BENCH / "results.md").open("a") as results:
        results.write("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
