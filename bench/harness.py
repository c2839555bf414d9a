"""What every benchmark here shares: ports, processes, wrk runs and their figures.

`bench/` is not a package: each script runs alone (`python bench/x.py`) with
this folder on sys.path, and imports from here; run.py runs them together.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
ORDER_PATH = "/v1/orders/ORD-000001"


@dataclass
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, *, connections: int, seconds: float, token: str | None = None,
        script: Path | None = None) -> Load:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True,
                            timeout=seconds + 30).stdout
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, flags=re.MULTILINE))
    if "50" not in percentiles or "99" not in percentiles:
        raise RuntimeError(f"wrk gave no latency distribution for {url}:\n{output}")
    latency = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", output)
    total = re.search(r"(\d+) requests in", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", output)
    error_count = int(errors.group(1)) if errors else 0
    if socket_errors:
        error_count += sum(int(n) for n in socket_errors.groups())
    return Load(float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
                _ms(percentiles["50"]), _ms(percentiles["99"]),
                _ms(latency.group(1)) if latency else float("nan"),
                int(total.group(1)) if total else 0, error_count)


def wait_until_up(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout} s")


@contextmanager
def process(command: list[str], probe_url: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until_up(probe_url)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def token_for(base: str) -> str:
    response = httpx.post(f"{base}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "orderops",
        "client_secret": "orderops-secret"})
    return str(response.json()["access_token"])


def scenario_file(rules: list[dict[str, object]], name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="partnerkit-bench-")) / f"{name}.json"
    path.write_text(json.dumps({"name": name, "seed": 0, "rules": rules}))
    return path


NO_MATCH_30 = [{"match": {"path": f"/v1/never/{n}"}, "fault": {"status": 503}} for n in range(30)]
