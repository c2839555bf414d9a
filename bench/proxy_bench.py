"""The fault proxy's cost: straight to an upstream vs through `partnersim proxy`, in one run.

- Latency: `GET /v1/orders/ORD-000001` on `partnersim serve` (the upstream, its
  own process) straight and through `partnersim proxy --upstream` (its own
  process, an empty fault scenario), wrk with 16 connections, rounds
  interleaved. Twice: paced (each connection waits `--pace-ms` between
  requests, a steady load that leaves the cores room, so the difference is
  the proxy's own work per request) and saturated (as fast as wrk can, so the
  difference includes queueing on a machine whose 2 cores run wrk, the
  upstream and the proxy at once). Reported: req/s, p50, p99 and what the
  proxy adds to each.
- Memory while streaming: an upstream serving a 200 MB body in 64 KiB chunks
  (`bulk_upstream`), the proxy in front, a client reading it through; the
  proxy's RSS sampled every 50 ms, without and with `--out` (the cassette tee
  keeps at most 10 MB of an answer, then lets it go).

Run: `.venv/bin/python bench/proxy_bench.py` (appends to results.md), or via
`bench/run.py --skip ...` with the other parts left out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from harness import ORDER_PATH, PYTHON, ROOT, Load, free_port, process, rss_mb, token_for, wrk  # noqa: E402

CONNECTIONS = 16
STREAM_BYTES = 200 * 1024 * 1024
PACE_SCRIPT = "function delay()\n  return {pace}\nend\n"


def _partnersim(*args: str) -> list[str]:
    return [PYTHON, "-m", "partnerkit.simulator.cli", *args]


def _paced(pace_ms: int) -> Path:
    script = Path(tempfile.mkdtemp(prefix="proxy-bench-")) / "pace.lua"
    script.write_text(PACE_SCRIPT.format(pace=pace_ms))
    return script


def latency(seconds: float, rounds: int, pace_ms: int) -> list[str]:
    upstream_port, proxy_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    proxy = f"http://127.0.0.1:{proxy_port}"
    lines = []
    with process(_partnersim("serve", "--port", str(upstream_port)),
                 f"{upstream}/__sim/health"), \
            process(_partnersim("proxy", "--upstream", upstream, "--port", str(proxy_port)),
                    f"{proxy}/__sim/health") as proxy_proc:
        token = token_for(proxy)
        script = _paced(pace_ms)
        for paced in (script, None):
            results: dict[str, list[Load]] = {"direct": [], "proxy": []}
            for _ in range(rounds):
                for name, base in (("direct", upstream), ("proxy", proxy)):
                    wrk(f"{base}{ORDER_PATH}", connections=CONNECTIONS, seconds=1, token=token,
                        script=paced)  # warm-up
                    results[name].append(wrk(f"{base}{ORDER_PATH}", connections=CONNECTIONS,
                                             seconds=seconds, token=token, script=paced))
            direct = _median(results["direct"])
            through = _median(results["proxy"])
            what = f"paced ({pace_ms} ms between requests per connection)" if paced else \
                "saturated (as fast as wrk can)"
            lines += [
                f"\n#### {what}, {CONNECTIONS} connections, median of {rounds} rounds\n",
                "| target | req/s | p50 ms | p99 ms | errors |",
                "|---|---:|---:|---:|---:|",
                f"| straight to the upstream | {direct.requests_per_s:,.0f} | "
                f"{direct.p50_ms:.2f} | {direct.p99_ms:.2f} | {direct.errors} |",
                f"| through the proxy | {through.requests_per_s:,.0f} | {through.p50_ms:.2f} | "
                f"{through.p99_ms:.2f} | {through.errors} |",
                f"| **added by the proxy** | {through.requests_per_s / direct.requests_per_s:.2f}×"
                f" | **{through.p50_ms - direct.p50_ms:+.2f}** | "
                f"**{through.p99_ms - direct.p99_ms:+.2f}** | |",
            ]
        lines.append(f"\nProxy RSS after the latency runs: {rss_mb(proxy_proc.pid):.0f} MB.")
    return lines


def _median(loads: list[Load]) -> Load:
    ordered = sorted(loads, key=lambda load: load.p99_ms)
    return ordered[len(ordered) // 2]


def streaming(out_dir: Path) -> list[str]:
    upstream_port = free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    lines = ["\n| proxy | body | seconds | MB/s | RSS before | RSS max while streaming | "
             "RSS after |", "|---|---:|---:|---:|---:|---:|---:|"]
    with process([PYTHON, str(BENCH / "bulk_upstream.py"), str(upstream_port)],
                 f"{upstream}/bulk?bytes=1"):
        for label, extra in (("plain", []),
                             ("with --out (tee)", ["--out", str(out_dir / "tee.yaml")])):
            proxy_port = free_port()
            proxy = f"http://127.0.0.1:{proxy_port}"
            with process(_partnersim("proxy", "--upstream", upstream, "--port",
                                     str(proxy_port), *extra), f"{proxy}/__sim/health") as proc:
                before = rss_mb(proc.pid)
                peak = [before]
                done = threading.Event()

                def sample(pid: int = proc.pid, peak: list[float] = peak,
                           done: threading.Event = done) -> None:
                    while not done.wait(0.05):
                        peak.append(rss_mb(pid))

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                started = time.perf_counter()
                received = 0
                with httpx.stream("GET", f"{proxy}/bulk?bytes={STREAM_BYTES}",
                                  timeout=60.0) as answer:
                    for chunk in answer.iter_raw(1024 * 1024):
                        received += len(chunk)
                elapsed = time.perf_counter() - started
                done.set()
                sampler.join(5)
                after = rss_mb(proc.pid)
            assert received == STREAM_BYTES, received
            lines.append(f"| {label} | {received / 2**20:.0f} MB | {elapsed:.1f} | "
                         f"{received / 2**20 / elapsed:.0f} | {before:.0f} MB | "
                         f"{max(peak):.0f} MB | {after:.0f} MB |")
    return lines


def proxy_section(seconds: float, rounds: int, pace_ms: int) -> list[str]:
    lines = ["\n### Fault proxy (`partnersim proxy` in front of `partnersim serve`, "
             "empty fault scenario)"]
    lines += latency(seconds, rounds, pace_ms)
    lines.append("\n#### RSS while streaming a 200 MB upstream body through the proxy\n")
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as out_dir:
        lines += streaming(Path(out_dir))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--pace-ms", type=int, default=20,
                        help="paced runs: ms each connection waits between requests")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT, check=False).stdout.strip() or "unknown"
    load = os.getloadavg()[0]
    header = (f"## {dt.date.today().isoformat()} — commit {commit} — fault proxy\n\n"
              f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
              f"{platform.python_implementation()} {platform.python_version()}, load average "
              f"{load:.1f} at the start; `wrk -t1 -c{CONNECTIONS} -d{args.duration:g}s "
              f"--latency` on loopback, `GET {ORDER_PATH}`; "
              f"command `.venv/bin/python bench/proxy_bench.py`.")
    report = "\n".join([header, *proxy_section(args.duration, args.rounds, args.pace_ms)]) + "\n"
    print(report)
    with (BENCH / "results.md").open("a") as results:
        results.write("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
